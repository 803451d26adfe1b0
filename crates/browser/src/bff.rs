//! The backend-for-frontend (RFC 10017 §6.1) seen from the page: the worker is the OAuth
//! client and holds every token; the page holds nothing but an HttpOnly session cookie it
//! cannot read. `login()` is a top-level form POST to `<proxyUrl>/bff/login`; requests to the
//! MCP server URL go to `<proxyUrl>/bff/mcp/<name>` with the cookie (`credentials:
//! "include"`) and the worker's CSRF header (`X-Edge-OAuth: 1`), never an `Authorization`
//! header; `status()` asks `/bff/session`, `logout()` posts `/bff/logout`. A 403
//! `insufficient_scope` from the MCP server (which the worker records for the session) is a
//! step-up: the same form POST with `step_up=true`, and the worker's login asks for the
//! challenge's scope too (MCP authorization, scope challenge handling).

use std::cell::RefCell;

use edge_oauth_core::Url;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The worker's CSRF header on every cookie-authenticated request.
pub const CSRF_HEADER: &str = "X-Edge-OAuth";

/// The `sessionStorage` key (with the MCP server's name) of the last automatic step-up:
/// `<ms since the epoch> <scope tokens, sorted>`. While it is younger than
/// [`STEP_UP_MARK_MS`], no challenge of that MCP server is stepped up again, whatever its
/// scope: the 403 is the answer. A hit leaves it (it expires); logout clears it.
const STEP_UP_KEY: &str = "edge-oauth:bff-step-up:";
/// How long that mark counts: the worker's login lifetime (10 minutes) and a little more.
const STEP_UP_MARK_MS: u64 = 15 * 60 * 1000;
/// How long a step-up waits for the page to leave before answering with the 403.
const STEP_UP_NAVIGATION_MS: u32 = 10_000;
/// The longest challenge scope stepped up for, as the worker records it (RFC 6749 §3.3
/// scope tokens, at most this many characters); anything else is no step-up.
const MAX_CHALLENGE_SCOPE_CHARS: usize = 1024;

/// A page's view of one MCP server behind the worker's backend-for-frontend.
pub struct BffClient {
    /// The worker's base URL, no trailing slash.
    proxy: String,
    /// The MCP server URL the app uses (mapped onto the worker's route).
    server: Url,
    /// The MCP server's configured name at the worker (`MCP_SERVERS[].name`).
    mcp_server: String,
    listeners: RefCell<Vec<Function>>,
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
}

fn global_fn(name: &str) -> Result<Function, JsValue> {
    Ok(Reflect::get(&js_sys::global(), &name.into())?.unchecked_into())
}

impl BffClient {
    /// A client for `server` behind the worker at `proxy_url` as `mcp_server`.
    pub fn new(proxy_url: &str, server: Url, mcp_server: String) -> Self {
        Self {
            proxy: proxy_url.trim_end_matches('/').to_owned(),
            server,
            mcp_server,
            listeners: RefCell::default(),
        }
    }

    /// The worker's route for this MCP server.
    pub fn mcp_url(&self) -> String {
        let name: String = js_sys::encode_uri_component(&self.mcp_server).into();
        format!("{}/bff/mcp/{name}", self.proxy)
    }

    /// Registers a change listener (called after logout).
    pub fn on_change(&self, listener: Function) {
        self.listeners.borrow_mut().push(listener);
    }

    fn changed(&self) {
        for l in self.listeners.borrow().iter() {
            let _ = l.call0(&JsValue::UNDEFINED);
        }
    }

    /// Is `url` the MCP server URL (query and a trailing slash aside)?
    fn is_server(&self, url: &Url) -> bool {
        url.origin() == self.server.origin()
            && url.path().trim_end_matches('/') == self.server.path().trim_end_matches('/')
    }

    /// A request to the worker with the cookie and the CSRF header.
    async fn call(&self, method: &str, path: &str) -> Result<web_sys::Response, JsValue> {
        let init = Object::new();
        set(&init, "method", method);
        set(&init, "credentials", "include");
        set(&init, "redirect", "manual");
        set(&init, "cache", "no-store");
        let headers = web_sys::Headers::new()?;
        headers.set(CSRF_HEADER, "1")?;
        headers.set("Accept", "application/json")?;
        set(&init, "headers", headers);
        let url = format!("{}{path}", self.proxy);
        let fetch = global_fn("fetch")?;
        let p: Promise = fetch
            .call2(&js_sys::global(), &url.into(), &init)?
            .unchecked_into();
        Ok(JsFuture::from(p).await?.unchecked_into())
    }

