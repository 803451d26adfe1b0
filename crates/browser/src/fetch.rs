//! The core's [`HttpClient`] over `globalThis.fetch` (window, worker, Node 22).
//!
//! Secure defaults, per the core's transport contract: redirects are never followed
//! (`redirect: "manual"`; the opaque redirect a browser then returns is an error, since its
//! status and target are hidden), no cookies or HTTP auth are sent (`credentials: "omit"`),
//! and no `Referer` (`referrerPolicy: "no-referrer"`: the page URL may hold a callback's
//! `code` and `state`). Error messages name the URL, never a request body or header value.

use edge_oauth_core::{HttpClient, HttpRequest, HttpResponse, TransportError};
use js_sys::{Array, ArrayBuffer, Promise, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Headers, ReferrerPolicy, RequestCredentials, RequestInit, RequestRedirect, Response,
    ResponseType,
};

use crate::error::JsError;

#[wasm_bindgen]
extern "C" {
    // `globalThis.fetch(url, init)`: called on the global, as `fetch` requires.
    #[wasm_bindgen(js_namespace = globalThis, js_name = fetch, catch)]
    fn global_fetch(url: &str, init: &RequestInit) -> Result<Promise, JsValue>;
}

/// Sends the core's requests with `fetch`. Stateless; copy it freely.
#[derive(Clone, Copy, Debug, Default)]
pub struct FetchClient;

impl FetchClient {
    /// A client.
    pub fn new() -> Self {
        Self
    }
}

impl HttpClient for FetchClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let url = request.url.as_str();
        let init = RequestInit::new();
        init.set_method(request.method.as_str());
        init.set_redirect(RequestRedirect::Manual);
        init.set_credentials(RequestCredentials::Omit);
        init.set_referrer_policy(ReferrerPolicy::NoReferrer);
        let headers = Headers::new().map_err(|e| failed(url, "building headers", e))?;
        for (name, value) in &request.headers {
            // The browser's message may quote the value (an Authorization header): name only.
            if headers.append(name, value).is_err() {
                return Err(TransportError::new(format!(
                    "request to {url} not sent: header field `{name}` is not acceptable to fetch"
                )));
            }
        }
        init.set_headers(&headers);
        if let Some(body) = &request.body {
            init.set_body(&Uint8Array::from(body.as_slice()));
        }

        let promise = global_fetch(url, &init).map_err(|e| fetch_error(url, e))?;
        let response: Response = JsFuture::from(promise)
            .await
            .map_err(|e| fetch_error(url, e))?
            .unchecked_into();
        if response.type_() == ResponseType::Opaqueredirect || response.status() == 0 {
            return Err(TransportError::new(format!(
                "{url} answered a redirect, which is not followed here"
            )));
        }

        let mut header_list = Vec::new();
        if let Ok(Some(entries)) = js_sys::try_iter(&response.headers()) {
            for entry in entries.flatten() {
                let pair: Array = entry.unchecked_into();
                if let (Some(name), Some(value)) =
                    (pair.get(0).as_string(), pair.get(1).as_string())
                {
                    header_list.push((name, value));
                }
            }
        }

        let body_promise = response
            .array_buffer()
            .map_err(|e| failed(url, "reading the body", e))?;
        let body = JsFuture::from(body_promise)
            .await
            .map_err(|e| failed(url, "reading the body", e))?;
        let body = match body.dyn_ref::<ArrayBuffer>() {
            Some(buffer) => Uint8Array::new(buffer).to_vec(),
            None => Vec::new(),
        };
        Ok(HttpResponse::new(response.status(), header_list, body))
    }
}

/// A rejected `fetch`. A `TypeError` is how every network failure and every CORS refusal
/// looks to script (the two are deliberately indistinguishable), and is not an HTTP status.
fn fetch_error(url: &str, e: JsValue) -> TransportError {
    let e = JsError::from_js(&e);
    let message = match e.name.as_str() {
        "TypeError" => {
            format!("network error or CORS refusal fetching {url} (no HTTP response; {e})")
        }
        "AbortError" => format!("fetching {url} was aborted"),
        _ => format!("fetching {url} failed: {e}"),
    };
    TransportError::new(message)
}

fn failed(url: &str, what: &str, e: JsValue) -> TransportError {
    TransportError::new(format!("{what} for {url} failed: {}", JsError::from_js(&e)))
}
