//! Configuration from `[vars]` and secrets, validated once per isolate into a typed [`Config`].
//! Every problem is collected and reported together; no message quotes a value that could be a
//! secret (a client secret pasted where its binding name belongs is reported by field name).
//!
//! | variable | meaning |
//! | --- | --- |
//! | `ALLOWED_ORIGINS` | exact browser origins, comma- or space-separated (required) |
//! | `PROVIDERS` | JSON array of providers (required), see [`Provider`] |
//! | `MAX_BODY_BYTES` | request body cap, 256..=65536 (default 8192) |
//! | `ROTATION_GRACE_SECS` | how long a rotated session handle still gets its successor, 0..=300 (default 30) |
//! | `REFRESH_BUFFER_SECS` | refresh this long before expiry, capped at half the lifetime (default 60) |
//! | `UPSTREAM_TIMEOUT_MS` | per upstream request, 100..=60000 (default 10000) |
//! | `SESSION_IDLE_SECS` | a session unused this long is deleted, 60..=31622400 (default 30 days) |
//! | `INSECURE_ALLOW_LOOPBACK` | `true` lets origins, issuers and endpoints be plain-http loopback (local development only) |
//! | `RATE_LIMIT_ADDRESS` | requests per client address (`CF-Connecting-IP`) and isolate, `N/S` or `off` (default `600/60`) |
//! | `RATE_LIMIT_SESSION` | requests per BFF session, in its Durable Object, `N/S` or `off` (default `120/60`) |
//!
//! A provider: `{"name", "issuer", "client_id", "client_secret_binding", "auth_method"?,
//! "token_endpoint"?, "revocation_endpoint"?, "authorization_endpoint"?, "redirect_uris"}`.
//! `auth_method` is `client_secret_basic` (default), `client_secret_post` or `private_key_jwt`
//! (RFC 7523 §2.2); for `private_key_jwt` the secret named by `client_secret_binding` holds the
//! client's private key as a JWK (EC P-256, ES256), imported non-extractable at first use.
//! Endpoints left out are discovered from the issuer (RFC 8414) at first use. The
//! backend-for-frontend's variables are read by [`BffConfig::load`].

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edge_oauth_core::ClientSecret;
use edge_oauth_core::jws::PublicJwk;
use edge_oauth_core::registration::{
    ClientCredentials, RegistrationSource, TokenEndpointAuthMethod,
};
use edge_oauth_core::url::{Host, Url};
use serde_json::{Map, Value};

use crate::bff::BffConfig;
use crate::ratelimit::RateLimit;

/// Where configuration comes from: `[vars]` and secrets (`wrangler secret put`, `.dev.vars`).
pub trait Source {
    /// A plain variable, as a string (an object-valued var arrives as its JSON text).
    fn var(&self, name: &str) -> Option<String>;
    /// A secret.
    fn secret(&self, name: &str) -> Option<String>;
}

/// Limits, with their defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Seconds a rotated session handle still gets its successor instead of ending the session.
    pub rotation_grace_secs: u64,
    /// Refresh this many seconds before expiry (capped at half the token's lifetime).
    pub refresh_buffer_secs: u64,
    /// Timeout of each upstream request in milliseconds.
    pub upstream_timeout_ms: u64,
    /// A session unused this long is deleted.
    pub session_idle_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 8192,
            rotation_grace_secs: 30,
            refresh_buffer_secs: 60,
            upstream_timeout_ms: 10_000,
            session_idle_secs: 30 * 24 * 3600,
        }
    }
}

/// One upstream authorization server and the confidential client the worker is there.
#[derive(Clone, Debug)]
pub struct Provider {
    /// A short name (`[a-z0-9_-]`, unique).
    pub name: String,
    /// The issuer identifier (RFC 8414).
    pub issuer: String,
    /// Client id, secret (from the named secret binding) and authentication method.
    pub client: ClientCredentials,
    /// The token endpoint, when configured (else discovered).
    pub token_endpoint: Option<String>,
    /// The revocation endpoint, when configured (else discovered, if the issuer has one).
    pub revocation_endpoint: Option<String>,
    /// The authorization endpoint for the backend-for-frontend's logins, when configured
    /// (else discovered).
    pub authorization_endpoint: Option<String>,
    /// The redirect URIs a code exchange may name.
    pub redirect_uris: Vec<String>,
    /// The private key of a `private_key_jwt` client (`client.client_secret` is then `None`).
    pub assertion_key: Option<AssertionKey>,
}

