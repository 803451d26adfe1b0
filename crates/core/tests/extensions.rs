//! The orchestrating client with the MCP authorization extensions, against a scripted
//! authorization server, enterprise IdP and MCP resource that check what real ones check:
//! client credentials (secret and `private_key_jwt`), the JWT bearer grant, the ID-JAG token
//! exchange, and DPoP with nonces at both servers. Runs natively and on wasm32.

#![allow(clippy::unwrap_used)] // test scaffolding

use std::cell::RefCell;
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use edge_oauth_core::dpop::{DpopPolicy, ath};
use edge_oauth_core::env::{ManualClock, RandomSource};
use edge_oauth_core::jws::{JwsAlgorithm, JwsSigner, PublicJwk, SignatureFuture, decode_segment};
use edge_oauth_core::pkce::s256_challenge;
use edge_oauth_core::registration::{ClientMetadata, TokenEndpointAuthMethod};
use edge_oauth_core::{
    AccessToken, Authorizer, ClientConfig, ClientSecret, CredentialStore, HttpClient, HttpRequest,
    HttpResponse, IdToken, IdentityAssertionGrant, JwtAssertion, MemoryStore, NonInteractiveGrant,
    OAuthClient, PreRegisteredClient, Result, Signer, TransportError, Url,
};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};

const MCP: &str = "https://mcp.example.com/mcp";
const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const ISSUER: &str = "https://as.example.com";
const TOKEN: &str = "https://as.example.com/token";
const IDP_TOKEN: &str = "https://idp.example.com/token";
const REDIRECT: &str = "http://127.0.0.1:7777/callback";
const WORKLOAD_JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3b3JrbG9hZCJ9.c2ln";
const ID_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.aWQ";
const ID_JAG: &str = "eyJ0eXAiOiJvYXV0aC1pZC1qYWcrand0In0.eyJzdWIiOiJ1c2VyIn0.amFn";

/// An ES256 key over p256.
struct Key(SigningKey);

impl Key {
    fn new(seed: u8) -> Self {
        let mut bytes = [seed; 32];
        bytes[0] = 1;
        Key(SigningKey::from_slice(&bytes).unwrap())
    }
}

impl JwsSigner for Key {
    fn algorithm(&self) -> JwsAlgorithm {
        JwsAlgorithm::Es256
    }
    fn public_jwk(&self) -> PublicJwk {
        let p = self.0.verifying_key().to_sec1_point(false);
        PublicJwk::Ec {
            crv: "P-256".into(),
            x: URL_SAFE_NO_PAD.encode(p.x().unwrap()),
            y: URL_SAFE_NO_PAD.encode(p.y().unwrap()),
        }
    }
    fn sign<'a>(&'a self, input: &'a [u8]) -> SignatureFuture<'a> {
        let sig: Signature = self.0.sign(input);
        Box::pin(std::future::ready(Ok(sig.to_bytes().to_vec())))
    }
}

/// Verifies a compact ES256 JWS with a public JWK; the header and claims when it holds.
fn verify(jwt: &str, jwk: &Map<String, Value>) -> Option<(Map<String, Value>, Map<String, Value>)> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts[..] else { return None };
    let coord = |k: &str| URL_SAFE_NO_PAD.decode(jwk.get(k)?.as_str()?).ok();
    let mut sec1 = vec![4u8];
    sec1.extend(coord("x")?);
    sec1.extend(coord("y")?);
    let key = VerifyingKey::from_sec1_bytes(&sec1).ok()?;
    let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    key.verify(format!("{h}.{c}").as_bytes(), &sig).ok()?;
    Some((decode_segment(h)?, decode_segment(c)?))
}

fn thumbprint(jwk: &Map<String, Value>) -> String {
    let s = |k: &str| jwk[k].as_str().unwrap().to_owned();
    PublicJwk::Ec {
        crv: s("crv"),
        x: s("x"),
        y: s("y"),
    }
    .thumbprint()
}

