package vault

import (
	"errors"
	"net/http"
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

func TestCheckNewKey(t *testing.T) {
	fresh := KeyInfo{Name: "dozo-ds-X", Type: KeyType, LatestVersion: 1, MinDecryptionVersion: 1}
	if err := CheckNewKey(&fresh); err != nil {
		t.Fatalf("a fresh key refused: %v", err)
	}
	for what, change := range map[string]func(*KeyInfo){
		"exportable":            func(k *KeyInfo) { k.Exportable = true },
		"plaintext backup":      func(k *KeyInfo) { k.AllowPlaintextBackup = true },
		"type":                  func(k *KeyInfo) { k.Type = "aes128-gcm96" },
		"version":               func(k *KeyInfo) { k.LatestVersion = 2 },
		"min decryption":        func(k *KeyInfo) { k.MinDecryptionVersion = 2 },
		"min encryption":        func(k *KeyInfo) { k.MinEncryptionVersion = 1 },
		"deletion allowed":      func(k *KeyInfo) { k.DeletionAllowed = true },
		"imported":              func(k *KeyInfo) { k.Imported = true },
		"derived":               func(k *KeyInfo) { k.Derived = true },
		"restored":              func(k *KeyInfo) { k.Restored = true },
		"auto-rotated":          func(k *KeyInfo) { k.AutoRotatePeriod = 3600 },
		"exportable, version 3": func(k *KeyInfo) { k.Exportable = true; k.LatestVersion = 3 },
	} {
		k := fresh
		change(&k)
		err := CheckNewKey(&k)
		if !errors.Is(err, ErrKeyNotNew) {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if !strings.Contains(err.Error(), "dozo-ds-X") {
			t.Errorf("%s: the error does not name the key: %v", what, err)
		}
	}
}

// The address and TLS settings dozo checked are the ones used: Vault's
// environment variables cannot redirect a client to another server, turn
// off certificate checks, or add a namespace or headers.
func TestNewIgnoresVaultEnvironment(t *testing.T) {
	t.Setenv("VAULT_AGENT_ADDR", "http://203.0.113.5:8200")
	t.Setenv("VAULT_ADDR", "http://203.0.113.6:8200")
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	t.Setenv("VAULT_NAMESPACE", "other")
	t.Setenv("VAULT_HEADERS", `{"X-Extra":"1"}`)
	t.Setenv("VAULT_TOKEN", "ambient-token")
	t.Setenv("VAULT_HTTP_PROXY", "http://203.0.113.7:3128")
	const addr = "https://vault.example.org:8200"
	c, err := New(Config{Address: addr, Token: "given"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.WithToken("other-token")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Client{"New": c, "WithToken": u} {
		if got := c.Address(); got != addr {
			t.Errorf("%s: address %q, want %q", name, got, addr)
		}
		if err := checkTransport(c.api); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		cc := c.api.CloneConfig()
		tr, ok := cc.HttpClient.Transport.(*http.Transport)
		if !ok {
			t.Fatalf("%s: transport %T", name, cc.HttpClient.Transport)
		}
		if tr.TLSClientConfig == nil || tr.TLSClientConfig.InsecureSkipVerify {
			t.Errorf("%s: TLS certificate verification is off", name)
		}
		if tr.Proxy != nil {
			req, _ := http.NewRequest("GET", addr, nil)
			if p, _ := tr.Proxy(req); p != nil && p.Host == "203.0.113.7:3128" {
				t.Errorf("%s: VAULT_HTTP_PROXY honoured", name)
			}
		}
		if ns := c.api.Namespace(); ns != "" {
			t.Errorf("%s: namespace %q from the environment", name, ns)
		}
		if h := c.api.Headers().Get("X-Extra"); h != "" {
			t.Errorf("%s: header from VAULT_HEADERS", name)
		}
	}
	if tok := c.api.Token(); tok != "given" {
		t.Errorf("token from the environment")
	}
	// A plain-HTTP Vault on this machine is allowed, but its client never
	// follows a redirect elsewhere with the token.
	lc, err := New(Config{Address: "http://127.0.0.1:8200"})
	if err != nil {
		t.Fatal(err)
	}
	if lc.Address() != "http://127.0.0.1:8200" {
		t.Errorf("loopback address %q", lc.Address())
	}
}