/// What the secret binding of a provider holds.
enum Credential {
    Secret(ClientSecret),
    Key(AssertionKey),
}

/// A `private_key_jwt` client's private key (RFC 7523 §2.2), as the JWK the secret holds:
/// EC P-256 for ES256, the only algorithm WebCrypto and every server here share. Checked
/// when the configuration loads; imported into WebCrypto, non-extractable, at first use.
/// `Debug` shows the public half only.
#[derive(Clone, PartialEq, Eq)]
pub struct AssertionKey {
    /// The whole private JWK, as WebCrypto's `importKey("jwk", …)` wants it.
    private_jwk: Map<String, Value>,
    /// The public half, for thumbprints and `Debug`.
    pub public: PublicJwk,
    /// The JWK's `kid`, sent in the assertion's header when present.
    pub kid: Option<String>,
}

impl AssertionKey {
    /// Parses a private EC P-256 JWK; the reason on failure never quotes the key.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let Ok(Value::Object(jwk)) = serde_json::from_str::<Value>(text) else {
            return Err("is not a JSON object (a private JWK)");
        };
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("kty") != Some("EC") || field("crv") != Some("P-256") {
            return Err("must be an EC P-256 private JWK (\"kty\":\"EC\",\"crv\":\"P-256\")");
        }
        if let Some(alg) = field("alg")
            && alg != "ES256"
        {
            return Err("names an alg other than ES256");
        }
        let coordinate = |name: &str| {
            field(name).filter(|v| {
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v)
                    .is_ok_and(|b| b.len() == 32)
            })
        };
        let (Some(x), Some(y)) = (coordinate("x"), coordinate("y")) else {
            return Err("lacks valid x and y (32 bytes each, base64url)");
        };
        if coordinate("d").is_none() {
            return Err("lacks the private part d (32 bytes, base64url): it is a public key");
        }
        let public = PublicJwk::Ec {
            crv: "P-256".to_owned(),
            x: x.to_owned(),
            y: y.to_owned(),
        };
        let kid = field("kid").map(str::to_owned);
        let private_jwk = ["kty", "crv", "x", "y", "d"]
            .iter()
            .filter_map(|k| jwk.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        Ok(Self {
            private_jwk,
            public,
            kid,
        })
    }

    /// The private JWK (`kty`, `crv`, `x`, `y`, `d` only) for WebCrypto's import.
    pub fn private_jwk(&self) -> &Map<String, Value> {
        &self.private_jwk
    }
}

impl core::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("thumbprint", &self.public.thumbprint())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// True when both endpoints are configured (no discovery needed).
    pub fn endpoints_configured(&self) -> bool {
        self.token_endpoint.is_some() && self.revocation_endpoint.is_some()
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Exact origins allowed to call (CORS and the `Origin` check).
    pub allowed_origins: Vec<String>,
    /// Providers, in configuration order.
    pub providers: Vec<Provider>,
    /// Limits.
    pub limits: Limits,
    /// Plain-http loopback allowed (local development).
    pub allow_loopback: bool,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// The backend-for-frontend, when configured.
    pub bff: Option<BffConfig>,
}

/// The rate limits (`None`: off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Per client address, per isolate.
    pub address: Option<RateLimit>,
    /// Per BFF session, in its Durable Object.
    pub session: Option<RateLimit>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            address: Some(RateLimit {
                capacity: 600,
                per_secs: 60,
            }),
            session: Some(RateLimit {
                capacity: 120,
                per_secs: 60,
            }),
        }
    }
}

/// Why the configuration was refused: every problem found, and the allowed origins when those
/// parsed (so even the error can carry CORS headers for the page that needs to see it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, each naming a variable or field.
    pub problems: Vec<String>,
    /// `ALLOWED_ORIGINS`, if valid.
    pub allowed_origins: Option<Vec<String>>,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

impl Config {
    /// True when `origin` is allowed (exact match).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    /// The provider a token request is for: by `client_id`, or the only one when none is sent.
    pub fn provider_for_client(&self, client_id: Option<&str>) -> Option<&Provider> {
        match client_id {
            Some(id) => self.providers.iter().find(|p| p.client.client_id == id),
            None if self.providers.len() == 1 => self.providers.first(),
            None => None,
        }
    }

