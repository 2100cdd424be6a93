package crypto_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/crypto"
	"github.com/dozo-vault/dozo/vault/vaulttest"
)

// tool finds a stock age binary: first in $DOZO_TOOLS_DIR/bin (default
// ~/.cache/dozo/tools/bin, where scripts/tools.sh installs pinned
// versions), then on PATH. Without it the test is skipped, except in CI
// where it must exist.
func tool(t *testing.T, name string) string {
	t.Helper()
	var dir string
	if d := os.Getenv("DOZO_TOOLS_DIR"); d != "" {
		dir = filepath.Join(d, "bin")
	} else if home, err := os.UserHomeDir(); err == nil {
		dir = filepath.Join(home, ".cache", "dozo", "tools", "bin")
	}
	if dir != "" {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found in %s or on PATH", name, dir)
	}
	t.Skipf("%s not found in %s or on PATH", name, dir)
	return ""
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// keygen makes an identity file with age-keygen and returns its path and
// the parsed identity.
func keygen(t *testing.T, pq bool) (string, age.Identity, age.Recipient) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.txt")
	args := []string{"-o", path}
	if pq {
		args = append([]string{"-pq"}, args...)
	}
	run(t, tool(t, "age-keygen"), args...)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil || len(ids) != 1 {
		t.Fatalf("ParseIdentities: %v", err)
	}
	rs, err := age.ParseRecipients(bytes.NewReader(run(t, tool(t, "age-keygen"), "-y", path)))
	if err != nil || len(rs) != 1 {
		t.Fatalf("ParseRecipients: %v", err)
	}
	return path, ids[0], rs[0]
}

func TestAgeCLIDecryptsOurFiles(t *testing.T) {
	ageBin := tool(t, "age")
	ft := vaulttest.NewKeys("ds1")
	for _, pq := range []bool{false, true} {
		keyFile, _, r := keygen(t, pq)
		recipients := []age.Recipient{r}
		if pq {
			// A real dozo file: the transit stanza the CLI can't use comes
			// first, the escrow key after it.
			recipients = []age.Recipient{crypto.NewTransitRecipient(context.Background(), ft, "ds1", "f"), r}
		}
		for _, size := range []int{0, 1, crypto.ChunkSize, 3*crypto.ChunkSize + 1} {
			t.Run(fmt.Sprintf("pq=%v/%d", pq, size), func(t *testing.T) {
				pt := plaintext(size, uint64(size)+20)
				s := encrypt(t, pt, recipients...)
				dir := t.TempDir()
				in := filepath.Join(dir, "f.age")
				if err := os.WriteFile(in, s.file(), 0o600); err != nil {
					t.Fatal(err)
				}
				out := run(t, ageBin, "-d", "-i", keyFile, in)
				if !bytes.Equal(out, pt) {
					t.Fatalf("age -d returned %d bytes, want %d", len(out), len(pt))
				}

				// And the CLI rejects a truncated payload.
				if size > crypto.ChunkSize {
					bad := filepath.Join(dir, "bad.age")
					f := s.file()
					os.WriteFile(bad, f[:len(f)-len(s.payload)+encChunk], 0o600)
					if err := exec.Command(ageBin, "-d", "-i", keyFile, "-o", filepath.Join(dir, "out"), bad).Run(); err == nil {
						t.Fatal("age -d accepted a truncated file")
					}
				}
			})
		}
	}
}

func TestAgeCLIFilesOpen(t *testing.T) {
	ageBin := tool(t, "age")
	for _, pq := range []bool{false, true} {
		_, id, r := keygen(t, pq)
		for _, size := range []int{0, 1, crypto.ChunkSize - 1, crypto.ChunkSize, 2*crypto.ChunkSize + 5} {
			t.Run(fmt.Sprintf("pq=%v/%d", pq, size), func(t *testing.T) {
				pt := plaintext(size, uint64(size)+30)
				dir := t.TempDir()
				in, out := filepath.Join(dir, "plain"), filepath.Join(dir, "f.age")
				if err := os.WriteFile(in, pt, 0o600); err != nil {
					t.Fatal(err)
				}
				run(t, ageBin, "-e", "-r", fmt.Sprint(r), "-o", out, in)
				file, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				checkAgeFile(t, file, pt, id)
			})
		}
	}
}
