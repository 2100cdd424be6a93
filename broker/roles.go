package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/vault"
)

// Global roles (admin, submitter) come from two sources, and a user has a
// role if either gives it:
//
//   - dozod's config lists user names (admins, submitters), for small sites;
//   - Vault identity groups named in [auth] admin_groups and
//     submitter_groups: a user has the role while their identity entity is
//     in the group. For an LDAP (or OIDC) login the group is an external
//     group with a group alias on the auth mount, and Vault copies the
//     directory's membership into it at each login and token renewal.
//
// Membership is read from the caller's entity (its group_ids, with the
// caller's own token) at most EntityMaxAge before the request is served;
// group names are resolved to ids with dozod's token (read on
// identity/group/name/<name>), reused for at most EntityMaxAge too.

// EntityMaxAge bounds how old the entity state (disabled flag, groups)
// a request is judged by may be.
const EntityMaxAge = 5 * time.Second

// ErrEntityDisabled: the caller's Vault identity entity is disabled. It is
// also ErrBadToken (a 401), with its own message.
var ErrEntityDisabled error = entityDisabled{}

type entityDisabled struct{}

func (entityDisabled) Error() string {
	return "your identity is disabled in Vault; ask the centre's administrators"
}
func (entityDisabled) Is(target error) bool { return target == ErrBadToken }

// GroupRoles is the group part of the [auth] section.
type GroupRoles struct {
	AdminGroups     []string `toml:"admin_groups" env:"DOZOD_AUTH_ADMIN_GROUPS" help:"[]; Vault identity group names whose members have the admin role (with admins)"`
	SubmitterGroups []string `toml:"submitter_groups" env:"DOZOD_AUTH_SUBMITTER_GROUPS" help:"[]; likewise for the submitter role (with submitters); dozod's token reads identity/group/name/<each>"`
}

// Names are all the groups mapped to a role, each once.
func (g GroupRoles) Names() []string {
	var out []string
	for _, n := range append(append([]string{}, g.AdminGroups...), g.SubmitterGroups...) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func (g *GroupRoles) validate() error {
	for key, names := range map[string][]string{"auth.admin_groups": g.AdminGroups, "auth.submitter_groups": g.SubmitterGroups} {
		for _, n := range names {
			if err := vault.ValidGroupName(n); err != nil {
				return fmt.Errorf("%s: %v", key, err)
			}
		}
	}
	return nil
}

// MapGroups makes v report which of the identity groups names each caller
// is in (Identity.Groups). It returns v.
func (v *VaultIdentifier) MapGroups(names ...string) *VaultIdentifier {
	if len(names) > 0 {
		v.groups = &groupMap{vc: v.vc, names: slices.Clone(names)}
	}
	return v
}

// CheckGroups resolves the mapped group names once, so that a dozod whose
// token may not read them fails at start rather than at every request. A
// group that does not exist (yet) gives nobody a role and is returned in
// missing.
func (v *VaultIdentifier) CheckGroups(ctx context.Context) (missing []string, err error) {
	if v.groups == nil {
		return nil, nil
	}
	byID, err := v.groups.resolve(ctx, v.now())
	if err != nil {
		return nil, err
	}
	for _, n := range v.groups.names {
		found := false
		for _, name := range byID {
			found = found || name == n
		}
		if !found {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// groupMap resolves group names to ids with dozod's token, reusing an
// answer for at most EntityMaxAge: a group deleted, or renamed, or made
// anew under the name, counts as such within that bound.
type groupMap struct {
	vc    *vault.Client
	names []string

	mu      sync.Mutex
	byID    map[string]string // group id -> name
	fetched time.Time
}

func (g *groupMap) resolve(ctx context.Context, now time.Time) (map[string]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byID != nil && now.Sub(g.fetched) < EntityMaxAge && !now.Before(g.fetched) {
		return g.byID, nil
	}
	byID := map[string]string{}
	for _, n := range g.names {
		id, err := g.vc.GroupID(ctx, n)
		switch {
		case errors.Is(err, vault.ErrNotFound):
			continue // no such group: nobody has its role
		case errors.Is(err, vault.ErrPermissionDenied):
			return nil, fmt.Errorf("%w: dozod's Vault token may not read identity/group/name/%s (add read on it to dozod's policy)", ErrIdentityUnavailable, n)
		case err != nil:
			return nil, fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
		}
		byID[id] = n
	}
	g.byID, g.fetched = byID, now
	return byID, nil
}

// setGroups records in id which mapped groups ent is in, as of now.
func (v *VaultIdentifier) setGroups(ctx context.Context, id *Identity, ent *vault.Entity) error {
	now := v.now()
	id.Groups, id.EntityChecked = nil, now
	if v.groups == nil {
		return nil
	}
	byID, err := v.groups.resolve(ctx, now)
	if err != nil {
		return err
	}
	for _, gid := range ent.GroupIDs {
		if n, ok := byID[gid]; ok && !slices.Contains(id.Groups, n) {
			id.Groups = append(id.Groups, n)
		}
	}
	slices.Sort(id.Groups)
	return nil
}

// refreshEntity re-reads the caller's entity, with the caller's token, if
// id's entity state is older than EntityMaxAge: a disabled entity, or one
// that left a group, is judged so at the next request after that. The
// fresh state goes into the token's cache entry (key), if it is still
// there, so the next EntityMaxAge of requests need not read it again.
func (v *VaultIdentifier) refreshEntity(ctx context.Context, token string, key [32]byte, id *Identity) error {
	if age := v.now().Sub(id.EntityChecked); age >= 0 && age < EntityMaxAge {
		return nil
	}
	tc, err := v.vc.WithToken(token)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
	}
	ent, err := tc.Entity(ctx, id.EntityID)
	switch {
	case errors.Is(err, vault.ErrPermissionDenied):
		return v.whyRefused(ctx, token)
	case errors.Is(err, vault.ErrNotFound):
		return fmt.Errorf("%w: the token's identity entity does not exist", ErrBadToken)
	case err != nil:
		return fmt.Errorf("%w: %v", ErrIdentityUnavailable, err)
	}
	if ent.Disabled {
		return ErrEntityDisabled
	}
	if err := v.setGroups(ctx, id, ent); err != nil {
		return err
	}
	v.mu.Lock()
	if c, ok := v.cache[key]; ok && c.id.EntityID == id.EntityID {
		c.id.Groups, c.id.EntityChecked = id.Groups, id.EntityChecked
		v.cache[key] = c
	}
	v.mu.Unlock()
	return nil
}

// whyRefused is the error for a token Vault refused to act with: Vault
// refuses every request made with the token of a disabled entity, so dozod
// asks, with its own token, whose the token is and whether that entity is
// disabled (auth/token/lookup, identity/entity/id/*). Any doubt is the
// plain ErrBadToken.
func (v *VaultIdentifier) whyRefused(ctx context.Context, token string) error {
	eid, err := v.vc.LookupTokenEntity(ctx, token)
	if err != nil || eid == "" {
		return ErrBadToken
	}
	ent, err := v.vc.Entity(ctx, eid)
	if err != nil || !ent.Disabled {
		return ErrBadToken
	}
	return ErrEntityDisabled
}

// inGroup reports whether u is in any of groups.
func inGroup(u *Identity, groups map[string]bool) bool {
	for _, g := range u.Groups {
		if groups[g] {
			return true
		}
	}
	return false
}
