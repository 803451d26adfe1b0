//! The backend-for-frontend (RFC 10017 §6.1) as plain data and decisions: its configuration,
//! the login request, the CSRF gate, the header allowlists of the MCP proxy and the session
//! status. The routes are in `bff_entry.rs`, the session's side in `bff_session.rs`.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `BFF_REDIRECT_URI` | this worker's `/bff/callback` as registered at the providers (`https://<worker origin>/bff/callback`) |
//! | `BFF_RETURN_URL` | where the browser goes after the callback; same origin as `BFF_REDIRECT_URI` |
//! | `MCP_SERVERS` | JSON array: `name`, `url` (the MCP endpoint, also the RFC 8707 resource), `provider` (optional with one provider), `scope`, `max_scope` (the only scopes a step-up may add beyond `scope` and the granted ones; without it a step-up adds none) |
//! | `BFF_COOKIE_KEY` | secret: the cookie sealing key, 32 random bytes in base64 |
//! | `BFF_COOKIE_KEY_PREVIOUS` | secret, optional: the key before, still accepted when unsealing (key rotation) |
//! | `INSECURE_LOOPBACK_COOKIES` | `true`: cookies without `Secure` and `__Host-` for a plain-http loopback `BFF_REDIRECT_URI` (local development only) |
//! | `MCP_MAX_BODY_BYTES` | cap of a request body proxied to an MCP server, 1024..=10485760 (default 1048576) |
//!
//! The BFF is off unless one of the first four is set; then all of them are required.

use edge_oauth_core::url::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Provider, Source, check_upstream_url};
use crate::cookie::SealingKey;
use crate::error::ProxyError;
use crate::session::{SessionHandle, SessionRecord};
use edge_oauth_core::RefreshToken;

/// The custom request header every cookie-authenticated request must carry. A cross-site
/// page cannot send it without a CORS preflight, which only allowed origins pass.
pub const CSRF_HEADER: &str = "X-Edge-OAuth";
/// Its value.
pub const CSRF_VALUE: &str = "1";
/// The callback's path: `BFF_REDIRECT_URI` must end with it.
pub const CALLBACK_PATH: &str = "/bff/callback";

/// Request headers passed to an MCP server (Streamable HTTP, 2025-06-18 and later, the
/// 2026 mirrored headers); `Mcp-Param-*` too. Nothing else: no `Cookie`, `Origin`,
/// `Authorization` (the worker sets its own), `Referer` or client hints.
pub const MCP_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "mcp-session-id",
];
/// The prefix of the 2026 wire's parameter headers, also passed.
pub const MCP_PARAM_HEADER_PREFIX: &str = "mcp-param-";
/// Response headers passed back to the page. Never `Set-Cookie` (the MCP server's cookies
/// would land on the worker's origin).
pub const MCP_RESPONSE_HEADERS: &[&str] = &[
    "cache-control",
    "content-type",
    "mcp-protocol-version",
    "mcp-session-id",
    "retry-after",
    "www-authenticate",
];

/// True when a request header may go to the MCP server.
pub fn mcp_request_header_allowed(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    MCP_REQUEST_HEADERS.contains(&name.as_str()) || name.starts_with(MCP_PARAM_HEADER_PREFIX)
}

/// True when an MCP server's response header may go back to the page.
pub fn mcp_response_header_allowed(name: &str) -> bool {
    MCP_RESPONSE_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

/// A configured MCP server the BFF proxies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpServer {
    /// The name in `/bff/mcp/<name>` (`[a-z0-9_-]`, 1-32).
    pub name: String,
    /// The MCP endpoint; also the resource indicator of the login (RFC 8707).
    pub url: String,
    /// The provider (by name) that protects it.
    pub provider: String,
    /// The scope to ask for at login.
    pub scope: Option<String>,
    /// The only scopes a step-up may ask for beyond `scope` and the granted ones (none
    /// without it).
    pub max_scope: Option<String>,
}

/// The backend-for-frontend's configuration.
#[derive(Clone, Debug)]
pub struct BffConfig {
    /// `BFF_REDIRECT_URI`.
    pub redirect_uri: String,
    /// `BFF_RETURN_URL`.
    pub return_url: String,
    /// `MCP_SERVERS`.
    pub mcp_servers: Vec<McpServer>,
    /// `BFF_COOKIE_KEY`, then `BFF_COOKIE_KEY_PREVIOUS` if set (sealing uses the first).
    pub cookie_keys: Vec<SealingKey>,
    /// False with `INSECURE_LOOPBACK_COOKIES=true`: no `Secure`, no `__Host-`.
    pub secure_cookies: bool,
    /// `MCP_MAX_BODY_BYTES`.
    pub max_mcp_body_bytes: usize,
}

