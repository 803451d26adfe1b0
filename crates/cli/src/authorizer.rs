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
/// for the redirect. Clients it registers get `/callback/<issuer tag>` per authorization
/// server, so a callback shows which server's flow it belongs to.
pub struct LoopbackAuthorizer {
    listener: TcpListener,
    port: u16,
    open_browser: bool,
    timeout: Duration,
    /// How long one connection may take to send its request head.
    connection_timeout: Duration,
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
            connection_timeout: Duration::from_secs(2),
        })
    }
}

const DONE_PAGE: &str = "<!doctype html><meta charset=utf-8><title>edge-oauth</title>\
<p>Authorization received. You can close this window and return to the terminal.</p>";

/// The `state` and redirect URI path an authorization URL carries.
fn expected_response(authorization_url: &Url, base: &str) -> Result<(State, String)> {
    let param = |name: &str| {
        authorization_url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let state = param("state").ok_or_else(|| authz_err("authorization URL without state"))?;
    let redirect = param("redirect_uri")
        .and_then(|r| Url::parse(&r).ok())
        .ok_or_else(|| authz_err("authorization URL without a redirect_uri"))?;
    let base = Url::parse(base).map_err(|e| authz_err(e.to_string()))?;
    let ours = redirect.scheme() == base.scheme()
        && redirect.host() == base.host()
        && redirect.port_or_known_default() == base.port_or_known_default()
        && (redirect.path() == base.path()
            || redirect.path().starts_with(&format!("{}/", base.path())));
    if !ours {
        return Err(authz_err("the redirect_uri is not this listener's"));
    }
    Ok((State::new(state), redirect.path().to_owned()))
}

/// Reads one request head and answers it: the callback (its path and state) gets the done
/// page and yields its request target; anything else gets a 404 and yields nothing.
async fn serve_connection(
    mut sock: tokio::net::TcpStream,
    state: State,
    path: String,
    limit: Duration,
) -> Option<String> {
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
    if !matches!(tokio::time::timeout(limit, read_head).await, Ok(Ok(()))) {
        return None;
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let target = head.lines().next().and_then(|l| {
        let mut parts = l.split(' ');
        (parts.next() == Some("GET"))
            .then(|| parts.next())
            .flatten()
    });
    // Only the response to this request ends the wait (its path and state, compared in
    // constant time): a stray request (a favicon, a prefetch, a local page guessing the port,
    // another server's flow) gets a 404 and cannot abort it. `validate_callback` still checks
    // everything after.
    let is_response = |t: &str| {
        t.split_once('?').is_some_and(|(p, q)| {
            p == path
                && url::form_urlencoded::parse(q.as_bytes())
                    .any(|(k, v)| k == "state" && state.matches(&v))
        })
    };
    match target {
        Some(t) if is_response(t) => {
            let body = DONE_PAGE;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            Some(t.to_owned())
        }
        _ => {
            let _ = sock
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            None
        }
    }
}

impl Authorizer for LoopbackAuthorizer {
    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    fn redirect_uri_for(&self, issuer: &str) -> String {
        format!(
            "http://127.0.0.1:{}/callback/{}",
            self.port,
            edge_oauth_core::client::issuer_tag(issuer)
        )
    }

    async fn authorize(&self, authorization_url: &Url) -> Result<String> {
        let (state, path) = expected_response(authorization_url, &self.redirect_uri())?;
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
        // Connections are served concurrently, each within its own time limit: an idle one
        // (a preconnect, a port scan) never delays the real callback.
        let wait = async {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => {
                        let (sock, _) = accepted.map_err(|e| authz_err(e.to_string()))?;
                        connections.spawn(serve_connection(
                            sock,
                            state.clone(),
                            path.clone(),
                            self.connection_timeout,
                        ));
                    }
                    Some(done) = connections.join_next() => {
                        if let Ok(Some(target)) = done {
                            return Ok(format!("http://127.0.0.1:{}{target}", self.port));
                        }
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

    fn redirect_uri_for(&self, issuer: &str) -> String {
        format!(
            "{}/{}",
            self.redirect_uri,
            edge_oauth_core::client::issuer_tag(issuer)
        )
    }

    async fn authorize(&self, authorization_url: &Url) -> Result<String> {
        let (_, path) = expected_response(authorization_url, &self.redirect_uri)?;
        let mut target = Url::parse(&self.redirect_uri).map_err(|e| authz_err(e.to_string()))?;
        target.set_path(&path);
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
                // Without the URL: its query holds the state (or a code).
                .map_err(|e| authz_err(format!("GET {}: {}", url.path(), e.without_url())))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    fn authorization_url(redirect: &str) -> Url {
        let mut u = Url::parse("https://as.example.com/authorize").unwrap();
        u.query_pairs_mut()
            .append_pair("state", "the-state")
            .append_pair("redirect_uri", redirect);
        u
    }

    async fn get(port: u16, target: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[test]
    fn idle_connections_do_not_delay_the_callback() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut a = LoopbackAuthorizer::bind(0, false).await.unwrap();
            // Long enough that serving connections one by one could not finish in time.
            a.connection_timeout = Duration::from_secs(120);
            let port = a.port;
            let redirect = a.redirect_uri_for("https://as.example.com");
            let path = Url::parse(&redirect).unwrap().path().to_owned();
            assert!(path.starts_with("/callback/") && path.len() == "/callback/".len() + 16);
            let url = authorization_url(&redirect);
            let flow = a.authorize(&url);
            let client = async {
                // Three idle connections (preconnects) first...
                let mut idle = Vec::new();
                for _ in 0..3 {
                    idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
                }
                // ...another server's path and a wrong state are answered 404 and ignored...
                assert!(get(port, "/callback?state=the-state").await.contains("404"));
                assert!(
                    get(port, &format!("{path}?state=other"))
                        .await
                        .contains("404")
                );
                // ...and the real callback is served while they are still open.
                let page = get(port, &format!("{path}?code=c&state=the-state")).await;
                assert!(page.starts_with("HTTP/1.1 200"), "{page}");
                idle
            };
            let (result, idle) = tokio::time::timeout(Duration::from_secs(30), async {
                tokio::join!(flow, client)
            })
            .await
            .expect("the callback waited for idle connections");
            assert_eq!(
                result.unwrap(),
                format!("http://127.0.0.1:{port}{path}?code=c&state=the-state")
            );
            drop(idle);
        });
    }

    #[test]
    fn redirect_uris_of_other_listeners_are_refused() {
        assert!(
            expected_response(
                &authorization_url("http://127.0.0.1:9/callback/abc"),
                "http://127.0.0.1:9/callback"
            )
            .is_ok()
        );
        for other in [
            "http://127.0.0.1:10/callback/abc",
            "http://127.0.0.1:9/callbackx",
            "http://localhost:9/callback",
        ] {
            assert!(
                expected_response(&authorization_url(other), "http://127.0.0.1:9/callback")
                    .is_err(),
                "{other}"
            );
        }
    }
}
