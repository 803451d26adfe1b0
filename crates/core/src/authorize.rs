//! The authorization request (RFC 6749 §4.1.1 with PKCE, RFC 8707 `resource`) and the
//! validation of the redirect back (state, RFC 9207 `iss`, duplicates, `error`).

use crate::url::Url;
use serde::{Deserialize, Serialize};

use crate::discovery::AuthorizationServerMetadata;
use crate::env::{Clock, RandomSource};
use crate::error::{Error, OAuthError, OAuthErrorCode, Result};
use crate::http::{parse_secure_url, truncate};
use crate::pkce::{Pkce, S256, random_token};
use crate::registration::ClientCredentials;
use crate::secret::{AuthorizationCode, CodeVerifier, State};

/// Everything needed to finish an authorization after the redirect. Serialisable so it can
/// survive a full-page redirect (store it encrypted: it holds the PKCE verifier).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The `state` sent.
    pub state: State,
    /// The PKCE verifier.
    pub code_verifier: CodeVerifier,
    /// The issuer the request went to (checked against `iss`).
    pub issuer: String,
    /// True when the AS advertises `authorization_response_iss_parameter_supported`.
    pub iss_required: bool,
    /// The redirect URI sent.
    pub redirect_uri: String,
    /// The client identifier.
    pub client_id: String,
    /// The resource indicator sent (RFC 8707).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The scope requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the request was built (seconds since the epoch).
    pub created_at: u64,
}

/// Parameters of an authorization request.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest<'a> {
    /// The authorization server.
    pub metadata: &'a AuthorizationServerMetadata,
    /// The client.
    pub client: &'a ClientCredentials,
    /// Where the AS sends the user back.
    pub redirect_uri: &'a str,
    /// Space-separated scope, if any.
    pub scope: Option<&'a str>,
    /// RFC 8707 resource indicator (the canonical MCP server URI).
    pub resource: Option<&'a str>,
}

/// Builds the authorization URL (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707 §2) with a fresh
/// state (256 bits) and PKCE S256 verifier.
pub fn build_authorization_url(
    req: &AuthorizationRequest<'_>,
    rng: &impl RandomSource,
    clock: &impl Clock,
) -> Result<(Url, PendingAuthorization)> {
    let endpoint =
        req.metadata
            .authorization_endpoint
            .as_deref()
            .ok_or(Error::UnsupportedByServer {
                issuer: req.metadata.issuer.clone(),
                feature: "authorization_endpoint",
            })?;
    let mut url = parse_secure_url(endpoint)?;
    let redirect = Url::parse(req.redirect_uri).map_err(|_| Error::InvalidUrl {
        url: truncate(req.redirect_uri, 200),
        reason: "redirect URI is not an absolute URL",
    })?;
    if redirect.fragment().is_some() {
        return Err(Error::InvalidUrl {
            url: redirect.to_string(),
            reason: "redirect URI must not have a fragment",
        });
    }
    let pkce = Pkce::generate(rng)?;
    let state = State::new(random_token(rng, 32)?);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &req.client.client_id)
            .append_pair("redirect_uri", req.redirect_uri)
            .append_pair("state", state.secret())
            .append_pair("code_challenge", pkce.challenge())
            .append_pair("code_challenge_method", S256);
        if let Some(scope) = req.scope.filter(|s| !s.is_empty()) {
            q.append_pair("scope", scope);
        }
        if let Some(resource) = req.resource {
            q.append_pair("resource", resource);
        }
    }
    let pending = PendingAuthorization {
        state,
        code_verifier: pkce.into_verifier(),
        issuer: req.metadata.issuer.clone(),
        iss_required: req.metadata.authorization_response_iss_parameter_supported,
        redirect_uri: req.redirect_uri.to_owned(),
        client_id: req.client.client_id.clone(),
        resource: req.resource.map(str::to_owned),
        scope: req.scope.filter(|s| !s.is_empty()).map(str::to_owned),
        created_at: clock.now(),
    };
    Ok((url, pending))
}

