//! Grants with no user at an authorization endpoint: client credentials (RFC 6749 §4.4), the
//! JWT bearer grant (RFC 7523 §2.1) for workload identity, and enterprise-managed
//! authorization — a token exchange (RFC 8693) of an ID token at the enterprise IdP for an
//! Identity Assertion JWT Authorization Grant (ID-JAG), then the JWT bearer grant with it.
//! Also JWT client authentication (`private_key_jwt`, RFC 7523 §2.2 and §3).
//!
//! Each step is a request builder and a response processor; token responses are checked by
//! [`crate::token::process_token_response`] (or `_with` after a DPoP proof). These grants
//! issue no refresh token as a rule: an expired access token is simply requested again.

use serde_json::{Map, Value};

use crate::env::{Clock, RandomSource};
use crate::error::{Error, Result};
use crate::http::{self, HttpRequest, HttpResponse, truncate};
use crate::jws::{JwsSigner, new_jti, sign_compact};
use crate::registration::ClientCredentials;
use crate::secret::{ClientAssertion, IdToken, JwtAssertion};

/// `grant_type` of the client credentials grant (RFC 6749 §4.4.2).
pub const CLIENT_CREDENTIALS_GRANT: &str = "client_credentials";
/// `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `grant_type` of a token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// `client_assertion_type` for a JWT (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Token type URI of an OpenID Connect ID token (RFC 8693 §3).
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// Token type URI of an Identity Assertion JWT Authorization Grant
/// (draft-ietf-oauth-identity-assertion-authz-grant §4.3).
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// How long a client assertion is valid: a minute is enough for one request (RFC 7523 §3
/// asks for an expiry; a short one limits replay).
pub const CLIENT_ASSERTION_LIFETIME_SECS: u64 = 60;

/// The claims of a client assertion (RFC 7523 §3, OpenID Connect Core §9): `iss` and `sub`
/// are the client, `aud` the authorization server's issuer identifier, with a unique `jti`,
/// `iat` and a short `exp`. The issuer rather than the token endpoint URL as `aud`: the
/// single value every server must accept, and the one draft-ietf-oauth-rfc7523bis requires
/// (an endpoint URL as audience let one server's assertions be replayed at another).
pub fn client_assertion_claims(client_id: &str, issuer: &str, now: u64, jti: &str) -> Value {
    // Member by member rather than with `json!`, whose `to_value(..).unwrap()` per member
    // brings serde_json's error formatting into the wasm.
    let mut claims = Map::new();
    claims.insert("iss".into(), client_id.into());
    claims.insert("sub".into(), client_id.into());
    claims.insert("aud".into(), issuer.into());
    claims.insert("jti".into(), jti.into());
    claims.insert("iat".into(), now.into());
    claims.insert(
        "exp".into(),
        now.saturating_add(CLIENT_ASSERTION_LIFETIME_SECS).into(),
    );
    Value::Object(claims)
}

/// A signed client assertion for `client_id` at the authorization server `issuer`
/// (RFC 7523 §2.2): one per request, since servers may refuse a `jti` seen before.
pub async fn client_assertion(
    signer: &dyn JwsSigner,
    client_id: &str,
    issuer: &str,
    clock: &impl Clock,
    rng: &impl RandomSource,
) -> Result<ClientAssertion> {
    let claims = client_assertion_claims(client_id, issuer, clock.now(), &new_jti(rng)?);
    let mut header = Map::new();
    header.insert("typ".into(), "JWT".into());
    sign_compact(signer, Value::Object(header), &claims)
        .await
        .map(ClientAssertion::new)
}

/// Adds `client_assertion_type` and `client_assertion` (RFC 7523 §2.2) to a form-encoded
/// token-endpoint request built for a `private_key_jwt` client.
pub fn with_client_assertion(request: HttpRequest, assertion: &ClientAssertion) -> HttpRequest {
    let mut request = request;
    let mut pairs = request.form_pairs();
    pairs.retain(|(k, _)| k != "client_assertion" && k != "client_assertion_type");
    pairs.push(("client_assertion_type".into(), CLIENT_ASSERTION_TYPE.into()));
    pairs.push(("client_assertion".into(), assertion.secret().to_owned()));
    let body = crate::url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    request.body = Some(body.into_bytes());
    request
}

