#!/usr/bin/env bash
# Smoke test for mcp-stack.mjs: drives the whole deployment with curl only
# (node is used just to read JSON and compute the PKCE challenge).
#   bash tests/peers/smoke.sh            # uses `node` from PATH
#   NODE=/path/to/node bash tests/peers/smoke.sh
# Exits non-zero on the first failure. Never prints token values.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE="${NODE:-node}"
WORK="$(mktemp -d)"
STACK_PID=""
PASSED=0

cleanup() {
  if [[ -n "$STACK_PID" ]] && kill -0 "$STACK_PID" 2>/dev/null; then
    kill -TERM "$STACK_PID" 2>/dev/null || true
    wait "$STACK_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [[ -s "$WORK/stack.err" ]]; then
    echo "--- stack stderr (last 40 lines) ---" >&2
    tail -n 40 "$WORK/stack.err" >&2
  fi
  echo "$PASSED passed, 1 failed" >&2
  exit 1
}
ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }

# jv EXPR: evaluate a JS expression over the JSON document on stdin (as `d`).
jv() {
  "$NODE" -e '
    const d = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const v = new Function("d", "return (" + process.argv[1] + ")")(d);
    process.stdout.write(v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  ' -- "$1"
}
# jwt_payload: decode (without verifying) the payload of the JWT on stdin.
jwt_payload() {
  "$NODE" -e '
    const t = require("fs").readFileSync(0, "utf8").trim();
    process.stdout.write(Buffer.from(t.split(".")[1], "base64url").toString());
  '
}
rand() { "$NODE" -e 'process.stdout.write(require("crypto").randomBytes(+process.argv[1]).toString("base64url"))' -- "$1"; }
s256() { "$NODE" -e 'process.stdout.write(require("crypto").createHash("sha256").update(process.argv[1]).digest("base64url"))' -- "$1"; }
urlenc() { "$NODE" -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' -- "$1"; }
# qparam URL NAME: a query parameter of URL (empty when absent).
qparam() { "$NODE" -e 'process.stdout.write(new URL(process.argv[1]).searchParams.get(process.argv[2]) ?? "")' -- "$1" "$2"; }

# http METHOD URL [curl args...]: sets $STATUS, $BODY, $HDRS (headers file).
http() {
  local method="$1" url="$2"; shift 2
  HDRS="$WORK/h.$RANDOM"
  local xm=()
  # GET and POST are left to curl (POST = a request with data), so that -L
  # turns the POST into a GET on a 303 the way a browser does.
  [[ "$method" == GET || "$method" == POST ]] || xm=(-X "$method")
  STATUS=$(curl -sS -o "$WORK/body" -D "$HDRS" -w '%{http_code}' "${xm[@]}" "$@" "$url") || fail "curl $method $url failed"
  BODY="$(cat "$WORK/body")"
}
header() { grep -i "^$1:" "$HDRS" | head -n1 | cut -d' ' -f2- | tr -d '\r'; }
expect_status() { [[ "$STATUS" == "$1" ]] || fail "$2: expected HTTP $1, got $STATUS: $BODY"; }

# ---------------------------------------------------------------------------
[[ -d "$HERE/node_modules/oidc-provider" ]] || fail "dependencies missing: run 'npm ci' in $HERE"
echo "# starting mcp-stack ($("$NODE" --version))"
"$NODE" "$HERE/mcp-stack.mjs" --quiet >"$WORK/stack.out" 2>"$WORK/stack.err" &
STACK_PID=$!
for _ in $(seq 1 100); do
  [[ -s "$WORK/stack.out" ]] && break
  kill -0 "$STACK_PID" 2>/dev/null || fail "mcp-stack exited early"
  sleep 0.1
done
[[ -s "$WORK/stack.out" ]] || fail "mcp-stack did not print its ready line"
READY="$(head -n1 "$WORK/stack.out")"
[[ "$(wc -l <"$WORK/stack.out")" -eq 1 ]] || fail "stdout has more than one line"
ISSUER="$(printf '%s\n' "$READY" | jv d.issuer)"
MCP="$(printf '%s\n' "$READY" | jv d.mcp)"
[[ "$ISSUER" == "http://127.0.0.1:$(printf '%s\n' "$READY" | jv d.as_port)" ]] || fail "issuer/as_port mismatch: $READY"
[[ "$MCP" == "http://127.0.0.1:$(printf '%s\n' "$READY" | jv d.mcp_port)/mcp" ]] || fail "mcp/mcp_port mismatch: $READY"
MCP_ORIGIN="${MCP%/mcp}"
ok "ready line: $READY"

# ---------------------------------------------------------------------------
# Discovery: MCP 401 -> protected resource metadata -> AS metadata
http POST "$MCP" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
expect_status 401 "unauthenticated MCP request"
WWW="$(header WWW-Authenticate)"
[[ "$WWW" == "Bearer resource_metadata=\"$MCP_ORIGIN/.well-known/oauth-protected-resource/mcp\"" ]] || fail "401 challenge: $WWW"
ok "MCP without token: 401, $WWW"

http GET "$MCP_ORIGIN/.well-known/oauth-protected-resource/mcp"
expect_status 200 "protected resource metadata"
[[ "$(printf '%s\n' "$BODY" | jv d.resource)" == "$MCP" ]] || fail "PRM resource: $BODY"
[[ "$(printf '%s\n' "$BODY" | jv 'd.authorization_servers[0]')" == "$ISSUER" ]] || fail "PRM authorization_servers: $BODY"
ok "protected resource metadata"

http GET "$ISSUER/.well-known/oauth-authorization-server"
expect_status 200 "AS metadata"
META="$BODY"
[[ "$(printf '%s\n' "$META" | jv d.issuer)" == "$ISSUER" ]] || fail "AS metadata issuer"
[[ "$(printf '%s\n' "$META" | jv 'd.code_challenge_methods_supported.join()')" == "S256" ]] || fail "PKCE methods"
[[ "$(printf '%s\n' "$META" | jv d.authorization_response_iss_parameter_supported)" == "true" ]] || fail "iss parameter support"
TOKEN_EP="$(printf '%s\n' "$META" | jv d.token_endpoint)"
AUTH_EP="$(printf '%s\n' "$META" | jv d.authorization_endpoint)"
REG_EP="$(printf '%s\n' "$META" | jv d.registration_endpoint)"
REVOKE_EP="$(printf '%s\n' "$META" | jv d.revocation_endpoint)"
DEVICE_EP="$(printf '%s\n' "$META" | jv d.device_authorization_endpoint)"
ok "AS metadata (RFC 8414)"

# ---------------------------------------------------------------------------
# Dynamic client registration: public native client, loopback redirect URI
http POST "$REG_EP" -H 'Content-Type: application/json' -d '{
  "application_type": "native",
  "client_name": "edge-oauth smoke",
  "redirect_uris": ["http://127.0.0.1/callback"],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "token_endpoint_auth_method": "none"
}'
expect_status 201 "registration"
CLIENT_ID="$(printf '%s\n' "$BODY" | jv d.client_id)"
[[ -n "$CLIENT_ID" && -z "$(printf '%s\n' "$BODY" | jv d.client_secret)" ]] || fail "registration response: $BODY"
ok "DCR: public native client registered"

# RFC 8252 7.3: any port on the loopback redirect URI is accepted
REDIRECT_URI="http://127.0.0.1:$((20000 + RANDOM % 20000))/callback"
COOKIES="$WORK/cookies.txt"

# authorize SCOPE [extra query]: runs the auto-approve chain with a cookie jar,
# following redirects by hand until one points at REDIRECT_URI. Sets $CALLBACK,
# $VERIFIER, $STATE.
authorize() {
  local scope="$1" extra="${2:-}"
  VERIFIER="$(rand 48)"
  STATE="$(rand 16)"
  local url="$AUTH_EP?response_type=code&client_id=$(urlenc "$CLIENT_ID")&redirect_uri=$(urlenc "$REDIRECT_URI")&scope=$(urlenc "$scope")&state=$STATE&code_challenge=$(s256 "$VERIFIER")&code_challenge_method=S256&resource=$(urlenc "$MCP")$extra"
  CALLBACK=""
  local hops=0 loc code
  while [[ $hops -lt 20 ]]; do
    hops=$((hops + 1))
    read -r code loc < <(curl -sS -o /dev/null -c "$COOKIES" -b "$COOKIES" -w '%{http_code} %{redirect_url}\n' "$url") \
      || fail "authorization chain: curl failed at hop $hops"
    [[ "$code" =~ ^30[1237]$ && -n "$loc" ]] || fail "authorization chain: hop $hops answered $code without redirect"
    if [[ "$loc" == "$REDIRECT_URI"* ]]; then CALLBACK="$loc"; return 0; fi
    url="$loc"
  done
  fail "authorization chain: more than 20 redirects"
}

# token_request FORM...: POST to the token endpoint (public client).
token_request() { http POST "$TOKEN_EP" -H 'Content-Type: application/x-www-form-urlencoded' "$@"; }

authorize "openid mcp:tools"
[[ "$(qparam "$CALLBACK" state)" == "$STATE" ]] || fail "state mismatch"
[[ "$(qparam "$CALLBACK" iss)" == "$ISSUER" ]] || fail "iss missing or wrong in callback"
CODE="$(qparam "$CALLBACK" code)"
[[ -n "$CODE" ]] || fail "no code in callback"
ok "authorization code flow via auto-approve (code, state, iss present)"

# PKCE is enforced: a wrong verifier fails
token_request --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "code_verifier=$(rand 48)" --data-urlencode "resource=$MCP"
expect_status 400 "token request with wrong PKCE verifier"
[[ "$(printf '%s\n' "$BODY" | jv d.error)" == "invalid_grant" ]] || fail "wrong verifier: $BODY"
ok "wrong code_verifier rejected (invalid_grant)"

# ...and the failed attempt did not burn a fresh code: get another one
authorize "openid mcp:tools"
CODE="$(qparam "$CALLBACK" code)"
token_request --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "code_verifier=$VERIFIER" --data-urlencode "resource=$MCP"
expect_status 200 "authorization_code exchange"
TOK="$BODY"
AT="$(printf '%s\n' "$TOK" | jv d.access_token)"
RT1="$(printf '%s\n' "$TOK" | jv d.refresh_token)"
[[ -n "$AT" && -n "$RT1" ]] || fail "token response lacks access_token/refresh_token (keys: $(printf '%s\n' "$TOK" | jv 'Object.keys(d).join()'))"
[[ "$(printf '%s\n' "$TOK" | jv d.token_type)" == "Bearer" ]] || fail "token_type"
[[ "$(printf '%s\n' "$TOK" | jv d.scope)" == "mcp:tools" ]] || fail "token response scope: $(printf '%s\n' "$TOK" | jv d.scope)"
CLAIMS="$(printf '%s\n' "$AT" | jwt_payload)"
[[ "$(printf '%s\n' "$CLAIMS" | jv d.aud)" == "$MCP" ]] || fail "access token aud: $CLAIMS"
[[ "$(printf '%s\n' "$CLAIMS" | jv d.iss)" == "$ISSUER" ]] || fail "access token iss"
[[ "$(printf '%s\n' "$CLAIMS" | jv d.sub)" == "test-user" ]] || fail "access token sub"
ok "code exchanged: JWT access token (aud=$MCP, scope=mcp:tools), refresh token, id_token=$([[ -n "$(printf '%s\n' "$TOK" | jv d.id_token)" ]] && echo yes || echo no)"

# mcp_call TOKEN JSON: POST a JSON-RPC message to the MCP server.
mcp_call() {
  http POST "$MCP" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2025-06-18' -d "$2"
}
# sse_json: the JSON of the first `data:` line of an SSE body (or the body itself).
sse_json() { if grep -q '^data: ' <<<"$BODY"; then grep -m1 '^data: ' <<<"$BODY" | cut -c7-; else echo "$BODY"; fi; }

mcp_call "$AT" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"smoke","version":"0"}}}'
expect_status 200 "MCP initialize"
mcp_call "$AT" '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
expect_status 200 "MCP tools/list"
TOOLS="$(sse_json | jv 'd.result.tools.map(t => t.name).sort().join()')"
[[ "$TOOLS" == "admin_note,echo,time,whoami" ]] || fail "tools/list: $BODY"
mcp_call "$AT" '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello edge"}}}'
expect_status 200 "MCP echo"
[[ "$(sse_json | jv 'd.result.content[0].text')" == "hello edge" ]] || fail "echo: $BODY"
mcp_call "$AT" '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
expect_status 200 "MCP whoami"
WHO="$(sse_json | jv 'd.result.content[0].text')"
[[ "$(printf '%s\n' "$WHO" | jv d.sub)" == "test-user" && "$(printf '%s\n' "$WHO" | jv 'd.scopes.join()')" == "mcp:tools" ]] || fail "whoami: $WHO"
ok "MCP with token: initialize, tools/list ($TOOLS), echo, whoami ($WHO)"
mcp_call "$AT" '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"time","arguments":{}}}'
expect_status 200 "MCP time"
[[ "$(sse_json | jv 'd.result.content[0].text')" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T ]] || fail "time: $BODY"
mcp_call "$AT" '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"admin_note","arguments":{"text":"x"}}}'
expect_status 403 "MCP admin_note without mcp:admin"
WWW="$(header WWW-Authenticate)"
[[ "$WWW" == "Bearer error=\"insufficient_scope\", scope=\"mcp:tools mcp:admin\", resource_metadata=\"$MCP_ORIGIN/.well-known/oauth-protected-resource/mcp\""* ]] || fail "admin_note challenge: $WWW"
ok "MCP time, admin_note without mcp:admin: 403, $WWW"

