#!/usr/bin/env bash
# A/B of two flexscript binaries on the listener rows of benches/listener.sh (benches/README.md,
# "Issue 10, second round"): bare hyper, OLD and NEW serve side by side (all on CPU 0, wrk on
# CPU 1, ports 28191-28193) and are measured in alternation within the same minutes, so that a
# busy machine affects both alike. Per round: bare hyper, OLD and NEW with a cached token, bare
# hyper again, OLD and NEW with 2,000 tokens in turn (benches/rotate_tokens.lua); the order of
# OLD and NEW alternates by round. Prints req/s, the ratio to the mean of the round's two bare
# hyper runs, CPU µs per request (from /proc/PID/stat) and bare hyper's CPU per request ÷ theirs.
#
# Usage: bash benches/listener_ab.sh OLD_BINARY NEW_BINARY [SECONDS=5] [ROUNDS=3]
# (BARE=path overrides target/release/examples/bare_hyper). Needs wrk, taskset, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$(realpath "$1")"; new="$(realpath "$2")"; secs="${3:-5}"; rounds="${4:-3}"
bare="${BARE:-target/release/examples/bare_hyper}"
dir="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
. benches/listener_endpoint.sh
bench_toml "$dir/bench.toml"
token="$("$old" token --key "$key" --secret "$secret" --ttl 3600 --data '{"user": "ann"}')"
for i in $(seq 1 2000); do "$old" token --key "$key" --secret "$secret" --ttl 3600 --data "{\"user\": \"u$i\"}"; done >"$dir/tokens"
taskset -c 0 "$bare" 127.0.0.1:28191 2>/dev/null & pids+=($!); bpid=$!
taskset -c 0 "$old" serve "$dir/bench.toml" --addr 127.0.0.1:28192 >/dev/null 2>&1 & pids+=($!); opid=$!
mkdir -p "$dir/n"; cp "$dir/bench.toml" "$dir/n/"
taskset -c 0 "$new" serve "$dir/n/bench.toml" --addr 127.0.0.1:28193 >/dev/null 2>&1 & pids+=($!); npid=$!
for p in 28191 28192 28193; do for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done; done
for p in $bpid $opid $npid; do kill -0 $p || { echo "server $p died (port taken?)"; exit 1; }; done
path="/listener/$h1/$h2?ref=A-1"
echo "old: $(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:28192$path")"
echo "new: $(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:28193$path")"
# w PID ARGS... -> "req/s cpu_us_per_request"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
w() { local pid="$1"; shift; local c0 c1 out
  c0=$(cpu "$pid")
  out="$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" "$@")"
  c1=$(cpu "$pid")
  grep -q Non-2xx <<<"$out" && echo "NON2XX" >&2
  awk -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" '/^Requests\/sec:/ {r=$2} /requests in/ {n=$1} END {printf "%s %.1f", r, (c1-c0)/hz*1e6/n}' <<<"$out"; }
for p in 28191 28192 28193; do taskset -c 1 wrk -t1 -c32 -d1s -H "Authorization: Bearer $token" "http://127.0.0.1:$p$path" >/dev/null; done
echo "load: $(cat /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  b1=$(w $bpid "http://127.0.0.1:28191$path")
  declare -A c rt
  for x in $order; do
    port=28192; pid=$opid; [ $x = new ] && port=28193 && pid=$npid
    c[$x]=$(w $pid -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path")
  done
  b2=$(w $bpid "http://127.0.0.1:28191$path")
  for x in $order; do
    port=28192; pid=$opid; [ $x = new ] && port=28193 && pid=$npid
    rt[$x]=$(w $pid -s benches/rotate_tokens.lua "http://127.0.0.1:$port$path" -- "$dir/tokens")
  done
  python3 - "$r" "$b1" "$b2" "${c[old]}" "${c[new]}" "${rt[old]}" "${rt[new]}" <<'PY'
import sys
r=sys.argv[1]; v=[tuple(map(float,a.split())) for a in sys.argv[2:]]
b1,b2,co,cn,ro,rn=v
b=(b1[0]+b2[0])/2; bc=(b1[1]+b2[1])/2
f=lambda x: f"{x[0]:.0f} ({x[0]/b:.2f}; {x[1]:.1f}us, cpu {bc/x[1]:.2f})"
print(f"round {r} bare {b1[0]:.0f}/{b2[0]:.0f} ({bc:.1f}us) | cached old {f(co)} new {f(cn)} | rotate old {f(ro)} new {f(rn)}")
PY
done
echo "load: $(cat /proc/loadavg)"
