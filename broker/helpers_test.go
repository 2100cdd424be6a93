package broker

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// fakeIdentity maps tokens to users, standing in for Vault's lookup-self.
type fakeIdentity map[string]string

func (f fakeIdentity) Identify(_ context.Context, tok string) (*Identity, error) {
	if tok == "down" {
		return nil, ErrIdentityUnavailable
	}
	if u, ok := f[tok]; ok {
		return &Identity{Name: u, Mount: "userpass", EntityID: fakeEntity(u)}, nil
	}
	return nil, ErrBadToken
}

// fakeEntity is the Vault entity fakeIdentity gives user name u.
func fakeEntity(u string) string { return "ent-" + u }

// seeAll records every user of ids as seen logging in, as dozod records
// them at their first request: they are known users.
func seeAll(t *testing.T, cat *catalog.Catalog, ids fakeIdentity, now time.Time) {
	t.Helper()
	for _, u := range ids {
		if err := cat.SeenUser(context.Background(), u, "userpass", fakeEntity(u), now); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeKeys is a local stand-in for Transit: AES-GCM with associated data,
// HMAC-SHA256, one random key per name.
type fakeKeys struct {
	mu   sync.Mutex
	keys map[string][]byte
}

func (f *fakeKeys) key(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[name]
	if !ok {
		return nil, errors.New("fake transit: no key " + name)
	}
	return k, nil
}

func (f *fakeKeys) CreateKey(_ context.Context, name string) error {
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

func (f *fakeKeys) aead(name string) (cipher.AEAD, error) {
	k, err := f.key(name)
	if err != nil {
		return nil, err
	}
	b, _ := aes.NewCipher(k)
	return cipher.NewGCM(b)
}

func (f *fakeKeys) WrapKey(_ context.Context, name string, pt, ad []byte) (string, error) {
	a, err := f.aead(name)
	if err != nil {
		return "", err
	}
	n := make([]byte, a.NonceSize())
	rand.Read(n)
	return "vault:v1:" + base64.StdEncoding.EncodeToString(a.Seal(n, n, pt, ad)), nil
}

func (f *fakeKeys) UnwrapKey(_ context.Context, name, ct string, ad []byte) ([]byte, error) {
	a, err := f.aead(name)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ct, "vault:v1:"))
	if err != nil || len(b) < a.NonceSize() {
		return nil, errors.New("fake transit: bad ciphertext")
	}
	return a.Open(nil, b[:a.NonceSize()], b[a.NonceSize():], ad)
}

func (f *fakeKeys) HMAC(_ context.Context, name string, data []byte) (string, error) {
	k, err := f.key(name)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, k)
	m.Write(data)
	return "vault:v1:" + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

func (f *fakeKeys) VerifyHMAC(ctx context.Context, name string, data []byte, mac string) error {
	want, err := f.HMAC(ctx, name, data)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(mac)) {
		return errors.New("fake transit: bad mac")
	}
	return nil
}

// dirTarget adds fake presigning to a DirTarget.
type dirTarget struct{ *storage.DirTarget }

func (d dirTarget) PresignPut(_ context.Context, key string, _ time.Duration) (*url.URL, error) {
	return &url.URL{Scheme: "file", Path: filepath.Join(d.Dir(), key), RawQuery: "m=PUT"}, nil
}

func (d dirTarget) PresignGet(_ context.Context, key string, _ time.Duration) (*url.URL, error) {
	return &url.URL{Scheme: "file", Path: filepath.Join(d.Dir(), key), RawQuery: "m=GET"}, nil
}

type env struct {
	t       *testing.T
	srv     *Server
	cat     *catalog.Catalog
	targets []storage.Target
	now     time.Time
	logs    *bytes.Buffer
}

var tokens = fakeIdentity{"tok-admin": "admin", "tok-sam": "sam", "tok-rita": "rita", "tok-eve": "eve"}

func newEnv(t *testing.T) *env {
	t.Helper()
	e, _ := newEnvWith(t, &fakeKeys{})
	return e
}

// call makes one request and decodes a 2xx body into out (if not nil). It
// returns the status and the raw body.
func (e *env) call(token, method, path string, body any, out any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	raw := rec.Body.Bytes()
	if out != nil && rec.Code/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return rec.Code, raw
}

// must is call that fails the test unless the status is want.
func (e *env) must(want int, token, method, path string, body, out any) []byte {
	e.t.Helper()
	code, raw := e.call(token, method, path, body, out)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	return raw
}

// errBody returns an error body without its request id, for comparing.
func errBody(t *testing.T, raw []byte) api.Error {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("error body %s: %v", raw, err)
	}
	if e.RequestID == "" {
		t.Fatalf("error body without request id: %s", raw)
	}
	e.RequestID = ""
	return e
}

// ReadKey reports every key as Transit reports one it has just created.
func (f *fakeKeys) ReadKey(_ context.Context, name string) (*vault.KeyInfo, error) {
	if _, err := f.key(name); err != nil {
		return nil, fmt.Errorf("%v: %w", err, vault.ErrNotFound)
	}
	return &vault.KeyInfo{Name: name, Type: vault.KeyType, LatestVersion: 1, MinDecryptionVersion: 1}, nil
}
func (f *fakeKeys) Rewrap(context.Context, string, string, []byte) (string, error) {
	return "", errors.New("fake transit: Rewrap not supported")
}
func (f *fakeKeys) Rotate(context.Context, string) error {
	return errors.New("fake transit: Rotate not supported")
}
func (f *fakeKeys) ConfigureKey(context.Context, string, vault.KeyConfig) error {
	return errors.New("fake transit: ConfigureKey not supported")
}
func (f *fakeKeys) DeleteKey(context.Context, string) error {
	return errors.New("fake transit: DeleteKey not supported")
}
