//! The CLI end to end against a real authorization server (oidc-provider 9: DCR, PKCE S256,
//! RFC 9207 `iss`, resource indicators with JWT access tokens, refresh rotation with reuse
//! detection, revocation, device flow, client credentials, DPoP) protecting a real MCP server
//! (MCP TypeScript SDK).
//! Started from tests/peers; needs `node` and `npm ci` there (.ci/bootstrap.sh does both).

#![allow(clippy::unwrap_used)] // test scaffolding: a failed step should stop the test

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_edge-oauth");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The peer stack; killed on drop.
struct Stack {
    child: Child,
    issuer: String,
    mcp: String,
    /// The whole ready line (machine client credentials with --machine-clients).
    ready: Value,
}

impl Stack {
    fn start(extra: &[&str]) -> Stack {
        let peers = repo_root().join("tests/peers");
        assert!(
            peers.join("node_modules/oidc-provider").exists(),
            "tests/peers has no node_modules: run .ci/bootstrap.sh (make test does)"
        );
        let mut child = Command::new("node")
            .arg("mcp-stack.mjs")
            .arg("--quiet")
            .args(extra)
            .current_dir(&peers)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node must be on PATH");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer ready line {line:?}: {e}"));
        Stack {
            child,
            issuer: v["issuer"].as_str().unwrap().into(),
            mcp: v["mcp"].as_str().unwrap().into(),
            ready: v,
        }
    }

    fn stats(&self) -> Value {
        http("GET", &format!("{}/test/stats", self.issuer), None).1
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking HTTP client over the CLI's own dependency (reqwest), for assertions.
fn http(method: &str, url: &str, form: Option<&[(&str, &str)]>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut req = c.request(method.parse().unwrap(), url);
        if let Some(f) = form {
            let body: String = f
                .iter()
                .map(|(k, v)| format!("{k}={}", url_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Cli {
    store: PathBuf,
}

impl Cli {
    fn new(name: &str) -> Cli {
        let store =
            std::env::temp_dir().join(format!("edge-oauth-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        Cli { store }
    }

    /// Runs the CLI; returns (success, stdout, stderr).
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN)
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .output()
            .unwrap();
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        (out.status.success(), o, e)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, o, e) = self.run(args);
        assert!(ok, "edge-oauth {args:?} failed\nstdout:\n{o}\nstderr:\n{e}");
        o
    }

    /// The one stored session file, parsed (the test may read what the user's disk holds).
    fn session(&self) -> Value {
        let dir = self.store.join("sessions");
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "one session expected in {}", dir.display());
        serde_json::from_slice(&std::fs::read(files[0].path()).unwrap()).unwrap()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Starts the CLI in the background, killed after 60 s so a hung flow fails the test instead
/// of hanging it.
fn spawn_cli(store: &Path, args: &[&str]) -> Child {
    let child = Command::new(BIN)
        .arg("--store")
        .arg(store)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        // Only if that pid is still our CLI (not a reused pid).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("edge-oauth") {
            let _ = Command::new("kill").arg(&pid).status();
        }
    });
    child
}

/// Waits for a backgrounded `login`/`device` run and checks that it logged in.
fn expect_logged_in(mut child: Child) {
    let status = child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success() && out.contains("logged in"), "{out}");
}

/// Reads stderr lines until `pick` finds what it wants in one.
fn read_until<T>(stderr: &mut impl BufRead, pick: impl Fn(&str) -> Option<T>) -> T {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the CLI ended before printing what was expected"
        );
        if let Some(v) = pick(line.trim()) {
            return v;
        }
    }
}

