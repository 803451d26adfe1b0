//! # edge-oauth-browser
//!
//! The browser side of edge-oauth: the pieces [`edge_oauth_core`] injects, implemented over
//! Web APIs reached through `globalThis` (so they work in a window, a worker and Node 22).
//!
//! Layered like gloo, each layer usable alone:
//! - [`error`]: JS exceptions as [`JsError`], and the crate's [`Error`] with stable codes;
//! - [`env`]: [`DateClock`] (`Date.now()`), and why the core's `OsRandom` is the random source;
//! - [`fetch`]: [`FetchClient`], the core's `HttpClient` over `fetch` (no redirects followed,
//!   no cookies sent);
//! - [`mediate`]: [`MediatedHttp`], token and revocation requests through a token-mediating
//!   worker (the page never receives a refresh token);
//! - [`idb`]: raw IndexedDB, each request turned into a future;
//! - [`crypto`]: a non-extractable AES-GCM key kept in IndexedDB, sealing records with AAD;
//! - [`dpop`]: the DPoP key (non-extractable ECDSA P-256 in IndexedDB), the core's signer
//!   over `crypto.subtle.sign`;
//! - [`store`]: [`BrowserStore`], the core's `CredentialStore` over the two layers above,
//!   falling back to memory when IndexedDB cannot be used.
//!
//! - [`share`]: access tokens kept in memory, shared among tabs over a `BroadcastChannel`;
//! - [`locks`]: one refresh at a time per session across tabs (Web Locks);
//! - [`authorizer`]: popup and redirect authorization in a page;
//! - [`provider`]: an `OAuthClientProvider` over the store, for apps that let the MCP SDK
//!   drive (it checks the `state` the SDK does not);
//! - the page's side of a backend-for-frontend worker (no token in the page) is plain JS,
//!   `js/bff.js` (no wasm needed);
//! - [`api`]: the JS API (`EdgeOAuth`, `createAuthFetch`, `handleRedirectCallback`);
//!   `completePopupCallback` is plain JS (`js/popup-callback.js`), re-exported by the package.
//!
//! Everything is compiled for `wasm32` only; a native build of the workspace sees an empty crate.
#![cfg(target_arch = "wasm32")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod authorizer;
pub mod crypto;
pub mod dpop;
pub mod env;
pub mod error;
pub mod fetch;
pub mod idb;
pub mod locks;
pub mod mediate;
pub mod provider;
pub mod share;
pub mod store;

pub use env::DateClock;
pub use error::{Error, JsError};
pub use fetch::FetchClient;
pub use mediate::MediatedHttp;
pub use store::{BrowserStore, StorageMode, StoreOptions};
