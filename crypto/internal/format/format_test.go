package format

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
)

// realHeaders returns headers written by filippo.io/age itself, to seed tests
// and fuzzing with what dozo will actually see.
func realHeaders(t testing.TB) [][]byte {
	t.Helper()
	x1, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	x2, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	pq, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	scrypt, err := age.NewScryptRecipient("password")
	if err != nil {
		t.Fatal(err)
	}
	scrypt.SetWorkFactor(1)
	sets := [][]age.Recipient{
		{x1.Recipient()},
		{x1.Recipient(), x2.Recipient()},
		{pq.Recipient()},
		{scrypt},
	}
	var out [][]byte
	for _, rs := range sets {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, rs...)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		h, err := age.ExtractHeader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

var testMAC = base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 32))

// hdr builds a header from stanza text, with a syntactically valid MAC line.
func hdr(stanzas string) []byte {
	return []byte(Intro + stanzas + "--- " + testMAC + "\n")
}

func TestRealHeadersRoundTrip(t *testing.T) {
	for _, b := range realHeaders(t) {
		h, n, err := Parse(append(b, "trailing"...))
		if err != nil {
			t.Fatalf("Parse: %v\n%s", err, b)
		}
		if n != len(b) {
			t.Fatalf("Parse consumed %d bytes, header is %d", n, len(b))
		}
		out, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("Marshal changed the header:\n%s\n%s", b, out)
		}
		signed, err := WithoutMAC(b)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := h.AppendWithoutMAC(nil); !bytes.Equal(signed, want) {
			t.Fatalf("WithoutMAC = %q, want %q", signed, want)
		}
	}
}

