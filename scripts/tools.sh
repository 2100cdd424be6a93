#!/usr/bin/env bash
# tools.sh — install the pinned external programs dozo's tests and local stack
# need (MinIO, versitygw, Vault, the reference age CLI) into a cache outside
# the repo, and PostgreSQL, OpenLDAP, fuse3, samtools, bcftools, htslib and
# Chromium from Debian's packages.
#
#   scripts/tools.sh [all|minio|versitygw|vault|age|oidc-provider|postgres|fuse|ldap|hts|chromium]
#                                  install (no-op when present)
#   scripts/tools.sh path          print the cache bin dir
#
# Programs already on PATH are used as they are. Builds are slow the first
# time on a machine (Vault ~25-30 min, MinIO ~7 min, versitygw a few minutes
# on 2 cores); afterwards this script returns in well under a second.
set -euo pipefail

MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
VERSITYGW_VERSION=${VERSITYGW_VERSION:-v1.8.0}
VAULT_VERSION=${VAULT_VERSION:-v1.21.0}
AGE_VERSION=${AGE_VERSION:-v1.3.2}

CACHE=${DOZO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dozo/tools}
BIN=$CACHE/bin
mkdir -p "$BIN"
export PATH=$BIN:$PATH

log() { printf 'tools: %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

install_minio() {
  if have minio; then return 0; fi
  log "building MinIO $MINIO_VERSION (about 7 minutes the first time)"
  GOBIN=$BIN CGO_ENABLED=0 go install "github.com/minio/minio@$MINIO_VERSION"
  log "minio installed at $BIN/minio"
}

# versitygw: an S3 gateway over a POSIX directory, the stack's second S3
# implementation beside MinIO.
install_versitygw() {
  if have versitygw; then return 0; fi
  log "building versitygw $VERSITYGW_VERSION"
  GOBIN=$BIN CGO_ENABLED=0 go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  log "versitygw installed at $BIN/versitygw"
}

install_age() {
  if have age && have age-keygen; then return 0; fi
  log "installing age CLI $AGE_VERSION"
  GOBIN=$BIN go install "filippo.io/age/cmd/...@$AGE_VERSION"
}

install_vault() {
  if have vault; then return 0; fi
  log "building Vault $VAULT_VERSION (about 25-30 minutes the first time)"
  # Vault's go.mod replaces its api/sdk modules with directories of its own
  # tree that the module zip does not carry, so `go install` refuses it. Build
  # a writable copy with those replaces dropped (v1.21.0's go.mod pins the
  # api/sdk versions matching its tree).
  local src work
  src=$(go mod download -json "github.com/hashicorp/vault@$VAULT_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$src" ] || { log "could not download the vault module"; return 1; }
  work=$CACHE/src/vault-$VAULT_VERSION
  rm -rf "$work"; mkdir -p "$(dirname "$work")"
  cp -r "$src" "$work"; chmod -R u+w "$work"
  (cd "$work" &&
    go mod edit -dropreplace github.com/hashicorp/vault/api \
      -dropreplace github.com/hashicorp/vault/api/auth/approle \
      -dropreplace github.com/hashicorp/vault/api/auth/kubernetes \
      -dropreplace github.com/hashicorp/vault/api/auth/userpass \
      -dropreplace github.com/hashicorp/vault/sdk &&
    GOFLAGS=-mod=mod go build -o "$BIN/vault.tmp" . &&
    mv "$BIN/vault.tmp" "$BIN/vault")
  rm -rf "$work"
  log "vault installed at $BIN/vault"
}

# dozo-oidc-provider: a real OpenID Provider (zitadel's OP library with its
# example login pages) for the dev stack's OIDC login; built from the small
# module in scripts/oidc-provider, its dependencies from the Go module proxy.
# It is our source, not a pinned release: the build is redone whenever the
# source differs from the one the cached binary was built from (a stamp of
# its hash beside it).
install_oidc_provider() {
  local src sum
  src=$(cd "$(dirname "$0")/oidc-provider" && pwd)
  sum=$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)
  if [ -x "$BIN/dozo-oidc-provider" ] && [ "$(cat "$BIN/dozo-oidc-provider.src" 2>/dev/null)" = "$sum" ]; then return 0; fi
  log "building dozo-oidc-provider (zitadel/oidc, a minute or two the first time)"
  (cd "$src" && go build -o "$BIN/dozo-oidc-provider.tmp" . &&
    mv "$BIN/dozo-oidc-provider.tmp" "$BIN/dozo-oidc-provider")
  echo "$sum" >"$BIN/dozo-oidc-provider.src"
  log "dozo-oidc-provider installed at $BIN/dozo-oidc-provider"
}

