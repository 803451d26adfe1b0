//! The encrypted IndexedDB store in headless Chromium: round trips, what the raw records
//! hold, tampering, moved records, a lost key, and the fallback to memory.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test scaffolding

mod common;

use common::*;
use edge_oauth_browser::crypto::{RecordKey, Sealed, aad};
use edge_oauth_browser::error::unreadable_kind;
use edge_oauth_browser::idb::{Database, global_factory, request};
use edge_oauth_browser::store::{
    KEYS_STORE, RECORD_KEY_ID, RECORDS_STORE, RecordKind, pending_id, record_key,
};
use edge_oauth_browser::{BrowserStore, Error, StorageMode, StoreOptions};
use edge_oauth_core::{CredentialStore, Recovery};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{IdbDatabase, IdbFactory};

wasm_bindgen_test_configure!(run_in_browser);

const STORES: &[&str] = &[KEYS_STORE, RECORDS_STORE];

async fn open(name: &str, persist_access_tokens: bool) -> BrowserStore {
    let store = BrowserStore::open(
        StoreOptions::new()
            .db_name(name)
            .persist_access_tokens(persist_access_tokens),
    )
    .await;
    assert_eq!(store.storage_mode(), &StorageMode::IndexedDb);
    store
}

/// A second connection to the same database, for reading and altering raw records.
async fn raw(name: &str) -> Database {
    Database::open(&global_factory().unwrap(), name, 1, STORES)
        .await
        .unwrap()
}

async fn raw_sealed(db: &Database, kind: RecordKind, id: &str) -> Option<Sealed> {
    let value = db
        .get(RECORDS_STORE, &record_key(kind, id))
        .await
        .unwrap()?;
    Some(Sealed::from_js(&value).expect("an {iv, ct} record"))
}

async fn stored_key(db: &Database) -> RecordKey {
    let value = db.get(KEYS_STORE, RECORD_KEY_ID).await.unwrap().unwrap();
    RecordKey::from_stored(value).expect("a non-extractable AES-GCM key")
}

fn unreadable(kind: &'static str, key: &str) -> Error {
    Error::UnreadableRecord {
        kind,
        key: key.into(),
    }
}

#[wasm_bindgen_test]
async fn session_and_client_survive_a_reopen() {
    let name = db_name("roundtrip");
    let store = open(&name, true).await;
    store.save_session(&session(SERVER)).await.unwrap();
    store.save_client(&client(ISSUER)).await.unwrap();
    drop(store);

    let store = open(&name, true).await;
    assert_eq!(
        store.load_session(SERVER).await.unwrap(),
        Some(session(SERVER))
    );
    assert_eq!(
        store.load_client(ISSUER).await.unwrap(),
        Some(client(ISSUER))
    );
    assert_eq!(store.load_session(OTHER_SERVER).await.unwrap(), None);

    store.delete_session(SERVER).await.unwrap();
    store.delete_client(ISSUER).await.unwrap();
    assert_eq!(store.load_session(SERVER).await.unwrap(), None);
    assert_eq!(store.load_client(ISSUER).await.unwrap(), None);
}

