//! Record encryption: AES-GCM with a 256-bit key that WebCrypto generates non-extractable
//! (script can use it but never read its bytes), a fresh 12-byte IV for every write, and
//! additional authenticated data binding each record to its kind and key, so a record copied
//! to another key or kind fails to decrypt.

use edge_oauth_core::env::{OsRandom, RandomSource};
use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, AesKeyGenParams, CryptoKey, SubtleCrypto};

use crate::error::{Error, JsError, string_property};

/// Bytes of AES-GCM IV (NIST SP 800-38D §8.2: 96-bit IVs, random, never reused with a key).
pub const IV_LEN: usize = 12;

/// The prefix of every AAD; bump the version to retire every record at once.
pub const AAD_PREFIX: &str = "edge-oauth/v1";

const ALGORITHM: &str = "AES-GCM";

/// The AAD of a record: `edge-oauth/v1|<kind>|<key>`, e.g.
/// `edge-oauth/v1|session|https://mcp.example.com/mcp`. Kinds contain no `|`, so the first
/// two separators are unambiguous whatever the key holds.
pub fn aad(kind: &str, key: &str) -> Vec<u8> {
    [AAD_PREFIX, kind, key].join("|").into_bytes()
}

/// `globalThis.crypto.subtle`, absent outside secure contexts.
pub fn subtle() -> Result<SubtleCrypto, Error> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|e| Error::crypto("access", e))?;
    if !crypto.is_object() {
        return Err(Error::Unavailable { api: "crypto" });
    }
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle"))
        .map_err(|e| Error::crypto("access", e))?;
    if subtle.is_object() {
        Ok(subtle.unchecked_into())
    } else {
        Err(Error::Unavailable {
            api: "crypto.subtle",
        })
    }
}

/// An encrypted record as stored: `{iv, ct}`, two `Uint8Array`s (the GCM tag ends `ct`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The IV used for this record only.
    pub iv: Vec<u8>,
    /// Ciphertext and tag.
    pub ct: Vec<u8>,
}

impl Sealed {
    /// The record as a plain object for IndexedDB.
    pub fn to_js(&self) -> JsValue {
        let record = Object::new();
        // Setting a fresh object's own data properties cannot fail.
        let _ = Reflect::set(
            &record,
            &JsValue::from_str("iv"),
            &Uint8Array::from(self.iv.as_slice()),
        );
        let _ = Reflect::set(
            &record,
            &JsValue::from_str("ct"),
            &Uint8Array::from(self.ct.as_slice()),
        );
        record.into()
    }

    /// Reads `{iv, ct}` back; `None` when the value does not have that shape.
    pub fn from_js(value: &JsValue) -> Option<Self> {
        let bytes = |name: &str| {
            Reflect::get(value, &JsValue::from_str(name))
                .ok()?
                .dyn_into::<Uint8Array>()
                .ok()
                .map(|a| a.to_vec())
        };
        if !value.is_object() {
            return None;
        }
        let iv = bytes("iv")?;
        let ct = bytes("ct")?;
        (iv.len() == IV_LEN).then_some(Self { iv, ct })
    }
}

/// The key records are sealed with: a non-extractable AES-GCM 256 `CryptoKey`.
#[derive(Clone, Debug)]
pub struct RecordKey {
    key: CryptoKey,
}

impl RecordKey {
    /// Generates a new key, non-extractable, usable only to encrypt and decrypt.
    pub async fn generate() -> Result<Self, Error> {
        let subtle = subtle()?;
        let usages = Array::of2(&"encrypt".into(), &"decrypt".into());
        let promise = subtle
            .generate_key_with_object(&AesKeyGenParams::new(ALGORITHM, 256), false, &usages)
            .map_err(|e| Error::crypto("generateKey", e))?;
        let key = JsFuture::from(promise)
            .await
            .map_err(|e| Error::crypto("generateKey", e))?;
        Self::from_stored(key).ok_or_else(|| {
            Error::crypto(
                "generateKey",
                JsError::new("TypeError", "not a non-extractable AES-GCM key"),
            )
        })
    }

    /// Accepts a value read back from storage only if it is a non-extractable AES-GCM
    /// `CryptoKey`; anything else is treated as no key.
    pub fn from_stored(value: JsValue) -> Option<Self> {
        let key = value.dyn_into::<CryptoKey>().ok()?;
        let algorithm = key.algorithm().ok()?;
        let ok = !key.extractable() && string_property(&algorithm, "name") == ALGORITHM;
        ok.then_some(Self { key })
    }

    /// The `CryptoKey`, for storing it by structured clone.
    pub fn as_js(&self) -> &CryptoKey {
        &self.key
    }

    fn params(iv: &[u8], aad: &[u8]) -> AesGcmParams {
        let params = AesGcmParams::new_with_u8_array(ALGORITHM, &Uint8Array::from(iv));
        params.set_additional_data_u8_array(&Uint8Array::from(aad));
        params
    }

    /// Encrypts `plaintext` under a fresh random IV, authenticating `aad` with it.
    pub async fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed, Error> {
        let mut iv = vec![0u8; IV_LEN];
        OsRandom
            .fill_bytes(&mut iv)
            .map_err(|_| Error::Unavailable {
                api: "crypto.getRandomValues",
            })?;
        let promise = subtle()?
            .encrypt_with_object_and_u8_array(&Self::params(&iv, aad), &self.key, plaintext)
            .map_err(|e| Error::crypto("encrypt", e))?;
        let ct = JsFuture::from(promise)
            .await
            .map_err(|e| Error::crypto("encrypt", e))?;
        Ok(Sealed {
            iv,
            ct: buffer_bytes(&ct),
        })
    }

    /// Decrypts and authenticates a record against `aad`. Any failure — wrong key, altered
    /// bytes, another record's AAD — is the browser's `OperationError`, returned as is.
    pub async fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, JsError> {
        let promise = subtle()
            .map_err(|e| JsError::new("NotSupportedError", e.code()))?
            .decrypt_with_object_and_u8_array(&Self::params(&sealed.iv, aad), &self.key, &sealed.ct)
            .map_err(JsError::from)?;
        let pt = JsFuture::from(promise).await.map_err(JsError::from)?;
        Ok(buffer_bytes(&pt))
    }
}

/// The bytes of an `ArrayBuffer` result (empty when the value is not one).
fn buffer_bytes(value: &JsValue) -> Vec<u8> {
    match value.dyn_ref::<ArrayBuffer>() {
        Some(buffer) => Uint8Array::new(buffer).to_vec(),
        None => Vec::new(),
    }
}
