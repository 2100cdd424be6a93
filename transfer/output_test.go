//go:build unix

package transfer

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// uploadForFetch uploads n random bytes as DS1/reads.fq.
func uploadForFetch(t *testing.T, e *env, n int) []byte {
	t.Helper()
	path, data := writeRandom(t, n)
	if _, err := e.upload(t, path); err != nil {
		t.Fatal(err)
	}
	return data
}

// dirNames lists dir's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// A FIFO given as the output receives the plaintext, written through: no
// partial file, no rename, and the FIFO is still a FIFO afterwards.
func TestFetchToFIFO(t *testing.T) {
	e := newEnv(t)
	data := uploadForFetch(t, e, 3*fakePlainSeg+11)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		r, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		defer r.Close()
		b, _ := io.ReadAll(r)
		got <- b
	}()
	for _, force := range []bool{false} {
		res, err := e.fetch(t, FetchOptions{Output: fifo, Force: force})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Verified || res.Resumed {
			t.Errorf("verified=%v resumed=%v", res.Verified, res.Resumed)
		}
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("the FIFO's reader got %d bytes, want the %d of the file", len(b), len(data))
	}
	fi, err := os.Lstat(fifo)
	if err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Fatalf("the FIFO was replaced: %v %v", fi.Mode(), err)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("files left beside the FIFO: %v", names)
	}
}

// /dev/null as the output works, with or without --force, and stays the
// character device it was.
func TestFetchToDevNull(t *testing.T) {
	e := newEnv(t)
	uploadForFetch(t, e, 2*fakePlainSeg+7)
	for _, force := range []bool{false, true} {
		res, err := e.fetch(t, FetchOptions{Output: os.DevNull, Force: force})
		if err != nil {
			t.Fatalf("force=%v: %s", force, err)
		}
		if !res.Verified {
			t.Error("not verified")
		}
		fi, err := os.Lstat(os.DevNull)
		if err != nil || fi.Mode().Type() != fs.ModeDevice|fs.ModeCharDevice {
			t.Fatalf("/dev/null is now %v (%v)", fi.Mode(), err)
		}
	}
}

// A character device made with mknod (here one like /dev/null) is written
// through and stays a device.
func TestFetchToCharDevice(t *testing.T) {
	e := newEnv(t)
	uploadForFetch(t, e, 2*fakePlainSeg+7)
	dir := t.TempDir()
	dev := filepath.Join(dir, "null")
	var st syscall.Stat_t
	if err := syscall.Stat(os.DevNull, &st); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(dev, syscall.S_IFCHR|0o600, int(st.Rdev)); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("mknod not permitted here: %v", err)
		}
		t.Fatalf("mknod: %v", err)
	}
	if _, err := e.fetch(t, FetchOptions{Output: dev, Force: true}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dev)
	if err != nil || fi.Mode().Type() != fs.ModeDevice|fs.ModeCharDevice {
		t.Fatalf("the device is now %v (%v)", fi.Mode(), err)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("files left beside the device: %v", names)
	}
}

// Targets that cannot be written are refused before a byte is fetched,
// and nothing is left behind.
func TestFetchRefusesUnwritableTargets(t *testing.T) {
	e := newEnv(t)
	uploadForFetch(t, e, 2*fakePlainSeg+7)
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(os.DevNull, link)
	for _, c := range []struct {
		out, want string
	}{
		{sock, "socket"},
		{link, "symbolic link"},
		{filepath.Join(plain, "under-a-file"), "not a directory"},
	} {
		before := e.fk.gets.Load()
		_, err := e.fetch(t, FetchOptions{Output: c.out, Force: true})
		if err == nil || !strings.Contains(message(err), c.want) {
			t.Errorf("-o %s: %v, want an error saying %q", c.out, err, c.want)
		}
		if n := e.fk.gets.Load() - before; n != 0 {
			t.Errorf("-o %s: %d pieces fetched before the refusal", c.out, n)
		}
	}
	if names := dirNames(t, dir); len(names) != 3 {
		t.Errorf("directory now holds %v", names)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("the socket was replaced")
	}
}

