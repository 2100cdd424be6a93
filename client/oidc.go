package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/dozo-vault/dozo/internal/loopback"
	"github.com/dozo-vault/dozo/vault"
)

// MethodOIDC is the login with Vault's OIDC auth method: a single sign-on
// at the centre's OpenID Provider, in a browser on any machine.
const MethodOIDC = "oidc"

// DefaultOIDCCallbackPort is where the OIDC login listens for the browser
// coming back, as Vault's own CLI does: the redirect URI Vault's role must
// allow is http://localhost:8250/oidc/callback.
const DefaultOIDCCallbackPort = 8250

// OIDCOptions say how to log in with Vault's OIDC auth method
// (auth/<mount>/oidc/auth_url, then auth/<mount>/oidc/callback).
type OIDCOptions struct {
	VaultAddr   string
	VaultCACert string
	Mount       string // default "oidc"
	Role        string // empty: the mount's default_role
	// CallbackPort is the loopback port the browser is sent back to
	// (http://localhost:<port>/oidc/callback); 0 means
	// DefaultOIDCCallbackPort.
	CallbackPort int
	// Pasted, if not nil, is read for the address the browser ended up at
	// (a line holding ".../oidc/callback?code=...&state=..."), for a
	// browser on another machine that cannot reach the listener.
	Pasted io.Reader
	// Show is given the URL to open in a browser, once.
	Show func(authURL string)
	// Timeout bounds the wait for the browser; 0 means 5 minutes.
	Timeout time.Duration
	// Page is the sentence the browser shows once the login has ended,
	// err nil if it succeeded; nil means CallbackPage.
	Page func(err error) string
}

// callbackResult is the query of one callback, and where to say how the
// login ended (nil for a pasted address).
type callbackResult struct {
	query url.Values
	done  chan error
}

// OIDCLogin logs in with Vault's OIDC auth method and returns the token.
//
// It asks Vault for the provider's authorization URL, passes it to Show,
// and waits for the provider to send the browser back with a code, either
// to a listener on 127.0.0.1 or as an address the user pastes. Vault then
// exchanges the code itself. The request carries a random client nonce
// that never leaves this process except to Vault, so a code and state
// seen by someone else (another user of a shared login node can reach the
// listener, and the URL is visible) cannot be turned into a token
// anywhere but here. A callback whose state is not this login's is
// ignored.
func OIDCLogin(ctx context.Context, o OIDCOptions) (string, error) {
	const op = "logging in with OIDC"
	vc, err := oidcVault(op, o.VaultAddr, o.VaultCACert)
	if err != nil {
		return "", err
	}
	mount := strings.Trim(o.Mount, "/")
	if mount == "" {
		mount = MethodOIDC
	}
	port := o.CallbackPort
	if port == 0 {
		port = DefaultOIDCCallbackPort
	}
	if port < 0 || port > 65535 {
		return "", hintError(op, "pass --callback-port 1-65535", fmt.Errorf("bad callback port %d", port))
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return "", hintError(op, "another program (or user) has the port; pass --callback-port with a port Vault's OIDC role allows",
			fmt.Errorf("cannot listen for the browser on 127.0.0.1:%d: %v", port, err))
	}
	defer ln.Close()
	// A browser may try "localhost" as ::1 first; listen there too when
	// the machine has IPv6 loopback (whoever else holds that port gets at
	// most a code it cannot redeem without the nonce).
	ln6, err6 := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
	if err6 == nil {
		defer ln6.Close()
	}
	redirect := fmt.Sprintf("http://localhost:%d/oidc/callback", port)

	nonce, err := randomHex(20)
	if err != nil {
		return "", opError(op, err)
	}
	s, err := vc.API().Logical().WriteWithContext(ctx, "auth/"+mount+"/oidc/auth_url", map[string]any{
		"role": o.Role, "redirect_uri": redirect, "client_nonce": nonce,
	})
	if err != nil {
		return "", vaultLoginError(op, err)
	}
	authURL, _ := s.Data["auth_url"].(string)
	if authURL == "" {
		// Vault answers an unusable role or redirect URI with an empty URL
		// and the reason in its log only.
		return "", hintError(op, fmt.Sprintf("ask the Vault administrator to allow %s in the OIDC role's allowed_redirect_uris, or pass --role / --callback-port", redirect),
			fmt.Errorf("Vault gave no authorization URL for role %q on auth/%s", o.Role, mount))
	}
	state, err := queryParam(authURL, "state")
	if err != nil {
		return "", opError(op, fmt.Errorf("Vault's authorization URL: %v", err))
	}

	results := make(chan callbackResult)
	finished := make(chan struct{}) // closed when the login has its answer
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/oidc/callback" {
				http.NotFound(w, r)
				return
			}
			q := r.URL.Query()
			if q.Get("state") != state {
				http.Error(w, "This is not the login dozo is waiting for.", http.StatusBadRequest)
				return
			}
			done := make(chan error, 1)
			select {
			case results <- callbackResult{query: q, done: done}:
				writeCallbackPage(w, <-done, o.Page)
			case <-finished:
				http.Error(w, "This login is already over.", http.StatusGone)
			case <-r.Context().Done():
			}
		}),
	}
	go srv.Serve(ln)
	if err6 == nil {
		go srv.Serve(ln6)
	}
	defer func() {
		close(finished)
		// Let the browser's page say how the login ended before closing.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if o.Pasted != nil {
		go readPasted(ctx, o.Pasted, state, results)
	}
	if o.Show != nil {
		o.Show(authURL)
	}

	var res callbackResult
	select {
	case res = <-results:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", hintError(op, "run dozo login again and finish in the browser sooner, or raise --timeout",
				fmt.Errorf("no answer from the browser within %s", timeout))
		}
		return "", opError(op, ctx.Err())
	}
	tok, err := oidcCallback(ctx, vc, mount, res.query, nonce)
	if res.done != nil {
		res.done <- err
	}
	if err != nil {
		return "", opError(op, err)
	}
	return tok, nil
}

