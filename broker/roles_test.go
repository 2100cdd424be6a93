package broker

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestGroupRolesConfig(t *testing.T) {
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "s.dozod\n", 0o600)
	sk := writeFile(t, dir, "sk", "secret\n", 0o600)
	conf := func(auth string) string {
		return writeFile(t, dir, "dozod.toml", `
listen = "127.0.0.1:9443"
tls_cert = "c.pem"
tls_key = "k.pem"
[auth]
mounts = ["userpass", "ldap"]
`+auth+`
[vault]
address = "http://127.0.0.1:8200"
token_file = "`+tok+`"
[[targets]]
id = "s1-a"
domain = "s1"
endpoint = "http://127.0.0.1:9000"
bucket = "dozo-a"
access_key = "ak"
secret_key_file = "`+sk+`"
`, 0o600)
	}
	c, err := LoadConfig(conf(`admin_groups = ["dozo-admins"]`), func(k string) string {
		return map[string]string{"DOZOD_AUTH_SUBMITTER_GROUPS": "dozo-submitters, lab.uploaders"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Auth.AdminGroups, []string{"dozo-admins"}) || !slices.Equal(c.Auth.SubmitterGroups, []string{"dozo-submitters", "lab.uploaders"}) {
		t.Fatalf("groups %+v", c.Auth.GroupRoles)
	}
	if got := (GroupRoles{AdminGroups: []string{"a", "b"}, SubmitterGroups: []string{"b", "c"}}).Names(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("Names() = %v", got)
	}
	for _, bad := range []string{`admin_groups = ["../sys"]`, `submitter_groups = ["a b"]`, `admin_groups = [""]`} {
		if _, err := LoadConfig(conf(bad), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "invalid group name") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestRolesFromGroupsAndLists(t *testing.T) {
	s := &Server{adminGroups: set([]string{"dozo-admins"}), submitGroups: set([]string{"dozo-submitters"})}
	s.SetRoles([]string{"admin"}, []string{"sam"})
	for _, c := range []struct {
		id   Identity
		want []string
	}{
		{Identity{Name: "admin"}, []string{"admin"}},
		{Identity{Name: "sam"}, []string{"submitter"}},
		{Identity{Name: "lena", Groups: []string{"dozo-admins"}}, []string{"admin"}},
		{Identity{Name: "sven", Groups: []string{"dozo-submitters"}}, []string{"submitter"}},
		{Identity{Name: "sam", Groups: []string{"dozo-admins"}}, []string{"admin", "submitter"}},
		{Identity{Name: "ruth", Groups: []string{"other"}}, nil},
		{Identity{Name: "ruth"}, nil},
	} {
		if got := s.roles(&c.id); !slices.Equal(got, c.want) {
			t.Errorf("%+v: roles %v, want %v", c.id, got, c.want)
		}
		if s.isAdmin(&c.id) != slices.Contains(c.want, "admin") || s.isSubmitter(&c.id) != slices.Contains(c.want, "submitter") {
			t.Errorf("%+v: isAdmin/isSubmitter disagree with roles %v", c.id, c.want)
		}
	}
}

func TestEntityDisabledIsBadToken(t *testing.T) {
	if !errors.Is(ErrEntityDisabled, ErrBadToken) || errors.Is(ErrBadToken, ErrEntityDisabled) {
		t.Fatal("ErrEntityDisabled must be a kind of ErrBadToken, not the other way round")
	}
	if !strings.Contains(ErrEntityDisabled.Error(), "disabled in Vault") {
		t.Fatal(ErrEntityDisabled)
	}
}
