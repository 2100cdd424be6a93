package broker

func (s *Server) batchRoutes() {}
