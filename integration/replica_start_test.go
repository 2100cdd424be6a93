package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// TestDozodStartsWithATargetDown: a dozod (re)started while one storage
// server is down comes up, reports the server's targets down, and serves
// what the erasure code still covers. Before, it refused to start because
// it could not check the server's bucket, so restarting a replica during a
// storage outage took it away too.
func TestDozodStartsWithATargetDown(t *testing.T) {
	s := needStack(t)
	pgURL := privatePostgres(t)
	conf, err := os.ReadFile(filepath.Join(s.devDir, "dozod.toml"))
	if err != nil {
		t.Fatal(err)
	}
	restart := s.stopMinio(t, 1)
	defer restart()
	url := s.startReplica(t, conf, pgURL, 0)
	// The first probe may not have run yet: wait for it.
	hc := s.brokerHTTP(t)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := hc.Get(url + api.GetHealth.Path())
		if err != nil {
			t.Fatal(err)
		}
		var h api.Health
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("health: %d %v", resp.StatusCode, err)
		}
		if h.Targets != nil && !h.Targets.CheckedAt.IsZero() && h.Targets.Up < h.Targets.Total {
			return // up, and it knows minio1's targets are down
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never showed minio1's targets down: %+v", h.Targets)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
