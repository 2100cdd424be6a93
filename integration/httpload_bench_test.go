package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
	"github.com/dozo-vault/dozo/client"
)

// BenchmarkHTTPLoad is dozod's control-plane load test (make bench with
// DOZO_BENCH_HTTP=1): closed-loop clients on loopback, each sending the
// next request as soon as the last is answered, for three audited calls —
// the dataset list (a light read), a file's header fetch (access check,
// Transit rewrap, manifest head) and a presign batch of a small file —
// against one dozod on SQLite (the stack's), one on PostgreSQL and two on
// one PostgreSQL catalog (requests round robin). It prints requests per
// second, p50/p99/max latency, errors (any answer but 200), and the CPU
// seconds dozod, Vault, PostgreSQL, the load generator itself (this
// process, on the same cores) and the whole machine spent per 1000
// requests, with the cores busy on average. Each cell
// runs DOZO_BENCH_HTTP_SECONDS (default 5) seconds; with
// DOZO_BENCH_HTTP_PERF=DIR, perf records the whole machine during each
// 64-client cell into DIR. DOZO_BENCH_HTTP_CALLS and
// DOZO_BENCH_HTTP_SETUPS (comma-separated names as in the table, e.g.
// "header fetch" and "sqlite x1") keep a run to those cells. No assertion
// on the figures: the machine decides them.
func BenchmarkHTTPLoad(b *testing.B) {
	s := needStack(b)
	secs := 5
	if v := os.Getenv("DOZO_BENCH_HTTP_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("DOZO_BENCH_HTTP_SECONDS=%q: want a whole number of seconds", v)
		}
		secs = n
	}
	dur := time.Duration(secs) * time.Second
	var rows []loadRow
	wanted := func(env, name string) bool {
		v := os.Getenv(env)
		return v == "" || slices.Contains(strings.Split(v, ","), name)
	}
	pgDB := "" // the benchmark's PostgreSQL database, once there is one
	run := func(setup string, urls []string, dozods []int) {
		if !wanted("DOZO_BENCH_HTTP_SETUPS", setup) {
			return
		}
		f := newLoadFixture(b, s, urls)
		f.pgDB = pgDB
		for _, call := range f.calls() {
			if !wanted("DOZO_BENCH_HTTP_CALLS", call.name) {
				continue
			}
			for _, c := range []int{1, 16, 64} {
				row := f.run(call, c, dur, dozods)
				row.Setup = setup
				rows = append(rows, row)
				fmt.Fprintln(os.Stderr, row)
			}
		}
	}
	stackPid := pidFile(filepath.Join(s.devDir, "dozod.pid"))
	if theProxy == nil {
		run("sqlite x1", []string{s.env["DOZO_BROKER"]}, []int{stackPid})
	}
	if wanted("DOZO_BENCH_HTTP_SETUPS", "postgres x1") || wanted("DOZO_BENCH_HTTP_SETUPS", "postgres x2") {
		pgURL := privatePostgres(b)
		if u, err := url.Parse(pgURL); err == nil {
			pgDB = strings.TrimPrefix(u.Path, "/")
		}
		conf, err := os.ReadFile(filepath.Join(s.devDir, "dozod.toml"))
		if err != nil {
			b.Fatal(err)
		}
		r0 := s.startReplicaProc(b, conf, pgURL, 0)
		run("postgres x1", []string{r0.URL}, []int{r0.Proc.Pid})
		r1 := s.startReplicaProc(b, conf, pgURL, 1)
		run("postgres x2", []string{r0.URL, r1.URL}, []int{r0.Proc.Pid, r1.Proc.Pid})
	}

	fmt.Printf("\n%-12s %-14s %7s %9s %9s %9s %9s %6s %14s %14s %14s %14s %14s %6s\n", "setup", "call", "clients", "req/s", "p50 ms", "p99 ms", "max ms", "errors",
		"dozod cpu-s/1k", "vault cpu-s/1k", "pg cpu-s/1k", "gen cpu-s/1k", "all cpu-s/1k", "busy")
	for _, r := range rows {
		fmt.Printf("%-12s %-14s %7d %9.0f %9.1f %9.1f %9.1f %6d %14.2f %14.2f %14.2f %14.2f %14.2f %6.2f\n", r.Setup, r.Call, r.Clients, r.RPS, r.P50, r.P99, r.Max, r.Errors,
			r.DozodCPU, r.VaultCPU, r.PgCPU, r.GenCPU, r.MachineCPU, r.Busy)
	}
	if p := os.Getenv("DOZO_BENCH_HTTP_JSON"); p != "" {
		j, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(p, j, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// loadRow is one cell of the load table.
type loadRow struct {
	Setup, Call        string
	Clients            int
	Requests, Errors   int
	RPS                float64
	P50, P99, Max      float64 // milliseconds
	DozodCPU, VaultCPU float64 // CPU seconds per 1000 requests
	PgCPU              float64
	// GenCPU is the load generator's (this process's), MachineCPU the
	// whole machine's, other work on it included.
	GenCPU, MachineCPU float64
	Busy               float64 // cores busy on the whole machine, on average
	Load               float64 // load average when the cell began
}

func (r loadRow) String() string {
	return fmt.Sprintf("%s %s c=%d: %.0f req/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d errors, cpu-s/1k: dozod %.2f, pg %.2f, vault %.2f, generator %.2f, machine %.2f (%.1f cores busy, load %.1f)",
		r.Setup, r.Call, r.Clients, r.RPS, r.P50, r.P99, r.Max, r.Errors, r.DozodCPU, r.PgCPU, r.VaultCPU, r.GenCPU, r.MachineCPU, r.Busy, r.Load)
}

// loadFixture is a dataset with one small file, readable by its
// submitter, on the dozods at urls.
type loadFixture struct {
	b      *testing.B
	s      *stack
	urls   []string
	token  string
	ds     string
	fileID string
	segs   int
	hc     *http.Client
	pgDB   string // PostgreSQL database of the dozods, "" for SQLite
}

func newLoadFixture(b *testing.B, s *stack, urls []string) *loadFixture {
	on := *s
	on.env = map[string]string{}
	for k, v := range s.env {
		on.env[k] = v
	}
	on.env["DOZO_BROKER"] = strings.Join(urls, ",")
	sam, _ := on.users(b)
	ds := newDatasetID()
	sam.must(b, "dataset", "create", ds, "--title", "load", "--segment-size", "1MiB")
	src := filepath.Join(b.TempDir(), "small.vcf")
	writeRandomFile(b, src, 5, 3*mib+17, nil)
	sam.must(b, "upload", "--dataset", ds, src)
	d, err := client.OpenDir(sam.dir)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := d.Token()
	if err != nil {
		b.Fatal(err)
	}
	hc := s.brokerHTTP(b)
	tr := hc.Transport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 128
	hc = &http.Client{Transport: tr, Timeout: time.Minute}
	f := &loadFixture{b: b, s: s, urls: urls, token: tok, ds: ds, hc: hc}
	var fr api.FetchResponse
	if code, body := f.do(urls[0], "POST", "/v1/datasets/"+ds+"/files/small.vcf/fetch", nil, &fr); code != 200 {
		b.Fatalf("fetch: %d %s", code, body)
	}
	f.fileID, f.segs = fr.File.ID, fr.Manifest.SegmentCount()
	return f
}

// loadCall is one kind of request.
type loadCall struct {
	name, method, path string
	body               []byte
}

func (f *loadFixture) calls() []loadCall {
	batch, _ := json.Marshal(api.FetchBatchRequest{First: 0, Count: f.segs})
	return []loadCall{
		{"dataset list", "GET", "/v1/datasets", nil},
		{"header fetch", "POST", "/v1/datasets/" + f.ds + "/files/small.vcf/fetch", nil},
		{"batch presign", "POST", "/v1/fetches/" + f.fileID + "/presign-batch", batch},
	}
}

func (f *loadFixture) do(base, method, path string, body []byte, out any) (int, []byte) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+f.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		json.Unmarshal(raw, out)
	}
	return resp.StatusCode, raw
}

