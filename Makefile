# dozo — see README.md. Every target works on a fresh machine: tools are
# installed into ~/.cache/dozo/tools on first use (MinIO ~7 min, Vault
# ~25-30 min to build once; seconds afterwards).
GO      ?= go
BIN     := bin
PKGS    := ./...
# Integration tests start their own private stack once per run (TestMain);
# -count=1: a cached "ok" must never stand in for a run against the servers.
TESTFLAGS ?= -count=1 -timeout 40m

.PHONY: all build man test test-replicas unit bench fuzz vet tools up down status clean

all: build

build:
	$(GO) build -o $(BIN)/dozo ./cmd/dozo
	$(GO) build -o $(BIN)/dozod ./cmd/dozod

# Manual pages, made from the commands' --help text (not committed).
man:
	mkdir -p man
	$(GO) run ./cmd/dozo man > man/dozo.1

tools:
	scripts/tools.sh all

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	@# Researchers also run dozo on macOS laptops and Linux on ARM.
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/dozo
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/dozo

# The full suite: unit tests, then integration tests on real MinIO + Vault.
# The catalog tests run on SQLite and again on PostgreSQL: their TestMain
# starts a private cluster (scripts/postgres.sh) unless
# DOZO_TEST_POSTGRES_URL names a server, and stops it at the end.
test: tools vet
	$(GO) test $(TESTFLAGS) $(PKGS)

# The integration suite again, on two dozods sharing one PostgreSQL catalog
# behind a round-robin proxy, so every transfer's calls land on both
# (docs/scale-out.md). About 11 min here (10.5-12.6 measured). Not part of
# `make test`: on a fresh machine, whose first Vault build alone takes up
# to 45 min, the two runs together would pass CI's hour.
test-replicas: tools
	DOZO_TEST_REPLICAS=2 $(GO) test -count=1 -timeout 60m ./integration/

# Pure-code tests only; no servers.
unit:
	$(GO) test -short $(PKGS)

# Throughput, CPU and peak RSS of the dozo CLI against plain minio-go
# (baseline A) and the stock age CLI + upload (baseline B), medians of
# DOZO_BENCH_N runs, for DOZO_BENCH_SIZES; writes bench-results.json.
# DOZO_BENCH_MICRO=1 adds the crypto/storage micro-benchmarks.
bench: tools
	scripts/bench.sh

# Every fuzz target (found by scripts/fuzz-targets.sh: each func Fuzz* in a
# _test.go file), FUZZTIME each (go test -fuzz takes one target at a time).
# FUZZ_TARGETS=./pkg:FuzzName runs only those.
FUZZTIME ?= 30s
FUZZ_TARGETS ?= $(shell scripts/fuzz-targets.sh)
fuzz:
	@test -n "$(FUZZ_TARGETS)" || { echo "no fuzz targets found" >&2; exit 1; }
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$fn ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

up: tools
	scripts/dev.sh up

down:
	scripts/dev.sh down

status:
	scripts/dev.sh status

clean:
	rm -rf $(BIN)

# The whole path on the dev stack: two users, a dataset, a 300 MiB upload,
# a grant, a verified fetch (scripts/demo.sh; DOZO_DEMO_MIB=... to resize).
.PHONY: demo
demo: up
	$(GO) build -o $(BIN)/dozo ./cmd/dozo
	DOZO_BIN=$(BIN)/dozo scripts/demo.sh