#[derive(Default)]
struct World {
    /// `dpop_signing_alg_values_supported`, when advertised.
    dpop_algs: Option<Vec<String>>,
    /// The authorization server accepts proofs (even when it does not advertise them).
    dpop_capable: bool,
    /// Nonces the servers insist on (RFC 9449 §8, §9).
    as_nonce: Option<String>,
    rs_nonce: Option<String>,
    /// The client's public key for `private_key_jwt`.
    client_jwk: Option<Map<String, Value>>,
    next: u32,
    /// access token -> the DPoP key thumbprint it is bound to ("" for bearer).
    access: BTreeMap<String, String>,
    refresh: BTreeMap<String, String>,
    codes: BTreeMap<String, (String, Option<String>)>, // code -> (challenge, dpop_jkt)
    assertion_jtis: Vec<String>,
    proof_jtis: Vec<String>,
    log: Vec<String>,
    token_forms: Vec<BTreeMap<String, String>>,
    token_auth: Vec<Option<String>>,
    idp_forms: Vec<BTreeMap<String, String>>,
    authorize_queries: Vec<BTreeMap<String, String>>,
    /// Problems a real server would refuse with; the test fails on any.
    problems: Vec<String>,
}

struct Fake(RefCell<World>);

impl Fake {
    fn new() -> Self {
        Fake(RefCell::new(World::default()))
    }

    fn problem(w: &mut World, p: impl Into<String>) -> HttpResponse {
        w.problems.push(p.into());
        HttpResponse::json(400, &json!({"error": "invalid_request"}))
    }

