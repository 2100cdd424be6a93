package region

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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

// synthRef is a reference of random sequences.
type synthRef struct {
	names []string
	seqs  []string
}

func makeRef(r *rand.Rand, n, length int) synthRef {
	var s synthRef
	for i := range n {
		b := make([]byte, length)
		for j := range b {
			b[j] = "ACGT"[r.IntN(4)]
		}
		s.names = append(s.names, fmt.Sprintf("chr%d", i+1))
		s.seqs = append(s.seqs, string(b))
	}
	return s
}

func (s synthRef) writeFasta(t *testing.T, path string) {
	var b bytes.Buffer
	for i, n := range s.names {
		fmt.Fprintf(&b, ">%s\n", n)
		for j := 0; j < len(s.seqs[i]); j += 60 {
			b.WriteString(s.seqs[i][j:min(j+60, len(s.seqs[i]))] + "\n")
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSAM writes n reads of 100 bases at random places (a tenth of them
// 1-10 kb long, deletions making them span bins) and some unmapped reads.
func (s synthRef) writeSAM(t *testing.T, path string, r *rand.Rand, n int) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "@HD\tVN:1.6\tSO:unsorted\n")
	for i, name := range s.names {
		fmt.Fprintf(w, "@SQ\tSN:%s\tLN:%d\n", name, len(s.seqs[i]))
	}
	qual := strings.Repeat("I", 100)
	for i := range n {
		ref := r.IntN(len(s.names))
		seq := s.seqs[ref]
		pos := r.IntN(len(seq) - 20000)
		cigar := "100M"
		read := seq[pos : pos+100]
		if r.IntN(10) == 0 {
			del := 1000 + r.IntN(9000)
			cigar = fmt.Sprintf("50M%dD50M", del)
			read = seq[pos:pos+50] + seq[pos+50+del:pos+100+del]
		}
		fmt.Fprintf(w, "r%d\t0\t%s\t%d\t60\t%s\t*\t0\t0\t%s\t%s\n", i, s.names[ref], pos+1, cigar, read, qual)
	}
	for i := range n / 100 {
		fmt.Fprintf(w, "u%d\t4\t*\t0\t0\t*\t*\t0\t0\t%s\t%s\n", i, s.seqs[0][:100], qual)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
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
	if _, err := Write(o, f, p, nil); err != nil {
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
	ref := makeRef(r, 3, 1_200_000)
	fa := filepath.Join(dir, "ref.fa")
	ref.writeFasta(t, fa)
	sam := filepath.Join(dir, "x.sam")
	ref.writeSAM(t, sam, r, 40000)
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

// writeVCF writes a sorted VCF with n variants over ref's contigs.
func (s synthRef) writeVCF(t *testing.T, path string, r *rand.Rand, n int) {
	var b bytes.Buffer
	b.WriteString("##fileformat=VCFv4.2\n")
	for i, name := range s.names {
		fmt.Fprintf(&b, "##contig=<ID=%s,length=%d>\n", name, len(s.seqs[i]))
	}
	b.WriteString("##INFO=<ID=DP,Number=1,Type=Integer,Description=\"Depth\">\n")
	b.WriteString("##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n")
	b.WriteString("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\n")
	per := n / len(s.names)
	for i, name := range s.names {
		pos := 0
		for range per {
			pos += 1 + r.IntN(2*len(s.seqs[i])/per-1)
			if pos >= len(s.seqs[i]) {
				break
			}
			refBase := s.seqs[i][pos-1 : pos]
			alt := string("ACGT"[(strings.IndexByte("ACGT", refBase[0])+1)%4])
			fmt.Fprintf(&b, "%s\t%d\t.\t%s\t%s\t50\tPASS\tDP=%d\tGT\t0/1\t1/1\n", name, pos, refBase, alt, r.IntN(100))
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVCFAndBCFWithBcftools(t *testing.T) {
	needTools(t, "bcftools", "bgzip", "tabix")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	ref := makeRef(r, 3, 1_200_000)
	raw := filepath.Join(dir, "x.vcf")
	ref.writeVCF(t, raw, r, 60000)
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
