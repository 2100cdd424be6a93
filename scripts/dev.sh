#!/usr/bin/env bash
# dev.sh — a complete local dozo: the storage + key stack (scripts/stack.sh:
# two MinIO servers and versitygw, Vault) plus dozod over TLS on 127.0.0.1.
#
#   scripts/dev.sh up       start what is not running (idempotent)
#   scripts/dev.sh down     stop dozod (by pid), then the stack
#   scripts/dev.sh status   print state; exit 1 unless all is up
#   scripts/dev.sh env      print the env file path
#
# State lives in $DOZO_DEV_DIR (default <repo>/.dozo-dev); the stack in
# $DOZO_DEV_DIR/stack. `up` writes $DOZO_DEV_DIR/env (mode 0600): source it
# for DOZO_BROKER, DOZO_CA_CERT, the dev users and their passwords, the S3
# endpoints and keys, VAULT_ADDR and VAULT_TOKEN (the stack's root token),
# and the LDAP directory (scripts/ldap.sh, in $DOZO_DEV_DIR/ldap): its URL,
# base DN, manager bind and its three users (DOZO_DEV_LDAP_*).
# Passwords are random per dev dir, kept across runs, and never printed.
#
# DOZO_DEV_REPLICAS=2 runs two dozods on one PostgreSQL catalog (a private
# cluster, scripts/postgres.sh, in DOZO_DEV_POSTGRES_DIR, by default one
# under /var/tmp named after the dev dir), each on its own port; DOZO_BROKER
# then names both, comma-separated. The default is one dozod on SQLite.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DEV=${DOZO_DEV_DIR:-$root/.dozo-dev}
mkdir -p "$DEV"; chmod 700 "$DEV"
DEV=$(cd "$DEV" && pwd)
export DOZO_STACK_DIR=$DEV/stack
export DOZO_LDAP_DIR=$DEV/ldap
DOZOD=${DOZOD_BIN:-$root/bin/dozod}
REPLICAS=${DOZO_DEV_REPLICAS:-1}
case "$REPLICAS" in 1 | 2) ;; *) echo "dev: DOZO_DEV_REPLICAS must be 1 or 2, not $REPLICAS" >&2; exit 2 ;; esac
PGDIR=${DOZO_DEV_POSTGRES_DIR:-/var/tmp/dozo-dev-postgres-$(printf %s "$DEV" | cksum | cut -d' ' -f1)}
ENVFILE=$DEV/env
USERS=(admin sam rita) # admin, submitter, researcher

export PATH="$("$here/tools.sh" path):$PATH"
umask 077

log() { printf 'dev: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# shellcheck source=ports.sh
. "$here/ports.sh"
secret() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-24}"; }

# Replica i's files are $DEV/dozod$(sfx i).{toml,pid,port,log}: the first
# keeps the plain names.
sfx() { [ "$1" = 1 ] || echo "$1"; }
conf() { echo "$DEV/dozod$(sfx "$1").toml"; }

# dozod_alive [i]: replica i's recorded pid runs dozod with its config,
# or is the process start_dozod forked for it and has not exec'd dozod
# yet (its working directory is the replica's run directory).
dozod_alive() {
  local i=${1:-1} pid f
  f=$DEV/dozod$(sfx "$i").pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(conf "$i")" && return 0
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$DEV/run$(sfx "$i")" ]
}

# dozod_stale [i]: replica i runs (has exec'd) a dozod binary other than
# the one now at $DOZOD: it was rebuilt or replaced since, so the running
# process serves old code until it is restarted.
dozod_stale() {
  local i=${1:-1} pid
  pid=$(cat "$DEV/dozod$(sfx "$i").pid" 2>/dev/null) || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(conf "$i")" || return 1 # not exec'd yet
  [ "$(stat -L -c %d:%i "/proc/$pid/exe" 2>/dev/null)" != "$(stat -L -c %d:%i "$DOZOD" 2>/dev/null)" ]
}

