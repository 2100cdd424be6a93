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

	"github.com/ddbj/kura/api"
	"github.com/ddbj/kura/vault"
)

// httpError is an error with the status and message the caller sees. The
// message must reveal nothing the caller may not know; internal detail goes
// in cause, which is logged and never sent.
type httpError struct {
	status int
	msg    string
	hint   string
	cause  error
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
// outage becomes 503 so clients know to retry and operators know where to
// look.
func internal(what string, err error) *httpError {
	if errors.Is(err, vault.ErrUnavailable) {
		return &httpError{status: http.StatusServiceUnavailable, msg: "vault unavailable: " + what + " failed; try again later", cause: err}
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
	action string
	object string
	status int
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
	q.w.Header().Set("Content-Type", "application/json")
	q.w.Header().Set("Cache-Control", "no-store")
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
		q := &request{w: w, r: r, ctx: r.Context(), id: newRequestID(), action: action}
		w.Header().Set("X-Request-Id", q.id)
		start := s.now()
		var err error
		if auth {
			q.user, err = s.authenticate(r)
		}
		if err == nil {
			err = h(q)
		}
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
// passes through, so the hash-chained audit table can hook in here. It never
// sees tokens, keys or plaintext.
func (s *Server) audit(q *request, err error, took time.Duration) {
	result := "ok"
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
	if err != nil {
		result = "refused"
		if q.status >= 500 {
			result, level = "error", slog.LevelError
		}
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	attrs = append(attrs, slog.String("result", result))
	s.log.LogAttrs(q.ctx, level, "request", attrs...)
}
