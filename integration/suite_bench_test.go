package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/dozo-vault/dozo/client"
	"github.com/dozo-vault/dozo/internal/units"
	"github.com/dozo-vault/dozo/region/regiontest"
	"github.com/dozo-vault/dozo/storage"
)

// BenchmarkSuite is `make bench`: in one run, on the same stack and the
// same files, it measures
//
//   - baseline A: a plain minio-go PutObject/GetObject of the plaintext to
//     one MinIO server (no encryption, no parity): the ceiling;
//   - baseline B: the stock age CLI piped into / out of that plain upload,
//     what a researcher would script;
//   - dozo: CLI upload and fetch (4+2 over three servers), fetch with one
//     server down, a 1 MiB range from the middle, grant, and the fetch
//     metadata call (header rewrap + manifest) for a 1 MiB and a large
//     file, a sequential read through dozo mount (cat), and a deep scrub
//     where that command exists;
//   - a region fetch of about 1 MiB of reads from the middle of a BAM of
//     DOZO_BENCH_BAM bytes (default 32MiB, in 2 MiB segments), with the
//     bytes it moved from storage against the BAM's size;
//   - many small files (DOZO_BENCH_MANY, default 200x1MiB): files/s of
//     `dozo upload -r DIR` and `dozo fetch DS -o DIR` with --parallel 1 and
//     the default, against a loop of single minio-go PutObjects and
//     GetObjects of the same files in one process.
//
// Every tool runs as its own process, so wall time, CPU seconds and peak
// RSS (VmHWM) are measured alike; the MinIO servers' CPU during each run
// is reported too, since they share the machine's cores. Each measurement
// is repeated DOZO_BENCH_N times (default 3) and the median reported, as a
// table on stdout and as JSON in DOZO_BENCH_JSON (default
// bench-results.json in the repository). DOZO_BENCH_SIZES lists the file
// sizes (default "1GiB,4GiB").
func BenchmarkSuite(b *testing.B) {
	cfg := benchConfigFromEnv(b)
	s := needStack(b)
	r := newBenchRun(b, s, cfg)
	r.floor = r.measureFloor()
	for i := 0; i < b.N; i++ {
		for _, size := range cfg.sizes {
			r.size(size)
		}
		r.regionFetch(cfg.bam)
		r.manyFiles(cfg.manyN, cfg.manySize)
	}
	r.report()
}

// BenchmarkManyFiles runs the many-files rows of BenchmarkSuite alone
// (DOZO_BENCH_MANY, DOZO_BENCH_N, DOZO_BENCH_JSON as there).
func BenchmarkManyFiles(b *testing.B) {
	cfg := benchConfigFromEnv(b)
	r := newBenchRun(b, needStack(b), cfg)
	for i := 0; i < b.N; i++ {
		r.manyFiles(cfg.manyN, cfg.manySize)
	}
	r.report()
}

type benchConfig struct {
	sizes []int64
	bam   int64 // the region fetch's BAM size
	// manyN files of manySize bytes for the many-files rows.
	manyN    int
	manySize int64
	n        int
	json     string
}