impl BffConfig {
    /// The MCP server named `name`.
    pub fn mcp_server(&self, name: &str) -> Option<&McpServer> {
        self.mcp_servers.iter().find(|s| s.name == name)
    }

    /// Reads the BFF's variables: `Ok(None)` when the BFF is not configured at all; problems
    /// are pushed to `problems`.
    pub fn load(
        source: &impl Source,
        providers: &[Provider],
        allow_loopback: bool,
        problems: &mut Vec<String>,
    ) -> Option<BffConfig> {
        let redirect = source.var("BFF_REDIRECT_URI");
        let servers = source.var("MCP_SERVERS");
        let ret = source.var("BFF_RETURN_URL");
        let key = source.secret("BFF_COOKIE_KEY");
        if redirect.is_none() && servers.is_none() && ret.is_none() && key.is_none() {
            return None;
        }
        let before = problems.len();
        let redirect_uri = match redirect {
            None => {
                problems.push("BFF_REDIRECT_URI is not set (this worker's https://<origin>/bff/callback, registered at the providers)".to_owned());
                None
            }
            Some(r) => match check_redirect_uri(r.trim(), allow_loopback) {
                Ok(u) => Some(u),
                Err(why) => {
                    problems.push(format!("BFF_REDIRECT_URI {why}"));
                    None
                }
            },
        };
        let insecure = match source
            .var("INSECURE_LOOPBACK_COOKIES")
            .as_deref()
            .map(str::trim)
        {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                problems.push("INSECURE_LOOPBACK_COOKIES must be `true` or `false`".to_owned());
                false
            }
        };
        if let Some(r) = &redirect_uri {
            match (r.scheme(), insecure) {
                ("http", false) => problems.push("BFF_REDIRECT_URI is plain http: its cookies cannot be Secure; set INSECURE_LOOPBACK_COOKIES=true (loopback development only) or use https".to_owned()),
                ("https", true) => problems.push("INSECURE_LOOPBACK_COOKIES=true is only for a plain-http loopback BFF_REDIRECT_URI".to_owned()),
                _ => {}
            }
        }
        let return_url = match (ret, &redirect_uri) {
            (None, _) => {
                problems.push(
                    "BFF_RETURN_URL is not set (the page to return to after login)".to_owned(),
                );
                None
            }
            (Some(r), redirect) => match Url::parse(r.trim()) {
                Ok(u) if u.fragment().is_some() || !u.username().is_empty() => {
                    problems
                        .push("BFF_RETURN_URL must not have a fragment or credentials".to_owned());
                    None
                }
                Ok(u)
                    if redirect.as_ref().is_some_and(|d| {
                        d.origin().ascii_serialization() != u.origin().ascii_serialization()
                    }) =>
                {
                    problems.push(
                        "BFF_RETURN_URL must have the same origin as BFF_REDIRECT_URI".to_owned(),
                    );
                    None
                }
                Ok(u) => Some(u.to_string()),
                Err(_) => {
                    problems.push("BFF_RETURN_URL is not an absolute URL".to_owned());
                    None
                }
            },
        };
        let mcp_servers = match servers {
            None => {
                problems.push("MCP_SERVERS is not set (a JSON array of the MCP servers /bff/mcp/<name> proxies to)".to_owned());
                Vec::new()
            }
            Some(raw) => parse_mcp_servers(&raw, providers, allow_loopback, problems),
        };
        let mut cookie_keys = Vec::new();
        for (name, required) in [("BFF_COOKIE_KEY", true), ("BFF_COOKIE_KEY_PREVIOUS", false)] {
            match source.secret(name) {
                Some(raw) if !raw.trim().is_empty() => match SealingKey::parse(&raw) {
                    Ok(k) => cookie_keys.push(k),
                    Err(why) => problems.push(format!("{name} {why}")),
                },
                _ if required => problems.push(format!(
                    "{name} is not set (wrangler secret put {name}; 32 random bytes in base64)"
                )),
                _ => {}
            }
        }
        let max_mcp_body_bytes = match source.var("MCP_MAX_BODY_BYTES") {
            None => 1 << 20,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (1024..=10 << 20).contains(&n) => n,
                _ => {
                    problems.push(
                        "MCP_MAX_BODY_BYTES must be a whole number in 1024..=10485760".to_owned(),
                    );
                    1 << 20
                }
            },
        };
        if problems.len() != before {
            return None;
        }
        Some(BffConfig {
            redirect_uri: redirect_uri?.to_string(),
            return_url: return_url?,
            mcp_servers,
            cookie_keys,
            secure_cookies: !insecure,
            max_mcp_body_bytes,
        })
    }
}

