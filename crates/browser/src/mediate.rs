//! The token-mediating backend (RFC 10017 §6.2) seen from the page: [`MediatedHttp`], the
//! core's `HttpClient` that sends every token request to the worker's `POST /token` and every
//! revocation to its `POST /revoke`, never to the authorization server.
//!
//! The worker exchanges the code with its own client credentials and keeps the refresh token
//! in the session's Durable Object; it answers the access token and an opaque
//! `session_handle`. The handle is what the page holds where a refresh token would be (the
//! core sends it back as `refresh_token` on a refresh, as the worker's protocol asks): the
//! page never receives a refresh token. Everything else (discovery, the authorization request,
//! PKCE, `state`, `iss`) stays in the page, done by the core as in the browser architecture.

use edge_oauth_core::url::form_urlencoded;
use edge_oauth_core::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};

use wasm_bindgen::{JsCast, JsValue};

use crate::fetch::FetchClient;

/// The core's requests over `fetch`, token and revocation requests through a token-mediating
/// worker when one is configured.
#[derive(Clone, Debug, Default)]
pub struct MediatedHttp {
    fetch: FetchClient,
    /// The worker's base URL (no trailing slash), or `None`: everything goes where the core
    /// says (the browser architecture).
    proxy: Option<String>,
}

/// What a form POST of the core is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Token { refresh: bool },
    Revocation,
    Other,
}

fn kind(pairs: &[(String, String)]) -> Kind {
    let has = |name: &str| pairs.iter().any(|(k, _)| k == name);
    match pairs.iter().find(|(k, _)| k == "grant_type") {
        Some((_, g)) => Kind::Token {
            refresh: g == "refresh_token",
        },
        // RFC 7009: `token` (a pushed authorization request has `response_type`, never `token`).
        None if has("token") && !has("response_type") => Kind::Revocation,
        None => Kind::Other,
    }
}

impl MediatedHttp {
    /// Straight to the servers the core names (the browser architecture).
    pub fn direct() -> Self {
        Self::default()
    }

    /// Token and revocation requests through the worker at `proxy_url`
    /// (`<proxy_url>/token`, `<proxy_url>/revoke`).
    pub fn through(proxy_url: &str) -> Self {
        Self {
            fetch: FetchClient::new(),
            proxy: Some(proxy_url.trim_end_matches('/').to_owned()),
        }
    }
}

fn is_form(request: &HttpRequest) -> bool {
    request.headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("content-type")
            && v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
    })
}

/// The worker's answer as the core expects a token response: `session_handle` in the place of
/// `refresh_token` (the upstream one never reaches the page). Anything else is left as it is.
fn handle_as_refresh_token(response: &mut HttpResponse) {
    if response.status != 200 {
        return;
    }
    // Edited as the engine's object (JSON.parse / JSON.stringify): no map removal code in
    // the wasm for two members.
    let Some(body) = core::str::from_utf8(&response.body)
        .ok()
        .and_then(|text| js_sys::JSON::parse(text).ok())
        .filter(|b| b.is_object() && !js_sys::Array::is_array(b))
    else {
        return;
    };
    let body: js_sys::Object = body.unchecked_into();
    // The worker never sends one; should a misconfigured one do, it is dropped, not kept.
    let (refresh, handle) = (
        JsValue::from_str("refresh_token"),
        JsValue::from_str("session_handle"),
    );
    let _ = js_sys::Reflect::delete_property(&body, &refresh);
    if let Ok(h) = js_sys::Reflect::get(&body, &handle)
        && !h.is_undefined()
    {
        let _ = js_sys::Reflect::delete_property(&body, &handle);
        let _ = js_sys::Reflect::set(&body, &refresh, &h);
    }
    if let Some(text) = js_sys::JSON::stringify(&body)
        .ok()
        .and_then(|s| s.as_string())
    {
        response.body = text.into_bytes();
    }
}

impl HttpClient for MediatedHttp {
    async fn send(&self, mut request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let Some(proxy) = &self.proxy else {
            return self.fetch.send(request).await;
        };
        if request.method != Method::Post || !is_form(&request) {
            return self.fetch.send(request).await;
        }
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(request.body.as_deref().unwrap_or_default())
                .into_owned()
                .collect();
        let kind = kind(&pairs);
        match kind {
            Kind::Other => return self.fetch.send(request).await,
            Kind::Token { refresh: true } => {
                // One access token per worker session: the worker refuses `scope` on a refresh.
                pairs.retain(|(k, _)| k != "scope");
                request.url = format!("{proxy}/token");
            }
            Kind::Token { refresh: false } => request.url = format!("{proxy}/token"),
            Kind::Revocation => request.url = format!("{proxy}/revoke"),
        }
        // The page is a public client: the worker adds its own authentication. A DPoP proof
        // (this page's key, `htu` the authorization server's token endpoint) goes through:
        // the worker passes it on, so the tokens it keeps are bound to this page's key.
        request
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        pairs.retain(|(k, _)| k != "client_secret");
        request.body = Some(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .finish()
                .into_bytes(),
        );
        let mut response = self.fetch.send(request).await?;
        if matches!(kind, Kind::Token { .. }) {
            handle_as_refresh_token(&mut response);
        }
        Ok(response)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test scaffolding
mod tests {
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(s.as_bytes()).into_owned().collect()
    }

    #[wasm_bindgen_test::wasm_bindgen_test]
    fn kinds() {
        assert_eq!(
            kind(&pairs("grant_type=refresh_token&refresh_token=h")),
            Kind::Token { refresh: true }
        );
        assert_eq!(
            kind(&pairs("grant_type=authorization_code&code=c")),
            Kind::Token { refresh: false }
        );
        assert_eq!(
            kind(&pairs("token=t&token_type_hint=refresh_token")),
            Kind::Revocation
        );
        assert_eq!(kind(&pairs("response_type=code&client_id=c")), Kind::Other);
    }

    #[wasm_bindgen_test::wasm_bindgen_test]
    fn the_handle_takes_the_refresh_token_place() {
        let mut r = HttpResponse::new(
            200,
            vec![],
            br#"{"access_token":"at","token_type":"Bearer","refresh_token":"rt","session_handle":"h"}"#.to_vec(),
        );
        handle_as_refresh_token(&mut r);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["refresh_token"], "h");
        assert!(v.get("session_handle").is_none());
        // A refresh token without a handle is dropped all the same; the rest is kept.
        let mut r = HttpResponse::new(
            200,
            vec![],
            br#"{"access_token":"at","refresh_token":"rt","__proto__":1}"#.to_vec(),
        );
        handle_as_refresh_token(&mut r);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v, serde_json::json!({"access_token": "at", "__proto__": 1}));
        let mut e = HttpResponse::new(400, vec![], br#"{"error":"invalid_grant"}"#.to_vec());
        handle_as_refresh_token(&mut e);
        assert_eq!(e.body, br#"{"error":"invalid_grant"}"#.to_vec());
    }
}
