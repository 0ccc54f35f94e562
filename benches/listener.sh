#!/usr/bin/env bash
# Listener throughput against a bare hyper baseline (docs/listener.md, "Performance"), and a
# durable row: a two-step workflow journaled in SQLite (docs/state.md).
#
# Both servers are pinned to CPU 0 (`taskset -c 0`), wrk to CPU 1; 32 connections, one wrk
# thread. The listener serves a JWT-authenticated `data` endpoint that renders request data
# (token check + request mapping + template render + content-type detection per request);
# bare_hyper answers a fixed JSON body. Prints req/s, p99 latency, peak RSS and the ratio.
# The machine's speed drifts by ±20 % over minutes, so the two servers are measured in
# alternation, ROUNDS times, and the ratio of each round and their median are printed.
#
# Usage: bash benches/listener.sh [SECONDS=10] [ROUNDS=3]
# Needs: wrk (Debian: apt-get install -y wrk), taskset (util-linux), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
rounds="${2:-3}"
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)"; exit 1; }

cargo build --release --quiet --bin flexscript --example bare_hyper
bin=target/release/flexscript
bare=target/release/examples/bare_hyper

dir="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

key="bench-issuer"
secret="bench-secret-0123456789abcdef0123456789abcdef"
h1=0123456789abcdef0123456789abcdef
h2=fedcba9876543210fedcba9876543210
cat >"$dir/bench.toml" <<TOML
[[endpoint]]
name = "bench"
first_hash = "$h1"
second_hash = "$h2"
return_type = "data"
return_data = '''{"status": "received", "user": {{ __data.__headers.__jwt_data[0].user|json_encode|raw }}, "ref": {{ __data.ref|default('')|json_encode|raw }}, "method": "{{ __data.__method }}"}'''
add_authentication = true
endpoint_key = "$key"
endpoint_secret = "$secret"
TOML
token="$("$bin" token --key "$key" --secret "$secret" --ttl 3600 --data '{"user": "ann"}')"

wait_port() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not start"; exit 1
}

# run_wrk NAME PID URL [HEADER...] → "req/s p99"
run_wrk() {
  local name="$1" pid="$2" url="$3"; shift 3
  local args=()
  for h in "$@"; do args+=(-H "$h"); done
  local out
  out="$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" --latency "${args[@]}" "$url")"
  echo "$out" >"$dir/$name.wrk"
  local rps p99 rss non2xx
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  rss="$(awk '/^VmHWM:/ {print $2 " " $3}' "/proc/$pid/status")"
  printf '%-12s %10s req/s   p99 %8s   peak RSS %10s   non-2xx %s\n' \
    "$name" "$rps" "$p99" "$rss" "${non2xx:-0}"
  echo "$rps" >"$dir/$name.rps"
}

warm() {
  local url="$1"; shift
  local args=()
  for h in "$@"; do args+=(-H "$h"); done
  taskset -c 1 wrk -t1 -c32 -d2s "${args[@]}" "$url" >/dev/null
}

taskset -c 0 "$bare" 127.0.0.1:8091 2>/dev/null &
pids+=($!)
bare_pid=$!
taskset -c 0 "$bin" serve "$dir/bench.toml" --addr 127.0.0.1:8092 >/dev/null 2>&1 &
pids+=($!)
listener_pid=$!
wait_port 8091
wait_port 8092

check="$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:8092/listener/$h1/$h2?ref=A-1")"
echo "listener answer: $check"
echo "wrk: ${secs}s, 32 connections, 1 thread on CPU 1; servers on CPU 0"
bare_url="http://127.0.0.1:8091/listener/$h1/$h2?ref=A-1"
listener_url="http://127.0.0.1:8092/listener/$h1/$h2?ref=A-1"
auth="Authorization: Bearer $token"
warm "$bare_url"
warm "$listener_url" "$auth"
ratios=()
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  run_wrk bare_hyper "$bare_pid" "$bare_url"
  run_wrk listener "$listener_pid" "$listener_url" "$auth"
  ratios+=("$(awk -v a="$(cat "$dir/listener.rps")" -v b="$(cat "$dir/bare_hyper.rps")" \
    'BEGIN { printf "%.2f", a / b }')")
  echo "listener / bare_hyper = ${ratios[-1]}"
done
median="$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
echo "ratios: ${ratios[*]}   median listener / bare_hyper = $median"

