package broker

// The web console (/ui/): server-rendered pages for custodians, operators
// and researchers on dozod's own listener. It holds no rules of its own:
// every page and form calls the JSON API's handlers internally with the
// session's Vault token (consoleAPI), so each check, message and audit
// record is the API's, and the page view or form post is recorded as an
// action of its own (ui.*) with the same user and source address.
//
// The browser never sees the Vault token: it stays in the session store,
// and the browser holds only a random session id in an HttpOnly, Secure,
// SameSite=Strict cookie. See docs/console.md.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/vault"
)

//go:embed console/templates/*.html console/static/*
var consoleFiles embed.FS

// Console session limits: a session ends after SessionIdle without a
// request, and SessionMax after its login whatever happens (or earlier,
// when the Vault token expires).
const (
	SessionIdle = 30 * time.Minute
	SessionMax  = 8 * time.Hour
	// maxSessions bounds the store; beyond it the oldest sessions go.
	maxSessions = 10000
	// maxFormBytes bounds a console form post.
	maxFormBytes = 64 << 10
)

// Cookie names. The __Host- prefix makes the browser insist on Secure,
// Path=/ and no Domain, so no other host or path can set or read them.
const (
	sessionCookie = "__Host-dozo-session"
	loginCookie   = "__Host-dozo-login" // the login form's CSRF token, before there is a session
	langCookie    = "dozo-lang"
)

// consoleCSP is the Content-Security-Policy of every console response: no
// script at all, styles and images from dozod only, forms only to dozod,
// never framed.
const consoleCSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// uiSession is one logged-in browser. The Vault token never leaves it.
type uiSession struct {
	token   string
	user    string
	csrf    string // per-session form token
	created time.Time
	seen    time.Time
}

// sessionStore keeps sessions in memory, keyed by the SHA-256 of the
// cookie's id: the id itself is not stored, so a copy of the store (or a
// log of its keys) does not let anyone take over a session. Several
// dozod replicas behind one name would need it in the catalog.
type sessionStore struct {
	mu  sync.Mutex
	m   map[[32]byte]*uiSession
	now func() time.Time
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// create stores a new session for token and returns its cookie id.
func (st *sessionStore) create(token, user string) (string, *uiSession) {
	id := randomHex(32)
	now := st.now()
	sess := &uiSession{token: token, user: user, csrf: randomHex(32), created: now, seen: now}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.m) >= maxSessions {
		st.sweepLocked(now)
		if len(st.m) >= maxSessions {
			clear(st.m)
		}
	}
	st.m[sha256.Sum256([]byte(id))] = sess
	return id, sess
}

// get returns the live session with cookie id, counting this request as
// activity; an idle or too old session is removed and nil.
func (st *sessionStore) get(id string) *uiSession {
	if id == "" || len(id) > 128 {
		return nil
	}
	key := sha256.Sum256([]byte(id))
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	sess := st.m[key]
	if sess == nil {
		return nil
	}
	if !sess.live(now) {
		delete(st.m, key)
		return nil
	}
	sess.seen = now
	return sess
}

func (sess *uiSession) live(now time.Time) bool {
	return now.Sub(sess.seen) < SessionIdle && now.Sub(sess.created) < SessionMax
}

// remove ends the session with cookie id and returns it (nil if none).
func (st *sessionStore) remove(id string) *uiSession {
	key := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	sess := st.m[key]
	delete(st.m, key)
	return sess
}

func (st *sessionStore) sweepLocked(now time.Time) {
	for k, sess := range st.m {
		if !sess.live(now) {
			delete(st.m, k)
		}
	}
}

// consoleState is the Server's console: sessions, templates and how it
// reaches Vault to log users in and out.
type consoleState struct {
	sessions *sessionStore
	pages    map[string]*template.Template
	static   fs.FS
	// login performs a password login on Vault and returns the token;
	// revoke revokes a token (logout). With an identifier that is not
	// Vault's they refuse (initConsole); tests replace them.
	login  func(ctx context.Context, method, user, password, code string) (string, error)
	revoke func(ctx context.Context, token string) error
	// oidc is the single sign-on (console_oidc.go).
	oidc consoleOIDC
}

