//! JSON Web Signatures in compact serialisation (RFC 7515 §7.1) over an injected signer, and
//! public JSON Web Keys with their thumbprints (RFC 7517, RFC 7638).
//!
//! The core holds no private keys and does no signing of its own: a [`JwsSigner`] does,
//! natively over a crypto crate, in a browser over WebCrypto (non-extractable keys). Its
//! future is not `Send` and may wait on a promise.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use std::rc::Rc;

use base64::Engine;
use base64::engine::Config;
use base64::engine::general_purpose::{GeneralPurpose, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A JWS algorithm (RFC 7518 §3.1). Only asymmetric ones: a DPoP proof or client assertion
/// signed with a shared secret or `none` proves nothing (RFC 9449 §11.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwsAlgorithm {
    /// ECDSA over P-256 with SHA-256 (RFC 7518 §3.4); the signature is `R || S`, 64 bytes.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    Rs256,
}

impl JwsAlgorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::Es256 => "ES256",
            JwsAlgorithm::Rs256 => "RS256",
        }
    }

    /// Parses an `alg` value this crate knows.
    pub fn parse(alg: &str) -> Option<Self> {
        match alg {
            "ES256" => Some(JwsAlgorithm::Es256),
            "RS256" => Some(JwsAlgorithm::Rs256),
            _ => None,
        }
    }
}

/// A public key as a JWK (RFC 7517 §4, RFC 7518 §6): only the members that define the key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicJwk {
    /// An elliptic curve key (RFC 7518 §6.2.1).
    Ec {
        /// `crv`, e.g. `P-256`.
        crv: String,
        /// `x`, base64url.
        x: String,
        /// `y`, base64url.
        y: String,
    },
    /// An RSA key (RFC 7518 §6.3.1).
    Rsa {
        /// `n`, base64url.
        n: String,
        /// `e`, base64url.
        e: String,
    },
}

impl PublicJwk {
    /// The JWK as a JSON object (for a `jwk` header, RFC 7515 §4.1.3).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        match self {
            PublicJwk::Ec { crv, x, y } => {
                m.insert("kty".into(), "EC".into());
                m.insert("crv".into(), crv.as_str().into());
                m.insert("x".into(), x.as_str().into());
                m.insert("y".into(), y.as_str().into());
            }
            PublicJwk::Rsa { n, e } => {
                m.insert("kty".into(), "RSA".into());
                m.insert("n".into(), n.as_str().into());
                m.insert("e".into(), e.as_str().into());
            }
        }
        Value::Object(m)
    }

    /// The JWK SHA-256 thumbprint, base64url (RFC 7638 §3): the required members only, in
    /// lexicographic order, no whitespace. DPoP's `jkt` (RFC 9449 §6.1, §10).
    pub fn thumbprint(&self) -> String {
        let s = |v: &str| crate::json::value_to_string(&Value::from(v));
        let canonical = match self {
            PublicJwk::Ec { crv, x, y } => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                s(crv),
                s(x),
                s(y)
            ),
            PublicJwk::Rsa { n, e } => {
                format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s(e), s(n))
            }
        };
        b64url(&Sha256::digest(canonical.as_bytes()))
    }
}

/// The future a [`JwsSigner`] returns: not `Send` (WebCrypto's promise is not).
pub type SignatureFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>>> + 'a>>;

/// Signs JWS signing inputs with one private key.
///
/// Contract: `sign` returns the JWS signature octets for [`JwsSigner::algorithm`] — for
/// ES256 the 64-byte `R || S` of RFC 7518 §3.4 (what WebCrypto's ECDSA produces), never DER;
/// a failure is an `Err` ([`Error::Signing`]), never a panic.
pub trait JwsSigner {
    /// The algorithm this key signs with.
    fn algorithm(&self) -> JwsAlgorithm;
    /// The public half, for a `jwk` header and thumbprints.
    fn public_jwk(&self) -> PublicJwk;
    /// A `kid` to put in headers, if the key has one registered.
    fn key_id(&self) -> Option<String> {
        None
    }
    /// Signs `signing_input` (`BASE64URL(header) || '.' || BASE64URL(payload)`).
    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a>;
}

/// A shared handle on a [`JwsSigner`], for configuration: cheap to clone, and its `Debug`
/// shows the algorithm and thumbprint, never the key.
#[derive(Clone)]
pub struct Signer(Rc<dyn JwsSigner>);

impl Signer {
    /// Wraps a signer.
    pub fn new(signer: impl JwsSigner + 'static) -> Self {
        Self(Rc::new(signer))
    }

    /// The signer.
    pub fn get(&self) -> &dyn JwsSigner {
        &*self.0
    }

    /// The algorithm.
    pub fn algorithm(&self) -> JwsAlgorithm {
        self.0.algorithm()
    }

    /// The RFC 7638 thumbprint of its public key.
    pub fn thumbprint(&self) -> String {
        self.0.public_jwk().thumbprint()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Signer({}, jkt={})",
            self.algorithm().as_str(),
            self.thumbprint()
        )
    }
}

/// `BASE64URL(UTF8(header)) || '.' || BASE64URL(payload)` (RFC 7515 §5.1 steps 1–6).
pub fn signing_input(header: &Value, payload: &Value) -> String {
    format!(
        "{}.{}",
        b64url(crate::json::value_to_string(header).as_bytes()),
        b64url(crate::json::value_to_string(payload).as_bytes())
    )
}