# The worst case for the token cache: 2,000 distinct tokens (more than the 1,024 it keeps),
# one after the other, so every request verifies its token in full.
for i in $(seq 1 2000); do
  "$bin" token --key "$key" --secret "$secret" --ttl 3600 --data "{\"user\": \"u$i\"}"
done >"$dir/tokens"
out="$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" --latency -s benches/rotate_tokens.lua \
  "$listener_url" -- "$dir/tokens")"
printf '%-12s %10s req/s   p99 %8s   peak RSS %10s   non-2xx %s   (2,000 tokens in turn: no cache hits)\n' \
  listener "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
  "$(awk '/^VmHWM:/ {print $2 " " $3}' "/proc/$listener_pid/status")" \
  "$(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)"

# Durable runs (docs/state.md): a `data` endpoint with a two-step workflow on the default
# state backend (SQLite beside the configuration file, group commit). Every 200 is a run
# committed before the answer; afterwards every accepted run must have completed.
mkdir -p "$dir/durable"
cat >"$dir/durable/endpoints.toml" <<TOML
[[endpoint]]
name = "durable"
first_hash = "$h1"
second_hash = "$h2"
return_type = "data"
return_data = '''{"status": "received", "ref": {{ __data.ref|default('')|json_encode|raw }}}'''

[[endpoint.step]]
id = "keep"
type = "store"
name = "ref"
value = "{{ __data.ref }}"

[[endpoint.step]]
id = "seen"
parent = "keep"
type = "store"
name = "seen"
expression = "__data.ref ~ '-seen'"
TOML
taskset -c 0 "$bin" serve "$dir/durable/endpoints.toml" --addr 127.0.0.1:8093 >/dev/null 2>&1 &
pids+=($!)
durable_pid=$!
wait_port 8093
durable_url="http://127.0.0.1:8093/listener/$h1/$h2?ref=A-1"
# No warm-up: every run in the file comes from the measured wrk run.
run_wrk durable "$durable_pid" "$durable_url"
echo "durable / bare_hyper = $(awk -v a="$(cat "$dir/durable.rps")" -v b="$(cat "$dir/bare_hyper.rps")" \
  'BEGIN { printf "%.2f", a / b }')   (last bare_hyper round)"
accepted="$(awk '/requests in/ {print $1}' "$dir/durable.wrk")"
db="$dir/durable/.flexscript/state.db"
count() {
  python3 -c "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); print(c.execute(sys.argv[2]).fetchone()[0])" "$db" "$1"
}
for _ in $(seq 1 600); do
  [ "$(count "SELECT count(*) FROM runs WHERE status NOT IN ('succeeded','failed','interrupted')")" = 0 ] && break
  sleep 0.5
done
# wrk counts the answers it read; requests cut at the end were accepted too, so the check is
# succeeded >= answered and nothing unfinished or failed.
succeeded="$(count "SELECT count(*) FROM runs WHERE status = 'succeeded'")"
others="$(count "SELECT count(*) FROM runs WHERE status != 'succeeded'")"
echo "durable runs: $succeeded succeeded, $others not, $accepted answered by wrk"
[ "$succeeded" -ge "$accepted" ] && [ "$others" = 0 ] || { echo "durable: accepted runs did not all complete"; exit 1; }

# Memory with history on: drive the same endpoint (unmeasured) until at least 100,000 runs are
# in the journal (at most 30 more wrk runs of 10 s), let them finish, then read the RSS.
for _ in $(seq 1 30); do
  [ "$(count "SELECT count(*) FROM runs")" -ge 100000 ] && break
  taskset -c 1 wrk -t1 -c32 -d10s "$durable_url" >/dev/null
done
for _ in $(seq 1 600); do
  [ "$(count "SELECT count(*) FROM runs WHERE status NOT IN ('succeeded','failed','interrupted')")" = 0 ] && break
  sleep 0.5
done
printf 'durable memory: %s runs in the journal (%s succeeded), RSS %s, peak RSS %s\n' \
  "$(count "SELECT count(*) FROM runs")" "$(count "SELECT count(*) FROM runs WHERE status = 'succeeded'")" \
  "$(awk '/^VmRSS:/ {print $2 " " $3}' "/proc/$durable_pid/status")" \
  "$(awk '/^VmHWM:/ {print $2 " " $3}' "/proc/$durable_pid/status")"
