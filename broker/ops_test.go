package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/catalog"
	"github.com/dozo-vault/dozo/internal/envconfig"
	"github.com/dozo-vault/dozo/storage"
)

// downTarget is a dirTarget that can be switched off: every call then
// fails as a dead server's would.
type downTarget struct {
	dirTarget
	down  *atomic.Bool
	stats *atomic.Int64
}

var errDown = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

func (d downTarget) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	d.stats.Add(1)
	if d.down.Load() {
		return storage.ObjectInfo{}, errDown
	}
	return d.dirTarget.Stat(ctx, key)
}

type opsEnv struct {
	*env
	down  map[string]*atomic.Bool
	stats *atomic.Int64
}

// newOpsEnv is newEnv with switchable targets and a metrics config.
func newOpsEnv(t *testing.T, mc MetricsConfig) *opsEnv {
	t.Helper()
	down, stats := map[string]*atomic.Bool{}, &atomic.Int64{}
	switchable := func(d *storage.DirTarget) Target {
		down[d.ID()] = &atomic.Bool{}
		return downTarget{dirTarget{d}, down[d.ID()], stats}
	}
	e, _ := newEnvOn(t, switchable, func(_ *env, o *Options) { o.Metrics = mc })
	return &opsEnv{env: e, down: down, stats: stats}
}

func (e *opsEnv) setDown(ids ...string) {
	for _, d := range e.down {
		d.Store(false)
	}
	for _, id := range ids {
		e.down[id].Store(true)
	}
	e.srv.targetHealth.ProbeAll(context.Background())
}

func (e *opsEnv) begin(ds, name string, want int) (api.Upload, []byte) {
	e.t.Helper()
	var up api.Upload
	raw := e.must(want, "tok-sam", "POST", "/v1/datasets/"+ds+"/uploads", api.BeginUploadRequest{
		Name: name, Size: 3 << 20,
		FileKey: base64.StdEncoding.EncodeToString(randBytes(16)), Nonce: base64.StdEncoding.EncodeToString(randBytes(16)),
	}, &up)
	return up, raw
}

func TestTargetHealthPlacement(t *testing.T) {
	e := newOpsEnv(t, MetricsConfig{})
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "D42", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "D22", Title: "t", K: 2, M: 2, PlainSegmentSize: 1 << 20}, nil)
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "D21", Title: "t", K: 2, M: 1, PlainSegmentSize: 1 << 20}, nil)

	e.setDown()
	if up, _ := e.begin("D42", "all-up", 201); len(up.Targets) != 6 {
		t.Fatalf("all up: %d targets", len(up.Targets))
	}
	// One server (s2: two targets) down: 4 targets in 2 domains hold at
	// most 2+2 = 4 of the 6 pieces 4+2 needs, so the upload is refused,
	// clearly, and nothing is recorded.
	e.setDown("s2-a", "s2-b")
	_, raw := e.begin("D42", "refused", 503)
	eb := errBody(t, raw)
	for _, want := range []string{"only 4 of 6 storage targets are up", "down: s2-a, s2-b", "a 4+2 upload needs 6 targets", "allow only 4", "try again later"} {
		if !strings.Contains(eb.Error, want) {
			t.Errorf("refusal %q lacks %q", eb.Error, want)
		}
	}
	if eb.Hint == "" {
		t.Error("refusal without hint")
	}
	if _, err := e.cat.OpenUploadByName(context.Background(), "D42", "refused"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("refused upload left a session: %v", err)
	}
	// 2+1 needs three domains (at most one piece each): refused too.
	e.begin("D21", "refused", 503)
	// 2+2 fits on the two healthy servers, and uses only them.
	up, _ := e.begin("D22", "healthy-only", 201)
	if len(up.Targets) != 4 {
		t.Fatalf("2+2 with s2 down: targets %+v", up.Targets)
	}
	for _, tg := range up.Targets {
		if tg.Domain == "s2" {
			t.Fatalf("placed on down target %s", tg.ID)
		}
	}
	// A single target down is enough to refuse 4+2 on six targets.
	e.setDown("s3-b")
	_, raw = e.begin("D42", "refused", 503)
	if !strings.Contains(errBody(t, raw).Error, "down: s3-b") {
		t.Fatalf("refusal %s", raw)
	}
	// Back up: the probe notices and uploads place on all six again.
	e.setDown()
	if up, _ := e.begin("D42", "back", 201); len(up.Targets) != 6 {
		t.Fatalf("after recovery: %d targets", len(up.Targets))
	}

	// A failure on a request path marks the target down at once (only a
	// probe marks it up again); "not found" and a cancelled caller do not.
	e.srv.noteTargetError(context.Background(), "s1-a", storage.ErrNotFound)
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.srv.noteTargetError(cctx, "s1-a", errDown)
	if !e.srv.targetHealth.Up("s1-a") {
		t.Fatal("not-found or cancelled request marked the target down")
	}
	e.srv.noteTargetError(context.Background(), "s1-a", errDown)
	if e.srv.targetHealth.Up("s1-a") {
		t.Fatal("request-path failure did not mark the target down")
	}

	// Operators see it; others may not.
	var ts []TargetStatus
	e.must(200, "tok-admin", "GET", "/v1/targets", nil, &ts)
	if len(ts) != 6 || ts[0].ID != "s1-a" || ts[0].Up || !strings.Contains(ts[0].LastError, "connection refused") || !ts[1].Up {
		t.Fatalf("targets %+v", ts)
	}
	e.must(403, "tok-sam", "GET", "/v1/targets", nil, nil)
	e.must(401, "", "GET", "/v1/targets", nil, nil)
	if !strings.Contains(e.logs.String(), `"msg":"storage target down","target":"s2-a"`) {
		t.Fatalf("no log of the target going down:\n%s", e.logs)
	}
	// s1-a is in fact up: before refusing an upload dozod asks the down
	// targets again, so a stale verdict does not refuse it.
	if up, _ := e.begin("D42", "reprobed", 201); len(up.Targets) != 6 || !e.srv.targetHealth.Up("s1-a") {
		t.Fatalf("after a re-probe: %d targets, s1-a up %v", len(up.Targets), e.srv.targetHealth.Up("s1-a"))
	}
}

