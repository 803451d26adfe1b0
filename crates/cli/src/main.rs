//! `edge-oauth`: an OAuth 2.1 client for MCP servers on the command line.

mod authorizer;
mod conformance;
mod filestore;
mod keys;
mod mcp;
mod transport;

use std::path::PathBuf;
use std::process::ExitCode;

use edge_oauth_core::discovery::{Discovery, DiscoveryStep};
use edge_oauth_core::env::{OsRandom, SystemClock};
use edge_oauth_core::registration::TokenEndpointAuthMethod;
use edge_oauth_core::registration::{ClientCredentials, ClientMetadata};
use edge_oauth_core::www_authenticate::{BearerChallenge, parse_bearer};
use edge_oauth_core::{
    Authorizer, ClientConfig, ClientSecret, CredentialStore, DpopPolicy, Error, HttpClient,
    IdToken, IdentityAssertionGrant, JwtAssertion, MemoryStore, NonInteractiveGrant, OAuthClient,
    PreRegisteredClient, Result, Session, Signer, Url,
};
use serde_json::{Value, json};

use authorizer::{HeadlessAuthorizer, LoopbackAuthorizer};
use filestore::FileStore;
use keys::{EcKey, read_private_file};
use mcp::{McpError, McpSession};
use transport::ReqwestHttp;

const USAGE: &str = "\
edge-oauth — OAuth 2.1 for MCP servers

USAGE:
  edge-oauth [--store DIR] <command> [options]

COMMANDS:
  discover <mcp-url>            Show every discovery request and what the servers advertise
  login <mcp-url>               Authorize (loopback redirect; opens the browser)
  token <mcp-url>               Get a token: the stored one, refreshed, or a new authorization
                                (with the grant chosen below, no browser)
  device <mcp-url>              Authorize with the device flow (RFC 8628)
  tools <mcp-url>               List the server's tools (authorizing if needed)
  call <mcp-url> <tool> [json]  Call a tool
  refresh <mcp-url>             Refresh the tokens now
  list                          List stored sessions (tokens redacted)
  logout <mcp-url>              Revoke the tokens, then delete them
  conformance <mcp-url>         Client for the MCP conformance suite (reads MCP_CONFORMANCE_*)

OPTIONS:
  --headless                    Follow the authorization redirects without a browser
  --no-browser                  Print the authorization URL only
  --port N                      Loopback callback port (default: any free port)
  --scope S                     Request this scope instead of the MCP selection
  --client-id ID                Use a pre-registered client
  --issuer URL                  The authorization server it is registered with (required with a
                                secret: credentials are never shown to another server)
  --client-secret S             Its secret (or set EDGE_OAUTH_CLIENT_SECRET: argv is visible to others)
  --client-secret-file FILE     Its secret, from a file only you can read (0600)
  --private-key FILE            Authenticate with private_key_jwt: a P-256 key, PEM, 0600 (ES256)
  --client-metadata-url URL     Client ID Metadata Document URL, used when the server supports it
  --store DIR                   Credential directory (default $EDGE_OAUTH_HOME or ~/.config/edge-oauth)

GRANTS WITHOUT A BROWSER (used instead of the authorization code flow):
  --client-credentials          As the client itself (RFC 6749 §4.4): needs --client-id, --issuer
                                and a secret or --private-key
  --jwt-bearer FILE             Present the workload JWT in FILE (RFC 7523 §2.1; workload identity)
  --id-token FILE               Enterprise-managed: exchange this ID token at the IdP for an ID-JAG
    --idp-token-endpoint URL      (RFC 8693), then present it; --idp-client-id ID is the client
    --idp-client-id ID            at the IdP, --client-id/--issuer the client at the MCP server's AS

DPoP (RFC 9449; a P-256 key kept in the store, dpop-key.pem):
  --dpop                        Bind tokens to the key where the server supports DPoP
  --dpop=require                Only DPoP-bound tokens (refuse servers that do not bind them)
";

