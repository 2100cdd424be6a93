#!/usr/bin/env bash
# ldap.sh — a private OpenLDAP directory for the local stack: Debian's slapd,
# run from a state directory on a loopback port, never the system service.
#
#   scripts/ldap.sh up       start it (idempotent); create the directory once
#   scripts/ldap.sh down     stop it (by pid)
#   scripts/ldap.sh status   print state; exit 1 unless it answers
#
# State lives in $DOZO_LDAP_DIR (default $DOZO_DEV_DIR/ldap, or
# <repo>/.dozo-dev/ldap). `up` writes $DOZO_LDAP_DIR/env (mode 0600) with
# LDAP_URL, LDAP_BASE_DN, LDAP_BIND_DN/LDAP_BIND_PASSWORD (the directory
# manager), LDAP_VAULT_BIND_DN/_PASSWORD (the read-only account Vault
# searches with) and the three users and their passwords. The directory:
#
#   dc=dozo,dc=test
#     ou=people   uid=lena (admin), uid=sven (submitter), uid=ruth (researcher)
#     ou=groups   cn=dozo-admins {lena}, cn=dozo-submitters {sven}  (groupOfNames)
#
# Passwords are random per state dir, stored hashed (slappasswd) in the
# directory and in clear only in the 0600 env and secret files.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DIR=${DOZO_LDAP_DIR:-${DOZO_DEV_DIR:-$root/.dozo-dev}/ldap}
umask 077
mkdir -p "$DIR"; chmod 700 "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/slapd.conf
PIDFILE=$DIR/slapd.pid
BASE=dc=dozo,dc=test
MANAGER=cn=admin,$BASE
# The directory's people: login name and role.
PEOPLE=(lena:admin sven:submitter ruth:researcher)

log() { printf 'ldap: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# shellcheck source=ports.sh
. "$here/ports.sh"
secret() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-24}"; }

SLAPD=${SLAPD:-/usr/sbin/slapd}
for p in "$SLAPD" /usr/sbin/slapadd /usr/sbin/slappasswd; do
  [ -x "$p" ] || die "$p not found: run scripts/tools.sh ldap (installs Debian's slapd and ldap-utils)"
done