    /// The provider with this name.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// Reads and validates everything.
    pub fn load(source: &impl Source) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let allow_loopback = match source
            .var("INSECURE_ALLOW_LOOPBACK")
            .as_deref()
            .map(str::trim)
        {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                problems.push("INSECURE_ALLOW_LOOPBACK must be `true` or `false`".to_owned());
                false
            }
        };
        let allowed_origins =
            parse_origins(source.var("ALLOWED_ORIGINS"), allow_loopback, &mut problems);
        let limits = Limits {
            max_body_bytes: number(source, "MAX_BODY_BYTES", 256, 65_536, 8192, &mut problems)
                as usize,
            rotation_grace_secs: number(source, "ROTATION_GRACE_SECS", 0, 300, 30, &mut problems),
            refresh_buffer_secs: number(source, "REFRESH_BUFFER_SECS", 0, 3600, 60, &mut problems),
            upstream_timeout_ms: number(
                source,
                "UPSTREAM_TIMEOUT_MS",
                100,
                60_000,
                10_000,
                &mut problems,
            ),
            session_idle_secs: number(
                source,
                "SESSION_IDLE_SECS",
                60,
                366 * 24 * 3600,
                30 * 24 * 3600,
                &mut problems,
            ),
        };
        let providers = parse_providers(source, allow_loopback, &mut problems);
        let defaults = RateLimits::default();
        let mut rate_limit = |name: &str, default: Option<RateLimit>| match source.var(name) {
            None => default,
            Some(raw) => RateLimit::parse(&raw).unwrap_or_else(|why| {
                problems.push(format!("{name} {why}"));
                default
            }),
        };
        let rate_limits = RateLimits {
            address: rate_limit("RATE_LIMIT_ADDRESS", defaults.address),
            session: rate_limit("RATE_LIMIT_SESSION", defaults.session),
        };
        let bff = BffConfig::load(source, &providers, allow_loopback, &mut problems);
        if problems.is_empty() {
            Ok(Config {
                allowed_origins: allowed_origins.unwrap_or_default(),
                providers,
                limits,
                allow_loopback,
                rate_limits,
                bff,
            })
        } else {
            Err(ConfigError {
                problems,
                allowed_origins,
            })
        }
    }
}

fn number(
    source: &impl Source,
    name: &str,
    min: u64,
    max: u64,
    default: u64,
    problems: &mut Vec<String>,
) -> u64 {
    let Some(raw) = source.var(name) else {
        return default;
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => n,
        _ => {
            problems.push(format!("{name} must be a whole number in {min}..={max}"));
            default
        }
    }
}

fn parse_origins(
    raw: Option<String>,
    allow_loopback: bool,
    problems: &mut Vec<String>,
) -> Option<Vec<String>> {
    let Some(raw) = raw else {
        problems.push("ALLOWED_ORIGINS is not set (the exact browser origins allowed to call, comma-separated)".to_owned());
        return None;
    };
    let mut origins = Vec::new();
    let before = problems.len();
    for item in raw
        .split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match check_origin(item, allow_loopback) {
            Ok(o) => origins.push(o),
            Err(why) => problems.push(format!("ALLOWED_ORIGINS: {item:?} {why}")),
        }
    }
    if origins.is_empty() && problems.len() == before {
        problems.push("ALLOWED_ORIGINS lists no origin".to_owned());
    }
    (problems.len() == before).then_some(origins)
}

/// An exact origin: `https://host[:port]`, or plain-http loopback when allowed.
pub fn check_origin(item: &str, allow_loopback: bool) -> Result<String, &'static str> {
    if item == "*" {
        return Err("is a wildcard; list exact origins");
    }
    let url = Url::parse(item).map_err(|_| "is not an origin (scheme://host[:port])")?;
    let origin = url.origin().ascii_serialization();
    if origin != item {
        return Err("is not an exact origin (scheme://host[:port], no path or trailing slash)");
    }
    match url.scheme() {
        "https" => Ok(origin),
        "http" if is_loopback_host(&url) && allow_loopback => Ok(origin),
        "http" if is_loopback_host(&url) => {
            Err("is plain http (allowed for loopback only with INSECURE_ALLOW_LOOPBACK=true)")
        }
        _ => Err("must be https"),
    }
}

