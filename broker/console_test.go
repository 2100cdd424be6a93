package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/vault"
)

// fakeConsoleLogin lets user log in with password "pw-"+user as the
// matrix's token "tok-"+user.
func fakeConsoleLogin(_ context.Context, method, user, password, code string) (string, error) {
	if user != "" && password == "pw-"+user {
		return "tok-" + user, nil
	}
	return "", fmt.Errorf("fake login: %w", vault.ErrPermissionDenied)
}

// uiCall sends a console request as the user of token (a session made
// for it; none for ""), with the session's CSRF token in a form post,
// and returns the status, the page's error message and hint (if any) and
// the response.
func (e *env) uiCall(token, method, path string, form url.Values) (int, string, string, *httptest.ResponseRecorder) {
	e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	var cookies []*http.Cookie
	if token != "" {
		id, sess, err := e.srv.console.sessions.create(context.Background(), token, strings.TrimPrefix(token, "tok-"))
		if err != nil {
			e.t.Fatal(err)
		}
		cookies = append(cookies, &http.Cookie{Name: sessionCookie, Value: id})
		if form.Get("csrf") == "" && method == http.MethodPost {
			form.Set("csrf", sess.csrf)
		}
	}
	if path == "/ui/login" && method == http.MethodPost {
		cookies = append(cookies, &http.Cookie{Name: loginCookie, Value: "login-csrf"})
		form.Set("csrf", "login-csrf")
	}
	var req *http.Request
	if method == http.MethodPost {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	body := rec.Body.String()
	return rec.Code, pageText(body, "error"), pageText(body, "hint"), rec
}

var pageTextRE = map[string]*regexp.Regexp{
	"error": regexp.MustCompile(`<p id="error">([^<]*)</p>`),
	"hint":  regexp.MustCompile(`<p id="hint">([^<]*)</p>`),
}

func pageText(body, id string) string {
	m := pageTextRE[id].FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// uiMatrixCall adapts a console row's request to checkCell: the role's
// credentials for the login form, a session for everything else.
func uiMatrixCall(e *env, token, method, path string, body any) (int, string, string) {
	form, _ := body.(url.Values)
	if form == nil {
		form = url.Values{}
	} else {
		form = cloneValues(form)
	}
	if path == "/ui/login" && method == http.MethodPost {
		user := strings.TrimPrefix(token, "tok-")
		form.Set("username", user)
		form.Set("password", "pw-"+user)
		token = ""
	}
	code, msg, hint, _ := e.uiCall(token, method, path, form)
	return code, msg, hint
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, x := range v {
		out[k] = append([]string(nil), x...)
	}
	return out
}

func consoleEnv(t *testing.T) (*env, *fixture) {
	w := newMatrixWorld(t)
	e, fx, done := w.cell(t, 1, "custodian", "none")
	t.Cleanup(done)
	return e, fx
}

// TestConsoleSecurityHeaders: every console answer, page or refusal,
// carries the strict CSP and its companions.
func TestConsoleSecurityHeaders(t *testing.T) {
	e, fx := consoleEnv(t)
	for _, c := range []struct{ token, method, path string }{
		{"", "GET", "/ui/login"},
		{"", "GET", "/ui/datasets"},
		{"tok-cara", "GET", "/ui/datasets"},
		{"tok-cara", "GET", "/ui/datasets/" + fx.ds},
		{"tok-rita", "GET", "/ui/datasets/" + fx.ds},
		{"tok-cara", "POST", "/ui/datasets/" + fx.ds + "/grants"},
	} {
		_, _, _, rec := e.uiCall(c.token, c.method, c.path, nil)
		h := rec.Header()
		if h.Get("Content-Security-Policy") != consoleCSP || h.Get("X-Frame-Options") != "DENY" ||
			h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s as %q: headers %v", c.method, c.path, c.token, h)
		}
		if b := rec.Body.String(); strings.Contains(b, "<script") || strings.Contains(b, " style=") || strings.Contains(b, "tok-") {
			t.Errorf("%s %s: inline script or style, or the token, in the page", c.method, c.path)
		}
	}
}

// TestConsoleCSRF: a form post without the session's token, or with
// another session's, is refused and changes nothing.
func TestConsoleCSRF(t *testing.T) {
	e, fx := consoleEnv(t)
	_, other, err := e.srv.console.sessions.create(context.Background(), "tok-admin", "admin")
	if err != nil {
		t.Fatal(err)
	}
	// dora is a user dozod has seen (the matrix world's), with no grant.
	form := url.Values{"user": {"dora"}, "until": {"2026-03-20"}, "application": {"J-DU000009"}, "institution": {"NIG"}}
	for _, csrf := range []string{"", "x", other.csrf} {
		f := cloneValues(form)
		f.Set("csrf", csrf)
		if csrf == "" {
			f.Set("csrf", " ")
		}
		code, msg, _, _ := e.uiCall("tok-cara", "POST", "/ui/datasets/"+fx.ds+"/grants", f)
		if code != http.StatusForbidden || !strings.Contains(msg, "security token") {
			t.Errorf("csrf %q: %d %q, want 403", csrf, code, msg)
		}
	}
	gs, err := e.cat.Grants(context.Background(), fx.ds, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.User == "dora" {
			t.Fatal("a refused form granted access")
		}
	}
	code, _, _, rec := e.uiCall("tok-cara", "POST", "/ui/datasets/"+fx.ds+"/grants", form)
	if code != http.StatusSeeOther {
		t.Fatalf("the same form with its token: %d %s", code, rec.Body)
	}
}

// TestConsoleLoginCookie: a login sets a session cookie that is HttpOnly,
// Secure, SameSite=Strict and __Host-; the store keeps only its hash.
func TestConsoleLoginCookie(t *testing.T) {
	e, _ := consoleEnv(t)
	e.srv.console.login = fakeConsoleLogin
	code, msg, _, rec := e.uiCall("", "POST", "/ui/login", url.Values{"username": {"cara"}, "password": {"pw-cara"}, "next": {"//evil.example/x"}})
	if code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("login: %d %q, Location %q", code, msg, rec.Header().Get("Location"))
	}
	var sc *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" || sc.Value == "" {
		t.Fatalf("session cookie %+v", sc)
	}
	idHash := sha256.Sum256([]byte(sc.Value))
	row, err := e.cat.ConsoleSession(context.Background(), idHash[:])
	if err != nil || strings.Contains(sc.Value, "tok-") {
		t.Fatalf("the store is not keyed by the hash of the cookie's id, or the cookie holds the token: %v", err)
	}
	if bytes.Contains(row.Sealed, []byte("tok-cara")) {
		t.Fatal("the catalog holds the session's Vault token in the clear")
	}
	code, _, _, _ = e.uiCall("", "POST", "/ui/login", url.Values{"username": {"cara"}, "password": {"wrong"}})
	if code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
}

