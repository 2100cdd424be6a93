package broker

// The authorisation matrix: every route the Server registers × every role
// × every grant state, each cell checked against the explicit expectation
// tables below. A route registered without a row in matrixRoutes fails the
// test, so a new endpoint cannot ship without a stated rule.
//
// To add a route: add a row to matrixRoutes naming its rule (an existing
// one, or a new table in matrixRules) and how to build a request that
// succeeds when the rule allows it.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/filestore"
	"github.com/dozo-vault/dozo/storage"
)

// Roles (rows) and states (columns) of the matrix. The caller of each cell
// is one of the users below; the state is the caller's own grant on the
// dataset (stranger never holds one), or a freeze: frozenUser is the
// caller frozen while holding an active grant, frozenDataset the dataset
// frozen while the caller holds an active grant; deleted is the dataset's
// deletion run and finished while the caller holds an active grant.
var (
	matrixRoles  = []string{"anonymous", "stranger", "researcher", "submitter", "custodian", "admin"}
	matrixStates = []string{"none", "active", "expired", "revoked", "future", "frozenUser", "frozenDataset", "deleted"}
	matrixUsers  = map[string]string{"stranger": "eve", "researcher": "rita", "submitter": "sam", "custodian": "cara", "admin": "admin"}
)

// Outcomes: ok = 2xx; 401 = no valid token; 404 = the uniform "not found"
// (also checked to be byte-identical, ids aside, to the answer for an
// object that does not exist); 403 = refused, and not because of a freeze;
// frz = 403 saying an administrator froze access; 410 = the dataset was
// deleted, said to those who may know it (its custodians, admins, the
// uploader of a session on it).
//
// Columns: none active expired revoked future frozenUser frozenDataset deleted.
var matrixRules = map[string]map[string]string{
	"public": { // health: no token needed
		"anonymous":  "ok  ok  ok  ok  ok  ok  ok  ok",
		"stranger":   "ok  ok  ok  ok  ok  ok  ok  ok",
		"researcher": "ok  ok  ok  ok  ok  ok  ok  ok",
		"submitter":  "ok  ok  ok  ok  ok  ok  ok  ok",
		"custodian":  "ok  ok  ok  ok  ok  ok  ok  ok",
		"admin":      "ok  ok  ok  ok  ok  ok  ok  ok",
	},
	"signOnCallback": { // single sign-on where it is not set up, or a callback this browser did not start: refused for anyone
		"anonymous":  "400 400 400 400 400 400 400 400",
		"stranger":   "400 400 400 400 400 400 400 400",
		"researcher": "400 400 400 400 400 400 400 400",
		"submitter":  "400 400 400 400 400 400 400 400",
		"custodian":  "400 400 400 400 400 400 400 400",
		"admin":      "400 400 400 400 400 400 400 400",
	},
	"unknown": { // no such endpoint
		"anonymous":  "404 404 404 404 404 404 404 404",
		"stranger":   "404 404 404 404 404 404 404 404",
		"researcher": "404 404 404 404 404 404 404 404",
		"submitter":  "404 404 404 404 404 404 404 404",
		"custodian":  "404 404 404 404 404 404 404 404",
		"admin":      "404 404 404 404 404 404 404 404",
	},
	"whoami": { // a frozen user may still learn that they are frozen
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "ok  ok  ok  ok  ok  ok  ok  ok",
		"researcher": "ok  ok  ok  ok  ok  ok  ok  ok",
		"submitter":  "ok  ok  ok  ok  ok  ok  ok  ok",
		"custodian":  "ok  ok  ok  ok  ok  ok  ok  ok",
		"admin":      "ok  ok  ok  ok  ok  ok  ok  ok",
	},
	"user": { // any logged-in user who is not frozen
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "ok  ok  ok  ok  ok  frz ok  ok",
		"researcher": "ok  ok  ok  ok  ok  frz ok  ok",
		"submitter":  "ok  ok  ok  ok  ok  frz ok  ok",
		"custodian":  "ok  ok  ok  ok  ok  frz ok  ok",
		"admin":      "ok  ok  ok  ok  ok  frz ok  ok",
	},
	"create": { // dozod's `submitters` (sam) and admins
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "403 403 403 403 403 frz 403 403",
		"researcher": "403 403 403 403 403 frz 403 403",
		"submitter":  "ok  ok  ok  ok  ok  frz ok  ok",
		"custodian":  "403 403 403 403 403 frz 403 403",
		"admin":      "ok  ok  ok  ok  ok  frz ok  ok",
	},
	"visible": { // dataset metadata: any role on the dataset
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 ok  403 403 403 frz ok  404",
		"submitter":  "ok  ok  ok  ok  ok  frz ok  404",
		"custodian":  "ok  ok  ok  ok  ok  frz ok  410",
		"admin":      "ok  ok  ok  ok  ok  frz ok  410",
	},
	"visibleRead": { // file lists: as visible, and the dataset not frozen
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 ok  403 403 403 frz frz 404",
		"submitter":  "ok  ok  ok  ok  ok  frz frz 404",
		"custodian":  "ok  ok  ok  ok  ok  frz frz 410",
		"admin":      "ok  ok  ok  ok  ok  frz frz 410",
	},
	"submit": { // begin upload: the dataset's submitters and admins
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 403 403 403 403 frz 403 404",
		"submitter":  "ok  ok  ok  ok  ok  frz frz 404",
		"custodian":  "403 403 403 403 403 frz 403 410",
		"admin":      "ok  ok  ok  ok  ok  frz frz 410",
	},
	"ownUpload": { // show or abort an upload: its creator (sam) and admins
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 404 404 404 404 frz 404 404",
		"submitter":  "ok  ok  ok  ok  ok  frz ok  410",
		"custodian":  "404 404 404 404 404 frz 404 404",
		"admin":      "ok  ok  ok  ok  ok  frz ok  410",
	},
	"ownUploadAbort": { // abort: as ownUpload; a deletion that ran ended the session already
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 404 404 404 404 frz 404 404",
		"submitter":  "ok  ok  ok  ok  ok  frz ok  ok",
		"custodian":  "404 404 404 404 404 frz 404 404",
		"admin":      "ok  ok  ok  ok  ok  frz ok  ok",
	},
	"ownUploadWrite": { // add to an upload: as ownUpload, and the dataset not frozen
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 404 404 404 404 frz 404 404",
		"submitter":  "ok  ok  ok  ok  ok  frz frz 410",
		"custodian":  "404 404 404 404 404 frz 404 404",
		"admin":      "ok  ok  ok  ok  ok  frz frz 410",
	},
	"readData": { // fetch: grantee, submitter or custodian; admin only with a grant
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 ok  403 403 403 frz frz 404",
		"submitter":  "ok  ok  ok  ok  ok  frz frz 404",
		"custodian":  "ok  ok  ok  ok  ok  frz frz 410",
		"admin":      "403 ok  403 403 403 frz frz 410",
	},
	"grantChange": { // new grants: custodian or admin, dataset not frozen
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 403 403 403 403 frz 403 404",
		"submitter":  "403 403 403 403 403 frz 403 404",
		"custodian":  "ok  ok  ok  ok  ok  frz frz 410",
		"admin":      "ok  ok  ok  ok  ok  frz frz 410",
	},
	"custodian": { // revoke, review: custodian or admin, also when the dataset is frozen
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 403 403 403 403 frz 403 404",
		"submitter":  "403 403 403 403 403 frz 403 404",
		"custodian":  "ok  ok  ok  ok  ok  frz ok  410",
		"admin":      "ok  ok  ok  ok  ok  frz ok  410",
	},
	"lifecycle": { // rotate-key, delete: as custodian, but refused (409) while the dataset is frozen
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 403 403 403 403 frz 403 404",
		"submitter":  "403 403 403 403 403 frz 403 404",
		"custodian":  "ok  ok  ok  ok  ok  frz 409 410",
		"admin":      "ok  ok  ok  ok  ok  frz 409 410",
	},
	"deleteDataset": { // delete: as lifecycle; repeated after the deletion ran, it answers with the report
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 403 403 403 403 frz 403 404",
		"submitter":  "403 403 403 403 403 frz 403 404",
		"custodian":  "ok  ok  ok  ok  ok  frz 409 ok",
		"admin":      "ok  ok  ok  ok  ok  frz 409 ok",
	},
	"deletionReport": { // as custodianNoReport; once the deletion ran, the report
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 403 403 403 403 frz 403 404",
		"submitter":  "403 403 403 403 403 frz 403 404",
		"custodian":  "409 409 409 409 409 frz 409 ok",
		"admin":      "409 409 409 409 409 frz 409 ok",
	},
	"auditDataset": { // a dataset's audit: as custodian; admins read it after a deletion too
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 403 403 403 403 frz 403 404",
		"submitter":  "403 403 403 403 403 frz 403 404",
		"custodian":  "ok  ok  ok  ok  ok  frz ok  410",
		"admin":      "ok  ok  ok  ok  ok  frz ok  ok",
	},
	"custodianNoReport": { // as custodian; the fixture's dataset has no deletion (no report, nothing to undelete), so an allowed caller gets 409
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 403 403 403 403 frz 403 404",
		"submitter":  "403 403 403 403 403 frz 403 404",
		"custodian":  "409 409 409 409 409 frz 409 409",
		"admin":      "409 409 409 409 409 frz 409 409",
	},
	"jobDataset": { // a job of the dataset: its custodians and admins, also while frozen and after its deletion (to follow it)
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "404 404 404 404 404 frz 404 404",
		"researcher": "404 403 403 403 403 frz 403 404",
		"submitter":  "403 403 403 403 403 frz 403 404",
		"custodian":  "ok  ok  ok  ok  ok  frz ok  ok",
		"admin":      "ok  ok  ok  ok  ok  frz ok  ok",
	},
	"admin": { // operators only
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "403 403 403 403 403 frz 403 403",
		"researcher": "403 403 403 403 403 frz 403 403",
		"submitter":  "403 403 403 403 403 frz 403 403",
		"custodian":  "403 403 403 403 403 frz 403 403",
		"admin":      "ok  ok  ok  ok  ok  frz ok  ok",
	},
	"adminDataset": { // operators only, on a dataset that exists
		"anonymous":  "401 401 401 401 401 401 401 401",
		"stranger":   "403 403 403 403 403 frz 403 403",
		"researcher": "403 403 403 403 403 frz 403 403",
		"submitter":  "403 403 403 403 403 frz 403 403",
		"custodian":  "403 403 403 403 403 frz 403 403",
		"admin":      "ok  ok  ok  ok  ok  frz ok  404",
	},
}

