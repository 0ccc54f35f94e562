#!/usr/bin/env bash
# Listener throughput against a bare hyper baseline (docs/listener.md, "Performance"), and a
# durable row: a two-step workflow journaled in SQLite (docs/state.md), measured ROUNDS times,
# each round right after a bare hyper round, with the median ratio.
#
# Both servers are pinned to CPU 0 (`taskset -c 0`), wrk to CPU 1; 32 connections, one wrk
# thread. The listener serves a JWT-authenticated `data` endpoint that renders request data
# (token check + request mapping + template render + content-type detection per request);
# bare_hyper answers a fixed JSON body. Prints req/s, p99 latency, peak RSS and the ratio.
# The machine's speed drifts by ±20 % over minutes, so the servers are measured in
# alternation, ROUNDS times — bare hyper, the listener with one cached token, the listener
# with a new token per request — and the ratios of each round and their medians are printed.
#
# A Redis row (docs/redis.md): the same durable endpoint on Redis, one listener process, then two
# (one wrk per process, run at once), with Redis commands and Redis CPU per request (skipped
# when redis-server is not installed).
#
# Usage: bash benches/listener.sh [SECONDS=10] [ROUNDS=3]   (MEMORY_RUNS=N: see the memory row)
#   ROWS="durable redis": only those rows after bare hyper (any of: listener durable memory
#   redis; default all; `memory` needs `durable`). BIN=PATH: serve with that flexscript binary
#   instead of target/release/flexscript (an A/B against a copy of an older build).
# Needs: wrk (Debian: apt-get install -y wrk), taskset (util-linux), curl, python3;
# redis-server and redis-cli for the Redis row.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
rounds="${2:-3}"
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)"; exit 1; }

rows="${ROWS:-listener durable memory redis}"
row() { [[ " ${rows//,/ } " == *" $1 "* ]]; }
cargo build --release --quiet --bin flexscript --example bare_hyper
bin="${BIN:-target/release/flexscript}"
bare=target/release/examples/bare_hyper

dir="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# Loopback ports picked free at start (two runs of this script at once do not collide).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
p_bare="$(free_port)"; p_listener="$(free_port)"; p_durable="$(free_port)"
p_redis1="$(free_port)"; p_redis2="$(free_port)"

. benches/listener_endpoint.sh
bench_toml "$dir/bench.toml"
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

# completed NAME RUNS T0 T1: runs finished per second between T0 (burst start) and T1 (the last
# run finished), and that rate against the last bare hyper round.
completed() {
  awk -v n="$2" -v t0="$3" -v t1="$4" -v b="$(cat "$dir/bare_hyper.rps")" -v l="$1" 'BEGIN {
    r = n / (t1 - t0)
    printf "%s completed runs: %.0f per second over %.1f s from the burst start to the last run = %.2f x bare_hyper\n", l, r, t1 - t0, r / b }'
}

warm() {
  local url="$1"; shift
  local args=()
  for h in "$@"; do args+=(-H "$h"); done
  taskset -c 1 wrk -t1 -c32 -d2s "${args[@]}" "$url" >/dev/null
}

taskset -c 0 "$bare" 127.0.0.1:${p_bare} 2>/dev/null &
pids+=($!)
bare_pid=$!
taskset -c 0 "$bin" serve "$dir/bench.toml" --addr 127.0.0.1:${p_listener} >/dev/null 2>&1 &
pids+=($!)
listener_pid=$!
wait_port "$p_bare"
wait_port "$p_listener"

