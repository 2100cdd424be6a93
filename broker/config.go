package broker

import (
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/internal/loopback"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/dozo-vault/dozo/catalog"

	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// Config is dozod's configuration: a TOML file, then DOZOD_* environment
// variables, which override the file. Secrets (the Vault token, S3 secret
// keys) are never read from the TOML file itself, only from the
// environment or from files of mode 0600 or stricter.
type Config struct {
	Listen        string        `toml:"listen"`
	TLSCert       string        `toml:"tls_cert"`
	TLSKey        string        `toml:"tls_key"`
	InsecureHTTP  bool          `toml:"insecure_http"`
	Catalog       string        `toml:"catalog"`
	PresignExpiry time.Duration `toml:"presign_expiry"`
	UploadExpiry  time.Duration `toml:"upload_expiry"`
	Admins        []string      `toml:"admins"`
	Submitters    []string      `toml:"submitters"`
	LogLevel      string        `toml:"log_level"`

	Vault   VaultConfig    `toml:"vault"`
	Auth    AuthConfig     `toml:"auth"` // auth.go
	Targets []TargetConfig `toml:"targets"`
	Scrub   ScrubConfig    `toml:"scrub"`   // scrub.go
	Metrics MetricsConfig  `toml:"metrics"` // ops.go
	// Lifecycle is the [lifecycle] section: the deletion grace period.
	Lifecycle LifecycleConfig `toml:"lifecycle"` // lifecycle.go
	Limits    LimitsConfig    `toml:"limits"`    // limits.go
	Audit     AuditConfig     `toml:"audit"`     // anchor.go
	Console   ConsoleConfig   `toml:"console"`
}

// ConsoleConfig is the [console] section: the web console's single
// sign-on through Vault's OIDC auth method (console_oidc.go).
type ConsoleConfig struct {
	// OIDCMount is the Vault OIDC auth mount of the sign-on; empty means
	// "oidc" when [auth] mounts lists it, else no sign-on button.
	OIDCMount string `toml:"oidc_mount"`
	// OIDCRole is the mount's role; empty means its default_role.
	OIDCRole string `toml:"oidc_role"`
	// PublicURL is how browsers reach dozod (https://host[:port]), for
	// the redirect URI <public_url>/ui/login/oidc/callback that the role
	// must allow; empty means the host the browser asked for.
	PublicURL string `toml:"public_url"`
}

func (c *ConsoleConfig) applyEnv(getenv func(string) string) {
	if v := getenv("DOZOD_CONSOLE_OIDC_MOUNT"); v != "" {
		c.OIDCMount = v
	}
	if v := getenv("DOZOD_CONSOLE_OIDC_ROLE"); v != "" {
		c.OIDCRole = v
	}
	if v := getenv("DOZOD_CONSOLE_PUBLIC_URL"); v != "" {
		c.PublicURL = v
	}
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

const consoleConfigHelp = `  [console]
  oidc_mount          DOZOD_CONSOLE_OIDC_MOUNT   "oidc" if [auth] mounts lists it; the Vault OIDC
                                                 mount of the console's single sign-on
  oidc_role           DOZOD_CONSOLE_OIDC_ROLE    (the mount's default_role)
  public_url          DOZOD_CONSOLE_PUBLIC_URL   https://host[:port] browsers use; the redirect
                                                 URI is <public_url>/ui/login/oidc/callback
                                                 (default: the host the browser asked for)
`

// VaultConfig says how dozod reaches Vault.
type VaultConfig struct {
	Address      string `toml:"address"`
	TokenFile    string `toml:"token_file"`
	TransitMount string `toml:"transit_mount"`
	CACert       string `toml:"ca_cert"`
	Token        string `toml:"-"` // DOZOD_VAULT_TOKEN, or read from TokenFile
	// Timeout bounds each Vault request dozod makes, retries included: a
	// request waiting on a Vault that stopped answering gets the 503 of
	// an unavailable Vault within it (default DefaultVaultTimeout).
	Timeout time.Duration `toml:"timeout"`
	// HealthInterval is how often Vault and the catalog are checked;
	// every request is refused within 2.5 intervals of Vault going down,
	// and served again within a quarter interval of its return (default
	// DefaultHealthInterval).
	HealthInterval time.Duration `toml:"health_interval"`
}

// DefaultVaultTimeout is dozod's bound on one Vault request.
const DefaultVaultTimeout = 5 * time.Second

// TargetConfig is one S3 bucket.
type TargetConfig struct {
	ID            string `toml:"id"`
	Domain        string `toml:"domain"`
	Endpoint      string `toml:"endpoint"` // https://host:port; http:// to loopback only
	Bucket        string `toml:"bucket"`
	Region        string `toml:"region"`
	AccessKey     string `toml:"access_key"`
	SecretKeyFile string `toml:"secret_key_file"`
	SecretKey     string `toml:"-"` // DOZOD_S3_SECRET_KEY, or read from SecretKeyFile
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
// prints it.
const ConfigHelp = baseConfigHelp + authConfigHelp + scrubConfigHelp + metricsConfigHelp + lifecycleConfigHelp + limitsConfigHelp + auditConfigHelp + consoleConfigHelp

const baseConfigHelp = `Configuration: a TOML file (--config) and DOZOD_* environment variables,
which override the file. Secrets are never taken from the TOML file itself.

  key                 env                        default
  listen              DOZOD_LISTEN               127.0.0.1:8443
  tls_cert            DOZOD_TLS_CERT             (required unless insecure_http)
  tls_key             DOZOD_TLS_KEY              (required unless insecure_http)
  insecure_http       DOZOD_INSECURE_HTTP        false; plain HTTP, loopback listen only
  catalog             DOZOD_CATALOG              dozo.db: a SQLite file (created 0600), also
                                                 written sqlite:///path; or postgres://user@host/db
                                                 (password from DOZOD_CATALOG, PGPASSWORD or
                                                 ~/.pgpass, never the file)
  presign_expiry      DOZOD_PRESIGN_EXPIRY       1m (presigned URL lifetime, 10s..15m; a
                                                 revoke or freeze stops delivery within it)
  upload_expiry       DOZOD_UPLOAD_EXPIRY        24h (idle upload session lifetime)
  admins              DOZOD_ADMINS               [] (comma-separated in env)
  submitters          DOZOD_SUBMITTERS           [] (may create datasets)
  log_level           DOZOD_LOG_LEVEL            info (debug, info, warn, error)
  [vault]
  address             DOZOD_VAULT_ADDR           (required)
  token_file          DOZOD_VAULT_TOKEN_FILE     file with dozod's token, mode 0600
  (token)             DOZOD_VAULT_TOKEN          dozod's own token (else token_file)
  transit_mount       DOZOD_VAULT_TRANSIT_MOUNT  transit
  ca_cert             DOZOD_VAULT_CACERT         (system roots)
  timeout             DOZOD_VAULT_TIMEOUT        5s (one Vault request, 1s..1m)
  health_interval     DOZOD_VAULT_HEALTH_INTERVAL  2s (Vault and catalog check, 1s..30s;
                                                 requests are refused within 2.5 intervals
                                                 of Vault going down)
  [[targets]]         (file only; at least one)
  id, domain          storage ids, e.g. "s1-a", "s1" (failure domain)
  endpoint            https://host:port (http:// only to a loopback address)
  bucket, region      bucket name; region default us-east-1
  access_key          DOZOD_S3_ACCESS_KEY        (env applies to targets without one)
  secret_key_file     DOZOD_S3_SECRET_KEY        file mode 0600 (env applies to targets
                                                 without a file)
`

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

func (c *Config) applyEnv(getenv func(string) string) error {
	c.Auth.applyEnv(getenv)
	if err := c.Scrub.applyEnv(getenv); err != nil {
		return err
	}
	if err := c.Metrics.applyEnv(getenv); err != nil {
		return err
	}
	if err := c.Lifecycle.applyEnv(getenv); err != nil {
		return err
	}
	if err := c.Limits.applyEnv(getenv); err != nil {
		return err
	}
	c.Console.applyEnv(getenv)
	if err := c.Audit.applyEnv(getenv); err != nil {
		return err
	}
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	list := func(name string, dst *[]string) {
		if v := getenv(name); v != "" {
			*dst = nil
			for _, x := range strings.Split(v, ",") {
				if x = strings.TrimSpace(x); x != "" {
					*dst = append(*dst, x)
				}
			}
		}
	}
	dur := func(name string, dst *time.Duration) error {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			*dst = d
		}
		return nil
	}
	str("DOZOD_LISTEN", &c.Listen)
	str("DOZOD_TLS_CERT", &c.TLSCert)
	str("DOZOD_TLS_KEY", &c.TLSKey)
	str("DOZOD_CATALOG", &c.Catalog)
	str("DOZOD_LOG_LEVEL", &c.LogLevel)
	list("DOZOD_ADMINS", &c.Admins)
	list("DOZOD_SUBMITTERS", &c.Submitters)
	str("DOZOD_VAULT_ADDR", &c.Vault.Address)
	str("DOZOD_VAULT_TOKEN_FILE", &c.Vault.TokenFile)
	str("DOZOD_VAULT_TOKEN", &c.Vault.Token)
	str("DOZOD_VAULT_TRANSIT_MOUNT", &c.Vault.TransitMount)
	str("DOZOD_VAULT_CACERT", &c.Vault.CACert)
	if v := getenv("DOZOD_INSECURE_HTTP"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("DOZOD_INSECURE_HTTP: %w", err)
		}
		c.InsecureHTTP = b
	}
	if err := dur("DOZOD_PRESIGN_EXPIRY", &c.PresignExpiry); err != nil {
		return err
	}
	if err := dur("DOZOD_UPLOAD_EXPIRY", &c.UploadExpiry); err != nil {
		return err
	}
	if err := dur("DOZOD_VAULT_TIMEOUT", &c.Vault.Timeout); err != nil {
		return err
	}
	if err := dur("DOZOD_VAULT_HEALTH_INTERVAL", &c.Vault.HealthInterval); err != nil {
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
