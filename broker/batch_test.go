package broker

import (
	"encoding/base64"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// TestPresignBatch: the batch endpoints presign many pieces in order, apply
// the single presign's checks to every piece (one bad piece refuses the
// whole batch), bound the batch size, and refuse who the single presign
// refuses, with the same status.
func TestPresignBatch(t *testing.T) {
	e := newEnv(t)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	data := randBytes(3<<20 + 12345)
	key, nonce := randBytes(16), randBytes(16)
	var up api.Upload
	e.must(201, "tok-sam", "POST", "/v1/datasets/JGAD1/uploads", api.BeginUploadRequest{Name: "b.vcf", Size: int64(len(data)),
		FileKey: base64.StdEncoding.EncodeToString(key), Nonce: base64.StdEncoding.EncodeToString(nonce)}, &up)
	l := storage.Layout{K: 4, M: 2, SegmentSize: up.SegmentSize}
	var puts []api.PresignRequest
	for seg := range up.Segments {
		placed, _ := storage.Place(e.targets, l, seg)
		for i, tg := range placed {
			puts = append(puts, api.PresignRequest{Target: tg.ID(), Key: storage.PieceKey("JGAD1", up.FileID, seg, i)})
		}
	}
	batch := "/v1/uploads/" + up.ID + "/presign-batch"
	var br api.PresignBatchResponse
	e.must(200, "tok-sam", "POST", batch, api.PresignBatchRequest{Pieces: puts}, &br)
	if len(br.URLs) != len(puts) {
		t.Fatalf("%d URLs for %d pieces", len(br.URLs), len(puts))
	}
	for i, u := range br.URLs {
		if u.Method != "PUT" || !strings.Contains(u.URL, strings.TrimPrefix(puts[i].Key, "dozo/v1/")) {
			t.Fatalf("URL %d %+v for %s", i, u, puts[i].Key)
		}
	}
	wrong := append([]api.PresignRequest{}, puts...)
	wrong[3].Target = puts[4].Target // placement says otherwise
	e.must(400, "tok-sam", "POST", batch, api.PresignBatchRequest{Pieces: wrong}, nil)
	e.must(400, "tok-sam", "POST", batch, api.PresignBatchRequest{}, nil)
	tooMany := make([]api.PresignRequest, api.MaxPresignBatch+1)
	for i := range tooMany {
		tooMany[i] = puts[0]
	}
	e.must(400, "tok-sam", "POST", batch, api.PresignBatchRequest{Pieces: tooMany}, nil)
	e.must(404, "tok-rita", "POST", batch, api.PresignBatchRequest{Pieces: puts[:1]}, nil)

	e.writeAndCommit("tok-sam", &up, data, key, nonce)
	var f api.File
	e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/complete", api.CompleteUploadRequest{SHA256: strings.Repeat("0", 64), MD5: strings.Repeat("0", 32)}, &f)

	fetch := "/v1/fetches/" + f.ID + "/presign-batch"
	var gets []api.PresignRequest
	for seg := range up.Segments {
		placed, _ := storage.Place(e.targets, l, seg)
		for i := range 4 {
			gets = append(gets, api.PresignRequest{Target: placed[i].ID(), Key: storage.PieceKey("JGAD1", f.ID, seg, i)})
		}
	}
	// No grant: the same 404 as the single presign.
	e.must(404, "tok-rita", "POST", fetch, api.PresignBatchRequest{Pieces: gets}, nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD1/grants/rita", api.GrantRequest{Until: "2026-03-10", ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	id, _ := age.GenerateX25519Identity()
	e.must(200, "tok-rita", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	e.must(200, "tok-rita", "POST", fetch, api.PresignBatchRequest{Pieces: gets}, &br)
	if len(br.URLs) != len(gets) || br.URLs[0].Method != "GET" {
		t.Fatalf("fetch batch %+v", br.URLs[:1])
	}
	bad := append([]api.PresignRequest{}, gets...)
	bad[len(bad)-1].Target = gets[len(gets)-2].Target // not where the catalog has it
	e.must(400, "tok-rita", "POST", fetch, api.PresignBatchRequest{Pieces: bad}, nil)
	e.must(200, "tok-sam", "DELETE", "/v1/datasets/JGAD1/grants/rita", api.RevokeRequest{Reason: "test"}, nil)
	// A former grantee learns why, as for the single presign.
	e.must(403, "tok-rita", "POST", fetch, api.PresignBatchRequest{Pieces: gets}, nil)
}
