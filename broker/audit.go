package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/crypto"
)

// appendAudit commits r to the chain. Over-long fields are cut (a record
// must never fail to append because a caller sent a long path).
func (s *Server) appendAudit(ctx context.Context, r audit.Record) (*audit.Record, error) {
	for _, f := range []*string{&r.Actor, &r.Action, &r.Object, &r.Dataset, &r.Source, &r.RequestID, &r.Detail} {
		if len(*f) > audit.MaxFieldLen {
			*f = (*f)[:audit.MaxFieldLen-3] + "..."
		}
	}
	// The append must finish even when the client went away: the work it
	// records has happened.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return s.cat.AppendAudit(ctx, r)
}

// recordEvent appends an event that is not an HTTP request (a scheduled
// scrub, a background repair) to the audit log. actor is a user name or
// "dozod"; result is "ok", "refused" or "error"; detail is a short
// human-readable line and must hold no secret. A failed append is logged
// at error level with the whole event, so it is not lost.
func (s *Server) recordEvent(ctx context.Context, actor, action, object, result, detail string) {
	if err := s.event(ctx, actor, action, object, result, detail); err != nil {
		s.log.Error("audit event not recorded", "actor", actor, "action", action, "object", object, "result", result, "detail", detail, "error", err)
	}
}

// event is recordEvent returning the error, for callers that must stop
// when the record cannot be written.
func (s *Server) event(ctx context.Context, actor, action, object, result, detail string) error {
	switch result {
	case audit.ResultOK, audit.ResultRefused, audit.ResultError:
	default:
		result = audit.ResultError
	}
	_, err := s.appendAudit(ctx, audit.Record{Time: s.now(), Actor: actor, Action: action, Object: object, Result: result, Detail: detail})
	return err
}

// auditList: admins see everything; a custodian may list their dataset's
// records (dataset= given).
func (s *Server) auditList(q *request) error {
	v := q.r.URL.Query()
	f := catalog.AuditFilter{Dataset: v.Get("dataset"), Actor: v.Get("user")}
	q.object = "audit"
	if err := s.checkUserFrozen(q); err != nil {
		return err
	}
	if f.Dataset != "" {
		if s.isAdmin(q.user) {
			// Admins may read the audit of a deleted dataset too.
			q.object = "dataset/" + f.Dataset
		} else if _, err := s.requireDataset(q, f.Dataset, "custodian"); err != nil {
			return err
		}
	} else if err := s.requireAdmin(q); err != nil {
		return &httpError{status: http.StatusForbidden, msg: "listing the whole audit log needs the admin role",
			hint: "custodians: add --dataset ID to list their dataset's records"}
	}
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v.Get(name) == "" {
			continue
		}
		d, err := parseSince(v.Get(name))
		if err != nil {
			return badRequest("%s=%q: want RFC 3339 (2026-01-02T15:04:05Z) or YYYY-MM-DD", name, v.Get(name))
		}
		*t = d
	}
	f.Actions, f.ExcludeActions = splitList(v.Get("action")), splitList(v.Get("exclude_action"))
	for _, a := range append(slices.Clone(f.Actions), f.ExcludeActions...) {
		if a == "" || len(a) > 100 {
			return badRequest("action %q: want action names separated by commas, e.g. file.fetch,file.fetch.done", a)
		}
	}
	switch f.Result = v.Get("result"); f.Result {
	case "", audit.ResultOK, audit.ResultRefused, audit.ResultError, audit.ResultClientReported:
	default:
		return badRequest("result=%q: want ok, refused, error or client-reported", f.Result)
	}
	if f.File = v.Get("file"); f.File != "" && ValidateName(f.File) != nil {
		return badRequest("file=%q: not a valid file name", f.File)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > catalog.MaxAuditLimit {
			return badRequest("limit=%q: want 1..%d", l, catalog.MaxAuditLimit)
		}
		f.Limit = n
	}
	rs, err := s.cat.AuditRecords(q.ctx, f)
	if err != nil {
		return internal("reading the audit log", err)
	}
	objects := make([]string, len(rs))
	for i := range rs {
		objects[i] = rs[i].Object
	}
	files, err := s.cat.AuditFiles(q.ctx, objects)
	if err != nil {
		return internal("reading the audit log", err)
	}
	out := make([]api.AuditEntry, len(rs))
	for i, r := range rs {
		f := files[r.Object]
		out[i] = api.AuditEntry{Record: r, File: f.Name, FileSize: f.Size}
	}
	return q.reply(http.StatusOK, out)
}

// splitList splits a comma-separated query value; "" is no list.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

