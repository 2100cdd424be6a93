package broker

func (s *Server) accessRoutes() {}
