#!/usr/bin/env bash
# The demo: a real local MCP deployment (oidc-provider + an MCP SDK server from tests/peers),
# and the CLI discovering it, logging in, calling tools, refreshing, and logging out.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build -q -p edge-oauth-cli
bin="${CARGO_TARGET_DIR:-$root/target}/debug/edge-oauth"
store="$(mktemp -d)"
ready="$(mktemp)"
node tests/peers/mcp-stack.mjs --quiet >"$ready" &
stack=$!
trap 'kill $stack 2>/dev/null || true; rm -rf "$store" "$ready"' EXIT
for _ in $(seq 100); do [ -s "$ready" ] && break; sleep 0.1; done
mcp="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).mcp)' "$ready")"
step() { printf '\n\033[1m$ edge-oauth %s\033[0m\n' "$*"; "$bin" --store "$store" "$@"; }

echo "Local MCP deployment: $(cat "$ready")"
step discover "$mcp"
step login --headless "$mcp"   # the test AS approves at once; drop --headless for a browser
step tools "$mcp"
step call "$mcp" whoami
step refresh "$mcp"
step list
step logout "$mcp"
