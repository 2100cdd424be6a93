package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/dozo-vault/dozo/vault"
)

// A user is a login on a configured auth mount, named by the login path;
// metadata and display names prove nothing.
func TestUserName(t *testing.T) {
	up := []string{"userpass"}
	two := []string{"userpass", "corp/ldap"}
	cases := []struct {
		ti     vault.TokenInfo
		mounts []string
		want   string // "" = refused
	}{
		{vault.TokenInfo{Path: "auth/userpass/login/alice", Username: "alice", DisplayName: "userpass-alice"}, up, "alice"},
		{vault.TokenInfo{Path: "auth/userpass/login/bob"}, up, "bob"},
		{vault.TokenInfo{Path: "auth/corp/ldap/login/carol"}, two, "carol"},
		{vault.TokenInfo{Path: "auth/userpass/login/alice"}, two, "alice"},
		// The login path decides, not the metadata.
		{vault.TokenInfo{Path: "auth/userpass/login/alice", Username: "admin"}, up, "alice"},
		// Tokens minted through the token store, whatever they claim.
		{vault.TokenInfo{Path: "auth/token/create", Username: "admin", DisplayName: "token-userpass-admin"}, up, ""},
		{vault.TokenInfo{Path: "auth/token/create/some-role", Username: "admin"}, up, ""},
		{vault.TokenInfo{Path: "auth/token/create-orphan", Username: "admin"}, up, ""},
		{vault.TokenInfo{Path: "auth/token/root", DisplayName: "root"}, up, ""},
		{vault.TokenInfo{DisplayName: "userpass-bob", Username: "bob"}, up, ""},
		// Logins on mounts not configured, or not logins.
		{vault.TokenInfo{Path: "auth/ldap/login/alice"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass2/login/alice"}, up, ""},
		{vault.TokenInfo{Path: "auth/corp/ldap/login/carol"}, up, ""},
		{vault.TokenInfo{Path: "auth/ldap/login/carol"}, two, ""},
		{vault.TokenInfo{Path: "auth/x/userpass/login/alice"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/users/alice"}, up, ""},
		{vault.TokenInfo{Path: "userpass/login/alice"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/login"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/login/"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/login/alice/"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/login/../admin"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass//login/alice"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/login/alice"}, nil, ""},
		// Names dozo cannot hold as they stand.
		{vault.TokenInfo{Path: "auth/userpass/login/Alice"}, up, ""},
		{vault.TokenInfo{Path: "auth/userpass/login/bad name"}, up, ""},
		// Another Vault namespace's userpass is not this one.
		{vault.TokenInfo{Path: "auth/userpass/login/alice", Namespace: "team/"}, up, ""},
	}
	for _, c := range cases {
		got, err := UserName(&c.ti, c.mounts)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("%+v on %v: %q %v, want %q", c.ti, c.mounts, got, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrBadToken) {
			t.Errorf("%+v: %v is not ErrBadToken (a 401)", c.ti, err)
		}
	}
	_, err := UserName(&vault.TokenInfo{Path: "auth/token/create", Username: "admin"}, up)
	if err == nil || !strings.Contains(err.Error(), "not issued by a login on a configured auth method") {
		t.Errorf("unclear refusal: %v", err)
	}
}

func TestAuthConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	var c AuthConfig
	c.applyEnv(env(nil))
	c.defaults()
	if err := c.validate(); err != nil || strings.Join(c.Mounts, ",") != "userpass" {
		t.Fatalf("default: %v %v", c.Mounts, err)
	}
	c = AuthConfig{Mounts: []string{"from-file"}}
	c.applyEnv(env(map[string]string{"DOZOD_AUTH_MOUNTS": " userpass/ , corp/ldap "}))
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