func TestBodyWrapping(t *testing.T) {
	for _, size := range []int{0, 1, 2, 3, 47, 48, 49, 95, 96, 97, 200} {
		body := bytes.Repeat([]byte{0x5c}, size)
		h := &Header{
			Stanzas: []*age.Stanza{{Type: "t", Args: []string{"a", "b"}, Body: body}},
			MAC:     make([]byte, MACSize),
		}
		b, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		bodyLines := lines[2 : len(lines)-2]
		for i, l := range bodyLines {
			last := i == len(bodyLines)-1
			if !last && len(l) != 64 || last && len(l) >= 64 {
				t.Errorf("size %d: body line %d has %d columns", size, i, len(l))
			}
		}
		if want := size/48 + 1; len(bodyLines) != want {
			t.Errorf("size %d: %d body lines, want %d", size, len(bodyLines), want)
		}
		h2, n, err := Parse(b)
		if err != nil || n != len(b) {
			t.Fatalf("size %d: Parse: %v", size, err)
		}
		if !bytes.Equal(h2.Stanzas[0].Body, body) {
			t.Errorf("size %d: body changed", size)
		}
		// age must read it the same way.
		ab, err := age.ExtractHeader(bytes.NewReader(b))
		if err != nil || !bytes.Equal(ab, b) {
			t.Errorf("size %d: age disagrees: %v", size, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	full := strings.Repeat("A", 64)
	tests := map[string][]byte{
		"empty":                 nil,
		"wrong version":         []byte("age-encryption.org/v2\n-> X\n\n--- " + testMAC + "\n"),
		"CRLF version line":     []byte("age-encryption.org/v1\r\n-> X\n\n--- " + testMAC + "\n"),
		"no stanzas":            hdr(""),
		"stanza without body":   hdr("-> X\n"),
		"no final short line":   hdr("-> X\n" + full + "\n"),
		"long body line":        hdr("-> X\n" + full + "AAAA\n\n"),
		"padding":               hdr("-> X\nAA==\n"),
		"non-zero tail bits":    hdr("-> X\nAB\n"),
		"bad base64 length":     hdr("-> X\nAAAAA\n"),
		"CR in body":            hdr("-> X\nAAAA\r\n"),
		"space in body":         hdr("-> X\nAA AA\n"),
		"no type":               hdr("->\n\n"),
		"empty type":            hdr("-> \n\n"),
		"double space":          hdr("-> X  a\n\n"),
		"trailing space":        hdr("-> X a \n\n"),
		"tab in arg":            hdr("-> X a\tb\n\n"),
		"non-ASCII arg":         hdr("-> X \xc3\xa9\n\n"),
		"DEL in arg":            hdr("-> X a\x7f\n\n"),
		"no space after arrow":  hdr("->X\n\n"),
		"junk line":             hdr("-> X\n\nhello\n"),
		"too many args":         hdr("-> X" + strings.Repeat(" a", MaxStanzaArgs+1) + "\n\n"),
		"MAC line only dashes":  []byte(Intro + "-> X\n\n---\n"),
		"MAC too short":         []byte(Intro + "-> X\n\n--- " + testMAC[:42] + "\n"),
		"MAC too long":          []byte(Intro + "-> X\n\n--- " + testMAC + "A\n"),
		"MAC extra field":       []byte(Intro + "-> X\n\n--- " + testMAC + " x\n"),
		"MAC non-canonical":     []byte(Intro + "-> X\n\n--- " + testMAC[:42] + "B\n"),
		"MAC without newline":   []byte(Intro + "-> X\n\n--- " + testMAC),
		"MAC dashes, no space":  []byte(Intro + "-> X\n\n----" + testMAC + "\n"),
		"MAC two spaces":        []byte(Intro + "-> X\n\n---  " + testMAC[1:] + "\n"),
		"too many stanzas":      hdr(strings.Repeat("-> X\n\n", MaxStanzas+1)),
		"too large":             hdr("-> X " + strings.Repeat("a", MaxHeaderSize) + "\n\n"),
		"too large (body)":      hdr("-> X\n" + strings.Repeat(full+"\n", MaxHeaderSize/65+1) + "\n"),
		"stanza arrow variants": hdr("--> X\n\n"),
	}
	for name, b := range tests {
		if _, _, err := Parse(b); err == nil {
			t.Errorf("%s: Parse accepted %q", name, truncate(b))
		}
	}
}

func TestParseLimitsInclusive(t *testing.T) {
	b := hdr(strings.Repeat("-> X"+strings.Repeat(" a", MaxStanzaArgs)+"\n\n", MaxStanzas))
	if _, _, err := Parse(b); err != nil {
		t.Fatalf("%d stanzas of %d args: %v", MaxStanzas, MaxStanzaArgs, err)
	}
	// A header of exactly MaxHeaderSize bytes.
	pad := MaxHeaderSize - len(hdr("-> X \n\n"))
	b = hdr("-> X " + strings.Repeat("a", pad) + "\n\n")
	if len(b) != MaxHeaderSize {
		t.Fatalf("test header is %d bytes", len(b))
	}
	h, n, err := Parse(append(b, 0, 1, 2))
	if err != nil || n != MaxHeaderSize {
		t.Fatalf("header of MaxHeaderSize bytes: n=%d, %v", n, err)
	}
	if out, err := h.Marshal(); err != nil || !bytes.Equal(out, b) {
		t.Fatalf("Marshal of MaxHeaderSize header: %v", err)
	}
	h.Stanzas[0].Args[0] += "a"
	if _, err := h.Marshal(); err == nil {
		t.Fatal("Marshal wrote a header over MaxHeaderSize")
	}
}

func TestParseTruncated(t *testing.T) {
	for _, b := range realHeaders(t) {
		for i := range len(b) {
			if _, _, err := Parse(b[:i]); err == nil {
				t.Fatalf("Parse accepted a header truncated to %d of %d bytes", i, len(b))
			}
		}
	}
}

func TestMarshalRejects(t *testing.T) {
	mac := make([]byte, MACSize)
	tests := map[string]*Header{
		"no stanzas":     {MAC: mac},
		"nil stanza":     {Stanzas: []*age.Stanza{nil}, MAC: mac},
		"empty type":     {Stanzas: []*age.Stanza{{}}, MAC: mac},
		"space in type":  {Stanzas: []*age.Stanza{{Type: "a b"}}, MAC: mac},
		"empty arg":      {Stanzas: []*age.Stanza{{Type: "X", Args: []string{""}}}, MAC: mac},
		"newline in arg": {Stanzas: []*age.Stanza{{Type: "X", Args: []string{"a\n"}}}, MAC: mac},
		"short MAC":      {Stanzas: []*age.Stanza{{Type: "X"}}, MAC: mac[:31]},
		"too many args":  {Stanzas: []*age.Stanza{{Type: "X", Args: make([]string, MaxStanzaArgs+1)}}, MAC: mac},
	}
	for i := range tests["too many args"].Stanzas[0].Args {
		tests["too many args"].Stanzas[0].Args[i] = "a"
	}
	many := &Header{MAC: mac}
	for range MaxStanzas + 1 {
		many.Stanzas = append(many.Stanzas, &age.Stanza{Type: "X"})
	}
	tests["too many stanzas"] = many
	for name, h := range tests {
		if b, err := h.Marshal(); err == nil {
			t.Errorf("%s: Marshal returned %q", name, b)
		}
	}
}

func TestWithoutMACRejects(t *testing.T) {
	for _, b := range []string{"", "---", Intro, Intro + "-> X\n\n--- x\n"} {
		if _, err := WithoutMAC([]byte(b)); err == nil {
			t.Errorf("WithoutMAC(%q) succeeded", b)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, b := range realHeaders(f) {
		f.Add(b)
		f.Add(append(b, bytes.Repeat([]byte{'\n'}, 16)...))
	}
	f.Add(hdr("-> X\n\n"))
	f.Add(hdr("-> X a b\n" + strings.Repeat("A", 64) + "\nAA\n"))
	f.Add(hdr("-> X\n" + strings.Repeat("A", 64) + "\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) || n > MaxHeaderSize {
			t.Fatalf("Parse returned length %d for %d bytes", n, len(b))
		}
		if len(h.Stanzas) == 0 || len(h.Stanzas) > MaxStanzas || len(h.MAC) != MACSize {
			t.Fatalf("Parse returned an out-of-limits header")
		}
		out, err := h.Marshal()
		if err != nil {
			t.Fatalf("Marshal of parsed header: %v", err)
		}
		if !bytes.Equal(out, b[:n]) {
			t.Fatalf("not canonical:\nin  %q\nout %q", b[:n], out)
		}
		h2, n2, err := Parse(out)
		if err != nil || n2 != len(out) {
			t.Fatalf("re-Parse: n=%d, %v", n2, err)
		}
		if !equal(h, h2) {
			t.Fatalf("re-Parse differs")
		}
		signed, err := WithoutMAC(out)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := h.AppendWithoutMAC(nil); !bytes.Equal(signed, want) {
			t.Fatalf("WithoutMAC = %q, want %q", signed, want)
		}
		// Whatever dozo accepts, age must accept and encode identically, or
		// the MAC we check would not be the MAC age checks.
		ab, err := age.ExtractHeader(io.MultiReader(bytes.NewReader(out), bytes.NewReader(make([]byte, 16))))
		if err != nil {
			t.Fatalf("age rejects a header Parse accepted: %v", err)
		}
		if !bytes.Equal(ab, out) {
			t.Fatalf("age re-encodes differently:\ndozo %q\nage  %q", out, ab)
		}
	})
}

func equal(a, b *Header) bool {
	if !bytes.Equal(a.MAC, b.MAC) || len(a.Stanzas) != len(b.Stanzas) {
		return false
	}
	for i := range a.Stanzas {
		s, r := a.Stanzas[i], b.Stanzas[i]
		if s.Type != r.Type || !bytes.Equal(s.Body, r.Body) || strings.Join(s.Args, " ") != strings.Join(r.Args, " ") || len(s.Args) != len(r.Args) {
			return false
		}
	}
	return true
}
