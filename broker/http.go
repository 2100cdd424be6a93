package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/audit"
)

// httpError is an error with the status and message the caller sees. The
// message must reveal nothing the caller may not know; internal detail goes
// in cause, which is logged and never sent.
type httpError struct {
	status int
	msg    string
	hint   string
	cause  error
	// retryAfter, on a 503, says the outage is dozod's own dependency
	// (Vault, the catalog) and a retry after this long may succeed: it is
	// sent as Retry-After, which clients take as leave to retry. A 503
	// without it (no storage targets to place an upload on) is final.
	retryAfter time.Duration
}

func (e *httpError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *httpError {
	return errorf(http.StatusBadRequest, format, args...)
}

// internal hides err from the caller behind a generic message; a Vault
// outage is the one 503 of errors.go, whatever the handler was doing.
func internal(what string, err error) *httpError {
	if vaultOutage(err) {
		return vaultUnavailable(err)
	}
	return &httpError{status: http.StatusInternalServerError, msg: "internal error: " + what + " failed", cause: err}
}

// request carries one call through a handler: who, what and on which
// object, for the audit record.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	id     string
	user   *Identity // nil before authentication
	source string    // the client address refusals are counted against (clientSource)
	action string
	object string
	// dataset is the dataset of object when the handler knows it, so the
	// audit record need not look it up (audit.Record.Dataset).
	dataset string
	// detail, when set, goes into the audit record's detail: what else
	// the call did (a presign or a commit carried by the call that opens
	// or closes a transfer). A refusal's message follows it.
	detail string
	status int
	// audited: the request's audit record is already committed (stream).
	audited bool
	// page, when set, renders a refusal for a browser instead of the JSON
	// api.Error (the console, console.go).
	page func(*httpError)
	// grantsGen is the grants generation the request's access read saw,
	// when haveGen; warn: the caller's grant warnings are still to be
	// added (an API call with a login, warnExpiring).
	grantsGen     int64
	haveGen, warn bool
}

func (q *request) userName() string {
	if q.user == nil {
		return ""
	}
	return q.user.Name
}

// reply writes v as JSON with status.
func (q *request) reply(status int, v any) error {
	q.status = status
	q.w.Header().Set("Content-Type", "application/json")
	q.w.WriteHeader(status)
	if v == nil {
		return nil
	}
	return json.NewEncoder(q.w).Encode(v)
}

func (q *request) fail(e *httpError) {
	q.status = e.status
	if q.page != nil {
		q.page(e)
		return
	}
	q.w.Header().Set("Content-Type", "application/json")
	q.w.Header().Set("Cache-Control", "no-store")
	if e.retryAfter > 0 {
		q.w.Header().Set("Retry-After", retryAfter(e.retryAfter))
	}
	q.w.WriteHeader(e.status)
	json.NewEncoder(q.w).Encode(api.Error{Error: e.msg, Hint: e.hint, RequestID: q.id})
}

// decode reads a JSON body strictly: at most api.MaxBodyBytes, no unknown
// fields, exactly one value.
func (q *request) decode(v any) error {
	body := http.MaxBytesReader(q.w, q.r.Body, api.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", api.MaxBodyBytes)
		}
		if errors.Is(err, io.EOF) {
			return badRequest("empty request body; expected JSON")
		}
		return badRequest("bad JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("bad JSON body: trailing data after the JSON value")
	}
	return nil
}

// noBody is for requests that take no options: the body must be empty or
// an empty JSON object. Anything else is refused, so a client bug (say,
// options sent to the wrong endpoint) is an error rather than ignored.
func (q *request) noBody() error {
	b, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, api.MaxBodyBytes))
	if err != nil {
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", api.MaxBodyBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var empty struct{}
	if err := dec.Decode(&empty); err != nil {
		return badRequest("this request takes no body (or {}): %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("this request takes no body (or {})")
	}
	return nil
}

// optionalBody decodes a body that may be left out: an empty body leaves
// v as it is; anything else must be one JSON value with only v's fields.
func (q *request) optionalBody(v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, api.MaxBodyBytes))
	if err != nil {
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", api.MaxBodyBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("bad JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("bad JSON body: trailing data after the JSON value")
	}
	return nil
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// handlerFunc handles one authenticated (or, for health, anonymous) call.
type handlerFunc func(*request) error

