package broker

import (
	"fmt"
	"net/http"

	"github.com/dozo-vault/dozo/api"
)

// handlers maps every route of the API table (api.Routes) to its handler.
// The route says the path, the audit action, whether a login is needed
// and the rule; the handler enforces the rule.
func (s *Server) handlers() map[*api.Route]handlerFunc {
	return map[*api.Route]handlerFunc{
		api.GetHealth:    s.health, // ops.go
		api.Whoami:       s.whoami,
		api.SetRecipient: s.setRecipient,

		api.CreateDataset: s.createDataset,
		api.ListDatasets:  s.listDatasets,
		api.ShowDataset:   s.showDataset,
		api.ListFiles:     s.listFiles,

		api.BeginUpload:    s.beginUpload,
		api.ShowUpload:     s.showUpload,
		api.PresignUpload:  s.presignPut,
		api.CommitSegment:  s.commitSegment,
		api.CompleteUpload: s.completeUpload,
		api.AbortUpload:    s.abortUpload,

		api.FetchFile:    s.fetch,
		api.PresignFetch: s.presignGet,
		api.FetchDone:    s.fetchDone, // audit.go

		// Batch presigns (batch.go): with per-piece presigning a 200 GB
		// fetch made ~20k broker round trips. Authorisation and every
		// per-piece check of an upload are the single presign's
		// (checkPutPiece); a fetch batch presigns the pieces its verified
		// manifest names. Each batch is all or nothing, so a client never
		// holds URLs for a request that was partly refused.
		api.PresignUploadBatch: s.presignPutBatch,
		api.PresignFetchBatch:  s.presignGetBatch,

		api.PutGrant:      s.putGrant,
		api.RevokeGrant:   s.revokeGrant,
		api.ListGrants:    s.listGrants,
		api.GrantRegister: s.grantRegister, // access.go

		api.ListMembers:  s.listMembers, // access.go
		api.AddMember:    s.addMember,
		api.RemoveMember: s.removeMember,

		api.FreezeAccess:   s.freeze, // access.go
		api.UnfreezeAccess: s.unfreeze,
		api.ListFreezes:    s.listFreezes,

		api.ListAudit:   s.auditList, // audit.go
		api.VerifyAudit: s.auditVerify,
		api.ExportAudit: s.auditExport,

		// Key rotation and dataset deletion (lifecycle.go): audited state
		// changes of a whole dataset.
		api.RotateKey:         s.rotateKey,
		api.DeleteDataset:     s.hidesGrants(s.deleteDataset), // grants.go
		api.UndeleteDataset:   s.hidesGrants(s.undeleteDataset),
		api.GetDeletionReport: s.deletionReport,
		api.ListJobs:          s.listJobs,
		api.ShowJob:           s.showJob,
		api.CancelJob:         s.cancelJob,

		api.StartScrub:  s.postScrub, // scrub.go
		api.ListScrubs:  s.listScrubs,
		api.ShowScrub:   s.showScrub,
		api.CancelScrub: s.cancelScrub,

		api.ListTargets: s.listTargets, // ops.go
		api.Metrics:     s.metrics,
		api.MetricsRoot: s.metrics,
	}
}

// boundRoute is a route of the table with its handler.
type boundRoute struct {
	*api.Route
	h handlerFunc
}

// bind pairs every route of table with its handler in hs, in the table's
// order. A route without a handler, or a handler without a route, is an
// error: dozod serves exactly the table.
func bind(table []*api.Route, hs map[*api.Route]handlerFunc) ([]boundRoute, error) {
	var out []boundRoute
	seen := map[*api.Route]bool{}
	for _, rt := range table {
		h := hs[rt]
		if h == nil {
			return nil, fmt.Errorf("API route %s (%q) has no handler", rt.Pattern, rt.Action)
		}
		seen[rt] = true
		out = append(out, boundRoute{rt, h})
	}
	for rt := range hs {
		if !seen[rt] {
			return nil, fmt.Errorf("handler for %s (%q), which is not in the API route table", rt.Pattern, rt.Action)
		}
	}
	return out, nil
}

