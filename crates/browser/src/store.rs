//! [`BrowserStore`]: the core's [`CredentialStore`] in IndexedDB, every record encrypted.
//!
//! Layout (database `edge-oauth` by default, version 1):
//! - object store `keys`, key `record-key`: the non-extractable AES-GCM `CryptoKey`; key
//!   `dpop-key`: the DPoP key pair's non-extractable private key and public JWK
//!   ([`crate::dpop`]);
//! - object store `records`, keys `client|<issuer>`, `session|<server URL>`,
//!   `pending|<base64url SHA-256 of the state>`: `{iv, ct}` objects, the plaintext JSON.
//!
//! A record that does not decrypt is deleted and reported as [`Error::UnreadableRecord`]. A
//! database that cannot be opened leaves the store in memory, said by [`StorageMode`].

use core::cell::RefCell;
use core::fmt;

use edge_oauth_core::pkce::s256_challenge;
use edge_oauth_core::registration::ClientCredentials;
use edge_oauth_core::store::StoreLock;
use edge_oauth_core::{AccessToken, CredentialStore, Session, TokenSet};
use serde::Serialize;
use serde::de::DeserializeOwned;
use web_sys::IdbFactory;

use crate::crypto::{RecordKey, Sealed, aad};
use crate::error::Error;
use crate::idb::{Database, global_factory};

/// The database name unless [`StoreOptions::db_name`] says otherwise.
pub const DEFAULT_DB_NAME: &str = "edge-oauth";
/// The object store holding the record key.
pub const KEYS_STORE: &str = "keys";
/// The object store holding the encrypted records.
pub const RECORDS_STORE: &str = "records";
/// The record key's key in [`KEYS_STORE`].
pub const RECORD_KEY_ID: &str = "record-key";
const DB_VERSION: u32 = 1;
const STORES: &[&str] = &[KEYS_STORE, RECORDS_STORE];

/// What a record holds; part of its IndexedDB key and of its AAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A client registration, keyed by issuer.
    Client,
    /// A session, keyed by MCP server URL.
    Session,
    /// A pending authorization, keyed by the hash of its state.
    Pending,
    /// The tokens of a redirect login, handed from the callback page to the page it returns
    /// to (the same tab, a new document); read once, within seconds, then deleted.
    Handoff,
    /// What an `OAuthClientProvider` keeps for the MCP SDK, keyed by `<server>|<what>`.
    Provider,
}

impl RecordKind {
    /// `client`, `session` or `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Client => "client",
            RecordKind::Session => "session",
            RecordKind::Pending => "pending",
            RecordKind::Handoff => "handoff",
            RecordKind::Provider => "provider",
        }
    }
}

/// The IndexedDB key of a record in [`RECORDS_STORE`]: `<kind>|<id>`. Its AAD is the same
/// string after [`crate::crypto::AAD_PREFIX`] and a `|`.
pub fn record_key(kind: RecordKind, id: &str) -> String {
    [kind.as_str(), id].join("|")
}

/// The id of a pending authorization: base64url(SHA-256(state)), so the state itself is
/// never a key in storage.
pub fn pending_id(state: &str) -> String {
    s256_challenge(state)
}

/// How long a page waits for another tab to answer for an access token it does not hold.
const SHARE_WAIT_MS: i32 = 150;

/// How [`BrowserStore::open`] behaves.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    db_name: String,
    persist_access_tokens: bool,
    factory: Option<IdbFactory>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            db_name: DEFAULT_DB_NAME.to_owned(),
            persist_access_tokens: false,
            factory: None,
        }
    }
}

impl StoreOptions {
    /// Defaults: database `edge-oauth`, access tokens in memory only, `globalThis.indexedDB`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Another database name (one per app or per user, or one per test).
    pub fn db_name(mut self, name: impl Into<String>) -> Self {
        self.db_name = name.into();
        self
    }

    /// Also persist access tokens (encrypted). Off by default: sessions are persisted with
    /// the access token blanked and access tokens kept in memory, so a reload refreshes.
    pub fn persist_access_tokens(mut self, persist: bool) -> Self {
        self.persist_access_tokens = persist;
        self
    }

