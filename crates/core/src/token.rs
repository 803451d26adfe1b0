//! Token endpoint requests (RFC 6749 §4.1.3, §6; RFC 8707 §2.2), token response processing
//! (RFC 6749 §5.1), and revocation (RFC 7009).

use serde::{Deserialize, Serialize};

use crate::authorize::ValidatedCallback;
use crate::env::Clock;
use crate::error::{Endpoint, Error, Result};
use crate::http::{self, HttpRequest, HttpResponse, check_status, is_json_content_type, truncate};
use crate::registration::ClientCredentials;
use crate::secret::{AccessToken, RefreshToken};

/// The longest `expires_in` taken at face value (ten years).
pub const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// Default margin before expiry at which a token counts as due for refresh.
pub const DEFAULT_REFRESH_BUFFER_SECS: u64 = 60;

/// The tokens from one token response, with expiry made absolute by the injected clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// `Bearer` or `DPoP` (normalised from any case).
    pub token_type: String,
    /// The refresh token, if any (kept from before when a refresh response omits it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// Absolute expiry in seconds since the epoch (`expires_in` + the clock at receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Granted scope, when the server said (else the requested one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the response was received.
    pub received_at: u64,
}

impl TokenSet {
    /// True when the token expires within `buffer_secs` (or has expired). The buffer is capped
    /// at half the token's lifetime, so short-lived tokens are not refreshed on every use.
    pub fn needs_refresh(&self, now: u64, buffer_secs: u64) -> bool {
        let Some(t) = self.expires_at else {
            return false;
        };
        let lifetime = t.saturating_sub(self.received_at);
        now.saturating_add(buffer_secs.min(lifetime / 2)) >= t
    }

    /// True once the expiry has passed.
    pub fn is_expired(&self, now: u64) -> bool {
        matches!(self.expires_at, Some(t) if now >= t)
    }

    /// True for a DPoP-bound access token (`token_type` `DPoP`, RFC 9449 §5): it is presented,
    /// and its refresh token redeemed, only with a proof by the key it is bound to.
    pub fn is_dpop(&self) -> bool {
        self.token_type.eq_ignore_ascii_case("dpop")
    }

    /// The `Authorization` header value: `Bearer` (RFC 6750 §2.1) or `DPoP` (RFC 9449 §7.1).
    /// A DPoP token also needs a proof in a `DPoP` header.
    pub fn authorization_header(&self) -> String {
        let scheme = if self.is_dpop() { "DPoP" } else { "Bearer" };
        format!("{scheme} {}", self.access_token.secret())
    }
}

fn token_endpoint(url: &str) -> Result<()> {
    http::parse_secure_url(url).map(|_| ())
}

/// The authorization code grant (RFC 6749 §4.1.3), with the PKCE verifier and the same
/// `resource` as the authorization request (RFC 8707 §2.2). Takes the validated callback by
/// value: a code is exchanged once.
pub fn authorization_code_request(
    token_endpoint_url: &str,
    client: &ClientCredentials,
    callback: ValidatedCallback,
) -> Result<HttpRequest> {
    token_endpoint(token_endpoint_url)?;
    let p = &callback.pending;
    let mut pairs = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", callback.code.secret().to_owned()),
        ("redirect_uri", p.redirect_uri.clone()),
        ("code_verifier", p.code_verifier.secret().to_owned()),
    ];
    if let Some(r) = &p.resource {
        pairs.push(("resource", r.clone()));
    }
    Ok(client.authenticate(HttpRequest::post_form(token_endpoint_url, []), pairs))
}

/// The refresh token grant (RFC 6749 §6), with `resource` (RFC 8707 §2.2) and optional
/// narrower `scope`.
pub fn refresh_token_request(
    token_endpoint_url: &str,
    client: &ClientCredentials,
    refresh_token: &RefreshToken,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<HttpRequest> {
    token_endpoint(token_endpoint_url)?;
    let mut pairs = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.secret().to_owned()),
    ];
    if let Some(s) = scope.filter(|s| !s.is_empty()) {
        pairs.push(("scope", s.to_owned()));
    }
    if let Some(r) = resource {
        pairs.push(("resource", r.to_owned()));
    }
    Ok(client.authenticate(HttpRequest::post_form(token_endpoint_url, []), pairs))
}

/// Checks a token response in order — status (an OAuth error body becomes a typed error,
/// `Retry-After` kept), JSON content type, body, required fields, `token_type` — and makes
/// `expires_in` absolute. `previous_refresh` is kept when the response has no new refresh
/// token (RFC 6749 §6); `requested_scope` stands in when the response omits `scope` (§5.1).
/// Only `Bearer` tokens: see [`process_token_response_with`] after a request with a DPoP proof.
pub fn process_token_response(
    response: &HttpResponse,
    url: &str,
    clock: &impl Clock,
    previous_refresh: Option<&RefreshToken>,
    requested_scope: Option<&str>,
) -> Result<TokenSet> {
    process_token_response_with(
        response,
        url,
        clock,
        previous_refresh,
        requested_scope,
        false,
    )
}