/// A callback that passed every check. Only [`validate_callback`] makes one, and the code
/// exchange takes only this type, so skipping validation does not compile.
#[derive(Debug)]
pub struct ValidatedCallback {
    pub(crate) code: AuthorizationCode,
    pub(crate) pending: PendingAuthorization,
}

impl ValidatedCallback {
    /// The pending authorization this callback completes.
    pub fn pending(&self) -> &PendingAuthorization {
        &self.pending
    }
}

/// How long a pending authorization may wait for its callback (10 minutes, the upper bound
/// RFC 6749 §4.1.2 recommends for an authorization code's own lifetime).
pub const PENDING_MAX_AGE_SECS: u64 = 600;

/// Validates the redirect back to the client, in this order: the pending authorization is
/// younger than [`PENDING_MAX_AGE_SECS`]; the callback is at the registered redirect URI;
/// no response parameter is repeated; `iss` equals the issuer exactly (RFC 9207 §2.4, also on
/// error responses; required when the AS advertises it); `state` matches in constant time;
/// then `error` (RFC 6749 §4.1.2.1) or `code`.
pub fn validate_callback(
    callback_url: &str,
    pending: PendingAuthorization,
    clock: &impl Clock,
) -> Result<ValidatedCallback> {
    validate_callback_within(callback_url, pending, clock, PENDING_MAX_AGE_SECS)
}