    /// Checks a DPoP proof (RFC 9449 §4.3); its key thumbprint when valid.
    fn check_proof(
        w: &mut World,
        r: &HttpRequest,
        htu: &str,
        token: Option<&str>,
    ) -> std::result::Result<String, String> {
        let proof = r.header("dpop").ok_or("no DPoP header")?;
        let header =
            decode_segment(proof.split('.').next().unwrap_or_default()).ok_or("proof header")?;
        let jwk = header
            .get("jwk")
            .and_then(Value::as_object)
            .ok_or("no jwk")?;
        if jwk.contains_key("d") {
            return Err("private key in the proof".into());
        }
        let (header, claims) = verify(proof, jwk).ok_or("proof signature")?;
        if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
            return Err("proof typ/alg".into());
        }
        if claims["htm"] != r.method.as_str() || claims["htu"] != htu {
            return Err(format!("htm/htu {} {}", claims["htm"], claims["htu"]));
        }
        let jti = claims["jti"].as_str().ok_or("no jti")?.to_owned();
        if w.proof_jtis.contains(&jti) {
            return Err("proof replayed".into());
        }
        w.proof_jtis.push(jti);
        let expected_ath = token.map(|t| ath(&AccessToken::new(t)));
        if claims.get("ath").and_then(Value::as_str) != expected_ath.as_deref() {
            return Err("ath".into());
        }
        Ok(thumbprint(jwk))
    }

    /// Issues tokens, bound to `jkt` when the request was proven.
    fn issue(w: &mut World, jkt: Option<String>, refresh: bool) -> HttpResponse {
        w.next += 1;
        let at = format!("at-{}", w.next);
        let bound = jkt.clone().unwrap_or_default();
        w.access.insert(at.clone(), bound.clone());
        let mut body = json!({
            "access_token": at,
            "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": 3600,
        });
        if refresh {
            let rt = format!("rt-{}", w.next);
            w.refresh.insert(rt.clone(), bound);
            body["refresh_token"] = rt.into();
        }
        HttpResponse::json(200, &body)
    }

    fn handle(&self, r: &HttpRequest) -> HttpResponse {
        let mut w = self.0.borrow_mut();
        let w = &mut *w;
        w.log.push(format!("{} {}", r.method.as_str(), r.url));
        let form: BTreeMap<String, String> = r.form_pairs().into_iter().collect();
        match r.url.as_str() {
            MCP => self.resource(w, r),
            // Other URLs of the resource: a path under it, a query (one protected resource).
            u if u
                .strip_prefix(MCP)
                .is_some_and(|t| t.starts_with(['/', '?'])) =>
            {
                self.resource(w, r)
            }
            PRM => HttpResponse::json(
                200,
                &json!({"resource": MCP, "authorization_servers": [ISSUER], "scopes_supported": ["mcp:tools"]}),
            ),
            "https://as.example.com/.well-known/oauth-authorization-server" => {
                let mut m = json!({
                    "issuer": ISSUER,
                    "authorization_endpoint": format!("{ISSUER}/authorize"),
                    "token_endpoint": TOKEN,
                    "registration_endpoint": format!("{ISSUER}/register"),
                    "revocation_endpoint": format!("{ISSUER}/revoke"),
                    "code_challenge_methods_supported": ["S256"],
                    "scopes_supported": ["mcp:tools", "offline_access"],
                    "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer"],
                    "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "private_key_jwt"],
                    "authorization_response_iss_parameter_supported": true,
                });
                if let Some(algs) = &w.dpop_algs {
                    m["dpop_signing_alg_values_supported"] = json!(algs);
                }
                HttpResponse::json(200, &m)
            }
            "https://as.example.com/revoke" => {
                // Only the private_key_jwt client revokes in these tests: it must authenticate.
                let jwk = w.client_jwk.clone().unwrap_or_default();
                match form.get("client_assertion").and_then(|a| verify(a, &jwk)) {
                    Some(_) => {
                        w.access.remove(&form["token"]);
                        HttpResponse::new(200, vec![], "")
                    }
                    None => HttpResponse::json(401, &json!({"error": "invalid_client"})),
                }
            }
            "https://as.example.com/register" => HttpResponse::json(
                201,
                &json!({"client_id": "public-1", "token_endpoint_auth_method": "none"}),
            ),
            TOKEN => {
                w.token_forms.push(form.clone());
                w.token_auth
                    .push(r.header("authorization").map(str::to_owned));
                self.token(w, r, &form)
            }
            IDP_TOKEN => {
                w.idp_forms.push(form.clone());
                let ok = form["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
                    && form["subject_token"] == ID_TOKEN
                    && form["subject_token_type"] == "urn:ietf:params:oauth:token-type:id_token"
                    && form["requested_token_type"] == "urn:ietf:params:oauth:token-type:id-jag"
                    && form["audience"] == ISSUER
                    && form.get("resource").map(String::as_str) == Some(MCP);
                if !ok {
                    return Fake::problem(w, format!("token exchange {form:?}"));
                }
                HttpResponse::json(
                    200,
                    &json!({"access_token": ID_JAG, "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag", "token_type": "N_A", "expires_in": 300}),
                )
            }
            _ => HttpResponse::new(404, vec![], "not found"),
        }
    }

    fn resource(&self, w: &mut World, r: &HttpRequest) -> HttpResponse {
        let dpop_mode = w.dpop_algs.is_some() || w.dpop_capable;
        let unauthorized = |w: &World, error: &str| {
            let scheme = if dpop_mode { "DPoP" } else { "Bearer" };
            let _ = w;
            HttpResponse::new(
                401,
                vec![(
                    "WWW-Authenticate".into(),
                    format!("{scheme} error=\"{error}\", resource_metadata=\"{PRM}\""),
                )],
                "",
            )
        };
        let Some(auth) = r.header("authorization") else {
            let scheme = if dpop_mode { "DPoP" } else { "Bearer" };
            return HttpResponse::new(
                401,
                vec![(
                    "WWW-Authenticate".into(),
                    format!("{scheme} resource_metadata=\"{PRM}\""),
                )],
                "",
            );
        };
        let (scheme, token) = auth.split_once(' ').unwrap();
        let Some(bound) = w.access.get(token).cloned() else {
            return unauthorized(w, "invalid_token");
        };
        match (scheme, bound.is_empty()) {
            ("Bearer", true) => {}
            ("DPoP", false) => {
                // `htu`: the request's URL without query and fragment (RFC 9449 §4.2).
                let htu = r
                    .url
                    .split(['?', '#'])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let jkt = match Fake::check_proof(w, r, &htu, Some(token)) {
                    Ok(j) => j,
                    Err(e) => return Fake::problem(w, format!("resource proof: {e}")),
                };
                if jkt != bound {
                    return unauthorized(w, "invalid_token");
                }
                if let Some(n) = w.rs_nonce.clone() {
                    let proof = r.header("dpop").unwrap();
                    let claims = decode_segment(proof.split('.').nth(1).unwrap()).unwrap();
                    if claims.get("nonce").and_then(Value::as_str) != Some(n.as_str()) {
                        return HttpResponse::new(
                            401,
                            vec![
                                (
                                    "WWW-Authenticate".into(),
                                    "DPoP error=\"use_dpop_nonce\", error_description=\"nonce\""
                                        .into(),
                                ),
                                ("DPoP-Nonce".into(), n),
                            ],
                            "",
                        );
                    }
                }
            }
            _ => {
                return Fake::problem(w, format!("{scheme} scheme for a token bound to {bound:?}"));
            }
        }
        HttpResponse::json(200, &json!({"ok": true}))
    }

    fn token(
        &self,
        w: &mut World,
        r: &HttpRequest,
        form: &BTreeMap<String, String>,
    ) -> HttpResponse {
        // DPoP first (RFC 9449 §5): a valid proof, with the nonce when one is required.
        let jkt = match r.header("dpop") {
            None => None,
            Some(_) if !w.dpop_capable => None, // a server without DPoP ignores the header
            Some(proof) => {
                let jkt = match Fake::check_proof(w, r, TOKEN, None) {
                    Ok(j) => j,
                    Err(e) => return Fake::problem(w, format!("token proof: {e}")),
                };
                if let Some(n) = w.as_nonce.clone() {
                    let claims = decode_segment(proof.split('.').nth(1).unwrap()).unwrap();
                    if claims.get("nonce").and_then(Value::as_str) != Some(n.as_str()) {
                        let mut resp = HttpResponse::json(
                            400,
                            &json!({"error": "use_dpop_nonce", "error_description": "nonce"}),
                        );
                        resp.headers.push(("DPoP-Nonce".into(), n));
                        return resp;
                    }
                }
                Some(jkt)
            }
        };
        let basic = |w: &World| {
            let _ = w;
            r.header("authorization")
                == Some(&format!("Basic {}", STANDARD.encode("machine-1:s3cret")))
        };
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {
                let authenticated = if let Some(a) = form.get("client_assertion") {
                    let Some(jwk) = w.client_jwk.clone() else {
                        return Fake::problem(w, "unexpected assertion");
                    };
                    let Some((_, c)) = verify(a, &jwk) else {
                        return Fake::problem(w, "assertion signature");
                    };
                    let jti = c["jti"].as_str().unwrap().to_owned();
                    let ok = form.get("client_assertion_type").map(String::as_str)
                        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                        && c["iss"] == "machine-1"
                        && c["sub"] == "machine-1"
                        && c["aud"] == ISSUER
                        && !w.assertion_jtis.contains(&jti);
                    w.assertion_jtis.push(jti);
                    ok
                } else {
                    basic(w)
                };
                if !authenticated || form.get("resource").map(String::as_str) != Some(MCP) {
                    return HttpResponse::json(401, &json!({"error": "invalid_client"}));
                }
                Fake::issue(w, jkt, false)
            }
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
                let assertion = form.get("assertion").map(String::as_str);
                let ok = match assertion {
                    Some(WORKLOAD_JWT) => !form.contains_key("client_id"),
                    Some(ID_JAG) => basic(w),
                    _ => false,
                };
                if !ok || form.get("resource").map(String::as_str) != Some(MCP) {
                    return HttpResponse::json(400, &json!({"error": "invalid_grant"}));
                }
                Fake::issue(w, jkt, false)
            }
            Some("authorization_code") => {
                let Some((challenge, code_jkt)) = w.codes.remove(&form["code"]) else {
                    return HttpResponse::json(400, &json!({"error": "invalid_grant"}));
                };
                if s256_challenge(&form["code_verifier"]) != challenge || code_jkt != jkt {
                    return HttpResponse::json(400, &json!({"error": "invalid_grant"}));
                }
                Fake::issue(w, jkt, true)
            }
            Some("refresh_token") => match w.refresh.remove(&form["refresh_token"]) {
                // A bound refresh token is redeemed only with a proof by its key.
                Some(bound) if bound == jkt.clone().unwrap_or_default() => {
                    Fake::issue(w, jkt, true)
                }
                _ => HttpResponse::json(400, &json!({"error": "invalid_grant"})),
            },
            _ => HttpResponse::json(400, &json!({"error": "unsupported_grant_type"})),
        }
    }
}

