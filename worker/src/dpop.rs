//! DPoP (RFC 9449) in the token-mediating proxy: the page's `DPoP` proof passes through to the
//! authorization server on the code exchange and the refresh, so the refresh token kept at the
//! edge is bound to the page's key; the key's thumbprint is remembered with the session, and a
//! refresh of a bound session must come with a proof by that key (anything else would only
//! make the authorization server refuse, and could end the session).
//!
//! Before a bound session answers at all (with the access token it holds, or after a refresh
//! upstream), the page's proof is verified here as a resource server would (RFC 9449 §4.3):
//! `typ`, an asymmetric `alg` matching the `jwk`, the signature (WebCrypto, in `durable`),
//! `htm` POST, `htu` the token endpoint the proof was made for, and `iat` within
//! [`PROOF_MAX_AGE_SECS`]. Without that, the session handle and the public key (which every
//! proof carries) would get the held access token with a forged proof. `jti` replay is left to
//! the authorization server, which sees every proof that leads to new tokens.

use edge_oauth_core::jws::{PublicJwk, decode_segment};

/// The longest `DPoP` header passed on (an ES256 proof with its JWK is ~600 bytes; RSA keys
/// make it longer).
pub const MAX_PROOF_LEN: usize = 4096;

/// The thumbprint (RFC 7638) of the public key in a proof's `jwk` header, when the value is a
/// compact JWS of `typ` `dpop+jwt` with an EC or RSA public key and no private member.
pub fn proof_jkt(proof: &str) -> Option<String> {
    if proof.len() > MAX_PROOF_LEN {
        return None;
    }
    let mut parts = proof.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let header = decode_segment(header)?;
    if header.get("typ")?.as_str()? != "dpop+jwt" {
        return None;
    }
    let jwk = header.get("jwk")?.as_object()?;
    let s = |k: &str| jwk.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    if jwk.contains_key("d") {
        return None;
    }
    let key = match s("kty")?.as_str() {
        "EC" => PublicJwk::Ec {
            crv: s("crv")?,
            x: s("x")?,
            y: s("y")?,
        },
        "RSA" => PublicJwk::Rsa {
            n: s("n")?,
            e: s("e")?,
        },
        _ => return None,
    };
    Some(key.thumbprint())
}

/// How far a proof's `iat` may be from the worker's clock, either way.
pub const PROOF_MAX_AGE_SECS: u64 = 120;

