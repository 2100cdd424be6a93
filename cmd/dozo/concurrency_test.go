package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConcurrencyFlag: upload and fetch refuse a --concurrency that is not
// a sensible number of parallel transfers, before anything else happens.
func TestConcurrencyFlag(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a.bam")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"-1", "0", "100000"} {
		for _, args := range [][]string{
			{"upload", "-d", "D", "--concurrency", n, f},
			{"fetch", "D/a.bam", "-o", filepath.Join(dir, "out"), "--concurrency", n},
		} {
			_, _, err := run(t, append([]string{"--config-dir", dir, "--broker", "http://127.0.0.1:1"}, args...)...)
			if msg := errorLine(err, false); err == nil || !strings.Contains(msg, "--concurrency "+n) || !strings.Contains(msg, "1..") {
				t.Errorf("%v: %v", args, msg)
			}
		}
	}
}
