//! The DPoP key in headless Chromium: generated non-extractable, kept in IndexedDB, one key for
//! two pages opening at once, proofs that WebCrypto verifies with the public JWK, replaced on
//! logout and picked up by the other pages.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test scaffolding

mod common;

use common::{OTHER_SERVER, SERVER, db_name, session};
use edge_oauth_browser::dpop::{DPOP_KEY_ID, DpopKey};
use edge_oauth_browser::idb::{Database, global_factory};
use edge_oauth_browser::store::{KEYS_STORE, RECORDS_STORE};
use edge_oauth_browser::{BrowserStore, StoreOptions};
use edge_oauth_core::AccessToken;
use edge_oauth_core::CredentialStore;
use edge_oauth_core::dpop::{ProofRequest, proof};
use edge_oauth_core::env::OsRandom;
use edge_oauth_core::http::Method;
use edge_oauth_core::jws::{JwsSigner, PublicJwk, decode_segment};
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{JsFuture, future_to_promise};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::CryptoKey;

wasm_bindgen_test_configure!(run_in_browser);

const STORES: &[&str] = &[KEYS_STORE, RECORDS_STORE];

async fn db(name: &str) -> Database {
    Database::open(&global_factory().unwrap(), name, 1, STORES)
        .await
        .unwrap()
}

fn subtle() -> web_sys::SubtleCrypto {
    edge_oauth_browser::crypto::subtle().unwrap()
}

