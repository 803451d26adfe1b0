// A whole authorization flow through the floor build's exports, against canned responses:
// discovery, scope, authorization URL, callback, code exchange, token response, session,
// refresh; refusals keep the core's codes; with the full exports also registration,
// revocation, challenges and a DPoP proof signed by WebCrypto and verified.
//
//   node smoke.mjs <glue.js> <wasm> <label>      (run by measure.sh after each build)
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import assert from "node:assert/strict";

const [glue, wasmPath, label = "floor"] = process.argv.slice(2);
const f = await import(pathToFileURL(glue).href);
f.initSync({ module: readFileSync(wasmPath) });
const full = typeof f.registrationRequest === "function";
const extras = typeof f.selectScope === "function";

const JSON_CT = ["content-type", "application/json"];
const server = "https://mcp.example.com/mcp";
const issuer = "https://as.example.com";
const redirect = "https://app.example.com/cb";
const throwsCode = (fn, code) =>
  assert.throws(fn, (e) => e.name === "EdgeOAuthError" && e.code === code && typeof e.recovery === "string", code);

// Discovery (RFC 9728, RFC 8414).
assert.deepEqual(f.protectedResourceMetadataUrls(server), [
  "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
  "https://mcp.example.com/.well-known/oauth-protected-resource",
]);
throwsCode(() => f.protectedResourceMetadataUrls("http://mcp.example.com/mcp"), "insecure_url");
const prmBody = { resource: server, authorization_servers: [issuer], scopes_supported: ["mcp:read"] };
const prm = f.processProtectedResourceMetadata(
  200, JSON_CT, JSON.stringify(prmBody), f.protectedResourceMetadataUrls(server)[0], server, "path", false);
assert.equal(JSON.parse(prm).resource, server);
throwsCode(() => f.processProtectedResourceMetadata(200, JSON_CT,
  JSON.stringify({ ...prmBody, resource: "https://evil.example.com/mcp" }), "https://mcp.example.com/x",
  server, "path", false), "resource_mismatch");
throwsCode(() => f.processProtectedResourceMetadata(200, ["content-type", "text/html"], "<html>",
  "https://mcp.example.com/x", server, "root", false), "unexpected_content_type");
const asUrls = f.authorizationServerMetadataUrls(issuer);
assert.deepEqual(asUrls.slice(0, 2), ["https://as.example.com/.well-known/oauth-authorization-server", "oauth"]);
const asmBody = {
  issuer,
  authorization_endpoint: `${issuer}/authorize`,
  token_endpoint: `${issuer}/token`,
  registration_endpoint: `${issuer}/reg`,
  revocation_endpoint: `${issuer}/revoke`,
  code_challenge_methods_supported: ["S256"],
  scopes_supported: ["mcp:read", "offline_access"],
  grant_types_supported: ["authorization_code", "refresh_token"],
  authorization_response_iss_parameter_supported: true,
  dpop_signing_alg_values_supported: ["ES256"],
};
const asm = f.processAuthorizationServerMetadata(200, JSON_CT, JSON.stringify(asmBody), asUrls[0], issuer);
throwsCode(() => f.processAuthorizationServerMetadata(200, JSON_CT,
  JSON.stringify({ ...asmBody, issuer: "https://other.example.com" }), asUrls[0], issuer), "issuer_mismatch");
throwsCode(() => f.processAuthorizationServerMetadata(200, JSON_CT,
  JSON.stringify({ ...asmBody, code_challenge_methods_supported: ["plain"] }), asUrls[0], issuer),
  "pkce_not_supported");
throwsCode(() => f.processAuthorizationServerMetadata(200, JSON_CT, "{", asUrls[0], issuer), "invalid_json");
if (extras) {
  assert.equal(JSON.parse(f.fallbackMetadata(server)).token_endpoint, "https://mcp.example.com/token");
  const challenge = JSON.parse(f.parseTokenChallenge(
    'Bearer error="insufficient_scope", scope="mcp:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"'));
  assert.equal(challenge.scope, "mcp:write");
}

// Scope, client, authorization URL (PKCE S256, state, resource).
const scope = extras ? f.selectScope(undefined, prm, asm) : "mcp:read offline_access";
assert.equal(scope, "mcp:read offline_access");
const client = full
  ? f.metadataDocumentClient(issuer, "https://app.example.com/client.json", redirect)
  : JSON.stringify({ issuer, client_id: "app", auth_method: "none", source: "pre_registered", redirect_uris: [redirect] });
const resource = JSON.parse(prm).resource;
const [authUrl, pending] = f.buildAuthorizationUrl(asm, client, redirect, scope, resource);
const q = new URL(authUrl).searchParams;
assert.equal(q.get("code_challenge_method"), "S256");
assert.equal(q.get("code_challenge"), f.s256Challenge(JSON.parse(pending).code_verifier));
assert.equal(q.get("resource"), resource);
const state = q.get("state");
const [verifier, challengeS256] = f.pkce();
assert.equal(f.s256Challenge(verifier), challengeS256);
assert.ok(f.randomToken(32).length >= 43);

// Callback and code exchange.
const iss = encodeURIComponent(issuer);
throwsCode(() => f.codeRequest(`${redirect}?code=c&state=wrong&iss=${iss}`, pending, `${issuer}/token`, client), "state_mismatch");
throwsCode(() => f.codeRequest(`${redirect}?code=c&state=${state}`, pending, `${issuer}/token`, client), "iss_missing");
throwsCode(() => f.codeRequest(`${redirect}?code=c&code=d&state=${state}&iss=${iss}`, pending, `${issuer}/token`, client), "duplicate_parameter");
const codeReq = f.codeRequest(`${redirect}?code=c1&state=${state}&iss=${iss}`, pending, `${issuer}/token`, client);
assert.equal(codeReq.method, "POST");
const form = new URLSearchParams(codeReq.body);
assert.equal(form.get("code"), "c1");
assert.equal(form.get("code_verifier"), JSON.parse(pending).code_verifier);
assert.equal(form.get("resource"), resource);

