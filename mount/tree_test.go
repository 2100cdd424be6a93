package mount

import (
	"context"
	"slices"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/dozo-vault/dozo/api"
)

// listDir is what Readdir of d shows: "name/" for a directory.
func listDir(t *testing.T, d *dir) []string {
	t.Helper()
	s, errno := d.Readdir(context.Background())
	if errno != 0 {
		t.Fatalf("Readdir %q: %v", d.path, errno)
	}
	var out []string
	for s.HasNext() {
		e, _ := s.Next()
		if e.Mode&fuse.S_IFDIR != 0 {
			e.Name += "/"
		}
		out = append(out, e.Name)
	}
	slices.Sort(out)
	return out
}

// TestDirectoryTree: names with '/' show as directories below the
// dataset's directory, each level listing its own files and
// subdirectories; two files of one base name in different directories
// both show; a name that is also another's directory shows as the
// directory.
func TestDirectoryTree(t *testing.T) {
	avail := func(id, name string) api.File {
		return api.File{ID: id, Dataset: "D1", Name: name, Size: 1, State: api.FileAvailable}
	}
	cat := &catalog{
		datasets: []api.Dataset{{ID: "D1", PlainSegmentSize: 1 << 20, Access: []string{"grantee"}}},
		files: map[string][]api.File{"D1": {
			avail("1", "top.vcf"),
			avail("2", "lane1/S1_R1.fastq.gz"),
			avail("3", "lane2/S1_R1.fastq.gz"),
			avail("4", "lane2/deep/x.bam"),
			avail("5", "lane2"), // a file where a directory is: hidden by it
			{ID: "6", Dataset: "D1", Name: "lane3/up.bam", State: api.FileUploading},
		}},
	}
	f := New(context.Background(), cat, Options{CacheSize: 64 << 20})
	if err := f.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]string{
		"":           {"lane1/", "lane2/", "top.vcf"},
		"lane1":      {"S1_R1.fastq.gz"},
		"lane2":      {"S1_R1.fastq.gz", "deep/"},
		"lane2/deep": {"x.bam"},
		"lane3":      nil,
		"lan":        nil,
	} {
		if got := listDir(t, &dir{fsys: f, id: "D1", path: path}); !slices.Equal(got, want) {
			t.Errorf("D1/%s lists %q, want %q", path, got, want)
		}
	}
	subdirs, here := (&dir{fsys: f, id: "D1", path: "lane2"}).entries(f.datasets["D1"].files)
	if !subdirs["deep"] || here["S1_R1.fastq.gz"].ID != "3" {
		t.Errorf("lane2: dirs %v, files %v", subdirs, here)
	}
}
