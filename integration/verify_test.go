package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCLIVerifyAndFetchChecksums: dozo verify passes a true copy, names
// the mismatch of a changed one and refuses a missing one, each with one
// line and a non-zero exit; a fetch checks SHA-256 and, with --md5, MD5.
func TestCLIVerifyAndFetchChecksums(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "verify")
	dir := t.TempDir()
	src := filepath.Join(dir, "v.bin")
	writeRandomFile(t, src, 41, 3*mib+17, nil)
	sam.must(t, "upload", "--dataset", ds, "--name", "v.bin", src)
	ref := ds + "/v.bin"

	if out := sam.must(t, "verify", ref, src); !strings.HasPrefix(out, "OK ") || !strings.Contains(out, "sha256") {
		t.Errorf("verify of a true copy: %q", out)
	}
	var vr struct {
		Match   bool     `json:"match"`
		Checked []string `json:"checked"`
	}
	if err := json.Unmarshal([]byte(sam.must(t, "verify", ref, src, "--md5", "--json")), &vr); err != nil || !vr.Match || !slices.Equal(vr.Checked, []string{"size", "sha256", "md5"}) {
		t.Errorf("verify --md5 --json: %+v, %v", vr, err)
	}

	data, _ := os.ReadFile(src)
	data[mib] ^= 0x40
	bad := filepath.Join(dir, "bad.bin")
	os.WriteFile(bad, data, 0o600)
	if line := sam.refused(t, "verify", ref, bad); !strings.Contains(line, "checksum mismatch") || !strings.Contains(line, "SHA-256 is") {
		t.Errorf("verify of a changed copy: %q", line)
	}
	if line := sam.refused(t, "verify", ref, filepath.Join(dir, "absent.bin")); !strings.Contains(line, "does not exist") {
		t.Errorf("verify of a missing copy: %q", line)
	}
	if line := sam.refused(t, "verify", ds+"/other.bin", src); !strings.Contains(line, "has no file") {
		t.Errorf("verify against a name not stored: %q", line)
	}

	for _, c := range []struct {
		flags []string
		want  []string
	}{{nil, []string{"sha256"}}, {[]string{"--md5"}, []string{"sha256", "md5"}}} {
		out := filepath.Join(dir, "out.bin")
		var fr struct {
			Verified  bool     `json:"checksums_verified"`
			Checksums []string `json:"checksums_checked"`
		}
		args := append([]string{"fetch", ref, "-o", out, "--force", "--json"}, c.flags...)
		if err := json.Unmarshal([]byte(sam.must(t, args...)), &fr); err != nil || !fr.Verified || !slices.Equal(fr.Checksums, c.want) {
			t.Errorf("fetch %v: %+v, %v; want %v checked", c.flags, fr, err, c.want)
		}
		os.Remove(out)
	}
}