#[wasm_bindgen_test]
async fn raw_records_hold_no_secret_bytes() {
    let name = db_name("raw");
    let store = open(&name, true).await;
    store.save_session(&session(SERVER)).await.unwrap();
    store.save_client(&client(ISSUER)).await.unwrap();
    let state = "state-7c1d9e3a5b2f4068";
    let verifier = "verifier-2b8e4d6f0a1c3957-pkce";
    let blob = format!(r#"{{"state":"{state}","code_verifier":"{verifier}"}}"#);
    store.save_pending(state, &blob).await.unwrap();

    let db = raw(&name).await;
    let key = stored_key(&db).await;
    let records = [
        (
            RecordKind::Session,
            SERVER.to_owned(),
            vec![ACCESS, REFRESH],
        ),
        (RecordKind::Client, ISSUER.to_owned(), vec![SECRET]),
        (
            RecordKind::Pending,
            pending_id(state),
            vec![state, verifier],
        ),
    ];
    for (kind, id, secrets) in records {
        let value = db
            .get(RECORDS_STORE, &record_key(kind, &id))
            .await
            .unwrap()
            .unwrap();
        // Exactly {iv, ct}: no plaintext field rides along.
        let fields = js_sys::Object::keys(value.unchecked_ref::<js_sys::Object>());
        let fields: Vec<String> = fields.iter().filter_map(|f| f.as_string()).collect();
        assert_eq!(fields, ["iv", "ct"]);
        let sealed = Sealed::from_js(&value).unwrap();
        let plaintext = key.open(&aad(kind.as_str(), &id), &sealed).await.unwrap();
        for secret in secrets {
            // The test is not vacuous: the secret is in this very record once decrypted...
            assert!(contains(&plaintext, secret.as_bytes()), "{secret}");
            // ...and nowhere in what IndexedDB holds.
            assert!(!contains(&sealed.ct, secret.as_bytes()), "{secret} in ct");
            assert!(!contains(&sealed.iv, secret.as_bytes()));
            assert!(!record_key(kind, &id).contains(secret), "{secret} in key");
        }
    }
    // The record key cannot be exported.
    assert!(!key.as_js().extractable());
}

#[wasm_bindgen_test]
async fn access_tokens_stay_in_memory_by_default() {
    let name = db_name("memory-access");
    let store = open(&name, false).await;
    store.save_session(&session(SERVER)).await.unwrap();
    // The page that saved it gets it back whole.
    assert_eq!(
        store.load_session(SERVER).await.unwrap(),
        Some(session(SERVER))
    );

    // The persisted plaintext has the refresh token but not the access token.
    let db = raw(&name).await;
    let sealed = raw_sealed(&db, RecordKind::Session, SERVER).await.unwrap();
    let plaintext = stored_key(&db)
        .await
        .open(&aad("session", SERVER), &sealed)
        .await
        .unwrap();
    assert!(contains(&plaintext, REFRESH.as_bytes()));
    assert!(!contains(&plaintext, ACCESS.as_bytes()));

    // A reload, with no other tab of the origin open, gets the session without its access
    // token, marked expired.
    drop(store);
    let reloaded = open(&name, false).await;
    let s = reloaded.load_session(SERVER).await.unwrap().unwrap();
    assert_eq!(s.tokens.access_token.secret(), "");
    assert_eq!(s.tokens.expires_at, Some(0));
    assert!(s.tokens.is_expired(1));
    assert_eq!(
        s.tokens.refresh_token.as_ref().map(|t| t.secret()),
        Some(REFRESH)
    );
}

/// Copies a raw sealed record to another key, as someone with access to the database could.
async fn copy_record(db: &Database, from: (RecordKind, &str), to: (RecordKind, &str)) {
    let value = db
        .get(RECORDS_STORE, &record_key(from.0, from.1))
        .await
        .unwrap()
        .unwrap();
    db.put(RECORDS_STORE, &record_key(to.0, to.1), &value)
        .await
        .unwrap();
}

/// Lets the event loop run other tasks (message events) for a moment.
async fn next_tasks() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 20);
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_session_rotated_elsewhere_does_not_get_a_stale_access_token() {
    let name = db_name("rotated");
    let first = open(&name, false).await;
    first.save_session(&session(SERVER)).await.unwrap();
    // Another page refreshes: new refresh and access tokens.
    let second = open(&name, false).await;
    let mut rotated = session(SERVER);
    rotated.tokens = tokens("at-new", "rt-new", 1_700_000_100);
    second.save_session(&rotated).await.unwrap();
    // The other page's message arrives on a later task of the event loop.
    next_tasks().await;

    let seen = first.load_session(SERVER).await.unwrap().unwrap();
    assert_eq!(
        seen.tokens.refresh_token.as_ref().map(|t| t.secret()),
        Some("rt-new")
    );
    // Not the first page's old access token laid over the newer record: the one the other
    // page obtained, which it shared.
    assert_eq!(seen.tokens.access_token.secret(), "at-new");
    assert_eq!(second.load_session(SERVER).await.unwrap(), Some(rotated));
    // With the other page gone and a newer record written behind everyone's back, the stale
    // token is still never laid over it.
    drop(second);
    let mut newest = session(SERVER);
    newest.tokens = tokens("at-newest", "rt-newest", 1_700_000_200);
    let writer = open(&name, true).await; // persists whole, shares nothing
    writer.save_session(&newest).await.unwrap();
    drop(writer);
    // Under the refresh lock a read always goes to the disk (what the core does before it
    // refreshes), whatever this page remembers.
    let _lock = first.lock_session(SERVER).await.unwrap();
    let seen = first.load_session(SERVER).await.unwrap().unwrap();
    assert_eq!(
        seen.tokens.refresh_token.as_ref().map(|t| t.secret()),
        Some("rt-newest")
    );
    assert!(seen.tokens.access_token.secret() != "at-new");
}

