//! One error type for the core. Every variant has a stable [`Error::code`] (reused by the
//! JS API and the worker's JSON errors) and a [`Recovery`] class saying what the caller
//! should do next. No variant ever carries a token, a verifier or a client secret.

use core::fmt;

/// OAuth error codes from RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1,
/// RFC 7591 §3.2.2, RFC 8628 §3.5, RFC 8707 §2 and RFC 9449 §7, with an escape for the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `access_denied`
    AccessDenied,
    /// `unsupported_response_type`
    UnsupportedResponseType,
    /// `invalid_scope`
    InvalidScope,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_token` (RFC 6750)
    InvalidToken,
    /// `insufficient_scope` (RFC 6750)
    InsufficientScope,
    /// `unsupported_token_type` (RFC 7009)
    UnsupportedTokenType,
    /// `invalid_redirect_uri` (RFC 7591)
    InvalidRedirectUri,
    /// `invalid_client_metadata` (RFC 7591)
    InvalidClientMetadata,
    /// `authorization_pending` (RFC 8628)
    AuthorizationPending,
    /// `slow_down` (RFC 8628)
    SlowDown,
    /// `expired_token` (RFC 8628)
    ExpiredToken,
    /// `invalid_target` (RFC 8707)
    InvalidTarget,
    /// `invalid_dpop_proof` (RFC 9449)
    InvalidDpopProof,
    /// `use_dpop_nonce` (RFC 9449)
    UseDpopNonce,
    /// `login_required` (OpenID Connect)
    LoginRequired,
    /// `consent_required` (OpenID Connect)
    ConsentRequired,
    /// `interaction_required` (OpenID Connect)
    InteractionRequired,
    /// Any other code, verbatim.
    Other(String),
}

impl OAuthErrorCode {
    /// Parses a code as sent by a server.
    pub fn parse(code: &str) -> Self {
        use OAuthErrorCode::*;
        match code {
            "invalid_request" => InvalidRequest,
            "unauthorized_client" => UnauthorizedClient,
            "access_denied" => AccessDenied,
            "unsupported_response_type" => UnsupportedResponseType,
            "invalid_scope" => InvalidScope,
            "server_error" => ServerError,
            "temporarily_unavailable" => TemporarilyUnavailable,
            "invalid_client" => InvalidClient,
            "invalid_grant" => InvalidGrant,
            "unsupported_grant_type" => UnsupportedGrantType,
            "invalid_token" => InvalidToken,
            "insufficient_scope" => InsufficientScope,
            "unsupported_token_type" => UnsupportedTokenType,
            "invalid_redirect_uri" => InvalidRedirectUri,
            "invalid_client_metadata" => InvalidClientMetadata,
            "authorization_pending" => AuthorizationPending,
            "slow_down" => SlowDown,
            "expired_token" => ExpiredToken,
            "invalid_target" => InvalidTarget,
            "invalid_dpop_proof" => InvalidDpopProof,
            "use_dpop_nonce" => UseDpopNonce,
            "login_required" => LoginRequired,
            "consent_required" => ConsentRequired,
            "interaction_required" => InteractionRequired,
            other => Other(other.to_owned()),
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        use OAuthErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            UnauthorizedClient => "unauthorized_client",
            AccessDenied => "access_denied",
            UnsupportedResponseType => "unsupported_response_type",
            InvalidScope => "invalid_scope",
            ServerError => "server_error",
            TemporarilyUnavailable => "temporarily_unavailable",
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            UnsupportedGrantType => "unsupported_grant_type",
            InvalidToken => "invalid_token",
            InsufficientScope => "insufficient_scope",
            UnsupportedTokenType => "unsupported_token_type",
            InvalidRedirectUri => "invalid_redirect_uri",
            InvalidClientMetadata => "invalid_client_metadata",
            AuthorizationPending => "authorization_pending",
            SlowDown => "slow_down",
            ExpiredToken => "expired_token",
            InvalidTarget => "invalid_target",
            InvalidDpopProof => "invalid_dpop_proof",
            UseDpopNonce => "use_dpop_nonce",
            LoginRequired => "login_required",
            ConsentRequired => "consent_required",
            InteractionRequired => "interaction_required",
            Other(s) => s,
        }
    }
}

/// An OAuth error response: `error`, `error_description`, `error_uri`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// The typed `error` code.
    pub code: OAuthErrorCode,
    /// `error_description`, if the server sent one (server text: display as text only).
    pub description: Option<String>,
    /// `error_uri`, if the server sent one.
    pub uri: Option<String>,
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code.as_str())?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// What the caller should do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The user must act (authorize, approve a device code, grant more scope).
    Interaction,
    /// Tokens are gone or rejected: start a new authorization.
    Reauthenticate,
    /// Try the same thing again later (after `retry_after` seconds when known). Nothing was lost.
    Transient,
    /// A server or client misconfiguration, or a protocol violation: retrying will not help.
    Misconfiguration,
    /// A security check failed (state, iss, issuer, resource): the response was refused.
    Refused,
}

impl Recovery {
    /// The stable name of the class: `interaction`, `reauthenticate`, `transient`,
    /// `misconfiguration`, `refused` (what the browser package puts in an error's `.recovery`).
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::Interaction => "interaction",
            Recovery::Reauthenticate => "reauthenticate",
            Recovery::Transient => "transient",
            Recovery::Misconfiguration => "misconfiguration",
            Recovery::Refused => "refused",
        }
    }
}

/// Which endpoint an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The token endpoint (RFC 6749 §3.2).
    Token,
    /// The registration endpoint (RFC 7591).
    Registration,
    /// The revocation endpoint (RFC 7009).
    Revocation,
    /// The device authorization endpoint (RFC 8628).
    DeviceAuthorization,
    /// The authorization endpoint's redirect back to the client.
    Authorization,
    /// The protected resource (RFC 6750 §3).
    Resource,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Registration => "registration",
            Endpoint::Revocation => "revocation",
            Endpoint::DeviceAuthorization => "device authorization",
            Endpoint::Authorization => "authorization",
            Endpoint::Resource => "resource",
        }
    }
}

/// Every failure of the core.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The transport could not complete the request (network, DNS, TLS, CORS, timeout).
    Transport {
        /// The URL requested.
        url: String,
        /// What the transport said.
        message: String,
    },
    /// The random source failed.
    Random {
        /// What the source said.
        message: String,
    },
    /// A URL could not be parsed or is not acceptable here.
    InvalidUrl {
        /// The offending input (never a URL with a token in it: the core puts none there).
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An argument the caller supplied is not acceptable (e.g. a malformed PKCE verifier).
    InvalidInput {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A non-HTTPS URL where HTTPS is required (only loopback may use http).
    InsecureUrl {
        /// The URL refused.
        url: String,
    },
    /// A response with a status the step does not accept.
    UnexpectedStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// `Retry-After` in seconds, when the server sent one.
        retry_after: Option<u64>,
    },
    /// A redirect where none may be followed (metadata, token and registration endpoints).
    Redirected {
        /// The URL requested.
        url: String,
        /// The 3xx status.
        status: u16,
    },
    /// The body is not JSON by its `Content-Type`.
    UnexpectedContentType {
        /// The URL requested.
        url: String,
        /// The content type received (empty when absent).
        content_type: String,
    },
    /// The body is empty where a document is required.
    EmptyBody {
        /// The URL requested.
        url: String,
    },
    /// The body does not parse, or a field has the wrong type.
    InvalidJson {
        /// The URL requested.
        url: String,
        /// The parser's message, naming the field where it can (never echoes a secret value).
        detail: String,
    },
    /// A required field is missing or empty.
    MissingField {
        /// The URL requested.
        url: String,
        /// The field.
        field: &'static str,
    },
    /// The server answered with an OAuth error response.
    OAuth {
        /// Which endpoint.
        endpoint: Endpoint,
        /// The HTTP status it came with.
        status: u16,
        /// The error.
        error: OAuthError,
        /// `Retry-After` in seconds, when the server sent one.
        retry_after: Option<u64>,
    },
    /// RFC 9728 §3.3: the metadata's `resource` is not the server that pointed to it.
    ResourceMismatch {
        /// The resource we asked about.
        expected: String,
        /// What the metadata says.
        found: String,
    },
    /// RFC 8414 §3.3: the metadata's `issuer` is not the issuer discovery started from.
    IssuerMismatch {
        /// The issuer used to build the metadata URL.
        expected: String,
        /// What the metadata says.
        found: String,
    },
    /// The authorization server does not advertise PKCE with S256; the MCP spec requires refusing.
    PkceNotSupported {
        /// The issuer.
        issuer: String,
    },
    /// The protected resource metadata lists no authorization server.
    NoAuthorizationServer {
        /// The resource.
        resource: String,
    },
    /// No authorization server metadata at any well-known location.
    MetadataNotFound {
        /// The issuer.
        issuer: String,
    },
    /// No registration route works: no pre-registered client, no CIMD support, no registration endpoint.
    RegistrationNotSupported {
        /// The issuer.
        issuer: String,
    },
    /// A pre-registered client bound to one authorization server was about to be used with
    /// another (MCP: credentials are bound to their issuer).
    ClientIssuerMismatch {
        /// The issuer the client belongs to.
        bound: String,
        /// The issuer discovery found now.
        found: String,
    },
    /// A grant or endpoint the step needs is not offered by the server.
    UnsupportedByServer {
        /// The issuer.
        issuer: String,
        /// What is missing (e.g. `device_authorization_endpoint`).
        feature: &'static str,
    },
    /// The callback URL is not the redirect URI the authorization was started with.
    CallbackMismatch {
        /// The redirect URI expected.
        expected: String,
    },
    /// A callback parameter appears more than once (RFC 6749 §3.1).
    DuplicateParameter {
        /// The parameter name.
        name: String,
    },
    /// The callback carries no `state`.
    StateMissing,
    /// The callback's `state` is not the one sent (CSRF or a mixed-up flow).
    StateMismatch,
    /// The AS advertises RFC 9207 but the callback has no `iss`.
    IssMissing,
    /// RFC 9207 §2.4: the callback's `iss` is not the issuer the request went to (mix-up).
    IssMismatch {
        /// The issuer expected.
        expected: String,
        /// The `iss` received.
        found: String,
    },
    /// The callback carries neither `code` nor `error`.
    CodeMissing,
    /// The pending authorization is older than allowed (a saved flow that was never finished,
    /// or a callback replayed later): start again.
    PendingAuthorizationExpired {
        /// Its age in seconds.
        age_secs: u64,
        /// The limit in seconds.
        max_age_secs: u64,
    },
    /// The authorization endpoint returned an error (`error=` in the callback).
    AuthorizationFailed {
        /// The error.
        error: OAuthError,
    },
    /// The token response is missing `access_token` or is otherwise unusable.
    UnsupportedTokenType {
        /// The `token_type` received.
        token_type: String,
    },
    /// A refresh was needed but no refresh token is held.
    NoRefreshToken,
    /// The resource keeps asking for more scope: step-up stopped after this many attempts.
    StepUpLimit {
        /// Attempts made.
        attempts: u32,
    },
    /// The resource keeps answering 401 after a fresh authorization.
    StillUnauthorized {
        /// The resource.
        resource: String,
    },
    /// The device code expired before the user approved it.
    DeviceCodeExpired,
    /// The session was deleted by another process or tab sharing the store (a logout there):
    /// it is not brought back.
    SessionEnded {
        /// The MCP server URL.
        server: String,
    },
    /// The user-facing authorization step failed or was cancelled.
    Authorizer {
        /// What the authorizer said.
        message: String,
    },
    /// The credential store failed.
    Store {
        /// What the store said.
        message: String,
    },
    /// A stored record cannot be read back (its key is gone, or it was tampered with or moved
    /// to another key); the store deleted it and the user must sign in again.
    StoreRecordUnreadable {
        /// Which kind of record (`session`, `client`, `pending`).
        kind: &'static str,
    },
    /// A `WWW-Authenticate` header that does not parse.
    InvalidChallenge {
        /// Why.
        reason: &'static str,
    },
    /// The injected JWS signer (a client assertion or DPoP key) failed or returned a signature
    /// of the wrong shape.
    Signing {
        /// What went wrong (never key material).
        message: String,
    },
    /// DPoP is required (RFC 9449) but the authorization server advertises
    /// `dpop_signing_alg_values_supported` without this client's algorithm.
    DpopNotSupported {
        /// The issuer.
        issuer: String,
    },
    /// DPoP is required but the token endpoint issued a bearer token anyway (RFC 9449 §5:
    /// the token is not bound to the key).
    DpopNotBound {
        /// The token endpoint.
        url: String,
    },
    /// The tokens are bound to a DPoP key (RFC 9449 §5) this client does not hold: they can be
    /// neither used nor refreshed.
    DpopKeyMismatch,
    /// DPoP is on (RFC 9449) and a token was to be presented to `server`, but no session of
    /// that server is stored, so whether the token is DPoP-bound is unknown. Sending it as a
    /// bearer token would fail at the resource server (§7.1) and leak a bound token's use as a
    /// bearer; nothing is sent.
    DpopSessionMissing {
        /// The MCP server (the session's key).
        server: String,
    },
    /// A token exchange (RFC 8693 §2.2.1) returned another kind of token than requested.
    UnexpectedIssuedTokenType {
        /// The `requested_token_type`.
        expected: String,
        /// The `issued_token_type` received.
        found: String,
    },
}

impl Error {
    /// A stable machine-readable code, shared with the JS API and the worker.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Transport { .. } => "transport_error",
            Error::Random { .. } => "random_source_failed",
            Error::InvalidUrl { .. } => "invalid_url",
            Error::InvalidInput { .. } => "invalid_input",
            Error::InsecureUrl { .. } => "insecure_url",
            Error::UnexpectedStatus { .. } => "unexpected_status",
            Error::Redirected { .. } => "unexpected_redirect",
            Error::UnexpectedContentType { .. } => "unexpected_content_type",
            Error::EmptyBody { .. } => "empty_body",
            Error::InvalidJson { .. } => "invalid_json",
            Error::MissingField { .. } => "missing_field",
            Error::OAuth { .. } => "oauth_error",
            Error::ResourceMismatch { .. } => "resource_mismatch",
            Error::IssuerMismatch { .. } => "issuer_mismatch",
            Error::PkceNotSupported { .. } => "pkce_not_supported",
            Error::NoAuthorizationServer { .. } => "no_authorization_server",
            Error::MetadataNotFound { .. } => "metadata_not_found",
            Error::RegistrationNotSupported { .. } => "registration_not_supported",
            Error::UnsupportedByServer { .. } => "unsupported_by_server",
            Error::ClientIssuerMismatch { .. } => "client_issuer_mismatch",
            Error::CallbackMismatch { .. } => "callback_mismatch",
            Error::DuplicateParameter { .. } => "duplicate_parameter",
            Error::StateMissing => "state_missing",
            Error::StateMismatch => "state_mismatch",
            Error::IssMissing => "iss_missing",
            Error::IssMismatch { .. } => "iss_mismatch",
            Error::CodeMissing => "code_missing",
            Error::PendingAuthorizationExpired { .. } => "authorization_expired",
            Error::AuthorizationFailed { .. } => "authorization_failed",
            Error::UnsupportedTokenType { .. } => "unsupported_token_type",
            Error::NoRefreshToken => "no_refresh_token",
            Error::StepUpLimit { .. } => "step_up_limit",
            Error::StillUnauthorized { .. } => "still_unauthorized",
            Error::DeviceCodeExpired => "device_code_expired",
            Error::SessionEnded { .. } => "session_ended",
            Error::Authorizer { .. } => "authorizer_failed",
            Error::Store { .. } => "store_error",
            Error::StoreRecordUnreadable { .. } => "store_record_unreadable",
            Error::InvalidChallenge { .. } => "invalid_challenge",
            Error::Signing { .. } => "signing_failed",
            Error::DpopNotSupported { .. } => "dpop_not_supported",
            Error::DpopNotBound { .. } => "dpop_not_bound",
            Error::DpopKeyMismatch => "dpop_key_mismatch",
            Error::DpopSessionMissing { .. } => "dpop_session_missing",
            Error::UnexpectedIssuedTokenType { .. } => "unexpected_issued_token_type",
        }
    }

    /// How to recover.
    pub fn recovery(&self) -> Recovery {
        match self {
            Error::Transport { .. } | Error::Random { .. } | Error::Store { .. } => {
                Recovery::Transient
            }
            Error::UnexpectedStatus { status, .. } => {
                if *status >= 500 || *status == 429 || *status == 408 {
                    Recovery::Transient
                } else {
                    Recovery::Misconfiguration
                }
            }
            // 5xx and 429 are transient whatever the body says (e.g. 429 too_many_requests).
            Error::OAuth { status, .. } if *status >= 500 || *status == 429 => Recovery::Transient,
            Error::OAuth {
                error, endpoint, ..
            } => match error.code {
                OAuthErrorCode::TemporarilyUnavailable
                | OAuthErrorCode::ServerError
                | OAuthErrorCode::SlowDown
                | OAuthErrorCode::AuthorizationPending => Recovery::Transient,
                OAuthErrorCode::InvalidGrant
                | OAuthErrorCode::InvalidToken
                | OAuthErrorCode::ExpiredToken => Recovery::Reauthenticate,
                OAuthErrorCode::InsufficientScope
                | OAuthErrorCode::LoginRequired
                | OAuthErrorCode::ConsentRequired
                | OAuthErrorCode::InteractionRequired => Recovery::Interaction,
                OAuthErrorCode::AccessDenied if *endpoint == Endpoint::Authorization => {
                    Recovery::Interaction
                }
                _ => Recovery::Misconfiguration,
            },
            Error::AuthorizationFailed { error } => match error.code {
                OAuthErrorCode::TemporarilyUnavailable | OAuthErrorCode::ServerError => {
                    Recovery::Transient
                }
                _ => Recovery::Interaction,
            },
            Error::NoRefreshToken
            | Error::DpopKeyMismatch
            | Error::DpopSessionMissing { .. }
            | Error::DeviceCodeExpired
            | Error::StillUnauthorized { .. }
            | Error::SessionEnded { .. }
            | Error::StoreRecordUnreadable { .. } => Recovery::Reauthenticate,
            Error::StepUpLimit { .. }
            | Error::Authorizer { .. }
            | Error::PendingAuthorizationExpired { .. } => Recovery::Interaction,
            Error::StateMissing
            | Error::StateMismatch
            | Error::IssMissing
            | Error::IssMismatch { .. }
            | Error::DuplicateParameter { .. }
            | Error::CallbackMismatch { .. }
            | Error::ResourceMismatch { .. }
            | Error::IssuerMismatch { .. }
            | Error::PkceNotSupported { .. }
            | Error::ClientIssuerMismatch { .. }
            | Error::InsecureUrl { .. }
            | Error::DpopNotBound { .. }
            | Error::Redirected { .. } => Recovery::Refused,
            _ => Recovery::Misconfiguration,
        }
    }

    /// Seconds to wait before retrying, when the server said (`Retry-After`, RFC 9110 §10.2.3).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::UnexpectedStatus { retry_after, .. } | Error::OAuth { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The OAuth error code, when the error is an OAuth error response.
    pub fn oauth_code(&self) -> Option<&OAuthErrorCode> {
        match self {
            Error::OAuth { error, .. } | Error::AuthorizationFailed { error } => Some(&error.code),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport { url, message } => write!(f, "request to {url} failed: {message}"),
            Error::Random { message } => write!(f, "random source failed: {message}"),
            Error::InvalidUrl { url, reason } => write!(f, "invalid URL {}: {reason}", Quoted(url)),
            Error::InvalidInput { reason } => write!(f, "invalid input: {reason}"),
            Error::InsecureUrl { url } => {
                write!(f, "{url} is not https (only loopback may use http)")
            }
            Error::UnexpectedStatus { url, status, .. } => {
                write!(f, "{url} answered HTTP {status}")
            }
            Error::Redirected { url, status } => {
                write!(
                    f,
                    "{url} answered a redirect ({status}); redirects are not followed here"
                )
            }
            Error::UnexpectedContentType { url, content_type } => {
                write!(
                    f,
                    "{url} did not answer JSON (content type {})",
                    Quoted(content_type)
                )
            }
            Error::EmptyBody { url } => write!(f, "{url} answered an empty body"),
            Error::InvalidJson { url, detail } => {
                write!(f, "{url} answered invalid JSON: {detail}")
            }
            Error::MissingField { url, field } => {
                write!(f, "{url} answered without the required field `{field}`")
            }
            Error::OAuth {
                endpoint, error, ..
            } => {
                write!(f, "{} endpoint error: {error}", endpoint.as_str())
            }
            Error::ResourceMismatch { expected, found } => write!(
                f,
                "protected resource metadata is for {}, not {} (RFC 9728 §3.3)",
                Quoted(found),
                Quoted(expected)
            ),
            Error::IssuerMismatch { expected, found } => write!(
                f,
                "authorization server metadata names issuer {}, expected {} (RFC 8414 §3.3)",
                Quoted(found),
                Quoted(expected)
            ),
            Error::PkceNotSupported { issuer } => write!(
                f,
                "{issuer} does not advertise PKCE S256 (code_challenge_methods_supported); refusing"
            ),
            Error::NoAuthorizationServer { resource } => {
                write!(
                    f,
                    "protected resource metadata for {resource} lists no authorization server"
                )
            }
            Error::MetadataNotFound { issuer } => {
                write!(f, "no authorization server metadata found for {issuer}")
            }
            Error::RegistrationNotSupported { issuer } => write!(
                f,
                "cannot register with {issuer}: no pre-registered client, no client ID metadata document support, no registration endpoint"
            ),
            Error::ClientIssuerMismatch { bound, found } => write!(
                f,
                "the pre-registered client belongs to {bound}; refusing to use it with {found}"
            ),
            Error::UnsupportedByServer { issuer, feature } => {
                write!(f, "{issuer} does not offer {feature}")
            }
            Error::CallbackMismatch { expected } => {
                write!(f, "callback URL does not match the redirect URI {expected}")
            }
            Error::DuplicateParameter { name } => {
                write!(f, "callback repeats the parameter `{name}`")
            }
            Error::StateMissing => f.write_str("callback has no state parameter"),
            Error::StateMismatch => f.write_str("callback state does not match the request"),
            Error::IssMissing => {
                f.write_str("callback has no iss parameter although the server advertises RFC 9207")
            }
            Error::IssMismatch { expected, found } => {
                write!(
                    f,
                    "callback iss {} is not the issuer {} (RFC 9207)",
                    Quoted(found),
                    Quoted(expected)
                )
            }
            Error::CodeMissing => f.write_str("callback has neither code nor error"),
            Error::PendingAuthorizationExpired {
                age_secs,
                max_age_secs,
            } => write!(
                f,
                "the authorization was started {age_secs} s ago (limit {max_age_secs} s); start again"
            ),
            Error::AuthorizationFailed { error } => write!(f, "authorization failed: {error}"),
            Error::UnsupportedTokenType { token_type } => {
                write!(f, "unsupported token_type {}", Quoted(token_type))
            }
            Error::NoRefreshToken => f.write_str("no refresh token held"),
            Error::StepUpLimit { attempts } => {
                write!(f, "gave up after {attempts} step-up authorizations")
            }
            Error::StillUnauthorized { resource } => {
                write!(f, "{resource} still answers 401 after authorization")
            }
            Error::DeviceCodeExpired => f.write_str("the device code expired"),
            Error::SessionEnded { server } => {
                write!(
                    f,
                    "the session for {server} was ended elsewhere (logged out)"
                )
            }
            Error::Authorizer { message } => write!(f, "authorization step failed: {message}"),
            Error::Store { message } => write!(f, "credential store failed: {message}"),
            Error::StoreRecordUnreadable { kind } => write!(
                f,
                "a stored {kind} record could not be decrypted and was deleted; sign in again"
            ),
            Error::InvalidChallenge { reason } => {
                write!(f, "invalid WWW-Authenticate header: {reason}")
            }
            Error::Signing { message } => write!(f, "signing failed: {message}"),
            Error::DpopNotSupported { issuer } => write!(
                f,
                "{issuer} does not accept this client's DPoP algorithm (dpop_signing_alg_values_supported) and DPoP is required"
            ),
            Error::DpopNotBound { url } => write!(
                f,
                "{url} issued a bearer token although DPoP is required (RFC 9449 §5)"
            ),
            Error::DpopSessionMissing { server } => write!(
                f,
                "no session of {server} is stored, so a token for it cannot be presented with DPoP (RFC 9449 §7.1); sign in again"
            ),
            Error::DpopKeyMismatch => f.write_str(
                "the tokens are bound to a DPoP key this client does not hold (RFC 9449); sign in again",
            ),
            Error::UnexpectedIssuedTokenType { expected, found } => write!(
                f,
                "token exchange issued {}, not the requested {} (RFC 8693 §2.2.1)",
                Quoted(found),
                Quoted(expected)
            ),
        }
    }
}

impl std::error::Error for Error {}

/// A string in double quotes as `{:?}` writes it — `"`, `\\` and control characters escaped
/// (`\n`, `\r`, `\t`, `\0`, else `\u{..}`) — except that other characters are written as they
/// are: `str`'s `Debug` also escapes the non-printable ones, which takes Unicode tables (a few
/// KB of wasm) for characters a server has no business sending here.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\""),
                '\\' => f.write_str("\\\\"),
                '\n' => f.write_str("\\n"),
                '\r' => f.write_str("\\r"),
                '\t' => f.write_str("\\t"),
                '\0' => f.write_str("\\0"),
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32),
                c => f.write_char(c),
            }?;
        }
        f.write_char('"')
    }
}

/// The core's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::{Error, Quoted, Recovery};

    #[test]
    fn recovery_names_are_stable() {
        let names = [
            Recovery::Interaction,
            Recovery::Reauthenticate,
            Recovery::Transient,
            Recovery::Misconfiguration,
            Recovery::Refused,
        ]
        .map(Recovery::as_str);
        assert_eq!(
            names,
            [
                "interaction",
                "reauthenticate",
                "transient",
                "misconfiguration",
                "refused"
            ]
        );
        assert_eq!(Error::StateMismatch.recovery().as_str(), "refused");
    }

    #[test]
    fn quoted_writes_what_debug_writes() {
        for s in [
            "",
            "https://as.example.com/",
            "a \"quoted\" \\ back\nslash\r\t\0 \u{1b}[31m \u{7f} \u{85}",
            "caf\u{e9} \u{1F600} \u{4e2d}",
        ] {
            assert_eq!(Quoted(s).to_string(), format!("{s:?}"));
        }
    }
}