fn b64url(s: &str) -> Vec<u8> {
    // A tiny base64url decoder, so the test does not trust the crate's own encoding.
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {c}"),
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

async fn await_js(p: Result<Promise, JsValue>) -> Result<JsValue, JsValue> {
    JsFuture::from(p?).await
}

fn ecdsa(extra: (&str, &str)) -> Object {
    let o = Object::new();
    Reflect::set(&o, &"name".into(), &"ECDSA".into()).unwrap();
    Reflect::set(&o, &extra.0.into(), &extra.1.into()).unwrap();
    o
}

/// Verifies a compact JWS with WebCrypto, importing the public JWK.
async fn webcrypto_verifies(jwk: &PublicJwk, jws: &str) -> bool {
    let PublicJwk::Ec { crv, x, y } = jwk else {
        panic!("not an EC key")
    };
    let j = Object::new();
    for (k, v) in [("kty", "EC"), ("crv", crv), ("x", x), ("y", y)] {
        Reflect::set(&j, &k.into(), &v.into()).unwrap();
    }
    let usages = Array::of1(&"verify".into());
    let key: CryptoKey = await_js(subtle().import_key_with_object(
        "jwk",
        &j,
        &ecdsa(("namedCurve", "P-256")),
        false,
        &usages,
    ))
    .await
    .unwrap()
    .unchecked_into();
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let sig = b64url(sig);
    assert_eq!(sig.len(), 64, "ES256: r || s, 64 bytes");
    await_js(subtle().verify_with_object_and_u8_array_and_u8_array(
        &ecdsa(("hash", "SHA-256")),
        &key,
        &sig,
        input.as_bytes(),
    ))
    .await
    .unwrap()
    .as_bool()
    .unwrap()
}

async fn stored_private_key(db: &Database) -> CryptoKey {
    let rec = db.get(KEYS_STORE, DPOP_KEY_ID).await.unwrap().unwrap();
    Reflect::get(&rec, &"privateKey".into())
        .unwrap()
        .dyn_into()
        .unwrap()
}

#[wasm_bindgen_test]
async fn the_key_is_non_extractable_kept_and_its_proofs_verify() {
    let name = "dpop-key-kept";
    let d = db(name).await;
    let key = DpopKey::load_or_create(Some(&d), name).await.unwrap();
    let private = stored_private_key(&d).await;
    assert!(!private.extractable());
    assert_eq!(private.type_(), "private");
    for format in ["jwk", "pkcs8"] {
        let err = await_js(subtle().export_key(format, &private))
            .await
            .unwrap_err();
        let name = Reflect::get(&err, &"name".into()).unwrap().as_string();
        assert_eq!(name.as_deref(), Some("InvalidAccessError"), "{format}");
    }
    // The same key after a "reload".
    let again = DpopKey::load_or_create(Some(&d), name).await.unwrap();
    assert_eq!(again.thumbprint(), key.thumbprint());
    // A proof the core makes with it verifies with the public JWK in its header.
    let token = AccessToken::new("at-1");
    let request = ProofRequest {
        method: Method::Post,
        url: "https://mcp.example.com/mcp?x=1",
        access_token: Some(&token),
        nonce: Some("n1"),
    };
    let p = proof(&again, &request, &edge_oauth_browser::DateClock, &OsRandom)
        .await
        .unwrap();
    let header = decode_segment(p.secret().split('.').next().unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(
        serde_json::Value::Object(header["jwk"].as_object().unwrap().clone()),
        key.public_jwk().to_json()
    );
    assert!(webcrypto_verifies(&key.public_jwk(), p.secret()).await);
    // Signed by another key, it does not.
    let other = DpopKey::load_or_create(None, "memory").await.unwrap();
    assert_ne!(other.thumbprint(), key.thumbprint());
    let q = proof(&other, &request, &edge_oauth_browser::DateClock, &OsRandom)
        .await
        .unwrap();
    assert!(!webcrypto_verifies(&key.public_jwk(), q.secret()).await);
}

#[wasm_bindgen_test]
async fn two_pages_opening_at_once_share_one_key() {
    let name = "dpop-key-race";
    let open = || {
        future_to_promise(async move {
            let d = db(name).await;
            let k = DpopKey::load_or_create(Some(&d), name).await.unwrap();
            Ok(JsValue::from_str(&k.thumbprint()))
        })
    };
    let all = Promise::all(&Array::of3(&open(), &open(), &open()));
    let jkts: Array = JsFuture::from(all).await.unwrap().unchecked_into();
    let first = jkts.get(0).as_string().unwrap();
    assert!(
        jkts.iter()
            .all(|j| j.as_string().as_deref() == Some(&first))
    );
    let d = db(name).await;
    let stored = DpopKey::load_or_create(Some(&d), name).await.unwrap();
    assert_eq!(stored.thumbprint(), first);
}

#[wasm_bindgen_test]
async fn the_key_is_replaced_only_when_the_last_session_ends() {
    let name = db_name("dpop-retire");
    let store = BrowserStore::open(StoreOptions::new().db_name(&name)).await;
    let d2 = db(&name).await;
    let here = DpopKey::load_or_create(store.database(), &name)
        .await
        .unwrap();
    let there = DpopKey::load_or_create(Some(&d2), &name).await.unwrap();
    let old = here.thumbprint();
    assert_eq!(there.thumbprint(), old);
    // Two servers' sessions in the database; the logout of one keeps the key the other's
    // tokens are bound to.
    store.save_session(&session(SERVER)).await.unwrap();
    store.save_session(&session(OTHER_SERVER)).await.unwrap();
    store.delete_session(SERVER).await.unwrap();
    assert!(!here.retire(&store).await.unwrap());
    assert_eq!(here.thumbprint(), old);
    assert!(!there.reload(Some(&d2), &name).await.unwrap());
    assert_eq!(there.thumbprint(), old);
    // The last session ends: a new key, stored, which other pages take.
    store.delete_session(OTHER_SERVER).await.unwrap();
    assert!(here.retire(&store).await.unwrap());
    assert_ne!(here.thumbprint(), old);
    assert!(
        !there.reload(None, &name).await.unwrap(),
        "no database, nothing to reload"
    );
    assert!(there.reload(Some(&d2), &name).await.unwrap());
    assert_eq!(there.thumbprint(), here.thumbprint());
    assert!(!there.reload(Some(&d2), &name).await.unwrap(), "unchanged");
    assert!(!stored_private_key(&d2).await.extractable());
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        let set_timeout: js_sys::Function = Reflect::get(&js_sys::global(), &"setTimeout".into())
            .unwrap()
            .unchecked_into();
        set_timeout
            .call2(&JsValue::UNDEFINED, &resolve, &ms.into())
            .unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_reload_during_a_logout_waits_for_the_new_key() {
    // A logout holds the key lock from before its session's deletion is broadcast until the
    // new key is stored: a page reloading on that news reads the new key, not the old one.
    let name = db_name("dpop-lock");
    let store = BrowserStore::open(StoreOptions::new().db_name(&name)).await;
    let here = DpopKey::load_or_create(store.database(), &name)
        .await
        .unwrap();
    let there = DpopKey::load_or_create(Some(&db(&name).await), &name)
        .await
        .unwrap();
    let old = here.thumbprint();
    let lock = edge_oauth_browser::dpop::lock(&name).await.unwrap();
    let reloading = {
        let name = name.clone();
        future_to_promise(async move {
            let d = db(&name).await;
            there.reload(Some(&d), &name).await.unwrap();
            Ok(JsValue::from_str(&there.thumbprint()))
        })
    };
    // The other page heard of the logout and started its reload; the key is replaced only now.
    sleep(100).await;
    assert!(here.retire(&store).await.unwrap());
    let new = here.thumbprint();
    assert_ne!(new, old);
    drop(lock);
    let seen = JsFuture::from(reloading)
        .await
        .unwrap()
        .as_string()
        .unwrap();
    assert_eq!(
        seen, new,
        "the reload read the key the logout was replacing"
    );
}

#[wasm_bindgen_test]
async fn a_stored_value_that_is_not_a_key_is_replaced() {
    let name = "dpop-key-garbage";
    let d = db(name).await;
    let garbage = Object::new();
    Reflect::set(
        &garbage,
        &"privateKey".into(),
        &Uint8Array::new_with_length(32),
    )
    .unwrap();
    Reflect::set(&garbage, &"crv".into(), &"P-256".into()).unwrap();
    d.put(KEYS_STORE, DPOP_KEY_ID, &garbage).await.unwrap();
    let key = DpopKey::load_or_create(Some(&d), name).await.unwrap();
    assert!(!stored_private_key(&d).await.extractable());
    let again = DpopKey::load_or_create(Some(&d), name).await.unwrap();
    assert_eq!(again.thumbprint(), key.thumbprint());
}
