package broker

// The parts a call that opens or closes a transfer may carry: the first
// presign batch with a begin or a fetch, the last segment's commit with a
// complete. Each must answer as its own route would, refuse what that
// route refuses, with its words, and change nothing when it refuses.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// lastAudit is the newest audit record of action.
func (e *env) lastAudit(action string) audit.Record {
	e.t.Helper()
	var last audit.Record
	for _, r := range e.auditRecords() {
		if r.Action == action && r.Seq >= last.Seq {
			last = r
		}
	}
	if last.Action == "" {
		e.t.Fatalf("no audit record of %s", action)
	}
	return last
}

// foldEnv is a dataset with 1 MiB segments (K=4, M=2) where sam submits.
func foldEnv(t *testing.T) *env {
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	return e
}

// foldBegin is beginReq asking for the URLs of presign segments.
func foldBegin(name string, size int, key, nonce []byte, presign int) api.BeginUploadRequest {
	r := beginReq(name, size, key, nonce)
	r.PresignSegments = presign
	return r
}

// TestBeginPresigns: a begin asking for its first URLs gets, in order,
// what a presign batch of every piece of those segments answers; a longer
// ask is cut to the file; a repeated begin (a resume, or a retry of a
// lost answer) answers the same; the record says URLs were presigned; a
// bad ask is refused before any session exists.
func TestBeginPresigns(t *testing.T) {
	e := foldEnv(t)
	data := randBytes(3<<20 + 12345) // 4 segments
	key, nonce := randBytes(16), randBytes(16)
	var up api.Upload
	e.must(201, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", foldBegin("b.vcf", len(data), key, nonce, 2), &up)
	if up.Segments != 4 {
		t.Fatalf("%d segments, want 4", up.Segments)
	}
	l := storage.Layout{K: up.K, M: up.M, SegmentSize: up.SegmentSize}
	var pieces []api.PresignRequest
	for seg := range up.Segments {
		placed, _ := storage.Place(e.targets, l, seg)
		for i, tg := range placed {
			pieces = append(pieces, api.PresignRequest{Target: tg.ID(), Key: storage.PieceKey("JGAD1", up.FileID, seg, i)})
		}
	}
	var br api.PresignBatchResponse
	e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/presign-batch", api.PresignBatchRequest{Pieces: pieces[:12]}, &br)
	if !reflect.DeepEqual(up.Presigned, br.URLs) {
		t.Fatalf("begin's URLs differ from the batch's:\n%+v\n%+v", up.Presigned, br.URLs)
	}
	if r := e.lastAudit("upload.begin"); r.Object != "upload/"+up.ID || r.Detail != "with PUT URLs of the 12 pieces of segments 0..1" {
		t.Errorf("begin's record: object %q, detail %q", r.Object, r.Detail)
	}

	// Repeatable: the same begin again (the answer was lost) gets the
	// same session and URLs, here cut to the 4 segments the file has.
	var again api.Upload
	e.must(200, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", foldBegin("b.vcf", len(data), key, nonce, 100), &again)
	e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/presign-batch", api.PresignBatchRequest{Pieces: pieces}, &br)
	if again.ID != up.ID || !reflect.DeepEqual(again.Presigned, br.URLs) {
		t.Fatalf("repeated begin: session %s (want %s), %d URLs, want the batch's %d", again.ID, up.ID, len(again.Presigned), len(br.URLs))
	}
	// Without the ask, no URLs, as before.
	var plainBegin api.Upload
	e.must(200, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", foldBegin("b.vcf", len(data), key, nonce, 0), &plainBegin)
	if plainBegin.ID != up.ID || len(plainBegin.Presigned) != 0 {
		t.Fatalf("a begin without presign_segments: session %s, %d URLs", plainBegin.ID, len(plainBegin.Presigned))
	}
	if r := e.lastAudit("upload.begin"); r.Detail != "" {
		t.Errorf("plain begin's detail %q, want none", r.Detail)
	}

	// A bad ask: refused, and no session holds the name.
	before := e.auditCount()
	for _, n := range []int{-1, api.MaxPresignBatch + 1} {
		raw := e.must(400, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", foldBegin("c.vcf", 10, key, nonce, n), nil)
		if eb := errBody(t, raw); !strings.Contains(eb.Error, "presign_segments") {
			t.Errorf("presign_segments %d: %q", n, eb.Error)
		}
	}
	if n := e.auditCount() - before; n != 2 {
		t.Errorf("%d records for 2 refusals", n)
	}
	e.must(201, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", foldBegin("c.vcf", 10, randBytes(16), randBytes(16), 1), nil)

	// Refused where the begin is: a frozen dataset, a caller who may
	// not submit.
	e.must(201, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "dataset", Name: "JGAD1", Reason: "incident"}, nil)
	plain := errBody(t, e.must(403, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", foldBegin("d.vcf", 10, key, nonce, 0), nil))
	folded := errBody(t, e.must(403, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", foldBegin("d.vcf", 10, key, nonce, 1), nil))
	if plain != folded {
		t.Errorf("frozen: folded begin answered %+v, the plain one %+v", folded, plain)
	}
	e.must(404, "tok-rita", "POST", "/v1/datasets/JGAD1/uploads", foldBegin("d.vcf", 10, key, nonce, 1), nil)
}

// foldFile uploads data as f.vcf and lets rita fetch it.
func foldFile(e *env, data []byte) api.File {
	f := e.upload("tok-sam", "JGAD1", "f.vcf", data, randBytes(16), randBytes(16))
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD1/grants/rita", api.GrantRequest{Until: "2026-03-10", ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	id, _ := age.GenerateX25519Identity()
	e.must(200, "tok-rita", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	return f
}

// TestFetchWithBatch: a fetch asking for its first batch carries what the
// batch route answers (its Count cut to the file and one batch); no body
// or {} answer as before; a bad ask is refused with the batch route's
// words; the record says URLs were presigned; a revoked grant refuses
// the folded fetch as it refuses the plain one.
func TestFetchWithBatch(t *testing.T) {
	e := foldEnv(t)
	f := foldFile(e, randBytes(3<<20+12345)) // 4 segments
	fetch := "/v1/datasets/JGAD1/files/f.vcf/fetch"
	batch := "/v1/fetches/" + f.ID + "/presign-batch"
	for _, c := range []struct {
		ask, want api.FetchBatchRequest
	}{
		{api.FetchBatchRequest{First: 0, Count: 16}, api.FetchBatchRequest{First: 0, Count: 4}},
		{api.FetchBatchRequest{First: 0, Count: 2}, api.FetchBatchRequest{First: 0, Count: 2}},
		{api.FetchBatchRequest{First: 1, Count: 1, Parity: true}, api.FetchBatchRequest{First: 1, Count: 1, Parity: true}},
		{api.FetchBatchRequest{First: 3, Count: 200, Parity: true}, api.FetchBatchRequest{First: 3, Count: 1, Parity: true}},
	} {
		var fr api.FetchResponse
		e.must(200, "tok-rita", "POST", fetch, c.ask, &fr)
		var want api.FetchBatchResponse
		e.must(200, "tok-rita", "POST", batch, c.want, &want)
		if fr.Batch == nil || !reflect.DeepEqual(*fr.Batch, want) {
			t.Fatalf("fetch with %+v: batch %+v, want %+v", c.ask, fr.Batch, want)
		}
		kind := "data"
		if c.want.Parity {
			kind = "parity"
		}
		wantDetail := fmt.Sprintf("with GET URLs of the %s pieces of segments %d..%d", kind, c.want.First, c.want.First+c.want.Count-1)
		if r := e.lastAudit("file.fetch"); r.Object != "file/"+f.ID || r.Detail != wantDetail {
			t.Errorf("fetch's record: object %q, detail %q, want %q", r.Object, r.Detail, wantDetail)
		}
	}
	for _, body := range []any{nil, "{}", api.FetchBatchRequest{}} {
		var fr api.FetchResponse
		e.must(200, "tok-rita", "POST", fetch, body, &fr)
		if fr.Batch != nil || fr.Manifest == nil || fr.HeaderObject == "" {
			t.Fatalf("fetch with body %v: %+v", body, fr)
		}
	}
	// Bad asks: the batch route's refusal, word for word.
	for _, bad := range []api.FetchBatchRequest{{First: -1, Count: 1}, {First: 0, Count: 0, Parity: true}, {First: 4, Count: 1}, {First: 0, Count: -3}} {
		got := errBody(t, e.must(400, "tok-rita", "POST", fetch, bad, nil))
		want := errBody(t, e.must(400, "tok-rita", "POST", batch, bad, nil))
		if got != want {
			t.Errorf("fetch with %+v: %+v, the batch route says %+v", bad, got, want)
		}
		if r := e.lastAudit("file.fetch"); r.Result != audit.ResultRefused || !strings.HasPrefix(r.Detail, "with GET URLs") || !strings.Contains(r.Detail, want.Error) {
			t.Errorf("refused fetch's record: %s %q", r.Result, r.Detail)
		}
	}
	e.must(400, "tok-rita", "POST", fetch, `{"first":0,"count":1,"pieces":[]}`, nil)

	// A revoked grant: refused alike, folded or not.
	e.must(200, "tok-sam", "DELETE", "/v1/datasets/JGAD1/grants/rita", api.RevokeRequest{Reason: "test"}, nil)
	plain := errBody(t, e.must(403, "tok-rita", "POST", fetch, nil, nil))
	folded := errBody(t, e.must(403, "tok-rita", "POST", fetch, api.FetchBatchRequest{Count: 16}, nil))
	if plain != folded {
		t.Errorf("revoked: folded fetch answered %+v, the plain one %+v", folded, plain)
	}
	// A stranger: the uniform 404 either way.
	e.must(404, "tok-eve", "POST", fetch, api.FetchBatchRequest{Count: 16}, nil)
}

// foldUpload begins an upload of data as name and stores every piece,
// committing none; it returns the session and the segments.
func foldUpload(e *env, name string, data []byte) (api.Upload, []storage.SegmentMeta) {
	e.t.Helper()
	key, nonce := randBytes(16), randBytes(16)
	var up api.Upload
	e.must(201, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", foldBegin(name, len(data), key, nonce, 0), &up)
	l, err := filestore.Layout(up.K, up.M, up.PlainSegmentSize)
	if err != nil {
		e.t.Fatal(err)
	}
	var segs []storage.SegmentMeta
	_, err = filestore.Write(context.Background(), bytes.NewReader(data), filestore.WriteOptions{
		DatasetID: up.Dataset, FileID: up.FileID, Layout: l, Targets: e.targets, HashAlg: up.HashAlg, FileKey: key, Nonce: nonce,
		OnSegment: func(s storage.SegmentMeta) error { segs = append(segs, s); return nil },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return up, segs
}

// committed is how many segments upload id has committed.
func (e *env) committed(id string) int {
	e.t.Helper()
	var up api.Upload
	e.must(200, "tok-sam", "GET", "/v1/uploads/"+id, nil, &up)
	return len(up.Committed)
}

// TestCompleteWithCommit: a complete carrying the last segment's commit
// commits it with the commit route's checks and completes; a bad segment,
// a missing piece or another segment still uncommitted are refused with
// the commit route's (or the complete's) words, and nothing is committed
// or completed; a repeat of the complete returns the same file; the
// record names the segment committed.
func TestCompleteWithCommit(t *testing.T) {
	e := foldEnv(t)
	data := randBytes(2<<20 + 999) // 3 segments
	up, segs := foldUpload(e, "g.vcf", data)
	last := segs[len(segs)-1]
	complete := "/v1/uploads/" + up.ID + "/complete"
	sums := func(c *storage.SegmentMeta) api.CompleteUploadRequest {
		return api.CompleteUploadRequest{SHA256: strings.Repeat("a", 64), MD5: strings.Repeat("b", 32), Commit: c}
	}
	commitPath := func(n int) string { return fmt.Sprintf("/v1/uploads/%s/segments/%d", up.ID, n) }

	// Segment 0 of 3 committed: completing with the last one's commit
	// would still miss segment 1, so nothing is committed.
	e.must(200, "tok-sam", "PUT", commitPath(0), segs[0], nil)
	eb := errBody(t, e.must(409, "tok-sam", "POST", complete, sums(&last), nil))
	if !strings.Contains(eb.Error, "has 2 of 3 segments committed") || e.committed(up.ID) != 1 {
		t.Fatalf("complete missing a segment: %q, %d committed", eb.Error, e.committed(up.ID))
	}
	// A bad segment there: the commit route's refusal comes first.
	early := last
	early.PieceSize++
	got := errBody(t, e.must(400, "tok-sam", "POST", complete, sums(&early), nil))
	if want := errBody(t, e.must(400, "tok-sam", "PUT", commitPath(2), early, nil)); got != want || e.committed(up.ID) != 1 {
		t.Fatalf("bad segment, another missing: complete says %+v, the commit route %+v", got, want)
	}
	e.must(200, "tok-sam", "PUT", commitPath(1), segs[1], nil)

	// Bad segments: the commit route's refusal, word for word, and
	// nothing committed.
	badSize := last
	badSize.Size++
	badTarget := last
	badTarget.Pieces = append([]storage.PieceMeta(nil), last.Pieces...)
	badTarget.Pieces[0].Target, badTarget.Pieces[1].Target = last.Pieces[1].Target, last.Pieces[0].Target
	badHash := last
	badHash.Pieces = append([]storage.PieceMeta(nil), last.Pieces...)
	badHash.Pieces[2].Hash = "XYZ"
	for _, c := range []struct {
		name string
		seg  storage.SegmentMeta
		path string
	}{
		{"size", badSize, commitPath(2)},
		{"target", badTarget, commitPath(2)},
		{"hash", badHash, commitPath(2)},
		{"index", func() storage.SegmentMeta { s := last; s.Index = 3; return s }(), commitPath(3)},
	} {
		got := errBody(t, e.must(400, "tok-sam", "POST", complete, sums(&c.seg), nil))
		want := errBody(t, e.must(400, "tok-sam", "PUT", c.path, c.seg, nil))
		if got != want {
			t.Errorf("bad %s: complete says %+v, the commit route %+v", c.name, got, want)
		}
		if n := e.committed(up.ID); n != 2 {
			t.Fatalf("bad %s: %d segments committed, want 2", c.name, n)
		}
	}
	// A piece not stored: the commit route's 409.
	p := storage.PieceKey(up.Dataset, up.FileID, 2, 3)
	var moved string
	for _, tg := range e.targets {
		if tg.ID() == last.Pieces[3].Target {
			moved = filepath.Join(tg.(interface{ Dir() string }).Dir(), p)
		}
	}
	if err := os.Rename(moved, moved+".away"); err != nil {
		t.Fatal(err)
	}
	got = errBody(t, e.must(409, "tok-sam", "POST", complete, sums(&last), nil))
	want := errBody(t, e.must(409, "tok-sam", "PUT", commitPath(2), last, nil))
	if got != want || e.committed(up.ID) != 2 {
		t.Errorf("missing piece: complete says %+v, the commit route %+v", got, want)
	}
	if r := e.lastAudit("upload.complete"); r.Result != audit.ResultRefused || r.Detail != "with the commit of upload/"+up.ID+"/segment/2: "+want.Error {
		t.Errorf("refused complete's record: %s %q", r.Result, r.Detail)
	}
	if err := os.Rename(moved+".away", moved); err != nil {
		t.Fatal(err)
	}

	// The good one: committed and completed in one call.
	var f api.File
	e.must(200, "tok-sam", "POST", complete, sums(&last), &f)
	if f.State != api.FileAvailable || f.Name != "g.vcf" {
		t.Fatalf("completed file %+v", f)
	}
	if r := e.lastAudit("upload.complete"); r.Object != "file/"+f.ID || r.Detail != "with the commit of upload/"+up.ID+"/segment/2" {
		t.Errorf("complete's record: object %q, detail %q", r.Object, r.Detail)
	}
	// Repeated (the answer was lost): the same file, with or without
	// the commit.
	var again api.File
	e.must(200, "tok-sam", "POST", complete, sums(&last), &again)
	if !reflect.DeepEqual(again, f) {
		t.Errorf("repeated complete: %+v, want %+v", again, f)
	}
	var plainAgain api.File
	e.must(200, "tok-sam", "POST", complete, sums(nil), &plainAgain)
	if !reflect.DeepEqual(plainAgain, f) {
		t.Errorf("repeated complete without the commit: %+v, want %+v", plainAgain, f)
	}
	// The file reads back whole: its manifest holds the folded commit.
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD1/grants/rita", api.GrantRequest{Until: "2026-03-10", ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	id, _ := age.GenerateX25519Identity()
	e.must(200, "tok-rita", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	var fr api.FetchResponse
	e.must(200, "tok-rita", "POST", "/v1/datasets/JGAD1/files/g.vcf/fetch", api.FetchBatchRequest{Count: 16}, &fr)
	if fr.Batch == nil || len(fr.Batch.Segments) != 3 || !reflect.DeepEqual(fr.Batch.Segments[2], last) {
		t.Fatalf("the manifest's last entry: %+v, want %+v", fr.Batch, last)
	}

	// Someone else's upload: the same 404 as for the commit route.
	up2, segs2 := foldUpload(e, "h.vcf", randBytes(1000))
	got = errBody(t, e.must(404, "tok-rita", "POST", "/v1/uploads/"+up2.ID+"/complete", sums(&segs2[0]), nil))
	want = errBody(t, e.must(404, "tok-rita", "PUT", fmt.Sprintf("/v1/uploads/%s/segments/0", up2.ID), segs2[0], nil))
	if got != want || e.committed(up2.ID) != 0 {
		t.Errorf("stranger's complete: %+v, commit route %+v", got, want)
	}
}

// foldedRoutes are the matrix rows of the calls that open or close a
// transfer, each carrying its folded part: the begin asking for URLs, the
// fetch asking for its first batch, the complete carrying the commit of
// the upload's segment. Each has the rule of its route, which covers the
// folded part's own route (the presign batch's ownUploadWrite for the
// upload's creator who may begin; readData for the fetch batch; the
// commit's ownUploadWrite).
var foldedRoutes = map[string]matrixRoute{
	"POST /v1/datasets/{ds}/uploads": {"upload.begin", "submit", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/datasets/" + fx.ds + "/uploads", api.BeginUploadRequest{Name: "new.vcf", Size: 10, PresignSegments: 16,
			FileKey: base64.StdEncoding.EncodeToString(make([]byte, 16)), Nonce: base64.StdEncoding.EncodeToString(make([]byte, 16))}
	}},
	"POST /v1/datasets/{ds}/files/{name}/fetch": {"file.fetch", "readData", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/datasets/" + fx.ds + "/files/" + fx.file + "/fetch", api.FetchBatchRequest{First: 0, Count: 16}
	}},
	"POST /v1/uploads/{upload}/complete": {"upload.complete", "ownUploadWrite", func(fx *fixture) (string, string, any) {
		seg := fx.seg
		return "POST", "/v1/uploads/" + fx.upload + "/complete", api.CompleteUploadRequest{SHA256: strings.Repeat("0", 64), MD5: strings.Repeat("0", 32), Commit: &seg}
	}},
}

// TestAuthorizationMatrixFolded walks the folded calls over every role and
// state: each is allowed and refused exactly where its route's row says,
// with the uniform 404 where that is the answer.
func TestAuthorizationMatrixFolded(t *testing.T) {
	if testing.Short() {
		t.Skip("the matrix builds a server per cell")
	}
	w := newMatrixWorld(t)
	n := 0
	for pattern, row := range foldedRoutes {
		plain, ok := matrixRoutes[pattern]
		if !ok || plain.rule != row.rule || plain.action != row.action {
			t.Fatalf("folded %s: rule %q, action %q; its route's row says %q, %q", pattern, row.rule, row.action, plain.rule, plain.action)
		}
		for _, role := range matrixRoles {
			want := strings.Fields(matrixRules[row.rule][role])
			for si, state := range matrixStates {
				n++
				e, fx, done := w.cell(t, n, role, state)
				checkCell(t, e, fx, pattern+" (folded)", row, role, state, want[si])
				done()
			}
		}
	}
}
