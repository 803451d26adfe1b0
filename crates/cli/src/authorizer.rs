//! The user-facing authorization step for a terminal: a loopback redirect listener
//! (RFC 8252 §7.3) with the system browser, or a headless redirect follower for servers that
//! approve without a person (test deployments, conformance suites).

use std::time::Duration;

use edge_oauth_core::error::Error;
use edge_oauth_core::{Authorizer, Result, State, Url, url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn authz_err(message: impl Into<String>) -> Error {
    Error::Authorizer {
        message: message.into(),
    }
}

/// Listens on `127.0.0.1:<port>/callback`, opens the browser (or prints the URL) and waits
/// for the redirect.
pub struct LoopbackAuthorizer {
    listener: TcpListener,
    port: u16,
    open_browser: bool,
    timeout: Duration,
}

impl LoopbackAuthorizer {
    pub async fn bind(port: u16, open_browser: bool) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| authz_err(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| authz_err(e.to_string()))?
            .port();
        Ok(Self {
            listener,
            port,
            open_browser,
            timeout: Duration::from_secs(300),
        })
    }
}

const DONE_PAGE: &str = "<!doctype html><meta charset=utf-8><title>edge-oauth</title>\
<p>Authorization received. You can close this window and return to the terminal.</p>";

impl Authorizer for LoopbackAuthorizer {
    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    async fn authorize(&self, authorization_url: &Url) -> Result<String> {
        let expected_state = State::new(
            authorization_url
                .query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
                .ok_or_else(|| authz_err("authorization URL without state"))?,
        );
        eprintln!("Open this URL to authorize:\n\n  {authorization_url}\n");
        if self.open_browser {
            let opener = if cfg!(target_os = "macos") {
                "open"
            } else {
                "xdg-open"
            };
            let _ = std::process::Command::new(opener)
                .arg(authorization_url.as_str())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
        }
        // Only the response to this request ends the wait (its state, compared in constant
        // time): a stray request (a favicon, a prefetch, a local page guessing the port) gets a
        // 404 and cannot abort the flow. `validate_callback` still checks everything after.
        let is_response = |target: &str| {
            let Some((path, query)) = target.split_once('?') else {
                return false;
            };
            path == "/callback"
                && url::form_urlencoded::parse(query.as_bytes())
                    .any(|(k, v)| k == "state" && expected_state.matches(&v))
        };
        let wait = async {
            loop {
                let (mut sock, _) = self
                    .listener
                    .accept()
                    .await
                    .map_err(|e| authz_err(e.to_string()))?;
                // Each connection gets 2 s to send its request head (a callback has
                // no body): an idle one, such as a preconnect, must not hold up the callback.
                let mut buf = vec![0u8; 16 * 1024];
                let mut n = 0;
                let read_head = async {
                    while n < buf.len() {
                        let r = sock.read(&mut buf[n..]).await?;
                        if r == 0 {
                            break;
                        }
                        n += r;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    Ok::<(), std::io::Error>(())
                };
                if !matches!(
                    tokio::time::timeout(Duration::from_secs(2), read_head).await,
                    Ok(Ok(()))
                ) {
                    continue;
                }
                let head = String::from_utf8_lossy(&buf[..n]);
                let target = head.lines().next().and_then(|l| {
                    let mut parts = l.split(' ');
                    (parts.next() == Some("GET"))
                        .then(|| parts.next())
                        .flatten()
                });
                match target {
                    Some(t) if is_response(t) => {
                        let body = DONE_PAGE;
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                        return Ok(format!("http://127.0.0.1:{}{t}", self.port));
                    }
                    _ => {
                        let _ = sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                    }
                }
            }
        };
        tokio::time::timeout(self.timeout, wait)
            .await
            .map_err(|_| authz_err("no callback within 5 minutes"))?
    }
}

/// Follows the authorization server's redirects itself, keeping cookies, until one points at
/// the redirect URI. Works only where the server approves without a person.
pub struct HeadlessAuthorizer {
    client: reqwest::Client,
    redirect_uri: String,
}

impl HeadlessAuthorizer {
    pub fn new(redirect_uri: String) -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| authz_err(e.to_string()))?;
        Ok(Self {
            client,
            redirect_uri,
        })
    }
}

fn is_redirect_target(location: &Url, redirect_uri: &Url) -> bool {
    location.scheme() == redirect_uri.scheme()
        && location.host() == redirect_uri.host()
        && location.port_or_known_default() == redirect_uri.port_or_known_default()
        && location.path() == redirect_uri.path()
}

impl Authorizer for HeadlessAuthorizer {
    fn redirect_uri(&self) -> String {
        self.redirect_uri.clone()
    }

    async fn authorize(&self, authorization_url: &Url) -> Result<String> {
        let target = Url::parse(&self.redirect_uri).map_err(|e| authz_err(e.to_string()))?;
        let mut url = authorization_url.clone();
        for _ in 0..20 {
            if is_redirect_target(&url, &target) {
                return Ok(url.to_string());
            }
            let resp = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| authz_err(format!("GET {}: {e}", url.path())))?;
            let status = resp.status();
            if !status.is_redirection() {
                return Err(authz_err(format!(
                    "the authorization server answered HTTP {} at {} instead of redirecting back (it needs a person: use login without --headless)",
                    status.as_u16(),
                    url.path()
                )));
            }
            let location = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| authz_err("redirect without Location"))?;
            url = url
                .join(location)
                .map_err(|e| authz_err(format!("bad Location: {e}")))?;
        }
        Err(authz_err("too many redirects"))
    }
}
