#!/usr/bin/env bash
# stack.sh — the local storage + key stack dozo's tests and demo run on:
# three MinIO servers (one failure domain each, two buckets each) and a Vault
# dev server (Transit, userpass, file audit device), all on 127.0.0.1 only.
#
#   scripts/stack.sh up              start what is not running (idempotent)
#   scripts/stack.sh down            stop what this script started (by pid)
#   scripts/stack.sh status          print state; exit 1 unless all healthy
#   scripts/stack.sh env             print the env file path
#   scripts/stack.sh stop-minio N    stop MinIO server N (1-3), keep its data
#   scripts/stack.sh start-minio N   start it again on the same port
#
# State lives in $DOZO_STACK_DIR (default: <repo>/.dozo-dev/stack). The env
# file ($DOZO_STACK_DIR/env, mode 0600) holds addresses and credentials:
# source it. Secrets are random per stack and never printed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
STACK=${DOZO_STACK_DIR:-$root/.dozo-dev/stack}
ENVFILE=$STACK/env
BUCKETS=(dozo-a dozo-b)
NSERVERS=3

export PATH="$("$here/tools.sh" path):$PATH"
umask 077

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found; run scripts/tools.sh first"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port [span]: a random port p such that p..p+span-1 are all free.
free_port() {
  local span=${1:-1} p i ok
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 30000 )); ok=1
    for ((i = 0; i < span; i++)); do port_free $((p + i)) || { ok=0; break; }; done
    [ $ok = 1 ] && { echo "$p"; return 0; }
  done
  die "no free port found"
}

secret() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-32}"; }