    /// Another `IDBFactory` than `globalThis.indexedDB`: a polyfill in Node, or a factory that
    /// fails, to exercise the fallback.
    pub fn factory(mut self, factory: IdbFactory) -> Self {
        self.factory = Some(factory);
        self
    }
}

/// Where a [`BrowserStore`] keeps credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageMode {
    /// Encrypted in IndexedDB: they survive reloads.
    IndexedDb,
    /// In this page's memory only, because IndexedDB or WebCrypto could not be used; gone on
    /// reload. `reason` says why (IndexedDB missing, denied, blocked, quota, no WebCrypto).
    Memory {
        /// Why IndexedDB is not used.
        reason: Error,
    },
}

enum Backend {
    Idb {
        db: Database,
        key: RecordKey,
    },
    /// Plaintext records under the same keys, in this page's memory only.
    Memory(RefCell<Vec<(String, Vec<u8>)>>),
}

/// Credentials in IndexedDB, encrypted with a key script cannot read, or in memory when
/// IndexedDB cannot be used. See the module documentation for the layout.
pub struct BrowserStore {
    backend: Backend,
    mode: StorageMode,
    persist_access_tokens: bool,
    db_name: String,
    /// server URL -> the tokens last saved or loaded, access token included, when access
    /// tokens are kept in memory only.
    access: crate::share::Held,
    /// The other tabs, for access tokens kept in memory only.
    share: Option<crate::share::TokenShare>,
    /// Persisted tokens (without access token) other tabs were asked about in vain.
    unanswered: RefCell<Vec<(String, TokenSet)>>,
    /// Decrypted sessions (see [`Self::session`]); the token channel drops an entry when
    /// another tab writes or deletes it.
    cache: crate::share::Cache,
    /// Refresh locks this page holds now.
    locks_held: std::rc::Rc<std::cell::Cell<u32>>,
}

impl fmt::Debug for BrowserStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrowserStore")
            .field("mode", &self.mode)
            .field("persist_access_tokens", &self.persist_access_tokens)
            .finish_non_exhaustive()
    }
}

impl BrowserStore {
    /// Opens the store: IndexedDB with its record key (read back, or generated and kept on
    /// first use), or memory when that fails. Never fails itself; see [`Self::storage_mode`].
    pub async fn open(options: StoreOptions) -> Self {
        let (backend, mode) = match open_indexed_db(&options).await {
            Ok((db, key)) => (Backend::Idb { db, key }, StorageMode::IndexedDb),
            Err(reason) => (
                Backend::Memory(RefCell::default()),
                StorageMode::Memory { reason },
            ),
        };
        let access = crate::share::Held::default();
        let cache = crate::share::Cache::default();
        // The channel to the other tabs: access tokens (when kept in memory), and news of every
        // write and logout (cache invalidation, change events).
        let share = if matches!(backend, Backend::Idb { .. }) {
            crate::share::TokenShare::open(&options.db_name, access.clone(), cache.clone())
        } else {
            None
        };
        Self {
            backend,
            mode,
            persist_access_tokens: options.persist_access_tokens,
            db_name: options.db_name.clone(),
            access,
            share,
            unanswered: RefCell::default(),
            cache,
            locks_held: std::rc::Rc::default(),
        }
    }

    /// Calls `listener` when another tab of this origin saves or deletes a session (a refresh,
    /// a login, a logout there). Nothing is reported where the store keeps to memory.
    pub fn on_change_elsewhere(&self, listener: js_sys::Function) {
        if let Some(share) = &self.share {
            share.listen(listener);
        }
    }

    /// Where credentials are kept.
    pub fn storage_mode(&self) -> &StorageMode {
        &self.mode
    }

    /// The IndexedDB database, `None` where the store keeps to memory (the DPoP key is kept
    /// in it beside the record key, see [`crate::dpop`]).
    pub fn database(&self) -> Option<&Database> {
        match &self.backend {
            Backend::Idb { db, .. } => Some(db),
            Backend::Memory(_) => None,
        }
    }

