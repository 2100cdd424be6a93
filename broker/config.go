package broker

import (
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/internal/loopback"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/internal/envconfig"

	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// Config is dozod's configuration: a TOML file, then DOZOD_* environment
// variables, which override the file. Secrets (the Vault token, S3 secret
// keys) are never read from the TOML file itself, only from the
// environment or from files of mode 0600 or stricter.
//
// The env and help tags are the one place each variable is named and
// documented: internal/envconfig applies them (applyEnv) and lists them
// (ConfigHelp).
type Config struct {
	Listen        string        `toml:"listen" env:"DOZOD_LISTEN" help:"127.0.0.1:8443"`
	TLSCert       string        `toml:"tls_cert" env:"DOZOD_TLS_CERT" help:"(required unless insecure_http)"`
	TLSKey        string        `toml:"tls_key" env:"DOZOD_TLS_KEY" help:"(required unless insecure_http)"`
	InsecureHTTP  bool          `toml:"insecure_http" env:"DOZOD_INSECURE_HTTP" help:"false; plain HTTP, loopback listen only"`
	Catalog       string        `toml:"catalog" env:"DOZOD_CATALOG" help:"dozo.db: a SQLite file (created 0600), also written sqlite:///path; or postgres://user@host/db (password from DOZOD_CATALOG, PGPASSWORD or ~/.pgpass, never the file)"`
	PresignExpiry time.Duration `toml:"presign_expiry" env:"DOZOD_PRESIGN_EXPIRY" help:"1m (presigned URL lifetime, 10s..15m; a revoke or freeze stops delivery within it)"`
	UploadExpiry  time.Duration `toml:"upload_expiry" env:"DOZOD_UPLOAD_EXPIRY" help:"24h (idle upload session lifetime)"`
	Admins        []string      `toml:"admins" env:"DOZOD_ADMINS" help:"[] (comma-separated in env)"`
	Submitters    []string      `toml:"submitters" env:"DOZOD_SUBMITTERS" help:"[] (may create datasets)"`
	LogLevel      string        `toml:"log_level" env:"DOZOD_LOG_LEVEL" help:"info (debug, info, warn, error)"`

	Vault   VaultConfig    `toml:"vault"`
	Auth    AuthConfig     `toml:"auth" help:"which Vault logins are dozo users"` // auth.go
	Targets []TargetConfig `toml:"targets" help:"(file only; at least one)"`
	Scrub   ScrubConfig    `toml:"scrub" help:"scheduled scrubs, one at a time; off by default"`         // scrub.go
	Metrics MetricsConfig  `toml:"metrics" help:"(GET /metrics and /v1/metrics; storage target health)"` // ops.go
	// Lifecycle is the [lifecycle] section: the deletion grace period.
	Lifecycle LifecycleConfig `toml:"lifecycle"`                                                                           // lifecycle.go
	Jobs      JobsConfig      `toml:"jobs" help:"(the job runner: rotations, deletions, upload expiry, scrubs)"`           // jobs.go
	Limits    LimitsConfig    `toml:"limits" help:"(refused requests that carry no valid identity, per client address)"`   // limits.go
	Audit     AuditConfig     `toml:"audit" help:"(the chain head, MACed with a Transit key: lands in Vault's audit log)"` // anchor.go
	Console   ConsoleConfig   `toml:"console"`
}

// ConsoleConfig is the [console] section: the web console's single
// sign-on through Vault's OIDC auth method (console_oidc.go).
type ConsoleConfig struct {
	// OIDCMount is the Vault OIDC auth mount of the sign-on; empty means
	// "oidc" when [auth] mounts lists it, else no sign-on button.
	OIDCMount string `toml:"oidc_mount" env:"DOZOD_CONSOLE_OIDC_MOUNT" help:"\"oidc\" if [auth] mounts lists it; the Vault OIDC mount of the console's single sign-on"`
	// OIDCRole is the mount's role; empty means its default_role.
	OIDCRole string `toml:"oidc_role" env:"DOZOD_CONSOLE_OIDC_ROLE" help:"(the mount's default_role)"`
	// PublicURL is how browsers reach dozod (https://host[:port]), for
	// the redirect URI <public_url>/ui/login/oidc/callback that the role
	// must allow; empty means the host the browser asked for.
	PublicURL string `toml:"public_url" env:"DOZOD_CONSOLE_PUBLIC_URL" help:"https://host[:port] browsers use; the redirect URI is <public_url>/ui/login/oidc/callback (default: the host the browser asked for)"`
}

// validate checks that the sign-on's logins are ones dozod accepts and
// that the public URL is an https origin.
func (c *ConsoleConfig) validate(auth AuthConfig) error {
	if c.OIDCMount != "" {
		m := strings.Trim(c.OIDCMount, "/")
		if !slices.Contains(auth.Mounts, m) {
			return fmt.Errorf("[console] oidc_mount %q is not in [auth] mounts %v: dozod would refuse its logins", c.OIDCMount, auth.Mounts)
		}
	}
	if strings.ContainsAny(c.OIDCRole, "/?#") {
		return fmt.Errorf("[console] oidc_role %q: a role name has no / ? or #", c.OIDCRole)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("[console] public_url %q: want https://host[:port], nothing after it", c.PublicURL)
		}
	}
	return nil
}

