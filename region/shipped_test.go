package region

import (
	"os"
	"path/filepath"
	"testing"
)

// The samtools test files (Debian's samtools-test package): real files
// written by older tools (CRAM 2.0, BAI of a file with 86 references).
func TestShippedSamtoolsFiles(t *testing.T) {
	needTools(t, "samtools")
	const dir = "/usr/share/samtools/test/mpileup"
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("samtools-test not installed (scripts/tools.sh hts)")
		}
		t.Skip("samtools-test not installed (scripts/tools.sh hts)")
	}
	tmp := t.TempDir()
	fa := filepath.Join(dir, "ce.fa")
	for _, c := range []struct {
		file, index string
		regions     []string
	}{
		{"mpileup.1.bam", "mpileup.1.bam.bai", []string{"17:100-200", "17", "1:1-1000"}},
		{"ce#5b.bam", "ce#5b.bam.bai", []string{"CHROMOSOME_III:1-100", "CHROMOSOME_I"}},
		{"ce#5b.cram", "ce#5b.cram.crai", []string{"CHROMOSOME_III:1-100", "CHROMOSOME_I", "CHROMOSOME_V:1-10"}},
	} {
		out := filepath.Join(tmp, "out"+filepath.Ext(c.file))
		extract(t, filepath.Join(dir, c.file), filepath.Join(dir, c.index), out, c.regions...)
		run(t, "samtools", "quickcheck", out)
		run(t, "samtools", "index", out)
		for _, reg := range c.regions {
			want := count(t, "samtools", "-T", fa, filepath.Join(dir, c.file), reg)
			got := count(t, "samtools", "-T", fa, out, reg)
			if got != want {
				t.Errorf("%s %s: %d records in the region file, %d in the original", c.file, reg, got, want)
			}
		}
		os.Remove(out)
		os.Remove(out + ".bai")
		os.Remove(out + ".crai")
	}
}
