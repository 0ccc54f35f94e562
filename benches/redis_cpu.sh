#!/usr/bin/env bash
# Redis's CPU and memory per durable run (docs/redis.md, "Memory per run and
# `hash-max-listpack-value`"): starts a fresh redis-server (AOF on, no snapshots, the extra
# redis-server arguments given), sends benches/durable_profile.sh's burst to a listener journaling
# in it, and prints durable_profile.sh's lines (listener CPU per run, wrk), then Redis's
# main-thread CPU, its children's (AOF rewrites) and `used_memory` per run.
#
# Usage: bash benches/redis_cpu.sh [REDIS-SERVER-ARGS...]
#   e.g. bash benches/redis_cpu.sh --hash-max-listpack-value 1024
#   SECS=N burst length (default 6); BIN=PATH the flexscript binary (default target/release).
# Needs: redis-server, redis-cli, wrk, taskset, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly yes --dir "$dir" \
  --daemonize yes "$@" >/dev/null
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
cpu() {
  redis-cli -p "$port" info cpu | tr -d '\r' | awk -F: '
    /used_cpu_(sys|user)_main_thread/ {m += $2}
    /used_cpu_(sys|user)_children/ {c += $2}
    END {printf "%.3f %.3f", m, c}'
}
read -r m0 c0 <<<"$(cpu)"
SECS="${SECS:-6}" bash benches/durable_profile.sh "$dir/out" "[server]
state = \"redis://127.0.0.1:$port\""
read -r m1 c1 <<<"$(cpu)"
runs="$(redis-cli -p "$port" get 'fs:{j}:count:durable')"
done_runs="$runs"
mem="$(redis-cli -p "$port" info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')"
awk -v r="$runs" -v d="$done_runs" -v m0="$m0" -v m1="$m1" -v c0="$c0" -v c1="$c1" -v mem="$mem" 'BEGIN {
  printf "redis: %d runs (%d finished), main thread %.1f us/run, children (AOF rewrites) %.1f us/run, memory %d B/run\n",
    r, d, (m1 - m0) * 1e6 / r, (c1 - c0) * 1e6 / r, mem / r }'
