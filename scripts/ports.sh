# ports.sh — sourced by stack.sh and dev.sh: loopback ports for the local
# servers. Ports are picked below the kernel's ephemeral range (on Linux
# 32768-60999 by default, /proc/sys/net/ipv4/ip_local_port_range), where
# outgoing connections take their local ports: a port picked there can be
# taken, or sit in TIME_WAIT, by the time a server binds it. A port counts
# as free only if it can be bound on 127.0.0.1 right now.

# port_bindable PORT: a server can bind 127.0.0.1:PORT now. Like the Go
# servers of the stack, the test sets SO_REUSEADDR: the TIME_WAIT left by a
# server's own connections does not keep it from its port after a restart,
# while any socket of an outgoing connection on the port (open or in
# TIME_WAIT) does.
port_bindable() {
  perl -MSocket -e '
    socket(my $s, PF_INET, SOCK_STREAM, 0) or exit 2;
    setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) or exit 2;
    bind($s, sockaddr_in($ARGV[0], INADDR_LOOPBACK)) or exit 1;
    exit 0' "$1" 2>/dev/null
}

# port_range: the low and high end of the range ports are picked from:
# 10000 up to just below the ephemeral range (at most 32767).
port_range() {
  local lo=32768 hi
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
  fi
  hi=$((lo - 1)); [ "$hi" -gt 32767 ] && hi=32767
  [ "$hi" -ge 11000 ] || { echo "the ephemeral port range starts at $lo: no room below it" >&2; return 1; }
  echo "10000 $hi"
}

# free_port [span]: a random port p such that p..p+span-1 can all be bound.
free_port() {
  local span=${1:-1} lo hi p i ok
  read -r lo hi < <(port_range) || return 1
  for _ in $(seq 1 200); do
    p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo - span + 2))); ok=1
    for ((i = 0; i < span; i++)); do port_bindable $((p + i)) || { ok=0; break; }; done
    [ $ok = 1 ] && { echo "$p"; return 0; }
  done
  echo "no free port found in $lo-$hi" >&2
  return 1
}

# reuse_port FILE [span]: the port recorded in FILE if it (and the span
# after it) can still be bound, else a fresh one, recorded in FILE.
reuse_port() {
  local f=$1 span=${2:-1} p i ok=0
  if [ -f "$f" ] && p=$(cat "$f") && [[ "$p" =~ ^[0-9]+$ ]]; then
    ok=1
    for ((i = 0; i < span; i++)); do port_bindable $((p + i)) || { ok=0; break; }; done
  fi
  if [ $ok = 0 ]; then
    p=$(free_port "$span") || return 1
    echo "$p" >"$f"
  fi
  echo "$p"
}
