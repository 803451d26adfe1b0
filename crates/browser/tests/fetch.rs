//! The fetch transport, the clock and the random source in headless Chromium, and the core's
//! PKCE and state generation running on them.
//!
//! The round trips against a real server need tests/echo-server.mjs: run through
//! `tests/with-echo-server.sh` (as `make wasm-test` does), which passes its URL to the build.

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test scaffolding

mod common;

use common::*;
use edge_oauth_browser::env::OsRandom;
use edge_oauth_browser::{BrowserStore, DateClock, FetchClient, StoreOptions};
use edge_oauth_core::authorize::{
    AuthorizationRequest, PendingAuthorization, build_authorization_url,
};
use edge_oauth_core::discovery::AuthorizationServerMetadata;
use edge_oauth_core::env::Clock;
use edge_oauth_core::pkce::{Pkce, random_token, s256_challenge};
use edge_oauth_core::{HttpClient, HttpRequest, Method};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ECHO: Option<&str> = option_env!("EDGE_OAUTH_ECHO_URL");

fn echo(path: &str) -> Option<String> {
    match ECHO {
        Some(base) => Some(format!("{base}{path}")),
        None => {
            console_log!(
                "skipped: EDGE_OAUTH_ECHO_URL not set (run via tests/with-echo-server.sh)"
            );
            None
        }
    }
}

#[wasm_bindgen_test]
async fn gets_a_data_url() {
    let response = FetchClient
        .send(HttpRequest::get_json(
            "data:application/json,%7B%22a%22%3A1%7D",
        ))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.body, br#"{"a":1}"#);
}

#[wasm_bindgen_test]
async fn a_network_failure_names_the_url_and_no_secret() {
    // Port 1: refused at once (Chromium even refuses it as unsafe) -> fetch rejects.
    let url = "http://127.0.0.1:1/token";
    let request = HttpRequest::post_form(url, [("refresh_token", REFRESH)])
        .with_header("Authorization", format!("Basic {SECRET}"));
    let err = FetchClient.send(request).await.unwrap_err();
    assert!(err.message.contains(url), "{}", err.message);
    assert!(
        err.message.contains("network error or CORS refusal"),
        "{}",
        err.message
    );
    assert!(!err.message.contains(REFRESH) && !err.message.contains(SECRET));
}

#[wasm_bindgen_test]
async fn round_trip_with_method_headers_and_body() {
    let Some(url) = echo("/echo") else { return };
    let request = HttpRequest::post_form(&url, [("grant_type", "refresh_token"), ("x", "a b")])
        .with_header("Authorization", "Bearer at-123")
        .with_header("X-Test", "1");
    let response = FetchClient.send(request).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-echo"), Some("yes"));
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let seen: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body"], "grant_type=refresh_token&x=a+b");
    assert_eq!(seen["headers"]["authorization"], "Bearer at-123");
    assert_eq!(seen["headers"]["x-test"], "1");
    assert_eq!(
        seen["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    // credentials: "omit" and referrerPolicy: "no-referrer".
    assert!(seen["headers"].get("cookie").is_none());
    assert!(seen["headers"].get("referer").is_none());

    let delete = HttpRequest {
        method: Method::Delete,
        url,
        headers: Vec::new(),
        body: None,
    };
    let seen: serde_json::Value =
        serde_json::from_slice(&FetchClient.send(delete).await.unwrap().body).unwrap();
    assert_eq!(seen["method"], "DELETE");
    assert_eq!(seen["body"], "");
}

#[wasm_bindgen_test]
async fn an_http_error_status_is_a_response_not_a_transport_error() {
    let Some(url) = echo("/missing") else { return };
    let response = FetchClient.send(HttpRequest::get_json(url)).await.unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.body, br#"{"error":"not_found"}"#);
}

#[wasm_bindgen_test]
async fn a_redirect_is_refused_and_not_followed() {
    let (Some(url), Some(stats)) = (echo("/redirect"), echo("/stats")) else {
        return;
    };
    let err = FetchClient
        .send(HttpRequest::get_json(&url))
        .await
        .unwrap_err();
    assert!(err.message.contains("redirect"), "{}", err.message);
    assert!(err.message.contains(&url), "{}", err.message);
    let stats = FetchClient
        .send(HttpRequest::get_json(stats))
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert_eq!(stats["redirectTargetHits"], 0);
}

#[wasm_bindgen_test]
async fn a_cors_refusal_is_a_transport_error_naming_the_url() {
    let Some(url) = echo("/no-cors") else { return };
    let err = FetchClient
        .send(HttpRequest::get_json(&url))
        .await
        .unwrap_err();
    assert!(err.message.contains(&url), "{}", err.message);
    assert!(err.message.contains("CORS"), "{}", err.message);
}

#[wasm_bindgen_test]
fn pkce_matches_rfc_7636_and_verifiers_are_fresh() {
    // RFC 7636 Appendix B.
    assert_eq!(
        s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let a = Pkce::generate(&OsRandom).unwrap();
    let b = Pkce::generate(&OsRandom).unwrap();
    assert_eq!(a.verifier().secret().len(), 43);
    assert_ne!(a.verifier().secret(), b.verifier().secret());
    assert_eq!(a.challenge(), s256_challenge(a.verifier().secret()));
    let s1 = random_token(&OsRandom, 32).unwrap();
    let s2 = random_token(&OsRandom, 32).unwrap();
    assert_eq!(s1.len(), 43);
    assert_ne!(s1, s2);
}

#[wasm_bindgen_test]
async fn an_authorization_request_built_here_survives_the_redirect() {
    let metadata = AuthorizationServerMetadata {
        issuer: ISSUER.into(),
        authorization_endpoint: Some(format!("{ISSUER}/authorize")),
        token_endpoint: Some(format!("{ISSUER}/token")),
        code_challenge_methods_supported: Some(vec!["S256".into()]),
        ..Default::default()
    };
    let client = client(ISSUER);
    let request = AuthorizationRequest {
        metadata: &metadata,
        client: &client,
        redirect_uri: "https://app.example.com/cb",
        scope: Some("mcp:tools"),
        resource: Some(SERVER),
    };
    let (url, pending) = build_authorization_url(&request, &OsRandom, &DateClock).unwrap();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(param("state"), Some(pending.state.secret()));
    assert_eq!(
        param("code_challenge"),
        Some(s256_challenge(pending.code_verifier.secret()).as_str())
    );
    assert_eq!(param("code_challenge_method"), Some("S256"));
    assert!(pending.created_at.abs_diff(DateClock.now()) <= 1);

    // Kept encrypted under the state's hash, read back after the "redirect".
    let name = db_name("redirect");
    let store = BrowserStore::open(StoreOptions::new().db_name(&name)).await;
    let blob = serde_json::to_string(&pending).unwrap();
    store
        .save_pending(pending.state.secret(), &blob)
        .await
        .unwrap();
    let after = BrowserStore::open(StoreOptions::new().db_name(&name)).await;
    let state = param("state").unwrap();
    let back: PendingAuthorization =
        serde_json::from_str(&after.load_pending(state).await.unwrap().unwrap()).unwrap();
    assert_eq!(back, pending);
}

#[wasm_bindgen_test]
fn date_clock_reads_date_now_in_seconds() {
    let now = DateClock.now();
    let js = (js_sys::Date::now() / 1000.0) as u64;
    assert!(now.abs_diff(js) <= 1);
    assert!(now > 1_700_000_000, "{now}");
}