// matrixRoute is one row: the action the route must record, its rule, and
// a request that succeeds whenever the rule allows it.
type matrixRoute struct {
	action string
	rule   string
	req    func(fx *fixture) (method, path string, body any)
}

var matrixRoutes = map[string]matrixRoute{
	"GET /v1/health": {"", "public", get("/v1/health")},
	"/":              {"unknown", "unknown", get("/v1/no-such-endpoint")},
	"GET /v1/whoami": {"whoami", "whoami", get("/v1/whoami")},
	"PUT /v1/me/recipient": {"recipient.set", "user", func(fx *fixture) (string, string, any) {
		return "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: fx.recipient}
	}},
	"POST /v1/datasets": {"dataset.create", "create", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD000002", Title: "new"}
	}},
	"GET /v1/datasets": {"dataset.list", "user", get("/v1/datasets")},
	"GET /v1/datasets/{ds}": {"dataset.show", "visible", func(fx *fixture) (string, string, any) {
		return "GET", "/v1/datasets/" + fx.ds, nil
	}},
	"GET /v1/datasets/{ds}/files": {"file.list", "visibleRead", func(fx *fixture) (string, string, any) {
		return "GET", "/v1/datasets/" + fx.ds + "/files", nil
	}},
	"POST /v1/datasets/{ds}/uploads": {"upload.begin", "submit", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/datasets/" + fx.ds + "/uploads", api.BeginUploadRequest{Name: "new.vcf", Size: 10,
			FileKey: base64.StdEncoding.EncodeToString(make([]byte, 16)), Nonce: base64.StdEncoding.EncodeToString(make([]byte, 16))}
	}},
	"GET /v1/uploads/{upload}": {"upload.show", "ownUpload", func(fx *fixture) (string, string, any) {
		return "GET", "/v1/uploads/" + fx.upload, nil
	}},
	"POST /v1/uploads/{upload}/presign": {"upload.presign", "ownUploadWrite", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/uploads/" + fx.upload + "/presign", fx.putPiece
	}},
	"PUT /v1/uploads/{upload}/segments/{n}": {"upload.commit", "ownUploadWrite", func(fx *fixture) (string, string, any) {
		return "PUT", "/v1/uploads/" + fx.upload + "/segments/0", fx.seg
	}},
	"POST /v1/uploads/{upload}/complete": {"upload.complete", "ownUploadWrite", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/uploads/" + fx.complete + "/complete", api.CompleteUploadRequest{SHA256: strings.Repeat("0", 64), MD5: strings.Repeat("0", 32)}
	}},
	"DELETE /v1/uploads/{upload}": {"upload.abort", "ownUploadAbort", func(fx *fixture) (string, string, any) {
		return "DELETE", "/v1/uploads/" + fx.upload, nil
	}},
	"POST /v1/datasets/{ds}/files/{name}/fetch": {"file.fetch", "readData", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/datasets/" + fx.ds + "/files/" + fx.file + "/fetch", nil
	}},
	"POST /v1/fetches/{file}/presign": {"fetch.presign", "readData", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/fetches/" + fx.fileID + "/presign", fx.getPiece
	}},
	"PUT /v1/datasets/{ds}/grants/{user}": {"grant.put", "grantChange", func(fx *fixture) (string, string, any) {
		return "PUT", "/v1/datasets/" + fx.ds + "/grants/bob", api.GrantRequest{Until: "2026-04-01", ApplicationID: "J-DU000002", Institution: "NIG"}
	}},
	"DELETE /v1/datasets/{ds}/grants/{user}": {"grant.revoke", "custodian", func(fx *fixture) (string, string, any) {
		return "DELETE", "/v1/datasets/" + fx.ds + "/grants/bob", api.RevokeRequest{Reason: "done"}
	}},
	"GET /v1/datasets/{ds}/grants": {"grant.list", "custodian", func(fx *fixture) (string, string, any) {
		return "GET", "/v1/datasets/" + fx.ds + "/grants?history=true", nil
	}},
	"GET /v1/grants": {"grant.register", "user", get("/v1/grants")},
	"POST /v1/admin/freezes": {"admin.freeze", "admin", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/admin/freezes", api.FreezeRequest{Kind: "user", Name: "bob", Reason: "incident"}
	}},
	"DELETE /v1/admin/freezes/{kind}/{name}": {"admin.unfreeze", "admin", func(fx *fixture) (string, string, any) {
		return "DELETE", "/v1/admin/freezes/user/mallory", api.UnfreezeRequest{Reason: "resolved"}
	}},
	"GET /v1/admin/freezes": {"admin.freezes", "admin", get("/v1/admin/freezes?all=true")},
	"GET /v1/datasets/{ds}/members": {"member.list", "custodian", func(fx *fixture) (string, string, any) {
		return "GET", "/v1/datasets/" + fx.ds + "/members", nil
	}},
	"PUT /v1/datasets/{ds}/members/{user}/{role}": {"member.add", "grantChange", func(fx *fixture) (string, string, any) {
		return "PUT", "/v1/datasets/" + fx.ds + "/members/bob/submitter", nil
	}},
	"DELETE /v1/datasets/{ds}/members/{user}/{role}": {"member.remove", "custodian", func(fx *fixture) (string, string, any) {
		return "DELETE", "/v1/datasets/" + fx.ds + "/members/dora/submitter", nil
	}},
	// Batch presigns: the single presign's rule, piece by piece.
	"POST /v1/uploads/{upload}/presign-batch": {"upload.presign-batch", "ownUploadWrite", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/uploads/" + fx.upload + "/presign-batch", api.PresignBatchRequest{Pieces: []api.PresignRequest{fx.putPiece}}
	}},
	"POST /v1/fetches/{file}/presign-batch": {"fetch.presign-batch", "readData", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/fetches/" + fx.fileID + "/presign-batch", api.FetchBatchRequest{First: 0, Count: 1}
	}},
	// Audit (issue 4): the whole log is the operators'; a custodian reads
	// their dataset's records.
	"GET /v1/audit": {"audit.list", "auditDataset", func(fx *fixture) (string, string, any) {
		return "GET", "/v1/audit?dataset=" + fx.ds, nil
	}},
	"GET /v1/audit/verify": {"audit.verify", "admin", get("/v1/audit/verify")},
	"GET /v1/audit/export": {"audit.export", "admin", get("/v1/audit/export")},
	// A client's report that a fetch finished: the fetch's own rule.
	"POST /v1/fetches/{file}/done": {"file.fetch.done", "readData", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/fetches/" + fx.fileID + "/done", api.FetchDoneRequest{Bytes: 1000, Verified: true, ElapsedMS: 12}
	}},
	// Key lifecycle: custodian or admin; a frozen dataset's key neither
	// changes nor goes until an admin lifts the freeze. delete schedules
	// (202); undelete cancels a scheduled deletion (the fixture has none).
	"POST /v1/datasets/{ds}/rotate-key": {"dataset.rotate-key", "lifecycle", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/datasets/" + fx.ds + "/rotate-key", nil
	}},
	"POST /v1/datasets/{ds}/delete": {"dataset.delete", "deleteDataset", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/datasets/" + fx.ds + "/delete", api.DeleteDatasetRequest{Confirm: fx.ds}
	}},
	"POST /v1/datasets/{ds}/undelete": {"dataset.undelete", "custodianNoReport", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/datasets/" + fx.ds + "/undelete", nil
	}},
	"GET /v1/datasets/{ds}/deletion-report": {"dataset.deletion-report", "deletionReport", func(fx *fixture) (string, string, any) {
		return "GET", "/v1/datasets/" + fx.ds + "/deletion-report", nil
	}},
	// Jobs: an admin sees all; a custodian their datasets' (the list
	// shows others none); cancelling is as seeing.
	"GET /v1/jobs":      {"job.list", "user", get("/v1/jobs")},
	"GET /v1/jobs/{id}": {"job.show", "jobDataset", func(fx *fixture) (string, string, any) { return "GET", "/v1/jobs/" + fx.job, nil }},
	"DELETE /v1/jobs/{id}": {"job.cancel", "jobDataset", func(fx *fixture) (string, string, any) {
		return "DELETE", "/v1/jobs/" + fx.job, nil
	}},
	// Scrubs, targets and metrics (issue 5): operators only.
	"POST /v1/scrubs": {"scrub.start", "adminDataset", func(fx *fixture) (string, string, any) {
		return "POST", "/v1/scrubs", api.ScrubRequest{Dataset: fx.ds}
	}},
	"GET /v1/scrubs":      {"scrub.list", "admin", get("/v1/scrubs")},
	"GET /v1/scrubs/{id}": {"scrub.show", "admin", get("/v1/scrubs/" + matrixScrubRun)},
	"DELETE /v1/scrubs/{id}": {"scrub.cancel", "admin", func(fx *fixture) (string, string, any) {
		return "DELETE", "/v1/scrubs/" + matrixScrubRun, nil
	}},
	"GET /v1/metrics": {"metrics", "admin", get("/v1/metrics")},
	"GET /metrics":    {"metrics", "admin", get("/metrics")},
	"GET /v1/targets": {"target.list", "admin", get("/v1/targets")},

	// The web console (console*.go): each page and form has the rule of
	// the API calls it makes with the session's token. Anonymous callers
	// get the login form with 401; form posts carry the session's CSRF
	// token (uiMatrixCall).
	"GET /ui/static/{file}":       {"", "public", get("/ui/static/console.css")},
	"GET /ui/login":               {"", "public", get("/ui/login")},
	"GET /ui/lang/{lang}":         {"", "public", get("/ui/lang/ja?next=/ui/datasets")},
	"POST /ui/login":              {"ui.login", "whoami", uiPost("/ui/login", nil)},
	"POST /ui/logout":             {"ui.logout", "whoami", uiPost("/ui/logout", nil)},
	"GET /ui/login/oidc":          {"", "signOnCallback", get("/ui/login/oidc?next=/ui/datasets")},
	"GET /ui/login/oidc/callback": {"ui.login", "signOnCallback", get("/ui/login/oidc/callback?state=st_forged&code=x")},
	"GET /ui/{$}":                 {"ui.datasets", "user", get("/ui/")},
	"GET /ui/datasets":            {"ui.datasets", "user", get("/ui/datasets")},
	"GET /ui/datasets/{ds}": {"ui.register", "custodian", func(fx *fixture) (string, string, any) {
		return "GET", "/ui/datasets/" + fx.ds + "?state=active", nil
	}},
	"GET /ui/datasets/{ds}/register.csv": {"ui.register.export", "custodian", func(fx *fixture) (string, string, any) {
		return "GET", "/ui/datasets/" + fx.ds + "/register.csv", nil
	}},
	"POST /ui/datasets/{ds}/grants": {"ui.grant", "grantChange", func(fx *fixture) (string, string, any) {
		return "POST", "/ui/datasets/" + fx.ds + "/grants", url.Values{"user": {"bob"}, "until": {"2026-04-01"},
			"application": {"J-DU000002"}, "institution": {"NIG"}}
	}},
	"POST /ui/datasets/{ds}/grants/{user}/revoke": {"ui.revoke", "custodian", func(fx *fixture) (string, string, any) {
		return "POST", "/ui/datasets/" + fx.ds + "/grants/bob/revoke", url.Values{"reason": {"done"}}
	}},
	"GET /ui/register":     {"ui.register.all", "user", get("/ui/register?state=active")},
	"GET /ui/register.csv": {"ui.register.export", "user", get("/ui/register.csv")},
	"GET /ui/audit": {"ui.audit", "auditDataset", func(fx *fixture) (string, string, any) {
		return "GET", "/ui/audit?dataset=" + fx.ds + "&result=ok", nil
	}},
	"GET /ui/audit/verify": {"ui.audit.verify", "admin", get("/ui/audit/verify")},
	"GET /ui/audit/export": {"ui.audit.export", "admin", get("/ui/audit/export")},
	"GET /ui/ops":          {"ui.ops", "admin", get("/ui/ops")},
	"POST /ui/ops/freezes": {"ui.freeze", "admin", uiPost("/ui/ops/freezes", url.Values{"kind": {"user"}, "name": {"bob"}, "reason": {"incident"}})},
	"POST /ui/ops/freezes/{kind}/{name}/lift": {"ui.unfreeze", "admin",
		uiPost("/ui/ops/freezes/user/mallory/lift", url.Values{"reason": {"resolved"}})},
	"POST /ui/ops/scrubs": {"ui.scrub", "adminDataset", func(fx *fixture) (string, string, any) {
		return "POST", "/ui/ops/scrubs", url.Values{"dataset": {fx.ds}}
	}},
	"POST /ui/ops/scrubs/{id}/cancel": {"ui.scrub.cancel", "admin", uiPost("/ui/ops/scrubs/"+matrixScrubRun+"/cancel", nil)},
	"POST /ui/ops/jobs/{id}/cancel": {"ui.job.cancel", "jobDataset", func(fx *fixture) (string, string, any) {
		return "POST", "/ui/ops/jobs/" + fx.job + "/cancel", nil
	}},
	"GET /ui/datasets/{ds}/deletion-report": {"ui.deletion-report", "deletionReport", func(fx *fixture) (string, string, any) {
		return "GET", "/ui/datasets/" + fx.ds + "/deletion-report", nil
	}},
	"GET /ui/deletion-report": {"ui.deletion-report", "deletionReport", func(fx *fixture) (string, string, any) {
		return "GET", "/ui/deletion-report?dataset=" + fx.ds, nil
	}},
	"GET /ui/me": {"ui.me", "whoami", get("/ui/me")},
}

