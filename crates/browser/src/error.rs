//! JS exceptions reduced to plain data, and the crate's one error type.

use core::fmt;

use edge_oauth_core::Recovery;
use js_sys::Reflect;
use wasm_bindgen::JsValue;

/// A JavaScript exception (an `Error`, a `DOMException`, or anything thrown), reduced to its
/// `name` and `message`, so it can be compared and logged without holding a JS reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsError {
    /// `error.name`, e.g. `TypeError`, `QuotaExceededError`; empty when the value had none.
    pub name: String,
    /// `error.message`; empty when the value had none.
    pub message: String,
}

impl JsError {
    /// An error made on the Rust side, shaped like a JS one.
    pub fn new(name: &str, message: &str) -> Self {
        Self {
            name: name.to_owned(),
            message: message.to_owned(),
        }
    }

    /// Reads `name` and `message` from a thrown value; a thrown string becomes the message.
    pub fn from_js(value: &JsValue) -> Self {
        if let Some(message) = value.as_string() {
            return Self {
                name: String::new(),
                message,
            };
        }
        Self {
            name: string_property(value, "name"),
            message: string_property(value, "message"),
        }
    }
}

/// `value[key]` when it is a string; empty otherwise (getters that throw included).
pub(crate) fn string_property(value: &JsValue, key: &str) -> String {
    if !value.is_object() {
        return String::new();
    }
    Reflect::get(value, &JsValue::from_str(key))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

impl From<JsValue> for JsError {
    fn from(value: JsValue) -> Self {
        Self::from_js(&value)
    }
}

impl fmt::Display for JsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{}: {}", self.name, self.message),
            (false, true) => f.write_str(&self.name),
            (true, false) => f.write_str(&self.message),
            (true, true) => f.write_str("unknown JavaScript error"),
        }
    }
}

impl std::error::Error for JsError {}

/// Every failure of this crate. Each variant has a stable [`Error::code`] and a
/// [`Recovery`] class, like the core's error. No variant carries a token or a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A Web API is missing from `globalThis` (no IndexedDB in Node, no `crypto.subtle`
    /// outside a secure context, ...).
    Unavailable {
        /// The missing API, e.g. `indexedDB`.
        api: &'static str,
    },
    /// IndexedDB refused an operation: open denied or blocked, quota exceeded, transaction
    /// aborted.
    IndexedDb {
        /// The operation, e.g. `open`, `put`.
        op: &'static str,
        /// What the browser said.
        error: JsError,
    },
    /// WebCrypto refused an operation (key generation, encryption).
    Crypto {
        /// The operation, e.g. `generateKey`, `encrypt`.
        op: &'static str,
        /// What the browser said.
        error: JsError,
    },
    /// A stored record could not be decrypted or parsed: the key was lost, or the record was
    /// altered or moved to another key. The record has been deleted; the credentials it held
    /// are gone, so the user must authorize again.
    UnreadableRecord {
        /// The record kind: `client`, `session` or `pending`.
        kind: &'static str,
        /// Its key: the issuer, the server URL, or the hash of the state.
        key: String,
    },
    /// A Web Lock could not be taken (the document is no longer active, or the request was
    /// aborted).
    Lock {
        /// What the browser said.
        error: JsError,
    },
    /// A value could not be serialised for storage.
    Serialize {
        /// The record kind.
        kind: &'static str,
    },
}

impl Error {
    /// A stable machine-readable code (the JS API's `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unavailable { .. } => "api_unavailable",
            Error::IndexedDb { .. } => "indexeddb_error",
            Error::Crypto { .. } => "crypto_error",
            Error::UnreadableRecord { .. } => "unreadable_record",
            Error::Serialize { .. } => "serialize_failed",
            Error::Lock { .. } => "lock_failed",
        }
    }

    /// How to recover, in the core's terms.
    pub fn recovery(&self) -> Recovery {
        match self {
            Error::IndexedDb { .. } | Error::Crypto { .. } | Error::Lock { .. } => {
                Recovery::Transient
            }
            Error::UnreadableRecord { .. } => Recovery::Reauthenticate,
            Error::Unavailable { .. } | Error::Serialize { .. } => Recovery::Misconfiguration,
        }
    }

    pub(crate) fn idb(op: &'static str, error: impl Into<JsError>) -> Self {
        Error::IndexedDb {
            op,
            error: error.into(),
        }
    }

    pub(crate) fn crypto(op: &'static str, error: impl Into<JsError>) -> Self {
        Error::Crypto {
            op,
            error: error.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable { api } => write!(f, "{api} is not available here"),
            Error::IndexedDb { op, error } => write!(f, "IndexedDB {op} failed: {error}"),
            Error::Crypto { op, error } => write!(f, "WebCrypto {op} failed: {error}"),
            Error::UnreadableRecord { kind, key } => write!(
                f,
                "the stored {kind} record for {key} could not be decrypted (key lost or record \
                 altered) and was deleted; authorize again"
            ),
            Error::Serialize { kind } => write!(f, "the {kind} record could not be serialised"),
            Error::Lock { error } => write!(f, "Web Lock failed: {error}"),
        }
    }
}

impl std::error::Error for Error {}

/// The core's [`CredentialStore`](edge_oauth_core::CredentialStore) speaks the core's error:
/// an unreadable record is the core's `StoreRecordUnreadable` (re-authentication required),
/// every other store failure `Error::Store` with this crate's code leading the message.
impl From<Error> for edge_oauth_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::UnreadableRecord { kind, .. } => {
                edge_oauth_core::Error::StoreRecordUnreadable { kind }
            }
            e => edge_oauth_core::Error::Store {
                message: format!("{}: {e}", e.code()),
            },
        }
    }
}

/// The record kind when a core error is an unreadable record this store deleted.
pub fn unreadable_kind(e: &edge_oauth_core::Error) -> Option<&'static str> {
    match e {
        edge_oauth_core::Error::StoreRecordUnreadable { kind } => Some(kind),
        _ => None,
    }
}
