package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// oidcPassword is the dev user's password at the stack's OpenID Provider
// (scripts/oidc.sh), which is not their userpass password.
func (s *stack) oidcPassword(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(s.env["DOZO_DEV_OIDC_USERS"])
	if err != nil {
		t.Fatalf("the dev stack has no OpenID Provider users: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	t.Fatalf("no OpenID Provider user %s", name)
	return ""
}

// browser is a person at a web browser: cookies, redirects, forms. It
// stops before a redirect to another host when stopAtOtherHost is set,
// as a browser on another machine fails to load a localhost address.
type browser struct {
	c    *http.Client
	last *url.URL // where the last redirect pointed
}

func newBrowser(t testing.TB, stopAt string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{}
	b.c = &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			b.last = req.URL
			if stopAt != "" && strings.HasPrefix(req.URL.String(), stopAt) {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	return b
}

func (b *browser) get(t testing.TB, u string) (*url.URL, string) {
	t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		t.Fatalf("browser: GET %s: %v", u, err)
	}
	return b.page(t, resp)
}

func (b *browser) page(t testing.TB, resp *http.Response) (*url.URL, string) {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Request.URL, string(body)
}

var (
	formRE  = regexp.MustCompile(`(?is)<form[^>]*>.*?</form>`)
	actRE   = regexp.MustCompile(`(?i)action="([^"]*)"`)
	inputRE = regexp.MustCompile(`(?i)<input[^>]*\bname="([^"]+)"[^>]*>`)
	valueRE = regexp.MustCompile(`(?i)\bvalue="([^"]*)"`)
)

// submit fills the page's form with fields (keeping its hidden inputs)
// and posts it, as a person pressing the button would.
func (b *browser) submit(t testing.TB, at *url.URL, page string, fields map[string]string) (*url.URL, string) {
	t.Helper()
	form := formRE.FindString(page)
	if form == "" {
		t.Fatalf("browser: no form on %s: %.300s", at, page)
	}
	action := at
	if m := actRE.FindStringSubmatch(form); m != nil {
		var err error
		if action, err = at.Parse(html.UnescapeString(m[1])); err != nil {
			t.Fatal(err)
		}
	}
	v := url.Values{}
	for _, in := range inputRE.FindAllStringSubmatch(form, -1) {
		if m := valueRE.FindStringSubmatch(in[0]); m != nil {
			v.Set(in[1], html.UnescapeString(m[1]))
		}
	}
	for k, x := range fields {
		if !strings.Contains(form, `name="`+k+`"`) {
			t.Fatalf("browser: the form on %s has no field %s", at, k)
		}
		v.Set(k, x)
	}
	resp, err := b.c.PostForm(action.String(), v)
	if err != nil {
		t.Fatalf("browser: POST %s: %v", action, err)
	}
	return b.page(t, resp)
}

// cliLogin is a running `dozo login`: its stderr lines arrive on lines.
type cliLogin struct {
	stdin  io.WriteCloser
	stdout bytes.Buffer
	lines  chan string
	done   chan error
}

func (u *user) startLogin(t testing.TB, args ...string) *cliLogin {
	t.Helper()
	cmd := u.command(append([]string{"login", "--method", "oidc", "--no-browser", "--timeout", "2m"}, args...)...)
	l := &cliLogin{lines: make(chan string, 100), done: make(chan error, 1)}
	cmd.Stdout = &l.stdout
	var err error
	if l.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
		close(l.lines)
		l.done <- cmd.Wait()
	}()
	return l
}

// find returns the first stderr line matching re's group 1, and every
// line read up to it.
func (l *cliLogin) find(t testing.TB, re *regexp.Regexp) string {
	t.Helper()
	var seen []string
	for line := range l.lines {
		seen = append(seen, line)
		if m := re.FindStringSubmatch(line); m != nil {
			return m[1]
		}
	}
	t.Fatalf("dozo login ended without printing %s; it said:\n%s\nerror: %v", re, strings.Join(seen, "\n"), <-l.done)
	return ""
}

// wait waits for the login to end and returns dozo login --json's answer.
func (l *cliLogin) wait(t testing.TB) (name string, roles []string) {
	t.Helper()
	var rest []string
	for line := range l.lines {
		rest = append(rest, line)
	}
	if err := <-l.done; err != nil {
		t.Fatalf("dozo login --method oidc: %v\n%s", err, strings.Join(rest, "\n"))
	}
	var out struct {
		Username string
		Roles    []string
	}
	if err := json.Unmarshal(l.stdout.Bytes(), &out); err != nil {
		t.Fatalf("dozo login --json: %v: %s", err, l.stdout.String())
	}
	return out.Username, out.Roles
}

var authURLRE = regexp.MustCompile(`^\s+(http://\S+/auth\?\S+)$`)

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// oidcWhoami checks that u's stored login is name's at dozod.
func oidcWhoami(t testing.TB, u *user, name string) {
	t.Helper()
	var w struct{ Name string }
	if err := json.Unmarshal([]byte(u.must(t, "whoami", "--json")), &w); err != nil {
		t.Fatal(err)
	}
	if w.Name != name {
		t.Fatalf("dozo whoami after the OIDC login: %q, want %q", w.Name, name)
	}
}

// `dozo login --method oidc` against Vault's OIDC auth method and a real
// OpenID Provider, the person at the browser played by an HTTP client
// that fills in the provider's login form: the browser comes back to the
// CLI's listener; or, from a browser on another machine, the address it
// could not load is pasted into the CLI; or the device flow, where the
// person types the code shown. Each time dozod knows the person by their
// name, and dozo whoami shows it.
func TestOIDCLogin(t *testing.T) {
	s := needStack(t)

	t.Run("browser", func(t *testing.T) {
		u := &user{name: "rita", dir: t.TempDir(), s: s}
		port := freePort(t)
		l := u.startLogin(t, "--callback-port", fmt.Sprint(port), "--json")
		authURL := l.find(t, authURLRE)

		// Someone else on the machine calls the listener with another
		// login's state: refused, and the login goes on.
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/oidc/callback?state=st_forged&code=x", port))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a callback with a foreign state: HTTP %d, want 400", resp.StatusCode)
		}

		b := newBrowser(t, "")
		at, page := b.get(t, authURL)
		at, page = b.submit(t, at, page, map[string]string{"username": "rita", "password": s.oidcPassword(t, "rita")})
		if at.Host != fmt.Sprintf("localhost:%d", port) || !strings.Contains(page, "Logged in to dozo") {
			t.Fatalf("the browser ended at %s: %.300s", at, page)
		}
		if name, roles := l.wait(t); name != "rita" || len(roles) != 0 {
			t.Fatalf("dozo login says %s %v, want rita without roles", name, roles)
		}
		oidcWhoami(t, u, "rita")
	})

	t.Run("paste", func(t *testing.T) {
		u := &user{name: "sam", dir: t.TempDir(), s: s}
		port := freePort(t)
		l := u.startLogin(t, "--callback-port", fmt.Sprint(port), "--json")
		authURL := l.find(t, authURLRE)
		b := newBrowser(t, fmt.Sprintf("http://localhost:%d/", port))
		at, page := b.get(t, authURL)
		b.submit(t, at, page, map[string]string{"username": "sam", "password": s.oidcPassword(t, "sam")})
		if b.last == nil || b.last.Path != "/oidc/callback" || b.last.Query().Get("code") == "" {
			t.Fatalf("the provider did not send the browser back with a code (last redirect %v)", b.last)
		}
		// A line that is not the address is passed over.
		fmt.Fprintf(l.stdin, "not a url\n%s\n", b.last)
		if name, roles := l.wait(t); name != "sam" || strings.Join(roles, ",") != "submitter" {
			t.Fatalf("dozo login says %s %v, want sam, submitter", name, roles)
		}
		oidcWhoami(t, u, "sam")
	})

	t.Run("wrong password", func(t *testing.T) {
		u := &user{name: "sam", dir: t.TempDir(), s: s}
		l := u.startLogin(t, "--callback-port", fmt.Sprint(freePort(t)))
		b := newBrowser(t, "")
		at, page := b.get(t, l.find(t, authURLRE))
		_, page = b.submit(t, at, page, map[string]string{"username": "sam", "password": "wrong-" + s.oidcPassword(t, "sam")})
		if b.last != nil && b.last.Path == "/oidc/callback" {
			t.Fatalf("a wrong password at the provider went back to the CLI: %s", b.last)
		}
		if !strings.Contains(strings.ToLower(page), "password") {
			t.Fatalf("the provider's answer to a wrong password: %.300s", page)
		}
		l.stdin.Close()
	})

	// Nobody finishes the login: it ends after --timeout with one line
	// saying so, and nothing is stored.
	t.Run("timeout", func(t *testing.T) {
		u := &user{name: "sam", dir: t.TempDir(), s: s}
		_, errOut, err := u.dozo("login", "--method", "oidc", "--no-browser", "--callback-port", fmt.Sprint(freePort(t)), "--timeout", "1s")
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if last := lines[len(lines)-1]; err == nil || !strings.HasPrefix(last, "dozo: ") || !strings.Contains(last, "no answer from the browser within 1s") {
			t.Fatalf("timeout: %v, last line %q", err, last)
		}
		if _, err := os.Stat(filepath.Join(u.dir, "token")); !os.IsNotExist(err) {
			t.Fatalf("a timed-out login left a token (%v)", err)
		}
	})

	// The callback port is taken (by another user of the login node): one
	// line naming the port and --callback-port.
	t.Run("port taken", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		u := &user{name: "sam", dir: t.TempDir(), s: s}
		line := u.refused(t, "login", "--method", "oidc", "--no-browser", "--callback-port", fmt.Sprint(port))
		if !strings.Contains(line, fmt.Sprintf("127.0.0.1:%d", port)) || !strings.Contains(line, "--callback-port") {
			t.Fatalf("port taken: %q", line)
		}
	})

	t.Run("device", func(t *testing.T) {
		u := &user{name: "admin", dir: t.TempDir(), s: s}
		secretFile := s.env["DOZO_OIDC_CLIENT_SECRET_FILE"]
		l := u.startLogin(t, "--device", "--json",
			"--oidc-issuer", s.env["DOZO_OIDC_ISSUER"], "--oidc-client-id", s.env["DOZO_OIDC_CLIENT_ID"],
			"--oidc-client-secret-file", secretFile)
		verify := l.find(t, regexp.MustCompile(`open (http://\S+) on any device`))
		code := l.find(t, regexp.MustCompile(`^\s+([A-Z0-9-]{4,})\s*$`))
		// The person opens the page on their laptop, types the code, logs
		// in and allows the device.
		b := newBrowser(t, "")
		at, page := b.get(t, verify)
		at, page = b.submit(t, at, page, map[string]string{"user_code": code})
		at, page = b.submit(t, at, page, map[string]string{"username": "admin", "password": s.oidcPassword(t, "admin")})
		allow := regexp.MustCompile(`location\.href='([^']*action=allowed)'`).FindStringSubmatch(page)
		if allow == nil {
			t.Fatalf("no Allow button on %s: %.400s", at, page)
		}
		next, err := at.Parse(allow[1])
		if err != nil {
			t.Fatal(err)
		}
		if _, page = b.get(t, next.String()); !strings.Contains(page, "allowed") {
			t.Fatalf("allowing the device: %.300s", page)
		}
		if name, roles := l.wait(t); name != "admin" || strings.Join(roles, ",") != "admin" {
			t.Fatalf("dozo login says %s %v, want admin, admin", name, roles)
		}
		oidcWhoami(t, u, "admin")
	})
}