/// `https://<origin>/bff/callback` (or plain-http loopback when allowed), nothing more.
fn check_redirect_uri(raw: &str, allow_loopback: bool) -> Result<Url, &'static str> {
    let url = check_upstream_url(raw, allow_loopback)?;
    if url.path() != CALLBACK_PATH || url.query().is_some() {
        return Err("must be this worker's origin followed by /bff/callback, without a query");
    }
    Ok(url)
}

const MCP_SERVER_FIELDS: &[&str] = &["name", "url", "provider", "scope", "max_scope"];

fn parse_mcp_servers(
    raw: &str,
    providers: &[Provider],
    allow_loopback: bool,
    problems: &mut Vec<String>,
) -> Vec<McpServer> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(raw) else {
        problems.push("MCP_SERVERS must be a JSON array".to_owned());
        return Vec::new();
    };
    if items.is_empty() {
        problems.push("MCP_SERVERS is empty".to_owned());
    }
    let mut out: Vec<McpServer> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("MCP_SERVERS[{i}]");
        let Value::Object(obj) = item else {
            problems.push(format!("{at} must be an object"));
            continue;
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !MCP_SERVER_FIELDS.contains(&k.as_str()))
        {
            let k: String = k.chars().take(40).collect();
            problems.push(format!(
                "{at} has an unknown field {k:?} (known: {})",
                MCP_SERVER_FIELDS.join(", ")
            ));
            continue;
        }
        let text = |f: &str| obj.get(f).and_then(Value::as_str).map(str::trim);
        let name = text("name").unwrap_or_default();
        if name.is_empty()
            || name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            problems.push(format!(
                "{at}.name must be 1-32 characters of a-z, 0-9, - and _"
            ));
            continue;
        }
        let url = match text("url").map(|u| (u, check_upstream_url(u, allow_loopback))) {
            Some((_, Ok(u))) if u.query().is_none() => u.to_string(),
            Some((u, Err(why))) => {
                problems.push(format!("{at}.url {u:?} {why}"));
                continue;
            }
            _ => {
                problems.push(format!(
                    "{at}.url must be the MCP server's absolute URL, without a query"
                ));
                continue;
            }
        };
        let provider = match text("provider") {
            Some(p) if providers.iter().any(|q| q.name == p) => p.to_owned(),
            Some(p) => {
                problems.push(format!(
                    "{at}.provider {p:?} names no provider in PROVIDERS"
                ));
                continue;
            }
            None if providers.len() == 1 => providers[0].name.clone(),
            // No valid provider: PROVIDERS' own problems say why; nothing to add here.
            None if providers.is_empty() => continue,
            None => {
                problems.push(format!(
                    "{at}.provider is required (several providers are configured)"
                ));
                continue;
            }
        };
        let mut scopes = [None, None];
        let mut bad = false;
        for (slot, field) in scopes.iter_mut().zip(["scope", "max_scope"]) {
            *slot = match obj.get(field) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if scope_tokens(s).is_some() => Some(s.trim().to_owned()),
                Some(_) => {
                    problems.push(format!(
                        "{at}.{field} must be a non-empty string of space-separated scope tokens"
                    ));
                    bad = true;
                    None
                }
            };
        }
        if bad {
            continue;
        }
        let [scope, max_scope] = scopes;
        if out.iter().any(|s| s.name == name) {
            problems.push(format!("{at}.name repeats the name {name:?}"));
            continue;
        }
        out.push(McpServer {
            name: name.to_owned(),
            url,
            provider,
            scope,
            max_scope,
        });
    }
    out
}