// TestConsoleSessionLifetime: a session ends after SessionIdle without a
// request and after SessionMax in any case.
func TestConsoleSessionLifetime(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	st := &sessionStore{cat: testCatalog(t), now: func() time.Time { return now }}
	get := func(id string) *uiSession {
		t.Helper()
		sess, err := st.get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	id, _, err := st.create(ctx, "tok", "cara")
	if err != nil {
		t.Fatal(err)
	}
	for elapsed := time.Duration(0); elapsed < SessionMax-SessionIdle; elapsed += SessionIdle - time.Minute {
		now = now.Add(SessionIdle - time.Minute)
		if get(id) == nil {
			t.Fatalf("session ended after %v of steady use", elapsed)
		}
	}
	now = now.Add(SessionIdle)
	if get(id) != nil {
		t.Fatal("session outlived its idle limit")
	}
	id, _, _ = st.create(ctx, "tok", "cara")
	start := now
	for now.Sub(start) < SessionMax {
		get(id)
		now = now.Add(10 * time.Minute)
	}
	if get(id) != nil {
		t.Fatal("session outlived SessionMax")
	}
}

// TestConsoleSessionsShared: a session made by one dozod is known to
// another on the same catalog (replicas behind one name), a logout on one
// ends it on both, and a row's sealed token opens only with its own
// cookie id and user.
func TestConsoleSessionsShared(t *testing.T) {
	ctx := context.Background()
	cat := testCatalog(t)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := &sessionStore{cat: cat, now: clock}
	b := &sessionStore{cat: cat, now: clock}
	id, made, err := a.create(ctx, "tok-cara", "cara")
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.get(ctx, id)
	if err != nil || got == nil || got.token != "tok-cara" || got.user != "cara" || got.csrf != made.csrf {
		t.Fatalf("the other replica sees %+v, %v", got, err)
	}
	// Another session's cookie id does not open this row's seal, even
	// with the row copied under the other id.
	id2, _, err := a.create(ctx, "tok-rita", "rita")
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := sha256.Sum256([]byte(id)), sha256.Sum256([]byte(id2))
	row1, err := cat.ConsoleSession(ctx, h1[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.DeleteConsoleSession(ctx, h2[:]); err != nil {
		t.Fatal(err)
	}
	forged := *row1
	forged.IDHash = h2[:]
	if err := cat.CreateConsoleSession(ctx, forged, now.Add(-SessionIdle), now.Add(-SessionMax), maxSessions); err != nil {
		t.Fatal(err)
	}
	if sess, err := b.get(ctx, id2); err != nil || sess != nil {
		t.Fatalf("a sealed token moved to another row opened: %+v %v", sess, err)
	}
	for _, bad := range []string{"", "x", strings.Repeat("z", 64), id + "00", strings.ToUpper(id)} {
		if sess, err := b.get(ctx, bad); err != nil || sess != nil {
			t.Fatalf("cookie %q: %+v %v", bad, sess, err)
		}
	}
	if err := b.remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if sess, err := a.get(ctx, id); err != nil || sess != nil {
		t.Fatalf("logged out on one replica, still live on the other: %+v %v", sess, err)
	}
	// The catalog unreachable: an error, never a session.
	cat.Close()
	if sess, err := a.get(ctx, id2); err == nil || sess != nil {
		t.Fatalf("closed catalog: %+v %v", sess, err)
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/datasets?x=1":    "/ui/datasets?x=1",
		"//evil.example/ui/":  "/ui/",
		"https://evil/ui/":    "/ui/",
		"/v1/datasets":        "/ui/",
		"/ui/\\evil":          "/ui/",
		"":                    "/ui/",
		"/ui/datasets/JGAD01": "/ui/datasets/JGAD01",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{"=1+1": "'=1+1", "@x": "'@x", "NIG": "NIG", "": ""} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q", in, got)
		}
	}
}

// TestConsoleLanguage: Accept-Language picks Japanese; the cookie set by
// the switch link wins over it.
func TestConsoleLanguage(t *testing.T) {
	e, _ := consoleEnv(t)
	req := httptest.NewRequest("GET", "/ui/login", nil)
	req.Header.Set("Accept-Language", "ja-JP,ja;q=0.9,en;q=0.8")
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if b := rec.Body.String(); !strings.Contains(b, `lang="ja"`) || !strings.Contains(b, "ログイン") {
		t.Fatalf("Japanese login page expected:\n%s", b)
	}
	req = httptest.NewRequest("GET", "/ui/login", nil)
	req.Header.Set("Accept-Language", "ja")
	req.AddCookie(&http.Cookie{Name: langCookie, Value: "en"})
	rec = httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if b := rec.Body.String(); !strings.Contains(b, `lang="en"`) || !strings.Contains(b, "Log in") {
		t.Fatalf("the cookie's English expected")
	}
	for key, m := range msgs {
		if m[0] == "" || m[1] == "" {
			t.Errorf("message %q lacks a language", key)
		}
	}
}

// TestConsoleOwnView: a grantee's own view lists the grant with its end
// and a fetch command per available file, quoted for the shell.
func TestConsoleOwnView(t *testing.T) {
	e, fx := consoleEnv(t)
	if _, err := e.cat.PutGrant(context.Background(), catalog.Grant{DatasetID: fx.ds, User: "rita", From: "2026-03-01", Until: "2026-03-31",
		ApplicationID: "J-DU000001", Institution: "NIG", GrantedBy: "cara", GrantedAt: e.now}); err != nil {
		t.Fatal(err)
	}
	code, msg, _, rec := e.uiCall("tok-rita", "GET", "/ui/me", nil)
	b := html.UnescapeString(rec.Body.String())
	if code != 200 || !strings.Contains(b, "dozo fetch "+fx.ds+"/"+fx.file+" -o "+fx.file) || !strings.Contains(b, "2026-03-31") {
		t.Fatalf("own view: %d %q\n%s", code, msg, b)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"JGAD1/a.vcf": "JGAD1/a.vcf", "a b": "'a b'", "it's": `'it'\''s'`, "$(x)": "'$(x)'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// testCatalog opens a fresh SQLite catalog for the test.
func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Open(context.Background(), filepath.Join(t.TempDir(), "dozo.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}
