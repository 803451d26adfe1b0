//! The page's DPoP key (RFC 9449): an ECDSA P-256 key pair that WebCrypto generates with a
//! NON-extractable private key, kept in IndexedDB beside the record key (structured clone of
//! the `CryptoKey`, so script may sign with it after a reload but never read it), shared by
//! every tab of the origin, and replaced on logout.
//!
//! [`DpopKey`] is the core's [`JwsSigner`] over `crypto.subtle.sign`: WebCrypto's ECDSA
//! signature is the 64-byte `r || s` (IEEE P1363) form that JWS ES256 wants (RFC 7518 §3.4),
//! not DER, so it goes into the proof as it is (the core checks the length).
//!
//! Stored record (object store `keys`, key `dpop-key`): `{ privateKey: CryptoKey, crv, x, y }`
//! — the private key and the public JWK's coordinates (public data; a public `CryptoKey` is
//! always extractable, so it is not kept). The key is created under a Web Lock, and only where
//! no key is stored (`add`), so two tabs never make two keys.
//!
//! One key per database, for every MCP server whose session is kept there: a logout replaces
//! it only when it ends the database's last session ([`DpopKey::retire`]), since the other
//! servers' tokens are bound to it. The logout holds the key lock from before its session is
//! deleted until the new key is stored, and a tab takes the stored key under the same lock
//! (when told of a change, and before each login), so no tab reads the old key after the
//! broadcast and binds a new login to it. A login under way in another tab while the last
//! session ends may still bind to the old key; its tokens then fail with `dpop_key_mismatch`
//! after a reload and it signs in again.

use std::cell::RefCell;
use std::rc::Rc;

use edge_oauth_core::jws::{JwsAlgorithm, JwsSigner, PublicJwk, SignatureFuture};
use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::CryptoKey;

use crate::crypto::subtle;
use crate::error::{Error, JsError, string_property};
use crate::idb::Database;
use crate::store::{BrowserStore, KEYS_STORE};
use edge_oauth_core::store::StoreLock;

/// The DPoP key's key in [`KEYS_STORE`].
pub const DPOP_KEY_ID: &str = "dpop-key";

const CURVE: &str = "P-256";

#[derive(Clone)]
struct KeyPair {
    private: CryptoKey,
    jwk: PublicJwk,
}

/// The DPoP key of a page: a handle that every clone shares, so the key can be replaced (on
/// logout, or when another tab replaced it) under a signer the core already holds.
#[derive(Clone)]
pub struct DpopKey {
    current: Rc<RefCell<KeyPair>>,
}

impl core::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "DpopKey(ES256, jkt={})", self.thumbprint())
    }
}

fn algorithm(with_curve: bool) -> Object {
    let o = Object::new();
    let _ = Reflect::set(&o, &"name".into(), &"ECDSA".into());
    if with_curve {
        let _ = Reflect::set(&o, &"namedCurve".into(), &CURVE.into());
    } else {
        let _ = Reflect::set(&o, &"hash".into(), &"SHA-256".into());
    }
    o
}

async fn promise(op: &'static str, p: Result<js_sys::Promise, JsValue>) -> Result<JsValue, Error> {
    let p = p.map_err(|e| Error::crypto(op, e))?;
    JsFuture::from(p).await.map_err(|e| Error::crypto(op, e))
}

impl KeyPair {
    /// A fresh pair: private key non-extractable, usable to sign only.
    async fn generate() -> Result<Self, Error> {
        let subtle = subtle()?;
        let usages = Array::of2(&"sign".into(), &"verify".into());
        let pair = promise(
            "generateKey",
            subtle.generate_key_with_object(&algorithm(true), false, &usages),
        )
        .await?;
        let get = |k: &str| Reflect::get(&pair, &k.into()).unwrap_or(JsValue::UNDEFINED);
        let public: CryptoKey = get("publicKey")
            .dyn_into()
            .map_err(|_| bad_key("generateKey", "no ECDSA public key"))?;
        let jwk = promise("exportKey", subtle.export_key("jwk", &public)).await?;
        let jwk = ec_jwk(&jwk).ok_or_else(|| bad_key("exportKey", "not a P-256 public JWK"))?;
        let private = get("privateKey");
        Self::from_parts(private, jwk).ok_or_else(|| bad_key("generateKey", "not a usable key"))
    }

    /// Accepts a private key only if it is a non-extractable ECDSA P-256 private `CryptoKey`
    /// that may sign.
    fn from_parts(private: JsValue, jwk: PublicJwk) -> Option<Self> {
        let private = private.dyn_into::<CryptoKey>().ok()?;
        let alg = private.algorithm().ok()?;
        let signs = private
            .usages()
            .iter()
            .any(|u| u.as_string().as_deref() == Some("sign"));
        let ok = !private.extractable()
            && private.type_() == "private"
            && string_property(&alg, "name") == "ECDSA"
            && string_property(&alg, "namedCurve") == CURVE
            && signs;
        ok.then_some(Self { private, jwk })
    }

    /// The stored record: `{privateKey, crv, x, y}`.
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        let _ = Reflect::set(&o, &"privateKey".into(), &self.private);
        if let PublicJwk::Ec { crv, x, y } = &self.jwk {
            for (k, v) in [("crv", crv), ("x", x), ("y", y)] {
                let _ = Reflect::set(&o, &k.into(), &v.into());
            }
        }
        o.into()
    }

    /// A stored record read back; `None` when it is not one.
    fn from_js(value: &JsValue) -> Option<Self> {
        let jwk = ec_jwk(value)?;
        Self::from_parts(Reflect::get(value, &"privateKey".into()).ok()?, jwk)
    }
}