func (s *Server) initConsole() error {
	s.console.sessions = &sessionStore{m: map[[32]byte]*uiSession{}, now: s.now}
	st, err := fs.Sub(consoleFiles, "console/static")
	if err != nil {
		return err
	}
	s.console.static = st
	if s.console.pages, err = parsePages(); err != nil {
		return err
	}
	s.console.login = func(context.Context, string, string, string, string) (string, error) {
		return "", errors.New("console login needs dozod's Vault identifier")
	}
	s.console.revoke = func(context.Context, string) error { return nil }
	if vi, ok := s.ident.(*VaultIdentifier); ok {
		s.console.login = func(ctx context.Context, method, user, password, code string) (string, error) {
			return vaultPasswordLogin(ctx, vi, method, user, password, code)
		}
		s.console.revoke = func(ctx context.Context, token string) error {
			vc, err := vi.vc.WithToken(token)
			if err != nil {
				return err
			}
			return vc.RevokeSelf(ctx)
		}
	}
	s.initConsoleOIDC()
	return nil
}

// errNeedCode: the login needs a one-time code and none was given.
var errNeedCode = errors.New("this login needs a one-time code")

// vaultPasswordLogin logs in as the CLI does (client.VaultLogin): a
// password login on the method's mount, completed with a one-time code
// when Vault asks for one. The password goes to Vault only.
func vaultPasswordLogin(ctx context.Context, vi *VaultIdentifier, method, user, password, code string) (string, error) {
	vc, err := vi.vc.WithToken("")
	if err != nil {
		return "", err
	}
	r, err := vc.PasswordLogin(ctx, method, method, user, password)
	if err != nil {
		return "", err
	}
	if r.MFA == nil {
		return r.Token, nil
	}
	if len(r.MFA.Methods) == 0 {
		return "", errors.New("Vault asks for a second factor but names none")
	}
	m := r.MFA.Methods[0]
	for _, c := range r.MFA.Methods {
		if c.UsesPasscode {
			m = c
			break
		}
	}
	code = strings.TrimSpace(code)
	if m.UsesPasscode && code == "" {
		return "", errNeedCode
	}
	return vc.ValidateMFA(ctx, r.MFA.RequestID, m.ID, code)
}

// consoleHeaders are set on every console response.
func consoleHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// uiHandler handles a console request of a logged-in user.
type uiHandler func(q *request, sess *uiSession) error

// uiRoute registers a console page or form through route, so it is
// audited like an API call: the session is resolved to its Vault token,
// and the token authenticated exactly as a bearer token of the API
// (authenticate); a form post must carry the session's CSRF token.
func (s *Server) uiRoute(pattern, action string, h uiHandler) {
	s.route(pattern, action, false, func(q *request) error {
		s.uiPrepare(q)
		sess, err := s.uiAuthenticate(q)
		if err != nil {
			return err
		}
		if q.r.Method == http.MethodPost {
			if err := checkCSRF(q, sess.csrf); err != nil {
				return err
			}
		}
		q.page = func(e *httpError) { s.renderError(q, sess, e) }
		return h(q, sess)
	})
}

// uiPrepare sets the console's headers and error page on q.
func (s *Server) uiPrepare(q *request) {
	consoleHeaders(q.w)
	q.page = func(e *httpError) { s.renderError(q, nil, e) }
}

// uiAuthenticate finds the request's session and authenticates its token
// with authenticate, the API's own check. A session whose token Vault no
// longer accepts is ended.
func (s *Server) uiAuthenticate(q *request) (*uiSession, error) {
	c, _ := q.r.Cookie(sessionCookie)
	var sess *uiSession
	if c != nil {
		sess = s.console.sessions.get(c.Value)
	}
	if sess == nil {
		return nil, &httpError{status: http.StatusUnauthorized, msg: "log in to use the console"}
	}
	r := q.r.Clone(q.ctx)
	r.Header.Set("Authorization", "Bearer "+sess.token)
	u, err := s.authenticate(r)
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && he.status == http.StatusUnauthorized {
			s.console.sessions.remove(c.Value)
		}
		return nil, err
	}
	q.user = u
	return sess, nil
}

