package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// TestDeletedDatasetState: uploads in flight when their dataset is
// deleted, and every later call on the dataset, get the dataset's real
// state. Those who may know the dataset (its custodians, admins, the
// uploader of a session) are told that its deletion is scheduled, and
// once it has run that it was deleted and when; strangers get the uniform
// 404; nobody gets a 500.
func TestDeletedDatasetState(t *testing.T) {
	ctx := context.Background()
	e, _ := newEnvWith(t, &versionedKeys{})
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/DS1/members/rita/submitter", nil, nil)

	// rita's uploads: one with no segment committed, one with every
	// segment committed, not yet completed.
	data := randBytes(1000)
	key, nonce := randBytes(16), randBytes(16)
	var open api.Upload
	e.must(201, "tok-rita", "POST", "/v1/datasets/DS1/uploads", beginReq("a.vcf", len(data), key, nonce), &open)
	var full api.Upload
	key2, nonce2 := randBytes(16), randBytes(16)
	e.must(201, "tok-rita", "POST", "/v1/datasets/DS1/uploads", beginReq("b.vcf", len(data), key2, nonce2), &full)
	e.writeAndCommit("tok-rita", &full, data, key2, nonce2)
	e.must(200, "tok-rita", "GET", "/v1/uploads/"+full.ID, nil, &full)
	seg := full.Committed[0]
	putPiece := api.PresignRequest{Target: open.Targets[0].ID, Key: storage.PieceKey("DS1", open.FileID, 0, 0)}
	sum := api.CompleteUploadRequest{SHA256: strings.Repeat("0", 64), MD5: strings.Repeat("0", 32)}

	type call struct {
		token, method, path string
		body                any
		status              int
	}
	// The calls of the uploader's client still running, and of a rerun
	// resuming the session.
	uploaderCalls := func(status int) []call {
		return []call{
			{"tok-rita", "GET", "/v1/uploads/" + open.ID, nil, status},
			{"tok-rita", "POST", "/v1/uploads/" + open.ID + "/presign", putPiece, status},
			{"tok-rita", "POST", "/v1/uploads/" + open.ID + "/presign-batch", api.PresignBatchRequest{Pieces: []api.PresignRequest{putPiece}}, status},
			{"tok-rita", "PUT", "/v1/uploads/" + full.ID + "/segments/0", seg, status},
			{"tok-rita", "POST", "/v1/uploads/" + full.ID + "/complete", sum, status},
		}
	}
	check := func(calls []call, want string) {
		t.Helper()
		for _, c := range calls {
			code, raw := e.call(c.token, c.method, c.path, c.body, nil)
			if code != c.status || !strings.HasPrefix(errBody(t, raw).Error, want) {
				t.Errorf("%s %s %s: %d %s, want %d saying %q", c.token, c.method, c.path, code, raw, c.status, want)
			}
		}
	}
	// Strangers, and a submitter who is not the uploader: the same answer
	// as for a dataset or upload that never existed.
	uniform := func() {
		t.Helper()
		for _, p := range []struct{ token, path, missing string }{
			{"tok-eve", "/v1/datasets/DS1", "/v1/datasets/DS9"},
			{"tok-rita", "/v1/datasets/DS1", "/v1/datasets/DS9"},
			{"tok-eve", "/v1/uploads/" + open.ID, "/v1/uploads/" + flipLast(open.ID)},
		} {
			code, raw := e.call(p.token, "GET", p.path, nil, nil)
			mcode, mraw := e.call(p.token, "GET", p.missing, nil, nil)
			got, want := errBody(t, raw), errBody(t, mraw)
			r := strings.NewReplacer("DS9", "DS1", flipLast(open.ID), open.ID)
			if code != 404 || mcode != 404 || got.Error != r.Replace(want.Error) || got.Hint != want.Hint {
				t.Errorf("%s GET %s: %d %s; missing: %d %s", p.token, p.path, code, raw, mcode, mraw)
			}
		}
	}

	// Scheduled: the dataset is hidden; the session waits for the
	// deletion's outcome.
	var st api.DeletionStatus
	e.must(202, "tok-sam", "POST", "/v1/datasets/DS1/delete", api.DeleteDatasetRequest{Confirm: "DS1"}, &st)
	check(uploaderCalls(409), `dataset "DS1" is scheduled for deletion at `)
	check([]call{
		{"tok-sam", "GET", "/v1/datasets/DS1", nil, 409},
		{"tok-admin", "GET", "/v1/uploads/" + open.ID, nil, 409},
	}, `dataset "DS1": deletion scheduled at `)
	uniform()

	// Run: the dataset is gone.
	e.now = st.RunsAt
	if err := e.srv.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	const gone = `dataset "DS1" was deleted on 2026-03-08 (UTC); its id cannot be reused`
	check(append(uploaderCalls(410),
		call{"tok-sam", "GET", "/v1/datasets/DS1", nil, 410},
		call{"tok-sam", "GET", "/v1/datasets/DS1/files", nil, 410},
		call{"tok-sam", "POST", "/v1/datasets/DS1/files/x.vcf/fetch", nil, 410},
		call{"tok-sam", "POST", "/v1/datasets/DS1/uploads", beginReq("c.vcf", 10, key, nonce), 410},
		call{"tok-sam", "PUT", "/v1/datasets/DS1/grants/bob", api.GrantRequest{Until: "2026-04-01", ApplicationID: "J-DU000002", Institution: "NIG"}, 410},
		call{"tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "again"}, 409},
		call{"tok-admin", "GET", "/v1/datasets/DS1", nil, 410},
		call{"tok-admin", "GET", "/v1/uploads/" + open.ID, nil, 410},
		call{"tok-admin", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "DS1", Title: "again"}, 409},
	), gone)
	uniform()
	// Aborting the session the deletion ended is done already.
	e.must(204, "tok-rita", "DELETE", "/v1/uploads/"+open.ID, nil, nil)
	if strings.Contains(e.logs.String(), `"status":500`) {
		t.Error(fmt.Sprint("a 500 in the log: ", e.logs.String()))
	}
}
