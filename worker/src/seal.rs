//! AES-256-GCM sealing of the BFF's cookie values through the runtime's WebCrypto
//! (`crypto.subtle`): the keys are imported once per isolate as non-extractable `CryptoKey`s,
//! every seal draws a fresh 96-bit nonce, and the cookie's name is the additional
//! authenticated data (`cookie.rs` has the envelope).

use core::cell::RefCell;
use std::rc::Rc;

use edge_oauth_core::env::{OsRandom, RandomSource};
use worker::js_sys::{self, Array, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{AesGcmParams, CryptoKey, SubtleCrypto, WorkerGlobalScope};

use crate::bff::BffConfig;
use crate::cookie::{CookieKind, NONCE_BYTES, decode_sealed, encode_sealed};
use crate::error::ProxyError;

thread_local! {
    /// The imported keys (current first), for this isolate's configuration.
    static KEYS: RefCell<Option<Rc<Vec<CryptoKey>>>> = const { RefCell::new(None) };
}

fn crypto_error(_: JsValue) -> ProxyError {
    ProxyError::Internal {
        what: "WebCrypto (cookie sealing)",
    }
}

fn subtle() -> Result<SubtleCrypto, ProxyError> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(scope.crypto().map_err(crypto_error)?.subtle())
}

async fn keys(bff: &BffConfig) -> Result<Rc<Vec<CryptoKey>>, ProxyError> {
    if let Some(k) = KEYS.with(|k| k.borrow().clone()) {
        return Ok(k);
    }
    let subtle = subtle()?;
    let usages = Array::of2(&"encrypt".into(), &"decrypt".into());
    let mut imported = Vec::with_capacity(bff.cookie_keys.len());
    for key in &bff.cookie_keys {
        let raw = Uint8Array::from(key.bytes().as_slice());
        let promise = subtle
            .import_key_with_str("raw", &raw, "AES-GCM", false, &usages)
            .map_err(crypto_error)?;
        let key: CryptoKey = JsFuture::from(promise)
            .await
            .map_err(crypto_error)?
            .unchecked_into();
        imported.push(key);
    }
    let imported = Rc::new(imported);
    KEYS.with(|k| *k.borrow_mut() = Some(imported.clone()));
    Ok(imported)
}

fn params(nonce: &[u8; NONCE_BYTES], kind: CookieKind) -> AesGcmParams {
    let params = AesGcmParams::new_with_u8_array("AES-GCM", &Uint8Array::from(nonce.as_slice()));
    params.set_additional_data_u8_array(&Uint8Array::from(kind.aad()));
    params
}

/// Seals `plaintext` (a session handle) as the value of the cookie `kind`.
pub async fn seal(
    bff: &BffConfig,
    kind: CookieKind,
    plaintext: &str,
) -> Result<String, ProxyError> {
    let keys = keys(bff).await?;
    let key = keys.first().ok_or(ProxyError::Internal {
        what: "no cookie sealing key",
    })?;
    let mut nonce = [0u8; NONCE_BYTES];
    OsRandom
        .fill_bytes(&mut nonce)
        .map_err(|_| ProxyError::Internal {
            what: "the random source",
        })?;
    let promise = subtle()?
        .encrypt_with_object_and_u8_array(&params(&nonce, kind), key, plaintext.as_bytes())
        .map_err(crypto_error)?;
    let sealed = JsFuture::from(promise).await.map_err(crypto_error)?;
    Ok(encode_sealed(&nonce, &Uint8Array::new(&sealed).to_vec()))
}

/// The plaintext of a value of the cookie `kind`, when one of the configured keys sealed it
/// for that cookie; `None` for anything else (tampered, foreign, another cookie's value).
pub async fn unseal(bff: &BffConfig, kind: CookieKind, value: &str) -> Option<String> {
    let (nonce, ciphertext) = decode_sealed(value)?;
    let keys = keys(bff).await.ok()?;
    let subtle = subtle().ok()?;
    for key in keys.iter() {
        let Ok(promise) =
            subtle.decrypt_with_object_and_u8_array(&params(&nonce, kind), key, &ciphertext)
        else {
            continue;
        };
        if let Ok(plain) = JsFuture::from(promise).await {
            return String::from_utf8(Uint8Array::new(&plain).to_vec()).ok();
        }
    }
    None
}