func benchConfigFromEnv(b *testing.B) benchConfig {
	cfg := benchConfig{n: 3, json: filepath.Join(repoRoot(), "bench-results.json"), manyN: 200, manySize: mib}
	if s := os.Getenv("DOZO_BENCH_MANY"); s != "" {
		n, size, ok := strings.Cut(s, "x")
		cnt, err := strconv.Atoi(n)
		sz, serr := units.ParseSize(size)
		if !ok || err != nil || serr != nil || cnt < 1 || sz < 1 {
			b.Fatalf("DOZO_BENCH_MANY: want COUNTxSIZE such as 200x1MiB, got %q", s)
		}
		cfg.manyN, cfg.manySize = cnt, sz
	}
	sizes := os.Getenv("DOZO_BENCH_SIZES")
	if sizes == "" {
		sizes = "1GiB,4GiB"
	}
	for _, f := range strings.Split(sizes, ",") {
		n, err := units.ParseSize(strings.TrimSpace(f))
		if err != nil || n < 2*mib {
			b.Fatalf("DOZO_BENCH_SIZES: bad size %q (at least 2MiB)", f)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	cfg.bam = 32 * mib
	if v := os.Getenv("DOZO_BENCH_BAM"); v != "" {
		n, err := units.ParseSize(v)
		if err != nil || n < 4*mib {
			b.Fatalf("DOZO_BENCH_BAM: bad size %q (at least 4MiB)", v)
		}
		cfg.bam = n
	}
	if v := os.Getenv("DOZO_BENCH_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("DOZO_BENCH_N: want a positive count, got %q", v)
		}
		cfg.n = n
	}
	if v := os.Getenv("DOZO_BENCH_JSON"); v != "" {
		cfg.json = v
	}
	return cfg
}

// procStat is one process of a measured run.
type procStat struct {
	Name   string  `json:"name"`
	CPU    float64 `json:"cpu_seconds"`
	SysCPU float64 `json:"sys_cpu_seconds,omitempty"` // the kernel's part of CPU
	RSSMiB float64 `json:"peak_rss_mib"`
}

// sample is one run of one measurement.
type sample struct {
	Seconds   float64    `json:"seconds"`
	Procs     []procStat `json:"processes"`
	ServerCPU float64    `json:"minio_cpu_seconds"`
}

// benchRow is the summary of one measurement: medians of its samples.
type benchRow struct {
	Name      string     `json:"name"`
	Size      int64      `json:"size_bytes"`
	Seconds   float64    `json:"median_seconds"`
	P99       float64    `json:"p99_seconds,omitempty"`
	MiBps     float64    `json:"mib_per_s,omitempty"`
	CPU       float64    `json:"median_cpu_seconds"`
	SysCPU    float64    `json:"median_sys_cpu_seconds,omitempty"`
	RSSMiB    float64    `json:"peak_rss_mib"` // max over samples and processes
	ServerCPU float64    `json:"median_minio_cpu_seconds"`
	NA        string     `json:"n_a,omitempty"`
	Files     int        `json:"files,omitempty"` // files moved per run, for files/s
	FilesPerS float64    `json:"files_per_s,omitempty"`
	Samples   []sample   `json:"samples,omitempty"`
	Procs     []procStat `json:"-"`
}

type benchRatio struct {
	Name  string  `json:"name"`
	Size  int64   `json:"size_bytes"`
	Value float64 `json:"value"`
	Want  string  `json:"target"`
}

type benchRun struct {
	b      *testing.B
	s      *stack
	cfg    benchConfig
	ctx    context.Context
	dir    string
	s3pipe string
	age    string
	sam    *user
	rita   *user
	admin  *user
	ds     string
	recip  string // sam's age recipient, for baseline B
	ident  string // sam's age identity file
	rows   []benchRow
	ratios []benchRatio
	small  string // the 1 MiB file for the header comparison
	floor  cpuFloor
}

func newBenchRun(b *testing.B, s *stack, cfg benchConfig) *benchRun {
	r := &benchRun{b: b, s: s, cfg: cfg, ctx: context.Background(), dir: b.TempDir()}
	r.age = findTool(b, "age")
	r.s3pipe = filepath.Join(r.dir, "s3pipe")
	if out, err := exec.Command("go", "build", "-o", r.s3pipe, "./s3pipe").CombinedOutput(); err != nil {
		b.Fatalf("building s3pipe: %v: %s", err, out)
	}
	r.sam, r.rita = s.users(b)
	r.admin = s.login(b, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
	r.ds = newDatasetID()
	r.sam.must(b, "dataset", "create", r.ds, "--title", "bench")
	d, err := client.OpenDir(r.sam.dir)
	if err != nil {
		b.Fatal(err)
	}
	id, err := d.Identity()
	if err != nil {
		b.Fatal(err)
	}
	r.recip, r.ident = id.Public, d.IdentityPath()

	// Grant once (timed), then keep a 1 MiB file for the header baseline.
	until := time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02")
	r.measure("dozo grant", 0, func() []*exec.Cmd {
		return []*exec.Cmd{r.sam.command("grant", r.ds, r.rita.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG", "--json")}
	}, 1)
	small := filepath.Join(r.dir, "small.bin")
	writeRandomFile(b, small, 3, mib, nil)
	r.small = "small.bin"
	r.sam.must(b, "upload", "--dataset", r.ds, "--name", r.small, small)
	os.Remove(small)
	return r
}

// size runs every measurement for one file size.
func (r *benchRun) size(size int64) {
	b, s := r.b, r.s
	src := filepath.Join(r.dir, "input.bin")
	out := filepath.Join(r.dir, "output.bin")
	writeRandomFile(b, src, uint64(size), size, nil)
	defer os.Remove(src)
	defer os.Remove(out)
	bucket := s.buckets[0]
	n := r.cfg.n

	aPut := r.measure("A: minio-go PutObject", size, func() []*exec.Cmd {
		return []*exec.Cmd{r.s3put("put", bucket, "bench/a", src)}
	}, n)
	aGet := r.measure("A: minio-go GetObject", size, func() []*exec.Cmd {
		return []*exec.Cmd{r.s3put("get", bucket, "bench/a", out)}
	}, n)
	// Only one plaintext copy in MinIO at a time, so 8 GiB fits the disk.
	if out, err := r.s3put("rm", bucket, "bench/a", "-").CombinedOutput(); err != nil {
		b.Fatalf("removing bench/a: %v: %s", err, out)
	}
	bPut := r.measure("B: age | PutObject", size, func() []*exec.Cmd {
		enc := exec.Command(r.age, "-r", r.recip)
		up := r.s3put("put", bucket, "bench/b", "-")
		in, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		enc.Stdin = in
		pipe(b, enc, up)
		return []*exec.Cmd{enc, up}
	}, n)
	bGet := r.measure("B: GetObject | age -d", size, func() []*exec.Cmd {
		down := r.s3put("get", bucket, "bench/b", "-")
		dec := exec.Command(r.age, "-d", "-i", r.ident, "-o", out)
		pipe(b, down, dec)
		return []*exec.Cmd{down, dec}
	}, n)
	for _, k := range []string{"bench/b"} {
		if out, err := r.s3put("rm", bucket, k, "-").CombinedOutput(); err != nil {
			b.Fatalf("removing %s: %v: %s", k, err, out)
		}
	}
	os.Remove(out)

	// dozo: a new name per repetition (dozo does not overwrite), and the
	// previous repetition's pieces removed so a large size fits the disk.
	rep := 0
	name := func() string { return fmt.Sprintf("f%d-%d.bin", size, rep) }
	up := r.measure("dozo upload", size, func() []*exec.Cmd {
		if rep > 0 {
			r.dropFile(fmt.Sprintf("f%d-%d.bin", size, rep-1))
		}
		rep++
		return []*exec.Cmd{r.sam.command("upload", "--dataset", r.ds, "--name", name(), src)}
	}, n)
	if beforeBinary() == "" && len(segmentSizes(b)) == 0 {
		os.Remove(src) // not uploaded again: room for the fetch's output
	}
	fetch := r.measure("dozo fetch", size, func() []*exec.Cmd {
		return []*exec.Cmd{r.rita.command("fetch", r.ds+"/"+name(), "-o", out, "--force")}
	}, n)
	dd := r.ddRow(out, size)
	r.fetchMD5(name(), size)
	// The same to standard output: no partial file, no fsync before the
	// rename (the baselines do not sync their output either).
	toStdout := r.measure("dozo fetch -o - (no disk)", size, func() []*exec.Cmd {
		c := r.rita.command("fetch", r.ds+"/"+name(), "-o", "-")
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		c.Stdout = null
		return []*exec.Cmd{c}
	}, n)
	r.beforeRows(src, out, size, up, fetch, toStdout)
	r.segmentRows(src, size, aPut)
	os.Remove(src)
	mounted := r.mountRead(name(), size)
	restart := s.stopMinio(b, 1)
	degraded := r.measure("dozo fetch, 1 server down", size, func() []*exec.Cmd {
		return []*exec.Cmd{r.rita.command("fetch", r.ds+"/"+name(), "-o", out, "--force")}
	}, n)
	restart()
	os.Remove(out)
	mid := size / 2
	r.measure("dozo fetch 1 MiB range", 0, func() []*exec.Cmd {
		return []*exec.Cmd{r.rita.command("fetch", r.ds+"/"+name(), "--range", fmt.Sprintf("%d-%d", mid, mid+mib-1), "-o", out, "--force")}
	}, n)
	os.Remove(out)
	r.headerFetch(r.small, name(), size, headerFetchCalls())
	scrub := r.scrub(name(), size*3/2)
	r.dropFile(name())

	ratio := func(what string, num, den benchRow, want string) {
		if num.Seconds > 0 && den.Seconds > 0 {
			r.ratios = append(r.ratios, benchRatio{what, size, den.Seconds / num.Seconds, want})
		}
	}
	ratio("upload / A put (throughput)", up, aPut, ">= 0.8")
	ratio("upload / B put (throughput)", up, bPut, "> 1")
	ratio("fetch / A get (throughput)", fetch, aGet, ">= 0.9")
	ratio("fetch / B get (throughput)", fetch, bGet, "> 1")
	ratio("fetch -o - / A get (throughput)", toStdout, aGet, "")
	ratio("cat via mount / fetch -o - (throughput)", mounted, toStdout, "")
	ratio("fetch 1 down / fetch (throughput)", degraded, fetch, ">= 0.8")
	ratio("fetch to file / dd conv=fsync (throughput)", fetch, dd, ">= 0.9")
	r.cpuRatios(size, r.floor, up, fetch, toStdout)
	r.serverCPURatios(size, "upload (default segments)", up, aPut, 1.5)
	if scrub.Seconds > 0 && aGet.Seconds > 0 {
		// Bytes read per second: the scrub reads 1.5x the plaintext.
		r.ratios = append(r.ratios, benchRatio{"deep scrub / A get (read throughput)", size, 1.5 * aGet.Seconds / scrub.Seconds, ""})
	}
}

// mountRead measures a sequential read of the file through 'dozo mount'
// (cat to /dev/null, one open and so one audited fetch per run). The row's
// CPU and peak RSS include the mount process's.
func (r *benchRun) mountRead(name string, size int64) benchRow {
	const label = "cat via dozo mount (no disk)"
	row := benchRow{Name: label, Size: size}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		row.NA = "n/a: no /dev/fuse"
	} else if _, err := exec.LookPath("fusermount3"); err != nil {
		row.NA = "n/a: no fusermount3"
	}
	if row.NA != "" {
		r.rows = append(r.rows, row)
		return row
	}
	mnt := filepath.Join(r.dir, "mnt")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		r.b.Fatal(err)
	}
	m := startMount(r.b, r.rita, nil, mnt, "--dataset", r.ds)
	pid := m.cmd.Process.Pid
	for range r.cfg.n {
		cat := exec.Command("cat", filepath.Join(mnt, r.ds, name))
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			r.b.Fatal(err)
		}
		cat.Stdout = null
		cpu0 := procCPU(pid)
		smp, err := runMeasured(r.s, []*exec.Cmd{cat})
		if err != nil {
			r.b.Fatalf("%s: %v\n%s", label, err, m.stderr.String())
		}
		smp.Procs = append(smp.Procs, procStat{Name: "dozo mount", CPU: procCPU(pid) - cpu0, RSSMiB: vmHWM(pid)})
		row.Samples = append(row.Samples, smp)
	}
	r.rita.must(r.b, "umount", mnt)
	m.wait(r.b)
	row.summarize()
	r.rows = append(r.rows, row)
	return row
}

// procCPU is the CPU seconds process pid has used so far.
func procCPU(pid int) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100
}