/// Checks an upstream URL (issuer or endpoint): absolute, no credentials or fragment, https; a
/// host that is an IP literal in a private, link-local, unspecified or loopback range is
/// refused, and loopback (also `localhost`) over plain http is allowed only with
/// `allow_loopback`.
pub fn check_upstream_url(raw: &str, allow_loopback: bool) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "is not an absolute URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment");
    }
    let loopback = is_loopback_host(&url);
    match (url.scheme(), loopback) {
        ("https", false) | ("https", true) | ("http", true) => {}
        ("http", false) => return Err("must be https"),
        _ => return Err("must be an https URL"),
    }
    if loopback && !allow_loopback {
        return Err("is a loopback address (allowed only with INSECURE_ALLOW_LOOPBACK=true)");
    }
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(_)) => None,
        None => return Err("has no host"),
    };
    if let Some(ip) = ip
        && !ip.is_loopback()
        && !is_public_ip(ip)
    {
        return Err("is a private, link-local or reserved address");
    }
    Ok(url)
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, RFC 6598
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, RFC 4193
        || (first & 0xffc0) == 0xfe80) // link-local
}

fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

const PROVIDER_FIELDS: &[&str] = &[
    "name",
    "issuer",
    "client_id",
    "client_secret_binding",
    "auth_method",
    "token_endpoint",
    "revocation_endpoint",
    "authorization_endpoint",
    "redirect_uris",
];

fn parse_providers(
    source: &impl Source,
    allow_loopback: bool,
    problems: &mut Vec<String>,
) -> Vec<Provider> {
    let Some(raw) = source.var("PROVIDERS") else {
        problems.push("PROVIDERS is not set (a JSON array of providers)".to_owned());
        return Vec::new();
    };
    // serde_json's messages can quote input; keep the position only.
    let value: Value = match serde_json::from_str(&raw) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!(
                "PROVIDERS is not valid JSON (line {} column {})",
                e.line(),
                e.column()
            ));
            return Vec::new();
        }
    };
    let Value::Array(items) = value else {
        problems.push("PROVIDERS must be a JSON array".to_owned());
        return Vec::new();
    };
    if items.is_empty() {
        problems.push("PROVIDERS is empty".to_owned());
    }
    let mut providers: Vec<Provider> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("PROVIDERS[{i}]");
        let Value::Object(obj) = item else {
            problems.push(format!("{at} must be an object"));
            continue;
        };
        if let Some(p) = parse_provider(source, obj, &at, allow_loopback, problems) {
            if providers.iter().any(|q| q.name == p.name) {
                problems.push(format!("{at}.name repeats the name {:?}", p.name));
            } else if providers
                .iter()
                .any(|q| q.client.client_id == p.client.client_id)
            {
                problems.push(format!(
                    "{at}.client_id is used by another provider (client_id selects the provider)"
                ));
            } else {
                providers.push(p);
            }
        }
    }
    providers
}