// VaultConfig says how dozod reaches Vault.
type VaultConfig struct {
	Address      string `toml:"address" env:"DOZOD_VAULT_ADDR" help:"(required)"`
	TokenFile    string `toml:"token_file" env:"DOZOD_VAULT_TOKEN_FILE" help:"file with dozod's token, mode 0600"`
	Token        string `toml:"-" env:"DOZOD_VAULT_TOKEN" help:"dozod's own token (else token_file)"` // or read from TokenFile
	TransitMount string `toml:"transit_mount" env:"DOZOD_VAULT_TRANSIT_MOUNT" help:"transit"`
	CACert       string `toml:"ca_cert" env:"DOZOD_VAULT_CACERT" help:"(system roots)"`
	// Timeout bounds each Vault request dozod makes, retries included: a
	// request waiting on a Vault that stopped answering gets the 503 of
	// an unavailable Vault within it (default DefaultVaultTimeout).
	Timeout time.Duration `toml:"timeout" env:"DOZOD_VAULT_TIMEOUT" help:"5s (one Vault request, 1s..1m)"`
	// HealthInterval is how often Vault and the catalog are checked;
	// every request is refused within 2.5 intervals of Vault going down,
	// and served again within a quarter interval of its return (default
	// DefaultHealthInterval).
	HealthInterval time.Duration `toml:"health_interval" env:"DOZOD_VAULT_HEALTH_INTERVAL" help:"2s (Vault and catalog check, 1s..30s; requests are refused within 2.5 intervals of Vault going down)"`
}

// DefaultVaultTimeout is dozod's bound on one Vault request.
const DefaultVaultTimeout = 5 * time.Second

// TargetConfig is one S3 bucket.
type TargetConfig struct {
	ID       string `toml:"id" help:"storage id, e.g. \"s1-a\""`
	Domain   string `toml:"domain" help:"its failure domain, e.g. \"s1\""`
	Endpoint string `toml:"endpoint" help:"https://host:port (http:// only to a loopback address)"`
	Bucket   string `toml:"bucket" help:"bucket name"`
	Region   string `toml:"region" help:"us-east-1"`
	// The S3 variables apply to every target that has no key of its own
	// in the file (applyEnv), not over one that has.
	AccessKey     string `toml:"access_key" env:"DOZOD_S3_ACCESS_KEY" help:"(env applies to targets without one)"`
	SecretKeyFile string `toml:"secret_key_file" help:"file with the secret key, mode 0600"`
	SecretKey     string `toml:"-" env:"DOZOD_S3_SECRET_KEY" help:"the secret key (env applies to targets without secret_key_file)"` // or read from SecretKeyFile
}

// presign_expiry bounds. A presigned URL outlives a revoke, freeze or
// delete (dozod checks access when it presigns, storage only checks the
// signature), so its lifetime is how long such a change may take to stop
// delivery; much shorter URLs would expire between presign and use.
const (
	MinPresignExpiry = 10 * time.Second
	MaxPresignExpiry = 15 * time.Minute
)

// ConfigHelp documents every key and environment variable; dozod's --help
// prints it. The table comes from the config types' tags.
var ConfigHelp = `Configuration: a TOML file (--config) and DOZOD_* environment variables,
which override the file. Secrets are never taken from the TOML file itself.

  key                 env                        default
` + envconfig.Help(Config{})