check="$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:${p_listener}/listener/$h1/$h2?ref=A-1")"
echo "listener answer: $check"
echo "wrk: ${secs}s, 32 connections, 1 thread on CPU 1; servers on CPU 0"
bare_url="http://127.0.0.1:${p_bare}/listener/$h1/$h2?ref=A-1"
listener_url="http://127.0.0.1:${p_listener}/listener/$h1/$h2?ref=A-1"
auth="Authorization: Bearer $token"
warm "$bare_url"
ratio() { awk -v a="$(cat "$dir/$1.rps")" -v b="$(cat "$dir/bare_hyper.rps")" 'BEGIN { printf "%.2f", a / b }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
warm "$listener_url" "$auth"
if ! row listener; then
  # Bare hyper only: the reference of the rows below.
  for round in $(seq 1 "$rounds"); do run_wrk bare_hyper "$bare_pid" "$bare_url"; done
else
# The worst case for the token cache: 2,000 distinct tokens (more than the 1,024 it keeps),
# one after the other, so every request verifies its token in full. Measured in each round
# after the cached-token row, against the same bare hyper round.
for i in $(seq 1 2000); do
  "$bin" token --key "$key" --secret "$secret" --ttl 3600 --data "{\"user\": \"u$i\"}"
done >"$dir/tokens"
run_new_tokens() {
  local out
  out="$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" --latency -s benches/rotate_tokens.lua \
    "$listener_url" -- "$dir/tokens")"
  awk '/^Requests\/sec:/ {print $2}' <<<"$out" >"$dir/new_token.rps"
  printf '%-12s %10s req/s   p99 %8s   peak RSS %10s   non-2xx %s   (2,000 tokens in turn: no cache hits)\n' \
    new_token "$(cat "$dir/new_token.rps")" "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "$(awk '/^VmHWM:/ {print $2 " " $3}' "/proc/$listener_pid/status")" \
    "$(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)"
}
ratios=()
new_ratios=()
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  run_wrk bare_hyper "$bare_pid" "$bare_url"
  run_wrk listener "$listener_pid" "$listener_url" "$auth"
  run_new_tokens
  ratios+=("$(ratio listener)")
  new_ratios+=("$(ratio new_token)")
  echo "listener / bare_hyper = ${ratios[-1]}   new_token / bare_hyper = ${new_ratios[-1]}"
done
echo "ratios: ${ratios[*]}   median listener / bare_hyper = $(median "${ratios[@]}")"
echo "new-token ratios: ${new_ratios[*]}   median new_token / bare_hyper = $(median "${new_ratios[@]}")"
fi

# Durable runs (docs/state.md): a `data` endpoint with a two-step workflow on the default
# state backend (SQLite beside the configuration file, group commit). Every 200 is a run
# committed before the answer; afterwards every accepted run must have completed.
mkdir -p "$dir/durable"
durable_toml "$dir/durable/endpoints.toml"
if row durable; then
taskset -c 0 "$bin" serve "$dir/durable/endpoints.toml" --addr 127.0.0.1:${p_durable} >/dev/null 2>&1 &
pids+=($!)
durable_pid=$!
wait_port "$p_durable"
durable_url="http://127.0.0.1:${p_durable}/listener/$h1/$h2?ref=A-1"
# No warm-up: every run in the file comes from the measured wrk runs. The first round follows
# the bare hyper rounds above; each further round (ROUNDS in all) measures bare hyper again
# right before it, and the median of the rounds' ratios is printed (the machine drifts).
db="$dir/durable/.flexscript/state.db"
count() {
  python3 -c "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); print(c.execute(sys.argv[2]).fetchone()[0])" "$db" "$1"
}
wait_runs() {
  for _ in $(seq 1 3000); do
    [ "$(count "SELECT count(*) FROM runs WHERE status NOT IN ('succeeded','failed','interrupted')")" = 0 ] && break
    sleep 0.1
  done
}
cpu0="$(awk '{print $14 + $15}' "/proc/$durable_pid/stat")"
durable_ratios=()
accepted=0
for round in $(seq 1 "$rounds"); do
  [ "$round" -gt 1 ] && run_wrk bare_hyper "$bare_pid" "$bare_url"
  t0="$(date +%s.%N)"
  before="$(count "SELECT count(*) FROM runs")"
  run_wrk durable "$durable_pid" "$durable_url"
  durable_ratios+=("$(awk -v a="$(cat "$dir/durable.rps")" -v b="$(cat "$dir/bare_hyper.rps")" \
    'BEGIN { printf "%.2f", a / b }')")
  echo "durable / bare_hyper = ${durable_ratios[-1]}   (this round's bare_hyper)"
  accepted=$((accepted + $(awk '/requests in/ {print $1}' "$dir/durable.wrk")))
  wait_runs
  t1="$(date +%s.%N)"
  # Runs completed per second from the burst's start until the last run finished: what the
  # server sustains, where req/s also counts runs left in the backlog after the burst.
  completed durable "$(( $(count "SELECT count(*) FROM runs WHERE status = 'succeeded'") - before ))" "$t0" "$t1"
done
[ "$rounds" -gt 1 ] && echo "durable ratios: ${durable_ratios[*]}   median durable / bare_hyper = $(median "${durable_ratios[@]}")"
# wrk counts the answers it read; requests cut at the end were accepted too, so the check is
# succeeded >= answered and nothing unfinished or failed.
succeeded="$(count "SELECT count(*) FROM runs WHERE status = 'succeeded'")"
others="$(count "SELECT count(*) FROM runs WHERE status != 'succeeded'")"
echo "durable runs: $succeeded succeeded, $others not, $accepted answered by wrk"
# The server's CPU time (user + system, all threads) per run, from the first burst's start
# until every run finished: the whole per-run cost on its core, less sensitive to the
# machine's load than req/s.
awk -v t0="$cpu0" -v n="$succeeded" -v hz="$(getconf CLK_TCK)" \
  '{ printf "durable server CPU per run: %.1f us\n", ($14 + $15 - t0) * 1e6 / hz / n }' \
  "/proc/$durable_pid/stat"