// s3put runs s3pipe against the first MinIO server.
func (r *benchRun) s3put(op, bucket, key, path string) *exec.Cmd {
	c := exec.Command(r.s3pipe, op, bucket, key, path)
	c.Env = append(os.Environ(), "S3PIPE_ENDPOINT="+r.s.endpoints[0],
		"S3PIPE_ACCESS_KEY="+r.s.accessKey, "S3PIPE_SECRET_KEY="+r.s.secretKey)
	return c
}

// pipe connects a's standard output to b's standard input.
func pipe(t testing.TB, a, b *exec.Cmd) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	a.Stdout, b.Stdin = pw, pr
}

// measure runs the commands mk returns, n times, and records the medians.
// bytes is the file size the throughput refers to (0: none).
func (r *benchRun) measure(name string, bytes int64, mk func() []*exec.Cmd, n int) benchRow {
	row := benchRow{Name: name, Size: bytes}
	for range n {
		smp, err := runMeasured(r.s, mk())
		if err != nil {
			r.b.Fatalf("%s: %v", name, err)
		}
		row.Samples = append(row.Samples, smp)
	}
	row.summarize()
	r.rows = append(r.rows, row)
	return row
}

func (row *benchRow) summarize() {
	med := func(f func(sample) float64) float64 {
		v := make([]float64, len(row.Samples))
		for i, s := range row.Samples {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	row.Seconds = med(func(s sample) float64 { return s.Seconds })
	row.CPU = med(func(s sample) float64 {
		var c float64
		for _, p := range s.Procs {
			c += p.CPU
		}
		return c
	})
	row.SysCPU = med(func(s sample) float64 {
		var c float64
		for _, p := range s.Procs {
			c += p.SysCPU
		}
		return c
	})
	row.ServerCPU = med(func(s sample) float64 { return s.ServerCPU })
	for _, s := range row.Samples {
		for _, p := range s.Procs {
			row.RSSMiB = max(row.RSSMiB, p.RSSMiB)
		}
	}
	if row.Size > 0 && row.Seconds > 0 {
		row.MiBps = float64(row.Size) / mib / row.Seconds
	}
	if row.Files > 0 && row.Seconds > 0 {
		row.FilesPerS = float64(row.Files) / row.Seconds
	}
}

// runMeasured starts the commands (a pipeline shares fds set up by pipe),
// samples each one's VmHWM while it runs (wait4's ru_maxrss would count
// the RSS this large test process had when it forked), and returns wall
// time, CPU per process and the MinIO servers' CPU over the run.
func runMeasured(s *stack, cmds []*exec.Cmd) (sample, error) {
	outs := make([]*bytes.Buffer, len(cmds))
	for i, c := range cmds {
		outs[i] = &bytes.Buffer{}
		c.Stderr = outs[i]
		if c.Stdout == nil {
			c.Stdout = io.Discard
		}
	}
	server0 := s.serverCPU()
	t0 := time.Now()
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			return sample{}, err
		}
	}
	// The parent's copies of pipe ends and input files must close, or the
	// reader never sees EOF.
	for _, c := range cmds {
		for _, f := range []any{c.Stdin, c.Stdout} {
			if f, ok := f.(*os.File); ok && f != os.Stdout && f != os.Stdin {
				f.Close()
			}
		}
	}
	peaks := make([]float64, len(cmds))
	done := make(chan int, len(cmds))
	errs := make([]error, len(cmds))
	for i, c := range cmds {
		go func() { errs[i] = c.Wait(); done <- i }()
	}
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	for left := len(cmds); left > 0; {
		select {
		case <-done:
			left--
		case <-tk.C:
			for i, c := range cmds {
				if c.ProcessState == nil {
					peaks[i] = max(peaks[i], vmHWM(c.Process.Pid))
				}
			}
		}
	}
	smp := sample{Seconds: time.Since(t0).Seconds(), ServerCPU: s.serverCPU() - server0}
	for i, c := range cmds {
		if errs[i] != nil {
			return smp, fmt.Errorf("%s: %v: %s", filepath.Base(c.Path), errs[i], strings.TrimSpace(outs[i].String()))
		}
		smp.Procs = append(smp.Procs, procStat{
			Name:   filepath.Base(c.Path),
			CPU:    (c.ProcessState.UserTime() + c.ProcessState.SystemTime()).Seconds(),
			SysCPU: c.ProcessState.SystemTime().Seconds(),
			RSSMiB: peaks[i],
		})
	}
	return smp, nil
}

