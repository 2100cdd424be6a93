package integration

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConsoleSessionAcrossReplicas: a console session made on one dozod
// replica is honoured by another on the same catalog, as behind a load
// balancer without sticky sessions, and a logout on either ends it on
// both.
func TestConsoleSessionAcrossReplicas(t *testing.T) {
	s := needStack(t)
	pgURL := privatePostgres(t)
	conf, err := os.ReadFile(filepath.Join(s.devDir, "dozod.toml"))
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{s.startReplica(t, conf, pgURL, 0), s.startReplica(t, conf, pgURL, 1)}
	hc := s.brokerHTTP(t)
	jar, _ := cookiejar.New(nil) // cookies ignore the port: both replicas share them
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(u string, form url.Values) (int, string) {
		t.Helper()
		resp, err := hc.PostForm(u, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Location")
	}
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

	st, page := get(urls[0] + "/ui/login")
	m := csrf.FindStringSubmatch(page)
	if st != 200 || m == nil {
		t.Fatalf("login form on replica 0: %d, csrf %v", st, m)
	}
	st, loc := post(urls[0]+"/ui/login", url.Values{"csrf": {m[1]}, "method": {"userpass"},
		"username": {s.env["DOZO_DEV_ADMIN"]}, "password": {s.env["DOZO_DEV_ADMIN_PASSWORD"]}})
	if st != http.StatusSeeOther && st != http.StatusFound {
		t.Fatalf("login on replica 0: %d %q", st, loc)
	}
	st, page = get(urls[1] + "/ui/datasets")
	if st != 200 || !strings.Contains(page, `id="logout"`) {
		t.Fatalf("replica 1 does not know replica 0's session: %d", st)
	}
	m = csrf.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no form token on the datasets page")
	}
	u0, _ := url.Parse(urls[0])
	var session *http.Cookie
	for _, c := range jar.Cookies(u0) {
		if c.Name == "__Host-dozo-session" {
			session = c
		}
	}
	if session == nil {
		t.Fatal("no session cookie after login")
	}
	if st, _ := post(urls[1]+"/ui/logout", url.Values{"csrf": {m[1]}}); st != http.StatusSeeOther && st != http.StatusFound {
		t.Fatalf("logout on replica 1: %d", st)
	}
	// The browser drops the cookie; a copy kept elsewhere must not work
	// on the other replica either.
	req, _ := http.NewRequest("GET", urls[0]+"/ui/datasets", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	resp, err := s.brokerHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Fatal("replica 0 still honours a session logged out on replica 1")
	}
}
