package broker

import (
	"context"
	"time"
)

// opsState is the Server's target-health and metrics state (issue 5).
type opsState struct{}

// MetricsConfig is the [metrics] section of kurad's config.
type MetricsConfig struct{}

const metricsConfigHelp = ``

func (c *MetricsConfig) applyEnv(getenv func(string) string) error { return nil }
func (c *MetricsConfig) validate() error                           { return nil }

func (s *Server) initOps(o Options) error { return nil }
func (s *Server) opsRoutes()              {}

// observe records one finished request for the metrics.
func (s *Server) observe(q *request, took time.Duration) {}

// startOps starts target health probes; they stop when ctx ends.
func (s *Server) startOps(ctx context.Context) {}
