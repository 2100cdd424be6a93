package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned, wrapped, by a Target when the object is absent.
// Test with errors.Is.
var ErrNotFound = errors.New("storage: object not found")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ETag    string // opaque version tag; S3: the ETag, DirTarget: derived from size and mtime
	ModTime time.Time
}

// Target is one place pieces can be stored: an S3 bucket or a directory.
// Implementations are safe for concurrent use and validate every key with
// ValidateKey.
type Target interface {
	// ID is the stable identifier recorded in manifests, e.g. "s1-a".
	ID() string
	// Domain is the failure domain (a server, a rack, a site). Place never
	// puts more than M pieces of a segment in one domain.
	Domain() string
	// Put stores exactly size bytes read from r under key, replacing any
	// existing object. When Put returns nil the object is durable and
	// complete; readers never observe a partial object.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get returns length bytes of the object starting at off (length < 0:
	// to the end). A missing object yields an error wrapping ErrNotFound.
	Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Stat describes the object; missing → ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix, in an
	// unspecified order. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
}

// FilterTargets returns the targets for which ok(ID) is true, in the same
// order, e.g. to exclude targets a health check marked down before Place.
func FilterTargets(targets []Target, ok func(id string) bool) []Target {
	out := make([]Target, 0, len(targets))
	for _, t := range targets {
		if ok(t.ID()) {
			out = append(out, t)
		}
	}
	return out
}
