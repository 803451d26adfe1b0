//! Responses as plain data, so CORS and error shaping are tested natively; `entry.rs` turns a
//! [`Reply`] into a `worker::Response`.

use crate::error::ProxyError;

/// Methods a preflight may ask for.
pub const CORS_METHODS: &str = "POST";
/// Request headers a preflight may ask for (a form POST needs no more, and a DPoP proof).
pub const CORS_HEADERS: &str = "content-type, accept, dpop";
/// How long a browser may cache a preflight.
pub const CORS_MAX_AGE: &str = "600";
/// Methods a preflight for `/bff/*` may ask for.
pub const BFF_CORS_METHODS: &str = "GET, POST, DELETE";
/// Response headers a page on an allowed origin may read from `/bff/*`.
pub const BFF_CORS_EXPOSE: &str =
    "mcp-session-id, mcp-protocol-version, www-authenticate, retry-after, x-edge-oauth-step-up";

/// CORS with credentials for `/bff/*` (the session cookie travels with a cross-origin,
/// same-site request only when the page asks for `credentials: "include"` and this allows it).
pub fn credentialed_cors(allowed_origin: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(origin) = allowed_origin {
        out.push(("Access-Control-Allow-Origin", origin.to_owned()));
        out.push(("Access-Control-Allow-Credentials", "true".into()));
        out.push(("Access-Control-Expose-Headers", BFF_CORS_EXPOSE.into()));
    }
    out.push(("Vary", "Origin".into()));
    out
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Header fields.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// JSON with `Cache-Control: no-store` (RFC 6749 §5.1: token responses are never cached).
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::json_bytes(status, value.to_string().into_bytes())
    }

    /// Already-serialised JSON, with the same headers as [`Reply::json`].
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![
                ("Content-Type", "application/json;charset=UTF-8".into()),
                ("Cache-Control", "no-store".into()),
                ("Pragma", "no-cache".into()),
            ],
            body,
        }
    }

    /// An error, RFC 6749 §5.2-shaped, with `Retry-After` and `Allow` where they apply.
    pub fn error(error: &ProxyError) -> Self {
        let mut reply = Self::json(error.status(), &error.to_json());
        if let Some(secs) = error.retry_after() {
            reply.headers.push(("Retry-After", secs.to_string()));
        }
        if *error == ProxyError::MethodNotAllowed {
            reply.headers.push(("Allow", "POST, OPTIONS".into()));
        }
        reply
    }

    /// The answer to a CORS preflight from an allowed origin.
    pub fn preflight(origin: &str) -> Self {
        Self {
            status: 204,
            headers: vec![
                ("Access-Control-Allow-Origin", origin.to_owned()),
                ("Access-Control-Allow-Methods", CORS_METHODS.into()),
                ("Access-Control-Allow-Headers", CORS_HEADERS.into()),
                ("Access-Control-Max-Age", CORS_MAX_AGE.into()),
                ("Vary", "Origin".into()),
            ],
            body: Vec::new(),
        }
    }

    /// Adds CORS for `origin` when it is allowed; always `Vary: Origin` (the answer depends on it).
    pub fn with_cors(mut self, allowed_origin: Option<&str>) -> Self {
        if let Some(origin) = allowed_origin {
            self.headers
                .push(("Access-Control-Allow-Origin", origin.to_owned()));
            // What the page must read: when to retry, and a DPoP nonce (RFC 9449 §8).
            let expose: Vec<&str> = [("Retry-After", "retry-after"), ("DPoP-Nonce", "dpop-nonce")]
                .iter()
                .filter(|(h, _)| self.headers.iter().any(|(n, _)| n == h))
                .map(|(_, e)| *e)
                .collect();
            if !expose.is_empty() {
                self.headers
                    .push(("Access-Control-Expose-Headers", expose.join(", ")));
            }
        }
        if !self.headers.iter().any(|(n, _)| *n == "Vary") {
            self.headers.push(("Vary", "Origin".into()));
        }
        self
    }

    /// A `303 See Other` to `location`, not cached.
    pub fn redirect(location: &str) -> Self {
        Self {
            status: 303,
            headers: vec![
                ("Location", location.to_owned()),
                ("Cache-Control", "no-store".into()),
            ],
            body: Vec::new(),
        }
    }

    /// The answer to a CORS preflight for `/bff/*` from an allowed origin: the custom CSRF
    /// header and the MCP request headers the proxy forwards, nothing else (`None` when the
    /// preflight asks for another header).
    pub fn bff_preflight(origin: &str, requested_headers: Option<&str>) -> Option<Self> {
        let requested: Vec<String> = requested_headers
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let allowed = |h: &str| {
            h.eq_ignore_ascii_case(crate::bff::CSRF_HEADER)
                || crate::bff::mcp_request_header_allowed(h)
        };
        if !requested.iter().all(|h| allowed(h)) {
            return None;
        }
        let mut headers = credentialed_cors(Some(origin));
        headers.retain(|(n, _)| *n != "Access-Control-Expose-Headers");
        headers.push(("Access-Control-Allow-Methods", BFF_CORS_METHODS.into()));
        if !requested.is_empty() {
            headers.push(("Access-Control-Allow-Headers", requested.join(", ")));
        }
        headers.push(("Access-Control-Max-Age", CORS_MAX_AGE.into()));
        Some(Self {
            status: 204,
            headers,
            body: Vec::new(),
        })
    }

    /// Replaces every value of a header with one.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name, value));
        self
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl From<ProxyError> for Reply {
    fn from(error: ProxyError) -> Self {
        Reply::error(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_rfc_shaped_and_not_cached() {
        let r = Reply::error(&ProxyError::BodyTooLarge { limit: 8192 });
        assert_eq!(r.status, 413);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_request");
        assert_eq!(v["code"], "body_too_large");
        assert!(v["error_description"].as_str().unwrap().contains("8192"));
        let r = Reply::error(&ProxyError::UpstreamUnavailable {
            retry_after: Some(7),
        })
        .with_cors(Some("https://a"));
        assert_eq!((r.status, r.header("retry-after")), (503, Some("7")));
        assert_eq!(
            r.header("access-control-expose-headers"),
            Some("retry-after")
        );
        let r = Reply::error(&ProxyError::UnsupportedGrantType);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (r.status, v["error"].as_str()),
            (400, Some("unsupported_grant_type"))
        );
        assert_eq!(
            Reply::error(&ProxyError::MethodNotAllowed).header("allow"),
            Some("POST, OPTIONS")
        );
    }

    #[test]
    fn cors_only_for_allowed_origins() {
        let r = Reply::error(&ProxyError::OriginNotAllowed).with_cors(None);
        assert_eq!(r.status, 403);
        assert!(
            r.headers
                .iter()
                .all(|(n, _)| !n.starts_with("Access-Control"))
        );
        assert_eq!(r.header("vary"), Some("Origin"));
        let r = Reply::json(200, &serde_json::json!({})).with_cors(Some("https://app"));
        assert_eq!(r.header("access-control-allow-origin"), Some("https://app"));
        let p = Reply::preflight("https://app");
        assert_eq!(
            (p.status, p.header("access-control-allow-methods")),
            (204, Some("POST"))
        );
    }

    #[test]
    fn bff_cors_with_credentials_and_only_forwarded_headers() {
        let p = Reply::bff_preflight(
            "https://app",
            Some("X-Edge-OAuth, content-type, mcp-session-id, Mcp-Param-Region"),
        )
        .unwrap();
        assert_eq!(p.status, 204);
        assert_eq!(p.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(
            p.header("access-control-allow-headers"),
            Some("x-edge-oauth, content-type, mcp-session-id, mcp-param-region")
        );
        assert!(Reply::bff_preflight("https://app", Some("x-edge-oauth, authorization")).is_none());
        assert!(Reply::bff_preflight("https://app", Some("cookie")).is_none());
        let h = credentialed_cors(None);
        assert_eq!(h, vec![("Vary", "Origin".to_owned())]);
        let r = Reply::redirect("https://app/");
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("https://app/"))
        );
    }
}
