package main

import (
	"fmt"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/i18n"
)

// errorLine renders err for a terminal: "<what failed>: <why> (<what to
// do>)". With debug it adds the HTTP status, request path and
// request id of dozod's answer, or the request that got none; without, the
// request id of dozod's own failures (5xx), which its operators ask for.
// formatError translates the parts the client and dozod worded.
func errorLine(err error, debug bool) string { return renderFailure(client.Describe(err), debug) }

// renderFailure is the error line of f.
func renderFailure(f client.Failure, debug bool) string {
	line := f.What
	if f.Hint != "" {
		line += " (" + f.Hint + ")"
	}
	if ae := f.API; ae != nil {
		if debug {
			line += i18n.Sprintf(" [HTTP %d %s %s, request id %s]", ae.Status, ae.Method, ae.Path, orNone(ae.Body.RequestID))
		} else if ae.Status >= 500 && ae.Body.RequestID != "" {
			line += i18n.Sprintf(" [request id %s]", ae.Body.RequestID)
		}
	}
	if te := f.Transport; te != nil && debug {
		line += fmt.Sprintf(" [%s %s]", te.Method, te.Path)
	}
	return line
}
