//! The orchestrating client against a scripted authorization server and MCP resource (a fake
//! transport: the right tier for core tests; the real servers are exercised in tests/).
//! Runs natively and, under wasm-bindgen-test, on wasm32.

#![allow(clippy::unwrap_used, clippy::await_holding_refcell_ref)] // test scaffolding

use std::cell::RefCell;
use std::collections::BTreeMap;

use edge_oauth_core::env::{ManualClock, RandomSource};
use edge_oauth_core::pkce::s256_challenge;
use edge_oauth_core::registration::ClientMetadata;
use edge_oauth_core::{
    Authorizer, ClientConfig, CredentialStore, Error, HttpClient, HttpRequest, HttpResponse,
    MemoryStore, OAuthClient, Recovery, Result, TransportError, Url,
};
use serde_json::json;

const MCP: &str = "https://mcp.example.com/mcp";
const REDIRECT: &str = "http://127.0.0.1:7777/callback";

#[derive(Default)]
struct World {
    issuer: String,
    required_scope: String,
    supports_s256: bool,
    next: u32,
    challenges: BTreeMap<String, (String, Option<String>)>, // code -> (challenge, scope)
    access: BTreeMap<String, String>,                       // token -> scope
    refresh: BTreeMap<String, String>,                      // live refresh token -> scope
    token_failure: Option<HttpResponse>,
    authorize_urls: Vec<Url>,
    registrations: Vec<String>,
    iss_override: Option<String>,
    cimd: bool,
    prm_status: Option<u16>,
    prm_html: bool,
    prm_scopes: Vec<String>,
    not_granted: Vec<String>,
    forgotten_clients: Vec<String>,
    state_override: Option<String>,
    log: Vec<String>,
    /// The Authorization header of each token-endpoint request.
    token_auth: Vec<Option<String>>,
    /// The redirect URIs of each registration.
    registered_redirects: Vec<Vec<String>>,
    /// What the protected resource metadata names as `resource` (default: the MCP URL).
    prm_resource: Option<String>,
    /// Token requests take a turn of the executor (lets concurrent flows interleave).
    slow_token: bool,
    /// So do requests to the MCP server.
    slow_mcp: bool,
    /// Rotation also revokes the access tokens issued with the old refresh token.
    revoke_access_on_rotation: bool,
}

struct Fake(RefCell<World>);

fn as_base(issuer: &str) -> String {
    issuer.trim_end_matches('/').to_owned()
}

impl Fake {
    fn new() -> Self {
        Fake(RefCell::new(World {
            issuer: "https://as.example.com/tenant".into(),
            required_scope: "mcp:tools".into(),
            supports_s256: true,
            prm_scopes: vec!["mcp:tools".into()],
            ..World::default()
        }))
    }

    /// The resource moves to another authorization server; the old tokens stop working.
    fn move_to(&self, issuer: &str) {
        let mut w = self.0.borrow_mut();
        w.issuer = issuer.into();
        w.access.clear();
        w.refresh.clear();
    }

    fn issue(w: &mut World, scope: Option<String>) -> HttpResponse {
        w.next += 1;
        let at = format!("at-{}", w.next);
        let rt = format!("rt-{}", w.next);
        // The AS grants only the scopes it knows.
        let known = ["mcp:tools", "mcp:admin", "offline_access", "mcp:read"];
        let not_granted = w.not_granted.clone();
        let scope = scope
            .unwrap_or_default()
            .split(' ')
            .filter(|s| known.contains(s) && !not_granted.iter().any(|n| n == s))
            .collect::<Vec<_>>()
            .join(" ");
        w.access.insert(at.clone(), scope.clone());
        w.refresh.insert(rt.clone(), scope.clone());
        HttpResponse::json(
            200,
            &json!({"access_token": at, "token_type": "bearer", "expires_in": 3600, "refresh_token": rt, "scope": scope}),
        )
    }

