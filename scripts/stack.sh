#!/usr/bin/env bash
# stack.sh — the local storage + key stack dozo's tests and demo run on:
# three S3 servers (one failure domain each, two buckets each): two MinIO
# servers and a versitygw gateway over a POSIX directory, so everything runs
# against two S3 implementations; and a Vault server (Transit, userpass,
# file audit device) with file storage that keeps its keys across restarts.
# All listen on 127.0.0.1 only.
#
#   scripts/stack.sh up              start what is not running (idempotent)
#   scripts/stack.sh down            stop what this script started (by pid)
#   scripts/stack.sh status          print state; exit 1 unless all healthy
#   scripts/stack.sh env             print the env file path
#   scripts/stack.sh stop-s3 N       stop S3 server N (1-3), keep its data
#   scripts/stack.sh start-s3 N      start it again (same port if still free)
#   scripts/stack.sh stop-vault      stop Vault, keep its data
#   scripts/stack.sh start-vault     start Vault again and unseal it
#
# (stop-minio N and start-minio N are older names of stop-s3 and start-s3.)
# State lives in $DOZO_STACK_DIR (default: <repo>/.dozo-dev/stack). The env
# file ($DOZO_STACK_DIR/env, mode 0600) holds addresses and credentials:
# source it. Secrets are random per stack and never printed. Vault's
# unseal key and root token are kept in $DOZO_STACK_DIR/vault (mode 0600).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
STACK=${DOZO_STACK_DIR:-$root/.dozo-dev/stack}
ENVFILE=$STACK/env
BUCKETS=(dozo-a dozo-b)
# The S3 server of each failure domain, by index: MinIO twice, versitygw once.
KINDS=(minio minio versitygw)
NSERVERS=${#KINDS[@]}

export PATH="$("$here/tools.sh" path):$PATH"
umask 077

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found; run scripts/tools.sh first"; }

# shellcheck source=ports.sh
. "$here/ports.sh"

# server_kind N, server_name N: the program and state name of S3 server N
# (minio1, minio2, versitygw3).
server_kind() { echo "${KINDS[$(($1 - 1))]}"; }
server_name() { echo "$(server_kind "$1")$1"; }

secret() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-32}"; }

