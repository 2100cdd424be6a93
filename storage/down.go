package storage

import (
	"cmp"
	"sync"
	"time"
)

// DownTargets is dozo's one record of which storage targets are down. It
// holds two kinds of mark, and a target is down while either holds:
//
//   - Mark: a target that just failed with an unreachable error is skipped
//     for a while (For), so a stopped server costs one timeout, not one per
//     piece. The reader and the scrubber use these.
//   - SetDown: a verdict that stands until the next SetDown, as dozod's
//     target health keeps it (a probe or a failed request marks a target
//     down, only a probe marks it up again).
//
// Safe for concurrent use; the zero value is ready and holds every target
// up.
type DownTargets struct {
	mu    sync.Mutex
	until map[string]time.Time // Mark: skipped until then
	held  map[string]bool      // SetDown: down until set up
	// For is how long a Mark lasts; 0 means 30s.
	For time.Duration
}

// downFor is how long a Mark lasts when For is 0.
const downFor = 30 * time.Second

// Mark records that target failed now: it is down for For.
func (d *DownTargets) Mark(target string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.until == nil {
		d.until = map[string]time.Time{}
	}
	d.until[target] = time.Now().Add(cmp.Or(d.For, downFor))
}

// SetDown records a standing verdict on target, down or up, which holds
// until the next SetDown. It reports whether the verdict changed. A
// verdict of up does not clear a Mark.
func (d *DownTargets) SetDown(target string, down bool) (changed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held[target] == down {
		return false
	}
	if d.held == nil {
		d.held = map[string]bool{}
	}
	if down {
		d.held[target] = true
	} else {
		delete(d.held, target)
	}
	return true
}

// IsDown reports whether target is marked (within For of its last Mark) or
// held down by SetDown. A nil DownTargets holds no target down.
func (d *DownTargets) IsDown(target string) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held[target] || time.Now().Before(d.until[target])
}
