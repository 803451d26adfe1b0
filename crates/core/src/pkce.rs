//! Proof Key for Code Exchange (RFC 7636), S256 only (OAuth 2.1 §7.5.2; `plain` is never sent).

use sha2::{Digest, Sha256};

use crate::env::RandomSource;
use crate::error::{Error, Result};
use crate::secret::CodeVerifier;

/// The only challenge method this crate sends.
pub const S256: &str = "S256";

/// A verifier and its S256 challenge.
#[derive(Clone, Debug)]
pub struct Pkce {
    verifier: CodeVerifier,
    challenge: String,
}

impl Pkce {
    /// A fresh verifier of 43 characters (32 random bytes, RFC 7636 §4.1 and §7.1).
    pub fn generate(rng: &impl RandomSource) -> Result<Self> {
        Self::generate_with_len(rng, 32)
    }

    /// A fresh verifier from `bytes` random bytes (32..=96, giving 43..=128 characters).
    pub fn generate_with_len(rng: &impl RandomSource, bytes: usize) -> Result<Self> {
        let bytes = bytes.clamp(32, 96);
        let mut buf = vec![0u8; bytes];
        rng.fill_bytes(&mut buf)?;
        Self::from_verifier(CodeVerifier::new(crate::jws::b64url(&buf)))
    }

    /// Wraps an existing verifier after checking RFC 7636 §4.1 (43–128 unreserved characters).
    pub fn from_verifier(verifier: CodeVerifier) -> Result<Self> {
        let v = verifier.secret();
        let ok_len = (43..=128).contains(&v.len());
        let ok_chars = v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !(ok_len && ok_chars) {
            return Err(Error::InvalidInput {
                reason: "PKCE verifier must be 43-128 unreserved characters",
            });
        }
        let challenge = s256_challenge(v);
        Ok(Self {
            verifier,
            challenge,
        })
    }

    /// `code_challenge` = BASE64URL(SHA256(ASCII(code_verifier))) (RFC 7636 §4.2).
    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    /// The verifier, sent later with the code.
    pub fn verifier(&self) -> &CodeVerifier {
        &self.verifier
    }

    /// Gives up the verifier.
    pub fn into_verifier(self) -> CodeVerifier {
        self.verifier
    }
}

/// BASE64URL(SHA256(verifier)) without padding.
pub fn s256_challenge(verifier: &str) -> String {
    crate::jws::b64url(&Sha256::digest(verifier.as_bytes()))
}

/// Random bytes as base64url: state values and nonces (`bytes` ≥ 16 gives ≥ 128 bits).
pub fn random_token(rng: &impl RandomSource, bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes.max(16)];
    rng.fill_bytes(&mut buf)?;
    Ok(crate::jws::b64url(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u8);
    impl RandomSource for Fixed {
        fn fill_bytes(&self, dest: &mut [u8]) -> Result<()> {
            dest.fill(self.0);
            Ok(())
        }
    }
    struct Broken;
    impl RandomSource for Broken {
        fn fill_bytes(&self, _: &mut [u8]) -> Result<()> {
            Err(Error::Random {
                message: "no entropy".into(),
            })
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn rfc7636_appendix_b() {
        let p = Pkce::from_verifier(CodeVerifier::new(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ))
        .unwrap();
        assert_eq!(p.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn generated_lengths() {
        assert_eq!(
            Pkce::generate(&Fixed(7)).unwrap().verifier().secret().len(),
            43
        );
        assert_eq!(
            Pkce::generate_with_len(&Fixed(7), 96)
                .unwrap()
                .verifier()
                .secret()
                .len(),
            128
        );
        assert_eq!(
            Pkce::generate_with_len(&Fixed(7), 1000)
                .unwrap()
                .verifier()
                .secret()
                .len(),
            128
        );
        assert_eq!(random_token(&Fixed(1), 16).unwrap().len(), 22);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn rejects_bad_verifiers_and_broken_rng() {
        assert!(Pkce::from_verifier(CodeVerifier::new("short")).is_err());
        assert!(Pkce::from_verifier(CodeVerifier::new("a".repeat(129))).is_err());
        assert!(Pkce::from_verifier(CodeVerifier::new(format!("{}+", "a".repeat(43)))).is_err());
        assert_eq!(
            Pkce::generate(&Broken).unwrap_err().code(),
            "random_source_failed"
        );
    }
}
