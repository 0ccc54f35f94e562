#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 20) on the committed corpus.
# New inputs go to a scratch folder, so the committed corpus is only read.
# Usage: bash fuzz/smoke.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build --sanitizer none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "corpus/$t"
  echo "-- fuzz $t for ${secs}s"
  status=0
  cargo fuzz run --sanitizer none "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -dict=flexie.dict -print_final_stats=1 \
    >"$scratch/$t.log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "$scratch/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$scratch/$t.log"
    echo "fuzz target $t failed (exit $status)"
    exit 1
  fi
done
echo "fuzz smoke: ${#targets[@]} targets clean"
