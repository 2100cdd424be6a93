package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func sampleManifest(tb testing.TB, size int64) *Manifest {
	tb.Helper()
	l := Layout{K: 4, M: 2, SegmentSize: 64}
	var segs []SegmentMeta
	for i := 0; int64(i)*l.SegmentSize < size; i++ {
		s := min(l.SegmentSize, size-int64(i)*l.SegmentSize)
		seg := SegmentMeta{Index: i, Size: s, PieceSize: pieceSize(s, l.K)}
		for j := range l.Shards() {
			seg.Pieces = append(seg.Pieces, PieceMeta{Target: fmt.Sprintf("s%d-%c", j%3+1, 'a'+j/3), Hash: hashHex(HashBLAKE3, []byte{byte(i), byte(j)})})
		}
		segs = append(segs, seg)
	}
	m, err := NewManifest("ds1", "file1", l, HashBLAKE3, segs)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// leaves calls fn for every settable scalar field reachable from v.
func leaves(v reflect.Value, path string, fn func(path string, f reflect.Value)) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			leaves(v.Field(i), path+"."+v.Type().Field(i).Name, fn)
		}
	case reflect.Slice:
		for i := range v.Len() {
			leaves(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	default:
		fn(path, v)
	}
}

func TestManifestSignVerifyDetectsEveryField(t *testing.T) {
	ctx := context.Background()
	auth := NewHMACAuthenticator([]byte("test key 0123456789"))
	m := sampleManifest(t, 64*2+10)
	if err := m.Sign(ctx, auth); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(ctx, auth); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(ctx, NewHMACAuthenticator([]byte("other key"))); !errors.Is(err, ErrBadMAC) {
		t.Errorf("wrong key: %v", err)
	}
	n := 0
	leaves(reflect.ValueOf(m).Elem(), "m", func(path string, f reflect.Value) {
		if strings.HasSuffix(path, ".MAC") {
			return
		}
		old := reflect.ValueOf(f.Interface())
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.String:
			s := f.String()
			f.SetString(s[:len(s)-1] + string(s[len(s)-1]^1))
		default:
			t.Fatalf("%s: unhandled kind %v", path, f.Kind())
		}
		if err := m.Verify(ctx, auth); !errors.Is(err, ErrBadMAC) {
			t.Errorf("changing %s: Verify = %v", path, err)
		}
		f.Set(old)
		n++
	})
	if n < 50 {
		t.Fatalf("only %d fields mutated", n)
	}
	// Structural changes: dropping a segment or a piece.
	c := *m
	c.Segments = c.Segments[:2]
	if c.Verify(ctx, auth) == nil {
		t.Error("dropped segment not detected")
	}
	if err := m.Verify(ctx, auth); err != nil {
		t.Fatalf("restored manifest: %v", err)
	}
	mac := m.MAC
	m.MAC = ""
	if m.Verify(ctx, auth) == nil {
		t.Error("unsigned manifest verified")
	}
	m.MAC = mac
	// The encoding round-trips to the same signing bytes.
	b, _ := m.Marshal()
	p, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(ctx, auth); err != nil {
		t.Fatalf("parsed manifest: %v", err)
	}
	sb1, _ := m.SigningBytes()
	sb2, _ := p.SigningBytes()
	if !bytes.Equal(sb1, sb2) || !bytes.HasPrefix(sb1, []byte(signingContext)) {
		t.Error("signing bytes differ after round trip")
	}
	// Empty manifest (zero-length stream) signs and parses too.
	e := sampleManifest(t, 0)
	if err := e.Sign(ctx, auth); err != nil {
		t.Fatal(err)
	}
	b, _ = e.Marshal()
	if p, err := ParseManifest(b); err != nil || p.Verify(ctx, auth) != nil {
		t.Fatalf("empty manifest: %v", err)
	}
}