# alive NAME: the pid recorded for NAME is running and is the program we started.
alive() {
  local f=$STACK/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  # Guard against a recycled pid: our servers run with their data dir (MinIO)
  # or working dir (Vault) inside $STACK.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$STACK" && return 0
  case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in "$STACK"/*) return 0 ;; esac
  return 1
}

stop() {
  local name=$1 pid
  if alive "$name"; then
    pid=$(cat "$STACK/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
  fi
  rm -f "$STACK/$name.pid"
}

wait_http() { # url seconds name
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    alive "$3" || break # it exited: no point waiting
    sleep 0.1
  done
  log "$3 did not become healthy at $1; last log lines:"
  tail -20 "$STACK/$3.log" >&2 || true
  return 1
}

load_secrets() {
  [ -f "$STACK/secrets" ] || {
    mkdir -p "$STACK"
    printf 'S3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\nVAULT_ROOT_TOKEN=%s\n' \
      "dozo$(secret 12)" "$(secret 40)" "dozodev$(secret 32)" >"$STACK/secrets"
    chmod 600 "$STACK/secrets"
  }
  # shellcheck disable=SC1091
  . "$STACK/secrets"
}

start_minio() {
  local n=$1 port
  alive "minio$n" && return 0
  need minio; load_secrets
  mkdir -p "$STACK/minio$n/data"
  if [ -f "$STACK/minio$n.port" ] && port_free "$(cat "$STACK/minio$n.port")"; then
    port=$(cat "$STACK/minio$n.port")
  else
    port=$(free_port); echo "$port" >"$STACK/minio$n.port"
  fi
  MINIO_ROOT_USER=$S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$S3_SECRET_KEY MINIO_BROWSER=off \
    MINIO_UPDATE=off MINIO_CI_CD=1 \
    setsid nohup minio server --quiet --address "127.0.0.1:$port" "$STACK/minio$n/data" \
    >"$STACK/minio$n.log" 2>&1 </dev/null &
  echo $! >"$STACK/minio$n.pid"
  wait_http "http://127.0.0.1:$port/minio/health/live" 60 "minio$n" || die "minio$n failed to start"
  for b in "${BUCKETS[@]}"; do
    # S3 CreateBucket, signed with SigV4 by curl; 409 means it exists.
    # "live" comes before the object layer is ready: 503 means retry.
    for _ in $(seq 1 100); do
      code=$(curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" -X PUT "http://127.0.0.1:$port/$b")
      [ "$code" = 503 ] || break
      sleep 0.1
    done
    case $code in 200|409) ;; *) die "minio$n: creating bucket $b: HTTP $code";; esac
  done
  log "minio$n up on 127.0.0.1:$port"
}

start_vault() {
  alive vault && return 0
  need vault; load_secrets
  local port
  if [ -f "$STACK/vault.port" ] && port_free "$(cat "$STACK/vault.port")" && port_free $(( $(cat "$STACK/vault.port") + 1 )); then
    port=$(cat "$STACK/vault.port")
  else
    port=$(free_port 2); echo "$port" >"$STACK/vault.port"
  fi
  mkdir -p "$STACK/vault"
  # The dev server keeps everything in memory: a restart loses keys, which
  # is what a throwaway test stack wants. -dev-no-store-token keeps it from
  # writing the root token to ~/.vault-token.
  # Only the vault command goes to the background (so $! is Vault's pid
  # and nothing holds our caller's stdout open).
  (cd "$STACK/vault" || exit 1
    VAULT_DEV_ROOT_TOKEN_ID=$VAULT_ROOT_TOKEN setsid nohup vault server -dev \
      -dev-listen-address="127.0.0.1:$port" -dev-no-store-token -dev-no-kv -log-level=warn \
      >"$STACK/vault.log" 2>&1 </dev/null &
    echo $! >"$STACK/vault.pid")
  wait_http "http://127.0.0.1:$port/v1/sys/health" 60 vault || die "vault failed to start"
  export VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN=$VAULT_ROOT_TOKEN
  vault secrets enable transit >/dev/null
  vault auth enable userpass >/dev/null
  vault audit enable file file_path="$STACK/vault/audit.log" >/dev/null
  chmod 600 "$STACK/vault/audit.log" 2>/dev/null || true
  log "vault up on 127.0.0.1:$port (transit, userpass, file audit)"
}

write_env() {
  load_secrets
  local eps=() n
  for n in $(seq 1 $NSERVERS); do eps+=("127.0.0.1:$(cat "$STACK/minio$n.port")"); done
  local tmp=$ENVFILE.tmp
  {
    echo "# written by scripts/stack.sh; secrets: keep mode 0600"
    echo "export DOZO_STACK_DIR='$STACK'"
    echo "export DOZO_DEV_S3_ENDPOINTS='$(IFS=,; echo "${eps[*]}")'"
    echo "export DOZO_DEV_S3_BUCKETS='$(IFS=,; echo "${BUCKETS[*]}")'"
    echo "export DOZO_DEV_S3_ACCESS_KEY='$S3_ACCESS_KEY'"
    echo "export DOZO_DEV_S3_SECRET_KEY='$S3_SECRET_KEY'"
    echo "export VAULT_ADDR='http://127.0.0.1:$(cat "$STACK/vault.port")'"
    echo "export VAULT_TOKEN='$VAULT_ROOT_TOKEN'"
  } >"$tmp"
  chmod 600 "$tmp"; mv "$tmp" "$ENVFILE"
}

status() {
  local ok=0 n
  for n in $(seq 1 $NSERVERS); do
    if alive "minio$n"; then echo "minio$n: running pid $(cat "$STACK/minio$n.pid") 127.0.0.1:$(cat "$STACK/minio$n.port")"
    else echo "minio$n: stopped"; ok=1; fi
  done
  if alive vault; then echo "vault: running pid $(cat "$STACK/vault.pid") 127.0.0.1:$(cat "$STACK/vault.port")"
  else echo "vault: stopped"; ok=1; fi
  [ -f "$ENVFILE" ] && echo "env: $ENVFILE"
  return $ok
}

case "${1:-}" in
  up)
    need curl
    mkdir -p "$STACK"; chmod 700 "$STACK"
    # A restarted dev Vault has lost its keys; start it before MinIO so an
    # error there is reported first.
    start_vault
    for n in $(seq 1 $NSERVERS); do start_minio "$n"; done
    write_env
    log "env written to $ENVFILE"
    ;;
  down)
    for n in $(seq 1 $NSERVERS); do stop "minio$n"; done
    stop vault
    ;;
  status) status ;;
  env) echo "$ENVFILE" ;;
  stop-minio) [[ "${2:-}" =~ ^[1-3]$ ]] || die "usage: $0 stop-minio 1|2|3"; stop "minio$2" ;;
  start-minio) [[ "${2:-}" =~ ^[1-3]$ ]] || die "usage: $0 start-minio 1|2|3"; start_minio "$2" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
