package vault

import (
	"strings"
	"testing"
)

func TestNewRefusesPlainHTTPToRemoteVault(t *testing.T) {
	for _, addr := range []string{"http://127.0.0.1:8200", "http://localhost:8200", "http://[::1]:8200", "https://vault.example.org:8200"} {
		if _, err := New(Config{Address: addr}); err != nil {
			t.Errorf("New(%s): %v", addr, err)
		}
	}
	for _, addr := range []string{"http://vault.example.org:8200", "http://10.0.0.5:8200", "ftp://x", "vault:8200", ""} {
		if _, err := New(Config{Address: addr}); err == nil {
			t.Errorf("New(%s) accepted", addr)
		} else if strings.Contains(addr, "example") && !strings.Contains(err.Error(), "plain HTTP") {
			t.Errorf("New(%s): unclear error %v", addr, err)
		}
	}
}

func TestValidKeyName(t *testing.T) {
	for _, ok := range []string{"dozo-ds-JGAD000001", "a", "k.1_2-3"} {
		if ValidKeyName(ok) != nil {
			t.Errorf("ValidKeyName(%q) refused", ok)
		}
	}
	for _, bad := range []string{"", "../sys", "a/b", "a..b", ".hidden", "x y", strings.Repeat("k", 129)} {
		if ValidKeyName(bad) == nil {
			t.Errorf("ValidKeyName(%q) accepted", bad)
		}
	}
}