// loadClient is one closed-loop worker's requests: built once, one per
// dozod, and sent again and again, so the generator spends its CPU on
// the requests and not on building them (it shares the cores with
// dozod).
type loadClient struct {
	f    *loadFixture
	call loadCall
	reqs []*http.Request
}

func (f *loadFixture) client(call loadCall) *loadClient {
	c := &loadClient{f: f, call: call}
	for _, u := range f.urls {
		req, err := http.NewRequest(call.method, u+call.path, nil)
		if err != nil {
			f.b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+f.token)
		if call.body != nil {
			req.Header.Set("Content-Type", "application/json")
			req.ContentLength = int64(len(call.body))
		}
		c.reqs = append(c.reqs, req)
	}
	return c
}

// send sends request k (to dozod k mod n) and reads the whole answer, so
// the connection is kept for the next; it returns the status, and for
// anything but 200 the start of the body.
func (c *loadClient) send(k int) (int, string) {
	req := c.reqs[k%len(c.reqs)]
	if c.call.body != nil {
		// A request may be sent again once its last response body is
		// closed; only the body is new (the transport may still hold
		// the last one).
		req.Body = io.NopCloser(bytes.NewReader(c.call.body))
	}
	resp, err := c.f.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return resp.StatusCode, string(head)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, ""
}