#[derive(Default)]
struct Opts {
    store: Option<PathBuf>,
    headless: bool,
    no_browser: bool,
    port: u16,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    issuer: Option<String>,
    client_metadata_url: Option<String>,
    client_credentials: bool,
    private_key: Option<PathBuf>,
    jwt_bearer: Option<PathBuf>,
    id_token: Option<PathBuf>,
    idp_token_endpoint: Option<String>,
    idp_client_id: Option<String>,
    dpop: DpopPolicy,
    /// Set by the conformance client from its scenario context rather than by flags.
    grant: Option<NonInteractiveGrant>,
    client_key: Option<Signer>,
    positional: Vec<String>,
}

fn parse_args() -> std::result::Result<Opts, String> {
    let mut o = Opts::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--store" => o.store = Some(PathBuf::from(value("--store")?)),
            "--headless" => o.headless = true,
            "--no-browser" => o.no_browser = true,
            "--port" => {
                o.port = value("--port")?
                    .parse()
                    .map_err(|_| "--port needs a number".to_owned())?
            }
            "--scope" => o.scope = Some(value("--scope")?),
            "--client-id" => o.client_id = Some(value("--client-id")?),
            "--issuer" => o.issuer = Some(value("--issuer")?),
            "--client-secret" => o.client_secret = Some(value("--client-secret")?),
            "--client-metadata-url" => {
                o.client_metadata_url = Some(value("--client-metadata-url")?)
            }
            "--client-secret-file" => {
                let path = PathBuf::from(value("--client-secret-file")?);
                let secret =
                    read_private_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                o.client_secret = Some(secret.trim().to_owned());
            }
            "--private-key" => o.private_key = Some(PathBuf::from(value("--private-key")?)),
            "--client-credentials" => o.client_credentials = true,
            "--jwt-bearer" => o.jwt_bearer = Some(PathBuf::from(value("--jwt-bearer")?)),
            "--id-token" => o.id_token = Some(PathBuf::from(value("--id-token")?)),
            "--idp-token-endpoint" => o.idp_token_endpoint = Some(value("--idp-token-endpoint")?),
            "--idp-client-id" => o.idp_client_id = Some(value("--idp-client-id")?),
            "--dpop" | "--dpop=prefer" => o.dpop = DpopPolicy::Prefer,
            "--dpop=require" => o.dpop = DpopPolicy::Require,
            "--dpop=off" => o.dpop = DpopPolicy::Off,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => o.positional.push(a),
        }
    }
    if o.client_secret.is_none() {
        o.client_secret = std::env::var("EDGE_OAUTH_CLIENT_SECRET")
            .ok()
            .filter(|s| !s.is_empty());
    }
    Ok(o)
}

fn store_dir(o: &Opts) -> PathBuf {
    if let Some(d) = &o.store {
        return d.clone();
    }
    if let Some(d) = std::env::var_os("EDGE_OAUTH_HOME") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("edge-oauth")
}

/// The store: files for people, memory for conformance runs (parallel, never reused).
enum AnyStore {
    File(FileStore),
    Memory(MemoryStore),
}

impl CredentialStore for AnyStore {
    async fn load_client(&self, issuer: &str) -> Result<Option<ClientCredentials>> {
        match self {
            AnyStore::File(s) => s.load_client(issuer).await,
            AnyStore::Memory(s) => s.load_client(issuer).await,
        }
    }
    async fn save_client(&self, client: &ClientCredentials) -> Result<()> {
        match self {
            AnyStore::File(s) => s.save_client(client).await,
            AnyStore::Memory(s) => s.save_client(client).await,
        }
    }
    async fn delete_client(&self, issuer: &str) -> Result<()> {
        match self {
            AnyStore::File(s) => s.delete_client(issuer).await,
            AnyStore::Memory(s) => s.delete_client(issuer).await,
        }
    }
    async fn load_session(&self, server: &str) -> Result<Option<Session>> {
        match self {
            AnyStore::File(s) => s.load_session(server).await,
            AnyStore::Memory(s) => s.load_session(server).await,
        }
    }
    async fn save_session(&self, session: &Session) -> Result<()> {
        match self {
            AnyStore::File(s) => s.save_session(session).await,
            AnyStore::Memory(s) => s.save_session(session).await,
        }
    }
    async fn delete_session(&self, server: &str) -> Result<()> {
        match self {
            AnyStore::File(s) => s.delete_session(server).await,
            AnyStore::Memory(s) => s.delete_session(server).await,
        }
    }
    async fn lock_session(&self, server: &str) -> Result<edge_oauth_core::store::StoreLock> {
        match self {
            AnyStore::File(s) => s.lock_session(server).await,
            AnyStore::Memory(s) => s.lock_session(server).await,
        }
    }
}

