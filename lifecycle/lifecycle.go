// Package lifecycle is what ends or renews a dataset's protection: key
// rotation (a new Transit key version for every stored header and
// manifest, the old versions retired) and dataset deletion (every stored
// object removed, then the key destroyed, then a report). Both are long,
// resumable protocols run as jobs; every step is idempotent, so a run
// interrupted anywhere is finished by running it again.
//
// The package depends on the catalog, a view of the storage targets, the
// key service and an audit sink, never on the HTTP layer: it returns
// plain errors (ErrFrozen, *Unavailable, *OpError) that the broker turns
// into answers.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// Job kinds this package's work runs as.
const (
	KindRotateKey     = "rotate-key"
	KindDeleteDataset = "delete-dataset"
)

// LockKey is the job lock key of a dataset: a rotation and a deletion (or
// two of either) never run on one dataset at once.
func LockKey(datasetID string) string { return "dataset/" + datasetID }

// Keys is the key service (Vault Transit) as lifecycle uses it.
type Keys interface {
	crypto.KeyWrapper
	ReadKey(ctx context.Context, name string) (*vault.KeyInfo, error)
	Rotate(ctx context.Context, name string) error
	ConfigureKey(ctx context.Context, name string, cfg vault.KeyConfig) error
	DeleteKey(ctx context.Context, name string) error
	vault.MACKeys
}

// Targets is a view of the configured storage targets.
type Targets interface {
	// IDs lists every configured target, sorted.
	IDs() []string
	// Target returns the target with id, or an error if none is
	// configured.
	Target(id string) (storage.Target, error)
}

// EventFunc appends an event to the audit log (actor is a user or
// "dozod", result an audit.Result*); it returns an error when the record
// could not be written.
type EventFunc func(ctx context.Context, actor, action, object, result, detail string) error

// Service runs rotations and deletions.
type Service struct {
	Catalog *catalog.Catalog
	Keys    Keys
	Targets Targets
	Event   EventFunc
	// ManifestAuth is the manifest authenticator of a Transit key; nil
	// for vault.TransitHMAC over Keys (a caller that remembers verified
	// MACs passes its own, and forgets them in Retired).
	ManifestAuth func(transitKey string) storage.Authenticator
	// Retired is called once a rotation retired the old key versions:
	// anything that remembers a MAC or manifest verified under them must
	// forget it.
	Retired func()
	// PresignExpiry is how long a presigned PUT may still land after a
	// deletion began.
	PresignExpiry time.Duration
	Now           func() time.Time
	Log           *slog.Logger
}

// ErrFrozen: the dataset is frozen by an administrator; nothing changed.
var ErrFrozen = errors.New("lifecycle: dataset is frozen")

// Unavailable is a step that failed on a dependency (a storage target,
// Vault) after part of the work was done; running again resumes it.
type Unavailable struct {
	Msg, Hint string
	Err       error
}

func (e *Unavailable) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Unavailable) Unwrap() error { return e.Err }

// OpError is a failure of an internal step (the catalog, the audit log),
// named by Op ("reading the dataset key").
type OpError struct {
	Op  string
	Err error
}

func (e *OpError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *OpError) Unwrap() error { return e.Err }

func op(what string, err error) error { return &OpError{Op: what, Err: err} }

// record appends an audit event that must not stop the work if it cannot
// be written (it is logged instead).
func (s *Service) record(ctx context.Context, actor, action, object, result, detail string) {
	if err := s.Event(ctx, actor, action, object, result, detail); err != nil {
		s.Log.Error("audit event not recorded", "actor", actor, "action", action, "object", object, "result", result, "detail", detail, "error", err)
	}
}

// manifestAuth is ManifestAuth of transitKey, else Transit asked every
// time.
func (s *Service) manifestAuth(transitKey string) storage.Authenticator {
	if s.ManifestAuth != nil {
		return s.ManifestAuth(transitKey)
	}
	return vault.TransitHMAC{Keys: s.Keys, Key: transitKey}
}

// Frozen returns ErrFrozen if an administrator froze the dataset.
func (s *Service) Frozen(ctx context.Context, id string) error {
	_, err := s.Catalog.ActiveFreeze(ctx, catalog.FreezeDataset, id)
	switch {
	case err == nil:
		return ErrFrozen
	case errors.Is(err, catalog.ErrNotFound):
		return nil
	default:
		return op("checking freezes", err)
	}
}

// fileTargets resolves the targets a file's upload was placed on, each
// still in the failure domain it had then.
func (s *Service) fileTargets(ctx context.Context, fid string) ([]storage.Target, error) {
	refs, err := s.Catalog.FileTargets(ctx, fid)
	if err != nil {
		return nil, err
	}
	out := make([]storage.Target, 0, len(refs))
	for _, ref := range refs {
		t, err := s.Targets.Target(ref.ID)
		if err != nil {
			return nil, err
		}
		if t.Domain() != ref.Domain {
			return nil, fmt.Errorf("storage target %q changed failure domain since the upload began", ref.ID)
		}
		out = append(out, t)
	}
	return out, nil
}
