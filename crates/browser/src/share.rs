//! Access tokens kept in memory only, shared among the tabs of the origin over a
//! `BroadcastChannel` (same-origin, never on disk): the tab that refreshes publishes the new
//! tokens before it releases the refresh lock, and a tab that finds a session whose access
//! token it does not hold (a new tab, a reload, a refresh made elsewhere) asks the others
//! before it would refresh itself. So every tab uses the one refresh's result.

use std::cell::RefCell;
use std::rc::Rc;

use edge_oauth_core::TokenSet;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BroadcastChannel, MessageEvent};

/// Tokens held by this page, by server URL.
pub type Held = Rc<RefCell<Vec<(String, TokenSet)>>>;

/// Decrypted sessions a page keeps, by server URL; another tab's write or delete drops one.
pub type Cache = Rc<RefCell<Vec<(String, edge_oauth_core::Session)>>>;

type Waiters = Rc<RefCell<Vec<(String, Function)>>>;

/// The channel of one database.
pub struct TokenShare {
    channel: BroadcastChannel,
    held: Held,
    waiters: Waiters,
    /// The shared Web Lock every page of this database holds while it lives: counting its
    /// holders tells whether any other page could answer.
    presence: String,
    listeners: Rc<RefCell<Vec<Function>>>,
    _on_message: Closure<dyn Fn(MessageEvent)>,
}

/// `navigator.locks`, when this global has it.
fn lock_manager() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let locks = Reflect::get(&navigator, &"locks".into()).ok()?;
    (!locks.is_undefined() && !locks.is_null()).then_some(locks)
}

/// Holds the shared lock `name` until the page goes away.
fn join_presence(name: &str) {
    let Some(locks) = lock_manager() else { return };
    let Ok(request) = Reflect::get(&locks, &"request".into()) else {
        return;
    };
    let Ok(request) = request.dyn_into::<Function>() else {
        return;
    };
    let options = Object::new();
    let _ = Reflect::set(&options, &"mode".into(), &"shared".into());
    // Never settles: the lock is released when the page unloads.
    let hold =
        Closure::<dyn FnMut(JsValue) -> Promise>::new(|_: JsValue| Promise::new(&mut |_, _| {}));
    let _ = request.call3(&locks, &name.into(), &options, hold.as_ref());
    hold.forget();
}