enum AnyAuthorizer {
    Loopback(LoopbackAuthorizer),
    Headless(HeadlessAuthorizer),
}

impl Authorizer for AnyAuthorizer {
    fn redirect_uri(&self) -> String {
        match self {
            AnyAuthorizer::Loopback(a) => a.redirect_uri(),
            AnyAuthorizer::Headless(a) => a.redirect_uri(),
        }
    }
    fn redirect_uri_for(&self, issuer: &str) -> String {
        match self {
            AnyAuthorizer::Loopback(a) => a.redirect_uri_for(issuer),
            AnyAuthorizer::Headless(a) => a.redirect_uri_for(issuer),
        }
    }
    async fn authorize(&self, url: &Url) -> Result<String> {
        match self {
            AnyAuthorizer::Loopback(a) => a.authorize(url).await,
            AnyAuthorizer::Headless(a) => a.authorize(url).await,
        }
    }
}

type Client = OAuthClient<ReqwestHttp, AnyStore, AnyAuthorizer, OsRandom, SystemClock>;

/// The grant to use instead of the authorization code flow, from the flags (or as the
/// conformance client set it).
fn grant_of(o: &Opts) -> std::result::Result<Option<NonInteractiveGrant>, String> {
    if let Some(g) = &o.grant {
        return Ok(Some(g.clone()));
    }
    let chosen = [
        o.client_credentials,
        o.jwt_bearer.is_some(),
        o.id_token.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() > 1 {
        return Err("choose one of --client-credentials, --jwt-bearer and --id-token".into());
    }
    if o.client_credentials {
        let has_credential =
            o.client_secret.is_some() || o.private_key.is_some() || o.client_key.is_some();
        if o.client_id.is_none() || !has_credential {
            return Err(
                "--client-credentials needs --client-id and a secret or --private-key".into(),
            );
        }
        return Ok(Some(NonInteractiveGrant::ClientCredentials));
    }
    // Platform-issued JWTs are read as they are: their files' modes are the platform's
    // (a Kubernetes projected token is 0644 inside the pod).
    let read_jwt = |path: &PathBuf| {
        std::fs::read_to_string(path)
            .map(|t| t.trim().to_owned())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    if let Some(path) = &o.jwt_bearer {
        return Ok(Some(NonInteractiveGrant::JwtBearer {
            assertion: JwtAssertion::new(read_jwt(path)?),
        }));
    }
    if let Some(path) = &o.id_token {
        let (Some(endpoint), Some(idp_client_id)) = (&o.idp_token_endpoint, &o.idp_client_id)
        else {
            return Err("--id-token needs --idp-token-endpoint and --idp-client-id".into());
        };
        return Ok(Some(NonInteractiveGrant::IdentityAssertion(
            IdentityAssertionGrant {
                idp_token_endpoint: endpoint.clone(),
                idp_client_id: idp_client_id.clone(),
                idp_client_secret: None,
                id_token: IdToken::new(read_jwt(path)?),
            },
        )));
    }
    Ok(None)
}

async fn build_client(o: &Opts, store: AnyStore) -> std::result::Result<Client, String> {
    let http = ReqwestHttp::new()?;
    let authorizer = if o.headless {
        let port = if o.port == 0 { 33418 } else { o.port };
        AnyAuthorizer::Headless(
            HeadlessAuthorizer::new(format!("http://127.0.0.1:{port}/callback"))
                .map_err(|e| e.to_string())?,
        )
    } else {
        AnyAuthorizer::Loopback(
            LoopbackAuthorizer::bind(o.port, !o.no_browser)
                .await
                .map_err(|e| e.to_string())?,
        )
    };
    let mut metadata = ClientMetadata::native("edge-oauth", authorizer.redirect_uri());
    metadata
        .grant_types
        .push(edge_oauth_core::device::DEVICE_CODE_GRANT.into());
    metadata.software_id = Some("edge-oauth-cli".into());
    metadata.software_version = Some(env!("CARGO_PKG_VERSION").into());
    let mut config = ClientConfig::new(metadata);
    config.scope_override = o.scope.clone();
    config.client_id_metadata_url = o.client_metadata_url.clone();
    let client_key = match (&o.client_key, &o.private_key) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(path)) => {
            let pem = read_private_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let key = EcKey::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(Signer::new(key))
        }
        (None, None) => None,
    };
    if let Some(id) = &o.client_id {
        config.pre_registered.push(PreRegisteredClient {
            issuer: o.issuer.clone(),
            client_id: id.clone(),
            client_secret: o.client_secret.clone().map(ClientSecret::new),
            auth_method: client_key
                .is_some()
                .then_some(TokenEndpointAuthMethod::PrivateKeyJwt),
        });
    }
    config.client_assertion_signer = client_key;
    config.grant = grant_of(o)?;
    config.dpop = o.dpop;
    // One DPoP key per store, kept as long as the tokens bound to it (and loaded whenever it
    // exists, so sessions bound to it keep working without --dpop); memory stores (the
    // conformance client, discover) get a key of their own.
    let key = match (&store, o.dpop) {
        (AnyStore::File(s), DpopPolicy::Off) => {
            let path = s.dir().join("dpop-key.pem");
            path.exists()
                .then(|| EcKey::load_or_create(&path))
                .transpose()?
        }
        (AnyStore::File(s), _) => Some(EcKey::load_or_create(&s.dir().join("dpop-key.pem"))?),
        (AnyStore::Memory(_), DpopPolicy::Off) => None,
        (AnyStore::Memory(_), _) => Some(EcKey::generate()?),
    };
    config.dpop_signer = key.map(Signer::new);
    Ok(OAuthClient::new(
        http,
        store,
        authorizer,
        OsRandom,
        SystemClock,
        config,
    ))
}

