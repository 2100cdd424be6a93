package broker

import (
	"strings"
	"testing"
	"time"
)

// TestPresignExpiryBounds: presigned URLs live a minute unless configured
// otherwise, and a lifetime that would let a revoked user read on for long
// (or one too short to use) is a clear config error.
func TestPresignExpiryBounds(t *testing.T) {
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "s.dozod\n", 0o600)
	conf := writeFile(t, dir, "dozod.toml", `
listen = "127.0.0.1:9443"
insecure_http = true
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
	load := func(expiry string) (*Config, error) {
		env := map[string]string{"DOZOD_S3_SECRET_KEY": "secret", "DOZOD_PRESIGN_EXPIRY": expiry}
		return LoadConfig(conf, func(k string) string { return env[k] })
	}
	c, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.PresignExpiry != time.Minute {
		t.Errorf("default presign_expiry %v, want 1m", c.PresignExpiry)
	}
	for _, ok := range []string{"10s", "90s", "15m"} {
		if _, err := load(ok); err != nil {
			t.Errorf("presign_expiry %s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"9s", "1s", "16m", "1h"} {
		if _, err := load(bad); err == nil || !strings.Contains(err.Error(), "presign_expiry") || !strings.Contains(err.Error(), "10s..15m0s") {
			t.Errorf("presign_expiry %s: %v, want a config error naming presign_expiry and its bounds", bad, err)
		}
	}
	if !strings.Contains(ConfigHelp, "1m (presigned URL lifetime, 10s..15m") {
		t.Error("dozod --help does not state presign_expiry's default and bounds")
	}
}