[ "$succeeded" -ge "$accepted" ] && [ "$others" = 0 ] || { echo "durable: accepted runs did not all complete"; exit 1; }

if row memory; then
# Memory with history on: drive the same endpoint (unmeasured) until at least 100,000 runs are
# in the journal (at most 30 more wrk runs of 10 s), let them finish, then read the RSS.
# (MEMORY_RUNS=N lowers the count for a smoke test of the script.)
for _ in $(seq 1 30); do
  [ "$(count "SELECT count(*) FROM runs")" -ge "${MEMORY_RUNS:-100000}" ] && break
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

fi
fi

# Redis (docs/redis.md): the durable endpoint with `state = "redis://…"`, AOF `everysec` as in
# production. One listener process (CPU 0, wrk and Redis on CPU 1), then two processes, each
# with its own wrk, run at once (on this 2-core machine the two then share the CPUs with Redis
# and both wrk: the row shows the cost of sharing one Redis, not machine scaling). Redis
# commands and Redis CPU per request come from `INFO commandstats` / `INFO cpu` deltas.
row redis || exit 0
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "redis: skipped (redis-server / redis-cli not installed)"
  exit 0
fi
rport="$(free_port)"
mkdir -p "$dir/redis"
taskset -c 1 redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync everysec --dir "$dir/redis" >/dev/null &
pids+=($!)
rcli() { redis-cli -p "$rport" "$@" | tr -d '\r'; }
for _ in $(seq 1 100); do [ "$(rcli ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
sed -e "1i [server]\nstate = \"redis://127.0.0.1:$rport/0\"\nhistory_max = 100000000\n" \
  "$dir/durable/endpoints.toml" >"$dir/redis/endpoints.toml"
commands() { rcli INFO commandstats | awk -F'[:=,]' '/^cmdstat_/ {s += $3} END {print s + 0}'; }
# Script calls: EVAL and EVALSHA (the journal writer sends the script's hash once Redis holds it).
evals() { rcli INFO commandstats | awk -F'[:=,]' '/^cmdstat_eval(sha)?:/ {s += $3} END {print s + 0}'; }
redis_cpu() { rcli INFO cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.3f", s}'; }
# Read events on Redis's sockets: one per batch of commands received (a pipeline, or a lone
# command), i.e. the network round trips of all clients.
reads() { rcli INFO stats | awk -F: '/^total_reads_processed:/ {print $2 + 0}'; }
# Waits until no run is unfinished (before the statistics are read: the count below costs
# Redis time too).
redis_wait() {
  for _ in $(seq 1 6000); do
    [ "$(rcli ZCARD 'fs:{j}:leases')" = 0 ] && break
    sleep 0.1
  done
  date +%s.%N >"$dir/runs_done_at"
}
# Prints "succeeded total".
redis_runs() {
  # A run journaled finished is its record's JSON text; any other run a hash.
  # An entry names one run (accepted unfinished) or a batch of runs journaled finished.
  rcli EVAL "local n, all = 0, 0
    for _, e in ipairs(redis.call('XRANGE', 'fs:{j}:log:durable', '-', '+')) do
      for i = 2, #e[2], 2 do
        local k = 'fs:{j}:run:' .. e[2][i]
        local st
        if redis.call('TYPE', k).ok == 'string' then
          st = string.match(redis.call('GET', k), '\"status\":\"(%a+)\"')
        else
          st = redis.call('HGET', k, 'status')
        end
        if st == 'succeeded' then n = n + 1 end
        all = all + 1
      end
    end
    return {n, all}" 0 | tr '\n' ' '
  echo
}
# per_run LABEL RUNS C0 C1 E0 E1 CPU0 CPU1 R0 R1: per journaled run, over its whole life (the
# answer path's write, then the workflow's journal writes after the answer, if any).
per_run() {
  awk -v n="$2" -v c0="$3" -v c1="$4" -v e0="$5" -v e1="$6" -v u0="$7" -v u1="$8" \
    -v r0="$9" -v r1="${10}" -v l="$1" 'BEGIN {
    printf "%s per run: %.2f EVAL/EVALSHA, %.2f Redis round trips (read events), %.1f commands incl. those inside scripts, Redis CPU %.1f us\n",
      l, (e1 - e0) / n, (r1 - r0) / n, (c1 - c0) / n, (u1 - u0) * 1e6 / n }'
}
answered() { awk '/requests in/ {print $1}' "$1"; }

taskset -c 0 "$bin" serve "$dir/redis/endpoints.toml" --addr 127.0.0.1:${p_redis1} >/dev/null 2>&1 &
pids+=($!)
redis1_pid=$!
wait_port "$p_redis1"
redis1_url="http://127.0.0.1:${p_redis1}/listener/$h1/$h2?ref=A-1"
c0="$(commands)"; e0="$(evals)"; u0="$(redis_cpu)"; r0="$(reads)"
l0="$(awk '{print $14 + $15}' "/proc/$redis1_pid/stat")"
t0="$(date +%s.%N)"
run_wrk redis_1 "$redis1_pid" "$redis1_url"
echo "redis_1 / bare_hyper = $(awk -v a="$(cat "$dir/redis_1.rps")" -v b="$(cat "$dir/bare_hyper.rps")" \
  'BEGIN { printf "%.2f", a / b }')   (last bare_hyper round)"
n1="$(answered "$dir/redis_1.wrk")"
redis_wait
t1="$(cat "$dir/runs_done_at")"
c1="$(commands)"; e1="$(evals)"; u1="$(redis_cpu)"; r1="$(reads)"
read -r ok1 all1 <<<"$(redis_runs)"
per_run "redis_1" "$all1" "$c0" "$c1" "$e0" "$e1" "$u0" "$u1" "$r0" "$r1"
echo "redis_1 runs: $ok1 succeeded of $all1 journaled, $n1 answered by wrk"
# The listener process's CPU time (user + system, all threads) per run, burst and drain.
awk -v t0="$l0" -v n="$all1" -v hz="$(getconf CLK_TCK)" \
  '{ printf "redis_1 listener CPU per run: %.1f us\n", ($14 + $15 - t0) * 1e6 / hz / n }' \
  "/proc/$redis1_pid/stat"
completed redis_1 "$ok1" "$t0" "$t1"
[ "$ok1" -ge "$n1" ] && [ "$ok1" = "$all1" ] || { echo "redis: accepted runs did not all complete"; exit 1; }

taskset -c 1 "$bin" serve "$dir/redis/endpoints.toml" --addr 127.0.0.1:${p_redis2} >/dev/null 2>&1 &
pids+=($!)
redis2_pid=$!
wait_port "$p_redis2"
redis2_url="http://127.0.0.1:${p_redis2}/listener/$h1/$h2?ref=A-1"
c0="$(commands)"; e0="$(evals)"; u0="$(redis_cpu)"; r0="$(reads)"
before="$(rcli GET 'fs:{j}:count:durable')"
taskset -c 1 wrk -t1 -c32 -d"${secs}s" --latency "$redis1_url" >"$dir/redis_2a.wrk" &
wa=$!
taskset -c 0 wrk -t1 -c32 -d"${secs}s" --latency "$redis2_url" >"$dir/redis_2b.wrk" &
wb=$!
wait "$wa" "$wb"
for f in redis_2a redis_2b; do
  printf '%-12s %10s req/s   p99 %8s   non-2xx %s\n' "$f" \
    "$(awk '/^Requests\/sec:/ {print $2}' "$dir/$f.wrk")" "$(awk '$1 == "99%" {print $2}' "$dir/$f.wrk")" \
    "$(awk '/Non-2xx/ {print $NF}' "$dir/$f.wrk" | grep . || echo 0)"
done
total="$(awk '/^Requests\/sec:/ {s += $2} END {printf "%.0f", s}' "$dir/redis_2a.wrk" "$dir/redis_2b.wrk")"
echo "redis_2 (two processes) total $total req/s = $(awk -v a="$total" -v b="$(cat "$dir/bare_hyper.rps")" \
  'BEGIN { printf "%.2f", a / b }') x bare_hyper (last round)"
n2=$(( $(answered "$dir/redis_2a.wrk") + $(answered "$dir/redis_2b.wrk") ))
redis_wait
c1="$(commands)"; e1="$(evals)"; u1="$(redis_cpu)"; r1="$(reads)"
read -r ok2 all2 <<<"$(redis_runs)"
per_run "redis_2" "$((all2 - before))" "$c0" "$c1" "$e0" "$e1" "$u0" "$u1" "$r0" "$r1"
echo "redis_2 runs: $((ok2 - ok1)) succeeded of $((all2 - before)) journaled, $n2 answered by wrk"
[ "$((ok2 - ok1))" -ge "$n2" ] && [ "$ok2" = "$all2" ] || { echo "redis: accepted runs did not all complete"; exit 1; }
