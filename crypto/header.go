package crypto

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"slices"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto/internal/format"
)

// Limits on the headers this package reads and writes. age sets none; these
// bound the work a hostile header can cause before its MAC can be checked.
const (
	MaxHeaderSize = format.MaxHeaderSize // bytes, intro through MAC line
	MaxStanzas    = format.MaxStanzas    // recipient stanzas per header
	MaxStanzaArgs = format.MaxStanzaArgs // arguments per stanza, after the type
)

// Header is a parsed age header.
type Header struct {
	Stanzas []*age.Stanza
	MAC     []byte // 32 bytes
}

// ParseHeader parses an age header, which must be all of b. It accepts only
// the canonical encoding, within [MaxHeaderSize], [MaxStanzas] and
// [MaxStanzaArgs], so Marshal returns b exactly. It does not authenticate
// anything: that needs the file key, see [OpenHeader].
func ParseHeader(b []byte) (*Header, error) {
	h, n, err := format.Parse(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, errors.New("crypto: trailing data after age header (a header object? use SplitHeaderObject)")
	}
	return (*Header)(h), nil
}

// Marshal returns the canonical encoding of h. It fails for anything
// ParseHeader would reject.
func (h *Header) Marshal() ([]byte, error) {
	return (*format.Header)(h).Marshal()
}

// WriteHeader wraps fileKey to every recipient and returns the age header,
// through its MAC line. The MAC, keyed by fileKey, makes the header
// unmodifiable by anyone who can't unwrap it.
//
// Like age.Encrypt, it refuses recipients with different labels (see
// age.RecipientWithLabels), so for example a post-quantum recipient is never
// weakened by a classic X25519 one next to it.
func WriteHeader(fileKey []byte, recipients ...age.Recipient) ([]byte, error) {
	if len(fileKey) != FileKeySize {
		return nil, fmt.Errorf("crypto: file key is %d bytes, want %d", len(fileKey), FileKeySize)
	}
	if len(recipients) == 0 {
		return nil, errors.New("crypto: no recipients")
	}
	hdr := &format.Header{}
	var labels []string
	for i, r := range recipients {
		if r == nil {
			return nil, fmt.Errorf("crypto: recipient #%d is nil", i)
		}
		stanzas, l, err := wrapWithLabels(r, fileKey)
		if err != nil {
			return nil, fmt.Errorf("crypto: wrapping file key for recipient #%d: %w", i, err)
		}
		l = slices.Sorted(slices.Values(l))
		if i == 0 {
			labels = l
		} else if !slices.Equal(labels, l) {
			return nil, incompatibleLabels(labels, l)
		}
		hdr.Stanzas = append(hdr.Stanzas, stanzas...)
	}
	b, err := hdr.AppendWithoutMAC(nil)
	if err != nil {
		return nil, fmt.Errorf("crypto: %w", err)
	}
	return format.AppendMAC(b, headerMAC(fileKey, b))
}

func wrapWithLabels(r age.Recipient, fileKey []byte) ([]*age.Stanza, []string, error) {
	if r, ok := r.(age.RecipientWithLabels); ok {
		return r.WrapWithLabels(fileKey)
	}
	s, err := r.Wrap(fileKey)
	return s, nil, err
}

func incompatibleLabels(a, b []string) error {
	if slices.Contains(a, "postquantum") != slices.Contains(b, "postquantum") {
		return errors.New("crypto: can't mix post-quantum and classic recipients: the file would be open to quantum attacks")
	}
	return fmt.Errorf("crypto: recipients with labels %q and %q can't be mixed", a, b)
}

// NewHeaderObject returns the header object dozo stores: the age header for
// recipients followed by nonce.
func NewHeaderObject(fileKey, nonce []byte, recipients ...age.Recipient) ([]byte, error) {
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("crypto: nonce is %d bytes, want %d", len(nonce), NonceSize)
	}
	h, err := WriteHeader(fileKey, recipients...)
	if err != nil {
		return nil, err
	}
	return append(h, nonce...), nil
}

