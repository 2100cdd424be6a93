package region

import (
	"bytes"
	"compress/gzip"
	"testing"
)

func gz(b []byte) []byte {
	var o bytes.Buffer
	w := gzip.NewWriter(&o)
	w.Write(b)
	w.Close()
	return o.Bytes()
}

// FuzzParseIndex: any bytes as a BAI, CSI or tabix index give an index or
// an error, never a panic or an unbounded allocation; queries on what
// parses return chunks with end > beg.
func FuzzParseIndex(f *testing.F) {
	f.Add(makeBAI([]testRef{{bins: map[uint32][]chunk{4681: {{v(1, 0), v(2, 0)}}}, linear: []VOffset{v(1, 0)}}}))
	f.Add(gz(append([]byte("CSI\x01\x0e\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"), 0, 0, 0, 0)))
	f.Add(gz([]byte("TBI\x01\x01\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00#\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00c\x00\x00\x00\x00\x00")))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := parseIndex(b)
		if err != nil {
			return
		}
		for i := range x.refs {
			for _, c := range x.query(i, 0, 1<<20) {
				if c.end <= c.beg {
					t.Fatalf("empty chunk %v", c)
				}
			}
		}
	})
}

// FuzzParseCRAI: any bytes as a CRAM index parse or fail cleanly.
func FuzzParseCRAI(f *testing.F) {
	f.Add(gz([]byte("0\t2\t101\t10039\t319\t241\n1\t2\t101\t10613\t325\t281\n")))
	f.Add(gz([]byte("-1\t0\t0\t5\t6\t7\n")))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseCRAI(b)
		if err != nil {
			return
		}
		for _, e := range es {
			if e.end < e.start || e.container < 0 {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

// FuzzPlanHeaders: the header parsers (BAM, BCF, VCF, CRAM), the planner
// and the writer, over any bytes as the file and as its index, fail
// cleanly: no panic, no unbounded allocation.
func FuzzPlanHeaders(f *testing.F) {
	var bam bytes.Buffer
	writeBlocks(&bam, []byte("BAM\x01\x00\x00\x00\x00\x01\x00\x00\x00\x05\x00\x00\x00chr1\x00\x10\x00\x00\x00"))
	bam.Write(bgzfEOF)
	bai := makeBAI([]testRef{{bins: map[uint32][]chunk{4681: {{v(0, 30), v(0, 40)}}}}})
	f.Add(bam.Bytes(), bai, byte(BAM))
	var vcf bytes.Buffer
	writeBlocks(&vcf, []byte("##fileformat=VCFv4.2\n#CHROM\tPOS\n1\t5\n"))
	vcf.Write(bgzfEOF)
	f.Add(vcf.Bytes(), gz([]byte("TBI\x01\x01\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00#\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00chr1\x00\x01\x00\x00\x00\x49\x12\x00\x00\x01\x00\x00\x00\x25\x00\x00\x00\x00\x00\x00\x00\x2a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")), byte(VCF))
	f.Add([]byte("CRAM\x03\x00aaaaaaaaaaaaaaaaaaaa\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00"), gz([]byte("0\t1\t10\t26\t0\t1\n")), byte(CRAM))
	f.Fuzz(func(t *testing.T, file, index []byte, format byte) {
		ff := Format(format%4 + 1)
		r := bytes.NewReader(file)
		p, err := Make(r, int64(len(file)), ff, index, []Region{{Ref: "chr1", End: ToEnd}})
		if err != nil {
			return
		}
		var out bytes.Buffer
		Write(&out, p, nil)
	})
}
