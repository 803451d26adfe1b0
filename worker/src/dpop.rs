//! DPoP (RFC 9449) in the token-mediating proxy: the page's `DPoP` proof passes through to the
//! authorization server on the code exchange and the refresh, so the refresh token kept at the
//! edge is bound to the page's key; the key's thumbprint is remembered with the session, and a
//! refresh of a bound session must come with a proof by that key (anything else would only
//! make the authorization server refuse, and could end the session).
//!
//! The worker does not verify proof signatures: the authorization server does, on every
//! request a proof travels with, and a bound access token handed to someone without the key
//! is of no use to them.

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
}
