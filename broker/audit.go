package broker

import "context"

func (s *Server) auditRoutes() {}

// recordEvent appends an event that is not an HTTP request (a scheduled
// scrub, a background repair) to the audit log. actor is a user name or
// "kurad"; result is "ok", "refused" or "error"; detail is a short
// human-readable line and must hold no secret.
func (s *Server) recordEvent(ctx context.Context, actor, action, object, result, detail string) {}
