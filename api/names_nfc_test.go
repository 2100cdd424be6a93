package api

import "testing"

// TestFileNameOneForm: a name has one spelling. The decomposed form of a
// name (e + U+0301, as macOS file systems give it) is refused, its
// composed form accepted, and NormalizeFileName turns one into the other;
// spaces at either end, invisible in listings, are refused.
func TestFileNameOneForm(t *testing.T) {
	nfc, nfd := "caf\u00e9.vcf", "cafe\u0301.vcf"
	if err := ValidateFileName(nfc); err != nil {
		t.Fatalf("composed name: %v", err)
	}
	if err := ValidateFileName(nfd); err == nil {
		t.Errorf("decomposed name %q accepted beside %q", nfd, nfc)
	}
	if got := NormalizeFileName(nfd); got != nfc {
		t.Errorf("NormalizeFileName(%q) = %q, want %q", nfd, got, nfc)
	}
	for _, bad := range []string{" a.bam", "a.bam ", " ", "  x  "} {
		if ValidateFileName(bad) == nil {
			t.Errorf("ValidateFileName(%q) accepted", bad)
		}
	}
	if err := ValidateFileName("sample 1.bam"); err != nil {
		t.Errorf("inner space refused: %v", err)
	}
}
