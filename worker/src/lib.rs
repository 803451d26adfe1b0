//! # edge-oauth-worker
//!
//! A Cloudflare Worker that mediates OAuth tokens for browser MCP clients (RFC 10017's
//! token-mediating backend): `POST /token` exchanges a code with the worker's confidential
//! client credentials and keeps the refresh token in a Durable Object per session, handing the
//! page an access token and an opaque session handle; a refresh with that handle happens inside
//! the session's Durable Object, one at a time; `POST /revoke` ends a session upstream.
//!
//! The backend-for-frontend (`/bff/*`): the worker is the confidential client, the page holds
//! only a sealed session cookie, and `/bff/mcp/<name>` proxies to configured MCP servers with
//! the session's access token. `GET /relay` serves configured issuers' metadata with CORS.
//!
//! Every request and response to the authorization server goes through `edge-oauth-core`.
//! The modules other than `entry`, `bff_entry`, `durable`, `fetch` and `seal` are plain Rust
//! and tested natively; those exist only on wasm32.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bff;
pub mod config;
pub mod cookie;
pub mod dpop;
pub mod error;
pub mod form;
pub mod lock;
pub mod proxy;
pub mod ratelimit;
pub mod relay;
pub mod reply;
pub mod session;

#[cfg(target_arch = "wasm32")]
mod bff_entry;
#[cfg(target_arch = "wasm32")]
mod dpop_key;
#[cfg(target_arch = "wasm32")]
mod durable;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod fetch;
#[cfg(target_arch = "wasm32")]
mod seal;
#[cfg(target_arch = "wasm32")]
mod signer;

pub use config::{Config, ConfigError};
pub use error::ProxyError;