/// A proof whose header and claims passed [`check_proof`]: what remains is its signature.
#[derive(Debug)]
pub struct CheckedProof {
    /// `ES256` or `RS256`.
    pub alg: &'static str,
    /// The public key, as the header carried it (to import for verification).
    pub jwk: serde_json::Map<String, serde_json::Value>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`.
    pub signing_input: String,
    /// The signature octets.
    pub signature: Vec<u8>,
}

/// Checks a bound session's proof (RFC 9449 §4.3 steps 1-11 but the signature, and `jti`):
/// made by the key `jkt`, for `POST` to one of `htu` (the token endpoint, without query or
/// fragment), issued within [`PROOF_MAX_AGE_SECS`] of `now`.
pub fn check_proof(
    proof: &str,
    jkt: &str,
    htu: &[&str],
    now: u64,
) -> Result<CheckedProof, crate::error::ProxyError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bad = crate::error::ProxyError::InvalidDpopProof;
    if proof_jkt(proof).as_deref() != Some(jkt) {
        return Err(bad);
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad);
    };
    let header = decode_segment(h).ok_or(crate::error::ProxyError::InvalidDpopProof)?;
    let claims = decode_segment(p).ok_or(crate::error::ProxyError::InvalidDpopProof)?;
    let jwk = header
        .get("jwk")
        .and_then(|v| v.as_object())
        .cloned()
        .ok_or(crate::error::ProxyError::InvalidDpopProof)?;
    let alg = match (
        header.get("alg").and_then(|v| v.as_str()),
        jwk.get("kty").and_then(|v| v.as_str()),
        jwk.get("crv").and_then(|v| v.as_str()),
    ) {
        (Some("ES256"), Some("EC"), Some("P-256")) => "ES256",
        (Some("RS256"), Some("RSA"), _) => "RS256",
        _ => return Err(bad),
    };
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str());
    if text("htm") != Some("POST") || !text("htu").is_some_and(|u| htu.contains(&u)) {
        return Err(bad);
    }
    if text("jti").is_none_or(str::is_empty) {
        return Err(bad);
    }
    let Some(iat) = claims.get("iat").and_then(|v| v.as_u64()) else {
        return Err(bad);
    };
    if iat.abs_diff(now) > PROOF_MAX_AGE_SECS {
        return Err(bad);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| crate::error::ProxyError::InvalidDpopProof)?;
    if alg == "ES256" && signature.len() != 64 {
        return Err(bad);
    }
    Ok(CheckedProof {
        alg,
        jwk,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

/// The page's `DPoP` header as passed on: one well-formed proof, or none.
pub fn request_proof(value: Option<String>) -> Result<Option<String>, crate::error::ProxyError> {
    match value {
        None => Ok(None),
        Some(v) if proof_jkt(v.trim()).is_some() => Ok(Some(v.trim().to_owned())),
        Some(_) => Err(crate::error::ProxyError::InvalidDpopProof),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jws(header: serde_json::Value) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode("{}")
        )
    }

    #[test]
    fn thumbprint_of_the_proof_key() {
        // The key and `jkt` of RFC 9449's examples (§6.1).
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"});
        let proof = jws(serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}));
        assert_eq!(
            proof_jkt(&proof).as_deref(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
        assert_eq!(
            request_proof(Some(format!(" {proof} "))).unwrap(),
            Some(proof.clone())
        );
        assert_eq!(request_proof(None).unwrap(), None);
        let mut with_d = jwk.clone();
        with_d["d"] = "secret".into();
        for bad in [
            jws(serde_json::json!({"typ": "JWT", "alg": "ES256", "jwk": jwk})),
            jws(serde_json::json!({"typ": "dpop+jwt", "alg": "ES256"})),
            jws(serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": with_d})),
            jws(
                serde_json::json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "x"}}),
            ),
            format!("{proof}.extra"),
            "not a jwt".into(),
            format!("{proof}{}", "A".repeat(MAX_PROOF_LEN)),
        ] {
            assert_eq!(proof_jkt(&bad), None, "{bad}");
            assert_eq!(
                request_proof(Some(bad)).unwrap_err().code(),
                "invalid_dpop_proof"
            );
        }
    }

    #[test]
    fn a_bound_sessions_proof_is_checked_like_a_resource_server_would() {
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"});
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let htu = "https://as.example.com/token";
        let proof = |header: serde_json::Value, claims: serde_json::Value, sig: &[u8]| {
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string()),
                URL_SAFE_NO_PAD.encode(sig)
            )
        };
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let claims = serde_json::json!({"htm": "POST", "htu": htu, "iat": 1000, "jti": "j1"});
        let good = proof(header.clone(), claims.clone(), &[7; 64]);
        let c = check_proof(&good, jkt, &[htu], 1050).unwrap();
        assert_eq!((c.alg, c.signature.len()), ("ES256", 64));
        assert!(good.starts_with(&c.signing_input));
        let with = |k: &str, v: serde_json::Value| {
            let mut c = claims.clone();
            c[k] = v;
            proof(header.clone(), c, &[7; 64])
        };
        let mut rs = header.clone();
        rs["alg"] = "RS256".into();
        for (bad, why) in [
            (good.clone(), "another key"),
            (with("htm", "GET".into()), "htm"),
            (
                with("htu", "https://as.example.com/token?x=1".into()),
                "htu",
            ),
            (with("iat", 1000.into()), "stale"),
            (with("iat", "1000".into()), "iat type"),
            (with("jti", "".into()), "jti"),
            (proof(rs, claims.clone(), &[7; 64]), "alg and key disagree"),
            (
                proof(header.clone(), claims.clone(), &[7; 63]),
                "signature length",
            ),
        ] {
            let (expected_jkt, now) = match why {
                "another key" => ("other", 1000),
                "stale" => (jkt, 1000 + PROOF_MAX_AGE_SECS + 1),
                _ => (jkt, 1000),
            };
            assert_eq!(
                check_proof(&bad, expected_jkt, &[htu], now)
                    .unwrap_err()
                    .code(),
                "invalid_dpop_proof",
                "{why}"
            );
        }
    }
}
