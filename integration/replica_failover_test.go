package integration

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/audit"
	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/transfer"
)

// TestReplicaKilledMidTransfer: two dozods on one PostgreSQL catalog, the
// client given both (a comma-separated DOZO_BROKER). The replica the
// client is using is killed (SIGKILL) halfway through an upload, and
// another halfway through a fetch: each transfer completes through the
// replica left, without an error, the fetched bytes are the uploaded
// ones, and the audit chain the replicas wrote verifies.
func TestReplicaKilledMidTransfer(t *testing.T) {
	s := needStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pgURL := privatePostgres(t)
	conf, err := os.ReadFile(filepath.Join(s.devDir, "dozod.toml"))
	if err != nil {
		t.Fatal(err)
	}
	r0, r1 := s.startReplicaProc(t, conf, pgURL, 0), s.startReplicaProc(t, conf, pgURL, 1)
	on := func(rs ...*replica) *stack {
		c := *s
		c.env = maps.Clone(s.env)
		var urls []string
		for _, r := range rs {
			urls = append(urls, r.URL)
		}
		c.env["DOZO_BROKER"] = strings.Join(urls, ",")
		return &c
	}
	rs := on(r0, r1)
	sam, rita := rs.users(t)
	ds := newDatasetID()
	// 1 MiB segments, 48 of them: more than the client presigns in one
	// batch, so either transfer still needs dozod after its halfway mark.
	sam.must(t, "dataset", "create", ds, "--title", "failover", "--segment-size", "1MiB")
	src := filepath.Join(t.TempDir(), "reads.bin")
	want := writeRandomFile(t, src, 23, 48*mib-4321, nil)

	// killAt kills r with SIGKILL once a transfer is half done.
	killAt := func(r *replica) (progress func(done, total int64), killed func() bool) {
		var once sync.Once
		var did bool
		return func(done, total int64) {
				if done >= total/2 {
					once.Do(func() {
						r.Proc.Kill()
						r.Proc.Wait()
						did = true
					})
				}
			}, func() bool {
				return did
			}
	}

	// Upload through r0, killed halfway; r1 takes over.
	c, id := researcherClient(t, rs, sam)
	dir, err := client.OpenDir(sam.dir)
	if err != nil {
		t.Fatal(err)
	}
	progress, killed := killAt(r0)
	up, err := transfer.UploadFile(ctx, c, transfer.UploadOptions{Dataset: ds, Path: src, Dir: dir, Identity: id,
		Progress: func(phase string, done, total int64) { progress(done, total) }})
	if err != nil {
		t.Fatalf("upload with its replica killed halfway: %v", err)
	}
	if !killed() || up.Resumed || up.File.SHA256 != want {
		t.Fatalf("upload: replica killed %v, resumed %v, sha %s (want %s)", killed(), up.Resumed, up.File.SHA256, want)
	}
	sam.must(t, "grant", ds, rita.name, "--until", time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02"),
		"--application", "J-DU000001", "--institution", "NIG")

	// Fetch through a new replica r2, killed halfway; r1 takes over.
	r2 := s.startReplicaProc(t, conf, pgURL, 2)
	rc, rid := researcherClient(t, on(r2, r1), rita)
	out := filepath.Join(t.TempDir(), "back.bin")
	progress, killed = killAt(r2)
	if _, err := transfer.FetchFile(ctx, rc, transfer.FetchOptions{Dataset: ds, Name: "reads.bin", Output: out, Identity: rid, Progress: progress}); err != nil {
		t.Fatalf("fetch with its replica killed halfway: %v", err)
	}
	if !killed() {
		t.Fatal("the fetch finished before its replica was killed")
	}
	if got := fileSHA(t, out); got != want {
		t.Fatalf("fetched sha256 %s, uploaded %s", got, want)
	}

	// The chain the three replicas wrote verifies, with one record of the
	// completed upload.
	req, _ := http.NewRequestWithContext(ctx, "GET", r1.URL+"/v1/audit/export", nil)
	req.Header.Set("Authorization", "Bearer "+s.adminToken(t))
	resp, err := s.brokerHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res, err := audit.VerifyExport(bytes.NewReader(exp))
	if resp.StatusCode != 200 || err != nil || !res.OK {
		t.Fatalf("audit export (%d) verifies as %+v: %v", resp.StatusCode, res, err)
	}
	if n := bytes.Count(exp, []byte(`"action":"upload.complete"`)); n != 1 {
		t.Fatalf("%d upload.complete records in the chain, want 1", n)
	}
	t.Logf("upload and fetch survived a killed replica each; chain of %d records verifies", res.Records)
}
