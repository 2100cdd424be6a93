package storage

import (
	"strings"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	for ep, want := range map[string]struct {
		host   string
		secure bool
	}{
		"https://s3.example.org:9000": {"s3.example.org:9000", true},
		"HTTPS://s3.example.org/":     {"s3.example.org", true},
		"http://127.0.0.1:9000":       {"127.0.0.1:9000", false},
		"http://[::1]:9000":           {"[::1]:9000", false},
		"http://localhost:9000":       {"localhost:9000", false},
	} {
		host, secure, err := ParseEndpoint(ep)
		if err != nil || host != want.host || secure != want.secure {
			t.Errorf("ParseEndpoint(%q) = %q, %v, %v; want %q, %v", ep, host, secure, err, want.host, want.secure)
		}
	}
	for _, bad := range []string{"127.0.0.1:9000", "s3.example.org", "http://s3.example.org:9000", "http://0.0.0.0:9000",
		"ftp://s3.example.org", "https://", "https://user:pw@s3.example.org", "https://s3.example.org/bucket", "https://s3.example.org?x=1", ""} {
		if _, _, err := ParseEndpoint(bad); err == nil {
			t.Errorf("ParseEndpoint(%q) accepted", bad)
		}
	}
	// A bare host:port is never taken as plain HTTP: NewS3Target refuses it.
	_, err := NewS3Target(S3Config{ID: "t", Domain: "d", Bucket: "b", Endpoint: "s3.example.org:9000"})
	if err == nil || !strings.Contains(err.Error(), `"https://s3.example.org:9000"`) {
		t.Fatalf("bare endpoint: %v", err)
	}
}