fn with_scope_and_resource(
    pairs: &mut Vec<(&'static str, String)>,
    scope: Option<&str>,
    resource: Option<&str>,
) {
    if let Some(s) = scope.filter(|s| !s.is_empty()) {
        pairs.push(("scope", s.to_owned()));
    }
    if let Some(r) = resource {
        pairs.push(("resource", r.to_owned()));
    }
}

/// The client credentials grant (RFC 6749 §4.4.2): the client asks for a token for itself,
/// authenticated as `client` says (a `private_key_jwt` client adds its assertion with
/// [`with_client_assertion`]), for `resource` (RFC 8707 §2.1) and `scope`.
pub fn client_credentials_request(
    token_endpoint: &str,
    client: &ClientCredentials,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<HttpRequest> {
    http::parse_secure_url(token_endpoint)?;
    let mut pairs = vec![("grant_type", CLIENT_CREDENTIALS_GRANT.to_owned())];
    with_scope_and_resource(&mut pairs, scope, resource);
    Ok(client.authenticate(HttpRequest::post_form(token_endpoint, []), pairs))
}

/// The JWT bearer grant (RFC 7523 §2.1): `assertion` — a workload's platform-issued JWT, or an
/// ID-JAG — exchanged for an access token for `resource`. Client authentication is optional
/// here (§3.1): with `client`, as it says; without, the assertion alone identifies the caller
/// (workload identity federation needs no client registration).
pub fn jwt_bearer_request(
    token_endpoint: &str,
    assertion: &JwtAssertion,
    client: Option<&ClientCredentials>,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<HttpRequest> {
    http::parse_secure_url(token_endpoint)?;
    if assertion.secret().split('.').count() != 3 {
        return Err(Error::InvalidInput {
            reason: "the JWT bearer assertion is not a compact JWT",
        });
    }
    let mut pairs = vec![
        ("grant_type", JWT_BEARER_GRANT.to_owned()),
        ("assertion", assertion.secret().to_owned()),
    ];
    with_scope_and_resource(&mut pairs, scope, resource);
    let request = HttpRequest::post_form(token_endpoint, []);
    Ok(match client {
        Some(c) => c.authenticate(request, pairs),
        None => {
            let body = crate::url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            HttpRequest {
                body: Some(body.into_bytes()),
                ..request
            }
        }
    })
}

/// The token exchange for an ID-JAG at the enterprise IdP (RFC 8693 §2.1, as profiled by
/// draft-ietf-oauth-identity-assertion-authz-grant §4.3 and the MCP enterprise-managed
/// authorization extension §4): the user's `id_token` as subject token, the MCP server's
/// authorization server `issuer` as `audience`, the MCP server's `resource`, and `scope`.
/// `client` is this application's client at the IdP.
pub fn id_jag_request(
    idp_token_endpoint: &str,
    client: &ClientCredentials,
    id_token: &IdToken,
    audience: &str,
    resource: Option<&str>,
    scope: Option<&str>,
) -> Result<HttpRequest> {
    http::parse_secure_url(idp_token_endpoint)?;
    let mut pairs = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT.to_owned()),
        ("requested_token_type", ID_JAG_TOKEN_TYPE.to_owned()),
        ("audience", audience.to_owned()),
        ("subject_token", id_token.secret().to_owned()),
        ("subject_token_type", ID_TOKEN_TYPE.to_owned()),
    ];
    with_scope_and_resource(&mut pairs, scope, resource);
    Ok(client.authenticate(HttpRequest::post_form(idp_token_endpoint, []), pairs))
}

/// Checks the token exchange response (RFC 8693 §2.2) in the usual order — status (an OAuth
/// error body becomes a typed error), JSON, `access_token` — then that `issued_token_type` is
/// the ID-JAG asked for (§2.2.1: a server may issue another type). Returns the ID-JAG, to
/// present with [`jwt_bearer_request`]. `token_type` is `N_A` here and not checked.
pub fn process_id_jag_response(response: &HttpResponse, url: &str) -> Result<JwtAssertion> {
    let v = crate::token::token_endpoint_object(response, url)?;
    let field = |name: &'static str| -> Result<&str> {
        match v.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
            None | Some(Value::Null) | Some(Value::String(_)) => Err(Error::MissingField {
                url: url.to_owned(),
                field: name,
            }),
            Some(_) => Err(Error::InvalidJson {
                url: url.to_owned(),
                detail: format!("field `{name}` must be a string"),
            }),
        }
    };
    let token = field("access_token")?;
    let issued = field("issued_token_type")?;
    if issued != ID_JAG_TOKEN_TYPE {
        return Err(Error::UnexpectedIssuedTokenType {
            expected: ID_JAG_TOKEN_TYPE.into(),
            found: truncate(issued, 100),
        });
    }
    Ok(JwtAssertion::new(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::ManualClock;
    use crate::jws::decode_segment;
    use crate::jws::tests::{TestKey, block_on};
    use crate::registration::{RegistrationSource, TokenEndpointAuthMethod};
    use crate::secret::ClientSecret;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn client(method: TokenEndpointAuthMethod, secret: Option<&str>) -> ClientCredentials {
        ClientCredentials {
            issuer: "https://as.example.com".into(),
            client_id: "machine-1".into(),
            client_secret: secret.map(ClientSecret::new),
            auth_method: method,
            source: RegistrationSource::PreRegistered,
            redirect_uris: vec![],
            secret_expires_at: None,
            registration_access_token: None,
        }
    }

    fn form(r: &HttpRequest) -> BTreeMap<String, String> {
        r.form_pairs().into_iter().collect()
    }

    struct Fixed;
    impl RandomSource for Fixed {
        fn fill_bytes(&self, dest: &mut [u8]) -> Result<()> {
            dest.fill(9);
            Ok(())
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn client_credentials_with_basic_auth() {
        let c = client(TokenEndpointAuthMethod::ClientSecretBasic, Some("s3cret"));
        let r = client_credentials_request(
            "https://as.example.com/token",
            &c,
            Some("mcp:read"),
            Some("https://mcp.example.com/mcp"),
        )
        .unwrap();
        let f = form(&r);
        assert_eq!(f["grant_type"], "client_credentials");
        assert_eq!(f["scope"], "mcp:read");
        assert_eq!(f["resource"], "https://mcp.example.com/mcp");
        assert!(!f.contains_key("client_secret"));
        assert_eq!(
            r.header("authorization"),
            Some(
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("machine-1:s3cret")
                )
                .as_str()
            )
        );
        assert!(!format!("{r:?}").contains("s3cret"));
        assert_eq!(
            client_credentials_request("http://as.example.com/token", &c, None, None)
                .unwrap_err()
                .code(),
            "insecure_url"
        );
        // No scope asked: none sent.
        let r = client_credentials_request("https://as.example.com/token", &c, None, None).unwrap();
        assert!(!form(&r).contains_key("scope"));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn private_key_jwt_assertion() {
        let key = TestKey::new(5);
        let clock = ManualClock::new(1_000);
        let a = block_on(client_assertion(
            &key,
            "machine-1",
            "https://as.example.com",
            &clock,
            &Fixed,
        ))
        .unwrap();
        let parts: Vec<&str> = a.secret().split('.').collect();
        let header = decode_segment(parts[0]).unwrap();
        assert_eq!(header["alg"], "ES256");
        let claims = decode_segment(parts[1]).unwrap();
        assert_eq!(claims["iss"], "machine-1");
        assert_eq!(claims["sub"], "machine-1");
        assert_eq!(claims["aud"], "https://as.example.com");
        assert_eq!(claims["iat"], 1_000);
        assert_eq!(claims["exp"], 1_060);
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22));
        let jwk = key.public_jwk().to_json();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert!(TestKey::verify(
            jwk.as_object().unwrap(),
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &sig
        ));
        let c = client(TokenEndpointAuthMethod::PrivateKeyJwt, None);
        let r = client_credentials_request("https://as.example.com/token", &c, None, None).unwrap();
        let r = with_client_assertion(r, &a);
        let f = form(&r);
        assert_eq!(f["client_assertion_type"], CLIENT_ASSERTION_TYPE);
        assert_eq!(f["client_assertion"], a.secret());
        assert_eq!(f["grant_type"], "client_credentials");
        assert_eq!(r.header("authorization"), None);
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn jwt_bearer() {
        let jwt = JwtAssertion::new("eyJh.eyJz.c2ln");
        let r = jwt_bearer_request(
            "https://as.example.com/token",
            &jwt,
            None,
            None,
            Some("https://mcp.example.com/mcp"),
        )
        .unwrap();
        let f = form(&r);
        assert_eq!(f["grant_type"], JWT_BEARER_GRANT);
        assert_eq!(f["assertion"], "eyJh.eyJz.c2ln");
        assert_eq!(f["resource"], "https://mcp.example.com/mcp");
        assert!(!f.contains_key("client_id"));
        let c = client(TokenEndpointAuthMethod::ClientSecretBasic, Some("s"));
        let r = jwt_bearer_request(
            "https://as.example.com/token",
            &jwt,
            Some(&c),
            Some("a b"),
            None,
        )
        .unwrap();
        assert!(
            r.header("authorization")
                .is_some_and(|h| h.starts_with("Basic "))
        );
        assert_eq!(form(&r)["scope"], "a b");
        let e = jwt_bearer_request(
            "https://as.example.com/token",
            &JwtAssertion::new("x"),
            None,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_input");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn id_jag_exchange() {
        let idp_client = ClientCredentials {
            issuer: "https://idp.example.com".into(),
            ..client(TokenEndpointAuthMethod::None, None)
        };
        let r = id_jag_request(
            "https://idp.example.com/token",
            &idp_client,
            &IdToken::new("id.tok.en"),
            "https://as.example.com",
            Some("https://mcp.example.com/mcp"),
            None,
        )
        .unwrap();
        let f = form(&r);
        assert_eq!(f["grant_type"], TOKEN_EXCHANGE_GRANT);
        assert_eq!(f["requested_token_type"], ID_JAG_TOKEN_TYPE);
        assert_eq!(f["subject_token_type"], ID_TOKEN_TYPE);
        assert_eq!(f["subject_token"], "id.tok.en");
        assert_eq!(f["audience"], "https://as.example.com");
        assert_eq!(f["resource"], "https://mcp.example.com/mcp");
        assert_eq!(f["client_id"], "machine-1");

        let ok = HttpResponse::json(
            200,
            &json!({"access_token": "jag.jw.t", "issued_token_type": ID_JAG_TOKEN_TYPE, "token_type": "N_A"}),
        );
        assert_eq!(
            process_id_jag_response(&ok, "u").unwrap().secret(),
            "jag.jw.t"
        );
        let wrong = HttpResponse::json(
            200,
            &json!({"access_token": "at", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer"}),
        );
        assert_eq!(
            process_id_jag_response(&wrong, "u").unwrap_err().code(),
            "unexpected_issued_token_type"
        );
        let missing = HttpResponse::json(200, &json!({"access_token": "secret-at"}));
        let e = process_id_jag_response(&missing, "u").unwrap_err();
        assert_eq!(e.code(), "missing_field");
        assert!(!format!("{e} {e:?}").contains("secret-at"));
        let denied = HttpResponse::json(400, &json!({"error": "invalid_grant"}));
        assert_eq!(
            process_id_jag_response(&denied, "u")
                .unwrap_err()
                .oauth_code()
                .unwrap()
                .as_str(),
            "invalid_grant"
        );
    }
}
