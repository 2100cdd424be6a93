package integration

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDevUpRestartsRebuiltDozod: `dev.sh up` (make up, make demo) leaves a
// running dozod alone while its binary is the one at DOZOD_BIN, and
// restarts it once that binary was rebuilt or replaced, so the local stack
// never serves code older than the tree. Before, a dozod left running by
// an earlier `make demo` kept serving its old build until `make down`.
func TestDevUpRestartsRebuiltDozod(t *testing.T) {
	s := needStack(t)
	pidPath := filepath.Join(s.devDir, "dozod.pid")
	before := pidFile(pidPath)
	if before == 0 || syscall.Kill(before, 0) != nil {
		t.Fatalf("no running dozod recorded in %s", pidPath)
	}
	if err := s.dev("up"); err != nil {
		t.Fatal(err)
	}
	if got := pidFile(pidPath); got != before {
		t.Fatalf("dev.sh up with the same binary restarted dozod (pid %d, was %d)", got, before)
	}

	// A rebuild puts a new file at the binary's path (same bytes here).
	bin := filepath.Join(s.bin, "dozod")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin+".rebuilt", b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".rebuilt", bin); err != nil {
		t.Fatal(err)
	}
	if err := s.dev("up"); err != nil {
		t.Fatal(err)
	}
	after := pidFile(pidPath)
	if after == before || after == 0 {
		t.Fatalf("dev.sh up after a rebuild kept the old dozod (pid %d)", after)
	}
	if syscall.Kill(before, 0) == nil {
		t.Fatalf("the old dozod (pid %d) still runs", before)
	}
	if err := s.loadEnv(); err != nil {
		t.Fatal(err)
	}
	sam, _ := s.users(t)
	sam.must(t, "dataset", "list") // the restarted dozod serves
}
