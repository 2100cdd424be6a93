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

func TestTransitRoundTrip(t *testing.T) {
	ctx := context.Background()
	ft := vaulttest.NewKeys("ds1", "ds2")
	escrow := newHybrid(t)
	pt := plaintext(crypto.ChunkSize+1, 9)
	s := encrypt(t, pt, crypto.NewTransitRecipient(ctx, ft, "ds1", "file-0001"), escrow.Recipient())

	header, _, _ := crypto.SplitHeaderObject(s.obj)
	h, err := crypto.ParseHeader(header)
	if err != nil {
		t.Fatal(err)
	}
	st := h.Stanzas[0]
	if st.Type != crypto.TransitStanzaType || len(st.Args) != 1 || st.Args[0] != "ds1" || !bytes.HasPrefix(st.Body, []byte("vault:v1:")) {
		t.Fatalf("unexpected transit stanza %q %q %q", st.Type, st.Args, st.Body)
	}
	if !bytes.Contains(header, []byte("\n-> dozo-transit ds1\n")) {
		t.Fatalf("stanza line not found in\n%s", header)
	}

	id := crypto.NewTransitIdentity(ctx, ft, "ds1", "file-0001")
	key, err := crypto.OpenHeader(header, id)
	if err != nil || !bytes.Equal(key, s.fileKey) {
		t.Fatalf("OpenHeader = %x, %v", key, err)
	}
	// It is a plain age.Identity, and the escrow key works alongside.
	checkDecrypts(t, s.file(), pt, id)
	checkDecrypts(t, s.file(), pt, escrow)
}

func TestTransitBindsFileID(t *testing.T) {
	ctx := context.Background()
	ft := vaulttest.NewKeys("ds1")
	s := encrypt(t, []byte("x"), crypto.NewTransitRecipient(ctx, ft, "ds1", "file-A"))
	// The header object copied onto another file id.
	_, _, err := crypto.OpenHeaderObject(s.obj, crypto.NewTransitIdentity(ctx, ft, "ds1", "file-B"))
	if err == nil {
		t.Fatal("header opened under another file id")
	}
	if errors.Is(err, age.ErrIncorrectIdentity) {
		t.Fatalf("a refused unwrap must be an error, not a mismatch: %v", err)
	}
}

func TestTransitWrongKeyName(t *testing.T) {
	ctx := context.Background()
	ft := vaulttest.NewKeys("ds1", "ds2")
	s := encrypt(t, []byte("x"), crypto.NewTransitRecipient(ctx, ft, "ds1", "f"))
	h, _, _ := crypto.SplitHeaderObject(s.obj)
	parsed, _ := crypto.ParseHeader(h)

	other := crypto.NewTransitIdentity(ctx, ft, "ds2", "f")
	if _, err := other.Unwrap(parsed.Stanzas); !errors.Is(err, age.ErrIncorrectIdentity) {
		t.Errorf("Unwrap with another key name: got %v, want ErrIncorrectIdentity", err)
	}
	_, err := crypto.OpenHeader(h, other)
	var noMatch *age.NoIdentityMatchError
	if !errors.As(err, &noMatch) || !errors.Is(err, age.ErrIncorrectIdentity) {
		t.Errorf("OpenHeader with another key name: got %v", err)
	}
	// Other stanza types are mismatches too.
	x := newX25519(t)
	s = encrypt(t, []byte("x"), x.Recipient())
	if _, _, err := crypto.OpenHeaderObject(s.obj, other); !errors.Is(err, age.ErrIncorrectIdentity) {
		t.Errorf("X25519 header: got %v, want ErrIncorrectIdentity", err)
	}
	// An identity that matches nothing is skipped in favour of one that does.
	if _, _, err := crypto.OpenHeaderObject(s.obj, other, x); err != nil {
		t.Errorf("fallback identity: %v", err)
	}
}

func TestTransitNames(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("a", 128)
	ft := vaulttest.NewKeys("ok", long)
	key, _ := crypto.NewFileKey()
	valid := []string{"a", "ds-1_x.y", "A.b", long, "0", "x."}
	invalid := []string{"", ".x", ".", "a/b", "a b", "a\x00b", "a\nb", "é", long + "a", "a:b", "..", "a+b"}
	for _, name := range valid {
		ft := vaulttest.NewKeys(name)
		stanzas, err := crypto.NewTransitRecipient(ctx, ft, name, name).Wrap(key)
		if err != nil {
			t.Errorf("valid name %q: %v", name, err)
			continue
		}
		if _, err := crypto.NewTransitIdentity(ctx, ft, name, name).Unwrap(stanzas); err != nil {
			t.Errorf("valid name %q: Unwrap: %v", name, err)
		}
	}
	for _, name := range invalid {
		if _, err := crypto.NewTransitRecipient(ctx, ft, name, "f").Wrap(key); err == nil {
			t.Errorf("key name %q accepted by Wrap", name)
		}
		if _, err := crypto.NewTransitRecipient(ctx, ft, "ok", name).Wrap(key); err == nil {
			t.Errorf("file id %q accepted by Wrap", name)
		}
		stanzas := []*age.Stanza{{Type: crypto.TransitStanzaType, Args: []string{"ok"}, Body: []byte("vault:v1:x")}}
		if _, err := crypto.NewTransitIdentity(ctx, ft, name, "f").Unwrap(stanzas); err == nil || errors.Is(err, age.ErrIncorrectIdentity) {
			t.Errorf("key name %q: Unwrap returned %v, want an error", name, err)
		}
		if _, err := crypto.NewTransitIdentity(ctx, ft, "ok", name).Unwrap(stanzas); err == nil || errors.Is(err, age.ErrIncorrectIdentity) {
			t.Errorf("file id %q: Unwrap returned %v, want an error", name, err)
		}
	}
	if _, err := crypto.NewTransitRecipient(ctx, nil, "ok", "f").Wrap(key); err == nil {
		t.Error("nil KeyWrapper accepted")
	}
	if _, err := crypto.NewTransitRecipient(ctx, ft, "ok", "f").Wrap(key[:8]); err == nil {
		t.Error("8-byte file key accepted")
	}
}