impl HttpClient for Fake {
    async fn send(
        &self,
        request: HttpRequest,
    ) -> std::result::Result<HttpResponse, TransportError> {
        Ok(self.handle(&request))
    }
}

/// Approves at once, as the AS would (code, state, iss); refuses when `forbidden`.
struct Approve<'a>(&'a Fake, bool);

impl Authorizer for Approve<'_> {
    fn redirect_uri(&self) -> String {
        REDIRECT.into()
    }
    async fn authorize(&self, url: &Url) -> Result<String> {
        assert!(
            !self.1,
            "a grant without a user must not reach the authorizer"
        );
        let mut w = self.0.0.borrow_mut();
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        w.next += 1;
        let code = format!("code-{}", w.next);
        w.codes.insert(
            code.clone(),
            (q["code_challenge"].clone(), q.get("dpop_jkt").cloned()),
        );
        w.authorize_queries.push(q.clone());
        let mut cb = Url::parse(&q["redirect_uri"]).unwrap();
        cb.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &q["state"])
            .append_pair("iss", ISSUER);
        Ok(cb.to_string())
    }
}

struct Counter(std::cell::Cell<u8>);
impl RandomSource for Counter {
    fn fill_bytes(&self, d: &mut [u8]) -> Result<()> {
        for b in d {
            self.0.set(self.0.get().wrapping_add(13));
            *b = self.0.get();
        }
        Ok(())
    }
}

