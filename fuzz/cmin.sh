#!/usr/bin/env bash
# Minimizes the committed corpora: keeps a smallest set of inputs that covers every code
# edge the whole corpus covers (libFuzzer -set_cover_merge on edge coverage), replacing
# fuzz/corpus/<target>/. Run after seed.sh or after a long fuzzing run.
# Usage: bash fuzz/cmin.sh [TARGET...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build --sanitizer none
triple="$(rustc -vV | sed -n 's/^host: //p')"
for t in "${targets[@]}"; do
  [ -d "corpus/$t" ] || continue
  out="$(mktemp -d)"
  before="$(find "corpus/$t" -type f | wc -l)"
  "target/$triple/release/$t" -set_cover_merge=1 -use_counters=0 -timeout=10 \
    -rss_limit_mb=4096 "$out" "corpus/$t" >"$out.log" 2>&1 || { tail -n 30 "$out.log"; exit 1; }
  rm -rf "corpus/$t"
  mv "$out" "corpus/$t"
  rm -f "$out.log"
  echo "corpus/$t: $before -> $(find "corpus/$t" -type f | wc -l) files, $(du -sb "corpus/$t" | cut -f1) bytes"
done