// route wraps h with request ids, authentication, error rendering and the
// audit record.
func (s *Server) route(pattern, action string, auth bool, h handlerFunc) {
	s.routeList = append(s.routeList, routeInfo{pattern, action, auth})
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if action != "" {
			// The reply is held until its audit record is committed (see
			// audit), so no answer leaves without its record.
			w = &heldResponse{w: w}
		}
		q := &request{w: w, r: r, ctx: r.Context(), id: newRequestID(), action: action, source: clientSource(r), warn: auth}
		w.Header().Set("X-Request-Id", q.id)
		start := s.now()
		var err error
		if action != "" {
			// A source that spent its budget of refusals is answered
			// before its token costs a Vault lookup or its request a
			// record of its own (audit counts it).
			if wait, limited := s.guard.limited(q.source, r, start); limited {
				w.Header().Set("Retry-After", retryAfter(wait))
				err = &httpError{status: http.StatusTooManyRequests, msg: "too many refused requests from this address; retry later",
					hint: "check that your token is valid (dozo login) before retrying"}
			}
		}
		if err == nil && auth {
			q.user, err = s.authenticate(r)
		}
		if err == nil {
			err = h(q)
			if err == nil && action != "" {
				// Its token passed (a user's, or the scrape token):
				// it is not held up by other callers' refusals.
				s.guard.authenticated(r, start)
			}
		}
		// After the handler, whose access read gave the grants
		// generation; the reply is still held (or streamed, and
		// warned then).
		s.warnExpiring(q) // grants.go
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				he = internal(action, err)
			}
			q.fail(he)
			err = he
		}
		if action != "" {
			s.audit(q, err, s.now().Sub(start))
		}
		s.observe(q, s.now().Sub(start))
	})
}

// audit records one request: who did what to which object, and how it
// ended. It is the single place every state change, data access and refusal
// passes through: it appends a record to the hash-chained audit log, writes
// the slog line, and only then releases the held reply.
//
// Fail closed: when the append fails, a successful reply is discarded and
// the caller gets 503 instead, so no data (a fetch header, a presigned URL,
// a listing) is ever handed out without a committed record. A state change
// the handler already committed stands (the catalog and the log are the
// same database, so this needs the database to fail between the two
// writes); its record then survives in the error-level log line. A refusal
// is still sent as it was: it gives nothing away.
//
// Two kinds of request are not recorded one by one. Refusals of callers
// with no identity (bad or missing token, unknown path, a 429) are
// recorded the first time per source, action and status in a window and
// counted after that; the count is recorded as one aggregate record when
// the window closes or dozod stops (limits.go), so a flood cannot grow the
// log or starve its writer. Successful scrapes with the scrape token are
// left to the metrics.
//
// The record holds request metadata and the message the caller saw, never
// the token, keys, header objects or plaintext.
func (s *Server) audit(q *request, err error, took time.Duration) {
	result := audit.ResultOK
	level := slog.LevelInfo
	attrs := []slog.Attr{
		slog.String("request_id", q.id),
		slog.String("user", q.userName()),
		slog.String("action", q.action),
		slog.String("object", q.object),
		slog.Int("status", q.status),
		slog.String("remote", q.r.RemoteAddr),
		slog.Duration("took", took),
	}
	detail := q.detail
	if err != nil {
		result = audit.ResultRefused
		if q.status >= 500 {
			result, level = audit.ResultError, slog.LevelError
		}
		attrs = append(attrs, slog.String("error", err.Error()))
		var he *httpError
		if errors.As(err, &he) {
			detail = he.msg
			if q.detail != "" {
				detail = q.detail + ": " + he.msg
			}
		}
	}
	if q.detail != "" {
		attrs = append(attrs, slog.String("detail", q.detail))
	}
	if q.action == "unknown" {
		detail = q.r.Method + " " + q.r.URL.Path
	}
	held, _ := q.w.(*heldResponse)
	record := !q.audited
	switch {
	case q.user == nil && q.status >= 400 && q.status < 500 && q.action != "":
		// A refusal of a caller with no identity: the first of its kind
		// from this source in the window is recorded, the rest are
		// counted and recorded as one aggregate (limits.go).
		source, first, due := s.guard.refused(q.source, q.action, q.object, q.status, s.now())
		s.recordAggregates(q.ctx, due)
		if !first && record {
			record = false
			level = slog.LevelDebug
			attrs = append(attrs, slog.String("audit", "counted in the aggregate of "+source))
		}
	case q.action == "metrics" && q.user == nil && result == audit.ResultOK:
		// A scrape with the scrape token (or on an allowed loopback
		// listener): counted in the metrics, not worth a record each.
		record = false
	}
	if record {
		rec := audit.Record{
			Time: s.now(), Actor: q.userName(), Action: q.action, Object: q.object, Dataset: q.dataset, Result: result,
			Status: q.status, Source: q.r.RemoteAddr, RequestID: q.id, Detail: detail,
		}
		sealed, aerr := s.appendAudit(q.ctx, rec)
		if aerr != nil {
			attrs = append(attrs, slog.String("audit_error", aerr.Error()))
			level = slog.LevelError
			if held != nil && result == audit.ResultOK {
				held.discard()
				q.fail(&httpError{status: http.StatusServiceUnavailable, msg: "audit log unavailable: the request was not answered; try again later", retryAfter: outageRetry})
			}
		} else {
			attrs = append(attrs, slog.Uint64("audit_seq", sealed.Seq))
		}
	}
	attrs = append(attrs, slog.String("result", result))
	s.log.LogAttrs(q.ctx, level, "request", attrs...)
	if held != nil {
		held.release()
	}
}