// auditVerify checks the whole chain, the caller's anchor if given (a
// record of an earlier export), and every anchor dozod stored: its MAC
// must verify with the anchor key in Vault and the chain must hold its
// record unchanged.
func (s *Server) auditVerify(q *request) error {
	q.object = "audit"
	if err := s.requireAdmin(q); err != nil {
		return err
	}
	var anchor *audit.Anchor
	if v := q.r.URL.Query(); v.Has("anchor_seq") || v.Has("anchor_hash") {
		seq, err := strconv.ParseUint(v.Get("anchor_seq"), 10, 64)
		h := v.Get("anchor_hash")
		if err != nil || seq == 0 || len(h) != 2*audit.HashSize {
			return badRequest("anchor_seq and anchor_hash: want a record's seq (1 or more) and its 64-digit hex hash")
		}
		anchor = &audit.Anchor{Seq: seq, Hash: h}
	}
	res, err := s.cat.VerifyAudit(q.ctx)
	if err != nil {
		return internal("reading the audit log", err)
	}
	if anchor != nil {
		r, err := s.cat.AuditRecord(q.ctx, anchor.Seq)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return internal("reading the audit log", err)
		}
		res = audit.CheckAnchor(res, *anchor, r)
	}
	// The anchors dozod made in Vault catch a log cut short without an
	// anchor of the caller's own.
	if res, err = s.checkAnchors(q.ctx, res); err != nil {
		return internal("checking the audit anchors", err)
	}
	if !res.OK {
		s.log.Error("audit chain verification failed", "first_bad_seq", res.BadSeq, "reason", res.Reason)
	}
	return q.reply(http.StatusOK, api.AuditVerifyResponse(res))
}

// auditExport streams the whole chain as JSON lines. Its own record is
// committed before the first line is sent, so it is in the export.
func (s *Server) auditExport(q *request) error {
	q.object = "audit"
	if err := s.requireAdmin(q); err != nil {
		return err
	}
	q.w.Header().Set("Content-Type", "application/x-ndjson")
	q.w.Header().Set("Cache-Control", "no-store")
	if err := q.stream(s, http.StatusOK); err != nil {
		return err
	}
	// Anchor the head the export ends with: the export and Vault's audit
	// log then hold the same record, each outside the catalog.
	s.anchorAndLog(context.WithoutCancel(q.ctx), "export")
	enc := json.NewEncoder(q.w)
	flusher, _ := q.w.(http.Flusher)
	n := 0
	err := s.cat.EachAudit(q.ctx, func(r *audit.Record) error {
		r.Time = r.Time.UTC()
		if err := enc.Encode(r); err != nil {
			return err
		}
		if n++; n%1000 == 0 && flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil {
		// The status is sent; the client sees a truncated export, which
		// its verifier reports. Say so in the log and the audit.
		s.log.Error("audit export interrupted", "request_id", q.id, "records", n, "error", err)
		s.recordEvent(context.WithoutCancel(q.ctx), q.userName(), "audit.export", "audit", audit.ResultError,
			"export interrupted after "+strconv.Itoa(n)+" records")
	}
	return nil
}

// fetchDone records a client's report that it finished fetching a file:
// bytes written, whether the whole file's checksums matched, how long it
// took. dozod cannot see the transfer (the client reads storage directly
// with presigned URLs), so the record says what the client reported,
// marked client-reported, under the caller's name. The caller must still
// be allowed to read the file (the fetch rule), so the report cannot be
// used to write records about files one may not read.
func (s *Server) fetchDone(q *request) error {
	id := q.r.PathValue("file")
	q.object = "file/" + id
	var req api.FetchDoneRequest
	if err := q.decode(&req); err != nil {
		return err
	}
	f, _, err := s.openFetch(q, id)
	if err != nil {
		return err
	}
	// A raw fetch writes the age file: the caller's header (at most
	// crypto.MaxHeaderSize) and then the stored chunk stream, so it is
	// larger than the plaintext and than the chunk stream alone.
	most := max(f.Size, f.StoredSize+crypto.MaxHeaderSize)
	if req.Bytes < 0 || req.Bytes > most || req.ElapsedMS < 0 || req.ElapsedMS > int64(30*24*time.Hour/time.Millisecond) {
		return badRequest("bytes %d and elapsed_ms %d: want 0..%d bytes (the file's size, or its age file's) and a duration of at most 30 days", req.Bytes, req.ElapsedMS, most)
	}
	detail := fmt.Sprintf("%d bytes in %s", req.Bytes, (time.Duration(req.ElapsedMS) * time.Millisecond).String())
	if req.Verified {
		detail += ", verified"
	}
	// The record carries the report, so it is written here rather than by
	// the route's own record (which would say only "ok").
	rec := audit.Record{
		Time: s.now(), Actor: q.userName(), Action: q.action, Object: q.object, Result: audit.ResultClientReported,
		Status: http.StatusNoContent, Source: q.r.RemoteAddr, RequestID: q.id, Detail: detail,
	}
	if _, err := s.appendAudit(q.ctx, rec); err != nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "audit log unavailable: the report was not recorded; try again later", cause: err, retryAfter: outageRetry}
	}
	q.audited = true
	return q.reply(http.StatusNoContent, nil)
}
