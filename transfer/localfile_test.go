//go:build unix

package transfer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// victim is a file another user would like the CLI to write into: it
// must keep its content and mtime.
type victim struct {
	path    string
	content []byte
	mtime   time.Time
}

func newVictim(t *testing.T) *victim {
	v := &victim{path: filepath.Join(t.TempDir(), "victim"), content: []byte("keep me\n"), mtime: time.Unix(1e9, 0)}
	if err := os.WriteFile(v.path, v.content, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(v.path, v.mtime, v.mtime)
	return v
}

func (v *victim) check(t *testing.T, what string) {
	t.Helper()
	got, err := os.ReadFile(v.path)
	if err != nil || !bytes.Equal(got, v.content) {
		t.Errorf("%s: the target's content changed (%v)", what, err)
	}
	if fi, err := os.Stat(v.path); err != nil || !fi.ModTime().Equal(v.mtime) {
		t.Errorf("%s: the target's mtime changed", what)
	}
}

// Another user who can write the output directory plants links where the
// fetch creates files. Each is refused with an error naming the path, the
// link's target is untouched and the link stays as it was.
func TestFetchRefusesPlantedLinks(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 2*fakePlainSeg+5)
	if _, err := e.upload(t, path); err != nil {
		t.Fatal(err)
	}
	type plant struct {
		name  string
		at    func(out string) string
		hard  bool // a hard link instead of a symlink
		force bool
		raw   bool
	}
	partial := func(out string) string { return out + ".partial" }
	lock := func(out string) string { return out + ".partial.lock" }
	side := func(out string) string { return out + ".partial.dozo" }
	self := func(out string) string { return out }
	for _, p := range []plant{
		{name: "symlink at the partial file", at: partial},
		{name: "symlink at the partial file, raw", at: partial, raw: true},
		{name: "hard link at the partial file", at: partial, hard: true},
		{name: "symlink at the lock file", at: lock},
		{name: "hard link at the lock file", at: lock, hard: true},
		{name: "symlink at the sidecar", at: side},
		{name: "symlink at the output", at: self},
		{name: "symlink at the output, --force", at: self, force: true},
	} {
		for _, dangling := range []bool{false, true} {
			if dangling && p.hard {
				continue
			}
			name := p.name
			if dangling {
				name += " (dangling)"
			}
			v := newVictim(t)
			target := v.path
			if dangling {
				target = filepath.Join(filepath.Dir(v.path), "created")
			}
			out := filepath.Join(t.TempDir(), "out.fq")
			at := p.at(out)
			var err error
			if p.hard {
				err = os.Link(target, at)
			} else {
				err = os.Symlink(target, at)
			}
			if err != nil {
				t.Fatal(err)
			}
			planted, _ := os.Lstat(at)
			_, err = e.fetch(t, FetchOptions{Output: out, Force: p.force, Raw: p.raw})
			if err == nil {
				t.Errorf("%s: fetch succeeded", name)
			} else if msg := message(err); !strings.Contains(msg, at) {
				t.Errorf("%s: error does not name %s: %s", name, at, msg)
			}
			v.check(t, name)
			if dangling {
				if _, err := os.Lstat(target); err == nil {
					t.Errorf("%s: the fetch created the link's target", name)
				}
			}
			if fi, err := os.Lstat(at); err != nil || !os.SameFile(fi, planted) || fi.Mode() != planted.Mode() {
				t.Errorf("%s: the planted link was changed or removed", name)
			}
			if at != out {
				if _, err := os.Lstat(out); err == nil {
					t.Errorf("%s: the output appeared", name)
				}
			}
		}
	}
	// The same directory, cleaned up, fetches fine.
	out := filepath.Join(t.TempDir(), "out.fq")
	if _, err := e.fetch(t, FetchOptions{Output: out}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("fetched file differs")
	}
}