func TestProbesRun(t *testing.T) {
	e := newOpsEnv(t, MetricsConfig{ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond})
	e.down["s2-b"].Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.srv.Start(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.targetHealth.Up("s2-b") || e.stats.Load() < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("probes did not run twice or mark s2-b down (stats %d)", e.stats.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !e.srv.targetHealth.Up("s2-a") {
		t.Fatal("healthy target marked down")
	}
}

var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? [-+0-9.eEInfa]+$`)

// checkExposition checks the text format: every sample line well formed,
// every family's HELP and TYPE once and before its samples.
func checkExposition(t *testing.T, body string) {
	t.Helper()
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name := strings.Fields(f)[0]
			if typed[name] {
				t.Errorf("TYPE of %s twice", name)
			}
			typed[name] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		if !sampleLine.MatchString(line) {
			t.Errorf("bad sample line %q", line)
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		base := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && typed[b] {
				base = b
			}
		}
		if !typed[base] {
			t.Errorf("sample %s before its TYPE", name)
		}
	}
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"`)

// canonicalSample is a sample line with its labels sorted and its value
// in one spelling, so that two lines that say the same compare equal.
func canonicalSample(line string) string {
	i := strings.IndexAny(line, "{ ")
	j := strings.LastIndexByte(line, ' ')
	if i < 0 || j < i {
		return line
	}
	var labels []string
	for _, m := range labelPair.FindAllStringSubmatch(line[i:j], -1) {
		labels = append(labels, m[1]+"="+strconv.Quote(m[2]))
	}
	slices.Sort(labels)
	v, err := strconv.ParseFloat(line[j+1:], 64)
	if err != nil {
		return line
	}
	return line[:i] + "{" + strings.Join(labels, ",") + "} " + strconv.FormatFloat(v, 'g', -1, 64)
}

// hasSample reports whether the exposition body holds the sample want,
// whatever the order of its labels and the spelling of its value.
func hasSample(body, want string) bool {
	w := canonicalSample(want)
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "#") && canonicalSample(line) == w {
			return true
		}
	}
	return false
}

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	tokFile := writeFile(t, dir, "metrics-token", "scrape-token-0123456789\n", 0o600)
	e := newOpsEnv(t, MetricsConfig{TokenFile: tokFile})
	e.must(201, "tok-sam", "POST", "/v1/datasets", api.CreateDatasetRequest{ID: "JGAD1", Title: "t", PlainSegmentSize: 1 << 20}, nil)
	data := randBytes(2<<20 + 5)
	e.upload("tok-sam", "JGAD1", "a.vcf", data, randBytes(16), randBytes(16))
	up, _ := e.begin("JGAD1", "b.vcf", 201)
	placed, _ := storage.Place(e.targets, storage.Layout{K: 4, M: 2, SegmentSize: up.SegmentSize}, 0)
	e.must(200, "tok-sam", "POST", "/v1/uploads/"+up.ID+"/presign",
		api.PresignRequest{Target: placed[0].ID(), Key: storage.PieceKey("JGAD1", up.FileID, 0, 0)}, nil)
	// A made-up path must not become a label value.
	e.must(404, "tok-sam", "GET", "/v1/zz-attacker-chosen-label", nil, nil)
	e.setDown("s3-a")

	// Access: no token, a user's token, a bad token: refused.
	for _, path := range []string{"/metrics", "/v1/metrics"} {
		e.must(401, "", "GET", path, nil, nil)
		e.must(403, "tok-rita", "GET", path, nil, nil)
		e.must(401, "wrong-token", "GET", path, nil, nil)
	}
	admin := string(e.must(200, "tok-admin", "GET", "/metrics", nil, nil))
	body := string(e.must(200, "scrape-token-0123456789", "GET", "/v1/metrics", nil, nil))
	checkExposition(t, body)
	for _, want := range []string{
		`dozo_http_requests_total{action="upload.begin",status="201"} 2`,
		`dozo_http_requests_total{action="upload.complete",status="200"} 1`,
		`dozo_http_requests_total{action="metrics",status="401"} 4`,
		`dozo_http_requests_total{action="unknown",status="404"} 1`,
		`dozo_http_request_duration_seconds_bucket{action="upload.commit",le="+Inf"} 3`,
		`dozo_http_request_duration_seconds_count{action="upload.commit"} 3`,
		`dozo_presigned_urls_total{method="PUT"} 1`,
		`dozo_presigned_bytes_total{method="PUT"} 262208`, // (1 MiB + 16 tags of 16 B) / 4
		`dozo_presigned_urls_total{method="GET"} 0`,
		`dozo_uploads_started_total 2`,
		`dozo_uploads_completed_total 1`,
		`dozo_target_up{target="s3-a",domain="s3"} 0`,
		`dozo_target_up{target="s3-b",domain="s3"} 1`,
		`dozo_catalog_up 1`,
		`dozo_catalog_files{state="available"} 1`,
		`dozo_catalog_files{state="uploading"} 1`,
		`dozo_catalog_file_bytes{state="available"} 2097157`,
		`dozo_catalog_datasets 1`,
		`dozo_build_info{version="test"} 1`,
	} {
		if !hasSample(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "attacker") || strings.Contains(body, "JGAD1") || strings.Contains(body, "a.vcf") {
		t.Error("metrics carry request input as label values")
	}
	if !strings.Contains(admin, "dozo_target_up") {
		t.Error("admin scrape incomplete")
	}

	// Fetch and presign GET count too.
	e.must(200, "tok-sam", "PUT", "/v1/me/recipient", api.RecipientRequest{Recipient: testRecipient(t)}, nil)
	var fr api.FetchResponse
	e.must(200, "tok-sam", "POST", "/v1/datasets/JGAD1/files/a.vcf/fetch", nil, &fr)
	seg1, err := e.cat.Segment(context.Background(), fr.File.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := seg1.Pieces[2]
	e.must(200, "tok-sam", "POST", "/v1/fetches/"+fr.File.ID+"/presign",
		api.PresignRequest{Target: p.Target, Key: storage.PieceKey("JGAD1", fr.File.ID, 1, 2)}, nil)
	body = string(e.must(200, "scrape-token-0123456789", "GET", "/metrics", nil, nil))
	for _, want := range []string{`dozo_fetches_total 1`, `dozo_presigned_urls_total{method="GET"} 1`,
		`dozo_presigned_bytes_total{method="GET"} 262208`} {
		if !hasSample(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func testRecipient(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

func TestMetricsLoopback(t *testing.T) {
	get := func(e *opsEnv, local string) int {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if local != "" {
			addr, _ := net.ResolveTCPAddr("tcp", local)
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, net.Addr(addr)))
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		return rec.Code
	}
	off := newOpsEnv(t, MetricsConfig{})
	if c := get(off, "127.0.0.1:8443"); c != 401 {
		t.Fatalf("loopback without the flag: %d", c)
	}
	on := newOpsEnv(t, MetricsConfig{AllowLoopback: true})
	if c := get(on, "127.0.0.1:8443"); c != 200 {
		t.Fatalf("loopback with the flag: %d", c)
	}
	for _, local := range []string{"10.1.2.3:8443", ""} {
		if c := get(on, local); c != 401 {
			t.Fatalf("listener %q with the flag: %d", local, c)
		}
	}
}

func TestMetricsConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good", "0123456789abcdef0123\n", 0o600)
	open := writeFile(t, dir, "open", "0123456789abcdef0123\n", 0o644)
	short := writeFile(t, dir, "short", "abc\n", 0o600)
	spaced := writeFile(t, dir, "spaced", "0123456789 abcdef0123\n", 0o600)

	c := MetricsConfig{}
	if err := envconfig.Apply(&c, func(k string) string {
		return map[string]string{"DOZOD_METRICS_TOKEN_FILE": good, "DOZOD_PROBE_INTERVAL": "10s"}[k]
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil || c.token != "0123456789abcdef0123" || c.ProbeInterval != 10*time.Second || c.ProbeTimeout != DefaultProbeTimeout {
		t.Fatalf("config %+v: %v", c, err)
	}
	for name, bad := range map[string]MetricsConfig{
		"readable token file": {TokenFile: open},
		"short token":         {TokenFile: short},
		"token with a space":  {TokenFile: spaced},
		"missing file":        {TokenFile: filepath.Join(dir, "nope")},
		"interval too short":  {ProbeInterval: 100 * time.Millisecond},
		"timeout >= interval": {ProbeInterval: 2 * time.Second, ProbeTimeout: 2 * time.Second},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if err := envconfig.Apply(&MetricsConfig{}, func(k string) string {
		return map[string]string{"DOZOD_PROBE_TIMEOUT": "soon"}[k]
	}); err == nil {
		t.Error("bad DOZOD_PROBE_TIMEOUT accepted")
	}
	if !strings.Contains(ConfigHelp, "DOZOD_METRICS_TOKEN_FILE") || !strings.Contains(ConfigHelp, "[metrics]") {
		t.Error("config help does not document [metrics]")
	}
}

func TestMetricsConfigFile(t *testing.T) {
	dir := t.TempDir()
	tok := writeFile(t, dir, "token", "s.dozod\n", 0o600)
	mt := writeFile(t, dir, "metrics-token", "0123456789abcdef0123\n", 0o600)
	conf := writeFile(t, dir, "dozod.toml", `
listen = "127.0.0.1:9443"
insecure_http = true
[vault]
address = "http://127.0.0.1:8200"
token_file = "`+tok+`"
[[targets]]
id = "s1-a"
domain = "s1"
endpoint = "http://127.0.0.1:9000"
bucket = "dozo-a"
access_key = "ak"
[metrics]
token_file = "`+mt+`"
allow_unauthenticated_loopback = true
probe_interval = "30s"
probe_timeout = "3s"
`, 0o600)
	env := map[string]string{"DOZOD_S3_SECRET_KEY": "sk"}
	c, err := LoadConfig(conf, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	m := c.Metrics
	if m.token != "0123456789abcdef0123" || !m.AllowLoopback || m.ProbeInterval != 30*time.Second || m.ProbeTimeout != 3*time.Second {
		t.Fatalf("metrics config %+v", m)
	}
	os.Chmod(mt, 0o640)
	if _, err := LoadConfig(conf, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable metrics token: %v", err)
	}
}

func TestHasSample(t *testing.T) {
	body := "# TYPE m gauge\nm{domain=\"s3\",target=\"s3-a\"} 2.097157e+06\nn 0\n"
	for want, ok := range map[string]bool{
		`m{target="s3-a",domain="s3"} 2097157`: true,
		`m{domain="s3",target="s3-a"} 2097157`: true,
		`m{target="s3-a",domain="s3"} 2097158`: false,
		`m{target="s3-b",domain="s3"} 2097157`: false,
		`m{target="s3-a"} 2097157`:             false,
		`n 0`:                                  true,
		`n 1`:                                  false,
	} {
		if hasSample(body, want) != ok {
			t.Errorf("hasSample(%q) = %v", want, !ok)
		}
	}
}
