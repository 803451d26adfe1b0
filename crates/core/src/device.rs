//! The device authorization grant (RFC 8628): request, user instructions, and polling with
//! `authorization_pending`, `slow_down` (+5 s, §3.5) and `expired_token`.

use serde::Deserialize;

use crate::discovery::AuthorizationServerMetadata;
use crate::env::Clock;
use crate::error::{Endpoint, Error, OAuthErrorCode, Result};
use crate::http::{HttpRequest, HttpResponse, check_status, parse_json, parse_secure_url};
use crate::registration::ClientCredentials;
use crate::secret::{DeviceCode, RefreshToken};
use crate::token::{TokenSet, process_token_response_with};

/// The device grant type URN.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §3.2 device authorization response, expiry made absolute.
#[derive(Clone, Debug)]
pub struct DeviceAuthorization {
    /// The device code (secret: polls with it).
    pub device_code: DeviceCode,
    /// The code the user types.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// A URI with the user code embedded, if offered.
    pub verification_uri_complete: Option<String>,
    /// When the device code expires.
    pub expires_at: u64,
    /// Seconds between polls (default 5).
    pub interval: u64,
}

/// The device authorization request (RFC 8628 §3.1).
pub fn device_authorization_request(
    meta: &AuthorizationServerMetadata,
    client: &ClientCredentials,
    scope: Option<&str>,
    resource: Option<&str>,
) -> Result<HttpRequest> {
    let endpoint =
        meta.device_authorization_endpoint
            .as_deref()
            .ok_or(Error::UnsupportedByServer {
                issuer: meta.issuer.clone(),
                feature: "device_authorization_endpoint",
            })?;
    parse_secure_url(endpoint)?;
    let mut pairs = Vec::new();
    if let Some(s) = scope.filter(|s| !s.is_empty()) {
        pairs.push(("scope", s.to_owned()));
    }
    if let Some(r) = resource {
        pairs.push(("resource", r.to_owned()));
    }
    Ok(client.authenticate(HttpRequest::post_form(endpoint, []), pairs))
}

#[derive(Deserialize)]
struct DeviceResponse {
    device_code: String,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

/// Checks the device authorization response (RFC 8628 §3.2).
pub fn process_device_authorization_response(
    response: &HttpResponse,
    url: &str,
    clock: &impl Clock,
) -> Result<DeviceAuthorization> {
    check_status(response, url, Endpoint::DeviceAuthorization)?;
    let r: DeviceResponse = parse_json(response, url)?;
    for (v, field) in [
        (&r.device_code, "device_code"),
        (&r.user_code, "user_code"),
        (&r.verification_uri, "verification_uri"),
    ] {
        if v.is_empty() {
            return Err(Error::MissingField {
                url: url.to_owned(),
                field,
            });
        }
    }
    Ok(DeviceAuthorization {
        device_code: DeviceCode::new(r.device_code),
        user_code: r.user_code,
        verification_uri: r.verification_uri,
        verification_uri_complete: r.verification_uri_complete,
        // Polling stops after an hour whatever the server says; the interval is the server's
        // (never faster, RFC 8628 §3.5), at least 1 s.
        expires_at: clock.now().saturating_add(r.expires_in.min(3600)),
        interval: r.interval.unwrap_or(5).clamp(1, 3600),
    })
}

/// The device access token request (RFC 8628 §3.4).
pub fn device_token_request(
    token_endpoint: &str,
    client: &ClientCredentials,
    device: &DeviceAuthorization,
    resource: Option<&str>,
) -> Result<HttpRequest> {
    parse_secure_url(token_endpoint)?;
    let mut pairs = vec![
        ("grant_type", DEVICE_CODE_GRANT.to_owned()),
        ("device_code", device.device_code.secret().to_owned()),
    ];
    if let Some(r) = resource {
        pairs.push(("resource", r.to_owned()));
    }
    Ok(client.authenticate(HttpRequest::post_form(token_endpoint, []), pairs))
}

/// One poll's outcome.
#[derive(Debug)]
pub enum DevicePoll {
    /// Not yet approved: poll again after the interval.
    Pending,
    /// Poll again, 5 seconds slower (RFC 8628 §3.5).
    SlowDown,
    /// Approved.
    Complete(TokenSet),
}

/// Interprets a device token response (RFC 8628 §3.5).
pub fn process_device_token_response(
    response: &HttpResponse,
    url: &str,
    clock: &impl Clock,
    requested_scope: Option<&str>,
) -> Result<DevicePoll> {
    process_device_token_response_with(response, url, clock, requested_scope, false)
}

/// [`process_device_token_response`] for a poll that did or did not carry a DPoP proof
/// (RFC 9449 §5; see [`process_token_response_with`]).
pub fn process_device_token_response_with(
    response: &HttpResponse,
    url: &str,
    clock: &impl Clock,
    requested_scope: Option<&str>,
    proof_sent: bool,
) -> Result<DevicePoll> {
    let tokens = process_token_response_with(
        response,
        url,
        clock,
        None::<&RefreshToken>,
        requested_scope,
        proof_sent,
    );
    match tokens {
        Ok(t) => Ok(DevicePoll::Complete(t)),
        Err(Error::OAuth { error, .. }) if error.code == OAuthErrorCode::AuthorizationPending => {
            Ok(DevicePoll::Pending)
        }
        Err(Error::OAuth { error, .. }) if error.code == OAuthErrorCode::SlowDown => {
            Ok(DevicePoll::SlowDown)
        }
        Err(Error::OAuth { error, .. }) if error.code == OAuthErrorCode::ExpiredToken => {
            Err(Error::DeviceCodeExpired)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::ManualClock;
    use serde_json::json;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn device_response_and_polls() {
        let clock = ManualClock::new(10);
        let r = HttpResponse::json(
            200,
            &json!({"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": "https://as/device", "expires_in": 600}),
        );
        let d = process_device_authorization_response(&r, "u", &clock).unwrap();
        assert_eq!((d.expires_at, d.interval), (610, 5));
        let poll = |body| {
            process_device_token_response(&HttpResponse::json(400, &body), "u", &clock, None)
        };
        assert!(matches!(
            poll(json!({"error": "authorization_pending"})),
            Ok(DevicePoll::Pending)
        ));
        assert!(matches!(
            poll(json!({"error": "slow_down"})),
            Ok(DevicePoll::SlowDown)
        ));
        assert_eq!(
            poll(json!({"error": "expired_token"})).unwrap_err().code(),
            "device_code_expired"
        );
        assert_eq!(
            poll(json!({"error": "access_denied"})).unwrap_err().code(),
            "oauth_error"
        );
        let ok = HttpResponse::json(200, &json!({"access_token": "a", "token_type": "Bearer"}));
        assert!(matches!(
            process_device_token_response(&ok, "u", &clock, None),
            Ok(DevicePoll::Complete(_))
        ));
    }
}
