//! The worker's one error type. Every error leaves the worker as RFC 6749 §5.2-shaped JSON,
//! `{"error", "error_description", "code"}` with `Cache-Control: no-store`: `error` is the
//! OAuth code a client branches on, `code` the stable, more precise name of this crate's
//! variant. No message carries a token, a session handle, a code or a client secret.

use core::fmt;

use edge_oauth_core::{Error as CoreError, OAuthError, OAuthErrorCode, Recovery};

/// What went wrong, classified by who can fix it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// No such route.
    NotFound,
    /// The route exists, not for this method.
    MethodNotAllowed,
    /// The request's `Origin` is missing or not in `ALLOWED_ORIGINS`.
    OriginNotAllowed,
    /// The body is larger than `MAX_BODY_BYTES`.
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not `application/x-www-form-urlencoded` (RFC 6749 §3.2).
    UnsupportedContentType,
    /// A parameter appears more than once (RFC 6749 §3.1).
    DuplicateParameter {
        /// Its name.
        name: &'static str,
    },
    /// A required parameter is missing.
    MissingParameter {
        /// Its name.
        name: &'static str,
    },
    /// A parameter this proxy refuses (e.g. `scope` on a session refresh).
    UnsupportedParameter {
        /// Its name.
        name: &'static str,
    },
    /// `grant_type` other than `authorization_code` and `refresh_token`.
    UnsupportedGrantType,
    /// `client_id` names no configured provider (or none was sent with several configured).
    UnknownClient,
    /// The code exchange's `redirect_uri` is not one the provider lists.
    RedirectUriNotAllowed,
    /// The session handle is malformed, unknown or ended.
    InvalidSessionHandle,
    /// A token other than a session handle was sent for revocation, and the provider has no
    /// revocation endpoint (RFC 7009 §2.2.1 `unsupported_token_type`).
    RevocationUnsupported,
    /// A rotated session handle came back after the grace window: treated as stolen, the
    /// session was ended (and its refresh token revoked upstream).
    SessionHandleReused,
    /// The `DPoP` header is not one DPoP proof (RFC 9449 §4.2), or a session bound to a DPoP
    /// key was refreshed without a proof by that key (RFC 9449 §5).
    InvalidDpopProof,
    /// The authorization server answered with an OAuth error for the client to act on
    /// (e.g. `invalid_grant` for a used code); passed through with its status.
    Upstream {
        /// The status the authorization server answered.
        status: u16,
        /// Its error.
        error: OAuthError,
    },
    /// The authorization server refused the worker's own client credentials
    /// (`invalid_client`): a deployment problem, not the page's.
    UpstreamClientRejected,
    /// The authorization server is unavailable (5xx, 429, `temporarily_unavailable`, timeout).
    UpstreamUnavailable {
        /// Seconds to wait, when it said.
        retry_after: Option<u64>,
    },
    /// The authorization server's answer was unusable (a redirect, not JSON, no access token).
    UpstreamInvalid {
        /// The core's stable code for what was wrong.
        core_code: &'static str,
    },
    /// The worker's configuration is invalid; every request gets this until it is fixed.
    Misconfigured {
        /// What is wrong (names variables and fields, never secret values).
        problem: String,
    },
    /// Durable Object storage or the runtime failed.
    Internal {
        /// What failed (no secrets).
        what: &'static str,
    },
    /// A cookie-authenticated request without the custom header (`X-Edge-OAuth: 1`): CSRF.
    CsrfHeaderMissing,
    /// The session cookie is not one this worker sealed (tampered, foreign, or from a key no
    /// longer configured).
    InvalidSessionCookie,
    /// No session: no cookie, or its session ended (logged out, expired, revoked upstream).
    NotAuthenticated,
    /// Too many requests from this client address or session.
    RateLimited {
        /// Seconds until the next request would pass.
        retry_after: u64,
    },
    /// `/bff/*` on a worker without backend-for-frontend configuration.
    BffNotConfigured,
    /// `/bff/mcp/<name>` or a login for an MCP server that is not configured.
    UnknownMcpServer,
    /// The session was logged in for another MCP server (its access token is for that
    /// resource only, RFC 8707).
    McpServerNotInSession,
    /// A login for a provider that does not protect the MCP server asked for.
    UnknownProvider,
    /// A login request body that is not `{"mcp_server": …, "provider"?: …, "step_up"?: …}`.
    InvalidLoginRequest,
    /// The callback failed the core's checks (state, `iss`, age, redirect URI, duplicates) or
    /// has no login in progress.
    LoginRejected {
        /// The core's stable code (or `no_login_in_progress`).
        core_code: &'static str,
    },
    /// A step-up login for a session the MCP server has not challenged (no recorded
    /// `insufficient_scope`): there is nothing to step up to.
    NoStepUpChallenge,
    /// A step-up login for a scope outside the MCP server's `scope`, `max_scope` and the
    /// granted scope.
    StepUpScopeNotAllowed {
        /// The first scope token refused.
        scope: String,
    },
    /// The MCP server could not be reached, timed out or answered with a redirect.
    McpServerUnavailable,
    /// A relay URL that is not a well-known metadata URL of a configured issuer.
    RelayNotAllowed,
}

