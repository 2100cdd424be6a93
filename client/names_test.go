package client

import "testing"

// TestNamesSentComposed: names the client sends are in NFC whatever form
// the user or the file system gave, so a decomposed name reaches the same
// file instead of being refused or becoming a second one.
func TestNamesSentComposed(t *testing.T) {
	nfc, nfd := "caf\u00e9.vcf", "cafe\u0301.vcf"
	if _, name, err := ParseFileRef("JGAD1/" + nfd); err != nil || name != nfc {
		t.Errorf("ParseFileRef of the decomposed name: %q, %v", name, err)
	}
	if got := DefaultName("/data/" + nfd); got != nfc {
		t.Errorf("DefaultName = %q, want %q", got, nfc)
	}
	if _, _, err := ParseFileRef("JGAD1/ a.vcf"); err == nil {
		t.Error("a name starting with a space was accepted")
	}
}