/// A token endpoint's answer read the same way for every grant: the status (an OAuth error
/// body becomes a typed error), a JSON content type, a non-empty body, and a JSON object —
/// parsed by hand by the callers, since serde's messages would quote values, and these are
/// tokens.
pub(crate) fn token_endpoint_object(
    response: &HttpResponse,
    url: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    check_status(response, url, Endpoint::Token)?;
    let content_type = response.header("content-type").unwrap_or("");
    if !is_json_content_type(content_type) {
        return Err(Error::UnexpectedContentType {
            url: url.to_owned(),
            content_type: truncate(content_type, 100),
        });
    }
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::EmptyBody {
            url: url.to_owned(),
        });
    }
    let v: serde_json::Value =
        crate::json::from_slice(&response.body).map_err(|_| Error::InvalidJson {
            url: url.to_owned(),
            detail: "body is not valid JSON".into(),
        })?;
    match v {
        serde_json::Value::Object(obj) => Ok(obj),
        _ => Err(Error::InvalidJson {
            url: url.to_owned(),
            detail: "body is not a JSON object".into(),
        }),
    }
}

/// [`process_token_response`] for a request that did or did not carry a DPoP proof
/// (`proof_sent`, RFC 9449 §5): `token_type` `DPoP` is accepted only after a proof — without
/// one the client could not present the token. After a proof a `Bearer` answer is a bearer
/// token: the server did not bind it.
pub fn process_token_response_with(
    response: &HttpResponse,
    url: &str,
    clock: &impl Clock,
    previous_refresh: Option<&RefreshToken>,
    requested_scope: Option<&str>,
    proof_sent: bool,
) -> Result<TokenSet> {
    let obj = token_endpoint_object(response, url)?;
    let obj = &obj;
    let string = |field: &'static str| -> Result<Option<&str>> {
        match obj.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::InvalidJson {
                url: url.to_owned(),
                detail: format!("field `{field}` must be a string"),
            }),
        }
    };
    let access = string("access_token")?
        .filter(|s| !s.is_empty())
        .ok_or(Error::MissingField {
            url: url.to_owned(),
            field: "access_token",
        })?;
    let token_type =
        string("token_type")?
            .filter(|s| !s.is_empty())
            .ok_or(Error::MissingField {
                url: url.to_owned(),
                field: "token_type",
            })?;
    let token_type = if token_type.eq_ignore_ascii_case("bearer") {
        "Bearer"
    } else if token_type.eq_ignore_ascii_case("dpop") && proof_sent {
        "DPoP"
    } else {
        return Err(Error::UnsupportedTokenType {
            token_type: truncate(token_type, 40),
        });
    };
    let expires_in = match obj.get("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        // Some servers send a numeric string; accept it rather than drop a good token.
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    // A lifetime beyond ten years is nonsense; clamping keeps expiry arithmetic sane.
    let expires_in = expires_in.map(|s| s.min(MAX_EXPIRES_IN));
    let now = clock.now();
    let refresh = string("refresh_token")?
        .filter(|s| !s.is_empty())
        .map(RefreshToken::new)
        .or_else(|| previous_refresh.cloned());
    let scope = string("scope")?
        .map(str::to_owned)
        .or_else(|| requested_scope.map(str::to_owned));
    Ok(TokenSet {
        access_token: AccessToken::new(access),
        token_type: token_type.into(),
        refresh_token: refresh,
        expires_at: expires_in.map(|s| now.saturating_add(s)),
        scope,
        received_at: now,
    })
}

/// Which token is being revoked (RFC 7009 §2.1 `token_type_hint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// `access_token`
    AccessToken,
    /// `refresh_token`
    RefreshToken,
}

/// The revocation request (RFC 7009 §2.1).
pub fn revocation_request(
    revocation_endpoint: &str,
    client: &ClientCredentials,
    token: &str,
    hint: TokenTypeHint,
) -> Result<HttpRequest> {
    http::parse_secure_url(revocation_endpoint)?;
    let hint = match hint {
        TokenTypeHint::AccessToken => "access_token",
        TokenTypeHint::RefreshToken => "refresh_token",
    };
    let pairs = vec![
        ("token", token.to_owned()),
        ("token_type_hint", hint.to_owned()),
    ];
    Ok(client.authenticate(HttpRequest::post_form(revocation_endpoint, []), pairs))
}

/// RFC 7009 §2.2: 200 means revoked (or already invalid); 503 is transient (§2.2.1).
pub fn process_revocation_response(response: &HttpResponse, url: &str) -> Result<()> {
    check_status(response, url, Endpoint::Revocation)
}

