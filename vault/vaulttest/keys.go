// Package vaulttest is an in-memory stand-in for Vault's Transit engine,
// for unit tests of code that wraps keys and computes MACs through it. The
// real Vault is exercised by the integration tests.
package vaulttest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dozo-vault/dozo/vault"
)

// Keys is a TEST DOUBLE for the Vault Transit client: one random key per
// name, wrapping with AES-256-GCM that binds the associated data (as Transit
// does for aes256-gcm96 keys) and MACs with HMAC-SHA256. Ciphertexts and
// MACs mimic Transit's "vault:v1:<base64>" shape. Every call fails once its
// context is done, on a key that was never created, and while
// SetUnavailable(true) is in force. Rewrap, Rotate, ConfigureKey and
// DeleteKey are refused. The zero value has no keys; it is safe for
// concurrent use.
type Keys struct {
	mu   sync.Mutex
	keys map[string][]byte
	down atomic.Bool
}

// NewKeys returns Keys holding a fresh key for each of names.
func NewKeys(names ...string) *Keys {
	k := &Keys{}
	for _, n := range names {
		k.CreateKey(context.Background(), n)
	}
	return k
}

// SetUnavailable makes every later call fail as with Vault unreachable
// (an error wrapping vault.ErrUnavailable) while down is true.
func (f *Keys) SetUnavailable(down bool) { f.down.Store(down) }

// errUnavailable is what every call returns while the fake is down.
var errUnavailable = fmt.Errorf("fake transit: connection refused: %w", vault.ErrUnavailable)

const prefix = "vault:v1:"

func (f *Keys) key(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.down.Load() {
		return nil, errUnavailable
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[name]
	if !ok {
		return nil, errors.New("fake transit: no key " + name)
	}
	return k, nil
}

// CreateKey makes a key called name unless there is one.
func (f *Keys) CreateKey(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.down.Load() {
		return errUnavailable
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys = map[string][]byte{}
	}
	if _, ok := f.keys[name]; !ok {
		k := make([]byte, 32)
		rand.Read(k)
		f.keys[name] = k
	}
	return nil
}

func (f *Keys) aead(ctx context.Context, name string) (cipher.AEAD, error) {
	k, err := f.key(ctx, name)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// WrapKey seals plaintext under key name, bound to ad.
func (f *Keys) WrapKey(ctx context.Context, name string, plaintext, ad []byte) (string, error) {
	a, err := f.aead(ctx, name)
	if err != nil {
		return "", err
	}
	n := make([]byte, a.NonceSize())
	rand.Read(n)
	return prefix + base64.StdEncoding.EncodeToString(a.Seal(n, n, plaintext, ad)), nil
}

// UnwrapKey opens what WrapKey sealed under the same name and ad.
func (f *Keys) UnwrapKey(ctx context.Context, name, ciphertext string, ad []byte) ([]byte, error) {
	a, err := f.aead(ctx, name)
	if err != nil {
		return nil, err
	}
	enc, ok := strings.CutPrefix(ciphertext, prefix)
	if !ok {
		return nil, errors.New("fake transit: bad ciphertext prefix")
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(b) < a.NonceSize() {
		return nil, errors.New("fake transit: bad ciphertext encoding")
	}
	pt, err := a.Open(nil, b[:a.NonceSize()], b[a.NonceSize():], ad)
	if err != nil {
		return nil, errors.New("fake transit: cipher: message authentication failed")
	}
	return pt, nil
}

// HMAC returns the MAC of data under key name.
func (f *Keys) HMAC(ctx context.Context, name string, data []byte) (string, error) {
	k, err := f.key(ctx, name)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, k)
	m.Write(data)
	return prefix + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// VerifyHMAC checks a MAC made by HMAC.
func (f *Keys) VerifyHMAC(ctx context.Context, name string, data []byte, mac string) error {
	want, err := f.HMAC(ctx, name, data)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(mac)) {
		return errors.New("fake transit: bad mac")
	}
	return nil
}

// ReadKey reports every key as Transit reports one it has just created, and
// a missing key as vault.ErrNotFound.
func (f *Keys) ReadKey(ctx context.Context, name string) (*vault.KeyInfo, error) {
	if _, err := f.key(ctx, name); err != nil {
		if ctx.Err() != nil || errors.Is(err, vault.ErrUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%v: %w", err, vault.ErrNotFound)
	}
	return &vault.KeyInfo{Name: name, Type: vault.KeyType, LatestVersion: 1, MinDecryptionVersion: 1}, nil
}

// Rewrap is refused: the fake has one key version.
func (f *Keys) Rewrap(context.Context, string, string, []byte) (string, error) {
	return "", errors.New("fake transit: Rewrap not supported")
}

// Rotate is refused: the fake has one key version.
func (f *Keys) Rotate(context.Context, string) error {
	return errors.New("fake transit: Rotate not supported")
}

// ConfigureKey is refused.
func (f *Keys) ConfigureKey(context.Context, string, vault.KeyConfig) error {
	return errors.New("fake transit: ConfigureKey not supported")
}

// DeleteKey is refused.
func (f *Keys) DeleteKey(context.Context, string) error {
	return errors.New("fake transit: DeleteKey not supported")
}
