package broker

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// versionedKeys is a local stand-in for Transit with key versions,
// min_decryption_version and deletion, enough to exercise rotation and
// crypto-shredding without Vault (the integration tests use the real one).
type versionedKeys struct {
	mu   sync.Mutex
	keys map[string]*vkey
	// wrapVersion, when set, makes WrapKey use an older version: a wrap
	// that raced a rotation.
	wrapVersion int
	// beforeMin runs once when min_decryption_version is first raised.
	beforeMin func()
}

type vkey struct {
	versions [][]byte
	min      int
}

// clone copies every key, so a test can rotate or destroy keys in the copy
// without touching the original.
func (f *versionedKeys) clone() *versionedKeys {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &versionedKeys{keys: map[string]*vkey{}, wrapVersion: f.wrapVersion}
	for name, k := range f.keys {
		c.keys[name] = &vkey{versions: slices.Clone(k.versions), min: k.min}
	}
	return c
}

func (f *versionedKeys) get(name string) (*vkey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[name]
	if !ok {
		return nil, fmt.Errorf("fake transit %s: %w", name, vault.ErrNotFound)
	}
	return k, nil
}

func (f *versionedKeys) CreateKey(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys = map[string]*vkey{}
	}
	if _, ok := f.keys[name]; !ok {
		f.keys[name] = &vkey{versions: [][]byte{randBytes(32)}, min: 1}
	}
	return nil
}

func parseVersioned(ct string) (int, []byte, error) {
	var v int
	if _, err := fmt.Sscanf(ct, "vault:v%d:", &v); err != nil {
		return 0, nil, errors.New("fake transit: bad ciphertext")
	}
	b, err := base64.StdEncoding.DecodeString(ct[strings.LastIndex(ct, ":")+1:])
	return v, b, err
}

func (f *versionedKeys) WrapKey(_ context.Context, name string, pt, ad []byte) (string, error) {
	k, err := f.get(name)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	v := len(k.versions)
	if f.wrapVersion > 0 {
		v = f.wrapVersion
	}
	key := k.versions[v-1]
	f.mu.Unlock()
	b, _ := aes.NewCipher(key)
	a, _ := cipher.NewGCM(b)
	n := randBytes(a.NonceSize())
	return fmt.Sprintf("vault:v%d:%s", v, base64.StdEncoding.EncodeToString(a.Seal(n, n, pt, ad))), nil
}

func (f *versionedKeys) UnwrapKey(_ context.Context, name, ct string, ad []byte) ([]byte, error) {
	k, err := f.get(name)
	if err != nil {
		return nil, err
	}
	v, raw, err := parseVersioned(ct)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v < k.min || v > len(k.versions) {
		return nil, fmt.Errorf("fake transit: version %d not allowed (min %d)", v, k.min)
	}
	b, _ := aes.NewCipher(k.versions[v-1])
	a, _ := cipher.NewGCM(b)
	if len(raw) < a.NonceSize() {
		return nil, errors.New("fake transit: short ciphertext")
	}
	return a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], ad)
}

func (f *versionedKeys) mac(name string, v int, data []byte) (string, error) {
	k, err := f.get(name)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v == 0 {
		v = len(k.versions)
	}
	if v < k.min || v > len(k.versions) {
		return "", fmt.Errorf("fake transit: version %d not allowed (min %d)", v, k.min)
	}
	m := hmac.New(sha256.New, k.versions[v-1])
	m.Write(data)
	return fmt.Sprintf("vault:v%d:%s", v, base64.StdEncoding.EncodeToString(m.Sum(nil))), nil
}

func (f *versionedKeys) HMAC(_ context.Context, name string, data []byte) (string, error) {
	return f.mac(name, 0, data)
}

func (f *versionedKeys) VerifyHMAC(_ context.Context, name string, data []byte, mac string) error {
	v, _, err := parseVersioned(mac)
	if err != nil {
		return err
	}
	want, err := f.mac(name, v, data)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(mac)) {
		return vault.ErrBadMAC
	}
	return nil
}

