package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnknownUserRefused: through the CLI, a grant, a dataset role or a
// freeze for a name nobody has logged in as is refused with the closest
// known names and changes nothing; with --allow-unknown it is made, shown
// pending in the register until that user logs in.
func TestUnknownUserRefused(t *testing.T) {
	s := needStack(t)
	env := s.env
	sam := s.login(t, env["DOZO_DEV_SUBMITTER"], env["DOZO_DEV_SUBMITTER_PASSWORD"])
	rita := s.login(t, env["DOZO_DEV_RESEARCHER"], env["DOZO_DEV_RESEARCHER_PASSWORD"])
	admin := s.login(t, env["DOZO_DEV_ADMIN"], env["DOZO_DEV_ADMIN_PASSWORD"])
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "principals")
	until := time.Now().AddDate(0, 0, 10).Format("2006-01-02")
	appl := []string{"--until", until, "--application", "J-DU000005", "--institution", "NIG"}

	typo := rita.name + "a"
	line := sam.refused(t, append([]string{"grant", ds, typo}, appl...)...)
	if want := fmt.Sprintf("no user `%s`; did you mean `%s`", typo, rita.name); !strings.Contains(line, want) {
		t.Fatalf("grant to a typo: %q, want %q", line, want)
	}
	if !strings.Contains(line, "--allow-unknown") {
		t.Fatalf("refusal without the way out: %q", line)
	}
	line = sam.refused(t, "dataset", "member", "add", ds, typo, "--role", "submitter")
	if !strings.Contains(line, "did you mean `"+rita.name+"`") {
		t.Fatalf("member add of a typo: %q", line)
	}
	line = admin.refused(t, "admin", "freeze", "--user", "nosuchuser", "--reason", "incident 14")
	if !strings.Contains(line, "no user `nosuchuser`") {
		t.Fatalf("freeze of an unknown user: %q", line)
	}
	if gs := grantsJSON(t, sam, ds, "--history"); len(gs) != 0 {
		t.Fatalf("a refused grant is in the register: %+v", gs)
	}
	if out := admin.must(t, "admin", "frozen", "--json"); strings.Contains(out, "nosuchuser") {
		t.Fatalf("a refused freeze is in force: %s", out)
	}

	// Someone who has not logged in yet: --allow-unknown, pending until
	// their first login.
	name := fmt.Sprintf("it%d", time.Now().UnixNano()%1e12)
	pw := "pw-" + name + "-long-enough"
	if _, err := s.vault(t).API().Logical().Write("auth/userpass/users/"+name,
		map[string]any{"password": pw, "token_policies": "default", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	if out := sam.must(t, append([]string{"grant", ds, name, "--allow-unknown"}, appl...)...); !strings.Contains(out, "Pending first login") {
		t.Fatalf("grant with --allow-unknown: %s", out)
	}
	if gs := grantsJSON(t, sam, ds); len(gs) != 1 || !gs[0].Pending || gs[0].User != name {
		t.Fatalf("register after a grant to someone not seen: %+v", gs)
	}
	if out := sam.must(t, "grants", ds); !strings.Contains(out, "pending first login") {
		t.Fatalf("grants table without the pending mark:\n%s", out)
	}
	if csv := sam.must(t, "grants", ds, "--csv"); !strings.Contains(csv, ",true,") {
		t.Fatalf("grants CSV without the pending mark:\n%s", csv)
	}
	newcomer := s.login(t, name, pw)
	if gs := grantsJSON(t, sam, ds); len(gs) != 1 || gs[0].Pending {
		t.Fatalf("register after the user's first login: %+v", gs)
	}
	newcomer.must(t, "ls", ds)
}

// A person whose LDAP uid and userpass name differ, with both aliases
// linked to one Vault entity by the operator, is one dozo user: a grant
// to the userpass name works through the LDAP login.
func TestGrantFollowsLinkedLogins(t *testing.T) {
	s := needStack(t)
	ldapName, pw := s.newLDAPUser(t)
	viaLDAP := s.ldapLogin(t, ldapName, pw)
	eid := viaLDAP.whoami(t).EntityID

	root := s.vault(t).API()
	auths, err := root.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	upName := "up" + ldapName
	upw := "up-" + pw
	if _, err := root.Logical().Write("auth/userpass/users/"+upName, map[string]any{"password": upw, "token_policies": "default", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("identity/entity-alias", map[string]any{
		"name": upName, "mount_accessor": auths["userpass/"].Accessor, "canonical_id": eid}); err != nil {
		t.Fatal(err)
	}
	viaUserpass := s.login(t, upName, upw)
	if w := viaUserpass.whoami(t); w.Name != upName || w.EntityID != eid {
		t.Fatalf("userpass login of the linked person: %+v, want %s with entity %s", w, upName, eid)
	}

	lena := s.ldapLogin(t, s.env["DOZO_DEV_LDAP_ADMIN"], s.env["DOZO_DEV_LDAP_ADMIN_PASSWORD"])
	ds := newDatasetID()
	lena.must(t, "dataset", "create", ds, "--title", "linked logins")
	src := filepath.Join(t.TempDir(), "c.bin")
	want := writeRandomFile(t, src, 7, mib/2, nil)
	lena.must(t, "upload", "--dataset", ds, src)
	viaLDAP.refused(t, "ls", ds)
	lena.must(t, "grant", ds, upName, "--until", time.Now().AddDate(0, 0, 10).Format("2006-01-02"),
		"--application", "J-DU000006", "--institution", "NIG")

	viaLDAP.must(t, "keygen", "--classic")
	viaLDAP.must(t, "key", "register")
	out := filepath.Join(t.TempDir(), "c.out")
	viaLDAP.must(t, "fetch", ds+"/c.bin", "-o", out)
	if fileSHA(t, out) != want {
		t.Fatal("fetch through the LDAP login differs")
	}
	// The register keeps the name granted to; it may add the LDAP name
	// (dozod records a login name at most every few minutes, so which of
	// the two is "last" is coarse).
	gs := grantsJSON(t, lena, ds)
	if len(gs) != 1 || gs[0].User != upName || gs[0].Pending || (gs[0].LoginName != "" && gs[0].LoginName != ldapName) {
		t.Fatalf("register of a grant used through the other login: %+v", gs)
	}
}
