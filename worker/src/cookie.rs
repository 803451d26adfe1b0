//! The backend-for-frontend's cookies, as plain data: names and attributes, the `Cookie`
//! header, and the sealed value's envelope. The sealing itself (AES-256-GCM through WebCrypto)
//! is in `seal.rs`, on wasm32 only.
//!
//! Two cookies, both `HttpOnly`, `Secure`, `Path=/`, no `Domain`, hence the `__Host-` prefix
//! (RFC 6265bis §4.1.3.2: a sibling subdomain cannot set or shadow them):
//!
//! * `__Host-edge-oauth-session` (`SameSite=Strict`): the session, for `/bff/session`,
//!   `/bff/logout` and `/bff/mcp/<name>`;
//! * `__Host-edge-oauth-login-<tag>` (`SameSite=Lax`, 10 minutes), one per login in progress:
//!   binds that login to the browser that started it. The authorization server's redirect to
//!   `/bff/callback` is a cross-site navigation, which carries `Lax` cookies but not `Strict`
//!   ones. The tag is derived from the login's `state` ([`login_tag`]), so the callback finds
//!   its own login's cookie and two logins started at once (two tabs) do not overwrite each
//!   other; at most [`MAX_PENDING_LOGINS`] are kept (a new login expires the oldest).
//!
//! A value is `v1.` + base64url(nonce ‖ AES-GCM ciphertext ‖ tag) of a session handle (a login
//! cookie's also holds its tag and when it was set, see [`LoginCookie`]); the additional
//! authenticated data names the kind of cookie, so one cookie's value is refused as the
//! other's, and a login cookie's value under another login's name is refused for its tag.
//! `INSECURE_LOOPBACK_COOKIES=true` (plain-http loopback only) drops `Secure` and with it the
//! prefix, which browsers refuse without `Secure`.

use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

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
/// How many logins one browser may have in progress at once (each its own cookie): a new
/// login past this expires the oldest, so a page cannot pile up cookies.
pub const MAX_PENDING_LOGINS: usize = 4;
/// Characters of a login cookie's tag (base64url, 96 bits).
pub const LOGIN_TAG_CHARS: usize = 16;
/// At most this many login cookies of a request are unsealed; any further one is expired.
pub const MAX_LOGIN_COOKIES_READ: usize = 2 * MAX_PENDING_LOGINS;

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
    /// A login cookie's name is this, `-` and its tag ([`login_cookie_name`]).
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
    set_named_cookie(kind, kind.name(secure), value, max_age_secs, secure)
}

/// A `Set-Cookie` value for a login cookie (`kind` gives the attributes).
fn set_named_cookie(
    kind: CookieKind,
    name: &str,
    value: &str,
    max_age_secs: u64,
    secure: bool,
) -> String {
    let mut out = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite={}; Max-Age={max_age_secs}",
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

/// The tag of a login's cookie: 16 characters of base64url(SHA-256) of its `state`, with a
/// label of its own (the state itself stays out of the cookie's name; a name never repeats).
pub fn login_tag(state: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"edge-oauth/v1 login cookie tag|");
    hash.update(state.as_bytes());
    let mut tag = URL_SAFE_NO_PAD.encode(hash.finalize());
    tag.truncate(LOGIN_TAG_CHARS);
    tag
}

fn is_login_tag(tag: &str) -> bool {
    tag.len() == LOGIN_TAG_CHARS
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The name of the login cookie with this tag.
pub fn login_cookie_name(tag: &str, secure: bool) -> String {
    format!("{}-{tag}", CookieKind::Login.name(secure))
}

/// The `Set-Cookie` value of a login cookie (`SameSite=Lax`, [`LOGIN_MAX_AGE_SECS`]).
pub fn set_login_cookie(tag: &str, value: &str, secure: bool) -> String {
    let name = login_cookie_name(tag, secure);
    set_named_cookie(CookieKind::Login, &name, value, LOGIN_MAX_AGE_SECS, secure)
}

/// A `Set-Cookie` value that deletes the login cookie with this tag.
pub fn expire_login_cookie(tag: &str, secure: bool) -> String {
    set_named_cookie(
        CookieKind::Login,
        &login_cookie_name(tag, secure),
        "",
        0,
        secure,
    )
}

/// The login cookies of a `Cookie` header as (tag, value), in header order; names with a
/// malformed tag are not ours and are left alone.
pub fn login_cookies(header: &str, secure: bool) -> Vec<(&str, &str)> {
    let prefix = CookieKind::Login.name(secure);
    header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(n, v)| {
            let tag = n.trim().strip_prefix(prefix)?.strip_prefix('-')?;
            is_login_tag(tag).then(|| (tag, v.trim().trim_matches('"')))
        })
        .collect()
}

