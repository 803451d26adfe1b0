//! DPoP, sender-constrained tokens (RFC 9449): proofs over the injected [`JwsSigner`], the
//! access token hash, server-provided nonces, and when to use it at all.
//!
//! A proof is a pure function of its inputs: the signer, the request's method and URL, the
//! access token (resource requests), the server's nonce, the clock and the random source.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::discovery::AuthorizationServerMetadata;
use crate::env::{Clock, RandomSource};
use crate::error::{Error, OAuthErrorCode, Result};
use crate::http::{HttpResponse, Method, oauth_error_body, parse_secure_url};
use crate::jws::{JwsSigner, new_jti, sign_compact};
use crate::secret::{AccessToken, DpopProof};
use crate::www_authenticate::parse_challenges;

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";

/// The longest nonce kept from a server (they are short opaque strings).
const MAX_NONCE_LEN: usize = 1024;

/// Whether to bind tokens to the client's key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DpopPolicy {
    /// Bearer tokens only.
    #[default]
    Off,
    /// DPoP when the authorization server advertises the key's algorithm in
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1); bearer tokens otherwise.
    Prefer,
    /// Always send proofs and accept only DPoP-bound tokens; an authorization server that
    /// advertises DPoP algorithms without this key's is refused.
    Require,
}

/// Whether token requests to the authorization server described by `meta` carry proofs, by
/// `policy`, for a key signing with `alg` (RFC 9449 §5.1). An authorization server that does
/// not advertise DPoP may still support it, so `Require` tries it there; one that lists its
/// algorithms without ours is [`Error::DpopNotSupported`] under `Require`.
pub fn use_dpop(
    policy: DpopPolicy,
    alg: crate::jws::JwsAlgorithm,
    meta: &AuthorizationServerMetadata,
) -> Result<bool> {
    let advertised = meta.dpop_signing_alg_values_supported.as_deref();
    let ours = advertised.map(|algs| algs.iter().any(|a| a == alg.as_str()));
    match (policy, ours) {
        (DpopPolicy::Off, _) => Ok(false),
        (DpopPolicy::Prefer, ours) => Ok(ours == Some(true)),
        (DpopPolicy::Require, Some(false)) => Err(Error::DpopNotSupported {
            issuer: meta.issuer.clone(),
        }),
        (DpopPolicy::Require, _) => Ok(true),
    }
}

/// What one proof is for.
#[derive(Clone, Copy, Debug)]
pub struct ProofRequest<'a> {
    /// The request's method (`htm`).
    pub method: Method,
    /// The request's URL; `htu` is this without query and fragment.
    pub url: &'a str,
    /// The access token the request presents (resource requests): adds `ath` (RFC 9449 §4.2).
    pub access_token: Option<&'a AccessToken>,
    /// The server's latest `DPoP-Nonce` (RFC 9449 §8, §9).
    pub nonce: Option<&'a str>,
}

/// `htu`: the target URI without query and fragment (RFC 9449 §4.2).
pub fn htu(url: &str) -> Result<String> {
    let mut u = parse_secure_url(url)?;
    u.set_query(None);
    u.set_fragment(None);
    Ok(u.to_string())
}

/// `ath`: base64url of the SHA-256 of the access token's ASCII (RFC 9449 §4.2).
pub fn ath(access_token: &AccessToken) -> String {
    crate::jws::b64url(&Sha256::digest(access_token.secret().as_bytes()))
}

/// The proof's claims (RFC 9449 §4.2): `jti`, `htm`, `htu`, `iat`, and `ath` and `nonce`
/// when given.
pub fn proof_claims(request: &ProofRequest<'_>, iat: u64, jti: &str) -> Result<Value> {
    // Built member by member rather than with `json!`, whose `to_value(..).unwrap()` per member
    // brings serde_json's error formatting into the wasm.
    let mut claims = Map::new();
    claims.insert("jti".into(), jti.into());
    claims.insert("htm".into(), request.method.as_str().into());
    claims.insert("htu".into(), htu(request.url)?.into());
    claims.insert("iat".into(), iat.into());
    if let Some(t) = request.access_token {
        claims.insert("ath".into(), ath(t).into());
    }
    if let Some(n) = request.nonce {
        claims.insert("nonce".into(), n.into());
    }
    Ok(Value::Object(claims))
}

/// A DPoP proof JWT for one request (RFC 9449 §4.2): header `typ: dpop+jwt`, `alg`, and the
/// public `jwk`; a fresh `jti` from `rng`, `iat` from `clock`.
pub async fn proof(
    signer: &dyn JwsSigner,
    request: &ProofRequest<'_>,
    clock: &impl Clock,
    rng: &impl RandomSource,
) -> Result<DpopProof> {
    let claims = proof_claims(request, clock.now(), &new_jti(rng)?)?;
    let mut header = Map::new();
    header.insert("typ".into(), PROOF_TYPE.into());
    header.insert("jwk".into(), signer.public_jwk().to_json());
    let header = Value::Object(header);
    sign_compact(signer, header, &claims)
        .await
        .map(DpopProof::new)
}

/// The `DPoP-Nonce` a response carries (RFC 9449 §8.2, §9), if it is a well-formed one
/// (`1*NQCHAR`, §8.1).
pub fn response_nonce(response: &HttpResponse) -> Option<&str> {
    let n = response.header("dpop-nonce")?.trim();
    let ok = !n.is_empty()
        && n.len() <= MAX_NONCE_LEN
        && n.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    ok.then_some(n)
}