# slapd_alive: the recorded pid is a slapd started with this state dir's
# config.
slapd_alive() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [[ "$pid" =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$CONF"
}

# secrets: the manager's and the users' passwords, made once.
secrets() {
  [ -s "$DIR/manager.password" ] || secret 24 >"$DIR/manager.password"
  [ -s "$DIR/vault.password" ] || secret 24 >"$DIR/vault.password"
  if [ ! -s "$DIR/users" ]; then
    local e
    for e in "${PEOPLE[@]}"; do echo "${e%%:*} ${e#*:} $(secret 24)"; done >"$DIR/users.tmp"
    mv "$DIR/users.tmp" "$DIR/users"
  fi
  chmod 600 "$DIR/manager.password" "$DIR/vault.password" "$DIR/users"
}

user_field() { awk -v r="$1" -v f="$2" '$2 == r { print $f }' "$DIR/users"; }

write_conf() {
  local hash
  hash=$(/usr/sbin/slappasswd -T "$DIR/manager.password")
  cat >"$CONF.tmp" <<EOF
# written by scripts/ldap.sh
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $PIDFILE
argsfile $DIR/slapd.args
loglevel none
# Anonymous users may bind (to authenticate) and nothing else; the
# manager (rootdn) may do anything; a user may read their own entry.
access to attrs=userPassword
  by anonymous auth
  by self read
  by * none
access to *
  by users read
  by * none

database mdb
suffix "$BASE"
rootdn "$MANAGER"
rootpw $hash
directory $DIR/data
maxsize 104857600
index objectClass eq
index uid,member eq
EOF
  chmod 600 "$CONF.tmp"; mv "$CONF.tmp" "$CONF"
}

# load: the initial directory, added offline with slapadd into an empty
# database.
load() {
  local u role pw ldif=$DIR/init.ldif
  mkdir -p "$DIR/data"; chmod 700 "$DIR/data"
  {
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: dozo\no: dozo test centre\n\n' "$BASE"
    # Vault's search account: it may read the directory, nothing more.
    printf 'dn: cn=vault,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: vault\nuserPassword: %s\n\n' \
      "$BASE" "$(/usr/sbin/slappasswd -T "$DIR/vault.password")"
    printf 'dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n' "$BASE"
    printf 'dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n\n' "$BASE"
    while read -r u role pw; do
      printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n\n' \
        "$u" "$BASE" "$u" "$u" "$role" "$(printf '%s' "$pw" | /usr/sbin/slappasswd -T /dev/stdin)"
    done <"$DIR/users"
    printf 'dn: cn=dozo-admins,ou=groups,%s\nobjectClass: groupOfNames\ncn: dozo-admins\nmember: uid=%s,ou=people,%s\n\n' \
      "$BASE" "$(user_field admin 1)" "$BASE"
    printf 'dn: cn=dozo-submitters,ou=groups,%s\nobjectClass: groupOfNames\ncn: dozo-submitters\nmember: uid=%s,ou=people,%s\n\n' \
      "$BASE" "$(user_field submitter 1)" "$BASE"
  } >"$ldif"
  /usr/sbin/slapadd -q -f "$CONF" -l "$ldif" || die "slapadd failed"
  rm -f "$ldif"
  log "created directory $BASE in $DIR/data"
}

answers() {
  ldapsearch -x -LLL -H "ldap://127.0.0.1:$1" -D "$MANAGER" -y "$DIR/manager.password" \
    -b "$BASE" -s base dn >/dev/null 2>&1
}

write_env() {
  local port=$1
  {
    echo "# written by scripts/ldap.sh; secrets: keep mode 0600"
    echo "LDAP_URL='ldap://127.0.0.1:$port'"
    echo "LDAP_BASE_DN='$BASE'"
    echo "LDAP_BIND_DN='$MANAGER'"
    echo "LDAP_BIND_PASSWORD='$(cat "$DIR/manager.password")'"
    echo "LDAP_VAULT_BIND_DN='cn=vault,$BASE'"
    echo "LDAP_VAULT_BIND_PASSWORD='$(cat "$DIR/vault.password")'"
    for role in admin submitter researcher; do
      local R=${role^^}
      echo "LDAP_$R='$(user_field "$role" 1)'"
      echo "LDAP_${R}_PASSWORD='$(user_field "$role" 3)'"
    done
  } >"$DIR/env.tmp"
  chmod 600 "$DIR/env.tmp"; mv "$DIR/env.tmp" "$DIR/env"
}

up() {
  command -v ldapsearch >/dev/null || die "ldapsearch not found: run scripts/tools.sh ldap"
  secrets
  [ -f "$CONF" ] || write_conf
  [ -f "$DIR/data/data.mdb" ] || load
  local port i
  if slapd_alive && [ -f "$DIR/port" ]; then
    port=$(cat "$DIR/port")
  else
    port=$(reuse_port "$DIR/port") || die "no free port"
    "$SLAPD" -f "$CONF" -h "ldap://127.0.0.1:$port/" || die "slapd did not start"
    for ((i = 0; i < 100; i++)); do slapd_alive && break; sleep 0.1; done
    slapd_alive || die "slapd did not start (no pid in $PIDFILE)"
    log "started slapd (pid $(cat "$PIDFILE")) on ldap://127.0.0.1:$port"
  fi
  for ((i = 0; i < 100; i++)); do answers "$port" && break; sleep 0.1; done
  answers "$port" || die "slapd does not answer on ldap://127.0.0.1:$port"
  write_env "$port"
}

down() {
  local pid
  if slapd_alive; then
    pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
    log "stopped slapd (pid $pid)"
  fi
  rm -f "$PIDFILE"
}

status() {
  if slapd_alive && answers "$(cat "$DIR/port")"; then
    echo "ldap: running pid $(cat "$PIDFILE") ldap://127.0.0.1:$(cat "$DIR/port")"
  else
    echo "ldap: stopped"; return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