fn parse_server(o: &Opts, idx: usize) -> std::result::Result<Url, String> {
    let s = o.positional.get(idx).ok_or("missing <mcp-url>")?;
    let u = Url::parse(s).map_err(|_| format!("not an absolute URL: {s}"))?;
    edge_oauth_core::http::check_secure(&u).map_err(|e| e.to_string())?;
    Ok(u)
}

/// An unauthenticated request to read the server's challenge: a modern `server/discover`
/// (servers of either era answer it with 401 when they want a token).
async fn probe<H: HttpClient>(http: &H, server: &Url) -> Result<(u16, Option<BearerChallenge>)> {
    let req = mcp::probe_request(server.as_str());
    let resp = http.send(req).await.map_err(|e| Error::Transport {
        url: server.to_string(),
        message: e.message,
    })?;
    let challenge = resp
        .header_joined("www-authenticate")
        .and_then(|h| parse_bearer(&h));
    Ok((resp.status, challenge))
}

/// Server-provided text with control characters (but newline and tab) and bidirectional
/// formatting characters removed, so no escape sequence reaches the terminal and no
/// right-to-left override reorders what is shown (the "Trojan Source" trick).
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| (!c.is_control() || *c == '\n' || *c == '\t') && !is_bidi_control(*c))
        .collect()
}

/// Unicode's bidirectional formatting characters: marks, embeddings, overrides, isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `println!` for lines that carry server-provided text.
macro_rules! say {
    ($($arg:tt)*) => { println!("{}", clean(&format!($($arg)*))) };
}

fn print_trace(trace: &[DiscoveryStep]) {
    for s in trace {
        let status = s
            .status
            .map(|x| x.to_string())
            .unwrap_or_else(|| "---".into());
        say!("  {status:>3}  {:<36} {}", s.what, s.url);
        if !s.outcome.is_empty() {
            say!("       → {}", clean(&s.outcome));
        }
    }
}