// checkCSRF compares the form's csrf field with want in constant time.
func checkCSRF(q *request, want string) error {
	q.r.Body = http.MaxBytesReader(q.w, q.r.Body, maxFormBytes)
	if err := q.r.ParseForm(); err != nil {
		return badRequest("bad form: %v", err)
	}
	got := q.r.PostForm.Get("csrf")
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errorf(http.StatusForbidden, "the form's security token is missing or wrong; reload the page and try again")
	}
	return nil
}

// consoleAPI calls the API handler for method and path with the session's
// token, as if the browser's address had sent it, and decodes its JSON
// answer into out. The API's refusal comes back as the same status,
// message and hint. The call is audited by the API's route like any other.
func (s *Server) consoleAPI(q *request, sess *uiSession, method, path string, body, out any) error {
	rec, err := s.consoleRaw(q, sess, method, path, body)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return internal("reading the API's answer", err)
	}
	return nil
}

// consoleRaw is consoleAPI returning the API's successful answer as it
// was written.
func (s *Server) consoleRaw(q *request, sess *uiSession, method, path string, body any) (*recorder, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	r, err := http.NewRequestWithContext(q.ctx, method, path, rd)
	if err != nil {
		return nil, err
	}
	r.RemoteAddr, r.TLS, r.Host = q.r.RemoteAddr, q.r.TLS, q.r.Host
	r.Header.Set("Authorization", "Bearer "+sess.token)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "dozo-console "+q.r.UserAgent())
	rec := &recorder{h: http.Header{}}
	s.mux.ServeHTTP(rec, r)
	if rec.status/100 != 2 {
		var e api.Error
		if err := json.Unmarshal(rec.body.Bytes(), &e); err != nil || e.Error == "" {
			return nil, &httpError{status: rec.status, msg: http.StatusText(rec.status)}
		}
		he := &httpError{status: rec.status, msg: e.Error, hint: e.Hint}
		if rec.h.Get("Retry-After") != "" {
			he.retryAfter = outageRetry
		}
		return nil, he
	}
	return rec, nil
}

// recorder is the ResponseWriter of an internal API call.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

// redirect answers with 303 See Other to a console path.
func (q *request) redirect(path string) error {
	q.status = http.StatusSeeOther
	q.w.Header().Set("Location", path)
	q.w.WriteHeader(http.StatusSeeOther)
	return nil
}

// localPath returns p if it is a console path on this host, else "/ui/":
// a redirect after login never leaves dozod.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/ui/") || strings.ContainsAny(p, "\\\r\n") || strings.HasPrefix(p, "//") {
		return "/ui/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return "/ui/"
	}
	return p
}

func seg(s string) string { return url.PathEscape(s) }

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// vaultLoginError is the message for a failed Vault login, as the CLI's.
func vaultLoginError(err error) *httpError {
	switch {
	case errors.Is(err, errNeedCode):
		return &httpError{status: http.StatusUnauthorized, msg: err.Error(), hint: "enter the code from your authenticator app"}
	case errors.Is(err, vault.ErrPermissionDenied):
		return &httpError{status: http.StatusUnauthorized, msg: "Vault refused the credentials", hint: "check the user name and password", cause: err}
	case errors.Is(err, vault.ErrUnavailable):
		return &httpError{status: http.StatusServiceUnavailable, msg: "Vault is unavailable; try again later", cause: err, retryAfter: outageRetry}
	}
	return &httpError{status: http.StatusBadRequest, msg: "login failed: " + err.Error()}
}

// formatSize is bytes for people: 1.5 GiB.
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	d, e := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		d *= unit
		e++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(d), "KMGTPE"[e])
}
