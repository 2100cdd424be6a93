package main

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The lines are what sha256sum and md5sum print, escapes included, and
// their -c reads them back: names with a newline, a backslash or a
// carriage return check against the files.
func TestSumLinesCheckWithCoreutils(t *testing.T) {
	dir := t.TempDir()
	names := []string{"plain.bam", "a\nb.cram", `c\d.vcf`, "e\rf", "sp ace.txt"}
	for _, tool := range []string{"sha256sum", "md5sum"} {
		bin, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s", tool)
		}
		var list bytes.Buffer
		for i, n := range names {
			data := []byte(strings.Repeat("x", i+1))
			os.WriteFile(filepath.Join(dir, n), data, 0o600)
			sum := sha256.Sum256(data)
			hexs := hex.EncodeToString(sum[:])
			if tool == "md5sum" {
				m := md5.Sum(data)
				hexs = hex.EncodeToString(m[:])
			}
			writeSumLine(&list, hexs, n)
		}
		cmd := exec.Command(bin, "-c", "--strict", "-")
		cmd.Dir, cmd.Stdin = dir, bytes.NewReader(list.Bytes())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -c: %v\n%s\nlist:\n%q", tool, err, out, list.String())
		}
		// And byte for byte what the tool itself prints for the escaped
		// names it understands.
		cmd = exec.Command(bin, "a\nb.cram", `c\d.vcf`)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(list.String(), "\n")
		if want := lines[1] + lines[2]; string(out) != want {
			t.Errorf("%s prints %q, we print %q", tool, out, want)
		}
	}
}
