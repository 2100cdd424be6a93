package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/storage"
)

// dozoAt runs dozo as u in the working directory dir.
func (u *user) dozoAt(dir string, args ...string) (string, string, error) {
	cmd := u.command(args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// batchOut is the part of a batch's --json lines the tests read.
type batchOut struct {
	Name           string `json:"name"`
	Dataset        string `json:"dataset"`
	Output         string `json:"output"`
	SHA256         string `json:"sha256"`
	Resumed        bool   `json:"resumed"`
	Sent           int64  `json:"sent_bytes"`
	Written        int64  `json:"written_bytes"`
	AlreadyStored  bool   `json:"already_stored"`
	AlreadyFetched bool   `json:"already_fetched"`
	Error          string `json:"error"`
}

func parseBatch(t testing.TB, out string) map[string]batchOut {
	t.Helper()
	var outs []batchOut
	if err := json.Unmarshal([]byte(out), &outs); err != nil {
		t.Fatalf("batch --json: %v\n%s", err, out)
	}
	m := map[string]batchOut{}
	for _, o := range outs {
		m[o.Name] = o
	}
	return m
}

// TestBatchUploadTree: a directory tree uploads in one command, names
// keeping their relative paths (two lanes' S1_R1.fastq.gz stay apart); a
// rerun sends nothing and says each file is already stored; a file changed
// since is named as refused while the others are skipped; the whole
// dataset fetches back into a directory as the same tree.
func TestBatchUploadTree(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "batch tree", "--segment-size", "1MiB")

	work := t.TempDir()
	files := map[string]int64{
		"run1/lane1/S1_R1.fastq.gz":    3*mib + 11,
		"run1/lane2/S1_R1.fastq.gz":    mib / 2,
		"run1/lane2/deep/S2 final.bam": 2 * mib,
		"run1/top.vcf":                 777,
		"run1/empty.txt":               0,
	}
	shas := map[string]string{}
	seed := uint64(100)
	for name, size := range files {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		seed++
		shas[name] = writeRandomFile(t, p, seed, size, nil)
	}
	// A link below the directory is not followed.
	if err := os.Symlink("/etc/hostname", filepath.Join(work, "run1/lane1/link")); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := sam.dozoAt(work, "upload", "-d", ds, "-r", "run1", "--parallel", "3", "--json")
	if err != nil {
		t.Fatalf("batch upload: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "skipping run1/lane1/link: a symbolic link, not followed") {
		t.Errorf("the link below the directory was not reported as skipped:\n%s", errOut)
	}
	up := parseBatch(t, out)
	stored := lsFiles(t, sam, ds)
	if len(up) != len(files) || len(stored) != len(files) {
		t.Fatalf("uploaded %d, listed %d; want %d", len(up), len(stored), len(files))
	}
	for name, sha := range shas {
		if f := stored[name]; f.SHA256 != sha || f.Size != files[name] {
			t.Errorf("%s listed as %+v, want sha %s size %d", name, f, sha, files[name])
		}
	}

	// The rerun sends nothing.
	out, errOut, err = sam.dozoAt(work, "upload", "-d", ds, "-r", "run1", "--json")
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, errOut)
	}
	for name, o := range parseBatch(t, out) {
		if !o.AlreadyStored || o.Sent != 0 || o.Error != "" {
			t.Errorf("rerun: %s %+v, want already stored", name, o)
		}
	}
	out = sam.must(t, "upload", "-d", ds, filepath.Join(work, "run1/top.vcf"), "--name", "run1/top.vcf")
	if !strings.Contains(out, "already stored: ") {
		t.Errorf("single file rerun: %q, want already stored", out)
	}
	if after := lsFiles(t, sam, ds); len(after) != len(files) {
		t.Fatalf("reruns changed the dataset: %d files", len(after))
	}

	// A file changed since: refused by name; the others skipped.
	writeRandomFile(t, filepath.Join(work, "run1/top.vcf"), 999, 777, nil)
	out, errOut, err = sam.dozoAt(work, "upload", "-d", ds, "-r", "run1")
	if err == nil {
		t.Fatal("a rerun with a changed file succeeded")
	}
	last := strings.TrimSpace(errOut[strings.LastIndex(strings.TrimSpace(errOut), "\n")+1:])
	if !strings.Contains(last, "1 of 5 files failed: run1/top.vcf") || !strings.Contains(errOut, "has another SHA-256") {
		t.Errorf("changed file: stderr %q", errOut)
	}
	if strings.Count(out, "already stored: ") != 4 {
		t.Errorf("changed file: the other four not reported as already stored:\n%s", out)
	}

	// The whole dataset back, as a tree below DIR.
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 1, 0).UTC().Format(time.DateOnly),
		"--application", "J-DU000001", "--institution", "NIG")
	dest := t.TempDir()
	out = rita.must(t, "fetch", ds, "-o", dest, "--parallel", "2")
	for name, sha := range shas {
		if got := fileSHA(t, filepath.Join(dest, name)); got != sha {
			t.Errorf("fetched %s: sha %s, want %s", name, got, sha)
		}
	}
	if !strings.Contains(out, "fetch: 5 of 5 files done, 0 already there, 0 failed") {
		t.Errorf("fetch summary: %q", out)
	}
	// A glob of one directory, into a fresh directory.
	dest2 := t.TempDir()
	out = rita.must(t, "fetch", ds+"/run1/lane2/*", "-o", dest2, "--json")
	if got := parseBatch(t, out); len(got) != 1 || got["run1/lane2/S1_R1.fastq.gz"].Error != "" {
		t.Errorf("glob run1/lane2/*: %+v, want the one file of that directory ('*' does not cross '/')", got)
	}
	// One file by its name with directories, into a directory.
	one := t.TempDir()
	rita.must(t, "fetch", ds+"/run1/lane2/deep/S2 final.bam", "-o", one)
	if got := fileSHA(t, filepath.Join(one, "run1/lane2/deep/S2 final.bam")); got != shas["run1/lane2/deep/S2 final.bam"] {
		t.Errorf("single fetch into a directory: sha %s", got)
	}
	// A target in the way refuses the batch before anything is fetched.
	blocked := t.TempDir()
	os.WriteFile(filepath.Join(blocked, "run1"), []byte("a file"), 0o644)
	line := rita.refused(t, "fetch", ds, "-o", blocked)
	if !strings.Contains(line, "run1 is not a directory") {
		t.Errorf("blocked target: %q", line)
	}
	if ents, _ := os.ReadDir(blocked); len(ents) != 1 {
		t.Errorf("a refused batch wrote %v", ents)
	}
}

