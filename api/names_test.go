package api

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateFileName(t *testing.T) {
	for _, ok := range []string{"NA12878.cram", "sample 1.bam", "検体-01.vcf.gz", "a", strings.Repeat("x", MaxNameElemLen),
		"a/b", "lane2/S1_R1.fastq.gz", "run 1/lane 2/検体.bam", "a/.hidden", "...", "a/.../b"} {
		if err := ValidateFileName(ok); err != nil {
			t.Errorf("ValidateFileName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "/etc/passwd", "a\x00b", "a\nb", "\x1b[31mred",
		"zero\u200bwidth", "bidi\u202eevil", string([]byte{0xff, 0xfe}), strings.Repeat("x", MaxNameElemLen+1),
		"a/", "/a", "a//b", "a/./b", "a/../b", "a/..", "./a", "a/ b", "a /b", "a/b\x00", "a\\..\\b/\u202e",
		"d/" + strings.Repeat("x", MaxNameElemLen+1), strings.Repeat("abcdefg/", MaxNameLen/8) + "x", "a/cafe\u0301"} {
		if ValidateFileName(bad) == nil {
			t.Errorf("ValidateFileName(%q) accepted", bad)
		}
	}
}

// FuzzValidateFileName: whatever is accepted is safe to print and to join
// to a local directory: a clean relative path that stays below it, each
// of whose parts is a plain path element.
func FuzzValidateFileName(f *testing.F) {
	for _, s := range []string{"a.bam", "..", "a/b", "x\x00", "é", "\u202e", "e\u0301", " a", "a ", "\u1100\u1161", "\u212b",
		"lane2/S1_R1.fastq.gz", "a//b", "/a", "a/", "a/./b", "a/../b", "a/ b", "a/\u212b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n := NormalizeFileName(s); utf8.ValidString(s) && NormalizeFileName(n) != n {
			t.Fatalf("NormalizeFileName(%q) = %q is not stable", s, n)
		}
		if ValidateFileName(s) != nil {
			return
		}
		if NormalizeFileName(s) != s {
			t.Fatalf("accepted %q, whose NFC form %q differs: one name, two spellings", s, NormalizeFileName(s))
		}
		if strings.TrimSpace(s) != s {
			t.Fatalf("accepted %q, with a space at an end", s)
		}
		if !utf8.ValidString(s) || len(s) == 0 || len(s) > MaxNameLen {
			t.Fatalf("accepted %q", s)
		}
		if !filepath.IsLocal(s) || filepath.Clean(s) != s || filepath.IsAbs(s) {
			t.Fatalf("accepted %q, which is not a clean path below a directory", s)
		}
		for _, part := range strings.Split(s, "/") {
			if filepath.Base(part) != part || part == "." || part == ".." || len(part) > MaxNameElemLen ||
				strings.TrimSpace(part) != part || strings.ContainsAny(part, "\x00\n\r\x1b") {
				t.Fatalf("accepted %q, whose part %q is not a plain path element", s, part)
			}
		}
	})
}
