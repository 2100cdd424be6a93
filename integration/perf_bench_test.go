package integration

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/reedsolomon"
	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/dozo-vault/dozo/internal/units"
)

// The rows below put the client's CPU against the floor of the work it
// cannot avoid, the fetch to a file against dd on the same disk, and the
// S3 servers' CPU against the plain PutObject's, each measured in the same
// run as what it is compared with.

const gib = 1 << 30

// cpuFloor is the CPU seconds per GiB of plaintext of each primitive the
// data path must run, measured on one core of this machine.
type cpuFloor struct {
	sha256, md5, seal, open, blake3, rsEncode float64
}

// upload is the floor of an upload, per GiB of plaintext: SHA-256 of the
// plaintext, ChaCha20-Poly1305 sealing, the Reed–Solomon 4+2 parity and a
// BLAKE3 piece hash over (k+m)/k = 1.5 times the bytes. MD5, which the
// catalog keeps for JGA's lists, is the separate upload+MD5 row.
func (f cpuFloor) upload() float64 { return f.sha256 + f.seal + 1.5*f.blake3 + f.rsEncode }

// fetch is the floor of a fetch: the BLAKE3 of the data pieces, the
// chunk AEAD and the whole-file SHA-256.
func (f cpuFloor) fetch() float64 { return f.sha256 + f.open + f.blake3 }

// threadCPU is the CPU time of the calling OS thread, in seconds.
func threadCPU() float64 {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if syscall.Getrusage(rusageThread, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// perGiB runs f over a 64 MiB buffer until 256 MiB passed through it, on
// one locked thread, and returns the median of three runs' CPU seconds,
// scaled to a GiB. Thread CPU time rather than wall time: the machine is
// shared, and other work takes the core away, not the cycles.
func perGiB(f func([]byte)) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i*131 + i>>13)
	}
	const total = 256 << 20
	f(buf) // warm up: page faults, lazy tables
	var runs []float64
	for range 3 {
		t0 := threadCPU()
		for n := 0; n < total; n += len(buf) {
			f(buf)
		}
		runs = append(runs, (threadCPU()-t0)*gib/total)
	}
	slices.Sort(runs)
	return runs[1]
}

// measureFloor measures each primitive and records the floor rows.
func (r *benchRun) measureFloor() cpuFloor {
	key := make([]byte, chacha20poly1305.KeySize)
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		r.b.Fatal(err)
	}
	const chunk = 64 << 10 // the age STREAM chunk
	ct := make([]byte, chunk+aead.Overhead())
	nonce := make([]byte, chacha20poly1305.NonceSize)
	// One goroutine: the thread's CPU time must see all the work.
	enc, err := reedsolomon.New(4, 2, reedsolomon.WithMaxGoroutines(1))
	if err != nil {
		r.b.Fatal(err)
	}
	var f cpuFloor
	f.sha256 = perGiB(func(b []byte) { sha256.Sum256(b) })
	f.md5 = perGiB(func(b []byte) { md5.Sum(b) })
	f.seal = perGiB(func(b []byte) {
		for p := b; len(p) > 0; p = p[chunk:] {
			aead.Seal(ct[:0], nonce, p[:chunk], nil)
		}
	})
	sealed := aead.Seal(nil, nonce, make([]byte, chunk), nil)
	f.open = perGiB(func(b []byte) {
		for n := 0; n < len(b); n += chunk {
			copy(ct, sealed)
			if _, err := aead.Open(ct[:0], nonce, ct, nil); err != nil {
				panic(err)
			}
		}
	})
	// Pieces of 8 MiB, as a 32 MiB segment makes.
	f.blake3 = perGiB(func(b []byte) {
		for p := b; len(p) > 0; p = p[8<<20:] {
			blake3.Sum256(p[:8<<20])
		}
	})
	parity := make([]byte, 2*(8<<20))
	f.rsEncode = perGiB(func(b []byte) {
		for p := b; len(p) > 0; p = p[32<<20:] {
			shards := [][]byte{p[:8<<20], p[8<<20 : 16<<20], p[16<<20 : 24<<20], p[24<<20 : 32<<20], parity[:8<<20], parity[8<<20:]}
			if err := enc.Encode(shards); err != nil {
				panic(err)
			}
		}
	})
	// The open loop copies the chunk back each time (Open works in place);
	// take that copy's cost out.
	cp := perGiB(func(b []byte) {
		for n := 0; n < len(b); n += chunk {
			copy(ct, sealed)
		}
	})
	f.open = max(f.open-cp, 0)
	for _, p := range []struct {
		name string
		v    float64
	}{
		{"floor: SHA-256", f.sha256},
		{"floor: MD5", f.md5},
		{"floor: ChaCha20-Poly1305 seal (64 KiB chunks)", f.seal},
		{"floor: ChaCha20-Poly1305 open (64 KiB chunks)", f.open},
		{"floor: BLAKE3 (8 MiB pieces)", f.blake3},
		{"floor: Reed-Solomon 4+2 encode", f.rsEncode},
		{"floor: upload (SHA-256 + seal + 1.5 BLAKE3 + RS)", f.upload()},
		{"floor: upload + MD5 (the catalog's)", f.upload() + f.md5},
		{"floor: fetch (SHA-256 + open + BLAKE3)", f.fetch()},
	} {
		r.rows = append(r.rows, floorRow(p.name, p.v))
	}
	return f
}