func TestParseManifestRejects(t *testing.T) {
	good, _ := sampleManifest(t, 64*3+5).Marshal()
	if _, err := ParseManifest(good); err != nil {
		t.Fatal(err)
	}
	g := string(good)
	firstHash := sampleManifest(t, 64*3+5).Segments[0].Pieces[0].Hash
	cases := map[string]string{
		"unknown top field":    strings.Replace(g, `{"version":1`, `{"version":1,"extra":1`, 1),
		"unknown nested field": strings.Replace(g, `"piece_size":16,`, `"piece_size":16,"x":0,`, 1),
		"unknown piece field":  strings.Replace(g, `{"target":"s1-a"`, `{"evil":true,"target":"s1-a"`, 1),
		"trailing data":        g + "{}",
		"trailing garbage":     g + "x",
		"not json":             "hello",
		"null":                 "null",
		"empty":                "",
		"array":                "[]",
		"version 2":            strings.Replace(g, `"version":1`, `"version":2`, 1),
		"version 0":            strings.Replace(g, `"version":1`, `"version":0`, 1),
		"negative size":        strings.Replace(g, `"size":197`, `"size":-197`, 1),
		"size mismatch":        strings.Replace(g, `"size":197`, `"size":198`, 1),
		"huge size":            strings.Replace(g, `"size":197`, `"size":9223372036854775807`, 1),
		"negative seg size":    strings.Replace(g, `"index":3,"size":5`, `"index":3,"size":-5`, 1),
		"wrong piece size":     strings.Replace(g, `"index":3,"size":5,"piece_size":2`, `"index":3,"size":5,"piece_size":3`, 1),
		"wrong index":          strings.Replace(g, `"index":1,`, `"index":2,`, 1),
		"short segment mid":    strings.Replace(strings.Replace(g, `"index":1,"size":64`, `"index":1,"size":60`, 1), `"size":197`, `"size":193`, 1),
		"too few pieces":       strings.Replace(g, `{"target":"s1-a","hash":"`+firstHash+`"},`, ``, 1),
		"duplicate target":     strings.Replace(g, `"target":"s2-a"`, `"target":"s1-a"`, 1),
		"bad hash":             strings.Replace(g, firstHash, firstHash[:63], 1),
		"uppercase hash":       strings.Replace(g, firstHash, strings.ToUpper(firstHash), 1),
		"bad alg":              strings.Replace(g, `"hash_alg":"blake3"`, `"hash_alg":"md5"`, 1),
		"k zero":               strings.Replace(g, `"k":4`, `"k":0`, 1),
		"m negative":           strings.Replace(g, `"m":2`, `"m":-2`, 1),
		"k+m too big":          strings.Replace(g, `"k":4`, `"k":400`, 1),
		"huge segment size":    strings.Replace(g, `"segment_size":64`, `"segment_size":4294967296`, 1),
		"seg size not mult k":  strings.Replace(g, `"segment_size":64`, `"segment_size":66`, 1),
		"traversal dataset":    strings.Replace(g, `"dataset":"ds1"`, `"dataset":".."`, 1),
		"slash file":           strings.Replace(g, `"file":"file1"`, `"file":"a/../../b"`, 1),
		"empty file":           strings.Replace(g, `"file":"file1"`, `"file":""`, 1),
		"nul file":             strings.Replace(g, `"file":"file1"`, `"file":"a\u0000b"`, 1),
		"bad target id":        strings.Replace(g, `"target":"s1-a"`, `"target":"../s1-a"`, 1),
		"float size":           strings.Replace(g, `"size":197`, `"size":197.5`, 1),
		"string k":             strings.Replace(g, `"k":4`, `"k":"4"`, 1),
		"mac with space":       strings.Replace(g, `{"version":1`, `{"mac":"a b","version":1`, 1),
		"huge segment count":   `{"version":1,"dataset":"d","file":"f","k":1,"m":0,"segment_size":1,"size":100000000000,"hash_alg":"sha256","segments":[]}`,
		"many empty objects":   `{"version":1,"segments":[` + strings.Repeat(`{},`, 100000) + `{}]}`,
		"deep nesting":         strings.Repeat("[", 100000),
	}
	for name, s := range cases {
		if s == g {
			t.Errorf("%s: test case did not change the manifest", name)
			continue
		}
		if _, err := ParseManifest([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseManifest(make([]byte, MaxManifestSize+1)); err == nil {
		t.Error("oversized manifest accepted")
	}
}

func TestNewManifest(t *testing.T) {
	m := sampleManifest(t, 64*3+5)
	segs := m.Segments
	rev := []SegmentMeta{segs[3], segs[1], segs[0], segs[2]}
	m2, err := NewManifest("ds1", "file1", m.Layout(), HashBLAKE3, rev)
	if err != nil || !reflect.DeepEqual(m, m2) {
		t.Errorf("NewManifest does not order segments: %v", err)
	}
	if _, err := NewManifest("ds1", "file1", m.Layout(), HashBLAKE3, append(segs, segs[1])); err == nil {
		t.Error("duplicate segment accepted")
	}
	if _, err := NewManifest("ds1", "file1", m.Layout(), HashBLAKE3, segs[1:]); err == nil {
		t.Error("missing segment 0 accepted")
	}
	if _, err := NewManifest("ds1", "file1", m.Layout(), HashBLAKE3, []SegmentMeta{segs[0], segs[1], segs[3]}); err == nil {
		t.Error("gap accepted")
	}
}

func FuzzParseManifest(f *testing.F) {
	for _, size := range []int64{0, 1, 64, 200} {
		b, _ := sampleManifest(f, size).Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"segments":[{"pieces":[{}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		// Anything accepted is valid, re-encodes to something accepted with
		// the same signing bytes, and describes a sane stream.
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		b2, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseManifest(b2)
		if err != nil {
			t.Fatalf("re-encoded manifest rejected: %v", err)
		}
		s1, _ := m.SigningBytes()
		s2, _ := m2.SigningBytes()
		if !bytes.Equal(s1, s2) {
			t.Fatal("signing bytes changed across a round trip")
		}
		var sum int64
		for _, s := range m.Segments {
			if s.Size <= 0 || s.Size > m.SegmentSize || s.PieceSize*int64(m.K) < s.Size {
				t.Fatalf("bad segment %+v", s)
			}
			sum += s.Size
			for j := range s.Pieces {
				if ValidateKey(PieceKey(m.DatasetID, m.FileID, s.Index, j)) != nil {
					t.Fatal("piece key invalid")
				}
			}
		}
		if sum != m.Size {
			t.Fatal("segments do not add up")
		}
	})
}