type Client<'a> = OAuthClient<&'a Fake, MemoryStore, Approve<'a>, Counter, &'a ManualClock>;

fn config() -> ClientConfig {
    ClientConfig::new(ClientMetadata::native("ext-test", REDIRECT))
}

fn machine(secret: Option<&str>, method: Option<TokenEndpointAuthMethod>) -> PreRegisteredClient {
    PreRegisteredClient {
        issuer: Some(ISSUER.into()),
        client_id: "machine-1".into(),
        client_secret: secret.map(ClientSecret::new),
        auth_method: method,
    }
}

fn client_with<'a>(fake: &'a Fake, clock: &'a ManualClock, config: ClientConfig) -> Client<'a> {
    let no_user = config.grant.is_some();
    OAuthClient::new(
        fake,
        MemoryStore::new(),
        Approve(fake, no_user),
        Counter(Default::default()),
        clock,
        config,
    )
}

fn call() -> HttpRequest {
    HttpRequest::post_json(
        MCP,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
}

fn problems(fake: &Fake) -> Vec<String> {
    fake.0.borrow().problems.clone()
}

#[cfg(not(target_arch = "wasm32"))]
fn run<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

macro_rules! flow_test {
    ($name:ident, $body:expr) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            run($body)
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            $body.await
        }
    };
}

flow_test!(client_credentials_with_a_secret, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let mut cfg = config();
    cfg.grant = Some(NonInteractiveGrant::ClientCredentials);
    cfg.pre_registered.push(machine(Some("s3cret"), None));
    let c = client_with(&fake, &clock, cfg);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    {
        let w = fake.0.borrow();
        assert_eq!(
            w.log,
            [
                format!("POST {MCP}"),
                format!("GET {PRM}"),
                "GET https://as.example.com/.well-known/oauth-authorization-server".into(),
                format!("POST {TOKEN}"),
                format!("POST {MCP}"),
            ]
        );
        let f = &w.token_forms[0];
        assert_eq!(f["grant_type"], "client_credentials");
        assert_eq!(f["resource"], MCP);
        assert!(!f.contains_key("client_secret"));
        // The resource's scopes; no offline_access (no user, no refresh token to consent to).
        assert_eq!(f["scope"], "mcp:tools");
    }
    let session = c.store().load_session(MCP).await.unwrap().unwrap();
    assert_eq!(session.client_id, "machine-1");
    assert!(session.tokens.refresh_token.is_none());
    // Reused while valid; once expired, simply requested again (there is nothing to refresh).
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    assert_eq!(fake.0.borrow().token_forms.len(), 1);
    clock.advance(3_600);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let w = fake.0.borrow();
    assert_eq!(w.token_forms.len(), 2);
    assert_eq!(w.token_forms[1]["grant_type"], "client_credentials");
    assert!(w.problems.is_empty(), "{:?}", w.problems);
});