fn print_discovery(d: &Discovery) {
    say!("resource:      {}", d.resource);
    if let Some(p) = &d.protected_resource {
        say!(
            "authorization servers: {}",
            p.authorization_servers.join(", ")
        );
        if let Some(s) = &p.scopes_supported {
            say!("resource scopes: {}", s.join(" "));
        }
    } else {
        say!("no protected resource metadata (2025-03-26 server)");
    }
    let m = &d.authorization_server;
    let yes = |b: bool| if b { "yes" } else { "no" };
    say!(
        "issuer:        {}{}",
        m.issuer,
        if d.fallback {
            " (default endpoints, no metadata)"
        } else {
            ""
        }
    );
    say!(
        "PKCE S256:     {}",
        yes(m
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|v| v.iter().any(|x| x == "S256")))
    );
    say!(
        "iss (RFC 9207): {}",
        yes(m.authorization_response_iss_parameter_supported)
    );
    say!(
        "CIMD:          {}",
        yes(m.client_id_metadata_document_supported)
    );
    say!(
        "DCR:           {}",
        m.registration_endpoint.as_deref().unwrap_or("no")
    );
    say!(
        "device flow:   {}",
        m.device_authorization_endpoint.as_deref().unwrap_or("no")
    );
    say!(
        "revocation:    {}",
        m.revocation_endpoint.as_deref().unwrap_or("no")
    );
    say!(
        "scopes:        {}",
        m.scopes_supported
            .as_ref()
            .map(|s| s.join(" "))
            .unwrap_or_else(|| "-".into())
    );
    say!(
        "grant types:   {}",
        m.grant_types_supported
            .as_ref()
            .map(|s| s.join(" "))
            .unwrap_or_else(|| "authorization_code implicit (default)".into())
    );
    say!(
        "DPoP:          {}",
        m.dpop_signing_alg_values_supported
            .as_ref()
            .map(|s| s.join(" "))
            .unwrap_or_else(|| "not advertised".into())
    );
    say!(
        "token auth:    {}",
        m.token_endpoint_auth_methods_supported
            .as_ref()
            .map(|s| s.join(" "))
            .unwrap_or_else(|| "client_secret_basic (default)".into())
    );
}

fn now() -> u64 {
    use edge_oauth_core::env::Clock;
    SystemClock.now()
}