    fn handle(&self, r: &HttpRequest) -> HttpResponse {
        let mut w = self.0.borrow_mut();
        w.log.push(format!("{} {}", r.method.as_str(), r.url));
        let issuer = w.issuer.clone();
        let form: BTreeMap<String, String> = r.form_pairs().into_iter().collect();
        let url = r.url.as_str();
        if url == MCP {
            let token = r
                .header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::to_owned);
            let prm = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
            return match token.and_then(|t| w.access.get(&t).cloned()) {
                None => HttpResponse::new(
                    401,
                    vec![(
                        "WWW-Authenticate".into(),
                        format!("Bearer error=\"invalid_token\", resource_metadata=\"{prm}\""),
                    )],
                    "",
                ),
                Some(granted) => {
                    let missing: Vec<&str> = w
                        .required_scope
                        .split(' ')
                        .filter(|s| !granted.split(' ').any(|g| g == *s))
                        .collect();
                    if missing.is_empty() {
                        HttpResponse::json(200, &json!({"ok": true}))
                    } else {
                        let header = format!(
                            "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{prm}\"",
                            w.required_scope
                        );
                        HttpResponse::new(403, vec![("WWW-Authenticate".into(), header)], "")
                    }
                }
            };
        }
        if let Some(status) = w
            .prm_status
            .filter(|_| url.contains("/.well-known/oauth-protected-resource"))
        {
            return HttpResponse::new(status, vec![], "unavailable");
        }
        if w.prm_html && url == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp" {
            // A single-page app answering every path with its index.
            return HttpResponse::new(
                200,
                vec![("content-type".into(), "text/html".into())],
                "<!doctype html>",
            );
        }
        if url == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
            || (w.prm_html && url == "https://mcp.example.com/.well-known/oauth-protected-resource")
        {
            let resource = w.prm_resource.clone().unwrap_or_else(|| MCP.into());
            return HttpResponse::json(
                200,
                &json!({"resource": resource, "authorization_servers": [issuer], "scopes_supported": w.prm_scopes}),
            );
        }
        let base = as_base(&issuer);
        let origin = Url::parse(&issuer).unwrap().origin().ascii_serialization();
        let path = Url::parse(&issuer)
            .unwrap()
            .path()
            .trim_end_matches('/')
            .to_owned();
        if url == format!("{origin}/.well-known/oauth-authorization-server{path}") {
            let methods = if w.supports_s256 {
                json!(["S256"])
            } else {
                json!(["plain"])
            };
            return HttpResponse::json(
                200,
                &json!({
                    "issuer": issuer,
                    "authorization_endpoint": format!("{base}/authorize"),
                    "token_endpoint": format!("{base}/token"),
                    "registration_endpoint": format!("{base}/register"),
                    "revocation_endpoint": format!("{base}/revoke"),
                    "code_challenge_methods_supported": methods,
                    "scopes_supported": ["mcp:tools", "mcp:admin", "offline_access"],
                    "token_endpoint_auth_methods_supported": ["none"],
                    "authorization_response_iss_parameter_supported": true,
                    "client_id_metadata_document_supported": w.cimd,
                }),
            );
        }
        if url == format!("{base}/register") {
            w.next += 1;
            let id = format!("client-{}", w.next);
            w.registrations.push(id.clone());
            let body: serde_json::Value =
                serde_json::from_slice(r.body.as_deref().unwrap_or_default()).unwrap();
            let redirects = body["redirect_uris"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap().to_owned())
                .collect();
            w.registered_redirects.push(redirects);
            return HttpResponse::json(
                201,
                &json!({"client_id": id, "token_endpoint_auth_method": "none"}),
            );
        }
        if url == format!("{base}/token") {
            w.token_auth
                .push(r.header("authorization").map(str::to_owned));
            if let Some(f) = w.token_failure.clone() {
                return f;
            }
            if form
                .get("client_id")
                .is_some_and(|id| w.forgotten_clients.contains(id))
            {
                return HttpResponse::json(401, &json!({"error": "invalid_client"}));
            }
            return match form.get("grant_type").map(String::as_str) {
                Some("authorization_code") => {
                    let code = form.get("code").cloned().unwrap_or_default();
                    let Some((challenge, scope)) = w.challenges.remove(&code) else {
                        return HttpResponse::json(400, &json!({"error": "invalid_grant"}));
                    };
                    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                    if s256_challenge(&verifier) != challenge
                        || form.get("resource").map(String::as_str) != Some(MCP)
                    {
                        return HttpResponse::json(400, &json!({"error": "invalid_grant"}));
                    }
                    Fake::issue(&mut w, scope)
                }
                Some("refresh_token") => {
                    let rt = form.get("refresh_token").cloned().unwrap_or_default();
                    match w.refresh.remove(&rt) {
                        Some(scope) => {
                            if w.revoke_access_on_rotation {
                                w.access.clear();
                            }
                            Fake::issue(&mut w, Some(scope))
                        }
                        None => HttpResponse::json(400, &json!({"error": "invalid_grant"})),
                    }
                }
                _ => HttpResponse::json(400, &json!({"error": "unsupported_grant_type"})),
            };
        }
        if url == format!("{base}/revoke") {
            let t = form.get("token").cloned().unwrap_or_default();
            w.refresh.remove(&t);
            w.access.remove(&t);
            return HttpResponse::new(200, vec![], "");
        }
        HttpResponse::new(404, vec![], "not found")
    }
}

impl HttpClient for Fake {
    async fn send(
        &self,
        request: HttpRequest,
    ) -> std::result::Result<HttpResponse, TransportError> {
        let slow = {
            let w = self.0.borrow();
            (w.slow_token && request.url.ends_with("/token")) || (w.slow_mcp && request.url == MCP)
        };
        if slow {
            YieldOnce(false).await;
        }
        Ok(self.handle(&request))
    }
}

/// Returns `Pending` once (waking itself), so another future gets a turn.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// Runs two futures concurrently on one thread (two processes sharing a store).
async fn join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |cx| {
        if ra.is_none()
            && let std::task::Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let std::task::Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Plays the user: approves at once, answering as the AS would (code, state, iss).
struct Approve<'a>(&'a Fake);

impl Authorizer for Approve<'_> {
    fn redirect_uri(&self) -> String {
        REDIRECT.into()
    }
    async fn authorize(&self, url: &Url) -> Result<String> {
        let mut w = self.0.0.borrow_mut();
        let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        w.authorize_urls.push(url.clone());
        w.next += 1;
        let code = format!("code-{}", w.next);
        w.challenges.insert(
            code.clone(),
            (q["code_challenge"].clone(), q.get("scope").cloned()),
        );
        let state = w
            .state_override
            .clone()
            .unwrap_or_else(|| q["state"].clone());
        let iss = w.iss_override.clone().unwrap_or_else(|| w.issuer.clone());
        let mut cb = Url::parse(&q["redirect_uri"]).unwrap();
        cb.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state)
            .append_pair("iss", &iss);
        Ok(cb.to_string())
    }
}

