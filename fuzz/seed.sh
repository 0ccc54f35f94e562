#!/usr/bin/env bash
# Seeds the fuzz corpora from the test fixtures (tests/fixtures/**/*.test) and the
# examples (examples/*.flexie with their .json context), in each target's input format:
#   corpus/compile/         the template source, as is
#   corpus/render/          FLAGS TEMPLATE 0x00 CONTEXT-JSON   (fuzz_targets/common.rs, RenderInput)
#   corpus/expr_roundtrip/  FLAGS EXPRESSION 0x00 CONTEXT-JSON (each `{{ … }}` of each template)
# FLAGS is one byte: 0x01 = HTML autoescaping (fixtures whose OPTIONS ask for it), else 0x00.
# Files are named by the SHA-1 of their content (as libFuzzer names them), so seeding twice
# adds nothing. Needs only bash, awk, grep, sed and sha1sum.
#
# Usage: bash fuzz/seed.sh          seed (adds files to fuzz/corpus/<target>/)
#        bash fuzz/seed.sh --cmin   seed, then minimise each corpus (fuzz/cmin.sh)
set -euo pipefail
cd "$(dirname "$0")"
root=..
targets=(compile render expr_roundtrip)
for t in "${targets[@]}"; do mkdir -p "corpus/$t"; done

# Writes stdin to corpus/$1/<sha1>.
put() {
  local tmp
  tmp="$(mktemp)"
  cat >"$tmp"
  local sum
  sum="$(sha1sum "$tmp" | cut -d' ' -f1)"
  mv "$tmp" "corpus/$1/$sum"
}

# Prints section $2 (TEMPLATE, CONTEXT, OPTIONS…) of fixture $1, without its last newline.
section() {
  awk -v want="$2" '
    /^--[A-Z_]+--$/ { sec = substr($0, 3, length($0) - 4); next }
    sec == want { if (n++) printf "\n"; printf "%s", $0 }
  ' "$1"
}

# Seeds one template ($1 = source, $2 = context JSON, $3 = flags byte as \xNN).
seed() {
  local src="$1" ctx="$2" flags="$3"
  [ -n "$src" ] || return 0
  printf '%s' "$src" | put compile
  { printf "$flags"; printf '%s' "$src"; printf '\0'; printf '%s' "$ctx"; } | put render
  # every {{ … }} on one line becomes an expression seed
  printf '%s\n' "$src" | grep -o '{{[^}]*}}' | sed -e 's/^{{[-~]\{0,1\}//' -e 's/[-~]\{0,1\}}}$//' |
    while IFS= read -r e; do
      [ -n "${e// /}" ] || continue
      { printf "$flags"; printf '%s' "$e"; printf '\0'; printf '%s' "$ctx"; } | put expr_roundtrip
    done || true
}

n=0
while IFS= read -r -d '' f; do
  src="$(section "$f" TEMPLATE)"
  ctx="$(section "$f" CONTEXT)"
  [ -n "$ctx" ] || ctx='{}'
  flags='\x00'
  if section "$f" OPTIONS | grep -q '"autoescape": *"html"'; then flags='\x01'; fi
  seed "$src" "$ctx" "$flags"
  n=$((n + 1))
done < <(find "$root/tests/fixtures" -name '*.test' -print0 | sort -z)

for f in "$root"/examples/*.flexie; do
  [ -e "$f" ] || continue
  ctx='{}'
  [ -e "${f%.flexie}.json" ] && ctx="$(cat "${f%.flexie}.json")"
  seed "$(cat "$f")" "$ctx" '\x00'
  n=$((n + 1))
done

echo "seeded from $n templates:"
for t in "${targets[@]}"; do echo "  corpus/$t: $(find "corpus/$t" -type f | wc -l) files"; done

if [ "${1:-}" = "--cmin" ]; then
  bash cmin.sh "${targets[@]}"
fi
