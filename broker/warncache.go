package broker

import (
	"sync"
	"time"

	"github.com/dozo-vault/dozo/catalog"
)

// The "your grant ends soon" warnings are advice, not authorisation: the
// grant itself is read from the catalog on every request that uses it
// (datasetAccess), so a revoke, a freeze or an expiry takes effect at the
// next request whatever this cache holds. Reading the register for the
// warnings on every request cost more than the rest of a light request,
// so each dozod computes a user's warnings at most once per
// grantWarnInterval and per day, and forgets them at once when it changes
// one of that user's grants itself (putGrant, revokeGrant), or deletes or
// restores a dataset (everyone's). A change made on another dozod shows
// in this one's warnings within grantWarnInterval.

// hidesGrants wraps a handler that can hide or show a dataset's grants
// (deleting or restoring the dataset): this dozod's warnings are computed
// afresh after it, so a deleted dataset is not named again here.
func (s *Server) hidesGrants(h handlerFunc) handlerFunc {
	return func(q *request) error {
		defer s.warnings.reset()
		return h(q)
	}
}

// grantWarnInterval is how long a user's computed warnings are reused.
const grantWarnInterval = time.Minute

// maxWarnUsers bounds the users whose warnings are kept; past it the
// stale entries are dropped, and if none is stale the cache starts over.
const maxWarnUsers = 10000

// warnCache holds each user's grant warnings, as computed at a time on a
// day. It is safe for concurrent use.
type warnCache struct {
	mu      sync.Mutex
	entries map[catalog.Principal]warnEntry
}

type warnEntry struct {
	at    time.Time
	day   string
	lines []string
}

// get returns p's warnings for day at now: the ones computed on the same
// day less than grantWarnInterval before now, or else fill's answer, kept
// for later calls. An error of fill is returned and nothing is kept.
// Concurrent misses for one user may each call fill; the last answer
// stays.
func (c *warnCache) get(p catalog.Principal, day string, now time.Time, fill func() ([]string, error)) ([]string, error) {
	c.mu.Lock()
	e, ok := c.entries[p]
	c.mu.Unlock()
	if ok && e.day == day && now.Sub(e.at) < grantWarnInterval && !now.Before(e.at) {
		return e.lines, nil
	}
	lines, err := fill()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[catalog.Principal]warnEntry{}
	}
	if _, ok := c.entries[p]; !ok && len(c.entries) >= maxWarnUsers {
		for k, e := range c.entries {
			if now.Sub(e.at) >= grantWarnInterval || e.day != day {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxWarnUsers {
			clear(c.entries)
		}
	}
	c.entries[p] = warnEntry{at: now, day: day, lines: lines}
	return lines, nil
}

// forget drops the warnings of the person u names, under any login name
// (one of their grants changed here): every entry with u's login name or,
// when u has one, its entity.
func (c *warnCache) forget(u catalog.Principal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.entries {
		if p.Name == u.Name || (u.EntityID != "" && p.EntityID == u.EntityID) {
			delete(c.entries, p)
		}
	}
}

// reset forgets every user's warnings.
func (c *warnCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
