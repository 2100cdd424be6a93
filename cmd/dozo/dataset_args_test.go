package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dozo-vault/dozo/api"
)

// TestOneDatasetArgument: the commands that read one dataset take exactly
// one argument, send it to dozod as typed (dozod judges it), refuse a
// wrong count or a flag clash before any request, and name the dataset in
// the error dozod's answer gives.
func TestOneDatasetArgument(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	args := withFake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/whoami" {
			json.NewEncoder(w).Encode(api.User{Name: "rita"})
			return
		}
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(api.Error{Error: "stand-in: no such dataset"})
	}))
	sent := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := paths
		paths = nil
		return out
	}
	for _, tc := range []struct {
		cmd  []string
		path string // of the one request; "" none
		want string
		code int
	}{
		{[]string{"dataset", "show"}, "", "want the dataset ID, got 0 arguments", exitUsage},
		{[]string{"dataset", "show", "A", "B"}, "", "want the dataset ID, got 2 arguments", exitUsage},
		{[]string{"dataset", "show", "not-an-id"}, "/v1/datasets/not-an-id", "showing dataset not-an-id", 1},
		{[]string{"ls"}, "", "want the dataset ID, got 0 arguments", exitUsage},
		{[]string{"ls", "JGAD000001", "x"}, "", "want the dataset ID, got 2 arguments", exitUsage},
		{[]string{"ls", "not-an-id"}, "/v1/datasets/not-an-id/files", "listing files of not-an-id", 1},
		{[]string{"checksums"}, "", "want the dataset ID, got 0 arguments", exitUsage},
		{[]string{"checksums", "--md5", "--sha256"}, "", "want the dataset ID, got 0 arguments", exitUsage},
		{[]string{"checksums", "--md5", "--sha256", "JGAD000001"}, "", "--md5 and --sha256 do not combine", exitUsage},
		{[]string{"checksums", "not-an-id", "--md5"}, "/v1/datasets/not-an-id/files", "listing files of not-an-id", 1},
		{[]string{"dataset", "members"}, "", "want the dataset ID, got 0 arguments", exitUsage},
		{[]string{"dataset", "members", "not-an-id"}, "/v1/datasets/not-an-id/members", "listing members of not-an-id", 1},
		{[]string{"dataset", "deletion-report"}, "", "want the dataset ID, got 0 arguments", exitUsage},
		{[]string{"dataset", "deletion-report", "not-an-id"}, "/v1/datasets/not-an-id/deletion-report", "fetching the deletion report of not-an-id", 1},
	} {
		code, msg := exitStatus(t, append(slices.Clone(args), tc.cmd...)...)
		got := sent()
		if code != tc.code || !strings.Contains(msg, tc.want) {
			t.Errorf("dozo %s: exit %d %q; want exit %d and %q", strings.Join(tc.cmd, " "), code, msg, tc.code, tc.want)
		}
		if want := []string{tc.path}; tc.path == "" && len(got) != 0 || tc.path != "" && strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("dozo %s sent %q; want %q", strings.Join(tc.cmd, " "), got, tc.path)
		}
	}
}