# ---------------------------------------------------------------------------
# Refresh twice with rotation, then replay the first refresh token
refresh() {
  token_request --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$1" \
    --data-urlencode "client_id=$CLIENT_ID" "${@:2}"
}
refresh "$RT1" --data-urlencode "resource=$MCP"
expect_status 200 "refresh #1"
RT2="$(printf '%s\n' "$BODY" | jv d.refresh_token)"
AT2="$(printf '%s\n' "$BODY" | jv d.access_token)"
[[ -n "$RT2" && "$RT2" != "$RT1" ]] || fail "refresh #1 did not rotate the refresh token"
[[ "$(printf '%s\n' "$AT2" | jwt_payload | jv d.aud)" == "$MCP" ]] || fail "refreshed access token aud"
refresh "$RT2"   # without resource: the granted resource is used
expect_status 200 "refresh #2"
RT3="$(printf '%s\n' "$BODY" | jv d.refresh_token)"
AT3="$(printf '%s\n' "$BODY" | jv d.access_token)"
[[ -n "$RT3" && "$RT3" != "$RT2" && "$RT3" != "$RT1" ]] || fail "refresh #2 did not rotate the refresh token"
[[ "$(printf '%s\n' "$AT3" | jwt_payload | jv d.aud)" == "$MCP" ]] || fail "refresh without resource: aud"
mcp_call "$AT3" '{"jsonrpc":"2.0","id":5,"method":"tools/list"}'
expect_status 200 "MCP with refreshed token"
ok "refreshed twice, refresh token rotated each time, JWT for the resource each time"

