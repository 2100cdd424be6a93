package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/storage"
)

// Fault injection on the real stack: MinIO servers are stopped while
// dozo uploads and fetches, and dozod's catalog is thrown away and rebuilt
// from storage.

// adminToken logs the dev admin in to Vault and returns the token.
func (s *stack) adminToken(t testing.TB) string {
	t.Helper()
	return s.vaultLogin(t, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
}

func (s *stack) vaultLogin(t testing.TB, name, password string) string {
	t.Helper()
	tok, err := s.vault(t).UserpassLogin(context.Background(), "userpass", name, password)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// brokerGet GETs a dozod path with an optional bearer token.
func (s *stack) brokerGet(t testing.TB, path, token string) (int, string) {
	t.Helper()
	return s.brokerGetFrom(t, s.env["DOZO_BROKER"], path, token)
}

// brokerGetFrom is brokerGet from the dozod (or proxy) at base.
func (s *stack) brokerGetFrom(t testing.TB, base, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.brokerHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of one series (name with labels, exactly as
// dozod writes it), or -1 if absent. In the metrics of several dozods one
// after the other (waitMetrics) it is the sum: a counter of the whole
// stack.
func metric(body, series string) float64 {
	sum, found := 0.0, false
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				sum, found = sum+f, true
			}
		}
	}
	if !found {
		return -1
	}
	return sum
}

// waitMetrics polls /metrics of every dozod until ok holds on each (a
// probe interval is 5 s), and returns their metrics one after the other.
func (s *stack) waitMetrics(t testing.TB, token, what string, ok func(body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var all strings.Builder
	for _, base := range s.brokerURLs() { // each dozod has its own view and counters
		for {
			code, body := s.brokerGetFrom(t, base, "/metrics", token)
			if code != 200 {
				t.Fatalf("%s/metrics: %d %s", base, code, body)
			}
			if ok(body) {
				all.WriteString(strings.TrimSuffix(body, "\n") + "\n")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; metrics of %s:\n%s", what, base, body)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	return all.String()
}

func serverUp(n int, up float64) func(string) bool {
	return func(body string) bool {
		for _, b := range []string{"a", "b"} {
			if metric(body, fmt.Sprintf(`dozo_target_up{domain="s%d",target="s%d-%s"}`, n, n, b)) != up {
				return false
			}
		}
		return true
	}
}

// objectsOn counts a dataset's objects on server n's targets.
func (s *stack) objectsOn(t testing.TB, n int, ds string) int {
	t.Helper()
	count := 0
	for _, tg := range s.targets(t)[(n-1)*2 : n*2] {
		if err := tg.List(context.Background(), storage.DatasetPrefix(ds), func(storage.ObjectInfo) error { count++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return count
}

// TestFaultTargetHealth: with one MinIO server down dozod's probes mark its
// targets down in /metrics, a 4+2 upload is refused with a clear message
// (four targets in two domains hold at most 2+2 pieces of a segment), and a
// 2+2 upload succeeds on the healthy targets only. 2+1 would not do: it
// needs three domains. /metrics is refused without a token.
func TestFaultTargetHealth(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	admin := s.adminToken(t)

	if code, _ := s.brokerGet(t, "/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token: %d", code)
	}
	samTok := s.vaultLogin(t, sam.name, sam.password)
	if code, _ := s.brokerGet(t, "/v1/metrics", samTok); code != http.StatusForbidden {
		t.Fatalf("/v1/metrics as a submitter: %d", code)
	}

	ds42, ds22 := newDatasetID(), newDatasetID()+"x"
	sam.must(t, "dataset", "create", ds42, "--title", "4+2", "--segment-size", "1MiB")
	sam.must(t, "dataset", "create", ds22, "--title", "2+2", "--rs", "2+2", "--segment-size", "1MiB")
	dir := t.TempDir()
	src := filepath.Join(dir, "small.vcf")
	want := writeRandomFile(t, src, 51, 3*mib+7, nil)
	sam.must(t, "upload", "--dataset", ds42, src)
	before := s.waitMetrics(t, admin, "all targets up", serverUp(2, 1))
	completed := metric(before, "dozo_uploads_completed_total")
	refused := metric(before, `dozo_http_requests_total{action="upload.begin",status="503"}`)
	if completed < 1 {
		t.Fatalf("dozo_uploads_completed_total %v after an upload", completed)
	}

	restart := s.stopMinio(t, 2)
	s.waitMetrics(t, admin, "dozo_target_up 0 for s2-a and s2-b", serverUp(2, 0))
	var ts []struct {
		ID string
		Up bool
	}
	code, body := s.brokerGet(t, "/v1/targets", admin)
	if err := json.Unmarshal([]byte(body), &ts); code != 200 || err != nil || len(ts) != 6 || ts[2].ID != "s2-a" || ts[2].Up || !ts[0].Up {
		t.Fatalf("/v1/targets: %d %s", code, body)
	}

	line := sam.refused(t, "upload", "--dataset", ds42, "--name", "refused.vcf", src)
	for _, w := range []string{"only 4 of 6 storage targets are up", "down: s2-a, s2-b", "4+2 upload needs 6 targets", "try again later"} {
		if !strings.Contains(line, w) {
			t.Errorf("refusal %q lacks %q", line, w)
		}
	}
	if f, ok := lsFiles(t, sam, ds42)["refused.vcf"]; ok {
		t.Fatalf("refused upload is listed: %+v", f)
	}
	sam.must(t, "upload", "--dataset", ds22, src)
	out := filepath.Join(dir, "back.vcf")
	sam.must(t, "fetch", ds22+"/small.vcf", "-o", out)
	if fileSHA(t, out) != want {
		t.Fatal("2+2 upload with a server down fetches back different bytes")
	}
	after := s.waitMetrics(t, admin, "counters", func(string) bool { return true })
	if got := metric(after, "dozo_uploads_completed_total"); got != completed+1 {
		t.Errorf("dozo_uploads_completed_total %v, want %v", got, completed+1)
	}
	if got := metric(after, `dozo_http_requests_total{action="upload.begin",status="503"}`); got != max(refused, 0)+1 {
		t.Errorf("503s of upload.begin %v, want %v", got, max(refused, 0)+1)
	}

	restart()
	s.waitMetrics(t, admin, "s2 back up", serverUp(2, 1))
	if n := s.objectsOn(t, 2, ds22); n != 0 {
		t.Fatalf("%d objects of the 2+2 upload on the server that was down", n)
	}
	if n := s.objectsOn(t, 1, ds22) + s.objectsOn(t, 3, ds22); n < 4*4 {
		t.Fatalf("only %d objects of the 2+2 upload on the healthy servers", n)
	}
	sam.must(t, "upload", "--dataset", ds42, "--name", "after.vcf", src)
}

// TestFaultKillDuringUpload: a MinIO server stops in the middle of an
// upload. The upload either completes or fails with one clear line; with
// the server back, rerunning it resumes and the file fetches
// byte-identical.
func TestFaultKillDuringUpload(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "kill during upload", "--segment-size", "1MiB")
	dir := t.TempDir()
	src := filepath.Join(dir, "reads.fastq")
	const size = 64 * mib
	want := writeRandomFile(t, src, 61, size, nil)

	cmd := sam.command("upload", "--dataset", ds, src, "--json")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	started := time.Now()
	for len(s.pieceStates(t, ds)) < 4*6 {
		if time.Since(started) > 2*time.Minute {
			t.Fatal("upload made no progress")
		}
		time.Sleep(20 * time.Millisecond)
	}
	restart := s.stopMinio(t, 3)
	err := <-waited
	if err == nil {
		t.Logf("the upload completed despite the stop: %s", stdout.String())
	} else {
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "dozo: ") {
			t.Fatalf("failed upload's last stderr line is not a clear error: %q", stderr.String())
		}
		t.Logf("upload failed clearly: %s", last)
		if f, ok := lsFiles(t, sam, ds)["reads.fastq"]; ok && f.State == api.FileAvailable {
			t.Fatal("a failed upload is listed as available")
		}
	}
	restart()
	// Wait for dozod to see the server back, or the rerun may be refused.
	admin := s.adminToken(t)
	s.waitMetrics(t, admin, "s3 back up", serverUp(3, 1))
	var up []struct {
		SHA256, State string
		Resumed       bool
		Sent          int64 `json:"sent_bytes"`
	}
	if err == nil {
		if fileSHA(t, src) != want {
			t.Fatal("source changed")
		}
	} else {
		if jerr := json.Unmarshal([]byte(sam.must(t, "upload", "--dataset", ds, src, "--json")), &up); jerr != nil {
			t.Fatal(jerr)
		}
		if len(up) != 1 || !up[0].Resumed || up[0].SHA256 != want || up[0].State != api.FileAvailable || up[0].Sent >= size {
			t.Fatalf("rerun: %+v, want a resumed, available upload of fewer than %d bytes with sha %s", up, size, want)
		}
	}
	out := filepath.Join(dir, "back.fastq")
	sam.must(t, "fetch", ds+"/reads.fastq", "-o", out)
	if fileSHA(t, out) != want {
		t.Fatal("fetched bytes differ")
	}
}

// TestFaultKillDuringFetch: a MinIO server stops in the middle of a fetch.
// The fetch completes byte-identical from parity and says once, on
// stderr, that storage is degraded; --json names the targets.
func TestFaultKillDuringFetch(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "kill during fetch", "--segment-size", "1MiB")
	dir := t.TempDir()
	src := filepath.Join(dir, "big.bam")
	const size = 96 * mib
	want := writeRandomFile(t, src, 71, size, nil)
	sam.must(t, "upload", "--dataset", ds, src)

	out := filepath.Join(dir, "back.bam")
	cmd := sam.command("fetch", ds+"/big.bam", "-o", out, "--json", "--concurrency", "2")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	started := time.Now()
	for {
		if fi, err := os.Stat(out + ".partial"); err == nil && fi.Size() >= 4*mib {
			break
		}
		if time.Since(started) > 2*time.Minute {
			t.Fatal("fetch made no progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Pause the client while the server goes away, so a fast fetch cannot
	// finish first; it resumes with requests in flight to a dead server.
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	restart := s.stopMinio(t, 1)
	stoppedAt, _ := os.Stat(out + ".partial")
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("fetch with a server stopped midway: %v\n%s", err, stderr.String())
	}
	if stoppedAt == nil || stoppedAt.Size() >= size {
		t.Fatal("the fetch finished before the server stopped; nothing was tested")
	}
	if fileSHA(t, out) != want {
		t.Fatal("fetched bytes differ")
	}
	if n := strings.Count(stderr.String(), "storage is degraded"); n != 1 {
		t.Fatalf("degraded notice printed %d times, want once:\n%s", n, stderr.String())
	}
	var res struct {
		Verified bool     `json:"checksums_verified"`
		Degraded int64    `json:"segments_degraded"`
		Targets  []string `json:"degraded_targets"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.Degraded == 0 || len(res.Targets) == 0 {
		t.Fatalf("fetch report %+v", res)
	}
	for _, tg := range res.Targets {
		if !strings.HasPrefix(tg, "s1-") {
			t.Fatalf("degraded target %s is not on the stopped server", tg)
		}
	}
	restart()
	s.waitMetrics(t, s.adminToken(t), "s1 back up", serverUp(1, 1))
}

// dozod runs the dozod binary under test against the dev stack's config.
func (s *stack) dozod(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, "dozod"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestFaultCatalogRebuild: the catalog file is lost while dozod is
// stopped. `dozod catalog rebuild` restores the dataset and its files from
// the manifests, headers and sealed file info on storage (dry run first,
// which writes nothing), and after a restart the files fetch
// byte-identical under their names, with checksums verified. The dry run
// happens with one server down.
func TestFaultCatalogRebuild(t *testing.T) {
	s := needStack(t)
	sam, _ := s.users(t)
	ds := newDatasetID()
	sam.must(t, "dataset", "create", ds, "--title", "rebuild me", "--segment-size", "1MiB")
	dir := t.TempDir()
	names := map[string]int64{"multi.cram": 5*mib + 123, "tiny.txt": 10, "empty.txt": 0}
	shas := map[string]string{}
	for name, size := range names {
		p := filepath.Join(dir, name)
		shas[name] = writeRandomFile(t, p, uint64(size)+3, size, nil)
		sam.must(t, "upload", "--dataset", ds, p)
	}
	before := lsFiles(t, sam, ds)

	// The old catalog is put back when the test ends, for the tests that
	// follow.
	s.loseCatalog(t)
	conf := filepath.Join(s.devDir, "dozod.toml")

	type report struct {
		DatasetRow string `json:"dataset_row"`
		Manifests  int    `json:"manifests_found"`
		Files      []struct {
			FileID     string `json:"file_id"`
			Name       string `json:"name"`
			Action     string `json:"action"`
			Size       int64  `json:"size"`
			NameFromID bool   `json:"name_from_id"`
		}
		Skipped  []any
		Unlisted map[string]string `json:"targets_unlisted"`
	}
	run := func(args ...string) report {
		out, errOut, err := s.dozod(t, append([]string{"catalog", "rebuild", "--config", conf, "--dataset", ds, "--json"}, args...)...)
		if err != nil {
			t.Fatalf("dozod catalog rebuild %v: %v\n%s%s", args, err, out, errOut)
		}
		var r report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return r
	}
	if _, errOut, err := s.dozod(t, "catalog", "rebuild", "--config", conf, "--dataset", ds); err == nil || !strings.Contains(errOut, "--owner") {
		t.Fatalf("rebuild of a lost dataset without --owner: %v %s", err, errOut)
	}
	// Metadata is stored once per failure domain: with a server down the
	// dry run still finds every file, and says which targets it missed.
	restart := s.stopMinio(t, 2)
	dry := run("--owner", sam.name)
	restart()
	if dry.DatasetRow != "would be created" || dry.Manifests != 3 || len(dry.Files) != 3 || len(dry.Skipped) != 0 ||
		len(dry.Unlisted) != 2 || dry.Unlisted["s2-a"] == "" {
		t.Fatalf("dry run: %+v", dry)
	}
	if again := run("--owner", sam.name); again.DatasetRow != "would be created" {
		t.Fatalf("the dry run wrote the catalog: %+v", again)
	}
	rep := run("--owner", sam.name, "--apply")
	if rep.DatasetRow != "created" || len(rep.Files) != 3 {
		t.Fatalf("apply: %+v", rep)
	}
	for _, f := range rep.Files {
		b, ok := before[f.Name]
		if !ok || f.NameFromID || f.Action != "restored" || f.FileID != b.ID || f.Size != b.Size {
			t.Fatalf("restored %+v, before %+v", f, b)
		}
	}
	if err := s.dev("up"); err != nil {
		t.Fatal(err)
	}
	// The users table went with the catalog: sam registers his key again.
	sam.must(t, "key", "register")
	after := lsFiles(t, sam, ds)
	for name := range names {
		if after[name].SHA256 != shas[name] || after[name].ID != before[name].ID || after[name].State != api.FileAvailable {
			t.Fatalf("%s after rebuild: %+v, before %+v", name, after[name], before[name])
		}
		out := filepath.Join(dir, name+".back")
		var fo struct {
			Verified bool `json:"checksums_verified"`
		}
		if err := json.Unmarshal([]byte(sam.must(t, "fetch", ds+"/"+name, "-o", out, "--json")), &fo); err != nil {
			t.Fatal(err)
		}
		if fileSHA(t, out) != shas[name] || (!fo.Verified && names[name] > 0) {
			t.Fatalf("%s fetched after the rebuild differs or was not verified", name)
		}
	}
}