struct Counter(std::cell::Cell<u8>);
impl RandomSource for Counter {
    fn fill_bytes(&self, d: &mut [u8]) -> Result<()> {
        for b in d {
            self.0.set(self.0.get().wrapping_add(13));
            *b = self.0.get();
        }
        Ok(())
    }
}

type Client<'a> = OAuthClient<&'a Fake, MemoryStore, Approve<'a>, Counter, &'a ManualClock>;

fn client_with<'a>(fake: &'a Fake, clock: &'a ManualClock, config: ClientConfig) -> Client<'a> {
    OAuthClient::new(
        fake,
        MemoryStore::new(),
        Approve(fake),
        Counter(Default::default()),
        clock,
        config,
    )
}

fn client<'a>(fake: &'a Fake, clock: &'a ManualClock) -> Client<'a> {
    client_with(
        fake,
        clock,
        ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT)),
    )
}

/// The query of the `i`th authorization request.
fn authorize_query(fake: &Fake, i: usize) -> BTreeMap<String, String> {
    fake.0.borrow().authorize_urls[i]
        .query_pairs()
        .into_owned()
        .collect()
}

fn call() -> HttpRequest {
    HttpRequest::post_json(
        MCP,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
}

/// Drives a future whose I/O completes at once (the fake transport) to the end.
#[cfg(not(target_arch = "wasm32"))]
fn run<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

macro_rules! flow_test {
    ($name:ident, $body:expr) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            run($body)
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            $body.await
        }
    };
}

flow_test!(challenge_to_tool_call, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    let resp = c.send(call()).await.unwrap();
    assert_eq!(resp.status, 200);
    let w = fake.0.borrow();
    assert_eq!(
        w.log[..5],
        [
            format!("POST {MCP}"),
            "GET https://mcp.example.com/.well-known/oauth-protected-resource/mcp".into(),
            "GET https://as.example.com/.well-known/oauth-authorization-server/tenant".into(),
            "POST https://as.example.com/tenant/register".into(),
            "POST https://as.example.com/tenant/token".into(),
        ]
    );
    let q = authorize_query(&fake, 0);
    assert_eq!(q["resource"], MCP);
    assert_eq!(q["code_challenge_method"], "S256");
    // PRM scopes, plus offline_access because the AS lists it.
    assert_eq!(q["scope"], "mcp:tools offline_access");
    drop(w);
    // The stored token is reused: no second authorization.
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    assert_eq!(fake.0.borrow().authorize_urls.len(), 1);
});

flow_test!(proactive_refresh_rotates, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    c.send(call()).await.unwrap();
    let s1 = c.store().load_session(MCP).await.unwrap().unwrap();
    clock.advance(3600 - 59); // inside the 60 s buffer
    let at2 = c.access_token(MCP).await.unwrap().unwrap();
    assert_ne!(at2, s1.tokens.access_token);
    let s2 = c.store().load_session(MCP).await.unwrap().unwrap();
    assert_ne!(s2.tokens.refresh_token, s1.tokens.refresh_token);
    assert_eq!(s2.tokens.expires_at, Some(clock_now(&clock) + 3600));
    // The first refresh token is dead; the rotated one works.
    assert!(
        !fake
            .0
            .borrow()
            .refresh
            .contains_key(s1.tokens.refresh_token.as_ref().unwrap().secret())
    );
    let s3 = c.refresh(&s2).await.unwrap();
    assert_ne!(s3.tokens.refresh_token, s2.tokens.refresh_token);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
});

fn clock_now(c: &ManualClock) -> u64 {
    use edge_oauth_core::env::Clock;
    c.now()
}

flow_test!(transient_refresh_failure_loses_nothing, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    c.send(call()).await.unwrap();
    let before = c.store().load_session(MCP).await.unwrap().unwrap();
    let mut busy = HttpResponse::json(503, &json!({"error": "temporarily_unavailable"}));
    busy.headers.push(("Retry-After".into(), "30".into()));
    fake.0.borrow_mut().token_failure = Some(busy);
    clock.advance(3600 - 30);
    // Still valid: the current token is returned, nothing is dropped.
    assert_eq!(
        c.access_token(MCP).await.unwrap().unwrap(),
        before.tokens.access_token
    );
    clock.advance(60);
    let e = c.access_token(MCP).await.unwrap_err();
    assert_eq!(
        (e.recovery(), e.retry_after()),
        (Recovery::Transient, Some(30))
    );
    assert_eq!(c.store().load_session(MCP).await.unwrap().unwrap(), before);
    // The server recovers: the kept refresh token still works.
    fake.0.borrow_mut().token_failure = None;
    assert!(c.access_token(MCP).await.unwrap().is_some());
});

flow_test!(rejected_refresh_token_needs_reauthentication, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    c.send(call()).await.unwrap();
    fake.0.borrow_mut().refresh.clear(); // e.g. revoked after reuse detection
    clock.advance(3600);
    assert_eq!(c.access_token(MCP).await.unwrap(), None);
    assert!(c.store().load_session(MCP).await.unwrap().is_none());
    // The next call authorizes again.
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    assert_eq!(fake.0.borrow().authorize_urls.len(), 2);
});

