package broker

import "context"

// scrubState is the Server's scrub scheduler state (issue 5).
type scrubState struct{}

// ScrubConfig is the [scrub] section of kurad's config.
type ScrubConfig struct{}

const scrubConfigHelp = ``

func (c *ScrubConfig) applyEnv(getenv func(string) string) error { return nil }
func (c *ScrubConfig) validate() error                           { return nil }

func (s *Server) initScrub(o Options) error { return nil }
func (s *Server) scrubRoutes()              {}

// startScrub starts the scrub scheduler; it stops when ctx ends.
func (s *Server) startScrub(ctx context.Context) {}
