package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/hashicorp/vault/api"
)

// TokenInfo is what dozo needs to know about a caller's token. It never
// carries the token itself.
type TokenInfo struct {
	Accessor    string
	EntityID    string
	DisplayName string // e.g. "userpass-alice"
	Path        string // auth path the token came from, e.g. "auth/userpass/login/alice"
	Namespace   string // Vault namespace path; empty for the root namespace
	// Username is the token's metadata "username". Whoever creates a token
	// (auth/token/create) chooses its metadata: it is no proof of identity.
	Username   string
	Policies   []string
	ExpireTime time.Time // zero for non-expiring tokens
}

// LookupSelf describes the client's own token. A bad or expired token is
// ErrPermissionDenied.
func (c *Client) LookupSelf(ctx context.Context) (*TokenInfo, error) {
	s, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, classify("auth/token/lookup-self", err)
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("vault auth/token/lookup-self: %w", ErrPermissionDenied)
	}
	ti := &TokenInfo{}
	ti.Accessor, _ = s.Data["accessor"].(string)
	ti.EntityID, _ = s.Data["entity_id"].(string)
	ti.DisplayName, _ = s.Data["display_name"].(string)
	ti.Path, _ = s.Data["path"].(string)
	ti.Namespace, _ = s.Data["namespace_path"].(string)
	if meta, ok := s.Data["meta"].(map[string]any); ok {
		ti.Username, _ = meta["username"].(string)
	}
	if ps, ok := s.Data["policies"].([]any); ok {
		for _, p := range ps {
			if ps, ok := p.(string); ok {
				ti.Policies = append(ti.Policies, ps)
			}
		}
	}
	if et, ok := s.Data["expire_time"].(string); ok && et != "" {
		if t, err := time.Parse(time.RFC3339Nano, et); err == nil {
			ti.ExpireTime = t
		}
	}
	return ti, nil
}

// EntityAlias is one of a Vault identity entity's aliases: the name one
// auth mount knows the entity (the person) by.
type EntityAlias struct {
	Name          string // e.g. "alice"
	MountPath     string // e.g. "auth/userpass/"
	MountAccessor string // e.g. "auth_userpass_1a2b3c4d"
}

var entityIDRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidUsername reports whether u is an acceptable dozo/Vault user name.
func ValidUsername(u string) error {
	if !usernameRE.MatchString(u) {
		return fmt.Errorf("invalid user name %q: use 1-64 of a-z 0-9 . _ - starting with a letter or digit", u)
	}
	return nil
}

// UserpassLogin logs in with Vault's userpass method mounted at mount
// (default "userpass") and returns the client token. The password is sent
// only to Vault.
func (c *Client) UserpassLogin(ctx context.Context, mount, username, password string) (string, error) {
	if err := ValidUsername(username); err != nil {
		return "", err
	}
	if password == "" {
		return "", errors.New("empty password")
	}
	if mount == "" {
		mount = "userpass"
	}
	p := "auth/" + url.PathEscape(mount) + "/login/" + username
	s, err := c.api.Logical().WriteWithContext(ctx, p, map[string]any{"password": password})
	if err != nil {
		// userpass answers a wrong user or password with 400.
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			return "", fmt.Errorf("vault %s: %w: invalid username or password", p, ErrPermissionDenied)
		}
		return "", classify(p, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", fmt.Errorf("vault %s: no token in response", p)
	}
	return s.Auth.ClientToken, nil
}

// RevokeSelf revokes the client's own token (and its children).
func (c *Client) RevokeSelf(ctx context.Context) error {
	if err := c.api.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		return classify("auth/token/revoke-self", err)
	}
	return nil
}