    async fn json(&self, method: &str, path: &str) -> Result<JsValue, JsValue> {
        let response = self.call(method, path).await?;
        let body = JsFuture::from(response.json()?)
            .await
            .unwrap_or(JsValue::NULL);
        if !response.ok() {
            let description = Reflect::get(&body, &"error_description".into())
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default();
            let code = Reflect::get(&body, &"code".into())
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_else(|| "bff_error".into());
            return Err(crate::api::bff_error(
                &code,
                response.status(),
                &format!(
                    "{path} answered HTTP {}{}{description}",
                    response.status(),
                    if description.is_empty() { "" } else { ": " }
                ),
            ));
        }
        Ok(body)
    }

    /// `GET /bff/session` as an `EdgeOAuthStatus` (never a token).
    pub async fn status(&self) -> Result<JsValue, JsValue> {
        let s = self.json("GET", "/bff/session").await?;
        let get = |k: &str| Reflect::get(&s, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let o = Object::new();
        let authenticated = get("authenticated").as_bool().unwrap_or(false);
        set(
            &o,
            "state",
            if authenticated {
                "authenticated"
            } else {
                "not-authenticated"
            },
        );
        set(&o, "architecture", "bff");
        set(&o, "storage", "backend");
        set(&o, "lock", "backend");
        set(&o, "refreshCount", 0);
        // The worker's tokens, bound to the worker's own key when it uses DPoP.
        set(
            &o,
            "dpopBound",
            authenticated && get("dpop_bound").as_bool().unwrap_or(false),
        );
        if authenticated {
            for (from, to) in [
                ("issuer", "issuer"),
                ("expires_at", "expiresAt"),
                ("scope", "scope"),
                ("step_up_scope", "stepUpScope"),
            ] {
                let v = get(from);
                if !v.is_undefined() && !v.is_null() {
                    set(&o, to, v);
                }
            }
        }
        Ok(o.into())
    }

    /// `POST /bff/logout`: the worker revokes upstream and ends the session.
    pub async fn logout(&self) -> Result<JsValue, JsValue> {
        self.json("POST", "/bff/logout").await?;
        self.step_up_mark(None);
        self.changed();
        let o = Object::new();
        set(&o, "deleted", true);
        // The worker revokes the grant itself and does not report a count.
        set(&o, "revoked", 0);
        set(&o, "notRevocable", 0);
        Ok(o.into())
    }

    /// A top-level form POST to `/bff/login` (`mcp_server=<name>`): the worker answers 303 to
    /// the authorization server, and after its callback sends the browser to its
    /// `BFF_RETURN_URL`. The page leaves; the returned promise never settles.
    pub fn login(&self) -> Result<(), JsValue> {
        self.submit_login(false)
    }

    /// The step-up login: `login()` with `step_up=true`. The worker asks for the configured
    /// scope, the granted one and the scope of the MCP server's challenge it recorded.
    pub fn login_step_up(&self) -> Result<(), JsValue> {
        self.submit_login(true)
    }

    fn submit_login(&self, step_up: bool) -> Result<(), JsValue> {
        let window = web_sys::window().ok_or_else(|| crate::api::invalid_input("no window"))?;
        let document: JsValue = Reflect::get(&window, &"document".into())?;
        let create: Function = Reflect::get(&document, &"createElement".into())?.unchecked_into();
        let form = create.call1(&document, &"form".into())?;
        Reflect::set(&form, &"method".into(), &"POST".into())?;
        Reflect::set(
            &form,
            &"action".into(),
            &format!("{}/bff/login", self.proxy).into(),
        )?;
        Reflect::set(
            &form,
            &"enctype".into(),
            &"application/x-www-form-urlencoded".into(),
        )?;
        let input = create.call1(&document, &"input".into())?;
        Reflect::set(&input, &"type".into(), &"hidden".into())?;
        Reflect::set(&input, &"name".into(), &"mcp_server".into())?;
        Reflect::set(&input, &"value".into(), &self.mcp_server.clone().into())?;
        let append: Function = Reflect::get(&form, &"appendChild".into())?.unchecked_into();
        append.call1(&form, &input)?;
        if step_up {
            let input = create.call1(&document, &"input".into())?;
            Reflect::set(&input, &"type".into(), &"hidden".into())?;
            Reflect::set(&input, &"name".into(), &"step_up".into())?;
            Reflect::set(&input, &"value".into(), &"true".into())?;
            append.call1(&form, &input)?;
        }
        let body = Reflect::get(&document, &"body".into())?;
        let append_body: Function = Reflect::get(&body, &"appendChild".into())?.unchecked_into();
        append_body.call1(&body, &form)?;
        let submit: Function = Reflect::get(&form, &"submit".into())?.unchecked_into();
        submit.call0(&form)?;
        Ok(())
    }

    /// The `fetch` of this architecture: a request to the MCP server URL goes to the worker's
    /// `/bff/mcp/<name>` with the cookie and the CSRF header, any `Authorization` removed and
    /// redirects not followed; every other request passes through untouched.
    pub async fn fetch(&self, input: JsValue, init: JsValue) -> Result<JsValue, JsValue> {
        let global = js_sys::global();
        let request_ctor = global_fn("Request")?;
        let request: web_sys::Request =
            Reflect::construct(&request_ctor, &Array::of2(&input, &init))?.unchecked_into();
        let fetch = global_fn("fetch")?;
        let url = Url::parse(&request.url()).ok();
        if !url.as_ref().is_some_and(|u| self.is_server(u)) {
            return JsFuture::from(Promise::from(fetch.call1(&global, &request)?)).await;
        }
        let headers = web_sys::Headers::new_with_headers(&request.headers())?;
        headers.delete("Authorization")?;
        headers.set(CSRF_HEADER, "1")?;
        let out = Object::new();
        let method = request.method();
        set(&out, "method", method.clone());
        set(&out, "headers", headers);
        set(&out, "credentials", "include");
        set(&out, "redirect", "manual");
        set(&out, "mode", "cors");
        set(&out, "signal", request.signal());
        if method != "GET" && method != "HEAD" {
            // Buffered: MCP request bodies are small JSON-RPC messages.
            let body = JsFuture::from(request.array_buffer()?).await?;
            set(&out, "body", body);
        }
        let mut target = self.mcp_url();
        if let Some(q) = url.as_ref().and_then(|u| u.query()) {
            target = format!("{target}?{q}");
        }
        let response =
            JsFuture::from(Promise::from(fetch.call2(&global, &target.into(), &out)?)).await?;
        let r: &web_sys::Response = response.unchecked_ref();
        let Some(scope) = insufficient_scope(r) else {
            return Ok(response);
        };
        // Stepped up a moment ago (the page is back and the server still refuses, for this
        // scope or another), or nowhere to keep the mark: the 403 is the answer.
        if self.step_up_marked() || !self.step_up_mark(Some(&scope)) {
            return Ok(response);
        }
        self.login_step_up()?;
        // The page is leaving for the worker's step-up login. If it has not left after
        // STEP_UP_NAVIGATION_MS (a CSP `form-action` or a sandbox can block the form), the 403
        // is the answer rather than a promise that never settles.
        let left = Promise::new(&mut |resolve, _| {
            if let Some(set_timeout) = Reflect::get(&js_sys::global(), &"setTimeout".into())
                .ok()
                .and_then(|f| f.dyn_into::<Function>().ok())
            {
                let _ = set_timeout.call2(
                    &JsValue::UNDEFINED,
                    &resolve,
                    &JsValue::from(STEP_UP_NAVIGATION_MS),
                );
            }
        });
        JsFuture::from(left).await?;
        Ok(response)
    }

    fn session_storage() -> Option<web_sys::Storage> {
        Reflect::get(&js_sys::global(), &"sessionStorage".into())
            .ok()
            .filter(|s| !s.is_undefined() && !s.is_null())
            .map(JsCast::unchecked_into)
    }

    /// Did this tab start a step-up for this MCP server within [`STEP_UP_MARK_MS`]? (A mark
    /// up to that far in the future, after the clock was set back, counts too.)
    fn step_up_marked(&self) -> bool {
        let Some(mark) = Self::session_storage().and_then(|s| {
            s.get_item(&format!("{STEP_UP_KEY}{}", self.mcp_server))
                .ok()
                .flatten()
        }) else {
            return false;
        };
        // Whole milliseconds: parsing or printing an f64 would bring float code into the wasm.
        let Some(at) = mark.split(' ').next().and_then(|a| a.parse::<u64>().ok()) else {
            return false;
        };
        now_ms().abs_diff(at) < STEP_UP_MARK_MS
    }

    /// Sets (`Some`) or clears (`None`) the step-up mark; false when it could not be set.
    fn step_up_mark(&self, scope: Option<&str>) -> bool {
        let Some(storage) = Self::session_storage() else {
            return false;
        };
        let key = format!("{STEP_UP_KEY}{}", self.mcp_server);
        match scope {
            Some(s) => storage.set_item(&key, &format!("{} {s}", now_ms())).is_ok(),
            None => storage.remove_item(&key).is_ok(),
        }
    }
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// The scope of a 403 `insufficient_scope` challenge (Bearer, else DPoP; parsed by the core)
/// as a sorted token set.
fn insufficient_scope(response: &web_sys::Response) -> Option<String> {
    if response.status() != 403 {
        return None;
    }
    let header = response.headers().get("WWW-Authenticate").ok().flatten()?;
    let challenge = edge_oauth_core::www_authenticate::parse_token_challenge(&header)?;
    if challenge.error.as_deref() != Some("insufficient_scope") {
        return None;
    }
    let scope = challenge.scope?;
    if scope.len() > MAX_CHALLENGE_SCOPE_CHARS {
        return None;
    }
    let nqchar = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
    let mut tokens: Vec<&str> = scope.split(' ').filter(|t| !t.is_empty()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    (!tokens.is_empty() && tokens.iter().all(|t| t.bytes().all(nqchar))).then(|| tokens.join(" "))
}