// oidcCallback hands the provider's answer to Vault, which exchanges the
// code and returns the token.
func oidcCallback(ctx context.Context, vc *vault.Client, mount string, q url.Values, nonce string) (string, error) {
	if e := q.Get("error"); e != "" {
		msg := "the OpenID Provider refused the login: " + e
		if d := q.Get("error_description"); d != "" {
			msg += " (" + d + ")"
		}
		return "", errors.New(msg)
	}
	if q.Get("code") == "" {
		return "", errors.New("the OpenID Provider sent no code")
	}
	s, err := vc.API().Logical().ReadWithDataWithContext(ctx, "auth/"+mount+"/oidc/callback", map[string][]string{
		"state": {q.Get("state")}, "code": {q.Get("code")}, "client_nonce": {nonce},
	})
	if err != nil {
		return "", vaultLoginError("", err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", errors.New("Vault returned no token")
	}
	return s.Auth.ClientToken, nil
}

// readPasted sends each pasted address that carries this login's state.
func readPasted(ctx context.Context, r io.Reader, state string, results chan<- callbackResult) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		u, err := url.Parse(line)
		if err != nil || u.Query().Get("state") != state {
			continue
		}
		select {
		case results <- callbackResult{query: u.Query()}:
			return
		case <-ctx.Done():
			return
		}
	}
}

// CallbackPage is the sentence the browser shows once an OIDC login has
// ended, in English: done, or why not.
func CallbackPage(err error) string {
	if err != nil {
		return "The dozo login failed: " + err.Error()
	}
	return "Logged in to dozo. You can close this window."
}

// writeCallbackPage answers the browser with page(err), escaped.
func writeCallbackPage(w http.ResponseWriter, err error, page func(error) string) {
	if page == nil {
		page = CallbackPage
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
	}
	fmt.Fprintf(w, "<!DOCTYPE html><html><head><title>dozo login</title></head><body><p>%s</p></body></html>\n", html.EscapeString(page(err)))
}