#[wasm_bindgen_test]
async fn another_tab_gets_the_access_token_it_does_not_hold() {
    let name = db_name("share");
    let first = open(&name, false).await;
    first.save_session(&session(SERVER)).await.unwrap();
    // A new tab: the record on disk has no access token; the first tab hands it over in
    // memory, over the origin's BroadcastChannel.
    let second = open(&name, false).await;
    assert_eq!(
        second.load_session(SERVER).await.unwrap(),
        Some(session(SERVER))
    );
    let db = raw(&name).await;
    let sealed = raw_sealed(&db, RecordKind::Session, SERVER).await.unwrap();
    let plaintext = stored_key(&db)
        .await
        .open(&aad("session", SERVER), &sealed)
        .await
        .unwrap();
    assert!(!contains(&plaintext, ACCESS.as_bytes()));
}

#[wasm_bindgen_test]
async fn every_write_uses_a_fresh_iv() {
    let name = db_name("iv");
    let store = open(&name, true).await;
    let db = raw(&name).await;
    store.save_session(&session(SERVER)).await.unwrap();
    let a = raw_sealed(&db, RecordKind::Session, SERVER).await.unwrap();
    store.save_session(&session(SERVER)).await.unwrap();
    let b = raw_sealed(&db, RecordKind::Session, SERVER).await.unwrap();
    assert_eq!(a.iv.len(), 12);
    assert_ne!(a.iv, b.iv);
    assert_ne!(a.ct, b.ct);
}

#[wasm_bindgen_test]
async fn a_tampered_record_is_deleted_and_needs_reauthentication() {
    let name = db_name("tamper");
    let store = open(&name, true).await;
    store.save_session(&session(SERVER)).await.unwrap();
    let db = raw(&name).await;
    let mut sealed = raw_sealed(&db, RecordKind::Session, SERVER).await.unwrap();
    sealed.ct[3] ^= 0x01;
    db.put(
        RECORDS_STORE,
        &record_key(RecordKind::Session, SERVER),
        &sealed.to_js(),
    )
    .await
    .unwrap();

    // A later page (this one remembers what it wrote) reads it back. Through the core's
    // trait: a store error the caller can recognise, never a panic.
    let store = open(&name, true).await;
    let err = store.load_session(SERVER).await.unwrap_err();
    assert_eq!(err.code(), "store_record_unreadable");
    assert_eq!(err.recovery(), edge_oauth_core::Recovery::Reauthenticate);
    assert_eq!(unreadable_kind(&err), Some("session"), "{err}");
    assert!(!err.to_string().contains(REFRESH));
    // The record is gone; the next load starts clean.
    assert_eq!(raw_sealed(&db, RecordKind::Session, SERVER).await, None);
    assert_eq!(store.load_session(SERVER).await.unwrap(), None);

    // The crate's own error says the same with its own code and recovery.
    store.save_client(&client(ISSUER)).await.unwrap();
    let mut sealed = raw_sealed(&db, RecordKind::Client, ISSUER).await.unwrap();
    sealed.iv[0] ^= 0x80;
    db.put(
        RECORDS_STORE,
        &record_key(RecordKind::Client, ISSUER),
        &sealed.to_js(),
    )
    .await
    .unwrap();
    let err = store.client(ISSUER).await.unwrap_err();
    assert_eq!(err, unreadable("client", ISSUER));
    assert_eq!(err.code(), "unreadable_record");
    assert_eq!(err.recovery(), Recovery::Reauthenticate);
    assert_eq!(store.client(ISSUER).await.unwrap(), None);
}

#[wasm_bindgen_test]
async fn a_record_that_is_not_a_record_is_unreadable() {
    let name = db_name("garbage");
    let store = open(&name, true).await;
    let db = raw(&name).await;
    db.put(
        RECORDS_STORE,
        &record_key(RecordKind::Session, SERVER),
        &JsValue::from_str("plaintext?"),
    )
    .await
    .unwrap();
    assert_eq!(
        store.session(SERVER).await.unwrap_err(),
        unreadable("session", SERVER)
    );
    assert_eq!(
        db.get(RECORDS_STORE, "session|https://mcp.example.com/mcp")
            .await
            .unwrap(),
        None
    );
}