/// `YYYY-MM-DDTHH:MM:SSZ` from Unix seconds (proleptic Gregorian, days-from-civil inverse).
fn iso8601(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A short fingerprint of a secret, to show that it changed without showing it.
fn fingerprint(secret: &str) -> String {
    edge_oauth_core::pkce::s256_challenge(secret)[..10].to_owned()
}

fn print_session(s: &Session) {
    say!("server:        {}", s.server);
    say!("issuer:        {}", s.issuer);
    say!("client_id:     {}", s.client_id);
    say!(
        "scope:         {}",
        s.tokens.scope.as_deref().unwrap_or("-")
    );
    say!(
        "token type:    {}",
        if s.tokens.is_dpop() {
            "DPoP (bound to this store's key, RFC 9449)"
        } else {
            "Bearer"
        }
    );
    match s.tokens.expires_at {
        Some(t) => {
            let left = t as i64 - now() as i64;
            say!(
                "access token:  expires {} ({})",
                iso8601(t),
                if left > 0 {
                    format!("in {left} s")
                } else {
                    format!("expired {} s ago", -left)
                }
            );
        }
        None => say!("access token:  no expiry given"),
    }
    match &s.tokens.refresh_token {
        Some(rt) => say!(
            "refresh token: yes (fingerprint {})",
            fingerprint(rt.secret())
        ),
        None => say!("refresh token: no"),
    }
}

async fn cmd_discover(o: &Opts) -> std::result::Result<(), String> {
    let server = parse_server(o, 1)?;
    let client = build_client(o, AnyStore::Memory(MemoryStore::new())).await?;
    say!("MCP server {server}");
    let (status, challenge) = probe(client.http(), &server)
        .await
        .map_err(|e| e.to_string())?;
    say!(
        "  {status:>3}  {:<36} {server}",
        "unauthenticated server/discover"
    );
    if let Some(c) = &challenge {
        say!(
            "       → Bearer challenge: error={} scope={} resource_metadata={}",
            c.error.as_deref().unwrap_or("-"),
            c.scope.as_deref().unwrap_or("-"),
            c.resource_metadata.as_deref().unwrap_or("-")
        );
    } else if status != 401 {
        say!("       → no authorization required");
    }
    let result = client.discover(&server, challenge.as_ref()).await;
    print_trace(&client.last_trace());
    let d = result.map_err(|e| format!("{e} [{}]", e.code()))?;
    println!();
    print_discovery(&d);
    Ok(())
}

async fn cmd_login(o: &Opts) -> std::result::Result<(), String> {
    let server = parse_server(o, 1)?;
    let client = file_client(o).await?;
    let (status, challenge) = probe(client.http(), &server)
        .await
        .map_err(|e| e.to_string())?;
    if status != 401 && status != 403 {
        say!("note: {server} answered HTTP {status} without a token; authorizing anyway");
    }
    let result = client.authorize(&server, challenge.as_ref(), None).await;
    say!("discovery:");
    print_trace(&client.last_trace());
    let session = result.map_err(|e| format!("{e} [{}]", e.code()))?;
    say!("\nlogged in");
    print_session(&session);
    Ok(())
}

async fn cmd_token(o: &Opts) -> std::result::Result<(), String> {
    let server = parse_server(o, 1)?;
    let client = file_client(o).await?;
    let fail = |e: Error| format!("{e} [{}]", e.code());
    let stored = client
        .access_token(server.as_str())
        .await
        .map_err(fail)?
        .is_some();
    let session = match client.load_session(server.as_str()).await.map_err(fail)? {
        Some(s) if stored => s,
        _ => {
            let (_, challenge) = probe(client.http(), &server).await.map_err(fail)?;
            client
                .authorize(&server, challenge.as_ref(), None)
                .await
                .map_err(fail)?
        }
    };
    print_session(&session);
    flush(&client).await
}

async fn cmd_device(o: &Opts) -> std::result::Result<(), String> {
    let server = parse_server(o, 1)?;
    let client = file_client(o).await?;
    let session = client
        .device_authorize(
            &server,
            |d| {
                eprintln!(
                    "To authorize, visit {} and enter the code {}",
                    clean(&d.verification_uri),
                    clean(&d.user_code)
                );
                if let Some(c) = &d.verification_uri_complete {
                    eprintln!("or open {}", clean(c));
                }
            },
            |secs| tokio::time::sleep(std::time::Duration::from_secs(secs)),
        )
        .await
        .map_err(|e| format!("{e} [{}]", e.code()))?;
    println!("logged in");
    print_session(&session);
    Ok(())
}

/// Saves anything the store refused earlier (a rotated refresh token held in memory): a
/// process must not exit with the only valid refresh token unsaved without saying so.
async fn flush(client: &Client) -> std::result::Result<(), String> {
    client.flush().await.map_err(|e| {
        format!("{e}: the latest tokens could not be saved; the next run may need to log in again")
    })
}

async fn file_client(o: &Opts) -> std::result::Result<Client, String> {
    let store = FileStore::open(store_dir(o)).map_err(|e| e.to_string())?;
    build_client(o, AnyStore::File(store)).await
}

async fn cmd_tools(o: &Opts) -> std::result::Result<(), String> {
    let server = parse_server(o, 1)?;
    let client = file_client(o).await?;
    let mcp = McpSession::new(&client, server.as_str());
    let run = async {
        let server = mcp.connect().await?;
        say!(
            "server: {} (protocol {})",
            server.name.as_deref().unwrap_or("?"),
            server.protocol_version
        );
        let list = mcp.list_tools().await?;
        for t in &list.tools {
            say!("  {:<20} {}", t.name, t.description());
        }
        for (name, why) in &list.rejected {
            eprintln!("warning: tool {} left out: {}", clean(name), clean(why));
        }
        Ok::<(), McpError>(())
    };
    let result = run.await.map_err(|e| e.to_string());
    flush(&client).await?;
    result
}

async fn cmd_call(o: &Opts) -> std::result::Result<(), String> {
    let tool = o.positional.get(2).cloned().ok_or("missing <tool>")?;
    let args: Value = match o.positional.get(3) {
        Some(j) => serde_json::from_str(j).map_err(|e| format!("arguments are not JSON: {e}"))?,
        None => json!({}),
    };
    let server = parse_server(o, 1)?;
    let client = file_client(o).await?;
    let mcp = McpSession::new(&client, server.as_str());
    let run = async {
        let result = mcp.call_tool(&tool, args).await?;
        say!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
        Ok::<(), McpError>(())
    };
    let result = run.await.map_err(|e| e.to_string());
    flush(&client).await?;
    result
}

async fn cmd_refresh(o: &Opts) -> std::result::Result<(), String> {
    let server = parse_server(o, 1)?;
    let client = file_client(o).await?;
    let session = client
        .store()
        .load_session(server.as_str())
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no session for {server}: run login first"))?;
    let before = session
        .tokens
        .refresh_token
        .as_ref()
        .map(|r| fingerprint(r.secret()));
    let updated = client
        .refresh(&session)
        .await
        .map_err(|e| format!("{e} [{}]", e.code()))?;
    let after = updated
        .tokens
        .refresh_token
        .as_ref()
        .map(|r| fingerprint(r.secret()));
    say!("refreshed");
    print_session(&updated);
    say!(
        "rotated:       {}",
        if before != after { "yes" } else { "no" }
    );
    Ok(())
}

async fn cmd_list(o: &Opts) -> std::result::Result<(), String> {
    let store = FileStore::open(store_dir(o)).map_err(|e| e.to_string())?;
    let sessions = store.sessions().map_err(|e| e.to_string())?;
    if sessions.is_empty() {
        println!("no sessions in {}", store.dir().display());
    }
    for (i, s) in sessions.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_session(s);
    }
    Ok(())
}

