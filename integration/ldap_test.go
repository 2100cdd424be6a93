package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The dev stack's directory (scripts/ldap.sh) behind Vault's LDAP auth
// method (auth/ldap), with external identity groups dozo-admins and
// dozo-submitters that dozod maps to its roles.

// ldapLogin logs name in with `dozo login --method ldap`.
func (s *stack) ldapLogin(t testing.TB, name, password string) *user {
	t.Helper()
	s.needLDAP(t)
	u := &user{name: name, password: password, dir: t.TempDir(), s: s}
	u.ldapRelogin(t)
	return u
}

func (u *user) ldapRelogin(t testing.TB) {
	t.Helper()
	if _, errOut, err := u.dozoIn(strings.NewReader(u.password+"\n"), "login", "--method", "ldap", "--username", u.name, "--password-stdin"); err != nil {
		t.Fatalf("ldap login %s: %v: %s", u.name, err, errOut)
	}
}

// needLDAP ends the test if the stack has no directory: a dev stack
// started by an older scripts/dev.sh (run `make up` again).
func (s *stack) needLDAP(t testing.TB) {
	t.Helper()
	if s.env["DOZO_DEV_LDAP_URL"] == "" || s.env["DOZO_DEV_LDAP_ADMIN"] == "" {
		t.Fatal("the dev stack has no LDAP directory (no DOZO_DEV_LDAP_* in its env file); run scripts/dev.sh up")
	}
}

type whoamiJSON struct {
	Name     string   `json:"name"`
	Roles    []string `json:"roles"`
	Groups   []string `json:"groups"`
	Mount    string   `json:"mount"`
	EntityID string   `json:"entity_id"`
}

func (u *user) whoami(t testing.TB) whoamiJSON {
	t.Helper()
	var w whoamiJSON
	if err := json.Unmarshal([]byte(u.must(t, "whoami", "--json")), &w); err != nil {
		t.Fatal(err)
	}
	return w
}

// ldapModify applies an LDIF change as the directory manager.
func (s *stack) ldapModify(t testing.TB, ldif string) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(s.env["DOZO_DEV_LDAP_BIND_PASSWORD"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ldapmodify", "-x", "-H", s.env["DOZO_DEV_LDAP_URL"], "-D", s.env["DOZO_DEV_LDAP_BIND_DN"], "-y", pw)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ldapmodify: %v: %s", err, out)
	}
}

// newLDAPUser adds a person to the directory, in the given groups, and
// returns their name and password.
func (s *stack) newLDAPUser(t testing.TB, groups ...string) (name, password string) {
	t.Helper()
	s.needLDAP(t)
	name = fmt.Sprintf("ld%d", time.Now().UnixNano()%1e12)
	password = rand.Text()
	salt := []byte(rand.Text()[:8])
	h := sha1.Sum(append([]byte(password), salt...))
	base := s.env["DOZO_DEV_LDAP_BASE_DN"]
	s.ldapModify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: test\nuserPassword: {SSHA}%s\n",
		name, base, name, name, base64.StdEncoding.EncodeToString(append(h[:], salt...))))
	for _, g := range groups {
		s.setLDAPGroup(t, g, name, true)
	}
	return name, password
}

func (s *stack) setLDAPGroup(t testing.TB, group, name string, member bool) {
	t.Helper()
	base := s.env["DOZO_DEV_LDAP_BASE_DN"]
	op := "add"
	if !member {
		op = "delete"
	}
	s.ldapModify(t, fmt.Sprintf("dn: cn=%s,ou=groups,%s\nchangetype: modify\n%s: member\nmember: uid=%s,ou=people,%s\n", group, base, op, name, base))
}