flow_test!(step_up_is_capped, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    // A resource that wants a scope the AS never grants.
    fake.0.borrow_mut().required_scope = "mcp:tools never:granted".into();
    let e = c.send(call()).await.unwrap_err();
    assert_eq!(e, Error::StepUpLimit { attempts: 3 });
    let w = fake.0.borrow();
    assert_eq!(w.authorize_urls.len(), 3);
    let q = authorize_query(&fake, 2);
    assert_eq!(q["scope"], "mcp:tools never:granted offline_access");
});

flow_test!(new_authorization_server_means_new_registration, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    c.send(call()).await.unwrap();
    fake.move_to("https://other-as.example.com");
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let w = fake.0.borrow();
    assert_eq!(w.registrations.len(), 2);
    assert!(
        w.log
            .contains(&"POST https://other-as.example.com/register".to_owned())
    );
    let s = run_sync_session(&c);
    assert_eq!(s, "https://other-as.example.com");
});

fn run_sync_session(c: &Client<'_>) -> String {
    // MemoryStore answers at once; peek at it synchronously.
    c.store().sessions()[0].issuer.clone()
}

flow_test!(
    mix_up_and_csrf_are_refused_before_any_token_request,
    async {
        for (iss, state, code) in [
            (Some("https://evil.example.com"), None, "iss_mismatch"),
            (None, Some("forged"), "state_mismatch"),
        ] {
            let fake = Fake::new();
            let clock = ManualClock::new(1_000_000);
            {
                let mut w = fake.0.borrow_mut();
                w.iss_override = iss.map(str::to_owned);
                w.state_override = state.map(str::to_owned);
            }
            let c = client(&fake, &clock);
            let e = c.send(call()).await.unwrap_err();
            assert_eq!(e.code(), code);
            assert!(!fake.0.borrow().log.iter().any(|l| l.ends_with("/token")));
        }
    }
);

flow_test!(no_pkce_no_authorization, async {
    let fake = Fake::new();
    fake.0.borrow_mut().supports_s256 = false;
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    assert_eq!(
        c.send(call()).await.unwrap_err().code(),
        "pkce_not_supported"
    );
    assert!(fake.0.borrow().authorize_urls.is_empty());
});

flow_test!(logout_revokes_then_deletes, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    c.send(call()).await.unwrap();
    let out = c.logout(MCP).await.unwrap();
    assert_eq!((out.deleted, out.revoked), (true, 2));
    assert!(fake.0.borrow().refresh.is_empty() && fake.0.borrow().access.is_empty());
    assert!(c.store().load_session(MCP).await.unwrap().is_none());
});

flow_test!(no_secret_in_debug_output, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    c.send(call()).await.unwrap();
    let s = c.store().load_session(MCP).await.unwrap().unwrap();
    let client_creds = c
        .store()
        .load_client("https://as.example.com/tenant")
        .await
        .unwrap()
        .unwrap();
    let secrets = [
        s.tokens.access_token.secret().to_owned(),
        s.tokens.refresh_token.clone().unwrap().secret().to_owned(),
    ];
    let debug = format!(
        "{s:?} {:?} {client_creds:?} {:?} {:?}",
        s.tokens,
        edge_oauth_core::token::refresh_token_request(
            &s.token_endpoint,
            &client_creds,
            s.tokens.refresh_token.as_ref().unwrap(),
            None,
            None
        ),
        Error::Transport {
            url: "u".into(),
            message: "m".into()
        },
    );
    for secret in &secrets {
        assert!(!debug.contains(secret.as_str()), "{debug}");
    }
    assert!(
        debug.contains("AccessToken([redacted])") && debug.contains("RefreshToken([redacted])")
    );
});

flow_test!(
    metadata_document_client_needs_no_registration_and_refreshes,
    async {
        let fake = Fake::new();
        fake.0.borrow_mut().cimd = true;
        let clock = ManualClock::new(1_000_000);
        let mut config = ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT));
        config.client_id_metadata_url = Some("https://app.example.com/oauth/client.json".into());
        let c = client_with(&fake, &clock, config);
        assert_eq!(c.send(call()).await.unwrap().status, 200);
        {
            let w = fake.0.borrow();
            assert!(w.registrations.is_empty());
            let q = authorize_query(&fake, 0);
            assert_eq!(q["client_id"], "https://app.example.com/oauth/client.json");
        }
        clock.advance(3600);
        let before = c.store().load_session(MCP).await.unwrap().unwrap();
        assert!(c.access_token(MCP).await.unwrap().is_some());
        let after = c.store().load_session(MCP).await.unwrap().unwrap();
        assert_ne!(after.tokens.refresh_token, before.tokens.refresh_token);
    }
);

flow_test!(a_metadata_outage_is_transient_not_a_downgrade, async {
    let fake = Fake::new();
    fake.0.borrow_mut().prm_status = Some(503);
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    let e = c.send(call()).await.unwrap_err();
    assert_eq!(
        (e.code(), e.recovery()),
        ("unexpected_status", Recovery::Transient)
    );
    let w = fake.0.borrow();
    // No 2025-03-26 fallback: no root AS metadata probe, no default endpoints, no authorization.
    assert!(w.authorize_urls.is_empty());
    assert!(
        !w.log
            .iter()
            .any(|l| l.contains("mcp.example.com/.well-known/oauth-authorization-server"))
    );
});

