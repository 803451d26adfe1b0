//! A session kept at the edge: the refresh token and current access token of one login, and the
//! opaque handle the page holds instead of the refresh token. Pure data and decisions; the
//! Durable Object in `durable.rs` stores it and does the I/O.
//!
//! The handle is `<session id>.<secret>`: the Durable Object id (64 hex digits) and 256 random
//! bits (base64url). It rotates whenever the refresh token does. The rotated secret is kept
//! hashed for a while: presented within the grace window it gets the successor (a tab that lost
//! the race, a retried request); presented later it is treated as stolen and the session ends,
//! as an authorization server's refresh-token reuse detection would (RFC 9700 §4.14.2).

use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_oauth_core::TokenSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How many rotated handle secrets are remembered for reuse detection.
pub const RETIRED_KEPT: usize = 4;

/// Bytes of randomness in a handle secret.
pub const SECRET_BYTES: usize = 32;

/// A parsed session handle. Serialized as `<id>.<secret>` (a step-up's login keeps the
/// session it replaces so), parsed back with [`SessionHandle::parse`]; Debug is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SessionHandle {
    /// The Durable Object id, as 64 lowercase hex digits.
    pub session_id: String,
    /// The secret part.
    pub secret: HandleSecret,
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({}.[redacted])", self.session_id)
    }
}

impl SessionHandle {
    /// Parses `<64 hex>.<43 base64url>`; anything else is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (id, secret) = raw.split_once('.')?;
        let id_ok = id.len() == 64
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let secret_ok = secret.len() == 43
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (id_ok && secret_ok).then(|| SessionHandle {
            session_id: id.to_owned(),
            secret: HandleSecret(secret.to_owned()),
        })
    }

    /// The handle as the page holds it.
    pub fn encode(session_id: &str, secret: &HandleSecret) -> String {
        format!("{session_id}.{}", secret.0)
    }
}

impl From<SessionHandle> for String {
    fn from(h: SessionHandle) -> String {
        SessionHandle::encode(&h.session_id, &h.secret)
    }
}

impl TryFrom<String> for SessionHandle {
    type Error = &'static str;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        SessionHandle::parse(&raw).ok_or("not a session handle")
    }
}

/// The secret half of a handle. Debug is redacted; the value only through [`HandleSecret::secret`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HandleSecret(String);

impl fmt::Debug for HandleSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandleSecret([redacted])")
    }
}

impl HandleSecret {
    /// A secret from random bytes.
    pub fn from_random(bytes: &[u8; SECRET_BYTES]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A fresh secret from the system's random source (`crypto.getRandomValues` on wasm32).
    pub fn random() -> Result<Self, crate::error::ProxyError> {
        use edge_oauth_core::env::{OsRandom, RandomSource};
        let mut bytes = [0u8; SECRET_BYTES];
        OsRandom
            .fill_bytes(&mut bytes)
            .map_err(|_| crate::error::ProxyError::Internal {
                what: "the random source",
            })?;
        Ok(Self::from_random(&bytes))
    }

    /// The value.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// base64url(SHA-256(secret)), what is kept of a rotated secret.
    pub fn hash(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// A rotated handle secret, hashed, and when it was rotated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// base64url(SHA-256(secret)).
    pub hash: String,
    /// When it stopped being current (seconds since the epoch).
    pub at: u64,
}

/// What a presented handle secret is to this session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    /// The current handle.
    Current,
    /// The handle rotated away last, within the grace window: answer with the successor.
    WithinGrace,
    /// A rotated handle outside the grace window (or an older one): reuse, end the session.
    Replayed,
    /// Not this session's.
    Unknown,
}

/// What the Durable Object stores for a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The provider's configured name.
    pub provider: String,
    /// The client the tokens were issued to (a reconfigured client cannot use them).
    pub client_id: String,
    /// The resource indicator of the code exchange, sent again on refresh (RFC 8707 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Access token, refresh token, expiry (core types; Debug redacted).
    pub tokens: TokenSet,
    /// The current handle secret.
    pub handle: HandleSecret,
    /// Rotated handle secrets, newest first, at most [`RETIRED_KEPT`].
    #[serde(default)]
    pub retired: Vec<Retired>,
    /// When the session was created.
    pub created_at: u64,
    /// Upstream refreshes made so far.
    #[serde(default)]
    pub refreshes: u64,
    /// Set for a backend-for-frontend session (whose handle travels in a sealed cookie and
    /// does not rotate); absent for a token-mediating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bff: Option<crate::bff::BffBinding>,
    /// The thumbprint of the DPoP key the tokens are bound to (RFC 9449 §6.1): the page's key
    /// whose proof the code exchange carried. A refresh must be proven by the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// A backend-for-frontend session's own DPoP key (the worker is the client there): its
    /// private key wrapped under a key derived from the cookie sealing key (workerd cannot
    /// store a `CryptoKey` in Durable Object storage), unwrapped only as non-extractable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<WrappedDpopKey>,
}

