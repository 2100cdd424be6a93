package broker

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
)

// auditFilters are the query parameters the audit page passes to GET
// /v1/audit, which checks them.
var auditFilters = []string{"dataset", "user", "action", "result", "since", "until", "limit"}

type auditView struct {
	Filter  map[string]string
	Results []string
	Records []api.AuditEntry
	Older   string // the next page: records before the oldest shown
	Export  string
	Verdict *audit.Result
	Query   string
}

// uiAudit lists audit records as GET /v1/audit does for the caller (a
// custodian their datasets', an operator all): the newest page matching,
// with a link to the page before it; /ui/audit/verify adds the verdict of GET /v1/audit/verify.
func (s *Server) uiAudit(q *request, sess *uiSession) error {
	q.object = "audit"
	in := q.r.URL.Query()
	v := &auditView{Filter: map[string]string{}, Results: []string{audit.ResultOK, audit.ResultRefused, audit.ResultError, audit.ResultClientReported}}
	qs := url.Values{}
	for _, k := range auditFilters {
		if x := strings.TrimSpace(in.Get(k)); x != "" {
			v.Filter[k] = x
			qs.Set(k, x)
		}
	}
	if qs.Get("limit") == "" {
		qs.Set("limit", "100")
	}
	v.Query = qs.Encode()
	if strings.HasSuffix(q.r.URL.Path, "/verify") {
		v.Verdict = &audit.Result{}
		if err := s.consoleAPI(q, sess, "GET", api.VerifyAudit.Path(), nil, v.Verdict); err != nil {
			return err
		}
	}
	if err := s.consoleAPI(q, sess, "GET", api.ListAudit.Path()+"?"+qs.Encode(), nil, &v.Records); err != nil {
		return err
	}
	if n := len(v.Records); n > 0 && n >= atoiOr(qs.Get("limit"), 100) {
		older := url.Values{}
		for k, x := range qs {
			older[k] = x
		}
		// The API answers the newest records matching, oldest first.
		older.Set("until", v.Records[0].Time.Add(-time.Nanosecond).UTC().Format(time.RFC3339Nano))
		v.Older = "/ui/audit?" + older.Encode()
	}
	return s.render(q, sess, "audit", "audit", "audit", http.StatusOK, v)
}

func atoiOr(s string, def int) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return def
		}
		n = n*10 + int(c-'0')
	}
	if s == "" {
		return def
	}
	return n
}

// uiAuditExport hands over GET /v1/audit/export (operators only, the
// whole chain as JSON lines for offline verification) as a download.
func (s *Server) uiAuditExport(q *request, sess *uiSession) error {
	q.object = "audit"
	rec, err := s.consoleRaw(q, sess, "GET", api.ExportAudit.Path(), nil)
	if err != nil {
		return err
	}
	return download(q, rec, "application/x-ndjson", "audit.jsonl")
}

// uiDeletionReport hands over a dataset's deletion report.
func (s *Server) uiDeletionReport(q *request, sess *uiSession) error {
	ds := q.r.PathValue("ds")
	if ds == "" {
		ds = strings.TrimSpace(q.r.URL.Query().Get("dataset"))
	}
	if ds == "" {
		return badRequest("name the deleted dataset whose report you want")
	}
	q.object = "dataset/" + ds
	rec, err := s.consoleRaw(q, sess, "GET", api.GetDeletionReport.Path(ds), nil)
	if err != nil {
		return err
	}
	return download(q, rec, "application/json", "deletion-report-"+ds+".json")
}

func download(q *request, rec *recorder, ct, name string) error {
	q.status = http.StatusOK
	q.w.Header().Set("Content-Type", ct)
	q.w.Header().Set("Content-Disposition", `attachment; filename="`+strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 {
			return '_'
		}
		return r
	}, name)+`"`)
	q.w.WriteHeader(http.StatusOK)
	_, err := q.w.Write(rec.body.Bytes())
	return err
}

type opsView struct {
	Targets []TargetStatus
	Jobs    []api.Job
	Scrubs  []api.ScrubRun
	Latest  *api.ScrubRun
	Freezes []api.Freeze
}

// opsJobs is how many of the newest jobs the operators' page lists.
const opsJobs = 50

// uiOps is the operators' page: target health, jobs of every kind with
// their progress, owner and times, scrubs with their findings, and
// freezes, each from its API.
func (s *Server) uiOps(q *request, sess *uiSession) error {
	q.object = "ops"
	v := &opsView{}
	if err := s.consoleAPI(q, sess, "GET", api.ListTargets.Path(), nil, &v.Targets); err != nil {
		return err
	}
	if err := s.consoleAPI(q, sess, "GET", fmt.Sprintf("%s?limit=%d", api.ListJobs.Path(), opsJobs), nil, &v.Jobs); err != nil {
		return err
	}
	if err := s.consoleAPI(q, sess, "GET", api.ListScrubs.Path(), nil, &v.Scrubs); err != nil {
		return err
	}
	if len(v.Scrubs) > 0 {
		v.Latest = &api.ScrubRun{}
		if err := s.consoleAPI(q, sess, "GET", api.ShowScrub.Path(v.Scrubs[0].ID), nil, v.Latest); err != nil {
			return err
		}
	}
	if err := s.consoleAPI(q, sess, "GET", api.ListFreezes.Path()+"?all=true", nil, &v.Freezes); err != nil {
		return err
	}
	return s.render(q, sess, "ops", "ops", "ops", http.StatusOK, v)
}

