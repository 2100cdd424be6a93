package broker

func (s *Server) auditRoutes() {}