// heldResponse buffers a reply until release, so audit can replace it if
// the audit record cannot be committed. After release (or stream) writes
// go straight through.
type heldResponse struct {
	w           http.ResponseWriter
	status      int
	buf         bytes.Buffer
	passthrough bool
}

func (h *heldResponse) Header() http.Header { return h.w.Header() }

func (h *heldResponse) WriteHeader(code int) {
	if h.passthrough {
		h.w.WriteHeader(code)
		return
	}
	if h.status == 0 {
		h.status = code
	}
}

func (h *heldResponse) Write(p []byte) (int, error) {
	if h.passthrough {
		return h.w.Write(p)
	}
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.buf.Write(p)
}

// Flush implements http.Flusher once the reply streams.
func (h *heldResponse) Flush() {
	if f, ok := h.w.(http.Flusher); ok && h.passthrough {
		f.Flush()
	}
}

// discard drops what the handler wrote, keeping only the request id
// header, so a different reply can be written.
func (h *heldResponse) discard() {
	for k := range h.w.Header() {
		if k != "X-Request-Id" {
			delete(h.w.Header(), k)
		}
	}
	h.buf.Reset()
	h.status = 0
}

// release sends what was held and lets later writes through.
func (h *heldResponse) release() {
	if h.passthrough {
		return
	}
	h.passthrough = true
	if h.status != 0 {
		h.w.WriteHeader(h.status)
	}
	if h.buf.Len() > 0 {
		h.w.Write(h.buf.Bytes())
	}
	h.buf = bytes.Buffer{}
}

// stream commits the request's audit record now, as a success, and then
// lets the reply stream out unbuffered (for large answers such as the
// audit export). If the record cannot be committed nothing is sent.
func (q *request) stream(s *Server, status int) error {
	rec := audit.Record{
		Time: s.now(), Actor: q.userName(), Action: q.action, Object: q.object, Result: audit.ResultOK,
		Status: status, Source: q.r.RemoteAddr, RequestID: q.id, Detail: "streamed",
	}
	if _, err := s.appendAudit(q.ctx, rec); err != nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "audit log unavailable: the request was not answered; try again later", cause: err, retryAfter: outageRetry}
	}
	q.audited = true
	q.status = status
	s.warnExpiring(q) // before the header goes
	if h, ok := q.w.(*heldResponse); ok {
		h.WriteHeader(status)
		h.release()
	} else {
		q.w.WriteHeader(status)
	}
	return nil
}