#[wasm_bindgen_test]
async fn a_record_moved_to_another_server_or_kind_does_not_decrypt() {
    let name = db_name("swap");
    let store = open(&name, true).await;
    store.save_session(&session(SERVER)).await.unwrap();
    store.save_client(&client(ISSUER)).await.unwrap();
    let db = raw(&name).await;

    // The session of SERVER copied under OTHER_SERVER.
    copy_record(
        &db,
        (RecordKind::Session, SERVER),
        (RecordKind::Session, OTHER_SERVER),
    )
    .await;
    assert_eq!(
        store.session(OTHER_SERVER).await.unwrap_err(),
        unreadable("session", OTHER_SERVER)
    );
    assert_eq!(
        raw_sealed(&db, RecordKind::Session, OTHER_SERVER).await,
        None
    );
    // The original is untouched.
    assert_eq!(store.session(SERVER).await.unwrap(), Some(session(SERVER)));

    // The client of ISSUER copied to the session slot with the same id: another kind.
    copy_record(
        &db,
        (RecordKind::Client, ISSUER),
        (RecordKind::Session, ISSUER),
    )
    .await;
    assert_eq!(
        store.session(ISSUER).await.unwrap_err(),
        unreadable("session", ISSUER)
    );
    assert_eq!(store.client(ISSUER).await.unwrap(), Some(client(ISSUER)));

    // Pending blobs are opaque, so only the AAD tells a moved one apart.
    store.save_pending("state-a", "blob-a").await.unwrap();
    let value = db
        .get(
            RECORDS_STORE,
            &record_key(RecordKind::Pending, &pending_id("state-a")),
        )
        .await
        .unwrap()
        .unwrap();
    let moved = pending_id("state-b");
    db.put(
        RECORDS_STORE,
        &record_key(RecordKind::Pending, &moved),
        &value,
    )
    .await
    .unwrap();
    assert_eq!(
        store.load_pending("state-b").await.unwrap_err(),
        unreadable("pending", &moved)
    );
    assert_eq!(
        store.load_pending("state-a").await.unwrap().as_deref(),
        Some("blob-a")
    );
}

#[wasm_bindgen_test]
async fn the_aad_binds_a_sealed_record_to_its_kind_and_key() {
    let key = RecordKey::generate().await.unwrap();
    let sealed = key
        .seal(&aad("session", SERVER), b"plaintext")
        .await
        .unwrap();
    assert_eq!(
        key.open(&aad("session", SERVER), &sealed).await.unwrap(),
        b"plaintext"
    );
    for (kind, id) in [
        ("session", OTHER_SERVER),
        ("client", SERVER),
        ("pending", SERVER),
    ] {
        let err = key.open(&aad(kind, id), &sealed).await.unwrap_err();
        assert_eq!(err.name, "OperationError", "{kind} {id}");
    }
    assert_eq!(
        aad("session", SERVER),
        b"edge-oauth/v1|session|https://mcp.example.com/mcp"
    );
}

#[wasm_bindgen_test]
async fn a_lost_key_makes_old_records_unreadable_and_a_new_key_is_made() {
    let name = db_name("keyloss");
    let store = open(&name, true).await;
    store.save_session(&session(SERVER)).await.unwrap();
    store.save_client(&client(ISSUER)).await.unwrap();
    drop(store);
    let db = raw(&name).await;
    let old_key = stored_key(&db).await;
    db.delete(KEYS_STORE, RECORD_KEY_ID).await.unwrap();

    let store = open(&name, true).await;
    let new_key = stored_key(&db).await;
    assert_eq!(
        store.session(SERVER).await.unwrap_err(),
        unreadable("session", SERVER)
    );
    assert_eq!(
        store.client(ISSUER).await.unwrap_err(),
        unreadable("client", ISSUER)
    );
    assert_eq!(store.session(SERVER).await.unwrap(), None);
    assert_eq!(store.client(ISSUER).await.unwrap(), None);

    // New records are sealed with the new key, which the old one cannot open.
    store.save_session(&session(SERVER)).await.unwrap();
    let sealed = raw_sealed(&db, RecordKind::Session, SERVER).await.unwrap();
    let aad = aad("session", SERVER);
    assert!(old_key.open(&aad, &sealed).await.is_err());
    assert!(new_key.open(&aad, &sealed).await.is_ok());
    assert_eq!(store.session(SERVER).await.unwrap(), Some(session(SERVER)));
}