impl ProxyError {
    /// The stable machine-readable code (the JSON `code` member).
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NotFound => "not_found",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::OriginNotAllowed => "origin_not_allowed",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::UnsupportedContentType => "unsupported_content_type",
            ProxyError::DuplicateParameter { .. } => "duplicate_parameter",
            ProxyError::MissingParameter { .. } => "missing_parameter",
            ProxyError::UnsupportedParameter { .. } => "unsupported_parameter",
            ProxyError::UnsupportedGrantType => "unsupported_grant_type",
            ProxyError::UnknownClient => "unknown_client",
            ProxyError::RedirectUriNotAllowed => "redirect_uri_not_allowed",
            ProxyError::InvalidSessionHandle => "invalid_session_handle",
            ProxyError::RevocationUnsupported => "revocation_unsupported",
            ProxyError::SessionHandleReused => "session_handle_reused",
            ProxyError::InvalidDpopProof => "invalid_dpop_proof",
            ProxyError::Upstream { .. } => "upstream_error",
            ProxyError::UpstreamClientRejected => "upstream_client_rejected",
            ProxyError::UpstreamUnavailable { .. } => "upstream_unavailable",
            ProxyError::UpstreamInvalid { .. } => "upstream_invalid_response",
            ProxyError::Misconfigured { .. } => "misconfigured",
            ProxyError::Internal { .. } => "internal_error",
            ProxyError::CsrfHeaderMissing => "csrf_header_missing",
            ProxyError::InvalidSessionCookie => "invalid_session_cookie",
            ProxyError::NotAuthenticated => "not_authenticated",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::BffNotConfigured => "bff_not_configured",
            ProxyError::UnknownMcpServer => "unknown_mcp_server",
            ProxyError::McpServerNotInSession => "mcp_server_not_in_session",
            ProxyError::UnknownProvider => "unknown_provider",
            ProxyError::InvalidLoginRequest => "invalid_login_request",
            ProxyError::LoginRejected { .. } => "login_rejected",
            ProxyError::McpServerUnavailable => "mcp_server_unavailable",
            ProxyError::NoStepUpChallenge => "no_step_up_challenge",
            ProxyError::StepUpScopeNotAllowed { .. } => "step_up_scope_not_allowed",
            ProxyError::RelayNotAllowed => "relay_url_not_allowed",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::NotFound | ProxyError::BffNotConfigured | ProxyError::UnknownMcpServer => {
                404
            }
            ProxyError::MethodNotAllowed => 405,
            ProxyError::OriginNotAllowed
            | ProxyError::CsrfHeaderMissing
            | ProxyError::McpServerNotInSession
            | ProxyError::StepUpScopeNotAllowed { .. }
            | ProxyError::RelayNotAllowed => 403,
            ProxyError::InvalidSessionCookie | ProxyError::NotAuthenticated => 401,
            ProxyError::RateLimited { .. } => 429,
            ProxyError::McpServerUnavailable => 502,
            ProxyError::BodyTooLarge { .. } => 413,
            ProxyError::UnknownClient => 401,
            ProxyError::Upstream { status, .. } => match *status {
                400..=499 => *status,
                _ => 400,
            },
            ProxyError::UpstreamClientRejected | ProxyError::UpstreamInvalid { .. } => 502,
            ProxyError::UpstreamUnavailable { .. } => 503,
            ProxyError::Misconfigured { .. } | ProxyError::Internal { .. } => 500,
            _ => 400,
        }
    }

    /// The RFC 6749 §5.2 `error` value.
    pub fn oauth_error(&self) -> &str {
        match self {
            ProxyError::OriginNotAllowed
            | ProxyError::CsrfHeaderMissing
            | ProxyError::McpServerNotInSession
            | ProxyError::RelayNotAllowed => "access_denied",
            // RFC 6750 §3.1: the page's credential (its cookie) is missing, invalid or ended.
            ProxyError::InvalidSessionCookie | ProxyError::NotAuthenticated => "invalid_token",
            ProxyError::RateLimited { .. } | ProxyError::McpServerUnavailable => {
                "temporarily_unavailable"
            }
            ProxyError::StepUpScopeNotAllowed { .. } => "invalid_scope",
            ProxyError::UnsupportedGrantType => "unsupported_grant_type",
            ProxyError::UnknownClient => "invalid_client",
            ProxyError::RevocationUnsupported => "unsupported_token_type",
            ProxyError::InvalidSessionHandle | ProxyError::SessionHandleReused => "invalid_grant",
            ProxyError::InvalidDpopProof => "invalid_dpop_proof",
            ProxyError::Upstream { error, .. } => error.code.as_str(),
            ProxyError::UpstreamUnavailable { .. } => "temporarily_unavailable",
            ProxyError::UpstreamClientRejected
            | ProxyError::UpstreamInvalid { .. }
            | ProxyError::Misconfigured { .. }
            | ProxyError::Internal { .. } => "server_error",
            _ => "invalid_request",
        }
    }

    /// Seconds the client should wait before retrying, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ProxyError::UpstreamUnavailable { retry_after } => *retry_after,
            ProxyError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.oauth_error(),
            "error_description": self.to_string(),
            "code": self.code(),
        })
    }

    /// Maps the core's refusal of a login callback: the authorization server's own error
    /// (RFC 6749 §4.1.2.1, e.g. `access_denied`) passes through, anything else is refused
    /// with the core's code (`state_mismatch`, `iss_mismatch`, `authorization_expired`, …).
    pub fn from_callback(error: CoreError) -> Self {
        match error {
            CoreError::AuthorizationFailed { error } => ProxyError::Upstream { status: 400, error },
            e => ProxyError::LoginRejected {
                core_code: e.code(),
            },
        }
    }

    /// Maps a core error from a token or revocation request to what the page is told.
    pub fn from_upstream(error: CoreError) -> Self {
        let retry_after = error.retry_after();
        match error {
            CoreError::OAuth { error, .. } if error.code == OAuthErrorCode::InvalidClient => {
                ProxyError::UpstreamClientRejected
            }
            CoreError::OAuth { status, error, .. }
                if status >= 500
                    || status == 429
                    || error.code == OAuthErrorCode::TemporarilyUnavailable
                    || error.code == OAuthErrorCode::ServerError =>
            {
                ProxyError::UpstreamUnavailable { retry_after }
            }
            CoreError::OAuth { status, error, .. } => ProxyError::Upstream { status, error },
            e if e.recovery() == Recovery::Transient => {
                ProxyError::UpstreamUnavailable { retry_after }
            }
            e => ProxyError::UpstreamInvalid {
                core_code: e.code(),
            },
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NotFound => f.write_str("no such endpoint; this worker serves POST /token, POST /revoke, /bff/* and GET /relay"),
            ProxyError::MethodNotAllowed => f.write_str("method not allowed; use POST (or OPTIONS for a CORS preflight)"),
            ProxyError::OriginNotAllowed => f.write_str("the request's Origin is not allowed to use this worker"),
            ProxyError::BodyTooLarge { limit } => write!(f, "the request body exceeds {limit} bytes"),
            ProxyError::UnsupportedContentType => f.write_str("the body must be application/x-www-form-urlencoded (RFC 6749 section 3.2)"),
            ProxyError::DuplicateParameter { name } => write!(f, "the parameter `{name}` is repeated (RFC 6749 section 3.1)"),
            ProxyError::MissingParameter { name } => write!(f, "the parameter `{name}` is required"),
            ProxyError::UnsupportedParameter { name } => write!(f, "the parameter `{name}` is not supported here"),
            ProxyError::UnsupportedGrantType => f.write_str("grant_type must be authorization_code or refresh_token"),
            ProxyError::UnknownClient => f.write_str("client_id names no client configured in this worker"),
            ProxyError::RedirectUriNotAllowed => f.write_str("redirect_uri is not one configured for this client"),
            ProxyError::InvalidSessionHandle => f.write_str("the session handle is invalid, expired or ended"),
            ProxyError::RevocationUnsupported => {
                f.write_str("this provider has no revocation endpoint; only session handles can be revoked")
            }
            ProxyError::SessionHandleReused => f.write_str("a rotated session handle was presented again after the grace window; the session has been ended"),
            ProxyError::InvalidDpopProof => f.write_str("the DPoP header must be one DPoP proof, by the key this session is bound to (RFC 9449)"),
            ProxyError::Upstream { error, .. } => write!(f, "authorization server: {error}"),
            ProxyError::UpstreamClientRejected => f.write_str("the authorization server rejected this worker's client credentials (check the configured client_id and its secret or key)"),
            ProxyError::UpstreamUnavailable { .. } => f.write_str("the authorization server is unavailable; retry later"),
            ProxyError::UpstreamInvalid { core_code } => write!(f, "the authorization server's answer was unusable ({core_code})"),
            ProxyError::Misconfigured { problem } => write!(f, "the worker is misconfigured: {problem}"),
            ProxyError::Internal { what } => write!(f, "internal error: {what}"),
            ProxyError::CsrfHeaderMissing => f.write_str("cookie-authenticated requests must carry the header X-Edge-OAuth: 1"),
            ProxyError::InvalidSessionCookie => f.write_str("the session cookie is not valid for this worker"),
            ProxyError::NotAuthenticated => f.write_str("no session; log in with POST /bff/login"),
            ProxyError::RateLimited { retry_after } => write!(f, "too many requests; retry in {retry_after} s"),
            ProxyError::BffNotConfigured => f.write_str("this worker has no backend-for-frontend configuration (BFF_REDIRECT_URI, MCP_SERVERS, BFF_COOKIE_KEY)"),
            ProxyError::UnknownMcpServer => f.write_str("no MCP server of that name is configured"),
            ProxyError::McpServerNotInSession => f.write_str("this session was logged in for another MCP server; log in for this one"),
            ProxyError::UnknownProvider => f.write_str("that provider does not protect the MCP server asked for"),
            ProxyError::InvalidLoginRequest => f.write_str("the login request must be {\"mcp_server\": <name>, \"provider\"?: <name>, \"step_up\"?: true}"),
            ProxyError::LoginRejected { core_code } => write!(f, "the login callback was refused ({core_code})"),
            ProxyError::StepUpScopeNotAllowed { scope } => write!(f, "the MCP server asked for the scope {scope:?}, which this MCP server's max_scope (MCP_SERVERS[].max_scope) does not allow beyond its scope and the granted scope; the step-up is refused"),
            ProxyError::NoStepUpChallenge => f.write_str("the MCP server has not asked this session for more scope (no insufficient_scope challenge recorded): there is nothing to step up to"),
            ProxyError::McpServerUnavailable => f.write_str("the MCP server could not be reached or answered with a redirect"),
            ProxyError::RelayNotAllowed => f.write_str("only the well-known metadata URLs of configured issuers are relayed"),
        }
    }
}