// Token response, session, refresh.
const tokenBody = { access_token: "at1", token_type: "bearer", expires_in: 3600, refresh_token: "rt1" };
const tokens = f.processTokenResponse(200, JSON_CT, JSON.stringify(tokenBody), `${issuer}/token`, undefined, scope, false);
assert.equal(JSON.parse(tokens).token_type, "Bearer");
throwsCode(() => f.processTokenResponse(400, JSON_CT, JSON.stringify({ error: "invalid_grant" }),
  `${issuer}/token`, undefined, scope, false), "oauth_error");
throwsCode(() => f.processTokenResponse(200, JSON_CT, JSON.stringify({ ...tokenBody, token_type: "DPoP" }),
  `${issuer}/token`, undefined, scope, false), "unsupported_token_type");
const refreshReq = f.refreshRequest(`${issuer}/token`, client, "rt1", undefined, resource);
assert.equal(new URLSearchParams(refreshReq.body).get("grant_type"), "refresh_token");
const refreshed = f.processTokenResponse(200, JSON_CT, JSON.stringify({ access_token: "at2", token_type: "Bearer" }),
  `${issuer}/token`, "rt1", scope, false);
assert.equal(JSON.parse(refreshed).refresh_token, "rt1");
if (extras) {
  assert.equal(f.salvageRefreshToken(200, JSON_CT, JSON.stringify({ refresh_token: "rt2" }), "rt1"), "rt2");
  const session = f.session(resource, server, issuer, JSON.parse(client).client_id, `${issuer}/token`,
    `${issuer}/revoke`, scope, tokens);
  assert.deepEqual(f.sessionAuthorization(session, 60), ["Bearer at1", "fresh"]);
  assert.equal(JSON.parse(f.sessionWithTokens(session, refreshed)).tokens.access_token, "at2");
}

if (full) {
  // Registration (RFC 7591), revocation (RFC 7009), scope unions, challenges.
  const meta = JSON.stringify({
    client_name: "Floor", redirect_uris: [redirect], application_type: "web",
    grant_types: ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
    response_types: ["code"], token_endpoint_auth_method: "none",
  });
  assert.equal(f.chooseAuthMethod("client_secret_basic", asm), "client_secret_basic");
  const reg = f.registrationRequest(asm, meta);
  assert.deepEqual(JSON.parse(reg.body).grant_types, ["authorization_code", "refresh_token"]);
  const creds = f.processRegistrationResponse(201, JSON_CT,
    JSON.stringify({ client_id: "dyn", client_secret: "s3", token_endpoint_auth_method: "client_secret_basic" }),
    `${issuer}/reg`, issuer, meta);
  const rev = f.revocationRequest(`${issuer}/revoke`, creds, "rt1", "refresh_token");
  assert.ok(rev.headers.some(([n, v]) => n === "Authorization" && v.startsWith("Basic ")));
  f.processRevocationResponse(200, [], "", `${issuer}/revoke`);
  throwsCode(() => f.processRevocationResponse(503, [], "", `${issuer}/revoke`), "unexpected_status");
  assert.equal(f.scopeUnion("a b", "b c"), "a b c");
  assert.equal(f.scopeContainsAll("a b c", "c a"), true);
  const all = JSON.parse(f.parseChallenges('DPoP algs="ES256", error="use_dpop_nonce", Bearer realm="x"'));
  assert.deepEqual(all.map((c) => c.scheme), ["DPoP", "Bearer"]);

  // DPoP (RFC 9449): the wasm builds the signing input, WebCrypto signs.
  assert.equal(f.useDpop("prefer", asm), true);
  const key = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  const jwk = await crypto.subtle.exportKey("jwk", key.publicKey);
  const input = f.dpopSigningInput("POST", `${issuer}/token?x=1`, "at1", "n1", jwk.x, jwk.y);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.privateKey,
    new TextEncoder().encode(input)));
  assert.ok(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key.publicKey, sig,
    new TextEncoder().encode(input)));
  const [h, p] = input.split(".").map((s) => JSON.parse(Buffer.from(s, "base64url").toString()));
  assert.equal(h.typ, "dpop+jwt");
  assert.equal(h.jwk.x, jwk.x);
  assert.equal(p.htu, `${issuer}/token`);
  assert.equal(p.ath, f.dpopAth("at1"));
  assert.equal(p.nonce, "n1");
  assert.equal(f.dpopHtu(`${issuer}/token?x#y`), `${issuer}/token`);
  assert.equal(f.jwkThumbprint(jwk.x, jwk.y).length, 43);
  assert.equal(f.signingInput('{"a":1}', '{"b":2}'), "eyJhIjoxfQ.eyJiIjoyfQ");
  assert.equal(f.newJti().length, 22);
  const nonceHeaders = [...JSON_CT, "DPoP-Nonce", "n2"];
  assert.equal(f.dpopResponseNonce(200, nonceHeaders, ""), "n2");
  assert.equal(f.tokenEndpointNonceChallenge(400, nonceHeaders, JSON.stringify({ error: "use_dpop_nonce" })), "n2");
  assert.equal(f.resourceNonceChallenge(401, [...nonceHeaders, "WWW-Authenticate", 'DPoP error="use_dpop_nonce"'], ""), "n2");
}
console.log(`smoke (${label}): ${full ? "full" : extras ? "minimum" : "bare"} flow passed`);
