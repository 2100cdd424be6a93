package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/internal/envconfig"
	"github.com/dozo-vault/dozo/vault"
)

// A user is a login on a configured auth mount; metadata and display
// names prove nothing.
func TestLoginMount(t *testing.T) {
	up := []string{"userpass"}
	two := []string{"userpass", "corp/ldap"}
	const e = "e1b2c3d4-0000-4000-8000-000000000001"
	cases := []struct {
		ti     vault.TokenInfo
		mounts []string
		want   string // "" = refused
	}{
		{vault.TokenInfo{Path: "auth/userpass/login/alice", EntityID: e, Username: "alice", DisplayName: "userpass-alice"}, up, "userpass"},
		{vault.TokenInfo{Path: "auth/userpass/login/Alice", EntityID: e}, up, "userpass"},
		{vault.TokenInfo{Path: "auth/corp/ldap/login/carol", EntityID: e}, two, "corp/ldap"},
		{vault.TokenInfo{Path: "auth/userpass/login/alice", EntityID: e}, two, "userpass"},
		{vault.TokenInfo{Path: "auth/oidc/oidc/callback", EntityID: e}, []string{"oidc"}, "oidc"},
		{vault.TokenInfo{Path: "auth/corp/ldap/login/carol", EntityID: e}, []string{"corp", "corp/ldap"}, "corp/ldap"},
		// Tokens minted through the token store, whatever they claim.
		{vault.TokenInfo{Path: "auth/token/create", EntityID: e, Username: "admin", DisplayName: "token-userpass-admin"}, up, ""},
		{vault.TokenInfo{Path: "auth/token/create/some-role", EntityID: e, Username: "admin"}, up, ""},
		{vault.TokenInfo{Path: "auth/token/create-orphan", Username: "admin"}, up, ""},
		{vault.TokenInfo{Path: "auth/token/root", DisplayName: "root"}, up, ""},
		{vault.TokenInfo{Path: "auth/token/create", EntityID: e}, []string{"token"}, ""},
		{vault.TokenInfo{DisplayName: "userpass-bob", EntityID: e, Username: "bob"}, up, ""},
		// Logins on mounts not configured.
		{vault.TokenInfo{Path: "auth/ldap/login/alice", EntityID: e}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass2/login/alice", EntityID: e}, up, ""},
		{vault.TokenInfo{Path: "auth/corp/ldap/login/carol", EntityID: e}, up, ""},
		{vault.TokenInfo{Path: "auth/ldap/login/carol", EntityID: e}, two, ""},
		{vault.TokenInfo{Path: "auth/x/userpass/login/alice", EntityID: e}, up, ""},
		{vault.TokenInfo{Path: "userpass/login/alice", EntityID: e}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass", EntityID: e}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/", EntityID: e}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/login/alice", EntityID: e}, nil, ""},
		// No entity, or another Vault namespace's userpass.
		{vault.TokenInfo{Path: "auth/userpass/login/alice"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/login/alice", EntityID: e, Namespace: "team/"}, up, ""},
	}
	for _, c := range cases {
		got, err := LoginMount(&c.ti, c.mounts)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("%+v on %v: %q %v, want %q", c.ti, c.mounts, got, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrBadToken) {
			t.Errorf("%+v: %v is not ErrBadToken (a 401)", c.ti, err)
		}
	}
	_, err := LoginMount(&vault.TokenInfo{Path: "auth/token/create", EntityID: e, Username: "admin"}, up)
	if err == nil || !strings.Contains(err.Error(), "not issued by a login on a configured auth method") {
		t.Errorf("unclear refusal: %v", err)
	}
}

// The user name is the entity's alias on the login's mount, nothing else.
func TestAliasName(t *testing.T) {
	alias := func(mount, name string) vault.EntityAlias {
		return vault.EntityAlias{Name: name, MountPath: "auth/" + mount + "/", MountAccessor: "auth_x_1"}
	}
	cases := []struct {
		aliases []vault.EntityAlias
		mount   string
		want    string // "" = refused
	}{
		{[]vault.EntityAlias{alias("userpass", "alice")}, "userpass", "alice"},
		{[]vault.EntityAlias{alias("ldap", "admin"), alias("userpass", "alice")}, "userpass", "alice"},
		{[]vault.EntityAlias{alias("corp/ldap", "carol")}, "corp/ldap", "carol"},
		{[]vault.EntityAlias{alias("ldap", "alice")}, "userpass", ""},
		{[]vault.EntityAlias{alias("userpass2", "alice")}, "userpass", ""},
		{nil, "userpass", ""},
		{[]vault.EntityAlias{alias("userpass", "alice"), alias("userpass", "admin")}, "userpass", ""},
		{[]vault.EntityAlias{alias("userpass", "Alice")}, "userpass", ""},
		{[]vault.EntityAlias{alias("oidc", "alice@example.org")}, "oidc", ""},
		{[]vault.EntityAlias{alias("userpass", "")}, "userpass", ""},
		{[]vault.EntityAlias{{Name: "alice", MountPath: "", MountAccessor: "auth_userpass_1"}}, "userpass", ""},
	}
	for _, c := range cases {
		got, err := AliasName(c.aliases, c.mount)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("%+v on %s: %q %v, want %q", c.aliases, c.mount, got, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrBadToken) {
			t.Errorf("%+v: %v is not ErrBadToken (a 401)", c.aliases, err)
		}
	}
}

func TestAuthConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	var c AuthConfig
	envconfig.Apply(&c, env(nil))
	c.defaults()
	if err := c.validate(); err != nil || strings.Join(c.Mounts, ",") != "userpass" {
		t.Fatalf("default: %v %v", c.Mounts, err)
	}
	c = AuthConfig{Mounts: []string{"from-file"}}
	envconfig.Apply(&c, env(map[string]string{"DOZOD_AUTH_MOUNTS": " userpass/ , corp/ldap "}))
	c.defaults()
	if err := c.validate(); err != nil || strings.Join(c.Mounts, ",") != "userpass,corp/ldap" {
		t.Fatalf("env override: %v %v", c.Mounts, err)
	}
	for _, bad := range [][]string{{"token"}, {"token/x"}, {"a b"}, {"../sys"}, {"a//b"}, {"userpass", "userpass/"}} {
		c := AuthConfig{Mounts: bad}
		c.defaults()
		if err := c.validate(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
