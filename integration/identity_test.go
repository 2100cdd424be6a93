package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/vault"
)

// authRoutes lists every route dozod serves behind a token ("METHOD
// /path"), from the API's route table, so that a new route is covered
// without editing this test; path wildcards are filled with dummy values.
func authRoutes(t *testing.T) []string {
	t.Helper()
	var routes []string
	for _, r := range api.Routes {
		if !r.Login {
			continue
		}
		var ps []string
		for _, name := range r.Params() {
			if name == "n" {
				ps = append(ps, "0")
			} else {
				ps = append(ps, "x1")
			}
		}
		routes = append(routes, r.Method()+" "+r.Path(ps...))
	}
	all := strings.Join(routes, "\n")
	if len(routes) < 20 || !strings.Contains(all, "GET /v1/whoami") || !strings.Contains(all, "GET /v1/admin/freezes") {
		t.Fatalf("route list from the route table looks wrong: %v", routes)
	}
	return routes
}

// brokerCall sends one request to dozod with token and returns the status
// and body.
func (s *stack) brokerCall(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == "POST" || method == "PUT" {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, s.env["DOZO_BROKER"]+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.brokerHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// refusedEverywhere checks that token gets 401 on every authenticated
// route, saying it does not come from a login.
func (s *stack) refusedEverywhere(t *testing.T, what, token string) {
	t.Helper()
	for _, r := range authRoutes(t) {
		method, path, _ := strings.Cut(r, " ")
		code, body := s.brokerCall(t, method, path, token)
		if code != http.StatusUnauthorized || !strings.Contains(body, "not issued by a login on a configured auth method") {
			if len(body) > 200 {
				body = body[:200] + "..."
			}
			t.Errorf("%s: %s: %d %s, want 401 (not a login token)", what, r, code, strings.TrimSpace(body))
		}
	}
}

func (s *stack) whoami(t *testing.T, token string) (int, string) {
	t.Helper()
	code, body := s.brokerCall(t, "GET", "/v1/whoami", token)
	if code != http.StatusOK {
		return code, body
	}
	var u struct{ Name string }
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		t.Fatalf("whoami: %v: %s", err, body)
	}
	return code, u.Name
}

func createToken(t *testing.T, vc *vault.Client, data map[string]any) string {
	t.Helper()
	sec, err := vc.API().Logical().Write("auth/token/create", data)
	if err != nil {
		t.Fatal(err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		t.Fatal("auth/token/create: no token")
	}
	return sec.Auth.ClientToken
}

// A dozo user is a login on a configured auth mount (userpass in the dev
// stack), named by its identity entity alias there, never what a token's
// metadata claims: a token minted with meta username=admin, a child token
// of a real login, and a login on another auth mount with the same user
// name are refused on every route.
func TestIdentityOnlyFromLogin(t *testing.T) {
	s := needStack(t)
	root := s.vault(t)
	admin := s.env["DOZO_DEV_ADMIN"]

	// A real login works, admin routes included.
	adminTok := s.adminToken(t)
	if code, name := s.whoami(t, adminTok); code != 200 || name != admin {
		t.Fatalf("real admin login: whoami %d %s", code, name)
	}
	if code, body := s.brokerCall(t, "GET", "/v1/admin/freezes", adminTok); code != 200 {
		t.Fatalf("real admin login: admin route %d %s", code, body)
	}

	// Forged metadata, minted by root.
	forged := createToken(t, root, map[string]any{"policies": []string{"default"}, "ttl": "10m",
		"display_name": "userpass-" + admin, "meta": map[string]string{"username": admin}})
	s.refusedEverywhere(t, "root-minted meta username="+admin, forged)

	// Forged metadata, minted by an ordinary user whose policy allows
	// auth/token/create: a child token of a real login.
	if err := root.API().Sys().PutPolicy("it-token-maker", `path "auth/token/create" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	minter := fmt.Sprintf("it-minter-%d", time.Now().UnixNano()%1e9)
	pw := "pw-" + minter + "-long-enough"
	if _, err := root.API().Logical().Write("auth/userpass/users/"+minter,
		map[string]any{"password": pw, "token_policies": "default,it-token-maker", "token_ttl": "10m"}); err != nil {
		t.Fatal(err)
	}
	minterTok := s.vaultLogin(t, minter, pw)
	if code, name := s.whoami(t, minterTok); code != 200 || name != minter {
		t.Fatalf("real login of %s: whoami %d %s", minter, code, name)
	}
	mc, err := root.WithToken(minterTok)
	if err != nil {
		t.Fatal(err)
	}
	childForged := createToken(t, mc, map[string]any{"policies": []string{"default"}, "ttl": "5m",
		"meta": map[string]string{"username": admin}})
	s.refusedEverywhere(t, "user-minted meta username="+admin, childForged)

	// A plain child token of a real login is refused too (documented:
	// only the login's own token identifies a user).
	child := createToken(t, mc, map[string]any{"policies": []string{"default"}, "ttl": "5m"})
	if code, body := s.brokerCall(t, "GET", "/v1/whoami", child); code != 401 || !strings.Contains(body, "not issued by a login") {
		t.Errorf("child token of a real login: whoami %d %s, want 401", code, body)
	}
	// The parent keeps working.
	if code, name := s.whoami(t, minterTok); code != 200 || name != minter {
		t.Errorf("after minting: whoami %d %s", code, name)
	}

	// Logout revokes the login at Vault (through vault.New, like every
	// Vault client), and its children with it.
	if err := client.RevokeToken(testContext(t), s.vaultAddr, "", minterTok); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	for what, tok := range map[string]string{"login": minterTok, "child": child} {
		tc, _ := root.WithToken(tok)
		if _, err := tc.LookupSelf(testContext(t)); !errors.Is(err, vault.ErrPermissionDenied) {
			t.Errorf("revoked %s token: lookup-self %v, want permission denied", what, err)
		}
	}

	// The name is the login's entity alias on the mount, as the auth
	// method set it (userpass lower-cases the name typed at login).
	mixed := fmt.Sprintf("It-Case-%d", time.Now().UnixNano()%1e9)
	if _, err := root.API().Logical().Write("auth/userpass/users/"+strings.ToLower(mixed),
		map[string]any{"password": pw, "token_policies": "default", "token_ttl": "10m"}); err != nil {
		t.Fatal(err)
	}
	sec, err := root.API().Logical().Write("auth/userpass/login/"+mixed, map[string]any{"password": pw})
	if err != nil || sec == nil || sec.Auth == nil {
		t.Fatalf("login as %s: %v", mixed, err)
	}
	if code, name := s.whoami(t, sec.Auth.ClientToken); code != 200 || name != strings.ToLower(mixed) {
		t.Errorf("login as %s: whoami %d %s, want %s", mixed, code, name, strings.ToLower(mixed))
	}

	// The same user name on another auth mount is somebody else.
	mount := fmt.Sprintf("it-up-%d", time.Now().UnixNano()%1e9)
	if err := root.API().Sys().EnableAuthWithOptions(mount, &vaultapi.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.API().Sys().DisableAuth(mount) })
	if _, err := root.API().Logical().Write("auth/"+mount+"/users/"+admin,
		map[string]any{"password": "other-admin-password", "token_policies": "default", "token_ttl": "10m"}); err != nil {
		t.Fatal(err)
	}
	other, err := root.UserpassLogin(testContext(t), mount, admin, "other-admin-password")
	if err != nil {
		t.Fatal(err)
	}
	s.refusedEverywhere(t, "login on auth/"+mount, other)
}