func uiPost(path string, form url.Values) func(*fixture) (string, string, any) {
	return func(*fixture) (string, string, any) { return "POST", path, form }
}

func get(path string) func(*fixture) (string, string, any) {
	return func(*fixture) (string, string, any) { return "GET", path, nil }
}

// fixture is the world of one cell: dataset fx.ds holds an available file;
// sam (its submitter) has an open upload with segment 0 stored but not
// committed, and another upload with every segment committed; bob holds an
// active grant; dora is another submitter; mallory is frozen.
type fixture struct {
	ds, file, fileID string
	getPiece         api.PresignRequest // a piece of the available file
	upload           string             // open, segment 0 stored, not committed
	seg              storage.SegmentMeta
	putPiece         api.PresignRequest // a piece of upload
	complete         string             // every segment committed
	recipient        string
	job              string // a queued job on ds
}

// missing is the same fixture with every id replaced by one that does not
// exist, for comparing "not found" answers.
func (fx fixture) missing() fixture {
	m := fx
	m.ds, m.file = "JGAD999999", "missing.vcf"
	m.fileID, m.upload, m.complete = flipLast(fx.fileID), flipLast(fx.upload), flipLast(fx.complete)
	m.job = flipLast(fx.job)
	return m
}

func flipLast(id string) string {
	if strings.HasSuffix(id, "0") {
		return id[:len(id)-1] + "1"
	}
	return id[:len(id)-1] + "0"
}

