package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkClientCPU is `DOZO_BENCH_CLIENT=1 make bench`: the client's
// data-path rows of BenchmarkSuite alone (dozo upload, fetch to a file,
// fetch -o - to /dev/null, and dd conv=fsync on the same disk) at each of
// DOZO_BENCH_SIZES, against the CPU floor measured in the same run. With
// DOZO_BENCH_BEFORE=BINARY the same rows of that binary run alternately
// with this build's, repetition by repetition, so both see the same load
// on a shared machine. DOZO_BENCH_PROFILE=DIR writes a CPU profile of
// every dozo run there (DIR/<row>-<size>-<rep>.pprof).
func BenchmarkClientCPU(b *testing.B) {
	cfg := benchConfigFromEnv(b)
	s := needStack(b)
	r := newBenchRun(b, s, cfg)
	r.floor = r.measureFloor()
	for i := 0; i < b.N; i++ {
		for _, size := range cfg.sizes {
			r.clientRows(size)
		}
	}
	r.report()
}

// clientRows measures one size; see BenchmarkClientCPU.
func (r *benchRun) clientRows(size int64) {
	b := r.b
	src := filepath.Join(r.dir, "input.bin")
	out := filepath.Join(r.dir, "output.bin")
	writeRandomFile(b, src, uint64(size), size, nil)
	defer os.Remove(src)
	defer os.Remove(out)

	type build struct {
		label, bin string
		up, fetch, null benchRow
	}
	builds := []*build{{label: ""}}
	if bin := beforeBinary(); bin != "" {
		builds = append(builds, &build{label: "before: ", bin: bin})
	}
	run := func(bd *build, row *benchRow, name string, mk func() *exec.Cmd, rep int) {
		c := mk()
		if bd.bin != "" {
			withBinary(c, bd.bin)
		}
		if dir := os.Getenv("DOZO_BENCH_PROFILE"); dir != "" {
			slug := strings.NewReplacer(" ", "_", ":", "", "-", "", "(", "", ")", "", "/", "").Replace(bd.label + name)
			c.Env = append(c.Env, "DOZO_CPUPROFILE="+filepath.Join(dir, fmt.Sprintf("%s-%d-%d.pprof", slug, size>>20, rep)))
		}
		smp, err := runMeasured(r.s, []*exec.Cmd{c})
		if err != nil {
			b.Fatalf("%s%s: %v", bd.label, name, err)
		}
		row.Name, row.Size = bd.label+name, size
		row.Samples = append(row.Samples, smp)
	}
	fileName := func(bd *build, rep int) string {
		return fmt.Sprintf("%sc%d-%d.bin", strings.TrimSuffix(bd.label, ": "), size, rep)
	}
	for rep := range r.cfg.n {
		for _, bd := range builds {
			run(bd, &bd.up, "dozo upload", func() *exec.Cmd {
				return r.sam.command("upload", "--dataset", r.ds, "--name", fileName(bd, rep), src)
			}, rep)
		}
		for _, bd := range builds {
			name := r.ds + "/" + fileName(bd, rep)
			run(bd, &bd.fetch, "dozo fetch", func() *exec.Cmd {
				return r.rita.command("fetch", name, "-o", out, "--force")
			}, rep)
			os.Remove(out)
			run(bd, &bd.null, "dozo fetch -o - (no disk)", func() *exec.Cmd {
				c := r.rita.command("fetch", name, "-o", "-")
				c.Stdout = devNull(b)
				return c
			}, rep)
			r.dropFile(fileName(bd, rep))
		}
	}
	for _, bd := range builds {
		for _, row := range []*benchRow{&bd.up, &bd.fetch, &bd.null} {
			row.summarize()
			r.rows = append(r.rows, *row)
		}
	}
	dd := r.ddRow(out, size)
	after := builds[0]
	r.ratios = append(r.ratios, benchRatio{"fetch to file / dd conv=fsync (throughput)", size, dd.Seconds / after.fetch.Seconds, ">= 0.9"})
	r.cpuRatios(size, r.floor, after.up, after.fetch, after.null)
	if len(builds) > 1 {
		before := builds[1]
		r.ratios = append(r.ratios, benchRatio{"before: fetch to file / dd conv=fsync (throughput)", size, dd.Seconds / before.fetch.Seconds, ""})
		n := len(r.ratios)
		r.cpuRatios(size, r.floor, before.up, before.fetch, before.null)
		for i := n; i < len(r.ratios); i++ {
			r.ratios[i].Name = "before: " + r.ratios[i].Name
		}
		for _, p := range []struct {
			what          string
			after, before benchRow
		}{{"upload", after.up, before.up}, {"fetch to file", after.fetch, before.fetch}, {"fetch -o -", after.null, before.null}} {
			r.ratios = append(r.ratios,
				benchRatio{p.what + ": after / before (throughput)", size, p.before.Seconds / p.after.Seconds, ""},
				benchRatio{p.what + ": after / before (CPU s)", size, p.after.CPU / p.before.CPU, ""})
		}
	}
}
