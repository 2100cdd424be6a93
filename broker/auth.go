package broker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/vault"
)

// Identity is an authenticated caller.
type Identity struct {
	Name         string    // dozo user name (the Vault userpass/LDAP user)
	TokenExpires time.Time // zero for a non-expiring token
	Mount        string    // the auth mount the login was on ("ldap")
	EntityID     string    // the Vault identity entity (the person)
	// Groups are the identity groups dozod maps to roles ([auth]
	// admin_groups, submitter_groups) that the entity is in, by name,
	// as read at EntityChecked (roles.go).
	Groups        []string
	EntityChecked time.Time
}

// principal is who the caller is to the catalog: the entity, under its
// login name (catalog.Principal).
func (id *Identity) principal() catalog.Principal {
	return catalog.Principal{Name: id.Name, EntityID: id.EntityID}
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

// VaultIdentifier checks tokens with Vault and maps them to user names,
// with the caller's own token: auth/token/lookup-self, then the token's
// identity entity (see LoginMount and AliasName for the rule).
//
// Successful lookups are cached for at most MaxTokenCacheAge, keyed by the
// SHA-256 of the token: the token itself is never stored or logged, and a
// revoked token stops working within that bound. Failures are never
// cached, and an unreachable Vault is an error, never a pass. A cached
// identity is not used while Vault is down: the Server refuses every
// request before asking the identifier once its health probe has seen
// the outage (deps.go).
type VaultIdentifier struct {
	vc     *vault.Client
	ttl    time.Duration
	mounts []string
	now    func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cached

	groups *groupMap // roles.go
}

type cached struct {
	id      Identity
	expires time.Time
}

// NewVaultIdentifier returns an identifier using vc's connection settings
// (not its token) that accepts logins on the given auth mounts (default
// DefaultAuthMounts). ttl <= 0 or above MaxTokenCacheAge means
// MaxTokenCacheAge.
func NewVaultIdentifier(vc *vault.Client, ttl time.Duration, mounts ...string) *VaultIdentifier {
	if ttl <= 0 || ttl > MaxTokenCacheAge {
		ttl = MaxTokenCacheAge
	}
	if len(mounts) == 0 {
		mounts = DefaultAuthMounts
	}
	return &VaultIdentifier{vc: vc, ttl: ttl, mounts: normalMounts(mounts), now: time.Now, cache: map[[32]byte]cached{}}
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
		if err := v.refreshEntity(ctx, token, key, &id); err != nil { // roles.go
			return nil, err
		}
		return &id, nil
	}
	tc, err := v.vc.WithToken(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
	}
	ti, err := tc.LookupSelf(ctx)
	switch {
	case errors.Is(err, vault.ErrPermissionDenied), errors.Is(err, vault.ErrNotFound):
		return nil, v.whyRefused(ctx, token) // roles.go
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
	}
	mount, err := LoginMount(ti, v.mounts)
	if err != nil {
		return nil, err
	}
	ent, err := tc.Entity(ctx, ti.EntityID)
	switch {
	case errors.Is(err, vault.ErrPermissionDenied):
		return nil, fmt.Errorf("%w: Vault does not let this token read its own identity entity (identity/entity/id/{{identity.entity.id}}, part of Vault's default policy)", ErrBadToken)
	case errors.Is(err, vault.ErrNotFound):
		return nil, fmt.Errorf("%w: the token's identity entity does not exist", ErrBadToken)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
	}
	if ent.Disabled {
		return nil, ErrEntityDisabled
	}
	name, err := AliasName(ent.Aliases, mount)
	if err != nil {
		return nil, err
	}
	id := Identity{Name: name, TokenExpires: ti.ExpireTime, Mount: mount, EntityID: ent.ID}
	if err := v.setGroups(ctx, &id, ent); err != nil { // roles.go
		return nil, err
	}
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

// errNotLogin is the refusal of a token that no login on a configured
// auth mount issued.
func errNotLogin(mounts []string) error {
	return fmt.Errorf("%w: token was not issued by a login on a configured auth method (%s); log in with your own account (dozo login)",
		ErrBadToken, strings.Join(mounts, ", "))
}

// LoginMount returns the configured auth mount whose login issued the
// token, from the creation path Vault recorded in it: a login on mount
// "userpass" has a path under "auth/userpass/" ("auth/userpass/login/alice",
// "auth/oidc/oidc/callback" for an OIDC mount "oidc"), and only a login on
// an auth mount gives a token such a path.
//
// Nothing the token's creator chooses is trusted: its metadata (anyone
// allowed auth/token/create sets meta "username" to anything) and display
// name are ignored. Every other token is refused: root tokens and tokens
// from auth/token/create ("auth/token/..."), logins on mounts not listed
// (another mount's "alice" is somebody else), tokens without an identity
// entity, and tokens of a Vault namespace other than the root one.
//
// A child token that a user creates from their own login token is refused
// too: Vault gives it the path "auth/token/create", the same as a token
// minted by anyone else, its metadata is the creator's to choose, and it
// may carry other policies or outlive the login. Only the login's own
// token (renewed or not) identifies its user.
func LoginMount(ti *vault.TokenInfo, mounts []string) (string, error) {
	if ti.Namespace != "" {
		return "", fmt.Errorf("%w: token belongs to Vault namespace %q; log in on the root namespace", ErrBadToken, ti.Namespace)
	}
	best := ""
	for _, m := range mounts {
		m = strings.Trim(m, "/")
		if m == "" || m == "token" || strings.HasPrefix(m, "token/") {
			continue
		}
		rest, ok := strings.CutPrefix(ti.Path, "auth/"+m+"/")
		if ok && rest != "" && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		return "", errNotLogin(mounts)
	}
	if ti.EntityID == "" {
		return "", fmt.Errorf("%w: token has no Vault identity entity", ErrBadToken)
	}
	return best, nil
}

// AliasName returns the user name of a login on mount: the name of the
// token's identity entity alias on that mount, which the auth method sets
// at login (userpass: the user name, lower-cased; LDAP: the login name;
// OIDC/JWT: the configured user claim). Exactly one alias must be on the
// mount, and its name must be a valid dozo user name as it stands.
func AliasName(aliases []vault.EntityAlias, mount string) (string, error) {
	want := "auth/" + strings.Trim(mount, "/") + "/"
	name, n := "", 0
	for _, a := range aliases {
		if a.MountPath == want {
			name, n = a.Name, n+1
		}
	}
	switch {
	case n == 0:
		return "", fmt.Errorf("%w: the token's identity entity has no alias on %s", ErrBadToken, want)
	case n > 1:
		return "", fmt.Errorf("%w: the token's identity entity has %d aliases on %s; a Vault administrator must resolve them", ErrBadToken, n, want)
	}
	if err := vault.ValidUsername(name); err != nil {
		return "", fmt.Errorf("%w: login name on %s: %v", ErrBadToken, want, err)
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
	// While the health probe finds Vault down, nobody is let in, also
	// not with a token the identifier remembers (deps.go).
	if err := s.vaultDown(); err != nil {
		return nil, vaultUnavailable(err)
	}
	id, err := s.ident.Identify(r.Context(), tok)
	switch {
	case errors.Is(err, ErrEntityDisabled):
		return nil, &httpError{status: http.StatusUnauthorized, msg: err.Error(), hint: "logging in again does not help until it is enabled"}
	case errors.Is(err, ErrBadToken):
		return nil, &httpError{status: http.StatusUnauthorized, msg: err.Error(), hint: loginHint}
	case err != nil:
		return nil, vaultUnavailable(err)
	}
	s.recordSeen(r, id) // principals.go
	return id, nil
}

// DefaultAuthMounts is the auth mount whose logins are dozo users when the
// configuration names none: Vault's userpass, as in the dev stack.
var DefaultAuthMounts = []string{"userpass"}

// AuthConfig is the [auth] section of dozod's config: which Vault logins
// identify dozo users.
type AuthConfig struct {
	// Mounts are Vault auth mount paths ("userpass", "ldap"); a token
	// identifies a user only if a login on one of them issued it, and the
	// user's name is the token's entity alias on that mount. User names
	// from all of them are one name space: list two mounts only if "alice"
	// on each is the same person.
	Mounts []string `toml:"mounts" env:"DOZOD_AUTH_MOUNTS" help:"[\"userpass\"]; auth mount paths (comma-separated in env); only a token from a login on one of them identifies a user, named by its identity entity alias on that mount"`

	GroupRoles // roles.go: admin_groups, submitter_groups
}

func (c *AuthConfig) defaults() {
	if len(c.Mounts) == 0 {
		c.Mounts = DefaultAuthMounts
	}
	c.Mounts = normalMounts(c.Mounts)
}

var mountRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$`)

func (c *AuthConfig) validate() error {
	if len(c.Mounts) == 0 {
		return errors.New("auth.mounts: name at least one Vault auth mount (e.g. \"userpass\")")
	}
	seen := map[string]bool{}
	for _, m := range c.Mounts {
		switch {
		case !mountRE.MatchString(m) || strings.Contains(m, ".."):
			return fmt.Errorf("auth.mounts: bad mount path %q", m)
		case m == "token" || strings.HasPrefix(m, "token/"):
			return fmt.Errorf("auth.mounts: %q is Vault's token store, not a login method", m)
		case seen[m]:
			return fmt.Errorf("auth.mounts: %q listed twice", m)
		}
		seen[m] = true
	}
	return c.GroupRoles.validate()
}

// normalMounts returns mounts without surrounding slashes ("userpass/",
// as Vault lists mounts, is "userpass").
func normalMounts(mounts []string) []string {
	out := make([]string, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, strings.Trim(strings.TrimSpace(m), "/"))
	}
	return out
}
