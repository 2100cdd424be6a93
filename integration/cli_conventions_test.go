package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