func TestTransitMalformedStanzas(t *testing.T) {
	ctx := context.Background()
	ft := vaulttest.NewKeys("ds1")
	id := crypto.NewTransitIdentity(ctx, ft, "ds1", "f")
	key, _ := crypto.NewFileKey()
	good, err := crypto.NewTransitRecipient(ctx, ft, "ds1", "f").Wrap(key)
	if err != nil {
		t.Fatal(err)
	}
	body := good[0].Body
	typ := crypto.TransitStanzaType
	bad := map[string]*age.Stanza{
		"no args":         {Type: typ, Body: body},
		"two args":        {Type: typ, Args: []string{"ds1", "x"}, Body: body},
		"bad key arg":     {Type: typ, Args: []string{"ds/1"}, Body: body},
		"empty body":      {Type: typ, Args: []string{"ds1"}},
		"space in body":   {Type: typ, Args: []string{"ds1"}, Body: []byte("vault:v1: x")},
		"newline in body": {Type: typ, Args: []string{"ds1"}, Body: append(bytes.Clone(body), '\n')},
		"binary body":     {Type: typ, Args: []string{"ds1"}, Body: []byte{0, 1, 2}},
		"huge body":       {Type: typ, Args: []string{"ds1"}, Body: bytes.Repeat([]byte("A"), 4096)},
		"garbage body":    {Type: typ, Args: []string{"ds1"}, Body: []byte("vault:v1:AAAA")},
		"truncated body":  {Type: typ, Args: []string{"ds1"}, Body: body[:len(body)-4]},
	}
	for name, s := range bad {
		k, err := id.Unwrap([]*age.Stanza{s})
		if err == nil || errors.Is(err, age.ErrIncorrectIdentity) {
			t.Errorf("%s: Unwrap = %x, %v; want an error", name, k, err)
		}
	}
	// Nil and foreign stanzas are skipped, not dereferenced.
	if k, err := id.Unwrap([]*age.Stanza{nil, {Type: "X25519"}, good[0]}); err != nil || !bytes.Equal(k, key) {
		t.Errorf("Unwrap past nil and foreign stanzas: %v", err)
	}
	if _, err := id.Unwrap(nil); !errors.Is(err, age.ErrIncorrectIdentity) {
		t.Errorf("no stanzas: got %v", err)
	}
}

// badWrapper returns fixed, wrong results.
type badWrapper struct {
	ct  string
	key []byte
}

func (b badWrapper) WrapKey(context.Context, string, []byte, []byte) (string, error) {
	return b.ct, nil
}

func (b badWrapper) UnwrapKey(context.Context, string, string, []byte) ([]byte, error) {
	return b.key, nil
}

func TestTransitDistrustsWrapper(t *testing.T) {
	ctx := context.Background()
	key, _ := crypto.NewFileKey()
	for _, ct := range []string{"", "vault:v1:a b", "vault:v1:a\n", strings.Repeat("a", 2000)} {
		if _, err := crypto.NewTransitRecipient(ctx, badWrapper{ct: ct}, "k", "f").Wrap(key); err == nil {
			t.Errorf("Wrap accepted ciphertext %q", ct)
		}
	}
	stanzas := []*age.Stanza{{Type: crypto.TransitStanzaType, Args: []string{"k"}, Body: []byte("vault:v1:x")}}
	for _, k := range [][]byte{nil, make([]byte, 15), make([]byte, 32)} {
		if _, err := crypto.NewTransitIdentity(ctx, badWrapper{key: k}, "k", "f").Unwrap(stanzas); err == nil {
			t.Errorf("Unwrap accepted a %d-byte key", len(k))
		}
	}
}

func TestTransitContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ft := vaulttest.NewKeys("ds1")
	key, _ := crypto.NewFileKey()
	stanzas, err := crypto.NewTransitRecipient(ctx, ft, "ds1", "f").Wrap(key)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := crypto.NewTransitRecipient(ctx, ft, "ds1", "f").Wrap(key); !errors.Is(err, context.Canceled) {
		t.Errorf("Wrap with a canceled context: %v", err)
	}
	if _, err := crypto.NewTransitIdentity(ctx, ft, "ds1", "f").Unwrap(stanzas); !errors.Is(err, context.Canceled) {
		t.Errorf("Unwrap with a canceled context: %v", err)
	}
}

func TestTransitRewrap(t *testing.T) {
	// Moving a file to a new dataset key: rewrap from one transit key to
	// another, payload untouched.
	ctx := context.Background()
	ft := vaulttest.NewKeys("ds1", "ds2")
	pt := plaintext(1000, 10)
	s := encrypt(t, pt, crypto.NewTransitRecipient(ctx, ft, "ds1", "f"))
	obj, err := crypto.RewrapHeaderObject(s.obj, crypto.NewTransitIdentity(ctx, ft, "ds1", "f"),
		crypto.NewTransitRecipient(ctx, ft, "ds2", "f"))
	if err != nil {
		t.Fatal(err)
	}
	file := append(obj, s.payload...)
	checkDecrypts(t, file, pt, crypto.NewTransitIdentity(ctx, ft, "ds2", "f"))
	if _, err := ageDecrypt(file, crypto.NewTransitIdentity(ctx, ft, "ds1", "f")); !errors.Is(err, age.ErrIncorrectIdentity) {
		t.Errorf("old key after rewrap: %v", err)
	}
}