/// A new refresh token in a 200 token response that failed validation: the server has
/// rotated, so the old one is dead and this one is the only way back. Keep it, even though the
/// rest of the response is unusable.
pub fn salvage_refresh_token(response: &HttpResponse, old: &RefreshToken) -> Option<RefreshToken> {
    if response.status != 200 {
        return None;
    }
    let v: serde_json::Value = crate::json::from_slice(&response.body).ok()?;
    let rt = v.get("refresh_token")?.as_str()?;
    (!rt.is_empty() && rt != old.secret()).then(|| RefreshToken::new(rt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::ManualClock;
    use serde_json::json;

    fn resp(status: u16, body: serde_json::Value) -> HttpResponse {
        HttpResponse::json(status, &body)
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn token_response_ok() {
        let clock = ManualClock::new(1_000);
        let t = process_token_response(&resp(200, json!({"access_token": "at", "token_type": "bearer", "expires_in": 3600, "refresh_token": "rt"})), "u", &clock, None, Some("a")).unwrap();
        assert_eq!(t.expires_at, Some(4_600));
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.scope.as_deref(), Some("a"));
        assert!(!t.needs_refresh(4_539, 60));
        assert!(t.needs_refresh(4_540, 60));
        // A 30 s token with a 60 s buffer is refreshed after 15 s, not on every use.
        let short = TokenSet {
            expires_at: Some(1_030),
            ..t.clone()
        };
        assert!(!short.needs_refresh(1_014, 60));
        assert!(short.needs_refresh(1_015, 60));
        assert!(!t.is_expired(4_599));
        assert!(t.is_expired(4_600));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn refresh_keeps_old_refresh_token() {
        let clock = ManualClock::new(0);
        let old = RefreshToken::new("old");
        let t = process_token_response(
            &resp(200, json!({"access_token": "at", "token_type": "Bearer"})),
            "u",
            &clock,
            Some(&old),
            None,
        )
        .unwrap();
        assert_eq!(t.refresh_token.unwrap().secret(), "old");
        let t = process_token_response(
            &resp(
                200,
                json!({"access_token": "at", "token_type": "Bearer", "refresh_token": "new"}),
            ),
            "u",
            &clock,
            Some(&old),
            None,
        )
        .unwrap();
        assert_eq!(t.refresh_token.unwrap().secret(), "new");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn token_errors() {
        let clock = ManualClock::new(0);
        let e = process_token_response(
            &resp(400, json!({"error": "invalid_grant"})),
            "u",
            &clock,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.recovery(), crate::Recovery::Reauthenticate);
        let mut r = resp(503, json!({"error": "temporarily_unavailable"}));
        r.headers.push(("Retry-After".into(), "7".into()));
        let e = process_token_response(&r, "u", &clock, None, None).unwrap_err();
        assert_eq!(
            (e.recovery(), e.retry_after()),
            (crate::Recovery::Transient, Some(7))
        );
        let r = resp(429, json!({"error": "too_many_requests"}));
        assert_eq!(
            process_token_response(&r, "u", &clock, None, None)
                .unwrap_err()
                .recovery(),
            crate::Recovery::Transient
        );
        let r = HttpResponse::new(502, vec![], "bad gateway");
        assert_eq!(
            process_token_response(&r, "u", &clock, None, None)
                .unwrap_err()
                .recovery(),
            crate::Recovery::Transient
        );
        let e = process_token_response(
            &resp(
                200,
                json!({"access_token": "secret-at", "token_type": "mac"}),
            ),
            "u",
            &clock,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.code(), "unsupported_token_type");
        let e = process_token_response(
            &resp(200, json!({"access_token": 5, "token_type": "Bearer"})),
            "u",
            &clock,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_json");
        let e = process_token_response(
            &resp(200, json!({"token_type": "Bearer"})),
            "u",
            &clock,
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            Error::MissingField {
                url: "u".into(),
                field: "access_token"
            }
        );
        let e = process_token_response(
            &resp(
                200,
                json!({"refresh_token": "secret-rt", "access_token": "secret-at"}),
            ),
            "u",
            &clock,
            None,
            None,
        )
        .unwrap_err();
        assert!(!format!("{e} {e:?}").contains("secret"));
        let r = HttpResponse::new(302, vec![("location".into(), "https://evil".into())], "");
        assert_eq!(
            process_token_response(&r, "u", &clock, None, None)
                .unwrap_err()
                .code(),
            "unexpected_redirect"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn dpop_tokens_only_after_a_proof() {
        let clock = ManualClock::new(0);
        let r = resp(
            200,
            json!({"access_token": "at", "token_type": "DPoP", "refresh_token": "rt"}),
        );
        let e = process_token_response(&r, "u", &clock, None, None).unwrap_err();
        assert_eq!(e.code(), "unsupported_token_type");
        let t = process_token_response_with(&r, "u", &clock, None, None, true).unwrap();
        assert!(t.is_dpop());
        assert_eq!(t.token_type, "DPoP");
        assert_eq!(t.authorization_header(), "DPoP at");
        // A bearer answer to a proven request: the server did not bind the token.
        let r = resp(200, json!({"access_token": "at", "token_type": "bearer"}));
        let t = process_token_response_with(&r, "u", &clock, None, None, true).unwrap();
        assert!(!t.is_dpop());
        assert_eq!(t.authorization_header(), "Bearer at");
    }
}