refresh "$RT1"
expect_status 400 "replay of rotated refresh token"
[[ "$(printf '%s\n' "$BODY" | jv d.error)" == "invalid_grant" ]] || fail "replay: $BODY"
ok "replayed first refresh token rejected: invalid_grant ($(printf '%s\n' "$BODY" | jv d.error_description))"
refresh "$RT3"
expect_status 400 "latest refresh token after replay"
[[ "$(printf '%s\n' "$BODY" | jv d.error)" == "invalid_grant" ]] || fail "after replay: $BODY"
mcp_call "$AT3" '{"jsonrpc":"2.0","id":6,"method":"tools/list"}'
expect_status 401 "MCP with token of revoked grant"
ok "reuse detection revoked the grant: latest refresh token invalid_grant, MCP answers 401"

# ---------------------------------------------------------------------------
# Revocation (RFC 7009): fresh grant, revoke its refresh token
authorize "mcp:tools"
token_request --data-urlencode grant_type=authorization_code --data-urlencode "code=$(qparam "$CALLBACK" code)" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "code_verifier=$VERIFIER"
expect_status 200 "second code exchange (no resource parameter)"
AT="$(printf '%s\n' "$BODY" | jv d.access_token)"
RT="$(printf '%s\n' "$BODY" | jv d.refresh_token)"
[[ "$(printf '%s\n' "$AT" | jwt_payload | jv d.aud)" == "$MCP" ]] || fail "exchange without resource: aud"
http POST "$REVOKE_EP" --data-urlencode "token=$AT" --data-urlencode token_type_hint=access_token --data-urlencode "client_id=$CLIENT_ID"
expect_status 400 "revoking a JWT access token"
[[ "$(printf '%s\n' "$BODY" | jv d.error)" == "unsupported_token_type" ]] || fail "JWT AT revocation: $BODY"
http POST "$REVOKE_EP" --data-urlencode "token=$RT" --data-urlencode token_type_hint=refresh_token --data-urlencode "client_id=$CLIENT_ID"
expect_status 200 "revoking the refresh token"
refresh "$RT"
expect_status 400 "refresh after revocation"
[[ "$(printf '%s\n' "$BODY" | jv d.error)" == "invalid_grant" ]] || fail "refresh after revocation: $BODY"
mcp_call "$AT" '{"jsonrpc":"2.0","id":7,"method":"tools/list"}'
expect_status 401 "MCP after revocation"
ok "revocation: refresh token revoked (JWT access tokens: unsupported_token_type), grant gone, MCP 401"

