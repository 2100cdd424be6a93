package crypto_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/vault/vaulttest"
)

func TestHeaderObjectLayout(t *testing.T) {
	id := newX25519(t)
	s := encrypt(t, []byte("hello"), id.Recipient())

	header, nonce, err := crypto.SplitHeaderObject(s.obj)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(nonce, s.nonce) {
		t.Fatal("SplitHeaderObject returned the wrong nonce")
	}
	if !bytes.HasPrefix(header, []byte("age-encryption.org/v1\n-> X25519 ")) {
		t.Fatalf("unexpected header:\n%s", header)
	}
	if n := headerLen(t, s.file()); n != len(header) {
		t.Fatalf("age sees a %d-byte header, SplitHeaderObject %d", n, len(header))
	}
	// Appending to the header must not clobber the nonce.
	_ = append(header, 'x')
	if !bytes.Equal(nonce, s.nonce) {
		t.Fatal("header and nonce share capacity")
	}

	h, err := crypto.ParseHeader(header)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Stanzas) != 1 || h.Stanzas[0].Type != "X25519" || len(h.MAC) != 32 {
		t.Fatalf("unexpected parsed header %+v", h)
	}
	if out, err := h.Marshal(); err != nil || !bytes.Equal(out, header) {
		t.Fatalf("Marshal did not round-trip: %v", err)
	}

	key, err := crypto.OpenHeader(header, id)
	if err != nil || !bytes.Equal(key, s.fileKey) {
		t.Fatalf("OpenHeader = %x, %v", key, err)
	}
	key, nonce2, err := crypto.OpenHeaderObject(s.obj, id)
	if err != nil || !bytes.Equal(key, s.fileKey) || !bytes.Equal(nonce2, s.nonce) {
		t.Fatalf("OpenHeaderObject = %x, %x, %v", key, nonce2, err)
	}

	// Headers and header objects are not interchangeable.
	if _, err := crypto.ParseHeader(s.obj); err == nil {
		t.Error("ParseHeader accepted a header object")
	}
	if _, err := crypto.OpenHeader(s.obj, id); err == nil {
		t.Error("OpenHeader accepted a header object")
	}
	if _, _, err := crypto.SplitHeaderObject(header); err == nil {
		t.Error("SplitHeaderObject accepted a bare header")
	}
	if _, _, err := crypto.SplitHeaderObject(s.obj[:len(s.obj)-1]); err == nil {
		t.Error("SplitHeaderObject accepted a 15-byte nonce")
	}
	if _, _, err := crypto.SplitHeaderObject(append(s.obj[:len(s.obj):len(s.obj)], 0)); err == nil {
		t.Error("SplitHeaderObject accepted a 17-byte nonce")
	}
}

func TestWriteHeaderArguments(t *testing.T) {
	id := newX25519(t)
	key, _ := crypto.NewFileKey()
	if _, err := crypto.WriteHeader(key); err == nil {
		t.Error("WriteHeader with no recipients succeeded")
	}
	if _, err := crypto.WriteHeader(key[:15], id.Recipient()); err == nil {
		t.Error("WriteHeader with a 15-byte key succeeded")
	}
	if _, err := crypto.WriteHeader(key, nil); err == nil {
		t.Error("WriteHeader with a nil recipient succeeded")
	}
	if _, err := crypto.NewHeaderObject(key, make([]byte, 12), id.Recipient()); err == nil {
		t.Error("NewHeaderObject with a 12-byte nonce succeeded")
	}
	var many []age.Recipient
	for range crypto.MaxStanzas + 1 {
		many = append(many, id.Recipient())
	}
	if _, err := crypto.WriteHeader(key, many...); err == nil {
		t.Error("WriteHeader wrote more stanzas than ParseHeader accepts")
	}
}