// The upload journal and its lock live in the user's config directory;
// links planted there are refused too.
func TestUploadRefusesPlantedJournalLinks(t *testing.T) {
	for _, lock := range []bool{false, true} {
		for _, dangling := range []bool{false, true} {
			e := newEnv(t)
			path, _ := writeRandom(t, fakePlainSeg+5)
			at := JournalPath(e.dir, e.c.Broker(), "DS1", "reads.fq", path)
			if lock {
				at += ".lock"
			}
			if err := os.MkdirAll(filepath.Dir(at), 0o700); err != nil {
				t.Fatal(err)
			}
			v := newVictim(t)
			target := v.path
			if dangling {
				target = filepath.Join(filepath.Dir(v.path), "created")
			}
			if err := os.Symlink(target, at); err != nil {
				t.Fatal(err)
			}
			_, err := e.upload(t, path)
			if err == nil {
				t.Errorf("symlink at %s: upload succeeded", filepath.Base(at))
			} else if msg := message(err); !strings.Contains(msg, at) {
				t.Errorf("symlink at %s: error does not name it: %s", filepath.Base(at), msg)
			}
			v.check(t, "symlink at "+filepath.Base(at))
			if _, err := os.Lstat(target); dangling && err == nil {
				t.Errorf("symlink at %s: the upload created its target", filepath.Base(at))
			}
			if fi, err := os.Lstat(at); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("symlink at %s: removed or replaced", filepath.Base(at))
			}
			os.Remove(at)
			if err == nil {
				continue
			}
			if _, err := e.upload(t, path); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A lock is held by one process at a time even when its holder lets go
// and unlinks the file while another has it open but not yet locked.
func TestLockSurvivesUnlinkRace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	unlockA, err := lockFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// B opens the lock file while A holds it; before B's flock, A lets go
	// (and a holder may unlink the file when it lets go).
	released := false
	lockOpenedHook = func() {
		if !released {
			released = true
			os.Remove(p)
			unlockA()
		}
	}
	defer func() { lockOpenedHook = nil }()
	unlockB, err := lockFile(p)
	if err != nil {
		t.Fatalf("B: %v", err)
	}
	defer unlockB()
	lockOpenedHook = nil
	// C must now find the lock taken: B's lock must be on the file at p.
	if unlockC, err := lockFile(p); !errors.Is(err, errLocked) {
		if err == nil {
			unlockC()
		}
		t.Fatalf("C took the lock while B holds it: %v", err)
	}
}

// A file name of the longest length a file system allows (255 bytes) is
// fetched to its own name; one byte more is a clear error.
func TestFetchLongName(t *testing.T) {
	e := newEnv(t)
	path, data := writeRandom(t, 2*fakePlainSeg+5)
	name := strings.Repeat("n", 251) + ".bam"
	if _, err := UploadFile(context.Background(), e.c, UploadOptions{Dataset: "DS1", Path: path, Name: name, Dir: e.dir, Identity: e.id}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, name)
	if _, err := e.fetch(t, FetchOptions{Name: name, Output: out}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetched file differs: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("side files left: %v", ents)
	}

	tooLong := filepath.Join(t.TempDir(), name+"x")
	_, err := e.fetch(t, FetchOptions{Name: name, Output: tooLong})
	if err == nil {
		t.Fatal("a 256-byte output name was accepted")
	}
	msg := message(err)
	if !strings.Contains(msg, "too long") || strings.Contains(msg, ".partial") {
		t.Errorf("unclear error for a 256-byte output name: %s", msg)
	}
	if !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("error does not wrap ENAMETOOLONG: %v", err)
	}
}

// Side-file names stay within the file-system limit, distinct per
// output, and keep the familiar OUT.partial for ordinary names; an
// interrupted fetch to a 255-byte name resumes from its side files.
func TestFetchSidePaths(t *testing.T) {
	p, s, l := fetchSidePaths("/d/out.fq")
	if p != "/d/out.fq.partial" || s != "/d/out.fq.partial.dozo" || l != "/d/out.fq.partial.lock" {
		t.Errorf("ordinary name: %s %s %s", p, s, l)
	}
	long1 := strings.Repeat("é", 120) + "-1.bam" // 246 bytes
	long2 := strings.Repeat("é", 120) + "-2.bam"
	seen := map[string]bool{}
	for _, base := range []string{long1, long2, strings.Repeat("x", 255)} {
		p, s, l := fetchSidePaths(filepath.Join("/d", base))
		for _, x := range []string{p, s, l} {
			b := filepath.Base(x)
			if len("."+b+".1234567890.tmp") > nameMax || !utf8.ValidString(b) || filepath.Dir(x) != "/d" {
				t.Errorf("side file %q: %d bytes", b, len(b))
			}
			if seen[x] {
				t.Errorf("two outputs share %s", x)
			}
			seen[x] = true
		}
	}

	e := newEnv(t)
	path, data := writeRandom(t, 5*fakePlainSeg+99)
	name := strings.Repeat("n", 251) + ".bam"
	res, err := UploadFile(context.Background(), e.c, UploadOptions{Dataset: "DS1", Path: path, Name: name, Dir: e.dir, Identity: e.id})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, name)
	partial, side, _ := fetchSidePaths(out)
	verified := int64(2*fakePlainSeg + 7)
	os.WriteFile(partial, data[:verified], 0o600)
	writeSidecar(side, sidecar{Version: 1, FileID: res.File.ID, SHA256: res.File.SHA256, Size: res.File.Size, Verified: verified})
	fr, err := e.fetch(t, FetchOptions{Name: name, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	if !fr.Resumed || fr.From != 2*fakePlainSeg {
		t.Errorf("resumed=%v from %d", fr.Resumed, fr.From)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("resumed fetch differs")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("side files left: %v", ents)
	}
}