    /// The database's name.
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// True when sessions are persisted without their access token (memory holds it).
    fn access_tokens_apart(&self) -> bool {
        !self.persist_access_tokens && matches!(self.backend, Backend::Idb { .. })
    }

    async fn save_record(
        &self,
        kind: RecordKind,
        id: &str,
        plaintext: Vec<u8>,
    ) -> Result<(), Error> {
        let name = record_key(kind, id);
        match &self.backend {
            Backend::Memory(records) => {
                insert(&mut records.borrow_mut(), name, plaintext);
                Ok(())
            }
            Backend::Idb { db, key } => {
                let sealed = key.seal(&aad(kind.as_str(), id), &plaintext).await?;
                db.put(RECORDS_STORE, &name, &sealed.to_js()).await
            }
        }
    }

    /// Reads and decrypts a record; one that does not decrypt, or whose plaintext `decode`
    /// refuses, is deleted and reported as unreadable.
    async fn load_record<T>(
        &self,
        kind: RecordKind,
        id: &str,
        decode: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let name = record_key(kind, id);
        let plaintext = match &self.backend {
            Backend::Memory(records) => match lookup(&records.borrow(), &name) {
                Some(plaintext) => Some(plaintext.clone()),
                None => return Ok(None),
            },
            Backend::Idb { db, key } => {
                let Some(raw) = db.get(RECORDS_STORE, &name).await? else {
                    return Ok(None);
                };
                match Sealed::from_js(&raw) {
                    Some(sealed) => key.open(&aad(kind.as_str(), id), &sealed).await.ok(),
                    None => None,
                }
            }
        };
        if let Some(value) = plaintext.as_deref().and_then(decode) {
            return Ok(Some(value));
        }
        // The record is useless to everyone: drop it, so the next attempt starts clean. A
        // failed delete changes nothing for the caller (the next read fails the same way).
        let _ = self.delete_record(kind, id).await;
        Err(Error::UnreadableRecord {
            kind: kind.as_str(),
            key: id.to_owned(),
        })
    }

    async fn delete_record(&self, kind: RecordKind, id: &str) -> Result<(), Error> {
        let name = record_key(kind, id);
        match &self.backend {
            Backend::Memory(records) => {
                remove(&mut records.borrow_mut(), &name);
                Ok(())
            }
            Backend::Idb { db, .. } => db.delete(RECORDS_STORE, &name).await,
        }
    }

    /// The client registered with `issuer`.
    pub async fn client(&self, issuer: &str) -> Result<Option<ClientCredentials>, Error> {
        self.load_record(RecordKind::Client, issuer, |pt| {
            json::<ClientCredentials>(pt).filter(|c| c.issuer == issuer)
        })
        .await
    }

    /// Saves a client under its issuer.
    pub async fn set_client(&self, client: &ClientCredentials) -> Result<(), Error> {
        let plaintext = to_json(client, RecordKind::Client)?;
        self.save_record(RecordKind::Client, &client.issuer, plaintext)
            .await
    }

    /// Forgets the client of `issuer`.
    pub async fn remove_client(&self, issuer: &str) -> Result<(), Error> {
        self.delete_record(RecordKind::Client, issuer).await
    }

    /// The session for the MCP server URL `server`. With access tokens in memory only, a
    /// session whose access token this page does not hold comes back with an empty access
    /// token marked expired (`expires_at` 0): the core then refreshes, or authorizes again.
    pub async fn session(&self, server: &str) -> Result<Option<Session>, Error> {
        // Decrypted sessions are kept in memory while the other tabs can tell this page about
        // their writes (the token channel); never while this page refreshes (inside the lock a
        // read must see what another tab wrote last).
        let cacheable = self.share.is_some() && self.locks_held.get() == 0;
        if cacheable && let Some(s) = lookup(&self.cache.borrow(), server) {
            return Ok(Some(s.clone()));
        }
        let session = self.session_from_disk(server).await?;
        if self.share.is_some() {
            match &session {
                Some(s) if !s.tokens.access_token.secret().is_empty() => {
                    insert(&mut self.cache.borrow_mut(), server.to_owned(), s.clone())
                }
                _ => remove(&mut self.cache.borrow_mut(), server),
            }
        }
        Ok(session)
    }