func TestWriteHeaderLabels(t *testing.T) {
	x1, x2 := newX25519(t), newX25519(t)
	pq1, pq2 := newHybrid(t), newHybrid(t)
	transit := crypto.NewTransitRecipient(context.Background(), vaulttest.NewKeys("ds1"), "ds1", "file1")
	scrypt, _ := age.NewScryptRecipient("pw")
	scrypt.SetWorkFactor(1)
	key, _ := crypto.NewFileKey()

	ok := [][]age.Recipient{
		{x1.Recipient(), x2.Recipient()},
		{pq1.Recipient(), pq2.Recipient()},
		{transit, pq1.Recipient()},
		{pq1.Recipient(), transit},
		{scrypt},
	}
	for i, rs := range ok {
		if _, err := crypto.WriteHeader(key, rs...); err != nil {
			t.Errorf("set %d: %v", i, err)
		}
	}
	bad := [][]age.Recipient{
		{x1.Recipient(), pq1.Recipient()},
		{pq1.Recipient(), x1.Recipient()},
		{transit, x1.Recipient()},
		{scrypt, x1.Recipient()},
		{scrypt, scrypt},
	}
	for i, rs := range bad {
		if _, err := crypto.WriteHeader(key, rs...); err == nil {
			t.Errorf("mixed set %d accepted", i)
		}
	}
}

// keyIdentity is an age.Identity that returns a fixed key or error.
type keyIdentity struct {
	key []byte
	err error
}

func (k keyIdentity) Unwrap([]*age.Stanza) ([]byte, error) { return k.key, k.err }

func TestOpenHeaderErrors(t *testing.T) {
	id, other := newX25519(t), newX25519(t)
	s := encrypt(t, nil, id.Recipient())
	header, _, _ := crypto.SplitHeaderObject(s.obj)

	if _, err := crypto.OpenHeader(header); err == nil {
		t.Error("no identities: succeeded")
	}
	_, err := crypto.OpenHeader(header, other)
	var noMatch *age.NoIdentityMatchError
	if !errors.As(err, &noMatch) || !errors.Is(err, age.ErrIncorrectIdentity) {
		t.Errorf("wrong identity: got %v, want a NoIdentityMatchError", err)
	}
	// Identities are tried in order, skipping mismatches.
	if key, err := crypto.OpenHeader(header, other, id); err != nil || !bytes.Equal(key, s.fileKey) {
		t.Errorf("second identity: %v", err)
	}
	fatal := errors.New("token expired")
	if _, err := crypto.OpenHeader(header, keyIdentity{err: fatal}, id); !errors.Is(err, fatal) {
		t.Errorf("fatal identity error: got %v", err)
	}
	if _, err := crypto.OpenHeader(header, keyIdentity{key: make([]byte, 32)}); err == nil {
		t.Error("32-byte file key accepted")
	}
	// A key that unwraps but doesn't match the MAC.
	wrong := bytes.Clone(s.fileKey)
	wrong[0] ^= 1
	if _, err := crypto.OpenHeader(header, keyIdentity{key: wrong}); err == nil || !strings.Contains(err.Error(), "MAC") {
		t.Errorf("wrong key: got %v, want a MAC error", err)
	}
	if _, err := crypto.OpenHeader(header, keyIdentity{key: bytes.Clone(s.fileKey)}); err != nil {
		t.Errorf("right key: %v", err)
	}
}

