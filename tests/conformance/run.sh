#!/usr/bin/env bash
# Runs the MCP conformance client suites against the prebuilt CLI and prints the per-scenario
# table. Fails on any failed check or warning.
#   auth:       @modelcontextprotocol/conformance 0.1.16 (14 scenarios, the 2025-11-25 tier).
#   backcompat: 0.2.0-alpha.7 (2 scenarios).
#   auth with the wasm build (crates/browser's nodejs package) as the OAuth client, 0.1.16 and
#               0.2.0-alpha.7 (whose servers put `iss` in every redirect):
#               tests/conformance/wasm-client.mjs drives the MCP SDK 1.32 through its fetch. That
#               SDK speaks the 2025-11-25 wire, so the 2026 requirement set is run with the CLI.
#   refusals:   0.2.0-alpha.7's scenarios where a client must refuse a response (RFC 9207 iss
#               missing/wrong/unexpected/normalised, RFC 8414 issuer mismatch, RFC 9728 resource
#               mismatch), for the wasm build (the CLI meets them in the 2026-07-28 set).
#               0.1.16's `2025-03-26-oauth-metadata-backcompat`
#               serves root metadata whose issuer is <origin>/oauth, which RFC 8414 §3.3 (and the
#               MCP spec) require a client to refuse; the suite fixed it in 0.2.0-alpha.5.
#   dpop:       0.2.0-alpha.12's auth/dpop and auth/dpop-nonce with the wasm build as the client,
#               at the 2026-07-28 wire (the driver's --wire 2026-07-28) and at the SDK's.
#   2026-07-28: 0.2.0-alpha.12's frozen requirement set, run at the 2026-07-28 wire (stateless,
#               _meta on every request) against the CLI: every scored client scenario must pass
#               with no failed check and no warning. The auth extensions the set runs unscored
#               (client credentials with a secret and with private_key_jwt, workload identity,
#               enterprise-managed authorization, DPoP with and without nonces) count for us:
#               each must pass too. Other unscored entries (added after the release) are listed
#               for information.
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

requirements() { # version revision command
  local pkg="tests/conformance/node_modules/conformance-$1/dist/index.js"
  local spec="tests/conformance/node_modules/conformance-$1/requirements/$2.yaml"
  local out rc=0 expected unscored scored bad passed total extensions ext_bad ext_total
  out="$(mktemp -d)"
  node "$pkg" client --command "$3" --requirements "$2" -o "$out" >"$out/log" 2>&1 || rc=$?
  # The scenario names the set runs unscored, from the run's own "Not scored" list.
  unscored="$(sed -n '/^Not scored for/,$p' "$out/log" | sed -n 's/^ *[✓✗] \([^ ]*\) (.*/\1/p')"
  scored="$(sed -n '/=== SUITE SUMMARY ===/,/^Total:/p' "$out/log" | grep -E '^[✓✗] ' |
            grep -vFf <(printf '%s\n' $unscored | sed 's/.*/ &:/') || true)"
  expected="$(sed -n '/^client:/,/^[a-z_]*:$/p' "$spec" | grep -c '^  - ')"
  total="$(grep -c . <<<"$scored" || true)"
  bad="$(grep -vE ': [0-9]+ passed, 0 failed$' <<<"$scored" || true)"
  passed=$((total - $(grep -c . <<<"$bad" || true)))
  echo "== requirement set $2 (conformance $1), scored client scenarios:"
  echo "$scored"
  echo "scored: $passed/$expected passed"
  # The extensions: each must have run, and passed with no failed check.
  extensions="$(sed -n '/^Not scored for/,$p' "$out/log" | grep -E '^ *[✓✗] .* \(extension\)$' || true)"
  ext_total="$(grep -c . <<<"$extensions" || true)"
  ext_bad="$(grep -c '✗' <<<"$extensions" || true)"
  echo "auth extensions (required here):"
  sed 's/^ */  /' <<<"$extensions"
  echo "extensions: $((ext_total - ext_bad))/$ext_total passed"
  echo "not scored (informational):"
  sed -n '/^Not scored for/,$p' "$out/log" | grep -vE ' \(extension\)$' | sed -n 's/^ *\([✓✗] .*\)/  \1/p'
  if [ "$rc" -ne 0 ] || [ -n "$bad" ] || [ "$total" -ne "$expected" ] || [ "$ext_bad" -ne 0 ] ||
     [ "$ext_total" -lt 6 ] || grep -q '^Total: .*[1-9][0-9]* warnings' "$out/log"; then
    echo "conformance requirement set $2 FAILED (exit $rc, $passed/$expected scored scenarios clean, $((ext_total - ext_bad))/$ext_total extensions); full log:" >&2
    cat "$out/log" >&2
    rm -rf "$out"
    return 1
  fi
  rm -rf "$out"
}

