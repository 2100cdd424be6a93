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
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/lifecycle"
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
	if v, _ := lifecycle.HeaderVersion(f.HeaderObject, "dozo-ds-DS1"); v != 2 || !bytes.Contains(f.Manifest, []byte(`"mac":"vault:v2:`)) {
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
	} else if v, _ := lifecycle.HeaderVersion(u.File.HeaderObject, "dozo-ds-DS1"); v != 2 {
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
	var st api.DeletionStatus
	e.must(202, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &st)
	if st.State != api.DeletionScheduled || !st.RunsAt.Equal(e.now.Add(DefaultDeletionGrace)) {
		t.Fatalf("schedule: %+v", st)
	}
	e.now = st.RunsAt // the grace period is over: repeating delete runs it
	e.must(200, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &st)
	if st.State != api.DeletionComplete || st.Report == nil {
		t.Fatalf("run: %+v", st)
	}
	rep := *st.Report
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
	// Its custodian is told it was deleted (deleted_test.go); anyone else
	// gets the uniform 404.
	e.must(410, "tok-sam", "GET", "/v1/datasets/DS1", nil, nil)
	e.must(410, "tok-sam", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil, nil)
	e.must(410, "tok-sam", "POST", "/v1/datasets/DS1/rotate-key", nil, nil)
	e.must(404, "tok-rita", "GET", "/v1/datasets/DS1", nil, nil)
	e.must(409, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "again"}, nil)
	if _, err := keys.ReadKey(ctx, "dozo-ds-DS1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatal("re-creating a deleted dataset made a key")
	}
	var again api.DeletionReport
	e.must(200, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &st)
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
	for _, a := range []string{"dataset.rotate-key.start", "dataset.rotate-key.done", "upload.abort", "dataset.delete.schedule", "dataset.delete.start", "dataset.delete.done", "dataset.delete"} {
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

// lifecycleEnv is an env with dataset DS1 (sam its custodian and
// submitter) holding one available file a.vcf, rita granted it with her
// recipient set, and an upload of b.vcf left open by sam.
type lifecycleEnv struct {
	*env
	keys    *versionedKeys
	fileKey []byte
	rita    *age.X25519Identity
	open    api.Upload
	pieces  func() map[string]string // every object under DS1, with its ETag
}

func newLifecycleEnv(t *testing.T) *lifecycleEnv {
	ctx := context.Background()
	keys := &versionedKeys{}
	e, _ := newEnvWith(t, keys)
	l := &lifecycleEnv{env: e, keys: keys, fileKey: randBytes(16)}
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	e.upload("tok-sam", "DS1", "a.vcf", randBytes(3000), l.fileKey, randBytes(16))
	e.must(201, "tok-sam", "POST", "/v1/datasets/DS1/uploads", beginReq("b.vcf", 10, randBytes(16), randBytes(16)), &l.open)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/DS1/grants/rita", api.GrantRequest{Until: "2026-03-20", ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	var err error
	if l.rita, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	e.must(200, "tok-rita", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: l.rita.Recipient().String()}, nil)
	l.pieces = func() map[string]string {
		out := map[string]string{}
		for _, tg := range e.targets {
			tg.List(ctx, storage.DatasetPrefix("DS1"), func(oi storage.ObjectInfo) error {
				out[tg.ID()+"/"+oi.Key] = oi.ETag
				return nil
			})
		}
		return out
	}
	return l
}

// fetchKey fetches a.vcf as rita and returns the file key her header gives.
func (l *lifecycleEnv) fetchKey() []byte {
	l.t.Helper()
	var fr api.FetchResponse
	l.must(200, "tok-rita", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil, &fr)
	hdr, _ := base64.StdEncoding.DecodeString(fr.HeaderObject)
	key, _, err := crypto.OpenHeaderObject(hdr, l.rita)
	if err != nil {
		l.t.Fatalf("rita's header: %v", err)
	}
	return key
}

