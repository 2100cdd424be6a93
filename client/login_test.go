package client

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Logout sends the token to Vault, so it obeys the same transport rule as
// login: https, or plain HTTP to this machine only, at the address given,
// whatever Vault's environment variables say.
func TestRevokeTokenTransport(t *testing.T) {
	t.Setenv("VAULT_AGENT_ADDR", "http://203.0.113.5:8200")
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	err := RevokeToken(ctx, "http://203.0.113.9:8200", "", "some-token")
	if err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Errorf("plain HTTP to a remote Vault: got %v, want a refusal", err)
	}
	// Nothing listens on port 1: the request fails, at the address given.
	err = RevokeToken(ctx, "https://127.0.0.1:1", "", "some-token")
	if err == nil || strings.Contains(err.Error(), "203.0.113.5") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("VAULT_AGENT_ADDR set: got %v, want a failure at 127.0.0.1:1", err)
	}
}
