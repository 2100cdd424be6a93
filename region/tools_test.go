package region

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/region/regiontest"
)

// These tests check plans against the real tools (samtools, bcftools,
// bgzip, tabix from htslib) on local files; outside CI they are skipped
// where the tools are missing (scripts/tools.sh hts installs them).

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (scripts/tools.sh hts)", tool)
			}
			t.Skipf("%s not installed (scripts/tools.sh hts)", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return string(out)
}

// write creates path with what fill writes.
func write(t *testing.T, path string, fill func(io.Writer) error) {
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

type osFile struct {
	*os.File
	size int64
}

func openFile(t *testing.T, path string) osFile {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	return osFile{f, fi.Size()}
}

// extract plans and writes the regions of path with index to out.
func extract(t *testing.T, path, index, out string, regions ...string) *Plan {
	t.Helper()
	f := openFile(t, path)
	idx, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	format, err := FormatOf(path)
	if err != nil {
		t.Fatal(err)
	}
	var rs []Region
	for _, s := range regions {
		r, err := ParseRegion(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	p, err := Make(f, f.size, format, idx, rs)
	if err != nil {
		t.Fatal(err)
	}
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := Write(o, p, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func count(t *testing.T, tool string, args ...string) int {
	t.Helper()
	var out string
	if tool == "bcftools" {
		out = run(t, "bcftools", append([]string{"view", "-H"}, args...)...)
		return strings.Count(out, "\n")
	}
	out = run(t, "samtools", append([]string{"view", "-c"}, args...)...)
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var toolRegions = [][]string{
	{"chr1:1000-2000"},
	{"chr2:500000-510000"},
	{"chr3"},
	{"chr1:1-100000", "chr1:50000-150000", "chr3:200000-"},
	{"chr2:1,000,000-1,000,001"},
	{"chr3:399000-400000", "chr1:300000-300500"},
}

func TestBAMAndCRAMWithSamtools(t *testing.T) {
	needTools(t, "samtools")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	ref := regiontest.NewRef(r, 3, 1_200_000)
	fa := filepath.Join(dir, "ref.fa")
	write(t, fa, ref.WriteFasta)
	sam := filepath.Join(dir, "x.sam")
	write(t, sam, func(w io.Writer) error { return ref.WriteSAM(w, r, 40000, true) })
	bam := filepath.Join(dir, "x.bam")
	run(t, "samtools", "sort", "-o", bam, sam)
	run(t, "samtools", "index", bam)
	run(t, "samtools", "index", "-c", "-o", bam+".csi", bam)
	cram := filepath.Join(dir, "x.cram")
	run(t, "samtools", "view", "-C", "-T", fa, "-o", cram, bam)
	run(t, "samtools", "index", cram)
	fi, _ := os.Stat(bam)
	for i, regs := range toolRegions {
		for _, c := range []struct{ file, index, ext string }{
			{bam, bam + ".bai", "bam"}, {bam, bam + ".csi", "bam"}, {cram, cram + ".crai", "cram"},
		} {
			out := filepath.Join(dir, fmt.Sprintf("out%d.%s", i, c.ext))
			p := extract(t, c.file, c.index, out, regs...)
			run(t, "samtools", "quickcheck", out)
			run(t, "samtools", "index", out)
			for _, reg := range regs {
				want := count(t, "samtools", "-T", fa, c.file, reg)
				got := count(t, "samtools", "-T", fa, out, reg)
				if got != want {
					t.Errorf("%s %v (index %s): %s has %d reads in the region file, %d in the original", c.ext, regs, filepath.Ext(c.index), reg, got, want)
				}
			}
			if c.index == bam+".bai" {
				t.Logf("%v: reads %d of %d bytes", regs, p.SourceBytes(), fi.Size())
			}
			os.Remove(out)
		}
	}
}

func TestVCFAndBCFWithBcftools(t *testing.T) {
	needTools(t, "bcftools", "bgzip", "tabix")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	ref := regiontest.NewRef(r, 3, 1_200_000)
	raw := filepath.Join(dir, "x.vcf")
	write(t, raw, func(w io.Writer) error { return ref.WriteVCF(w, r, 60000) })
	vcf := raw + ".gz"
	run(t, "bgzip", "-f", raw)
	run(t, "tabix", "-p", "vcf", vcf)
	run(t, "bcftools", "index", "-c", "-o", vcf+".csi", vcf)
	bcf := filepath.Join(dir, "x.bcf")
	run(t, "bcftools", "view", "-Ob", "-o", bcf, vcf)
	run(t, "bcftools", "index", bcf)
	for i, regs := range toolRegions {
		for _, c := range []struct{ file, index, ext string }{
			{vcf, vcf + ".tbi", "vcf.gz"}, {vcf, vcf + ".csi", "vcf.gz"}, {bcf, bcf + ".csi", "bcf"},
		} {
			out := filepath.Join(dir, fmt.Sprintf("out%d.%s", i, c.ext))
			extract(t, c.file, c.index, out, regs...)
			run(t, "bcftools", "index", "-f", out)
			for _, reg := range regs {
				want := count(t, "bcftools", "-r", reg, c.file)
				got := count(t, "bcftools", "-r", reg, out)
				if got != want {
					t.Errorf("%s %v (index %s): %s has %d records in the region file, %d in the original", c.ext, regs, filepath.Ext(c.index), reg, got, want)
				}
			}
			os.Remove(out)
			os.Remove(out + ".csi")
		}
	}
}

// An index of another file with the same references is refused, by Make
// or by Write, before a wrong byte is written as a record.
func TestWrongIndexRefused(t *testing.T) {
	needTools(t, "samtools")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 6))
	ref := regiontest.NewRef(r, 2, 600_000)
	fa := filepath.Join(dir, "ref.fa")
	write(t, fa, ref.WriteFasta)
	for _, name := range []string{"a", "b"} {
		sam := filepath.Join(dir, name+".sam")
		write(t, sam, func(w io.Writer) error { return ref.WriteSAM(w, r, 20000, true) })
		bam := filepath.Join(dir, name+".bam")
		run(t, "samtools", "sort", "-o", bam, sam)
		run(t, "samtools", "index", bam)
		run(t, "samtools", "view", "-C", "-T", fa, "-o", filepath.Join(dir, name+".cram"), bam)
		run(t, "samtools", "index", filepath.Join(dir, name+".cram"))
	}
	for _, c := range []struct{ file, index string }{
		{"a.bam", "b.bam.bai"}, {"a.cram", "b.cram.crai"},
	} {
		f := openFile(t, filepath.Join(dir, c.file))
		idx, err := os.ReadFile(filepath.Join(dir, c.index))
		if err != nil {
			t.Fatal(err)
		}
		format, _ := FormatOf(c.file)
		for _, reg := range []string{"chr1:100000-200000", "chr2", "chr1:500000-"} {
			rg, _ := ParseRegion(reg)
			p, err := Make(f, f.size, format, idx, []Region{rg})
			if err == nil {
				_, err = Write(io.Discard, p, nil)
			}
			if err == nil {
				t.Errorf("%s with %s: %s written", c.file, c.index, reg)
			} else if !strings.Contains(err.Error(), "this file's") {
				t.Errorf("%s with %s: error does not blame the index: %v", c.file, c.index, err)
			}
		}
	}
}