# ---------------------------------------------------------------------------
# insufficient_scope: a token without mcp:tools
authorize "openid"
token_request --data-urlencode grant_type=authorization_code --data-urlencode "code=$(qparam "$CALLBACK" code)" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "code_verifier=$VERIFIER" --data-urlencode "resource=$MCP"
expect_status 200 "code exchange for scope=openid"
mcp_call "$(printf '%s\n' "$BODY" | jv d.access_token)" '{"jsonrpc":"2.0","id":8,"method":"tools/list"}'
expect_status 403 "MCP with token lacking mcp:tools"
WWW="$(header WWW-Authenticate)"
[[ "$WWW" == *'error="insufficient_scope"'* && "$WWW" == *'scope="mcp:tools"'* && "$WWW" == *"resource_metadata=\"$MCP_ORIGIN/.well-known/oauth-protected-resource/mcp\""* ]] \
  || fail "403 challenge: $WWW"
ok "token without mcp:tools: 403, $WWW"

# Step-up: a token with mcp:admin may call admin_note
authorize "mcp:tools mcp:admin"
token_request --data-urlencode grant_type=authorization_code --data-urlencode "code=$(qparam "$CALLBACK" code)" \
  --data-urlencode "redirect_uri=$REDIRECT_URI" --data-urlencode "client_id=$CLIENT_ID" \
  --data-urlencode "code_verifier=$VERIFIER" --data-urlencode "resource=$MCP"