// TestBatchFetchFailureRerun: in a batch fetch, a file whose last segment
// cannot be read fails mid-way and a dataset without a grant is refused;
// both are named at the end, the other files complete; once the pieces
// are back, the same command fetches only the failed file, resuming it
// after its verified part.
func TestBatchFetchFailureRerun(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	ds, closed := newDatasetID(), newDatasetID()+"x"
	sam.must(t, "dataset", "create", ds, "--title", "batch fetch", "--segment-size", "1MiB")
	sam.must(t, "dataset", "create", closed, "--title", "no grant")

	src := t.TempDir()
	names := []string{"a.cram", "b.cram", "c.cram", "d.cram"}
	shas := map[string]string{}
	var paths []string
	for i, n := range names {
		p := filepath.Join(src, n)
		shas[n] = writeRandomFile(t, p, uint64(200+i), 3*mib+mib/2, nil)
		paths = append(paths, p)
	}
	sam.must(t, append([]string{"upload", "-d", ds, "--parallel", "4"}, paths...)...)
	sam.must(t, "upload", "-d", closed, paths[0])
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 1, 0).UTC().Format(time.DateOnly),
		"--application", "J-DU000001", "--institution", "NIG")

	// Take the pieces of b.cram's last segment away from three of the six
	// targets: more than parity can cover.
	bad := lsFiles(t, sam, ds)["b.cram"]
	ctx := context.Background()
	type kept struct {
		tg   storage.Target
		key  string
		data []byte
	}
	var aside []kept
	for _, tg := range s.targets(t)[:3] {
		var keys []string
		tg.List(ctx, storage.FilePrefix(ds, bad.ID), func(oi storage.ObjectInfo) error {
			if strings.Contains(oi.Key, "/seg-00000003/") {
				keys = append(keys, oi.Key)
			}
			return nil
		})
		for _, k := range keys {
			rc, err := tg.Get(ctx, k, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			aside = append(aside, kept{tg, k, b})
			if err := tg.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(aside) < 3 {
		t.Fatalf("took only %d pieces away", len(aside))
	}

	dest := t.TempDir()
	args := []string{"fetch", ds + "/*.cram", closed + "/a.cram", "-o", dest, "--parallel", "2", "--json"}
	out, errOut, err := rita.dozo(args...)
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("batch with a failing file: %v, want exit 1\n%s", err, errOut)
	}
	last := strings.TrimSpace(errOut[strings.LastIndex(strings.TrimSpace(errOut), "\n")+1:])
	if !strings.Contains(last, "2 of 5 files failed: ") || !strings.Contains(last, closed+"/a.cram") || !strings.Contains(last, ds+"/b.cram") {
		t.Errorf("the last line does not name both failures: %q", last)
	}
	got := parseBatch(t, out)
	for _, n := range names {
		o := got[n]
		if n == "b.cram" {
			if o.Error == "" {
				t.Errorf("b.cram reported as %+v, want its error", o)
			}
			if _, err := os.Stat(filepath.Join(dest, n)); err == nil {
				t.Error("the failed file appeared at its target")
			}
			continue
		}
		if o.Error != "" || fileSHA(t, filepath.Join(dest, n)) != shas[n] {
			t.Errorf("%s: %+v, want fetched intact", n, o)
		}
	}

	// The pieces come back; the same command fetches b.cram only.
	for _, k := range aside {
		if err := k.tg.Put(ctx, k.key, bytes.NewReader(k.data), int64(len(k.data))); err != nil {
			t.Fatal(err)
		}
	}
	args = []string{"fetch", ds + "/*.cram", "-o", dest, "--json"}
	out = rita.must(t, args...)
	got = parseBatch(t, out)
	var fetched []string
	for n, o := range got {
		if !o.AlreadyFetched {
			fetched = append(fetched, n)
		}
	}
	if !slices.Equal(fetched, []string{"b.cram"}) {
		t.Errorf("the rerun fetched %v, want only b.cram", fetched)
	}
	if o := got["b.cram"]; !o.Resumed || o.Written >= 3*mib+mib/2 {
		t.Errorf("b.cram on the rerun: %+v, want resumed after its verified segments", o)
	}
	if fileSHA(t, filepath.Join(dest, "b.cram")) != shas["b.cram"] {
		t.Error("b.cram differs after the rerun")
	}
}

// TestMountTree: names with directories show as directories in the mount.
func TestMountTree(t *testing.T) {
	needFUSE(t)
	s := needStack(t)
	sam, rita := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "mount tree", "--segment-size", "1MiB")
	work := t.TempDir()
	shas := map[string]string{}
	for i, n := range []string{"lane1/S1_R1.fastq.gz", "lane2/S1_R1.fastq.gz", "top.vcf"} {
		p := filepath.Join(work, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		shas[n] = writeRandomFile(t, p, uint64(300+i), mib+int64(i), nil)
	}
	if _, errOut, err := sam.dozoAt(work, "upload", "-d", ds, "lane1/S1_R1.fastq.gz", "lane2/S1_R1.fastq.gz", "top.vcf"); err != nil {
		t.Fatalf("upload: %v\n%s", err, errOut)
	}
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 1, 0).UTC().Format(time.DateOnly),
		"--application", "J-DU000001", "--institution", "NIG")
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	m := startMount(t, rita, nil, mnt, "--dataset", ds, "--cache-size", "16MiB")
	ls := func(p string) string {
		ents, err := os.ReadDir(filepath.Join(mnt, ds, p))
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() {
				n += "/"
			}
			ns = append(ns, n)
		}
		slices.Sort(ns)
		return strings.Join(ns, " ")
	}
	if got := ls(""); got != "lane1/ lane2/ top.vcf" {
		t.Errorf("%s lists %q", ds, got)
	}
	if got := ls("lane2"); got != "S1_R1.fastq.gz" {
		t.Errorf("%s/lane2 lists %q", ds, got)
	}
	for n, sha := range shas {
		if got := fileSHA(t, filepath.Join(mnt, ds, n)); got != sha {
			t.Errorf("%s read through the mount: sha %s, want %s", n, got, sha)
		}
	}
	m.cmd.Process.Signal(os.Interrupt)
	m.wait(t)
}