// floorRow is a row of CPU seconds per GiB; its MiB/s is one core's rate.
func floorRow(name string, cpuPerGiB float64) benchRow {
	row := benchRow{Name: name + " [CPU s/GiB]", Size: gib, Seconds: cpuPerGiB, CPU: cpuPerGiB}
	if cpuPerGiB > 0 {
		row.MiBps = 1024 / cpuPerGiB
	}
	return row
}

// cpuRatios compares the client's CPU per GiB in rows with the floor.
func (r *benchRun) cpuRatios(size int64, f cpuFloor, up, fetchFile, fetchNull benchRow) {
	per := func(row benchRow) float64 { return row.CPU / (float64(size) / gib) }
	add := func(name string, v float64, want string) {
		r.ratios = append(r.ratios, benchRatio{name, size, v, want})
	}
	if f.upload() > 0 && up.CPU > 0 {
		add("upload CPU/GiB / floor", per(up)/f.upload(), "<= 1.25")
		add("upload CPU/GiB / floor with MD5", per(up)/(f.upload()+f.md5), "<= 1.25")
	}
	if f.fetch() > 0 {
		if fetchNull.CPU > 0 {
			add("fetch -o - CPU/GiB / floor", per(fetchNull)/f.fetch(), "<= 1.25")
		}
		if fetchFile.CPU > 0 {
			add("fetch to file CPU/GiB / floor", per(fetchFile)/f.fetch(), "")
		}
	}
	if fetchFile.Seconds > 0 && fetchNull.Seconds > 0 {
		// What writing and syncing the file costs the fetch: 1 when the
		// disk keeps up with the rest of the pipeline.
		add("fetch to file / fetch -o - (throughput)", fetchNull.Seconds/fetchFile.Seconds, "")
	}
}

// ddRow measures dd writing size bytes of zeros to out and syncing them,
// the disk's own speed for the fetch-to-file row. Like that row, it writes
// over the previous repetition's file.
func (r *benchRun) ddRow(out string, size int64) benchRow {
	bs, count := int64(4<<20), size/(4<<20)
	if size%(4<<20) != 0 {
		bs, count = 1<<20, size/(1<<20)
	}
	row := r.measure("dd bs="+units.FormatSize(bs)+" conv=fsync (same disk)", bs*count, func() []*exec.Cmd {
		return []*exec.Cmd{exec.Command("dd", "if=/dev/zero", "of="+out, fmt.Sprintf("bs=%d", bs), fmt.Sprintf("count=%d", count), "conv=fsync", "status=none")}
	}, r.cfg.n)
	os.Remove(out)
	return row
}

// serverCPURatios compares the S3 servers' CPU per GiB stored by a dozo
// upload (1.5 times the plaintext for 4+2) with the plain PutObject's.
func (r *benchRun) serverCPURatios(size int64, label string, up, aPut benchRow, stored float64) {
	if aPut.ServerCPU <= 0 || up.ServerCPU <= 0 {
		return
	}
	base := aPut.ServerCPU / (float64(size) / gib)
	r.ratios = append(r.ratios,
		benchRatio{"MinIO CPU/plaintext GiB: " + label + " / A put", size, up.ServerCPU / (float64(size) / gib) / base, ""},
		benchRatio{"MinIO CPU/stored GiB: " + label + " / A put", size, up.ServerCPU / (stored * float64(size) / gib) / base, ""})
}

// segmentSizes lists the segment sizes (plaintext) the segment-size rows
// compare, from DOZO_BENCH_SEGMENTS (default "8MiB,32MiB,64MiB"; "none"
// skips them).
func segmentSizes(b interface{ Fatalf(string, ...any) }) []int64 {
	v := os.Getenv("DOZO_BENCH_SEGMENTS")
	if v == "none" {
		return nil
	}
	if v == "" {
		v = "8MiB,32MiB,64MiB"
	}
	var out []int64
	for _, f := range splitList(v) {
		n, err := units.ParseSize(f)
		if err != nil || n < mib {
			b.Fatalf("DOZO_BENCH_SEGMENTS: bad size %q", f)
		}
		out = append(out, n)
	}
	return out
}

