#!/usr/bin/env bash
# bench.sh — the dozo benchmark suite (make bench): baselines A (plain
# minio-go) and B (stock age CLI + plain upload) against the dozo CLI, on
# one stack, with the same files, medians of N repetitions; a table on
# stdout and JSON in bench-results.json. See BenchmarkSuite in
# integration/suite_bench_test.go.
#
#   DOZO_BENCH_SIZES=1GiB,4GiB   file sizes (8GiB needs ~30 GiB free disk)
#   DOZO_BENCH_N=3               repetitions per measurement (median)
#   DOZO_BENCH_JSON=PATH         where the JSON goes
#   DOZO_DEV_DIR=DIR             use a running dev stack (scripts/dev.sh up)
#                                instead of a private one
#   DOZO_BENCH_MICRO=1           also run the crypto/storage micro-benchmarks
#                                and the library end-to-end benchmark
#   DOZO_BENCH_HTTP=1            also run dozod's HTTP load test (dataset
#                                list, header fetch, presign batch at 1/16/64
#                                clients; SQLite, PostgreSQL x1 and x2;
#                                BenchmarkHTTPLoad); DOZO_BENCH_HTTP=only runs
#                                it alone. DOZO_BENCH_HTTP_SECONDS per cell
#                                (default 5), DOZO_BENCH_HTTP_JSON for JSON.
#   DOZO_BENCH_CLIENT=1          run only the client's data-path rows
#                                (upload, fetch to a file, fetch -o -, dd)
#                                against the CPU floor (BenchmarkClientCPU);
#                                DOZO_BENCH_BEFORE=[LABEL=]BINARY,... adds
#                                other dozo builds' rows, run alternately
#                                with this build's; DOZO_BENCH_PROFILE=DIR
#                                keeps a CPU profile of every dozo run
#   DOZO_BENCH_SMALL=1           run only the many-small-files rows
#                                (BenchmarkSmallFiles): DOZO_BENCH_MANY
#                                (default 200x1MiB) uploaded with -r and
#                                fetched with -o DIR at each --parallel of
#                                DOZO_BENCH_PARALLELS (default 1,4,8),
#                                against PutObject/GetObject loops, with
#                                files/s and client, dozod and Vault CPU
#                                per file; DOZO_BENCH_BEFORE and
#                                DOZO_BENCH_PROFILE as above,
#                                DOZO_BENCH_PERF_DOZOD=DIR perf-records dozod
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
export DOZO_BENCH_JSON=${DOZO_BENCH_JSON:-$root/bench-results.json}
export PATH="$("$here/tools.sh" path):$PATH"
GO=${GO:-go}

# Disk: the suite keeps the input, one output and ~2.5x the size in
# MinIO at a time (earlier repetitions' pieces are deleted).
avail=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR==2 {print int($4/1024/1024)}')
echo "bench: sizes ${DOZO_BENCH_SIZES:-1GiB,4GiB}, N=${DOZO_BENCH_N:-3}; ${avail} GiB free in ${TMPDIR:-/tmp}" >&2

if [ -n "${DOZO_BENCH_MICRO:-}" ]; then
  $GO test -run '^$' -bench . -benchmem -benchtime 3x -timeout 60m ./crypto/ ./storage/
  $GO test -run '^$' -bench 'BenchmarkEndToEnd' -benchtime 1x -timeout 60m ./integration/
fi
if [ -n "${DOZO_BENCH_HTTP:-}" ]; then
  $GO test -run '^$' -bench '^BenchmarkHTTPLoad$' -benchtime 1x -timeout 60m ./integration/
  [ "$DOZO_BENCH_HTTP" != only ] || exit 0
fi
if [ -n "${DOZO_BENCH_SMALL:-}" ]; then
  exec $GO test -run '^$' -bench '^BenchmarkSmallFiles$' -benchtime 1x -timeout 60m ./integration/
fi
if [ -n "${DOZO_BENCH_CLIENT:-}" ]; then
  exec $GO test -run '^$' -bench '^BenchmarkClientCPU$' -benchtime 1x -timeout 120m ./integration/
fi
exec $GO test -run '^$' -bench '^BenchmarkSuite$' -benchtime 1x -timeout 300m ./integration/
