//! Requests and responses as plain data, the transport trait, and the response checks every
//! step applies in the same order: status, content type, non-empty body, JSON, fields.

use core::fmt;
use core::future::Future;

use crate::url::Url;
use serde::de::DeserializeOwned;

use crate::error::{Endpoint, Error, OAuthError, OAuthErrorCode, Result};

/// HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// DELETE
    Delete,
}

impl Method {
    /// The method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// A request, built by the core, sent by an [`HttpClient`].
///
/// Transports must not follow redirects: the core decides what a 3xx means for each step.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Header fields, in order.
    pub headers: Vec<(String, String)>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// A GET with `Accept: application/json`.
    pub fn get_json(url: impl Into<String>) -> Self {
        Self {
            method: Method::Get,
            url: url.into(),
            headers: vec![("Accept".into(), "application/json".into())],
            body: None,
        }
    }

    /// A POST of `application/x-www-form-urlencoded` pairs (RFC 6749 Appendix B).
    pub fn post_form<'a>(
        url: impl Into<String>,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let body = crate::url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Self {
            method: Method::Post,
            url: url.into(),
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("Accept".into(), "application/json".into()),
            ],
            body: Some(body.into_bytes()),
        }
    }

    /// A POST of a JSON document.
    pub fn post_json(url: impl Into<String>, body: &serde_json::Value) -> Self {
        Self {
            method: Method::Post,
            url: url.into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Accept".into(), "application/json".into()),
            ],
            body: Some(crate::json::value_to_string(body).into_bytes()),
        }
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body decoded as form pairs (for tests and fakes).
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        let body = self.body.as_deref().unwrap_or_default();
        crate::url::form_urlencoded::parse(body)
            .into_owned()
            .collect()
    }
}

fn is_sensitive_header(name: &str) -> bool {
    [
        "authorization",
        "cookie",
        "set-cookie",
        "dpop",
        "proxy-authorization",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

struct RedactedHeaders<'a>(&'a [(String, String)]);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for (name, value) in self.0 {
            if is_sensitive_header(name) {
                list.entry(&format_args!("{name}: [redacted]"));
            } else {
                list.entry(&format_args!("{name}: {value}"));
            }
        }
        list.finish()
    }
}

// Bodies carry codes, verifiers, secrets and tokens: Debug shows their length only.
impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// A response as the transport received it.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields, in order; repeated fields appear repeatedly.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response (for fakes and tests).
    pub fn new(status: u16, headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers,
            body: body.into(),
        }
    }

    /// A JSON response with the given status.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::new(
            status,
            vec![("Content-Type".into(), "application/json".into())],
            crate::json::value_to_string(body),
        )
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// All values of a header joined with `, ` (RFC 9110 §5.3), e.g. several `WWW-Authenticate`.
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if values.is_empty() {
            None
        } else {
            Some(values.join(", "))
        }
    }

    /// `Retry-After` as delta-seconds (an HTTP-date is not interpreted: no calendar in the core).
    pub fn retry_after(&self) -> Option<u64> {
        self.header("retry-after")?.trim().parse().ok()
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("body_len", &self.body.len())
            .finish()
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A transport failure, as the transport describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// What went wrong (no secrets: transports must not echo request bodies).
    pub message: String,
}

