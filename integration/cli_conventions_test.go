package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// commandWithout returns the environment of u's commands without the named variables.
func (u *user) commandWithout(names []string, args ...string) []string {
	cmd := u.command(args...)
	var env []string
	for _, e := range cmd.Env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(e, n+"=") {
				keep = false
			}
		}
		if keep {
			env = append(env, e)
		}
	}
	return env
}

// TestLoginRemembersCA: the CA certificate given at login is kept (0600)
// in the config directory, and later commands to the same broker trust it
// without --ca-cert; logout forgets it.
func TestLoginRemembersCA(t *testing.T) {
	s := needStack(t)
	u := s.login(t, s.env["DOZO_DEV_RESEARCHER"], s.env["DOZO_DEV_RESEARCHER_PASSWORD"])
	fi, err := os.Stat(filepath.Join(u.dir, "broker-ca.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kept CA: %v %v", err, fi)
	}
	cmd := u.command("whoami", "--json")
	cmd.Env = u.commandWithout([]string{"DOZO_CA_CERT"}, "whoami")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), u.name) {
		t.Fatalf("whoami without --ca-cert after a login with it: %v: %s", err, out)
	}
	u.must(t, "logout")
	if _, err := os.Stat(filepath.Join(u.dir, "broker-ca.pem")); !os.IsNotExist(err) {
		t.Errorf("logout kept the CA copy: %v", err)
	}
}

// TestDozodReloadsRolesOnHUP: after the config's submitters list gains a
// user and dozod gets SIGHUP, that user may create datasets, without a
// restart; a broken config on SIGHUP changes nothing.
func TestDozodReloadsRolesOnHUP(t *testing.T) {
	s := needStack(t)
	// Every dozod of the stack has its own config file and gets the signal.
	var confs, origs []string
	for i := 1; i <= s.dozods(); i++ {
		conf := s.dozodFile(i, "toml")
		orig, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		confs, origs = append(confs, conf), append(origs, string(orig))
	}
	write := func(conf func(orig string) string) {
		for i := range confs {
			os.WriteFile(confs[i], []byte(conf(origs[i])), 0o600)
		}
	}
	hup := func() { s.signalDozods(t, syscall.SIGHUP) }
	t.Cleanup(func() { write(func(orig string) string { return orig }); hup() })

	carol := s.newUser(t)
	ds := newDatasetID()
	if line := carol.refused(t, "dataset", "create", ds, "--title", "t"); !strings.Contains(line, "submitter") {
		t.Fatalf("before: %s", line)
	}
	withCarol := func(orig string) string {
		return strings.Replace(orig, `submitters = ["sam"]`, `submitters = ["sam", "`+carol.name+`"]`, 1)
	}
	for i, orig := range origs {
		if withCarol(orig) == orig {
			t.Fatalf("no submitters line in %s:\n%s", confs[i], orig)
		}
	}
	// A broken config first: nothing changes, dozod keeps serving.
	write(func(string) string { return "admins = [\n" })
	hup()
	for start := time.Now(); !dozodLogHas(t, s, "SIGHUP: config not reloaded"); time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("dozod did not report the broken config")
		}
	}
	carol.must(t, "whoami")
	write(withCarol)
	hup()
	// As many answers in a row as there are dozods: with requests spread
	// round robin, each has reloaded.
	for start, inARow := time.Now(), 0; ; time.Sleep(100 * time.Millisecond) {
		out, _, _ := carol.dozo("whoami", "--json")
		if inARow = inARow + 1; !strings.Contains(out, `"submitter"`) {
			inARow = 0
		}
		if inARow == s.dozods() {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("roles not reloaded: %s", out)
		}
	}
	carol.must(t, "dataset", "create", ds, "--title", "t")
	if !dozodLogHas(t, s, "SIGHUP: roles reloaded") {
		t.Error("dozod's log does not show the reload")
	}
}

