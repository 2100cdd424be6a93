package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
	for i := range cfg.manyN {
		writeRandomFile(b, filepath.Join(src, fmt.Sprintf("f%04d.bin", i)), uint64(1000+i), cfg.manySize, nil)
	}
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
