#!/usr/bin/env bash
# CPU per durable run, for A/B comparisons of the journal (docs/state.md, "Performance"): serves
# benches/listener.sh's durable endpoint (a `data` endpoint with two `store` steps) on a fresh
# state, pinned to CPU 0, sends it one wrk burst from CPU 1 (32 connections), waits for the runs
# to finish and prints the server's CPU time (user + system, all threads) and its journal
# thread's per journaled run (per answered request on Redis, whose runs are not counted here),
# with wrk's requests/s and p99.
#
# Usage: bash benches/durable_profile.sh OUTDIR [SERVER-TOML-LINES]
#   SECS=N   burst length (default 8)
#   BIN=PATH serve with that binary (default target/release/flexscript; build it first)
#   PERF=1   also `perf record -g` the server during the burst into OUTDIR/perf.data
#   SERVER-TOML-LINES: text put before the endpoint, e.g. a `[server]` table naming
#   `state = "redis://…"` to profile the Redis backend instead of SQLite.
# Needs: wrk, taskset, curl, python3 (perf for PERF=1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$1"; mkdir -p "$out"
. benches/listener_endpoint.sh
dir="$(mktemp -d)"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
durable_toml "$dir/endpoints.toml" "${2:-}"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
taskset -c 0 "${BIN:-target/release/flexscript}" serve "$dir/endpoints.toml" --addr "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
url="http://127.0.0.1:$port/listener/$h1/$h2?ref=A-1"
secs="${SECS:-8}"
ticks() { awk '{print $14 + $15}' "$1"; }
journal_stat() {
  for t in /proc/"$pid"/task/*; do
    if [ "$(cat "$t/comm")" = flexscript-jour ]; then echo "$t/stat"; return; fi
  done
}
cpu0="$(ticks "/proc/$pid/stat")"
jstat="$(journal_stat)"
j0="$( [ -n "$jstat" ] && ticks "$jstat" || echo 0)"
if [ -n "${PERF:-}" ]; then
  perf record -F 2000 -g -p "$pid" -o "$out/perf.data" -- sleep "$secs" >/dev/null 2>&1 &
  pp=$!
fi
taskset -c 1 wrk -t1 -c32 -d"${secs}s" --latency "$url" >"$out/wrk.txt"
[ -n "${PERF:-}" ] && wait "$pp" || true
sleep 3
db="$dir/.flexscript/state.db"
n="$( [ -f "$db" ] && python3 -c "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); print(c.execute('select count(*) from runs').fetchone()[0])" "$db" || awk '/requests in/ {print $1}' "$out/wrk.txt")"
hz="$(getconf CLK_TCK)"
awk -v t0="$cpu0" -v n="$n" -v hz="$hz" '{ printf "runs %d, server CPU per run %.1f us", n, ($14 + $15 - t0) * 1e6 / hz / n }' "/proc/$pid/stat"
if [ -n "$jstat" ]; then
  awk -v t0="$j0" -v n="$n" -v hz="$hz" '{ printf ", journal thread %.1f us", ($14 + $15 - t0) * 1e6 / hz / n }' "$jstat"
fi
echo
grep -E 'Requests/sec|^ +99%' "$out/wrk.txt"
