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
		api.DeleteDataset:     s.deleteDataset,
		api.UndeleteDataset:   s.undeleteDataset,
		api.GetDeletionReport: s.deletionReport,

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
//
// The console's pages (/ui/, console_pages.go) are not in the API table:
// they are HTML forms for a browser, authenticated by a session cookie
// and a CSRF token, built by templates rather than by the client, and
// their rule is the rule of the API calls each page makes. The matrix
// test gives each of them a row all the same.
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

// routeInfo is one registered route, recorded so that tests can walk every
// endpoint the server really serves.
type routeInfo struct {
	pattern string
	action  string
	auth    bool
}
