//! Secret values as newtypes: `Debug` prints `Name([redacted])`, there is no `Display`,
//! and the value is reachable only through `.secret()`.

use serde::{Deserialize, Serialize};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The secret value. Call sites are easy to audit: grep for `.secret()`.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// An OAuth access token (RFC 6749 §1.4).
    AccessToken
);
secret_type!(
    /// An OAuth refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret_type!(
    /// A PKCE code verifier (RFC 7636 §4.1).
    CodeVerifier
);
secret_type!(
    /// A client secret (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// An authorization code (RFC 6749 §4.1.2).
    AuthorizationCode
);
secret_type!(
    /// A device code (RFC 8628 §3.2).
    DeviceCode
);
secret_type!(
    /// An RFC 7591 registration access token.
    RegistrationAccessToken
);
secret_type!(
    /// A JWT client assertion (RFC 7523 §2.2): proves the client's identity for a short while.
    ClientAssertion
);
secret_type!(
    /// A JWT presented as an authorization grant (RFC 7523 §2.1): a workload identity token
    /// issued by the platform, or an identity assertion authorization grant (ID-JAG).
    JwtAssertion
);
secret_type!(
    /// An OpenID Connect ID token, as the subject token of a token exchange (RFC 8693 §2.1).
    IdToken
);
secret_type!(
    /// A DPoP proof JWT (RFC 9449 §4): one request's proof of possession.
    DpopProof
);
secret_type!(
    /// The `state` value binding an authorization response to its request (RFC 6749 §10.12).
    State
);

impl State {
    /// Compares in constant time (with respect to the contents) so response timing
    /// does not reveal how much of a guessed `state` was right.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

/// Constant-time byte comparison; the length is not secret.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    core::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn debug_is_redacted() {
        let t = AccessToken::new("very-secret-token");
        assert_eq!(format!("{t:?}"), "AccessToken([redacted])");
        assert!(!format!("{:?}", RefreshToken::new("rt-123")).contains("rt-123"));
        assert!(!format!("{:#?}", State::new("st-abc")).contains("st-abc"));
        assert_eq!(
            format!("{:?}", ClientAssertion::new("eyJ.a.b")),
            "ClientAssertion([redacted])"
        );
        assert_eq!(
            format!("{:?}", JwtAssertion::new("eyJ.c.d")),
            "JwtAssertion([redacted])"
        );
        assert_eq!(
            format!("{:?}", IdToken::new("eyJ.e.f")),
            "IdToken([redacted])"
        );
        assert_eq!(
            format!("{:?}", DpopProof::new("eyJ.g.h")),
            "DpopProof([redacted])"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn state_compare() {
        let s = State::new("abcdef");
        assert!(s.matches("abcdef"));
        assert!(!s.matches("abcdeg"));
        assert!(!s.matches("abcde"));
        assert!(!s.matches(""));
    }
}
