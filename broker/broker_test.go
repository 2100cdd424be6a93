package broker

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "sample 1.vcf.gz", "日本語.bam", strings.Repeat("x", 255), "..a", ".hidden", "lane2/S1_R1.fastq.gz"}
	bad := []string{"", ".", "..", "a//b", "a/../b", "/a", "a/", "/", "a\x00b", "a\nb", "a\x7fb", "\u0085x", strings.Repeat("x", 256), "\xff"}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
	for _, n := range bad {
		if ValidateName(n) == nil {
			t.Errorf("ValidateName(%q) accepted", n)
		}
	}
}

func TestParsePieceKey(t *testing.T) {
	key := storage.PieceKey("D", "f1", 3, 5)
	seg, piece, err := ParsePieceKey(key, "D", "f1", 4, 6)
	if err != nil || seg != 3 || piece != 5 {
		t.Fatalf("got %d %d %v", seg, piece, err)
	}
	bad := []string{
		storage.PieceKey("D", "f2", 0, 0), // another file
		storage.PieceKey("E", "f1", 0, 0), // another dataset
		storage.PieceKey("D", "f1", 4, 0), // segment out of range
		storage.PieceKey("D", "f1", 0, 6), // piece out of range
		storage.ManifestKey("D", "f1"),    // not a piece
		storage.HeaderKey("D", "f1"),      // not a piece
		"dozo/v1/D/f1/seg-00000001/p1",    // other spelling
		"dozo/v1/D/f1/seg-00000001/p001",  // other spelling
		"dozo/v1/D/f1/seg-+0000001/p01",   // sign
		"dozo/v1/D/f1/seg-00000001/p01/x", // trailing
		"dozo/v1/D/f1/../f2/seg-00000001/p01",
		"",
	}
	for _, k := range bad {
		if _, _, err := ParsePieceKey(k, "D", "f1", 4, 6); err == nil {
			t.Errorf("accepted %q", k)
		}
	}
}

func TestParseIndex(t *testing.T) {
	if n, err := parseIndex("12", 13); err != nil || n != 12 {
		t.Fatal(n, err)
	}
	for _, s := range []string{"", "-1", "+1", "01", "13", "1e3", "0x1", " 1", "9999999999"} {
		if _, err := parseIndex(s, 13); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
}

func TestAuthAndInput(t *testing.T) {
	e := newEnv(t)
	if code, _ := e.call("", "GET", "/v1/health", nil, nil); code != 200 {
		t.Fatalf("health %d", code)
	}
	for tok, want := range map[string]int{"": 401, "nope": 401, "down": 503, "tok-rita": 200} {
		if code, raw := e.call(tok, "GET", "/v1/whoami", nil, nil); code != want {
			t.Errorf("whoami with %q: %d %s", tok, code, raw)
		}
	}
	var u api.User
	e.must(200, "tok-admin", "GET", "/v1/whoami", nil, &u)
	if u.Name != "admin" || fmt.Sprint(u.Roles) != "[admin]" {
		t.Fatalf("whoami %+v", u)
	}
	// Strict bodies.
	e.must(400, "tok-sam", "POST", "/v1/datasets", `{"id":"D","title":"t","extra":1}`, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets", `{"id":"D"} {}`, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets", ``, nil)
	e.must(413, "tok-sam", "POST", "/v1/datasets", `{"id":"D","title":"`+strings.Repeat("x", api.MaxBodyBytes)+`"}`, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "a/b"}, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "D", Title: "bad\x1b[31m"}, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "D", PlainSegmentSize: 1<<20 + 1}, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "D", K: 5, M: 2}, nil) // 7 > 6 targets
	e.must(403, "tok-rita", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "D"}, nil)
	e.must(400, "tok-sam", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: "age1bogus"}, nil)
	if ds, _ := e.cat.Datasets(context.Background()); len(ds) != 0 {
		t.Fatalf("bad input created datasets: %+v", ds)
	}
	e.must(404, "tok-sam", "GET", "/v1/nothing", nil, nil)
	// Every refused request is logged, and no token is.
	if !strings.Contains(e.logs.String(), `"result":"refused"`) || strings.Contains(e.logs.String(), "tok-") {
		t.Fatalf("log:\n%s", e.logs)
	}
}

// client is the part of dozo's client the test needs: encrypt and store
// pieces straight onto the (shared) targets, then commit.
func (e *env) upload(token, ds, name string, data []byte, fileKey, nonce []byte) api.File {
	e.t.Helper()
	var up api.Upload
	e.must(201, token, "POST", "/v1/datasets/"+ds+"/uploads", api.BeginUploadRequest{
		Name: name, Size: int64(len(data)),
		FileKey: base64.StdEncoding.EncodeToString(fileKey), Nonce: base64.StdEncoding.EncodeToString(nonce),
	}, &up)
	e.writeAndCommit(token, &up, data, fileKey, nonce)
	sha, md := sha256.Sum256(data), md5.Sum(data)
	var f api.File
	e.must(200, token, "POST", "/v1/uploads/"+up.ID+"/complete",
		api.CompleteUploadRequest{SHA256: hex.EncodeToString(sha[:]), MD5: hex.EncodeToString(md[:])}, &f)
	return f
}