/// What a login cookie holds (sealed): its tag, when it was set, and the handle of the
/// Durable Object that keeps the login (`<tag>.<set_at>.<id>.<secret>`).
#[derive(Clone, PartialEq, Eq)]
pub struct LoginCookie {
    /// The tag of the cookie's name: a value moved under another name is refused.
    pub tag: String,
    /// When it was set (milliseconds since the epoch): the oldest goes first.
    pub set_at: u64,
    /// `<id>.<secret>` of the login's Durable Object.
    pub handle: String,
}

impl fmt::Debug for LoginCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginCookie")
            .field("tag", &self.tag)
            .field("set_at", &self.set_at)
            .finish_non_exhaustive()
    }
}

impl LoginCookie {
    /// The plaintext to seal.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.tag, self.set_at, self.handle)
    }

    /// Reads an unsealed value; `None` when it is not a login cookie's.
    pub fn parse(plain: &str) -> Option<Self> {
        let mut parts = plain.splitn(3, '.');
        let tag = parts.next().filter(|t| is_login_tag(t))?;
        let set_at = parts
            .next()
            .filter(|t| !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok()?;
        let handle = parts.next()?;
        Some(Self {
            tag: tag.to_owned(),
            set_at,
            handle: handle.to_owned(),
        })
    }
}

/// The tags of the login cookies a new login expires, oldest first: with `pending` (tag, set
/// at) in the request's header order, the oldest beyond [`MAX_PENDING_LOGINS`]` - 1`, so that with the
/// new one at most [`MAX_PENDING_LOGINS`] remain.
pub fn logins_to_expire(mut pending: Vec<(String, u64)>) -> Vec<String> {
    let mut expire = Vec::new();
    while pending.len() >= MAX_PENDING_LOGINS {
        // The oldest. Browsers send cookies of one path oldest first (RFC 6265 §5.4), and
        // `min_by_key` takes the first of equals: of two set in the same millisecond, the
        // earlier in the header. (No sort: a handful of entries, and no sort code in the wasm.)
        let Some(oldest) = (0..pending.len()).min_by_key(|&i| pending[i].1) else {
            break;
        };
        expire.push(pending.remove(oldest).0);
    }
    expire
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
    fn login_cookies_by_state() {
        let (a, b) = (login_tag("state-a"), login_tag("state-b"));
        assert_eq!(a.len(), LOGIN_TAG_CHARS);
        assert_ne!(a, b);
        assert_eq!(a, login_tag("state-a"));
        assert!(!a.contains("state"));
        let set = set_login_cookie(&a, "v1.x", true);
        assert_eq!(
            set,
            format!(
                "__Host-edge-oauth-login-{a}=v1.x; Path=/; HttpOnly; SameSite=Lax; Max-Age={LOGIN_MAX_AGE_SECS}; Secure"
            )
        );
        assert_eq!(
            expire_login_cookie(&a, false),
            format!("edge-oauth-login-{a}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
        );
        let header = format!(
            "__Host-edge-oauth-session=v1.s; __Host-edge-oauth-login-{a}=v1.a; __Host-edge-oauth-login=v1.old; __Host-edge-oauth-login-short=v1.c; x=1; __Host-edge-oauth-login-{b}=\"v1.b\""
        );
        assert_eq!(
            login_cookies(&header, true),
            [(a.as_str(), "v1.a"), (b.as_str(), "v1.b")]
        );
        assert!(login_cookies(&header, false).is_empty());
    }

    #[test]
    fn login_cookie_values() {
        let c = LoginCookie {
            tag: login_tag("s"),
            set_at: 1_700_000_000,
            handle: format!("{}.{}", "ab".repeat(32), "S".repeat(43)),
        };
        let plain = c.encode();
        assert_eq!(LoginCookie::parse(&plain), Some(c.clone()));
        assert!(!format!("{c:?}").contains("SSSS"));
        // A bare handle (the single login cookie of before) is not a login cookie's value.
        assert_eq!(LoginCookie::parse(&c.handle), None);
        for bad in [
            "",
            "short.1.a.b",
            &format!("{}..a.b", c.tag),
            &format!("{}.-1.a.b", c.tag),
            &format!("{}.1", c.tag),
            &format!("{}.{}.a.b", c.tag, "9".repeat(30)),
        ] {
            assert_eq!(LoginCookie::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn at_most_four_logins_in_progress() {
        let p = |v: &[(&str, u64)]| v.iter().map(|(t, s)| (t.to_string(), *s)).collect();
        assert!(logins_to_expire(p(&[])).is_empty());
        assert!(logins_to_expire(p(&[("a", 1), ("b", 2), ("c", 3)])).is_empty());
        assert_eq!(
            logins_to_expire(p(&[("c", 3), ("a", 1), ("d", 4), ("b", 2)])),
            ["a"]
        );
        assert_eq!(
            logins_to_expire(p(&[("e", 5), ("a", 1), ("d", 4), ("b", 2), ("c", 3)])),
            ["a", "b"]
        );
        // Set in the same millisecond: the header's first is the oldest.
        assert_eq!(
            logins_to_expire(p(&[("a", 7), ("b", 7), ("c", 7), ("d", 7)])),
            ["a"]
        );
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
