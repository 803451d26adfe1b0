//! Discovery: RFC 9728 protected resource metadata, then RFC 8414 / OpenID Connect
//! authorization server metadata, in the order the MCP authorization spec gives.

use crate::url::Url;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::{
    self, HttpClient, HttpRequest, HttpResponse, check_secure, parse_json, parse_secure_url,
};
use crate::pkce::S256;
use crate::www_authenticate::BearerChallenge;

/// RFC 9728 §2 protected resource metadata (the fields a client uses).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier (required).
    pub resource: String,
    /// Issuers of authorization servers that can issue tokens for the resource.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the resource uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// How tokens may be presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_methods_supported: Option<Vec<String>>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// RFC 9449 DPoP algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

/// RFC 8414 §2 authorization server metadata (the fields a client uses).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// Authorization endpoint.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Token endpoint.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// RFC 7591 registration endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// RFC 7009 revocation endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 7662 introspection endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// RFC 8628 device authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// Response types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types_supported: Option<Vec<String>>,
    /// Grant types (RFC 8414 default: authorization_code and implicit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// PKCE methods; the MCP spec requires refusing when S256 is not listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Client authentication methods at the token endpoint (default `client_secret_basic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 9207: the AS sends `iss` in authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Client ID Metadata Documents (URL client_ids) are accepted.
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    /// RFC 9449 DPoP algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

impl AuthorizationServerMetadata {
    /// True when `scopes_supported` lists `scope`.
    pub fn supports_scope(&self, scope: &str) -> bool {
        self.scopes_supported
            .as_ref()
            .is_some_and(|s| s.iter().any(|x| x == scope))
    }

    /// True when `token_endpoint_auth_methods_supported` allows `method` (absent means
    /// `client_secret_basic` only, RFC 8414 §2).
    pub fn supports_auth_method(&self, method: &str) -> bool {
        match &self.token_endpoint_auth_methods_supported {
            Some(list) => list.iter().any(|m| m == method),
            None => method == "client_secret_basic",
        }
    }

    /// True when `grant_types_supported` lists the grant (absent: authorization_code and implicit).
    pub fn supports_grant(&self, grant: &str) -> bool {
        match &self.grant_types_supported {
            Some(list) => list.iter().any(|g| g == grant),
            None => matches!(grant, "authorization_code" | "implicit"),
        }
    }

    /// The token endpoint, or the error saying the server offers none.
    pub fn require_token_endpoint(&self) -> Result<String> {
        self.token_endpoint
            .clone()
            .ok_or_else(|| Error::UnsupportedByServer {
                issuer: self.issuer.clone(),
                feature: "token_endpoint",
            })
    }

    /// The 2025-03-26 fallback for servers without metadata: `/authorize`, `/token` and
    /// `/register` at the authorization base URL (the MCP server's origin).
    pub fn fallback_for(origin: &Url) -> Self {
        let at = |p: &str| origin.join(p).map(|u| u.to_string()).ok();
        Self {
            issuer: canonical_uri(origin),
            authorization_endpoint: at("/authorize"),
            token_endpoint: at("/token"),
            registration_endpoint: at("/register"),
            code_challenge_methods_supported: Some(vec![S256.into()]),
            ..Self::default()
        }
    }
}

/// A URI in the form the MCP spec asks for (RFC 8707 §2): lower-case scheme and host, no
/// fragment, and no trailing slash on an empty path.
pub fn canonical_uri(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    let s = u.to_string();
    if u.path() == "/" && u.query().is_none() {
        s.trim_end_matches('/').to_owned()
    } else {
        s
    }
}

/// RFC 9728 §3.1: the well-known URLs for a resource, path-inserted first, then the root.
pub fn protected_resource_metadata_urls(resource: &Url) -> Vec<Url> {
    const WK: &str = "/.well-known/oauth-protected-resource";
    let mut out = Vec::new();
    let path = resource.path().trim_end_matches('/');
    let base = origin_url(resource);
    if let (false, Ok(u)) = (path.is_empty(), base.join(&format!("{WK}{path}"))) {
        out.push(u);
    }
    if let Ok(u) = base.join(WK) {
        out.push(u);
    }
    out
}

