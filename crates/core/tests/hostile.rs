//! Every parser takes hostile input without panicking: property tests over callback URLs,
//! JSON bodies and headers.
#![cfg(not(target_arch = "wasm32"))]

use edge_oauth_core::authorize::{PendingAuthorization, validate_callback};
use edge_oauth_core::discovery::{
    MetadataSource, ResourcePolicy, process_authorization_server_metadata,
    process_protected_resource_metadata,
};
use edge_oauth_core::env::ManualClock;
use edge_oauth_core::registration::{ClientMetadata, process_registration_response};
use edge_oauth_core::token::process_token_response;
use edge_oauth_core::www_authenticate::{parse_bearer, parse_challenges};
use edge_oauth_core::{CodeVerifier, HttpResponse, State, Url};
use proptest::prelude::*;

fn pending() -> PendingAuthorization {
    PendingAuthorization {
        state: State::new("s".repeat(43)),
        code_verifier: CodeVerifier::new("v".repeat(43)),
        issuer: "https://as.example.com".into(),
        iss_required: true,
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        client_id: "c".into(),
        resource: None,
        scope: None,
        created_at: 0,
    }
}

fn body(status: u16, ct: &str, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::new(status, vec![("content-type".into(), ct.into())], bytes)
}

/// JSON-ish text: valid documents with odd values, and garbage.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        ".{0,40}".prop_map(serde_json::Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("access_token".to_owned()),
                    Just("token_type".to_owned()),
                    Just("expires_in".to_owned()),
                    Just("refresh_token".to_owned()),
                    Just("issuer".to_owned()),
                    Just("resource".to_owned()),
                    Just("client_id".to_owned()),
                    Just("error".to_owned()),
                    Just("code_challenge_methods_supported".to_owned()),
                    Just("token_endpoint".to_owned()),
                    ".{0,10}"
                ],
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        value.prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn callback_urls(s in ".{0,300}", q in "[a-z_=&%0-9A-F?#]{0,200}") {
        let _ = validate_callback(&s, pending(), &ManualClock::new(0));
        let _ = validate_callback(&format!("http://127.0.0.1:9/cb?{q}"), pending(), &ManualClock::new(0));
    }

    #[test]
    fn www_authenticate(s in ".{0,300}", t in "[ ,=\"\\\\a-zA-Z_]{0,120}") {
        let _ = parse_challenges(&s);
        let _ = parse_bearer(&s);
        let _ = parse_challenges(&format!("Bearer {t}"));
        let _ = parse_bearer(&format!("Bearer {t}"));
    }

    #[test]
    fn token_responses(b in jsonish(), status in prop_oneof![Just(200u16), Just(400), Just(401), Just(503), 100u16..600]) {
        let clock = ManualClock::new(u64::MAX - 5);
        for ct in ["application/json", "text/html", ""] {
            let r = body(status, ct, b.clone());
            if let Err(e) = process_token_response(&r, "https://as/token", &clock, None, None) {
                let _ = (e.code(), e.recovery(), e.to_string());
            }
        }
    }

    #[test]
    fn metadata_and_registration(b in jsonish(), status in 100u16..600) {
        let server = Url::parse("https://mcp.example.com/mcp").unwrap();
        let r = body(status, "application/json", b);
        let _ = process_authorization_server_metadata(&r, "u", "https://as.example.com");
        for source in [MetadataSource::Challenge, MetadataSource::PathInserted, MetadataSource::Root] {
            let _ = process_protected_resource_metadata(&r, "u", &server, source, ResourcePolicy::DangerousSameOriginParent);
        }
        let _ = process_registration_response(&r, "u", "https://as", &ClientMetadata::native("n", "http://127.0.0.1/cb"));
    }
}