expect_status 200 "code exchange for scope=mcp:tools mcp:admin"
[[ "$(printf '%s\n' "$BODY" | jv d.scope)" == "mcp:tools mcp:admin" ]] || fail "step-up scope: $BODY"
mcp_call "$(printf '%s\n' "$BODY" | jv d.access_token)" '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"admin_note","arguments":{"text":"hi"}}}'
expect_status 200 "MCP admin_note with mcp:admin"
[[ "$(sse_json | jv 'd.result.content[0].text')" == "note saved by test-user: hi" ]] || fail "admin_note: $BODY"
ok "step-up: scope mcp:tools mcp:admin granted, admin_note answers"

# Error redirect (login_hint=deny) carries iss too
authorize "mcp:tools" "&login_hint=deny"
[[ "$(qparam "$CALLBACK" error)" == "access_denied" && "$(qparam "$CALLBACK" iss)" == "$ISSUER" && "$(qparam "$CALLBACK" state)" == "$STATE" ]] \
  || fail "deny redirect: $(qparam "$CALLBACK" error)"
ok "login_hint=deny: error=access_denied redirect with state and iss"

# ---------------------------------------------------------------------------
# Device flow (RFC 8628)
http POST "$REG_EP" -H 'Content-Type: application/json' -d '{
  "application_type": "native",
  "client_name": "edge-oauth smoke device",
  "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
  "response_types": [],
  "redirect_uris": [],
  "token_endpoint_auth_method": "none"
}'
expect_status 201 "device client registration"
DEV_CLIENT="$(printf '%s\n' "$BODY" | jv d.client_id)"

device_poll() {
  token_request --data-urlencode grant_type=urn:ietf:params:oauth:grant-type:device_code \
    --data-urlencode "device_code=$1" --data-urlencode "client_id=$DEV_CLIENT"
}
device_start() {
  http POST "$DEVICE_EP" --data-urlencode "client_id=$DEV_CLIENT" --data-urlencode "scope=mcp:tools" --data-urlencode "resource=$MCP"
  expect_status 200 "device authorization request"
  DEVICE_CODE="$(printf '%s\n' "$BODY" | jv d.device_code)"
  USER_CODE="$(printf '%s\n' "$BODY" | jv d.user_code)"
  VERIFY_URI="$(printf '%s\n' "$BODY" | jv d.verification_uri)"
  VERIFY_URI_COMPLETE="$(printf '%s\n' "$BODY" | jv d.verification_uri_complete)"
  [[ -n "$DEVICE_CODE" && -n "$USER_CODE" && -n "$VERIFY_URI_COMPLETE" ]] || fail "device authorization response: keys $(printf '%s\n' "$BODY" | jv 'Object.keys(d).join()')"
  device_poll "$DEVICE_CODE"
  expect_status 400 "device poll before approval"
  [[ "$(printf '%s\n' "$BODY" | jv d.error)" == "authorization_pending" ]] || fail "poll before approval: $BODY"
}
device_finish() {
  device_poll "$DEVICE_CODE"
  expect_status 200 "device token request after approval"
  local at rt
  at="$(printf '%s\n' "$BODY" | jv d.access_token)"
  rt="$(printf '%s\n' "$BODY" | jv d.refresh_token)"
  [[ -n "$rt" ]] || fail "device flow: no refresh token"
  [[ "$(printf '%s\n' "$at" | jwt_payload | jv d.aud)" == "$MCP" ]] || fail "device access token aud"
  mcp_call "$at" '{"jsonrpc":"2.0","id":9,"method":"tools/list"}'
  expect_status 200 "MCP with device-flow token"
  device_poll "$DEVICE_CODE"
  expect_status 400 "device code reuse"
  [[ "$(printf '%s\n' "$BODY" | jv d.error)" == "invalid_grant" ]] || fail "device code reuse: $BODY"
}

