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
// DOZO_BENCH_SIZES, against the CPU floor measured in the same run, with
// the kernel's part of the CPU beside it. DOZO_BENCH_BEFORE lists other
// dozo binaries (PATH or LABEL=PATH, comma-separated) whose rows run
// alternately with this build's, repetition by repetition, so all see
// the same load on a shared machine. DOZO_BENCH_PROFILE=DIR writes a CPU
// profile of every dozo run there (DIR/<row>-<MiB>-<rep>.pprof), and
// DOZO_BENCH_PERF=DIR runs each under `perf record -g`, kernel included
// (DIR/<row>-<MiB>-<rep>.perf; the rows' CPU then counts perf's too).
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

// clientBuild is one dozo binary's rows in BenchmarkClientCPU.
type clientBuild struct {
	label, bin      string // "" for this build
	up, fetch, null benchRow
}

// clientBuilds is this build and those DOZO_BENCH_BEFORE lists.
func clientBuilds() []*clientBuild {
	builds := []*clientBuild{{}}
	for _, f := range splitList(beforeBinary()) {
		label, bin, ok := strings.Cut(f, "=")
		if !ok {
			label, bin = "before", f
		}
		builds = append(builds, &clientBuild{label: label, bin: bin})
	}
	return builds
}

func (bd *clientBuild) name(row string) string {
	if bd.label == "" {
		return row
	}
	return bd.label + ": " + row
}

// clientRows measures one size; see BenchmarkClientCPU.
func (r *benchRun) clientRows(size int64) {
	b := r.b
	src := filepath.Join(r.dir, "input.bin")
	out := filepath.Join(r.dir, "output.bin")
	writeRandomFile(b, src, uint64(size), size, nil)
	defer os.Remove(src)
	defer os.Remove(out)

	builds := clientBuilds()
	run := func(bd *clientBuild, row *benchRow, what string, c *exec.Cmd, rep int) {
		if bd.bin != "" {
			withBinary(c, bd.bin)
		}
		slug := strings.NewReplacer(" ", "_", ":", "", "-", "", "(", "", ")", "", "/", "").Replace(bd.name(what))
		if dir := os.Getenv("DOZO_BENCH_PROFILE"); dir != "" {
			c.Env = append(c.Env, "DOZO_CPUPROFILE="+filepath.Join(dir, fmt.Sprintf("%s-%d-%d.pprof", slug, size>>20, rep)))
		}
		if dir := os.Getenv("DOZO_BENCH_PERF"); dir != "" {
			// Kernel and user stacks; the row's CPU then includes perf's.
			perf, err := exec.LookPath("perf")
			if err != nil {
				b.Fatal(err)
			}
			out := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.perf", slug, size>>20, rep))
			c.Args = append([]string{"perf", "record", "-q", "-F", "999", "-g", "-o", out, "--", c.Path}, c.Args[1:]...)
			c.Path = perf
		}
		smp, err := runMeasured(r.s, []*exec.Cmd{c})
		if err != nil {
			b.Fatalf("%s: %v", bd.name(what), err)
		}
		row.Name, row.Size = bd.name(what), size
		row.Samples = append(row.Samples, smp)
	}
	fileName := func(i, rep int) string { return fmt.Sprintf("c%d-%d-%d.bin", size, i, rep) }
	for rep := range r.cfg.n {
		for i, bd := range builds {
			run(bd, &bd.up, "dozo upload", r.sam.command("upload", "--dataset", r.ds, "--name", fileName(i, rep), src), rep)
		}
		for i, bd := range builds {
			name := r.ds + "/" + fileName(i, rep)
			run(bd, &bd.fetch, "dozo fetch", r.rita.command("fetch", name, "-o", out, "--force"), rep)
			os.Remove(out)
			null := r.rita.command("fetch", name, "-o", "-")
			null.Stdout = devNull(b)
			run(bd, &bd.null, "dozo fetch -o - (no disk)", null, rep)
			r.dropFile(fileName(i, rep))
		}
	}
	for _, bd := range builds {
		for _, row := range []*benchRow{&bd.up, &bd.fetch, &bd.null} {
			row.summarize()
			r.rows = append(r.rows, *row)
		}
	}
	dd := r.ddRow(out, size)
	gibs := float64(size) / gib
	for _, bd := range builds {
		n := len(r.ratios)
		r.ratios = append(r.ratios, benchRatio{"fetch to file / dd conv=fsync (throughput)", size, dd.Seconds / bd.fetch.Seconds, ">= 0.9"})
		r.cpuRatios(size, r.floor, bd.up, bd.fetch, bd.null)
		r.ratios = append(r.ratios,
			benchRatio{"upload kernel CPU s/GiB", size, bd.up.SysCPU / gibs, ""},
			benchRatio{"upload user CPU/GiB / floor with MD5", size, (bd.up.CPU - bd.up.SysCPU) / gibs / (r.floor.upload() + r.floor.md5), ""},
			benchRatio{"fetch -o - kernel CPU s/GiB", size, bd.null.SysCPU / gibs, ""},
			benchRatio{"fetch -o - user CPU/GiB / floor", size, (bd.null.CPU - bd.null.SysCPU) / gibs / r.floor.fetch(), ""})
		for i := n; i < len(r.ratios); i++ {
			r.ratios[i].Name = bd.name(r.ratios[i].Name)
		}
	}
	after := builds[0]
	for _, bd := range builds[1:] {
		for _, p := range []struct {
			what          string
			after, before benchRow
		}{{"upload", after.up, bd.up}, {"fetch to file", after.fetch, bd.fetch}, {"fetch -o -", after.null, bd.null}} {
			r.ratios = append(r.ratios,
				benchRatio{p.what + ": this build / " + bd.label + " (throughput)", size, p.before.Seconds / p.after.Seconds, ""},
				benchRatio{p.what + ": this build / " + bd.label + " (CPU s)", size, p.after.CPU / p.before.CPU, ""})
		}
	}
}