/// A token endpoint's nonce challenge (RFC 9449 §8): `400` with `error=use_dpop_nonce` and a
/// `DPoP-Nonce` header. The new nonce, if this is one.
pub fn token_endpoint_nonce_challenge(response: &HttpResponse) -> Option<&str> {
    let is_challenge = response.status == 400
        && oauth_error_body(response).is_some_and(|e| e.code == OAuthErrorCode::UseDpopNonce);
    if is_challenge {
        response_nonce(response)
    } else {
        None
    }
}

/// A resource server's nonce challenge (RFC 9449 §9): `401` with a `DPoP` challenge whose
/// `error` is `use_dpop_nonce`, and a `DPoP-Nonce` header. The new nonce, if this is one.
pub fn resource_nonce_challenge(response: &HttpResponse) -> Option<&str> {
    if response.status != 401 {
        return None;
    }
    let header = response.header_joined("www-authenticate")?;
    let challenged = parse_challenges(&header).iter().any(|c| {
        c.scheme.eq_ignore_ascii_case("dpop") && c.param("error") == Some("use_dpop_nonce")
    });
    if challenged {
        response_nonce(response)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::ManualClock;
    use crate::jws::tests::{TestKey, block_on};
    use crate::jws::{JwsAlgorithm, decode_segment};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    struct Counter(core::cell::Cell<u8>);
    impl RandomSource for Counter {
        fn fill_bytes(&self, dest: &mut [u8]) -> Result<()> {
            self.0.set(self.0.get() + 1);
            dest.fill(self.0.get());
            Ok(())
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn ath_test_vector() {
        // RFC 9449 §7.1.
        let t = AccessToken::new("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU");
        assert_eq!(ath(&t), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn proof_structure_and_signature() {
        let key = TestKey::new(3);
        let token = AccessToken::new("at-123");
        let rng = Counter(Default::default());
        let request = ProofRequest {
            method: Method::Post,
            url: "https://MCP.example.com/mcp?session=1#frag",
            access_token: Some(&token),
            nonce: Some("n-1"),
        };
        let p = block_on(proof(
            &key,
            &request,
            &ManualClock::new(1_700_000_000),
            &rng,
        ))
        .unwrap();
        let parts: Vec<&str> = p.secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_segment(parts[0]).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        let jwk = header["jwk"].as_object().unwrap();
        assert_eq!(jwk.get("d"), None, "no private key in the header");
        assert_eq!(
            serde_json::Value::Object(jwk.clone()),
            key.public_jwk().to_json()
        );
        let claims = decode_segment(parts[1]).unwrap();
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://mcp.example.com/mcp");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["ath"], ath(&token));
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(TestKey::verify(jwk, input.as_bytes(), &sig));
        // Each proof is fresh; a token request has no `ath`.
        let q = block_on(proof(
            &key,
            &ProofRequest {
                access_token: None,
                nonce: None,
                ..request
            },
            &ManualClock::new(1_700_000_000),
            &rng,
        ))
        .unwrap();
        let claims2 = decode_segment(q.secret().split('.').nth(1).unwrap()).unwrap();
        assert_ne!(claims2["jti"], claims["jti"]);
        assert!(!claims2.contains_key("ath") && !claims2.contains_key("nonce"));
        assert!(!format!("{p:?}").contains(parts[2]));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn policy() {
        let mut m = AuthorizationServerMetadata {
            issuer: "https://as".into(),
            ..Default::default()
        };
        let es = JwsAlgorithm::Es256;
        assert!(!use_dpop(DpopPolicy::Prefer, es, &m).unwrap());
        assert!(use_dpop(DpopPolicy::Require, es, &m).unwrap());
        m.dpop_signing_alg_values_supported = Some(vec!["RS256".into(), "ES256".into()]);
        assert!(use_dpop(DpopPolicy::Prefer, es, &m).unwrap());
        assert!(!use_dpop(DpopPolicy::Off, es, &m).unwrap());
        m.dpop_signing_alg_values_supported = Some(vec!["RS256".into()]);
        assert!(!use_dpop(DpopPolicy::Prefer, es, &m).unwrap());
        assert_eq!(
            use_dpop(DpopPolicy::Require, es, &m).unwrap_err().code(),
            "dpop_not_supported"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn nonce_challenges() {
        let json = |status, nonce: Option<&str>| {
            let mut r = HttpResponse::json(status, &json!({"error": "use_dpop_nonce"}));
            if let Some(n) = nonce {
                r.headers.push(("DPoP-Nonce".into(), n.into()));
            }
            r
        };
        assert_eq!(
            token_endpoint_nonce_challenge(&json(400, Some("eyJ7S_zG.x"))),
            Some("eyJ7S_zG.x")
        );
        assert_eq!(token_endpoint_nonce_challenge(&json(400, None)), None);
        assert_eq!(token_endpoint_nonce_challenge(&json(401, Some("n"))), None);
        assert_eq!(
            token_endpoint_nonce_challenge(&json(400, Some("bad\"quote"))),
            None
        );
        let rs = HttpResponse::new(
            401,
            vec![
                (
                    "WWW-Authenticate".into(),
                    r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#.into(),
                ),
                ("DPoP-Nonce".into(), "eyJ7S_zG.eyJH0-Z.HX4w-7v".into()),
            ],
            "",
        );
        assert_eq!(
            resource_nonce_challenge(&rs),
            Some("eyJ7S_zG.eyJH0-Z.HX4w-7v")
        );
        let bearer = HttpResponse::new(
            401,
            vec![
                (
                    "WWW-Authenticate".into(),
                    r#"Bearer error="invalid_token""#.into(),
                ),
                ("DPoP-Nonce".into(), "n".into()),
            ],
            "",
        );
        assert_eq!(resource_nonce_challenge(&bearer), None);
    }
}
