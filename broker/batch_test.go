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
	all := api.FetchBatchRequest{First: 0, Count: up.Segments}
	// No grant: the same 404 as the single presign.
	e.must(404, "tok-rita", "POST", fetch, all, nil)
	e.must(200, "tok-sam", "PUT", "/v1/datasets/JGAD1/grants/rita", api.GrantRequest{Until: "2026-03-10", ApplicationID: "J-DU000001", Institution: "NIG"}, nil)
	id, _ := age.GenerateX25519Identity()
	e.must(200, "tok-rita", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: id.Recipient().String()}, nil)
	// The fetch call carries the manifest's head only.
	var fr api.FetchResponse
	e.must(200, "tok-rita", "POST", "/v1/datasets/JGAD1/files/"+f.Name+"/fetch", nil, &fr)
	if fr.Manifest == nil || len(fr.Manifest.Segments) != 0 || fr.Manifest.SegmentCount() != up.Segments || fr.Manifest.MAC == "" {
		t.Fatalf("fetch answer's manifest: %+v, want a head of %d segments", fr.Manifest, up.Segments)
	}
	var fb api.FetchBatchResponse
	e.must(200, "tok-rita", "POST", fetch, all, &fb)
	if len(fb.URLs) != 4*up.Segments || fb.URLs[0].Method != "GET" || len(fb.Segments) != up.Segments {
		t.Fatalf("fetch batch: %d URLs, %d entries", len(fb.URLs), len(fb.Segments))
	}
	for i := range fb.Segments {
		if err := fr.Manifest.CheckEntry(i, &fb.Segments[i]); err != nil {
			t.Fatal(err)
		}
		for j := range 4 {
			if u := fb.URLs[i*4+j].URL; !strings.Contains(u, strings.TrimPrefix(storage.PieceKey("JGAD1", f.ID, i, j), "dozo/v1/")) {
				t.Fatalf("URL %d.%d %s is not piece %d of segment %d", i, j, u, j, i)
			}
		}
	}
	var pb api.FetchBatchResponse
	e.must(200, "tok-rita", "POST", fetch, api.FetchBatchRequest{First: 1, Count: 1, Parity: true}, &pb)
	if len(pb.URLs) != 2 || pb.Segments[0].Index != 1 || !strings.Contains(pb.URLs[1].URL, "seg-00000001/p05") {
		t.Fatalf("parity batch: %+v", pb)
	}
	for _, bad := range []api.FetchBatchRequest{{First: -1, Count: 1}, {First: 0, Count: 0}, {First: up.Segments, Count: 1}, {First: 0, Count: up.Segments + 1}, {First: 0, Count: api.MaxPresignBatch}} {
		e.must(400, "tok-rita", "POST", fetch, bad, nil)
	}
	e.must(200, "tok-sam", "DELETE", "/v1/datasets/JGAD1/grants/rita", api.RevokeRequest{Reason: "test"}, nil)
	// A former grantee learns why, as for the single presign.
	e.must(403, "tok-rita", "POST", fetch, all, nil)
}

// withEntries fills the manifest head of a fetch answer with its entries,
// batch by batch, as a client gets them.
func (e *env) withEntries(token string, fr *api.FetchResponse) *storage.Manifest {
	e.t.Helper()
	m := fr.Manifest
	for first, n := 0, m.SegmentCount(); first < n; {
		count := min(n-first, api.MaxPresignBatch/m.K)
		var fb api.FetchBatchResponse
		e.must(200, token, "POST", "/v1/fetches/"+fr.File.ID+"/presign-batch", api.FetchBatchRequest{First: first, Count: count}, &fb)
		m.Segments = append(m.Segments, fb.Segments...)
		first += count
	}
	if err := m.Validate(); err != nil {
		e.t.Fatal(err)
	}
	return m
}
