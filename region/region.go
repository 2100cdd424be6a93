// Package region plans and writes region fetches of indexed genomic files:
// from a BAM, CRAM, bgzipped VCF or BCF and its index, the byte ranges
// that hold the records overlapping some regions, and from those a valid,
// smaller file of the same format — as an htsget server does.
//
// Everything here reads through io.ReaderAt, so a caller can hand it a
// remote file that fetches only the pieces a read touches. A plan reads
// the header, the index's chunks for the regions and the end-of-file
// marker; nothing else of the file.
package region

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Format is a genomic file format with region indexes.
type Format int

const (
	BAM Format = iota + 1
	CRAM
	VCF // bgzipped VCF
	BCF
)

func (f Format) String() string {
	switch f {
	case BAM:
		return "BAM"
	case CRAM:
		return "CRAM"
	case VCF:
		return "VCF.gz"
	case BCF:
		return "BCF"
	}
	return "unknown"
}

// FormatOf tells a file's format from its name.
func FormatOf(name string) (Format, error) {
	l := strings.ToLower(name)
	switch {
	case strings.HasSuffix(l, ".bam"):
		return BAM, nil
	case strings.HasSuffix(l, ".cram"):
		return CRAM, nil
	case strings.HasSuffix(l, ".vcf.gz"), strings.HasSuffix(l, ".vcf.bgz"):
		return VCF, nil
	case strings.HasSuffix(l, ".bcf"):
		return BCF, nil
	}
	return 0, fmt.Errorf("%s: region fetch needs a .bam, .cram, .vcf.gz or .bcf file", name)
}

// IndexNames are the names an index of the file name usually has, most
// usual first.
func IndexNames(name string) []string {
	f, err := FormatOf(name)
	if err != nil {
		return nil
	}
	stem := name[:strings.LastIndexByte(name, '.')]
	switch f {
	case BAM:
		return []string{name + ".bai", stem + ".bai", name + ".csi", stem + ".csi"}
	case CRAM:
		return []string{name + ".crai", stem + ".crai"}
	case VCF:
		return []string{name + ".tbi", name + ".csi"}
	case BCF:
		return []string{name + ".csi", stem + ".csi"}
	}
	return nil
}

// Region is part of a reference sequence: 0-based, half-open [Beg, End).
type Region struct {
	Ref      string
	Beg, End int64
	// whole is the region as written when it may also be a reference
	// whose name has a colon (HLA-A*01:01): used if Ref is not a reference.
	whole string
}

// ToEnd is a Region's End when it runs to the end of the reference.
const ToEnd = math.MaxInt64

// ParseRegion parses samtools' region syntax: REF, REF:FROM, REF:FROM-
// or REF:FROM-TO, 1-based and inclusive, with optional thousands commas. A
// reference whose name has a colon is named whole when what follows the
// last colon is not a range.
func ParseRegion(s string) (Region, error) {
	if s == "" || strings.ContainsAny(s, " \t\n") {
		return Region{}, fmt.Errorf("bad region %q: want REF or REF:FROM-TO (1-based, inclusive)", s)
	}
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return Region{Ref: s, End: ToEnd}, nil
	}
	ref, rng := s[:i], strings.ReplaceAll(s[i+1:], ",", "")
	from, to, dash := strings.Cut(rng, "-")
	beg, err := strconv.ParseInt(from, 10, 64)
	if err != nil {
		if strings.Trim(rng, "0123456789-") != "" {
			return Region{Ref: s, End: ToEnd}, nil // a name with a colon
		}
		return Region{}, fmt.Errorf("bad region %q: %q is not a position", s, from)
	}
	if beg < 1 {
		return Region{}, fmt.Errorf("bad region %q: positions start at 1", s)
	}
	r := Region{Ref: ref, Beg: beg - 1, End: ToEnd, whole: s}
	if dash && to != "" {
		end, err := strconv.ParseInt(to, 10, 64)
		if err != nil {
			return Region{}, fmt.Errorf("bad region %q: %q is not a position", s, to)
		}
		if end < beg {
			return Region{}, fmt.Errorf("bad region %q: ends before it starts", s)
		}
		r.End = end
	}
	return r, nil
}

