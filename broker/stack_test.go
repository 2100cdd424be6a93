package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault"
)

// stackEnv reads the env file scripts/stack.sh writes into DOZO_STACK_DIR,
// or skips the test when no stack is given.
func stackEnv(t *testing.T) map[string]string {
	dir := os.Getenv("DOZO_STACK_DIR")
	if dir == "" || testing.Short() {
		t.Skip("DOZO_STACK_DIR not set (run scripts/stack.sh up); the integration/ suite covers this in CI")
	}
	f, err := os.Open(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if k, v, ok2 := strings.Cut(line, "="); ok && ok2 {
			env[k] = strings.Trim(v, "'")
		}
	}
	return env
}

// presignedTarget is the client's view of a target: every Put and Get goes
// through a URL the broker presigned, as dozo's client does.
type presignedTarget struct {
	id, domain string
	presign    func(target, key string) (string, error)
}

func (p *presignedTarget) ID() string     { return p.id }
func (p *presignedTarget) Domain() string { return p.domain }

func (p *presignedTarget) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	u, err := p.presign(p.id, key)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, r)
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PUT %s: %s %s", key, resp.Status, b)
	}
	return nil
}

func (p *presignedTarget) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	u, err := p.presign(p.id, key)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if off != 0 || length >= 0 {
		end := ""
		if length >= 0 {
			end = fmt.Sprint(off + length - 1)
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%s", off, end))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", key, resp.Status)
	}
	return resp.Body, nil
}

var errClientOnly = errors.New("not available to a client")

func (p *presignedTarget) Stat(context.Context, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, errClientOnly
}
func (p *presignedTarget) Delete(context.Context, string) error { return errClientOnly }
func (p *presignedTarget) List(context.Context, string, func(storage.ObjectInfo) error) error {
	return errClientOnly
}

