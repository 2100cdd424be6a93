package transfer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A source that grows or shrinks while it is uploaded fails with one
// clear message; the session is aborted at once, its pieces are deleted
// and no journal is left to resume it.
func TestUploadSourceChangesDuringUpload(t *testing.T) {
	for _, c := range []struct {
		name   string
		size   int
		change func(f *os.File, size int64) error
	}{
		{"grows", 6*fakePlainSeg + 100, func(f *os.File, size int64) error {
			_, err := f.WriteAt(make([]byte, 2*fakePlainSeg), size)
			return err
		}},
		{"shrinks", 6*fakePlainSeg + 100, func(f *os.File, _ int64) error { return f.Truncate(fakePlainSeg + 10) }},
		{"empty, then not", 0, func(f *os.File, size int64) error {
			_, err := f.WriteAt([]byte("data"), 0)
			return err
		}},
		{"grows by a few bytes", 6*fakePlainSeg + 100, func(f *os.File, size int64) error {
			_, err := f.WriteAt([]byte("more"), size)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			path, _ := writeRandom(t, c.size)
			fi, _ := os.Stat(path)
			w, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			segmentReadHook = func(seg int) {
				if seg == 0 {
					if err := c.change(w, fi.Size()); err != nil {
						t.Error(err)
					}
				}
			}
			defer func() { segmentReadHook = nil }()
			_, err = e.upload(t, path)
			if err == nil {
				t.Fatal("the upload succeeded")
			}
			msg := message(err)
			if !strings.Contains(msg, "the file changed while it was being uploaded") || strings.Contains(msg, "resume") {
				t.Errorf("message: %s", msg)
			}
			up := e.fk.uploads["up1"]
			if up == nil || up.State != "aborted" {
				t.Fatalf("session not aborted (%v)", up != nil && up.State == "open")
			}
			if left := e.fk.storedPieces(t, "DS1", up.FileID); len(left) != 0 {
				t.Errorf("%d pieces left on the targets", len(left))
			}
			if js, _ := filepath.Glob(filepath.Join(e.dir.JournalDir(), "*.json")); len(js) != 0 {
				t.Errorf("journal left: %v", js)
			}
		})
	}
}

// Files of /proc and /sys report sizes that are not their content's; they
// are refused before a session begins.
func TestUploadRefusesPseudoFiles(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here")
	}
	e := newEnv(t)
	_, err := UploadFile(context.Background(), e.c, UploadOptions{Dataset: "DS1", Path: "/proc/self/status", Dir: e.dir, Identity: e.id})
	if err == nil || !strings.Contains(message(err), "proc") {
		t.Fatalf("upload of /proc/self/status: %v", err)
	}
	if len(e.fk.uploads) != 0 {
		t.Errorf("%d sessions begun", len(e.fk.uploads))
	}
}

// Without an age identity there is no journal: an interrupted upload
// starts over, and says so rather than promising a resume.
func TestUploadWithoutIdentityPromisesNoResume(t *testing.T) {
	e := newEnv(t)
	path, _ := writeRandom(t, 6*fakePlainSeg+100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.fk.onPut = func(string) { cancel() }
	_, err := UploadFile(ctx, e.c, UploadOptions{Dataset: "DS1", Path: path, Dir: e.dir})
	if err == nil {
		t.Fatal("not interrupted")
	}
	if msg := message(err); strings.Contains(msg, "resume") || !strings.Contains(msg, "starts over") {
		t.Errorf("message: %s", msg)
	}
}
