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
// so each dozod keeps a user's warnings, keyed by the day and by the
// catalog's grants generation (catalog.GrantsGeneration), which every
// change that can change anyone's warnings raises in its own transaction
// (a grant put, booked or revoked, a dataset deleted or restored, a
// pending grant bound at its user's first login), whichever dozod makes
// it. A request compares the generation its access read saw with the
// kept one (a request that reads no dataset, such as whoami, reads the
// generation alone: one single-row read where the register query was),
// so a change made on any dozod shows at the user's very next request on
// every dozod. The
// dozod that makes a change also forgets the entries it touched at once
// (putGrant and revokeGrant the grantee's, a deletion or restore
// everyone's). An entry is still recomputed after grantWarnInterval,
// which bounds what a change made outside dozod (by hand in the catalog)
// can leave behind.

// hidesGrants wraps a handler that can hide or show a dataset's grants
// (deleting or restoring the dataset): this dozod's warnings are computed
// afresh after it, so a deleted dataset is not named again here.
func (s *Server) hidesGrants(h handlerFunc) handlerFunc {
	return func(q *request) error {
		defer s.warnings.reset()
		return h(q)
	}
}

// grantWarnInterval is the longest a user's computed warnings are reused
// while the grants generation stays the same.
const grantWarnInterval = time.Minute

// maxWarnUsers bounds the users whose warnings are kept; past it the
// stale entries are dropped, and if none is stale the cache starts over.
const maxWarnUsers = 10000

// warnCache holds each user's grant warnings, as computed at a time on a
// day at a grants generation. It is safe for concurrent use.
type warnCache struct {
	mu      sync.Mutex
	entries map[catalog.Principal]warnEntry
}

type warnEntry struct {
	at    time.Time
	day   string
	gen   int64 // the grants generation, read before the lines were
	lines []string
}

// get returns p's warnings for day at now: the ones computed on the same
// day at the grants generation gen returns, less than grantWarnInterval
// before now, or else fill's answer, kept for later calls under that
// generation. gen is asked before fill, so an answer is never kept under
// a generation newer than what it saw. An error of gen or fill is
// returned and nothing is kept. Concurrent misses for one user may each
// call fill; the last answer stays.
func (c *warnCache) get(p catalog.Principal, day string, now time.Time, gen func() (int64, error), fill func() ([]string, error)) ([]string, error) {
	c.mu.Lock()
	e, ok := c.entries[p]
	c.mu.Unlock()
	ok = ok && e.day == day && now.Sub(e.at) < grantWarnInterval && !now.Before(e.at)
	g, err := gen()
	if err != nil {
		return nil, err
	}
	if ok && e.gen == g {
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
			if now.Sub(e.at) >= grantWarnInterval || e.day != day || e.gen != g {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxWarnUsers {
			clear(c.entries)
		}
	}
	c.entries[p] = warnEntry{at: now, day: day, gen: g, lines: lines}
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
