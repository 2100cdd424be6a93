package integration

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/dozo-vault/dozo/api"
)

// BenchmarkScrubReplicas measures scrub throughput (files per second,
// from the run's start to its last file's end, as the catalog has them;
// the run itself ends at its job's next look at its shards, within a
// second) of a light and a deep scrub of one
// dataset, cut into four shards, on one dozod and then on two dozods on
// one PostgreSQL catalog, with the CPU seconds per 1000 files that the
// dozods, the S3 servers, PostgreSQL and Vault spent. DOZO_BENCH_SCRUB_FILES
// files (default 64) of 1 MiB, one segment each. Run it alone:
//
//	CI=true go test -run '^$' -bench '^BenchmarkScrubReplicas$' -benchtime 1x ./integration/
//
// No assertion on the figures: the machine decides them.
func BenchmarkScrubReplicas(b *testing.B) {
	s := needStack(b)
	n := 64
	if v := os.Getenv("DOZO_BENCH_SCRUB_FILES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("DOZO_BENCH_SCRUB_FILES=%q: want a positive number", v)
		}
	}
	b.Setenv("DOZOD_SCRUB_SHARDS", "4")
	b.Setenv("DOZOD_JOBS_LEASE", "3s") // a queued shard is claimed within a second
	pgURL := privatePostgres(b)
	conf, err := os.ReadFile(filepath.Join(s.devDir, "dozod.toml"))
	if err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r0 := s.startReplicaProc(b, conf, pgURL, 0)
	sam, _ := s.users(b)
	admin := s.login(b, s.env["DOZO_DEV_ADMIN"], s.env["DOZO_DEV_ADMIN_PASSWORD"])
	ds := newDatasetID()
	sam.must(b, "--broker", r0.URL, "dataset", "create", ds, "--title", "scrub benchmark")
	sam.uploadRandomFiles(b, ds, b.TempDir(), "f%04d.vcf", n, 900, func(int) int64 { return mib }, "--broker", r0.URL)

	type row struct {
		setup, mode     string
		files           int
		seconds, perSec float64
		dozodCPU, s3CPU float64 // per 1000 files
		pgCPU, vaultCPU float64
	}
	var rows []row
	measure := func(setup string, pids []int) {
		for _, deep := range []bool{false, true} {
			mode, args := "light", []string{"--broker", r0.URL, "scrub", ds, "--json"}
			if deep {
				mode, args = "deep", append(args, "--deep")
			}
			cpu := func() (dz, s3, pg, vt float64) {
				for _, p := range pids {
					dz += treeCPU(p)
				}
				return dz, s.serverCPU(), treeCPU(postmasterPid()), treeCPU(pidFile(filepath.Join(s.dir, "vault.pid")))
			}
			dz0, s30, pg0, vt0 := cpu()
			var r api.ScrubRun
			if err := json.Unmarshal([]byte(admin.must(b, args...)), &r); err != nil {
				b.Fatal(err)
			}
			dz1, s31, pg1, vt1 := cpu()
			if r.State != api.ScrubDone || r.Summary.FilesDone != n || r.Summary.Found != 0 {
				b.Fatalf("%s %s scrub: %s %+v", setup, mode, r.State, r.Summary)
			}
			var last int64
			if err := db.QueryRow(`SELECT max(done_at) FROM scrub_files WHERE run_id = $1`, r.ID).Scan(&last); err != nil {
				b.Fatal(err)
			}
			secs := time.Unix(0, last).Sub(r.StartedAt).Seconds()
			per1k := func(v float64) float64 { return v / float64(n) * 1000 }
			rw := row{setup: setup, mode: mode, files: n, seconds: secs, perSec: float64(n) / secs,
				dozodCPU: per1k(dz1 - dz0), s3CPU: per1k(s31 - s30), pgCPU: per1k(pg1 - pg0), vaultCPU: per1k(vt1 - vt0)}
			rows = append(rows, rw)
			fmt.Fprintf(os.Stderr, "%s %s: %d files in %.2f s, %.1f files/s\n", setup, mode, n, rw.seconds, rw.perSec)
		}
	}
	measure("postgres x1", []int{r0.Proc.Pid})
	r1 := s.startReplicaProc(b, conf, pgURL, 1)
	measure("postgres x2", []int{r0.Proc.Pid, r1.Proc.Pid})

	fmt.Printf("\n%-12s %-6s %6s %9s %8s %16s %16s %16s %16s\n", "setup", "mode", "files", "seconds", "files/s", "dozod cpu-s/1k", "s3 cpu-s/1k", "pg cpu-s/1k", "vault cpu-s/1k")
	for _, r := range rows {
		fmt.Printf("%-12s %-6s %6d %9.2f %8.1f %16.2f %16.2f %16.2f %16.2f\n", r.setup, r.mode, r.files, r.seconds, r.perSec, r.dozodCPU, r.s3CPU, r.pgCPU, r.vaultCPU)
	}
}
