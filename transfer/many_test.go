package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/api"
)

func TestUploadName(t *testing.T) {
	for in, want := range map[string]string{
		"lane2/S1_R1.fastq.gz":    "lane2/S1_R1.fastq.gz",
		"./lane2//S1.fq":          "lane2/S1.fq",
		"a.bam":                   "a.bam",
		"/scratch/tmp/out.bam":    "out.bam",
		"../x/y.bam":              "y.bam",
		"lane1/../lane2/S1.fq":    "lane2/S1.fq",
		"run/cafe\u0301.vcf":      "run/caf\u00e9.vcf",
		"lane1/sub/../../../z.fq": "z.fq",
	} {
		if got := UploadName(in); got != want {
			t.Errorf("UploadName(%q) = %q, want %q", in, got, want)
		}
	}
}

// tree makes files (with their directories) below dir.
func tree(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func names(items []UploadItem) []string {
	var ns []string
	for _, it := range items {
		ns = append(ns, it.Name)
	}
	return ns
}

// TestExpandUploads: directories with recursive keep their relative paths
// (two lanes' files of one base name stay apart), quoted globs expand,
// links below a directory are not followed, and every refusal comes before
// anything is sent.
func TestExpandUploads(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	tree(t, dir, "run/lane1/S1_R1.fastq.gz", "run/lane2/S1_R1.fastq.gz", "run/lane2/S1_R2.fastq.gz", "bam/a.bam", "bam/b.bam", "top.vcf")
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "run/lane1/link")); err != nil {
		t.Fatal(err)
	}
	var skipped []string
	skip := func(p, why string) { skipped = append(skipped, p) }

	items, err := ExpandUploads([]string{"run", "bam/*.bam", "top.vcf"}, true, skip)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"run/lane1/S1_R1.fastq.gz", "run/lane2/S1_R1.fastq.gz", "run/lane2/S1_R2.fastq.gz", "bam/a.bam", "bam/b.bam", "top.vcf"}
	if got := names(items); !reflect.DeepEqual(got, want) {
		t.Errorf("names %q, want %q", got, want)
	}
	if !reflect.DeepEqual(skipped, []string{"run/lane1/link"}) {
		t.Errorf("skipped %q, want the link only", skipped)
	}

	// From inside a directory given as ".", and one given absolutely.
	t.Chdir(filepath.Join(dir, "run"))
	items, err = ExpandUploads([]string{"."}, true, skip)
	if err != nil || !reflect.DeepEqual(names(items), []string{"lane1/S1_R1.fastq.gz", "lane2/S1_R1.fastq.gz", "lane2/S1_R2.fastq.gz"}) {
		t.Errorf(". gives %q, %v", names(items), err)
	}
	items, err = ExpandUploads([]string{filepath.Join(dir, "bam")}, true, skip)
	if err != nil || !reflect.DeepEqual(names(items), []string{"bam/a.bam", "bam/b.bam"}) {
		t.Errorf("an absolute directory gives %q, %v", names(items), err)
	}
	os.Symlink(filepath.Join(dir, "bam"), filepath.Join(dir, "linked"))
	items, err = ExpandUploads([]string{filepath.Join(dir, "linked")}, true, skip)
	if err != nil || !reflect.DeepEqual(names(items), []string{"linked/a.bam", "linked/b.bam"}) {
		t.Errorf("a link to a directory, given by name, gives %q, %v", names(items), err)
	}
	t.Chdir(dir)

	for _, c := range []struct {
		args      []string
		recursive bool
		want      string
	}{
		{[]string{"run"}, false, "is a directory"},
		{[]string{"nope.bam"}, false, "no such file"},
		{[]string{"bam/*.cram"}, false, "matches no file"},
		{[]string{"run/lane1/S1_R1.fastq.gz", filepath.Join(dir, "run/lane2/S1_R1.fastq.gz"), filepath.Join(dir, "run/lane1/S1_R1.fastq.gz")}, false, "would both be named"},
	} {
		_, err := ExpandUploads(c.args, c.recursive, skip)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ExpandUploads(%q) = %v, want %q", c.args, err, c.want)
		}
	}
}

func TestCheckNameDirs(t *testing.T) {
	if err := CheckNameDirs([]string{"a/b", "a/c", "ab", "a.bam"}); err != nil {
		t.Error(err)
	}
	if err := CheckNameDirs([]string{"x/a/b", "x/a"}); err == nil {
		t.Error("a file that is another's directory accepted")
	}
}