/// Which metadata document a well-known URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataKind {
    /// RFC 8414 `oauth-authorization-server`.
    OAuth,
    /// OpenID Connect Discovery `openid-configuration`.
    OpenId,
}

/// The MCP order of authorization server metadata URLs for an issuer:
/// with a path, RFC 8414 path-inserted, OIDC path-inserted, OIDC appended;
/// without, RFC 8414 then OIDC at the root. A terminating `/` of the path is removed first.
pub fn authorization_server_metadata_urls(issuer: &Url) -> Vec<(Url, MetadataKind)> {
    let base = origin_url(issuer);
    let path = issuer.path().trim_end_matches('/');
    let candidates: Vec<(String, MetadataKind)> = if path.is_empty() {
        vec![
            (
                "/.well-known/oauth-authorization-server".into(),
                MetadataKind::OAuth,
            ),
            (
                "/.well-known/openid-configuration".into(),
                MetadataKind::OpenId,
            ),
        ]
    } else {
        vec![
            (
                format!("/.well-known/oauth-authorization-server{path}"),
                MetadataKind::OAuth,
            ),
            (
                format!("/.well-known/openid-configuration{path}"),
                MetadataKind::OpenId,
            ),
            (
                format!("{path}/.well-known/openid-configuration"),
                MetadataKind::OpenId,
            ),
        ]
    };
    candidates
        .into_iter()
        .filter_map(|(p, k)| base.join(&p).ok().map(|u| (u, k)))
        .collect()
}

fn origin_url(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_path("/");
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// Where a protected resource metadata document came from. RFC 9728 §3.3 ties the `resource`
/// a document may name to the URL it was fetched from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataSource {
    /// The `resource_metadata` URL of a `WWW-Authenticate` challenge (RFC 9728 §5.1): the
    /// document must name exactly the URL whose request was challenged.
    Challenge,
    /// A well-known URL built by inserting into the server URL's path (RFC 9728 §3.1): the
    /// document must name that path's resource.
    PathInserted,
    /// The well-known URL at the origin's root: the document may name the origin (or exactly
    /// the server URL).
    Root,
}

/// How a protected resource metadata `resource` is matched against the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResourcePolicy {
    /// RFC 9728 §3.3 per source ([`MetadataSource`]). The default.
    #[default]
    Strict,
    /// Also accept any same-origin parent of the server URL on a path-segment boundary,
    /// whatever the source, as some MCP clients do. A co-tenant on the same origin can then
    /// obtain an origin-wide token for the shared authorization server: only for servers
    /// that need it, and known to be alone on their origin.
    DangerousSameOriginParent,
}

/// The resource identifier a metadata document names, parsed and serialised (lower-case scheme
/// and host, normalised escapes), keeping the document's choice of a trailing `/` on an empty
/// path. This value is both compared and sent as RFC 8707 `resource`.
pub fn resource_identifier(raw: &str) -> Result<Url> {
    let u = Url::parse(raw).map_err(|_| Error::InvalidUrl {
        url: http::truncate(raw, 200),
        reason: "resource is not an absolute URL",
    })?;
    if u.fragment().is_some() {
        return Err(Error::InvalidUrl {
            url: http::truncate(raw, 200),
            reason: "resource must not have a fragment (RFC 8707 §2)",
        });
    }
    Ok(u)
}

fn serialise_resource(u: &Url, raw: &str) -> String {
    let s = u.to_string();
    if u.path() == "/" && u.query().is_none() && !raw.ends_with('/') {
        s.trim_end_matches('/').to_owned()
    } else {
        s
    }
}