// vmHWM is a process's peak RSS so far, in MiB (0 once it has exited).
func vmHWM(pid int) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(st), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kb); err == nil {
			return kb / 1024
		}
	}
	return 0
}

// serverCPU is the CPU seconds the S3 servers (MinIO and versitygw) have
// used so far.
func (s *stack) serverCPU() float64 {
	var total float64
	for i, kind := range s.kinds {
		b, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("%s%d.pid", kind, i+1)))
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: utime is the 12th, stime
		// the 13th (clock ticks, 100 per second on Linux).
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			k, _ := strconv.ParseFloat(f[12], 64)
			total += (u + k) / 100
		}
	}
	return total
}

// headerFetch times the fetch call — access check, header rewrap through
// Transit, the manifest's head — which is all a grant costs per file
// before data moves; it must not grow with the file's size. It alternates
// calls for the small and the large file, so drift in the machine's load
// falls on both alike, and records median and p99 of calls calls each.
func (r *benchRun) headerFetch(small, large string, size int64, calls int) (benchRow, benchRow) {
	d, err := client.OpenDir(r.rita.dir)
	if err != nil {
		r.b.Fatal(err)
	}
	tok, err := d.Token()
	if err != nil {
		r.b.Fatal(err)
	}
	c, err := client.New(client.Options{Broker: r.s.env["DOZO_BROKER"], CACert: r.s.env["DOZO_CA_CERT"], Token: tok})
	if err != nil {
		r.b.Fatal(err)
	}
	rows := [2]benchRow{{Name: "header fetch, 1 MiB file"}, {Name: "header fetch, " + units.FormatSize(size) + " file"}}
	names := [2]string{small, large}
	for _, n := range names {
		c.Fetch(r.ctx, r.ds, n) // warm the connection, token cache and dozod
	}
	for range calls {
		for i, n := range names {
			t0 := time.Now()
			if _, err := c.Fetch(r.ctx, r.ds, n); err != nil {
				r.b.Fatalf("%s: %v", rows[i].Name, err)
			}
			rows[i].Samples = append(rows[i].Samples, sample{Seconds: time.Since(t0).Seconds()})
		}
	}
	for i := range rows {
		rows[i].summarize()
		v := make([]float64, len(rows[i].Samples))
		for j, s := range rows[i].Samples {
			v[j] = s.Seconds
		}
		slices.Sort(v)
		rows[i].P99 = v[min(len(v)-1, len(v)*99/100)]
		rows[i].Samples = nil // hundreds of calls: the summary is enough
		r.rows = append(r.rows, rows[i])
	}
	if rows[0].Seconds > 0 && rows[0].P99 > 0 {
		r.ratios = append(r.ratios,
			benchRatio{"header fetch large / 1 MiB (median time)", size, rows[1].Seconds / rows[0].Seconds, "<= 1.2"},
			benchRatio{"header fetch large / 1 MiB (p99 time)", size, rows[1].P99 / rows[0].P99, "<= 1.2"})
	}
	return rows[0], rows[1]
}

