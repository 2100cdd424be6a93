package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckProviderURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://idp.example.org/realms/x": true,
		"http://127.0.0.1:9998/":           true,
		"http://localhost:9998/":           true,
		"http://idp.example.org/":          false, // codes and tokens in clear text
		"ftp://idp.example.org/":           false,
		"idp.example.org":                  false,
	} {
		if err := checkProviderURL(u); (err == nil) != ok {
			t.Errorf("checkProviderURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

// A pasted address counts only if it carries this login's state; other
// lines (another login's address, typing) are passed over.
func TestReadPastedTakesOnlyThisLoginsState(t *testing.T) {
	in := strings.Join([]string{
		"",
		"hello",
		"http://localhost:8250/oidc/callback?code=other&state=st_other",
		"  http://localhost:8250/oidc/callback?code=mine&state=st_mine  ",
	}, "\n")
	results := make(chan callbackResult, 2)
	readPasted(context.Background(), strings.NewReader(in), "st_mine", results)
	close(results)
	var got []string
	for r := range results {
		got = append(got, r.query.Get("code"))
	}
	if len(got) != 1 || got[0] != "mine" {
		t.Fatalf("pasted codes taken: %v, want [mine]", got)
	}
}

// A discovery document naming another issuer is refused (a provider
// speaking for another one), as is one whose endpoints are plain HTTP
// elsewhere.
func TestDiscoverChecksIssuerAndEndpoints(t *testing.T) {
	var doc map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(doc)
	}))
	defer srv.Close()
	issuer := srv.URL + "/"
	for _, c := range []struct {
		doc  map[string]string
		want string
	}{
		{map[string]string{"issuer": "https://evil.example.org/", "token_endpoint": srv.URL + "/token"}, "names issuer"},
		{map[string]string{"issuer": issuer, "token_endpoint": "http://evil.example.org/token"}, "plain HTTP"},
		{map[string]string{"issuer": issuer}, "no token endpoint"},
		{map[string]string{"issuer": issuer, "token_endpoint": srv.URL + "/token", "device_authorization_endpoint": srv.URL + "/device"}, ""},
	} {
		doc = c.doc
		d, err := discover(context.Background(), srv.Client(), issuer)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.doc, err)
		case c.want == "" && d.DeviceEndpoint != srv.URL+"/device":
			t.Errorf("%v: device endpoint %q", c.doc, d.DeviceEndpoint)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: error %v, want one saying %q", c.doc, err, c.want)
		}
	}
}

func TestOIDCDeviceLoginNeedsProvider(t *testing.T) {
	_, err := OIDCDeviceLogin(context.Background(), OIDCDeviceOptions{VaultAddr: "http://127.0.0.1:1"})
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), "no OpenID Provider configured") || !strings.Contains(e.Hint, "--oidc-issuer") {
		t.Fatalf("err = %v", err)
	}
}