    async fn session_from_disk(&self, server: &str) -> Result<Option<Session>, Error> {
        let loaded = self
            .load_record(RecordKind::Session, server, |pt| {
                json::<Session>(pt).filter(|s| s.server == server)
            })
            .await;
        let mut session = match loaded {
            Ok(Some(s)) => s,
            other => {
                remove(&mut self.access.borrow_mut(), server);
                return other;
            }
        };
        if self.access_tokens_apart() && session.tokens.access_token.secret().is_empty() {
            let matching = |held: &crate::share::Held| {
                lookup(&held.borrow(), server)
                    .filter(|t| without_access_token(t) == session.tokens)
                    .is_some()
            };
            // A redirect login's tokens, handed over by the callback page of this tab: taken
            // (and deleted) on the first read that needs them.
            if !matching(&self.access) {
                self.take_handoff(server, &session.tokens).await;
            }
            let asked_before = lookup(&self.unanswered.borrow(), server) == Some(&session.tokens);
            if !matching(&self.access)
                && !asked_before
                && let Some(share) = &self.share
            {
                // Another tab may hold it (it refreshed, or this tab is new): ask first, once
                // per record.
                share.ask(server, SHARE_WAIT_MS).await;
                if !matching(&self.access) {
                    insert(
                        &mut self.unanswered.borrow_mut(),
                        server.to_owned(),
                        session.tokens.clone(),
                    );
                }
            }
            let held = lookup(&self.access.borrow(), server).cloned();
            match held {
                // Only the tokens this record was saved with: another page may have refreshed.
                Some(tokens) if without_access_token(&tokens) == session.tokens => {
                    session.tokens = tokens;
                }
                _ => session.tokens.expires_at = Some(0),
            }
        }
        Ok(Some(session))
    }

    /// Saves a session under its server URL.
    pub async fn set_session(&self, session: &Session) -> Result<(), Error> {
        let apart = self.access_tokens_apart();
        let plaintext = if apart {
            let mut persisted = session.clone();
            persisted.tokens = without_access_token(&session.tokens);
            to_json(&persisted, RecordKind::Session)?
        } else {
            to_json(session, RecordKind::Session)?
        };
        self.save_record(RecordKind::Session, &session.server, plaintext)
            .await?;
        if apart {
            insert(
                &mut self.access.borrow_mut(),
                session.server.clone(),
                session.tokens.clone(),
            );
        }
        if let Some(share) = &self.share {
            share.publish(&session.server, &session.tokens);
            insert(
                &mut self.cache.borrow_mut(),
                session.server.clone(),
                session.clone(),
            );
        }
        Ok(())
    }

    /// Forgets the session of `server`.
    pub async fn remove_session(&self, server: &str) -> Result<(), Error> {
        remove(&mut self.access.borrow_mut(), server);
        remove(&mut self.cache.borrow_mut(), server);
        let deleted = self.delete_record(RecordKind::Session, server).await;
        if let Some(share) = &self.share {
            share.publish_gone(server);
        }
        deleted
    }

    /// Is a session of any server stored in this store (this database, every tab)? Counts
    /// records, readable or not, without decrypting them.
    pub async fn has_sessions(&self) -> Result<bool, Error> {
        let prefix = record_key(RecordKind::Session, "");
        Ok(match &self.backend {
            Backend::Memory(records) => {
                records.borrow().iter().any(|(k, _)| k.starts_with(&prefix))
            }
            Backend::Idb { db, .. } => db
                .keys(RECORDS_STORE)
                .await?
                .iter()
                .any(|k| k.starts_with(&prefix)),
        })
    }

    /// Keeps a pending authorization (an opaque JSON string, e.g. the core's
    /// `PendingAuthorization` serialised) across the redirect, under the hash of its `state`.
    pub async fn save_pending(&self, state: &str, blob: &str) -> Result<(), Error> {
        self.save_record(RecordKind::Pending, &pending_id(state), blob.into())
            .await
    }