// TestHeaderTamper flips every bit of a header object in turn. Neither this
// package nor age may accept any of them.
func TestHeaderTamper(t *testing.T) {
	id, pq := newX25519(t), newHybrid(t)
	ft := vaulttest.NewKeys("ds1")
	tid := crypto.NewTransitIdentity(context.Background(), ft, "ds1", "file1")
	pt := plaintext(crypto.ChunkSize+10, 1)
	allBits := []byte{1, 2, 4, 8, 16, 32, 64, 128}

	cases := []struct {
		name string
		s    sealed
		ids  []age.Identity
		bits []byte
	}{
		{"X25519", encrypt(t, pt, id.Recipient(), newX25519(t).Recipient()), []age.Identity{id}, allBits},
		{"transit", encrypt(t, pt, crypto.NewTransitRecipient(context.Background(), ft, "ds1", "file1")), []age.Identity{tid}, allBits},
		// Post-quantum unwrapping is slower; one bit per byte.
		{"hybrid", encrypt(t, pt, pq.Recipient()), []age.Identity{pq}, []byte{1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := c.s.file()
			checkDecrypts(t, file, pt, c.ids...)
			header, _, err := crypto.SplitHeaderObject(c.s.obj)
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.s.obj {
				for _, bit := range c.bits {
					file[i] ^= bit
					if i < len(header) {
						if _, err := crypto.OpenHeader(file[:len(header)], c.ids...); err == nil {
							t.Fatalf("OpenHeader accepted byte %d ^ %#x", i, bit)
						}
					}
					if _, err := ageDecrypt(file, c.ids...); err == nil {
						t.Fatalf("age.Decrypt accepted byte %d ^ %#x", i, bit)
					}
					file[i] ^= bit
				}
			}
		})
	}
}

func TestHeaderStanzaInjection(t *testing.T) {
	id, attacker := newX25519(t), newX25519(t)
	s := encrypt(t, []byte("secret"), id.Recipient())
	header, _, _ := crypto.SplitHeaderObject(s.obj)
	h, err := crypto.ParseHeader(header)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := attacker.Recipient().Wrap(make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	h.Stanzas = append(h.Stanzas, extra...)
	forged, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypto.OpenHeader(forged, id); err == nil {
		t.Error("OpenHeader accepted a header with an added stanza")
	}
	// Dropping stanzas is caught the same way.
	two := encrypt(t, nil, id.Recipient(), attacker.Recipient())
	header, _, _ = crypto.SplitHeaderObject(two.obj)
	h, _ = crypto.ParseHeader(header)
	h.Stanzas = h.Stanzas[:1]
	forged, _ = h.Marshal()
	if _, err := crypto.OpenHeader(forged, id); err == nil {
		t.Error("OpenHeader accepted a header with a stanza removed")
	}
}

func TestRewrap(t *testing.T) {
	old, newID, pq := newX25519(t), newX25519(t), newHybrid(t)
	pt := plaintext(2*crypto.ChunkSize+3, 2)
	s := encrypt(t, pt, old.Recipient())

	obj, err := crypto.RewrapHeaderObject(s.obj, old, newID.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	_, nonce, err := crypto.SplitHeaderObject(obj)
	if err != nil || !bytes.Equal(nonce, s.nonce) {
		t.Fatalf("nonce changed: %v", err)
	}
	file := append(obj, s.payload...)
	checkDecrypts(t, file, pt, newID)
	if _, err := ageDecrypt(file, old); !errors.Is(err, age.ErrIncorrectIdentity) {
		t.Errorf("old identity after rewrap: got %v, want ErrIncorrectIdentity", err)
	}

	// Keeping the old recipient keeps its access.
	obj, err = crypto.RewrapHeaderObject(s.obj, old, old.Recipient(), newID.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	checkDecrypts(t, append(obj, s.payload...), pt, old)
	checkDecrypts(t, append(obj, s.payload...), pt, newID)

	// Classic to post-quantum, on a bare header.
	header, _, _ := crypto.SplitHeaderObject(s.obj)
	h2, err := crypto.Rewrap(header, old, pq.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	checkDecrypts(t, append(append(h2, s.nonce...), s.payload...), pt, pq)

	if _, err := crypto.RewrapHeaderObject(s.obj, newID, newID.Recipient()); err == nil {
		t.Error("rewrap with a non-recipient identity succeeded")
	}
	if _, err := crypto.Rewrap(s.obj, old, newID.Recipient()); err == nil {
		t.Error("Rewrap accepted a header object")
	}
	if _, err := crypto.RewrapHeaderObject(s.obj, old, newID.Recipient(), pq.Recipient()); err == nil {
		t.Error("rewrap to mixed classic and post-quantum recipients succeeded")
	}
}
