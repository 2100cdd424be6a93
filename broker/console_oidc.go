package broker

// Single sign-on on the console: Vault's OIDC auth method, with dozod as
// the party the provider sends the browser back to.
//
// The login page's "single sign-on" link is GET /ui/login/oidc, a link
// rather than a form because a browser holds a form post's redirects to
// the page's CSP form-action ('self'), and the provider is elsewhere.
// Starting a sign-in needs no CSRF token: it only sends this browser to
// the provider, where the person decides; the callback is what is
// guarded. dozod asks Vault for the
// provider's authorization URL with its own callback,
// <public_url>/ui/login/oidc/callback, and a random client nonce, keeps
// the nonce and Vault's state in the catalog under the SHA-256 of a fresh
// random id, sealed with a key derived from that id (so any replica can
// take the callback), and sends that id to the browser in a short-lived
// cookie.
// On the callback the cookie must name a pending sign-in whose state is
// the callback's; only then is the pending sign-in used up and the code
// given to Vault with the nonce, which never leaves dozod except to
// Vault (the catalog holds it sealed). So a code and state seen by anyone
// else (the URL is in the provider's logs and the browser's history)
// cannot be turned into a session anywhere, and a callback forged into
// another browser finds no pending sign-in of its own.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/catalog"
)

const (
	// oidcCookie holds the id of a pending sign-in. It is SameSite=Lax,
	// not Strict: the provider's redirect back to dozod is a navigation
	// from another site, on which a browser sends no Strict cookie.
	oidcCookie = "__Host-dozo-oidc"
	// oidcPendingTTL bounds the time between the button and the callback.
	oidcPendingTTL = 10 * time.Minute
	// maxPendingOIDC bounds the pending sign-ins kept (catalog rows); beyond
	// it the oldest go.
	maxPendingOIDC = 10000
	// oidcCallbackPath is dozod's redirect URI, under the public URL.
	oidcCallbackPath = "/ui/login/oidc/callback"
)

// pendingOIDC is one sign-in between the button and the callback.
type pendingOIDC struct {
	state, nonce, next string
	created            time.Time
}

// sealedSignIn is what a pending sign-in's sealed column opens to.
type sealedSignIn struct {
	State string `json:"state"`
	Nonce string `json:"nonce"`
	Next  string `json:"next"`
}

// oidcLogins keeps pending sign-ins in the catalog, so the provider's
// callback may reach any dozod replica, not only the one that began the
// sign-in. A row is keyed by the SHA-256 of the cookie's id, so the
// store's keys do not let anyone complete someone else's sign-in, and
// holds the state, nonce and next page sealed (XChaCha20-Poly1305) under
// a key derived from the id: the catalog, a copy or a backup of it yields
// no nonce and names no cookie.
type oidcLogins struct {
	cat *catalog.Catalog
	now func() time.Time
}

// start stores a pending sign-in and returns its cookie id.
func (o *oidcLogins) start(ctx context.Context, state, nonce, next string) (string, error) {
	id := randomHex(32)
	now := o.now()
	idHash := sha256.Sum256([]byte(id))
	sealed, err := signInSeal.seal(id, idHash[:], "", sealedSignIn{State: state, Nonce: nonce, Next: next})
	if err != nil {
		return "", err
	}
	err = o.cat.CreatePendingSignIn(ctx, catalog.PendingSignIn{IDHash: idHash[:], Sealed: sealed, CreatedAt: now},
		now.Add(-oidcPendingTTL), maxPendingOIDC)
	if err != nil {
		return "", err
	}
	return id, nil
}

// errNoPendingOIDC, errOIDCState: why a callback is refused.
var (
	errNoPendingOIDC = errors.New("this sign-in was not started in this browser, was already used, or took too long")
	errOIDCState     = errors.New("the provider's answer is not for this browser's sign-in")
)

