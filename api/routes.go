package api

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"

	"github.com/dozo-vault/dozo/storage"
)

// Route is one endpoint of dozod's HTTP API: the one place its method,
// path, audit action, login and authorisation rule are written. dozod
// registers its handlers from Routes, the client builds its paths with
// Path, and broker/matrix_test.go checks every route's rule cell by cell.
type Route struct {
	// Pattern is the method and path as net/http.ServeMux registers
	// them: "GET /v1/datasets/{ds}". Each {name} wildcard is one path
	// segment.
	Pattern string
	// Action is the name the audit log records for a call; "" for health,
	// which is not recorded one by one. Two routes share an action only
	// when one is an alias of the other (GET /metrics).
	Action string
	// Login: the call needs a valid Vault token ("Authorization: Bearer").
	Login bool
	Rule  Rule
	// Repeatable: the call has the same effect done once or twice, so a
	// client may send it again when it cannot tell whether dozod acted
	// on an earlier try. Every GET is; the others marked here are kept so
	// by dozod (the client's retries read this field).
	Repeatable bool
	// Request and Response are zero values of the JSON body types; nil
	// when there is none (a 204, or a body Note describes).
	Request, Response any
	// Note says what the types do not: query parameters, statuses,
	// bodies other than JSON.
	Note string
}

// Method is the pattern's HTTP method.
func (r *Route) Method() string { m, _, _ := strings.Cut(r.Pattern, " "); return m }

// template is the pattern's path.
func (r *Route) template() string { _, p, _ := strings.Cut(r.Pattern, " "); return p }

// Params are the names of the route's path wildcards, in order.
func (r *Route) Params() []string {
	var ps []string
	for _, seg := range strings.Split(r.template(), "/") {
		if isWildcard(seg) {
			ps = append(ps, seg[1:len(seg)-1])
		}
	}
	return ps
}

// isWildcard reports whether a pattern segment is a {name} wildcard; {$}
// (the end of the path) is not one.
func isWildcard(seg string) bool {
	return strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && seg != "{$}"
}

// BuildPath fills the route's wildcards with params, in order, each
// escaped with url.PathEscape so that it stays one path segment ("a/b"
// becomes "a%2Fb"). It refuses a wrong number of params. It does not
// judge the values: dozod checks them and answers a bad one.
func (r *Route) BuildPath(params ...string) (string, error) {
	segs := strings.Split(r.template(), "/")
	n := 0
	for i, seg := range segs {
		if seg == "{$}" {
			segs[i] = ""
		}
		if isWildcard(seg) {
			if n < len(params) {
				segs[i] = url.PathEscape(params[n])
			}
			n++
		}
	}
	if n != len(params) {
		return "", fmt.Errorf("api: %s takes %d path parameters, got %d", r.Pattern, n, len(params))
	}
	return strings.Join(segs, "/"), nil
}

// Path is BuildPath for callers whose number of params is fixed in the
// code, so that a wrong count is a bug: it panics.
func (r *Route) Path(params ...string) string {
	p, err := r.BuildPath(params...)
	if err != nil {
		panic(err)
	}
	return p
}

// RequestType and ResponseType are the Go types of the JSON bodies; nil
// when there is none.
func (r *Route) RequestType() reflect.Type  { return reflect.TypeOf(r.Request) }
func (r *Route) ResponseType() reflect.Type { return reflect.TypeOf(r.Response) }

// Rule names who may call a route. The names are those of the expectation
// tables in broker/matrix_test.go; Doc says the rule in words.
type Rule string

// The rules. "Visible" means any role on the dataset (admin, custodian,
// submitter, grantee); everyone else gets 404 for the dataset and
// everything in it, as if it did not exist. A former grantee (expired,
// revoked, not yet started) gets 403 saying which. A frozen user is
// refused everything but health and whoami.
const (
	RulePublic         Rule = "public"
	RuleWhoami         Rule = "whoami"
	RuleUser           Rule = "user"
	RuleCreate         Rule = "create"
	RuleVisible        Rule = "visible"
	RuleVisibleRead    Rule = "visibleRead"
	RuleSubmit         Rule = "submit"
	RuleOwnUpload      Rule = "ownUpload"
	RuleOwnUploadWrite Rule = "ownUploadWrite"
	RuleReadData       Rule = "readData"
	RuleGrantChange    Rule = "grantChange"
	RuleCustodian      Rule = "custodian"
	RuleLifecycle      Rule = "lifecycle"
	RuleAuditDataset   Rule = "auditDataset"
	RuleAdmin          Rule = "admin"
	RuleJobDataset     Rule = "jobDataset"
)