#[wasm_bindgen_test]
async fn pending_authorizations_are_kept_by_state_hash() {
    let name = db_name("pending");
    let store = open(&name, true).await;
    store.save_pending("state-a", r#"{"v":"a"}"#).await.unwrap();
    store.save_pending("state-b", r#"{"v":"b"}"#).await.unwrap();
    assert_eq!(
        store.load_pending("state-a").await.unwrap().as_deref(),
        Some(r#"{"v":"a"}"#)
    );
    assert_eq!(store.load_pending("state-c").await.unwrap(), None);

    // Survives a reload (the redirect), keyed by the hash of the state only.
    let reloaded = open(&name, true).await;
    assert_eq!(
        reloaded.load_pending("state-b").await.unwrap().as_deref(),
        Some(r#"{"v":"b"}"#)
    );
    let db = raw(&name).await;
    assert!(
        raw_sealed(&db, RecordKind::Pending, &pending_id("state-b"))
            .await
            .is_some()
    );
    assert_eq!(
        db.get(RECORDS_STORE, "pending|state-b").await.unwrap(),
        None
    );

    reloaded.delete_pending("state-b").await.unwrap();
    assert_eq!(reloaded.load_pending("state-b").await.unwrap(), None);
}

/// An `IDBFactory` whose `open` throws, as in a sandboxed frame or a locked-down profile.
fn throwing_factory() -> IdbFactory {
    let factory = js_sys::Object::new();
    let open = js_sys::Function::new_no_args(
        "throw new DOMException('The user denied permission to access the database.', 'SecurityError');",
    );
    js_sys::Reflect::set(&factory, &"open".into(), &open).unwrap();
    factory.unchecked_into()
}

#[wasm_bindgen_test]
async fn falls_back_to_memory_when_indexeddb_cannot_open() {
    let options = StoreOptions::new()
        .db_name(db_name("fallback"))
        .factory(throwing_factory());
    let store = BrowserStore::open(options.clone()).await;
    match store.storage_mode() {
        StorageMode::Memory {
            reason: Error::IndexedDb { op, error },
        } => {
            assert_eq!(*op, "open");
            assert_eq!(error.name, "SecurityError");
        }
        other => panic!("expected the memory fallback, got {other:?}"),
    }
    // Still a working store, access tokens included.
    store.save_session(&session(SERVER)).await.unwrap();
    store.save_client(&client(ISSUER)).await.unwrap();
    store.save_pending("s", "blob").await.unwrap();
    assert_eq!(
        store.load_session(SERVER).await.unwrap(),
        Some(session(SERVER))
    );
    assert_eq!(
        store.load_client(ISSUER).await.unwrap(),
        Some(client(ISSUER))
    );
    assert_eq!(
        store.load_pending("s").await.unwrap().as_deref(),
        Some("blob")
    );
    store.delete_session(SERVER).await.unwrap();
    assert_eq!(store.load_session(SERVER).await.unwrap(), None);
    // Memory is this store's own: another one starts empty.
    let other = BrowserStore::open(options).await;
    assert_eq!(other.load_client(ISSUER).await.unwrap(), None);
}

#[wasm_bindgen_test]
async fn falls_back_to_memory_when_the_database_lacks_its_stores() {
    // A database of that name and version made by someone else, without our object stores.
    let name = db_name("foreign");
    let factory = global_factory().unwrap();
    let req = factory.open_with_u32(&name, 1).unwrap();
    let foreign: IdbDatabase = request(&req).await.unwrap().unchecked_into();
    foreign.close();

    let store = BrowserStore::open(StoreOptions::new().db_name(&name)).await;
    match store.storage_mode() {
        StorageMode::Memory {
            reason: Error::IndexedDb { op, error },
        } => {
            assert_eq!((*op, error.name.as_str()), ("open", "NotFoundError"));
        }
        other => panic!("expected the memory fallback, got {other:?}"),
    }
    store.save_session(&session(SERVER)).await.unwrap();
    assert_eq!(
        store.load_session(SERVER).await.unwrap(),
        Some(session(SERVER))
    );
}

#[wasm_bindgen_test]
async fn a_blocked_upgrade_is_an_error_not_a_hang() {
    let name = db_name("blocked");
    let factory = global_factory().unwrap();
    // An old connection that ignores `versionchange`.
    let req = factory.open_with_u32(&name, 1).unwrap();
    let old: IdbDatabase = request(&req).await.unwrap().unchecked_into();

    let err = Database::open(&factory, &name, 2, STORES)
        .await
        .unwrap_err();
    match &err {
        Error::IndexedDb { op, error } => {
            assert_eq!((*op, error.name.as_str()), ("open", "BlockedError"));
        }
        other => panic!("expected a blocked open, got {other:?}"),
    }
    assert_eq!(err.recovery(), Recovery::Transient);

    // Once the old connection goes, the abandoned open completes (stores created, connection
    // closed), and a new open at version 2 finds everything in place.
    old.close();
    let db = Database::open(&factory, &name, 2, STORES).await.unwrap();
    db.put(RECORDS_STORE, "k", &JsValue::from_str("v"))
        .await
        .unwrap();
    assert_eq!(
        db.get(RECORDS_STORE, "k")
            .await
            .unwrap()
            .and_then(|v| v.as_string()),
        Some("v".into())
    );
}

#[wasm_bindgen_test]
async fn raw_layer_get_put_add_delete() {
    let name = db_name("idb");
    let db = raw(&name).await;
    assert_eq!(db.get(RECORDS_STORE, "k").await.unwrap(), None);
    assert!(db.add(RECORDS_STORE, "k", &JsValue::from(1)).await.unwrap());
    // `add` never overwrites.
    assert!(!db.add(RECORDS_STORE, "k", &JsValue::from(2)).await.unwrap());
    assert_eq!(
        db.get(RECORDS_STORE, "k")
            .await
            .unwrap()
            .and_then(|v| v.as_f64()),
        Some(1.0)
    );
    db.put(RECORDS_STORE, "k", &JsValue::from(3)).await.unwrap();
    assert_eq!(
        db.get(RECORDS_STORE, "k")
            .await
            .unwrap()
            .and_then(|v| v.as_f64()),
        Some(3.0)
    );
    db.delete(RECORDS_STORE, "k").await.unwrap();
    db.delete(RECORDS_STORE, "k").await.unwrap();
    assert_eq!(db.get(RECORDS_STORE, "k").await.unwrap(), None);
    // An unknown object store is an error, not a panic.
    let err = db.get("nope", "k").await.unwrap_err();
    assert_eq!(err.code(), "indexeddb_error");
}

#[wasm_bindgen_test]
async fn a_logout_in_another_tab_reaches_this_one() {
    let name = db_name("gone");
    let first = open(&name, false).await;
    first.save_session(&session(SERVER)).await.unwrap();
    let second = open(&name, false).await;
    // Read, decrypted and remembered by the second page...
    assert!(second.load_session(SERVER).await.unwrap().is_some());
    assert!(second.load_session(SERVER).await.unwrap().is_some());
    // ...until the first logs out: its message drops the copy, the disk has nothing.
    first.delete_session(SERVER).await.unwrap();
    next_tasks().await;
    assert_eq!(second.load_session(SERVER).await.unwrap(), None);
}

#[wasm_bindgen_test]
async fn other_tabs_hear_of_writes_and_logouts() {
    let name = db_name("events");
    let first = open(&name, true).await;
    let second = open(&name, true).await;
    let count = || {
        js_sys::Reflect::get(&js_sys::global(), &"__edgeOauthChanges".into())
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    second.on_change_elsewhere(js_sys::Function::new_no_args(
        "globalThis.__edgeOauthChanges = (globalThis.__edgeOauthChanges || 0) + 1",
    ));
    let before = count();
    first.save_session(&session(SERVER)).await.unwrap();
    next_tasks().await;
    assert_eq!(count() - before, 1.0);
    // The second page's copy follows the first page's writes, also with access tokens
    // persisted.
    assert_eq!(
        second.load_session(SERVER).await.unwrap(),
        Some(session(SERVER))
    );
    first.delete_session(SERVER).await.unwrap();
    next_tasks().await;
    assert_eq!(count() - before, 2.0);
    assert_eq!(second.load_session(SERVER).await.unwrap(), None);
}
