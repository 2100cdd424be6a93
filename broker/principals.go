package broker

// Principals: the users a grant, a dataset role or a freeze may name.
// dozod knows a user once it has seen them authenticate (recordSeen, on
// every authenticated request at most once per seenInterval); a name it
// has never seen is refused with the closest known names, unless the
// caller says it is someone who has not logged in yet (allow_unknown),
// and the row is then pending until that user's first request.

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/internal/suggest"
)

// seenInterval bounds how often one user's requests are written to the
// catalog as seen: the first request of a user (or of a new login mount
// or entity for the name) always is, later ones at most once per interval.
const seenInterval = 5 * time.Minute

// seenUsers remembers when each (name, mount, entity) was last recorded.
type seenUsers struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// maxSeenEntries bounds the memory of seen users; beyond it the memory is
// cleared (costing one catalog write per user).
const maxSeenEntries = 10000

// recordSeen records the authenticated caller in the catalog (catalog.
// SeenUser), which also binds to the caller's entity the rows made for the
// name before its first login. A failure is logged and retried at the next
// request: the request itself does not depend on it, since a row not yet
// bound matches its user by name.
func (s *Server) recordSeen(r *http.Request, id *Identity) {
	if id == nil || id.EntityID == "" {
		return
	}
	key := id.Name + "\x00" + id.Mount + "\x00" + id.EntityID
	now := s.now()
	s.seen.mu.Lock()
	t, ok := s.seen.last[key]
	s.seen.mu.Unlock()
	if ok && now.Sub(t) < seenInterval && !now.Before(t) {
		return
	}
	if err := s.cat.SeenUser(r.Context(), id.Name, id.Mount, id.EntityID, now); err != nil {
		s.log.Warn("recording a seen user", "user", id.Name, "error", err)
		return
	}
	s.seen.mu.Lock()
	if s.seen.last == nil || len(s.seen.last) >= maxSeenEntries {
		s.seen.last = map[string]time.Time{}
	}
	s.seen.last[key] = now
	s.seen.mu.Unlock()
}

// knownPrincipal checks that user names someone dozod has seen log in and
// returns that user's Vault entity. An unknown name is refused with the
// closest known names, unless allowUnknown: then the entity is "" and the
// row the caller writes is pending until the user's first login.
func (s *Server) knownPrincipal(q *request, user string, allowUnknown bool) (string, error) {
	u, err := s.cat.KnownUser(q.ctx, user)
	if err == nil {
		return u.EntityID, nil
	}
	if !errors.Is(err, catalog.ErrNotFound) {
		return "", internal("reading users", err)
	}
	if allowUnknown {
		return "", nil
	}
	us, err := s.cat.Users(q.ctx)
	if err != nil {
		return "", internal("reading users", err)
	}
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.Name
	}
	msg := fmt.Sprintf("no user `%s`: nobody by that name has logged in to dozo", user)
	if near := suggest.Closest(user, names, maxSuggestDistance, maxSuggestions); len(near) > 0 {
		msg = fmt.Sprintf("no user `%s`; did you mean `%s`?", user, strings.Join(near, "`, `"))
	}
	return "", &httpError{status: http.StatusNotFound, msg: msg,
		hint: "check the name; for someone who has not logged in yet, pass --allow-unknown (the entry is pending until their first login)"}
}

// userPrincipal is the person a user name given in a request stands for:
// the caller, if it is the caller's name; else the entity dozod last saw
// log in with that name, if any (a name nobody has used is the name
// alone).
func (s *Server) userPrincipal(q *request, name string) (catalog.Principal, error) {
	if q.user != nil && q.user.Name == name {
		return q.user.principal(), nil
	}
	u, err := s.cat.KnownUser(q.ctx, name)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return catalog.ByName(name), nil
	case err != nil:
		return catalog.Principal{}, internal("reading users", err)
	}
	return catalog.Principal{Name: name, EntityID: u.EntityID}, nil
}

// otherName is login if it differs from name, else "": the name a row's
// person now logs in with, shown only when it is news.
func otherName(login, name string) string {
	if login == name {
		return ""
	}
	return login
}

// Suggestions for an unknown user name: up to maxSuggestions known names
// within maxSuggestDistance edits.
const (
	maxSuggestDistance = 2
	maxSuggestions     = 3
)