# start_dozod i: start replica i in a session of its own. It is forked
# from a subshell already in its run directory, so dozod_alive knows it
# from its first instant: until it has exec'd dozod (which a loaded
# machine can delay for a long while) it would look like this script, and
# wait_health would give up on a dozod that was only slow to start.
start_dozod() {
  local i=$1 f=$DEV/dozod$(sfx "$1")
  mkdir -p "$DEV/run$(sfx "$i")"
  (cd "$DEV/run$(sfx "$i")" || exit 1
    PGPASSFILE=$DEV/pgpass setsid nohup "$DOZOD" serve --config "$(conf "$i")" >>"$f.log" 2>&1 </dev/null &
    echo $! >"$f.pid")
}

# stop_dozod [i]: stop replica i, or every replica.
stop_dozod() {
  local i pid
  for i in ${1:-1 2}; do
    if dozod_alive "$i"; then
      pid=$(cat "$DEV/dozod$(sfx "$i").pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
      log "stopped dozod$(sfx "$i") (pid $pid)"
    fi
    rm -f "$DEV/dozod$(sfx "$i").pid"
  done
}

# postgres_setup: the replicas' catalog, a private PostgreSQL cluster, and
# $DEV/pgpass (0600) with its password, so no URL carries it. Sets
# CATALOG.
postgres_setup() {
  DOZO_POSTGRES_DIR=$PGDIR "$here/postgres.sh" up >"$DEV/postgres-up.log" 2>&1 || { cat "$DEV/postgres-up.log" >&2; die "postgres.sh up failed"; }
  local port
  port=$(cat "$PGDIR/port")
  printf '127.0.0.1:%s:dozo:dozo:%s\n' "$port" "$(cat "$PGDIR/password")" >"$DEV/pgpass"
  chmod 600 "$DEV/pgpass"
  CATALOG="postgres://dozo@127.0.0.1:$port/dozo?sslmode=disable"
}

# vault_setup: dozod's policy and token, and the dev users, re-applied on
# every `up` (each step is idempotent). Vault keeps its data in the stack
# dir across restarts; a token that no longer works means that data is gone
# (the stack dir was wiped) and with it the Transit keys, which makes the
# old catalog useless: it is moved aside.
vault_setup() {
  vault policy write dozod - >/dev/null <<'POLICY'
# dozod: Transit on dataset keys only (dozo-ds-*). Users' own tokens get
# nothing on Transit; only dozod wraps and unwraps.
path "transit/keys/dozo-ds-*"         { capabilities = ["create", "read", "update", "delete"] }
path "transit/keys/dozo-ds-*/rotate"  { capabilities = ["update"] }
path "transit/keys/dozo-ds-*/config"  { capabilities = ["update"] }
path "transit/encrypt/dozo-ds-*"      { capabilities = ["update"] }
path "transit/decrypt/dozo-ds-*"      { capabilities = ["update"] }
path "transit/rewrap/dozo-ds-*"       { capabilities = ["update"] }
path "transit/hmac/dozo-ds-*"         { capabilities = ["update"] }
path "transit/verify/dozo-ds-*"       { capabilities = ["update"] }
# The audit anchor key: created and read (checked non-exportable), MAC and
# verify only; never deleted, configured or exported.
path "transit/keys/dozo-audit"        { capabilities = ["create", "read", "update"] }
path "transit/hmac/dozo-audit/*"      { capabilities = ["update"] }
path "transit/verify/dozo-audit/*"    { capabilities = ["update"] }
# Roles from identity groups: the groups named in [auth] admin_groups and
# submitter_groups, read by name to learn their ids.
path "identity/group/name/dozo-admins"     { capabilities = ["read"] }
path "identity/group/name/dozo-submitters" { capabilities = ["read"] }
# Telling a disabled identity from a bad token: Vault refuses every use of
# a disabled entity's token, so dozod looks the token up itself and reads
# the entity's disabled flag.
path "auth/token/lookup"              { capabilities = ["update"] }
path "identity/entity/id/*"           { capabilities = ["read"] }
POLICY
  if [ -s "$DEV/dozod.token" ] && VAULT_TOKEN=$(cat "$DEV/dozod.token") vault token lookup >/dev/null 2>&1; then
    :
  else
    if [ -s "$DEV/dozod.token" ] && [ -f "$PGDIR/port" ]; then
      local pgaside=$PGDIR.stale-$(date +%s)
      log "vault was restarted (dozod's token is gone): moving the old PostgreSQL catalog to $pgaside"
      stop_dozod
      DOZO_POSTGRES_DIR=$PGDIR "$here/postgres.sh" down || true
      mv "$PGDIR" "$pgaside"
    fi
    if [ -s "$DEV/dozod.token" ] && [ -f "$DEV/dozo.db" ]; then
      local aside=$DEV/dozo.db.stale-$(date +%s)
      log "vault was restarted (dozod's token is gone): moving the old catalog to $aside"
      stop_dozod
      mv "$DEV/dozo.db" "$aside"; rm -f "$DEV/dozo.db-wal" "$DEV/dozo.db-shm"
    fi
    vault token create -orphan -policy=dozod -period=24h -display-name=dozod -field=token >"$DEV/dozod.token.tmp"
    chmod 600 "$DEV/dozod.token.tmp"; mv "$DEV/dozod.token.tmp" "$DEV/dozod.token"
    log "created dozod's vault token (policy dozod, periodic 24h)"
  fi
  [ -f "$DEV/users" ] || {
    for u in "${USERS[@]}"; do echo "$u $(secret 24)"; done >"$DEV/users"
    chmod 600 "$DEV/users"
  }
  local u p
  while read -r u p; do
    vault write "auth/userpass/users/$u" password="$p" token_policies=default token_ttl=8h >/dev/null
  done <"$DEV/users"
}

# ldap_setup: the private directory (scripts/ldap.sh) and Vault's LDAP
# auth method against it, with an external identity group for each of the
# directory's dozo groups, re-applied on every `up`. Vault refreshes an
# LDAP user's external group memberships at each login and token renewal.
ldap_setup() {
  "$here/ldap.sh" up >"$DEV/ldap-up.log" 2>&1 || { cat "$DEV/ldap-up.log" >&2; die "ldap.sh up failed"; }
  # shellcheck disable=SC1091
  . "$DOZO_LDAP_DIR/env"
  # The list is read whole first: `vault auth list | grep -q` under
  # pipefail fails when grep's early exit cuts vault's output short.
  local mounts
  mounts=$(vault auth list)
  grep -q '^ldap/' <<<"$mounts" || vault auth enable ldap >/dev/null
  vault write auth/ldap/config url="$LDAP_URL" \
    binddn="$LDAP_VAULT_BIND_DN" bindpass="$LDAP_VAULT_BIND_PASSWORD" \
    userdn="ou=people,$LDAP_BASE_DN" userattr=uid \
    groupdn="ou=groups,$LDAP_BASE_DN" groupattr=cn \
    groupfilter='(&(objectClass=groupOfNames)(member={{.UserDN}}))' \
    token_policies=default token_ttl=8h >/dev/null
  local acc g id
  acc=$(vault auth list -format=json | jq -r '."ldap/".accessor')
  for g in dozo-admins dozo-submitters; do
    id=$(vault read -field=id "identity/group/name/$g" 2>/dev/null) ||
      id=$(vault write -field=id identity/group name="$g" type=external)
    vault read -format=json "identity/group/id/$id" | jq -e --arg a "$acc" '.data.alias.mount_accessor == $a' >/dev/null ||
      vault write identity/group-alias name="$g" mount_accessor="$acc" canonical_id="$id" >/dev/null
  done
}

# oidc_setup: a private OpenID Provider (scripts/oidc.sh, the dev users
# with passwords of their own) and Vault's OIDC login against it, re-applied
# on every `up`. Two mounts, both trusting the provider:
#   oidc  Vault's OIDC auth method: `dozo login --method oidc` in a browser
#         (Vault is the provider's confidential client "vault")
#   jwt   Vault's JWT auth method: `dozo login --method oidc --device`, which
#         gets an ID token by the device flow (client "dozo") and logs in
#         with it
# A user's name on both is the ID token's "sub", which this provider sets
# to the user's name (dozod names a user by the entity alias on the login's
# mount, so it must equal the userpass name for the same person).
oidc_setup() {
  DOZO_OIDC_DIR=$DEV/oidc "$here/oidc.sh" up "${USERS[@]}" >"$DEV/oidc-up.log" 2>&1 || { cat "$DEV/oidc-up.log" >&2; die "oidc.sh up failed"; }
  # shellcheck disable=SC1091
  . "$DEV/oidc/env"
  # The list is read whole first: `vault auth list | grep -q` under
  # pipefail fails when grep's early exit cuts vault's output short.
  local mounts
  mounts=$(vault auth list)
  grep -q '^oidc/' <<<"$mounts" || vault auth enable oidc >/dev/null
  grep -q '^jwt/' <<<"$mounts" || vault auth enable jwt >/dev/null
  vault write auth/oidc/config oidc_discovery_url="$OIDC_ISSUER" oidc_client_id="$OIDC_VAULT_CLIENT_ID" \
    oidc_client_secret=@"$OIDC_VAULT_SECRET_FILE" default_role=default >/dev/null
  vault write auth/oidc/role/default role_type=oidc user_claim=sub oidc_scopes=openid,profile \
    allowed_redirect_uris=http://localhost:8250/oidc/callback,http://127.0.0.1:8250/oidc/callback,https://127.0.0.1/ui/login/oidc/callback,https://localhost/ui/login/oidc/callback \
    token_policies=default token_ttl=8h >/dev/null
  vault write auth/jwt/config oidc_discovery_url="$OIDC_ISSUER" bound_issuer="$OIDC_ISSUER" default_role=default >/dev/null
  vault write auth/jwt/role/default role_type=jwt user_claim=sub bound_audiences="$OIDC_DEVICE_CLIENT_ID" \
    token_policies=default token_ttl=8h >/dev/null
  link_logins
}

# link_logins: each dev user's userpass, oidc and jwt logins are one Vault
# entity, as a centre's operators link one person's aliases
# (docs/identity.md). Unlinked, a browser login as rita would be another
# person named rita, and dozod would bind new grants for "rita" to
# whichever of the two logged in last.
link_logins() {
  local auths u id other acc mount
  auths=$(vault auth list -format=json)
  for u in "${USERS[@]}"; do
    id=
    for mount in userpass oidc jwt; do
      acc=$(jq -r --arg m "$mount/" '.[$m].accessor' <<<"$auths")
      other=$(vault write -field=id identity/lookup/entity alias_name="$u" alias_mount_accessor="$acc" 2>/dev/null || true)
      if [ -z "$id" ]; then
        id=$other
        [ -n "$id" ] || id=$(vault read -field=id "identity/entity/name/dozo-dev-$u" 2>/dev/null) ||
          id=$(vault write -field=id identity/entity name="dozo-dev-$u")
      fi
      if [ -z "$other" ]; then
        vault write identity/entity-alias name="$u" canonical_id="$id" mount_accessor="$acc" >/dev/null
      elif [ "$other" != "$id" ]; then
        vault write identity/entity/merge to_entity_id="$id" from_entity_ids="$other" force=true >/dev/null
      fi
    done
  done
}

password() { awk -v u="$1" '$1 == u { print $2 }' "$DEV/users"; }

# write_config i port: writes replica i's config; returns 0 if it changed.
write_config() {
  local port=$2 CONF tmp n=0 ep srv b
  CONF=$(conf "$1"); tmp=$CONF.tmp
  # Replaced whole, never truncated in place: a dozod started for the
  # previous replica may be reading it.
  (umask 077 && printf '%s\n' "$DOZO_DEV_S3_SECRET_KEY" >"$DEV/s3-secret.tmp") && mv -f "$DEV/s3-secret.tmp" "$DEV/s3-secret"
  {
    echo "# written by scripts/dev.sh"
    echo "listen = \"127.0.0.1:$port\""
    echo "tls_cert = \"$DEV/tls/cert.pem\""
    echo "tls_key = \"$DEV/tls/key.pem\""
    echo "catalog = \"$CATALOG\""
    echo "upload_expiry = \"24h\""
    echo "admins = [\"admin\"]"
    echo "submitters = [\"sam\"]"
    echo
    # A grace period of seconds, so tests and demos see a deletion run;
    # dozod's own default is 7 days.
    echo "[auth]"
    echo "mounts = [\"userpass\", \"ldap\", \"oidc\", \"jwt\"]"
    echo "admin_groups = [\"dozo-admins\"]"
    echo "submitter_groups = [\"dozo-submitters\"]"
    echo
    echo "[lifecycle]"
    echo "deletion_grace = \"${DOZO_DEV_DELETION_GRACE:-10s}\""
    echo
    echo "[vault]"
    echo "address = \"$VAULT_ADDR\""
    echo "token_file = \"$DEV/dozod.token\""
    echo "transit_mount = \"transit\""
    echo
    echo "# The test suite refuses hundreds of forged tokens from 127.0.0.1;"
    echo "# at a centre the defaults (60 at once, 60 a minute) apply."
    echo "[limits]"
    echo "refusal_burst = 5000"
    echo "refusals_per_minute = 10000"
    IFS=, read -ra eps <<<"$DOZO_DEV_S3_ENDPOINTS"
    for ep in "${eps[@]}"; do
      n=$((n + 1)); srv=s$n
      for b in a b; do
        echo
        echo "[[targets]]"
        echo "id = \"$srv-$b\""
        echo "domain = \"$srv\""
        echo "endpoint = \"http://$ep\""
        echo "bucket = \"dozo-$b\""
        echo "access_key = \"$DOZO_DEV_S3_ACCESS_KEY\""
        echo "secret_key_file = \"$DEV/s3-secret\""
      done
    done
  } >"$tmp"
  chmod 600 "$tmp"
  if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then rm -f "$tmp"; return 1; fi
  mv "$tmp" "$CONF"; return 0
}

wait_health() {
  local url=$1 r=${2:-1} i
  for ((i = 0; i < 300; i++)); do
    curl -fsS -o /dev/null --max-time 2 --cacert "$DEV/tls/cert.pem" "$url/v1/health" 2>/dev/null && return 0
    dozod_alive "$r" || break
    sleep 0.1
  done
  log "dozod$(sfx "$r") did not become healthy at $url; last log lines:"
  tail -20 "$DEV/dozod$(sfx "$r").log" >&2 || true
  return 1
}

write_env() {
  local url=$1 tmp=$ENVFILE.tmp
  {
    echo "# written by scripts/dev.sh; secrets: keep mode 0600"
    echo "export DOZO_DEV_DIR='$DEV'"
    echo "export DOZO_STACK_DIR='$DOZO_STACK_DIR'"
    echo "export DOZO_BROKER='$url'"
    echo "export DOZO_CA_CERT='$DEV/tls/cert.pem'"
    echo "export DOZO_DEV_ADMIN='admin'"
    echo "export DOZO_DEV_ADMIN_PASSWORD='$(password admin)'"
    echo "export DOZO_DEV_SUBMITTER='sam'"
    echo "export DOZO_DEV_SUBMITTER_PASSWORD='$(password sam)'"
    echo "export DOZO_DEV_RESEARCHER='rita'"
    echo "export DOZO_DEV_RESEARCHER_PASSWORD='$(password rita)'"
    echo "export DOZO_DEV_LDAP_URL='$LDAP_URL'"
    echo "export DOZO_DEV_LDAP_BASE_DN='$LDAP_BASE_DN'"
    echo "export DOZO_DEV_LDAP_BIND_DN='$LDAP_BIND_DN'"
    echo "export DOZO_DEV_LDAP_BIND_PASSWORD='$LDAP_BIND_PASSWORD'"
    echo "export DOZO_DEV_LDAP_ADMIN='$LDAP_ADMIN'"
    echo "export DOZO_DEV_LDAP_ADMIN_PASSWORD='$LDAP_ADMIN_PASSWORD'"
    echo "export DOZO_DEV_LDAP_SUBMITTER='$LDAP_SUBMITTER'"
    echo "export DOZO_DEV_LDAP_SUBMITTER_PASSWORD='$LDAP_SUBMITTER_PASSWORD'"
    echo "export DOZO_DEV_LDAP_RESEARCHER='$LDAP_RESEARCHER'"
    echo "export DOZO_DEV_LDAP_RESEARCHER_PASSWORD='$LDAP_RESEARCHER_PASSWORD'"
    echo "export DOZO_DEV_S3_ENDPOINTS='$DOZO_DEV_S3_ENDPOINTS'"
    echo "export DOZO_DEV_S3_BUCKETS='$DOZO_DEV_S3_BUCKETS'"
    echo "export DOZO_DEV_S3_KINDS='$DOZO_DEV_S3_KINDS'"
    echo "export DOZO_DEV_S3_ACCESS_KEY='$DOZO_DEV_S3_ACCESS_KEY'"
    echo "export DOZO_DEV_S3_SECRET_KEY='$DOZO_DEV_S3_SECRET_KEY'"
    echo "export DOZO_DEV_DOZOD_LOG='$DEV/dozod.log'"
    echo "export DOZO_DEV_OIDC_USERS='$DEV/oidc/users'"
    echo "export DOZO_OIDC_ISSUER='$OIDC_ISSUER'"
    echo "export DOZO_OIDC_CLIENT_ID='$OIDC_DEVICE_CLIENT_ID'"
    echo "export DOZO_OIDC_CLIENT_SECRET_FILE='$OIDC_DEVICE_SECRET_FILE'"
    echo "export VAULT_ADDR='$VAULT_ADDR'"
    echo "export VAULT_TOKEN='$VAULT_TOKEN'"
  } >"$tmp"
  chmod 600 "$tmp"
  if [ -f "$ENVFILE" ] && cmp -s "$tmp" "$ENVFILE"; then rm -f "$tmp"; else mv "$tmp" "$ENVFILE"; fi
}

up() {
  command -v curl >/dev/null || die "curl not found"
  command -v jq >/dev/null || die "jq not found"
  # stack.sh's output goes through a file: a server it starts in the
  # background may keep inherited descriptors open, which would make a
  # caller reading our output through a pipe wait for that server to exit.
  "$here/stack.sh" up >"$DEV/stack-up.log" 2>&1 || { cat "$DEV/stack-up.log" >&2; die "stack.sh up failed"; }
  cat "$DEV/stack-up.log" >&2
  # shellcheck disable=SC1091
  . "$DOZO_STACK_DIR/env"
  vault_setup
  ldap_setup
  oidc_setup
  CATALOG=$DEV/dozo.db
  [ "$REPLICAS" = 1 ] || postgres_setup
  # Without DOZOD_BIN, dozod is built from this tree on every `up` (the
  # build cache makes that quick when nothing changed) and only a changed
  # binary replaces the old one, so a dozod running an older build is
  # restarted below: `make demo` never runs stale code.
  if [ -z "${DOZOD_BIN:-}" ]; then
    (cd "$root" && go build -o "$DOZOD.new" ./cmd/dozod) || { rm -f "$DOZOD.new"; die "building dozod failed"; }
    if [ -x "$DOZOD" ] && cmp -s "$DOZOD.new" "$DOZOD"; then
      rm -f "$DOZOD.new"
    else
      mv -f "$DOZOD.new" "$DOZOD"
      log "built $DOZOD"
    fi
  elif [ ! -x "$DOZOD" ]; then
    log "building $DOZOD"
    (cd "$root" && go build -o "$DOZOD" ./cmd/dozod)
  fi
  [ -f "$DEV/tls/cert.pem" ] && [ -f "$DEV/tls/key.pem" ] ||
    "$DOZOD" gen-cert --dir "$DEV/tls" --host 127.0.0.1,localhost >/dev/null
  local i port f urls=()
  [ "$REPLICAS" = 2 ] || stop_dozod 2
  for ((i = 1; i <= REPLICAS; i++)); do
    f=$DEV/dozod$(sfx "$i")
    if [ -f "$f.port" ] && dozod_alive "$i"; then
      port=$(cat "$f.port")
    else
      port=$(reuse_port "$f.port") || die "dozod$(sfx "$i"): no free port"
    fi
    if write_config "$i" "$port"; then stop_dozod "$i"; fi
    if dozod_alive "$i" && dozod_stale "$i"; then
      log "dozod$(sfx "$i") runs an older build of $DOZOD: restarting it"
      stop_dozod "$i"
    fi
    if ! dozod_alive "$i"; then
      start_dozod "$i"
      log "started dozod$(sfx "$i") (pid $(cat "$f.pid")) on https://127.0.0.1:$port"
    fi
    urls+=("https://127.0.0.1:$port")
  done
  for ((i = 1; i <= REPLICAS; i++)); do
    wait_health "${urls[i - 1]}" "$i" || die "dozod$(sfx "$i") failed to start"
  done
  write_env "$(IFS=,; echo "${urls[*]}")"
  log "env written to $ENVFILE"
}

status() {
  local ok=0
  "$here/stack.sh" status || ok=1
  "$here/ldap.sh" status || ok=1
  DOZO_OIDC_DIR=$DEV/oidc "$here/oidc.sh" status || ok=1
  local i
  for ((i = 1; i <= REPLICAS; i++)); do
    if dozod_alive "$i"; then echo "dozod$(sfx "$i"): running pid $(cat "$DEV/dozod$(sfx "$i").pid") https://127.0.0.1:$(cat "$DEV/dozod$(sfx "$i").port")"
    else echo "dozod$(sfx "$i"): stopped"; ok=1; fi
  done
  [ -f "$ENVFILE" ] && echo "env: $ENVFILE"
  return $ok
}

case "${1:-}" in
  up) up ;;
  down)
    stop_dozod
    [ -f "$PGDIR/port" ] && { DOZO_POSTGRES_DIR=$PGDIR "$here/postgres.sh" down || true; }
    DOZO_OIDC_DIR=$DEV/oidc "$here/oidc.sh" down
    # stack.sh records the pid of a subshell that waits for Vault; should
    # Vault outlive that subshell, stop it too, by pid and only if it runs
    # in this stack's directory.
    orphans=()
    if [ -f "$DOZO_STACK_DIR/vault.pid" ]; then
      for c in $(pgrep -P "$(cat "$DOZO_STACK_DIR/vault.pid")" 2>/dev/null || true); do
        case "$(readlink "/proc/$c/cwd" 2>/dev/null)" in "$DOZO_STACK_DIR"/*) orphans+=("$c") ;; esac
      done
    fi
    "$here/ldap.sh" down
    "$here/stack.sh" down
    for c in "${orphans[@]}"; do
      [ -d "/proc/$c" ] || continue
      kill "$c" 2>/dev/null || true
      for _ in $(seq 1 50); do [ -d "/proc/$c" ] || break; sleep 0.1; done
      log "stopped vault (pid $c)"
    done
    ;;
  status) status ;;
  env) echo "$ENVFILE" ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