func (e *env) writeAndCommit(token string, up *api.Upload, data, fileKey, nonce []byte) {
	e.t.Helper()
	for _, s := range e.writeSegments(up, data, fileKey, nonce) {
		e.must(200, token, "PUT", fmt.Sprintf("/v1/uploads/%s/segments/%d", up.ID, s.Index), s, nil)
	}
}

// writeSegments stores the upload's pieces on the env's targets and
// returns the segments' metadata, committing nothing.
func (e *env) writeSegments(up *api.Upload, data, fileKey, nonce []byte) []storage.SegmentMeta {
	e.t.Helper()
	l, err := filestore.Layout(up.K, up.M, up.PlainSegmentSize)
	if err != nil {
		e.t.Fatal(err)
	}
	var segs []storage.SegmentMeta
	_, err = filestore.Write(context.Background(), bytes.NewReader(data), filestore.WriteOptions{
		DatasetID: up.Dataset, FileID: up.FileID, Layout: l, Targets: e.targets, HashAlg: up.HashAlg,
		FileKey: fileKey, Nonce: nonce,
		OnSegment: func(s storage.SegmentMeta) error { segs = append(segs, s); return nil },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(segs) != up.Segments {
		e.t.Fatalf("wrote %d segments, upload wants %d", len(segs), up.Segments)
	}
	return segs
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var ds api.Dataset
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD1", Title: "t", PlainSegmentSize: 1 << 20}, &ds)
	if ds.K != 4 || ds.M != 2 || ds.TransitKey != "dozo-ds-JGAD1" || fmt.Sprint(ds.Access) != "[custodian submitter]" {
		t.Fatalf("dataset %+v", ds)
	}
	e.must(409, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD1"}, nil)

	data := randBytes(3<<20 + 12345) // four segments, the last short
	key, nonce := randBytes(16), randBytes(16)
	begin := api.BeginUploadRequest{Name: "s1.vcf", Size: int64(len(data)),
		FileKey: base64.StdEncoding.EncodeToString(key), Nonce: base64.StdEncoding.EncodeToString(nonce)}
	// Only submitters upload; strangers cannot tell the dataset exists.
	_, rawNoAccess := e.call("tok-rita", "POST", "/v1/datasets/JGAD1/uploads", begin, nil)
	_, rawMissing := e.call("tok-rita", "POST", "/v1/datasets/JGAD9/uploads", begin, nil)
	if errBody(t, rawNoAccess).Error != strings.Replace(errBody(t, rawMissing).Error, "JGAD9", "JGAD1", 1) {
		t.Fatalf("no access %s vs missing %s", rawNoAccess, rawMissing)
	}
	var up api.Upload
	e.must(201, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", begin, &up)
	if up.Segments != 4 || len(up.Targets) != 6 || up.State != "open" || up.HashAlg != storage.DefaultHashAlg {
		t.Fatalf("upload %+v", up)
	}
	// Resume: same key and nonce get the same session; anything else 409.
	var again api.Upload
	e.must(200, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", begin, &again)
	if again.ID != up.ID || again.FileID != up.FileID {
		t.Fatalf("resume gave another session")
	}
	other := begin
	other.FileKey = base64.StdEncoding.EncodeToString(randBytes(16))
	e.must(409, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", other, nil)
	other = begin
	other.Size++
	e.must(409, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", other, nil)

	// Presign checks key and placement.
	placed, _ := storage.Place(e.targets, storage.Layout{K: 4, M: 2, SegmentSize: up.SegmentSize}, 2)
	good := api.PresignRequest{Target: placed[1].ID(), Key: storage.PieceKey("JGAD1", up.FileID, 2, 1)}
	var pr api.PresignResponse
	e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/presign", good, &pr)
	if pr.Method != "PUT" || !strings.HasSuffix(pr.URL, "seg-00000002/p01?m=PUT") {
		t.Fatalf("presign %+v", pr)
	}
	for _, bad := range []api.PresignRequest{
		{Target: placed[2].ID(), Key: good.Key},                                   // wrong target
		{Target: "nope", Key: good.Key},                                           // unknown target
		{Target: placed[1].ID(), Key: storage.PieceKey("JGAD1", "f0", 2, 1)},      // another file
		{Target: placed[1].ID(), Key: storage.PieceKey("JGAD1", up.FileID, 4, 1)}, // no such segment
		{Target: placed[1].ID(), Key: storage.ManifestKey("JGAD1", up.FileID)},
	} {
		if code, raw := e.call("tok-sam", "POST", "/v1/uploads/"+up.ID+"/presign", bad, nil); code != 400 {
			t.Errorf("presign %+v: %d %s", bad, code, raw)
		}
	}
	// Other users do not see the upload.
	e.must(404, "tok-rita", "POST", "/v1/uploads/"+up.ID+"/presign", good, nil)
	e.must(404, "tok-rita", "GET", "/v1/uploads/"+up.ID, nil, nil)

	// Completing early, or committing pieces that are not stored, fails.
	e.must(409, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/complete", api.CompleteUploadRequest{SHA256: strings.Repeat("0", 64), MD5: strings.Repeat("0", 32)}, nil)
	fake := storage.SegmentMeta{Index: 0, Size: up.SegmentSize, PieceSize: up.SegmentSize / 4}
	p0, _ := storage.Place(e.targets, storage.Layout{K: 4, M: 2, SegmentSize: up.SegmentSize}, 0)
	for _, t := range p0 {
		fake.Pieces = append(fake.Pieces, storage.PieceMeta{Target: t.ID(), Hash: strings.Repeat("a", 64)})
	}
	e.must(409, "tok-sam", "PUT", "/v1/uploads/"+up.ID+"/segments/0", fake, nil)
	badSize := fake
	badSize.Size--
	e.must(400, "tok-sam", "PUT", "/v1/uploads/"+up.ID+"/segments/0", badSize, nil)
	e.must(400, "tok-sam", "PUT", "/v1/uploads/"+up.ID+"/segments/1", fake, nil)
	e.must(400, "tok-sam", "PUT", "/v1/uploads/"+up.ID+"/segments/4", fake, nil)
	swapped := fake
	swapped.Pieces = append([]storage.PieceMeta{fake.Pieces[1], fake.Pieces[0]}, fake.Pieces[2:]...)
	e.must(400, "tok-sam", "PUT", "/v1/uploads/"+up.ID+"/segments/0", swapped, nil)
	if fs, _ := e.cat.Files(ctx, "JGAD1"); len(fs) != 0 {
		t.Fatal("partial file listed")
	}

	e.writeAndCommit("tok-sam", &up, data, key, nonce)
	var shown api.Upload
	e.must(200, "tok-sam", "GET", "/v1/uploads/"+up.ID, nil, &shown)
	if len(shown.Committed) != 4 {
		t.Fatalf("committed %d", len(shown.Committed))
	}
	sha, md := sha256.Sum256(data), md5.Sum(data)
	done := api.CompleteUploadRequest{SHA256: hex.EncodeToString(sha[:]), MD5: hex.EncodeToString(md[:])}
	var f api.File
	e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/complete", done, &f)
	if f.State != api.FileAvailable || f.Size != int64(len(data)) || f.SHA256 != done.SHA256 {
		t.Fatalf("file %+v", f)
	}
	e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/complete", done, nil) // idempotent
	e.must(409, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", begin, nil)    // name taken
	var files []api.File
	e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD1/files", nil, &files)
	if len(files) != 1 || files[0].Name != "s1.vcf" {
		t.Fatalf("files %+v", files)
	}

	// Without a grant, rita cannot tell this file from a missing one.
	fetch := "/v1/datasets/JGAD1/files/s1.vcf/fetch"
	_, a := e.call("tok-rita", "POST", fetch, nil, nil)
	_, b := e.call("tok-rita", "POST", "/v1/datasets/JGAD1/files/nope/fetch", nil, nil)
	_, c := e.call("tok-sam", "POST", "/v1/datasets/JGAD1/files/s1.vcf.x/fetch", nil, nil)
	ea, eb, ec := errBody(t, a), errBody(t, b), errBody(t, c)
	if ea.Error != strings.Replace(eb.Error, "nope", "s1.vcf", 1) || eb.Error != strings.Replace(ec.Error, "s1.vcf.x", "nope", 1) {
		t.Fatalf("fetch bodies differ: %s / %s / %s", a, b, c)
	}
	e.must(404, "tok-rita", "GET", "/v1/datasets/JGAD1", nil, nil)
	e.must(404, "tok-rita", "GET", "/v1/datasets/JGAD1/files", nil, nil)
	pget := api.PresignRequest{Target: p0[0].ID(), Key: storage.PieceKey("JGAD1", f.ID, 0, 0)}
	e.must(404, "tok-rita", "POST", "/v1/fetches/"+f.ID+"/presign", pget, nil)

	// Grants: custodian only, at most a year, not in the past.
	grq := func(until string) api.GrantRequest {
		return api.GrantRequest{Until: until, ApplicationID: "J-DU000001", Institution: "NIG"}
	}
	e.must(404, "tok-rita", "PUT", "/v1/datasets/JGAD1/grants/rita", grq("2026-06-01"), nil)
	e.must(400, "tok-sam", "PUT", "/v1/datasets/JGAD1/grants/rita", grq("2027-03-02"), nil)
	e.must(400, "tok-sam", "PUT", "/v1/datasets/JGAD1/grants/rita", grq("2026-02-28"), nil)
	e.must(400, "tok-sam", "PUT", "/v1/datasets/JGAD1/grants/rita", grq("2026-6-1"), nil)
	e.must(400, "tok-sam", "PUT", "/v1/datasets/JGAD1/grants/Rita!", grq("2026-06-01"), nil)
	var g api.Grant
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD1/grants/rita", grq("2026-03-10"), &g)
	if !g.Active || g.GrantedBy != "sam" {
		t.Fatalf("grant %+v", g)
	}
	e.must(403, "tok-rita", "GET", "/v1/datasets/JGAD1/grants", nil, nil)

	// Fetch needs a registered recipient.
	raw := e.must(409, "tok-rita", "POST", fetch, nil, nil)
	if !strings.Contains(errBody(t, raw).Hint, "dozo keygen") {
		t.Fatalf("no hint: %s", raw)
	}
	id, _ := age.GenerateHybridIdentity()
	e.must(200, "tok-rita", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	var fr api.FetchResponse
	e.must(200, "tok-rita", "POST", fetch, nil, &fr)
	hdr, _ := base64.StdEncoding.DecodeString(fr.HeaderObject)
	if bytes.Contains(hdr, []byte(crypto.TransitStanzaType)) {
		t.Fatal("fetch header still carries the transit stanza")
	}
	rf, err := filestore.Open(ctx, e.withEntries("tok-rita", &fr), hdr, filestore.ReadOptions{Targets: e.targets}, id)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := rf.WriteTo(&got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("fetched data differs (%v)", err)
	}
	rf.Close()
	var gr api.PresignResponse
	e.must(200, "tok-rita", "POST", "/v1/fetches/"+f.ID+"/presign", pget, &gr)
	if gr.Method != "GET" {
		t.Fatalf("presign get %+v", gr)
	}
	e.must(400, "tok-rita", "POST", "/v1/fetches/"+f.ID+"/presign", api.PresignRequest{Target: p0[1].ID(), Key: pget.Key}, nil)

	// Expiry bites at request time; so does revocation.
	e.now = time.Date(2026, 3, 11, 0, 0, 1, 0, time.UTC)
	raw = e.must(403, "tok-rita", "POST", "/v1/fetches/"+f.ID+"/presign", pget, nil)
	if !strings.Contains(errBody(t, raw).Error, "expired") {
		t.Fatalf("expiry refusal does not say so: %s", raw)
	}
	e.now = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	e.must(200, "tok-rita", "POST", "/v1/fetches/"+f.ID+"/presign", pget, nil)
	e.must(400, "tok-sam", "DELETE", "/v1/datasets/JGAD1/grants/rita", nil, nil) // a reason is required
	e.must(200, "tok-sam", "DELETE", "/v1/datasets/JGAD1/grants/rita", api.RevokeRequest{Reason: "project ended"}, &g)
	if g.Active || g.RevokedBy != "sam" || g.RevokeReason != "project ended" {
		t.Fatalf("revoked %+v", g)
	}
	raw = e.must(403, "tok-rita", "POST", "/v1/fetches/"+f.ID+"/presign", pget, nil)
	if !strings.Contains(errBody(t, raw).Error, "revoked") {
		t.Fatalf("revocation refusal does not say so: %s", raw)
	}
	e.must(404, "tok-sam", "DELETE", "/v1/datasets/JGAD1/grants/rita", api.RevokeRequest{Reason: "again"}, nil)
	var hist []api.Grant
	e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD1/grants", nil, &hist)
	if len(hist) != 1 || hist[0].RevokedAt == nil {
		t.Fatalf("history %+v", hist)
	}
	// The admin sees everything.
	var all []api.Dataset
	e.must(200, "tok-admin", "GET", "/v1/datasets", nil, &all)
	if len(all) != 1 || all[0].Files != 1 || all[0].Access[0] != "admin" {
		t.Fatalf("admin datasets %+v", all)
	}
	e.must(200, "tok-rita", "GET", "/v1/datasets", nil, &all)
	if len(all) != 0 {
		t.Fatalf("rita sees %+v", all)
	}
}

func TestAbortAndExpire(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "D", PlainSegmentSize: 1 << 20}, nil)
	begin := func(name string) api.Upload {
		var up api.Upload
		e.must(201, "tok-sam", "POST", "/v1/datasets/D/uploads", api.BeginUploadRequest{Name: name, Size: 100,
			FileKey: base64.StdEncoding.EncodeToString(randBytes(16)), Nonce: base64.StdEncoding.EncodeToString(randBytes(16))}, &up)
		return up
	}
	countPieces := func(up api.Upload) int {
		n := 0
		for _, t := range e.targets {
			t.List(ctx, storage.FilePrefix("D", up.FileID), func(storage.ObjectInfo) error { n++; return nil })
		}
		return n
	}
	put := func(up api.Upload) {
		placed, _ := storage.Place(e.targets, storage.Layout{K: 4, M: 2, SegmentSize: up.SegmentSize}, 0)
		placed[0].Put(ctx, storage.PieceKey("D", up.FileID, 0, 0), strings.NewReader("x"), 1)
	}
	up := begin("a")
	put(up)
	e.must(204, "tok-sam", "DELETE", "/v1/uploads/"+up.ID, nil, nil)
	if n := countPieces(up); n != 0 {
		t.Fatalf("%d pieces left after abort", n)
	}
	e.must(204, "tok-sam", "DELETE", "/v1/uploads/"+up.ID, nil, nil)
	e.must(409, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/presign", api.PresignRequest{}, nil)
	begin("a") // the name is free again

	up = begin("b")
	put(up)
	e.now = e.now.Add(DefaultUploadExpiry + time.Minute)
	e.must(409, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/presign", api.PresignRequest{}, nil)
	if err := e.srv.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	var shown api.Upload
	e.must(200, "tok-sam", "GET", "/v1/uploads/"+up.ID, nil, &shown)
	if shown.State != "expired" || countPieces(up) != 0 {
		t.Fatalf("after reap: %s, %d pieces", shown.State, countPieces(up))
	}
	// A restart keeps sessions: a new server on the same catalog sees them.
	srv2, err := New(Options{Catalog: e.cat, Identifier: tokens, Keys: &fakeKeys{}, Targets: []Target{dirTarget{e.targets[0].(*storage.DirTarget)}}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv2
	e.must(200, "tok-sam", "GET", "/v1/uploads/"+up.ID, nil, nil)
}

func TestMethodAndBodyRules(t *testing.T) {
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "D"}, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets/D/files/x/fetch", `{"a":1}`, nil)
	e.must(404, "tok-sam", "POST", "/v1/datasets/D/files/x/fetch", `{}`, nil)
	e.must(404, "tok-sam", "POST", "/v1/datasets/D/files/x/fetch", ``, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets/D/uploads", api.BeginUploadRequest{Name: "..", Size: 1,
		FileKey: base64.StdEncoding.EncodeToString(randBytes(16)), Nonce: base64.StdEncoding.EncodeToString(randBytes(16))}, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets/D/uploads", api.BeginUploadRequest{Name: "x", Size: 1,
		FileKey: base64.StdEncoding.EncodeToString(randBytes(15)), Nonce: base64.StdEncoding.EncodeToString(randBytes(16))}, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets/D/uploads", api.BeginUploadRequest{Name: "x", Size: -1,
		FileKey: base64.StdEncoding.EncodeToString(randBytes(16)), Nonce: base64.StdEncoding.EncodeToString(randBytes(16))}, nil)
	e.must(400, "tok-sam", "POST", "/v1/datasets/D/uploads", api.BeginUploadRequest{Name: "x", Size: 1, HashAlg: "md5",
		FileKey: base64.StdEncoding.EncodeToString(randBytes(16)), Nonce: base64.StdEncoding.EncodeToString(randBytes(16))}, nil)
	// Unknown methods and paths get a JSON error, never a 2xx.
	if code, raw := e.call("tok-sam", "PATCH", "/v1/datasets/D", nil, nil); code != http.StatusNotFound || errBody(t, raw).Error == "" {
		t.Errorf("PATCH: %d %s", code, raw)
	}
}

// TestNBDCDatasetMetadata: access level, JGAD/JGAP ids and the maximum use
// period are checked, defaulted and shown; bad input creates nothing.
func TestNBDCDatasetMetadata(t *testing.T) {
	e := newEnv(t)
	var d api.Dataset
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t"}, &d)
	if d.AccessLevel != api.AccessControlled1 || d.NBDCID != "JGAD000001" || d.PolicyID != "" || d.MaxUseDays != 365 {
		t.Fatalf("defaults %+v", d)
	}
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "wgs-1", Title: "t",
		AccessLevel: api.AccessControlled2, NBDCID: "JGAD000002", PolicyID: "JGAP000002", MaxUseDays: 30}, &d)
	if d.AccessLevel != api.AccessControlled2 || d.NBDCID != "JGAD000002" || d.PolicyID != "JGAP000002" || d.MaxUseDays != 30 {
		t.Fatalf("metadata %+v", d)
	}
	for _, bad := range []api.CreateDatasetRequest{
		{ID: "B1", Title: "t", AccessLevel: "open"},
		{ID: "B2", Title: "t", NBDCID: "JGAD12"},
		{ID: "B3", Title: "t", NBDCID: "JGAS000001"},
		{ID: "B4", Title: "t", PolicyID: "JGAP0000001"},
		{ID: "B5", Title: "t", MaxUseDays: 367},
		{ID: "B6", Title: "t", MaxUseDays: -1},
	} {
		e.must(400, "tok-sam", "POST", "/v1/datasets", bad, nil)
		e.must(404, "tok-sam", "GET", "/v1/datasets/"+bad.ID, nil, nil)
	}
	var all []api.Dataset
	e.must(200, "tok-sam", "GET", "/v1/datasets", nil, &all)
	if len(all) != 2 || all[1].PolicyID != "JGAP000002" {
		t.Fatalf("list %+v", all)
	}
}

// TestGrantRegister: the register's fields, periods within the dataset's
// maximum, extensions as new rows, future grants, and who sees what.
func TestGrantRegister(t *testing.T) {
	e := newEnv(t) // today is 2026-03-01
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t", MaxUseDays: 30}, nil)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "OPEN1", Title: "t", AccessLevel: api.AccessUnrestricted}, nil)
	put := "/v1/datasets/JGAD000001/grants/rita"
	ok := api.GrantRequest{Until: "2026-03-30", ApplicationID: "J-DU000001", Institution: "NIG", Reason: "approved"} // 30 days, both ends counted
	for _, bad := range []api.GrantRequest{
		{Until: "2026-03-31", Institution: "NIG"},                                                  // controlled: application id required
		{Until: "2026-03-31", ApplicationID: "DU1", Institution: "NIG"},                            // bad application id
		{Until: "2026-03-31", ApplicationID: "J-DU000001"},                                         // institution required
		{Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "  "},                      // blank institution
		{Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "NIG"},                     // 31 days: beyond 30
		{From: "2026-02-28", Until: "2026-03-10", ApplicationID: "J-DU000001", Institution: "NIG"}, // starts in the past
		{From: "2026-03-10", Until: "2026-03-09", ApplicationID: "J-DU000001", Institution: "NIG"}, // ends before it starts
		{From: "2026-03-10", Until: "2026-04-09", ApplicationID: "J-DU000001", Institution: "NIG"}, // 31 days from its start
		{Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "NIG", Reason: "a\x00b"},   // control character
	} {
		if code, raw := e.call("tok-sam", "PUT", put, bad, nil); code != 400 {
			t.Errorf("grant %+v: %d %s", bad, code, raw)
		}
	}
	var gs []api.Grant
	if e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/grants?history=true", nil, &gs); len(gs) != 0 {
		t.Fatalf("refused grants left rows: %+v", gs)
	}
	// A grant on unrestricted data needs no application id (dozo still
	// wants a grant to read it).
	e.must(200, "tok-sam", "PUT", "/v1/datasets/OPEN1/grants/rita", api.GrantRequest{Until: "2027-02-28", Institution: "NIG"}, nil)
	e.must(400, "tok-sam", "PUT", "/v1/datasets/OPEN1/grants/rita", api.GrantRequest{Until: "2027-03-01", Institution: "NIG"}, nil)

	var g1, g2 api.Grant
	e.must(200, "tok-sam", "PUT", put, ok, &g1)
	if g1.State != api.GrantActive || g1.From != "2026-03-01" || g1.ApplicationID != "J-DU000001" || g1.Institution != "NIG" || g1.Reason != "approved" {
		t.Fatalf("grant %+v", g1)
	}
	// A later start cannot silently cut an active grant short.
	e.must(409, "tok-sam", "PUT", put, api.GrantRequest{From: "2026-03-20", Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	// Extension: a new row; the old one is kept, superseded.
	e.now = time.Date(2026, 3, 25, 9, 0, 0, 0, time.UTC)
	e.must(200, "tok-sam", "PUT", put, api.GrantRequest{Until: "2026-04-23", ApplicationID: "J-DU000001", Institution: "NIG", Reason: "extended"}, &g2)
	e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/grants", nil, &gs)
	if len(gs) != 1 || gs[0].ID != g2.ID {
		t.Fatalf("current rows %+v", gs)
	}
	e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/grants?history=true", nil, &gs)
	if len(gs) != 2 || gs[0].State != api.GrantSuperseded || gs[0].SupersededBy != g2.ID || gs[1].State != api.GrantActive {
		t.Fatalf("history %+v", gs)
	}
	e.must(400, "tok-sam", "GET", "/v1/datasets/JGAD000001/grants?history=maybe", nil, nil)

	// A grant that starts later is not active yet, and says so.
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000003", Title: "t"}, nil)
	var f api.Grant
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000003/grants/rita", api.GrantRequest{From: "2026-04-01", Until: "2026-05-01", ApplicationID: "J-DU000002", Institution: "NIG"}, &f)
	if f.State != api.GrantFuture || f.Active {
		t.Fatalf("future grant %+v", f)
	}
	raw := e.must(403, "tok-rita", "GET", "/v1/datasets/JGAD000003/files", nil, nil)
	if !strings.Contains(errBody(t, raw).Error, "starts on 2026-04-01") {
		t.Fatalf("future refusal: %s", raw)
	}
	e.now = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	e.must(200, "tok-rita", "GET", "/v1/datasets/JGAD000003/files", nil, nil)

	// The register: sam (custodian of all three) sees every row, rita her
	// own, eve nothing, the admin everything.
	for tok, want := range map[string]int{"tok-sam": 4, "tok-rita": 4, "tok-eve": 0, "tok-admin": 4} {
		e.must(200, tok, "GET", "/v1/grants?history=true", nil, &gs)
		if len(gs) != want {
			t.Errorf("%s sees %d rows, want %d", tok, len(gs), want)
		}
	}
	e.must(200, "tok-sam", "GET", "/v1/grants", nil, &gs)
	if len(gs) != 3 {
		t.Errorf("current register has %d rows, want 3", len(gs))
	}
}

// TestIncidentFreeze: freezing takes effect at the next request, says so,
// keeps revoke working, blocks grants to and by the frozen, and is lifted
// with a record.
func TestIncidentFreeze(t *testing.T) {
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	f := e.upload("tok-sam", "JGAD000001", "a.vcf", randBytes(5000), randBytes(16), randBytes(16))
	id, _ := age.GenerateX25519Identity()
	e.must(200, "tok-rita", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	grant := api.GrantRequest{Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "NIG"}
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita", grant, nil)
	fetch := "/v1/datasets/JGAD000001/files/a.vcf/fetch"
	e.must(200, "tok-rita", "POST", fetch, nil, nil)

	freeze := func(tok string, req api.FreezeRequest) (int, []byte) {
		return e.call(tok, "POST", "/v1/admin/freezes", req, nil)
	}
	for tok, want := range map[string]int{"tok-sam": 403, "tok-rita": 403, "": 401} {
		if code, raw := freeze(tok, api.FreezeRequest{Kind: "user", Name: "rita", Reason: "x"}); code != want {
			t.Errorf("freeze by %q: %d %s", tok, code, raw)
		}
	}
	for _, bad := range []api.FreezeRequest{
		{Kind: "user", Name: "rita"},               // no reason
		{Kind: "host", Name: "rita", Reason: "x"},  // bad kind
		{Kind: "user", Name: "Rita!", Reason: "x"}, // bad name
	} {
		if code, raw := freeze("tok-admin", bad); code != 400 {
			t.Errorf("freeze %+v: %d %s", bad, code, raw)
		}
	}
	if code, _ := freeze("tok-admin", api.FreezeRequest{Kind: "dataset", Name: "JGAD999999", Reason: "x"}); code != 404 {
		t.Errorf("freezing a missing dataset: %d", code)
	}
	var fr []api.Freeze
	if e.must(200, "tok-admin", "GET", "/v1/admin/freezes?all=true", nil, &fr); len(fr) != 0 {
		t.Fatalf("refused freezes were recorded: %+v", fr)
	}

	// User freeze: at once, with a clear message, everywhere but whoami.
	var fz api.Freeze
	e.must(201, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "user", Name: "rita", Reason: "laptop stolen"}, &fz)
	if fz.FrozenBy != "admin" || fz.Reason != "laptop stolen" {
		t.Fatalf("freeze %+v", fz)
	}
	code, _ := freeze("tok-admin", api.FreezeRequest{Kind: "user", Name: "rita", Reason: "again"})
	if code != 409 {
		t.Fatalf("double freeze: %d", code)
	}
	raw := e.must(403, "tok-rita", "POST", fetch, nil, nil)
	if eb := errBody(t, raw); !strings.Contains(eb.Error, "access frozen by an administrator") || strings.Contains(eb.Error, "laptop") {
		t.Fatalf("frozen refusal %+v", eb)
	}
	// The same for a dataset that does not exist: nothing leaks.
	raw2 := e.must(403, "tok-rita", "POST", "/v1/datasets/JGAD999999/files/a.vcf/fetch", nil, nil)
	if errBody(t, raw).Error != errBody(t, raw2).Error {
		t.Fatalf("frozen refusals differ: %s / %s", raw, raw2)
	}
	var u api.User
	if e.must(200, "tok-rita", "GET", "/v1/whoami", nil, &u); !u.Frozen {
		t.Fatalf("whoami does not say frozen: %+v", u)
	}
	// No new grant to a frozen user; revoking still works.
	raw = e.must(403, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita", grant, nil)
	if !strings.Contains(errBody(t, raw).Error, "frozen") {
		t.Fatalf("grant to frozen user: %s", raw)
	}
	e.must(400, "tok-admin", "DELETE", "/v1/admin/freezes/user/rita", api.UnfreezeRequest{}, nil)
	e.must(200, "tok-admin", "DELETE", "/v1/admin/freezes/user/rita", api.UnfreezeRequest{Reason: "laptop found"}, &fz)
	if fz.LiftedAt == nil || fz.LiftedBy != "admin" || fz.LiftReason != "laptop found" {
		t.Fatalf("lifted %+v", fz)
	}
	e.must(404, "tok-admin", "DELETE", "/v1/admin/freezes/user/rita", api.UnfreezeRequest{Reason: "again"}, nil)
	e.must(200, "tok-rita", "POST", fetch, nil, nil)

	// Dataset freeze: no reads, uploads or grants for anyone; show and
	// revoke stay.
	e.must(201, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "dataset", Name: "JGAD000001", Reason: "incident"}, nil)
	pget := api.PresignRequest{Target: e.targets[0].ID(), Key: storage.PieceKey("JGAD000001", f.ID, 0, 0)}
	for _, c := range []struct{ tok, method, path string }{
		{"tok-rita", "POST", fetch},
		{"tok-rita", "POST", "/v1/fetches/" + f.ID + "/presign"},
		{"tok-sam", "GET", "/v1/datasets/JGAD000001/files"},
		{"tok-admin", "GET", "/v1/datasets/JGAD000001/files"},
	} {
		var body any
		if strings.HasSuffix(c.path, "/presign") {
			body = pget
		}
		code, raw := e.call(c.tok, c.method, c.path, body, nil)
		if code != 403 || !strings.Contains(string(raw), "dataset \\\"JGAD000001\\\" is frozen") {
			t.Errorf("%s %s by %s on a frozen dataset: %d %s", c.method, c.path, c.tok, code, raw)
		}
	}
	e.must(403, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/bob", grant, nil)
	var d api.Dataset
	if e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001", nil, &d); !d.Frozen {
		t.Fatalf("show does not say frozen: %+v", d)
	}
	// A stranger still gets the plain 404.
	e.must(404, "tok-eve", "GET", "/v1/datasets/JGAD000001/files", nil, nil)
	e.must(200, "tok-sam", "DELETE", "/v1/datasets/JGAD000001/grants/rita", api.RevokeRequest{Reason: "incident"}, nil)
	e.must(200, "tok-admin", "GET", "/v1/admin/freezes", nil, &fr)
	if len(fr) != 1 || fr[0].Kind != "dataset" {
		t.Fatalf("in force %+v", fr)
	}
	e.must(200, "tok-admin", "GET", "/v1/admin/freezes?all=true", nil, &fr)
	if len(fr) != 2 {
		t.Fatalf("all freezes %+v", fr)
	}
	// Freezes and unfreezes pass through the audit hook like every request.
	if !strings.Contains(e.logs.String(), `"action":"admin.freeze"`) || !strings.Contains(e.logs.String(), `"action":"admin.unfreeze"`) {
		t.Fatal("freeze actions not logged")
	}
}

// TestMembers: custodians give and take per-dataset roles; the last
// custodian stays; bad input changes nothing.
func TestMembers(t *testing.T) {
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000001", Title: "t"}, nil)
	base := "/v1/datasets/JGAD000001/members/"
	e.must(400, "tok-sam", "PUT", base+"rita/owner", nil, nil)
	e.must(400, "tok-sam", "PUT", base+"Rita!/submitter", nil, nil)
	e.must(400, "tok-sam", "PUT", base+"rita/submitter", `{"x":1}`, nil)
	e.must(404, "tok-eve", "PUT", base+"eve/custodian", nil, nil)
	var ms []api.Member
	if e.must(200, "tok-sam", "GET", "/v1/datasets/JGAD000001/members", nil, &ms); len(ms) != 2 {
		t.Fatalf("bad input changed members: %+v", ms)
	}
	// rita becomes submitter, then may upload but not grant.
	e.must(200, "tok-sam", "PUT", base+"rita/submitter", nil, nil)
	begin := api.BeginUploadRequest{Name: "x", Size: 1, FileKey: base64.StdEncoding.EncodeToString(randBytes(16)), Nonce: base64.StdEncoding.EncodeToString(randBytes(16))}
	e.must(201, "tok-rita", "POST", "/v1/datasets/JGAD000001/uploads", begin, nil)
	var up api.Upload
	begin.Name = "y"
	e.must(201, "tok-rita", "POST", "/v1/datasets/JGAD000001/uploads", begin, &up)
	e.must(403, "tok-rita", "PUT", base+"eve/submitter", nil, nil)
	// Losing the role stops an upload already begun.
	e.must(204, "tok-sam", "DELETE", base+"rita/submitter", nil, nil)
	raw := e.must(403, "tok-rita", "POST", "/v1/uploads/"+up.ID+"/complete", api.CompleteUploadRequest{SHA256: strings.Repeat("0", 64), MD5: strings.Repeat("0", 32)}, nil)
	if !strings.Contains(errBody(t, raw).Error, "no longer a submitter") {
		t.Fatalf("upload after losing the role: %s", raw)
	}
	e.must(204, "tok-rita", "DELETE", "/v1/uploads/"+up.ID, nil, nil) // aborting stays possible
	// The admin makes eve custodian; sam can then leave that role.
	e.must(200, "tok-admin", "PUT", base+"eve/custodian", nil, nil)
	e.must(204, "tok-sam", "DELETE", base+"sam/custodian", nil, nil)
	e.must(403, "tok-sam", "PUT", "/v1/datasets/JGAD000001/grants/rita", api.GrantRequest{Until: "2026-03-31", ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	raw = e.must(409, "tok-eve", "DELETE", base+"eve/custodian", nil, nil)
	if !strings.Contains(errBody(t, raw).Error, "last custodian") {
		t.Fatalf("last custodian: %s", raw)
	}
	e.must(404, "tok-eve", "DELETE", base+"sam/custodian", nil, nil)
	// No role for a frozen user.
	e.must(201, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "user", Name: "bob", Reason: "incident", AllowUnknown: true}, nil)
	e.must(403, "tok-eve", "PUT", base+"bob/submitter", api.MemberRequest{AllowUnknown: true}, nil)
	if e.must(200, "tok-eve", "GET", "/v1/datasets/JGAD000001/members", nil, &ms); len(ms) != 2 {
		t.Fatalf("members %+v", ms)
	}
}
