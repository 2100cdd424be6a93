// Package format encodes and decodes age v1 headers (c2sp.org/age) as bytes.
//
// It only deals with syntax: which bytes are a header, which stanzas and MAC
// it holds, and how to write them back. Wrapping keys, checking the MAC and
// choosing recipients is policy, and lives in the parent package.
//
// Parsing is strict. Parse accepts exactly the canonical encoding that
// Marshal produces, so a parsed header re-encodes to the same bytes and the
// MAC, which age computes over the encoding, authenticates what was read
// rather than some other spelling of it. Marshal refuses everything Parse
// would reject, so whatever this package writes it can read back.
package format

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"filippo.io/age"
)

// Intro is the first line of every age v1 header.
const Intro = "age-encryption.org/v1\n"

// MACSize is the size of the header MAC, an HMAC-SHA-256.
const MACSize = 32

// Limits on what Parse accepts and Marshal produces. The age specification
// sets none; these are dozo's. They bound the memory a hostile header can
// claim and, more importantly, the number of unwrap attempts (each one a
// public key operation or a Vault round trip) it can cost before the MAC can
// be checked, which needs a file key first.
//
// A dozo header holds a Vault Transit stanza and a few escrow recipients,
// about 1.6 KiB per post-quantum one, so these leave ample room.
const (
	MaxHeaderSize = 64 << 10 // bytes, from the intro through the MAC line
	MaxStanzas    = 64
	MaxStanzaArgs = 16 // arguments after the stanza type
)

const (
	columnsPerLine = 64                     // base64 characters in a full body line
	bytesPerLine   = columnsPerLine / 4 * 3 // body bytes in a full body line
	macColumns     = 43                     // base64 characters of a 32-byte MAC
	stanzaPrefix   = "-> "
	footerPrefix   = "---"
	// macLineSize is the length of the closing line: "--- " MAC "\n".
	macLineSize = len(footerPrefix) + 1 + macColumns + 1
)

// b64 is unpadded standard base64 that also rejects non-zero trailing bits,
// so every byte string has exactly one accepted encoding.
var b64 = base64.RawStdEncoding.Strict()

// Header is an age header: its recipient stanzas and its MAC.
type Header struct {
	Stanzas []*age.Stanza
	MAC     []byte
}

// A ParseError reports a header that is malformed, non-canonical or over a
// limit.
type ParseError struct {
	msg string
}

func (e *ParseError) Error() string { return "malformed age header: " + e.msg }

func errorf(format string, a ...any) error {
	return &ParseError{fmt.Sprintf(format, a...)}
}

// Parse parses the header at the start of b and returns it with the length of
// its encoding; b[n:] is whatever follows the header (for an age file, the
// payload nonce). The returned header shares no memory with b.
func Parse(b []byte) (h *Header, n int, err error) {
	// A header longer than the limit is rejected without looking past it.
	view := b[:min(len(b), MaxHeaderSize)]
	truncated := len(b) > len(view)
	short := func(what string) error {
		if truncated {
			return errorf("header is larger than %d bytes", MaxHeaderSize)
		}
		return errorf("unexpected end of input in %s", what)
	}

	if !bytes.HasPrefix(view, []byte(Intro)) {
		if len(view) < len(Intro) && bytes.HasPrefix([]byte(Intro), view) {
			return nil, 0, short("version line")
		}
		return nil, 0, errorf("not an age v1 header")
	}
	pos := len(Intro)
	h = &Header{}
	for {
		line, next, ok := readLine(view, pos)
		if !ok {
			return nil, 0, short("header")
		}
		if bytes.HasPrefix(line, []byte(footerPrefix)) {
			mac, err := parseMACLine(line)
			if err != nil {
				return nil, 0, err
			}
			if len(h.Stanzas) == 0 {
				return nil, 0, errorf("no recipient stanzas")
			}
			h.MAC = mac
			return h, next, nil
		}
		if len(h.Stanzas) == MaxStanzas {
			return nil, 0, errorf("more than %d recipient stanzas", MaxStanzas)
		}
		s, err := parseStanzaLine(line)
		if err != nil {
			return nil, 0, err
		}
		pos = next
		// The body is a run of full lines ended by one shorter line, which
		// may be empty. Only that shape is canonical.
		for {
			line, next, ok := readLine(view, pos)
			if !ok {
				return nil, 0, short("stanza body")
			}
			pos = next
			if len(line) > columnsPerLine {
				return nil, 0, errorf("stanza body line longer than %d columns", columnsPerLine)
			}
			if s.Body, err = appendBase64(s.Body, line); err != nil {
				return nil, 0, errorf("stanza body: %v", err)
			}
			if len(line) < columnsPerLine {
				break
			}
		}
		h.Stanzas = append(h.Stanzas, s)
	}
}

// readLine returns the line of b starting at pos, without its newline, and the
// position after the newline. ok is false if there is no newline.
func readLine(b []byte, pos int) (line []byte, next int, ok bool) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return nil, 0, false
	}
	return b[pos : pos+i], pos + i + 1, true
}