func TestParseFetchPattern(t *testing.T) {
	for in, want := range map[string]FetchPattern{
		"JGAD000001":                      {Dataset: "JGAD000001"},
		"JGAD000001/":                     {Dataset: "JGAD000001"},
		"JGAD000001/a.cram":               {"JGAD000001", "a.cram"},
		"JGAD000001/lane2/S1_R1.fastq.gz": {"JGAD000001", "lane2/S1_R1.fastq.gz"},
		"JGAD000001/*.cram":               {"JGAD000001", "*.cram"},
		"JGAD000001/lane[12]/*":           {"JGAD000001", "lane[12]/*"},
	} {
		got, err := ParseFetchPattern(in)
		if err != nil || got != want {
			t.Errorf("ParseFetchPattern(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/a", "../x", "JGAD000001/../x", "JGAD000001/a//b", "JGAD000001/[", "JGAD000001/a\x00"} {
		if p, err := ParseFetchPattern(bad); err == nil {
			t.Errorf("ParseFetchPattern(%q) = %+v, accepted", bad, p)
		}
	}
}

func TestReadFetchList(t *testing.T) {
	list := "# samples for chr20\nJGAD000001/a.cram\r\n\n  JGAD000001/lane1/*.fq.gz  \nJGAD000002\n"
	got, err := ReadFetchList(strings.NewReader(list))
	want := []FetchPattern{{"JGAD000001", "a.cram"}, {"JGAD000001", "lane1/*.fq.gz"}, {Dataset: "JGAD000002"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ReadFetchList = %+v, %v; want %+v", got, err, want)
	}
	_, err = ReadFetchList(strings.NewReader("JGAD000001/a.cram\nJGAD000001/../etc\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad line: %v, want an error naming line 2", err)
	}
}

func TestMatchFetch(t *testing.T) {
	files := map[string][]api.File{
		"D1": {
			{ID: "1", Dataset: "D1", Name: "b.cram", State: api.FileAvailable},
			{ID: "2", Dataset: "D1", Name: "a.cram", State: api.FileAvailable},
			{ID: "3", Dataset: "D1", Name: "lane1/a.cram", State: api.FileAvailable},
			{ID: "4", Dataset: "D1", Name: "c.cram", State: api.FileUploading},
			{ID: "5", Dataset: "D1", Name: "odd[1].txt", State: api.FileAvailable},
		},
	}
	listed := 0
	list := func(ds string) ([]api.File, error) {
		listed++
		if fs, ok := files[ds]; ok {
			return fs, nil
		}
		return nil, errors.New("no grant")
	}
	got, fails := MatchFetch([]FetchPattern{{"D1", "*.cram"}, {"D1", "a.cram"}, {"D2", "x"}, {"D1", "lane1/*"}, {"D1", "odd[1].txt"}, {"D1", "*.bam"}}, list)
	var ids []string
	for _, f := range got {
		ids = append(ids, f.ID)
	}
	if !reflect.DeepEqual(ids, []string{"2", "1", "3", "5"}) {
		t.Errorf("matched %v, want a.cram, b.cram (not the uploading c.cram), lane1/a.cram, odd[1].txt, each once", ids)
	}
	if len(fails) != 2 || fails[0].Ref != "D2/x" || fails[1].Ref != "D1/*.bam" {
		t.Errorf("failures %+v, want D2/x (listing refused) and D1/*.bam (no match)", fails)
	}
	if listed != 2 {
		t.Errorf("listed %d times, want once per dataset", listed)
	}
	all, fails := MatchFetch([]FetchPattern{{Dataset: "D1"}}, list)
	if len(all) != 4 || len(fails) != 0 {
		t.Errorf("whole dataset: %d files, %v", len(all), fails)
	}
}

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// TestPlanOutputs: DIR/NAME for each file; a target that already holds the
// catalog's contents is not fetched again; anything in the way refuses the
// whole batch, naming each reason, before anything is written.
func TestPlanOutputs(t *testing.T) {
	ctx := context.Background()
	file := func(name, content string) api.File {
		return api.File{ID: name, Dataset: "D1", Name: name, Size: int64(len(content)), SHA256: sum(content), State: api.FileAvailable}
	}
	files := []api.File{file("a.cram", "AAA"), file("lane1/S1.fq", "S1-1"), file("lane2/S1.fq", "S1-2")}

	out := t.TempDir()
	plans, err := PlanOutputs(ctx, out, files, false, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"a.cram", "lane1/S1.fq", "lane2/S1.fq"} {
		if plans[i].Path != filepath.Join(out, want) || plans[i].Stored || plans[i].Replace {
			t.Errorf("plan %d = %+v, want %s to fetch", i, plans[i], want)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("planning wrote %v", entries)
	}

	// A rerun: one already fetched intact, one differing.
	tree(t, out, "lane1/S1.fq")                                      // holds "lane1/S1.fq": differs
	os.WriteFile(filepath.Join(out, "a.cram"), []byte("AAA"), 0o644) // intact
	if _, err := PlanOutputs(ctx, out, files, false, 2); err == nil || !strings.Contains(err.Error(), "lane1/S1.fq exists and differs") {
		t.Errorf("a differing target: %v", err)
	}
	plans, err = PlanOutputs(ctx, out, files, true, 2)
	if err != nil || !plans[0].Stored || !plans[1].Replace || plans[2].Stored || plans[2].Replace {
		t.Errorf("with --force: %+v, %v; want a.cram stored, lane1/S1.fq replaced, lane2/S1.fq fetched", plans, err)
	}

	// Refusals, all named at once.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "lane1"), nil, 0o644)   // a file where a directory goes
	os.Symlink(t.TempDir(), filepath.Join(bad, "lane2"))    // a link where a directory goes
	os.Symlink("/etc/passwd", filepath.Join(bad, "a.cram")) // a link at a target
	_, err = PlanOutputs(ctx, bad, files, true, 2)
	for _, want := range []string{"lane1 is not a directory", "lane2 is a symbolic link", "a.cram is a symbolic link"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("planning into a bad tree: %v, want %q", err, want)
		}
	}
	for _, dir := range []string{filepath.Join(out, "missing"), filepath.Join(out, "a.cram")} {
		if _, err := PlanOutputs(ctx, dir, files, false, 2); err == nil {
			t.Errorf("planning into %s accepted", dir)
		}
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(out, link)
	if _, err := PlanOutputs(ctx, link, files, true, 2); err == nil {
		t.Error("a link given as DIR was followed")
	}
	if _, err := PlanOutputs(ctx, link+"/", files, true, 2); err != nil {
		t.Errorf("DIR/ through a link: %v", err)
	}
	if _, err := PlanOutputs(ctx, out, []api.File{file("x", "1"), file("x/y", "2")}, false, 2); err == nil {
		t.Error("a name that is another's directory accepted")
	}
	other := file("a.cram", "BBB")
	other.Dataset, other.ID = "D2", "other"
	if _, err := PlanOutputs(ctx, t.TempDir(), []api.File{file("a.cram", "AAA"), other}, false, 2); err == nil || !strings.Contains(err.Error(), "D1/a.cram and D2/a.cram would both be written to") {
		t.Errorf("two datasets' files of one name into one directory: %v", err)
	}
}

// TestMakeParents: directories are made below DIR; a link or a file on
// the way is refused and nothing is made through it.
func TestMakeParents(t *testing.T) {
	out := t.TempDir()
	if err := MakeParents(out, "a/b/c.fq"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(out, "a/b")); err != nil || !fi.IsDir() {
		t.Fatalf("a/b not made: %v", err)
	}
	if err := MakeParents(out, "a/b/d.fq"); err != nil {
		t.Errorf("existing directories: %v", err)
	}
	if err := MakeParents(out, "top.fq"); err != nil {
		t.Errorf("no directories: %v", err)
	}
	elsewhere := t.TempDir()
	os.Symlink(elsewhere, filepath.Join(out, "l"))
	err := MakeParents(out, "l/x/y.fq")
	var ue *UnsafePathError
	if !errors.As(err, &ue) {
		t.Errorf("through a link: %v, want an UnsafePathError", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("made %v through the link", entries)
	}
	os.WriteFile(filepath.Join(out, "f"), nil, 0o644)
	if err := MakeParents(out, "f/y.fq"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("through a file: %v", err)
	}
}

func TestRunBatch(t *testing.T) {
	errs := RunBatch(context.Background(), 10, 3, func(_ context.Context, i int) error {
		if i%4 == 1 {
			return fmt.Errorf("file %d failed", i)
		}
		return nil
	})
	for i, err := range errs {
		if (err != nil) != (i%4 == 1) {
			t.Errorf("item %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := 0
	errs = RunBatch(ctx, 5, 1, func(_ context.Context, i int) error {
		ran++
		if i == 1 {
			cancel()
		}
		return nil
	})
	if ran != 2 || errs[4] == nil {
		t.Errorf("after cancel: ran %d, last error %v; want 2 and the context's error", ran, errs[4])
	}
}

// TestDecideUpload: a file stored identically is skipped, one stored
// differently or being uploaded elsewhere refused, a free name sent.
func TestDecideUpload(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.bam")
	os.WriteFile(p, []byte("contents"), 0o644)
	it := UploadItem{Path: p, Name: "a.bam", Size: 8}
	stored := map[string]api.File{}
	if a, err := DecideUpload(nil, "", "D1", it, stored); a != UploadSend || err != nil {
		t.Errorf("free name: %s, %v", a, err)
	}
	stored["a.bam"] = api.File{Name: "a.bam", Size: 8, SHA256: sum("contents"), State: api.FileAvailable}
	if a, err := DecideUpload(nil, "", "D1", it, stored); a != UploadSkip || err != nil {
		t.Errorf("stored identically: %s, %v", a, err)
	}
	for _, f := range []api.File{
		{Name: "a.bam", Size: 8, SHA256: sum("Contents"), State: api.FileAvailable},
		{Name: "a.bam", Size: 9, SHA256: sum("contents"), State: api.FileAvailable},
		{Name: "a.bam", Size: 8, State: api.FileUploading},
	} {
		stored["a.bam"] = f
		if a, err := DecideUpload(nil, "", "D1", it, stored); !errors.Is(err, ErrStoredDiffers) {
			t.Errorf("stored %+v: %s, %v", f, a, err)
		}
	}
}
