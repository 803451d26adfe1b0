//! Where credentials live. Client registrations are keyed by issuer (never reused with another
//! authorization server); sessions by resource, each recording its issuer, and a session is
//! used only with the issuer it was issued by.

use core::cell::RefCell;
use core::future::Future;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::registration::ClientCredentials;
use crate::token::TokenSet;

/// The tokens for one resource, and where they came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The resource indicator the tokens were issued for.
    pub resource: String,
    /// The MCP server URL the session was created for.
    pub server: String,
    /// The issuer that issued them.
    pub issuer: String,
    /// The client they were issued to.
    pub client_id: String,
    /// The token endpoint, for refresh without rediscovery.
    pub token_endpoint: String,
    /// The revocation endpoint, for logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// The scope the authorization asked for (step-up unions the challenge with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_scope: Option<String>,
    /// The tokens.
    pub tokens: TokenSet,
}

/// An exclusive lock on one session's refresh, held until dropped. Stores shared by several
/// processes or tabs back it with something they all see (an advisory lock file, a Web Lock,
/// a Durable Object); a store used by one process alone needs none.
#[must_use = "the lock is released when this is dropped"]
pub struct StoreLock(Option<Box<dyn FnOnce()>>);

impl StoreLock {
    /// No lock: the store is not shared.
    pub fn none() -> Self {
        Self(None)
    }
    /// A lock released by calling `release` (once, on drop).
    pub fn on_release(release: impl FnOnce() + 'static) -> Self {
        Self(Some(Box::new(release)))
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

impl core::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StoreLock(held)"
        } else {
            "StoreLock(none)"
        })
    }
}

/// Asynchronous credential storage (IndexedDB, files, a Durable Object, memory). Futures are
/// not `Send`. Implementations must write atomically: a record is either old or new.
pub trait CredentialStore {
    /// The client registered with `issuer`, if any.
    fn load_client(&self, issuer: &str) -> impl Future<Output = Result<Option<ClientCredentials>>>;
    /// Saves a client under its issuer.
    fn save_client(&self, client: &ClientCredentials) -> impl Future<Output = Result<()>>;
    /// Forgets the client of `issuer`.
    fn delete_client(&self, issuer: &str) -> impl Future<Output = Result<()>>;
    /// The session for the MCP server URL `server`, if any.
    fn load_session(&self, server: &str) -> impl Future<Output = Result<Option<Session>>>;
    /// Saves a session under its server URL.
    fn save_session(&self, session: &Session) -> impl Future<Output = Result<()>>;
    /// Forgets the session of `server`.
    fn delete_session(&self, server: &str) -> impl Future<Output = Result<()>>;
    /// Waits for the exclusive right to refresh the session of `server` among everyone
    /// sharing this store. The client re-reads the session once it holds the lock, so a
    /// process that waited uses the tokens another one just obtained instead of replaying a
    /// rotated refresh token. The default is no lock: a store used by one process.
    fn lock_session(&self, server: &str) -> impl Future<Output = Result<StoreLock>> {
        let _ = server;
        core::future::ready(Ok(StoreLock::none()))
    }
}

/// A store in memory (tests, short-lived processes, "access tokens in memory only").
#[derive(Debug, Default)]
pub struct MemoryStore {
    clients: RefCell<BTreeMap<String, ClientCredentials>>,
    sessions: RefCell<BTreeMap<String, Session>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// All sessions, for listings.
    pub fn sessions(&self) -> Vec<Session> {
        self.sessions.borrow().values().cloned().collect()
    }
}

impl CredentialStore for MemoryStore {
    async fn load_client(&self, issuer: &str) -> Result<Option<ClientCredentials>> {
        Ok(self.clients.borrow().get(issuer).cloned())
    }
    async fn save_client(&self, client: &ClientCredentials) -> Result<()> {
        self.clients
            .borrow_mut()
            .insert(client.issuer.clone(), client.clone());
        Ok(())
    }
    async fn delete_client(&self, issuer: &str) -> Result<()> {
        self.clients.borrow_mut().remove(issuer);
        Ok(())
    }
    async fn load_session(&self, server: &str) -> Result<Option<Session>> {
        Ok(self.sessions.borrow().get(server).cloned())
    }
    async fn save_session(&self, session: &Session) -> Result<()> {
        self.sessions
            .borrow_mut()
            .insert(session.server.clone(), session.clone());
        Ok(())
    }
    async fn delete_session(&self, server: &str) -> Result<()> {
        self.sessions.borrow_mut().remove(server);
        Ok(())
    }
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<T: CredentialStore + ?Sized> CredentialStore for $ty {
            fn load_client(&self, issuer: &str) -> impl Future<Output = Result<Option<ClientCredentials>>> {
                (**self).load_client(issuer)
            }
            fn save_client(&self, client: &ClientCredentials) -> impl Future<Output = Result<()>> {
                (**self).save_client(client)
            }
            fn delete_client(&self, issuer: &str) -> impl Future<Output = Result<()>> {
                (**self).delete_client(issuer)
            }
            fn load_session(&self, server: &str) -> impl Future<Output = Result<Option<Session>>> {
                (**self).load_session(server)
            }
            fn save_session(&self, session: &Session) -> impl Future<Output = Result<()>> {
                (**self).save_session(session)
            }
            fn delete_session(&self, server: &str) -> impl Future<Output = Result<()>> {
                (**self).delete_session(server)
            }
            fn lock_session(&self, server: &str) -> impl Future<Output = Result<StoreLock>> {
                (**self).lock_session(server)
            }
        }
    )*};
}

// A store shared by reference or by `Rc` (the page's client and its authorizer).
forward_store!(&T, std::rc::Rc<T>);