// The three people of the directory log in by LDAP and do the whole
// round: the admin (by group) creates a dataset, the submitter uploads,
// the admin grants, the researcher fetches.
func TestLDAPUploadGrantFetch(t *testing.T) {
	s := needStack(t)
	env := s.env
	lena := s.ldapLogin(t, env["DOZO_DEV_LDAP_ADMIN"], env["DOZO_DEV_LDAP_ADMIN_PASSWORD"])
	sven := s.ldapLogin(t, env["DOZO_DEV_LDAP_SUBMITTER"], env["DOZO_DEV_LDAP_SUBMITTER_PASSWORD"])
	ruth := s.ldapLogin(t, env["DOZO_DEV_LDAP_RESEARCHER"], env["DOZO_DEV_LDAP_RESEARCHER_PASSWORD"])

	for _, c := range []struct {
		u             *user
		groups, roles []string
	}{
		{lena, []string{"dozo-admins"}, []string{"admin"}},
		{sven, []string{"dozo-submitters"}, []string{"submitter"}},
		{ruth, []string{}, nil},
	} {
		w := c.u.whoami(t)
		if w.Name != c.u.name || w.Mount != "ldap" || w.EntityID == "" || !slices.Equal(w.Groups, c.groups) || !slices.Equal(w.Roles, c.roles) {
			t.Errorf("whoami of %s: %+v, want mount ldap, an entity, groups %v, roles %v", c.u.name, w, c.groups, c.roles)
		}
	}
	if out := lena.must(t, "whoami"); !strings.Contains(out, "ldap (Vault auth mount)") || !strings.Contains(out, "dozo-admins") {
		t.Errorf("whoami table lacks the login mount or the group:\n%s", out)
	}

	// The submitter role from the directory group is enough to create a
	// dataset, as the config list's is.
	sven.must(t, "dataset", "create", newDatasetID(), "--title", "by a submitter from the directory")

	ds := newDatasetID()
	lena.must(t, "dataset", "create", ds, "--title", "ldap test")
	lena.must(t, "dataset", "member", "add", ds, sven.name, "--role", "submitter")
	src := filepath.Join(t.TempDir(), "sample.cram")
	want := writeRandomFile(t, src, 7, 3*mib+11, nil)
	sven.must(t, "upload", "--dataset", ds, src)

	ruth.must(t, "keygen", "--classic")
	ruth.must(t, "key", "register")
	out := filepath.Join(t.TempDir(), "fetched.cram")
	ruth.refused(t, "fetch", ds+"/sample.cram", "-o", out)
	lena.must(t, "grant", ds, ruth.name, "--until", time.Now().AddDate(0, 0, 10).Format("2006-01-02"),
		"--application", "J-DU000002", "--institution", "NIG")
	ruth.must(t, "fetch", ds+"/sample.cram", "-o", out)
	if got := fileSHA(t, out); got != want {
		t.Fatalf("fetched sha %s, want %s", got, want)
	}
}

