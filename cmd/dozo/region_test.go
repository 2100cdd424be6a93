package main

import (
	"strings"
	"testing"
)

// fetch --region refuses bad combinations and regions before it logs in
// or fetches anything, and keeps samtools' thousands commas in a region.
func TestFetchRegionFlags(t *testing.T) {
	t.Setenv("DOZO_CONFIG_DIR", t.TempDir())
	out := t.TempDir() + "/out.bam"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fetch", "JGAD000001/y.bam", "--index", "y.bai", "-o", out}, "--index goes with --region"},
		{[]string{"fetch", "JGAD000001/y.bam", "--region", "chr1", "--raw", "-o", out}, "does not combine"},
		{[]string{"fetch", "JGAD000001/y.bam", "--region", "chr1", "--range", "0-9", "-o", out}, "does not combine"},
		{[]string{"fetch", "JGAD000001/y.fastq.gz", "--region", "chr1", "-o", out}, "needs a .bam, .cram, .vcf.gz or .bcf"},
		{[]string{"fetch", "JGAD000001/y.bam", "--region", "chr1:0-5", "-o", out}, "positions start at 1"},
		{[]string{"fetch", "JGAD000001/y.bam", "--region", "chr1:9-5", "-o", out}, "ends before it starts"},
		// Parsed whole: a string slice flag splits it at the commas into
		// "chr1:5", "000-1" and "000", three good regions.
		{[]string{"fetch", "JGAD000001/y.bam", "--region", "chr1:5,000-1,000", "-o", out}, "ends before it starts"},
		{[]string{"fetch", "JGAD000001/y.bam", "--region", "chr1:1,000-2,000", "--region", "chr2", "-o", out}, "not logged in"},
	} {
		_, _, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("dozo %s: %v, want an error saying %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
