package broker

import (
	"encoding/csv"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/api"
)

var pageNames = []string{"login", "error", "datasets", "register", "audit", "ops", "me"}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"size": formatSize,
		// abbrev shortens a long key for display: its start and end.
		"abbrev": func(s string) string {
			if len(s) <= 40 {
				return s
			}
			return s[:24] + "…" + s[len(s)-8:]
		},
		"date": func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
		"datetime": func(v any) string {
			switch t := v.(type) {
			case time.Time:
				if t.IsZero() {
					return ""
				}
				return t.UTC().Format("2006-01-02 15:04Z")
			case *time.Time:
				if t == nil {
					return ""
				}
				return t.UTC().Format("2006-01-02 15:04Z")
			}
			return ""
		},
	}
	out := map[string]*template.Template{}
	for _, n := range pageNames {
		t, err := template.New(n).Funcs(funcs).ParseFS(consoleFiles, "console/templates/layout.html", "console/templates/"+n+".html")
		if err != nil {
			return nil, err
		}
		out[n] = t
	}
	return out, nil
}

// page is what every template gets.
type page struct {
	Lang, Title, Nav, Path string
	User, CSRF             string
	Admin                  bool
	Flash                  string
	Error                  *uiError
	Data                   any
}

type uiError struct {
	Status    int
	Msg, Hint string
	RequestID string
}

// T is the message key in the page's language.
func (p *page) T(key string) string { return msg(p.Lang, key) }

// render writes page name with status.
func (s *Server) render(q *request, sess *uiSession, name, nav, title string, status int, data any) error {
	p := &page{Lang: uiLang(q.r), Nav: nav, Path: q.r.URL.RequestURI(), Data: data}
	p.Title = p.T(title)
	if sess != nil {
		p.User, p.CSRF = sess.user, sess.csrf
		p.Admin = q.user != nil && s.isAdmin(q.user) // which links to show; the API decides
	}
	if f := q.r.URL.Query().Get("done"); f != "" && msgs["done."+f] != ([2]string{}) {
		p.Flash = p.T("done." + f)
	}
	var buf strings.Builder
	if err := s.console.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		return internal("rendering the page", err)
	}
	q.status = status
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.WriteHeader(status)
	_, err := q.w.Write([]byte(buf.String()))
	return err
}

// renderError is the console's q.fail: the API's message and hint as a
// page. A caller with no session gets the login form, with status 401.
func (s *Server) renderError(q *request, sess *uiSession, e *httpError) {
	// Set again: a reply discarded for want of its audit record (audit)
	// lost its headers.
	consoleHeaders(q.w)
	if e.retryAfter > 0 {
		q.w.Header().Set("Retry-After", retryAfter(e.retryAfter))
	}
	ue := &uiError{Status: e.status, Msg: e.msg, Hint: e.hint, RequestID: q.id}
	var err error
	if sess == nil && (e.status == http.StatusUnauthorized || q.r.URL.Path == "/ui/login") {
		p := &page{Lang: uiLang(q.r), Path: q.r.URL.RequestURI(), Error: ue}
		err = s.loginPage(q, p, e.status)
	} else {
		back := "/ui/"
		if ds := q.r.PathValue("ds"); ds != "" && q.r.Method == http.MethodPost {
			back = "/ui/datasets/" + seg(ds)
		}
		p := &page{Lang: uiLang(q.r), Path: q.r.URL.RequestURI(), Error: ue, Data: struct{ Back string }{back}}
		if sess != nil {
			p.User, p.CSRF = sess.user, sess.csrf
			p.Admin = q.user != nil && s.isAdmin(q.user)
		}
		p.Title = fmt.Sprintf("%s %d", p.T("error"), e.status)
		var buf strings.Builder
		if err = s.console.pages["error"].ExecuteTemplate(&buf, "layout", p); err == nil {
			q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
			q.w.WriteHeader(e.status)
			q.w.Write([]byte(buf.String()))
		}
	}
	if err != nil {
		s.log.Error("console: rendering an error page", "err", err)
	}
}

// loginPage renders the login form with a fresh login CSRF token.
func (s *Server) loginPage(q *request, p *page, status int) error {
	tok := randomHex(32)
	setCookie(q.w, loginCookie, tok, int(SessionIdle/time.Second))
	p.CSRF = tok
	p.Title = p.T("login.title")
	next := q.r.URL.RequestURI()
	if q.r.Method != http.MethodGet || q.r.URL.Path == "/ui/login" {
		next = q.r.URL.Query().Get("next")
		if q.r.Method == http.MethodPost && q.r.URL.Path == "/ui/login" {
			next = q.r.PostFormValue("next")
		}
	}
	p.Data = struct {
		Next    string
		Methods []string
		SSO     bool
	}{localPath(next), []string{"userpass", "ldap"}, s.console.oidc.mount != ""}
	var buf strings.Builder
	if err := s.console.pages["login"].ExecuteTemplate(&buf, "layout", p); err != nil {
		return err
	}
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.WriteHeader(status)
	_, err := q.w.Write([]byte(buf.String()))
	return err
}