/// A P-256 private key as kept in a session: PKCS #8 wrapped with AES-256-GCM (`iv`,
/// `wrapped`, base64url), and the public coordinates for the proofs' `jwk` header.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrappedDpopKey {
    /// `x`, base64url.
    pub x: String,
    /// `y`, base64url.
    pub y: String,
    /// The AES-GCM IV, base64url.
    pub iv: String,
    /// The wrapped PKCS #8 private key and the GCM tag, base64url.
    pub wrapped: String,
}

impl WrappedDpopKey {
    /// The RFC 7638 thumbprint of its public key: the `jkt` the tokens are bound to, and the
    /// login's `dpop_jkt` (RFC 9449 §10).
    pub fn thumbprint(&self) -> String {
        edge_oauth_core::jws::PublicJwk::Ec {
            crv: "P-256".into(),
            x: self.x.clone(),
            y: self.y.clone(),
        }
        .thumbprint()
    }
}

impl SessionRecord {
    /// Classifies a presented handle secret (hashes compared in constant time).
    pub fn classify(&self, presented: &HandleSecret, now: u64, grace_secs: u64) -> Presented {
        if constant_time_eq(
            self.handle.secret().as_bytes(),
            presented.secret().as_bytes(),
        ) {
            return Presented::Current;
        }
        let hash = presented.hash();
        for (i, r) in self.retired.iter().enumerate() {
            if constant_time_eq(r.hash.as_bytes(), hash.as_bytes()) {
                return if i == 0 && now.saturating_sub(r.at) <= grace_secs {
                    Presented::WithinGrace
                } else {
                    Presented::Replayed
                };
            }
        }
        Presented::Unknown
    }

    /// Takes new tokens from an upstream refresh: a token-mediating session's handle rotates
    /// with them (the page holds it where a refresh token would be); a backend-for-frontend
    /// session's does not (it is in a cookie that concurrent requests share).
    pub fn renew(&mut self, tokens: TokenSet, next: HandleSecret, now: u64) {
        if self.bff.is_some() {
            self.tokens = tokens;
            self.refreshes += 1;
        } else {
            self.rotate(tokens, next, now);
        }
    }

    /// Takes new tokens from an upstream refresh and rotates the handle.
    pub fn rotate(&mut self, tokens: TokenSet, next: HandleSecret, now: u64) {
        let old = core::mem::replace(&mut self.handle, next);
        self.retired.insert(
            0,
            Retired {
                hash: old.hash(),
                at: now,
            },
        );
        self.retired.truncate(RETIRED_KEPT);
        self.tokens = tokens;
        self.refreshes += 1;
    }

    /// The token response for the page: the access token and the current handle, never the
    /// refresh token.
    pub fn token_response(&self, session_id: &str, now: u64) -> serde_json::Value {
        let mut out = serde_json::json!({
            "access_token": self.tokens.access_token.secret(),
            "token_type": self.tokens.token_type.as_str(),
            "session_handle": SessionHandle::encode(session_id, &self.handle),
        });
        if let Some(exp) = self.tokens.expires_at {
            out["expires_in"] = exp.saturating_sub(now).into();
        }
        if let Some(scope) = &self.tokens.scope {
            out["scope"] = scope.as_str().into();
        }
        out
    }
}

/// The upstream token response rewritten for the page: `refresh_token` removed, the session
/// handle added when there is a session. Other members (`id_token`, `scope`, extensions) pass.
pub fn mediated_response(upstream: &[u8], handle: Option<String>) -> serde_json::Value {
    let mut obj = match serde_json::from_slice::<serde_json::Value>(upstream) {
        Ok(serde_json::Value::Object(o)) => o,
        _ => serde_json::Map::new(),
    };
    obj.remove("refresh_token");
    obj.remove("session_handle");
    if let Some(h) = handle {
        obj.insert("session_handle".into(), h.into());
    }
    serde_json::Value::Object(obj)
}