// Leaving dozo-admins in the directory ends the admin role at the next
// login: Vault copies the directory's groups into the external group at
// login (and token renewal), and dozod reads the entity's groups.
func TestLDAPGroupRemovalEndsAdmin(t *testing.T) {
	s := needStack(t)
	name, pw := s.newLDAPUser(t, "dozo-admins")
	u := s.ldapLogin(t, name, pw)
	if w := u.whoami(t); !slices.Equal(w.Roles, []string{"admin"}) || !slices.Equal(w.Groups, []string{"dozo-admins"}) {
		t.Fatalf("directory admin: whoami %+v, want the admin role from dozo-admins", w)
	}
	u.must(t, "admin", "frozen")

	s.setLDAPGroup(t, "dozo-admins", name, false)
	u.ldapRelogin(t)
	if w := u.whoami(t); len(w.Roles) != 0 || len(w.Groups) != 0 {
		t.Fatalf("after leaving dozo-admins and logging in again: whoami %+v, want no group and no role", w)
	}
	if line := u.refused(t, "admin", "frozen"); !strings.Contains(line, "admin") {
		t.Errorf("admin command after leaving the group: %s", line)
	}

	// Back in the group: a renewal of the same token brings the role back
	// (Vault refreshes external groups at renewal), within dozod's bound
	// on entity state.
	s.setLDAPGroup(t, "dozo-admins", name, true)
	tok, err := os.ReadFile(filepath.Join(u.dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	vc, err := s.vault(t).WithToken(strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vc.API().Auth().Token().RenewSelf(0); err != nil {
		t.Fatalf("renewing the token: %v", err)
	}
	if !eventually(3*time.Second+2*5*time.Second, func() bool { return slices.Equal(u.whoami(t).Roles, []string{"admin"}) }) {
		t.Fatalf("after rejoining dozo-admins and renewing the token: whoami %+v, want admin", u.whoami(t))
	}

	// Removed from the directory: no login at all.
	s.ldapModify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: delete\n", name, s.env["DOZO_DEV_LDAP_BASE_DN"]))
	if _, errOut, err := u.dozoIn(strings.NewReader(pw+"\n"), "login", "--method", "ldap", "-u", name, "--password-stdin"); err == nil ||
		!strings.Contains(errOut, "Vault refused the credentials") {
		t.Fatalf("login of a user removed from the directory: %v %s", err, errOut)
	}
}

// eventually polls cond until it holds or d has passed.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(250 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// A disabled Vault entity is refused at its next request, with a message
// that says so, and cannot log in; enabled again, it works again.
func TestDisabledEntityRefused(t *testing.T) {
	s := needStack(t)
	env := s.env
	lena := s.ldapLogin(t, env["DOZO_DEV_LDAP_ADMIN"], env["DOZO_DEV_LDAP_ADMIN_PASSWORD"])
	name, pw := s.newLDAPUser(t)
	u := s.ldapLogin(t, name, pw)
	u.must(t, "keygen", "--classic")
	u.must(t, "key", "register")
	ds := newDatasetID()
	lena.must(t, "dataset", "create", ds, "--title", "disable test")
	src := filepath.Join(t.TempDir(), "a.bin")
	want := writeRandomFile(t, src, 3, mib, nil)
	lena.must(t, "upload", "--dataset", ds, src)
	lena.must(t, "grant", ds, name, "--until", time.Now().AddDate(0, 0, 10).Format("2006-01-02"),
		"--application", "J-DU000003", "--institution", "NIG")
	out := filepath.Join(t.TempDir(), "a.out")
	u.must(t, "fetch", ds+"/a.bin", "-o", out)
	if fileSHA(t, out) != want {
		t.Fatal("fetch differs")
	}

	eid := u.whoami(t).EntityID
	root := s.vault(t).API().Logical()
	if _, err := root.Write("identity/entity/id/"+eid, map[string]any{"disabled": true}); err != nil {
		t.Fatal(err)
	}
	enabled := false
	defer func() {
		if !enabled {
			root.Write("identity/entity/id/"+eid, map[string]any{"disabled": false})
		}
	}()
	const msg = "your identity is disabled in Vault; ask the centre's administrators"
	// Vault refuses the token at once; dozod within its bound on entity
	// state (EntityMaxAge, 5 s).
	var line, last string
	n := 0
	if !eventually(2*5*time.Second, func() bool {
		n++
		last = fmt.Sprintf("%s.%d", out, n)
		_, errOut, err := u.dozo("fetch", ds+"/a.bin", "-o", last)
		line = strings.TrimSpace(errOut)
		return err != nil
	}) {
		t.Fatal("the fetch of a disabled entity still works")
	}
	if !strings.Contains(line, msg) {
		t.Fatalf("refusal of a disabled entity: %q, want %q", line, msg)
	}
	if _, err := os.Stat(last); !os.IsNotExist(err) {
		t.Error("a refused fetch left a file")
	}
	if _, errOut, err := u.dozoIn(strings.NewReader(pw+"\n"), "login", "--method", "ldap", "-u", name, "--password-stdin"); err == nil {
		t.Fatalf("a disabled entity logged in: %s", errOut)
	}

	if _, err := root.Write("identity/entity/id/"+eid, map[string]any{"disabled": false}); err != nil {
		t.Fatal(err)
	}
	enabled = true
	u.ldapRelogin(t)
	u.must(t, "fetch", ds+"/a.bin", "-o", out+"3")
}

// A person who logs in by userpass and by LDAP is one dozo user when a
// Vault administrator links both aliases to one entity: both logins show
// the same entity, both see the person's grants, and disabling the entity
// stops both.
func TestTwoLoginMethodsOneEntity(t *testing.T) {
	s := needStack(t)
	name, pw := s.newLDAPUser(t)
	viaLDAP := s.ldapLogin(t, name, pw)
	eid := viaLDAP.whoami(t).EntityID

	root := s.vault(t).API()
	auths, err := root.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	upw := "up-" + rand.Text()
	if _, err := root.Logical().Write("auth/userpass/users/"+name, map[string]any{"password": upw, "token_policies": "default", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("identity/entity-alias", map[string]any{
		"name": name, "mount_accessor": auths["userpass/"].Accessor, "canonical_id": eid}); err != nil {
		t.Fatal(err)
	}
	viaUserpass := s.login(t, name, upw)
	w := viaUserpass.whoami(t)
	if w.Name != name || w.Mount != "userpass" || w.EntityID != eid {
		t.Fatalf("userpass login of a linked person: %+v, want %s on userpass with entity %s", w, name, eid)
	}

	lena := s.ldapLogin(t, s.env["DOZO_DEV_LDAP_ADMIN"], s.env["DOZO_DEV_LDAP_ADMIN_PASSWORD"])
	ds := newDatasetID()
	lena.must(t, "dataset", "create", ds, "--title", "two logins")
	src := filepath.Join(t.TempDir(), "b.bin")
	want := writeRandomFile(t, src, 5, mib/2, nil)
	lena.must(t, "upload", "--dataset", ds, src)
	lena.must(t, "grant", ds, name, "--until", time.Now().AddDate(0, 0, 10).Format("2006-01-02"),
		"--application", "J-DU000004", "--institution", "NIG")
	viaLDAP.must(t, "keygen", "--classic")
	viaLDAP.must(t, "key", "register")
	// The same key, by the other login: one person, one registered key.
	if err := os.WriteFile(filepath.Join(viaUserpass.dir, "identity.age"), mustRead(t, filepath.Join(viaLDAP.dir, "identity.age")), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*user{viaLDAP, viaUserpass} {
		out := filepath.Join(t.TempDir(), "b.out")
		u.must(t, "fetch", ds+"/b.bin", "-o", out)
		if fileSHA(t, out) != want {
			t.Fatal("fetch differs")
		}
	}

	if _, err := root.Logical().Write("identity/entity/id/"+eid, map[string]any{"disabled": true}); err != nil {
		t.Fatal(err)
	}
	defer root.Logical().Write("identity/entity/id/"+eid, map[string]any{"disabled": false})
	for i, u := range []*user{viaLDAP, viaUserpass} {
		if !eventually(2*5*time.Second, func() bool { _, _, err := u.dozo("whoami"); return err != nil }) {
			t.Errorf("login %d of 2: the entity is disabled, but the login still works", i+1)
		}
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Vault's login MFA: a TOTP factor enforced on a directory user's entity.
// `dozo login` completes the login with --mfa-code; a wrong code is
// refused and stores no token.
func TestLDAPLoginMFA(t *testing.T) {
	s := needStack(t)
	name, pw := s.newLDAPUser(t)
	u := s.ldapLogin(t, name, pw) // makes the entity
	eid := u.whoami(t).EntityID
	root := s.vault(t).API().Logical()

	m, err := root.Write("identity/mfa/method/totp", map[string]any{"issuer": "dozo-test", "period": 30, "digits": 6, "algorithm": "SHA1"})
	if err != nil {
		t.Fatal(err)
	}
	methodID, _ := m.Data["method_id"].(string)
	defer root.Delete("identity/mfa/method/totp/" + methodID)
	g, err := root.Write("identity/mfa/method/totp/admin-generate", map[string]any{"method_id": methodID, "entity_id": eid})
	if err != nil {
		t.Fatal(err)
	}
	otpURL, _ := g.Data["url"].(string)
	secret := otpSecret(t, otpURL)
	enf := "dozo-test-" + name
	if _, err := root.Write("identity/mfa/login-enforcement/"+enf, map[string]any{
		"mfa_method_ids": []string{methodID}, "identity_entity_ids": []string{eid}}); err != nil {
		t.Fatal(err)
	}
	defer root.Delete("identity/mfa/login-enforcement/" + enf)

	u.must(t, "logout")
	login := func(code string) (string, error) {
		_, errOut, err := u.dozoIn(strings.NewReader(pw+"\n"), "login", "--method", "ldap", "-u", name, "--password-stdin", "--mfa-code", code)
		return errOut, err
	}
	// A code that is not the current one (the current one plus one, mod 10^6).
	cur := totp(secret, time.Now())
	wrong := fmt.Sprintf("%06d", (atoi(cur)+1)%1000000)
	if errOut, err := login(wrong); err == nil || !strings.Contains(errOut, "one-time code") {
		t.Fatalf("login with a wrong code: %v %s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(u.dir, "token")); !os.IsNotExist(err) {
		t.Fatal("a refused MFA login stored a token")
	}
	if errOut, err := login(totp(secret, time.Now())); err != nil {
		t.Fatalf("login with the current code: %v %s", err, errOut)
	}
	if w := u.whoami(t); w.EntityID != eid {
		t.Fatalf("after an MFA login: %+v", w)
	}
	// Without a code and without a terminal: refused with a hint.
	u.must(t, "logout")
	if _, errOut, err := u.dozoIn(strings.NewReader(pw+"\n"), "login", "--method", "ldap", "-u", name, "--password-stdin"); err == nil ||
		!strings.Contains(errOut, "--mfa-code") {
		t.Fatalf("login needing a code, without one: %v %s", err, errOut)
	}
}

// A group dozod's token may not read stops dozod at start, naming the
// policy line it lacks, rather than failing every request.
func TestGroupRolesNeedPolicy(t *testing.T) {
	s := needStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "dozod"), "serve", "--config", filepath.Join(s.devDir, "dozod.toml"))
	cmd.Env = append(os.Environ(), "DOZOD_AUTH_ADMIN_GROUPS=dozo-not-in-policy")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatal("dozod started with a group its token may not read")
	}
	if err == nil || !strings.Contains(string(out), "may not read identity/group/name/dozo-not-in-policy") {
		t.Fatalf("dozod with an unreadable group: %v: %s", err, out)
	}
}
