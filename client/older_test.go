package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// TestOlderDozod: against a dozod that decodes its bodies strictly and
// knows none of the folded fields, a begin asking for URLs, a fetch
// asking for its first batch and a complete carrying a commit each fall
// back to the calls it knows, and succeed.
func TestOlderDozod(t *testing.T) {
	var (
		mu    sync.Mutex
		calls []string
	)
	strict := func(w http.ResponseWriter, r *http.Request, v any) bool {
		b, _ := io.ReadAll(r.Body)
		if len(b) == 0 {
			return true
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(api.Error{Error: fmt.Sprintf("bad JSON body: %v", err)})
			return false
		}
		return true
	}
	mux := http.NewServeMux()
	handle := func(rt *api.Route, body func() any, out any) {
		mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls = append(calls, rt.Action)
			mu.Unlock()
			if !strict(w, r, body()) {
				return
			}
			json.NewEncoder(w).Encode(out)
		})
	}
	// The bodies as dozod took them before the folded fields.
	handle(api.BeginUpload, func() any {
		return &struct {
			Name    any `json:"name"`
			Size    any `json:"size"`
			FileKey any `json:"file_key"`
			Nonce   any `json:"nonce"`
			HashAlg any `json:"hash_alg"`
		}{}
	}, api.Upload{ID: "U"})
	handle(api.FetchFile, func() any { return &struct{}{} }, api.FetchResponse{File: api.File{ID: "F"}})
	handle(api.CompleteUpload, func() any {
		return &struct {
			SHA256 any `json:"sha256"`
			MD5    any `json:"md5"`
		}{}
	}, api.File{ID: "F"})
	handle(api.CommitSegment, func() any { return &storage.SegmentMeta{} }, api.Upload{ID: "U"})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := New(Options{Broker: srv.URL, Token: "s.test-token"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		c := calls
		calls = nil
		return c
	}
	if u, err := c.BeginUpload(ctx, "D", api.BeginUploadRequest{Name: "a", PresignSegments: 16}); err != nil || u.ID != "U" {
		t.Fatalf("begin: %v, %+v", err, u)
	}
	if got := fmt.Sprint(taken()); got != "[upload.begin upload.begin]" {
		t.Errorf("begin made %s", got)
	}
	if f, err := c.FetchWithBatch(ctx, "D", "a", api.FetchBatchRequest{Count: 16}); err != nil || f.File.ID != "F" || f.Batch != nil {
		t.Fatalf("fetch: %v, %+v", err, f)
	}
	if got := fmt.Sprint(taken()); got != "[file.fetch file.fetch]" {
		t.Errorf("fetch made %s", got)
	}
	if f, err := c.CompleteUpload(ctx, "U", api.CompleteUploadRequest{SHA256: "s", MD5: "m", Commit: &storage.SegmentMeta{Index: 0}}); err != nil || f.ID != "F" {
		t.Fatalf("complete: %v, %+v", err, f)
	}
	if got := fmt.Sprint(taken()); got != "[upload.complete upload.commit upload.complete]" {
		t.Errorf("complete made %s", got)
	}
}
