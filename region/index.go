package region

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// chunk is a range [beg, end) of virtual offsets holding whole records.
type chunk struct{ beg, end VOffset }

// binIndex is what BAI, CSI and tabix indexes share: per reference, bins
// of the hierarchical binning scheme with the chunks of records in each,
// and either a linear index (BAI, tabix) or each bin's lowest offset (CSI)
// to skip chunks that end before a query starts.
type binIndex struct {
	minShift, depth int
	refs            []refIndex
	// names are the reference names the index carries (tabix, and CSI of
	// a VCF.gz); nil when they come from the data file's header.
	names []string
	kind  string
}

type refIndex struct {
	bins   map[uint32][]chunk
	loff   map[uint32]VOffset // CSI: lowest record offset per bin
	linear []VOffset          // BAI, tabix: lowest record offset per 16 kb window
}

// maxIndexSize bounds a decompressed index (a whole-genome BAI is tens of
// MB), so a hostile index cannot make the parser allocate without bound.
const maxIndexSize = 1 << 30

// cursor reads little-endian fields from an index, failing once past the
// end instead of panicking.
type cursor struct {
	b   []byte
	err error
}

func (c *cursor) take(n int) []byte {
	if c.err != nil {
		return nil
	}
	if n < 0 || n > len(c.b) {
		c.err = errors.New("index cut short")
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) u32() uint32 {
	if b := c.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (c *cursor) u64() uint64 {
	if b := c.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// count reads an int32 count of items each at least size bytes long and
// refuses one that the rest of the index cannot hold.
func (c *cursor) count(size int, what string) int {
	v := int32(c.u32())
	if c.err != nil {
		return 0
	}
	if v < 0 || int64(v)*int64(size) > int64(len(c.b)) {
		c.err = fmt.Errorf("index says %d %s, more than it holds", v, what)
		return 0
	}
	return int(v)
}

// gunzip decompresses a gzip or BGZF file (all members), up to maxIndexSize.
func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxIndexSize+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxIndexSize {
		return nil, fmt.Errorf("index larger than %d bytes decompressed", maxIndexSize)
	}
	return out, nil
}

// ParseBAI parses a BAM index (.bai, uncompressed).
func parseBAI(b []byte) (*binIndex, error) {
	if !bytes.HasPrefix(b, []byte("BAI\x01")) {
		return nil, errors.New("not a BAI index (no BAI\\1 magic)")
	}
	c := &cursor{b: b[4:]}
	x := &binIndex{minShift: 14, depth: 5, kind: "BAI"}
	x.refs = parseRefs(c, x, c.count(8, "references"), true)
	if c.err != nil {
		return nil, fmt.Errorf("BAI: %w", c.err)
	}
	return x, nil
}

// parseTabix parses a tabix index (.tbi, BGZF-compressed).
func parseTabix(gz []byte) (*binIndex, error) {
	b, err := gunzip(gz)
	if err != nil {
		return nil, fmt.Errorf("tabix index: %w", err)
	}
	if !bytes.HasPrefix(b, []byte("TBI\x01")) {
		return nil, errors.New("not a tabix index (no TBI\\1 magic)")
	}
	c := &cursor{b: b[4:]}
	nref := c.count(4, "references")
	x := &binIndex{minShift: 14, depth: 5, kind: "tabix"}
	x.names = tabixNames(c, nref)
	x.refs = parseRefs(c, x, nref, true)
	if c.err == nil && len(x.refs) != len(x.names) {
		c.err = fmt.Errorf("%d names for %d references", len(x.names), len(x.refs))
	}
	if c.err != nil {
		return nil, fmt.Errorf("tabix index: %w", c.err)
	}
	return x, nil
}

// tabixNames reads the tabix header after n_ref: format, columns, meta
// character, skip, and the NUL-terminated names of nref references.
func tabixNames(c *cursor, nref int) []string {
	c.take(6 * 4)
	names := c.take(c.count(1, "name bytes"))
	if c.err != nil {
		return nil
	}
	out := make([]string, 0, nref)
	for len(names) > 0 && len(out) < nref {
		i := bytes.IndexByte(names, 0)
		if i < 0 {
			c.err = errors.New("reference name not NUL-terminated")
			return nil
		}
		out = append(out, string(names[:i]))
		names = names[i+1:]
	}
	if len(out) != nref {
		c.err = fmt.Errorf("%d reference names for %d references", len(out), nref)
	}
	return out
}

// parseCSI parses a coordinate-sorted index (.csi, BGZF-compressed); for a
// VCF.gz its auxiliary data holds the tabix header with the names.
func parseCSI(gz []byte) (*binIndex, error) {
	b, err := gunzip(gz)
	if err != nil {
		return nil, fmt.Errorf("CSI index: %w", err)
	}
	if !bytes.HasPrefix(b, []byte("CSI\x01")) {
		return nil, errors.New("not a CSI index (no CSI\\1 magic)")
	}
	c := &cursor{b: b[4:]}
	x := &binIndex{minShift: int(int32(c.u32())), depth: int(int32(c.u32())), kind: "CSI"}
	if c.err == nil && (x.minShift < 0 || x.minShift > 32 || x.depth < 0 || x.depth > 10 || x.minShift+3*x.depth > 62) {
		c.err = fmt.Errorf("min_shift %d and depth %d out of range", x.minShift, x.depth)
	}
	aux := c.take(c.count(1, "aux bytes"))
	x.refs = parseRefs(c, x, c.count(8, "references"), false)
	if c.err == nil && len(aux) >= 28 {
		ac := &cursor{b: aux}
		x.names = tabixNames(ac, len(x.refs))
		if ac.err != nil {
			c.err = fmt.Errorf("aux data: %w", ac.err)
		}
	}
	if c.err != nil {
		return nil, fmt.Errorf("CSI index: %w", c.err)
	}
	return x, nil
}

// parseRefs reads nref references' bins (and, with linear, their linear
// indexes).
func parseRefs(c *cursor, x *binIndex, nref int, linear bool) []refIndex {
	maxBin := binFirst(x.depth+1) - 1 // bins past it are pseudo-bins (metadata)
	refs := make([]refIndex, 0, nref)
	chunkSize := 4 + 4
	if !linear {
		chunkSize += 8
	}
	for range nref {
		nbin := c.count(chunkSize, "bins")
		r := refIndex{bins: make(map[uint32][]chunk, nbin)}
		if !linear {
			r.loff = make(map[uint32]VOffset, nbin)
		}
		for range nbin {
			bin := c.u32()
			var loff uint64
			if !linear {
				loff = c.u64()
			}
			nch := c.count(16, "chunks")
			chunks := make([]chunk, 0, nch)
			for range nch {
				ch := chunk{VOffset(c.u64()), VOffset(c.u64())}
				if ch.end > ch.beg {
					chunks = append(chunks, ch)
				}
			}
			if c.err != nil {
				return nil
			}
			if bin > uint32(maxBin) {
				continue
			}
			r.bins[bin] = append(r.bins[bin], chunks...)
			if !linear {
				r.loff[bin] = VOffset(loff)
			}
		}
		if linear {
			n := c.count(8, "linear index entries")
			r.linear = make([]VOffset, n)
			for i := range r.linear {
				r.linear[i] = VOffset(c.u64())
			}
		}
		if c.err != nil {
			return nil
		}
		refs = append(refs, r)
	}
	return refs
}

// binFirst is the first bin of level l.
func binFirst(l int) int { return ((1 << (3 * l)) - 1) / 7 }

// maxPos is the largest coordinate the binning scheme covers.
func (x *binIndex) maxPos() int64 { return 1 << (x.minShift + 3*x.depth) }

// reg2bins lists the bins that may hold records overlapping [beg, end).
func (x *binIndex) reg2bins(beg, end int64) []uint32 {
	end = min(end, x.maxPos())
	if end <= beg {
		return nil
	}
	end--
	var bins []uint32
	s := x.minShift + 3*x.depth
	for l := 0; l <= x.depth; l++ {
		t := int64(binFirst(l))
		for b := t + beg>>s; b <= t+end>>s; b++ {
			bins = append(bins, uint32(b))
		}
		s -= 3
	}
	return bins
}

// minOffset is the lowest virtual offset of a record overlapping beg, as
// htslib computes it: from the linear index, or for CSI from the lowest
// offset of the finest existing bin at or left of beg's.
func (x *binIndex) minOffset(r *refIndex, beg int64) VOffset {
	if r.loff == nil {
		if len(r.linear) == 0 {
			return 0
		}
		i := min(beg>>14, int64(len(r.linear)-1))
		return r.linear[i]
	}
	bin := int64(binFirst(x.depth)) + beg>>x.minShift
	for bin > 0 {
		if v, ok := r.loff[uint32(bin)]; ok {
			return v
		}
		first := ((bin-1)>>3)<<3 + 1
		if bin > first {
			bin--
		} else {
			bin = (bin - 1) >> 3
		}
	}
	return r.loff[0]
}

// query returns the chunks that may hold records of reference ref
// overlapping [beg, end), unsorted.
func (x *binIndex) query(ref int, beg, end int64) []chunk {
	if ref < 0 || ref >= len(x.refs) {
		return nil
	}
	r := &x.refs[ref]
	// Every record overlapping the region lies in [minOff, maxOff): both
	// are record boundaries, so chunks are cut there, which reads what
	// htslib's iterator reads before it stops at the first record past end.
	minOff, maxOff := x.minOffset(r, beg), x.maxOffset(r, end)
	var out []chunk
	for _, b := range x.reg2bins(beg, end) {
		for _, ch := range r.bins[b] {
			if c := (chunk{max(ch.beg, minOff), min(ch.end, maxOff)}); c.end > c.beg {
				out = append(out, c)
			}
		}
	}
	return out
}

// maxOffset is a record boundary at or after the last record that may
// overlap [.., end): the first record of the first finest-level bin that
// starts at or after end. The file is sorted by position, so every record
// starting before end comes before it. With no such bin, no bound.
func (x *binIndex) maxOffset(r *refIndex, end int64) VOffset {
	const none = VOffset(math.MaxUint64)
	if end >= x.maxPos() {
		return none
	}
	w := (end + 1<<x.minShift - 1) >> x.minShift
	last := x.maxPos() >> x.minShift
	for i := 0; w < last && i < maxBoundScan; w, i = w+1, i+1 {
		chunks := r.bins[uint32(int64(binFirst(x.depth))+w)]
		if len(chunks) == 0 {
			continue
		}
		m := none
		for _, c := range chunks {
			m = min(m, c.beg)
		}
		return m
	}
	return none
}

// maxBoundScan is how many finest-level bins after a region maxOffset
// looks at (16 kb each with BAI's scheme: 64 Mb).
const maxBoundScan = 4096

// mergeChunks sorts chunks and merges those that overlap, touch, or meet
// in one BGZF block (whatever lies between two record boundaries is whole
// records, and one block is read once).
func mergeChunks(cs []chunk) []chunk {
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b chunk) int {
		if a.beg != b.beg {
			if a.beg < b.beg {
				return -1
			}
			return 1
		}
		return 0
	})
	var out []chunk
	for _, c := range cs {
		if n := len(out); n > 0 && (c.beg <= out[n-1].end || c.beg.Block() == out[n-1].end.Block()) {
			out[n-1].end = max(out[n-1].end, c.end)
			continue
		}
		out = append(out, c)
	}
	return out
}
