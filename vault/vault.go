// Package vault is dozo's small client for HashiCorp Vault: the Transit
// engine, which holds every dataset key (keys never leave Vault), and the
// token and userpass endpoints Vault offers as dozo's identity provider.
//
// Every call fails closed: an unreachable or refusing Vault is an error,
// never a default.
package vault

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/dozo-vault/dozo/internal/loopback"
)

// Errors callers branch on. They are wrapped with the Vault path and status.
var (
	// ErrNotFound: the key, token or path does not exist.
	ErrNotFound = errors.New("not found in vault")
	// ErrPermissionDenied: Vault refused the token (bad, expired or lacking policy).
	ErrPermissionDenied = errors.New("vault permission denied")
	// ErrUnavailable: Vault could not be reached or is sealed.
	ErrUnavailable = errors.New("vault unavailable")
)

// Config says how to reach Vault. Token is a secret: it is never logged or
// returned by String methods.
type Config struct {
	Address      string        // e.g. https://127.0.0.1:8200
	Token        string        // the caller's Vault token
	TransitMount string        // default "transit"
	CACert       string        // PEM file for a private CA; empty uses the system pool
	Timeout      time.Duration // per request, retries included; default DefaultTimeout
}

// DefaultTimeout bounds one Vault request (with its retries) when Config
// sets none. dozod sets its own, shorter one ([vault] timeout), so that a
// request waiting on a Vault that stopped answering fails within it.
const DefaultTimeout = 30 * time.Second

// Client wraps a Vault API client. It is safe for concurrent use.
type Client struct {
	api     *api.Client
	transit string
	conn    conn
}

// conn is what every client derived from one New shares: the checked
// address, the HTTP client (its connection pool and TLS settings) and the
// timeout.
type conn struct {
	address string
	http    *http.Client
	timeout time.Duration
}

// New returns a client for cfg. It does not contact Vault.
//
// New is the one way dozo makes a Vault client, and it keeps one rule: a
// token or password goes only to cfg.Address, over TLS with certificate
// verification, or in plain HTTP to a loopback address. New itself reads
// none of Vault's environment variables (VAULT_AGENT_ADDR,
// VAULT_SKIP_VERIFY, VAULT_HTTP_PROXY, VAULT_NAMESPACE, VAULT_HEADERS,
// VAULT_TOKEN ...; a caller may take cfg.Address from VAULT_ADDR, and it
// is checked like any other): each could send the token somewhere other
// than the address checked here, or turn the checks off. The finished
// client is checked again before it is returned.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("vault: no address configured (set VAULT_ADDR or the config's vault address)")
	}
	if err := checkAddress(cfg.Address); err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	cn := conn{address: cfg.Address, http: newHTTPClient(), timeout: timeout}
	if cfg.CACert != "" {
		// ConfigureTLS changes the shared transport's TLS settings in place.
		ac := &api.Config{HttpClient: cn.http}
		if err := ac.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert}); err != nil {
			return nil, fmt.Errorf("vault: TLS config: %w", err)
		}
	}
	c, err := cn.client(cfg.Token)
	if err != nil {
		return nil, err
	}
	mount := strings.Trim(cfg.TransitMount, "/")
	if mount == "" {
		mount = "transit"
	}
	return &Client{api: c, transit: mount, conn: cn}, nil
}

// checkAddress keeps the transport rule for an address: https, or plain
// HTTP only to this machine, so that a Vault token or password never
// crosses a network in clear text.
func checkAddress(addr string) error {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("vault: bad address %q: want https://host:port", addr)
	}
	if u.Scheme == "http" && !loopback.Host(u.Hostname()) {
		return fmt.Errorf("vault: refusing plain HTTP to %s: tokens and passwords would travel unencrypted (use https://)", u.Host)
	}
	return nil
}