flow_test!(a_catch_all_html_page_is_skipped, async {
    let fake = Fake::new();
    fake.0.borrow_mut().prm_html = true;
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    assert!(
        fake.0.borrow().log.contains(
            &"GET https://mcp.example.com/.well-known/oauth-protected-resource".to_owned()
        )
    );
});

/// A store whose saves can be made to fail, with a lock every client sharing it sees.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail: std::cell::Cell<bool>,
    locked: std::rc::Rc<std::cell::Cell<bool>>,
}

impl CredentialStore for FlakyStore {
    async fn load_client(
        &self,
        issuer: &str,
    ) -> Result<Option<edge_oauth_core::registration::ClientCredentials>> {
        self.inner.load_client(issuer).await
    }
    async fn save_client(
        &self,
        client: &edge_oauth_core::registration::ClientCredentials,
    ) -> Result<()> {
        self.inner.save_client(client).await
    }
    async fn delete_client(&self, issuer: &str) -> Result<()> {
        self.inner.delete_client(issuer).await
    }
    async fn load_session(&self, server: &str) -> Result<Option<edge_oauth_core::Session>> {
        self.inner.load_session(server).await
    }
    async fn save_session(&self, session: &edge_oauth_core::Session) -> Result<()> {
        if self.fail.get() {
            return Err(Error::Store {
                message: "disk full".into(),
            });
        }
        self.inner.save_session(session).await
    }
    async fn delete_session(&self, server: &str) -> Result<()> {
        self.inner.delete_session(server).await
    }
    async fn lock_session(&self, _server: &str) -> Result<edge_oauth_core::store::StoreLock> {
        let locked = self.locked.clone();
        std::future::poll_fn(|cx| {
            if locked.get() {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        locked.set(true);
        Ok(edge_oauth_core::store::StoreLock::on_release(move || {
            locked.set(false)
        }))
    }
}

flow_test!(
    a_store_failure_does_not_lose_the_rotated_refresh_token,
    async {
        let fake = Fake::new();
        let clock = ManualClock::new(1_000_000);
        let config = ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT));
        let store = FlakyStore::default();
        let c = OAuthClient::new(
            &fake,
            store,
            Approve(&fake),
            Counter(Default::default()),
            &clock,
            config,
        );
        c.send(call()).await.unwrap();
        clock.advance(3600);
        c.store().fail.set(true);
        // The refresh succeeds at the AS (rotating the refresh token) but cannot be saved.
        let at = c
            .access_token(MCP)
            .await
            .unwrap()
            .expect("the new access token is served from memory");
        let live = fake.0.borrow().refresh.keys().cloned().collect::<Vec<_>>();
        assert_eq!(live.len(), 1);
        c.store().fail.set(false);
        // Next use saves it; the stored refresh token is the live (rotated) one.
        assert_eq!(c.access_token(MCP).await.unwrap(), Some(at));
        let stored = c.store().inner.load_session(MCP).await.unwrap().unwrap();
        assert_eq!(stored.tokens.refresh_token.unwrap().secret(), live[0]);
    }
);

flow_test!(a_refresh_lost_to_another_process_keeps_its_session, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    c.send(call()).await.unwrap();
    let stale = c.store().load_session(MCP).await.unwrap().unwrap();
    // Another process rotates first and saves its result.
    let newer = c.refresh(&stale).await.unwrap();
    let token_requests = fake.0.borrow().token_auth.len();
    // This process still holds the old session: refreshing it re-reads the store and takes
    // the newer session instead of replaying the rotated refresh token.
    assert_eq!(c.refresh(&stale).await.unwrap(), newer);
    assert_eq!(fake.0.borrow().token_auth.len(), token_requests);
    assert_eq!(c.store().load_session(MCP).await.unwrap(), Some(newer));
});

flow_test!(pre_registered_credentials_stay_with_their_issuer, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let mut config = ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT));
    config
        .pre_registered
        .push(edge_oauth_core::PreRegisteredClient {
            issuer: None,
            client_id: "pre-registered".into(),
            client_secret: Some(edge_oauth_core::ClientSecret::new("s3cret")),
            auth_method: None,
        });
    let c = client_with(&fake, &clock, config);
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    assert!(fake.0.borrow().registrations.is_empty());
    fake.move_to("https://other-as.example.com");
    fake.0.borrow_mut().log.clear();
    // The other AS gets a registration of its own; the bound client is not shown to it.
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let w = fake.0.borrow();
    assert_eq!(w.registrations.len(), 1);
    let q = authorize_query(&fake, 1);
    assert_ne!(q["client_id"], "pre-registered");
});

flow_test!(
    step_up_unions_with_what_was_requested_not_only_granted,
    async {
        let fake = Fake::new();
        {
            let mut w = fake.0.borrow_mut();
            w.prm_scopes = vec!["mcp:tools".into(), "mcp:read".into()];
            w.not_granted = vec!["mcp:read".into()]; // asked for, not granted (e.g. user unticked it)
        }
        let clock = ManualClock::new(1_000_000);
        let c = client(&fake, &clock);
        c.send(call()).await.unwrap();
        fake.0.borrow_mut().required_scope = "mcp:tools mcp:admin".into();
        assert_eq!(c.send(call()).await.unwrap().status, 200);
        let q = authorize_query(&fake, 1);
        assert_eq!(q["scope"], "mcp:tools mcp:admin offline_access mcp:read");
    }
);

