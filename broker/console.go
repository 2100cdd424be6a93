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
	"crypto/cipher"
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
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/vault"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
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

// sessionTouchEvery: a session's activity is written to the catalog at
// most this often, so a page view costs one read and not a write; the idle
// limit is kept to within this much.
const sessionTouchEvery = time.Minute

// sessionStore keeps sessions in the catalog, so every dozod replica behind
// one name knows them. A row is keyed by the SHA-256 of the cookie's id and
// holds the token and CSRF token sealed (XChaCha20-Poly1305) under a key
// derived from the id: the id itself is stored nowhere, so the catalog, a
// copy or a backup of it neither lets anyone take over a session nor
// yields a Vault token.
type sessionStore struct {
	cat *catalog.Catalog
	now func() time.Time
}

// sealedSession is what a row's sealed column opens to.
type sealedSession struct {
	Token string `json:"token"`
	CSRF  string `json:"csrf"`
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cookieSeal seals a console row (a session, a pending sign-in) under a
// key derived (HKDF-SHA256, with the row kind's label) from the browser's
// cookie id, which the catalog never holds. The associated data binds the
// sealed column to its row (the id's hash) and to bound, so a column
// copied to another row, or under another user, does not open.
type cookieSeal string

const (
	sessionSeal cookieSeal = "dozo/v1 console session"
	signInSeal  cookieSeal = "dozo/v1 console sign-in"
)

func (c cookieSeal) aead(id string) cipher.AEAD {
	key := make([]byte, chacha20poly1305.KeySize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, []byte(id), nil, []byte(c)), key); err != nil {
		panic(err) // HKDF-SHA256 gives far more than 32 bytes
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err)
	}
	return aead
}

func (c cookieSeal) ad(idHash []byte, bound string) []byte {
	return append(append([]byte(string(c)+"\x00"), idHash...), bound...)
}

// seal encodes v as JSON and seals it for the row of cookie id.
func (c cookieSeal) seal(id string, idHash []byte, bound string, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	aead := c.aead(id)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, c.ad(idHash, bound)), nil
}

// open opens a column seal made and decodes it into v; false if it was
// not sealed for this id, row and bound, or does not decode.
func (c cookieSeal) open(id string, idHash []byte, bound string, sealed []byte, v any) bool {
	aead := c.aead(id)
	if len(sealed) < aead.NonceSize() {
		return false
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], c.ad(idHash, bound))
	return err == nil && json.Unmarshal(plain, v) == nil
}

// validSessionID reports whether id has the shape create makes: a cookie
// of any other shape is not looked up.
func validSessionID(id string) bool {
	if len(id) != 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// create stores a new session for token and returns its cookie id.
func (st *sessionStore) create(ctx context.Context, token, user string) (string, *uiSession, error) {
	id := randomHex(32)
	now := st.now()
	sess := &uiSession{token: token, user: user, csrf: randomHex(32), created: now, seen: now}
	idHash := sha256.Sum256([]byte(id))
	sealed, err := sessionSeal.seal(id, idHash[:], user, sealedSession{Token: token, CSRF: sess.csrf})
	if err != nil {
		return "", nil, err
	}
	err = st.cat.CreateConsoleSession(ctx, catalog.ConsoleSession{IDHash: idHash[:], User: user, Sealed: sealed, CreatedAt: now, SeenAt: now},
		now.Add(-SessionIdle), now.Add(-SessionMax), maxSessions)
	if err != nil {
		return "", nil, err
	}
	return id, sess, nil
}

// get returns the live session with cookie id, counting this request as
// activity, or nil if there is none; an idle or too old session is
// removed. An error means the catalog could not answer: the caller fails
// closed.
func (st *sessionStore) get(ctx context.Context, id string) (*uiSession, error) {
	if !validSessionID(id) {
		return nil, nil
	}
	idHash := sha256.Sum256([]byte(id))
	row, err := st.cat.ConsoleSession(ctx, idHash[:])
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := st.now()
	sess := &uiSession{user: row.User, created: row.CreatedAt, seen: row.SeenAt}
	if !sess.live(now) {
		return nil, st.cat.DeleteConsoleSession(ctx, idHash[:])
	}
	var in sealedSession
	if !sessionSeal.open(id, idHash[:], row.User, row.Sealed, &in) {
		return nil, nil // not sealed for this id and user: no session
	}
	sess.token, sess.csrf = in.Token, in.CSRF
	if now.Sub(row.SeenAt) >= sessionTouchEvery {
		if err := st.cat.TouchConsoleSession(ctx, idHash[:], now); err != nil {
			return nil, err
		}
		sess.seen = now
	}
	return sess, nil
}

func (sess *uiSession) live(now time.Time) bool {
	return now.Sub(sess.seen) < SessionIdle && now.Sub(sess.created) < SessionMax
}

// remove ends the session with cookie id.
func (st *sessionStore) remove(ctx context.Context, id string) error {
	idHash := sha256.Sum256([]byte(id))
	return st.cat.DeleteConsoleSession(ctx, idHash[:])
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
	s.console.sessions = &sessionStore{cat: s.cat, now: s.now}
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

// startSession ends a console login: the new Vault token is authenticated
// exactly as an API bearer token, a session is stored for it and its
// cookie set. A token dozod does not accept (another mount, say), or one
// no session could be stored for, is of no use to anyone: it is revoked
// rather than left lying in Vault.
func (s *Server) startSession(q *request, tok string) error {
	r := q.r.Clone(q.ctx)
	r.Header.Set("Authorization", "Bearer "+tok)
	u, err := s.authenticate(r)
	if err != nil {
		s.console.revoke(q.ctx, tok)
		return err
	}
	q.user = u
	id, _, err := s.console.sessions.create(q.ctx, tok, u.Name)
	if err != nil {
		s.console.revoke(q.ctx, tok)
		return catalogUnavailable(err)
	}
	setCookie(q.w, sessionCookie, id, int(SessionMax/time.Second))
	return nil
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
		var err error
		if sess, err = s.console.sessions.get(q.ctx, c.Value); err != nil {
			return nil, catalogUnavailable(err)
		}
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
			if err := s.console.sessions.remove(q.ctx, c.Value); err != nil {
				s.log.Warn("console: removing a session Vault refused failed", "err", err)
			}
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