/// Signs a JWT: sets `alg` (and `kid`, when the signer has one and the header has none) in
/// `header`, and returns the compact serialisation (RFC 7515 §7.1).
pub async fn sign_compact(
    signer: &dyn JwsSigner,
    header: Value,
    payload: &Value,
) -> Result<String> {
    let Value::Object(mut header) = header else {
        return Err(Error::InvalidInput {
            reason: "a JWS header must be a JSON object",
        });
    };
    let alg = signer.algorithm();
    header.insert("alg".into(), alg.as_str().into());
    if let Some(kid) = signer.key_id().filter(|_| !header.contains_key("kid")) {
        header.insert("kid".into(), kid.into());
    }
    let input = signing_input(&Value::Object(header), payload);
    let signature = signer.sign(input.as_bytes()).await?;
    let ok = match alg {
        JwsAlgorithm::Es256 => signature.len() == 64,
        JwsAlgorithm::Rs256 => signature.len() >= 256,
    };
    if !ok {
        return Err(Error::Signing {
            message: format!(
                "{} signature of {} bytes (ES256 needs the 64-byte R || S form, not DER)",
                alg.as_str(),
                signature.len()
            ),
        });
    }
    Ok(format!("{input}.{}", b64url(&signature)))
}

/// base64url without padding (RFC 7515 §2) of `bytes`.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    b64(&URL_SAFE_NO_PAD, bytes)
}

/// `engine`'s encoding of `bytes`. Not `Engine::encode`, whose `expect` on the (always ASCII)
/// output brings `FromUtf8Error`'s `Debug` — a struct and byte-vector printer — into the wasm.
pub(crate) fn b64(engine: &GeneralPurpose, bytes: &[u8]) -> String {
    let len = base64::encoded_len(bytes.len(), engine.config().encode_padding());
    let mut out = vec![0; len.unwrap_or(0)];
    let written = engine.encode_slice(bytes, &mut out).unwrap_or(0);
    out.truncate(written);
    String::from_utf8(out).unwrap_or_default()
}

/// A fresh unique identifier (`jti`, RFC 7519 §4.1.7): 128 random bits, base64url.
pub fn new_jti(rng: &impl crate::env::RandomSource) -> Result<String> {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes)?;
    Ok(b64url(&bytes))
}

/// Decodes one base64url segment of a compact JWS as a JSON object (tests and diagnostics;
/// nothing here trusts an unverified token).
pub fn decode_segment(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match crate::json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer as _, Verifier as _};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

    /// An ES256 test signer over p256 (the core's own code never signs).
    pub struct TestKey(pub SigningKey);

    impl TestKey {
        pub fn new(seed: u8) -> Self {
            let mut bytes = [seed; 32];
            bytes[0] = 1;
            Self(SigningKey::from_slice(&bytes).unwrap())
        }
        pub fn verify(jwk: &Map<String, Value>, input: &[u8], sig: &[u8]) -> bool {
            let coord = |k: &str| URL_SAFE_NO_PAD.decode(jwk[k].as_str().unwrap()).unwrap();
            let mut sec1 = vec![4u8];
            sec1.extend(coord("x"));
            sec1.extend(coord("y"));
            let key = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
            let sig = Signature::from_slice(sig).unwrap();
            key.verify(input, &sig).is_ok()
        }
    }

    impl JwsSigner for TestKey {
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
            Box::pin(core::future::ready(Ok(sig.to_bytes().to_vec())))
        }
    }

    /// Polls a future that never waits (the test signer's) to completion.
    pub fn block_on<F: Future>(f: F) -> F::Output {
        let waker = core::task::Waker::noop();
        let mut cx = core::task::Context::from_waker(waker);
        let mut f = Box::pin(f);
        loop {
            if let core::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn rfc7638_thumbprint_test_vector() {
        // RFC 7638 §3.1.
        let jwk = PublicJwk::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into(),
            e: "AQAB".into(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // The EC key of the RFC 9449 examples, with the `jkt` they show (§6.1).
        let ec = PublicJwk::Ec {
            crv: "P-256".into(),
            x: "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs".into(),
            y: "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA".into(),
        };
        assert_eq!(
            ec.thumbprint(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        assert_eq!(
            ec.to_json(),
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs", "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"})
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn compact_jws_verifies() {
        let key = TestKey::new(7);
        let jwt = block_on(sign_compact(
            &key,
            serde_json::json!({"typ": "JWT"}),
            &serde_json::json!({"sub": "x"}),
        ))
        .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_segment(parts[0]).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "JWT");
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let jwk = key.public_jwk().to_json();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(TestKey::verify(
            jwk.as_object().unwrap(),
            input.as_bytes(),
            &sig
        ));
        assert!(!TestKey::verify(jwk.as_object().unwrap(), b"other", &sig));
        assert!(format!("{:?}", Signer::new(key)).starts_with("Signer(ES256, jkt="));
    }

    struct DerSigner;
    impl JwsSigner for DerSigner {
        fn algorithm(&self) -> JwsAlgorithm {
            JwsAlgorithm::Es256
        }
        fn public_jwk(&self) -> PublicJwk {
            TestKey::new(1).public_jwk()
        }
        fn sign<'a>(&'a self, _: &'a [u8]) -> SignatureFuture<'a> {
            Box::pin(core::future::ready(Ok(vec![0x30; 70])))
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn der_signature_is_refused() {
        let e = block_on(sign_compact(
            &DerSigner,
            serde_json::json!({}),
            &serde_json::json!({}),
        ))
        .unwrap_err();
        assert_eq!(e.code(), "signing_failed");
    }
}
