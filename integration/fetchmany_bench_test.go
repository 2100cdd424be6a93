package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkFetchManyParallel measures `dozo fetch DS -o DIR --parallel P`
// of many small files (DOZO_BENCH_MANY, default 200x1MiB; P from
// DOZO_BENCH_PARALLEL, default 8): files/s, and the CPU seconds of the
// client, dozod and Vault per run, where each file costs dozod a header
// fetch (Transit unwrap) and a presign batch. DOZO_BENCH_N runs (default
// 3), each into a new directory; the rows are printed, the median last.
func BenchmarkFetchManyParallel(b *testing.B) {
	cfg := benchConfigFromEnv(b)
	s := needStack(b)
	par := 8
	if v := os.Getenv("DOZO_BENCH_PARALLEL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("DOZO_BENCH_PARALLEL=%q: want a whole number", v)
		}
		par = n
	}
	sam, rita := s.users(b)
	dir := b.TempDir()
	src := filepath.Join(dir, "many")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	writeRandomFiles(b, src, "f%04d.bin", cfg.manyN, 1000, func(int) int64 { return cfg.manySize })
	ds := newDatasetID()
	sam.must(b, "dataset", "create", ds, "--title", "bench fetch many")
	sam.must(b, "upload", "-d", ds, "-r", src, "-q")
	os.RemoveAll(src)
	until := time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02")
	sam.must(b, "grant", ds, rita.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG")

	dozod := pidFile(filepath.Join(s.devDir, "dozod.pid"))
	vlt := pidFile(filepath.Join(s.dir, "vault.pid"))
	type run struct{ filesPerS, client, dozod, vault, minio float64 }
	var runs []run
	for range cfg.n {
		out, err := os.MkdirTemp(dir, "out")
		if err != nil {
			b.Fatal(err)
		}
		d0, v0 := treeCPU(dozod), treeCPU(vlt)
		smp, err := runMeasured(s, []*exec.Cmd{rita.command("fetch", ds, "-o", out, "-q", "--parallel", strconv.Itoa(par))})
		if err != nil {
			b.Fatal(err)
		}
		r := run{filesPerS: float64(cfg.manyN) / smp.Seconds, dozod: treeCPU(dozod) - d0, vault: treeCPU(vlt) - v0, minio: smp.ServerCPU}
		for _, p := range smp.Procs {
			r.client += p.CPU
		}
		runs = append(runs, r)
		fmt.Printf("fetch %d x %d B --parallel %d: %.1f files/s, cpu-s: client %.2f, dozod %.2f, vault %.2f, S3 servers %.2f\n",
			cfg.manyN, cfg.manySize, par, r.filesPerS, r.client, r.dozod, r.vault, r.minio)
		os.RemoveAll(out)
	}
	slices.SortFunc(runs, func(x, y run) int { return int((x.filesPerS - y.filesPerS) * 1000) })
	m := runs[len(runs)/2]
	fmt.Printf("median: %.1f files/s, cpu-s: client %.2f, dozod %.2f, vault %.2f, S3 servers %.2f\n", m.filesPerS, m.client, m.dozod, m.vault, m.minio)
}