func parseStanzaLine(line []byte) (*age.Stanza, error) {
	rest, ok := bytes.CutPrefix(line, []byte(stanzaPrefix))
	if !ok {
		return nil, errorf("expected a stanza or the MAC line, got %q", truncate(line))
	}
	var fields []string
	for f := range bytes.SplitSeq(rest, []byte(" ")) {
		if !isArg(f) {
			return nil, errorf("invalid stanza argument in %q", truncate(line))
		}
		if len(fields) > MaxStanzaArgs {
			return nil, errorf("stanza has more than %d arguments", MaxStanzaArgs)
		}
		fields = append(fields, string(f))
	}
	return &age.Stanza{Type: fields[0], Args: fields[1:]}, nil
}

func parseMACLine(line []byte) ([]byte, error) {
	enc, ok := bytes.CutPrefix(line, []byte(footerPrefix+" "))
	if !ok || len(enc) != macColumns {
		return nil, errorf("malformed MAC line %q", truncate(line))
	}
	mac, err := appendBase64(nil, enc)
	if err != nil || len(mac) != MACSize {
		return nil, errorf("malformed MAC line %q", truncate(line))
	}
	return mac, nil
}

// appendBase64 decodes s and appends it to dst. Beyond b64's strictness it
// rejects CR and LF, which the standard decoder would silently skip.
func appendBase64(dst, s []byte) ([]byte, error) {
	for _, c := range s {
		if !isBase64Char(c) {
			return nil, errors.New("invalid base64 character")
		}
	}
	n := len(dst)
	dst = append(dst, make([]byte, b64.DecodedLen(len(s)))...)
	m, err := b64.Decode(dst[n:], s)
	if err != nil {
		return nil, errors.New("non-canonical base64")
	}
	return dst[:n+m], nil
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

// isArg reports whether s is a valid stanza type or argument: one or more
// visible ASCII characters.
func isArg[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func truncate(b []byte) []byte {
	const max = 80
	if len(b) > max {
		return b[:max]
	}
	return b
}

// AppendWithoutMAC appends the header encoding up to and including the "---"
// that opens the MAC line: exactly the bytes the MAC authenticates.
func (h *Header) AppendWithoutMAC(dst []byte) ([]byte, error) {
	if len(h.Stanzas) == 0 {
		return nil, errors.New("age header: no recipient stanzas")
	}
	if len(h.Stanzas) > MaxStanzas {
		return nil, fmt.Errorf("age header: more than %d recipient stanzas", MaxStanzas)
	}
	start := len(dst)
	dst = append(dst, Intro...)
	for _, s := range h.Stanzas {
		if s == nil {
			return nil, errors.New("age header: nil stanza")
		}
		if !isArg(s.Type) {
			return nil, fmt.Errorf("age header: invalid stanza type %q", s.Type)
		}
		if len(s.Args) > MaxStanzaArgs {
			return nil, fmt.Errorf("age header: stanza has more than %d arguments", MaxStanzaArgs)
		}
		dst = append(dst, stanzaPrefix...)
		dst = append(dst, s.Type...)
		for _, a := range s.Args {
			if !isArg(a) {
				return nil, fmt.Errorf("age header: invalid stanza argument %q", a)
			}
			dst = append(dst, ' ')
			dst = append(dst, a...)
		}
		dst = append(dst, '\n')
		// Full lines, then a final short line that is empty when the body
		// is a multiple of the line size.
		body := s.Body
		for len(body) >= bytesPerLine {
			dst = b64.AppendEncode(dst, body[:bytesPerLine])
			dst = append(dst, '\n')
			body = body[bytesPerLine:]
		}
		dst = b64.AppendEncode(dst, body)
		dst = append(dst, '\n')
		if len(dst)-start > MaxHeaderSize-macLineSize {
			return nil, fmt.Errorf("age header: larger than %d bytes", MaxHeaderSize)
		}
	}
	return append(dst, footerPrefix...), nil
}

// AppendMAC completes a header started by AppendWithoutMAC with its MAC.
func AppendMAC(dst, mac []byte) ([]byte, error) {
	if len(mac) != MACSize {
		return nil, fmt.Errorf("age header: MAC is %d bytes, want %d", len(mac), MACSize)
	}
	dst = append(dst, ' ')
	dst = b64.AppendEncode(dst, mac)
	return append(dst, '\n'), nil
}

// Marshal returns the canonical encoding of h.
func (h *Header) Marshal() ([]byte, error) {
	b, err := h.AppendWithoutMAC(nil)
	if err != nil {
		return nil, err
	}
	return AppendMAC(b, h.MAC)
}

// WithoutMAC returns the prefix of an encoded header that its MAC covers,
// that is, header minus " <MAC>\n". It must be given exactly a header that
// Parse accepted, with nothing after it.
func WithoutMAC(header []byte) ([]byte, error) {
	cut := len(header) - macLineSize + len(footerPrefix)
	if cut < len(Intro) || !bytes.HasSuffix(header[:cut], []byte("\n"+footerPrefix)) {
		return nil, errors.New("age header: no MAC line at the end of the header")
	}
	return header[:cut], nil
}