func (f *versionedKeys) ReadKey(_ context.Context, name string) (*vault.KeyInfo, error) {
	k, err := f.get(name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &vault.KeyInfo{Name: name, Type: vault.KeyType, LatestVersion: len(k.versions), MinDecryptionVersion: k.min}, nil
}

func (f *versionedKeys) Rewrap(context.Context, string, string, []byte) (string, error) {
	return "", errors.New("fake transit: Rewrap not used")
}

func (f *versionedKeys) Rotate(_ context.Context, name string) error {
	k, err := f.get(name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k.versions = append(k.versions, randBytes(32))
	return nil
}

func (f *versionedKeys) ConfigureKey(_ context.Context, name string, cfg vault.KeyConfig) error {
	k, err := f.get(name)
	if err != nil {
		return err
	}
	if cfg.MinDecryptionVersion != nil {
		if hook := f.beforeMin; hook != nil {
			f.beforeMin = nil
			hook()
		}
		f.mu.Lock()
		k.min = *cfg.MinDecryptionVersion
		f.mu.Unlock()
	}
	return nil
}

func (f *versionedKeys) DeleteKey(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.keys, name)
	return nil
}

func beginReq(name string, size int, key, nonce []byte) api.BeginUploadRequest {
	return api.BeginUploadRequest{Name: name, Size: int64(size),
		FileKey: base64.StdEncoding.EncodeToString(key), Nonce: base64.StdEncoding.EncodeToString(nonce)}
}

// TestRotateAndDelete runs rotation and deletion against local targets:
// headers and manifests move to the new version on catalog and storage,
// payload pieces stay, an upload whose key was wrapped under the old
// version in the last instant is ended; then the deletion empties every
// target and destroys the key, and is idempotent.
func TestRotateAndDelete(t *testing.T) {
	ctx := context.Background()
	keys := &versionedKeys{}
	e, _ := newEnvWith(t, keys)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	data := randBytes(2<<20 + 99)
	key, nonce := randBytes(16), randBytes(16)
	var up api.Upload
	e.must(201, "tok-sam", "POST", "/v1/datasets/DS1/uploads", beginReq("a.vcf", len(data), key, nonce), &up)
	e.writeAndCommit("tok-sam", &up, data, key, nonce)
	sha, md := sha256.Sum256(data), md5.Sum(data)
	e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/complete", api.CompleteUploadRequest{SHA256: hex.EncodeToString(sha[:]), MD5: hex.EncodeToString(md[:])}, nil)
	var open api.Upload // stays open across the rotation
	e.must(201, "tok-sam", "POST", "/v1/datasets/DS1/uploads", beginReq("b.vcf", 10, randBytes(16), randBytes(16)), &open)

	pieces := func() map[string]string {
		out := map[string]string{}
		for _, tg := range e.targets {
			tg.List(ctx, storage.DatasetPrefix("DS1"), func(oi storage.ObjectInfo) error {
				if strings.Contains(oi.Key, "/seg-") {
					out[tg.ID()+"/"+oi.Key] = oi.ETag
				}
				return nil
			})
		}
		return out
	}
	before := pieces()
	oldFile, _ := e.cat.File(ctx, up.FileID)

	// An upload whose key is wrapped under version 1 just before the old
	// versions are retired.
	keys.beforeMin = func() {
		keys.wrapVersion = 1
		e.must(201, "tok-sam", "POST", "/v1/datasets/DS1/uploads", beginReq("late.vcf", 10, randBytes(16), randBytes(16)), nil)
		keys.wrapVersion = 0
	}
	e.must(404, "tok-rita", "POST", "/v1/datasets/DS1/rotate-key", nil, nil)
	var r api.RotateKeyResponse
	e.must(200, "tok-sam", "POST", "/v1/datasets/DS1/rotate-key", nil, &r)
	if r.FromVersion != 1 || r.ToVersion != 2 || r.Rewrapped != 2 || r.Resumed || fmt.Sprint(r.AbortedUploads) != "[late.vcf]" {
		t.Fatalf("rotation: %+v", r)
	}
	if fmt.Sprint(pieces()) != fmt.Sprint(before) {
		t.Fatal("rotation touched payload pieces")
	}
	f, _ := e.cat.File(ctx, up.FileID)
	if v, _ := headerVersion(f.HeaderObject, "dozo-ds-DS1"); v != 2 || !bytes.Contains(f.Manifest, []byte(`"mac":"vault:v2:`)) {
		t.Fatalf("file after rotation: header v%d, manifest %s", v, f.Manifest[:60])
	}
	if got, _, err := crypto.OpenHeaderObject(f.HeaderObject, crypto.NewTransitIdentity(ctx, keys, "dozo-ds-DS1", f.ID)); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("rewrapped header does not give the file key: %v", err)
	}
	if _, _, err := crypto.OpenHeaderObject(oldFile.HeaderObject, crypto.NewTransitIdentity(ctx, keys, "dozo-ds-DS1", f.ID)); err == nil {
		t.Fatal("the header from before the rotation still opens")
	}
	copies := 0
	for _, tg := range e.targets {
		rc, err := tg.Get(ctx, storage.HeaderKey("DS1", f.ID), 0, -1)
		if err != nil {
			continue
		}
		var b bytes.Buffer
		b.ReadFrom(rc)
		rc.Close()
		if !bytes.Equal(b.Bytes(), f.HeaderObject) {
			t.Errorf("header.age on %s is not the rewrapped one", tg.ID())
		}
		copies++
	}
	if copies != 3 {
		t.Fatalf("%d header copies", copies)
	}
	if u, _ := e.cat.Upload(ctx, open.ID); u.State != "open" {
		t.Fatalf("the open upload was ended: %s", u.State)
	} else if v, _ := headerVersion(u.File.HeaderObject, "dozo-ds-DS1"); v != 2 {
		t.Fatalf("open upload's header at v%d", v)
	}
	// The file still fetches: its header rewraps for a recipient.
	id, _ := age.GenerateX25519Identity()
	e.must(200, "tok-sam", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	var fr api.FetchResponse
	e.must(200, "tok-sam", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil, &fr)
	hdr, _ := base64.StdEncoding.DecodeString(fr.HeaderObject)
	if got, _, err := crypto.OpenHeaderObject(hdr, id); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("fetch header after rotation: %v", err)
	}

	// Deletion.
	var objects int
	for _, tg := range e.targets {
		tg.List(ctx, storage.DatasetPrefix("DS1"), func(storage.ObjectInfo) error { objects++; return nil })
	}
	e.must(400, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS2"}, nil)
	e.must(404, "tok-rita", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, nil)
	e.must(409, "tok-sam", "GET", "/v1/datasets/DS1/deletion-report", nil, nil)
	var rep api.DeletionReport
	e.must(200, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &rep)
	if len(rep.Objects) != objects || rep.Key.Name != "dozo-ds-DS1" || rep.Key.Versions != 2 || len(rep.Files) != 3 || len(rep.Targets) != 6 {
		t.Fatalf("report: %d objects (want %d), key %+v, %d files, %d targets", len(rep.Objects), objects, rep.Key, len(rep.Files), len(rep.Targets))
	}
	for _, tg := range e.targets {
		tg.List(ctx, storage.DatasetPrefix("DS1"), func(oi storage.ObjectInfo) error {
			t.Errorf("%s left on %s", oi.Key, tg.ID())
			return nil
		})
	}
	if _, err := keys.ReadKey(ctx, "dozo-ds-DS1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("key survives: %v", err)
	}
	e.must(404, "tok-sam", "GET", "/v1/datasets/DS1", nil, nil)
	e.must(404, "tok-sam", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil, nil)
	e.must(404, "tok-sam", "POST", "/v1/datasets/DS1/rotate-key", nil, nil)
	e.must(409, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "again"}, nil)
	if _, err := keys.ReadKey(ctx, "dozo-ds-DS1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatal("re-creating a deleted dataset made a key")
	}
	var again api.DeletionReport
	e.must(200, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &again)
	e.must(200, "tok-admin", "GET", "/v1/datasets/DS1/deletion-report", nil, &again)
	if len(again.Objects) != len(rep.Objects) || !again.FinishedAt.Equal(rep.FinishedAt) {
		t.Fatal("rerun changed the report")
	}
	var v api.AuditVerifyResponse
	e.must(200, "tok-admin", "GET", "/v1/audit/verify", nil, &v)
	var rs []api.AuditRecord
	e.must(200, "tok-admin", "GET", "/v1/audit?dataset=DS1&limit=1000", nil, &rs)
	actions := map[string]bool{}
	for _, r := range rs {
		actions[r.Action] = true
	}
	for _, a := range []string{"dataset.rotate-key.start", "dataset.rotate-key.done", "upload.abort", "dataset.delete.start", "dataset.delete.done", "dataset.delete"} {
		if !actions[a] {
			t.Errorf("no %s record", a)
		}
	}
	if !v.OK {
		t.Fatalf("audit: %+v", v)
	}
	// The file key went through begin, rotation and fetch: it is in no
	// record, in any encoding, and neither is any header.
	exp := e.must(200, "tok-admin", "GET", "/v1/audit/export", nil, nil)
	for _, secret := range []string{base64.StdEncoding.EncodeToString(key), hex.EncodeToString(key), "vault:v", "dozo-transit", fr.HeaderObject[:40]} {
		if bytes.Contains(exp, []byte(secret)) {
			t.Errorf("audit export holds %q", secret)
		}
	}
}
