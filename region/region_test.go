package region

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

// baiBuilder writes a hand-made BAI.
type baiBuilder struct{ b bytes.Buffer }

func (w *baiBuilder) u32(v uint32) { binary.Write(&w.b, binary.LittleEndian, v) }
func (w *baiBuilder) u64(v uint64) { binary.Write(&w.b, binary.LittleEndian, v) }

type testRef struct {
	bins   map[uint32][]chunk
	linear []VOffset
}

func makeBAI(refs []testRef) []byte {
	var w baiBuilder
	w.b.WriteString("BAI\x01")
	w.u32(uint32(len(refs)))
	for _, r := range refs {
		keys := make([]uint32, 0, len(r.bins))
		for k := range r.bins {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.u32(uint32(len(keys)))
		for _, k := range keys {
			w.u32(k)
			w.u32(uint32(len(r.bins[k])))
			for _, c := range r.bins[k] {
				w.u64(uint64(c.beg))
				w.u64(uint64(c.end))
			}
		}
		w.u32(uint32(len(r.linear)))
		for _, v := range r.linear {
			w.u64(uint64(v))
		}
	}
	return w.b.Bytes()
}

func v(block int64, within int) VOffset { return voffset(block, within) }

func TestReg2Bins(t *testing.T) {
	x := &binIndex{minShift: 14, depth: 5}
	got := x.reg2bins(0, 1)
	if want := []uint32{0, 1, 9, 73, 585, 4681}; !slices.Equal(got, want) {
		t.Fatalf("reg2bins(0,1) = %v, want %v", got, want)
	}
	// [16384, 32768) is the second 16 kb window only.
	got = x.reg2bins(16384, 32768)
	if want := []uint32{0, 1, 9, 73, 585, 4682}; !slices.Equal(got, want) {
		t.Fatalf("reg2bins(16384,32768) = %v, want %v", got, want)
	}
	if got := x.reg2bins(5, 5); got != nil {
		t.Fatalf("empty region has bins %v", got)
	}
}

func TestQueryHandMadeBAI(t *testing.T) {
	// Reference 0: window 0 holds records in block 100, window 1 in block
	// 200, window 5 in block 500; a long record in bin 585 sits at 150.
	idx := makeBAI([]testRef{{
		bins: map[uint32][]chunk{
			4681:  {{v(100, 10), v(100, 900)}},
			4682:  {{v(200, 0), v(200, 700)}},
			4686:  {{v(500, 0), v(600, 20)}},
			585:   {{v(150, 0), v(150, 50)}},
			37450: {{v(1, 1), v(2, 2)}}, // pseudo-bin: ignored
		},
		linear: []VOffset{v(100, 10), v(150, 0), v(150, 0), v(150, 0), v(150, 0), v(500, 0)},
	}, {}})
	x, err := parseBAI(idx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := x.refs[0].bins[37450]; ok {
		t.Fatal("pseudo-bin kept as a bin")
	}
	cases := []struct {
		beg, end int64
		want     []chunk
	}{
		// Window 0 only: its block, and the long record's (bin 585 overlaps
		// everything below 128 kb); the bound is window 1's first record.
		{0, 100, []chunk{{v(100, 10), v(100, 900)}, {v(150, 0), v(150, 50)}}},
		// Window 1: the linear index drops window 0's chunk.
		{16384, 16500, []chunk{{v(150, 0), v(150, 50)}, {v(200, 0), v(200, 700)}}},
		// Window 5: records from 500 on; the long record ends before it.
		{5 * 16384, 5*16384 + 1, []chunk{{v(500, 0), v(600, 20)}}},
		// Far away: nothing.
		{100 << 20, 101 << 20, nil},
	}
	for _, c := range cases {
		got := mergeChunks(x.query(0, c.beg, c.end))
		if !slices.Equal(got, c.want) {
			t.Errorf("query(%d, %d) = %v, want %v", c.beg, c.end, got, c.want)
		}
	}
	if got := x.query(1, 0, ToEnd); got != nil {
		t.Errorf("empty reference: %v", got)
	}
	if got := x.query(7, 0, ToEnd); got != nil {
		t.Errorf("missing reference: %v", got)
	}
}

func TestMergeChunks(t *testing.T) {
	in := []chunk{
		{v(500, 0), v(600, 0)},
		{v(100, 0), v(200, 5)},
		{v(150, 0), v(180, 0)},  // inside the previous
		{v(200, 5), v(300, 0)},  // touches it
		{v(300, 10), v(310, 0)}, // starts in the block the previous ends in
		{v(700, 0), v(800, 0)},
	}
	got := mergeChunks(in)
	want := []chunk{{v(100, 0), v(310, 0)}, {v(500, 0), v(600, 0)}, {v(700, 0), v(800, 0)}}
	if !slices.Equal(got, want) {
		t.Fatalf("merged %v, want %v", got, want)
	}
}

func TestParseRegion(t *testing.T) {
	good := map[string]Region{
		"chr20":                     {Ref: "chr20", Beg: 0, End: ToEnd},
		"chr20:1000000-2000000":     {Ref: "chr20", Beg: 999999, End: 2000000},
		"chr20:1,000,000-2,000,000": {Ref: "chr20", Beg: 999999, End: 2000000},
		"chr20:5":                   {Ref: "chr20", Beg: 4, End: ToEnd},
		"chr20:5-":                  {Ref: "chr20", Beg: 4, End: ToEnd},
		"HLA-A*01:01:1-10":          {Ref: "HLA-A*01:01", Beg: 0, End: 10},
		"chr1:x-5":                  {Ref: "chr1:x-5", Beg: 0, End: ToEnd},
	}
	for s, want := range good {
		got, err := ParseRegion(s)
		got.whole = ""
		if err != nil || got != want {
			t.Errorf("ParseRegion(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "chr1:0-5", "chr1:10-5", "chr1:5-x", "a b"} {
		if _, err := ParseRegion(s); err == nil {
			t.Errorf("ParseRegion(%q) accepted", s)
		}
	}
}

func TestResolveNameWithColon(t *testing.T) {
	names := []string{"chr1", "HLA-A*01:01"}
	r, _ := ParseRegion("HLA-A*01:01")
	id, r, err := resolve(names, r)
	if err != nil || id != 1 || r.Ref != "HLA-A*01:01" || r.Beg != 0 || r.End != ToEnd {
		t.Fatalf("resolve HLA-A*01:01 = %d %+v %v", id, r, err)
	}
	r, _ = ParseRegion("chr2:1-5")
	if _, _, err := resolve(names, r); err == nil {
		t.Fatal("unknown reference resolved")
	}
	r, _ = ParseRegion("1:1-5")
	if _, _, err := resolve(names, r); err == nil || !strings.Contains(err.Error(), "did you mean chr1") {
		t.Fatalf("no hint for chr prefix: %v", err)
	}
}

func TestIndexNames(t *testing.T) {
	got := IndexNames("NA12878.bam")
	want := []string{"NA12878.bam.bai", "NA12878.bai", "NA12878.bam.csi", "NA12878.csi"}
	if !slices.Equal(got, want) {
		t.Fatalf("%v", got)
	}
	if got := IndexNames("x.vcf.gz"); !slices.Equal(got, []string{"x.vcf.gz.tbi", "x.vcf.gz.csi"}) {
		t.Fatalf("%v", got)
	}
	if IndexNames("x.fastq.gz") != nil {
		t.Fatal("names for an unindexable file")
	}
}

func TestBGZFRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("ACGTTGCA"), 20000) // 160000 bytes: three blocks
	var f bytes.Buffer
	if _, err := writeBlocks(&f, data); err != nil {
		t.Fatal(err)
	}
	f.Write(bgzfEOF)
	z := newBGZFReader(bytes.NewReader(f.Bytes()), int64(f.Len()))
	var got bytes.Buffer
	if _, err := got.ReadFrom(z); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("round trip differs")
	}
	// The stock gzip reader reads it too (BGZF is multi-member gzip).
	zr, err := gzip.NewReader(bytes.NewReader(f.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var std bytes.Buffer
	std.ReadFrom(zr)
	if !bytes.Equal(std.Bytes(), data) {
		t.Fatal("gzip reads other data")
	}
}

// A plan cuts blocks at record boundaries: a chunk starting and ending
// inside blocks yields exactly its bytes, whole blocks between copied.
func TestWriteCutsBlocks(t *testing.T) {
	var f bytes.Buffer
	var offs []int64
	for i := range 4 {
		offs = append(offs, int64(f.Len()))
		writeBlocks(&f, bytes.Repeat([]byte{byte('a' + i)}, 1000))
	}
	offs = append(offs, int64(f.Len()))
	f.Write(bgzfEOF)
	p := &Plan{src: bytes.NewReader(f.Bytes()), size: int64(f.Len()), Parts: []Part{
		{Virtual: true, Beg: v(offs[0], 900), Stop: v(offs[2], 10)},
		{Virtual: true, Beg: v(offs[3], 5), Stop: v(offs[3], 7)},
		{Literal: bgzfEOF},
	}}
	var out bytes.Buffer
	if _, err := Write(&out, p, nil); err != nil {
		t.Fatal(err)
	}
	z := newBGZFReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
	var got bytes.Buffer
	if _, err := got.ReadFrom(z); err != nil {
		t.Fatal(err)
	}
	want := string(bytes.Repeat([]byte("a"), 100)) + string(bytes.Repeat([]byte("b"), 1000)) + "cccccccccc" + "dd"
	if got.String() != want {
		t.Fatalf("wrote %q..., want %q...", got.String()[:20], want[:20])
	}
}

func TestITF8LTF8(t *testing.T) {
	cases := []struct {
		b    []byte
		itf8 int32
	}{
		{[]byte{0x05}, 5},
		{[]byte{0x81, 0x00}, 256},
		{[]byte{0xc1, 0x00, 0x00}, 65536},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, -1},
	}
	for _, c := range cases {
		r := &bytesReader{b: c.b}
		if got := r.itf8(); got != c.itf8 || r.err != nil || len(r.b) != 0 {
			t.Errorf("itf8(%x) = %d (%v, %d left), want %d", c.b, got, r.err, len(r.b), c.itf8)
		}
	}
	r := &bytesReader{b: []byte{0xff, 0, 0, 0, 0, 0, 0, 1, 2}}
	if got := r.ltf8(); got != 0x0102 || len(r.b) != 0 {
		t.Errorf("ltf8 9-byte = %d", got)
	}
	r = &bytesReader{b: []byte{0xe0, 1, 2, 3}}
	if got := r.ltf8(); got != 0x010203 {
		t.Errorf("ltf8 4-byte = %#x", got)
	}
}

func TestBadIndexes(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":      nil,
		"text":       []byte("hello"),
		"short BAI":  []byte("BAI\x01\x05\x00\x00\x00"),
		"huge count": append([]byte("BAI\x01"), 0xff, 0xff, 0xff, 0x7f),
	} {
		if _, err := parseIndex(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