// headerFetchCalls is how many fetch calls per file the header rows time.
func headerFetchCalls() int {
	if n, err := strconv.Atoi(os.Getenv("DOZO_BENCH_CALLS")); err == nil && n > 0 {
		return n
	}
	return 200
}

// BenchmarkHeaderFetch times the fetch call alone for a 1 MiB file and a
// file with a large manifest, without the rest of the suite. The large
// file is DOZO_BENCH_HEADER_SIZE (default 256MiB) in a dataset of 1 MiB
// segments: 256 segments, the manifest of an 8 GiB file at the default
// 32 MiB segments (1GiB gives 1024 segments, a 32 GiB file's). Medians and
// p99 of DOZO_BENCH_CALLS calls each (default 200).
func BenchmarkHeaderFetch(b *testing.B) {
	cfg := benchConfigFromEnv(b)
	size := int64(256 * mib)
	if v := os.Getenv("DOZO_BENCH_HEADER_SIZE"); v != "" {
		n, err := units.ParseSize(v)
		if err != nil || n < 2*mib {
			b.Fatalf("DOZO_BENCH_HEADER_SIZE: bad size %q", v)
		}
		size = n
	}
	s := needStack(b)
	r := &benchRun{b: b, s: s, cfg: cfg, ctx: context.Background(), dir: b.TempDir()}
	r.sam, r.rita = s.users(b)
	r.ds = newDatasetID()
	r.sam.must(b, "dataset", "create", r.ds, "--title", "header bench", "--segment-size", "1MiB")
	until := time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02")
	r.sam.must(b, "grant", r.ds, r.rita.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG")
	for _, f := range []struct {
		name string
		size int64
	}{{"small.bin", mib}, {"large.bin", size}} {
		path := filepath.Join(r.dir, f.name)
		writeRandomFile(b, path, uint64(f.size), f.size, nil)
		r.sam.must(b, "upload", "--dataset", r.ds, "--name", f.name, path)
		os.Remove(path)
	}
	for i := 0; i < b.N; i++ {
		r.headerFetch("small.bin", "large.bin", size, headerFetchCalls())
		r.measure("dozo fetch -o - (no disk)", size, func() []*exec.Cmd { return []*exec.Cmd{r.fetchToNull("large.bin")} }, cfg.n)
		r.fetchMD5("large.bin", size)
	}
	r.report()
}

// fetchToNull is a fetch of name to standard output, sent to /dev/null.
func (r *benchRun) fetchToNull(name string, flags ...string) *exec.Cmd {
	c := r.rita.command(append([]string{"fetch", r.ds + "/" + name, "-o", "-"}, flags...)...)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		r.b.Fatal(err)
	}
	c.Stdout = null
	return c
}

