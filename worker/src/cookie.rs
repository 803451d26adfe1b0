//! The backend-for-frontend's cookies, as plain data: names and attributes, the `Cookie`
//! header, and the sealed value's envelope. The sealing itself (AES-256-GCM through WebCrypto)
//! is in `seal.rs`, on wasm32 only.
//!
//! Two cookies, both `HttpOnly`, `Secure`, `Path=/`, no `Domain`, hence the `__Host-` prefix
//! (RFC 6265bis §4.1.3.2: a sibling subdomain cannot set or shadow them):
//!
//! * `__Host-edge-oauth-session` (`SameSite=Strict`): the session, for `/bff/session`,
//!   `/bff/logout` and `/bff/mcp/<name>`;
//! * `__Host-edge-oauth-login` (`SameSite=Lax`, 10 minutes): binds a login to the browser that
//!   started it. The authorization server's redirect to `/bff/callback` is a cross-site
//!   navigation, which carries `Lax` cookies but not `Strict` ones.
//!
//! A value is `v1.` + base64url(nonce ‖ AES-GCM ciphertext ‖ tag) of a session handle; the
//! additional authenticated data names the cookie, so one cookie's value is refused as the
//! other's. `INSECURE_LOOPBACK_COOKIES=true` (plain-http loopback only) drops `Secure` and
//! with it the prefix, which browsers refuse without `Secure`.

use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Bytes of an AES-256 key.
pub const KEY_BYTES: usize = 32;
/// Bytes of an AES-GCM nonce (96 bits, random per seal).
pub const NONCE_BYTES: usize = 12;
/// Bytes of the AES-GCM tag.
pub const TAG_BYTES: usize = 16;
/// A longer cookie value is refused before decoding.
pub const MAX_VALUE_CHARS: usize = 512;
/// How long a login may take, as the login cookie's `Max-Age` (the core refuses a callback
/// for a pending authorization older than this too).
pub const LOGIN_MAX_AGE_SECS: u64 = edge_oauth_core::authorize::PENDING_MAX_AGE_SECS;

const VERSION: &str = "v1.";

/// A cookie sealing key (from a secret). Debug is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SealingKey([u8; KEY_BYTES]);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    /// Reads 32 bytes in base64 or base64url, padded or not (`openssl rand -base64 32`).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        let bytes = [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(raw).ok())
            .ok_or("must be 32 random bytes in base64 (openssl rand -base64 32)")?;
        let key: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| "must be exactly 32 bytes (AES-256) in base64")?;
        Ok(Self(key))
    }

    /// The raw key, for importing it into WebCrypto.
    pub fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }
}

/// Which cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieKind {
    /// The session (`SameSite=Strict`).
    Session,
    /// A login in progress (`SameSite=Lax`).
    Login,
}

impl CookieKind {
    /// The cookie's name: `__Host-` prefixed unless `secure` is off (loopback development).
    pub fn name(self, secure: bool) -> &'static str {
        match (self, secure) {
            (CookieKind::Session, true) => "__Host-edge-oauth-session",
            (CookieKind::Login, true) => "__Host-edge-oauth-login",
            (CookieKind::Session, false) => "edge-oauth-session",
            (CookieKind::Login, false) => "edge-oauth-login",
        }
    }

    /// The additional authenticated data of a sealed value of this cookie.
    pub fn aad(self) -> &'static [u8] {
        match self {
            CookieKind::Session => b"edge-oauth/v1/session",
            CookieKind::Login => b"edge-oauth/v1/login",
        }
    }

    fn same_site(self) -> &'static str {
        match self {
            CookieKind::Session => "Strict",
            CookieKind::Login => "Lax",
        }
    }
}

/// A `Set-Cookie` value.
pub fn set_cookie(kind: CookieKind, value: &str, max_age_secs: u64, secure: bool) -> String {
    let mut out = format!(
        "{}={value}; Path=/; HttpOnly; SameSite={}; Max-Age={max_age_secs}",
        kind.name(secure),
        kind.same_site()
    );
    if secure {
        out.push_str("; Secure");
    }
    out
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn expire_cookie(kind: CookieKind, secure: bool) -> String {
    set_cookie(kind, "", 0, secure)
}

/// Every value of the cookie `name` in a `Cookie` header (RFC 6265 §5.4: `name=value` pairs
/// separated by `; `). Several are possible when a browser holds cookies of the same name for
/// different paths.
pub fn cookie_values<'a>(header: &'a str, name: &str) -> Vec<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .collect()
}

/// The cookie value for a nonce and a ciphertext (with its tag).
pub fn encode_sealed(nonce: &[u8; NONCE_BYTES], ciphertext: &[u8]) -> String {
    let mut raw = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    raw.extend_from_slice(nonce);
    raw.extend_from_slice(ciphertext);
    format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(raw))
}

/// The nonce and ciphertext of a cookie value; `None` when it cannot be one of ours.
pub fn decode_sealed(value: &str) -> Option<([u8; NONCE_BYTES], Vec<u8>)> {
    if value.len() > MAX_VALUE_CHARS {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(value.strip_prefix(VERSION)?).ok()?;
    if raw.len() < NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, ciphertext) = raw.split_at(NONCE_BYTES);
    Some((nonce.try_into().ok()?, ciphertext.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let k = SealingKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        assert_eq!(k.bytes()[31], 31);
        assert_eq!(
            SealingKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap(),
            k
        );
        assert!(!format!("{k:?}").contains("AAEC"));
        for bad in ["", "short", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="] {
            assert!(SealingKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_cookie_attributes() {
        let c = set_cookie(CookieKind::Session, "v1.x", 60, true);
        assert_eq!(
            c,
            "__Host-edge-oauth-session=v1.x; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        let l = set_cookie(CookieKind::Login, "v1.y", 600, true);
        assert!(l.starts_with("__Host-edge-oauth-login=v1.y;") && l.contains("SameSite=Lax"));
        let dev = expire_cookie(CookieKind::Session, false);
        assert_eq!(
            dev,
            "edge-oauth-session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
        assert!(!dev.contains("Secure") && !dev.contains("__Host-"));
    }

    #[test]
    fn cookie_header() {
        let h = "a=1; __Host-edge-oauth-session=v1.abc; b=2;__Host-edge-oauth-session=\"v1.def\"";
        assert_eq!(
            cookie_values(h, "__Host-edge-oauth-session"),
            ["v1.abc", "v1.def"]
        );
        assert!(cookie_values(h, "edge-oauth-session").is_empty());
        assert!(cookie_values("", "a").is_empty());
    }

    #[test]
    fn envelope() {
        let v = encode_sealed(&[7; NONCE_BYTES], &[1; 40]);
        assert!(v.starts_with("v1."));
        let (n, c) = decode_sealed(&v).unwrap();
        assert_eq!((n, c), ([7; NONCE_BYTES], vec![1; 40]));
        for bad in [
            "",
            "v2.AAAA",
            "v1.!!!",
            &encode_sealed(&[0; NONCE_BYTES], &[0; 3]),
            &format!("v1.{}", "A".repeat(600)),
        ] {
            assert!(decode_sealed(bad).is_none(), "{bad}");
        }
    }
}