flow_test!(client_credentials_with_private_key_jwt, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let key = Key::new(11);
    fake.0.borrow_mut().client_jwk = key.public_jwk().to_json().as_object().cloned();
    let mut cfg = config();
    cfg.grant = Some(NonInteractiveGrant::ClientCredentials);
    cfg.pre_registered
        .push(machine(None, Some(TokenEndpointAuthMethod::PrivateKeyJwt)));
    cfg.client_assertion_signer = Some(Signer::new(key));
    let c = client_with(&fake, &clock, cfg);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    clock.advance(3_600);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    {
        let w = fake.0.borrow();
        // Two token requests, each with a fresh assertion (distinct jti), no Basic header.
        assert_eq!(w.assertion_jtis.len(), 2);
        assert_eq!(w.token_auth, [None, None]);
        assert!(w.problems.is_empty(), "{:?}", w.problems);
    }
    // Revocation authenticates the same way.
    let out = c.logout(MCP).await.unwrap();
    assert_eq!((out.revoked, out.deleted), (1, true));
    assert!(out.revocation_error.is_none());
});

flow_test!(
    private_key_jwt_without_a_signer_is_a_configuration_error,
    async {
        let fake = Fake::new();
        let clock = ManualClock::new(1_000_000);
        let mut cfg = config();
        cfg.grant = Some(NonInteractiveGrant::ClientCredentials);
        cfg.pre_registered
            .push(machine(None, Some(TokenEndpointAuthMethod::PrivateKeyJwt)));
        let c = client_with(&fake, &clock, cfg);
        let e = c.send(call()).await.unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert!(fake.0.borrow().token_forms.is_empty());
    }
);