// segmentRows uploads and fetches (to /dev/null) the file src of size
// bytes in a dataset per segment size, recording the client's CPU and
// peak RSS and the servers' CPU for each.
func (r *benchRun) segmentRows(src string, size int64, aPut benchRow) {
	for _, seg := range segmentSizes(r.b) {
		ds := newDatasetID()
		label := units.FormatSize(seg) + " segments"
		r.sam.must(r.b, "dataset", "create", ds, "--title", "bench "+label, "--segment-size", units.FormatSize(seg))
		r.sam.must(r.b, "grant", ds, r.rita.name, "--until", benchUntil(), "--application", "J-DU000001", "--institution", "NIG")
		rep := 0
		name := func() string { return fmt.Sprintf("s%d-%d.bin", seg, rep) }
		up := r.measure("dozo upload, "+label, size, func() []*exec.Cmd {
			if rep > 0 {
				r.dropFileIn(ds, fmt.Sprintf("s%d-%d.bin", seg, rep-1))
			}
			rep++
			return []*exec.Cmd{r.sam.command("upload", "--dataset", ds, "--name", name(), src)}
		}, r.cfg.n)
		r.measure("dozo fetch -o -, "+label, size, func() []*exec.Cmd {
			c := r.rita.command("fetch", ds+"/"+name(), "-o", "-")
			c.Stdout = devNull(r.b)
			return []*exec.Cmd{c}
		}, r.cfg.n)
		r.dropFileIn(ds, name())
		r.serverCPURatios(size, "upload "+label, up, aPut, 1.5)
	}
}

// beforeBinary is DOZO_BENCH_BEFORE: another build of the dozo CLI (e.g.
// of the previous commit) whose upload and fetch are measured in the same
// run, on the same stack and files, for a before/after comparison.
func beforeBinary() string { return os.Getenv("DOZO_BENCH_BEFORE") }

// withBinary makes c run bin instead of the CLI under test.
func withBinary(c *exec.Cmd, bin string) *exec.Cmd {
	c.Path, c.Args[0] = bin, bin
	return c
}

// beforeRows measures the DOZO_BENCH_BEFORE binary's upload, fetch to a
// file and fetch to /dev/null of src, and adds after/before ratios against
// this build's rows.
func (r *benchRun) beforeRows(src, out string, size int64, up, fetchFile, fetchNull benchRow) {
	bin := beforeBinary()
	if bin == "" {
		return
	}
	rep := 0
	name := func() string { return fmt.Sprintf("before%d-%d.bin", size, rep) }
	bUp := r.measure("before: dozo upload", size, func() []*exec.Cmd {
		if rep > 0 {
			r.dropFile(fmt.Sprintf("before%d-%d.bin", size, rep-1))
		}
		rep++
		return []*exec.Cmd{withBinary(r.sam.command("upload", "--dataset", r.ds, "--name", name(), src), bin)}
	}, r.cfg.n)
	bFetch := r.measure("before: dozo fetch", size, func() []*exec.Cmd {
		return []*exec.Cmd{withBinary(r.rita.command("fetch", r.ds+"/"+name(), "-o", out, "--force"), bin)}
	}, r.cfg.n)
	os.Remove(out)
	bNull := r.measure("before: dozo fetch -o - (no disk)", size, func() []*exec.Cmd {
		c := withBinary(r.rita.command("fetch", r.ds+"/"+name(), "-o", "-"), bin)
		c.Stdout = devNull(r.b)
		return []*exec.Cmd{c}
	}, r.cfg.n)
	r.dropFile(name())
	for _, p := range []struct {
		what         string
		after, befor benchRow
	}{{"upload", up, bUp}, {"fetch to file", fetchFile, bFetch}, {"fetch -o -", fetchNull, bNull}} {
		if p.after.Seconds > 0 && p.befor.Seconds > 0 {
			r.ratios = append(r.ratios,
				benchRatio{p.what + ": after / before (throughput)", size, p.befor.Seconds / p.after.Seconds, ""},
				benchRatio{p.what + ": after / before (CPU s)", size, p.after.CPU / p.befor.CPU, ""})
		}
	}
}

func devNull(t interface{ Fatal(...any) }) *os.File {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return null
}

// benchUntil is the end date of the bench's grants.
func benchUntil() string { return time.Now().AddDate(0, 1, 0).UTC().Format("2006-01-02") }

// splitList splits a comma-separated list, trimming spaces.
func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
