//! Raw IndexedDB: open a database (creating its object stores on upgrade), and get, put, add
//! and delete one value by string key, each in its own transaction. Values are `JsValue`s
//! stored by structured clone, so a `CryptoKey` can be stored as it is.
//!
//! Every `IDBRequest` becomes a future the same way: a `Promise` whose `resolve`/`reject`
//! functions are set as the request's `onsuccess`/`onerror` handlers, and cleared again once
//! it settles. No Rust closure is involved except the upgrade handler, which lives exactly as
//! long as the open request it serves.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    IdbDatabase, IdbFactory, IdbObjectStore, IdbOpenDbRequest, IdbRequest, IdbTransaction,
    IdbTransactionMode,
};

use crate::error::{Error, JsError, string_property};

/// `globalThis.indexedDB`. Reading it can throw (sandboxed frames, some private modes), and
/// Node has none: both are [`Error::Unavailable`] or [`Error::IndexedDb`], never a panic.
pub fn global_factory() -> Result<IdbFactory, Error> {
    let value = Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .map_err(|e| Error::idb("access", e))?;
    if value.is_object() {
        Ok(value.unchecked_into())
    } else {
        Err(Error::Unavailable { api: "indexedDB" })
    }
}

/// A promise settled by handlers `install` puts on an event target, as a future.
fn settle(install: impl FnOnce(&Function, &Function)) -> JsFuture {
    let mut install = Some(install);
    let promise = Promise::new(&mut |resolve, reject| {
        if let Some(install) = install.take() {
            install(&resolve, &reject);
        }
    });
    JsFuture::from(promise)
}

/// The error behind a failure event: `event.target.error` (a request's or a transaction's
/// `DOMException`), else the event's type (`blocked`, `abort`).
fn event_error(event: &JsValue) -> JsError {
    let target = Reflect::get(event, &JsValue::from_str("target")).unwrap_or(JsValue::NULL);
    // Reading `error` of a request still pending throws; that counts as "no error object".
    if let Ok(error) = Reflect::get(&target, &JsValue::from_str("error"))
        && error.is_object()
    {
        return JsError::from_js(&error);
    }
    let kind = string_property(event, "type");
    let name = if kind == "blocked" {
        "BlockedError"
    } else {
        "AbortError"
    };
    JsError::new(name, &kind)
}

/// Waits for one request: its `result` on success, its `error` on failure.
pub async fn request(req: &IdbRequest) -> Result<JsValue, JsError> {
    let outcome = settle(|ok, fail| {
        req.set_onsuccess(Some(ok));
        req.set_onerror(Some(fail));
    })
    .await;
    req.set_onsuccess(None);
    req.set_onerror(None);
    match outcome {
        Ok(_) => req.result().map_err(JsError::from),
        Err(event) => Err(event_error(&event)),
    }
}

/// Waits for a transaction to commit. Writes are awaited to here, not to their request's
/// success: quota errors and aborts surface only at commit.
pub async fn transaction_done(tx: &IdbTransaction) -> Result<(), JsError> {
    let outcome = settle(|ok, fail| {
        tx.set_oncomplete(Some(ok));
        tx.set_onerror(Some(fail));
        tx.set_onabort(Some(fail));
    })
    .await;
    tx.set_oncomplete(None);
    tx.set_onerror(None);
    tx.set_onabort(None);
    match outcome {
        Ok(_) => Ok(()),
        Err(event) => Err(match tx.error() {
            Some(e) => JsError::from_js(&e),
            None => event_error(&event),
        }),
    }
}

/// An open connection. Closed when dropped, and as soon as another page asks to upgrade the
/// database (so this one never blocks a newer version).
#[derive(Debug)]
pub struct Database {
    db: IdbDatabase,
}