// fetchMD5 measures the fetch with the optional whole-file MD5 check
// (--md5), to standard output, so its CPU compares with the plain row's.
func (r *benchRun) fetchMD5(name string, size int64) {
	r.measure("dozo fetch -o - --md5 (no disk)", size, func() []*exec.Cmd { return []*exec.Cmd{r.fetchToNull(name, "--md5")} }, r.cfg.n)
}

// scrub measures a deep scrub of one file (run inside dozod; the row's CPU
// and RSS are the waiting CLI's, dozod's work shows in wall time). bytes is
// what it reads: every piece, (k+m)/k times the plaintext for 4+2.
func (r *benchRun) scrub(name string, bytes int64) benchRow {
	return r.measure("dozo scrub --deep (one file)", bytes, func() []*exec.Cmd {
		return []*exec.Cmd{r.admin.command("scrub", r.ds, "--file", name, "--deep", "--json")}
	}, r.cfg.n)
}

// dropFile deletes a benchmark file's pieces straight from storage, so a
// run with several large files fits the disk (dozo has no delete yet).
func (r *benchRun) dropFile(name string) { r.dropFileIn(r.ds, name) }

// dropFileIn is dropFile for a file of dataset ds.
func (r *benchRun) dropFileIn(ds, name string) {
	f, ok := lsFiles(r.b, r.sam, ds)[name]
	if !ok {
		return
	}
	prefix := storage.FilePrefix(ds, f.ID)
	for _, t := range r.s.targets(r.b) {
		var keys []string
		t.List(r.ctx, prefix, func(o storage.ObjectInfo) error { keys = append(keys, o.Key); return nil })
		for _, k := range keys {
			t.Delete(r.ctx, k)
		}
	}
}

