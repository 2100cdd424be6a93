package api

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidateFileName(t *testing.T) {
	for _, ok := range []string{"NA12878.cram", "sample 1.bam", "検体-01.vcf.gz", "a", strings.Repeat("x", MaxNameLen)} {
		if err := ValidateFileName(ok); err != nil {
			t.Errorf("ValidateFileName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x", "/etc/passwd", "a\x00b", "a\nb", "\x1b[31mred",
		"zero\u200bwidth", "bidi\u202eevil", string([]byte{0xff, 0xfe}), strings.Repeat("x", MaxNameLen+1)} {
		if ValidateFileName(bad) == nil {
			t.Errorf("ValidateFileName(%q) accepted", bad)
		}
	}
}

// FuzzValidateFileName: whatever is accepted is safe to use as a single
// local path element and to print.
func FuzzValidateFileName(f *testing.F) {
	for _, s := range []string{"a.bam", "..", "a/b", "x\x00", "é", "\u202e", "e\u0301", " a", "a ", "\u1100\u1161", "\u212b"} {
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
		if filepath.Base(s) != s || s == "." || s == ".." || strings.ContainsAny(s, "/\x00\n\r\x1b") {
			t.Fatalf("accepted %q, which is not a plain path element", s)
		}
	})
}