impl TransportError {
    /// A transport error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Sends requests. Implemented over reqwest natively, `fetch` in browsers and workers, and by
/// fakes in tests. The future is deliberately not `Send`: wasm32 futures are not.
///
/// Contract: do not follow redirects; return the whole body; report only transport failures
/// as `Err` (any HTTP status is an `Ok` response).
pub trait HttpClient {
    /// Sends one request.
    fn send(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, TransportError>>;
}

impl<T: HttpClient + ?Sized> HttpClient for &T {
    fn send(
        &self,
        request: HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, TransportError>> {
        (**self).send(request)
    }
}

/// Sends a request, mapping a transport failure to [`Error::Transport`].
pub(crate) async fn send<H: HttpClient + ?Sized>(
    http: &H,
    request: HttpRequest,
) -> Result<HttpResponse> {
    let url = request.url.clone();
    http.send(request).await.map_err(|e| Error::Transport {
        url,
        message: e.message,
    })
}

/// True for `application/json` and `application/*+json` (RFC 6838 §4.2.8), parameters ignored.
pub fn is_json_content_type(value: &str) -> bool {
    let media = value.split(';').next().unwrap_or("").trim();
    let lower = media.to_ascii_lowercase();
    lower == "application/json" || (lower.starts_with("application/") && lower.ends_with("+json"))
}

/// Checks content type and body, then parses JSON into `T`, naming the failing field.
pub(crate) fn parse_json<T: DeserializeOwned>(response: &HttpResponse, url: &str) -> Result<T> {
    let content_type = response.header("content-type").unwrap_or("");
    if !is_json_content_type(content_type) {
        return Err(Error::UnexpectedContentType {
            url: url.to_owned(),
            content_type: truncate(content_type, 100),
        });
    }
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::EmptyBody {
            url: url.to_owned(),
        });
    }
    crate::json::from_slice(&response.body).map_err(|e| Error::InvalidJson {
        url: url.to_owned(),
        detail: e.to_string(),
    })
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Parses an OAuth error body (RFC 6749 §5.2) if the response carries one.
pub(crate) fn oauth_error_body(response: &HttpResponse) -> Option<OAuthError> {
    let content_type = response.header("content-type").unwrap_or("");
    if !is_json_content_type(content_type) {
        return None;
    }
    let v: crate::json::Value = crate::json::from_slice(&response.body).ok()?;
    let code = v.get("error")?.as_str()?;
    if code.is_empty() {
        return None;
    }
    Some(OAuthError {
        code: OAuthErrorCode::parse(&truncate(code, 200)),
        description: v
            .get("error_description")
            .and_then(|d| d.as_str())
            .map(|d| truncate(d, 500)),
        uri: v
            .get("error_uri")
            .and_then(|d| d.as_str())
            .map(|d| truncate(d, 500)),
    })
}

/// The common error path of token-like endpoints: a redirect is refused, an OAuth error body
/// becomes [`Error::OAuth`], anything else non-2xx becomes [`Error::UnexpectedStatus`].
pub(crate) fn check_status(response: &HttpResponse, url: &str, endpoint: Endpoint) -> Result<()> {
    if response.is_success() {
        return Ok(());
    }
    if (300..400).contains(&response.status) {
        return Err(Error::Redirected {
            url: url.to_owned(),
            status: response.status,
        });
    }
    if let Some(error) = oauth_error_body(response) {
        return Err(Error::OAuth {
            endpoint,
            status: response.status,
            error,
            retry_after: response.retry_after(),
        });
    }
    Err(Error::UnexpectedStatus {
        url: url.to_owned(),
        status: response.status,
        retry_after: response.retry_after(),
    })
}

/// Parses an absolute URL and enforces HTTPS except on loopback (RFC 9700 §2.6, RFC 8252 §8.3).
pub fn parse_secure_url(input: &str) -> Result<Url> {
    let url = Url::parse(input).map_err(|_| Error::InvalidUrl {
        url: truncate(input, 200),
        reason: "not an absolute URL",
    })?;
    check_secure(&url)?;
    Ok(url)
}

/// Enforces HTTPS except on loopback hosts.
pub fn check_secure(url: &Url) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(Error::InsecureUrl {
            url: url.as_str().to_owned(),
        }),
        _ => Err(Error::InvalidUrl {
            url: url.as_str().to_owned(),
            reason: "scheme must be https",
        }),
    }
}

/// Exactly `localhost`, an IPv4 literal in `127.0.0.0/8`, or `[::1]`. Names under
/// `.localhost` are not loopback here: a resolver that does not special-case them would send
/// codes and tokens off-host in clear.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(crate::url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(crate::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(crate::url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn request_debug_redacts_body_and_auth() {
        let r = HttpRequest::post_form("https://as/token", [("refresh_token", "rt-secret")])
            .with_header("Authorization", "Basic c2VjcmV0");
        let d = format!("{r:?}");
        assert!(!d.contains("rt-secret") && !d.contains("c2VjcmV0"), "{d}");
        assert!(d.contains("Authorization: [redacted]"));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn json_content_types() {
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("Application/JSON"));
        assert!(is_json_content_type("application/problem+json"));
        assert!(!is_json_content_type("text/html"));
        assert!(!is_json_content_type(""));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn json_errors_do_not_echo_values() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            n: u64,
        }
        let resp = HttpResponse::json(200, &serde_json::json!({"n": "leaky-value"}));
        let err = parse_json::<T>(&resp, "https://x/").unwrap_err();
        assert!(!err.to_string().contains("leaky-value"), "{err}");
        let resp = HttpResponse::json(200, &serde_json::json!({}));
        let err = parse_json::<T>(&resp, "https://x/").unwrap_err();
        assert!(err.to_string().contains("missing field `n`"), "{err}");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn secure_urls() {
        assert!(parse_secure_url("https://example.com/a").is_ok());
        assert!(parse_secure_url("http://127.0.0.1:8080/").is_ok());
        assert!(parse_secure_url("http://localhost/").is_ok());
        assert!(parse_secure_url("http://[::1]:9/").is_ok());
        assert!(parse_secure_url("http://127.8.9.10/").is_ok());
        assert!(parse_secure_url("http://LOCALHOST:1/").is_ok());
        for off_host in [
            "http://evil.localhost/",
            "http://a.b.localhost:8080/",
            "http://localhost.example.com/",
            "http://128.0.0.1/",
            "http://[::2]/",
            "http://0.0.0.0/",
        ] {
            assert_eq!(
                parse_secure_url(off_host).unwrap_err().code(),
                "insecure_url",
                "{off_host}"
            );
        }
        assert_eq!(
            parse_secure_url("http://example.com/").unwrap_err().code(),
            "insecure_url"
        );
        assert_eq!(
            parse_secure_url("javascript:alert(1)").unwrap_err().code(),
            "invalid_url"
        );
        assert_eq!(
            parse_secure_url("/relative").unwrap_err().code(),
            "invalid_url"
        );
    }
}
