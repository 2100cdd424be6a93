package broker

import (
	"net/http"
	"strings"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
)

func (s *Server) whoami(q *request) error {
	q.object = "user/" + q.user.Name
	rcpt, err := s.cat.Recipient(q.ctx, q.user.Name)
	if err != nil {
		return internal("reading recipient", err)
	}
	fr, err := s.isFrozen(q, api.FreezeUser, q.user.Name) // access.go
	if err != nil {
		return err
	}
	u := api.User{Name: q.user.Name, Roles: s.roles(q.user), Recipient: rcpt, Frozen: fr,
		Mount: q.user.Mount, EntityID: q.user.EntityID, Groups: q.user.Groups}
	if !q.user.TokenExpires.IsZero() {
		u.TokenTTL = max(0, int64(q.user.TokenExpires.Sub(s.now()).Seconds()))
	}
	return q.reply(http.StatusOK, u)
}

// ParseRecipient accepts an age X25519 recipient ("age1...") or an
// ML-KEM-768+X25519 hybrid one ("age1pq1..."): the only kinds a fetch
// header is ever wrapped to.
func ParseRecipient(s string) (age.Recipient, error) {
	if strings.HasPrefix(s, "age1pq1") {
		return age.ParseHybridRecipient(s)
	}
	return age.ParseX25519Recipient(s)
}

func (s *Server) setRecipient(q *request) error {
	q.object = "user/" + q.user.Name
	if err := s.checkUserFrozen(q); err != nil { // access.go
		return err
	}
	var req api.RecipientRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	if _, err := ParseRecipient(req.Recipient); err != nil {
		return &httpError{status: http.StatusBadRequest, msg: "not an age X25519 or hybrid (age1pq1...) recipient: " + err.Error(),
			hint: "use the public key printed by `dozo keygen`"}
	}
	if err := s.cat.SetRecipient(q.ctx, q.user.Name, req.Recipient, s.now()); err != nil {
		return internal("storing recipient", err)
	}
	return q.reply(http.StatusOK, api.User{Name: q.user.Name, Roles: s.roles(q.user), Recipient: req.Recipient})
}
