#!/usr/bin/env bash
# Runs a command (the browser crate's tests) with tests/echo-server.mjs up. Its URL reaches the
# test build as EDGE_OAUTH_ECHO_URL (read at compile time: the tests run inside the browser).
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp)"
node "$dir/echo-server.mjs" >"$out" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do
  [ -s "$out" ] && break
  sleep 0.1
done
url="$(head -n1 "$out")"
if [ -z "$url" ]; then
  echo "with-echo-server.sh: the echo server did not start" >&2
  exit 1
fi
EDGE_OAUTH_ECHO_URL="$url" "$@"