    /// The pending authorization saved under `state`, if any.
    pub async fn load_pending(&self, state: &str) -> Result<Option<String>, Error> {
        self.load_record(RecordKind::Pending, &pending_id(state), |pt| {
            String::from_utf8(pt.to_vec()).ok()
        })
        .await
    }

    /// Hands the session's tokens to the next document of this tab (the page a redirect login
    /// returns to), when access tokens are kept in memory only: sealed like every record,
    /// read once by [`Self::session`] within [`HANDOFF_MAX_AGE_SECS`], and deleted then.
    pub async fn hand_off(&self, session: &Session) -> Result<(), Error> {
        if !self.access_tokens_apart() {
            return Ok(());
        }
        let plaintext = to_json(&session.tokens, RecordKind::Handoff)?;
        self.save_record(RecordKind::Handoff, &session.server, plaintext)
            .await
    }

    /// Keeps an opaque string (sealed) under `id`, for the SDK provider.
    pub async fn save_blob(&self, id: &str, value: &str) -> Result<(), Error> {
        self.save_record(RecordKind::Provider, id, value.into())
            .await
    }

    /// The string kept under `id`.
    pub async fn load_blob(&self, id: &str) -> Result<Option<String>, Error> {
        self.load_record(RecordKind::Provider, id, |pt| {
            String::from_utf8(pt.to_vec()).ok()
        })
        .await
    }

    /// Forgets the string kept under `id`.
    pub async fn delete_blob(&self, id: &str) -> Result<(), Error> {
        self.delete_record(RecordKind::Provider, id).await
    }

    /// Takes (reads and deletes, atomically) the pending authorization saved under `state`:
    /// a callback handled twice at once (two loads of the callback page) exchanges its code
    /// once.
    pub async fn take_pending(&self, state: &str) -> Result<Option<String>, Error> {
        let id = pending_id(state);
        let name = record_key(RecordKind::Pending, &id);
        let plaintext = match &self.backend {
            Backend::Memory(records) => {
                let v = lookup(&records.borrow(), &name).cloned();
                remove(&mut records.borrow_mut(), &name);
                v
            }
            Backend::Idb { db, key } => {
                let Some(raw) = db.take(RECORDS_STORE, &name).await? else {
                    return Ok(None);
                };
                match Sealed::from_js(&raw) {
                    Some(sealed) => key.open(&aad("pending", &id), &sealed).await.ok(),
                    None => None,
                }
            }
        };
        match plaintext.map(String::from_utf8) {
            None => Err(Error::UnreadableRecord {
                kind: "pending",
                key: id,
            }),
            Some(Ok(s)) => Ok(Some(s)),
            Some(Err(_)) => Err(Error::UnreadableRecord {
                kind: "pending",
                key: id,
            }),
        }
    }

    /// Forgets the pending authorization saved under `state` (do it once the callback is
    /// handled: a state is used once).
    pub async fn delete_pending(&self, state: &str) -> Result<(), Error> {
        self.delete_record(RecordKind::Pending, &pending_id(state))
            .await
    }
}

impl BrowserStore {
    /// Reads and deletes the hand-off record of `server`; keeps its tokens when they belong
    /// to the persisted record and are fresh.
    async fn take_handoff(&self, server: &str, persisted: &TokenSet) {
        let Ok(Some(tokens)) = self
            .load_record(RecordKind::Handoff, server, json::<TokenSet>)
            .await
        else {
            return;
        };
        let _ = self.delete_record(RecordKind::Handoff, server).await;
        let now = edge_oauth_core::env::Clock::now(&crate::env::DateClock);
        if without_access_token(&tokens) == *persisted
            && now.saturating_sub(tokens.received_at) <= HANDOFF_MAX_AGE_SECS
        {
            crate::share::keep(&self.access, server, tokens);
        }
    }
}

/// How long a hand-off record is honoured.
pub const HANDOFF_MAX_AGE_SECS: u64 = 60;

