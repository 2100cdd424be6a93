package region

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
)

// cramEOF is the empty container that ends a CRAM file, by major version
// (CRAM spec 9; 3.1 uses 3.0's).
var cramEOF = map[byte][]byte{
	2: {0x0b, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xe0, 0x45, 0x4f, 0x46, 0x00, 0x00,
		0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x06, 0x06, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00},
	3: {0x0f, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xe0, 0x45, 0x4f, 0x46, 0x00, 0x00,
		0x00, 0x00, 0x01, 0x00, 0x05, 0xbd, 0xd9, 0x4f, 0x00, 0x01, 0x00, 0x06, 0x06, 0x01, 0x00,
		0x01, 0x00, 0x01, 0x00, 0xee, 0x63, 0x01, 0x4b},
}

// cramDefLen is the file definition: "CRAM", major, minor, 20-byte file id.
const cramDefLen = 26

// maxContainerHeader bounds a container header: fixed fields plus the
// landmarks (one per slice).
const maxContainerHeader = 64 << 10

// bytesReader decodes CRAM's variable-length integers from a byte slice.
type bytesReader struct {
	b   []byte
	err error
}

func (r *bytesReader) byte1() byte {
	if r.err != nil || len(r.b) == 0 {
		if r.err == nil {
			r.err = io.ErrUnexpectedEOF
		}
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// itf8 decodes a CRAM ITF8 integer (1 to 5 bytes).
func (r *bytesReader) itf8() int32 {
	b0 := uint32(r.byte1())
	switch {
	case b0 < 0x80:
		return int32(b0)
	case b0 < 0xc0:
		return int32((b0&0x3f)<<8 | uint32(r.byte1()))
	case b0 < 0xe0:
		return int32((b0&0x1f)<<16 | uint32(r.byte1())<<8 | uint32(r.byte1()))
	case b0 < 0xf0:
		return int32((b0&0x0f)<<24 | uint32(r.byte1())<<16 | uint32(r.byte1())<<8 | uint32(r.byte1()))
	default:
		return int32((b0&0x0f)<<28 | uint32(r.byte1())<<20 | uint32(r.byte1())<<12 | uint32(r.byte1())<<4 | uint32(r.byte1())&0x0f)
	}
}

// ltf8 decodes a CRAM LTF8 integer (1 to 9 bytes).
func (r *bytesReader) ltf8() int64 {
	b0 := r.byte1()
	n := 0 // leading one bits: extra bytes
	for n < 8 && b0&(0x80>>n) != 0 {
		n++
	}
	var v uint64
	if n < 7 {
		v = uint64(b0 & (0x7f >> n))
	}
	for range n {
		v = v<<8 | uint64(r.byte1())
	}
	return int64(v)
}

// cramContainer is what the planner needs of a container header.
type cramContainer struct {
	offset      int64 // of the container header
	headerLen   int   // its length
	length      int64 // of the data after it
	ref         int32
	start, span int32 // 1-based alignment start and span of a single-reference container
	records     int32
}

func (c cramContainer) end() int64 { return c.offset + int64(c.headerLen) + c.length }

// readContainer parses the container header at off.
func readContainer(r io.ReaderAt, off, size int64, major byte) (cramContainer, error) {
	buf := make([]byte, min(maxContainerHeader, size-off))
	if len(buf) < 4 {
		return cramContainer{}, fmt.Errorf("CRAM container at %d: file ends", off)
	}
	if n, err := r.ReadAt(buf, off); n < len(buf) {
		return cramContainer{}, fmt.Errorf("CRAM container at %d: %w", off, orUnexpectedEOF(err))
	}
	c, err := parseContainerHeader(buf, major)
	if err != nil {
		return c, fmt.Errorf("CRAM container at %d: %w", off, err)
	}
	c.offset = off
	if c.end() > size {
		return c, fmt.Errorf("CRAM container at %d: %d bytes long, past the end of the file", off, c.length)
	}
	return c, nil
}

// parseContainerHeader parses a container header at the start of b.
func parseContainerHeader(b []byte, major byte) (cramContainer, error) {
	if len(b) < 4 {
		return cramContainer{}, io.ErrUnexpectedEOF
	}
	c := cramContainer{length: int64(int32(binary.LittleEndian.Uint32(b)))}
	if c.length < 0 {
		return c, fmt.Errorf("negative length %d", c.length)
	}
	r := &bytesReader{b: b[4:]}
	c.ref = r.itf8()
	c.start = r.itf8()
	c.span = r.itf8()
	c.records = r.itf8()
	r.ltf8() // record counter
	r.ltf8() // bases
	r.itf8() // blocks
	n := r.itf8()
	if n < 0 || int(n) > len(r.b) {
		return c, fmt.Errorf("bad landmark count %d", n)
	}
	for range n {
		r.itf8()
	}
	if r.err != nil {
		return c, r.err
	}
	c.headerLen = len(b) - len(r.b)
	if major >= 3 {
		// CRAM 3 ends the header with the CRC-32 of what precedes it: the
		// check that an offset from an index is a container of this file.
		if len(r.b) < 4 {
			return c, io.ErrUnexpectedEOF
		}
		if crc32.ChecksumIEEE(b[:c.headerLen]) != binary.LittleEndian.Uint32(r.b) {
			return c, errors.New("no container header there (CRC-32 mismatch)")
		}
		c.headerLen += 4
	}
	return c, nil
}

// cramHeader reads the file definition and the header container and
// returns the major version, the reference names from the SAM header and
// the offset where the first data container starts.
func cramHeader(r io.ReaderAt, size int64) (major byte, names []string, end int64, err error) {
	var def [cramDefLen]byte
	if n, err := r.ReadAt(def[:], 0); n < cramDefLen {
		return 0, nil, 0, fmt.Errorf("CRAM file definition: %w", orUnexpectedEOF(err))
	}
	if string(def[:4]) != "CRAM" {
		return 0, nil, 0, errors.New("not a CRAM file (no CRAM magic)")
	}
	major = def[4]
	if cramEOF[major] == nil {
		return 0, nil, 0, fmt.Errorf("CRAM version %d.%d is not supported (2.x and 3.x are)", def[4], def[5])
	}
	c, err := readContainer(r, cramDefLen, size, major)
	if err != nil {
		return 0, nil, 0, err
	}
	// The SAM header is the container's first block.
	data := make([]byte, min(c.length, maxHeader))
	if n, err := r.ReadAt(data, c.offset+int64(c.headerLen)); n < len(data) {
		return 0, nil, 0, fmt.Errorf("CRAM header container: %w", orUnexpectedEOF(err))
	}
	text, err := cramHeaderText(data)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("CRAM header container: %w", err)
	}
	names, err = samRefNames(text)
	if err != nil {
		return 0, nil, 0, err
	}
	return major, names, c.end(), nil
}

// cramHeaderText extracts the SAM header text from the header container's
// first block (raw or gzip).
func cramHeaderText(b []byte) ([]byte, error) {
	r := &bytesReader{b: b}
	method := r.byte1()
	r.byte1() // content type
	r.itf8()  // content id
	csize, rsize := r.itf8(), r.itf8()
	if r.err != nil {
		return nil, r.err
	}
	if csize < 0 || int(csize) > len(r.b) || rsize < 0 || rsize > maxHeader {
		return nil, fmt.Errorf("header block sizes %d/%d out of range", csize, rsize)
	}
	raw := r.b[:csize]
	switch method {
	case 0:
	case 1:
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		out, err := io.ReadAll(io.LimitReader(zr, int64(rsize)+1))
		if err != nil {
			return nil, err
		}
		raw = out
	default:
		return nil, fmt.Errorf("header block compressed with method %d (raw and gzip are supported)", method)
	}
	if len(raw) < 4 {
		return nil, errors.New("header block too short")
	}
	l := int32(binary.LittleEndian.Uint32(raw))
	if l < 0 || int(l) > len(raw)-4 {
		return nil, fmt.Errorf("header text length %d out of range", l)
	}
	return raw[4 : 4+l], nil
}

// craiEntry is one line of a CRAM index: a slice's reference, alignment
// start (1-based) and span, and its container's offset.
type craiEntry struct {
	ref        int32
	start, end int64 // 0-based, half-open
	container  int64
}

// holds tells whether container c, as its header describes it, can hold
// the slice e describes: same reference, and the slice's span inside the
// container's. Multi-reference and unmapped containers are not checked.
func (c cramContainer) holds(e craiEntry) bool {
	if c.ref < 0 {
		return true
	}
	from := int64(c.start) - 1
	return c.ref == e.ref && from <= e.start && e.end <= from+int64(c.span)
}

// parseCRAI parses a gzipped CRAM index.
func parseCRAI(gz []byte) ([]craiEntry, error) {
	b, err := gunzip(gz)
	if err != nil {
		return nil, fmt.Errorf("CRAM index: %w", err)
	}
	var out []craiEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<16)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" {
			continue
		}
		f := strings.Fields(t)
		if len(f) != 6 {
			return nil, fmt.Errorf("CRAM index line %d: %d fields, want 6", line, len(f))
		}
		var v [6]int64
		for i, s := range f {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("CRAM index line %d: %w", line, err)
			}
			v[i] = n
		}
		if v[0] < -1 || v[0] > 1<<31-1 || v[1] < 0 || v[2] < 0 || v[3] < 0 || v[1] > 1<<40 || v[2] > 1<<40 {
			return nil, fmt.Errorf("CRAM index line %d: value out of range", line)
		}
		start := max(v[1]-1, 0)
		out = append(out, craiEntry{ref: int32(v[0]), start: start, end: start + v[2], container: v[3]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("CRAM index: %w", err)
	}
	return out, nil
}