// BenchmarkSmallFiles measures many small files (DOZO_BENCH_MANY, default
// 200x1MiB) both ways: `dozo upload -r DIR` and `dozo fetch DS -o DIR` at
// each --parallel of DOZO_BENCH_PARALLELS (default 1,4,8), against a loop
// of single PutObjects and GetObjects of the same files in one process,
// all in one run. Each row gives files/s, its ratio to the loop, and the
// CPU milliseconds per file of the client, dozod, Vault and the S3
// servers. The builds of DOZO_BENCH_BEFORE ([LABEL=]BINARY,...) run
// alternately with this one, repetition by repetition;
// DOZO_BENCH_PROFILE=DIR keeps a CPU profile of every dozo run there, and
// DOZO_BENCH_PERF_DOZOD=DIR a `perf record -g` of dozod during each.
// DOZO_BENCH_N repetitions (default 3), medians.
func BenchmarkSmallFiles(b *testing.B) {
	cfg := benchConfigFromEnv(b)
	s := needStack(b)
	r := newBenchRun(b, s, cfg)
	pars := []int{1, 4, 8}
	if v := os.Getenv("DOZO_BENCH_PARALLELS"); v != "" {
		pars = nil
		for _, f := range splitList(v) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				b.Fatalf("DOZO_BENCH_PARALLELS=%q: want whole numbers such as 1,4,8", v)
			}
			pars = append(pars, n)
		}
	}
	n, size := cfg.manyN, cfg.manySize
	src := filepath.Join(r.dir, "many")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	writeRandomFiles(b, src, "f%04d.bin", n, 1000, func(int) int64 { return size })
	dozod := pidFile(filepath.Join(s.devDir, "dozod.pid"))
	vlt := pidFile(filepath.Join(s.dir, "vault.pid"))
	type cell struct{ secs, client, dozod, vault, s3 []float64 }
	cells := map[string]*cell{}
	var order []string
	measure := func(name string, c *exec.Cmd) {
		if dir := os.Getenv("DOZO_BENCH_PROFILE"); dir != "" && !strings.HasPrefix(name, "A:") {
			slug := strings.NewReplacer(" ", "_", ":", "", "-", "", "/", "").Replace(name)
			c.Env = append(c.Env, "DOZO_CPUPROFILE="+filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", slug, len(cellOf(cells, &order, name).secs))))
		}
		var perf *exec.Cmd
		if dir := os.Getenv("DOZO_BENCH_PERF_DOZOD"); dir != "" && !strings.HasPrefix(name, "A:") {
			slug := strings.NewReplacer(" ", "_", ":", "", "-", "", "/", "").Replace(name)
			perf = exec.Command("perf", "record", "-q", "-F", "499", "-g", "-p", strconv.Itoa(dozod),
				"-o", filepath.Join(dir, fmt.Sprintf("dozod-%s-%d.perf", slug, len(cellOf(cells, &order, name).secs))))
			if err := perf.Start(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // perf attaches
		}
		d0, v0 := treeCPU(dozod), treeCPU(vlt)
		smp, err := runMeasured(s, []*exec.Cmd{c})
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		if perf != nil {
			perf.Process.Signal(os.Interrupt)
			perf.Wait()
		}
		cl := 0.0
		for _, p := range smp.Procs {
			cl += p.CPU
		}
		ce := cellOf(cells, &order, name)
		ce.secs = append(ce.secs, smp.Seconds)
		ce.client = append(ce.client, cl)
		ce.dozod = append(ce.dozod, treeCPU(dozod)-d0)
		ce.vault = append(ce.vault, treeCPU(vlt)-v0)
		ce.s3 = append(ce.s3, smp.ServerCPU)
	}
	bucket := s.buckets[0]
	until := time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02")
	builds := clientBuilds()
	for range cfg.n {
		measure("A: PutObject loop", r.s3put("putdir", bucket, "bench-small", src))
		out, err := os.MkdirTemp(r.dir, "out")
		if err != nil {
			b.Fatal(err)
		}
		measure("A: GetObject loop", r.s3put("getdir", bucket, "bench-small", out))
		os.RemoveAll(out)
		if o, err := r.s3put("rmdir", bucket, "bench-small", "-").CombinedOutput(); err != nil {
			b.Fatalf("removing bench-small: %v: %s", err, o)
		}
		for _, par := range pars {
			for _, bd := range builds {
				flag := "--parallel=" + strconv.Itoa(par)
				ds := newDatasetID()
				r.sam.must(b, "dataset", "create", ds, "--title", "bench small files")
				up := r.sam.command("upload", "-d", ds, "-r", src, "-q", flag)
				if bd.bin != "" {
					withBinary(up, bd.bin)
				}
				measure(bd.name("upload "+flag), up)
				r.sam.must(b, "grant", ds, r.rita.name, "--until", until, "--application", "J-DU000001", "--institution", "NIG")
				out, err := os.MkdirTemp(r.dir, "out")
				if err != nil {
					b.Fatal(err)
				}
				fetch := r.rita.command("fetch", ds, "-o", out, "-q", flag)
				if bd.bin != "" {
					withBinary(fetch, bd.bin)
				}
				measure(bd.name("fetch "+flag), fetch)
				os.RemoveAll(out)
			}
		}
	}
	med := func(xs []float64) float64 {
		ys := slices.Clone(xs)
		slices.Sort(ys)
		return ys[len(ys)/2]
	}
	loop := map[bool]float64{true: med(cells["A: PutObject loop"].secs), false: med(cells["A: GetObject loop"].secs)}
	fmt.Printf("%d x %d B, N=%d; load %.2f\n", n, size, cfg.n, loadAvg())
	fmt.Printf("%-34s %9s %8s %14s %13s %13s %10s\n", "row", "files/s", "x loop", "client ms/file", "dozod ms/file", "vault ms/file", "S3 ms/file")
	for _, name := range order {
		ce := cells[name]
		secs := med(ce.secs)
		up := strings.Contains(name, "upload") || strings.Contains(name, "Put")
		per := func(xs []float64) float64 { return med(xs) / float64(n) * 1000 }
		fmt.Printf("%-34s %9.1f %8.2f %14.2f %13.2f %13.2f %10.2f\n", name, float64(n)/secs, loop[up]/secs, per(ce.client), per(ce.dozod), per(ce.vault), per(ce.s3))
	}
}

func cellOf[C any](m map[string]*C, order *[]string, name string) *C {
	c := m[name]
	if c == nil {
		c = new(C)
		m[name] = c
		*order = append(*order, name)
	}
	return c
}