/// RFC 9728 §3.3: does the metadata's `resource` fit the server URL, given where the document
/// was found? Compared as parsed URLs (an empty path and `/` are the same).
pub fn resource_matches(
    metadata_resource: &str,
    server: &Url,
    source: MetadataSource,
    policy: ResourcePolicy,
) -> bool {
    let Ok(r) = resource_identifier(metadata_resource) else {
        return false;
    };
    let mut requested = server.clone();
    requested.set_fragment(None);
    if r == requested {
        return true;
    }
    let same_origin = r.origin() == server.origin();
    let strict = match source {
        MetadataSource::Challenge => false,
        // The well-known URL dropped the query and a terminating `/`: that is what it names.
        MetadataSource::PathInserted => {
            same_origin
                && r.query().is_none()
                && r.path().trim_end_matches('/') == server.path().trim_end_matches('/')
        }
        MetadataSource::Root => same_origin && r.path() == "/" && r.query().is_none(),
    };
    strict
        || (policy == ResourcePolicy::DangerousSameOriginParent && same_origin_parent(&r, server))
}

fn same_origin_parent(r: &Url, server: &Url) -> bool {
    if r.origin() != server.origin() || (r.query().is_some() && r.query() != server.query()) {
        return false;
    }
    let rp = r.path().trim_end_matches('/');
    let sp = server.path().trim_end_matches('/');
    sp == rp || (sp.starts_with(rp) && sp.as_bytes().get(rp.len()) == Some(&b'/'))
}

/// Checks a protected resource metadata response (RFC 9728 §3.2, §3.3): the `resource` must
/// fit the server for the document's `source` (see [`resource_matches`]).
pub fn process_protected_resource_metadata(
    response: &HttpResponse,
    url: &str,
    server: &Url,
    source: MetadataSource,
    policy: ResourcePolicy,
) -> Result<ProtectedResourceMetadata> {
    if response.status != 200 {
        return Err(status_error(response, url));
    }
    let mut prm: ProtectedResourceMetadata = parse_json(response, url)?;
    if prm.resource.is_empty() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "resource",
        });
    }
    if !resource_matches(&prm.resource, server, source, policy) {
        return Err(Error::ResourceMismatch {
            expected: canonical_uri(server),
            found: http::truncate(&prm.resource, 200),
        });
    }
    // From here on the resource is the checked, serialised value (what is compared is sent).
    let parsed = resource_identifier(&prm.resource)?;
    prm.resource = serialise_resource(&parsed, &prm.resource);
    Ok(prm)
}

/// Checks an authorization server metadata response (RFC 8414 §3.2, §3.3) and the MCP
/// requirements: issuer equality (exact string), S256 advertised, endpoints over HTTPS.
pub fn process_authorization_server_metadata(
    response: &HttpResponse,
    url: &str,
    expected_issuer: &str,
) -> Result<AuthorizationServerMetadata> {
    if response.status != 200 {
        return Err(status_error(response, url));
    }
    let meta: AuthorizationServerMetadata = parse_json(response, url)?;
    if meta.issuer.is_empty() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "issuer",
        });
    }
    if meta.issuer != expected_issuer {
        return Err(Error::IssuerMismatch {
            expected: expected_issuer.to_owned(),
            found: http::truncate(&meta.issuer, 200),
        });
    }
    let has_s256 = meta
        .code_challenge_methods_supported
        .as_ref()
        .is_some_and(|m| m.iter().any(|x| x == S256));
    if !has_s256 {
        return Err(Error::PkceNotSupported {
            issuer: meta.issuer.clone(),
        });
    }
    if meta.token_endpoint.as_deref().unwrap_or("").is_empty() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "token_endpoint",
        });
    }
    for endpoint in [
        &meta.authorization_endpoint,
        &meta.token_endpoint,
        &meta.registration_endpoint,
        &meta.revocation_endpoint,
        &meta.device_authorization_endpoint,
    ]
    .into_iter()
    .flatten()
    {
        parse_secure_url(endpoint)?;
    }
    Ok(meta)
}

fn status_error(response: &HttpResponse, url: &str) -> Error {
    if (300..400).contains(&response.status) {
        Error::Redirected {
            url: url.to_owned(),
            status: response.status,
        }
    } else {
        Error::UnexpectedStatus {
            url: url.to_owned(),
            status: response.status,
            retry_after: response.retry_after(),
        }
    }
}

