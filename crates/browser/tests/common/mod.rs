//! Fixtures shared by the browser tests.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a part; test scaffolding

use edge_oauth_browser::env::OsRandom;
use edge_oauth_core::pkce::random_token;
use edge_oauth_core::registration::{
    ClientCredentials, RegistrationSource, TokenEndpointAuthMethod,
};
use edge_oauth_core::{AccessToken, ClientSecret, RefreshToken, Session, TokenSet};

pub const SERVER: &str = "https://mcp.example.com/mcp";
pub const OTHER_SERVER: &str = "https://other.example.com/mcp";
pub const ISSUER: &str = "https://as.example.com";
pub const ACCESS: &str = "at-8f2c1e9d4b7a6053-access";
pub const REFRESH: &str = "rt-3d9a7c2e1f0b8465-refresh";
pub const SECRET: &str = "cs-5e1b9d3f7a2c8064-secret";

/// A database name no other test uses.
pub fn db_name(test: &str) -> String {
    format!(
        "edge-oauth-test-{test}-{}",
        random_token(&OsRandom, 16).unwrap()
    )
}

pub fn tokens(access: &str, refresh: &str, received_at: u64) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(access),
        token_type: "Bearer".into(),
        refresh_token: Some(RefreshToken::new(refresh)),
        expires_at: Some(received_at + 3600),
        scope: Some("mcp:tools".into()),
        received_at,
    }
}

pub fn session(server: &str) -> Session {
    Session {
        resource: server.into(),
        server: server.into(),
        issuer: ISSUER.into(),
        client_id: "client-1".into(),
        token_endpoint: format!("{ISSUER}/token"),
        revocation_endpoint: Some(format!("{ISSUER}/revoke")),
        requested_scope: Some("mcp:tools".into()),
        tokens: tokens(ACCESS, REFRESH, 1_700_000_000),
    }
}

pub fn client(issuer: &str) -> ClientCredentials {
    ClientCredentials {
        issuer: issuer.into(),
        client_id: "client-1".into(),
        client_secret: Some(ClientSecret::new(SECRET)),
        auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
        source: RegistrationSource::Dynamic,
        redirect_uris: vec!["https://app.example.com/cb".into()],
        secret_expires_at: None,
        registration_access_token: None,
    }
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
