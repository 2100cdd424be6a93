// Package vault is dozo's small client for HashiCorp Vault: the Transit
// engine, which holds every dataset key (keys never leave Vault), and the
// token and userpass endpoints Vault offers as dozo's identity provider.
//
// Every call fails closed: an unreachable or refusing Vault is an error,
// never a default.
package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/dozo-vault/dozo/internal/loopback"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
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
	Timeout      time.Duration // per request; default 30s
}

// Client wraps a Vault API client. It is safe for concurrent use.
type Client struct {
	api     *api.Client
	transit string
}

// New returns a client for cfg. It does not contact Vault.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("vault: no address configured (set VAULT_ADDR or the config's vault address)")
	}
	// A Vault token or password must never cross a network in clear text:
	// plain HTTP is for a Vault on this machine (the dev stack) only.
	u, err := url.Parse(cfg.Address)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("vault: bad address %q: want https://host:port", cfg.Address)
	}
	if u.Scheme == "http" {
		if !loopback.Host(u.Hostname()) {
			return nil, fmt.Errorf("vault: refusing plain HTTP to %s: tokens and passwords would travel unencrypted (use https://)", u.Host)
		}
	}
	ac := api.DefaultConfig()
	if ac.Error != nil {
		return nil, fmt.Errorf("vault: %w", ac.Error)
	}
	ac.Address = cfg.Address
	ac.Timeout = cfg.Timeout
	if ac.Timeout == 0 {
		ac.Timeout = 30 * time.Second
	}
	if cfg.CACert != "" {
		if err := ac.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert}); err != nil {
			return nil, fmt.Errorf("vault: TLS config: %w", err)
		}
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	// api.NewClient picks up VAULT_TOKEN from the environment; dozo wants
	// exactly the token it was given, so a missing token is never silently
	// replaced by an ambient one.
	c.SetToken(cfg.Token)
	mount := strings.Trim(cfg.TransitMount, "/")
	if mount == "" {
		mount = "transit"
	}
	return &Client{api: c, transit: mount}, nil
}

// WithToken returns a client that shares the connection settings but acts
// with token.
func (c *Client) WithToken(token string) (*Client, error) {
	nc, err := c.api.Clone()
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	nc.SetToken(token)
	return &Client{api: nc, transit: c.transit}, nil
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
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("vault %s: %w", path, err)
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
