//! The same layers in whatever runtime wasm-bindgen-test-runner picks: Node 22 by default,
//! headless Chromium with `WASM_BINDGEN_USE_BROWSER=1`. Node has fetch and WebCrypto but no
//! IndexedDB, so there the store must say it fell back to memory, and still work.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test scaffolding

mod common;

use common::*;
use edge_oauth_browser::env::OsRandom;
use edge_oauth_browser::{BrowserStore, DateClock, Error, FetchClient, StorageMode, StoreOptions};
use edge_oauth_core::env::{Clock, RandomSource};
use edge_oauth_core::{CredentialStore, HttpClient, HttpRequest};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

fn has_indexed_db() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .map(|v| v.is_object())
        .unwrap_or(false)
}

#[wasm_bindgen_test]
async fn the_store_uses_indexeddb_where_there_is_one_and_memory_elsewhere() {
    let store = BrowserStore::open(StoreOptions::new().db_name(db_name("anywhere"))).await;
    let expected = if has_indexed_db() {
        StorageMode::IndexedDb
    } else {
        StorageMode::Memory {
            reason: Error::Unavailable { api: "indexedDB" },
        }
    };
    assert_eq!(store.storage_mode(), &expected);
    store.save_session(&session(SERVER)).await.unwrap();
    assert_eq!(
        store.load_session(SERVER).await.unwrap(),
        Some(session(SERVER))
    );
}

#[wasm_bindgen_test]
async fn fetch_works_here() {
    let response = FetchClient
        .send(HttpRequest::get_json("data:text/plain,hello"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
}

#[wasm_bindgen_test]
fn clock_and_random_work_here() {
    assert!(DateClock.now() > 1_700_000_000);
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    OsRandom.fill_bytes(&mut a).unwrap();
    OsRandom.fill_bytes(&mut b).unwrap();
    assert_ne!(a, b);
    // Above getRandomValues' 65,536-byte limit: chunked, not an error.
    let mut big = vec![0u8; 70_000];
    OsRandom.fill_bytes(&mut big).unwrap();
    assert!(big[65_536..].iter().any(|&x| x != 0));
}