// oidcBrowserLogin logs u in by OIDC as name, a person at a browser on
// this machine filling in the provider's form.
func (s *stack) oidcBrowserLogin(t testing.TB, u *user, name string) {
	t.Helper()
	l := u.startLogin(t, "--callback-port", fmt.Sprint(freePort(t)), "--json")
	b := newBrowser(t, "")
	at, page := b.get(t, l.find(t, authURLRE))
	if at, page = b.submit(t, at, page, map[string]string{"username": name, "password": s.oidcPassword(t, name)}); !strings.Contains(page, "Logged in to dozo") {
		t.Fatalf("the browser ended at %s: %.300s", at, page)
	}
	if got, _ := l.wait(t); got != name {
		t.Fatalf("dozo login says %s, want %s", got, name)
	}
}

// The same person logging in by userpass and by OIDC is one dozo user.
// dozod names a login by its identity entity alias on the login's mount;
// the dev stack's OIDC role takes the alias from the "sub" claim, which
// the provider sets to the person's userpass name, so both logins are
// "rita" and a grant to rita works through either. The operator also
// links the OIDC aliases to the userpass login's Vault entity (creating
// the alias, or merging the entity an earlier OIDC login made), so that
// Vault sees one person as well: the OIDC login's token then belongs to
// that entity.
func TestOIDCSameUserAsUserpass(t *testing.T) {
	s := needStack(t)
	root := s.vault(t).API()
	sam := s.login(t, s.env["DOZO_DEV_SUBMITTER"], s.env["DOZO_DEV_SUBMITTER_PASSWORD"])
	name, pw := s.env["DOZO_DEV_RESEARCHER"], s.env["DOZO_DEV_RESEARCHER_PASSWORD"]
	byPassword := s.login(t, name, pw)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "one person, two logins")
	byPassword.refused(t, "ls", ds)

	entityOf := func(tok string) string {
		t.Helper()
		sec, err := root.Logical().Write("auth/token/lookup", map[string]any{"token": tok})
		if err != nil || sec == nil {
			t.Fatalf("token lookup: %v", err)
		}
		id, _ := sec.Data["entity_id"].(string)
		if id == "" {
			t.Fatal("the login's token has no entity")
		}
		return id
	}
	person := entityOf(s.vaultLogin(t, name, pw))

	// The operator's part, with the root token.
	auths, err := root.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	for _, mount := range []string{"oidc/", "jwt/"} {
		a, ok := auths[mount]
		if !ok {
			t.Fatalf("no %s auth mount in the dev stack", mount)
		}
		sec, err := root.Logical().Write("identity/lookup/entity", map[string]any{"alias_name": name, "alias_mount_accessor": a.Accessor})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case sec == nil:
			_, err = root.Logical().Write("identity/entity-alias", map[string]any{"name": name, "mount_accessor": a.Accessor, "canonical_id": person})
		case sec.Data["id"] != person:
			_, err = root.Logical().Write("identity/entity/merge", map[string]any{"from_entity_ids": []string{sec.Data["id"].(string)}, "to_entity_id": person})
		}
		if err != nil {
			t.Fatalf("linking %s's alias on %s: %v", name, mount, err)
		}
	}

	byOIDC := &user{name: name, dir: t.TempDir(), s: s}
	s.oidcBrowserLogin(t, byOIDC, name)
	tok, err := os.ReadFile(filepath.Join(byOIDC.dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if got := entityOf(strings.TrimSpace(string(tok))); got != person {
		t.Fatalf("the OIDC login's entity is %s, want the linked %s", got, person)
	}
	oidcWhoami(t, byOIDC, name)
	byOIDC.refused(t, "ls", ds)

	until := time.Now().AddDate(0, 0, 30).Format("2006-01-02")
	sam.must(t, "grant", ds, name, "--until", until, "--application", "J-DU000002", "--institution", "NIG")
	byPassword.must(t, "ls", ds)
	byOIDC.must(t, "ls", ds)
}