fn grants(stack: &Stack, grant: &str) -> u64 {
    stack.stats()["token"]["by_grant_type"][grant]["ok"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn login_refresh_rotation_reuse_and_revocation() {
    let stack = Stack::start(&[]);
    let cli = Cli::new("flow");
    let mcp = stack.mcp.as_str();

    // discover: the trace names each URL and what the servers advertise.
    let out = cli.ok(&["discover", mcp]);
    assert!(
        out.contains("/.well-known/oauth-protected-resource/mcp"),
        "{out}"
    );
    assert!(
        out.contains("PKCE S256:     yes") && out.contains("iss (RFC 9207): yes"),
        "{out}"
    );

    // login: DCR, authorization with PKCE + resource + iss check, code exchange.
    let out = cli.ok(&["login", "--headless", mcp]);
    assert!(
        out.contains("logged in") && out.contains("refresh token: yes"),
        "{out}"
    );
    assert!(out.contains("access token:  expires"), "{out}");
    let s1 = cli.session();
    assert_eq!(s1["issuer"], stack.issuer.as_str());
    assert_eq!(s1["resource"], mcp);
    let rt1 = s1["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    let client_id = s1["client_id"].as_str().unwrap().to_owned();
    // Tokens are never printed.
    assert!(!out.contains(&rt1) && !out.contains(s1["tokens"]["access_token"].as_str().unwrap()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&cli.store).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    // The MCP server accepts the JWT access token (audience = the MCP URL, scope mcp:tools).
    let out = cli.ok(&["tools", mcp]);
    assert!(out.contains("echo") && out.contains("whoami"), "{out}");
    let out = cli.ok(&["call", mcp, "echo", r#"{"text":"hello from edge-oauth"}"#]);
    assert!(out.contains("hello from edge-oauth"), "{out}");

    // Two refreshes, each rotating the refresh token.
    let before = grants(&stack, "refresh_token");
    assert!(cli.ok(&["refresh", mcp]).contains("rotated:       yes"));
    let rt2 = cli.session()["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(cli.ok(&["refresh", mcp]).contains("rotated:       yes"));
    let rt3 = cli.session()["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(rt1 != rt2 && rt2 != rt3 && rt1 != rt3);
    assert_eq!(grants(&stack, "refresh_token"), before + 2);
    cli.ok(&["tools", mcp]);

    // Replaying a rotated refresh token is rejected ...
    let token_endpoint = s1["token_endpoint"].as_str().unwrap().to_owned();
    let (status, body) = http(
        "POST",
        &token_endpoint,
        Some(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("client_id", &client_id),
            ("resource", mcp),
        ]),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // ... and the server revokes the whole grant; the client sees invalid_grant, drops the
    // session and asks for a new authorization instead of looping.
    let (ok, _, err) = cli.run(&["refresh", mcp]);
    assert!(!ok && err.contains("invalid_grant"), "{err}");
    assert!(cli.run(&["refresh", mcp]).2.contains("no session"));

    // A new login, then logout revokes the refresh token at the server before deleting it.
    cli.ok(&["login", "--headless", mcp]);
    let rt = cli.session()["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked_before = stack.stats()["revocation"]["ok"].as_u64().unwrap_or(0);
    let out = cli.ok(&["logout", mcp]);
    assert!(out.contains("session deleted"), "{out}");
    assert!(stack.stats()["revocation"]["ok"].as_u64().unwrap_or(0) > revoked_before);
    let (status, body) = http(
        "POST",
        &token_endpoint,
        Some(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &client_id),
        ]),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(cli.ok(&["list"]).contains("no sessions"));
}

#[test]
fn short_lived_tokens_are_refreshed_before_use() {
    // 8 s access tokens: the 60 s buffer is capped at half the lifetime, so a token is
    // refreshed once it is 4 s old, and the fresh one serves the following requests.
    let stack = Stack::start(&["--access-token-ttl", "8"]);
    let cli = Cli::new("proactive");
    cli.ok(&["login", "--headless", &stack.mcp]);
    let before = grants(&stack, "refresh_token");
    cli.ok(&["tools", &stack.mcp]);
    assert_eq!(
        grants(&stack, "refresh_token"),
        before,
        "a fresh token is used as is"
    );
    std::thread::sleep(Duration::from_millis(4_500));
    let unauthorized_before = stack.stats()["mcp"]["unauthorized"].as_u64().unwrap_or(0);
    cli.ok(&["tools", &stack.mcp]); // server/discover (a 2025-11-25 server refuses it), initialize, initialized, tools/list
    assert_eq!(
        grants(&stack, "refresh_token"),
        before + 1,
        "one proactive refresh"
    );
    // No 401 was needed to find out.
    assert_eq!(
        stack.stats()["mcp"]["unauthorized"].as_u64().unwrap_or(0),
        unauthorized_before
    );
}

#[test]
fn device_flow() {
    let stack = Stack::start(&["--device-interval", "1"]);
    let cli = Cli::new("device");
    let mut child = spawn_cli(&cli.store, &["device", &stack.mcp]);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let user_code = read_until(&mut stderr, |l| {
        l.split("enter the code ")
            .nth(1)
            .map(|c| c.trim().to_owned())
    });
    let (status, body) = http(
        "POST",
        &format!("{}/test/device/approve", stack.issuer),
        Some(&[("user_code", &user_code)]),
    );
    assert_eq!(status, 200, "{body}");
    expect_logged_in(child);
    assert!(grants(&stack, "urn:ietf:params:oauth:grant-type:device_code") >= 1);
    assert!(cli.ok(&["tools", &stack.mcp]).contains("whoami"));
}

/// The interactive login: the CLI listens on a loopback port (RFC 8252) and prints the
/// authorization URL; this test plays the browser, following the AS's redirects with a cookie
/// jar until they point at the CLI's redirect URI, and then requests that callback.
#[test]
fn loopback_login_with_a_browser() {
    let stack = Stack::start(&[]);
    let cli = Cli::new("loopback");
    let mut child = spawn_cli(&cli.store, &["login", "--no-browser", &stack.mcp]);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let auth_url = read_until(&mut stderr, |l| l.starts_with("http").then(|| l.to_owned()));
    let redirect_uri = reqwest::Url::parse(&auth_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    // A dynamically registered client gets a callback path of its own for this issuer.
    let path = reqwest::Url::parse(&redirect_uri)
        .unwrap()
        .path()
        .to_owned();
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:")
            && path.starts_with("/callback/")
            && path.len() == "/callback/".len() + 16,
        "{redirect_uri}"
    );
    let state = reqwest::Url::parse(&auth_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let base = redirect_uri.trim_end_matches(&path[9..]).to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let page = rt.block_on(async {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap();
        // Requests to the listener that are not this authorization's response (no state, a
        // forged one) must not end the flow.
        // Nor may this flow's state delivered at another server's callback path.
        let elsewhere = format!("{base}?state={state}&code=x");
        for stray in [
            redirect_uri.clone(),
            format!("{redirect_uri}?state=forged&code=x"),
            format!("{redirect_uri}?error=access_denied&state=forged"),
            elsewhere,
        ] {
            let resp = browser.get(&stray).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 404, "stray request {stray:?}");
        }
        let mut url = reqwest::Url::parse(&auth_url).unwrap();
        for _ in 0..20 {
            if url.as_str().starts_with(&redirect_uri) {
                break;
            }
            let resp = browser.get(url.clone()).send().await.unwrap();
            assert!(
                resp.status().is_redirection(),
                "{} at {}",
                resp.status(),
                url.path()
            );
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            url = url.join(&location).unwrap();
        }
        assert!(
            url.as_str().starts_with(&redirect_uri),
            "never redirected back"
        );
        browser.get(url).send().await.unwrap().text().await.unwrap()
    });
    assert!(page.contains("You can close this window"), "{page}");
    expect_logged_in(child);
    assert!(cli.ok(&["tools", &stack.mcp]).contains("echo"));
}

#[test]
fn a_confidential_dynamic_client_logs_in_refreshes_and_logs_out() {
    // The AS answers the registration with client_secret_basic and a secret, although the
    // CLI asked for a public client: every later request must authenticate with them.
    let stack = Stack::start(&["--dcr-confidential"]);
    let cli = Cli::new("confidential");
    let mcp = stack.mcp.as_str();
    cli.ok(&["login", "--headless", mcp]);
    let clients: Vec<_> = std::fs::read_dir(cli.store.join("clients"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(clients.len(), 1);
    let client: Value = serde_json::from_slice(&std::fs::read(clients[0].path()).unwrap()).unwrap();
    assert_eq!(client["auth_method"], "client_secret_basic", "{client}");
    assert!(
        client["client_secret"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    // Its redirect URI is its own for this issuer (RFC 9700 §4.4.2).
    let redirect = client["redirect_uris"][0].as_str().unwrap();
    assert!(redirect.contains("/callback/"), "{redirect}");

    cli.ok(&["tools", mcp]);
    assert!(cli.ok(&["refresh", mcp]).contains("rotated:       yes"));
    cli.ok(&["call", mcp, "echo", r#"{"text":"confidential"}"#]);
    let out = cli.ok(&["logout", mcp]);
    assert!(out.contains("session deleted"), "{out}");
    let stats = stack.stats();
    // Code exchange and refresh authenticated with Basic, never without; so did revocation.
    assert_eq!(
        stats["client_auth"]["token"]["other"].as_u64().unwrap_or(0),
        0,
        "{stats}"
    );
    assert!(
        stats["client_auth"]["token"]["basic"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert!(
        stats["client_auth"]["revocation"]["basic"]
            .as_u64()
            .unwrap()
            >= 1,
        "{stats}"
    );
    assert!(stats["revocation"]["ok"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(
        stats["token"]["by_grant_type"]["refresh_token"]["errors"],
        serde_json::json!({}),
        "{stats}"
    );
}

#[test]
fn processes_sharing_a_store_refresh_without_replaying() {
    // Several CLI runs refresh the same session at once. oidc-provider revokes the whole
    // grant when a rotated refresh token is replayed; with the store's lock, each run either
    // refreshes or takes the session another run just saved.
    let stack = Stack::start(&[]);
    let cli = Cli::new("concurrent");
    let mcp = stack.mcp.as_str();
    cli.ok(&["login", "--headless", mcp]);
    let runs: Vec<Child> = (0..4)
        .map(|_| spawn_cli(&cli.store, &["refresh", mcp]))
        .collect();
    for mut child in runs {
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "{err}");
    }
    let stats = stack.stats();
    let refresh = &stats["token"]["by_grant_type"]["refresh_token"];
    assert_eq!(refresh["errors"], serde_json::json!({}), "{stats}");
    assert!(refresh["ok"].as_u64().unwrap() >= 1, "{stats}");
    // The grant survived: the stored tokens still work.
    cli.ok(&["tools", mcp]);
}

/// Writes a secret to a 0600 file in the CLI's scratch space.
fn private_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// `Authorization: <value>` on a tools/list to the MCP server; the status.
fn mcp_status(mcp: &str, authorization: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(mcp)
            .header("authorization", authorization)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn client_credentials_with_a_secret_and_with_private_key_jwt() {
    let stack = Stack::start(&["--machine-clients"]);
    let mcp = stack.mcp.as_str();
    let issuer = stack.issuer.as_str();
    let basic = Cli::new("cc-basic");
    let scratch = basic.store.with_extension("files");
    let secret = private_file(
        &scratch,
        "secret",
        stack.ready["machine_basic_secret"].as_str().unwrap(),
    );
    let key = private_file(
        &scratch,
        "key.pem",
        stack.ready["machine_jwt_key_pem"].as_str().unwrap(),
    );
    let (secret, key) = (secret.to_str().unwrap(), key.to_str().unwrap());

    // No browser, no registration: the client's own token for the MCP resource.
    let flags = [
        "--client-credentials",
        "--client-id",
        "machine-basic",
        "--issuer",
        issuer,
        "--client-secret-file",
        secret,
    ];
    let out = basic.ok(&[&["token", mcp][..], &flags].concat());
    assert!(
        out.contains("client_id:     machine-basic") && out.contains("refresh token: no"),
        "{out}"
    );
    let out = basic.ok(&[&["call", mcp, "whoami"][..], &flags].concat());
    assert!(out.contains(r#"\"client_id\":\"machine-basic\""#), "{out}");
    assert_eq!(stack.stats()["client_auth"]["token"]["basic"], 1);
    assert_eq!(basic.session()["resource"], mcp);

    // private_key_jwt: an ES256 assertion instead of a secret.
    let jwt = Cli::new("cc-jwt");
    let flags = [
        "--client-credentials",
        "--client-id",
        "machine-jwt",
        "--issuer",
        issuer,
        "--private-key",
        key,
    ];
    let out = jwt.ok(&[&["call", mcp, "whoami"][..], &flags].concat());
    assert!(out.contains(r#"\"client_id\":\"machine-jwt\""#), "{out}");
    assert_eq!(grants(&stack, "client_credentials"), 2);
    assert_eq!(stack.stats()["registration"]["requests"], 0);
    assert_eq!(stack.stats()["authorization"]["requests"], 0);

    // A key others can read is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (ok, _, err) = jwt.run(&[&["token", mcp][..], &flags].concat());
        assert!(!ok && err.contains("chmod 600"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn dpop_bound_tokens_with_nonces() {
    let stack = Stack::start(&["--dpop-nonce"]);
    let mcp = stack.mcp.as_str();
    let cli = Cli::new("dpop");

    // The code flow with DPoP: proofs (and the servers' nonces) at the token endpoint and the
    // MCP server; the token comes back bound (cnf.jkt = the store key's thumbprint).
    let out = cli.ok(&["login", "--headless", "--dpop", mcp]);
    assert!(out.contains("token type:    DPoP"), "{out}");
    let at = cli.session()["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let pem = std::fs::read_to_string(cli.store.join("dpop-key.pem")).unwrap();
    let jkt = {
        use base64::Engine;
        use p256::pkcs8::DecodePrivateKey;
        let key = p256::SecretKey::from_pkcs8_pem(&pem).unwrap();
        let point = p256::ecdsa::SigningKey::from(&key)
            .verifying_key()
            .to_sec1_point(false);
        let b64 = |c: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c);
        edge_oauth_core::PublicJwk::Ec {
            crv: "P-256".into(),
            x: b64(point.x().unwrap()),
            y: b64(point.y().unwrap()),
        }
        .thumbprint()
    };
    assert_eq!(jwt_claims(&at)["cnf"]["jkt"], jkt.as_str());
    let out = cli.ok(&["call", mcp, "echo", r#"{"text":"bound"}"#]);
    assert!(out.contains("bound"), "{out}");
    let s = stack.stats();
    assert!(s["mcp"]["schemes"]["DPoP"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(s["mcp"]["schemes"]["Bearer"], Value::Null, "{s}");
    // Each token request met the nonce challenge once, and went through.
    assert_eq!(
        s["token"]["by_grant_type"]["authorization_code"]["errors"]["use_dpop_nonce"],
        1
    );
    // The refresh token is bound too: refreshed with the same key.
    assert!(cli.ok(&["refresh", mcp]).contains("rotated:       yes"));

    // The same token presented as a bearer token is refused.
    let at = cli.session()["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(mcp_status(mcp, &format!("Bearer {at}")), 401);
    assert_eq!(
        stack.stats()["mcp"]["dpop_rejected"]["bound token as Bearer"],
        1
    );

    // Another key cannot use the tokens: the authorization server refuses its proof.
    let other = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcidJ52MaSG5O6sHW\nFgshBEVpSy8b7vSc63hULqFWX8ahRANCAATFGk84cps3Z0rM7dsq4leCdYzsbGYw\nvDSxy1mBl5pBtlqBxLFezqed9HVly2ijzWu0Fo3BYdqNM+GLL0BWm3uV\n-----END PRIVATE KEY-----\n";
    private_file(&cli.store, "dpop-key.pem", other);
    let (ok, _, err) = cli.run(&["refresh", mcp]);
    assert!(!ok && err.contains("invalid_grant"), "{err}");
}