run 0.1.16 auth "$bin conformance --client-metadata-url https://conformance-test.local/client-metadata.json"
run 0.2.0-alpha.7 backcompat "$bin conformance"
requirements 0.2.0-alpha.12 2026-07-28 "$bin conformance --client-metadata-url https://conformance-test.local/client-metadata.json"

# The wasm build as the client (crates/browser, --target nodejs, through the MCP SDK's fetch).
wasm_client="$root/tests/conformance/wasm-client.mjs"
[ -f "$root/crates/browser/pkg-node/edge_oauth_browser.js" ] || { echo "conformance: build the nodejs package first (make browser-pkg)" >&2; exit 2; }
echo "== the wasm build as the client (tests/conformance/wasm-client.mjs):"
run 0.1.16 auth "$wasm_client"
run 0.2.0-alpha.7 auth "$wasm_client"

refusals=(auth/iss-supported-missing auth/iss-wrong-issuer auth/iss-unexpected auth/iss-normalized
          auth/metadata-issuer-mismatch auth/resource-mismatch)
failed=0
for client in "$wasm_client"; do
  echo "== refusal scenarios (conformance 0.2.0-alpha.7), client: ${client##*/}"
  for s in "${refusals[@]}"; do
    log="$(mktemp)"
    if node tests/conformance/node_modules/conformance-0.2.0-alpha.7/dist/index.js client \
         --command "$client" --scenario "$s" >"$log" 2>&1 && grep -q 'OVERALL: PASSED' "$log"; then
      echo "✓ $s: $(grep -o 'Passed: [^,]*, [0-9]* failed, [0-9]* warnings' "$log")"
    else
      echo "✗ $s"; cat "$log" >&2; failed=1
    fi
    rm -f "$log"
  done
done
[ "$failed" = 0 ] || { echo "conformance refusal scenarios FAILED" >&2; exit 1; }

# DPoP (RFC 9449, the auth/dpop extension of the 2026-07-28 set) with the wasm build as the
# client: its non-extractable WebCrypto P-256 key (Node 22's WebCrypto; no IndexedDB there, so a
# key per process), proofs at the token endpoint and on every MCP request, both nonce
# challenges. At the 2026-07-28 wire (how the requirement set runs them; the driver's own
# stateless JSON-RPC sender, the SDK speaks only 2025-11-25) and at the SDK's wire.
dpop_pkg=tests/conformance/node_modules/conformance-0.2.0-alpha.12/dist/index.js
echo "== DPoP scenarios (conformance 0.2.0-alpha.12), client: ${wasm_client##*/}"
for s in auth/dpop auth/dpop-nonce; do
  for how in "2026-07-28|--wire 2026-07-28|--spec-version 2026-07-28 --force" "the MCP SDK 1.32 wire||"; do
    IFS='|' read -r label flag spec <<<"$how"
    log="$(mktemp)"
    # shellcheck disable=SC2086 # $spec and $flag are lists of words
    if node "$dpop_pkg" client --command "$wasm_client $flag" --scenario "$s" $spec >"$log" 2>&1 &&
       grep -q 'OVERALL: PASSED' "$log" && grep -q 'Passed: [0-9]*/[0-9]*, 0 failed, 0 warnings' "$log"; then
      echo "✓ $s at $label: $(grep -o 'Passed: [^,]*, [0-9]* failed, [0-9]* warnings' "$log"); $(grep -c 'sep-1932-client.*SUCCESS' "$log") DPoP checks"
    else
      echo "✗ $s at $label"; cat "$log" >&2; failed=1
    fi
    rm -f "$log"
  done
done
[ "$failed" = 0 ] || { echo "conformance DPoP scenarios FAILED" >&2; exit 1; }

