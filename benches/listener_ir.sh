#!/usr/bin/env bash
# Instructions per request of the listener rows (benches/README.md, "Issue 10, third round"):
# each flexscript binary given serves the endpoint of benches/listener_endpoint.sh under
# valgrind's callgrind, and wrk sends it SECONDS of requests with a cached token, then with the
# 2,000 tokens of benches/rotate_tokens.lua; the counters are zeroed before and dumped after each
# run, so the figure is the server's user-space instructions (all threads) ÷ requests answered.
# Unlike req/s or CPU time it does not depend on what else the machine runs. Bare hyper
# (target/release/examples/bare_hyper, or BARE=path) is measured the same way, with the token
# header and without. Kernel work (the socket calls) is not counted.
#
# Usage: bash benches/listener_ir.sh BINARY... [SECONDS=6 via SECS=]
# Needs valgrind (callgrind_control), wrk, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECS:-6}"
bare="${BARE:-target/release/examples/bare_hyper}"
dir="$(mktemp -d)"
vpid=
cleanup() { [ -n "$vpid" ] && kill "$vpid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
. benches/listener_endpoint.sh
bench_toml "$dir/bench.toml"
first="$(realpath "$1")"
token="$("$first" token --key "$key" --secret "$secret" --ttl 3600 --data '{"user": "ann"}')"
for i in $(seq 1 2000); do "$first" token --key "$key" --secret "$secret" --ttl 3600 --data "{\"user\": \"u$i\"}"; done >"$dir/tokens"
path="/listener/$h1/$h2?ref=A-1"
port=28391

# start PORT CMD... : the command under callgrind, once it answers on PORT
start() {
  local port="$1"; shift
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" "$@" >/dev/null 2>"$dir/vg.err" &
  vpid=$!
  for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0; sleep 0.2; done
  echo "server on port $port did not start"; exit 1
}
# measure LABEL WRK_ARGS... : Ir per request of one wrk run
measure() {
  local label="$1"; shift
  callgrind_control -z "$vpid" >/dev/null 2>&1
  local out n f ir
  out="$(wrk -t1 -c32 -d"${secs}s" "$@")"
  n="$(awk '/requests in/ {print $1}' <<<"$out")"
  rm -f "$dir"/cg.*.[0-9]*
  callgrind_control -d "$vpid" >/dev/null 2>&1
  sleep 0.5
  f="$(ls -t "$dir"/cg.*.[0-9]* | head -1)"
  ir="$(awk '/^summary:/ {print $2; exit}' "$f")"
  printf '%-40s %8d requests %8.0f Ir/request\n' "$label" "$n" "$(awk -v i="$ir" -v n="$n" 'BEGIN { print i / n }')"
}
stop() { kill "$vpid"; wait "$vpid" 2>/dev/null || true; vpid=; }

start "$port" "$bare" "127.0.0.1:$port"
wrk -t1 -c32 -d2s "http://127.0.0.1:$port$path" >/dev/null
measure "bare hyper" "http://127.0.0.1:$port$path"
measure "bare hyper, with the token header" -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path"
stop
for bin in "$@"; do
  port=$((port + 1))
  mkdir -p "$dir/$port"; cp "$dir/bench.toml" "$dir/$port/"
  start "$port" "$(realpath "$bin")" serve "$dir/$port/bench.toml" --addr "127.0.0.1:$port"
  wrk -t1 -c32 -d2s -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path" >/dev/null
  measure "$(basename "$bin"), cached token" -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path"
  measure "$(basename "$bin"), 2,000 tokens in turn" -s benches/rotate_tokens.lua "http://127.0.0.1:$port$path" -- "$dir/tokens"
  stop
done