impl Database {
    /// Opens `name` at `version`, creating any of `stores` that do not exist yet (out-of-line
    /// string keys). A blocked upgrade (another connection at an older version does not
    /// close) is an error rather than a wait without end.
    pub async fn open(
        factory: &IdbFactory,
        name: &str,
        version: u32,
        stores: &'static [&'static str],
    ) -> Result<Self, Error> {
        let req = factory
            .open_with_u32(name, version)
            .map_err(|e| Error::idb("open", e))?;
        let upgrade = {
            let req = req.clone();
            Closure::<dyn FnMut() -> Result<(), JsValue>>::new(move || {
                let db: IdbDatabase = req.result()?.unchecked_into();
                let existing = db.object_store_names();
                for store in stores {
                    if !existing.contains(store) {
                        db.create_object_store(store)?;
                    }
                }
                Ok(())
            })
        };
        req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let outcome = settle(|ok, fail| {
            req.set_onsuccess(Some(ok));
            req.set_onerror(Some(fail));
            req.set_onblocked(Some(fail));
        })
        .await;
        req.set_onblocked(None);
        req.set_onerror(None);
        if let Err(event) = outcome {
            let error = event_error(&event);
            if error.name == "BlockedError" {
                abandon_blocked_open(&req, upgrade);
            } else {
                req.set_onupgradeneeded(None);
                req.set_onsuccess(None);
            }
            return Err(Error::IndexedDb { op: "open", error });
        }
        req.set_onupgradeneeded(None);
        req.set_onsuccess(None);
        drop(upgrade);
        let db: IdbDatabase = req
            .result()
            .map_err(|e| Error::idb("open", e))?
            .unchecked_into();
        // Close on `versionchange`: the handler is the connection's own `close`, bound to it.
        if let Ok(close) = Reflect::get(&db, &JsValue::from_str("close"))
            && let Some(close) = close.dyn_ref::<Function>()
        {
            db.set_onversionchange(Some(&close.bind0(&db)));
        }
        let database = Self { db };
        let names = database.db.object_store_names();
        if let Some(missing) = stores.iter().find(|s| !names.contains(s)) {
            return Err(Error::IndexedDb {
                op: "open",
                error: JsError::new("NotFoundError", missing),
            });
        }
        Ok(database)
    }

    /// The underlying connection.
    pub fn raw(&self) -> &IdbDatabase {
        &self.db
    }

    fn object_store(
        &self,
        store: &str,
        mode: IdbTransactionMode,
        op: &'static str,
    ) -> Result<(IdbTransaction, IdbObjectStore), Error> {
        let tx = self
            .db
            .transaction_with_str_and_mode(store, mode)
            .map_err(|e| Error::idb(op, e))?;
        let os = tx.object_store(store).map_err(|e| Error::idb(op, e))?;
        Ok((tx, os))
    }

    /// The value under `key`, if any.
    pub async fn get(&self, store: &str, key: &str) -> Result<Option<JsValue>, Error> {
        let (_tx, os) = self.object_store(store, IdbTransactionMode::Readonly, "get")?;
        let req = os
            .get(&JsValue::from_str(key))
            .map_err(|e| Error::idb("get", e))?;
        let value = request(&req)
            .await
            .map_err(|error| Error::IndexedDb { op: "get", error })?;
        Ok((!value.is_undefined()).then_some(value))
    }

    /// Stores `value` under `key`, replacing any value there; returns once committed.
    pub async fn put(&self, store: &str, key: &str, value: &JsValue) -> Result<(), Error> {
        let (tx, os) = self.object_store(store, IdbTransactionMode::Readwrite, "put")?;
        os.put_with_key(value, &JsValue::from_str(key))
            .map_err(|e| Error::idb("put", e))?;
        transaction_done(&tx)
            .await
            .map_err(|error| Error::IndexedDb { op: "put", error })
    }

    /// Stores `value` under `key` unless a value is there already: `Ok(false)` then, and
    /// nothing written. Lets two pages race to create the same record and agree on one.
    pub async fn add(&self, store: &str, key: &str, value: &JsValue) -> Result<bool, Error> {
        let (tx, os) = self.object_store(store, IdbTransactionMode::Readwrite, "add")?;
        os.add_with_key(value, &JsValue::from_str(key))
            .map_err(|e| Error::idb("add", e))?;
        match transaction_done(&tx).await {
            Ok(()) => Ok(true),
            Err(e) if e.name == "ConstraintError" => Ok(false),
            Err(error) => Err(Error::IndexedDb { op: "add", error }),
        }
    }

    /// Reads and deletes the value under `key` in one transaction: of two pages taking the same
    /// record at once, one gets it and the other nothing. Returns once committed.
    pub async fn take(&self, store: &str, key: &str) -> Result<Option<JsValue>, Error> {
        let (tx, os) = self.object_store(store, IdbTransactionMode::Readwrite, "take")?;
        let k = JsValue::from_str(key);
        let get = os.get(&k).map_err(|e| Error::idb("take", e))?;
        os.delete(&k).map_err(|e| Error::idb("take", e))?;
        let value = request(&get)
            .await
            .map_err(|error| Error::IndexedDb { op: "take", error })?;
        transaction_done(&tx)
            .await
            .map_err(|error| Error::IndexedDb { op: "take", error })?;
        Ok((!value.is_undefined()).then_some(value))
    }

    /// The keys of `store` that are strings (every key this crate writes is one).
    pub async fn keys(&self, store: &str) -> Result<Vec<String>, Error> {
        let (_tx, os) = self.object_store(store, IdbTransactionMode::Readonly, "getAllKeys")?;
        let req = os.get_all_keys().map_err(|e| Error::idb("getAllKeys", e))?;
        let value = request(&req).await.map_err(|error| Error::IndexedDb {
            op: "getAllKeys",
            error,
        })?;
        Ok(js_sys::Array::from(&value)
            .iter()
            .filter_map(|k| k.as_string())
            .collect())
    }

    /// Deletes the value under `key` (nothing there is not an error); returns once committed.
    pub async fn delete(&self, store: &str, key: &str) -> Result<(), Error> {
        let (tx, os) = self.object_store(store, IdbTransactionMode::Readwrite, "delete")?;
        os.delete(&JsValue::from_str(key))
            .map_err(|e| Error::idb("delete", e))?;
        transaction_done(&tx)
            .await
            .map_err(|error| Error::IndexedDb {
                op: "delete",
                error,
            })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.close();
    }
}

/// After a blocked open, the request stays pending and may still succeed once the other
/// connection closes. Its upgrade handler must then still create the stores, and the
/// connection nobody awaits any more must be closed: both closures are handed to JS for good
/// (one small leak per blocked open, which is rare).
fn abandon_blocked_open(
    req: &IdbOpenDbRequest,
    upgrade: Closure<dyn FnMut() -> Result<(), JsValue>>,
) {
    upgrade.forget();
    let late = req.clone();
    let close_late = Closure::once_into_js(move || {
        if let Ok(db) = late.result() {
            db.unchecked_into::<IdbDatabase>().close();
        }
    });
    req.set_onsuccess(Some(close_late.unchecked_ref()));
}
