package crypto

import (
	"context"
	"errors"
	"fmt"

	"filippo.io/age"
)

// KeyWrapper encrypts and decrypts small secrets with a named key held by a
// key service, such as HashiCorp Vault's Transit engine. Implementations must
// use an AEAD and bind associatedData, so that a ciphertext only decrypts with
// the same key name and associated data.
type KeyWrapper interface {
	WrapKey(ctx context.Context, keyName string, plaintext, associatedData []byte) (ciphertext string, err error)
	UnwrapKey(ctx context.Context, keyName string, ciphertext string, associatedData []byte) (plaintext []byte, err error)
}

// TransitStanzaType is the type of the recipient stanza written by
// TransitRecipient:
//
//	-> dozo-transit <keyName>
//	<base64 of the key service ciphertext, e.g. "vault:v3:...">
const TransitStanzaType = "dozo-transit"

// maxTransitCiphertext bounds the ciphertext string in a transit stanza. A
// Vault Transit ciphertext of a 16-byte key is under 100 bytes.
const maxTransitCiphertext = 1024

// transitAssociatedData binds a wrapped file key to the file it belongs to.
// The prefix keeps these ciphertexts apart from anything else the same key
// might encrypt; fileID can't contain NUL, so the encoding is unambiguous.
func transitAssociatedData(fileID string) []byte {
	return []byte("dozo/v1 file-key\x00" + fileID)
}

// TransitRecipient wraps file keys with a KeyWrapper key, bound to one file
// id: the resulting header opens only for that file id, so a header copied
// onto another file fails to open instead of decrypting the wrong payload's
// key.
//
// It carries a context because age.Recipient has no place for one.
type TransitRecipient struct {
	ctx     context.Context
	w       KeyWrapper
	keyName string
	fileID  string
}

var _ age.RecipientWithLabels = (*TransitRecipient)(nil)

// NewTransitRecipient returns a TransitRecipient. keyName and fileID are
// checked when wrapping: each must be 1 to 128 characters of [A-Za-z0-9._-]
// not starting with a dot.
func NewTransitRecipient(ctx context.Context, w KeyWrapper, keyName, fileID string) *TransitRecipient {
	return &TransitRecipient{ctx: ctx, w: w, keyName: keyName, fileID: fileID}
}

// Wrap implements age.Recipient.
func (r *TransitRecipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	s, _, err := r.WrapWithLabels(fileKey)
	return s, err
}

// WrapWithLabels implements age.RecipientWithLabels with the label
// "postquantum": the file key is sealed by a symmetric key inside the key
// service, and the stanza holds no public-key material a quantum computer
// could attack. So it can sit beside post-quantum age recipients
// (age.HybridRecipient), but not beside X25519 ones, which would make the
// header only as strong as X25519.
func (r *TransitRecipient) WrapWithLabels(fileKey []byte) ([]*age.Stanza, []string, error) {
	if err := checkTransitNames(r.w, r.keyName, r.fileID); err != nil {
		return nil, nil, err
	}
	if len(fileKey) != FileKeySize {
		return nil, nil, fmt.Errorf("crypto: file key is %d bytes, want %d", len(fileKey), FileKeySize)
	}
	ct, err := r.w.WrapKey(r.ctx, r.keyName, fileKey, transitAssociatedData(r.fileID))
	if err != nil {
		return nil, nil, fmt.Errorf("crypto: transit wrap with key %q: %w", r.keyName, err)
	}
	if !validTransitCiphertext([]byte(ct)) {
		return nil, nil, errors.New("crypto: transit wrap returned a malformed ciphertext")
	}
	s := &age.Stanza{Type: TransitStanzaType, Args: []string{r.keyName}, Body: []byte(ct)}
	return []*age.Stanza{s}, []string{"postquantum"}, nil
}

// TransitIdentity unwraps file keys wrapped by a TransitRecipient with the
// same key name and file id.
//
// It carries a context because age.Identity has no place for one.
type TransitIdentity struct {
	ctx     context.Context
	w       KeyWrapper
	keyName string
	fileID  string
}

var _ age.Identity = (*TransitIdentity)(nil)

// NewTransitIdentity returns a TransitIdentity. keyName and fileID are checked
// when unwrapping, as for NewTransitRecipient.
func NewTransitIdentity(ctx context.Context, w KeyWrapper, keyName, fileID string) *TransitIdentity {
	return &TransitIdentity{ctx: ctx, w: w, keyName: keyName, fileID: fileID}
}

// Unwrap implements age.Identity. It uses the first dozo-transit stanza naming
// its key, and returns an error wrapping age.ErrIncorrectIdentity if there is
// none. A dozo-transit stanza that is malformed, or whose ciphertext the key
// service refuses (for example because the header belongs to another file
// id), is an error, not a mismatch.
func (i *TransitIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	if err := checkTransitNames(i.w, i.keyName, i.fileID); err != nil {
		return nil, err
	}
	for _, s := range stanzas {
		if s == nil || s.Type != TransitStanzaType {
			continue
		}
		if len(s.Args) != 1 || !validTransitName(s.Args[0]) {
			return nil, errors.New("crypto: malformed dozo-transit stanza arguments")
		}
		if s.Args[0] != i.keyName {
			continue
		}
		if !validTransitCiphertext(s.Body) {
			return nil, errors.New("crypto: malformed dozo-transit stanza body")
		}
		key, err := i.w.UnwrapKey(i.ctx, i.keyName, string(s.Body), transitAssociatedData(i.fileID))
		if err != nil {
			return nil, fmt.Errorf("crypto: transit unwrap with key %q for file %q: %w", i.keyName, i.fileID, err)
		}
		if len(key) != FileKeySize {
			clear(key)
			return nil, fmt.Errorf("crypto: transit unwrap returned %d bytes, want %d", len(key), FileKeySize)
		}
		return key, nil
	}
	return nil, fmt.Errorf("%w: no %s stanza for key %q", age.ErrIncorrectIdentity, TransitStanzaType, i.keyName)
}

func checkTransitNames(w KeyWrapper, keyName, fileID string) error {
	if w == nil {
		return errors.New("crypto: nil KeyWrapper")
	}
	if !validTransitName(keyName) {
		return fmt.Errorf("crypto: invalid transit key name %q", keyName)
	}
	if !validTransitName(fileID) {
		return fmt.Errorf("crypto: invalid file id %q", fileID)
	}
	return nil
}

// validTransitName reports whether s is a usable key name or file id: 1 to 128
// characters of [A-Za-z0-9._-], not starting with a dot. This keeps them safe
// as stanza arguments, in Vault paths and in associated data.
func validTransitName(s string) bool {
	if len(s) == 0 || len(s) > 128 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validTransitCiphertext reports whether b is plausible as a key service
// ciphertext string: 1 to maxTransitCiphertext visible ASCII characters.
func validTransitCiphertext(b []byte) bool {
	if len(b) == 0 || len(b) > maxTransitCiphertext {
		return false
	}
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