// OIDCDeviceOptions say how to log in with the OAuth 2.0 device
// authorization grant (RFC 8628) at an OpenID Provider, then with the ID
// token at a Vault JWT auth mount that trusts that provider.
type OIDCDeviceOptions struct {
	VaultAddr    string
	VaultCACert  string
	Mount        string // the JWT auth mount; default "jwt"
	Role         string // empty: the mount's default_role
	Issuer       string // the provider's issuer URL
	ClientID     string
	ClientSecret string // empty for a public client
	// Show is given the page to open on any device, the code to enter
	// there, and (if the provider offers one) a page with the code filled in.
	Show func(verificationURI, userCode, verificationURIComplete string)
	// Timeout bounds the wait; 0 means the code's own lifetime.
	Timeout time.Duration
	// HTTPClient talks to the provider; nil means a default with a timeout.
	HTTPClient *http.Client
}

// OIDCDeviceLogin logs in without a browser on this machine: the user opens
// a short URL on any device and types a code there. The provider's ID
// token goes to Vault only, which checks its signature, issuer and
// audience and returns a Vault token; neither token is written anywhere.
func OIDCDeviceLogin(ctx context.Context, o OIDCDeviceOptions) (string, error) {
	const op = "logging in with the OIDC device flow"
	vc, err := oidcVault(op, o.VaultAddr, o.VaultCACert)
	if err != nil {
		return "", err
	}
	if o.Issuer == "" || o.ClientID == "" {
		return "", hintError(op, "pass --oidc-issuer and --oidc-client-id (or set DOZO_OIDC_ISSUER and DOZO_OIDC_CLIENT_ID)",
			errors.New("no OpenID Provider configured"))
	}
	mount := strings.Trim(o.Mount, "/")
	if mount == "" {
		mount = "jwt"
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	disc, err := discover(ctx, hc, o.Issuer)
	if err != nil {
		return "", opError(op, err)
	}
	if disc.DeviceEndpoint == "" {
		return "", hintError(op, "log in with a browser (dozo login --method oidc without --device)",
			fmt.Errorf("the OpenID Provider %s does not offer the device authorization grant", o.Issuer))
	}
	var da struct {
		DeviceCode              string `json:"device_code"`
		UserCode                string `json:"user_code"`
		VerificationURI         string `json:"verification_uri"`
		VerificationURIComplete string `json:"verification_uri_complete"`
		ExpiresIn               int    `json:"expires_in"`
		Interval                int    `json:"interval"`
	}
	if err := o.post(ctx, hc, disc.DeviceEndpoint, url.Values{"scope": {"openid"}}, &da); err != nil {
		return "", opError(op, fmt.Errorf("asking for a device code: %w", err))
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return "", opError(op, errors.New("the OpenID Provider's device authorization answer lacks a code or URL"))
	}
	timeout := o.Timeout
	if timeout <= 0 && da.ExpiresIn > 0 {
		timeout = time.Duration(da.ExpiresIn) * time.Second
	}
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if o.Show != nil {
		o.Show(da.VerificationURI, da.UserCode, da.VerificationURIComplete)
	}
	interval := time.Duration(max(da.Interval, 1)) * time.Second
	var idToken string
	for idToken == "" {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return "", hintError(op, "run dozo login again and enter the code in time",
					fmt.Errorf("the code was not confirmed within %s", timeout))
			}
			return "", opError(op, ctx.Err())
		case <-time.After(interval):
		}
		var tr struct {
			IDToken string `json:"id_token"`
		}
		err := o.post(ctx, hc, disc.TokenEndpoint, url.Values{
			"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da.DeviceCode},
		}, &tr)
		var pe *providerError
		switch {
		case errors.As(err, &pe) && pe.Code == "authorization_pending":
		case errors.As(err, &pe) && pe.Code == "slow_down":
			interval += 5 * time.Second
		case errors.As(err, &pe) && pe.Code == "access_denied":
			return "", opError(op, errors.New("the login was denied at the OpenID Provider"))
		case errors.As(err, &pe) && pe.Code == "expired_token":
			return "", hintError(op, "run dozo login again and enter the code in time", errors.New("the code expired"))
		case err != nil:
			return "", opError(op, fmt.Errorf("waiting for the login: %w", err))
		case tr.IDToken == "":
			return "", opError(op, errors.New("the OpenID Provider returned no ID token (is the openid scope allowed for the client?)"))
		default:
			idToken = tr.IDToken
		}
	}
	s, err := vc.API().Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"role": o.Role, "jwt": idToken})
	if err != nil {
		return "", vaultLoginError(op, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", opError(op, errors.New("Vault returned no token"))
	}
	return s.Auth.ClientToken, nil
}

