#!/usr/bin/env bash
# Runs the MCP conformance client suites against the prebuilt CLI and prints the per-scenario
# table. Fails on any failed check or warning.
#   auth:       @modelcontextprotocol/conformance 0.1.16 (14 scenarios)
#   backcompat: 0.2.0-alpha.7 (2 scenarios). 0.1.16's `2025-03-26-oauth-metadata-backcompat`
#               serves root metadata whose issuer is <origin>/oauth, which RFC 8414 §3.3 (and the
#               MCP spec) require a client to refuse; the suite fixed it in 0.2.0-alpha.5.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cd "$root"
cargo build -q -p edge-oauth-cli
bin="$target/debug/edge-oauth"
case "$bin" in *" "*) echo "conformance: the binary path must not contain spaces: $bin" >&2; exit 2;; esac
node --version | grep -q '^v2[2-9]' || { echo "conformance: needs Node >= 22 (run .ci/bootstrap.sh)" >&2; exit 2; }

run() { # version suite command
  local pkg="tests/conformance/node_modules/conformance-$1/dist/index.js" log
  log="$(mktemp)"
  local rc=0
  node "$pkg" client --command "$3" --suite "$2" >"$log" 2>&1 || rc=$?
  echo "== suite $2 (conformance $1)"
  sed -n '/=== SUITE SUMMARY ===/,$p' "$log" | sed '/^$/d; /SUITE SUMMARY/d'
  if [ "$rc" -ne 0 ] || ! grep -q '^Total: .* 0 failed, 0 warnings' "$log"; then
    echo "conformance suite $2 FAILED (exit $rc); full log:" >&2
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

run 0.1.16 auth "$bin conformance --client-metadata-url https://conformance-test.local/client-metadata.json"
run 0.2.0-alpha.7 backcompat "$bin conformance"