func (r *benchRun) report() {
	var buf bytes.Buffer
	w := tabwriter.NewWriter(&buf, 2, 8, 2, ' ', 0)
	fmt.Fprintf(w, "measurement\tsize\tmedian s\tp99 s\tMiB/s\tCPU s\tpeak RSS MiB\tMinIO CPU s\tfiles/s\t\n")
	for _, row := range r.rows {
		size := ""
		if row.Size > 0 {
			size = units.FormatSize(row.Size)
		}
		if row.NA != "" {
			fmt.Fprintf(w, "%s\t%s\t%s\t\t\t\t\t\t\n", row.Name, size, row.NA)
			continue
		}
		mbps := ""
		if row.MiBps > 0 {
			mbps = fmt.Sprintf("%.1f", row.MiBps)
		}
		p99 := ""
		if row.P99 > 0 {
			p99 = fmt.Sprintf("%.4f", row.P99)
		}
		fps := ""
		if row.FilesPerS > 0 {
			fps = fmt.Sprintf("%.1f", row.FilesPerS)
		}
		fmt.Fprintf(w, "%s\t%s\t%.4f\t%s\t%s\t%.2f\t%.0f\t%.2f\t%s\t\n", row.Name, size, row.Seconds, p99, mbps, row.CPU, row.RSSMiB, row.ServerCPU, fps)
	}
	fmt.Fprintf(w, "\t\t\t\t\t\t\t\t\n")
	fmt.Fprintf(w, "ratio\tsize\tvalue\ttarget\t\t\t\t\t\n")
	for _, q := range r.ratios {
		fmt.Fprintf(w, "%s\t%s\t%.2f\t%s\t\t\t\t\t\n", q.Name, units.FormatSize(q.Size), q.Value, q.Want)
	}
	w.Flush()
	fmt.Printf("\ndozo benchmark (N=%d, medians; %d CPUs)\n%s", r.cfg.n, runtime.NumCPU(), buf.String())
	out, err := json.MarshalIndent(map[string]any{
		"repetitions": r.cfg.n, "cpus": runtime.NumCPU(), "time": time.Now().UTC(),
		"rows": r.rows, "ratios": r.ratios,
	}, "", "  ")
	if err != nil {
		r.b.Fatal(err)
	}
	if err := os.WriteFile(r.cfg.json, append(out, '\n'), 0o644); err != nil {
		r.b.Fatal(err)
	}
	fmt.Printf("JSON: %s\n", r.cfg.json)
}