// take returns the pending sign-in with cookie id if its state is state,
// and removes it: each is used at most once, whichever dozods its
// callbacks reach (the catalog's delete decides). A wrong state changes
// nothing, so a forged callback cannot cancel a person's sign-in. Any
// other error means the catalog could not answer: the caller fails
// closed.
func (o *oidcLogins) take(ctx context.Context, id, state string) (*pendingOIDC, error) {
	if !validSessionID(id) {
		return nil, errNoPendingOIDC
	}
	idHash := sha256.Sum256([]byte(id))
	row, err := o.cat.PendingSignIn(ctx, idHash[:])
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, errNoPendingOIDC
	}
	if err != nil {
		return nil, err
	}
	if o.now().Sub(row.CreatedAt) >= oidcPendingTTL {
		if _, err := o.cat.TakePendingSignIn(ctx, idHash[:]); err != nil {
			return nil, err
		}
		return nil, errNoPendingOIDC
	}
	var in sealedSignIn
	if !signInSeal.open(id, idHash[:], "", row.Sealed, &in) {
		return nil, errNoPendingOIDC // not sealed for this id
	}
	if state == "" || subtle.ConstantTimeCompare([]byte(state), []byte(in.State)) != 1 {
		return nil, errOIDCState
	}
	taken, err := o.cat.TakePendingSignIn(ctx, idHash[:])
	if err != nil {
		return nil, err
	}
	if !taken { // another callback with this cookie came first
		return nil, errNoPendingOIDC
	}
	return &pendingOIDC{state: in.State, nonce: in.Nonce, next: in.Next, created: row.CreatedAt}, nil
}

// consoleOIDC is how the console reaches Vault's OIDC auth method; tests
// replace authURL and callback.
type consoleOIDC struct {
	mount, role string
	publicURL   string // "https://host[:port]"; empty: from the request
	logins      *oidcLogins
	// authURL asks Vault for the provider's authorization URL.
	authURL func(ctx context.Context, mount, role, redirect, nonce string) (string, error)
	// callback completes the login on Vault and returns its token.
	callback func(ctx context.Context, mount, state, code, nonce string) (string, error)
}

// ConfigureConsole applies the [console] section: the OIDC mount and role
// of the single sign-on, and dozod's public URL. An empty mount keeps the
// default (the "oidc" mount when [auth] accepts its logins).
func (s *Server) ConfigureConsole(c ConsoleConfig) {
	if c.OIDCMount != "" {
		s.console.oidc.mount = strings.Trim(c.OIDCMount, "/")
	}
	s.console.oidc.role = c.OIDCRole
	s.console.oidc.publicURL = strings.TrimRight(c.PublicURL, "/")
}

// initConsoleOIDC sets the defaults: single sign-on on the "oidc" mount
// when dozod accepts its logins, through dozod's Vault identifier.
func (s *Server) initConsoleOIDC() {
	o := &s.console.oidc
	o.logins = &oidcLogins{cat: s.cat, now: s.now}
	o.authURL = func(context.Context, string, string, string, string) (string, error) {
		return "", errors.New("single sign-on needs dozod's Vault identifier")
	}
	o.callback = func(context.Context, string, string, string, string) (string, error) {
		return "", errors.New("single sign-on needs dozod's Vault identifier")
	}
	vi, ok := s.ident.(*VaultIdentifier)
	if !ok {
		return
	}
	for _, m := range vi.mounts {
		if m == "oidc" {
			o.mount = m
		}
	}
	o.authURL = func(ctx context.Context, mount, role, redirect, nonce string) (string, error) {
		vc, err := vi.vc.WithToken("")
		if err != nil {
			return "", err
		}
		sec, err := vc.API().Logical().WriteWithContext(ctx, "auth/"+mount+"/oidc/auth_url", map[string]any{
			"role": role, "redirect_uri": redirect, "client_nonce": nonce,
		})
		if err != nil {
			return "", err
		}
		if sec == nil {
			return "", nil
		}
		u, _ := sec.Data["auth_url"].(string)
		return u, nil
	}
	o.callback = func(ctx context.Context, mount, state, code, nonce string) (string, error) {
		vc, err := vi.vc.WithToken("")
		if err != nil {
			return "", err
		}
		sec, err := vc.API().Logical().ReadWithDataWithContext(ctx, "auth/"+mount+"/oidc/callback", map[string][]string{
			"state": {state}, "code": {code}, "client_nonce": {nonce},
		})
		if err != nil {
			return "", err
		}
		if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
			return "", errors.New("Vault's OIDC callback returned no token")
		}
		return sec.Auth.ClientToken, nil
	}
}