# apt_install PKG...: Debian's packages, for the programs that come from
# the system rather than the Go module proxy. apt-get update runs once per
# call of this script, and only when something is missing.
apt_updated=
apt_install() {
  if ! have apt-get; then
    log "no apt-get: install $* with your system's package manager"
    return 1
  fi
  local sudo=
  [ "$(id -u)" = 0 ] || sudo=sudo
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -q >&2
    apt_updated=1
  fi
  log "installing $* from Debian's packages"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

# PostgreSQL, for the catalog's PostgreSQL tests: scripts/postgres.sh runs
# a private cluster from its programs, never the system's cluster or
# service.
install_postgres() {
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || have initdb; then return 0; fi
  apt_install postgresql
}

# fuse3 provides fusermount3, which 'dozo mount' and its tests need (and
# /dev/fuse, which a container gets with --device /dev/fuse).
install_fuse() {
  if have fusermount3; then return 0; fi
  apt_install fuse3
}

# ldap: OpenLDAP's slapd and the ldap* clients from Debian's packages, for
# the local directory: scripts/ldap.sh runs its own slapd from them, never
# the system service the package sets up.
install_ldap() {
  if [ -x /usr/sbin/slapd ] && have ldapmodify && have ldapsearch; then return 0; fi
  apt_install slapd ldap-utils
}

# hts: samtools, bcftools, tabix/bgzip (htslib) and samtools' test files,
# for the region fetch tests.
install_hts() {
  local want=()
  have samtools || want+=(samtools)
  have bcftools || want+=(bcftools)
  { have tabix && have bgzip; } || want+=(tabix)
  [ -d /usr/share/samtools/test ] || want+=(samtools-test)
  [ ${#want[@]} -eq 0 ] && return 0
  apt_install "${want[@]}"
}

# chromium: Debian's headless-capable Chromium for the console's browser
# tests (integration/console_test.go drives it over the DevTools
# protocol), and a Japanese font so its screenshots of Japanese pages are
# legible.
install_chromium() {
  local want=()
  { have chromium || [ -x /usr/bin/chromium ]; } || want+=(chromium)
  local fonts
  fonts=$(fc-list 2>/dev/null || true) # not piped into grep -q: pipefail would see fc-list's SIGPIPE
  grep -qi "ipagothic\|noto sans cjk" <<<"$fonts" || want+=(fonts-ipafont-gothic)
  [ ${#want[@]} -eq 0 ] && return 0
  apt_install "${want[@]}"
}

case "${1:-all}" in
  path) echo "$BIN" ;;
  minio) install_minio ;;
  versitygw) install_versitygw ;;
  vault) install_vault ;;
  age) install_age ;;
  oidc-provider) install_oidc_provider ;;
  postgres) install_postgres ;;
  fuse) install_fuse ;;
  ldap) install_ldap ;;
  hts) install_hts ;;
  chromium) install_chromium ;;
  all) install_age; install_minio; install_versitygw; install_vault; install_oidc_provider
    install_postgres; install_fuse; install_ldap; install_hts; install_chromium ;;
  *) echo "usage: $0 [all|minio|versitygw|vault|age|oidc-provider|postgres|fuse|ldap|hts|chromium|path]" >&2; exit 2 ;;
esac