func (r Region) String() string {
	if r.Beg == 0 && r.End == ToEnd {
		return r.Ref
	}
	if r.End == ToEnd {
		return fmt.Sprintf("%s:%d-", r.Ref, r.Beg+1)
	}
	return fmt.Sprintf("%s:%d-%d", r.Ref, r.Beg+1, r.End)
}

// Part is one piece of a planned output, written in order.
type Part struct {
	// Off, End: the bytes of the source the part reads. Until Write has
	// read it, End of a part that ends inside a BGZF block or of a CRAM
	// container is a bound (the block or container header tells the end).
	Off, End int64
	// Virtual: the part is the records in [Beg, Stop) of a BGZF file. The
	// blocks wholly inside are copied as they are; a block cut by Beg or
	// Stop is decompressed, cut at the record boundary and recompressed,
	// so the output never holds part of a record.
	Virtual   bool
	Beg, Stop VOffset
	// Container: the part is the CRAM container at Off, whose header
	// gives its length.
	Container bool
	slices    []craiEntry // the index's slices in the container
	// Literal, if set, is written as it is (an end-of-file marker).
	Literal []byte
}

// Plan is how to write a region file: its parts in order.
type Plan struct {
	Format Format
	Parts  []Part
	// Regions as resolved against the file's references.
	Regions []Region

	src   io.ReaderAt
	size  int64
	major byte // CRAM major version
}

// SourceBytes is how many bytes of the source the plan reads: exact once
// Write has run, an upper bound before.
func (p *Plan) SourceBytes() int64 {
	var n int64
	for _, pt := range p.Parts {
		n += pt.End - pt.Off
	}
	return n
}

// ErrUnknownReference means a region names a reference the file lacks.
var ErrUnknownReference = errors.New("unknown reference")

// Make plans the region file for regions of src (size bytes, of format f)
// with index, the whole index file. It reads only src's header; the
// plan's parts are the header, the chunks or containers overlapping the
// regions (sorted, merged, each once), and the format's end-of-file
// marker. Write reads the parts in file order, so a reader that caches
// the last segment it fetched fetches each segment once.
func Make(src io.ReaderAt, size int64, f Format, index []byte, regions []Region) (*Plan, error) {
	if len(regions) == 0 {
		return nil, errors.New("no region")
	}
	if f == CRAM {
		return planCRAM(src, size, index, regions)
	}
	z := newBGZFReader(src, size)
	var (
		names  []string
		hdrEnd VOffset
		err    error
	)
	switch f {
	case BAM:
		names, hdrEnd, err = bamHeader(z)
	case BCF:
		names, hdrEnd, err = bcfHeader(z)
	case VCF:
		hdrEnd, err = vcfHeaderEnd(z)
	default:
		return nil, fmt.Errorf("unsupported format %v", f)
	}
	if err != nil {
		return nil, err
	}
	idx, err := parseIndex(index)
	if err != nil {
		return nil, err
	}
	if idx.names != nil && f != BAM {
		names = idx.names
	}
	notThis := func(why string, args ...any) error {
		return fmt.Errorf("the %s index is not this file's: %s", idx.kind, fmt.Sprintf(why, args...))
	}
	switch {
	case names == nil:
		return nil, fmt.Errorf("a %s index of a %v file does not name the references", idx.kind, f)
	case f == BAM && len(idx.refs) != len(names):
		// samtools indexes every reference of the header.
		return nil, notThis("it has %d references, the file's header %d", len(idx.refs), len(names))
	case len(idx.refs) > len(names):
		return nil, notThis("it has %d references, the file %d", len(idx.refs), len(names))
	}
	p := &Plan{Format: f, src: src, size: size}
	chunks := []chunk{{0, hdrEnd}}
	for _, r := range regions {
		id, r, err := resolve(names, r)
		if err != nil {
			return nil, err
		}
		p.Regions = append(p.Regions, r)
		chunks = append(chunks, idx.query(id, r.Beg, r.End)...)
	}
	for i, c := range mergeChunks(chunks) {
		// Records start after the header, and an end at (size, 0) is the
		// end of a file without an EOF block.
		switch {
		case i > 0 && c.beg < hdrEnd || i == 0 && c.beg != 0:
			return nil, notThis("it has records at %v, inside the header", c.beg)
		case c.beg.Block() >= size || c.end.Block() > size || c.end.Block() == size && c.end.Within() > 0:
			return nil, notThis("it points past the end of the file")
		}
		end := c.end.Block()
		if c.end.Within() > 0 {
			end = min(end+maxBlockSize, size)
		}
		p.Parts = append(p.Parts, Part{Virtual: true, Beg: c.beg, Stop: c.end, Off: c.beg.Block(), End: end})
	}
	p.Parts = append(p.Parts, Part{Literal: bgzfEOF})
	return p, nil
}