/// The tokens of a scope string (RFC 6749 §3.3: `scope-token = 1*NQCHAR`, separated by
/// spaces), or `None` when it is empty or has a character outside NQCHAR.
pub fn scope_tokens(scope: &str) -> Option<Vec<&str>> {
    let tokens: Vec<&str> = scope.split(' ').filter(|t| !t.is_empty()).collect();
    let nqchar = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
    (!tokens.is_empty() && tokens.iter().all(|t| t.bytes().all(nqchar))).then_some(tokens)
}

/// On the MCP proxy's 403 `insufficient_scope`: the recorded challenge's scope, present only
/// when a step-up login (`POST /bff/login` with `step_up`) would be accepted for it.
pub const STEP_UP_HEADER: &str = "X-Edge-OAuth-Step-Up";

/// The longest challenge scope a session records (longer ones are not a step-up).
pub const MAX_CHALLENGE_SCOPE_CHARS: usize = 1024;

/// The scope an MCP server's 403 asks for: its `WWW-Authenticate` challenge for the access
/// token (Bearer, else DPoP; parsed by the core) with `error="insufficient_scope"` and a
/// well-formed `scope` (RFC 6750 §3.1; MCP authorization, scope challenge handling). Anything
/// else is no step-up.
pub fn insufficient_scope_challenge(status: u16, www_authenticate: Option<&str>) -> Option<String> {
    if status != 403 {
        return None;
    }
    let challenge = edge_oauth_core::www_authenticate::parse_token_challenge(www_authenticate?)?;
    if challenge.error.as_deref() != Some("insufficient_scope") {
        return None;
    }
    let scope = challenge.scope?;
    if scope.len() > MAX_CHALLENGE_SCOPE_CHARS {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for t in scope_tokens(&scope)? {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Some(out.join(" "))
}

/// The scope of a login for `server`: without a recorded challenge, the configured scope;
/// after one (a step-up), the union of the configured scope, the session's granted scope and
/// the challenge's scope. A challenge scope outside the configured scope, the granted scope
/// and `max_scope` is refused: the MCP server names what it wants, the configuration bounds
/// it, so without `max_scope` a step-up can only ask again for what was configured or granted
/// (a compromised MCP server cannot make the worker's client ask for `offline_access` or
/// another API's scopes).
pub fn login_scope(
    server: &McpServer,
    granted: Option<&str>,
    challenge: Option<&str>,
) -> Result<Option<String>, ProxyError> {
    let Some(challenge) = challenge else {
        return Ok(server.scope.clone());
    };
    let words = |s: Option<&str>| -> Vec<String> {
        s.and_then(scope_tokens)
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    let configured = words(server.scope.as_deref());
    let granted = words(granted);
    let asked = words(Some(challenge));
    let allowed = words(server.max_scope.as_deref());
    if let Some(t) = asked
        .iter()
        .find(|t| !allowed.contains(t) && !configured.contains(t) && !granted.contains(t))
    {
        let t: String = t.chars().take(64).collect();
        return Err(ProxyError::StepUpScopeNotAllowed { scope: t });
    }
    let mut out: Vec<String> = Vec::new();
    for t in configured.into_iter().chain(granted).chain(asked) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok((!out.is_empty()).then(|| out.join(" ")))
}

/// What `POST /bff/login` asks for: an MCP server by name, and optionally the provider (which
/// must be the one protecting it). JSON or a form.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The MCP server's configured name.
    pub mcp_server: String,
    /// The provider's configured name.
    #[serde(default)]
    pub provider: Option<String>,
    /// A step-up of the session in the request's cookie: the login asks for the scope the
    /// MCP server's last `insufficient_scope` challenge named too (see [`login_scope`]), and
    /// its session replaces that one.
    #[serde(default)]
    pub step_up: bool,
}

impl LoginRequest {
    /// Parses a JSON body.
    pub fn from_json(body: &[u8]) -> Result<Self, ProxyError> {
        serde_json::from_slice(body).map_err(|_| ProxyError::InvalidLoginRequest)
    }

    /// Parses a form body.
    pub fn from_form(form: &crate::form::Form) -> Result<Self, ProxyError> {
        Ok(Self {
            mcp_server: form.required("mcp_server")?.to_owned(),
            provider: form.single("provider")?.map(str::to_owned),
            step_up: match form.single("step_up")? {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => return Err(ProxyError::InvalidLoginRequest),
            },
        })
    }

    /// The MCP server and provider this login is for.
    pub fn resolve<'a>(
        &self,
        bff: &'a BffConfig,
        providers: &'a [Provider],
    ) -> Result<(&'a McpServer, &'a Provider), ProxyError> {
        let server = bff
            .mcp_server(&self.mcp_server)
            .ok_or(ProxyError::UnknownMcpServer)?;
        if self
            .provider
            .as_ref()
            .is_some_and(|p| *p != server.provider)
        {
            return Err(ProxyError::UnknownProvider);
        }
        let provider = providers
            .iter()
            .find(|p| p.name == server.provider)
            .ok_or(ProxyError::UnknownProvider)?;
        Ok((server, provider))
    }
}

/// The CSRF gate of cookie-authenticated requests: the custom header, and an `Origin` that is
/// allowed. Browsers omit `Origin` on same-origin `GET`s, so it may be absent there (the
/// custom header alone already needs a same-origin page or a passed preflight); on any other
/// method it is required.
pub fn csrf_check(
    csrf_header: Option<&str>,
    origin: Option<&str>,
    safe_method: bool,
    origin_allowed: impl Fn(&str) -> bool,
) -> Result<(), ProxyError> {
    match origin {
        Some(o) if !origin_allowed(o) => return Err(ProxyError::OriginNotAllowed),
        None if !safe_method => return Err(ProxyError::OriginNotAllowed),
        _ => {}
    }
    if csrf_header.map(str::trim) != Some(CSRF_VALUE) {
        return Err(ProxyError::CsrfHeaderMissing);
    }
    Ok(())
}

/// Which session a BFF record belongs to: the MCP server (and so the resource and provider)
/// of its login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BffBinding {
    /// The MCP server's configured name.
    pub mcp_server: String,
    /// The provider's issuer.
    pub issuer: String,
    /// The scope of the MCP server's last `insufficient_scope` challenge to this session, until
    /// a step-up login replaces the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up_scope: Option<String>,
    /// A step-up's session: the session it replaced, until that one is deleted (`BffReplaced`)
    /// and its refresh tokens are here; still set at logout, that session is logged out too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<SessionHandle>,
    /// The refresh tokens of the sessions step-ups replaced, newest first, at most
    /// [`SUPERSEDED_KEPT`]: revoked at logout after the session's own (RFC 7009). The replaced
    /// session does not revoke them itself: a step-up may have extended the same grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<RefreshToken>,
}