flow_test!(a_client_the_server_forgot_is_registered_again, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    c.send(call()).await.unwrap();
    {
        let mut w = fake.0.borrow_mut();
        w.forgotten_clients = w.registrations.clone();
    }
    clock.advance(3600);
    // The session's tokens died with the client: authorization is needed again.
    assert_eq!(c.access_token(MCP).await.unwrap(), None);
    assert!(c.store().load_session(MCP).await.unwrap().is_none());
    assert!(
        c.store()
            .load_client("https://as.example.com/tenant")
            .await
            .unwrap()
            .is_none()
    );
    fake.0.borrow_mut().access.clear();
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    assert_eq!(fake.0.borrow().registrations.len(), 2);
});

flow_test!(an_unsaved_session_never_overwrites_a_newer_one, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let store = FlakyStore::default();
    let config = || ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT));
    // Two processes sharing one store.
    let a = OAuthClient::new(
        &fake,
        &store,
        Approve(&fake),
        Counter(Default::default()),
        &clock,
        config(),
    );
    let b = OAuthClient::new(
        &fake,
        &store,
        Approve(&fake),
        Counter(Default::default()),
        &clock,
        config(),
    );
    a.send(call()).await.unwrap();
    clock.advance(3600);
    store.fail.set(true);
    assert!(a.access_token(MCP).await.unwrap().is_some()); // rotated, held in A's memory only
    store.fail.set(false);
    // Meanwhile B logs in again and saves a newer session.
    fake.0.borrow_mut().access.clear();
    let newer = b
        .authorize(&Url::parse(MCP).unwrap(), None, None)
        .await
        .unwrap();
    // A sees B's session, not its stale copy.
    assert_eq!(a.load_session(MCP).await.unwrap(), Some(newer.clone()));
    assert_eq!(store.inner.load_session(MCP).await.unwrap(), Some(newer));
    assert!(a.flush().await.is_ok());
});

flow_test!(
    pre_registered_credentials_are_never_shown_to_another_server,
    async {
        let fake = Fake::new();
        let clock = ManualClock::new(1_000_000);
        let mut config = ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT));
        config
            .pre_registered
            .push(edge_oauth_core::PreRegisteredClient {
                issuer: Some("https://as.example.com/tenant".into()),
                client_id: "pre-registered".into(),
                client_secret: Some(edge_oauth_core::ClientSecret::new("s3cret")),
                auth_method: None,
            });
        let c = client_with(&fake, &clock, config);
        c.send(call()).await.unwrap();
        fake.move_to("https://other-as.example.com");
        // The other AS gets a registration of its own.
        assert_eq!(c.send(call()).await.unwrap().status, 200);
        let w = fake.0.borrow();
        assert_eq!(w.registrations.len(), 1);
        let q = authorize_query(&fake, 1);
        assert_ne!(q["client_id"], "pre-registered");
    }
);

/// A store shared by several clients (processes, tabs), with a lock they all see.
type SharedStore = FlakyStore;

fn shared_client<'a>(
    fake: &'a Fake,
    clock: &'a ManualClock,
    store: &'a SharedStore,
) -> OAuthClient<&'a Fake, &'a SharedStore, Approve<'a>, Counter, &'a ManualClock> {
    OAuthClient::new(
        fake,
        store,
        Approve(fake),
        Counter(Default::default()),
        clock,
        ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT)),
    )
}

fn refresh_requests(fake: &Fake) -> usize {
    fake.0
        .borrow()
        .log
        .iter()
        .filter(|l| l.ends_with("/token"))
        .count()
}

flow_test!(two_processes_sharing_a_store_refresh_once, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let store = SharedStore::default();
    let a = shared_client(&fake, &clock, &store);
    let b = shared_client(&fake, &clock, &store);
    a.send(call()).await.unwrap();
    let exchanges = refresh_requests(&fake);
    fake.0.borrow_mut().slow_token = true;
    clock.advance(3600);
    // Both need a refresh at once; the lock lets one through, the other re-reads the store.
    let (ta, tb) = join(a.access_token(MCP), b.access_token(MCP)).await;
    let (ta, tb) = (ta.unwrap().unwrap(), tb.unwrap().unwrap());
    assert_eq!(ta, tb);
    assert_eq!(refresh_requests(&fake) - exchanges, 1);
    // The rotated refresh token is the live one: nothing was replayed, nothing revoked.
    let stored = store.inner.load_session(MCP).await.unwrap().unwrap();
    assert!(
        fake.0
            .borrow()
            .refresh
            .contains_key(stored.tokens.refresh_token.unwrap().secret())
    );
    assert_eq!(b.send(call()).await.unwrap().status, 200);
});