// TestChecksumsAndTargets: `dozo checksums` lists what sha256sum -c and
// md5sum -c check fetched files against; `dozo admin targets` shows the
// targets to an admin and tells a custodian it needs an administrator.
func TestChecksumsAndTargets(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "checksums")
	dir := t.TempDir()
	for i, n := range []string{"a.bam", "b.vcf"} {
		writeRandomFile(t, filepath.Join(dir, n), uint64(200+i), int64(1000+i), nil)
		if out := sam.must(t, "upload", "--dataset", ds, filepath.Join(dir, n)); strings.Count(out, "\n") != 1 {
			t.Errorf("upload printed more than one line for one file:\n%s", out)
		}
	}
	// ls fits 80 columns; --wide shows whole checksums.
	for _, l := range strings.Split(strings.TrimSpace(sam.must(t, "ls", ds)), "\n") {
		if len(l) > 80 {
			t.Errorf("ls line of %d columns: %q", len(l), l)
		}
	}
	if out := sam.must(t, "ls", ds, "--wide"); !strings.Contains(out, lsFiles(t, sam, ds)["a.bam"].SHA256) {
		t.Errorf("ls --wide lacks the whole SHA-256:\n%s", out)
	}
	back := t.TempDir()
	for _, n := range []string{"a.bam", "b.vcf"} {
		sam.must(t, "fetch", ds+"/"+n, "-o", back)
	}
	for flag, tool := range map[string]string{"--sha256": "sha256sum", "--md5": "md5sum"} {
		list := sam.must(t, "checksums", ds, flag)
		if strings.Count(list, "\n") != 2 {
			t.Fatalf("checksums %s: %q", flag, list)
		}
		cmd := exec.Command(tool, "-c", "--strict", "-")
		cmd.Dir, cmd.Stdin = back, strings.NewReader(list)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -c: %v: %s", tool, err, out)
		}
	}

	out := s.admin(t).must(t, "admin", "targets")
	if strings.Count(out, " up ") != 6 || !strings.HasPrefix(out, "TARGET") {
		t.Errorf("admin targets:\n%s", out)
	}
	if line := sam.refused(t, "admin", "targets"); !strings.Contains(line, "administrator") || strings.Contains(line, "custodian") {
		t.Errorf("a custodian running admin targets: %s", line)
	}
}

// TestDryRuns: upload, dataset delete and scrub --repair with --dry-run
// say what they would do and change nothing.
func TestDryRuns(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "dry runs")
	dir := t.TempDir()
	old, fresh := filepath.Join(dir, "old.bam"), filepath.Join(dir, "new.bam")
	writeRandomFile(t, old, 301, 5000, nil)
	writeRandomFile(t, fresh, 302, 7000, nil)
	sam.must(t, "upload", "--dataset", ds, old)

	out := sam.must(t, "upload", "--dataset", ds, "--dry-run", old, fresh)
	if !strings.Contains(out, "would skip   "+old) || !strings.Contains(out, "would upload "+fresh) ||
		!strings.Contains(out, "1 file to upload, 0 to resume, 1 to skip") {
		t.Errorf("upload --dry-run:\n%s", out)
	}
	if fs := lsFiles(t, sam, ds); len(fs) != 1 {
		t.Errorf("upload --dry-run uploaded: %v", fs)
	}

	out = sam.must(t, "dataset", "delete", ds, "--dry-run")
	if !strings.Contains(out, "1 file, ") || !strings.Contains(out, "Nothing was changed.") {
		t.Errorf("delete --dry-run:\n%s", out)
	}
	if fs := lsFiles(t, sam, ds); len(fs) != 1 {
		t.Errorf("after delete --dry-run the dataset lists %v", fs)
	}

	var run struct {
		Deep, Repair bool
		State        string
	}
	o, errOut, err := s.admin(t).dozo("scrub", ds, "--repair", "--dry-run", "--json")
	if err != nil {
		t.Fatalf("scrub --repair --dry-run: %v: %s", err, errOut)
	}
	if err := json.Unmarshal([]byte(o), &run); err != nil || !run.Deep || run.Repair {
		t.Errorf("scrub --repair --dry-run ran %+v (%v): want a deep scrub without repair", run, err)
	}
	if !strings.Contains(errOut, "dry run") {
		t.Errorf("scrub --dry-run did not say so: %q", errOut)
	}
}