# alive NAME: the pid recorded for NAME is running and is the program we started.
alive() {
  local f=$STACK/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  # Guard against a recycled pid: our servers run with their data dir (MinIO,
  # versitygw) or working dir (Vault) inside $STACK.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$STACK" && return 0
  case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in "$STACK"/*) return 0 ;; esac
  return 1
}

# spawn NAME CMD...: run CMD in the background in a session of its own,
# its output to $STACK/NAME.log and its pid to $STACK/NAME.pid. It is
# forked from a subshell already in $STACK/NAME, so alive NAME knows it by
# its working directory from its first instant: forked from here, until it
# has exec'd CMD (which a loaded machine can delay for a long while) it
# would look like this script, and the wait for it would stop at once as
# if it had exited, with an empty log. Only CMD goes to the background (so
# $! is its pid and nothing holds our caller's stdout open).
spawn() {
  local name=$1; shift
  (cd "$STACK/$name" || exit 1
    setsid nohup "$@" >"$STACK/$name.log" 2>&1 </dev/null &
    echo $! >"$STACK/$name.pid")
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
  if alive "$3"; then log "$3 did not become healthy at $1 within $2 s; last log lines:"
  else log "$3 exited before it became healthy at $1; last log lines:"; fi
  tail -20 "$STACK/$3.log" >&2 || true
  return 1
}

# wait_answer url seconds name: until the server answers HTTP at all (any
# status: versitygw answers 403 to an unsigned request).
wait_answer() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null)" != 000 ] && return 0
    alive "$3" || break
    sleep 0.1
  done
  if alive "$3"; then log "$3 did not answer at $1 within $2 s; last log lines:"
  else log "$3 exited before it answered at $1; last log lines:"; fi
  tail -20 "$STACK/$3.log" >&2 || true
  return 1
}

load_secrets() {
  [ -f "$STACK/secrets" ] || {
    mkdir -p "$STACK"
    printf 'S3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\n' "dozo$(secret 12)" "$(secret 40)" >"$STACK/secrets"
    chmod 600 "$STACK/secrets"
  }
  # shellcheck disable=SC1091
  . "$STACK/secrets"
}

# create_buckets port name: S3 CreateBucket for each bucket, signed with
# SigV4 by curl (versitygw insists on x-amz-content-sha256). 409 means it
# exists; 503 (MinIO's object layer not ready yet) and no answer mean retry.
create_buckets() {
  local port=$1 name=$2 b code
  for b in "${BUCKETS[@]}"; do
    for _ in $(seq 1 100); do
      code=$(curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
        -X PUT "http://127.0.0.1:$port/$b" 2>/dev/null) || true
      case $code in 503|000) sleep 0.1 ;; *) break ;; esac
    done
    case $code in 200|409) ;; *) die "$name: creating bucket $b: HTTP $code";; esac
  done
}

# start_s3 N: start S3 server N if it is not running, on the port it had
# when that port can still be bound.
start_s3() {
  local n=$1 kind name port
  kind=$(server_kind "$n"); name=$(server_name "$n")
  alive "$name" && return 0
  need "$kind"; load_secrets
  mkdir -p "$STACK/$name/data"
  port=$(reuse_port "$STACK/$name.port") || die "$name: no free port"
  case $kind in
    minio)
      MINIO_ROOT_USER=$S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$S3_SECRET_KEY MINIO_BROWSER=off \
        MINIO_UPDATE=off MINIO_CI_CD=1 \
        spawn "$name" minio server --quiet --address "127.0.0.1:$port" "$STACK/$name/data"
      wait_http "http://127.0.0.1:$port/minio/health/live" 120 "$name" || die "$name failed to start"
      ;;
    versitygw)
      # Old versions live in a directory of their own (versioning is off
      # without one; tests turn it on for a bucket).
      mkdir -p "$STACK/$name/versions"
      ROOT_ACCESS_KEY=$S3_ACCESS_KEY ROOT_SECRET_KEY=$S3_SECRET_KEY \
        spawn "$name" versitygw --port "127.0.0.1:$port" --quiet \
        posix --versioning-dir "$STACK/$name/versions" "$STACK/$name/data"
      wait_answer "http://127.0.0.1:$port/" 120 "$name" || die "$name failed to start"
      ;;
  esac
  create_buckets "$port" "$name"
  log "$name up on 127.0.0.1:$port"
}

# vault_api method path [curl args]: a Vault HTTP API call; body on stdout.
vault_api() {
  local method=$1 path=$2; shift 2
  curl -sS --max-time 10 -X "$method" "http://127.0.0.1:$(cat "$STACK/vault.port")/v1/$path" "$@"
}

# vault_unseal: initialise Vault on first start (one key share; the
# unseal key and root token go to files of mode 0600, never to argv or the
# log), then unseal it with the kept key.
vault_unseal() {
  local v=$STACK/vault health
  health=$(vault_api GET 'sys/health?uninitcode=200&sealedcode=200&standbyok=true') || return 1
  case $health in
    *'"initialized":false'*)
      [ -f "$v/unseal-key" ] && die "vault: storage in $v/data is not initialised but $v/unseal-key exists; refusing to initialise over it"
      vault_api PUT sys/init --data '{"secret_shares":1,"secret_threshold":1}' >"$v/init.json.tmp" || return 1
      sed -n 's/.*"keys_base64":\["\([^"]*\)".*/\1/p' "$v/init.json.tmp" >"$v/unseal-key.tmp"
      sed -n 's/.*"root_token":"\([^"]*\)".*/\1/p' "$v/init.json.tmp" >"$v/root-token.tmp"
      rm -f "$v/init.json.tmp"
      [ -s "$v/unseal-key.tmp" ] && [ -s "$v/root-token.tmp" ] || die "vault: initialisation returned no key"
      chmod 600 "$v/unseal-key.tmp" "$v/root-token.tmp"
      mv "$v/unseal-key.tmp" "$v/unseal-key"; mv "$v/root-token.tmp" "$v/root-token"
      log "vault initialised (unseal key and root token in $v, mode 0600)"
      ;;
  esac
  [ -s "$v/unseal-key" ] || die "vault: no unseal key in $v/unseal-key"
  # The key goes to curl on stdin, not on its command line.
  printf '{"key":"%s"}' "$(cat "$v/unseal-key")" |
    vault_api PUT sys/unseal --data-binary @- | grep -q '"sealed":false' || die "vault: unseal failed"
}

# vault_mounts: Transit, userpass and the file audit device, each enabled
# unless it already is (they persist with Vault's storage).
vault_mounts() {
  # Each list is read whole first: `vault ... list | grep -q` under
  # pipefail fails when grep's early exit cuts vault's output short.
  local secrets auths audits
  secrets=$(vault secrets list)
  auths=$(vault auth list)
  grep -q '^transit/' <<<"$secrets" || vault secrets enable transit >/dev/null
  grep -q '^userpass/' <<<"$auths" || vault auth enable userpass >/dev/null
  audits=$(vault audit list 2>/dev/null || true)
  grep -q '^file/' <<<"$audits" ||
    vault audit enable file file_path="$STACK/vault/audit.log" >/dev/null
  chmod 600 "$STACK/vault/audit.log" 2>/dev/null || true
}