// A handful of entries: a vector is smaller in wasm than a map, and fast enough.
fn lookup<'a, T>(entries: &'a [(String, T)], key: &str) -> Option<&'a T> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn insert<T>(entries: &mut Vec<(String, T)>, key: String, value: T) {
    match entries.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 = value,
        None => entries.push((key, value)),
    }
}

fn remove<T>(entries: &mut Vec<(String, T)>, key: &str) {
    entries.retain(|(k, _)| k != key);
}

fn json<T: DeserializeOwned>(plaintext: &[u8]) -> Option<T> {
    edge_oauth_core::json::from_slice(plaintext).ok()
}

fn to_json<T: Serialize>(value: &T, kind: RecordKind) -> Result<Vec<u8>, Error> {
    edge_oauth_core::json::to_vec(value).map_err(|_| Error::Serialize {
        kind: kind.as_str(),
    })
}

fn without_access_token(tokens: &TokenSet) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(""),
        ..tokens.clone()
    }
}

/// Opens the database and reads its record key, generating and storing one when there is
/// none (or what is there is not a usable key: the records it sealed are then unreadable).
async fn open_indexed_db(options: &StoreOptions) -> Result<(Database, RecordKey), Error> {
    // WebCrypto first: without it nothing may be written.
    crate::crypto::subtle()?;
    let factory = match &options.factory {
        Some(f) => f.clone(),
        None => global_factory()?,
    };
    let db = Database::open(&factory, &options.db_name, DB_VERSION, STORES).await?;
    let stored = db.get(KEYS_STORE, RECORD_KEY_ID).await?;
    let had_value = stored.is_some();
    if let Some(key) = stored.and_then(RecordKey::from_stored) {
        return Ok((db, key));
    }
    let key = RecordKey::generate().await?;
    if had_value {
        db.put(KEYS_STORE, RECORD_KEY_ID, key.as_js()).await?;
        return Ok((db, key));
    }
    if db.add(KEYS_STORE, RECORD_KEY_ID, key.as_js()).await? {
        return Ok((db, key));
    }
    // Another page stored its key first: use that one.
    let theirs = db.get(KEYS_STORE, RECORD_KEY_ID).await?;
    match theirs.and_then(RecordKey::from_stored) {
        Some(key) => Ok((db, key)),
        None => Err(Error::crypto(
            "load key",
            crate::error::JsError::new("DataError", "the stored record key is not usable"),
        )),
    }
}

fn store_err(e: Error) -> edge_oauth_core::Error {
    e.into()
}

impl CredentialStore for BrowserStore {
    async fn load_client(
        &self,
        issuer: &str,
    ) -> edge_oauth_core::Result<Option<ClientCredentials>> {
        self.client(issuer).await.map_err(store_err)
    }
    async fn save_client(&self, client: &ClientCredentials) -> edge_oauth_core::Result<()> {
        self.set_client(client).await.map_err(store_err)
    }
    async fn delete_client(&self, issuer: &str) -> edge_oauth_core::Result<()> {
        self.remove_client(issuer).await.map_err(store_err)
    }
    async fn load_session(&self, server: &str) -> edge_oauth_core::Result<Option<Session>> {
        self.session(server).await.map_err(store_err)
    }
    async fn save_session(&self, session: &Session) -> edge_oauth_core::Result<()> {
        self.set_session(session).await.map_err(store_err)
    }
    async fn delete_session(&self, server: &str) -> edge_oauth_core::Result<()> {
        self.remove_session(server).await.map_err(store_err)
    }
    /// A Web Lock per database and session (a lock within this page where Web Locks are
    /// missing): one refresh among every tab of the origin.
    async fn lock_session(&self, server: &str) -> edge_oauth_core::Result<StoreLock> {
        let name = format!("edge-oauth/{}/{}", self.db_name, server);
        let lock = crate::locks::acquire(&name).await.map_err(store_err)?;
        let held = self.locks_held.clone();
        held.set(held.get() + 1);
        Ok(StoreLock::on_release(move || {
            held.set(held.get().saturating_sub(1));
            drop(lock);
        }))
    }
}