async fn cmd_logout(o: &Opts) -> std::result::Result<(), String> {
    let server = parse_server(o, 1)?;
    let client = file_client(o).await?;
    let out = client
        .logout(server.as_str())
        .await
        .map_err(|e| format!("{e} [{}]", e.code()))?;
    if !out.deleted {
        say!("no session for {server}");
        return Ok(());
    }
    say!("revoked {} token(s); session deleted", out.revoked);
    if out.not_revocable > 0 {
        say!(
            "note: the server cannot revoke {} token(s) (e.g. JWT access tokens); they expire on their own",
            out.not_revocable
        );
    }
    if let Some(e) = out.revocation_error {
        say!("warning: revocation incomplete: {e} [{}]", e.code());
    }
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}\n");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cmd = o.positional.first().cloned().unwrap_or_default();
    if o.client_id.is_some()
        && (o.client_secret.is_some() || o.private_key.is_some())
        && o.issuer.is_none()
        && cmd != "conformance"
    {
        eprintln!(
            "error: client credentials are used only with the issuer you name: add --issuer URL"
        );
        return ExitCode::from(2);
    }
    let result = runtime.block_on(async {
        match cmd.as_str() {
            "discover" => cmd_discover(&o).await,
            "login" => cmd_login(&o).await,
            "token" => cmd_token(&o).await,
            "device" => cmd_device(&o).await,
            "tools" => cmd_tools(&o).await,
            "call" => cmd_call(&o).await,
            "refresh" => cmd_refresh(&o).await,
            "list" => cmd_list(&o).await,
            "logout" => cmd_logout(&o).await,
            "conformance" => conformance::run(o).await,
            "" => Err("no command given".into()),
            other => Err(format!("unknown command {other}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", clean(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_text_is_cleaned_for_the_terminal() {
        let hostile = "ok\u{1b}[2J\u{7}name\u{202E}txt.exe\u{2066}x\u{2069}\u{200F}\r\nnext\tcol";
        assert_eq!(super::clean(hostile), "ok[2Jnametxt.exex\nnext\tcol");
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}',
        ] {
            assert!(super::clean(&format!("a{c}b")) == "ab", "{c:?}");
        }
    }

    #[test]
    fn iso8601_dates() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso8601(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }
}