// run sends call from clients closed-loop workers for d, each request to
// the next of the fixture's dozods.
func (f *loadFixture) run(call loadCall, clients int, d time.Duration, dozods []int) loadRow {
	cpu := func() (dz, vt, pg, gen, all float64) {
		for _, p := range dozods {
			dz += treeCPU(p)
		}
		return dz, treeCPU(pidFile(filepath.Join(f.s.dir, "vault.pid"))), pgBackendCPU(f.pgDB), selfCPU(), machineCPU()
	}
	if dir := os.Getenv("DOZO_BENCH_HTTP_PERF"); dir != "" && clients == 64 && len(dozods) > 0 {
		// Where the time goes: a perf profile of the whole machine
		// (dozod, PostgreSQL, Vault, this generator, the kernel), read
		// with `perf report -i FILE --no-children --sort comm,dso` and
		// `--comm dozod`.
		name := strings.NewReplacer(" ", "-").Replace(fmt.Sprintf("%s-%s-%d.perf", f.urls[0][8:], call.name, len(dozods)))
		perf := exec.Command("perf", "record", "-F", "499", "-g", "-a", "-o", filepath.Join(dir, name), "--", "sleep", strconv.Itoa(int(d.Seconds())))
		if err := perf.Start(); err == nil {
			defer perf.Wait()
		}
	}
	workers := make([]*loadClient, clients)
	lats := make([][]time.Duration, clients)
	bad := make([]int, clients)
	for w := range workers {
		workers[w] = f.client(call)
		lats[w] = make([]time.Duration, 0, 1<<14)
	}
	var mu sync.Mutex
	var firstErr string
	load := loadAvg()
	dz0, vt0, pg0, gen0, all0 := cpu()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w, c := range workers {
		wg.Go(func() {
			for k := w; ; k++ {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				code, body := c.send(k)
				lats[w] = append(lats[w], time.Since(t0))
				if code != http.StatusOK {
					bad[w]++
					mu.Lock()
					if firstErr == "" {
						firstErr = fmt.Sprintf("%d %.200s", code, body)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	dz1, vt1, pg1, gen1, all1 := cpu()
	if firstErr != "" {
		fmt.Fprintf(os.Stderr, "load %s: first error: %s\n", call.name, firstErr)
	}
	lat := slices.Concat(lats...)
	errs := 0
	for _, n := range bad {
		errs += n
	}
	slices.Sort(lat)
	ms := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	n := float64(len(lat))
	per1k := func(c float64) float64 { return c / max(n, 1) * 1000 }
	return loadRow{Call: call.name, Clients: clients, Requests: len(lat), Errors: errs, RPS: n / el.Seconds(),
		P50: ms(0.5), P99: ms(0.99), Max: ms(1), DozodCPU: per1k(dz1 - dz0), VaultCPU: per1k(vt1 - vt0), PgCPU: per1k(pg1 - pg0),
		GenCPU: per1k(gen1 - gen0), MachineCPU: per1k(all1 - all0), Busy: (all1 - all0) / el.Seconds(), Load: load}
}

// selfCPU is the CPU seconds this process (the load generator) has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// machineCPU is the CPU seconds all processes on the machine have used
// since boot (/proc/stat: every state but idle and iowait).
func machineCPU() float64 {
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(st, []byte("\n"))
	f := strings.Fields(string(line))
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n / 100
	}
	return busy
}

// loadAvg is the machine's load average over the last minute.
func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// pidFile reads a pid file; 0 if there is none.
func pidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// postmasterPid is the pid of the private PostgreSQL cluster's server
// (scripts/postgres.sh's default state directory); 0 if it is not found.
func postmasterPid() int {
	u, err := osuser.Current()
	if err != nil {
		return 0
	}
	data := "/var/tmp/dozo-postgres-" + u.Username + "/data"
	for _, pid := range pids() {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmd, []byte(data)) && bytes.Contains(cmd, []byte("postgres")) {
			return pid
		}
	}
	return 0
}

// pgBackendCPU is the CPU seconds the private PostgreSQL cluster's
// server processes for database db have used (the connections of the
// dozods under load; other benchmarks may use other databases of the same
// cluster at the same time); 0 for "".
func pgBackendCPU(db string) float64 {
	pm := postmasterPid()
	if db == "" || pm == 0 {
		return 0
	}
	var total float64
	for _, pid := range pids() {
		// A backend's title: "postgres: USER DB HOST(PORT) STATE".
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if f := strings.Fields(string(cmd)); len(f) >= 3 && f[0] == "postgres:" && f[2] == db {
			total += procCPU(pid)
		}
	}
	return total
}

// pids are the processes running now.
func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// treeCPU is the CPU seconds process pid and its descendants have used,
// children that have exited included.
func treeCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	stat := func(p int) (ppid int, cpu float64, ok bool) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return 0, 0, false
		}
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(f) < 15 {
			return 0, 0, false
		}
		ppid, _ = strconv.Atoi(f[1])
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseFloat(f[i], 64)
			cpu += v / 100
		}
		return ppid, cpu, true
	}
	children := map[int][]int{}
	own := map[int]float64{}
	for _, p := range pids() {
		if pp, c, ok := stat(p); ok {
			children[pp] = append(children[pp], p)
			own[p] = c
		}
	}
	var total float64
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		total += own[p]
		queue = append(queue, children[p]...)
	}
	return total
}