/// One request made during discovery, for traces and diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryStep {
    /// What was looked for.
    pub what: &'static str,
    /// The URL requested.
    pub url: String,
    /// The status received, or `None` on a transport failure.
    pub status: Option<u16>,
    /// What came of it.
    pub outcome: String,
}

/// Everything discovery found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    /// The MCP server URL discovery started from.
    pub server: String,
    /// The resource indicator to send (RFC 8707): the metadata's `resource`, else the
    /// canonical server URI.
    pub resource: String,
    /// The protected resource metadata, when the server has it.
    pub protected_resource: Option<ProtectedResourceMetadata>,
    /// The authorization server metadata (or the 2025-03-26 fallback endpoints).
    pub authorization_server: AuthorizationServerMetadata,
    /// True when no metadata was found and the default endpoints are used.
    pub fallback: bool,
}

/// Runs discovery for `server` (the MCP endpoint URL), starting from the `resource_metadata`
/// of a 401 challenge when there is one. Every request is recorded in `trace`.
pub async fn discover<H: HttpClient + ?Sized>(
    http: &H,
    server: &Url,
    challenge: Option<&BearerChallenge>,
    trace: &mut Vec<DiscoveryStep>,
) -> Result<Discovery> {
    discover_with(http, server, challenge, ResourcePolicy::Strict, trace).await
}

/// [`discover`] with an explicit [`ResourcePolicy`].
pub async fn discover_with<H: HttpClient + ?Sized>(
    http: &H,
    server: &Url,
    challenge: Option<&BearerChallenge>,
    policy: ResourcePolicy,
    trace: &mut Vec<DiscoveryStep>,
) -> Result<Discovery> {
    check_secure(server)?;
    let mut candidates = Vec::new();
    let advertised = challenge.and_then(|c| c.resource_metadata.as_deref());
    if let Some(rm) = advertised {
        match parse_secure_url(rm) {
            Ok(u) => candidates.push((u, MetadataSource::Challenge)),
            // An unusable pointer is no reason to give up: the well-known URLs remain.
            Err(e) => trace.push(DiscoveryStep {
                what: "resource_metadata from WWW-Authenticate",
                url: http::truncate(rm, 200),
                status: None,
                outcome: format!("skipped: {e}"),
            }),
        }
    }
    let well_known = protected_resource_metadata_urls(server);
    let last = well_known.len().saturating_sub(1);
    for (i, u) in well_known.into_iter().enumerate() {
        let source = if i == last {
            MetadataSource::Root
        } else {
            MetadataSource::PathInserted
        };
        // A pointer to a well-known URL is held to the pointer's rule (the stricter one).
        if !candidates.iter().any(|(c, _)| *c == u) {
            candidates.push((u, source));
        }
    }

    let mut prm = None;
    for (url, source) in candidates {
        let Some(response) = get(http, &url, "protected resource metadata", trace).await? else {
            continue;
        };
        if !next_candidate(&response, url.as_str(), trace)? {
            continue;
        }
        match process_protected_resource_metadata(&response, url.as_str(), server, source, policy) {
            Ok(m) => {
                note(trace, &format!("resource {}", m.resource));
                prm = Some(m);
                break;
            }
            Err(e) if is_not_a_document(&e) => note(trace, &format!("not metadata ({e}), next")),
            Err(e) => {
                note(trace, &format!("refused: {e}"));
                return Err(e);
            }
        }
    }

    let Some(prm) = prm else {
        if advertised.is_some() {
            // The server pointed at metadata that is not there: it is no 2025-03-26 server.
            return Err(Error::MetadataNotFound {
                issuer: canonical_uri(server),
            });
        }
        return discover_legacy(http, server, trace).await;
    };
    let issuer_str =
        prm.authorization_servers
            .first()
            .cloned()
            .ok_or_else(|| Error::NoAuthorizationServer {
                resource: prm.resource.clone(),
            })?;
    let issuer = parse_secure_url(&issuer_str)?;
    let metadata = fetch_authorization_server_metadata(http, &issuer, &issuer_str, trace).await?;
    let Some(metadata) = metadata else {
        return Err(Error::MetadataNotFound { issuer: issuer_str });
    };
    Ok(Discovery {
        server: server.to_string(),
        resource: prm.resource.clone(),
        protected_resource: Some(prm),
        authorization_server: metadata,
        fallback: false,
    })
}

