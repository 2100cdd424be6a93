package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/client"
)

// TestErrorLineParts: what failed and why, then what to do; with --debug
// where dozod's answer came from, never the token.
func TestErrorLineParts(t *testing.T) {
	ae := &client.APIError{Method: "POST", Path: "/v1/datasets/X/files/a/fetch", Status: 403}
	ae.Body.Error = "no active grant on X"
	ae.Body.Hint = "ask the custodian for a grant"
	ae.Body.RequestID = "r-123"
	err := &client.Error{Op: "fetching X/a", Err: ae}
	if got, want := errorLine(err, false), "fetching X/a: no active grant on X (ask the custodian for a grant)"; got != want {
		t.Errorf("errorLine = %q\nwant        %q", got, want)
	}
	dbg := errorLine(err, true)
	for _, s := range []string{"HTTP 403", "r-123", "/v1/datasets/X/files/a/fetch"} {
		if !strings.Contains(dbg, s) {
			t.Errorf("debug line %q lacks %q", dbg, s)
		}
	}
	ae.Status, ae.Body.Hint = 500, ""
	if got := errorLine(err, false); !strings.HasSuffix(got, " [request id r-123]") {
		t.Errorf("dozod's failure without its request id: %q", got)
	}

	// A transfer stopped because the login ended says what to do once.
	un := &client.APIError{Method: "POST", Path: "/v1/presign", Status: http.StatusUnauthorized}
	un.Body.Error, un.Body.Hint = "invalid or expired token", "log in again (dozo login) and retry"
	got := errorLine(&client.Error{Op: "fetching D/f", Err: fmt.Errorf("presigning: %w", client.Refusal(un))}, false)
	if !strings.HasPrefix(got, "fetching D/f: dozod no longer accepts your login") || strings.Count(got, "dozo login") != 1 {
		t.Errorf("login ended: %q", got)
	}

	// Refused connection to dozod.
	c, _ := client.New(client.Options{Broker: "http://127.0.0.1:1", Token: "s.tok", RetryFor: -1})
	_, werr := c.WhoAmI(context.Background())
	if f := errorLine(werr, true); !strings.Contains(f, "dozod") || !strings.Contains(f, "GET /v1/") || strings.Contains(f, "s.tok") {
		t.Errorf("transport error: %q", f)
	}
}
