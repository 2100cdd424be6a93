package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/storage"
	"github.com/dozo-vault/dozo/vault/vaulttest"
)

// fakeIdentity maps tokens to users, standing in for Vault's lookup-self.
type fakeIdentity map[string]string

func (f fakeIdentity) Identify(_ context.Context, tok string) (*Identity, error) {
	if tok == "down" {
		return nil, ErrIdentityUnavailable
	}
	if u, ok := f[tok]; ok {
		return &Identity{Name: u, Mount: "userpass", EntityID: fakeEntity(u)}, nil
	}
	return nil, ErrBadToken
}

// fakeEntity is the Vault entity fakeIdentity gives user name u.
func fakeEntity(u string) string { return "ent-" + u }

// seeAll records every user of ids as seen logging in, as dozod records
// them at their first request: they are known users.
func seeAll(t *testing.T, cat *catalog.Catalog, ids fakeIdentity, now time.Time) {
	t.Helper()
	for _, u := range ids {
		if err := cat.SeenUser(context.Background(), u, "userpass", fakeEntity(u), now); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeKeys is the in-memory Transit every broker unit test uses.
type fakeKeys = vaulttest.Keys

// dirTarget adds fake presigning to a DirTarget.
type dirTarget struct{ *storage.DirTarget }

func (d dirTarget) PresignPut(_ context.Context, key string, _ time.Duration) (*url.URL, error) {
	return &url.URL{Scheme: "file", Path: filepath.Join(d.Dir(), key), RawQuery: "m=PUT"}, nil
}

func (d dirTarget) PresignGet(_ context.Context, key string, _ time.Duration) (*url.URL, error) {
	return &url.URL{Scheme: "file", Path: filepath.Join(d.Dir(), key), RawQuery: "m=GET"}, nil
}

type env struct {
	t       *testing.T
	srv     *Server
	cat     *catalog.Catalog
	targets []storage.Target
	now     time.Time
	logs    *bytes.Buffer
}

var tokens = fakeIdentity{"tok-admin": "admin", "tok-sam": "sam", "tok-rita": "rita", "tok-eve": "eve"}

func newEnv(t *testing.T) *env {
	t.Helper()
	e, _ := newEnvWith(t, &fakeKeys{})
	return e
}

// newEnvOn builds an env on a new catalog, whose path it returns: six
// directory targets, two on each of three servers (s1-a to s3-b), each
// served to the broker through target, and a server with the fake
// Transit, tokens, admin as the administrator, sam as the submitter and
// the JSON log in e.logs. prepare, if not nil, runs before the server is
// made: it may set up the catalog and change the options.
func newEnvOn(t *testing.T, target func(*storage.DirTarget) Target, prepare func(e *env, o *Options)) (*env, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dozo.db")
	cat, err := catalog.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	e := &env{t: t, cat: cat, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	var targets []Target
	for _, srv := range []string{"s1", "s2", "s3"} {
		for _, b := range []string{"a", "b"} {
			d, err := storage.NewDirTarget(srv+"-"+b, srv, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			targets = append(targets, target(d))
			e.targets = append(e.targets, d)
		}
	}
	o := Options{
		Catalog: cat, Identifier: tokens, Keys: &fakeKeys{}, Targets: targets,
		Admins: []string{"admin"}, Submitters: []string{"sam"},
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)), Version: "test",
		Now: func() time.Time { return e.now },
	}
	if prepare != nil {
		prepare(e, &o)
	}
	if e.srv, err = New(o); err != nil {
		t.Fatal(err)
	}
	return e, path
}

// asDirTarget serves a directory target to the broker with fake presigning.
func asDirTarget(d *storage.DirTarget) Target { return dirTarget{d} }

// call makes one request and decodes a 2xx body into out (if not nil). It
// returns the status and the raw body.
func (e *env) call(token, method, path string, body any, out any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	raw := rec.Body.Bytes()
	if out != nil && rec.Code/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return rec.Code, raw
}

// must is call that fails the test unless the status is want.
func (e *env) must(want int, token, method, path string, body, out any) []byte {
	e.t.Helper()
	code, raw := e.call(token, method, path, body, out)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	return raw
}

// errBody returns an error body without its request id, for comparing.
func errBody(t *testing.T, raw []byte) api.Error {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("error body %s: %v", raw, err)
	}
	if e.RequestID == "" {
		t.Fatalf("error body without request id: %s", raw)
	}
	e.RequestID = ""
	return e
}
