package vault

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestHungVaultIsUnavailable: a Vault that accepts the connection but
// never answers (a stopped process, a hung host) is ErrUnavailable once
// the client's timeout passes, like a refused connection, so dozod answers
// 503 rather than 500.
func TestHungVaultIsUnavailable(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(Config{Address: srv.URL, Token: "x", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.HMAC(context.Background(), "k", []byte("x")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("HMAC on a hung Vault: %v, want ErrUnavailable", err)
	}
	if err := c.Health(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Health of a hung Vault: %v, want ErrUnavailable", err)
	}
	// The caller giving up is not Vault's fault.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.HMAC(ctx, "k", []byte("x")); errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("HMAC with a canceled context: %v, want context.Canceled only", err)
	}
}

// TestHealth: sys/health's answer, sealed or not.
func TestHealth(t *testing.T) {
	body := `{"initialized":true,"sealed":false}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/sys/health" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(299) // what dozo asks sys/health to answer with in every state
		w.Write([]byte(body))
	}))
	defer srv.Close()
	c, err := New(Config{Address: srv.URL, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(context.Background()); err != nil {
		t.Fatalf("healthy Vault: %v", err)
	}
	for _, b := range []string{`{"initialized":true,"sealed":true}`, `{"initialized":false,"sealed":true}`} {
		body = b
		if err := c.Health(context.Background()); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", b, err)
		}
	}
}
