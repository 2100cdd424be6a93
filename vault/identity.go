package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"time"

	"github.com/hashicorp/vault/api"
)

// Entity is what dozo needs of a Vault identity entity (a person).
type Entity struct {
	ID      string
	Name    string
	Aliases []EntityAlias
	// Disabled: an operator disabled the entity. Vault then refuses every
	// use of its tokens and every login to it.
	Disabled bool
	// GroupIDs are the identity groups the entity is in, directly or
	// through a parent group. An external group's members are those Vault
	// saw in the group at their last login or token renewal.
	GroupIDs []string
}

// Entity reads the identity entity id. With a user's token, Vault's default
// policy allows reading the token's own entity only. An entity the token
// may not read is ErrPermissionDenied, one that does not exist ErrNotFound.
func (c *Client) Entity(ctx context.Context, id string) (*Entity, error) {
	if !entityIDRE.MatchString(id) {
		return nil, fmt.Errorf("vault: invalid entity id %q", id)
	}
	p := "identity/entity/id/" + id
	s, err := c.api.Logical().ReadWithContext(ctx, p)
	if err != nil {
		return nil, classify(p, err)
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("vault %s: %w", p, ErrNotFound)
	}
	e := &Entity{ID: id}
	e.Name, _ = s.Data["name"].(string)
	e.Disabled, _ = s.Data["disabled"].(bool)
	raw, _ := s.Data["aliases"].([]any)
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		var a EntityAlias
		a.Name, _ = m["name"].(string)
		a.MountPath, _ = m["mount_path"].(string)
		a.MountAccessor, _ = m["mount_accessor"].(string)
		e.Aliases = append(e.Aliases, a)
	}
	e.GroupIDs = stringList(s.Data["group_ids"])
	return e, nil
}

// GroupID returns the id of the identity group called name, or
// ErrNotFound. The caller's token needs read on identity/group/name/<name>.
func (c *Client) GroupID(ctx context.Context, name string) (string, error) {
	if !groupNameRE.MatchString(name) {
		return "", fmt.Errorf("vault: invalid group name %q", name)
	}
	p := "identity/group/name/" + name
	s, err := c.api.Logical().ReadWithContext(ctx, p)
	if err != nil {
		return "", classify(p, err)
	}
	if s == nil || s.Data == nil {
		return "", fmt.Errorf("vault %s: %w", p, ErrNotFound)
	}
	id, _ := s.Data["id"].(string)
	if id == "" {
		return "", fmt.Errorf("vault %s: response lacks the group id", p)
	}
	return id, nil
}

var groupNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidGroupName reports whether name is an identity group name dozo can
// look up.
func ValidGroupName(name string) error {
	if !groupNameRE.MatchString(name) {
		return fmt.Errorf("invalid group name %q: use 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit", name)
	}
	return nil
}

// LookupTokenEntity returns the entity id of token, asked with the client's
// own token (auth/token/lookup; the client needs update on it). It works
// where the token itself no longer may: Vault refuses every request made
// with the token of a disabled entity, its own lookup included.
func (c *Client) LookupTokenEntity(ctx context.Context, token string) (string, error) {
	const p = "auth/token/lookup"
	s, err := c.api.Logical().WriteWithContext(ctx, p, map[string]any{"token": token})
	if err != nil {
		// Vault answers an unknown token with 400 "bad token".
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			return "", fmt.Errorf("vault %s: %w", p, ErrNotFound)
		}
		return "", classify(p, err)
	}
	if s == nil || s.Data == nil {
		return "", fmt.Errorf("vault %s: %w", p, ErrNotFound)
	}
	id, _ := s.Data["entity_id"].(string)
	return id, nil
}

func stringList(v any) []string {
	raw, _ := v.([]any)
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		if s, ok := r.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// LoginResult is Vault's answer to a login: a token, or (login MFA) a
// request for a second factor, completed with ValidateMFA.
type LoginResult struct {
	Token string
	MFA   *MFARequirement
}

// MFARequirement is a pending login waiting for a second factor.
type MFARequirement struct {
	RequestID string
	// Methods are the factors any one of which completes the login.
	Methods []MFAMethod
}

// MFAMethod is one factor a login may be completed with.
type MFAMethod struct {
	ID           string
	Type         string // "totp", "duo", "okta", "pingid"
	Name         string
	UsesPasscode bool // the user types a code (TOTP); else a push is answered elsewhere
}

var loginMethods = map[string]bool{"userpass": true, "ldap": true}

// PasswordLogin logs in with a user name and password on the auth method
// kind ("userpass" or "ldap") mounted at mount (default: the kind's name).
// The password is sent only to Vault. A wrong user or password is
// ErrPermissionDenied.
func (c *Client) PasswordLogin(ctx context.Context, kind, mount, username, password string) (*LoginResult, error) {
	if !loginMethods[kind] {
		return nil, fmt.Errorf("vault: no password login for method %q", kind)
	}
	if err := ValidUsername(username); err != nil {
		return nil, err
	}
	if password == "" {
		return nil, errors.New("empty password")
	}
	if mount == "" {
		mount = kind
	}
	if !mountPathRE.MatchString(mount) {
		return nil, fmt.Errorf("vault: invalid auth mount %q", mount)
	}
	p := "auth/" + mount + "/login/" + url.PathEscape(username)
	s, err := c.api.Logical().WriteWithContext(ctx, p, map[string]any{"password": password})
	if err != nil {
		// userpass answers a wrong user or password with 400, ldap with
		// 400 ("ldap operation failed") too.
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			return nil, fmt.Errorf("vault %s: %w: invalid username or password", p, ErrPermissionDenied)
		}
		return nil, classify(p, err)
	}
	return loginResult(p, s)
}

var mountPathRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$`)

func loginResult(p string, s *api.Secret) (*LoginResult, error) {
	if s == nil || s.Auth == nil {
		return nil, fmt.Errorf("vault %s: no token in response", p)
	}
	if r := s.Auth.MFARequirement; r != nil && r.MFARequestID != "" {
		m := &MFARequirement{RequestID: r.MFARequestID}
		names := make([]string, 0, len(r.MFAConstraints))
		for n := range r.MFAConstraints {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c := r.MFAConstraints[n]
			if c == nil {
				continue
			}
			for _, a := range c.Any {
				if a != nil {
					m.Methods = append(m.Methods, MFAMethod{ID: a.ID, Type: a.Type, Name: a.Name, UsesPasscode: a.UsesPasscode})
				}
			}
		}
		return &LoginResult{MFA: m}, nil
	}
	if s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vault %s: no token in response", p)
	}
	return &LoginResult{Token: s.Auth.ClientToken}, nil
}

// ValidateMFA completes a login waiting for a second factor: method is the
// MFA method's id, code the one-time code (empty for a push method). It
// returns the login's token. A wrong code is ErrPermissionDenied.
func (c *Client) ValidateMFA(ctx context.Context, requestID, method, code string) (string, error) {
	const p = "sys/mfa/validate"
	// A factor without a passcode (a push) takes the empty string.
	payload := []string{code}
	// A push factor may take the user a while to answer.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	s, err := c.api.Logical().WriteWithContext(ctx, p, map[string]any{
		"mfa_request_id": requestID,
		"mfa_payload":    map[string]any{method: payload},
	})
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			return "", fmt.Errorf("vault %s: %w: %v", p, ErrPermissionDenied, re.Errors)
		}
		return "", classify(p, err)
	}
	r, err := loginResult(p, s)
	if err != nil {
		return "", err
	}
	if r.Token == "" {
		return "", fmt.Errorf("vault %s: another factor is required", p)
	}
	return r.Token, nil
}
