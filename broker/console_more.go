package broker

// consoleMoreRoutes registers the console's audit, operators' and
// researcher's pages.
func (s *Server) consoleMoreRoutes() {}