// SplitHeaderObject separates a header object into the age header and the
// nonce. The header must parse (see [ParseHeader]) and be followed by exactly
// NonceSize bytes. Both results alias obj, with capacity clipped so appending
// to one can't overwrite the other.
func SplitHeaderObject(obj []byte) (header, nonce []byte, err error) {
	_, n, err := format.Parse(obj)
	if err != nil {
		return nil, nil, err
	}
	if len(obj)-n != NonceSize {
		return nil, nil, fmt.Errorf("crypto: header object has %d bytes after the header, want %d", len(obj)-n, NonceSize)
	}
	return obj[:n:n], obj[n:len(obj):len(obj)], nil
}

// OpenHeader unwraps the file key from header, which must be a bare header
// (see [OpenHeaderObject] for header objects), and checks the header MAC
// before returning the key: a returned key always comes with a header that
// was written by someone holding it, byte for byte.
//
// Identities are tried in order; one that returns an error wrapping
// age.ErrIncorrectIdentity is skipped, any other error is returned. If none
// matches the error is an *age.NoIdentityMatchError.
func OpenHeader(header []byte, identities ...age.Identity) (fileKey []byte, err error) {
	h, n, err := format.Parse(header)
	if err != nil {
		return nil, err
	}
	if n != len(header) {
		return nil, errors.New("crypto: trailing data after age header (a header object? use OpenHeaderObject)")
	}
	fileKey, err = unwrap(h.Stanzas, identities)
	if err != nil {
		return nil, err
	}
	signed, err := format.WithoutMAC(header)
	if err != nil {
		clear(fileKey)
		return nil, err
	}
	// The MAC is computed over the bytes as received. Parse only accepts the
	// canonical encoding, so these are also the bytes age would recompute.
	if !hmac.Equal(headerMAC(fileKey, signed), h.MAC) {
		clear(fileKey)
		return nil, errors.New("crypto: bad header MAC")
	}
	return fileKey, nil
}

// OpenHeaderObject is [OpenHeader] for a header object; it also returns the
// nonce, a copy.
func OpenHeaderObject(obj []byte, identities ...age.Identity) (fileKey, nonce []byte, err error) {
	header, nonce, err := SplitHeaderObject(obj)
	if err != nil {
		return nil, nil, err
	}
	fileKey, err = OpenHeader(header, identities...)
	if err != nil {
		return nil, nil, err
	}
	return fileKey, slices.Clone(nonce), nil
}

func unwrap(stanzas []*age.Stanza, identities []age.Identity) ([]byte, error) {
	if len(identities) == 0 {
		return nil, errors.New("crypto: no identities")
	}
	noMatch := &age.NoIdentityMatchError{}
	for _, s := range stanzas {
		noMatch.StanzaTypes = append(noMatch.StanzaTypes, s.Type)
	}
	for i, id := range identities {
		if id == nil {
			return nil, fmt.Errorf("crypto: identity #%d is nil", i)
		}
		key, err := id.Unwrap(stanzas)
		if errors.Is(err, age.ErrIncorrectIdentity) {
			noMatch.Errors = append(noMatch.Errors, err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("crypto: unwrapping file key: %w", err)
		}
		// Identities are pluggable; don't let one hand out a key of the
		// wrong size, which HKDF would accept without complaint.
		if len(key) != FileKeySize {
			clear(key)
			return nil, fmt.Errorf("crypto: identity #%d returned a %d-byte file key", i, len(key))
		}
		return key, nil
	}
	return nil, noMatch
}

// Rewrap opens header with identity and returns a new header that wraps the
// same file key to recipients. The payload, its nonce and so its chunks are
// unchanged. Rewrapping does not revoke anyone who already learned the file
// key or kept the old header.
func Rewrap(header []byte, identity age.Identity, recipients ...age.Recipient) ([]byte, error) {
	fileKey, err := OpenHeader(header, identity)
	if err != nil {
		return nil, err
	}
	defer clear(fileKey)
	return WriteHeader(fileKey, recipients...)
}

// RewrapHeaderObject is [Rewrap] for a header object; the new object keeps
// the old nonce.
func RewrapHeaderObject(obj []byte, identity age.Identity, recipients ...age.Recipient) ([]byte, error) {
	header, nonce, err := SplitHeaderObject(obj)
	if err != nil {
		return nil, err
	}
	h, err := Rewrap(header, identity, recipients...)
	if err != nil {
		return nil, err
	}
	return append(h, nonce...), nil
}