type discovery struct {
	Issuer         string `json:"issuer"`
	TokenEndpoint  string `json:"token_endpoint"`
	DeviceEndpoint string `json:"device_authorization_endpoint"`
}

// discover reads the provider's metadata; its issuer must be the one
// asked for (OpenID Connect Discovery 1.0, section 4.3), and every
// endpoint must keep the transport rule.
func discover(ctx context.Context, hc *http.Client, issuer string) (*discovery, error) {
	if err := checkProviderURL(issuer); err != nil {
		return nil, err
	}
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("OpenID Provider unreachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("OpenID Provider discovery %s: HTTP %d", u, resp.StatusCode)
	}
	var d discovery
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d); err != nil {
		return nil, fmt.Errorf("OpenID Provider discovery %s: %v", u, err)
	}
	if strings.TrimSuffix(d.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
		return nil, fmt.Errorf("OpenID Provider discovery %s names issuer %q, not %q", u, d.Issuer, issuer)
	}
	for _, e := range []string{d.TokenEndpoint, d.DeviceEndpoint} {
		if e == "" {
			continue
		}
		if err := checkProviderURL(e); err != nil {
			return nil, err
		}
	}
	if d.TokenEndpoint == "" {
		return nil, fmt.Errorf("OpenID Provider discovery %s names no token endpoint", u)
	}
	return &d, nil
}

// checkProviderURL keeps the rule Vault addresses follow: https, or plain
// HTTP to this machine only, since codes and tokens travel on it.
func checkProviderURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("bad OpenID Provider URL %q: want https://host/...", s)
	}
	if u.Scheme == "http" && !loopback.Host(u.Hostname()) {
		return fmt.Errorf("refusing plain HTTP to the OpenID Provider at %s (use https://)", u.Host)
	}
	return nil
}

// providerError is an OAuth 2.0 error answer (RFC 6749, section 5.2).
type providerError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *providerError) Error() string {
	if e.Description != "" {
		return e.Code + ": " + e.Description
	}
	return e.Code
}

// post sends a form to a provider endpoint with the client's credentials
// and decodes a JSON answer into out, or an OAuth error.
func (o OIDCDeviceOptions) post(ctx context.Context, hc *http.Client, endpoint string, form url.Values, out any) error {
	if o.ClientSecret == "" {
		// A public client names itself; a confidential one authenticates
		// with HTTP Basic only (RFC 6749, section 2.3.1).
		form.Set("client_id", o.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if o.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(o.ClientSecret))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var pe providerError
		if json.Unmarshal(body, &pe) == nil && pe.Code != "" {
			return &pe
		}
		return fmt.Errorf("%s: HTTP %d", endpoint, resp.StatusCode)
	}
	return json.Unmarshal(body, out)
}

func oidcVault(op, addr, caCert string) (*vault.Client, error) {
	if addr == "" {
		return nil, hintError(op, "pass --vault-addr or set VAULT_ADDR", errors.New("no Vault address"))
	}
	vc, err := vault.New(vault.Config{Address: addr, CACert: caCert, Timeout: 30 * time.Second})
	if err != nil {
		return nil, opError(op, err)
	}
	return vc, nil
}

// vaultLoginError words Vault's refusal of a login step; op "" leaves the
// error unwrapped.
func vaultLoginError(op string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) && len(re.Errors) > 0 {
		err = fmt.Errorf("Vault refused the login: %s", strings.Join(re.Errors, "; "))
		if re.StatusCode >= 500 {
			err = fmt.Errorf("Vault failed: %s", strings.Join(re.Errors, "; "))
		}
	} else if !errors.As(err, &re) {
		err = fmt.Errorf("%w: %v", vault.ErrUnavailable, err)
	}
	if op == "" {
		return err
	}
	return opError(op, err)
}

func queryParam(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	v := u.Query().Get(name)
	if v == "" {
		return "", fmt.Errorf("no %s parameter", name)
	}
	return v, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