// -o DIR writes DIR/<name>, like cp; an existing DIR/<name> needs --force,
// and is refused before anything is fetched.
func TestFetchIntoDirectory(t *testing.T) {
	e := newEnv(t)
	data := uploadForFetch(t, e, 3*fakePlainSeg+11)
	dir := t.TempDir()
	for _, force := range []bool{false, true} {
		res, err := e.fetch(t, FetchOptions{Output: dir, Force: force})
		if err != nil {
			t.Fatalf("force=%v: %s", force, err)
		}
		want := filepath.Join(dir, "reads.fq")
		if res.Output != want {
			t.Errorf("output %q, want %q", res.Output, want)
		}
		if got, _ := os.ReadFile(want); !bytes.Equal(got, data) {
			t.Fatalf("force=%v: %s does not hold the file", force, want)
		}
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			t.Fatal("the directory was replaced")
		}
		if names := dirNames(t, dir); len(names) != 1 {
			t.Errorf("directory holds %v", names)
		}
		if !force {
			// Now DIR/reads.fq exists: refused without --force, before
			// a piece is fetched.
			before := e.fk.gets.Load()
			_, err := e.fetch(t, FetchOptions{Output: dir})
			if err == nil || !strings.Contains(message(err), "already exists") {
				t.Errorf("existing DIR/name without --force: %v", err)
			}
			if e.fk.gets.Load() != before {
				t.Error("pieces fetched before the refusal")
			}
		}
	}
	// A link to a directory is not followed, unless the path ends in "/".
	linkDir := t.TempDir()
	link := filepath.Join(t.TempDir(), "data")
	os.Symlink(linkDir, link)
	if _, err := e.fetch(t, FetchOptions{Output: link}); err == nil || !strings.Contains(message(err), "symbolic link") {
		t.Errorf("-o LINK-TO-DIR: %v", err)
	}
	if _, err := e.fetch(t, FetchOptions{Output: link + "/"}); err != nil {
		t.Fatalf("-o LINK-TO-DIR/: %s", err)
	}
	if got, _ := os.ReadFile(filepath.Join(linkDir, "reads.fq")); !bytes.Equal(got, data) {
		t.Error("-o LINK-TO-DIR/ did not write into the linked directory")
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Error("the link was replaced")
	}

	// A directory at DIR/<name> is refused, before anything is fetched.
	dir2 := t.TempDir()
	os.Mkdir(filepath.Join(dir2, "reads.fq"), 0o755)
	before := e.fk.gets.Load()
	if _, err := e.fetch(t, FetchOptions{Output: dir2, Force: true}); err == nil {
		t.Error("a directory at DIR/name was accepted")
	}
	if e.fk.gets.Load() != before {
		t.Error("pieces fetched before the refusal")
	}
	if names := dirNames(t, filepath.Join(dir2, "reads.fq")); len(names) != 0 {
		t.Errorf("files left: %v", names)
	}
}

// cancelAfterGets cancels the returned context once n piece GETs were made.
func cancelAfterGets(e *env, n int64) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var seen atomic.Int64
	fn := func(string) {
		if seen.Add(1) == n {
			cancel()
		}
	}
	e.fk.onGet.Store(&fn)
	return ctx, func() { e.fk.onGet.Store(nil); cancel() }
}

// An interrupted fetch resumes from its last verified segment, not from
// the last 512 MiB checkpoint.
func TestFetchResumesFromLastSegment(t *testing.T) {
	e := newEnv(t)
	data := uploadForFetch(t, e, 64*fakePlainSeg+99)
	out := filepath.Join(t.TempDir(), "out.fq")
	ctx, done := cancelAfterGets(e, 6*12)
	_, err := FetchFile(ctx, e.c, FetchOptions{Dataset: "DS1", Name: "reads.fq", Identity: e.id, Output: out})
	done()
	if err == nil {
		t.Fatal("the fetch was not interrupted")
	}
	if msg := message(err); !strings.Contains(msg, "to resume") {
		t.Errorf("the interruption does not promise the resume that will happen: %s", msg)
	}
	before := e.fk.gets.Load()
	res, err := e.fetch(t, FetchOptions{Output: out})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.From < 2*fakePlainSeg || res.From%fakePlainSeg != 0 {
		t.Fatalf("rerun resumed=%v from byte %d; want a resume from a segment boundary past the first two", res.Resumed, res.From)
	}
	if res.Bytes != int64(len(data))-res.From {
		t.Errorf("rerun wrote %d bytes, want %d", res.Bytes, int64(len(data))-res.From)
	}
	segsFetched := (e.fk.gets.Load() - before) / 4 // K=4 pieces a segment
	if max := int64(65) - res.From/fakePlainSeg; segsFetched > max+2 {
		t.Errorf("rerun fetched about %d segments, want at most %d", segsFetched, max)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) || !res.Verified {
		t.Fatal("resumed fetch differs")
	}
}

// Fetches that cannot resume do not promise a resume when interrupted.
func TestFetchInterruptionPromisesOnlyRealResume(t *testing.T) {
	e := newEnv(t)
	uploadForFetch(t, e, 64*fakePlainSeg+99)
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		o    FetchOptions
	}{
		{"stdout", FetchOptions{Output: "-", Stdout: io.Discard}},
		{"raw", FetchOptions{Output: filepath.Join(dir, "raw.age"), Raw: true}},
		{"range", FetchOptions{Output: filepath.Join(dir, "range"), Range: &Range{10, 40 * fakePlainSeg}}},
		{"device", FetchOptions{Output: os.DevNull}},
	} {
		for _, early := range []bool{false, true} {
			var ctx context.Context
			var done func()
			if early {
				// Interrupted before the transfer began.
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(context.Background())
				cancel()
				done = func() {}
			} else {
				ctx, done = cancelAfterGets(e, 6*12)
			}
			o := c.o
			o.Dataset, o.Name, o.Identity = "DS1", "reads.fq", e.id
			_, err := FetchFile(ctx, e.c, o)
			done()
			if err == nil {
				t.Fatalf("%s: not interrupted", c.name)
			}
			if msg := message(err); strings.Contains(msg, "resume") || !strings.Contains(msg, "interrupted") {
				t.Errorf("%s (early=%v): %s", c.name, early, msg)
			}
		}
	}
}