flow_test!(
    a_401_on_a_superseded_token_retries_with_the_current_one,
    async {
        let fake = Fake::new();
        fake.0.borrow_mut().revoke_access_on_rotation = true;
        let clock = ManualClock::new(1_000_000);
        let store = SharedStore::default();
        let a = shared_client(&fake, &clock, &store);
        let b = shared_client(&fake, &clock, &store);
        a.send(call()).await.unwrap();
        let s = store.inner.load_session(MCP).await.unwrap().unwrap();
        let before = refresh_requests(&fake);
        // b's request is in flight with the current token when a refreshes, and the AS revokes
        // that token on rotation: b's 401 is answered with the token a just stored.
        fake.0.borrow_mut().slow_mcp = true;
        let (rb, ra) = join(b.send(call()), a.refresh(&s)).await;
        assert_eq!(rb.unwrap().status, 200);
        let newer = ra.unwrap();
        assert_eq!(refresh_requests(&fake) - before, 1);
        assert_eq!(store.inner.load_session(MCP).await.unwrap(), Some(newer));
        // b's second try carried a's new token.
        let log = fake.0.borrow().log.clone();
        // a: 401 + retry when logging in; b: 401 with the revoked token + retry.
        assert_eq!(log.iter().filter(|l| l.ends_with(MCP)).count(), 4);
    }
);

flow_test!(a_session_logged_out_elsewhere_does_not_come_back, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let store = FlakyStore::default();
    let c = OAuthClient::new(
        &fake,
        &store,
        Approve(&fake),
        Counter(Default::default()),
        &clock,
        ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT)),
    );
    c.send(call()).await.unwrap();
    clock.advance(3600);
    // A refresh this process cannot save: the rotated session waits in memory...
    store.fail.set(true);
    assert!(c.access_token(MCP).await.unwrap().is_some());
    store.fail.set(false);
    // ...while another process logs out.
    store.inner.delete_session(MCP).await.unwrap();
    assert_eq!(c.load_session(MCP).await.unwrap(), None);
    assert_eq!(c.access_token(MCP).await.unwrap(), None);
    assert_eq!(store.inner.load_session(MCP).await.unwrap(), None);
});

flow_test!(
    reauthorization_after_a_401_keeps_the_requested_scope,
    async {
        let fake = Fake::new();
        fake.0.borrow_mut().required_scope = "mcp:tools mcp:admin".into();
        let clock = ManualClock::new(1_000_000);
        let c = client(&fake, &clock);
        // Step-up to mcp:admin, then the AS forgets every token (no refresh possible).
        assert_eq!(c.send(call()).await.unwrap().status, 200);
        let n = fake.0.borrow().authorize_urls.len();
        {
            let mut w = fake.0.borrow_mut();
            w.access.clear();
            w.refresh.clear();
        }
        assert_eq!(c.send(call()).await.unwrap().status, 200);
        // A plain 401 → one new authorization that still asks for mcp:admin.
        assert_eq!(fake.0.borrow().authorize_urls.len(), n + 1);
        let scope = authorize_query(&fake, n)["scope"].clone();
        assert!(scope.split(' ').any(|s| s == "mcp:admin"), "{scope}");
        assert!(scope.split(' ').any(|s| s == "mcp:tools"), "{scope}");
    }
);

flow_test!(
    an_issuerless_pre_registered_secret_needs_a_stored_binding,
    async {
        let fake = Fake::new();
        let clock = ManualClock::new(1_000_000);
        let mut config = ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT));
        config
            .pre_registered
            .push(edge_oauth_core::PreRegisteredClient {
                issuer: None,
                client_id: "pre-registered".into(),
                client_secret: Some(edge_oauth_core::ClientSecret::new("s3cret")),
                auth_method: None,
            });
        // A fresh process finds a session under an issuer this client was never bound to.
        let c = client_with(&fake, &clock, config);
        let session = edge_oauth_core::Session {
            resource: MCP.into(),
            server: MCP.into(),
            issuer: "https://other-as.example.com".into(),
            client_id: "pre-registered".into(),
            token_endpoint: "https://as.example.com/tenant/token".into(),
            revocation_endpoint: None,
            requested_scope: None,
            tokens: edge_oauth_core::TokenSet {
                access_token: edge_oauth_core::AccessToken::new("at-x"),
                token_type: "Bearer".into(),
                refresh_token: Some(edge_oauth_core::RefreshToken::new("rt-x")),
                expires_at: Some(1),
                scope: None,
                received_at: 0,
            },
        };
        c.store().save_session(&session).await.unwrap();
        let _ = c.refresh(&session).await;
        let w = fake.0.borrow();
        assert_eq!(w.token_auth.len(), 1);
        assert_eq!(
            w.token_auth[0], None,
            "the secret went to an unbound issuer"
        );
    }
);

/// Receives callbacks at a path per issuer, like the CLI's loopback listener; `misroute`
/// delivers them at the fixed path instead (a response from another server's flow).
struct PerIssuer<'a>(&'a Fake, bool);

impl Authorizer for PerIssuer<'_> {
    fn redirect_uri(&self) -> String {
        REDIRECT.into()
    }
    fn redirect_uri_for(&self, issuer: &str) -> String {
        format!("{REDIRECT}/{}", edge_oauth_core::client::issuer_tag(issuer))
    }
    async fn authorize(&self, url: &Url) -> Result<String> {
        let cb = Approve(self.0).authorize(url).await?;
        Ok(if self.1 {
            cb.replacen(&format!("{REDIRECT}/"), &format!("{REDIRECT}?x="), 1)
        } else {
            cb
        })
    }
}