/// How many pages hold the presence lock `name`; `None` when it cannot be known.
async fn present(name: &str) -> Option<usize> {
    let locks = lock_manager()?;
    let query: Function = Reflect::get(&locks, &"query".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let snapshot = JsFuture::from(Promise::from(query.call0(&locks).ok()?))
        .await
        .ok()?;
    let held: js_sys::Array = Reflect::get(&snapshot, &"held".into())
        .ok()?
        .dyn_into()
        .ok()?;
    Some(
        held.iter()
            .filter(|l| get(l, "name").as_deref() == Some(name))
            .count(),
    )
}

fn get(o: &JsValue, k: &str) -> Option<String> {
    Reflect::get(o, &JsValue::from_str(k))
        .ok()
        .and_then(|v| v.as_string())
}

fn message(kind: &str, server: &str, tokens: Option<&TokenSet>) -> Option<JsValue> {
    let o = Object::new();
    Reflect::set(&o, &"t".into(), &kind.into()).ok()?;
    Reflect::set(&o, &"server".into(), &server.into()).ok()?;
    if let Some(t) = tokens {
        let json = edge_oauth_core::json::to_string(t).ok()?;
        Reflect::set(&o, &"tokens".into(), &json.into()).ok()?;
    }
    Some(o.into())
}

/// Keeps `tokens` for `server` unless this page already holds newer ones.
pub fn keep(held: &Held, server: &str, tokens: TokenSet) {
    let mut h = held.borrow_mut();
    match h.iter_mut().find(|(s, _)| s == server) {
        Some((_, t)) if t.received_at > tokens.received_at => {}
        Some((_, t)) => *t = tokens,
        None => h.push((server.to_owned(), tokens)),
    }
}

impl TokenShare {
    /// Joins the channel `edge-oauth-tokens/<db>`; `None` where `BroadcastChannel` is missing.
    pub fn open(db_name: &str, held: Held, cache: Cache) -> Option<Self> {
        let channel = BroadcastChannel::new(&format!("edge-oauth-tokens/{db_name}")).ok()?;
        let waiters: Waiters = Rc::default();
        let listeners: Rc<RefCell<Vec<Function>>> = Rc::default();
        let on_message = {
            let listeners = listeners.clone();
            let held = held.clone();
            let waiters = waiters.clone();
            let reply = channel.clone();
            Closure::<dyn Fn(MessageEvent)>::new(move |e: MessageEvent| {
                let data = e.data();
                let (Some(kind), Some(server)) = (get(&data, "t"), get(&data, "server")) else {
                    return;
                };
                // Any news from another tab about this session makes a cached copy stale.
                cache.borrow_mut().retain(|(s, _)| *s != server);
                if kind != "need" {
                    for l in listeners.borrow().iter() {
                        let _ = l.call0(&JsValue::UNDEFINED);
                    }
                }
                match kind.as_str() {
                    "gone" => held.borrow_mut().retain(|(s, _)| *s != server),
                    "tokens" => {
                        let Some(tokens) = get(&data, "tokens")
                            .and_then(|j| edge_oauth_core::json::from_str::<TokenSet>(&j).ok())
                        else {
                            return;
                        };
                        keep(&held, &server, tokens);
                        let ready: Vec<Function> = {
                            let mut w = waiters.borrow_mut();
                            let (now, later) = w.drain(..).partition(|(s, _)| *s == server);
                            *w = later;
                            now.into_iter().map(|(_, f)| f).collect()
                        };
                        for f in ready {
                            let _ = f.call0(&JsValue::UNDEFINED);
                        }
                    }
                    "need" => {
                        let tokens = held
                            .borrow()
                            .iter()
                            .find(|(s, _)| *s == server)
                            .map(|(_, t)| t.clone());
                        if let Some(m) = tokens.and_then(|t| message("tokens", &server, Some(&t))) {
                            let _ = reply.post_message(&m);
                        }
                    }
                    _ => {}
                }
            })
        };
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let presence = format!("edge-oauth-presence/{db_name}");
        join_presence(&presence);
        Some(Self {
            channel,
            held,
            waiters,
            presence,
            listeners,
            _on_message: on_message,
        })
    }

    /// Calls `listener` on news from another tab (tokens saved, session deleted).
    pub fn listen(&self, listener: Function) {
        self.listeners.borrow_mut().push(listener);
    }

    /// Tells the other tabs that the session of `server` was deleted (a logout).
    pub fn publish_gone(&self, server: &str) {
        if let Some(m) = message("gone", server, None) {
            let _ = self.channel.post_message(&m);
        }
    }

    /// Tells the other tabs about new tokens for `server`.
    pub fn publish(&self, server: &str, tokens: &TokenSet) {
        if let Some(m) = message("tokens", server, Some(tokens)) {
            let _ = self.channel.post_message(&m);
        }
    }

    /// Asks the other tabs for the tokens of `server`; returns after the first answer or
    /// `wait_ms`, whichever comes first (the answer, if any, is then in the held tokens).
    pub async fn ask(&self, server: &str, wait_ms: i32) {
        // Alone (no other page of this database holds the presence lock): nobody to ask.
        if present(&self.presence).await.is_some_and(|n| n <= 1) {
            return;
        }
        let Some(m) = message("need", server, None) else {
            return;
        };
        let mut resolve: Option<Function> = None;
        let answered = Promise::new(&mut |r, _| resolve = Some(r));
        let Some(resolve) = resolve else { return };
        self.waiters
            .borrow_mut()
            .push((server.to_owned(), resolve.clone()));
        if self.channel.post_message(&m).is_err() {
            return;
        }
        let set_timeout = Reflect::get(&js_sys::global(), &"setTimeout".into())
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok());
        match set_timeout {
            Some(st) => {
                let _ = st.call2(&JsValue::UNDEFINED, &resolve, &JsValue::from(wait_ms));
            }
            None => return,
        }
        let _ = JsFuture::from(answered).await;
        let _ = &self.held;
    }
}

impl Drop for TokenShare {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}