func (s *Server) uiStatic(q *request) error {
	consoleHeaders(q.w)
	name := q.r.PathValue("file")
	b, err := fs.ReadFile(s.console.static, name)
	if err != nil || strings.Contains(name, "/") {
		return errorf(http.StatusNotFound, "no such file")
	}
	ct := "application/octet-stream"
	switch {
	case strings.HasSuffix(name, ".css"):
		ct = "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".png"):
		ct = "image/png"
	}
	q.w.Header().Set("Content-Type", ct)
	q.status = http.StatusOK
	_, err = q.w.Write(b)
	return err
}

func (s *Server) uiLoginForm(q *request) error {
	s.uiPrepare(q)
	return s.loginPage(q, &page{Lang: uiLang(q.r), Path: q.r.URL.RequestURI()}, http.StatusOK)
}

func (s *Server) uiLang(q *request) error {
	consoleHeaders(q.w)
	l := q.r.PathValue("lang")
	if !slices.Contains(uiLangs, l) {
		return errorf(http.StatusNotFound, "no such language")
	}
	http.SetCookie(q.w, &http.Cookie{Name: langCookie, Value: l, Path: "/ui/", MaxAge: 365 * 24 * 3600,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return q.redirect(localPath(q.r.URL.Query().Get("next")))
}

// uiLogin logs in on Vault with the form's credentials, checks the token
// as the API would (authenticate), and starts a session.
func (s *Server) uiLogin(q *request) error {
	s.uiPrepare(q)
	q.object = "console"
	c, _ := q.r.Cookie(loginCookie)
	want := ""
	if c != nil {
		want = c.Value
	}
	if err := checkCSRF(q, want); err != nil {
		return err
	}
	f := q.r.PostForm
	method, user := f.Get("method"), strings.TrimSpace(f.Get("username"))
	if method == "" {
		method = "userpass"
	}
	if method != "userpass" && method != "ldap" {
		return badRequest("no password login for method %q; use userpass or ldap", method)
	}
	tok, err := s.console.login(q.ctx, method, user, f.Get("password"), f.Get("code"))
	if err != nil {
		return vaultLoginError(err)
	}
	if err := s.startSession(q, tok); err != nil {
		return err
	}
	setCookie(q.w, loginCookie, "", -1)
	return q.redirect(localPath(f.Get("next")))
}

// uiLogout ends the session and revokes its Vault token, as `dozo logout`.
func (s *Server) uiLogout(q *request, sess *uiSession) error {
	q.object = "console"
	if c, _ := q.r.Cookie(sessionCookie); c != nil {
		if err := s.console.sessions.remove(q.ctx, c.Value); err != nil {
			// The token is revoked below all the same, so the stored
			// session opens to nothing Vault accepts.
			s.log.Warn("console: removing a session at logout failed", "user", sess.user, "err", err)
		}
	}
	if err := s.console.revoke(q.ctx, sess.token); err != nil {
		s.log.Warn("console: revoking a token at logout failed", "user", sess.user, "err", err)
	}
	setCookie(q.w, sessionCookie, "", -1)
	return q.redirect("/ui/login")
}

func (s *Server) uiDatasets(q *request, sess *uiSession) error {
	q.object = "datasets"
	var ds []api.Dataset
	if err := s.consoleAPI(q, sess, "GET", api.ListDatasets.Path(), nil, &ds); err != nil {
		return err
	}
	return s.render(q, sess, "datasets", "datasets", "datasets", http.StatusOK, ds)
}

// registerStates are the grant states the register filters by.
var registerStates = []string{api.GrantActive, api.GrantScheduled, api.GrantFuture, api.GrantExpired, api.GrantRevoked, api.GrantSuperseded}

type registerView struct {
	Dataset   *api.Dataset
	Members   []api.Member
	Grants    []api.Grant
	States    []string
	State     string
	User      string
	CSV       string
	CanChange bool
}

// uiRegister is the register of one dataset (with {ds}) or of every
// dataset the user may see, with full history, as a page or CSV. The
// rows are the API's answer; the filters only narrow what is shown.
func (s *Server) uiRegister(q *request, sess *uiSession) error {
	v := &registerView{States: registerStates, State: q.r.URL.Query().Get("state"), User: strings.TrimSpace(q.r.URL.Query().Get("user"))}
	var gs []api.Grant
	ds := q.r.PathValue("ds")
	if ds != "" {
		q.object = "dataset/" + ds
		v.Dataset = &api.Dataset{}
		if err := s.consoleAPI(q, sess, "GET", api.ShowDataset.Path(ds), nil, v.Dataset); err != nil {
			return err
		}
		if err := s.consoleAPI(q, sess, "GET", api.ListGrants.Path(ds)+"?history=true", nil, &gs); err != nil {
			return err
		}
		if err := s.consoleAPI(q, sess, "GET", api.ListMembers.Path(ds), nil, &v.Members); err != nil {
			return err
		}
		v.CanChange = slices.Contains(v.Dataset.Access, "custodian") || slices.Contains(v.Dataset.Access, "admin")
		v.CSV = "/ui/datasets/" + seg(ds) + "/register.csv"
	} else {
		q.object = "grants"
		if err := s.consoleAPI(q, sess, "GET", api.GrantRegister.Path()+"?history=true", nil, &gs); err != nil {
			return err
		}
		v.CSV = "/ui/register.csv"
	}
	if qs := q.r.URL.RawQuery; qs != "" {
		v.CSV += "?" + qs
	}
	for _, g := range gs {
		if (v.State == "" || g.State == v.State) && (v.User == "" || strings.Contains(g.User, v.User)) {
			v.Grants = append(v.Grants, g)
		}
	}
	if strings.HasSuffix(q.r.URL.Path, ".csv") {
		return registerCSV(q, v.Grants)
	}
	nav := "register"
	if ds != "" {
		nav = "datasets"
	}
	return s.render(q, sess, "register", nav, "register", http.StatusOK, v)
}

// csvCell keeps a spreadsheet from reading a cell as a formula.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func registerCSV(q *request, gs []api.Grant) error {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"id", "dataset", "user", "state", "from", "until", "application_id", "institution", "reason",
		"granted_by", "granted_at", "revoked_at", "revoked_by", "revoke_reason", "superseded_by", "follows"})
	for _, g := range gs {
		rev := ""
		if g.RevokedAt != nil {
			rev = g.RevokedAt.UTC().Format(time.RFC3339)
		}
		row := []string{fmt.Sprint(g.ID), g.Dataset, g.User, g.State, g.From, g.Until.UTC().Format(time.DateOnly), g.ApplicationID,
			g.Institution, g.Reason, g.GrantedBy, g.GrantedAt.UTC().Format(time.RFC3339), rev, g.RevokedBy, g.RevokeReason,
			fmt.Sprint(g.SupersededBy), fmt.Sprint(g.Follows)}
		for i := range row {
			row[i] = csvCell(row[i])
		}
		w.Write(row)
	}
	w.Flush()
	q.status = http.StatusOK
	q.w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	q.w.Header().Set("Content-Disposition", `attachment; filename="register.csv"`)
	q.w.WriteHeader(http.StatusOK)
	_, err := q.w.Write([]byte(b.String()))
	return err
}

