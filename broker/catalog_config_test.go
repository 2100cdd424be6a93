package broker

import (
	"strings"
	"testing"
)

// TestCatalogSetting: the catalog is a SQLite path (bare, as before, or
// sqlite://) or a PostgreSQL URL; anything else is a clear error, and a
// password in the file's URL is refused (it is a secret), while the same
// URL from the environment is taken.
func TestCatalogSetting(t *testing.T) {
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "s.dozod\n", 0o600)
	conf := func(catalog string) string {
		return writeFile(t, dir, "dozod.toml", `
listen = "127.0.0.1:9443"
insecure_http = true
catalog = "`+catalog+`"
[vault]
address = "http://127.0.0.1:8200"
token_file = "`+tok+`"
[[targets]]
id = "s1-a"
domain = "s1"
endpoint = "http://127.0.0.1:9000"
bucket = "dozo-a"
access_key = "ak"
`, 0o600)
	}
	load := func(path string, env map[string]string) (*Config, error) {
		env["DOZOD_S3_SECRET_KEY"] = "secret"
		return LoadConfig(path, func(k string) string { return env[k] })
	}
	for _, ok := range []string{"", "/var/lib/dozo/dozo.db", "sqlite:///var/lib/dozo/dozo.db", "postgres://dozo@db.example:5432/dozo?sslmode=verify-full"} {
		c, err := load(conf(ok), map[string]string{})
		if err != nil {
			t.Errorf("catalog %q: %v", ok, err)
		} else if ok != "" && c.Catalog != ok {
			t.Errorf("catalog %q read as %q", ok, c.Catalog)
		}
	}
	for _, bad := range []string{"mysql://db/dozo", "sqlite://", "dozo.db?mode=ro"} {
		if _, err := load(conf(bad), map[string]string{}); err == nil || !strings.Contains(err.Error(), "catalog") {
			t.Errorf("catalog %q: %v", bad, err)
		}
	}
	_, err := load(conf("postgres://dozo:s3cret@db.example/dozo"), map[string]string{})
	if err == nil || !strings.Contains(err.Error(), "password") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("password in the file: %v", err)
	}
	c, err := load(conf(""), map[string]string{"DOZOD_CATALOG": "postgres://dozo:s3cret@db.example/dozo"})
	if err != nil || c.Catalog != "postgres://dozo:s3cret@db.example/dozo" {
		t.Errorf("password from the environment: %v", err)
	}
}
