//! The user-facing step in a page: a popup opened synchronously in the click handler, whose
//! callback page hands the URL back by `postMessage` (exact origin) or, when the opener is
//! gone, a `BroadcastChannel` named after the flow's `state`; or a full-page redirect that
//! saves the pending login encrypted and leaves.

use std::cell::RefCell;
use std::rc::Rc;

use edge_oauth_core::client::PendingLogin;
use edge_oauth_core::error::Error;
use edge_oauth_core::{Authorizer, Result, Url};
use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::store::BrowserStore;

/// The `type` of the message the callback page sends (`js/popup-callback.js`: keep the two in
/// step).
pub(crate) const CALLBACK_MESSAGE: &str = "edge-oauth-callback";

/// How long a popup may stay open before the flow is abandoned (ms).
const POPUP_TIMEOUT_MS: f64 = 5.0 * 60.0 * 1000.0;

/// How long the flow still waits for the callback after the popup looks closed (ms).
const POPUP_CLOSED_GRACE_MS: f64 = 60.0 * 1000.0;

/// The `BroadcastChannel` of one popup flow (named the same in `js/popup-callback.js`).
pub fn channel_name(state: &str) -> String {
    format!("edge-oauth-callback/{state}")
}

/// Popup, full-page redirect, or the app's own function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A popup window; the page stays.
    Popup,
    /// The page navigates to the authorization server and back.
    Redirect,
    /// `authorize(url) => Promise<callbackUrl>` from the app (Node, a worker, a test, an
    /// embedded browser view).
    Custom(js_sys::Function),
}

fn fail(message: &str) -> Error {
    Error::Authorizer {
        message: message.to_owned(),
    }
}

/// The [`Authorizer`] of a page.
pub struct PageAuthorizer {
    mode: Mode,
    redirect_uri: String,
    store: Rc<BrowserStore>,
    popup: RefCell<Option<web_sys::Window>>,
    return_to: RefCell<Option<String>>,
}

impl PageAuthorizer {
    /// An authorizer receiving callbacks at `redirect_uri`.
    pub fn new(mode: Mode, redirect_uri: String, store: Rc<BrowserStore>) -> Self {
        Self {
            mode,
            redirect_uri,
            store,
            popup: RefCell::default(),
            return_to: RefCell::default(),
        }
    }

    /// Runs synchronously at the start of `login()`: in popup mode opens the window now,
    /// while the click's user activation lasts (a popup opened after an `await` is blocked).
    pub fn prepare(&self, return_to: Option<String>) -> Result<()> {
        *self.return_to.borrow_mut() = return_to;
        if self.mode == Mode::Popup {
            let window = web_sys::window().ok_or_else(|| fail("no window"))?;
            let popup = window
                // A new window per flow: two flows never share (or close) one window.
                .open_with_url_and_target_and_features("", "_blank", "popup,width=520,height=700")
                .ok()
                .flatten()
                .ok_or(Error::Authorizer {
                    message: "popup_blocked: the browser blocked the login window; call login() from a click".into(),
                })?;
            *self.popup.borrow_mut() = Some(popup);
        }
        Ok(())
    }

    /// Forgets the popup of the finished flow (closing it if the callback page did not).
    pub fn finish(&self) {
        if let Some(p) = self.popup.borrow_mut().take() {
            let _ = p.close();
        }
    }

    async fn popup_flow(&self, url: &Url) -> Result<String> {
        // The window opened by login() for this flow; or, for a step-up from fetch, one opened
        // now (which the browser allows only shortly after a user gesture).
        let opened = self.popup.borrow_mut().take();
        let popup = match opened {
            Some(p) => p,
            None => {
                self.prepare(None)?;
                self.popup
                    .borrow_mut()
                    .take()
                    .ok_or_else(|| fail("no popup"))?
            }
        };
        popup
            .location()
            .set_href(url.as_str())
            .map_err(|_| fail("popup_closed: the login window was closed"))?;
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| fail("authorization URL without state"))?;
        let expected_origin = Url::parse(&self.redirect_uri)
            .map_err(|_| fail("redirect URI does not parse"))?
            .origin()
            .ascii_serialization();
        wait_for_callback(&popup, &state, &expected_origin).await
    }
}

