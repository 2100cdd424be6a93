package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/internal/units"
	"github.com/dozo-vault/dozo/region"
	"github.com/dozo-vault/dozo/region/regiontest"
	"github.com/dozo-vault/dozo/transfer"
)

// shippedTests is where Debian's samtools-test package puts samtools'
// test files (scripts/tools.sh hts installs it).
const shippedTests = "/usr/share/samtools/test/mpileup"

// regionData is a set of indexed genomic files made with the real tools.
type regionData struct {
	dir, fa string // fa: the synthetic reference, for CRAM decoding
}

func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(findTool(t, name), args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return string(out)
}

func writeWith(t testing.TB, path string, fill func(io.Writer) error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := fill(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// makeRegionData writes into dir: x.bam (reads reads over three 3 Mb
// references, sorted) with .bai and .bam.csi, x.cram with .crai, x.vcf.gz
// with .tbi, x.bcf with .csi, and ref.fa.
func makeRegionData(t testing.TB, dir string, reads int) regionData {
	for _, tool := range []string{"samtools", "bcftools", "bgzip", "tabix"} {
		findTool(t, tool)
	}
	r := rand.New(rand.NewPCG(20, 26))
	ref := regiontest.NewRef(r, 3, 3_000_000)
	d := regionData{dir: dir, fa: filepath.Join(dir, "ref.fa")}
	writeWith(t, d.fa, ref.WriteFasta)
	sam := filepath.Join(dir, "x.sam")
	writeWith(t, sam, func(w io.Writer) error { return ref.WriteSAM(w, r, reads, true) })
	bam := filepath.Join(dir, "x.bam")
	runTool(t, "samtools", "sort", "-@2", "-o", bam, sam)
	os.Remove(sam)
	runTool(t, "samtools", "index", bam)
	runTool(t, "samtools", "index", "-c", "-o", bam+".csi", bam)
	cram := filepath.Join(dir, "x.cram")
	runTool(t, "samtools", "view", "-C", "-T", d.fa, "-o", cram, bam)
	runTool(t, "samtools", "index", cram)
	vcf := filepath.Join(dir, "x.vcf")
	writeWith(t, vcf, func(w io.Writer) error { return ref.WriteVCF(w, r, 40000) })
	runTool(t, "bgzip", "-f", vcf)
	runTool(t, "tabix", "-p", "vcf", vcf+".gz")
	bcf := filepath.Join(dir, "x.bcf")
	runTool(t, "bcftools", "view", "-Ob", "-o", bcf, vcf+".gz")
	runTool(t, "bcftools", "index", bcf)
	return d
}

// countRegion counts the records of reg in path: samtools view -c, or
// bcftools view -H for variants (the file must be indexed).
func countRegion(t testing.TB, path, fa, reg string) int {
	t.Helper()
	if strings.HasSuffix(path, ".vcf.gz") || strings.HasSuffix(path, ".bcf") {
		// bcftools reads commas as region separators.
		return strings.Count(runTool(t, "bcftools", "view", "-H", "-r", strings.ReplaceAll(reg, ",", ""), path), "\n")
	}
	n, err := strconv.Atoi(strings.TrimSpace(runTool(t, "samtools", "view", "-c", "-T", fa, path, reg)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// localRegionFile is what the region package writes from the local copy
// of file and index: what dozo must write byte for byte.
func localRegionFile(t testing.TB, file, index string, regions []string) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	idx, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	format, err := region.FormatOf(file)
	if err != nil {
		t.Fatal(err)
	}
	var rs []region.Region
	for _, s := range regions {
		r, err := region.ParseRegion(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	p, err := region.Make(f, fi.Size(), format, idx, rs)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := region.Write(&b, p, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRegionFetch: for BAM (BAI and CSI), CRAM, VCF.gz and BCF made by
// samtools and bcftools, and for samtools' own test files, a region fetch
// through dozo writes a file that passes samtools quickcheck and holds, for
// every region asked for, as many records as the original has there; it
// is byte for byte what the region package writes from the local copy. A
// small region of a file many segments long reads a few of them; a region
// fetch works with a storage server down; bad requests get one clear line.
func TestRegionFetch(t *testing.T) {
	s := needStack(t)
	sam, rita := s.users(t)
	dir := t.TempDir()
	d := makeRegionData(t, dir, 600000)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "regions", "--segment-size", "1MiB")
	names := []string{"x.bam", "x.bam.bai", "x.bam.csi", "x.cram", "x.cram.crai", "x.vcf.gz", "x.vcf.gz.tbi", "x.bcf", "x.bcf.csi", "ref.fa"}
	var paths []string
	for _, n := range names {
		paths = append(paths, filepath.Join(dir, n))
	}
	shipped := []string{"mpileup.1.bam", "mpileup.1.bam.bai", "ce#5b.cram", "ce#5b.cram.crai"}
	for _, n := range shipped {
		paths = append(paths, filepath.Join(shippedTests, n))
	}
	if _, err := os.Stat(shippedTests); err != nil {
		t.Fatalf("samtools' test files are missing (scripts/tools.sh hts): %v", err)
	}
	sam.must(t, append([]string{"upload", "--dataset", ds}, paths...)...)
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02"), "--application", "J-DU000001", "--institution", "NIG")

	many := [][]string{
		{"chr1:1000-2000"},
		{"chr2:1,500,000-1,600,000"},
		{"chr3"},
		{"chr1:1-100000", "chr1:50000-150000", "chr3:2000000-"},
		{"chr2:1000000-1000000"},
		{"chr3:2970000-2980000", "chr1:300000-300500"},
	}
	type fetchCase struct {
		name, local, index string // index: --index NAME, or "" for the usual names
		localIndex, fa     string
		regions            [][]string
	}
	cases := []fetchCase{
		{name: "x.bam", local: filepath.Join(dir, "x.bam"), localIndex: filepath.Join(dir, "x.bam.bai"), regions: many},
		{name: "x.bam", local: filepath.Join(dir, "x.bam"), index: "x.bam.csi", localIndex: filepath.Join(dir, "x.bam.csi"), regions: many[:3]},
		{name: "x.cram", local: filepath.Join(dir, "x.cram"), localIndex: filepath.Join(dir, "x.cram.crai"), fa: d.fa, regions: many},
		{name: "x.vcf.gz", local: filepath.Join(dir, "x.vcf.gz"), localIndex: filepath.Join(dir, "x.vcf.gz.tbi"), regions: many},
		{name: "x.bcf", local: filepath.Join(dir, "x.bcf"), localIndex: filepath.Join(dir, "x.bcf.csi"), regions: many},
		{name: "mpileup.1.bam", local: filepath.Join(shippedTests, "mpileup.1.bam"), localIndex: filepath.Join(shippedTests, "mpileup.1.bam.bai"),
			regions: [][]string{{"17:100-200"}, {"17"}, {"1:1-1000"}}},
		{name: "ce#5b.cram", local: filepath.Join(shippedTests, "ce#5b.cram"), localIndex: filepath.Join(shippedTests, "ce#5b.cram.crai"),
			fa: filepath.Join(shippedTests, "ce.fa"), regions: [][]string{{"CHROMOSOME_III:1-100"}, {"CHROMOSOME_I", "CHROMOSOME_V:1-10"}}},
	}
	for _, c := range cases {
		for i, regs := range c.regions {
			ext := strings.TrimPrefix(c.name[strings.Index(c.name, "."):], ".1")
			out := filepath.Join(t.TempDir(), fmt.Sprintf("out%d%s", i, ext))
			args := []string{"fetch", ds + "/" + c.name, "-o", out}
			for _, r := range regs {
				args = append(args, "--region", r)
			}
			if c.index != "" {
				args = append(args, "--index", c.index)
			}
			rita.must(t, args...)
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if want := localRegionFile(t, c.local, c.localIndex, regs); !bytes.Equal(got, want) {
				t.Errorf("%s %v: dozo wrote %d bytes, the region package %d from the local file", c.name, regs, len(got), len(want))
			}
			if strings.HasSuffix(out, ".bam") || strings.HasSuffix(out, ".cram") {
				runTool(t, "samtools", "quickcheck", out)
				runTool(t, "samtools", "index", out)
			} else {
				runTool(t, "bcftools", "index", out)
			}
			for _, reg := range regs {
				want, got := countRegion(t, c.local, c.fa, reg), countRegion(t, out, c.fa, reg)
				if got != want {
					t.Errorf("%s %v: %s has %d records in the region file, %d in the original", c.name, regs, reg, got, want)
				}
				if r, _ := region.ParseRegion(reg); want == 0 && r.End-r.Beg >= 10000 && strings.HasPrefix(c.name, "x.") {
					t.Errorf("%s %s: no records in the original; the case tests nothing", c.name, reg)
				}
			}
		}
	}

	t.Run("stdout", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "a.bam")
		rita.must(t, "fetch", ds+"/x.bam", "--region", "chr2:100000-200000", "-o", out)
		stdout := rita.must(t, "fetch", ds+"/x.bam", "--region", "chr2:100000-200000", "-o", "-")
		want, _ := os.ReadFile(out)
		if !bytes.Equal([]byte(stdout), want) {
			t.Fatalf("-o - wrote %d bytes, -o PATH %d", len(stdout), len(want))
		}
	})

	t.Run("directory and device outputs", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "a.bam")
		rita.must(t, "fetch", ds+"/x.bam", "--region", "chr1:700000-800000", "-o", file)
		dir := t.TempDir()
		rita.must(t, "fetch", ds+"/x.bam", "--region", "chr1:700000-800000", "-o", dir)
		want, _ := os.ReadFile(file)
		got, err := os.ReadFile(filepath.Join(dir, "x.bam"))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("-o DIR wrote %d bytes (%v), -o PATH %d", len(got), err, len(want))
		}
		if out := rita.must(t, "fetch", ds+"/x.bam", "--region", "chr1:700000-800000", "-o", os.DevNull); !strings.Contains(out, os.DevNull) {
			t.Fatalf("-o /dev/null: %q", out)
		}
		// A second fetch into the directory refuses to replace the file.
		line := rita.refused(t, "fetch", ds+"/x.bam", "--region", "chr1:700000-800000", "-o", dir)
		if !strings.Contains(line, "already exists") {
			t.Fatalf("replacing without --force: %q", line)
		}
	})

	t.Run("moves few segments", func(t *testing.T) {
		c, id := researcherClient(t, s, rita)
		fi, err := os.Stat(filepath.Join(dir, "x.bam"))
		if err != nil {
			t.Fatal(err)
		}
		reg := region.Region{Ref: "chr2", Beg: 1_500_000, End: 1_510_000}
		var out bytes.Buffer
		res, err := transfer.FetchRegions(context.Background(), c, transfer.RegionOptions{Dataset: ds, Name: "x.bam",
			Regions: []region.Region{reg}, Output: "-", Stdout: &out, Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		// The segments the plan's byte ranges touch (1 MiB each).
		plan := localPlan(t, filepath.Join(dir, "x.bam"), filepath.Join(dir, "x.bam.bai"), reg)
		touched := map[int64]bool{}
		for _, p := range plan.Parts {
			if p.Literal == nil {
				for seg := p.Off / mib; seg <= (p.End-1)/mib; seg++ {
					touched[seg] = true
				}
			}
		}
		segs := fi.Size()/mib + 1
		st := res.Stats
		// A stored segment is 1 MiB of plaintext plus 16 bytes per 64 KiB
		// chunk; a read fetches its K=4 data pieces.
		stored := int64(mib + mib/(64<<10)*16)
		t.Logf("region %v of a %s BAM (%d segments): plan reads %s in %d parts over %d segments; storage moved %s in %d segment reads (%d pieces); output %s",
			reg, units.FormatSize(fi.Size()), segs, units.FormatSize(res.Planned), res.Parts, len(touched),
			units.FormatSize(st.PieceBytes), st.SegmentsRead, st.PiecesFetched, units.FormatSize(res.Bytes))
		if res.Planned != plan.SourceBytes() {
			t.Errorf("dozo planned %d bytes, the local plan %d", res.Planned, plan.SourceBytes())
		}
		if segs < 8 || int64(len(touched)) > segs/2 {
			t.Fatalf("the test needs a file of many segments and a region in few: %d of %d", len(touched), segs)
		}
		// Write reads the parts in file order, so each touched segment is
		// fetched once, and no other segment at all.
		if st.SegmentsRead != int64(len(touched)) || st.PieceBytes != st.SegmentsRead*stored {
			t.Fatalf("read %d segments (%d bytes) for a plan over %d segments", st.SegmentsRead, st.PieceBytes, len(touched))
		}
		if st.PieceBytes*4 > fi.Size() {
			t.Fatalf("moved %d bytes of a %d-byte file for a 10 kb region", st.PieceBytes, fi.Size())
		}
	})

	t.Run("degraded storage", func(t *testing.T) {
		restart := s.stopMinio(t, 1)
		defer restart()
		out := filepath.Join(t.TempDir(), "d.cram")
		_, errOut, err := rita.dozo("fetch", ds+"/x.cram", "--region", "chr1:2000000-2100000", "-o", out)
		if err != nil {
			t.Fatalf("region fetch with a server down: %v: %s", err, errOut)
		}
		if !strings.Contains(errOut, "storage is degraded") {
			t.Errorf("no degraded notice: %q", errOut)
		}
		// --debug gives each failure's whole error, as a whole-file
		// fetch does (before, the region fetch ignored it).
		_, dbgOut, err := rita.dozo("--debug", "fetch", ds+"/x.cram", "--region", "chr1:2000000-2100000", "-o", out+".debug")
		if err != nil {
			t.Fatalf("region fetch --debug with a server down: %v: %s", err, dbgOut)
		}
		if !strings.Contains(dbgOut, "storage is degraded (segment") || !strings.Contains(dbgOut, ": piece ") {
			t.Errorf("--debug degraded notice lacks the failures' errors: %q", dbgOut)
		}
		runTool(t, "samtools", "index", out)
		if want, got := countRegion(t, filepath.Join(dir, "x.cram"), d.fa, "chr1:2000000-2100000"), countRegion(t, out, d.fa, "chr1:2000000-2100000"); got != want {
			t.Fatalf("degraded region fetch: %d records, want %d", got, want)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "bad.bam")
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"fetch", ds + "/x.bam", "--region", "chrX:1-100", "-o", out}, `unknown reference "chrX"`},
			{[]string{"fetch", ds + "/x.bam", "--region", "2:1-100", "-o", out}, "did you mean chr2"},
			{[]string{"fetch", ds + "/x.bam", "--region", "chr1:0-100", "-o", out}, "positions start at 1"},
			{[]string{"fetch", ds + "/ref.fa", "--region", "chr1", "-o", out}, "needs a .bam, .cram, .vcf.gz or .bcf"},
			{[]string{"fetch", ds + "/x.bam", "--region", "chr1", "--index", "x.vcf.gz.tbi", "-o", out}, "index"},
			{[]string{"fetch", ds + "/mpileup.1.bam", "--region", "17", "--index", "x.bam.bai", "-o", out}, "index"},
			{[]string{"fetch", ds + "/x.bam", "--region", "chr1", "--range", "0-5", "-o", out}, "does not combine"},
		} {
			line := rita.refused(t, c.args...)
			if !strings.Contains(line, c.want) {
				t.Errorf("dozo %s: %q does not say %q", strings.Join(c.args, " "), line, c.want)
			}
			if _, err := os.Lstat(out); err == nil {
				t.Fatalf("dozo %s left %s behind", strings.Join(c.args, " "), out)
			}
		}
	})
}

func localPlan(t testing.TB, file, index string, regs ...region.Region) *region.Plan {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	idx, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	format, _ := region.FormatOf(file)
	p, err := region.Make(f, fi.Size(), format, idx, regs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := region.Write(io.Discard, p, nil); err != nil { // resolves the parts' ends
		t.Fatal(err)
	}
	return p
}
