package transfer

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/dozo-vault/dozo/client"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// fakeDozod is an in-process stand-in for dozod, just enough of the API
// contract (package api) to drive the client's upload, resume and fetch
// logic in unit tests without servers. Storage is a set of DirTargets
// behind a second HTTP server that honours "presigned" URLs.
type fakeDozod struct {
	t       *testing.T
	api     *httptest.Server
	store   *httptest.Server
	targets map[string]*storage.DirTarget
	order   []api.Target
	auth    storage.Authenticator

	mu        sync.Mutex
	recipient string
	uploads   map[string]*fakeUpload
	files     map[string]*fakeFile // by dataset/name
	nextID    int
	aborted   []string

	// failPutAfter, when > 0, makes storage refuse PUTs after that many.
	failPutAfter atomic.Int64
	puts         atomic.Int64
	gets         atomic.Int64 // piece GETs (fetch traffic)
	loseComplete atomic.Bool  // the next complete succeeds but its answer is lost
	presigns     atomic.Int64 // single presigns
	storeConns   atomic.Int64 // connections opened to storage
	batches      atomic.Int64 // batch presigns
	commits      atomic.Int64 // segment commits carried by a complete
	noBatch      bool         // answer batch presigns 404, like an older dozod

	// placement, if set, changes the placement upload sessions announce
	// (dozod's, by default: placeRows).
	placement func([][]string) [][]string

	// onPut, if set, is called before each piece PUT is stored.
	onPut func(key string)
	// onGet, if set, is called before each piece GET is answered.
	onGet atomic.Pointer[func(key string)]
}

type fakeUpload struct {
	api.Upload
	key, nonce []byte
}

type fakeFile struct {
	api.File
	m          *storage.Manifest
	key, nonce []byte
}

const fakePlainSeg = 4 * crypto.ChunkSize

func newFakeDozod(t *testing.T) *fakeDozod {
	retryBase = time.Millisecond
	f := &fakeDozod{t: t, targets: map[string]*storage.DirTarget{}, uploads: map[string]*fakeUpload{},
		files: map[string]*fakeFile{}, auth: storage.NewHMACAuthenticator([]byte("test"))}
	for _, s := range []string{"s1", "s2", "s3"} {
		for _, b := range []string{"a", "b"} {
			id := s + "-" + b
			dt, err := storage.NewDirTarget(id, s, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			f.targets[id] = dt
			f.order = append(f.order, api.Target{ID: id, Domain: s})
		}
	}
	f.store = httptest.NewUnstartedServer(http.HandlerFunc(f.serveStorage))
	f.store.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.storeConns.Add(1)
		}
	}
	f.store.Start()
	f.api = httptest.NewServer(f.apiMux())
	t.Cleanup(func() { f.api.Close(); f.store.Close() })
	return f
}

// client returns a client of f; set, if given, changes its options.
func (f *fakeDozod) client(t *testing.T, set ...func(*client.Options)) *client.Client {
	o := client.Options{Broker: f.api.URL, Token: "s.test-token"}
	for _, s := range set {
		s(&o)
	}
	c, err := client.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeDozod) serveStorage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("sig") != "secret" {
		http.Error(w, "<client.Error><Code>AccessDenied</Code></client.Error>", http.StatusForbidden)
		return
	}
	tid, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	t := f.targets[tid]
	if t == nil {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPut:
		n := f.puts.Add(1)
		if lim := f.failPutAfter.Load(); lim > 0 && n > lim {
			http.Error(w, "<client.Error><Code>SlowDown</Code></client.Error>", http.StatusServiceUnavailable)
			return
		}
		if f.onPut != nil {
			f.onPut(key)
		}
		if err := t.Put(r.Context(), key, r.Body, r.ContentLength); err != nil {
			http.Error(w, err.Error(), 500)
		}
	case http.MethodGet:
		f.gets.Add(1)
		if fn := f.onGet.Load(); fn != nil {
			(*fn)(key)
		}
		off, length := int64(0), int64(-1)
		if rg := r.Header.Get("Range"); rg != "" {
			a, b, _ := strings.Cut(strings.TrimPrefix(rg, "bytes="), "-")
			off, _ = strconv.ParseInt(a, 10, 64)
			if b != "" {
				e, _ := strconv.ParseInt(b, 10, 64)
				length = e - off + 1
			}
		}
		rc, err := t.Get(r.Context(), key, off, length)
		if err != nil {
			http.Error(w, "<client.Error><Code>NoSuchKey</Code></client.Error>", http.StatusNotFound)
			return
		}
		defer rc.Close()
		w.WriteHeader(http.StatusPartialContent)
		io.Copy(w, rc)
	}
}