// uiGrant grants or extends (a new period for the same user) through the
// API's PUT grant.
func (s *Server) uiGrant(q *request, sess *uiSession) error {
	ds := q.r.PathValue("ds")
	q.object = "dataset/" + ds
	f := q.r.PostForm
	user := strings.TrimSpace(f.Get("user"))
	if user == "" {
		return badRequest("name the user to grant access to")
	}
	req := api.GrantRequest{From: strings.TrimSpace(f.Get("from")), Until: strings.TrimSpace(f.Get("until")),
		ApplicationID: strings.TrimSpace(f.Get("application")), Institution: strings.TrimSpace(f.Get("institution")),
		Reason: strings.TrimSpace(f.Get("reason"))}
	if err := s.consoleAPI(q, sess, "PUT", api.PutGrant.Path(ds, user), req, nil); err != nil {
		return err
	}
	return q.redirect("/ui/datasets/" + seg(ds) + "?done=granted")
}

// uiRevoke revokes through the API's DELETE grant.
func (s *Server) uiRevoke(q *request, sess *uiSession) error {
	ds, user := q.r.PathValue("ds"), q.r.PathValue("user")
	q.object = "dataset/" + ds
	req := api.RevokeRequest{Reason: strings.TrimSpace(q.r.PostForm.Get("reason"))}
	if err := s.consoleAPI(q, sess, "DELETE", api.RevokeGrant.Path(ds, user), req, nil); err != nil {
		return err
	}
	return q.redirect("/ui/datasets/" + seg(ds) + "?done=revoked")
}