var ruleDocs = map[Rule]string{
	RulePublic:         "anyone, no token",
	RuleWhoami:         "any user, also when frozen",
	RuleUser:           "any user who is not frozen",
	RuleCreate:         "admin, or a user in dozod's `submitters` (or a submitter group)",
	RuleVisible:        "visible: admin, or the dataset's custodian, submitter or grantee",
	RuleVisibleRead:    "visible, and the dataset not frozen",
	RuleSubmit:         "the dataset's submitter, or admin; not on a frozen dataset",
	RuleOwnUpload:      "the upload's creator, or admin",
	RuleOwnUploadWrite: "the upload's creator while still a submitter, or admin; not on a frozen dataset",
	RuleReadData:       "grantee, submitter or custodian (not admin alone: operators do not read data without a grant); not on a frozen dataset",
	RuleGrantChange:    "custodian or admin; not on a frozen dataset, nor for a frozen user",
	RuleCustodian:      "custodian or admin, also on a frozen dataset (these reduce or review access)",
	RuleLifecycle:      "custodian or admin; 409 while the dataset is frozen",
	RuleAuditDataset:   "admin for the whole log; a custodian for their dataset's records",
	RuleAdmin:          "admin (operators)",
	RuleJobDataset:     "admin; or a custodian of the job's dataset, also while it is frozen or after its deletion (to follow it)",
}

// Doc is the rule in words.
func (r Rule) Doc() string { return ruleDocs[r] }

