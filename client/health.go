package client

import (
	"context"
	"net/http"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// TargetHealth is one storage target's health as dozod last probed it.
type TargetHealth struct {
	ID        string    `json:"id"`
	Domain    string    `json:"domain"`
	Up        bool      `json:"up"`
	Since     time.Time `json:"since"`
	LastProbe time.Time `json:"last_probe,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	Failures  uint64    `json:"failures"`
}

// Targets lists every storage target's health (admins only).
func (c *Client) Targets(ctx context.Context) ([]TargetHealth, error) {
	var ts []TargetHealth
	return ts, c.do(ctx, http.MethodGet, api.ListTargets.Path(), nil, &ts)
}