flow_test!(workload_jwt_bearer, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let mut cfg = config();
    cfg.grant = Some(NonInteractiveGrant::JwtBearer {
        assertion: JwtAssertion::new(WORKLOAD_JWT),
    });
    let c = client_with(&fake, &clock, cfg);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let w = fake.0.borrow();
    let f = &w.token_forms[0];
    assert_eq!(
        f["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(f["assertion"], WORKLOAD_JWT);
    assert_eq!(f["resource"], MCP);
    assert!(w.problems.is_empty(), "{:?}", w.problems);
});

flow_test!(
    a_rejected_assertion_is_surfaced_without_retry_or_fallback,
    async {
        let fake = Fake::new();
        let clock = ManualClock::new(1_000_000);
        let mut cfg = config();
        cfg.grant = Some(NonInteractiveGrant::JwtBearer {
            assertion: JwtAssertion::new("eyJ.expired.jwt"),
        });
        let c = client_with(&fake, &clock, cfg);
        let e = c.send(call()).await.unwrap_err();
        assert_eq!(e.oauth_code().unwrap().as_str(), "invalid_grant");
        let w = fake.0.borrow();
        assert_eq!(w.token_forms.len(), 1, "one token request, no retry");
        assert!(
            w.authorize_queries.is_empty(),
            "no fall back to the code flow"
        );
    }
);

flow_test!(enterprise_managed_authorization, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let mut cfg = config();
    cfg.grant = Some(NonInteractiveGrant::IdentityAssertion(
        IdentityAssertionGrant {
            idp_token_endpoint: IDP_TOKEN.into(),
            idp_client_id: "idp-client".into(),
            idp_client_secret: None,
            id_token: IdToken::new(ID_TOKEN),
        },
    ));
    cfg.pre_registered.push(PreRegisteredClient {
        issuer: None,
        ..machine(Some("s3cret"), None)
    });
    let c = client_with(&fake, &clock, cfg);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let w = fake.0.borrow();
    assert_eq!(w.idp_forms.len(), 1);
    assert_eq!(w.idp_forms[0]["client_id"], "idp-client");
    let f = &w.token_forms[0];
    assert_eq!(
        f["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(f["assertion"], ID_JAG);
    assert!(w.token_auth[0].as_deref().unwrap().starts_with("Basic "));
    assert!(w.problems.is_empty(), "{:?}", w.problems);
});

fn dpop_world(fake: &Fake, advertise: bool) {
    let mut w = fake.0.borrow_mut();
    w.dpop_capable = true;
    if advertise {
        w.dpop_algs = Some(vec!["ES256".into()]);
    }
}

flow_test!(dpop_code_flow_with_nonces_and_refresh, async {
    let fake = Fake::new();
    dpop_world(&fake, true);
    {
        let mut w = fake.0.borrow_mut();
        w.as_nonce = Some("as-nonce-1".into());
        w.rs_nonce = Some("rs-nonce-1".into());
    }
    let clock = ManualClock::new(1_000_000);
    let key = Key::new(21);
    let jkt = key.public_jwk().thumbprint();
    let mut cfg = config();
    cfg.dpop = DpopPolicy::Prefer;
    cfg.dpop_signer = Some(Signer::new(key));
    let c = client_with(&fake, &clock, cfg);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let session = c.store().load_session(MCP).await.unwrap().unwrap();
    assert!(session.tokens.is_dpop());
    {
        let w = fake.0.borrow();
        assert_eq!(w.authorize_queries[0]["scope"], "mcp:tools offline_access");
        assert!(w.problems.is_empty(), "{:?}", w.problems);
        // The code is bound to the key (RFC 9449 §10).
        assert_eq!(w.authorize_queries[0]["dpop_jkt"], jkt);
        // The token endpoint's nonce challenge answered once: two code requests.
        assert_eq!(w.token_forms.len(), 2);
        let mcp: Vec<&String> = w.log.iter().filter(|l| l.ends_with(MCP)).collect();
        // Unauthenticated, the nonce challenge, then with the nonce.
        assert_eq!(mcp.len(), 3);
    }
    // The nonces are remembered: the next call goes through at once.
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    assert_eq!(
        fake.0
            .borrow()
            .log
            .iter()
            .filter(|l| l.ends_with(MCP))
            .count(),
        4
    );
    // Refresh with the same key (the refresh token is bound to it), then use the new token.
    clock.advance(3_590);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let w = fake.0.borrow();
    assert_eq!(w.token_forms.last().unwrap()["grant_type"], "refresh_token");
    assert!(w.problems.is_empty(), "{:?}", w.problems);
});

flow_test!(dpop_is_preferred_only_where_advertised, async {
    let fake = Fake::new();
    dpop_world(&fake, false);
    let clock = ManualClock::new(1_000_000);
    let mut cfg = config();
    cfg.dpop = DpopPolicy::Prefer;
    cfg.dpop_signer = Some(Signer::new(Key::new(22)));
    let c = client_with(&fake, &clock, cfg);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let session = c.store().load_session(MCP).await.unwrap().unwrap();
    assert!(!session.tokens.is_dpop());
    assert!(!fake.0.borrow().authorize_queries[0].contains_key("dpop_jkt"));
});

flow_test!(dpop_required_refuses_a_bearer_token, async {
    // An AS that ignores proofs and issues bearer tokens.
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let mut cfg = config();
    cfg.grant = Some(NonInteractiveGrant::ClientCredentials);
    cfg.pre_registered.push(machine(Some("s3cret"), None));
    cfg.dpop = DpopPolicy::Require;
    cfg.dpop_signer = Some(Signer::new(Key::new(23)));
    let c = client_with(&fake, &clock, cfg);
    assert_eq!(c.send(call()).await.unwrap_err().code(), "dpop_not_bound");
    // Where it does bind tokens, client credentials come back DPoP-bound and are presented so.
    dpop_world(&fake, true);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    assert!(
        c.store()
            .load_session(MCP)
            .await
            .unwrap()
            .unwrap()
            .tokens
            .is_dpop()
    );
    assert!(problems(&fake).is_empty(), "{:?}", problems(&fake));
});

flow_test!(dpop_tokens_need_the_key, async {
    let fake = Fake::new();
    dpop_world(&fake, true);
    let clock = ManualClock::new(1_000_000);
    let mut cfg = config();
    cfg.dpop = DpopPolicy::Prefer;
    cfg.dpop_signer = Some(Signer::new(Key::new(24)));
    let c = client_with(&fake, &clock, cfg.clone());
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let session = c.store().load_session(MCP).await.unwrap().unwrap();
    // The same session in a client without the key: it cannot present the token.
    cfg.dpop_signer = None;
    cfg.dpop = DpopPolicy::Off;
    let other = client_with(&fake, &clock, cfg);
    other.store().save_session(&session).await.unwrap();
    let e = other
        .authorization_headers(
            MCP,
            edge_oauth_core::Method::Post,
            MCP,
            &session.tokens.access_token,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "dpop_key_mismatch");
});

flow_test!(dpop_session_is_the_servers_for_urls_under_it, async {
    let fake = Fake::new();
    dpop_world(&fake, true);
    let clock = ManualClock::new(1_000_000);
    let mut cfg = config();
    cfg.dpop = DpopPolicy::Prefer;
    cfg.dpop_signer = Some(Signer::new(Key::new(26)));
    let c = client_with(&fake, &clock, cfg.clone());
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let session = c.store().load_session(MCP).await.unwrap().unwrap();
    assert!(session.tokens.is_dpop());
    let token = &session.tokens.access_token;
    // A URL under the server with a query: the session stored under the server's URL decides,
    // so the bound token goes with the DPoP scheme and a proof whose htu has no query.
    let sub = format!("{MCP}/sub?x=1");
    let headers = c
        .authorization_headers(MCP, edge_oauth_core::Method::Post, &sub, token)
        .await
        .unwrap();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(
        get("Authorization"),
        Some(format!("DPoP {}", token.secret()))
    );
    let proof = get("DPoP").expect("a DPoP proof");
    let claims = decode_segment(proof.split('.').nth(1).unwrap()).unwrap();
    assert_eq!(claims["htu"], format!("{MCP}/sub"));
    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["ath"], ath(token));
    // send_to: the server's session for a request with a query, accepted by the resource.
    let with_query = HttpRequest::post_json(
        format!("{MCP}?x=1"),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    let authorizations = fake.0.borrow().authorize_queries.len();
    assert_eq!(c.send_to(MCP, with_query).await.unwrap().status, 200);
    assert_eq!(fake.0.borrow().authorize_queries.len(), authorizations);
    assert!(problems(&fake).is_empty(), "{:?}", problems(&fake));
    // Never another origin or a path beside the server's.
    for elsewhere in [
        "https://other.example.com/mcp",
        "https://mcp.example.com/mcpx",
        "https://mcp.example.com/",
    ] {
        let e = c
            .send_to(MCP, HttpRequest::post_json(elsewhere, &json!({})))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_url", "{elsewhere}");
    }
    // Fail closed: DPoP on and no session of that server stored: no Bearer fallback.
    let fresh = client_with(&fake, &clock, cfg.clone());
    let e = fresh
        .authorization_headers(MCP, edge_oauth_core::Method::Post, &sub, token)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "dpop_session_missing");
    // With DPoP off there is nothing to be bound: Bearer.
    cfg.dpop = DpopPolicy::Off;
    cfg.dpop_signer = None;
    let off = client_with(&fake, &clock, cfg);
    let headers = off
        .authorization_headers(MCP, edge_oauth_core::Method::Post, &sub, token)
        .await
        .unwrap();
    assert_eq!(
        headers,
        vec![("Authorization".into(), format!("Bearer {}", token.secret()))]
    );
});

flow_test!(dpop_required_does_not_reuse_bearer_tokens, async {
    let fake = Fake::new();
    dpop_world(&fake, false);
    let clock = ManualClock::new(1_000_000);
    let a = client_with(&fake, &clock, config());
    assert_eq!(a.send(call()).await.unwrap().status, 200);
    let bearer = a.store().load_session(MCP).await.unwrap().unwrap();
    assert!(!bearer.tokens.is_dpop());
    // The same session where DPoP is now required: a new, bound authorization.
    let mut cfg = config();
    cfg.dpop = DpopPolicy::Require;
    cfg.dpop_signer = Some(Signer::new(Key::new(25)));
    let b = client_with(&fake, &clock, cfg);
    b.store().save_session(&bearer).await.unwrap();
    assert_eq!(b.send(call()).await.unwrap().status, 200);
    assert!(
        b.store()
            .load_session(MCP)
            .await
            .unwrap()
            .unwrap()
            .tokens
            .is_dpop()
    );
    let w = fake.0.borrow();
    assert_eq!(w.authorize_queries.len(), 2);
    assert!(
        !w.token_forms
            .iter()
            .any(|f| f["grant_type"] == "refresh_token")
    );
    assert!(w.problems.is_empty(), "{:?}", w.problems);
});
