package client

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCAPinning(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok","version":"t"}`))
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	pinned, err := New(Options{Broker: srv.URL, CACert: ca})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := pinned.Health(context.Background()); err != nil || h.Status != "ok" {
		t.Fatalf("pinned CA: %v", err)
	}
	// Without the CA the broker's certificate is not trusted, and the user
	// is told how to fix it.
	plain, _ := New(Options{Broker: srv.URL})
	_, err = plain.Health(context.Background())
	if err == nil || !strings.Contains(Hint(err), "--ca-cert") {
		t.Fatalf("unpinned: %v (hint %q)", err, Hint(err))
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a cert"), 0o600)
	if _, err := New(Options{Broker: srv.URL, CACert: bad}); err == nil {
		t.Fatal("accepted a CA file without certificates")
	}
}

// The token goes with every call: plain http only to a loopback broker.
func TestNewRefusesPlainHTTPToRemoteBroker(t *testing.T) {
	for _, b := range []string{"http://dozo.example.org:8443", "http://10.0.0.5:8443"} {
		if _, err := New(Options{Broker: b}); err == nil {
			t.Errorf("%s accepted", b)
		}
	}
	for _, b := range []string{"http://127.0.0.1:8443", "http://localhost:8443", "http://[::1]:8443", "https://dozo.example.org:8443"} {
		if _, err := New(Options{Broker: b}); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
}