fn parse_provider(
    source: &impl Source,
    obj: &Map<String, Value>,
    at: &str,
    allow_loopback: bool,
    problems: &mut Vec<String>,
) -> Option<Provider> {
    let before = problems.len();
    for key in obj.keys() {
        if !PROVIDER_FIELDS.contains(&key.as_str()) {
            // Keys are names, not values: safe to show (truncated).
            let key: String = key.chars().take(40).collect();
            problems.push(format!(
                "{at} has an unknown field {key:?} (known: {})",
                PROVIDER_FIELDS.join(", ")
            ));
        }
    }
    let mut string = |field: &str, required: bool| -> Option<String> {
        match obj.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                problems.push(format!("{at}.{field} is required"));
                None
            }
            Some(_) => {
                problems.push(format!("{at}.{field} must be a non-empty string"));
                None
            }
        }
    };
    let name = string("name", true);
    let issuer = string("issuer", true);
    let client_id = string("client_id", true);
    let binding = string("client_secret_binding", true);
    let auth_method = string("auth_method", false);
    let token_endpoint = string("token_endpoint", false);
    let revocation_endpoint = string("revocation_endpoint", false);
    let authorization_endpoint = string("authorization_endpoint", false);

    if let Some(n) = &name
        && (n.len() > 32
            || !n
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'))
    {
        problems.push(format!(
            "{at}.name must be 1-32 characters of a-z, 0-9, - and _"
        ));
    }
    if let Some(i) = &issuer
        && let Err(why) = check_upstream_url(i, allow_loopback)
    {
        problems.push(format!("{at}.issuer {i:?} {why}"));
    }
    for (field, value) in [
        ("token_endpoint", &token_endpoint),
        ("revocation_endpoint", &revocation_endpoint),
        ("authorization_endpoint", &authorization_endpoint),
    ] {
        if let Some(v) = value
            && let Err(why) = check_upstream_url(v, allow_loopback)
        {
            problems.push(format!("{at}.{field} {v:?} {why}"));
        }
    }
    let auth_method = match auth_method.as_deref() {
        None | Some("client_secret_basic") => Some(TokenEndpointAuthMethod::ClientSecretBasic),
        Some("client_secret_post") => Some(TokenEndpointAuthMethod::ClientSecretPost),
        Some("private_key_jwt") => Some(TokenEndpointAuthMethod::PrivateKeyJwt),
        Some(_) => {
            problems.push(format!(
                "{at}.auth_method must be client_secret_basic, client_secret_post or private_key_jwt"
            ));
            None
        }
    };
    let key_auth = auth_method == Some(TokenEndpointAuthMethod::PrivateKeyJwt);
    // The binding's name, never its value: someone may have pasted the secret itself here.
    let secret = match &binding {
        Some(b)
            if !b
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
                || b.len() > 64 =>
        {
            problems.push(format!("{at}.client_secret_binding must be the NAME of a secret (A-Z, 0-9, _), not the secret itself"));
            None
        }
        Some(b) => match source.secret(b) {
            Some(s) if !s.is_empty() && key_auth => match AssertionKey::parse(&s) {
                Ok(key) => Some(Credential::Key(key)),
                Err(why) => {
                    problems.push(format!("{at}: the secret {b} named by client_secret_binding {why} (auth_method private_key_jwt)"));
                    None
                }
            },
            Some(s) if !s.is_empty() => Some(Credential::Secret(ClientSecret::new(s))),
            _ => {
                problems.push(format!("{at}: the secret {b} named by client_secret_binding is not set (wrangler secret put {b}, or .dev.vars locally)"));
                None
            }
        },
        None => None,
    };
    let redirect_uris = match obj.get("redirect_uris") {
        Some(Value::Array(list)) if !list.is_empty() => {
            let mut out = Vec::new();
            for (j, v) in list.iter().enumerate() {
                match v.as_str().map(Url::parse) {
                    Some(Ok(u))
                        if u.fragment().is_none() && matches!(u.scheme(), "https" | "http") =>
                    {
                        out.push(v.as_str().unwrap_or_default().to_owned())
                    }
                    _ => problems.push(format!(
                        "{at}.redirect_uris[{j}] must be an absolute http(s) URL without a fragment"
                    )),
                }
            }
            out
        }
        _ => {
            problems.push(format!(
                "{at}.redirect_uris must be a non-empty array of the redirect URIs the pages use"
            ));
            Vec::new()
        }
    };
    if problems.len() != before {
        return None;
    }
    let (name, issuer, client_id, credential, auth_method) =
        (name?, issuer?, client_id?, secret?, auth_method?);
    let (client_secret, assertion_key) = match credential {
        Credential::Secret(s) => (Some(s), None),
        Credential::Key(k) => (None, Some(k)),
    };
    Some(Provider {
        name,
        assertion_key,
        client: ClientCredentials {
            issuer: issuer.clone(),
            client_id,
            client_secret,
            auth_method,
            source: RegistrationSource::PreRegistered,
            redirect_uris: redirect_uris.clone(),
            secret_expires_at: None,
            registration_access_token: None,
        },
        issuer,
        token_endpoint,
        revocation_endpoint,
        authorization_endpoint,
        redirect_uris,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Vars(
        BTreeMap<&'static str, String>,
        BTreeMap<&'static str, String>,
    );
    impl Source for Vars {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn secret(&self, name: &str) -> Option<String> {
            self.1.get(name).cloned()
        }
    }

    fn good() -> Vars {
        let mut v = Vars::default();
        v.0.insert(
            "ALLOWED_ORIGINS",
            "https://app.example.com, https://b.example.com".into(),
        );
        v.0.insert(
            "PROVIDERS",
            r#"[{"name":"main","issuer":"https://as.example.com","client_id":"c1","client_secret_binding":"MAIN_SECRET","redirect_uris":["https://app.example.com/cb"]}]"#.into(),
        );
        v.1.insert("MAIN_SECRET", "s3cr3t-value".into());
        v
    }

    #[test]
    fn valid_configuration() {
        let c = Config::load(&good()).unwrap();
        assert_eq!(
            c.allowed_origins,
            ["https://app.example.com", "https://b.example.com"]
        );
        assert!(c.origin_allowed("https://b.example.com"));
        assert!(!c.origin_allowed("https://b.example.com/"));
        let p = c.provider_for_client(None).unwrap();
        assert_eq!(
            p.client.auth_method,
            TokenEndpointAuthMethod::ClientSecretBasic
        );
        assert_eq!(
            p.client.client_secret.as_ref().unwrap().secret(),
            "s3cr3t-value"
        );
        assert!(c.provider_for_client(Some("c2")).is_none());
        assert_eq!(c.limits, Limits::default());
        // The secret never shows in Debug.
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn every_problem_is_reported_without_secret_values() {
        let mut v = good();
        v.0.insert("ALLOWED_ORIGINS", "https://app.example.com/, *".into());
        v.0.insert("MAX_BODY_BYTES", "10".into());
        v.0.insert(
            "PROVIDERS",
            r#"[{"name":"Main","issuer":"http://as.example.com","client_id":"c1","client_secret_binding":"sk-live-abc123","auth_method":"private_key_jwt","redirect_uris":[],"tokn_endpoint":"x"}]"#.into(),
        );
        let e = Config::load(&v).unwrap_err();
        let all = e.to_string();
        for expected in [
            "ALLOWED_ORIGINS",
            "wildcard",
            "MAX_BODY_BYTES",
            "PROVIDERS[0].name",
            "must be https",
            "NAME of a secret",
            "redirect_uris",
            "tokn_endpoint",
        ] {
            assert!(all.contains(expected), "{expected} missing in {all}");
        }
        assert!(!all.contains("sk-live-abc123"), "{all}");
        assert!(e.allowed_origins.is_none());
    }

    #[test]
    fn private_key_jwt_takes_a_private_p256_jwk() {
        let x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
        let y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
        let d = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
        let provider = |auth: &str| {
            format!(
                r#"[{{"name":"main","issuer":"https://as.example.com","client_id":"c1","client_secret_binding":"MAIN_KEY","auth_method":"{auth}","redirect_uris":["https://app.example.com/cb"]}}]"#
            )
        };
        let mut v = good();
        v.0.insert("PROVIDERS", provider("private_key_jwt"));
        v.1.insert(
            "MAIN_KEY",
            format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}","d":"{d}","kid":"k1","use":"sig"}}"#),
        );
        let c = Config::load(&v).unwrap();
        let p = c.provider_for_client(Some("c1")).unwrap();
        assert_eq!(p.client.auth_method, TokenEndpointAuthMethod::PrivateKeyJwt);
        assert!(p.client.client_secret.is_none());
        let key = p.assertion_key.as_ref().unwrap();
        assert_eq!(key.kid.as_deref(), Some("k1"));
        assert_eq!(
            key.private_jwk().len(),
            5,
            "only kty, crv, x, y, d go to WebCrypto"
        );
        // Neither Debug of the configuration nor of the key shows the private part.
        assert!(!format!("{c:?}").contains(d));
        for (bad, why) in [
            (
                format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}"#),
                "public key",
            ),
            (
                format!(r#"{{"kty":"EC","crv":"P-384","x":"{x}","y":"{y}","d":"{d}"}}"#),
                "P-256",
            ),
            (
                format!(
                    r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}","d":"{d}","alg":"ES384"}}"#
                ),
                "ES256",
            ),
            (
                format!(r#"{{"kty":"EC","crv":"P-256","x":"short","y":"{y}","d":"{d}"}}"#),
                "x and y",
            ),
            ("sk-live-not-a-jwk".to_owned(), "JSON object"),
        ] {
            v.1.insert("MAIN_KEY", bad.clone());
            let e = Config::load(&v).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("MAIN_KEY"), "{why}: {e}");
            assert!(!e.contains(d) && !e.contains("sk-live"), "{e}");
        }
        v.0.insert("PROVIDERS", provider("tls_client_auth"));
        let e = Config::load(&v).unwrap_err().to_string();
        assert!(e.contains("private_key_jwt"), "{e}");
    }

    #[test]
    fn missing_secret_and_bad_json() {
        let mut v = good();
        v.1.clear();
        let e = Config::load(&v).unwrap_err();
        assert!(
            e.to_string()
                .contains("MAIN_SECRET named by client_secret_binding is not set"),
            "{e}"
        );
        assert_eq!(e.allowed_origins.as_deref().map(<[String]>::len), Some(2));
        v.0.insert(
            "PROVIDERS",
            r#"[{"name": "x", "client_secret": "leak"#.into(),
        );
        let e = Config::load(&v).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        assert!(!e.to_string().contains("leak"));
        v.0.remove("PROVIDERS");
        v.0.remove("ALLOWED_ORIGINS");
        let e = Config::load(&v).unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
    }

    #[test]
    fn duplicate_client_ids_and_names() {
        let mut v = good();
        v.0.insert(
            "PROVIDERS",
            r#"[{"name":"a","issuer":"https://as.example.com","client_id":"c1","client_secret_binding":"MAIN_SECRET","redirect_uris":["https://app.example.com/cb"]},
                {"name":"b","issuer":"https://as2.example.com","client_id":"c1","client_secret_binding":"MAIN_SECRET","redirect_uris":["https://app.example.com/cb"]},
                {"name":"a","issuer":"https://as3.example.com","client_id":"c3","client_secret_binding":"MAIN_SECRET","redirect_uris":["https://app.example.com/cb"]}]"#.into(),
        );
        let e = Config::load(&v).unwrap_err().to_string();
        assert!(
            e.contains("PROVIDERS[1].client_id is used by another provider"),
            "{e}"
        );
        assert!(e.contains("PROVIDERS[2].name repeats"), "{e}");
    }

    #[test]
    fn loopback_only_when_allowed() {
        let mut v = good();
        v.0.insert("ALLOWED_ORIGINS", "http://127.0.0.1:8080".into());
        v.0.insert(
            "PROVIDERS",
            r#"[{"name":"local","issuer":"http://127.0.0.1:4000","client_id":"c1","client_secret_binding":"MAIN_SECRET","auth_method":"client_secret_post","redirect_uris":["http://127.0.0.1:8080/cb"]}]"#.into(),
        );
        let e = Config::load(&v).unwrap_err().to_string();
        assert!(e.contains("INSECURE_ALLOW_LOOPBACK"), "{e}");
        v.0.insert("INSECURE_ALLOW_LOOPBACK", "true".into());
        let c = Config::load(&v).unwrap();
        assert!(c.allow_loopback);
        assert_eq!(
            c.providers[0].client.auth_method,
            TokenEndpointAuthMethod::ClientSecretPost
        );
    }

    #[test]
    fn upstream_url_policy() {
        for bad in [
            "http://as.example.com",
            "https://10.0.0.1/token",
            "https://192.168.1.1",
            "https://172.16.0.1",
            "https://169.254.169.254/latest",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://0.0.0.0/",
            "https://100.64.0.1/",
            "https://user:pw@as.example.com/",
            "https://as.example.com/#f",
            "ftp://as.example.com/",
            "not a url",
        ] {
            assert!(check_upstream_url(bad, true).is_err(), "{bad}");
        }
        for loopback in [
            "http://127.0.0.1:4000",
            "http://localhost:1",
            "https://[::1]/",
            "http://a.localhost/",
        ] {
            assert!(check_upstream_url(loopback, false).is_err(), "{loopback}");
            assert!(check_upstream_url(loopback, true).is_ok(), "{loopback}");
        }
        assert!(check_upstream_url("https://as.example.com/oauth/token", false).is_ok());
        assert!(check_upstream_url("https://8.8.8.8/", false).is_ok());
    }
}
