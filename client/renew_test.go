package client

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func unauthorized() *APIError {
	ae := &APIError{Method: "POST", Path: "/v1/presign", Status: http.StatusUnauthorized}
	ae.Body.Error, ae.Body.Hint = "invalid or expired token", "log in again (dozo login) and retry"
	return ae
}

// A 401 that stops a transfer is reported as the login ending, in one
// sentence with what to do, never as damage or a refusal of access.
func TestDescribeLoginEndedMidTransfer(t *testing.T) {
	err := opError("fetching D/f", fmt.Errorf("presigning GET of x on s1: %w", Refusal(unauthorized())))
	f := Describe(err)
	if !strings.HasPrefix(f.What, "fetching D/f: dozod no longer accepts your login") || !strings.HasSuffix(f.What, "rerun the same command to resume") || f.Hint != "" {
		t.Fatalf("Describe = %+v", f)
	}

	k := &LoginKeeper{expiry: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	got := Describe(k.Explain(err))
	want := Failure{What: "fetching D/f: your login expired at 2026-01-02 03:04:05 UTC; run `dozo login` and rerun the same command to resume"}
	if got != want {
		t.Fatalf("Describe = %+v, want %+v", got, want)
	}
	// Before the expiry, or for another status, Explain changes nothing.
	k.expiry = time.Now().Add(time.Hour)
	if k.Explain(err) != err {
		t.Error("Explain wrapped a 401 before the login's expiry")
	}
	other := opError("x", &APIError{Status: http.StatusForbidden})
	if (&LoginKeeper{}).Explain(other) != other {
		t.Error("Explain wrapped a 403")
	}
}