// newHTTPClient is api.DefaultConfig's HTTP client without the
// environment: TLS 1.2 or later with certificate verification, proxies
// only from the standard HTTPS_PROXY/NO_PROXY variables (never for a
// loopback address), and redirects left to the Vault client.
func newHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   runtime.GOMAXPROCS(0) + 1,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// client makes an API client on cn acting with token, and checks it.
func (cn conn) client(token string) (*api.Client, error) {
	ac := &api.Config{
		Address:      cn.address,
		HttpClient:   cn.http,
		Timeout:      cn.timeout,
		MinRetryWait: time.Second,
		MaxRetryWait: 1500 * time.Millisecond,
		MaxRetries:   2,
		// A Vault on this machine answering with a redirect must not send
		// the token elsewhere in clear text; over https the Vault client
		// itself refuses a downgrade.
		DisableRedirects: strings.HasPrefix(cn.address, "http:"),
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	// api.NewClient applies VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS
	// from the environment: dozo wants exactly the token it was given (a
	// missing one is never replaced by an ambient one), the root
	// namespace, and no extra headers.
	c.SetToken(token)
	c.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	if err := checkTransport(c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkTransport checks a finished API client against the transport rule:
// the address it sends to, certificate verification, no namespace.
func checkTransport(c *api.Client) error {
	if err := checkAddress(c.Address()); err != nil {
		return err
	}
	cc := c.CloneConfig()
	tr, ok := cc.HttpClient.Transport.(*http.Transport)
	if !ok || tr.TLSClientConfig == nil || tr.TLSClientConfig.InsecureSkipVerify {
		return errors.New("vault: TLS certificate verification is off; refusing to send a token")
	}
	if cc.AgentAddress != "" {
		return errors.New("vault: an agent address would replace the checked Vault address")
	}
	if ns := c.Namespace(); ns != "" {
		return fmt.Errorf("vault: unexpected namespace %q", ns)
	}
	return nil
}

// WithToken returns a client that shares the connection settings but acts
// with token.
func (c *Client) WithToken(token string) (*Client, error) {
	nc, err := c.conn.client(token)
	if err != nil {
		return nil, err
	}
	return &Client{api: nc, transit: c.transit, conn: c.conn}, nil
}

// Address is the Vault server this client talks to.
func (c *Client) Address() string { return c.api.Address() }

// API exposes the underlying client for administrative set-up (policies,
// auth methods) in tools and tests.
func (c *Client) API() *api.Client { return c.api }

var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidKeyName reports whether name is safe to place in a Vault path.
func ValidKeyName(name string) error {
	if !keyNameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("vault: invalid key name %q", name)
	}
	return nil
}

func (c *Client) path(op, name string) (string, error) {
	if err := ValidKeyName(name); err != nil {
		return "", err
	}
	return c.transit + "/" + op + "/" + name, nil
}

func (c *Client) write(ctx context.Context, path string, data map[string]any) (*api.Secret, error) {
	s, err := c.api.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return nil, classify(path, err)
	}
	return s, nil
}

// classify maps Vault's errors onto dozo's sentinel errors, keeping Vault's
// message (which never contains the request body) for the operator.
func classify(path string, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("vault %s: %w", path, ErrNotFound)
		case http.StatusForbidden, http.StatusUnauthorized:
			return fmt.Errorf("vault %s: %w", path, ErrPermissionDenied)
		case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
			return fmt.Errorf("vault %s: %w (HTTP %d)", path, ErrUnavailable, re.StatusCode)
		}
		return fmt.Errorf("vault %s: HTTP %d: %s", path, re.StatusCode, strings.Join(re.Errors, "; "))
	}
	if errors.Is(err, context.Canceled) {
		// The caller gave up: not Vault's fault.
		return fmt.Errorf("vault %s: %w", path, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// No answer in time: a stopped or hung Vault looks like this, and
		// fails closed the same way as a refused connection.
		return fmt.Errorf("vault %s: %w: no answer in time (%w)", path, ErrUnavailable, err)
	}
	return fmt.Errorf("vault %s: %w: %v", path, ErrUnavailable, err)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func stringField(s *api.Secret, field string) (string, error) {
	if s == nil || s.Data == nil {
		return "", fmt.Errorf("vault: empty response, want %q", field)
	}
	v, ok := s.Data[field].(string)
	if !ok || v == "" {
		return "", fmt.Errorf("vault: response lacks %q", field)
	}
	return v, nil
}

// Health asks Vault whether it can serve dozo's requests (sys/health,
// which needs no token): nil when it is initialised and unsealed,
// ErrUnavailable when it is sealed or uninitialised, or does not answer
// within the client's timeout.
func (c *Client) Health(ctx context.Context) error {
	h, err := c.api.Sys().HealthWithContext(ctx)
	if err != nil {
		return classify("sys/health", err)
	}
	switch {
	case !h.Initialized:
		return fmt.Errorf("vault sys/health: %w: not initialised", ErrUnavailable)
	case h.Sealed:
		return fmt.Errorf("vault sys/health: %w: sealed", ErrUnavailable)
	}
	return nil
}