// matrixWorld holds what every cell shares: storage targets, the Transit
// stand-in, and a golden catalog with the fixture, copied for each cell
// (building it per cell would cost a thousand rounds of fsyncs).
type matrixWorld struct {
	targets  []Target
	stargets []storage.Target
	keys     *versionedKeys // cloned per cell: rotate-key and delete change it
	dir      string
	golden   []byte
	fx       fixture
}

var matrixTokens = fakeIdentity{"tok-admin": "admin", "tok-cara": "cara", "tok-sam": "sam", "tok-rita": "rita", "tok-eve": "eve"}

// cellTarget keeps pieces on the shared targets when a cell aborts an
// upload or deletes the dataset, so later cells still find them; within
// its cell a deleted key is gone from listings, as a dataset deletion
// checks.
type cellTarget struct {
	dirTarget
	deleted *sync.Map
}

func (c cellTarget) Delete(_ context.Context, key string) error {
	c.deleted.Store(key, true)
	return nil
}

func (c cellTarget) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	return c.dirTarget.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if _, gone := c.deleted.Load(oi.Key); gone {
			return nil
		}
		return fn(oi)
	})
}

// matrixScrubRun is a finished scrub run in the fixture.
const matrixScrubRun = "scrub-fixture"

var matrixNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (w *matrixWorld) server(t *testing.T, cat *catalog.Catalog, keys KeyService) *env {
	e := &env{t: t, cat: cat, targets: w.stargets, now: matrixNow, logs: &bytes.Buffer{}}
	deleted := &sync.Map{}
	targets := make([]Target, len(w.stargets))
	for i, d := range w.stargets {
		targets[i] = cellTarget{dirTarget{d.(*storage.DirTarget)}, deleted}
	}
	var err error
	defer func() {
		if e.srv != nil {
			e.srv.console.login = fakeConsoleLogin // console_test.go
		}
	}()
	e.srv, err = New(Options{
		Catalog: cat, Identifier: matrixTokens, Keys: keys, Targets: targets,
		Admins: []string{"admin"}, Submitters: []string{"sam"},
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)), Version: "test",
		Now: func() time.Time { return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// newMatrixWorld builds the fixture: dataset JGAD000001 whose custodian is
// cara only and submitter sam only, an available file, sam's two uploads,
// bob's active grant, mallory's freeze, and everyone's recipient.
func newMatrixWorld(t *testing.T) *matrixWorld {
	ctx := context.Background()
	w := &matrixWorld{dir: scratchDir(t), keys: &versionedKeys{}}
	for _, srv := range []string{"s1", "s2", "s3"} {
		for _, b := range []string{"a", "b"} {
			d, err := storage.NewDirTarget(srv+"-"+b, srv, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			w.stargets = append(w.stargets, d)
		}
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(w.dir, "golden.db")
	cat, err := catalog.Open(ctx, path)
	must(err)
	e := w.server(t, cat, w.keys)
	fx := &w.fx
	*fx = fixture{ds: "JGAD000001", file: "a.vcf", recipient: id.Recipient().String()}
	must(w.keys.CreateKey(ctx, api.TransitKeyName(fx.ds)))
	l, _ := filestore.Layout(4, 2, 1<<20)
	must(cat.CreateDataset(ctx, catalog.Dataset{ID: fx.ds, Title: "t", K: 4, M: 2, PlainSegmentSize: 1 << 20, SegmentSize: l.SegmentSize,
		TransitKey: api.TransitKeyName(fx.ds), CreatedBy: "cara", CreatedAt: e.now}))
	must(cat.RemoveMember(ctx, fx.ds, catalog.ByName("cara"), catalog.RoleSubmitter))
	must(cat.AddMember(ctx, fx.ds, "sam", "", catalog.RoleSubmitter, "cara", e.now))
	must(cat.AddMember(ctx, fx.ds, "dora", "", catalog.RoleSubmitter, "cara", e.now))
	for _, u := range []string{"admin", "cara", "sam", "rita", "eve"} {
		must(cat.SetRecipient(ctx, u, fx.recipient, e.now))
	}
	// Every user of the matrix is known: seen logging in (which binds
	// the rows above to their entities).
	for _, u := range []string{"admin", "cara", "sam", "rita", "eve", "dora", "bob"} {
		must(cat.SeenUser(ctx, u, "userpass", fakeEntity(u), e.now))
	}
	data := randBytes(1000)
	f := e.upload("tok-sam", fx.ds, fx.file, data, randBytes(16), randBytes(16))
	fx.fileID = f.ID
	p, _ := storage.Place(w.stargets, l, 0)
	fx.getPiece = api.PresignRequest{Target: p[0].ID(), Key: storage.PieceKey(fx.ds, f.ID, 0, 0)}

	// An upload with its one segment stored, not committed.
	var up api.Upload
	key, nonce := randBytes(16), randBytes(16)
	e.must(201, "tok-sam", "POST", "/v1/datasets/"+fx.ds+"/uploads", api.BeginUploadRequest{Name: "b.vcf", Size: 1000,
		FileKey: base64.StdEncoding.EncodeToString(key), Nonce: base64.StdEncoding.EncodeToString(nonce)}, &up)
	_, err = filestore.Write(ctx, bytes.NewReader(data), filestore.WriteOptions{
		DatasetID: up.Dataset, FileID: up.FileID, Layout: l, Targets: w.stargets, HashAlg: up.HashAlg, FileKey: key, Nonce: nonce,
		OnSegment: func(s storage.SegmentMeta) error { fx.seg = s; return nil },
	})
	must(err)
	fx.upload = up.ID
	fx.putPiece = api.PresignRequest{Target: p[1].ID(), Key: storage.PieceKey(fx.ds, up.FileID, 0, 1)}

	// An upload with every segment committed.
	var up2 api.Upload
	key, nonce = randBytes(16), randBytes(16)
	e.must(201, "tok-sam", "POST", "/v1/datasets/"+fx.ds+"/uploads", api.BeginUploadRequest{Name: "c.vcf", Size: 1000,
		FileKey: base64.StdEncoding.EncodeToString(key), Nonce: base64.StdEncoding.EncodeToString(nonce)}, &up2)
	e.writeAndCommit("tok-sam", &up2, data, key, nonce)
	fx.complete = up2.ID

	_, err = cat.PutGrant(ctx, catalog.Grant{DatasetID: fx.ds, User: "bob", Until: "2026-03-31", ApplicationID: "J-DU000001",
		Institution: "NIG", GrantedBy: "cara", GrantedAt: e.now})
	must(err)
	_, err = cat.PutFreeze(ctx, catalog.Freeze{Kind: catalog.FreezeUser, Name: "mallory", Reason: "r", FrozenBy: "admin", FrozenAt: e.now})
	must(err)
	must(cat.CreateScrubRun(ctx, catalog.ScrubRun{ID: matrixScrubRun, Trigger: catalog.ScrubManual, StartedBy: "admin",
		State: catalog.ScrubRunning, StartedAt: e.now}, nil))
	must(cat.EndScrubRun(ctx, matrixScrubRun, catalog.ScrubDone, "", e.now))
	// A queued job on the dataset, of a kind no runner here takes.
	fx.job = "job-fixture0"
	must(cat.InsertJob(ctx, catalog.Job{ID: fx.job, Kind: "scrub", DatasetID: fx.ds, RequestedBy: "cara", CreatedAt: e.now}))
	must(cat.Close()) // checkpoints the WAL into the file
	w.golden, err = os.ReadFile(path)
	must(err)
	return w
}

// scratchDir is for the per-cell catalogs: in memory (/dev/shm) where the
// system has it, since SQLite's fsyncs dominate the matrix's run time.
func scratchDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "dozo-matrix-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// cell opens a copy of the golden catalog behind a fresh server and puts
// the caller of role in state.
func (w *matrixWorld) cell(t *testing.T, n int, role, state string) (e *env, fx *fixture, done func()) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(w.dir, fmt.Sprintf("c%d.db", n))
	if err := os.WriteFile(path, w.golden, 0o600); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	e = w.server(t, cat, w.keys.clone())
	done = func() {
		cat.Close()
		for _, sfx := range []string{"", "-wal", "-shm"} {
			os.Remove(path + sfx)
		}
	}
	f := w.fx
	fx = &f
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	user := matrixUsers[role] // "" for anonymous
	grant := func(from, until string) {
		_, err := cat.PutGrant(ctx, catalog.Grant{DatasetID: fx.ds, User: user, From: from, Until: until,
			ApplicationID: "J-DU000001", Institution: "NIG", GrantedBy: "cara", GrantedAt: e.now})
		must(err)
	}
	if user != "" && role != "stranger" { // strangers never hold a grant
		switch state {
		case "active", "frozenUser", "frozenDataset", "deleted":
			grant("2026-03-01", "2026-03-31")
		case "expired":
			grant("2026-01-01", "2026-02-28")
		case "revoked":
			grant("2026-03-01", "2026-03-31")
			_, err := cat.RevokeGrant(ctx, fx.ds, catalog.ByName(user), "cara", "test", e.now)
			must(err)
		case "future":
			grant("2026-03-10", "2026-03-31")
		}
	}
	switch {
	case state == "frozenUser" && user != "":
		_, err = cat.PutFreeze(ctx, catalog.Freeze{Kind: catalog.FreezeUser, Name: user, Reason: "r", FrozenBy: "admin", FrozenAt: e.now})
		must(err)
	case state == "frozenDataset":
		_, err = cat.PutFreeze(ctx, catalog.Freeze{Kind: catalog.FreezeDataset, Name: fx.ds, Reason: "r", FrozenBy: "admin", FrozenAt: e.now})
		must(err)
	case state == "deleted": // scheduled, run and finished, as the catalog records it
		_, err = cat.ScheduleDeletion(ctx, fx.ds, "cara", e.now, e.now)
		must(err)
		_, err = cat.StartDeletion(ctx, fx.ds, "cara", e.now)
		must(err)
		must(cat.FinishDeletion(ctx, fx.ds, []byte(`{"dataset":"`+fx.ds+`"}`), e.now))
	}
	return e, fx, done
}

func TestAuthorizationMatrixTables(t *testing.T) {
	for name, rule := range matrixRules {
		for _, role := range matrixRoles {
			if n := len(strings.Fields(rule[role])); n != len(matrixStates) {
				t.Errorf("rule %s, role %s: %d cells, want %d", name, role, n, len(matrixStates))
			}
		}
		if len(rule) != len(matrixRoles) {
			t.Errorf("rule %s has %d roles, want %d", name, len(rule), len(matrixRoles))
		}
	}
	for p, r := range matrixRoutes {
		if _, ok := matrixRules[r.rule]; !ok {
			t.Errorf("route %s names unknown rule %q", p, r.rule)
		}
	}
}

// matrixVariants are expectation tables that are a route's rule (the
// table of that name) seen through the fixture: the same callers allowed
// and refused, with the answer the fixture's state gives an allowed one.
var matrixVariants = map[string]api.Rule{
	"ownUploadAbort":    api.RuleOwnUpload, // a deletion that ran ended the session already
	"deleteDataset":     api.RuleLifecycle, // repeated after the deletion ran: the report
	"deletionReport":    api.RuleCustodian, // 409 until the deletion ran
	"custodianNoReport": api.RuleCustodian, // the fixture has no deletion to report or undo
	"adminDataset":      api.RuleAdmin,     // on a dataset that exists
}

// TestMatrixCoversRouteTable: every route of the API table has a matrix
// row with its action and its rule, so a route cannot exist without its
// rule checked cell by cell.
func TestMatrixCoversRouteTable(t *testing.T) {
	for _, r := range api.Routes {
		row, ok := matrixRoutes[r.Pattern]
		if !ok {
			t.Errorf("API route %s (action %q, rule %s) has no row in the authorisation matrix (matrixRoutes)", r.Pattern, r.Action, r.Rule)
			continue
		}
		if row.action != r.Action {
			t.Errorf("%s: the table's action is %q, the matrix row's %q", r.Pattern, r.Action, row.action)
		}
		rule, ok := matrixVariants[row.rule]
		if !ok {
			rule = api.Rule(row.rule)
		}
		if rule != r.Rule {
			t.Errorf("%s: the table's rule is %s, the matrix row checks %s", r.Pattern, r.Rule, row.rule)
		}
		if method, _, _ := row.req(&fixture{ds: "D", file: "f", fileID: "F", upload: "U", complete: "C"}); method != r.Method() {
			t.Errorf("%s: the matrix row calls %s", r.Pattern, method)
		}
	}
	for v, rule := range matrixVariants {
		if _, ok := matrixRules[v]; !ok || rule.Doc() == "" {
			t.Errorf("variant %s: no such table, or no rule %s", v, rule)
		}
	}
}

// TestAuthorizationMatrix walks every registered route × role × state on a
// fresh server per cell.
func TestAuthorizationMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the full matrix builds a server per cell")
	}
	w := newMatrixWorld(t)
	// The routes the server really registers, in order.
	probe, _, done := w.cell(t, 0, "anonymous", "none")
	defer done()
	registered := map[string]bool{}
	for _, ri := range probe.srv.routeList {
		registered[ri.pattern] = true
		row, ok := matrixRoutes[ri.pattern]
		if !ok {
			t.Errorf("route %q (action %q) has no row in the authorisation matrix (broker/matrix_test.go matrixRoutes): state its rule", ri.pattern, ri.action)
			continue
		}
		if row.action != ri.action {
			t.Errorf("route %q records action %q, the matrix says %q", ri.pattern, ri.action, row.action)
		}
	}
	for p := range matrixRoutes {
		if !registered[p] {
			t.Errorf("matrix row %q names no registered route", p)
		}
	}
	n, cells := 1, 0
	for _, ri := range probe.srv.routeList {
		row, ok := matrixRoutes[ri.pattern]
		if !ok {
			continue
		}
		for _, role := range matrixRoles {
			want := strings.Fields(matrixRules[row.rule][role])
			for si, state := range matrixStates {
				n++
				cells++
				e, fx, done := w.cell(t, n, role, state)
				checkCell(t, e, fx, ri.pattern, row, role, state, want[si])
				done()
			}
		}
	}
	t.Logf("%d routes, %d cells", len(probe.srv.routeList), cells)
}

func checkCell(t *testing.T, e *env, fx *fixture, pattern string, row matrixRoute, role, state, want string) {
	t.Helper()
	token := ""
	if u := matrixUsers[role]; u != "" {
		token = "tok-" + u
	}
	method, path, body := row.req(fx)
	where := fmt.Sprintf("%s as %s (%s): %s %s", pattern, role, state, method, path)
	if strings.HasPrefix(path, "/ui/") {
		checkUICell(t, e, fx, row, token, where, want)
		return
	}
	code, raw := e.call(token, method, path, body, nil)
	var eb api.Error
	if code/100 != 2 {
		if err := json.Unmarshal(raw, &eb); err != nil {
			t.Errorf("%s: status %d, body not an api.Error: %s", where, code, raw)
			return
		}
	}
	isFrozen := strings.Contains(eb.Error, "access frozen by an administrator")
	switch want {
	case "ok":
		if code/100 != 2 {
			t.Errorf("%s: want allowed, got %d %s", where, code, raw)
		}
	case "409": // allowed, but the object's state forbids it
		if code != 409 {
			t.Errorf("%s: want 409, got %d %s", where, code, raw)
		}
	case "410": // the dataset was deleted, said plainly
		if code != 410 || !strings.Contains(eb.Error, "was deleted on") {
			t.Errorf("%s: want 410 saying the dataset was deleted, got %d %s", where, code, raw)
		}
	case "401":
		if code != 401 {
			t.Errorf("%s: want 401, got %d %s", where, code, raw)
		}
	case "403":
		if code != 403 || isFrozen {
			t.Errorf("%s: want 403 (not a freeze), got %d %s", where, code, raw)
		}
	case "frz":
		if code != 403 || !isFrozen {
			t.Errorf("%s: want the frozen refusal, got %d %s", where, code, raw)
		}
	case "404":
		if code != 404 {
			t.Errorf("%s: want 404, got %d %s", where, code, raw)
			return
		}
		// Uniform: the same words as for objects that do not exist.
		m := fx.missing()
		mm, mp, mb := row.req(&m)
		mcode, mraw := e.call(token, mm, mp, mb, nil)
		var me api.Error
		json.Unmarshal(mraw, &me)
		r := strings.NewReplacer(m.ds, fx.ds, m.file, fx.file, m.fileID, fx.fileID, m.upload, fx.upload, m.complete, fx.complete, m.job, fx.job)
		if mcode != 404 || r.Replace(me.Error) != eb.Error || me.Hint != eb.Hint {
			t.Errorf("%s: 404 differs from a missing object's:\n  %s\n  %s", where, raw, mraw)
		}
	default:
		t.Fatalf("bad expectation %q", want)
	}
}

// checkUICell is checkCell for a console route: its answers are pages
// (a redirect after a form), the refusal's words in the page's error.
func checkUICell(t *testing.T, e *env, fx *fixture, row matrixRoute, token, where, want string) {
	t.Helper()
	method, path, body := row.req(fx)
	code, msg, hint := uiMatrixCall(e, token, method, path, body)
	isFrozen := strings.Contains(msg, "access frozen by an administrator")
	ok := code/100 == 2 || code == http.StatusSeeOther
	switch want {
	case "ok":
		if !ok {
			t.Errorf("%s: want allowed, got %d %q", where, code, msg)
		}
	case "400", "409", "401":
		if fmt.Sprint(code) != want {
			t.Errorf("%s: want %s, got %d %q", where, want, code, msg)
		}
	case "410":
		if code != 410 || !strings.Contains(msg, "was deleted on") {
			t.Errorf("%s: want 410 saying the dataset was deleted, got %d %q", where, code, msg)
		}
	case "403":
		if code != 403 || isFrozen {
			t.Errorf("%s: want 403 (not a freeze), got %d %q", where, code, msg)
		}
	case "frz":
		if code != 403 || !isFrozen {
			t.Errorf("%s: want the frozen refusal, got %d %q", where, code, msg)
		}
	case "404":
		if code != 404 {
			t.Errorf("%s: want 404, got %d %q", where, code, msg)
			return
		}
		m := fx.missing()
		mm, mp, mb := row.req(&m)
		mcode, mmsg, mhint := uiMatrixCall(e, token, mm, mp, mb)
		r := strings.NewReplacer(m.ds, fx.ds, m.file, fx.file, m.fileID, fx.fileID, m.upload, fx.upload, m.complete, fx.complete, m.job, fx.job)
		if mcode != 404 || r.Replace(mmsg) != msg || mhint != hint {
			t.Errorf("%s: 404 differs from a missing object's:\n  %q\n  %q", where, msg, mmsg)
		}
	default:
		t.Fatalf("bad expectation %q", want)
	}
}
