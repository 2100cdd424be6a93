// Package regiontest makes genomic test data for region fetch tests: a
// random reference, reads drawn from it as SAM, variants as VCF. The real
// tools (samtools, bcftools, bgzip) turn them into indexed BAM, CRAM,
// VCF.gz and BCF.
package regiontest

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// Ref is a reference of random sequences named chr1, chr2, ...
type Ref struct {
	Names []string
	Seqs  []string
}

// NewRef makes n sequences of length bases each.
func NewRef(r *rand.Rand, n, length int) Ref {
	var s Ref
	for i := range n {
		b := make([]byte, length)
		for j := range b {
			b[j] = "ACGT"[r.IntN(4)]
		}
		s.Names = append(s.Names, fmt.Sprintf("chr%d", i+1))
		s.Seqs = append(s.Seqs, string(b))
	}
	return s
}

// WriteFasta writes the reference as FASTA.
func (s Ref) WriteFasta(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for i, n := range s.Names {
		fmt.Fprintf(bw, ">%s\n", n)
		for j := 0; j < len(s.Seqs[i]); j += 60 {
			bw.WriteString(s.Seqs[i][j:min(j+60, len(s.Seqs[i]))] + "\n")
		}
	}
	return bw.Flush()
}

// WriteSAM writes n reads of 100 bases at random places, unsorted; with
// long, a tenth of them have a 1-10 kb deletion, so they span bins of the
// coarser levels. A hundredth as many unmapped reads follow.
func (s Ref) WriteSAM(w io.Writer, r *rand.Rand, n int, long bool) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "@HD\tVN:1.6\tSO:unsorted\n")
	for i, name := range s.Names {
		fmt.Fprintf(bw, "@SQ\tSN:%s\tLN:%d\n", name, len(s.Seqs[i]))
	}
	qual := strings.Repeat("I", 100)
	for i := range n {
		ref := r.IntN(len(s.Names))
		seq := s.Seqs[ref]
		pos := r.IntN(len(seq) - 20000)
		cigar := "100M"
		read := seq[pos : pos+100]
		if long && r.IntN(10) == 0 {
			del := 1000 + r.IntN(9000)
			cigar = fmt.Sprintf("50M%dD50M", del)
			read = seq[pos:pos+50] + seq[pos+50+del:pos+100+del]
		}
		fmt.Fprintf(bw, "r%d\t0\t%s\t%d\t60\t%s\t*\t0\t0\t%s\t%s\n", i, s.Names[ref], pos+1, cigar, read, qual)
	}
	for i := range n / 100 {
		fmt.Fprintf(bw, "u%d\t4\t*\t0\t0\t*\t*\t0\t0\t%s\t%s\n", i, s.Seqs[0][:100], qual)
	}
	return bw.Flush()
}

// WriteVCF writes a sorted VCF of about n variants over the reference,
// two samples.
func (s Ref) WriteVCF(w io.Writer, r *rand.Rand, n int) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("##fileformat=VCFv4.2\n")
	for i, name := range s.Names {
		fmt.Fprintf(bw, "##contig=<ID=%s,length=%d>\n", name, len(s.Seqs[i]))
	}
	bw.WriteString("##INFO=<ID=DP,Number=1,Type=Integer,Description=\"Depth\">\n")
	bw.WriteString("##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n")
	bw.WriteString("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\n")
	per := max(n/len(s.Names), 1)
	for i, name := range s.Names {
		pos := 0
		for range per {
			pos += 1 + r.IntN(max(2*len(s.Seqs[i])/per-1, 1))
			if pos >= len(s.Seqs[i]) {
				break
			}
			ref := s.Seqs[i][pos-1]
			alt := "ACGT"[(strings.IndexByte("ACGT", ref)+1)%4]
			fmt.Fprintf(bw, "%s\t%d\t.\t%c\t%c\t50\tPASS\tDP=%d\tGT\t0/1\t1/1\n", name, pos, ref, alt, r.IntN(100))
		}
	}
	return bw.Flush()
}
