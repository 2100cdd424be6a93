package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/vault"
)

// AuditConfig is the [audit] section of dozod's config: how often the
// audit chain's head is anchored outside the database.
type AuditConfig struct {
	// AnchorInterval is how often the head is anchored (it is also
	// anchored at every export and at shutdown).
	AnchorInterval time.Duration `toml:"anchor_interval" env:"DOZOD_AUDIT_ANCHOR_INTERVAL" help:"10m (1m..24h; also at every export)"`
	// AnchorKey is the Transit key that MACs the anchors; dozod creates it
	// (non-exportable) when it is missing and refuses one that is not as
	// it makes it (vault.CheckNewKey).
	AnchorKey string `toml:"anchor_key" env:"DOZOD_AUDIT_ANCHOR_KEY" help:"dozo-audit (Transit key; dozod's policy needs keys, hmac and verify on it)"`
}

// Defaults of the [audit] section.
const (
	DefaultAnchorInterval = 10 * time.Minute
	DefaultAnchorKey      = "dozo-audit"
)

func (c *AuditConfig) validate() error {
	if c.AnchorInterval == 0 {
		c.AnchorInterval = DefaultAnchorInterval
	}
	if c.AnchorKey == "" {
		c.AnchorKey = DefaultAnchorKey
	}
	if c.AnchorInterval < time.Minute || c.AnchorInterval > 24*time.Hour {
		return fmt.Errorf("audit.anchor_interval %v: must be 1m..24h", c.AnchorInterval)
	}
	if err := vault.ValidKeyName(c.AnchorKey); err != nil {
		return fmt.Errorf("audit.anchor_key: %w", err)
	}
	if strings.HasPrefix(c.AnchorKey, api.TransitKeyName("")) {
		return fmt.Errorf("audit.anchor_key %q: the %s prefix is for dataset keys", c.AnchorKey, api.TransitKeyName(""))
	}
	return nil
}

// anchorState is the Server's audit-anchoring state.
type anchorState struct {
	anchorCfg AuditConfig
	anchorMu  sync.Mutex // one anchoring at a time; guards anchorKeyOK
	// anchorKeyOK: the key exists and was checked (non-exportable, the
	// type dozod creates).
	anchorKeyOK bool
}

// ensureAnchorKey creates the anchor key when it is missing and checks it
// as dataset keys are checked (vault.CheckNewKey): the type dozod makes,
// never exportable or backed up in plaintext, not imported, derived or
// deletable, at version 1. dozod never rotates or reconfigures it, so the
// key it made passes at every start; one planted under the name (to
// export its material and forge anchors later) or changed since does not,
// and is never used. s.anchorMu is held.
func (s *Server) ensureAnchorKey(ctx context.Context) error {
	if s.anchorKeyOK {
		return nil
	}
	name := s.anchorCfg.AnchorKey
	if err := s.keys.CreateKey(ctx, name); err != nil {
		return fmt.Errorf("creating the audit anchor key %s: %w", name, err)
	}
	ki, err := s.keys.ReadKey(ctx, name)
	if err != nil {
		return fmt.Errorf("reading the audit anchor key %s: %w", name, err)
	}
	if err := vault.CheckNewKey(ki); err != nil {
		return fmt.Errorf("the audit anchor key %s is not one dozod made (anchors MACed with a key whose material could leave Vault prove nothing); examine it, or name another in [audit] anchor_key: %w", name, err)
	}
	s.anchorKeyOK = true
	return nil
}

// anchorAudit anchors the chain's current head: Transit MACs (seq, hash,
// time) under the anchor key, which puts the request in Vault's audit log,
// and the anchor is stored in the catalog. A head already anchored is not
// anchored again. It returns the anchor (nil when there was nothing new).
func (s *Server) anchorAudit(ctx context.Context) (*audit.StoredAnchor, error) {
	s.anchorMu.Lock()
	defer s.anchorMu.Unlock()
	seq, hash, err := s.cat.AuditHead(ctx)
	if err != nil || seq == 0 {
		return nil, err
	}
	as, err := s.cat.AuditAnchors(ctx)
	if err != nil {
		return nil, err
	}
	if len(as) > 0 && as[len(as)-1].Seq >= seq {
		return nil, nil
	}
	if err := s.ensureAnchorKey(ctx); err != nil {
		return nil, err
	}
	a := audit.StoredAnchor{Seq: seq, Hash: hash, Time: s.now().UTC()}
	if a.MAC, err = s.anchorAuth().MAC(ctx, a.Input()); err != nil {
		return nil, fmt.Errorf("MACing the audit head with %s: %w", s.anchorCfg.AnchorKey, err)
	}
	if err := s.cat.AddAuditAnchor(ctx, a); err != nil {
		return nil, err
	}
	return &a, nil
}