/// Fetches authorization server metadata in the MCP order; `Ok(None)` when none exists.
pub async fn fetch_authorization_server_metadata<H: HttpClient + ?Sized>(
    http: &H,
    issuer: &Url,
    issuer_str: &str,
    trace: &mut Vec<DiscoveryStep>,
) -> Result<Option<AuthorizationServerMetadata>> {
    for (url, kind) in authorization_server_metadata_urls(issuer) {
        let what = match kind {
            MetadataKind::OAuth => "oauth authorization server metadata",
            MetadataKind::OpenId => "openid configuration",
        };
        let Some(response) = get(http, &url, what, trace).await? else {
            continue;
        };
        if !next_candidate(&response, url.as_str(), trace)? {
            continue;
        }
        match process_authorization_server_metadata(&response, url.as_str(), issuer_str) {
            Ok(m) => {
                note(trace, &describe(&m));
                return Ok(Some(m));
            }
            Err(e) if is_not_a_document(&e) => note(trace, &format!("not metadata ({e}), next")),
            Err(e) => {
                note(trace, &format!("refused: {e}"));
                return Err(e);
            }
        }
    }
    Ok(None)
}

/// 2025-03-26 servers: no protected resource metadata; the authorization base URL is the
/// server's origin; metadata at its root, else the default endpoints.
async fn discover_legacy<H: HttpClient + ?Sized>(
    http: &H,
    server: &Url,
    trace: &mut Vec<DiscoveryStep>,
) -> Result<Discovery> {
    let origin = origin_url(server);
    let issuer = canonical_uri(&origin);
    let (metadata, fallback) =
        match fetch_authorization_server_metadata(http, &origin, &issuer, trace).await? {
            Some(m) => (m, false),
            None => {
                trace.push(DiscoveryStep {
                    what: "default endpoints (2025-03-26)",
                    url: issuer.clone(),
                    status: None,
                    outcome: "no metadata: using /authorize, /token, /register".into(),
                });
                (AuthorizationServerMetadata::fallback_for(&origin), true)
            }
        };
    Ok(Discovery {
        server: server.to_string(),
        resource: canonical_uri(server),
        protected_resource: None,
        authorization_server: metadata,
        fallback,
    })
}

async fn get<H: HttpClient + ?Sized>(
    http: &H,
    url: &Url,
    what: &'static str,
    trace: &mut Vec<DiscoveryStep>,
) -> Result<Option<HttpResponse>> {
    // Only CORS-safelisted headers: a preflight would fail against many metadata endpoints.
    match http.send(HttpRequest::get_json(url.as_str())).await {
        Ok(r) => {
            trace.push(DiscoveryStep {
                what,
                url: url.to_string(),
                status: Some(r.status),
                outcome: String::new(),
            });
            Ok(Some(r))
        }
        Err(e) => {
            trace.push(DiscoveryStep {
                what,
                url: url.to_string(),
                status: None,
                outcome: e.message.clone(),
            });
            Err(Error::Transport {
                url: url.to_string(),
                message: e.message,
            })
        }
    }
}

/// `Ok(true)` to parse this response, `Ok(false)` to try the next URL (absent: 4xx, 3xx),
/// `Err` to stop: a 5xx or 429 says the server is in trouble, not that metadata is absent,
/// and must not silently downgrade discovery.
fn next_candidate(response: &HttpResponse, url: &str, trace: &mut [DiscoveryStep]) -> Result<bool> {
    match response.status {
        200 => Ok(true),
        s if s >= 500 || s == 429 => {
            note(trace, "server error: stopping");
            Err(status_error(response, url))
        }
        _ => {
            note(trace, "not found, next");
            Ok(false)
        }
    }
}

