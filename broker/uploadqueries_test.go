package broker

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// TestUploadQueries bounds the catalog statements of an upload's calls,
// as TestQueriesPerRequest does for the reads. A call on an upload reads
// the upload, then the caller's freeze, the dataset with the caller's
// roles and its freeze in one statement (catalog.Access), and names the
// dataset for its audit record, so the record needs no lookup. Before,
// the checks were read one by one and complete read them twice: begin 9,
// commit 15, complete 19.
func TestUploadQueries(t *testing.T) {
	e, data, key, nonce := newUploadQueriesEnv(t)
	var up api.Upload
	begin := e.statements(func() {
		e.must(201, "tok-sam", "POST", "/v1/datasets/DS1/uploads", api.BeginUploadRequest{Name: "a.vcf", Size: int64(len(data)),
			FileKey: base64.StdEncoding.EncodeToString(key), Nonce: base64.StdEncoding.EncodeToString(nonce)}, &up)
	})
	commit := e.statements(func() { e.writeAndCommit("tok-sam", &up, data, key, nonce) }) // one segment
	complete := e.statements(func() {
		e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/complete", completeReq(data, nil), nil)
	})
	atMost(t, statementBound{"begin", begin, 8}, statementBound{"commit", commit, 9}, statementBound{"complete", complete, 10})
	// Each record names its dataset all the same.
	var recs []api.AuditRecord
	e.must(200, "tok-admin", "GET", "/v1/audit?actor=sam", nil, &recs)
	seen := 0
	for _, r := range recs {
		if strings.HasPrefix(r.Action, "upload.") && strings.Contains(r.Object, up.ID) || r.Object == "file/"+up.FileID {
			seen++
			if r.Dataset != "DS1" {
				t.Errorf("audit record %s %s names dataset %q, want DS1", r.Action, r.Object, r.Dataset)
			}
		}
	}
	if seen < 3 {
		t.Errorf("found %d audit records of the upload, want its begin, commit and complete", seen)
	}
}

// TestUploadRefusalOrder: a frozen caller is told so before anything is
// said of an upload, also of one that does not exist or is another's.
func TestUploadRefusalOrder(t *testing.T) {
	e := newEnv(t)
	e.day("2026-03-01")
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	var up api.Upload
	e.must(201, "tok-sam", "POST", "/v1/datasets/DS1/uploads", api.BeginUploadRequest{Name: "a.vcf", Size: 10,
		FileKey: base64.StdEncoding.EncodeToString(randBytes(16)), Nonce: base64.StdEncoding.EncodeToString(randBytes(16))}, &up)
	e.must(404, "tok-rita", "GET", "/v1/uploads/"+up.ID, nil, nil)
	e.must(201, "tok-admin", "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "user", Name: "rita", Reason: "laptop stolen"}, nil)
	for _, id := range []string{up.ID, "u-00000000000000000000000000", "not an id"} {
		code, body := e.call("tok-rita", "GET", "/v1/uploads/"+strings.ReplaceAll(id, " ", "%20"), nil, nil)
		if code != 403 || !strings.Contains(string(body), "frozen") {
			t.Errorf("frozen caller, upload %q: %d %s, want 403 saying the account is frozen", id, code, body)
		}
	}
}

// TestFoldedUploadQueries: a one-segment upload in two calls, its URLs
// with the begin and its commit with the complete. The begin does not
// touch the session it has just made, and the complete records the
// segment in its own transaction (catalog.CommitAndComplete) instead of
// committing it first and reading the segments again: 9 and 14
// statements before, the complete in two transactions.
func TestFoldedUploadQueries(t *testing.T) {
	e, data, key, nonce := newUploadQueriesEnv(t)
	var up api.Upload
	begin := e.statements(func() {
		e.must(201, "tok-sam", "POST", "/v1/datasets/DS1/uploads", api.BeginUploadRequest{Name: "a.vcf", Size: int64(len(data)),
			FileKey: base64.StdEncoding.EncodeToString(key), Nonce: base64.StdEncoding.EncodeToString(nonce), PresignSegments: 1}, &up)
	})
	if len(up.Presigned) != up.K+up.M {
		t.Fatalf("begin presigned %d URLs, want %d", len(up.Presigned), up.K+up.M)
	}
	segs := e.writeSegments(&up, data, key, nonce)
	complete := e.statements(func() {
		e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/complete", completeReq(data, &segs[0]), nil)
	})
	atMost(t, statementBound{"begin with URLs", begin, 8}, statementBound{"complete with the commit", complete, 11})
}

// newUploadQueriesEnv is an env with dataset DS1 of sam's, warmed by one
// upload (grant warnings, MAC memo, the user seen), and the plaintext,
// file key and nonce of a one-segment file to upload next.
func newUploadQueriesEnv(t *testing.T) (e *env, data, key, nonce []byte) {
	e = newEnv(t)
	e.day("2026-03-01")
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	e.upload("tok-sam", "DS1", "warm.vcf", randBytes(1000), randBytes(16), randBytes(16))
	return e, randBytes(1000), randBytes(16), randBytes(16)
}

// statements is how many catalog statements call sends.
func (e *env) statements(call func()) int64 {
	n := e.cat.Queries()
	call()
	return e.cat.Queries() - n
}

// completeReq completes an upload of data, carrying commit if set.
func completeReq(data []byte, commit *storage.SegmentMeta) api.CompleteUploadRequest {
	sha, md := sha256.Sum256(data), md5.Sum(data)
	return api.CompleteUploadRequest{SHA256: hex.EncodeToString(sha[:]), MD5: hex.EncodeToString(md[:]), Commit: commit}
}

type statementBound struct {
	name     string
	got, max int64
}

// atMost fails t for each call that sent more statements than its bound.
func atMost(t *testing.T, bounds ...statementBound) {
	t.Helper()
	for _, c := range bounds {
		t.Logf("%s: %d statements", c.name, c.got)
		if c.got > c.max {
			t.Errorf("%s: %d statements, want at most %d", c.name, c.got, c.max)
		}
	}
}
