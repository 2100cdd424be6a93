#!/usr/bin/env bash
# oidc.sh — a private OpenID Provider on 127.0.0.1 for the dev stack and the
# integration tests (dozo-oidc-provider: zitadel's OpenID Provider with its
# example login pages; built by scripts/tools.sh oidc-provider).
#
#   scripts/oidc.sh up [USER...]   start it if not running (idempotent); the
#                                  users (default: admin sam rita) get random
#                                  passwords, kept across runs, never printed
#   scripts/oidc.sh down           stop it (by pid)
#   scripts/oidc.sh status         print state; exit 1 unless it answers
#   scripts/oidc.sh env            print the env file path
#
# State lives in $DOZO_OIDC_DIR (default $DOZO_DEV_DIR/oidc, or
# <repo>/.dozo-dev/oidc). `up` writes its env file (mode 0600): OIDC_ISSUER,
# the client Vault uses (OIDC_VAULT_CLIENT_ID, OIDC_VAULT_SECRET_FILE), the
# client the dozo CLI uses for the device grant (OIDC_DEVICE_CLIENT_ID,
# OIDC_DEVICE_SECRET_FILE) and OIDC_USERS (a file of "name password" lines).
# A user's OIDC subject ("sub") is their name.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DIR=${DOZO_OIDC_DIR:-${DOZO_DEV_DIR:-$root/.dozo-dev}/oidc}
mkdir -p "$DIR"; chmod 700 "$DIR"
DIR=$(cd "$DIR" && pwd)
ENVFILE=$DIR/env
PROVIDER=dozo-oidc-provider

export PATH="$("$here/tools.sh" path):$PATH"
umask 077

log() { printf 'oidc: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# shellcheck source=ports.sh
. "$here/ports.sh"
secret() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-32}"; }

# alive: the recorded pid is the provider started in this state dir.
alive() {
  local pid
  [ -f "$DIR/provider.pid" ] || return 1
  pid=$(cat "$DIR/provider.pid")
  [ -d "/proc/$pid" ] || return 1
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$DIR" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$PROVIDER"
}

issuer() { echo "http://127.0.0.1:$(cat "$DIR/port")/"; }

answers() { curl -fsS -o /dev/null --max-time 2 "$(issuer).well-known/openid-configuration" 2>/dev/null; }

# write_users USER...: keep the passwords of known users, add the others;
# the provider's users file is JSON derived from it.
write_users() {
  local u p
  touch "$DIR/users"
  for u in "$@"; do
    [[ "$u" =~ ^[a-z0-9][a-z0-9._-]{0,63}$ ]] || die "bad user name $u"
    awk -v u="$u" '$1 == u { f = 1 } END { exit !f }' "$DIR/users" || echo "$u $(secret 24)" >>"$DIR/users"
  done
  {
    echo "{"
    local first=1
    while read -r u p; do
      [ $first = 1 ] || echo ","
      first=0
      printf '  "%s": {"ID": "%s", "Username": "%s", "Password": "%s", "FirstName": "%s", "LastName": "Dev", "Email": "%s@dozo.test", "EmailVerified": true, "PreferredLanguage": "en"}' \
        "$u" "$u" "$u" "$p" "$u" "$u"
    done <"$DIR/users"
    echo
    echo "}"
  } >"$DIR/users.json.tmp"
  if cmp -s "$DIR/users.json.tmp" "$DIR/users.json" 2>/dev/null; then rm -f "$DIR/users.json.tmp"; return 1; fi
  mv "$DIR/users.json.tmp" "$DIR/users.json"
}

stop() {
  local pid
  if alive; then
    pid=$(cat "$DIR/provider.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
    log "stopped the OpenID Provider (pid $pid)"
  fi
  rm -f "$DIR/provider.pid"
}

up() {
  command -v curl >/dev/null || die "curl not found"
  "$here/tools.sh" oidc-provider # our own source: rebuilt when it changed
  local s
  for s in vault-secret device-secret; do
    [ -s "$DIR/$s" ] || printf '%s' "$(secret 32)" >"$DIR/$s"
  done
  if [ $# -eq 0 ]; then set -- admin sam rita; fi
  if write_users "$@"; then stop; fi # the provider reads its users at start
  if ! alive; then
    local port
    port=$(reuse_port "$DIR/port") || die "no free port"
    # Only the provider goes to the background, so $! is its pid.
    (cd "$DIR" || exit 1
      OIDC_LISTEN=127.0.0.1:$port OIDC_USERS_FILE=$DIR/users.json \
        OIDC_VAULT_CLIENT_ID=vault OIDC_VAULT_SECRET_FILE=$DIR/vault-secret \
        OIDC_DEVICE_CLIENT_ID=dozo OIDC_DEVICE_SECRET_FILE=$DIR/device-secret \
        setsid nohup "$PROVIDER" >>"$DIR/provider.log" 2>&1 </dev/null &
      echo $! >"$DIR/provider.pid")
    local i
    for ((i = 0; i < 100; i++)); do answers && break; alive || break; sleep 0.1; done
    answers || { tail -20 "$DIR/provider.log" >&2; die "the OpenID Provider did not start"; }
    log "OpenID Provider (pid $(cat "$DIR/provider.pid")) at $(issuer)"
  fi
  {
    echo "# written by scripts/oidc.sh; keep mode 0600"
    echo "export OIDC_ISSUER='$(issuer)'"
    echo "export OIDC_VAULT_CLIENT_ID='vault'"
    echo "export OIDC_VAULT_SECRET_FILE='$DIR/vault-secret'"
    echo "export OIDC_DEVICE_CLIENT_ID='dozo'"
    echo "export OIDC_DEVICE_SECRET_FILE='$DIR/device-secret'"
    echo "export OIDC_USERS='$DIR/users'"
  } >"$ENVFILE.tmp"
  mv "$ENVFILE.tmp" "$ENVFILE"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) stop ;;
  status)
    if alive && answers; then echo "oidc: running pid $(cat "$DIR/provider.pid") $(issuer)"
    else echo "oidc: stopped"; exit 1; fi ;;
  env) echo "$ENVFILE" ;;
  *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
