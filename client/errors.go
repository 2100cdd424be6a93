package client

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/dozo-vault/dozo/storage"
)

// Error is a failed operation with, when known, what the user can do about
// it. Its message is "<op>: <why>"; the hint is kept apart so the CLI can
// print "dozo: <op>: <why> (<hint>)".
type Error struct {
	Op   string // what failed, e.g. "uploading reads.bam"
	Err  error  // why
	Hint string // what to do; may be empty
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// opError wraps err with the operation that failed, keeping any hint.
func opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Err: err}
}

// hintError wraps err with op and a hint.
func hintError(op, hint string, err error) error {
	return &Error{Op: op, Err: err, Hint: hint}
}

// APIError is a non-2xx answer from dozod.
type APIError struct {
	Method, Path string
	Status       int
	Body         struct {
		Error     string `json:"error"`
		Hint      string `json:"hint,omitempty"`
		RequestID string `json:"request_id,omitempty"`
	}
}

func (e *APIError) Error() string { return e.Body.Error }

// TransportError is a dozod request that got no HTTP answer.
type TransportError struct {
	Method, Path string
	Err          error
}

func (e *TransportError) Error() string { return "cannot reach dozod: " + e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// RefusedError is dozod refusing, mid-transfer, to presign another piece:
// the caller's access was withdrawn (grant revoked or expired, user or
// dataset frozen, file deleted, upload closed, login expired). It wraps
// storage.ErrRefused, so a storage Reader or Writer ends the transfer at
// once rather than counting the piece as damaged and trying parity, and
// Format reports it as the one reason the transfer stopped.
//
// Lost marks the other way dozod ends a transfer: it stayed unreachable
// (or answered 502/503/504) through every retry the client makes, so no
// new URL can be had. That is no damage to the pieces either.
type RefusedError struct {
	Err  error // dozod's answer, an *APIError, or the *TransportError
	Lost bool  // dozod could not be reached, rather than refusing
}

func (e *RefusedError) Error() string {
	if e.Lost {
		return "lost dozod mid-transfer: " + e.Err.Error()
	}
	if IsStatus(e.Err, http.StatusUnauthorized) {
		// The login, not the data or the grant: say so in words.
		return loginEndedMsg
	}
	return "dozod stopped the transfer: " + e.Err.Error()
}

// loginEndedMsg is what a transfer stopped by dozod's 401 reports when
// the client does not know the login's expiry (a revoked token, or Vault
// out of reach at the start).
const loginEndedMsg = "dozod no longer accepts your login (it expired or was revoked); run `dozo login` and rerun the same command to resume"

func (e *RefusedError) Unwrap() []error { return []error{e.Err, storage.ErrRefused} }

// Refusal returns err as a *RefusedError if it is dozod refusing access
// rather than failing: 401, 403, 404 (a file or dataset that is gone or no
// longer visible), 409 (an upload no longer open) or 410.
//
// It also returns a *RefusedError, marked Lost, for dozod unreachable or
// unavailable once the client's retries are spent (see retry.go): without
// dozod no piece can be presigned, and reporting every piece as bad would
// read as storage damage.
func Refusal(err error) error {
	var te *TransportError
	if errors.As(err, &te) {
		return &RefusedError{Err: err, Lost: true}
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusGone:
		return &RefusedError{Err: err}
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return &RefusedError{Err: err, Lost: true}
	}
	return err
}

// IsStatus reports whether err is an APIError with the given status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// Hint returns what the user can do about err: the innermost explicit hint
// (dozod's, or one set by this package), else one derived from the kind of
// failure. It may be empty.
func Hint(err error) string {
	// dozod knows best why it refused; prefer its hint.
	var ae *APIError
	if errors.As(err, &ae) {
		if ae.Body.Hint != "" {
			return ae.Body.Hint
		}
		switch ae.Status {
		case http.StatusUnauthorized:
			return "log in again with 'dozo login'"
		case http.StatusForbidden:
			return "ask the dataset's custodian or an admin for access"
		case http.StatusNotFound:
			return "check the name; datasets you have no access to look like missing ones"
		}
		if ae.Status >= 500 {
			return "dozod failed; retry later or tell its operators the request id (--debug shows it)"
		}
		return ""
	}
	var e *Error
	hint := ""
	for x := err; x != nil; {
		if errors.As(x, &e) {
			if e.Hint != "" {
				hint = e.Hint // keep going: an inner hint is more specific
			}
			x = e.Err
			continue
		}
		break
	}
	if hint != "" {
		return hint
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var te *TransportError
	switch {
	case errors.Is(err, context.Canceled):
		return "interrupted; run the same command again to resume"
	case errors.As(err, &ua) && errors.As(err, &te):
		return "pass the broker's CA certificate with --ca-cert or DOZO_CA_CERT"
	case errors.As(err, &ua):
		// Storage is checked against the system roots only.
		return "a storage server's certificate is not trusted by this system; add the centre's CA with SSL_CERT_DIR or SSL_CERT_FILE"
	case errors.As(err, &hn), errors.As(err, &ci):
		return "the broker's certificate does not match; check --broker and --ca-cert"
	case errors.Is(err, syscall.ECONNREFUSED) && errors.As(err, &te):
		return "is dozod running? check --broker / DOZO_BROKER"
	case errors.As(err, &te):
		var dns *net.DNSError
		if errors.As(err, &dns) {
			return "check the host name in --broker / DOZO_BROKER"
		}
		return "check the network and --broker / DOZO_BROKER"
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, new(*net.OpError)):
		return "a storage server is unreachable (tell the operators if it persists)"
	case errors.Is(err, ErrNotLoggedIn):
		return "run 'dozo login --username NAME' first"
	case errors.Is(err, ErrNoIdentity):
		return "run 'dozo keygen' and 'dozo key register' first"
	case errors.Is(err, storage.ErrNotFound):
		return "a piece is missing from storage; ask the operators to run a scrub"
	case errors.Is(err, os.ErrPermission):
		return "check the file's permissions"
	case errors.Is(err, syscall.ENOSPC):
		return "free some disk space, then run the same command again to resume"
	}
	return ""
}

// Failure is what an error comes to for the person who ran the command:
// what failed and why, what to do, and where a request to dozod went. The
// command renders it (in its language); this package only says it.
type Failure struct {
	What string // "<what failed>: <why>", on one line
	Op   string // what failed, the start of What; empty if it names none
	Hint string // what to do; may be empty
	// API is dozod's answer, when the failure is one; Transport is the
	// request to dozod that got no answer, when it is one.
	API       *APIError
	Transport *TransportError
}

// Describe is err as a Failure. A transfer stopped by dozod is described by
// dozod's reason alone (which piece was being presigned when access ended
// is noise), and an expired login by one sentence that says what to do. No
// field carries tokens or presigned URLs: none of this package's errors
// carry them.
func Describe(err error) Failure {
	var xl *ExpiredLoginError
	if errors.As(err, &xl) {
		// The whole story, and what to do, in one sentence.
		return Failure{What: withOp(err, xl.Error())}
	}
	f := Failure{What: err.Error()}
	var rf *RefusedError
	if errors.As(err, &rf) {
		f.What = withOp(err, rf.Error())
	}
	f.What = strings.ReplaceAll(f.What, "\n", " ")
	var e *Error
	if errors.As(err, &e) && strings.HasPrefix(f.What, e.Op+": ") {
		f.Op = e.Op
	}
	if rf == nil || !strings.HasSuffix(f.What, loginEndedMsg) { // that one says what to do itself
		f.Hint = Hint(err)
	}
	errors.As(err, &f.API)
	errors.As(err, &f.Transport)
	return f
}

// withOp is msg after the operation err failed in, if it names one.
func withOp(err error, msg string) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Op + ": " + msg
	}
	return msg
}
