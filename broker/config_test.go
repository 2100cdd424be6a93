package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/vault"
)

func writeFile(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "s.dozod\n", 0o600)
	sk := writeFile(t, dir, "sk", "secret\n", 0o600)
	conf := writeFile(t, dir, "dozod.toml", `
listen = "127.0.0.1:9443"
tls_cert = "c.pem"
tls_key = "k.pem"
admins = ["admin"]
[vault]
address = "http://127.0.0.1:8200"
token_file = "`+tok+`"
[[targets]]
id = "s1-a"
domain = "s1"
endpoint = "http://127.0.0.1:9000"
bucket = "dozo-a"
access_key = "ak"
secret_key_file = "`+sk+`"
`, 0o600)
	env := map[string]string{"DOZOD_SUBMITTERS": "sam, rita", "DOZOD_PRESIGN_EXPIRY": "5m"}
	c, err := LoadConfig(conf, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Vault.Token != "s.dozod" || c.Targets[0].SecretKey != "secret" || c.PresignExpiry != 5*time.Minute ||
		len(c.Submitters) != 2 || c.UploadExpiry != DefaultUploadExpiry || c.Targets[0].Region != "us-east-1" {
		t.Fatalf("config %+v", c)
	}

	// A readable token file is refused.
	os.Chmod(tok, 0o644)
	if _, err := LoadConfig(conf, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v", err)
	}
	os.Chmod(tok, 0o600)
	// Plain HTTP only on loopback.
	env["DOZOD_INSECURE_HTTP"] = "true"
	env["DOZOD_LISTEN"] = "0.0.0.0:8080"
	if _, err := LoadConfig(conf, func(k string) string { return env[k] }); err == nil {
		t.Fatal("insecure HTTP on a public address accepted")
	}
	env["DOZOD_LISTEN"] = "127.0.0.1:8080"
	if _, err := LoadConfig(conf, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	// Unknown keys are an error, not ignored.
	bad := writeFile(t, dir, "bad.toml", "listen = \"127.0.0.1:1\"\nsecret_key = \"x\"\n", 0o600)
	if _, err := LoadConfig(bad, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestVaultIdentifierFailsClosed(t *testing.T) {
	vc, err := vault.New(vault.Config{Address: "http://127.0.0.1:1", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewVaultIdentifier(vc, 0).Identify(context.Background(), "some-token")
	if !errors.Is(err, ErrIdentityUnavailable) {
		t.Fatalf("unreachable vault: %v", err)
	}
}

func TestLoadConfigRefusesReadableTLSKey(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key.pem", "-----BEGIN PRIVATE KEY-----\n", 0o644)
	conf := writeFile(t, dir, "dozod.toml", `
listen = "127.0.0.1:9443"
tls_cert = "c.pem"
tls_key = "`+key+`"
[vault]
address = "http://127.0.0.1:8200"
[[targets]]
id = "s1-a"
domain = "s1"
endpoint = "http://127.0.0.1:9000"
bucket = "dozo-a"
access_key = "ak"
`, 0o600)
	env := map[string]string{"DOZOD_VAULT_TOKEN": "s.dozod", "DOZOD_S3_SECRET_KEY": "secret"}
	if _, err := LoadConfig(conf, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable TLS key: %v", err)
	}
	os.Chmod(key, 0o600)
	if _, err := LoadConfig(conf, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
}

// A target endpoint must say its scheme: https, or plain http to a
// loopback address only; a bare host:port is an error that shows the fix.
func TestTargetEndpointNeedsScheme(t *testing.T) {
	dir := t.TempDir()
	load := func(endpoint string) error {
		conf := writeFile(t, dir, "dozod.toml", `
listen = "127.0.0.1:9443"
insecure_http = true
[vault]
address = "http://127.0.0.1:8200"
[[targets]]
id = "s1-a"
domain = "s1"
endpoint = "`+endpoint+`"
bucket = "dozo-a"
access_key = "ak"
`, 0o600)
		env := map[string]string{"DOZOD_VAULT_TOKEN": "s.dozod", "DOZOD_S3_SECRET_KEY": "secret"}
		_, err := LoadConfig(conf, func(k string) string { return env[k] })
		return err
	}
	for _, ok := range []string{"https://s3.example.org:9000", "https://10.0.0.5", "http://127.0.0.1:9000", "http://localhost:9000/", "http://[::1]:9000"} {
		if err := load(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, fix := range map[string]string{
		"127.0.0.1:9000":           `"http://127.0.0.1:9000"`,
		"s3.example.org:9000":      `"https://s3.example.org:9000"`,
		"http://s3.example.org":    `"https://s3.example.org"`,
		"http://10.0.0.5:9000":     `"https://10.0.0.5:9000"`,
		"ftp://s3.example.org":     "https://",
		"https://s3.example.org/x": "host[:port]",
		"https://":                 "host",
	} {
		err := load(bad)
		if err == nil || !strings.Contains(err.Error(), "s1-a") || !strings.Contains(err.Error(), fix) {
			t.Errorf("%s: want an error naming target s1-a and %s, got %v", bad, fix, err)
		}
	}
}