start_vault() {
  if alive vault; then
    [ -s "$STACK/vault/root-token" ] ||
      die "vault: the running Vault (pid $(cat "$STACK/vault.pid")) was started by an older stack.sh in dev mode; run '$0 down' first"
    return 0
  fi
  need vault; load_secrets
  local port v=$STACK/vault
  # Vault takes the port after its API port for cluster traffic.
  port=$(reuse_port "$STACK/vault.port" 2) || die "vault: no free port"
  mkdir -p "$v/data"
  # File storage in the state dir: Transit keys survive a restart. TLS is
  # off on loopback only; mlock is off because the stack runs unprivileged.
  cat >"$v/config.hcl" <<HCL
storage "file" {
  path = "$v/data"
}
listener "tcp" {
  address         = "127.0.0.1:$port"
  cluster_address = "127.0.0.1:$((port + 1))"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:$port"
cluster_addr  = "http://127.0.0.1:$((port + 1))"
disable_mlock = true
ui            = false
log_level     = "warn"
HCL
  spawn vault vault server -config="$v/config.hcl"
  wait_http "http://127.0.0.1:$port/v1/sys/health?uninitcode=200&sealedcode=200&standbyok=true" 60 vault ||
    die "vault failed to start"
  vault_unseal
  wait_http "http://127.0.0.1:$port/v1/sys/health" 60 vault || die "vault did not become active after unsealing"
  export VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN
  VAULT_TOKEN=$(cat "$v/root-token")
  vault_mounts
  log "vault up on 127.0.0.1:$port (transit, userpass, file audit)"
}

write_env() {
  load_secrets
  local eps=() n
  for n in $(seq 1 $NSERVERS); do eps+=("127.0.0.1:$(cat "$STACK/$(server_name "$n").port")"); done
  local tmp=$ENVFILE.tmp
  {
    echo "# written by scripts/stack.sh; secrets: keep mode 0600"
    echo "export DOZO_STACK_DIR='$STACK'"
    echo "export DOZO_DEV_S3_ENDPOINTS='$(IFS=,; echo "${eps[*]}")'"
    echo "export DOZO_DEV_S3_BUCKETS='$(IFS=,; echo "${BUCKETS[*]}")'"
    echo "export DOZO_DEV_S3_KINDS='$(IFS=,; echo "${KINDS[*]}")'"
    echo "export DOZO_DEV_S3_ACCESS_KEY='$S3_ACCESS_KEY'"
    echo "export DOZO_DEV_S3_SECRET_KEY='$S3_SECRET_KEY'"
    echo "export VAULT_ADDR='http://127.0.0.1:$(cat "$STACK/vault.port")'"
    echo "export VAULT_TOKEN='$(cat "$STACK/vault/root-token")'"
  } >"$tmp"
  chmod 600 "$tmp"; mv "$tmp" "$ENVFILE"
}

status() {
  local ok=0 n name
  for n in $(seq 1 $NSERVERS); do
    name=$(server_name "$n")
    if alive "$name"; then echo "$name: running pid $(cat "$STACK/$name.pid") 127.0.0.1:$(cat "$STACK/$name.port")"
    else echo "$name: stopped"; ok=1; fi
  done
  if alive vault; then echo "vault: running pid $(cat "$STACK/vault.pid") 127.0.0.1:$(cat "$STACK/vault.port")"
  else echo "vault: stopped"; ok=1; fi
  [ -f "$ENVFILE" ] && echo "env: $ENVFILE"
  return $ok
}

case "${1:-}" in
  up)
    need curl; need perl
    mkdir -p "$STACK"; chmod 700 "$STACK"
    # Vault first: an error there (it cannot be unsealed) is reported first.
    start_vault
    for n in $(seq 1 $NSERVERS); do start_s3 "$n"; done
    write_env
    log "env written to $ENVFILE"
    ;;
  down)
    for n in $(seq 1 $NSERVERS); do stop "$(server_name "$n")"; done
    stop minio3 # left running by a stack.sh that ran three MinIO servers
    stop vault
    ;;
  status) status ;;
  env) echo "$ENVFILE" ;;
  stop-s3|stop-minio)
    [[ "${2:-}" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le $NSERVERS ] || die "usage: $0 $1 1..$NSERVERS"
    stop "$(server_name "$2")" ;;
  start-s3|start-minio)
    [[ "${2:-}" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le $NSERVERS ] || die "usage: $0 $1 1..$NSERVERS"
    need curl; need perl; start_s3 "$2" ;;
  stop-vault) stop vault ;;
  start-vault) need curl; need perl; start_vault ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