// regionFetch measures `dozo fetch --region` of about 1 MiB of reads from
// the middle of a synthetic sorted BAM of about size bytes (made with
// samtools), in a dataset of 2 MiB segments, and records the bytes moved
// from storage against the BAM's size.
func (r *benchRun) regionFetch(size int64) {
	b := r.b
	samtools := findTool(b, "samtools")
	dir := filepath.Join(r.dir, "region")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// About 18 bytes of BAM per synthetic read; three 3 Mb references.
	const refLen = 3_000_000
	reads := int(size / 18)
	rng := rand.New(rand.NewPCG(7, uint64(size)))
	ref := regiontest.NewRef(rng, 3, refLen)
	bam := filepath.Join(dir, "bench.bam")
	sort := exec.Command(samtools, "sort", "-@2", "-o", bam, "-")
	in, err := sort.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	var sortErr bytes.Buffer
	sort.Stderr = &sortErr
	if err := sort.Start(); err != nil {
		b.Fatal(err)
	}
	werr := ref.WriteSAM(in, rng, reads, false)
	in.Close()
	if err := sort.Wait(); err != nil || werr != nil {
		b.Fatalf("samtools sort: %v %v: %s", err, werr, sortErr.String())
	}
	if out, err := exec.Command(samtools, "index", bam).CombinedOutput(); err != nil {
		b.Fatalf("samtools index: %v: %s", err, out)
	}
	fi, err := os.Stat(bam)
	if err != nil {
		b.Fatal(err)
	}
	ds := newDatasetID()
	r.sam.must(b, "dataset", "create", ds, "--title", "bench regions", "--segment-size", "2MiB")
	r.sam.must(b, "upload", "--dataset", ds, bam, bam+".bai")
	r.sam.must(b, "grant", ds, r.rita.name, "--until", time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02"), "--application", "J-DU000001", "--institution", "NIG")
	// The span of chr2 whose reads make about 1 MiB of BAM.
	span := int64(3*refLen) * mib / fi.Size()
	reg := fmt.Sprintf("chr2:%d-%d", refLen/2-span/2, refLen/2+span/2)
	out := filepath.Join(dir, "out.bam")
	r.measure("dozo fetch --region (~1 MiB of reads, "+units.FormatSize(fi.Size())+" BAM)", 0, func() []*exec.Cmd {
		return []*exec.Cmd{r.rita.command("fetch", ds+"/bench.bam", "--region", reg, "-o", out, "--force")}
	}, r.cfg.n)
	var res struct {
		Written int64 `json:"written_bytes"`
		Read    int64 `json:"piece_bytes_read"`
	}
	if err := json.Unmarshal([]byte(r.rita.must(b, "fetch", ds+"/bench.bam", "--region", reg, "-o", out, "--force", "--json")), &res); err != nil {
		b.Fatal(err)
	}
	r.ratios = append(r.ratios,
		benchRatio{"region fetch: bytes moved / BAM size", fi.Size(), float64(res.Read) / float64(fi.Size()), ""},
		benchRatio{"region fetch: bytes moved / region file", fi.Size(), float64(res.Read) / float64(max(res.Written, 1)), ""})
}

// manyFiles measures files/s for n files of size bytes: a loop of single
// minio-go PutObjects (GetObjects) in one process, against `dozo upload -r`
// (`dozo fetch DS -o DIR`) with --parallel 1 and the default. Each dozo
// upload goes to a new dataset (a rerun would find every file already
// stored), each fetch to a new empty directory.
func (r *benchRun) manyFiles(n int, size int64) {
	b, bucket := r.b, r.s.buckets[0]
	src := filepath.Join(r.dir, "many")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(src)
	writeRandomFiles(b, src, "f%04d.bin", n, 1000, func(int) int64 { return size })
	total := int64(n) * size
	label := fmt.Sprintf("%d x %s", n, units.FormatSize(size))
	row := func(name string, mk func() []*exec.Cmd) benchRow {
		row := benchRow{Name: name + ", " + label, Size: total, Files: n}
		for range r.cfg.n {
			smp, err := runMeasured(r.s, mk())
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			row.Samples = append(row.Samples, smp)
		}
		row.summarize()
		r.rows = append(r.rows, row)
		return row
	}
	fresh := func() string {
		d, err := os.MkdirTemp(r.dir, "many-out")
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	var outs []string
	defer func() {
		for _, d := range outs {
			os.RemoveAll(d)
		}
	}()
	clean := func() {
		for _, d := range outs {
			os.RemoveAll(d)
		}
		outs = nil
	}

	aPut := row("A: PutObject loop", func() []*exec.Cmd { return []*exec.Cmd{r.s3put("putdir", bucket, "bench-many", src)} })
	aGet := row("A: GetObject loop", func() []*exec.Cmd {
		d := fresh()
		outs = append(outs, d)
		return []*exec.Cmd{r.s3put("getdir", bucket, "bench-many", d)}
	})
	clean()
	if out, err := r.s3put("rmdir", bucket, "bench-many", "-").CombinedOutput(); err != nil {
		b.Fatalf("removing bench-many: %v: %s", err, out)
	}
	until := time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02")
	for _, par := range []int{1, 0} {
		flag := []string{"--parallel", strconv.Itoa(par)}
		name := "--parallel 1"
		if par == 0 {
			flag, name = nil, "--parallel default"
		}
		var ds string
		up := row("dozo upload -r "+name, func() []*exec.Cmd {
			ds = newDatasetID()
			r.sam.must(b, "dataset", "create", ds, "--title", "bench many")
			return []*exec.Cmd{r.sam.command(append([]string{"upload", "-d", ds, "-r", src, "-q"}, flag...)...)}
		})
		r.sam.must(b, "grant", ds, r.rita.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG")
		fetch := row("dozo fetch DS -o DIR "+name, func() []*exec.Cmd {
			d := fresh()
			outs = append(outs, d)
			return []*exec.Cmd{r.rita.command(append([]string{"fetch", ds, "-o", d, "-q"}, flag...)...)}
		})
		clean()
		for _, rw := range []struct {
			what      string
			num, base benchRow
		}{{"upload " + name + " / PutObject loop (files/s)", up, aPut}, {"fetch " + name + " / GetObject loop (files/s)", fetch, aGet}} {
			if rw.num.Seconds > 0 && rw.base.Seconds > 0 {
				r.ratios = append(r.ratios, benchRatio{rw.what, total, rw.base.Seconds / rw.num.Seconds, ""})
			}
		}
	}
}
