package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	if got := DefaultName("/data/run1/sample 1.cram"); got != "sample 1.cram" {
		t.Errorf("DefaultName = %q", got)
	}
	if got := DefaultName("reads.fq.gz/"); got != "reads.fq.gz" {
		t.Errorf("DefaultName with slash = %q", got)
	}
	for _, ok := range []string{"a", "NA12878.final.cram", "sample 1.bam", "試料.vcf.gz"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a//b", "a/../b", "a/", "a\nb", "a\x00b", "\xff", strings.Repeat("x", 256), "a\u200bb"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) succeeded", bad)
		}
	}
	ds, name, err := ParseFileRef("JGAD000001/sample1.cram")
	if err != nil || ds != "JGAD000001" || name != "sample1.cram" {
		t.Errorf("ParseFileRef = %q %q %v", ds, name, err)
	}
	if ds, name, err := ParseFileRef("JGAD000001/lane2/S1_R1.fastq.gz"); err != nil || ds != "JGAD000001" || name != "lane2/S1_R1.fastq.gz" {
		t.Errorf("ParseFileRef of a name with a directory = %q %q %v", ds, name, err)
	}
	for _, bad := range []string{"JGAD000001", "/x", "JGAD/", "../x/y", "a b/c", "d/e/", "d/e/../f", "d//e"} {
		if _, _, err := ParseFileRef(bad); err == nil {
			t.Errorf("ParseFileRef(%q) succeeded", bad)
		}
	}
}

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestConfigDirPermissions(t *testing.T) {
	base := t.TempDir()
	p := filepath.Join(base, "new", "dozo")
	d, err := OpenDir(p)
	if err != nil {
		t.Fatal(err)
	}
	if m := perm(t, p); m != 0o700 {
		t.Errorf("new dir mode %v", m)
	}
	// An existing, too-open directory is tightened.
	loose := filepath.Join(base, "loose")
	os.Mkdir(loose, 0o755)
	os.Chmod(loose, 0o755)
	if _, err := OpenDir(loose); err != nil {
		t.Fatal(err)
	}
	if m := perm(t, loose); m != 0o700 {
		t.Errorf("tightened dir mode %v", m)
	}

	if err := d.SaveLogin("s.secret", Login{Username: "alice", VaultAddr: "http://v"}); err != nil {
		t.Fatal(err)
	}
	id, err := d.Keygen(true, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(p, tokenFile), filepath.Join(p, loginFile), d.IdentityPath()} {
		if m := perm(t, f); m != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, m)
		}
	}
	tok, err := d.Token()
	if err != nil || tok != "s.secret" {
		t.Errorf("Token = %q, %v", tok, err)
	}
	if l := d.Login(); l.Username != "alice" {
		t.Errorf("Login = %+v", l)
	}
	// A secret others can read is refused, not used.
	os.Chmod(filepath.Join(p, tokenFile), 0o644)
	if _, err := d.Token(); err == nil || !strings.Contains(whatAndHint(err), "chmod 600") {
		t.Errorf("too-open token accepted: %v", err)
	}
	got, err := d.Identity()
	if err != nil || got.Public != id.Public {
		t.Errorf("Identity = %v, %v", got, err)
	}
	if had, err := d.Logout(); err != nil || !had {
		t.Errorf("Logout = %v %v", had, err)
	}
	if _, err := d.Token(); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("after logout: %v", err)
	}
}

func TestKeygen(t *testing.T) {
	d, _ := OpenDir(t.TempDir())
	if _, err := d.Identity(); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("no identity yet: %v", err)
	}
	id, err := d.Keygen(false, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id.Public, "age1pq1") {
		t.Errorf("default key is not hybrid: %.20s", id.Public)
	}
	if _, err := d.Keygen(true, false); err == nil || Hint(err) == "" {
		t.Errorf("keygen overwrote an identity: %v", err)
	}
	again, _ := d.Identity()
	if again.Public != id.Public {
		t.Error("identity changed after refused keygen")
	}
	c, err := d.Keygen(true, true)
	if err != nil || !strings.HasPrefix(c.Public, "age1") || strings.HasPrefix(c.Public, "age1pq1") {
		t.Fatalf("classic keygen --force: %v %.20s", err, c.Public)
	}
}

func TestDescribe(t *testing.T) {
	ae := &APIError{Method: "POST", Path: "/v1/datasets/X/files/a/fetch", Status: 403}
	ae.Body.Error = "no active grant on X"
	ae.Body.Hint = "ask the custodian for a grant"
	ae.Body.RequestID = "r-123"
	err := &Error{Op: "fetching X/a", Err: ae}
	if got, want := Describe(err), (Failure{What: "fetching X/a: no active grant on X", Op: "fetching X/a", Hint: "ask the custodian for a grant", API: ae}); got != want {
		t.Errorf("Describe = %+v\nwant       %+v", got, want)
	}
	ae.Body.Hint = ""
	ae.Status = 401
	if h := Hint(err); !strings.Contains(h, "dozo login") {
		t.Errorf("401 hint %q", h)
	}
	if h := Hint(&Error{Op: "x", Err: ErrNotLoggedIn}); !strings.Contains(h, "dozo login") {
		t.Errorf("not logged in hint %q", h)
	}
	if h := Hint(&Error{Op: "x", Err: ErrNoIdentity}); !strings.Contains(h, "dozo keygen") {
		t.Errorf("no identity hint %q", h)
	}
	if _, err := New(Options{}); err == nil || !strings.Contains(whatAndHint(err), "DOZO_BROKER") {
		t.Errorf("no broker: %v", err)
	}
	// Refused connection to dozod.
	c, _ := New(Options{Broker: "http://127.0.0.1:1", Token: "s.tok", RetryFor: -1})
	_, werr := c.WhoAmI(context.Background())
	f := Describe(werr)
	if f.Transport == nil || !strings.Contains(f.What, "dozod") || strings.Contains(fmt.Sprintf("%v %v", f, *f.Transport), "s.tok") {
		t.Errorf("transport error: %+v", f)
	}
}

// whatAndHint is all a failure says in words.
func whatAndHint(err error) string {
	f := Describe(err)
	return f.What + " (" + f.Hint + ")"
}
