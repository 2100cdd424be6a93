package broker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/vault"
)

// Identity is an authenticated caller.
type Identity struct {
	Name         string    // dozo user name (the Vault userpass/LDAP user)
	TokenExpires time.Time // zero for a non-expiring token
}

// Identifier maps a bearer token to a user. Implementations fail closed:
// any doubt is an error.
type Identifier interface {
	Identify(ctx context.Context, token string) (*Identity, error)
}

// Errors an Identifier returns.
var (
	ErrBadToken = errors.New("invalid or expired token")
	// ErrIdentityUnavailable: the identity provider could not be asked.
	ErrIdentityUnavailable = errors.New("identity provider unavailable")
)

// MaxTokenCacheAge bounds how long a successful token lookup is reused.
const MaxTokenCacheAge = 30 * time.Second

// maxCacheEntries bounds the token cache; beyond it the cache is cleared.
const maxCacheEntries = 10000

// VaultIdentifier checks tokens with Vault (auth/token/lookup-self, using
// the caller's own token) and maps them to user names.
//
// Successful lookups are cached for at most MaxTokenCacheAge, keyed by the
// SHA-256 of the token: the token itself is never stored or logged, and a
// revoked token stops working within that bound. Failures are never
// cached, and an unreachable Vault is an error, never a pass.
type VaultIdentifier struct {
	vc  *vault.Client
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	id      Identity
	expires time.Time
}

// NewVaultIdentifier returns an identifier using vc's connection settings
// (not its token). ttl <= 0 or above MaxTokenCacheAge means MaxTokenCacheAge.
func NewVaultIdentifier(vc *vault.Client, ttl time.Duration) *VaultIdentifier {
	if ttl <= 0 || ttl > MaxTokenCacheAge {
		ttl = MaxTokenCacheAge
	}
	return &VaultIdentifier{vc: vc, ttl: ttl, now: time.Now, cache: map[[32]byte]cached{}}
}

// Identify implements Identifier.
func (v *VaultIdentifier) Identify(ctx context.Context, token string) (*Identity, error) {
	key := sha256.Sum256([]byte(token))
	now := v.now()
	v.mu.Lock()
	c, ok := v.cache[key]
	v.mu.Unlock()
	if ok && now.Before(c.expires) {
		id := c.id
		return &id, nil
	}
	tc, err := v.vc.WithToken(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
	}
	ti, err := tc.LookupSelf(ctx)
	switch {
	case errors.Is(err, vault.ErrPermissionDenied), errors.Is(err, vault.ErrNotFound):
		return nil, ErrBadToken
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
	}
	name, err := UserName(ti)
	if err != nil {
		return nil, err
	}
	id := Identity{Name: name, TokenExpires: ti.ExpireTime}
	exp := now.Add(v.ttl)
	if !ti.ExpireTime.IsZero() && ti.ExpireTime.Before(exp) {
		exp = ti.ExpireTime
	}
	v.mu.Lock()
	if len(v.cache) >= maxCacheEntries {
		clear(v.cache)
	}
	v.cache[key] = cached{id: id, expires: exp}
	v.mu.Unlock()
	return &id, nil
}

// UserName maps a Vault token to a dozo user: the auth method's user name
// (metadata "username"), else the display name of a userpass token minus
// its "userpass-" prefix. Tokens with neither, such as root or service
// tokens, belong to no user and are refused.
func UserName(ti *vault.TokenInfo) (string, error) {
	name := ti.Username
	if name == "" {
		name, _ = strings.CutPrefix(ti.DisplayName, "userpass-")
		if name == ti.DisplayName {
			name = ""
		}
	}
	if name == "" {
		return "", fmt.Errorf("%w: token belongs to no user (log in with your own account)", ErrBadToken)
	}
	if err := vault.ValidUsername(name); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	return name, nil
}

// bearer extracts the token from "Authorization: Bearer <token>".
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	// Vault tokens are short printable ASCII; anything else is not one and
	// must not reach Vault or a log.
	if tok == "" || len(tok) > 1024 {
		return "", false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return "", false
		}
	}
	return tok, true
}

const loginHint = "log in again (dozo login) and retry"

func (s *Server) authenticate(r *http.Request) (*Identity, error) {
	tok, ok := bearer(r)
	if !ok {
		return nil, &httpError{status: http.StatusUnauthorized, msg: "missing or malformed Authorization: Bearer token", hint: loginHint}
	}
	id, err := s.ident.Identify(r.Context(), tok)
	switch {
	case errors.Is(err, ErrBadToken):
		return nil, &httpError{status: http.StatusUnauthorized, msg: err.Error(), hint: loginHint}
	case err != nil:
		return nil, &httpError{status: http.StatusServiceUnavailable, msg: "cannot verify the token: Vault is unavailable; try again later", cause: err}
	}
	return id, nil
}