// anchorAuth MACs and verifies anchors with the anchor key. Anchors
// verified once are remembered (macMemo), so a verify asks Vault only
// about anchors it has not seen.
func (s *Server) anchorAuth() macAuth {
	return macAuth{vault.TransitHMAC{Keys: s.keys, Key: s.anchorCfg.AnchorKey}, &s.macMemo}
}

// anchorAndLog is anchorAudit for background callers: a failure is
// logged, never fatal.
func (s *Server) anchorAndLog(ctx context.Context, why string) {
	a, err := s.anchorAudit(ctx)
	switch {
	case err != nil:
		s.log.Error("audit head not anchored", "when", why, "key", s.anchorCfg.AnchorKey, "error", err.Error())
	case a != nil:
		s.log.Info("audit head anchored", "when", why, "seq", a.Seq, "hash", a.Hash)
	}
}

// checkAnchors adds the stored anchors to a chain verdict: each anchor's
// MAC must verify with the anchor key in Vault, and the chain must hold
// the anchored record unchanged. The first anchor that fails decides.
func (s *Server) checkAnchors(ctx context.Context, res audit.Result) (audit.Result, error) {
	if !res.OK {
		return res, nil
	}
	as, err := s.cat.AuditAnchors(ctx)
	if err != nil {
		return res, err
	}
	forged, err := s.forgedAnchors(ctx, as)
	if err != nil {
		return res, fmt.Errorf("verifying the anchors with %s: %w", s.anchorCfg.AnchorKey, err)
	}
	for i, a := range as {
		if forged[i] {
			return audit.AnchorForged(res, a), nil
		}
		r, err := s.cat.AuditRecord(ctx, a.Seq)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return res, err
		}
		if out := audit.CheckStoredAnchor(res, a, r); !out.OK {
			return out, nil
		}
	}
	res.Anchors = len(as)
	if len(as) > 0 {
		res.AnchoredSeq, res.AnchoredAt = as[len(as)-1].Seq, as[len(as)-1].Time
	}
	return res, nil
}

// batchVerifier verifies many MACs in one request; *vault.Client
// implements it (Transit's batch_input).
type batchVerifier interface {
	VerifyHMACs(ctx context.Context, name string, data [][]byte, macs []string) ([]bool, error)
}

// forgedAnchors reports, for each anchor, whether the anchor key refuses
// its MAC. Anchors verified before (macMemo) are not sent again; the rest
// go to Vault in batches when the key service can, else one by one. Only
// a MAC Vault looked at and refused is forged: not reaching Vault, or not
// being allowed to ask, is an error.
func (s *Server) forgedAnchors(ctx context.Context, as []audit.StoredAnchor) ([]bool, error) {
	auth := s.anchorAuth()
	forged := make([]bool, len(as))
	var todo []int
	for i := range as {
		if !auth.memo.has(auth.Key, as[i].Input(), as[i].MAC) {
			todo = append(todo, i)
		}
	}
	if bv, ok := s.keys.(batchVerifier); ok && len(todo) > 0 {
		data, macs := make([][]byte, len(todo)), make([]string, len(todo))
		for j, i := range todo {
			data[j], macs[j] = as[i].Input(), as[i].MAC
		}
		valid, err := bv.VerifyHMACs(ctx, auth.Key, data, macs)
		if err != nil {
			return nil, err
		}
		for j, i := range todo {
			if valid[j] {
				auth.memo.add(auth.Key, data[j], macs[j])
			} else {
				forged[i] = true
			}
		}
		return forged, nil
	}
	for _, i := range todo {
		err := auth.Verify(ctx, as[i].Input(), as[i].MAC)
		switch {
		case err == nil:
		case errors.Is(err, vault.ErrUnavailable), errors.Is(err, vault.ErrPermissionDenied), errors.Is(err, vault.ErrNotFound),
			errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return nil, err
		default:
			forged[i] = true
		}
	}
	return forged, nil
}

// startAnchoring anchors the head at start and every anchor interval
// until ctx ends.
func (s *Server) startAnchoring(ctx context.Context) {
	go func() {
		t := time.NewTicker(s.anchorCfg.AnchorInterval)
		defer t.Stop()
		for {
			s.anchorAndLog(ctx, "interval")
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
