package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/dozo-vault/dozo/storage"
)

// degradedStorage follows the segments of one fetch that needed parity:
// at the first it says, once, which targets failed and how; of all it
// keeps the failed targets for the report. Parity may cover for different
// targets in different segments, so the notice names those of the first
// degraded segment, the report all. Its methods may be called from any
// goroutine.
type degradedStorage struct {
	say func(format string, args ...any)
	// dataset and name, set for a file of a batch, begin the notice, so
	// that it says which of the files it is about.
	dataset, name string
	// debug gives each failure's full error in the notice, not only its
	// target and reason.
	debug bool

	once   sync.Once
	mu     sync.Mutex
	failed map[string]bool
}

// segment is the fetch's OnDegraded: segment seg needed parity because of
// failures.
func (d *degradedStorage) segment(seg int, failures []storage.PieceFailure) {
	d.mu.Lock()
	if d.failed == nil {
		d.failed = map[string]bool{}
	}
	for _, f := range failures {
		d.failed[f.Target] = true
	}
	d.mu.Unlock()
	d.once.Do(func() {
		// One line, once: which targets failed and how. The full errors
		// are for --debug.
		var fs []string
		for _, f := range failures {
			if d.debug {
				fs = append(fs, f.String())
			} else {
				fs = append(fs, fmt.Sprintf("%s %s", f.Target, f.Reason))
			}
		}
		say := d.say // under this name TestMessagesHaveJapanese finds the texts
		if d.name != "" {
			say("%s/%s: storage is degraded (segment %d: %s); the data is rebuilt from parity and intact, but tell the operators so they can repair it", d.dataset, d.name, seg, strings.Join(fs, ", "))
			return
		}
		say("storage is degraded (segment %d: %s); the data is rebuilt from parity and intact, but tell the operators so they can repair it", seg, strings.Join(fs, ", "))
	})
}

// targets are the targets that failed in any segment, sorted; empty, not
// nil, when none did, so that the JSON report says [] and not null.
func (d *degradedStorage) targets() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string{}, slices.Sorted(maps.Keys(d.failed))...)
}
