package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/vault"
)

// fakeOIDC stands in for Vault's OIDC mount: auth_url hands out state
// "st-<n>" and remembers the nonce; callback gives "tok-"+code only for
// a known state with its own nonce.
type fakeOIDC struct {
	n        int
	nonces   map[string]string
	redirect string
}

func (f *fakeOIDC) install(s *Server) {
	f.nonces = map[string]string{}
	s.console.oidc.mount = "oidc"
	s.console.oidc.authURL = func(_ context.Context, mount, role, redirect, nonce string) (string, error) {
		f.n++
		st := fmt.Sprintf("st-%d", f.n)
		f.nonces[st], f.redirect = nonce, redirect
		return "https://op.example/authorize?state=" + st + "&redirect_uri=" + url.QueryEscape(redirect), nil
	}
	s.console.oidc.callback = func(_ context.Context, mount, state, code, nonce string) (string, error) {
		if want, ok := f.nonces[state]; !ok || want != nonce || nonce == "" {
			return "", fmt.Errorf("fake callback: %w", vault.ErrPermissionDenied)
		}
		delete(f.nonces, state)
		return "tok-" + code, nil
	}
}

// oidcStart presses the sign-on button and returns the provider's state
// and the pending sign-in's cookie.
func oidcStart(t *testing.T, e *env) (string, *http.Cookie) {
	t.Helper()
	code, msg, _, rec := e.uiCall("", "GET", "/ui/login/oidc?next=/ui/datasets", nil)
	if code != http.StatusSeeOther {
		t.Fatalf("sign-on button: %d %q", code, msg)
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	var c *http.Cookie
	for _, x := range rec.Result().Cookies() {
		if x.Name == oidcCookie {
			c = x
		}
	}
	if loc.Host != "op.example" || c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.MaxAge <= 0 {
		t.Fatalf("sign-on button: Location %q, cookie %+v", loc, c)
	}
	return loc.Query().Get("state"), c
}

func oidcCallback(e *env, q string, c *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", oidcCallbackPath+"?"+q, nil)
	if c != nil {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return rec
}

func sessionFrom(rec *httptest.ResponseRecorder) string {
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie && c.MaxAge > 0 {
			return c.Value
		}
	}
	return ""
}

// TestConsoleOIDCCallbackChecks: a callback completes a sign-on only with
// the cookie of the browser that started it and that sign-in's state, at
// most once; the nonce reaches Vault from dozod's memory only. Every
// refusal starts no session and leaves the pending sign-in usable.
func TestConsoleOIDCCallbackChecks(t *testing.T) {
	e, _ := consoleEnv(t)
	f := &fakeOIDC{}
	f.install(e.srv)
	state, cookie := oidcStart(t, e)
	if f.redirect != "https://example.com"+oidcCallbackPath {
		t.Errorf("redirect_uri %q", f.redirect)
	}
	otherState, otherCookie := oidcStart(t, e)

	for _, c := range []struct {
		name   string
		q      string
		cookie *http.Cookie
		want   string
	}{
		{"no login cookie", "state=" + state + "&code=cara", nil, "not started in this browser"},
		{"wrong state", "state=st-forged&code=cara", cookie, "not for this browser"},
		{"no state", "code=cara", cookie, "not for this browser"},
		{"another browser's state", "state=" + otherState + "&code=cara", cookie, "not for this browser"},
		{"forged cookie", "state=" + state + "&code=cara", &http.Cookie{Name: oidcCookie, Value: "x"}, "not started in this browser"},
	} {
		rec := oidcCallback(e, c.q, c.cookie)
		if rec.Code != http.StatusBadRequest || !strings.Contains(pageText(rec.Body.String(), "error"), c.want) || sessionFrom(rec) != "" {
			t.Errorf("%s: %d %q, want 400 %q and no session", c.name, rec.Code, pageText(rec.Body.String(), "error"), c.want)
		}
	}
	if n, err := e.cat.CountConsoleSessions(context.Background()); err != nil || n != 0 {
		t.Fatal("a refused callback made a session")
	}

	rec := oidcCallback(e, "state="+state+"&code=cara", cookie)
	sid := sessionFrom(rec)
	if rec.Code != http.StatusOK || sid == "" || !strings.Contains(rec.Body.String(), `url=/ui/datasets`) {
		t.Fatalf("the real callback: %d, session %q, %s", rec.Code, sid, rec.Body)
	}
	if sess, err := e.srv.console.sessions.get(context.Background(), sid); err != nil || sess == nil || sess.user != "cara" || sess.token != "tok-cara" {
		t.Fatalf("session %+v", sess)
	}
	// Replayed: the pending sign-in is used up.
	rec = oidcCallback(e, "state="+state+"&code=cara", cookie)
	if rec.Code != http.StatusBadRequest || sessionFrom(rec) != "" {
		t.Fatalf("replayed callback: %d", rec.Code)
	}
	// The other browser's sign-in still works with its own cookie.
	if rec = oidcCallback(e, "state="+otherState+"&code=rita", otherCookie); rec.Code != http.StatusOK || sessionFrom(rec) == "" {
		t.Fatalf("the other browser's callback: %d %s", rec.Code, rec.Body)
	}
	// Audited as the password login is: each success with its user;
	// refusals before anyone is identified go through the refusal guard
	// (limits.go), which records the first and counts the rest.
	var got []string
	e.cat.EachAudit(context.Background(), func(r *audit.Record) error {
		if r.Action == "ui.login" {
			got = append(got, r.Actor+":"+r.Result)
		}
		return nil
	})
	want := "[:refused cara:ok rita:ok]"
	if fmt.Sprint(got) != want {
		t.Errorf("ui.login records %v, want %s", got, want)
	}
}

// TestConsoleOIDCRefusedToken: a token Vault gives that dozod does not
// accept starts no session and is revoked.
func TestConsoleOIDCRefusedToken(t *testing.T) {
	e, _ := consoleEnv(t)
	f := &fakeOIDC{}
	f.install(e.srv)
	var revoked []string
	e.srv.console.revoke = func(_ context.Context, tok string) error { revoked = append(revoked, tok); return nil }
	state, cookie := oidcStart(t, e)
	rec := oidcCallback(e, "state="+state+"&code=nobody-known", cookie)
	if rec.Code != http.StatusUnauthorized || sessionFrom(rec) != "" || len(revoked) != 1 || revoked[0] != "tok-nobody-known" {
		t.Fatalf("unknown token: %d, revoked %v", rec.Code, revoked)
	}
}

// TestConsoleOIDCNotSetUp: without a mount there is no button, and
// method=oidc is refused.
func TestConsoleOIDCNotSetUp(t *testing.T) {
	e, _ := consoleEnv(t)
	_, _, _, rec := e.uiCall("", "GET", "/ui/login", nil)
	if strings.Contains(rec.Body.String(), `id="sso"`) {
		t.Error("a sign-on button without a mount")
	}
	if code, _, _, _ := e.uiCall("", "GET", "/ui/login/oidc", nil); code != http.StatusBadRequest {
		t.Errorf("single sign-on without a mount: %d", code)
	}
	(&fakeOIDC{}).install(e.srv)
	if _, _, _, rec = e.uiCall("", "GET", "/ui/login", nil); !strings.Contains(rec.Body.String(), `id="sso"`) {
		t.Error("no sign-on button with a mount")
	}
}

// TestConsoleConfigValidate: the sign-on mount must be one dozod accepts
// logins from, and the public URL an https origin.
func TestConsoleConfigValidate(t *testing.T) {
	auth := AuthConfig{Mounts: []string{"userpass", "oidc"}}
	for _, c := range []struct {
		cfg ConsoleConfig
		ok  bool
	}{
		{ConsoleConfig{}, true},
		{ConsoleConfig{OIDCMount: "oidc", OIDCRole: "default", PublicURL: "https://dozo.example.org"}, true},
		{ConsoleConfig{OIDCMount: "sso"}, false},
		{ConsoleConfig{OIDCRole: "a/b"}, false},
		{ConsoleConfig{PublicURL: "http://dozo.example.org"}, false},
		{ConsoleConfig{PublicURL: "https://dozo.example.org/x"}, false},
		{ConsoleConfig{PublicURL: "https://"}, false},
	} {
		if err := c.cfg.validate(auth); (err == nil) != c.ok {
			t.Errorf("%+v: %v, want ok=%v", c.cfg, err, c.ok)
		}
	}
}

// TestConsoleOIDCAcrossReplicas: two dozods on one catalog. A sign-in
// begun on one completes on the other; its callback is used once
// whichever dozod a replay reaches; a callback with a wrong state on one
// leaves the sign-in usable on the other; and the catalog holds neither
// the nonce nor the state in the clear.
func TestConsoleOIDCAcrossReplicas(t *testing.T) {
	w := newMatrixWorld(t)
	a, _, done := w.cell(t, 1, "custodian", "none")
	t.Cleanup(done)
	b := w.server(t, a.cat, w.keys.clone())
	f := &fakeOIDC{}
	f.install(a.srv)
	b.srv.console.oidc.mount = a.srv.console.oidc.mount
	b.srv.console.oidc.authURL, b.srv.console.oidc.callback = a.srv.console.oidc.authURL, a.srv.console.oidc.callback

	state, cookie := oidcStart(t, a)
	idHash := sha256.Sum256([]byte(cookie.Value))
	row, err := a.cat.PendingSignIn(context.Background(), idHash[:])
	if err != nil {
		t.Fatal(err)
	}
	if nonce := f.nonces[state]; nonce == "" || bytes.Contains(row.Sealed, []byte(nonce)) || bytes.Contains(row.Sealed, []byte(state)) {
		t.Fatalf("the catalog row shows the nonce or state: %q", row.Sealed)
	}
	if rec := oidcCallback(b, "state=st-forged&code=cara", cookie); rec.Code != http.StatusBadRequest || sessionFrom(rec) != "" {
		t.Fatalf("wrong state on the other dozod: %d", rec.Code)
	}
	rec := oidcCallback(b, "state="+state+"&code=cara", cookie)
	sid := sessionFrom(rec)
	if rec.Code != http.StatusOK || sid == "" || !strings.Contains(rec.Body.String(), `url=/ui/datasets`) {
		t.Fatalf("callback on the other dozod: %d, session %q, %s", rec.Code, sid, rec.Body)
	}
	if sess, err := a.srv.console.sessions.get(context.Background(), sid); err != nil || sess == nil || sess.user != "cara" {
		t.Fatalf("the session on the first dozod: %+v %v", sess, err)
	}
	for _, e := range []*env{a, b} {
		if rec := oidcCallback(e, "state="+state+"&code=cara", cookie); rec.Code != http.StatusBadRequest || sessionFrom(rec) != "" {
			t.Fatalf("replayed callback: %d", rec.Code)
		}
	}
	if n, err := a.cat.CountPendingSignIns(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d pending sign-ins left after the callback (%v)", n, err)
	}

	// Too late: a sign-in older than the limit is refused on any dozod
	// and removed.
	state, cookie = oidcStart(t, a)
	b.now = b.now.Add(oidcPendingTTL)
	if rec := oidcCallback(b, "state="+state+"&code=cara", cookie); rec.Code != http.StatusBadRequest || sessionFrom(rec) != "" {
		t.Fatalf("callback after %v: %d", oidcPendingTTL, rec.Code)
	}
	if n, err := a.cat.CountPendingSignIns(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d pending sign-ins left after a late callback (%v)", n, err)
	}
}
