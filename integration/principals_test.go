package integration

import (
	"fmt"
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
	if csv := sam.must(t, "grants", ds, "--csv"); !strings.Contains(csv, ",true\n") {
		t.Fatalf("grants CSV without the pending mark:\n%s", csv)
	}
	newcomer := s.login(t, name, pw)
	if gs := grantsJSON(t, sam, ds); len(gs) != 1 || gs[0].Pending {
		t.Fatalf("register after the user's first login: %+v", gs)
	}
	newcomer.must(t, "ls", ds)
}
