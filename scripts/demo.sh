#!/usr/bin/env bash
# demo.sh — dozo end to end on the local dev stack (make demo).
#
# A submitter and a researcher, each with their own config dir, log in to
# Vault; the researcher makes an age key and registers it; the submitter
# creates a dataset, uploads a synthetic FASTQ file (DOZO_DEMO_MIB, default
# 300 MiB), and grants the researcher access for 30 days; the researcher
# fetches it back and the SHA-256 of both copies is compared; an operator
# deep-scrubs the dataset and verifies the audit chain.
#
# Needs a running dev stack (make up, or scripts/dev.sh up), whose env file
# is $DOZO_DEV_DIR/env (default <repo>/.dozo-dev/env). Scratch files go to a
# temporary directory that is removed afterwards (DOZO_DEMO_KEEP=1 keeps it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DEV=${DOZO_DEV_DIR:-$root/.dozo-dev}
ENVFILE=$DEV/env
MIB=${DOZO_DEMO_MIB:-300}

if [ -t 1 ]; then B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' N=$'\033[0m'; else B= G= R= N=; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
show() { printf '%s$ %s%s\n' "$B" "$*" "$N"; }
die() { printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }

[ -f "$ENVFILE" ] || die "no dev stack env at $ENVFILE: run 'make up' (or scripts/dev.sh up) first"
# shellcheck disable=SC1090
. "$ENVFILE"
for v in DOZO_BROKER DOZO_CA_CERT VAULT_ADDR DOZO_DEV_SUBMITTER DOZO_DEV_SUBMITTER_PASSWORD \
  DOZO_DEV_RESEARCHER DOZO_DEV_RESEARCHER_PASSWORD DOZO_DEV_ADMIN DOZO_DEV_ADMIN_PASSWORD; do
  [ -n "${!v:-}" ] || die "$ENVFILE does not set $v"
done
# The demo logs users in with their own passwords; it never uses the root token.
unset VAULT_TOKEN

DOZO=${DOZO_BIN:-}
if [ -z "$DOZO" ]; then
  DOZO=$root/bin/dozo
  (cd "$root" && go build -o "$DOZO" ./cmd/dozo)
fi
# age (the reference CLI) opens --raw files; tools.sh installs it with the stack.
AGE=$(PATH="$("$here/tools.sh" path 2>/dev/null || true):$PATH" command -v age || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dozo-demo.XXXXXX")
cleanup() { if [ -n "${DOZO_DEMO_KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
SUB=$WORK/submitter-config RES=$WORK/researcher-config

# sub/res run dozo as the submitter or the researcher (separate config dirs).
quoted() { local q; printf -v q ' %q' "$@"; printf '%s' "${q# }" | sed "s|$WORK/||g"; }
sub() { show "dozo $(quoted "$@")   # as $DOZO_DEV_SUBMITTER"; DOZO_CONFIG_DIR=$SUB "$DOZO" "$@"; }
res() { show "dozo $(quoted "$@")   # as $DOZO_DEV_RESEARCHER"; DOZO_CONFIG_DIR=$RES "$DOZO" "$@"; }

sha() { sha256sum "$1" | cut -d' ' -f1; }
plus30() { date -u -d '+30 days' +%F 2>/dev/null || date -u -v+30d +%F; }

echo "${B}dozo demo${N}: broker $DOZO_BROKER, Vault $VAULT_ADDR, scratch $WORK"

step "1. Both users log in to Vault (passwords on stdin; tokens kept 0600 in their config dirs)"
printf '%s\n' "$DOZO_DEV_SUBMITTER_PASSWORD" | sub login --username "$DOZO_DEV_SUBMITTER" --password-stdin
printf '%s\n' "$DOZO_DEV_RESEARCHER_PASSWORD" | res login --username "$DOZO_DEV_RESEARCHER" --password-stdin

step "2. The researcher makes a post-quantum age key pair and registers the public half"
res keygen | sed -E 's/(age1pq1.{20}).*/\1.../'
res key register
res whoami
# The submitter's own key seals upload journals, so an upload can resume.
DOZO_CONFIG_DIR=$SUB "$DOZO" keygen --classic >/dev/null

DS=DEMO-$(date -u +%Y%m%d-%H%M%S)-$RANDOM
step "3. The submitter creates dataset $DS (4+2 erasure code over 6 targets in 3 failure domains)"
sub dataset create "$DS" --title "dozo demo dataset"
sub dataset show "$DS"

step "4. A synthetic ${MIB} MiB FASTQ file (random 150 bp reads)"
SRC=$WORK/NA00001_R1.fastq
acgt=$(printf 'ACGT%.0s' $(seq 64)) # 256 letters: every byte maps to a base
qual=$(printf 'I%.0s' $(seq 150))
set +o pipefail # head closes the pipe on purpose
head -c $((MIB * 1024 * 1024 / 2 + 4096)) /dev/urandom | tr '\000-\377' "$acgt" | fold -w 150 |
  awk -v q="$qual" 'length($0) == 150 { printf "@NA00001.%d/1\n%s\n+\n%s\n", NR, $0, q }' |
  head -c $((MIB * 1024 * 1024)) >"$SRC"
set -o pipefail
ls -l "$SRC"
head -4 "$SRC" | cut -c1-60
WANT=$(sha "$SRC")
echo "sha256 $WANT"

step "5. The submitter uploads it: encrypted and erasure-coded here, pieces straight to storage"
sub upload --dataset "$DS" "$SRC"
sub ls "$DS"

step "6. Without a grant the researcher cannot even see the dataset"
if res fetch "$DS/$(basename "$SRC")" -o "$WORK/denied.fastq"; then
  die "the researcher fetched without a grant"
fi
[ ! -e "$WORK/denied.fastq" ] || die "a refused fetch left a file behind"

UNTIL=$(plus30)
step "7. The submitter grants the researcher access until $UNTIL"
sub grant "$DS" "$DOZO_DEV_RESEARCHER" --until "$UNTIL" --application J-DU000001 --institution "NIG (demo)" --reason "dozo demo"
sub grants "$DS" --history

step "8. The researcher fetches it: pieces verified, chunks authenticated, SHA-256 and MD5 checked"
OUT=$WORK/fetched.fastq
res fetch "$DS/$(basename "$SRC")" -o "$OUT"
show "dozo fetch $DS/$(basename "$SRC") -o - | head -4   # streaming"
DOZO_CONFIG_DIR=$RES "$DOZO" fetch "$DS/$(basename "$SRC")" -o - 2>/dev/null | head -4 | cut -c1-60 || true
res fetch "$DS/$(basename "$SRC")" --range 0-299 -o "$WORK/first300.bin"
cmp -s "$WORK/first300.bin" <(head -c 300 "$SRC") || die "range fetch differs"
echo "range 0-299 matches"
if [ -n "$AGE" ]; then
  res fetch "$DS/$(basename "$SRC")" --raw -o "$WORK/fetched.fastq.age"
  show "age -d -i researcher-config/identity.age fetched.fastq.age | sha256sum   # no dozo needed"
  RAWSHA=$("$AGE" -d -i "$RES/identity.age" "$WORK/fetched.fastq.age" | sha256sum | cut -d' ' -f1)
  echo "$RAWSHA"
  [ "$RAWSHA" = "$WANT" ] || die "the age file decrypts to something else"
fi

step "9. The operator scrubs the dataset (every piece read and hashed) and checks the audit chain"
ADM=$WORK/admin-config
adm() { show "dozo $(quoted "$@")   # as $DOZO_DEV_ADMIN"; DOZO_CONFIG_DIR=$ADM "$DOZO" "$@"; }
printf '%s\n' "$DOZO_DEV_ADMIN_PASSWORD" | adm login --username "$DOZO_DEV_ADMIN" --password-stdin
adm scrub "$DS" --deep
adm audit verify
adm audit list --dataset "$DS" | tail -5

step "10. Result"
GOT=$(sha "$OUT")
printf 'uploaded  %s\nfetched   %s\n' "$WANT" "$GOT"
if [ "$GOT" = "$WANT" ]; then
  printf '%sPASS%s: the researcher got back exactly what the submitter uploaded (%s MiB).\n' "$G" "$N" "$MIB"
else
  printf '%sFAIL%s: checksums differ\n' "$R" "$N"
  exit 1
fi
