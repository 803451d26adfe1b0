//! # edge-oauth-core
//!
//! A sans-IO OAuth 2.1 client core for MCP clients, built for `wasm32-unknown-unknown` and
//! native alike. Each protocol step is a pair: a function that builds the request as data and
//! a function that checks the response. [`client::OAuthClient`] drives them over an
//! [`http::HttpClient`] whose futures are not `Send`; time ([`env::Clock`]) and randomness
//! ([`env::RandomSource`]) are injected.
//!
//! Specifications: OAuth 2.1 (draft), RFC 6749, 6750, 7009, 7515, 7523, 7591, 7636, 7638, 8252,
//! 8414, 8628, 8693, 8707, 9207, 9449, 9700, 9728, the MCP authorization specification
//! (2025-11-25, 2026-07-28) and its extensions (client credentials, workload identity
//! federation, enterprise-managed authorization, DPoP).
//!
//! ```no_run
//! # async fn demo(http: impl edge_oauth_core::HttpClient) -> edge_oauth_core::Result<()> {
//! use edge_oauth_core::{discovery, authorize, token, env::*, registration::*};
//! let server = edge_oauth_core::Url::parse("https://mcp.example.com/mcp").unwrap();
//! let d = discovery::discover(&http, &server, None, &mut Vec::new()).await?;
//! let client = metadata_document_client(&d.authorization_server.issuer,
//!     "https://app.example.com/oauth/client.json", "https://app.example.com/cb")?;
//! let req = authorize::AuthorizationRequest { metadata: &d.authorization_server, client: &client,
//!     redirect_uri: "https://app.example.com/cb", scope: None, resource: Some(&d.resource) };
//! let (url, pending) = authorize::build_authorization_url(&req, &OsRandom, &SystemClock)?;
//! # let callback_url = url.to_string();
//! let validated = authorize::validate_callback(&callback_url, pending, &SystemClock)?;
//! let request = token::authorization_code_request(
//!     d.authorization_server.token_endpoint.as_deref().unwrap_or_default(), &client, validated)?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod authorize;
pub mod client;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod env;
pub mod error;
pub mod grants;
pub mod http;
pub mod json;
pub mod jws;
pub mod pkce;
pub mod registration;
pub mod scope;
pub mod secret;
pub mod store;
pub mod token;
pub mod url;
pub mod www_authenticate;

pub use client::{
    Authorizer, ClientConfig, IdentityAssertionGrant, NonInteractiveGrant, OAuthClient,
    PreRegisteredClient,
};
pub use dpop::DpopPolicy;
pub use error::{Error, OAuthError, OAuthErrorCode, Recovery, Result};
pub use http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
pub use jws::{JwsAlgorithm, JwsSigner, PublicJwk, Signer};
pub use secret::{
    AccessToken, AuthorizationCode, ClientAssertion, ClientSecret, CodeVerifier, DpopProof,
    IdToken, JwtAssertion, RefreshToken, State,
};
pub use store::{CredentialStore, MemoryStore, Session};
pub use token::TokenSet;
pub use url::Url;
