package mount

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
)

// ErrCacheFull is returned by Reserve when the reservation would leave
// less than the asked headroom for decrypted segments.
var ErrCacheFull = errors.New("mount: segment cache budget exhausted by open files")

// segKey names one decrypted segment: a stored file (by its catalog ID,
// which changes when a name is uploaded again) and a segment index.
type segKey struct {
	file string
	seg  int64
}

type segEntry struct {
	key   segKey
	size  int64
	data  []byte        // set once ready is closed and err is nil; never written after
	err   error         // set before ready is closed
	ready chan struct{} // closed when the load ended
	elem  *list.Element // position in the LRU; nil once dropped
}

// CacheStats are cumulative counters of a Cache.
type CacheStats struct {
	Hits, Misses, Evictions, Loads int64
	Used, Reserved, Limit          int64 // bytes now
}

// Cache is a byte-bounded LRU of decrypted segments, shared by every file
// of a mount. It keeps this property: once no load is in flight, the bytes
// of the segments it holds plus the bytes reserved (Reserve) are at most
// its limit. Segments being loaded count against the limit but cannot be
// evicted, so the limit can be exceeded only by loads in flight, which
// the caller bounds (FUSE's request concurrency, one readahead per file).
//
// A segment's buffer is never reused or written after it is filled: a
// reader copying out of an evicted segment still sees its bytes, and the
// garbage collector frees them afterwards. Nothing is written to disk.
//
// Concurrent readers of a missing segment share one load; a failed load
// is not cached.
type Cache struct {
	mu       sync.Mutex
	limit    int64
	used     int64 // sizes of entries in m, ready or loading
	reserved int64
	lru      list.List // *segEntry, most recently used first
	m        map[segKey]*segEntry

	hits, misses, evictions, loads int64
}

// NewCache returns a Cache holding at most limit bytes.
func NewCache(limit int64) *Cache {
	return &Cache{limit: limit, m: map[segKey]*segEntry{}}
}

// Read copies into p the bytes of segment k from offset off within the
// segment and returns how many it copied (up to the segment's end). On a
// miss, load fills a new buffer of size bytes with the segment; it must
// fill all of it or fail.
func (c *Cache) Read(k segKey, size int64, off int64, p []byte, load func([]byte) error) (int, error) {
	if off < 0 || off > size {
		return 0, fmt.Errorf("mount: offset %d outside segment of %d bytes", off, size)
	}
	e, err := c.get(k, size, load)
	if err != nil {
		return 0, err
	}
	return copy(p, e.data[off:]), nil
}

// Warm starts loading segment k in the background unless it is cached or
// being loaded. It reports whether it started a load.
func (c *Cache) Warm(k segKey, size int64, load func([]byte) error) bool {
	c.mu.Lock()
	if _, ok := c.m[k]; ok {
		c.mu.Unlock()
		return false
	}
	e := c.insertLocked(k, size)
	c.mu.Unlock()
	go c.fill(e, load)
	return true
}

// get returns the ready entry for k, loading it on a miss.
// A reader that waited for another's load which failed (a readahead cut
// short, say) loads once itself rather than inherit that error.
func (c *Cache) get(k segKey, size int64, load func([]byte) error) (*segEntry, error) {
	c.mu.Lock()
	if e, ok := c.m[k]; ok {
		c.lru.MoveToFront(e.elem)
		c.hits++
		c.mu.Unlock()
		<-e.ready
		if e.err == nil {
			return e, nil
		}
		c.mu.Lock()
		if e2, ok := c.m[k]; ok {
			// Someone else is already loading it again.
			c.mu.Unlock()
			<-e2.ready
			if e2.err != nil {
				return nil, e2.err
			}
			return e2, nil
		}
	} else {
		c.misses++
	}
	e := c.insertLocked(k, size)
	c.mu.Unlock()
	c.fill(e, load)
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// insertLocked adds a loading entry for k and evicts to make room.
func (c *Cache) insertLocked(k segKey, size int64) *segEntry {
	e := &segEntry{key: k, size: size, ready: make(chan struct{})}
	e.elem = c.lru.PushFront(e)
	c.m[k] = e
	c.used += size
	c.loads++
	c.evictLocked()
	return e
}

// fill runs load for e and publishes the result.
func (c *Cache) fill(e *segEntry, load func([]byte) error) {
	buf := make([]byte, e.size)
	err := load(buf)
	c.mu.Lock()
	if err != nil {
		e.err = err
		c.dropLocked(e)
	} else {
		e.data = buf
	}
	c.mu.Unlock()
	close(e.ready)
}

// evictLocked drops least recently used ready entries until the cache is
// within its limit or only loading entries are left.
func (c *Cache) evictLocked() {
	for el := c.lru.Back(); el != nil && c.used+c.reserved > c.limit; {
		prev := el.Prev()
		e := el.Value.(*segEntry)
		select {
		case <-e.ready:
			c.dropLocked(e)
			c.evictions++
		default: // loading: its reader is waiting for it
		}
		el = prev
	}
}

func (c *Cache) dropLocked(e *segEntry) {
	if e.elem == nil {
		return
	}
	c.lru.Remove(e.elem)
	e.elem = nil
	delete(c.m, e.key)
	c.used -= e.size
}

// Reserve sets n bytes of the limit aside for memory held outside the
// cache (an open file's reader keeps its last stored segments), evicting
// segments to make room. It fails with ErrCacheFull if fewer than headroom
// bytes would be left for segments. release gives the bytes back; calling
// it more than once is harmless.
func (c *Cache) Reserve(n, headroom int64) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reserved+n+headroom > c.limit {
		return nil, ErrCacheFull
	}
	c.reserved += n
	c.evictLocked()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.reserved -= n
			c.mu.Unlock()
		})
	}, nil
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Hits: c.hits, Misses: c.misses, Evictions: c.evictions, Loads: c.loads,
		Used: c.used, Reserved: c.reserved, Limit: c.limit}
}