func (l *lifecycleEnv) schedule(token string) api.DeletionStatus {
	l.t.Helper()
	var st api.DeletionStatus
	l.must(202, token, "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &st)
	return st
}

// auditActions returns the actions recorded about DS1 (with their actors).
func (l *lifecycleEnv) auditActions() map[string]string {
	var rs []api.AuditRecord
	l.must(200, "tok-admin", "GET", "/v1/audit?dataset=DS1&limit=1000", nil, &rs)
	out := map[string]string{}
	for _, r := range rs {
		out[r.Action] = r.Actor
	}
	return out
}

// sameAsMissing fails unless the answer to (method, path) is the uniform
// 404 that a dataset which never existed (DS9) gets, ids aside.
func (l *lifecycleEnv) sameAsMissing(token, method, path string, body any) {
	l.t.Helper()
	code, raw := l.call(token, method, path, body, nil)
	mcode, mraw := l.call(token, method, strings.Replace(path, "DS1", "DS9", 1), body, nil)
	got, want := errBody(l.t, raw), errBody(l.t, mraw)
	want.Error = strings.ReplaceAll(want.Error, "DS9", "DS1")
	if code != 404 || mcode != 404 || got != want {
		l.t.Errorf("%s %s as %s: %d %+v; a missing dataset gets %d %+v", method, path, token, code, got, mcode, want)
	}
}

func listed(l *lifecycleEnv, token string) bool {
	var ds []api.Dataset
	l.must(200, token, "GET", "/v1/datasets", nil, &ds)
	for _, d := range ds {
		if d.ID == "DS1" {
			return true
		}
	}
	return false
}

// TestDeletionScheduleAndCancel: a deletion hides the dataset from
// everyone at once (a grantee gets the uniform 404; no listing, fetch,
// presign, upload or grant), tells its custodian and admins when it runs,
// and changes nothing else; cancelling it during the grace period brings
// everything back as it was: the file fetches with the same key, the
// stored objects are untouched, the grant keeps its dates, the open upload
// stays open.
func TestDeletionScheduleAndCancel(t *testing.T) {
	ctx := context.Background()
	l := newLifecycleEnv(t)
	before := l.pieces()
	var grants []api.Grant
	l.must(200, "tok-sam", "GET", "/v1/datasets/DS1/grants", nil, &grants)
	var f api.File
	{
		var fs []api.File
		l.must(200, "tok-sam", "GET", "/v1/datasets/DS1/files", nil, &fs)
		f = fs[0]
	}
	getPiece := api.PresignRequest{Target: "s1-a", Key: storage.PieceKey("DS1", f.ID, 0, 0)}

	l.must(400, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS2"}, nil)
	l.must(403, "tok-rita", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, nil)
	l.must(409, "tok-sam", "POST", "/v1/datasets/DS1/undelete", nil, nil) // nothing to cancel
	st := l.schedule("tok-sam")
	if st.State != api.DeletionScheduled || st.ScheduledBy != "sam" || !st.ScheduledAt.Equal(l.now) || !st.RunsAt.Equal(l.now.Add(DefaultDeletionGrace)) {
		t.Fatalf("schedule: %+v", st)
	}

	// Hidden from the grantee, byte for byte like a dataset that never was.
	l.sameAsMissing("tok-rita", "GET", "/v1/datasets/DS1", nil)
	l.sameAsMissing("tok-rita", "GET", "/v1/datasets/DS1/files", nil)
	l.sameAsMissing("tok-rita", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil)
	l.sameAsMissing("tok-rita", "GET", "/v1/datasets/DS1/deletion-report", nil)
	l.sameAsMissing("tok-rita", "POST", "/v1/datasets/DS1/undelete", nil)
	l.sameAsMissing("tok-eve", "GET", "/v1/datasets/DS1", nil)
	l.must(404, "tok-rita", "POST", "/v1/fetches/"+f.ID+"/presign", getPiece, nil)
	for _, tok := range []string{"tok-rita", "tok-sam", "tok-admin"} {
		if listed(l, tok) {
			t.Errorf("%s still lists DS1", tok)
		}
	}
	// The grantee's own register no longer names it; its custodian's and
	// the admins' keep the record.
	registerHas := func(tok string) bool {
		var gs []api.Grant
		l.must(200, tok, "GET", "/v1/grants?history=true", nil, &gs)
		return slices.ContainsFunc(gs, func(g api.Grant) bool { return g.Dataset == "DS1" })
	}
	if registerHas("tok-rita") || !registerHas("tok-sam") || !registerHas("tok-admin") {
		t.Errorf("register while DS1 is hidden: rita %v, sam %v, admin %v; want only sam and admin to see its grants",
			registerHas("tok-rita"), registerHas("tok-sam"), registerHas("tok-admin"))
	}
	// The open upload cannot go on; its uploader is told why
	// (deleted_test.go).
	l.must(409, "tok-sam", "GET", "/v1/uploads/"+l.open.ID, nil, nil)
	l.must(409, "tok-sam", "POST", "/v1/uploads/"+l.open.ID+"/presign", api.PresignRequest{Target: "s1-a", Key: storage.PieceKey("DS1", l.open.FileID, 0, 0)}, nil)
	// Its custodian and the admins are told when it runs, and can do
	// nothing else with it.
	for _, tok := range []string{"tok-sam", "tok-admin"} {
		raw := l.must(409, tok, "GET", "/v1/datasets/DS1", nil, nil)
		if eb := errBody(t, raw); !strings.Contains(eb.Error, "deletion scheduled at 2026-03-01T12:00:00Z by sam, runs at 2026-03-08T12:00:00Z") ||
			!strings.Contains(eb.Hint, "dozo dataset undelete DS1") {
			t.Errorf("%s: %+v", tok, eb)
		}
	}
	l.must(409, "tok-sam", "PUT", "/v1/datasets/DS1/grants/eve", api.GrantRequest{Until: "2026-03-20", ApplicationID: "J-DU000002", Institution: "NIG"}, nil)
	l.must(409, "tok-sam", "POST", "/v1/datasets/DS1/uploads", beginReq("c.vcf", 10, randBytes(16), randBytes(16)), nil)
	l.must(409, "tok-sam", "POST", "/v1/datasets/DS1/rotate-key", nil, nil)
	l.must(409, "tok-sam", "POST", "/v1/datasets/DS1/files/a.vcf/fetch", nil, nil)
	if eb := errBody(t, l.must(409, "tok-sam", "GET", "/v1/datasets/DS1/deletion-report", nil, nil)); !strings.Contains(eb.Error, "deletion scheduled") {
		t.Errorf("deletion-report while scheduled: %+v", eb)
	}

	// A repeated delete and the reaper destroy nothing during the grace
	// period (its last second: TestDeletionRunsAfterGrace).
	l.now = l.now.Add(time.Hour)
	var again api.DeletionStatus
	l.must(202, "tok-admin", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &again)
	if again.State != api.DeletionScheduled || !again.RunsAt.Equal(st.RunsAt) || again.ScheduledBy != "sam" {
		t.Fatalf("repeated delete changed the schedule: %+v", again)
	}
	if err := l.srv.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.keys.ReadKey(ctx, "dozo-ds-DS1"); err != nil {
		t.Fatalf("key gone during the grace period: %v", err)
	}
	if fmt.Sprint(l.pieces()) != fmt.Sprint(before) {
		t.Fatal("objects changed during the grace period")
	}

	// Cancel: only the custodian or an admin.
	l.must(404, "tok-rita", "POST", "/v1/datasets/DS1/undelete", nil, nil)
	var c api.DeletionStatus
	l.must(200, "tok-sam", "POST", "/v1/datasets/DS1/undelete", nil, &c)
	if c.State != api.DeletionCancelled || !c.RunsAt.Equal(st.RunsAt) {
		t.Fatalf("cancel: %+v", c)
	}
	l.must(409, "tok-sam", "POST", "/v1/datasets/DS1/undelete", nil, nil)

	// Everything as it was.
	if !listed(l, "tok-rita") {
		t.Error("rita does not list DS1 after the cancel")
	}
	if !registerHas("tok-rita") {
		t.Error("rita's register does not name DS1 after the cancel")
	}
	if got := l.fetchKey(); !bytes.Equal(got, l.fileKey) {
		t.Fatal("the file key changed")
	}
	l.must(200, "tok-rita", "POST", "/v1/fetches/"+f.ID+"/presign", getPiece, nil)
	if fmt.Sprint(l.pieces()) != fmt.Sprint(before) {
		t.Fatal("objects changed by schedule and cancel")
	}
	var after []api.Grant
	l.must(200, "tok-sam", "GET", "/v1/datasets/DS1/grants", nil, &after)
	if fmt.Sprint(after) != fmt.Sprint(grants) {
		t.Errorf("grants changed:\n%+v\n%+v", grants, after)
	}
	var u api.Upload
	l.must(200, "tok-sam", "GET", "/v1/uploads/"+l.open.ID, nil, &u)
	if u.State != "open" {
		t.Errorf("open upload is %s after the cancel", u.State)
	}
	// A new deletion starts a new grace period.
	l.now = l.now.Add(time.Hour)
	if st2 := l.schedule("tok-admin"); !st2.RunsAt.Equal(l.now.Add(DefaultDeletionGrace)) || st2.ScheduledBy != "admin" {
		t.Errorf("second schedule: %+v", st2)
	}
	acts := l.auditActions()
	for _, a := range []string{"dataset.delete", "dataset.delete.schedule", "dataset.undelete", "dataset.delete.cancel"} {
		if acts[a] == "" {
			t.Errorf("no %s record", a)
		}
	}
	if acts["dataset.delete.start"] != "" {
		t.Error("a deletion run began during the grace period")
	}
}

// TestDeletionRunsAfterGrace: once the grace period is over the reaper
// runs the deletion: every object goes, then the key; it can no longer be
// cancelled, and its report says what it did and what it cannot reach.
func TestDeletionRunsAfterGrace(t *testing.T) {
	ctx := context.Background()
	l := newLifecycleEnv(t)
	l.fetchKey() // rita holds the file key now
	st := l.schedule("tok-sam")
	l.now = st.RunsAt.Add(-time.Second)
	if err := l.srv.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	l.must(202, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, nil)
	if _, err := l.keys.ReadKey(ctx, "dozo-ds-DS1"); err != nil || len(l.pieces()) == 0 {
		t.Fatalf("deletion ran before its time: %v", err)
	}
	l.now = st.RunsAt
	if err := l.srv.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.keys.ReadKey(ctx, "dozo-ds-DS1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("key survives: %v", err)
	}
	if left := l.pieces(); len(left) != 0 {
		t.Fatalf("objects left: %v", left)
	}
	var rep api.DeletionReport
	l.must(200, "tok-sam", "GET", "/v1/datasets/DS1/deletion-report", nil, &rep)
	if rep.Status != "complete" || rep.StartedBy != "sam" || !rep.StartedAt.Equal(st.ScheduledAt) || !rep.RunStartedAt.Equal(st.RunsAt) ||
		rep.FinishedBy != "dozod" || rep.Key.Versions != 1 {
		t.Fatalf("report: %+v", rep)
	}
	if eb := errBody(t, l.must(409, "tok-sam", "POST", "/v1/datasets/DS1/undelete", nil, nil)); !strings.Contains(eb.Error, "cannot be undone") {
		t.Errorf("undelete after the run: %+v", eb)
	}
	l.sameAsMissing("tok-rita", "GET", "/v1/datasets/DS1", nil)
	l.must(410, "tok-sam", "GET", "/v1/datasets/DS1", nil, nil)
	acts := l.auditActions()
	if acts["dataset.delete.start"] != "dozod" || acts["dataset.delete.done"] != "dozod" || acts["dataset.delete.schedule"] != "sam" {
		t.Errorf("audit: %v", acts)
	}
	// The reaper's next round has nothing to do.
	if err := l.srv.Reap(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDeletionReportClaims: the report states what the deletion did and
// what it cannot reach (grantees' copies and file keys, Vault backups),
// and no longer claims that no copy anywhere can be decrypted.
func TestDeletionReportClaims(t *testing.T) {
	l := newLifecycleEnv(t)
	st := l.schedule("tok-sam")
	l.now = st.RunsAt
	l.must(200, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &st)
	s := st.Report.Statement
	for _, claim := range []string{"no remaining copy", "including any backup, can be decrypted", "can never be decrypted"} {
		if strings.Contains(s, claim) {
			t.Errorf("statement claims %q:\n%s", claim, s)
		}
	}
	for _, want := range []string{
		"sam asked for the deletion at 2026-03-01T12:00:00Z, when the dataset was hidden from every user; it ran after the grace period, from 2026-03-08T12:00:00Z",
		"The dataset's encryption key dozo-ds-DS1 (versions 1-1) was then destroyed in HashiCorp Vault at 2026-03-08T12:00:00Z",
		"Outside the reach of this deletion: copies that grantees fetched before it (decrypted files, and the file keys they obtained, " +
			"each of which decrypts its file's ciphertext wherever a copy survives), and backups or snapshots of Vault taken before the key " +
			"was destroyed (from which the key could be restored).",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("statement lacks %q:\n%s", want, s)
		}
	}
}

// TestLifecycleRefusedWhenFrozen: rotate-key and delete are refused on a
// frozen dataset, for its custodian and for admins, and change nothing; a
// deletion that was due when a freeze came is held until it is lifted.
func TestLifecycleRefusedWhenFrozen(t *testing.T) {
	ctx := context.Background()
	l := newLifecycleEnv(t)
	l.must(201, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "dataset", Name: "DS1", Reason: "incident"}, nil)
	before := l.pieces()
	for _, tok := range []string{"tok-sam", "tok-admin"} {
		for _, call := range []struct {
			path string
			body any
		}{{"/v1/datasets/DS1/rotate-key", nil}, {"/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}}} {
			eb := errBody(t, l.must(409, tok, "POST", call.path, call.body, nil))
			if eb.Error != `dataset "DS1" is frozen by an administrator; an administrator must lift the freeze first` {
				t.Errorf("%s %s: %+v", tok, call.path, eb)
			}
		}
	}
	if k, _ := l.keys.ReadKey(ctx, "dozo-ds-DS1"); k.LatestVersion != 1 || k.MinDecryptionVersion != 1 {
		t.Fatalf("key changed: %+v", k)
	}
	if _, err := l.cat.Deletion(ctx, "DS1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("a deletion was recorded: %v", err)
	}
	if fmt.Sprint(l.pieces()) != fmt.Sprint(before) {
		t.Fatal("objects changed")
	}
	l.must(200, "tok-admin", "DELETE", "/v1/admin/freezes/dataset/DS1", api.UnfreezeRequest{Reason: "resolved"}, nil)
	l.must(200, "tok-sam", "POST", "/v1/datasets/DS1/rotate-key", nil, nil)

	// A freeze that lands on a scheduled deletion holds it past its due
	// time (freezes are put by admins; this one as if it raced the schedule).
	st := l.schedule("tok-sam")
	if _, err := l.cat.PutFreeze(ctx, catalog.Freeze{Kind: catalog.FreezeDataset, Name: "DS1", Reason: "incident", FrozenBy: "admin", FrozenAt: l.now}); err != nil {
		t.Fatal(err)
	}
	l.now = st.RunsAt.Add(time.Hour)
	if err := l.srv.Reap(ctx); err == nil || !strings.Contains(err.Error(), "frozen") {
		t.Fatalf("reaper: %v", err)
	}
	l.must(409, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, nil)
	if _, err := l.keys.ReadKey(ctx, "dozo-ds-DS1"); err != nil {
		t.Fatalf("key destroyed under a freeze: %v", err)
	}
	if len(l.pieces()) == 0 {
		t.Fatal("objects deleted under a freeze")
	}
}

// TestLifecycleConfig: [lifecycle] deletion_grace from the file, the
// environment over it, the default, and the bounds.
func TestLifecycleConfig(t *testing.T) {
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "s.dozod\n", 0o600)
	base := `
insecure_http = true
[vault]
address = "http://127.0.0.1:8200"
token_file = "` + tok + `"
[[targets]]
id = "s1-a"
endpoint = "http://127.0.0.1:9000"
bucket = "dozo-a"
access_key = "ak"
secret_key_file = "` + tok + `"
`
	load := func(extra string, env map[string]string) (*Config, error) {
		conf := writeFile(t, dir, "dozod.toml", base+extra, 0o600)
		return LoadConfig(conf, func(k string) string { return env[k] })
	}
	if c, err := load("", nil); err != nil || c.Lifecycle.DeletionGrace != DefaultDeletionGrace || DefaultDeletionGrace != 7*24*time.Hour {
		t.Fatalf("default: %+v %v", c, err)
	}
	if c, err := load("[lifecycle]\ndeletion_grace = \"72h\"\n", nil); err != nil || c.Lifecycle.DeletionGrace != 72*time.Hour {
		t.Fatalf("file: %v", err)
	}
	if c, err := load("[lifecycle]\ndeletion_grace = \"72h\"\n", map[string]string{"DOZOD_DELETION_GRACE": "2s"}); err != nil || c.Lifecycle.DeletionGrace != 2*time.Second {
		t.Fatalf("env: %v", err)
	}
	for _, bad := range []string{"500ms", "-1h", "9000h", "soon"} {
		if _, err := load("", map[string]string{"DOZOD_DELETION_GRACE": bad}); err == nil || !strings.Contains(err.Error(), "DELETION_GRACE") && !strings.Contains(err.Error(), "deletion_grace") {
			t.Errorf("grace %q: %v", bad, err)
		}
	}
	if !strings.Contains(ConfigHelp, "DOZOD_DELETION_GRACE") || !strings.Contains(ConfigHelp, "deletion_grace") {
		t.Error("ConfigHelp does not document deletion_grace")
	}
}

// TestScrubSkipsHiddenDatasets: a scrub of every dataset passes over one
// hidden by a deletion (scheduled or done) instead of failing on it or
// finding its purged pieces missing.
func TestScrubSkipsHiddenDatasets(t *testing.T) {
	l := newLifecycleEnv(t)
	l.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS2", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	l.upload("tok-sam", "DS2", "x.vcf", randBytes(2000), randBytes(16), randBytes(16))
	st := l.schedule("tok-sam")
	for _, step := range []string{"scheduled", "done"} {
		if step == "done" {
			l.now = st.RunsAt
			l.must(200, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, nil)
		}
		r := l.scrub(api.ScrubRequest{})
		if r.State != api.ScrubDone || r.Summary.Files != 1 || len(r.Errors) != 0 || len(r.Findings) != 0 {
			t.Fatalf("%s: scrub %+v", step, r)
		}
	}
}

// TestLifecycleRunsAsJobs: a rotation and a deletion run as jobs recorded
// in the catalog with their result; a custodian sees their dataset's jobs,
// a grantee none, an admin also the periodic ones; a dataset held by an
// unfinished job refuses another rotation or deletion; an ended job cannot
// be cancelled, a queued one can, and that frees the dataset.
func TestLifecycleRunsAsJobs(t *testing.T) {
	ctx := context.Background()
	l := newLifecycleEnv(t)
	var r api.RotateKeyResponse
	l.must(200, "tok-sam", "POST", "/v1/datasets/DS1/rotate-key", nil, &r)

	var js []api.Job
	l.must(200, "tok-sam", "GET", "/v1/jobs", nil, &js)
	if len(js) != 1 || js[0].Kind != "rotate-key" || js[0].Dataset != "DS1" || js[0].State != api.JobDone || js[0].RequestedBy != "sam" ||
		js[0].Owner != "" || js[0].Progress.Total != 2 || js[0].Progress.Done != 2 {
		t.Fatalf("sam's jobs: %+v", js)
	}
	var res api.RotateKeyResponse
	if err := json.Unmarshal(js[0].Result, &res); err != nil || res.ToVersion != r.ToVersion || res.Rewrapped != r.Rewrapped {
		t.Fatalf("job result %s, reply %+v: %v", js[0].Result, r, err)
	}
	rot := js[0].ID
	l.must(200, "tok-rita", "GET", "/v1/jobs", nil, &js)
	if len(js) != 0 {
		t.Fatalf("a grantee sees jobs: %+v", js)
	}
	// A grantee knows the dataset: told it needs a custodian.
	l.must(403, "tok-rita", "GET", "/v1/jobs/"+rot, nil, nil)
	l.must(403, "tok-rita", "DELETE", "/v1/jobs/"+rot, nil, nil)
	l.must(404, "tok-eve", "GET", "/v1/jobs/"+rot, nil, nil)
	var j api.Job
	l.must(200, "tok-admin", "GET", "/v1/jobs/"+rot, nil, &j)
	l.must(409, "tok-sam", "DELETE", "/v1/jobs/"+rot, nil, nil)

	// An unfinished job holds the dataset (here one queued by a dozod
	// that has not claimed it yet): no second rotation or deletion.
	if err := l.cat.InsertJob(ctx, catalog.Job{ID: "job-held", Kind: "delete-dataset", DatasetID: "DS1", LockKey: "dataset/DS1",
		RequestedBy: "dozod", CreatedAt: l.now}); err != nil {
		t.Fatal(err)
	}
	if eb := errBody(t, l.must(409, "tok-sam", "POST", "/v1/datasets/DS1/rotate-key", nil, nil)); !strings.Contains(eb.Error, "already running") {
		t.Fatalf("rotation while held: %+v", eb)
	}
	l.must(409, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, nil)
	l.must(200, "tok-sam", "DELETE", "/v1/jobs/job-held", nil, &j)
	if j.State != api.JobCancelled {
		t.Fatalf("cancelled queued job: %+v", j)
	}

	// The deletion, once due, runs as a job whose result is the report.
	st := l.schedule("tok-sam")
	l.now = st.RunsAt
	l.must(200, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &st)
	l.must(200, "tok-sam", "GET", "/v1/jobs?kind=delete-dataset&state=done", nil, &js)
	var rep api.DeletionReport
	if len(js) != 1 || json.Unmarshal(js[0].Result, &rep) != nil || rep.Dataset != "DS1" || len(rep.Objects) != len(st.Report.Objects) {
		t.Fatalf("deletion job: %+v", js)
	}
	// Its custodian still sees it, the dataset gone.
	l.must(200, "tok-sam", "GET", "/v1/jobs/"+js[0].ID, nil, &j)
	l.must(400, "tok-sam", "GET", "/v1/jobs?state=sleeping", nil, nil)
}