// routes registers everything dozod serves: the API from its table, the
// web console, and a 404 for anything else.
func (s *Server) routes() {
	bound, err := bind(api.Routes, s.handlers())
	if err != nil {
		panic("broker: " + err.Error()) // a build that cannot serve its own API
	}
	for _, b := range bound {
		s.route(b.Pattern, b.Action, b.Login, b.h)
	}
	s.consoleRoutes()
	s.route("/", "unknown", false, func(q *request) error {
		return errorf(http.StatusNotFound, "no such endpoint: %s %s", q.r.Method, q.r.URL.Path)
	})
}

// consoleRoutes registers the web console's pages and forms (console*.go).
// They are not in the API table: they are HTML pages and forms for a
// browser, authenticated by a session cookie and a CSRF token (uiRoute),
// linked by templates rather than called by the client, and each has the
// rule of the API calls it makes with the session's token. The matrix
// test gives each of them a row all the same.
func (s *Server) consoleRoutes() {
	if err := s.initConsole(); err != nil {
		panic("console: " + err.Error()) // the embedded files are part of the binary
	}
	// Assets, the login form and the language switch reveal nothing and
	// change nothing: like health, they are not recorded one by one.
	s.route("GET /ui/static/{file}", "", false, s.uiStatic)
	s.route("GET /ui/login", "", false, s.uiLoginForm)
	s.route("GET /ui/lang/{lang}", "", false, s.uiLang)
	s.route("POST /ui/login", "ui.login", false, s.uiLogin)
	s.route("GET /ui/login/oidc", "", false, s.uiOIDCStart)
	s.route("GET "+oidcCallbackPath, "ui.login", false, s.uiOIDCCallback)
	s.uiRoute("POST /ui/logout", "ui.logout", s.uiLogout)
	s.uiRoute("GET /ui/{$}", "ui.datasets", s.uiDatasets)
	s.uiRoute("GET /ui/datasets", "ui.datasets", s.uiDatasets)
	s.uiRoute("GET /ui/datasets/{ds}", "ui.register", s.uiRegister)
	s.uiRoute("GET /ui/datasets/{ds}/register.csv", "ui.register.export", s.uiRegister)
	s.uiRoute("POST /ui/datasets/{ds}/grants", "ui.grant", s.uiGrant)
	s.uiRoute("POST /ui/datasets/{ds}/grants/{user}/revoke", "ui.revoke", s.uiRevoke)
	s.uiRoute("GET /ui/register", "ui.register.all", s.uiRegister)
	s.uiRoute("GET /ui/register.csv", "ui.register.export", s.uiRegister)
	// The audit, operators' and researcher's pages (console_more.go).
	s.uiRoute("GET /ui/audit", "ui.audit", s.uiAudit)
	s.uiRoute("GET /ui/audit/verify", "ui.audit.verify", s.uiAudit)
	s.uiRoute("GET /ui/audit/export", "ui.audit.export", s.uiAuditExport)
	s.uiRoute("GET /ui/ops", "ui.ops", s.uiOps)
	s.uiRoute("POST /ui/ops/freezes", "ui.freeze", s.uiFreeze)
	s.uiRoute("POST /ui/ops/freezes/{kind}/{name}/lift", "ui.unfreeze", s.uiUnfreeze)
	s.uiRoute("POST /ui/ops/scrubs", "ui.scrub", s.uiScrub)
	s.uiRoute("POST /ui/ops/scrubs/{id}/cancel", "ui.scrub.cancel", s.uiScrubCancel)
	s.uiRoute("POST /ui/ops/jobs/{id}/cancel", "ui.job.cancel", s.uiJobCancel)
	s.uiRoute("GET /ui/datasets/{ds}/deletion-report", "ui.deletion-report", s.uiDeletionReport)
	s.uiRoute("GET /ui/deletion-report", "ui.deletion-report", s.uiDeletionReport) // ?dataset=ID, the operators' page's form
	s.uiRoute("GET /ui/me", "ui.me", s.uiMe)
}

// routeInfo is one registered route, recorded so that tests can walk every
// endpoint the server really serves.
type routeInfo struct {
	pattern string
	action  string
	auth    bool
}
