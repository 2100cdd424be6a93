package integration

// The web console in a real browser: headless Chromium (Debian's package,
// scripts/tools.sh install_chromium) driven over the DevTools protocol,
// against the stack's dozod, Vault and MinIO.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/dozo-vault/dozo/api"
)

// chromium starts headless Chromium for t. Under CI=true a browser that
// cannot start fails the test; elsewhere it skips.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("DOZO_CHROMIUM")
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if path == "" {
			if _, err := os.Stat(p); err == nil {
				path = p
			}
		}
	}
	missing := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("headless Chromium unavailable under CI=true: %s (scripts/tools.sh install_chromium)", why)
		}
		t.Skipf("headless Chromium unavailable: %s (scripts/tools.sh install_chromium)", why)
	}
	if path == "" {
		if p, err := exec.LookPath("chromium"); err == nil {
			path = p
		} else {
			missing("no chromium binary")
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // the tests run as root in CI containers
		// dozod's certificate is the stack's own self-signed one. Only
		// this test browser skips verification; the CLI and the Go
		// clients pin the CA (DOZO_CA_CERT).
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancel := chromedp.NewExecAllocator(testContext(t), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil {
		missing(err.Error())
	}
	return ctx
}

// screenshots is where the test leaves its pictures: $DOZO_SCREENSHOTS
// or a temporary directory.
func screenshots(t *testing.T) string {
	if d := os.Getenv("DOZO_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

type consoleBrowser struct {
	t    *testing.T
	ctx  context.Context
	base string // https://host:port
	shot string
}

func (b *consoleBrowser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
		b.t.Fatalf("browser: %v\nat %s:\n%s", err, loc, body)
	}
}

// value runs an action that returns a value.
func value[T any](b *consoleBrowser, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	return v
}

// open navigates to path and returns the HTTP status of the page.
func (b *consoleBrowser) open(path string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(b.base+path))
	if err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	return int(resp.Status)
}

// screenshot saves the viewport as name.png.
func (b *consoleBrowser) screenshot(name string) {
	b.t.Helper()
	png := value(b, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(b.shot, "console-"+name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *consoleBrowser) text(sel string) string {
	b.t.Helper()
	return value(b, chromedp.Text(chromedp.CSS(sel)))
}

func (b *consoleBrowser) login(name, password string) {
	b.t.Helper()
	if st := b.open("/ui/login"); st != 200 {
		b.t.Fatalf("login form: status %d", st)
	}
	b.run(
		chromedp.SendKeys(chromedp.ID("username"), name),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("logout")),
	)
}

func (b *consoleBrowser) logout() {
	b.t.Helper()
	b.run(chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("username")))
}

// TestConsole: a custodian grants and revokes in the browser, and the
// researcher's CLI follows; the audit page shows both and verifies the
// chain; a researcher gets the API's 404 for a register not theirs; a form
// without its CSRF token is refused; the session cookie is HttpOnly,
// Secure and SameSite=Strict.
func TestConsole(t *testing.T) {
	s := needStack(t)
	ctx := chromium(t)
	sam, res := s.users(t)
	b := &consoleBrowser{t: t, ctx: ctx, base: strings.TrimSuffix(s.env["DOZO_BROKER"], "/"), shot: screenshots(t)}

	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "console test", "--jgad", "JGAD000321", "--jgap", "JGAP000321", "--max-use-days", "30")
	src := filepath.Join(t.TempDir(), "sample.vcf")
	want := writeRandomFile(t, src, 43, mib+5, nil)
	sam.must(t, "upload", "--dataset", ds, src)
	other := newDatasetID() // one the researcher never had a grant on
	sam.must(t, "dataset", "create", other, "--title", "not theirs")
	out := filepath.Join(t.TempDir(), "out.vcf")
	if line := res.refused(t, "fetch", ds+"/sample.vcf", "-o", out); !strings.Contains(line, "not found") {
		t.Fatalf("fetch before the grant: %s", line)
	}

	// Anonymous: the login form, 401, for any page.
	if st := b.open("/ui/datasets"); st != http.StatusUnauthorized {
		t.Fatalf("datasets without a session: status %d, want 401", st)
	}
	b.screenshot("login")

	// The custodian logs in; the session cookie has its flags.
	b.login(sam.name, sam.password)
	cookies := value(b, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return r.Cookies, err
	})
	var session *network.Cookie
	for _, c := range cookies {
		if c.Name == "__Host-dozo-session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || !session.Secure || session.SameSite != network.CookieSameSiteStrict || session.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/", session)
	}
	if st := b.open("/ui/datasets"); st != 200 {
		t.Fatalf("datasets: status %d", st)
	}
	if !strings.Contains(b.text("main"), ds) {
		t.Fatalf("datasets page lacks %s", ds)
	}
	b.screenshot("datasets")

	// Grant in the browser; the researcher's CLI fetch then works.
	if st := b.open("/ui/datasets/" + ds); st != 200 {
		t.Fatalf("register: status %d", st)
	}
	b.run(
		chromedp.SendKeys(chromedp.ID("g-user"), res.name),
		chromedp.SetValue(chromedp.ID("g-until"), day(10)),
		chromedp.SendKeys(chromedp.ID("g-app"), "J-DU000321"),
		chromedp.SendKeys(chromedp.ID("g-inst"), "Univ. of Tokyo"),
		chromedp.Click(chromedp.ID("grant")),
		chromedp.WaitVisible(chromedp.ID("flash")),
	)
	if row := b.text(`tr[data-user="` + res.name + `"]`); !strings.Contains(row, "J-DU000321") || !strings.Contains(row, day(10)) {
		t.Fatalf("register row after the grant: %q", row)
	}
	b.screenshot("register")
	res.must(t, "fetch", ds+"/sample.vcf", "-o", out)
	if fileSHA(t, out) != want {
		t.Fatal("fetched file differs")
	}
	os.Remove(out)

	// Extend on the row: a new period, the old one kept as superseded.
	b.open("/ui/datasets/" + ds)
	active := `tr[data-user="` + res.name + `"].state-active`
	b.run(
		chromedp.SetValue(chromedp.CSS(active+` input[type=date]`), day(20)),
		chromedp.Click(chromedp.CSS(active+` button.extend`)),
		chromedp.WaitVisible(chromedp.ID("flash")),
	)
	if row := b.text(active); !strings.Contains(row, day(20)) {
		t.Fatalf("active row after the extension: %q", row)
	}
	if old := b.text(`tr[data-user="` + res.name + `"].state-superseded`); !strings.Contains(old, day(10)) {
		t.Fatalf("superseded row after the extension: %q", old)
	}

	// A bad grant shows the broker's own message and changes nothing.
	b.open("/ui/datasets/" + ds)
	b.run(
		chromedp.SendKeys(chromedp.ID("g-user"), res.name),
		chromedp.SetValue(chromedp.ID("g-until"), day(60)),
		chromedp.SendKeys(chromedp.ID("g-app"), "J-DU000321"),
		chromedp.SendKeys(chromedp.ID("g-inst"), "NIG"),
		chromedp.Click(chromedp.ID("grant")),
		chromedp.WaitVisible(chromedp.ID("error")),
	)
	if e := b.text("#error"); !strings.Contains(e, "maximum use period") {
		t.Fatalf("refused grant says %q", e)
	}
	b.screenshot("refused")

	// Revoke in the browser; the next CLI fetch is refused.
	b.open("/ui/datasets/" + ds)
	row := `tr[data-user="` + res.name + `"].state-active`
	b.run(
		chromedp.SendKeys(chromedp.CSS(row+` input.revoke-reason`), "project ended"),
		chromedp.Click(chromedp.CSS(row+` button.revoke`)),
		chromedp.WaitVisible(chromedp.ID("flash")),
	)
	if line := res.refused(t, "fetch", ds+"/sample.vcf", "-o", out); !strings.Contains(line, "revoked") && !strings.Contains(line, "not found") && !strings.Contains(line, "no active grant") {
		t.Logf("refusal after revoke: %s", line)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a refused fetch left a file")
	}

	// CSRF: the same form posted with the browser's cookie but without
	// the form's token is refused, and changes nothing.
	hc := s.brokerHTTP(t)
	form := url.Values{"user": {res.name}, "until": {day(5)}, "application": {"J-DU000321"}, "institution": {"NIG"}}
	req, _ := http.NewRequest("POST", b.base+"/ui/datasets/"+ds+"/grants", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("form without CSRF token: status %d, want 403", resp.StatusCode)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Referrer-Policy", "Cache-Control"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("console response lacks %s", h)
		}
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("CSP %q", resp.Header.Get("Content-Security-Policy"))
	}
	res.refused(t, "fetch", ds+"/sample.vcf", "-o", out)

	// The custodian's audit page shows both actions.
	if st := b.open("/ui/audit?dataset=" + ds); st != 200 {
		t.Fatalf("audit: status %d: %s", st, b.text("main"))
	}
	a := b.text("#records")
	for _, action := range []string{"grant.put", "grant.revoke", "ui.grant", "ui.revoke"} {
		if !strings.Contains(a, action) {
			t.Errorf("audit page lacks %s", action)
		}
	}
	b.screenshot("audit")
	b.logout()

	// An operator verifies the chain.
	b.login(s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
	b.open("/ui/audit?dataset=" + ds)
	b.run(chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.ID("verdict")))
	if v := b.text("#verdict"); !strings.Contains(v, "OK") {
		t.Fatalf("verify: %q", v)
	}
	b.screenshot("verify")
	if st := b.open("/ui/ops"); st != 200 {
		t.Fatalf("operators' page: status %d", st)
	}
	if tg := b.text("#targets"); !strings.Contains(tg, "up") {
		t.Fatalf("targets: %q", tg)
	}
	// A scrub held in its rate limiter is a running job: the page shows
	// it with its owner, and its cancel form ends the job and the run.
	admin := s.login(t, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
	var run api.ScrubRun
	if err := json.Unmarshal([]byte(admin.must(t, "scrub", ds, "--deep", "--rate", "1", "--detach", "--json")), &run); err != nil {
		t.Fatal(err)
	}
	b.open("/ui/ops")
	jobsText := b.text("#jobs")
	for _, want := range []string{run.ID, "scrub", "running"} {
		if !strings.Contains(jobsText, want) {
			t.Errorf("jobs table lacks %q:\n%s", want, jobsText)
		}
	}
	var j api.Job
	if err := json.Unmarshal([]byte(admin.must(t, "jobs", "show", run.ID, "--json")), &j); err != nil {
		t.Fatal(err)
	}
	if j.Owner == "" || !strings.Contains(jobsText, j.Owner) {
		t.Errorf("jobs table lacks the owner %q:\n%s", j.Owner, jobsText)
	}
	b.screenshot("ops")
	b.run(chromedp.Click(chromedp.ID("cancel-"+run.ID)), chromedp.WaitVisible(chromedp.ID("flash")))
	if jobsText := b.text("#jobs"); !strings.Contains(jobsText, "cancelled") {
		t.Errorf("jobs table after cancel:\n%s", jobsText)
	}
	if err := json.Unmarshal([]byte(admin.must(t, "scrub", "status", run.ID, "--json")), &run); err != nil || run.State != api.ScrubCancelled {
		t.Errorf("scrub after its job was cancelled in the console: %s %v", run.State, err)
	}
	b.logout()

	// The researcher: their own view; another dataset's register is the
	// API's 404, word for word.
	b.login(res.name, res.password)
	if st := b.open("/ui/me"); st != 200 {
		t.Fatalf("own view: status %d", st)
	}
	if me := b.text("main"); !strings.Contains(me, ds) || !strings.Contains(me, "revoked") {
		t.Fatalf("own view lacks the revoked grant on %s:\n%s", ds, me)
	}
	b.screenshot("me")
	// Japanese, by the switch link (a cookie), and back.
	b.run(chromedp.Click(chromedp.CSS(`a[lang="ja"]`)), chromedp.WaitVisible(chromedp.CSS(`html[lang="ja"]`)))
	if h := b.text("h1"); h != "自分の利用状況" {
		t.Fatalf("Japanese heading %q", h)
	}
	b.screenshot("me-ja")
	b.run(chromedp.Click(chromedp.CSS(`a[lang="en"]`)), chromedp.WaitVisible(chromedp.CSS(`html[lang="en"]`)))
	if st := b.open("/ui/datasets/" + other); st != http.StatusNotFound {
		t.Fatalf("researcher opening %s's register: status %d, want 404", other, st)
	}
	page := b.text("#error")
	vc := s.vault(t)
	anon, err := vc.WithToken("")
	if err != nil {
		t.Fatal(err)
	}
	lr, err := anon.PasswordLogin(testContext(t), "userpass", "userpass", res.name, res.password)
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", b.base+"/v1/datasets/"+other+"/grants", nil)
	req.Header.Set("Authorization", "Bearer "+lr.Token)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ae api.Error
	json.NewDecoder(resp.Body).Decode(&ae)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || ae.Error != page {
		t.Fatalf("console 404 %q differs from the API's %d %q", page, resp.StatusCode, ae.Error)
	}
	b.logout()
	t.Logf("screenshots in %s", b.shot)
}