/// Errors that mean "this URL does not serve a metadata document" (an HTML catch-all page,
/// an empty body), as opposed to a document that fails a security check.
fn is_not_a_document(e: &Error) -> bool {
    matches!(
        e,
        Error::UnexpectedContentType { .. } | Error::EmptyBody { .. } | Error::InvalidJson { .. }
    )
}

fn note(trace: &mut [DiscoveryStep], outcome: &str) {
    if let Some(last) = trace.last_mut() {
        last.outcome = outcome.to_owned();
    }
}

/// A one-line summary of what an authorization server advertises.
pub fn describe(m: &AuthorizationServerMetadata) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    format!(
        "issuer {}; PKCE S256: {}; iss (RFC 9207): {}; CIMD: {}; DCR: {}; device: {}; revocation: {}; scopes: {}",
        m.issuer,
        yes(m
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|v| v.iter().any(|x| x == S256))),
        yes(m.authorization_response_iss_parameter_supported),
        yes(m.client_id_metadata_document_supported),
        yes(m.registration_endpoint.is_some()),
        yes(m.device_authorization_endpoint.is_some()),
        yes(m.revocation_endpoint.is_some()),
        m.scopes_supported
            .as_ref()
            .map(|s| s.join(" "))
            .unwrap_or_else(|| "-".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn prm_urls() {
        let urls: Vec<String> = protected_resource_metadata_urls(&u("https://x.com/public/mcp"))
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(
            urls,
            [
                "https://x.com/.well-known/oauth-protected-resource/public/mcp",
                "https://x.com/.well-known/oauth-protected-resource"
            ]
        );
        let urls: Vec<String> = protected_resource_metadata_urls(&u("https://x.com/"))
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(urls, ["https://x.com/.well-known/oauth-protected-resource"]);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn as_urls_in_mcp_order() {
        let urls: Vec<String> =
            authorization_server_metadata_urls(&u("https://auth.example.com/tenant1/"))
                .into_iter()
                .map(|(u, _)| u.to_string())
                .collect();
        assert_eq!(
            urls,
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        let urls: Vec<String> = authorization_server_metadata_urls(&u("https://auth.example.com"))
            .into_iter()
            .map(|(u, _)| u.to_string())
            .collect();
        assert_eq!(
            urls,
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn canonical() {
        assert_eq!(
            canonical_uri(&u("HTTPS://MCP.Example.com/")),
            "https://mcp.example.com"
        );
        assert_eq!(
            canonical_uri(&u("https://mcp.example.com/mcp#frag")),
            "https://mcp.example.com/mcp"
        );
        assert_eq!(
            canonical_uri(&u("https://mcp.example.com:8443/server/mcp")),
            "https://mcp.example.com:8443/server/mcp"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn resource_matching() {
        use MetadataSource::*;
        let strict = |r: &str, src| {
            resource_matches(r, &u("https://x.com/api/mcp"), src, ResourcePolicy::Strict)
        };
        // The pointer from a challenge must name exactly the URL requested.
        assert!(strict("https://x.com/api/mcp", Challenge));
        assert!(strict("HTTPS://X.com/api/mcp", Challenge));
        assert!(!strict("https://x.com/api/mcp/", Challenge));
        assert!(!strict("https://x.com/api", Challenge));
        assert!(!strict("https://x.com", Challenge));
        // A co-tenant cannot claim the origin through its own pointer.
        assert!(!strict("https://x.com/", Challenge));
        // A path-inserted well-known URL names that path's resource.
        assert!(strict("https://x.com/api/mcp", PathInserted));
        assert!(strict("https://x.com/api/mcp/", PathInserted));
        assert!(!strict("https://x.com/api", PathInserted));
        assert!(!strict("https://x.com", PathInserted));
        // The root document may name the origin.
        assert!(strict("https://x.com", Root));
        assert!(strict("https://x.com/", Root));
        assert!(strict("https://x.com/api/mcp", Root));
        assert!(!strict("https://x.com/api", Root));
        for src in [Challenge, PathInserted, Root] {
            assert!(!strict("https://x.com/ap", src));
            assert!(!strict("https://x.com/api/mcp/other", src));
            assert!(!strict("https://evil.com/api/mcp", src));
            assert!(!strict("http://x.com/api/mcp", src));
            assert!(!strict("https://x.com/api/mcp#f", src));
            assert!(!strict("not a url", src));
        }
        // The looser rule only when asked for by name.
        let loose = |r: &str| {
            resource_matches(
                r,
                &u("https://x.com/api/mcp"),
                Challenge,
                ResourcePolicy::DangerousSameOriginParent,
            )
        };
        assert!(loose("https://x.com/api") && loose("https://x.com"));
        assert!(!loose("https://x.com/ap") && !loose("https://evil.com/api"));
    }

    fn meta(body: serde_json::Value) -> HttpResponse {
        HttpResponse::json(200, &body)
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn as_metadata_checks() {
        let good = serde_json::json!({
            "issuer": "https://as.example.com",
            "authorization_endpoint": "https://as.example.com/authorize",
            "token_endpoint": "https://as.example.com/token",
            "code_challenge_methods_supported": ["S256"],
        });
        assert!(
            process_authorization_server_metadata(
                &meta(good.clone()),
                "u",
                "https://as.example.com"
            )
            .is_ok()
        );
        let e = process_authorization_server_metadata(
            &meta(good.clone()),
            "u",
            "https://as.example.com/",
        )
        .unwrap_err();
        assert_eq!(e.code(), "issuer_mismatch");
        let mut no_pkce = good.clone();
        no_pkce
            .as_object_mut()
            .unwrap()
            .remove("code_challenge_methods_supported");
        assert_eq!(
            process_authorization_server_metadata(&meta(no_pkce), "u", "https://as.example.com")
                .unwrap_err()
                .code(),
            "pkce_not_supported"
        );
        let mut plain = good.clone();
        plain["code_challenge_methods_supported"] = serde_json::json!(["plain"]);
        assert_eq!(
            process_authorization_server_metadata(&meta(plain), "u", "https://as.example.com")
                .unwrap_err()
                .code(),
            "pkce_not_supported"
        );
        let mut insecure = good.clone();
        insecure["token_endpoint"] = serde_json::json!("http://as.example.com/token");
        assert_eq!(
            process_authorization_server_metadata(&meta(insecure), "u", "https://as.example.com")
                .unwrap_err()
                .code(),
            "insecure_url"
        );
        let html = HttpResponse::new(
            200,
            vec![("content-type".into(), "text/html".into())],
            "<html>",
        );
        assert_eq!(
            process_authorization_server_metadata(&html, "u", "x")
                .unwrap_err()
                .code(),
            "unexpected_content_type"
        );
        let empty = HttpResponse::new(
            200,
            vec![("content-type".into(), "application/json".into())],
            "",
        );
        assert_eq!(
            process_authorization_server_metadata(&empty, "u", "x")
                .unwrap_err()
                .code(),
            "empty_body"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn prm_checks() {
        let s = u("https://x.com/mcp");
        let ok = meta(
            serde_json::json!({"resource": "https://x.com/mcp", "authorization_servers": ["https://as"]}),
        );
        let check = |r: &HttpResponse| {
            process_protected_resource_metadata(
                r,
                "u",
                &s,
                MetadataSource::PathInserted,
                ResourcePolicy::Strict,
            )
        };
        assert!(check(&ok).is_ok());
        // What was checked is what is sent: the parsed, serialised form.
        let odd = meta(
            serde_json::json!({"resource": "HTTPS://X.COM/mcp", "authorization_servers": ["https://as"]}),
        );
        assert_eq!(check(&odd).unwrap().resource, "https://x.com/mcp");
        let bad = meta(serde_json::json!({"resource": "https://evil.com/mcp"}));
        assert_eq!(check(&bad).unwrap_err().code(), "resource_mismatch");
        let missing = meta(serde_json::json!({"authorization_servers": []}));
        assert_eq!(check(&missing).unwrap_err().code(), "invalid_json");
    }
}