// LoadConfig reads path (if not empty), applies the environment (getenv,
// normally os.Getenv), fills defaults and validates.
func LoadConfig(path string, getenv func(string) string) (*Config, error) {
	c := &Config{}
	if path != "" {
		md, err := toml.DecodeFile(path, c)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return nil, fmt.Errorf("config %s: unknown keys %v", path, und)
		}
		if catalog.HasPassword(c.Catalog) {
			return nil, fmt.Errorf("config %s: the catalog URL carries a password: give it in DOZOD_CATALOG, PGPASSWORD or ~/.pgpass (PGPASSFILE), not in the file", path)
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	c.defaults()
	if err := c.loadSecrets(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// applyEnv applies the DOZOD_* variables (the env tags) over the file. The
// S3 keys, which the file may give per target, go to each target without
// its own.
func (c *Config) applyEnv(getenv func(string) string) error {
	if err := envconfig.Apply(c, getenv); err != nil {
		return err
	}
	ak, sk := getenv("DOZOD_S3_ACCESS_KEY"), getenv("DOZOD_S3_SECRET_KEY")
	for i := range c.Targets {
		t := &c.Targets[i]
		if t.AccessKey == "" {
			t.AccessKey = ak
		}
		if t.SecretKeyFile == "" {
			t.SecretKey = sk
		}
	}
	return nil
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8443"
	}
	if c.Catalog == "" {
		c.Catalog = "dozo.db"
	}
	if c.PresignExpiry == 0 {
		c.PresignExpiry = DefaultPresignExpiry
	}
	if c.UploadExpiry == 0 {
		c.UploadExpiry = DefaultUploadExpiry
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Lifecycle.DeletionGrace == 0 {
		c.Lifecycle.DeletionGrace = DefaultDeletionGrace
	}
	if c.Vault.TransitMount == "" {
		c.Vault.TransitMount = "transit"
	}
	if c.Vault.Timeout == 0 {
		c.Vault.Timeout = DefaultVaultTimeout
	}
	if c.Vault.HealthInterval == 0 {
		c.Vault.HealthInterval = DefaultHealthInterval
	}
	c.Auth.defaults()
	for i := range c.Targets {
		if c.Targets[i].Region == "" {
			c.Targets[i].Region = "us-east-1"
		}
	}
}

// ReadSecretFile reads a secret from a file that only its owner can read:
// a secret in a group- or world-readable file is already leaked, so it is
// refused rather than used.
func ReadSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: mode %v is readable by others; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return s, nil
}

func (c *Config) loadSecrets() error {
	// The TLS private key is read by the TLS stack, but it is a secret file
	// like the others: refuse it when others can read it. A missing file is
	// reported when the listener starts.
	if c.TLSKey != "" && !c.InsecureHTTP {
		if fi, err := os.Stat(c.TLSKey); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("tls key %s: mode %v is readable by others; chmod 600 it", c.TLSKey, fi.Mode().Perm())
		}
	}
	if c.Vault.Token == "" && c.Vault.TokenFile != "" {
		tok, err := ReadSecretFile(c.Vault.TokenFile)
		if err != nil {
			return fmt.Errorf("vault token file: %w", err)
		}
		c.Vault.Token = tok
	}
	for i := range c.Targets {
		t := &c.Targets[i]
		if t.SecretKeyFile != "" {
			sk, err := ReadSecretFile(t.SecretKeyFile)
			if err != nil {
				return fmt.Errorf("target %s secret key file: %w", t.ID, err)
			}
			t.SecretKey = sk
		}
	}
	return nil
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", c.Listen, err)
	}
	if c.InsecureHTTP {
		if !loopback.Host(host) {
			return fmt.Errorf("insecure_http is allowed only on a loopback listen address, not %q", c.Listen)
		}
	} else if c.TLSCert == "" || c.TLSKey == "" {
		return errors.New("tls_cert and tls_key are required (make them with `dozod gen-cert`), or set insecure_http on a loopback address")
	}
	if c.PresignExpiry < MinPresignExpiry || c.PresignExpiry > MaxPresignExpiry {
		return fmt.Errorf("presign_expiry %v: must be %v..%v (a revoked grant or a freeze stops delivery within this lifetime)",
			c.PresignExpiry, MinPresignExpiry, MaxPresignExpiry)
	}
	if _, err := catalog.ParseLocation(c.Catalog); err != nil {
		return err
	}
	if c.UploadExpiry < 10*time.Minute {
		return fmt.Errorf("upload_expiry %v: must be at least 10m", c.UploadExpiry)
	}
	for _, u := range append(append([]string{}, c.Admins...), c.Submitters...) {
		if err := vault.ValidUsername(u); err != nil {
			return fmt.Errorf("admins/submitters: %w", err)
		}
	}
	if c.Vault.Address == "" {
		return errors.New("vault address is required (vault.address or DOZOD_VAULT_ADDR)")
	}
	if c.Vault.Token == "" {
		return errors.New("dozod's vault token is required (DOZOD_VAULT_TOKEN or vault.token_file)")
	}
	if c.Vault.Timeout < time.Second || c.Vault.Timeout > time.Minute {
		return fmt.Errorf("vault.timeout %v: must be 1s..1m", c.Vault.Timeout)
	}
	if c.Vault.HealthInterval < time.Second || c.Vault.HealthInterval > 30*time.Second {
		return fmt.Errorf("vault.health_interval %v: must be 1s..30s", c.Vault.HealthInterval)
	}
	if len(c.Targets) == 0 {
		return errors.New("no [[targets]] configured")
	}
	seen := map[string]bool{}
	for _, t := range c.Targets {
		if err := storage.ValidateID(t.ID); err != nil {
			return fmt.Errorf("target id: %w", err)
		}
		if seen[t.ID] {
			return fmt.Errorf("target %s configured twice", t.ID)
		}
		seen[t.ID] = true
		if t.Endpoint == "" || t.Bucket == "" {
			return fmt.Errorf("target %s: endpoint and bucket are required", t.ID)
		}
		if _, _, err := storage.ParseEndpoint(t.Endpoint); err != nil {
			return fmt.Errorf("target %s: %w", t.ID, err)
		}
		if t.AccessKey == "" || t.SecretKey == "" {
			return fmt.Errorf("target %s: access key and secret key are required (secret_key_file or DOZOD_S3_SECRET_KEY)", t.ID)
		}
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if err := c.Scrub.validate(); err != nil {
		return err
	}
	if err := c.Lifecycle.validate(); err != nil {
		return err
	}
	if err := c.Jobs.validate(); err != nil {
		return err
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if err := c.Console.validate(c.Auth); err != nil {
		return err
	}
	if err := c.Audit.validate(); err != nil {
		return err
	}
	return c.Metrics.validate()
}