# (a) peer-only shortcut: POST /test/device/approve user_code=...
device_start
http POST "$ISSUER/test/device/approve" --data-urlencode "user_code=$USER_CODE"
expect_status 200 "POST /test/device/approve"
device_finish
ok "device flow approved via POST /test/device/approve, tokens work at MCP"

# (b) the browser path, scripted: GET verification_uri_complete with a cookie
#     jar, take the xsrf hidden input, POST it back with user_code and
#     confirm=yes, follow redirects (auto-approve interaction) to the success page.
device_start
DJAR="$WORK/device-cookies.txt"
http GET "$VERIFY_URI_COMPLETE" -c "$DJAR" -b "$DJAR"
expect_status 200 "GET verification_uri_complete"
XSRF="$(grep -o 'name="xsrf" value="[0-9a-f]*"' <<<"$BODY" | head -n1 | sed 's/.*value="//; s/"$//')"
[[ -n "$XSRF" ]] || fail "no xsrf on the verification page"
http POST "$VERIFY_URI" -c "$DJAR" -b "$DJAR" -L --max-redirs 20 \
  --data-urlencode "xsrf=$XSRF" --data-urlencode "user_code=$USER_CODE" --data-urlencode confirm=yes
expect_status 200 "device confirmation chain"
grep -q 'device-flow-approved' <<<"$BODY" || fail "device confirmation did not reach the success page: $BODY"
device_finish
ok "device flow approved via scripted verification page (xsrf + confirm=yes + redirects)"

# ---------------------------------------------------------------------------
http GET "$ISSUER/test/stats"
expect_status 200 "stats"
STATS="$BODY"
[[ "$(printf '%s\n' "$STATS" | jv 'd.token.by_grant_type.refresh_token.requests')" == "5" ]] || fail "stats refresh requests: $STATS"
[[ "$(printf '%s\n' "$STATS" | jv 'd.token.by_grant_type.refresh_token.ok')" == "2" ]] || fail "stats refresh ok: $STATS"
[[ "$(printf '%s\n' "$STATS" | jv 'd.token.by_grant_type.refresh_token.errors.invalid_grant')" == "3" ]] || fail "stats refresh invalid_grant: $STATS"
[[ "$(printf '%s\n' "$STATS" | jv 'd.revocation.requests')" == "2" && "$(printf '%s\n' "$STATS" | jv 'd.revocation.ok')" == "1" ]] || fail "stats revocation: $STATS"
[[ "$(printf '%s\n' "$STATS" | jv 'd.device_approvals')" == "1" ]] || fail "stats device approvals: $STATS"
ok "stats: $(printf '%s\n' "$STATS" | jv 'JSON.stringify(d.token.by_grant_type)')"
http POST "$ISSUER/test/stats/reset" -d ''
expect_status 204 "stats reset"
http GET "$ISSUER/test/stats"
[[ "$(printf '%s\n' "$BODY" | jv 'd.token.total')" == "0" ]] || fail "stats reset"
ok "stats reset"

# ---------------------------------------------------------------------------
kill -TERM "$STACK_PID"
RC=0; wait "$STACK_PID" || RC=$?
STACK_PID=""
[[ "$RC" -eq 0 ]] || fail "mcp-stack exited with $RC on SIGTERM"
ok "SIGTERM: clean exit"

echo "$PASSED passed, 0 failed"