// TestConsoleSingleSignOn: a person presses "single sign-on", signs in on
// the stack's OpenID Provider's own form, and lands in the console as
// themselves; a forged callback (no sign-in of this browser) is refused
// with a page saying so and starts no session.
func TestConsoleSingleSignOn(t *testing.T) {
	s := needStack(t)
	ctx := chromium(t)
	b := &consoleBrowser{t: t, ctx: ctx, base: strings.TrimSuffix(s.env["DOZO_BROKER"], "/"), shot: screenshots(t)}

	// Forged: a callback this browser never started.
	if st := b.open("/ui/login/oidc/callback?state=st_forged&code=x"); st != http.StatusBadRequest {
		t.Fatalf("forged callback: status %d, want 400", st)
	}
	if msg := b.text("#error"); !strings.Contains(msg, "single sign-on refused") {
		t.Fatalf("forged callback's page: %q", msg)
	}
	if st := b.open("/ui/datasets"); st != http.StatusUnauthorized {
		t.Fatalf("after a forged callback: datasets status %d, want 401", st)
	}

	if st := b.open("/ui/login"); st != 200 {
		t.Fatalf("login form: status %d", st)
	}
	b.run(chromedp.Click(chromedp.ID("sso")), chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)))
	b.run(
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "rita"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), s.oidcPassword(t, "rita")),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.ID("logout")),
	)
	if who := b.text(".who"); who != "rita" {
		t.Fatalf("signed in as %q, want rita", who)
	}
	b.screenshot("sso")
	b.logout()
}