/// How many refresh tokens of replaced sessions a session keeps (older ones are dropped, left
/// to the authorization server's lifetime for them).
pub const SUPERSEDED_KEPT: usize = 4;

/// `GET /bff/session`: whether there is a session, and about its access token what a page
/// may show — never a token.
pub fn session_status(record: Option<&SessionRecord>, now: u64) -> Value {
    let Some((record, binding)) = record.and_then(|r| r.bff.as_ref().map(|b| (r, b))) else {
        return serde_json::json!({ "authenticated": false });
    };
    let usable = !record.tokens.is_expired(now) || record.tokens.refresh_token.is_some();
    let mut out = serde_json::json!({
        "authenticated": usable,
        "issuer": binding.issuer,
        "provider": record.provider,
        "mcp_server": binding.mcp_server,
        // The tokens are bound to this session's own DPoP key (RFC 9449), held by the worker.
        "dpop_bound": record.tokens.is_dpop(),
    });
    if usable {
        if let Some(exp) = record.tokens.expires_at {
            out["expires_at"] = exp.into();
        }
        if let Some(scope) = &record.tokens.scope {
            out["scope"] = scope.as_str().into();
        }
        if let Some(scope) = &binding.step_up_scope {
            out["step_up_scope"] = scope.as_str().into();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::session::{HandleSecret, SessionRecord};
    use edge_oauth_core::{AccessToken, RefreshToken, TokenSet};
    use std::collections::BTreeMap;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    struct Vars(BTreeMap<&'static str, String>);
    impl Source for Vars {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn secret(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn vars(extra: &[(&'static str, &str)]) -> Vars {
        let mut m = BTreeMap::new();
        m.insert("ALLOWED_ORIGINS", "https://app.example.com".to_owned());
        m.insert(
            "PROVIDERS",
            r#"[{"name":"main","issuer":"https://as.example.com","client_id":"c","client_secret_binding":"S","redirect_uris":["https://app.example.com/cb"]}]"#.to_owned(),
        );
        m.insert("S", "secret".to_owned());
        m.insert(
            "BFF_REDIRECT_URI",
            "https://app.example.com/bff/callback".to_owned(),
        );
        m.insert("BFF_RETURN_URL", "https://app.example.com/".to_owned());
        m.insert(
            "MCP_SERVERS",
            r#"[{"name":"tools","url":"https://mcp.example.com/mcp","scope":"mcp:tools"}]"#
                .to_owned(),
        );
        m.insert("BFF_COOKIE_KEY", KEY.to_owned());
        for (k, v) in extra {
            if v.is_empty() {
                m.remove(k);
            } else {
                m.insert(k, (*v).to_owned());
            }
        }
        Vars(m)
    }

    fn problems(extra: &[(&'static str, &str)]) -> String {
        Config::load(&vars(extra)).unwrap_err().to_string()
    }

    #[test]
    fn a_complete_configuration() {
        let c = Config::load(&vars(&[])).unwrap();
        let bff = c.bff.unwrap();
        assert_eq!(bff.redirect_uri, "https://app.example.com/bff/callback");
        assert_eq!(
            bff.mcp_server("tools").unwrap(),
            &McpServer {
                name: "tools".into(),
                url: "https://mcp.example.com/mcp".into(),
                provider: "main".into(),
                scope: Some("mcp:tools".into()),
                max_scope: None,
            }
        );
        assert!(bff.secure_cookies);
        assert_eq!(bff.cookie_keys.len(), 1);
        assert!(!format!("{bff:?}").contains("AAEC"));
        // No BFF variable at all: no BFF.
        let none = Config::load(&vars(&[
            ("BFF_REDIRECT_URI", ""),
            ("BFF_RETURN_URL", ""),
            ("MCP_SERVERS", ""),
            ("BFF_COOKIE_KEY", ""),
        ]))
        .unwrap();
        assert!(none.bff.is_none());
    }

    #[test]
    fn refusals_name_the_variable() {
        let p = problems(&[("BFF_COOKIE_KEY", "")]);
        assert!(p.contains("BFF_COOKIE_KEY is not set"), "{p}");
        let p = problems(&[("BFF_COOKIE_KEY", "c2hvcnQ=")]);
        assert!(p.contains("BFF_COOKIE_KEY must be exactly 32 bytes"), "{p}");
        let p = problems(&[("BFF_REDIRECT_URI", "https://app.example.com/other")]);
        assert!(p.contains("/bff/callback"), "{p}");
        let p = problems(&[("BFF_RETURN_URL", "https://elsewhere.example.com/")]);
        assert!(p.contains("same origin"), "{p}");
        let p = problems(&[(
            "MCP_SERVERS",
            r#"[{"name":"t","url":"https://10.0.0.1/mcp"},{"name":"u","url":"https://m/","provider":"x"}]"#,
        )]);
        assert!(
            p.contains("MCP_SERVERS[0].url") && p.contains("MCP_SERVERS[1].provider"),
            "{p}"
        );
        // Plain-http loopback: only with both opt-ins.
        let p = problems(&[
            ("INSECURE_ALLOW_LOOPBACK", "true"),
            ("BFF_REDIRECT_URI", "http://127.0.0.1:8787/bff/callback"),
            ("BFF_RETURN_URL", "http://127.0.0.1:8787/"),
        ]);
        assert!(p.contains("INSECURE_LOOPBACK_COOKIES=true"), "{p}");
        let c = Config::load(&vars(&[
            ("INSECURE_ALLOW_LOOPBACK", "true"),
            ("INSECURE_LOOPBACK_COOKIES", "true"),
            ("BFF_REDIRECT_URI", "http://127.0.0.1:8787/bff/callback"),
            ("BFF_RETURN_URL", "http://127.0.0.1:8787/app"),
        ]))
        .unwrap();
        assert!(!c.bff.unwrap().secure_cookies);
        let p = problems(&[("INSECURE_LOOPBACK_COOKIES", "true")]);
        assert!(p.contains("only for a plain-http loopback"), "{p}");
    }

    #[test]
    fn header_allowlists() {
        for h in [
            "Accept",
            "content-type",
            "Mcp-Session-Id",
            "MCP-Protocol-Version",
            "Mcp-Param-Region",
            "Last-Event-ID",
        ] {
            assert!(mcp_request_header_allowed(h), "{h}");
        }
        for h in [
            "cookie",
            "origin",
            "authorization",
            "referer",
            "x-edge-oauth",
            "host",
            "cf-connecting-ip",
        ] {
            assert!(!mcp_request_header_allowed(h), "{h}");
        }
        assert!(mcp_response_header_allowed("Content-Type"));
        assert!(!mcp_response_header_allowed("set-cookie"));
    }

    #[test]
    fn csrf() {
        let allowed = |o: &str| o == "https://app";
        assert_eq!(
            csrf_check(Some("1"), Some("https://app"), false, allowed),
            Ok(())
        );
        assert_eq!(csrf_check(Some("1"), None, true, allowed), Ok(()));
        assert_eq!(
            csrf_check(Some("1"), None, false, allowed),
            Err(ProxyError::OriginNotAllowed)
        );
        assert_eq!(
            csrf_check(Some("1"), Some("https://evil"), true, allowed),
            Err(ProxyError::OriginNotAllowed)
        );
        assert_eq!(
            csrf_check(None, Some("https://app"), true, allowed),
            Err(ProxyError::CsrfHeaderMissing)
        );
        assert_eq!(
            csrf_check(Some("0"), Some("https://app"), false, allowed),
            Err(ProxyError::CsrfHeaderMissing)
        );
    }

    #[test]
    fn login_requests() {
        let c = Config::load(&vars(&[])).unwrap();
        let bff = c.bff.as_ref().unwrap();
        let r = LoginRequest::from_json(br#"{"mcp_server":"tools"}"#).unwrap();
        let (s, p) = r.resolve(bff, &c.providers).unwrap();
        assert_eq!((s.name.as_str(), p.name.as_str()), ("tools", "main"));
        let r = LoginRequest::from_json(br#"{"mcp_server":"tools","provider":"other"}"#).unwrap();
        assert_eq!(
            r.resolve(bff, &c.providers).unwrap_err(),
            ProxyError::UnknownProvider
        );
        let r = LoginRequest::from_json(br#"{"mcp_server":"nope"}"#).unwrap();
        assert_eq!(
            r.resolve(bff, &c.providers).unwrap_err(),
            ProxyError::UnknownMcpServer
        );
        assert!(LoginRequest::from_json(br#"{"mcp_server":"tools","url":"x"}"#).is_err());
        let f = crate::form::Form::parse(b"mcp_server=tools");
        assert_eq!(LoginRequest::from_form(&f).unwrap().mcp_server, "tools");
    }

    #[test]
    fn step_up_challenges() {
        let c = |s, h| insufficient_scope_challenge(s, h);
        let h = r#"Bearer error="insufficient_scope", scope="mcp:tools mcp:admin mcp:admin""#;
        assert_eq!(c(403, Some(h)).as_deref(), Some("mcp:tools mcp:admin"));
        let dpop = r#"DPoP algs="ES256", error="insufficient_scope", scope="a b""#;
        assert_eq!(c(403, Some(dpop)).as_deref(), Some("a b"));
        assert_eq!(c(401, Some(h)), None);
        assert_eq!(c(403, None), None);
        assert_eq!(c(403, Some(r#"Bearer error="invalid_token""#)), None);
        assert_eq!(c(403, Some(r#"Bearer error="insufficient_scope""#)), None);
        assert_eq!(
            c(
                403,
                Some(r#"Bearer error="insufficient_scope", scope="a\"b""#)
            ),
            None
        );
        assert_eq!(
            c(
                403,
                Some(r#"Bearer error="insufficient_scope", scope="  ""#)
            ),
            None
        );
        let long = format!(
            r#"Bearer error="insufficient_scope", scope="{}""#,
            "a".repeat(2000)
        );
        assert_eq!(c(403, Some(&long)), None);
        assert_eq!(c(403, Some("garbage ,,, =")), None);
    }

    #[test]
    fn step_up_login_scope_is_bounded() {
        let mut s = McpServer {
            name: "tools".into(),
            url: "https://mcp.example.com/mcp".into(),
            provider: "main".into(),
            scope: Some("mcp:tools".into()),
            max_scope: None,
        };
        // No challenge: the configured scope only, whatever was granted.
        assert_eq!(
            login_scope(&s, Some("mcp:tools openid"), None)
                .unwrap()
                .as_deref(),
            Some("mcp:tools")
        );
        // Without max_scope a challenge may only re-ask the configured and granted scope: an
        // MCP server cannot make the worker's client ask for more (other APIs, offline_access).
        assert_eq!(
            login_scope(&s, Some("mcp:tools openid"), Some("openid mcp:tools"))
                .unwrap()
                .as_deref(),
            Some("mcp:tools openid")
        );
        assert_eq!(
            login_scope(&s, Some("mcp:tools openid"), Some("mcp:tools mcp:admin")).unwrap_err(),
            ProxyError::StepUpScopeNotAllowed {
                scope: "mcp:admin".into()
            }
        );
        assert_eq!(
            login_scope(&s, Some("mcp:tools"), Some("openid email offline_access")).unwrap_err(),
            ProxyError::StepUpScopeNotAllowed {
                scope: "openid".into()
            }
        );
        s.max_scope = Some("mcp:admin mcp:read".into());
        assert_eq!(
            login_scope(&s, None, Some("mcp:admin")).unwrap().as_deref(),
            Some("mcp:tools mcp:admin")
        );
        assert_eq!(
            login_scope(&s, Some("mcp:tools"), Some("mcp:tools mcp:root")).unwrap_err(),
            ProxyError::StepUpScopeNotAllowed {
                scope: "mcp:root".into()
            }
        );
        let p = problems(&[(
            "MCP_SERVERS",
            r#"[{"name":"tools","url":"https://mcp.example.com/mcp","max_scope":"a\"b"}]"#,
        )]);
        assert!(p.contains("MCP_SERVERS[0].max_scope"), "{p}");
        let r = LoginRequest::from_json(br#"{"mcp_server":"tools","step_up":true}"#).unwrap();
        assert!(r.step_up);
        let f = crate::form::Form::parse(b"mcp_server=tools&step_up=true");
        assert!(LoginRequest::from_form(&f).unwrap().step_up);
        let f = crate::form::Form::parse(b"mcp_server=tools&step_up=yes");
        assert!(LoginRequest::from_form(&f).is_err());
    }

    #[test]
    fn status_never_shows_tokens() {
        assert_eq!(session_status(None, 0)["authenticated"], false);
        let mut r = SessionRecord {
            provider: "main".into(),
            client_id: "c".into(),
            resource: Some("https://mcp.example.com/mcp".into()),
            tokens: TokenSet {
                access_token: AccessToken::new("at-secret"),
                token_type: "Bearer".into(),
                refresh_token: Some(RefreshToken::new("rt-secret")),
                expires_at: Some(2_000),
                scope: Some("mcp:tools".into()),
                received_at: 1_000,
            },
            handle: HandleSecret::from_random(&[1; 32]),
            retired: Vec::new(),
            created_at: 1_000,
            refreshes: 0,
            bff: None,
            dpop_jkt: None,
            dpop_key: None,
        };
        // A token-mediating session is not a BFF session.
        assert_eq!(session_status(Some(&r), 1_500)["authenticated"], false);
        r.bff = Some(BffBinding {
            mcp_server: "tools".into(),
            issuer: "https://as.example.com".into(),
            step_up_scope: None,
            replaces: SessionHandle::parse(&format!("{}.{}", "ab".repeat(32), "S".repeat(43))),
            superseded: vec![RefreshToken::new("rt-secret-of-before")],
        });
        // Neither the replaced session's secret nor its refresh token shows in Debug or status.
        let debug = format!("{r:?}");
        assert!(
            !debug.contains("SSSS") && !debug.contains("rt-secret") && debug.contains("abab"),
            "{debug}"
        );
        let s = session_status(Some(&r), 1_500);
        assert_eq!(s["authenticated"], true);
        assert!(s.get("step_up_scope").is_none());
        r.bff.as_mut().unwrap().step_up_scope = Some("mcp:tools mcp:admin".into());
        let s = session_status(Some(&r), 1_500);
        assert_eq!(s["step_up_scope"], "mcp:tools mcp:admin");
        assert_eq!(s["expires_at"], 2_000);
        assert_eq!(s["scope"], "mcp:tools");
        let text = s.to_string();
        assert!(
            !text.contains("secret") && !text.contains(r.handle.secret()),
            "{text}"
        );
        // Expired, and nothing to refresh with: not authenticated.
        r.tokens.refresh_token = None;
        assert_eq!(session_status(Some(&r), 2_500)["authenticated"], false);
    }
}