func (f *fakeDozod) fail(w http.ResponseWriter, status int, msg, hint string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Error: msg, Hint: hint, RequestID: "req-1"})
}

func (f *fakeDozod) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// apiMux routes the fake's API as dozod does, from the route table.
func (f *fakeDozod) apiMux() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range api.Routes {
		mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, r *http.Request) { f.serveAPI(w, r, rt) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { f.serveAPI(w, r, nil) })
	return mux
}

func (f *fakeDozod) serveAPI(w http.ResponseWriter, r *http.Request, rt *api.Route) {
	if r.Header.Get("Authorization") != "Bearer s.test-token" {
		f.fail(w, 401, "bad token", "log in again")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch rt {
	case api.SetRecipient:
		var req api.RecipientRequest
		json.NewDecoder(r.Body).Decode(&req)
		f.recipient = req.Recipient
		f.reply(w, api.User{Name: "alice", Recipient: req.Recipient})
	case api.BeginUpload:
		ds := r.PathValue("ds")
		var req api.BeginUploadRequest
		json.NewDecoder(r.Body).Decode(&req)
		key, _ := base64.StdEncoding.DecodeString(req.FileKey)
		nonce, _ := base64.StdEncoding.DecodeString(req.Nonce)
		if _, ok := f.files[ds+"/"+req.Name]; ok {
			f.fail(w, 409, "file exists", "")
			return
		}
		// Like dozod's resumable: the open upload of the same name is
		// returned only for the same size, file key and nonce.
		if up := f.openUpload(ds, req.Name); up != nil {
			if up.Size != req.Size || !bytes.Equal(up.key, key) || !bytes.Equal(up.nonce, nonce) {
				f.fail(w, 409, "an upload in progress has this name", "")
				return
			}
			f.reply(w, f.presignFirst(up.Upload, req.PresignSegments))
			return
		}
		f.nextID++
		l, _ := filestore.Layout(4, 2, fakePlainSeg)
		up := &fakeUpload{key: key, nonce: nonce}
		up.Upload = api.Upload{ID: fmt.Sprintf("up%d", f.nextID), FileID: fmt.Sprintf("f%d", f.nextID), Dataset: ds,
			Name: req.Name, Size: req.Size, K: 4, M: 2, SegmentSize: l.SegmentSize, PlainSegmentSize: fakePlainSeg,
			Segments: int((crypto.CiphertextSize(req.Size) + l.SegmentSize - 1) / l.SegmentSize),
			Targets:  f.order, State: "open", ExpiresAt: time.Now().Add(time.Hour), HashAlg: req.HashAlg}
		up.Placement = placeRows(f.order, l)
		if f.placement != nil {
			up.Placement = f.placement(up.Placement)
		}
		f.uploads[up.ID] = up
		f.reply(w, f.presignFirst(up.Upload, req.PresignSegments))
	case api.ShowUpload, api.AbortUpload, api.PresignUploadBatch, api.PresignUpload, api.CommitSegment, api.CompleteUpload:
		up := f.uploads[r.PathValue("upload")]
		if up == nil {
			f.fail(w, 404, "no such upload", "")
			return
		}
		switch rt {
		case api.ShowUpload:
			f.reply(w, up.Upload)
		case api.AbortUpload:
			if up.State == "complete" {
				f.fail(w, 409, "upload is complete", "")
				return
			}
			// Like dozod: an abort deletes the session's pieces at once.
			up.State = "aborted"
			f.aborted = append(f.aborted, up.ID)
			for _, tg := range f.targets {
				var keys []string
				tg.List(r.Context(), storage.FilePrefix(up.Dataset, up.FileID), func(oi storage.ObjectInfo) error {
					keys = append(keys, oi.Key)
					return nil
				})
				for _, k := range keys {
					tg.Delete(r.Context(), k)
				}
			}
			w.WriteHeader(204)
		case api.PresignUploadBatch:
			f.presignBatch(w, r, "PUT")
		case api.PresignUpload:
			var req api.PresignRequest
			json.NewDecoder(r.Body).Decode(&req)
			f.presigns.Add(1)
			f.reply(w, api.PresignResponse{URL: f.store.URL + "/" + req.Target + "/" + req.Key + "?sig=secret", Method: "PUT"})
		case api.CommitSegment:
			var seg storage.SegmentMeta
			json.NewDecoder(r.Body).Decode(&seg)
			n, err := strconv.Atoi(r.PathValue("n"))
			if err != nil {
				n = -1
			}
			if msg := up.commit(n, seg); msg != "" {
				f.fail(w, 400, msg, "")
				return
			}
			f.reply(w, up.Upload)
		case api.CompleteUpload:
			var req api.CompleteUploadRequest
			json.NewDecoder(r.Body).Decode(&req)
			if up.State == "complete" {
				f.reply(w, f.files[up.Dataset+"/"+up.Name].File)
				return
			}
			if req.Commit != nil {
				f.commits.Add(1)
				if msg := up.commit(req.Commit.Index, *req.Commit); msg != "" {
					f.fail(w, 400, msg, "")
					return
				}
			}
			l, _ := filestore.Layout(4, 2, fakePlainSeg)
			m, err := storage.NewManifest(up.Dataset, up.FileID, l, cmp.Or(up.HashAlg, storage.DefaultHashAlg), up.Committed)
			if err == nil && m.Size != crypto.CiphertextSize(up.Size) {
				err = fmt.Errorf("stored %d, want %d", m.Size, crypto.CiphertextSize(up.Size))
			}
			if err != nil {
				f.fail(w, 400, err.Error(), "")
				return
			}
			m.Sign(context.Background(), f.auth)
			up.State = "complete"
			ff := &fakeFile{m: m, key: up.key, nonce: up.nonce}
			ff.File = api.File{ID: up.FileID, Dataset: up.Dataset, Name: up.Name, Size: up.Size, SHA256: req.SHA256, MD5: req.MD5, State: api.FileAvailable}
			f.files[up.Dataset+"/"+up.Name] = ff
			if f.loseComplete.CompareAndSwap(true, false) {
				f.fail(w, 502, "bad gateway", "")
				return
			}
			f.reply(w, ff.File)
		}
	case api.ListFiles:
		fs := []api.File{}
		for _, ff := range f.files {
			if ff.Dataset == r.PathValue("ds") {
				fs = append(fs, ff.File)
			}
		}
		f.reply(w, fs)
	case api.FetchFile:
		ff := f.files[r.PathValue("ds")+"/"+r.PathValue("name")]
		if ff == nil {
			f.fail(w, 404, "no such file", "")
			return
		}
		rs, err := age.ParseRecipients(strings.NewReader(f.recipient))
		if err != nil {
			f.fail(w, 400, "no recipient registered", "run dozo key register")
			return
		}
		hdr, err := crypto.NewHeaderObject(ff.key, ff.nonce, rs...)
		if err != nil {
			f.fail(w, 500, err.Error(), "")
			return
		}
		fr := api.FetchResponse{File: ff.File, Manifest: ff.m.Head(), HeaderObject: base64.StdEncoding.EncodeToString(hdr), Targets: f.order}
		var req *api.FetchBatchRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req != nil {
			// Like dozod: the first batch, cut to the file and one batch.
			req.Count = max(1, api.FoldedCount(req.Count, req.First, len(ff.m.Segments), ff.m.K))
			if fr.Batch = f.batchOf(ff.m, *req); fr.Batch == nil {
				f.fail(w, 400, "bad fetch batch", "")
				return
			}
		}
		f.reply(w, fr)
	case api.PresignFetchBatch:
		f.fetchBatch(w, r, r.PathValue("file"))
	case api.PresignFetch:
		var req api.PresignRequest
		json.NewDecoder(r.Body).Decode(&req)
		f.presigns.Add(1)
		f.reply(w, api.PresignResponse{URL: f.store.URL + "/" + req.Target + "/" + req.Key + "?sig=secret", Method: "GET"})
	default:
		f.fail(w, 404, "no route "+r.Method+" "+r.URL.Path, "")
	}
}

// openUpload returns the open upload session of dataset/name, if any.
func (f *fakeDozod) openUpload(dataset, name string) *fakeUpload {
	for _, up := range f.uploads {
		if up.Dataset == dataset && up.Name == name && up.State == "open" {
			return up
		}
	}
	return nil
}

// fetchBatch answers a fetch batch as dozod does: entries and GET URLs.
func (f *fakeDozod) fetchBatch(w http.ResponseWriter, r *http.Request, fileID string) {
	var req api.FetchBatchRequest
	json.NewDecoder(r.Body).Decode(&req)
	var m *storage.Manifest
	for _, ff := range f.files {
		if ff.ID == fileID {
			m = ff.m
		}
	}
	if m == nil {
		f.fail(w, 400, "bad fetch batch", "")
		return
	}
	out := f.batchOf(m, req)
	if out == nil {
		f.fail(w, 400, "bad fetch batch", "")
		return
	}
	f.batches.Add(1)
	f.reply(w, out)
}

// batchOf is a fetch batch's answer for req on m, nil for a bad request.
func (f *fakeDozod) batchOf(m *storage.Manifest, req api.FetchBatchRequest) *api.FetchBatchResponse {
	if req.First < 0 || req.Count < 1 || req.First+req.Count > len(m.Segments) {
		return nil
	}
	lo, hi := 0, m.K
	if req.Parity {
		lo, hi = m.K, m.K+m.M
	}
	out := &api.FetchBatchResponse{Segments: m.Segments[req.First : req.First+req.Count]}
	for _, seg := range out.Segments {
		for j := lo; j < hi; j++ {
			out.URLs = append(out.URLs, api.PresignResponse{URL: f.store.URL + "/" + seg.Pieces[j].Target + "/" + storage.PieceKey(m.DatasetID, m.FileID, seg.Index, j) + "?sig=secret",
				Method: "GET", ExpiresAt: time.Now().Add(10 * time.Minute)})
		}
	}
	return out
}

// presignFirst is a begin's answer u with the PUT URLs of its first want
// segments, as dozod gives them.
func (f *fakeDozod) presignFirst(u api.Upload, want int) api.Upload {
	if f.noBatch || want == 0 || len(u.Placement) == 0 {
		return u // (a malformed placement is the client's to refuse)
	}
	per := u.K + u.M
	for seg := range api.FoldedCount(want, 0, u.Segments, per) {
		for _, t := range u.Placement[seg%len(u.Placement)] {
			key := storage.PieceKey(u.Dataset, u.FileID, seg, len(u.Presigned)%per)
			u.Presigned = append(u.Presigned, api.PresignResponse{URL: f.store.URL + "/" + t + "/" + key + "?sig=secret",
				Method: "PUT", ExpiresAt: time.Now().Add(10 * time.Minute)})
		}
	}
	return u
}

// commit records segment seg as number n of the upload, with dozod's
// checks of its index and stored size; it returns dozod's refusal, or "".
func (up *fakeUpload) commit(n int, seg storage.SegmentMeta) string {
	stored := crypto.CiphertextSize(up.Size)
	if n < 0 || n >= up.Segments || seg.Index != n {
		return fmt.Sprintf("segment: index %d out of range", n)
	}
	if want := min(up.SegmentSize, stored-int64(n)*up.SegmentSize); seg.Size != want {
		return fmt.Sprintf("segment %d: size %d, want %d", n, seg.Size, want)
	}
	up.Committed = append(up.Committed, seg)
	return ""
}

func (f *fakeDozod) presignBatch(w http.ResponseWriter, r *http.Request, method string) {
	if f.noBatch {
		f.fail(w, 404, "no route", "")
		return
	}
	var req api.PresignBatchRequest
	json.NewDecoder(r.Body).Decode(&req)
	f.batches.Add(1)
	out := api.PresignBatchResponse{}
	for _, p := range req.Pieces {
		out.URLs = append(out.URLs, api.PresignResponse{URL: f.store.URL + "/" + p.Target + "/" + p.Key + "?sig=secret",
			Method: method, ExpiresAt: time.Now().Add(10 * time.Minute)})
	}
	f.reply(w, out)
}

// ref is a target known by ID and domain, all storage.Place looks at.
type ref struct {
	storage.Target
	id, domain string
}

func (r ref) ID() string     { return r.id }
func (r ref) Domain() string { return r.domain }

// placeRows is the placement dozod announces for an upload over ts: one
// row per target, row s listing the IDs storage.Place gives segment s.
func placeRows(ts []api.Target, l storage.Layout) [][]string {
	st := make([]storage.Target, len(ts))
	for i, t := range ts {
		st[i] = ref{id: t.ID, domain: t.Domain}
	}
	rows := make([][]string, len(ts))
	for seg := range rows {
		placed, err := storage.Place(st, l, seg)
		if err != nil {
			panic(err)
		}
		for _, t := range placed {
			rows[seg] = append(rows[seg], t.ID())
		}
	}
	return rows
}