/// Equality of two byte strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    core::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_oauth_core::{AccessToken, RefreshToken};

    fn tokens(at: &str, rt: &str) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new(at),
            token_type: "Bearer".into(),
            refresh_token: Some(RefreshToken::new(rt)),
            expires_at: Some(1_100),
            scope: Some("mcp:tools".into()),
            received_at: 1_000,
        }
    }

    fn record() -> SessionRecord {
        SessionRecord {
            provider: "p".into(),
            client_id: "c".into(),
            resource: None,
            tokens: tokens("at-1", "rt-1"),
            handle: HandleSecret::from_random(&[1; 32]),
            retired: Vec::new(),
            created_at: 1_000,
            refreshes: 0,
            bff: None,
            dpop_jkt: None,
            dpop_key: None,
        }
    }

    #[test]
    fn handle_format() {
        let id = "a".repeat(64);
        let s = HandleSecret::from_random(&[7; 32]);
        let h = SessionHandle::encode(&id, &s);
        let p = SessionHandle::parse(&h).unwrap();
        assert_eq!((p.session_id.as_str(), &p.secret), (id.as_str(), &s));
        assert!(!format!("{p:?}").contains(s.secret()));
        for bad in [
            "",
            "x",
            &format!("{id}."),
            &format!("{}.{}", "A".repeat(64), s.secret()),
            &format!("{id}.{}!", &s.secret()[1..]),
            &format!("{id}.{}", s.secret()).replace('.', ""),
        ] {
            assert!(SessionHandle::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn rotation_grace_and_reuse() {
        let mut r = record();
        let h0 = r.handle.clone();
        assert_eq!(r.classify(&h0, 1_000, 30), Presented::Current);
        r.rotate(
            tokens("at-2", "rt-2"),
            HandleSecret::from_random(&[2; 32]),
            1_050,
        );
        let h1 = r.handle.clone();
        assert_eq!(r.classify(&h1, 1_050, 30), Presented::Current);
        assert_eq!(r.classify(&h0, 1_080, 30), Presented::WithinGrace);
        assert_eq!(r.classify(&h0, 1_081, 30), Presented::Replayed);
        r.rotate(
            tokens("at-3", "rt-3"),
            HandleSecret::from_random(&[3; 32]),
            1_090,
        );
        // Two rotations back is never within grace.
        assert_eq!(r.classify(&h0, 1_090, 30), Presented::Replayed);
        assert_eq!(r.classify(&h1, 1_090, 30), Presented::WithinGrace);
        assert_eq!(
            r.classify(&HandleSecret::from_random(&[9; 32]), 1_090, 30),
            Presented::Unknown
        );
        for i in 0..10u8 {
            r.rotate(
                tokens("a", "r"),
                HandleSecret::from_random(&[10 + i; 32]),
                1_100,
            );
        }
        assert_eq!(r.retired.len(), RETIRED_KEPT);
        assert_eq!(r.refreshes, 12);
        // A BFF session keeps its handle across refreshes.
        r.bff = Some(crate::bff::BffBinding {
            mcp_server: "m".into(),
            issuer: "https://as".into(),
            step_up_scope: None,
            replaces: None,
            superseded: Vec::new(),
        });
        let current = r.handle.clone();
        r.renew(
            tokens("at-4", "rt-4"),
            HandleSecret::from_random(&[99; 32]),
            1_200,
        );
        assert_eq!((&r.handle, r.refreshes), (&current, 13));
        assert_eq!(r.tokens.access_token.secret(), "at-4");
    }

    #[test]
    fn responses_never_carry_the_refresh_token() {
        let r = record();
        let v = r.token_response(&"b".repeat(64), 1_040);
        assert_eq!(v["expires_in"], 60);
        assert_eq!(v["access_token"], "at-1");
        assert!(!v.to_string().contains("rt-1"));
        let up = br#"{"access_token":"at","refresh_token":"rt-up","token_type":"Bearer","id_token":"x","session_handle":"forged"}"#;
        let v = mediated_response(up, Some("h".into()));
        assert_eq!(v["session_handle"], "h");
        assert_eq!(v["id_token"], "x");
        assert!(v.get("refresh_token").is_none());
        assert!(!format!("{r:?}").contains(r.handle.secret()));
        assert!(!format!("{r:?}").contains("rt-1"));
    }
}