/// [`validate_callback`] with another age limit for the pending authorization.
pub fn validate_callback_within(
    callback_url: &str,
    pending: PendingAuthorization,
    clock: &impl Clock,
    max_age_secs: u64,
) -> Result<ValidatedCallback> {
    let age_secs = clock.now().saturating_sub(pending.created_at);
    if age_secs > max_age_secs {
        return Err(Error::PendingAuthorizationExpired {
            age_secs,
            max_age_secs,
        });
    }
    let url = Url::parse(callback_url).map_err(|_| Error::InvalidUrl {
        url: String::new(), // the callback holds a code: never echo it
        reason: "callback is not an absolute URL",
    })?;
    let expected = Url::parse(&pending.redirect_uri).map_err(|_| Error::InvalidUrl {
        url: truncate(&pending.redirect_uri, 200),
        reason: "redirect URI is not an absolute URL",
    })?;
    let same_endpoint = url.scheme() == expected.scheme()
        && url.host() == expected.host()
        && url.port_or_known_default() == expected.port_or_known_default()
        && url.path() == expected.path();
    // A redirect URI with a query (e.g. a tag per authorization server) must arrive with
    // each of its parameters exactly once and unchanged.
    let same_query = expected.query_pairs().all(|(k, v)| {
        let mut found = url.query_pairs().filter(|(ck, _)| *ck == k);
        matches!((found.next(), found.next()), (Some((_, cv)), None) if cv == v)
    });
    if !same_endpoint || !same_query {
        return Err(Error::CallbackMismatch {
            expected: pending.redirect_uri.clone(),
        });
    }

    let mut code = None;
    let mut state = None;
    let mut iss = None;
    let mut error = None;
    let mut error_description = None;
    let mut error_uri = None;
    for (k, v) in url.query_pairs() {
        let slot = match k.as_ref() {
            "code" => &mut code,
            "state" => &mut state,
            "iss" => &mut iss,
            "error" => &mut error,
            "error_description" => &mut error_description,
            "error_uri" => &mut error_uri,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Error::DuplicateParameter {
                name: truncate(&k, 40),
            });
        }
        *slot = Some(v.into_owned());
    }

    match &iss {
        Some(found) if *found != pending.issuer => {
            return Err(Error::IssMismatch {
                expected: pending.issuer.clone(),
                found: truncate(found, 200),
            });
        }
        None if pending.iss_required => return Err(Error::IssMissing),
        _ => {}
    }

    match &state {
        None => return Err(Error::StateMissing),
        Some(s) if !pending.state.matches(s) => return Err(Error::StateMismatch),
        _ => {}
    }

    if let Some(code) = error {
        return Err(Error::AuthorizationFailed {
            error: OAuthError {
                code: OAuthErrorCode::parse(&truncate(&code, 100)),
                description: error_description.map(|d| truncate(&d, 500)),
                uri: error_uri.map(|d| truncate(&d, 500)),
            },
        });
    }
    match code {
        Some(c) if !c.is_empty() => Ok(ValidatedCallback {
            code: AuthorizationCode::new(c),
            pending,
        }),
        _ => Err(Error::CodeMissing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::ManualClock;
    use crate::registration::{RegistrationSource, TokenEndpointAuthMethod};

    struct Counter(core::cell::Cell<u8>);
    impl RandomSource for Counter {
        fn fill_bytes(&self, d: &mut [u8]) -> Result<()> {
            for b in d {
                self.0.set(self.0.get().wrapping_add(1));
                *b = self.0.get();
            }
            Ok(())
        }
    }

    pub(crate) fn fixture(iss_supported: bool) -> (Url, PendingAuthorization) {
        let meta = AuthorizationServerMetadata {
            issuer: "https://as.example.com".into(),
            authorization_endpoint: Some("https://as.example.com/authorize?tenant=a".into()),
            authorization_response_iss_parameter_supported: iss_supported,
            ..Default::default()
        };
        let client = ClientCredentials {
            issuer: meta.issuer.clone(),
            client_id: "client-1".into(),
            client_secret: None,
            auth_method: TokenEndpointAuthMethod::None,
            source: RegistrationSource::Dynamic,
            redirect_uris: vec![],
            secret_expires_at: None,
            registration_access_token: None,
        };
        let req = AuthorizationRequest {
            metadata: &meta,
            client: &client,
            redirect_uri: "http://127.0.0.1:9000/callback",
            scope: Some("mcp:tools offline_access"),
            resource: Some("https://mcp.example.com/mcp"),
        };
        build_authorization_url(&req, &Counter(Default::default()), &ManualClock::new(100)).unwrap()
    }

    /// 5 minutes after the fixture's request was built.
    const CLOCK: ManualClockAt = ManualClockAt(400);
    struct ManualClockAt(u64);
    impl crate::env::Clock for ManualClockAt {
        fn now(&self) -> u64 {
            self.0
        }
    }

    fn cb(params: &str) -> String {
        format!("http://127.0.0.1:9000/callback?{params}")
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn url_has_everything() {
        let (url, p) = fixture(true);
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("tenant"), Some("a"));
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("code_challenge").map(str::len), Some(43));
        assert_eq!(get("resource"), Some("https://mcp.example.com/mcp"));
        assert_eq!(get("scope"), Some("mcp:tools offline_access"));
        assert_eq!(get("state"), Some(p.state.secret()));
        assert!(p.state.secret().len() >= 43); // 256 bits
        assert_eq!(p.created_at, 100);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn callback_checks() {
        let (_, p) = fixture(true);
        let st = p.state.secret().to_owned();
        let iss = "https%3A%2F%2Fas.example.com";
        let ok = validate_callback(
            &cb(&format!("code=abc&state={st}&iss={iss}")),
            p.clone(),
            &CLOCK,
        )
        .unwrap();
        assert_eq!(ok.code.secret(), "abc");
        let code = |u: &str| {
            validate_callback(&cb(u), p.clone(), &CLOCK)
                .unwrap_err()
                .code()
        };
        assert_eq!(code(&format!("code=abc&iss={iss}")), "state_missing");
        assert_eq!(
            code(&format!("code=abc&state=nope&iss={iss}")),
            "state_mismatch"
        );
        assert_eq!(code(&format!("code=abc&state={st}")), "iss_missing");
        assert_eq!(
            code(&format!("code=abc&state={st}&iss=https%3A%2F%2Fevil")),
            "iss_mismatch"
        );
        assert_eq!(
            code(&format!("code=abc&state={st}&iss={iss}%2F")),
            "iss_mismatch"
        );
        assert_eq!(
            code(&format!("code=abc&code=def&state={st}&iss={iss}")),
            "duplicate_parameter"
        );
        assert_eq!(
            code(&format!("code=abc&state={st}&state={st}&iss={iss}")),
            "duplicate_parameter"
        );
        assert_eq!(
            code(&format!("error=access_denied&state={st}&iss={iss}")),
            "authorization_failed"
        );
        assert_eq!(
            code(&format!(
                "error=access_denied&state={st}&iss=https%3A%2F%2Fevil"
            )),
            "iss_mismatch"
        );
        assert_eq!(
            code(&format!("error=access_denied&iss={iss}")),
            "state_missing"
        );
        assert_eq!(code(&format!("state={st}&iss={iss}")), "code_missing");
        assert_eq!(
            validate_callback(
                &format!("http://127.0.0.1:9001/callback?code=a&state={st}"),
                p.clone(),
                &CLOCK
            )
            .unwrap_err()
            .code(),
            "callback_mismatch"
        );
        assert_eq!(
            validate_callback("not a url", p.clone(), &CLOCK)
                .unwrap_err()
                .code(),
            "invalid_url"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_redirect_uri_query_must_come_back_unchanged() {
        let (_, mut p) = fixture(true);
        p.redirect_uri = "http://127.0.0.1:9000/callback?as=tag-a".into();
        let st = p.state.secret().to_owned();
        let iss = "https%3A%2F%2Fas.example.com";
        let at = |q: &str| validate_callback(&cb(q), p.clone(), &CLOCK).map(|_| ());
        assert!(at(&format!("as=tag-a&code=c&state={st}&iss={iss}")).is_ok());
        for other in ["as=tag-b&", "", "as=tag-a&as=tag-b&", "as=&"] {
            assert_eq!(
                at(&format!("{other}code=c&state={st}&iss={iss}"))
                    .unwrap_err()
                    .code(),
                "callback_mismatch",
                "{other}"
            );
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn pending_authorizations_expire() {
        let (_, p) = fixture(true);
        let st = p.state.secret().to_owned();
        let url = cb(&format!(
            "code=abc&state={st}&iss=https%3A%2F%2Fas.example.com"
        ));
        // Built at t=100: valid up to 10 minutes later, refused after.
        assert!(validate_callback(&url, p.clone(), &ManualClockAt(700)).is_ok());
        let e = validate_callback(&url, p.clone(), &ManualClockAt(701)).unwrap_err();
        assert_eq!(e.code(), "authorization_expired");
        assert_eq!(e.recovery(), crate::error::Recovery::Interaction);
        assert!(validate_callback_within(&url, p, &ManualClockAt(701), 3600).is_ok());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn iss_optional_when_not_advertised_but_checked_when_sent() {
        let (_, p) = fixture(false);
        let st = p.state.secret().to_owned();
        assert!(validate_callback(&cb(&format!("code=abc&state={st}")), p.clone(), &CLOCK).is_ok());
        assert_eq!(
            validate_callback(&cb(&format!("code=abc&state={st}&iss=x")), p, &CLOCK)
                .unwrap_err()
                .code(),
            "iss_mismatch"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn error_detail_is_typed() {
        let (_, p) = fixture(false);
        let st = p.state.secret().to_owned();
        let e = validate_callback(
            &cb(&format!(
                "error=access_denied&error_description=%3Cb%3Eno&state={st}"
            )),
            p,
            &CLOCK,
        )
        .unwrap_err();
        match e {
            Error::AuthorizationFailed { error } => {
                assert_eq!(error.code, OAuthErrorCode::AccessDenied);
                assert_eq!(error.description.as_deref(), Some("<b>no"));
            }
            other => panic!("{other:?}"),
        }
    }
}