impl std::error::Error for ProxyError {}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_oauth_core::error::Endpoint;

    fn all() -> Vec<ProxyError> {
        vec![
            ProxyError::NotFound,
            ProxyError::MethodNotAllowed,
            ProxyError::OriginNotAllowed,
            ProxyError::BodyTooLarge { limit: 1 },
            ProxyError::UnsupportedContentType,
            ProxyError::DuplicateParameter { name: "code" },
            ProxyError::MissingParameter { name: "code" },
            ProxyError::UnsupportedParameter { name: "scope" },
            ProxyError::UnsupportedGrantType,
            ProxyError::UnknownClient,
            ProxyError::RedirectUriNotAllowed,
            ProxyError::InvalidSessionHandle,
            ProxyError::RevocationUnsupported,
            ProxyError::SessionHandleReused,
            ProxyError::InvalidDpopProof,
            ProxyError::Upstream {
                status: 400,
                error: OAuthError {
                    code: OAuthErrorCode::InvalidGrant,
                    description: None,
                    uri: None,
                },
            },
            ProxyError::UpstreamClientRejected,
            ProxyError::UpstreamUnavailable { retry_after: None },
            ProxyError::UpstreamInvalid {
                core_code: "invalid_json",
            },
            ProxyError::Misconfigured {
                problem: "x".into(),
            },
            ProxyError::Internal { what: "x" },
            ProxyError::CsrfHeaderMissing,
            ProxyError::InvalidSessionCookie,
            ProxyError::NotAuthenticated,
            ProxyError::RateLimited { retry_after: 2 },
            ProxyError::BffNotConfigured,
            ProxyError::UnknownMcpServer,
            ProxyError::McpServerNotInSession,
            ProxyError::UnknownProvider,
            ProxyError::InvalidLoginRequest,
            ProxyError::LoginRejected {
                core_code: "state_mismatch",
            },
            ProxyError::StepUpScopeNotAllowed { scope: "x".into() },
            ProxyError::NoStepUpChallenge,
            ProxyError::McpServerUnavailable,
            ProxyError::RelayNotAllowed,
        ]
    }

    #[test]
    fn codes_are_stable_and_distinct() {
        let codes: Vec<&str> = all().iter().map(ProxyError::code).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len(), "{codes:?}");
        for e in all() {
            let v = e.to_json();
            assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()));
            assert!(
                v["error_description"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
            );
            assert!((400..600).contains(&e.status()), "{e:?}");
        }
    }

    #[test]
    fn upstream_errors_are_classified() {
        let oauth = |status, code| CoreError::OAuth {
            endpoint: Endpoint::Token,
            status,
            error: OAuthError {
                code,
                description: Some("d".into()),
                uri: None,
            },
            retry_after: Some(3),
        };
        assert_eq!(
            ProxyError::from_upstream(oauth(401, OAuthErrorCode::InvalidClient)),
            ProxyError::UpstreamClientRejected
        );
        assert_eq!(
            ProxyError::from_upstream(oauth(503, OAuthErrorCode::TemporarilyUnavailable)),
            ProxyError::UpstreamUnavailable {
                retry_after: Some(3)
            }
        );
        let e = ProxyError::from_upstream(oauth(400, OAuthErrorCode::InvalidGrant));
        assert_eq!((e.status(), e.oauth_error()), (400, "invalid_grant"));
        let e = ProxyError::from_upstream(CoreError::Redirected {
            url: "https://as/token".into(),
            status: 302,
        });
        assert_eq!((e.status(), e.code()), (502, "upstream_invalid_response"));
        let e = ProxyError::from_upstream(CoreError::Transport {
            url: "https://as/token".into(),
            message: "reset".into(),
        });
        assert_eq!(e.status(), 503);
    }
}