/// `{crv: "P-256", x, y}` of a JWK (or of the stored record) as a [`PublicJwk`].
fn ec_jwk(v: &JsValue) -> Option<PublicJwk> {
    let (crv, x, y) = (
        string_property(v, "crv"),
        string_property(v, "x"),
        string_property(v, "y"),
    );
    // 32-byte coordinates: 43 base64url characters.
    (crv == CURVE && x.len() == 43 && y.len() == 43).then_some(PublicJwk::Ec { crv, x, y })
}

fn bad_key(op: &'static str, message: &str) -> Error {
    Error::crypto(op, JsError::new("DataError", message))
}

/// The lock that serialises creating, replacing and reloading the key among the tabs.
fn lock_name(db_name: &str) -> String {
    format!("edge-oauth/{db_name}/dpop-key")
}

/// Holds the key lock of database `db_name` (every tab's) until dropped.
pub async fn lock(db_name: &str) -> Result<StoreLock, Error> {
    crate::locks::acquire(&lock_name(db_name)).await
}

impl DpopKey {
    /// The key stored in `db`, or a new one stored there when there is none (or what is
    /// there is not a usable key). Without a database (the store fell back to memory), a key
    /// for this page only.
    pub async fn load_or_create(db: Option<&Database>, db_name: &str) -> Result<Self, Error> {
        let pair = match db {
            Some(db) => stored_or_new(db, db_name).await?,
            None => KeyPair::generate().await?,
        };
        Ok(Self {
            current: Rc::new(RefCell::new(pair)),
        })
    }

    /// Takes the key stored now, if another tab replaced it. Returns whether it changed.
    /// Waits for the key lock: a logout that is replacing the key has stored the new one
    /// before this reads.
    pub async fn reload(&self, db: Option<&Database>, db_name: &str) -> Result<bool, Error> {
        let Some(db) = db else { return Ok(false) };
        let _lock = lock(db_name).await?;
        self.take_stored(db).await
    }

    async fn take_stored(&self, db: &Database) -> Result<bool, Error> {
        let stored = db.get(KEYS_STORE, DPOP_KEY_ID).await?;
        match stored.as_ref().and_then(KeyPair::from_js) {
            Some(pair) if pair.jwk != self.current.borrow().jwk => {
                *self.current.borrow_mut() = pair;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// After a logout deleted its session, under [`lock`] (held since before the delete): a
    /// new key in place of the old one when no session is left in `store`'s database (the
    /// next login binds its tokens to a key no earlier token knows); otherwise the key stays,
    /// bound to the other servers' sessions. Returns whether it was replaced.
    pub async fn retire(&self, store: &BrowserStore) -> Result<bool, Error> {
        if store.has_sessions().await? {
            if let Some(db) = store.database() {
                self.take_stored(db).await?;
            }
            return Ok(false);
        }
        let pair = KeyPair::generate().await?;
        if let Some(db) = store.database() {
            db.put(KEYS_STORE, DPOP_KEY_ID, &pair.to_js()).await?;
        }
        *self.current.borrow_mut() = pair;
        Ok(true)
    }

    /// The RFC 7638 thumbprint of the public key (the `jkt` bound tokens carry).
    pub fn thumbprint(&self) -> String {
        self.current.borrow().jwk.thumbprint()
    }
}

/// Under the key lock: the stored key, else a new one, stored. The usual case, a key already
/// there, is read without waiting for the lock.
async fn stored_or_new(db: &Database, db_name: &str) -> Result<KeyPair, Error> {
    if let Some(pair) = db
        .get(KEYS_STORE, DPOP_KEY_ID)
        .await?
        .as_ref()
        .and_then(KeyPair::from_js)
    {
        return Ok(pair);
    }
    let _lock = lock(db_name).await?;
    let stored = db.get(KEYS_STORE, DPOP_KEY_ID).await?;
    if let Some(pair) = stored.as_ref().and_then(KeyPair::from_js) {
        return Ok(pair);
    }
    let pair = KeyPair::generate().await?;
    if stored.is_some() {
        db.put(KEYS_STORE, DPOP_KEY_ID, &pair.to_js()).await?;
        return Ok(pair);
    }
    if db.add(KEYS_STORE, DPOP_KEY_ID, &pair.to_js()).await? {
        return Ok(pair);
    }
    // Stored meanwhile by a page without Web Locks: that one is the key.
    db.get(KEYS_STORE, DPOP_KEY_ID)
        .await?
        .as_ref()
        .and_then(KeyPair::from_js)
        .ok_or_else(|| bad_key("load key", "the stored DPoP key is not usable"))
}

impl JwsSigner for DpopKey {
    fn algorithm(&self) -> JwsAlgorithm {
        JwsAlgorithm::Es256
    }

    fn public_jwk(&self) -> PublicJwk {
        self.current.borrow().jwk.clone()
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a> {
        let private = self.current.borrow().private.clone();
        Box::pin(async move {
            let signing = |e: Error| edge_oauth_core::Error::Signing {
                message: e.to_string(),
            };
            let sig = promise(
                "sign",
                subtle().map_err(signing)?.sign_with_object_and_u8_array(
                    &algorithm(false),
                    &private,
                    signing_input,
                ),
            )
            .await
            .map_err(signing)?;
            // ECDSA in WebCrypto: r || s, 32 bytes each for P-256 (the JWS form); the core
            // refuses anything else.
            Ok(sig
                .dyn_ref::<ArrayBuffer>()
                .map(|b| Uint8Array::new(b).to_vec())
                .unwrap_or_default())
        })
    }
}