// blockAt returns the size of the BGZF block that starts at off.
func blockAt(src io.ReaderAt, off int64) (int, error) {
	var h [18 + 6]byte
	n, err := src.ReadAt(h[:], off)
	if n < 18 {
		return 0, fmt.Errorf("BGZF block at %d: %w", off, orUnexpectedEOF(err))
	}
	bs, _, err := blockSize(h[:n])
	if err != nil {
		return 0, fmt.Errorf("the index is not this file's: it points to byte %d, where no BGZF block starts (%w)", off, err)
	}
	return bs, nil
}

// parseIndex parses a BAI, CSI or tabix index, telling them by content.
func parseIndex(b []byte) (*binIndex, error) {
	if len(b) >= 4 && string(b[:4]) == "BAI\x01" {
		return parseBAI(b)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return nil, errors.New("the index is neither BAI, CSI nor tabix")
	}
	if x, err := parseCSI(b); err == nil || !strings.Contains(err.Error(), "magic") {
		return x, err
	}
	return parseTabix(b)
}

// resolve finds r's reference among the file's, reading r as a whole
// reference name if its range part is part of a name.
func resolve(names []string, r Region) (int, Region, error) {
	id, err := refID(names, r.Ref)
	if err != nil && r.whole != "" {
		if i := slices.Index(names, r.whole); i >= 0 {
			return i, Region{Ref: r.whole, End: ToEnd}, nil
		}
	}
	r.whole = ""
	return id, r, err
}

// refID finds name among the file's references.
func refID(names []string, name string) (int, error) {
	if i := slices.Index(names, name); i >= 0 {
		return i, nil
	}
	hint := ""
	alt := "chr" + name
	if s, ok := strings.CutPrefix(name, "chr"); ok {
		alt = s
	}
	if slices.Contains(names, alt) {
		hint = fmt.Sprintf("; did you mean %s?", alt)
	} else if len(names) > 0 {
		shown := names[:min(len(names), 5)]
		hint = "; it has " + strings.Join(shown, ", ")
		if len(names) > len(shown) {
			hint += fmt.Sprintf(" and %d more", len(names)-len(shown))
		}
	}
	return 0, fmt.Errorf("%w %q: the file's header does not list it%s", ErrUnknownReference, name, hint)
}

func planCRAM(src io.ReaderAt, size int64, index []byte, regions []Region) (*Plan, error) {
	major, names, hdrEnd, err := cramHeader(src, size)
	if err != nil {
		return nil, err
	}
	entries, err := parseCRAI(index)
	if err != nil {
		return nil, err
	}
	p := &Plan{Format: CRAM, Parts: []Part{{Off: 0, End: hdrEnd}}, src: src, size: size, major: major}
	offsets := map[int64][]craiEntry{}
	for _, r := range regions {
		id, r, err := resolve(names, r)
		if err != nil {
			return nil, err
		}
		p.Regions = append(p.Regions, r)
		for _, e := range entries {
			if int(e.ref) == id && e.start < r.End && max(e.end, e.start+1) > r.Beg {
				offsets[e.container] = append(offsets[e.container], e)
			}
		}
	}
	sorted := make([]int64, 0, len(offsets))
	for o := range offsets {
		sorted = append(sorted, o)
	}
	slices.Sort(sorted)
	for i, o := range sorted {
		if o < hdrEnd || o >= size {
			return nil, fmt.Errorf("the CRAM index is not this file's: it names a container at %d, outside the file's data", o)
		}
		end := size
		if i+1 < len(sorted) {
			end = sorted[i+1]
		}
		p.Parts = append(p.Parts, Part{Container: true, Off: o, End: end, slices: offsets[o]})
	}
	p.Parts = append(p.Parts, Part{Literal: cramEOF[major]})
	return p, nil
}

