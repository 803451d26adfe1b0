//! One refresh at a time per session, across every tab of the origin: the Web Locks API
//! (`navigator.locks.request`), held until the returned [`StoreLock`] is dropped. Where Web
//! Locks are missing (Node, old browsers), a lock inside this page only: concurrent calls in
//! the tab still make one refresh, other tabs are not coordinated ([`LockMode::Tab`]).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::task::{Poll, Waker};

use edge_oauth_core::store::StoreLock;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::error::{Error, JsError};

/// How refreshes are serialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Web Locks: one refresh among all tabs and workers of the origin.
    WebLocks,
    /// No Web Locks here: one refresh among the calls of this page only.
    Tab,
}

impl LockMode {
    /// `"web-locks"` or `"tab"` (the JS API's `status().lock`).
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::WebLocks => "web-locks",
            LockMode::Tab => "tab",
        }
    }
}

/// `navigator.locks`, when this global has it.
fn lock_manager() -> Option<Object> {
    let navigator = Reflect::get(&js_sys::global(), &JsValue::from_str("navigator")).ok()?;
    let locks = Reflect::get(&navigator, &JsValue::from_str("locks")).ok()?;
    let request = Reflect::get(&locks, &JsValue::from_str("request")).ok()?;
    request.is_function().then(|| locks.unchecked_into())
}

/// What this global offers.
pub fn mode() -> LockMode {
    if lock_manager().is_some() {
        LockMode::WebLocks
    } else {
        LockMode::Tab
    }
}

/// Waits for the exclusive lock `name`.
pub async fn acquire(name: &str) -> Result<StoreLock, Error> {
    match lock_manager() {
        Some(locks) => web_lock(&locks, name).await,
        None => Ok(tab_lock(name.to_owned()).await),
    }
}

async fn web_lock(locks: &Object, name: &str) -> Result<StoreLock, Error> {
    // The lock is held until the promise the callback returns settles: that promise is
    // resolved by the StoreLock's release. `granted` settles when the callback runs, or
    // rejects with the request (an inactive document, an abort).
    let mut release: Option<Function> = None;
    let held = Promise::new(&mut |resolve, _| release = Some(resolve));
    let mut settle: Option<(Function, Function)> = None;
    let granted = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    let (Some(release), Some((grant, refuse))) = (release, settle) else {
        return Err(Error::Unavailable { api: "Promise" });
    };
    let callback: JsValue = Closure::once(move |_lock: JsValue| -> JsValue {
        let _ = grant.call0(&JsValue::UNDEFINED);
        held.into()
    })
    .into_js_value();
    let request: Function = Reflect::get(locks, &JsValue::from_str("request"))
        .map_err(|e| lock_error(e.into()))?
        .unchecked_into();
    let requested: Promise = request
        .call2(locks, &JsValue::from_str(name), &callback)
        .map_err(|e| lock_error(e.into()))?
        .unchecked_into();
    // Kept alive by the promise chain: `forget` leaks one small closure per lock request,
    // which is how a callback that may never run is handed to JS.
    let on_rejected = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        let _ = refuse.call1(&JsValue::UNDEFINED, &e);
    });
    let _ = requested.catch(&on_rejected);
    on_rejected.forget();
    JsFuture::from(granted)
        .await
        .map_err(|e| lock_error(e.into()))?;
    Ok(StoreLock::on_release(move || {
        let _ = release.call0(&JsValue::UNDEFINED);
    }))
}

fn lock_error(e: JsError) -> Error {
    Error::Lock { error: e }
}

thread_local! {
    static HELD: RefCell<BTreeSet<String>> = const { RefCell::new(BTreeSet::new()) };
    static WAITING: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

async fn tab_lock(name: String) -> StoreLock {
    std::future::poll_fn(|cx| {
        let taken = HELD.with(|h| h.borrow_mut().insert(name.clone()));
        if taken {
            Poll::Ready(())
        } else {
            WAITING.with(|w| w.borrow_mut().push(cx.waker().clone()));
            Poll::Pending
        }
    })
    .await;
    StoreLock::on_release(move || {
        HELD.with(|h| h.borrow_mut().remove(&name));
        for w in WAITING.with(|w| std::mem::take(&mut *w.borrow_mut())) {
            w.wake();
        }
    })
}
