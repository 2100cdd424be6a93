package loopback

import "testing"

func TestHost(t *testing.T) {
	for _, h := range []string{"localhost", "127.0.0.1", "127.9.9.9", "::1"} {
		if !Host(h) {
			t.Errorf("Host(%q) = false", h)
		}
	}
	for _, h := range []string{"", "example.org", "10.0.0.1", "0.0.0.0", "::", "localhost.example.org", "[::1]"} {
		if Host(h) {
			t.Errorf("Host(%q) = true", h)
		}
	}
}