// TestStackEndToEnd runs dataset → upload over presigned PUTs → complete →
// fetch over presigned GETs → revoke, against real Vault and MinIO.
func TestStackEndToEnd(t *testing.T) {
	se := stackEnv(t)
	ctx := context.Background()
	root, err := vault.New(vault.Config{Address: se["VAULT_ADDR"], Token: se["VAULT_TOKEN"]})
	if err != nil {
		t.Fatal(err)
	}
	// With DOZO_DEV_DIR (scripts/dev.sh), act with dozod's own token and
	// policy rather than the root token.
	keys := root
	if dev := os.Getenv("DOZO_DEV_DIR"); dev != "" {
		tok, err := ReadSecretFile(filepath.Join(dev, "dozod.token"))
		if err != nil {
			t.Fatal(err)
		}
		if keys, err = root.WithToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	suffix := hex.EncodeToString(randBytes(4))
	users := map[string]string{} // name -> token
	for _, u := range []string{"sam" + suffix, "rita" + suffix} {
		pw := hex.EncodeToString(randBytes(12))
		if _, err := root.API().Logical().Write("auth/userpass/users/"+u, map[string]any{"password": pw, "token_policies": "default"}); err != nil {
			t.Fatal(err)
		}
		tok, err := root.UserpassLogin(ctx, "", u, pw)
		if err != nil {
			t.Fatal(err)
		}
		users[u] = tok
	}
	sam, rita := users["sam"+suffix], users["rita"+suffix]
	var targets []Target
	for i, ep := range strings.Split(se["DOZO_DEV_S3_ENDPOINTS"], ",") {
		for _, b := range []string{"a", "b"} {
			tg, err := storage.NewS3Target(storage.S3Config{ID: fmt.Sprintf("s%d-%s", i+1, b), Domain: fmt.Sprintf("s%d", i+1),
				Endpoint: "http://" + ep, Bucket: "dozo-" + b, Region: "us-east-1",
				AccessKey: se["DOZO_DEV_S3_ACCESS_KEY"], SecretKey: se["DOZO_DEV_S3_SECRET_KEY"]})
			if err != nil {
				t.Fatal(err)
			}
			targets = append(targets, tg)
		}
	}
	cat, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "dozo.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	logs := &bytes.Buffer{}
	srv, err := New(Options{Catalog: cat, Identifier: NewVaultIdentifier(root, 0), Keys: keys, Targets: targets,
		Submitters: []string{"sam" + suffix}, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, cat: cat, logs: logs}

	ds := "T" + suffix
	e.must(201, sam, "POST", "/v1/datasets", api.CreateDatasetRequest{ID: ds, PlainSegmentSize: 1 << 20}, nil)
	data := randBytes(2<<20 + 777)
	key, nonce := randBytes(16), randBytes(16)
	var up api.Upload
	e.must(201, sam, "POST", "/v1/datasets/"+ds+"/uploads", api.BeginUploadRequest{Name: "a.bam", Size: int64(len(data)),
		FileKey: base64.StdEncoding.EncodeToString(key), Nonce: base64.StdEncoding.EncodeToString(nonce)}, &up)
	clientTargets := func(tok, path string, ts []api.Target) []storage.Target {
		var out []storage.Target
		for _, at := range ts {
			out = append(out, &presignedTarget{id: at.ID, domain: at.Domain, presign: func(target, key string) (string, error) {
				var pr api.PresignResponse
				code, raw := e.call(tok, "POST", path, api.PresignRequest{Target: target, Key: key}, &pr)
				if code != 200 {
					return "", fmt.Errorf("presign: %d %s", code, raw)
				}
				return pr.URL, nil
			}})
		}
		return out
	}
	l, _ := filestore.Layout(up.K, up.M, up.PlainSegmentSize)
	var segs []storage.SegmentMeta
	_, err = filestore.Write(ctx, bytes.NewReader(data), filestore.WriteOptions{
		DatasetID: ds, FileID: up.FileID, Layout: l, Targets: clientTargets(sam, "/v1/uploads/"+up.ID+"/presign", up.Targets),
		FileKey: key, Nonce: nonce,
		OnSegment: func(s storage.SegmentMeta) error { segs = append(segs, s); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		e.must(200, sam, "PUT", fmt.Sprintf("/v1/uploads/%s/segments/%d", up.ID, s.Index), s, nil)
	}
	sha, md := sha256.Sum256(data), md5.Sum(data)
	var f api.File
	e.must(200, sam, "POST", "/v1/uploads/"+up.ID+"/complete", api.CompleteUploadRequest{SHA256: hex.EncodeToString(sha[:]), MD5: hex.EncodeToString(md[:])}, &f)

	until := time.Now().UTC().AddDate(0, 1, 0).Format(catalog.DateLayout)
	e.must(200, sam, "PUT", "/v1/datasets/"+ds+"/grants/rita"+suffix, api.GrantRequest{Until: until, ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	id, _ := age.GenerateX25519Identity()
	e.must(200, rita, "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	var fr api.FetchResponse
	e.must(200, rita, "POST", "/v1/datasets/"+ds+"/files/a.bam/fetch", nil, &fr)
	hdr, _ := base64.StdEncoding.DecodeString(fr.HeaderObject)
	rf, err := filestore.Open(ctx, e.withEntries(rita, &fr), hdr, filestore.ReadOptions{Targets: clientTargets(rita, "/v1/fetches/"+f.ID+"/presign", fr.Targets)}, id)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := rf.WriteTo(&got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("fetched data differs (%v)", err)
	}
	rf.Close()
	// The stored metadata verifies under the dataset key.
	if _, _, err := filestore.GetMetadata(ctx, []storage.Target{targets[0]}, vault.TransitHMAC{Keys: keys, Key: api.TransitKeyName(ds)}, ds, f.ID); err != nil {
		t.Fatal(err)
	}
	e.must(200, sam, "DELETE", "/v1/datasets/"+ds+"/grants/rita"+suffix, api.RevokeRequest{Reason: "test"}, nil)
	e.must(403, rita, "POST", "/v1/fetches/"+f.ID+"/presign", api.PresignRequest{Target: fr.Manifest.Segments[0].Pieces[0].Target,
		Key: storage.PieceKey(ds, f.ID, 0, 0)}, nil)
	if strings.Contains(logs.String(), sam) || strings.Contains(logs.String(), se["VAULT_TOKEN"]) {
		t.Fatal("a token reached the log")
	}
}