flow_test!(registered_clients_get_a_redirect_uri_per_issuer, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let config = ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT));
    let c = OAuthClient::new(
        &fake,
        MemoryStore::new(),
        PerIssuer(&fake, false),
        Counter(Default::default()),
        &clock,
        config.clone(),
    );
    assert_eq!(c.send(call()).await.unwrap().status, 200);
    let tag = edge_oauth_core::client::issuer_tag("https://as.example.com/tenant");
    assert_eq!(tag.len(), 16);
    let expected = format!("{REDIRECT}/{tag}");
    assert_eq!(
        fake.0.borrow().registered_redirects[0],
        vec![expected.clone()]
    );
    assert_eq!(authorize_query(&fake, 0)["redirect_uri"], expected);
    // A response delivered at another URI (another server's flow) is refused.
    let misrouted = OAuthClient::new(
        &fake,
        MemoryStore::new(),
        PerIssuer(&fake, true),
        Counter(Default::default()),
        &clock,
        config,
    );
    assert_eq!(
        misrouted.send(call()).await.unwrap_err().code(),
        "callback_mismatch"
    );
});

flow_test!(a_challenge_pointer_cannot_claim_the_whole_origin, async {
    let fake = Fake::new();
    fake.0.borrow_mut().prm_resource = Some("https://mcp.example.com".into());
    let clock = ManualClock::new(1_000_000);
    let c = client(&fake, &clock);
    assert_eq!(
        c.send(call()).await.unwrap_err().code(),
        "resource_mismatch"
    );
    assert!(fake.0.borrow().authorize_urls.is_empty());
    // Only the named opt-out accepts it, and the parsed value is what is sent.
    let mut config = ClientConfig::new(ClientMetadata::native("flow-test", REDIRECT));
    config.resource_policy = edge_oauth_core::discovery::ResourcePolicy::DangerousSameOriginParent;
    let c = client_with(&fake, &clock, config);
    let d = c.discover(&Url::parse(MCP).unwrap(), None).await.unwrap();
    assert_eq!(d.resource, "https://mcp.example.com");
});

flow_test!(a_redirect_flow_survives_a_new_page, async {
    let fake = Fake::new();
    let clock = ManualClock::new(1_000_000);
    let server = Url::parse(MCP).unwrap();
    let store = SharedStore::default();
    // Page 1 starts the flow and keeps only the serialised pending login.
    let page1 = shared_client(&fake, &clock, &store);
    let (url, pending) = page1
        .begin_authorization(&server, None, None)
        .await
        .unwrap();
    let saved = serde_json::to_string(&pending).unwrap();
    assert!(!saved.contains("s3cret"));
    drop(page1);
    let callback = Approve(&fake).authorize(&url).await.unwrap();
    // Page 2 (a new client over the same store) finishes it.
    let page2 = shared_client(&fake, &clock, &store);
    let pending: edge_oauth_core::client::PendingLogin = serde_json::from_str(&saved).unwrap();
    let session = page2
        .complete_authorization(&callback, pending.clone())
        .await
        .unwrap();
    assert_eq!(session.resource, MCP);
    assert_eq!(page2.send(call()).await.unwrap().status, 200);
    // A callback replayed after ten minutes is refused before any exchange.
    clock.advance(601);
    assert_eq!(
        page2
            .complete_authorization(&callback, pending)
            .await
            .unwrap_err()
            .code(),
        "authorization_expired"
    );
});

flow_test!(
    a_logout_waits_for_a_refresh_in_flight_and_stays_logged_out,
    async {
        let fake = Fake::new();
        let clock = ManualClock::new(1_000_000);
        let store = SharedStore::default();
        let a = shared_client(&fake, &clock, &store);
        let b = shared_client(&fake, &clock, &store);
        a.send(call()).await.unwrap();
        let s = store.inner.load_session(MCP).await.unwrap().unwrap();
        fake.0.borrow_mut().slow_token = true;
        // a refreshes (its token request in flight) while b logs out.
        let (refreshed, out) = join(a.refresh(&s), b.logout(MCP)).await;
        refreshed.unwrap();
        assert!(out.unwrap().deleted);
        // The refresh finished first and logout revoked what it saved: nothing comes back.
        assert_eq!(store.inner.load_session(MCP).await.unwrap(), None);
        assert!(
            fake.0.borrow().refresh.is_empty(),
            "a live refresh token survived the logout"
        );
    }
);

flow_test!(
    another_process_refresh_without_a_usable_access_token_is_refreshed_again,
    async {
        let fake = Fake::new();
        let clock = ManualClock::new(1_000_000);
        let store = SharedStore::default();
        let a = shared_client(&fake, &clock, &store);
        let b = shared_client(&fake, &clock, &store);
        a.send(call()).await.unwrap();
        let seen = store.inner.load_session(MCP).await.unwrap().unwrap();
        // a refreshes; the store hands its result to b without the access token (kept in a's
        // memory only), marked expired.
        let mut newer = a.refresh(&seen).await.unwrap();
        newer.tokens.access_token = edge_oauth_core::AccessToken::new("");
        newer.tokens.expires_at = Some(0);
        store.inner.save_session(&newer).await.unwrap();
        // b does not take the empty token: it refreshes with the current refresh token.
        let mine = b.refresh(&seen).await.unwrap();
        assert!(!mine.tokens.access_token.secret().is_empty());
        assert_ne!(mine.tokens.refresh_token, newer.tokens.refresh_token);
        assert_eq!(b.send(call()).await.unwrap().status, 200);
    }
);
