#!/usr/bin/env bash
# postgres.sh — a private PostgreSQL cluster for dozo's catalog tests and
# local runs: its own state directory, a free loopback port below the
# ephemeral range (ports.sh), its unix socket inside the state directory.
# It never touches the system's cluster or service.
#
#   scripts/postgres.sh up       initialise (the first time) and start
#   scripts/postgres.sh down     stop (the state directory stays)
#   scripts/postgres.sh status   exit 0 if it is running
#   scripts/postgres.sh env      print DOZO_TEST_POSTGRES_URL=postgres://dozo:...@127.0.0.1:PORT/dozo?sslmode=disable
#
# DOZO_POSTGRES_DIR is the state directory (default
# /var/tmp/dozo-postgres-$USER). The role "dozo" (password in
# $DOZO_POSTGRES_DIR/password, mode 0600) owns the database "dozo" and may
# create databases: the catalog tests make one per test. The server runs
# with fsync off: it holds test data only.
#
# PostgreSQL comes from Debian's packages (scripts/tools.sh postgres). As
# root, initdb and the server run as the postgres system user (they refuse
# root), which then owns the state directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ports.sh
. "$here/ports.sh"

DIR=${DOZO_POSTGRES_DIR:-/var/tmp/dozo-postgres-$(id -un)}
DATA=$DIR/data

die() { printf 'postgres.sh: %s\n' "$*" >&2; exit 1; }

pgbin() {
  local d
  # initdb on PATH may be a lone link into Debian's per-version directory,
  # which has psql and pg_ctl beside it.
  if command -v initdb >/dev/null 2>&1; then
    d=$(dirname "$(readlink -f "$(command -v initdb)")")
    [ -x "$d/psql" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$d" ] && [ -x "$d/initdb" ] || die "PostgreSQL is not installed (scripts/tools.sh postgres installs it)"
  echo "$d"
}

# as_owner runs a PostgreSQL program as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() { [ -f "$DATA/PG_VERSION" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

up() {
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no postgres system user (install PostgreSQL: scripts/tools.sh postgres)"
    chown postgres: "$DIR"
    as_owner test -w "$DIR" || die "the postgres user cannot reach $DIR (a parent directory is private); set DOZO_POSTGRES_DIR"
  fi
  if running; then return 0; fi
  local fresh=0 port
  if [ ! -f "$DATA/PG_VERSION" ]; then
    fresh=1
    rm -rf "$DATA"
    (umask 077; head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$DIR/password")
    # trust on the socket only: it lives in $DIR, mode 0700.
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --encoding=UTF8 --locale=C \
      --auth-local=trust --auth-host=scram-sha-256 --no-sync >"$DIR/initdb.log" 2>&1 ||
      die "initdb failed: $(tail -n 5 "$DIR/initdb.log")"
  fi
  port=$(reuse_port "$DIR/port")
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 start \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    >/dev/null || die "the server did not start: $(tail -n 5 "$DIR/server.log" 2>/dev/null)"
  if [ $fresh = 1 ]; then
    as_owner "$BIN/psql" -h "$DIR" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
      -c "CREATE ROLE dozo LOGIN CREATEDB PASSWORD '$(cat "$DIR/password")'" \
      -c "CREATE DATABASE dozo OWNER dozo" >/dev/null
  fi
}

down() {
  if running; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  fi
}

env_() {
  running || die "not running (scripts/postgres.sh up)"
  echo "DOZO_TEST_POSTGRES_URL=postgres://dozo:$(cat "$DIR/password")@127.0.0.1:$(cat "$DIR/port")/dozo?sslmode=disable"
}

BIN=$(pgbin)
case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if running; then echo "running: $DIR (port $(cat "$DIR/port"))"; else echo "not running: $DIR"; exit 1; fi ;;
  env) env_ ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