// oidcRedirect is dozod's redirect URI for a request: the configured
// public URL, or the host the browser asked for.
func (s *Server) oidcRedirect(r *http.Request) string {
	if s.console.oidc.publicURL != "" {
		return s.console.oidc.publicURL + oidcCallbackPath
	}
	return "https://" + r.Host + oidcCallbackPath
}

// uiOIDCStart answers the login page's single sign-on link: it asks
// Vault for the provider's URL, keeps the state and nonce, and sends the
// browser to the provider.
func (s *Server) uiOIDCStart(q *request) error {
	s.uiPrepare(q)
	next := q.r.URL.Query().Get("next")
	o := &s.console.oidc
	if o.mount == "" {
		return badRequest("single sign-on is not set up on this dozod")
	}
	nonce := randomHex(20)
	redirect := s.oidcRedirect(q.r)
	authURL, err := o.authURL(q.ctx, o.mount, o.role, redirect, nonce)
	if err != nil {
		return vaultLoginError(err)
	}
	if authURL == "" {
		// Vault answers an unusable role or redirect URI with an empty
		// URL and the reason in its own log only.
		return &httpError{status: http.StatusBadGateway, msg: "Vault gave no sign-on address",
			hint: fmt.Sprintf("ask the Vault administrator to allow %s in the OIDC role's allowed_redirect_uris", redirect)}
	}
	u, err := url.Parse(authURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Query().Get("state") == "" {
		return &httpError{status: http.StatusBadGateway, msg: "Vault's sign-on address is not usable"}
	}
	id, err := o.logins.start(q.ctx, u.Query().Get("state"), nonce, localPath(next))
	if err != nil {
		return catalogUnavailable(err)
	}
	http.SetCookie(q.w, &http.Cookie{Name: oidcCookie, Value: id, Path: "/", MaxAge: int(oidcPendingTTL / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	q.status = http.StatusSeeOther
	q.w.Header().Set("Location", authURL)
	q.w.WriteHeader(http.StatusSeeOther)
	return nil
}

// uiOIDCCallback completes a single sign-on: the browser must bring the
// cookie of a pending sign-in with the same state. The token Vault gives
// is checked with authenticate, as any API token; one dozod does not
// accept is revoked. A refused callback changes nothing.
func (s *Server) uiOIDCCallback(q *request) error {
	s.uiPrepare(q)
	q.object = "console"
	qs := q.r.URL.Query()
	var id string
	if c, _ := q.r.Cookie(oidcCookie); c != nil {
		id = c.Value
	}
	p, err := s.console.oidc.logins.take(q.ctx, id, qs.Get("state"))
	if err != nil && !errors.Is(err, errNoPendingOIDC) && !errors.Is(err, errOIDCState) {
		return catalogUnavailable(err)
	}
	if err != nil {
		return &httpError{status: http.StatusBadRequest, msg: "single sign-on refused: " + err.Error(), hint: "sign in again from the login page"}
	}
	http.SetCookie(q.w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	if e := qs.Get("error"); e != "" {
		return &httpError{status: http.StatusUnauthorized, msg: "the provider refused the sign-in: " + trimText(e, 100), hint: "sign in again from the login page"}
	}
	code := qs.Get("code")
	if code == "" {
		return badRequest("the provider's answer has no code")
	}
	tok, err := s.console.oidc.callback(q.ctx, s.console.oidc.mount, qs.Get("state"), code, p.nonce)
	if err != nil {
		return vaultLoginError(err)
	}
	if err := s.startSession(q, tok); err != nil {
		return err
	}
	// The browser came here from the provider's site, so it would not
	// send the new SameSite=Strict session cookie on a redirect; a page
	// of dozod's own that moves on is a navigation from dozod.
	q.status = http.StatusOK
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.WriteHeader(http.StatusOK)
	return oidcDoneTemplate.Execute(q.w, struct{ Next, Lang string }{p.next, uiLang(q.r)})
}

var oidcDoneTemplate = template.Must(template.New("oidc-done").Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={{.Next}}">
<title>dozo</title></head><body><p><a id="continue" href="{{.Next}}">Continue</a></p></body></html>
`))

// trimText bounds s (from a query) for a message.
func trimText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