// CopyFunc copies n bytes of the source at off to w as they are.
type CopyFunc func(w io.Writer, off, n int64) error

// Write writes the planned file to w, reading the plan's source in file
// order; raw, if not nil, does the copies of whole blocks and containers
// (a caller may overlap fetching with writing there). It sets each part's
// End to what it read and returns the bytes written. Memory stays at a few
// blocks whatever the plan.
func Write(w io.Writer, p *Plan, raw CopyFunc) (int64, error) {
	src := p.src
	cw := &countWriter{w: w}
	if raw == nil {
		raw = func(w io.Writer, off, n int64) error {
			_, err := io.Copy(w, io.NewSectionReader(src, off, n))
			return err
		}
	}
	buf := make([]byte, 0, maxBlockSize)
	// part writes data[from:to] of the block at off, as it is when whole,
	// and returns the block's size.
	part := func(off int64, from, to int) (int64, error) {
		size, data, err := readBlock(src, off, buf)
		if err != nil {
			return 0, fmt.Errorf("%w (is the index this file's?)", err)
		}
		to = min(to, len(data))
		switch {
		case from >= to:
		case from == 0 && to == len(data):
			err = raw(cw, off, int64(size))
		default:
			_, err = writeBlocks(cw, data[from:to])
		}
		return int64(size), err
	}
	for i := range p.Parts {
		pt := &p.Parts[i]
		var err error
		switch {
		case pt.Literal != nil:
			_, err = cw.Write(pt.Literal)
		case pt.Container:
			var c cramContainer
			if c, err = readContainer(src, pt.Off, p.size, p.major); err != nil {
				return cw.n, fmt.Errorf("%w (is the index this file's?)", err)
			}
			if c.end() > pt.End {
				return cw.n, fmt.Errorf("the CRAM index is not this file's: the container at %d overlaps the next one it names", pt.Off)
			}
			for _, e := range pt.slices {
				if !c.holds(e) {
					return cw.n, fmt.Errorf("the CRAM index is not this file's: it has a slice of reference %d at %d-%d in the container at %d, which holds reference %d at %d-%d",
						e.ref, e.start+1, e.end, pt.Off, c.ref, c.start, int64(c.start)+int64(c.span)-1)
				}
			}
			pt.End = c.end()
			err = raw(cw, pt.Off, pt.End-pt.Off)
		case !pt.Virtual:
			err = raw(cw, pt.Off, pt.End-pt.Off)
		case pt.Beg.Block() == pt.Stop.Block():
			var n int64
			n, err = part(pt.Beg.Block(), pt.Beg.Within(), pt.Stop.Within())
			pt.End = pt.Off + n
		default:
			b := pt.Beg.Block()
			if pt.Beg.Within() > 0 {
				var n int64
				n, err = part(b, pt.Beg.Within(), maxBlockSize)
				b += n
			} else if _, err = blockAt(src, b); err != nil {
				return cw.n, err
			}
			if err == nil && pt.Stop.Block() > b {
				err = raw(cw, b, pt.Stop.Block()-b)
			}
			pt.End = pt.Stop.Block()
			if err == nil && pt.Stop.Within() > 0 {
				var n int64
				n, err = part(pt.Stop.Block(), 0, pt.Stop.Within())
				pt.End += n
			}
		}
		if err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