// The routes of API version 1. Any answer to a logged-in user may carry
// WarningHeader lines.
var (
	GetHealth = &Route{Pattern: "GET /v1/health", Rule: RulePublic, Response: Health{},
		Note: "?ready=1 answers 503 unless dozod is ready (a load balancer's readiness check)"}
	Whoami       = &Route{Pattern: "GET /v1/whoami", Action: "whoami", Login: true, Rule: RuleWhoami, Response: User{}}
	SetRecipient = &Route{Pattern: "PUT /v1/me/recipient", Action: "recipient.set", Login: true, Rule: RuleUser,
		Request: RecipientRequest{}, Response: User{}}

	CreateDataset = &Route{Pattern: "POST /v1/datasets", Action: "dataset.create", Login: true, Rule: RuleCreate,
		Request: CreateDatasetRequest{}, Response: Dataset{}}
	ListDatasets = &Route{Pattern: "GET /v1/datasets", Action: "dataset.list", Login: true, Rule: RuleUser,
		Response: []Dataset(nil), Note: "the datasets visible to the caller"}
	ShowDataset = &Route{Pattern: "GET /v1/datasets/{ds}", Action: "dataset.show", Login: true, Rule: RuleVisible,
		Response: Dataset{}}
	ListFiles = &Route{Pattern: "GET /v1/datasets/{ds}/files", Action: "file.list", Login: true, Rule: RuleVisibleRead,
		Response: []File(nil)}

	BeginUpload = &Route{Pattern: "POST /v1/datasets/{ds}/uploads", Action: "upload.begin", Login: true, Rule: RuleSubmit, Repeatable: true,
		Request: BeginUploadRequest{}, Response: Upload{}, Note: "presign_segments: the first PUT URLs come with the answer"}
	ShowUpload = &Route{Pattern: "GET /v1/uploads/{upload}", Action: "upload.show", Login: true, Rule: RuleOwnUpload,
		Response: Upload{}, Note: "with its committed segments"}
	PresignUpload = &Route{Pattern: "POST /v1/uploads/{upload}/presign", Action: "upload.presign", Login: true, Rule: RuleOwnUploadWrite, Repeatable: true,
		Request: PresignRequest{}, Response: PresignResponse{}, Note: "a PUT URL for one piece"}
	PresignUploadBatch = &Route{Pattern: "POST /v1/uploads/{upload}/presign-batch", Action: "upload.presign-batch", Login: true, Rule: RuleOwnUploadWrite, Repeatable: true,
		Request: PresignBatchRequest{}, Response: PresignBatchResponse{}, Note: "PUT URLs for up to MaxPresignBatch pieces"}
	CommitSegment = &Route{Pattern: "PUT /v1/uploads/{upload}/segments/{n}", Action: "upload.commit", Login: true, Rule: RuleOwnUploadWrite, Repeatable: true,
		Request: storage.SegmentMeta{}, Response: Upload{}}
	CompleteUpload = &Route{Pattern: "POST /v1/uploads/{upload}/complete", Action: "upload.complete", Login: true, Rule: RuleOwnUploadWrite, Repeatable: true,
		Request: CompleteUploadRequest{}, Response: File{}, Note: "commit: the last segment's commit may come with it"}
	AbortUpload = &Route{Pattern: "DELETE /v1/uploads/{upload}", Action: "upload.abort", Login: true, Rule: RuleOwnUpload, Repeatable: true,
		Note: "204; the session's pieces are deleted"}

	FetchFile = &Route{Pattern: "POST /v1/datasets/{ds}/files/{name}/fetch", Action: "file.fetch", Login: true, Rule: RuleReadData, Repeatable: true,
		Request: FetchBatchRequest{}, Response: FetchResponse{}, Note: "the header for the caller's recipient, and the manifest head; the body is optional and asks for the first presign batch"}
	PresignFetch = &Route{Pattern: "POST /v1/fetches/{file}/presign", Action: "fetch.presign", Login: true, Rule: RuleReadData, Repeatable: true,
		Request: PresignRequest{}, Response: PresignResponse{}, Note: "a GET URL for one piece"}
	PresignFetchBatch = &Route{Pattern: "POST /v1/fetches/{file}/presign-batch", Action: "fetch.presign-batch", Login: true, Rule: RuleReadData, Repeatable: true,
		Request: FetchBatchRequest{}, Response: FetchBatchResponse{}}
	FetchDone = &Route{Pattern: "POST /v1/fetches/{file}/done", Action: ActionFetchDone, Login: true, Rule: RuleReadData,
		Request: FetchDoneRequest{}, Note: "204; the client reports a finished fetch"}

	PutGrant = &Route{Pattern: "PUT /v1/datasets/{ds}/grants/{user}", Action: "grant.put", Login: true, Rule: RuleGrantChange,
		Request: GrantRequest{}, Response: Grant{}}
	RevokeGrant = &Route{Pattern: "DELETE /v1/datasets/{ds}/grants/{user}", Action: "grant.revoke", Login: true, Rule: RuleCustodian,
		Request: RevokeRequest{}, Response: Grant{}, Note: "the revoked grant"}
	ListGrants = &Route{Pattern: "GET /v1/datasets/{ds}/grants", Action: "grant.list", Login: true, Rule: RuleCustodian,
		Response: []Grant(nil), Note: "?history=true for past rows too; ?expiring_days=N for running grants ending within N days that nothing follows"}
	GrantRegister = &Route{Pattern: "GET /v1/grants", Action: "grant.register", Login: true, Rule: RuleUser,
		Response: []Grant(nil), Note: "admins see all grants, custodians their datasets', everyone their own; ?history=true, ?expiring_days=N as for a dataset's grants"}

	ListMembers = &Route{Pattern: "GET /v1/datasets/{ds}/members", Action: "member.list", Login: true, Rule: RuleCustodian,
		Response: []Member(nil)}
	AddMember = &Route{Pattern: "PUT /v1/datasets/{ds}/members/{user}/{role}", Action: "member.add", Login: true, Rule: RuleGrantChange,
		Request: MemberRequest{}, Response: Member{}, Note: "role: custodian or submitter; the body may be left out"}
	RemoveMember = &Route{Pattern: "DELETE /v1/datasets/{ds}/members/{user}/{role}", Action: "member.remove", Login: true, Rule: RuleCustodian,
		Note: "204; refused for the last custodian"}

	FreezeAccess = &Route{Pattern: "POST /v1/admin/freezes", Action: "admin.freeze", Login: true, Rule: RuleAdmin,
		Request: FreezeRequest{}, Response: Freeze{}}
	UnfreezeAccess = &Route{Pattern: "DELETE /v1/admin/freezes/{kind}/{name}", Action: "admin.unfreeze", Login: true, Rule: RuleAdmin,
		Request: UnfreezeRequest{}, Response: Freeze{}, Note: "the lifted freeze"}
	ListFreezes = &Route{Pattern: "GET /v1/admin/freezes", Action: "admin.freezes", Login: true, Rule: RuleAdmin,
		Response: []Freeze(nil), Note: "?all=true for lifted freezes too"}

	ListAudit = &Route{Pattern: "GET /v1/audit", Action: "audit.list", Login: true, Rule: RuleAuditDataset,
		Response: []AuditEntry(nil), Note: "filters: ?dataset, user, action, exclude_action, result, file, since, until, limit"}
	VerifyAudit = &Route{Pattern: "GET /v1/audit/verify", Action: "audit.verify", Login: true, Rule: RuleAdmin,
		Response: AuditVerifyResponse{}, Note: "?anchor_seq=N&anchor_hash=H also checks a record the caller kept"}
	ExportAudit = &Route{Pattern: "GET /v1/audit/export", Action: "audit.export", Login: true, Rule: RuleAdmin,
		Note: "the whole chain as JSON lines (application/x-ndjson), one AuditRecord a line"}

	RotateKey = &Route{Pattern: "POST /v1/datasets/{ds}/rotate-key", Action: "dataset.rotate-key", Login: true, Rule: RuleLifecycle,
		Response: RotateKeyResponse{}}
	DeleteDataset = &Route{Pattern: "POST /v1/datasets/{ds}/delete", Action: "dataset.delete", Login: true, Rule: RuleLifecycle,
		Request: DeleteDatasetRequest{}, Response: DeletionStatus{}, Note: "202 while scheduled or running: the deletion runs after a grace period"}
	UndeleteDataset = &Route{Pattern: "POST /v1/datasets/{ds}/undelete", Action: "dataset.undelete", Login: true, Rule: RuleCustodian,
		Response: DeletionStatus{}, Note: "cancels a deletion that has not begun to run"}
	GetDeletionReport = &Route{Pattern: "GET /v1/datasets/{ds}/deletion-report", Action: "dataset.deletion-report", Login: true, Rule: RuleCustodian,
		Response: DeletionReport{}, Note: "409 until the deletion ran"}

	ListJobs = &Route{Pattern: "GET /v1/jobs", Action: "job.list", Login: true, Rule: RuleUser,
		Response: []Job(nil), Note: "an admin sees every job, a custodian their datasets', anyone else none; ?dataset= ?kind= ?state= ?limit="}
	ShowJob = &Route{Pattern: "GET /v1/jobs/{id}", Action: "job.show", Login: true, Rule: RuleJobDataset,
		Response: Job{}}
	CancelJob = &Route{Pattern: "DELETE /v1/jobs/{id}", Action: "job.cancel", Login: true, Rule: RuleJobDataset,
		Response: Job{}, Note: "asks the job to stop; it ends as cancelled at its next check"}

	StartScrub = &Route{Pattern: "POST /v1/scrubs", Action: "scrub.start", Login: true, Rule: RuleAdmin,
		Request: ScrubRequest{}, Response: ScrubRun{}}
	ListScrubs = &Route{Pattern: "GET /v1/scrubs", Action: "scrub.list", Login: true, Rule: RuleAdmin,
		Response: []ScrubRun(nil)}
	ShowScrub = &Route{Pattern: "GET /v1/scrubs/{id}", Action: "scrub.show", Login: true, Rule: RuleAdmin,
		Response: ScrubRun{}, Note: "with its findings; ?findings=false without"}
	CancelScrub = &Route{Pattern: "DELETE /v1/scrubs/{id}", Action: "scrub.cancel", Login: true, Rule: RuleAdmin,
		Response: ScrubRun{}}

	ListTargets = &Route{Pattern: "GET /v1/targets", Action: "target.list", Login: true, Rule: RuleAdmin,
		Note: "every storage target's health as dozod last probed it"}
	// Metrics takes an admin's token or dozod's scrape token, which it
	// checks itself (so no Login).
	Metrics = &Route{Pattern: "GET /v1/metrics", Action: "metrics", Rule: RuleAdmin,
		Note: "Prometheus text; an admin's token or dozod's scrape token"}
	// MetricsRoot is Metrics at the path Prometheus scrapes by default.
	MetricsRoot = &Route{Pattern: "GET /metrics", Action: "metrics", Rule: RuleAdmin,
		Note: "as GET /v1/metrics"}
)

// Routes is every route of the API, in the order of the documentation.
var Routes = []*Route{
	GetHealth, Whoami, SetRecipient,
	CreateDataset, ListDatasets, ShowDataset, ListFiles,
	BeginUpload, ShowUpload, PresignUpload, PresignUploadBatch, CommitSegment, CompleteUpload, AbortUpload,
	FetchFile, PresignFetch, PresignFetchBatch, FetchDone,
	PutGrant, RevokeGrant, ListGrants, GrantRegister,
	ListMembers, AddMember, RemoveMember,
	FreezeAccess, UnfreezeAccess, ListFreezes,
	ListAudit, VerifyAudit, ExportAudit,
	RotateKey, DeleteDataset, UndeleteDataset, GetDeletionReport,
	ListJobs, ShowJob, CancelJob,
	StartScrub, ListScrubs, ShowScrub, CancelScrub,
	ListTargets, Metrics, MetricsRoot,
}