/// Resolves with the callback URL from the popup's message, the flow's channel, or fails
/// when the popup is closed or the time is up.
async fn wait_for_callback(popup: &web_sys::Window, state: &str, origin: &str) -> Result<String> {
    let window = web_sys::window().ok_or_else(|| fail("no window"))?;
    let channel = web_sys::BroadcastChannel::new(&channel_name(state))
        .map_err(|_| fail("BroadcastChannel is not available"))?;
    let mut settle: Option<(js_sys::Function, js_sys::Function)> = None;
    let done = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    let (resolve, reject) = settle.ok_or_else(|| fail("no Promise"))?;
    let expected_origin = origin.to_owned();
    let expected_state = state.to_owned();
    let accept = {
        let resolve = resolve.clone();
        move |data: JsValue| {
            let kind = Reflect::get(&data, &"type".into())
                .ok()
                .and_then(|v| v.as_string());
            let url = Reflect::get(&data, &"url".into())
                .ok()
                .and_then(|v| v.as_string());
            if let (Some(kind), Some(url)) = (kind, url)
                && kind == CALLBACK_MESSAGE
                && Url::parse(&url).is_ok_and(|u| {
                    u.query_pairs()
                        .any(|(k, v)| k == "state" && v == expected_state.as_str())
                })
            {
                let _ = resolve.call1(&JsValue::UNDEFINED, &JsValue::from_str(&url));
            }
        }
    };
    let on_message = {
        let accept = accept.clone();
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
            // Only our own callback page may answer: exact origin.
            if e.origin() == expected_origin {
                accept(e.data());
            }
        })
    };
    let on_channel =
        Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
            accept(e.data())
        });
    window
        .add_event_listener_with_callback("message", on_message.as_ref().unchecked_ref())
        .map_err(|_| fail("cannot listen for messages"))?;
    channel.set_onmessage(Some(on_channel.as_ref().unchecked_ref()));
    // The popup closed by the user, or the time up: poll twice a second. A window that looks
    // closed may only have been cut off from this page by Cross-Origin-Opener-Policy (on the
    // authorization server or the callback page), its callback still to come over the
    // channel: it is given POPUP_CLOSED_GRACE_MS before the flow counts as abandoned.
    let started = js_sys::Date::now();
    let watch_popup = popup.clone();
    let closed_since = std::cell::Cell::new(None::<f64>);
    let on_tick = Closure::<dyn Fn()>::new(move || {
        let now = js_sys::Date::now();
        if closed_since.get().is_none() && watch_popup.closed().unwrap_or(true) {
            closed_since.set(Some(now));
        }
        let closed = closed_since
            .get()
            .is_some_and(|t| now - t > POPUP_CLOSED_GRACE_MS);
        if closed || now - started > POPUP_TIMEOUT_MS {
            let code = if closed {
                "popup_closed"
            } else {
                "popup_timeout"
            };
            let _ = reject.call1(&JsValue::UNDEFINED, &JsValue::from_str(code));
        }
    });
    let timer = window
        .set_interval_with_callback_and_timeout_and_arguments_0(
            on_tick.as_ref().unchecked_ref(),
            500,
        )
        .map_err(|_| fail("cannot start a timer"))?;
    let result = JsFuture::from(done).await;
    window.clear_interval_with_handle(timer);
    let _ =
        window.remove_event_listener_with_callback("message", on_message.as_ref().unchecked_ref());
    channel.set_onmessage(None);
    channel.close();
    match result {
        Ok(url) => url.as_string().ok_or_else(|| fail("bad callback message")),
        Err(code) => {
            let code = code.as_string().unwrap_or_default();
            Err(fail(&format!(
                "{code}: the login window was {}",
                if code == "popup_closed" {
                    "closed before it finished"
                } else {
                    "left open too long"
                }
            )))
        }
    }
}

impl Authorizer for PageAuthorizer {
    fn redirect_uri(&self) -> String {
        self.redirect_uri.clone()
    }

    /// A client this page registers gets its redirect URI tagged per authorization server
    /// (`?as=<issuer tag>`, the same callback page): a callback proves which server's flow it
    /// ends even when the server sends no `iss` (RFC 9700 §4.4.2).
    fn redirect_uri_for(&self, issuer: &str) -> String {
        let tag = edge_oauth_core::client::issuer_tag(issuer);
        match Url::parse(&self.redirect_uri) {
            Ok(mut u) => {
                u.query_pairs_mut().append_pair("as", &tag);
                u.to_string()
            }
            Err(_) => self.redirect_uri.clone(),
        }
    }

    async fn authorize(&self, url: &Url) -> Result<String> {
        match &self.mode {
            Mode::Popup => self.popup_flow(url).await,
            Mode::Redirect => Err(fail("a redirect needs the pending login")),
            Mode::Custom(f) => {
                let returned = f
                    .call1(&JsValue::UNDEFINED, &JsValue::from_str(url.as_str()))
                    .map_err(|e| fail(&crate::error::JsError::from_js(&e).to_string()))?;
                let callback = JsFuture::from(Promise::resolve(&returned))
                    .await
                    .map_err(|e| fail(&crate::error::JsError::from_js(&e).to_string()))?;
                callback
                    .as_string()
                    .ok_or_else(|| fail("authorize() must resolve with the callback URL"))
            }
        }
    }

    async fn authorize_pending(&self, url: &Url, pending: &PendingLogin) -> Result<String> {
        if self.mode != Mode::Redirect {
            return self.authorize(url).await;
        }
        let window = web_sys::window().ok_or_else(|| fail("no window"))?;
        let return_to = self
            .return_to
            .borrow()
            .clone()
            .or_else(|| window.location().href().ok());
        let saved = edge_oauth_core::json::to_string(&(pending, return_to))
            .map_err(|_| fail("cannot serialise the pending login"))?;
        self.store
            .save_pending(pending.authorization.state.secret(), &saved)
            .await?;
        window
            .location()
            .assign(url.as_str())
            .map_err(|_| fail("cannot navigate"))?;
        // The page is leaving; handleRedirectCallback finishes on the callback page.
        std::future::pending().await
    }
}