func (s *Server) uiFreeze(q *request, sess *uiSession) error {
	q.object = "freezes"
	f := q.r.PostForm
	req := api.FreezeRequest{Kind: f.Get("kind"), Name: strings.TrimSpace(f.Get("name")), Reason: strings.TrimSpace(f.Get("reason"))}
	if err := s.consoleAPI(q, sess, "POST", api.FreezeAccess.Path(), req, nil); err != nil {
		return err
	}
	return q.redirect("/ui/ops?done=frozen")
}

func (s *Server) uiUnfreeze(q *request, sess *uiSession) error {
	kind, name := q.r.PathValue("kind"), q.r.PathValue("name")
	q.object = "freezes"
	req := api.UnfreezeRequest{Reason: strings.TrimSpace(q.r.PostForm.Get("reason"))}
	if err := s.consoleAPI(q, sess, "DELETE", api.UnfreezeAccess.Path(kind, name), req, nil); err != nil {
		return err
	}
	return q.redirect("/ui/ops?done=unfrozen")
}

func (s *Server) uiScrub(q *request, sess *uiSession) error {
	q.object = "scrubs"
	f := q.r.PostForm
	req := api.ScrubRequest{Dataset: strings.TrimSpace(f.Get("dataset")), Deep: f.Get("deep") != "", Repair: f.Get("repair") != ""}
	if err := s.consoleAPI(q, sess, "POST", api.StartScrub.Path(), req, nil); err != nil {
		return err
	}
	return q.redirect("/ui/ops?done=scrub")
}

func (s *Server) uiScrubCancel(q *request, sess *uiSession) error {
	q.object = "scrubs"
	if err := s.consoleAPI(q, sess, "DELETE", api.CancelScrub.Path(q.r.PathValue("id")), nil, nil); err != nil {
		return err
	}
	return q.redirect("/ui/ops?done=cancelled")
}

// uiJobCancel cancels a job of any kind through DELETE /v1/jobs/{id}.
func (s *Server) uiJobCancel(q *request, sess *uiSession) error {
	q.object = "jobs"
	if err := s.consoleAPI(q, sess, "DELETE", api.CancelJob.Path(q.r.PathValue("id")), nil, nil); err != nil {
		return err
	}
	return q.redirect("/ui/ops?done=job")
}

type meView struct {
	Me      api.User
	Grants  []api.Grant
	Fetches []fetchHint
	Broker  string
}

type fetchHint struct {
	Dataset string
	Until   time.Time
	Command string
}

// maxFetchHints bounds the commands shown per dataset.
const maxFetchHints = 20

// fetchHints are the dozo fetch commands for the available files of an
// active grant's dataset, from the API's file list; when the list is
// refused (a frozen dataset, say) the command with a placeholder.
func (s *Server) fetchHints(q *request, sess *uiSession, g api.Grant) []fetchHint {
	var fs []api.File
	if err := s.consoleAPI(q, sess, "GET", api.ListFiles.Path(g.Dataset), nil, &fs); err != nil {
		return []fetchHint{{Dataset: g.Dataset, Until: g.Until, Command: "dozo fetch " + g.Dataset + "/FILE -o FILE"}}
	}
	var out []fetchHint
	for _, f := range fs {
		if f.State != api.FileAvailable || len(out) == maxFetchHints {
			continue
		}
		out = append(out, fetchHint{Dataset: g.Dataset, Until: g.Until, Command: "dozo fetch " + shellQuote(g.Dataset+"/"+f.Name) + " -o " + shellQuote(f.Name)})
	}
	return out
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-/+=:@,", c)) {
			safe = false
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// uiMe is a user's own view: who they are, their registered key, their
// grants and until when, and the commands that fetch with them.
func (s *Server) uiMe(q *request, sess *uiSession) error {
	q.object = "user/" + sess.user
	v := &meView{}
	if err := s.consoleAPI(q, sess, "GET", api.Whoami.Path(), nil, &v.Me); err != nil {
		return err
	}
	var gs []api.Grant
	if !v.Me.Frozen {
		if err := s.consoleAPI(q, sess, "GET", api.GrantRegister.Path()+"?history=true", nil, &gs); err != nil {
			return err
		}
	}
	for _, g := range gs {
		if g.User != v.Me.Name {
			continue
		}
		v.Grants = append(v.Grants, g)
		if g.State == api.GrantActive {
			v.Fetches = append(v.Fetches, s.fetchHints(q, sess, g)...)
		}
	}
	v.Broker = "https://" + q.r.Host
	return s.render(q, sess, "me", "me", "me", http.StatusOK, v)
}
