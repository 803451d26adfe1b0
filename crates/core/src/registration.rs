//! Client registration in the MCP order: pre-registered credentials, Client ID Metadata
//! Documents (a URL as `client_id`), then RFC 7591 dynamic registration.

use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::discovery::AuthorizationServerMetadata;
use crate::error::{Endpoint, Error, Result};
use crate::http::{self, HttpRequest, HttpResponse, check_status, parse_json};
use crate::secret::{ClientSecret, RegistrationAccessToken};

/// Client authentication at the token endpoint (RFC 6749 §2.3, RFC 8414 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    /// Public client: `client_id` in the body, no secret.
    None,
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2, OpenID Connect Core §9):
    /// see [`crate::grants::client_assertion`] and [`crate::grants::with_client_assertion`].
    PrivateKeyJwt,
}

impl TokenEndpointAuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parses an RFC 7591 name this crate supports.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            _ => None,
        }
    }
}

/// How a client came to have its `client_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationSource {
    /// Configured by the application.
    PreRegistered,
    /// A Client ID Metadata Document URL.
    MetadataDocument,
    /// RFC 7591 dynamic registration.
    Dynamic,
}

/// A client identity at one authorization server (credentials are per issuer, never shared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCredentials {
    /// The issuer this client is registered with.
    pub issuer: String,
    /// The client identifier.
    pub client_id: String,
    /// The client secret for confidential clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecret>,
    /// How to authenticate at the token endpoint.
    pub auth_method: TokenEndpointAuthMethod,
    /// How the client was obtained.
    pub source: RegistrationSource,
    /// Redirect URIs registered (empty when unknown).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `client_secret_expires_at` (0 or absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_expires_at: Option<u64>,
    /// RFC 7592 registration access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<RegistrationAccessToken>,
}

impl ClientCredentials {
    /// Adds client authentication to a token-endpoint request (RFC 6749 §2.3.1): HTTP Basic
    /// over the form-urlencoded id and secret for `client_secret_basic`, `client_secret` in the
    /// body for `client_secret_post`. `client_id` is in the body in every case: RFC 6749 §3.2.1
    /// lets a client identify itself that way, and several servers answer
    /// `invalid_client: Missing client_id` without it even when the Basic header is right.
    /// For `private_key_jwt` this adds `client_id` only: the signed assertion is added with
    /// [`crate::grants::with_client_assertion`] (signing is asynchronous).
    pub fn authenticate(
        &self,
        request: HttpRequest,
        mut pairs: Vec<(&'static str, String)>,
    ) -> HttpRequest {
        let mut request = request;
        match (self.auth_method, &self.client_secret) {
            (TokenEndpointAuthMethod::ClientSecretBasic, Some(secret)) => {
                let enc = |s: &str| {
                    crate::url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let basic = crate::jws::b64(
                    &STANDARD,
                    format!("{}:{}", enc(&self.client_id), enc(secret.secret())).as_bytes(),
                );
                request
                    .headers
                    .push(("Authorization".into(), format!("Basic {basic}")));
                pairs.push(("client_id", self.client_id.clone()));
            }
            (TokenEndpointAuthMethod::ClientSecretPost, Some(secret)) => {
                pairs.push(("client_id", self.client_id.clone()));
                pairs.push(("client_secret", secret.secret().to_owned()));
            }
            _ => pairs.push(("client_id", self.client_id.clone())),
        }
        let body = crate::url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        request.body = Some(body.into_bytes());
        request
    }

    /// True when the secret has expired (`client_secret_expires_at`, RFC 7591 §3.2.1).
    pub fn is_expired(&self, now: u64) -> bool {
        matches!(self.secret_expires_at, Some(t) if t != 0 && t <= now)
    }
}

/// What the application says about itself when registering (RFC 7591 §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// `client_name`.
    pub client_name: String,
    /// `redirect_uris`.
    pub redirect_uris: Vec<String>,
    /// `application_type`: `native` for loopback/CLI clients, `web` for browser apps
    /// (OpenID Connect Registration §2; the MCP spec asks clients to send it).
    pub application_type: String,
    /// `grant_types`.
    pub grant_types: Vec<String>,
    /// `response_types`.
    pub response_types: Vec<String>,
    /// The auth method to ask for when the AS allows it; `none` for public clients.
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// `scope` to register, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `client_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// `software_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// `software_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
}

impl ClientMetadata {
    /// A public native client (RFC 8252) with one loopback redirect URI.
    pub fn native(client_name: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            client_name: client_name.into(),
            redirect_uris: vec![redirect_uri.into()],
            application_type: "native".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            response_types: vec!["code".into()],
            token_endpoint_auth_method: TokenEndpointAuthMethod::None,
            scope: None,
            client_uri: None,
            software_id: None,
            software_version: None,
        }
    }

    /// A public browser client with one redirect URI.
    pub fn web(client_name: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            application_type: "web".into(),
            ..Self::native(client_name, redirect_uri)
        }
    }
}

/// The auth method to register with: the client's preference when the AS allows it, else the
/// first supported one in the order none, basic, post.
pub fn choose_auth_method(
    preferred: TokenEndpointAuthMethod,
    meta: &AuthorizationServerMetadata,
) -> TokenEndpointAuthMethod {
    if meta.token_endpoint_auth_methods_supported.is_none()
        || meta.supports_auth_method(preferred.as_str())
    {
        return preferred;
    }
    [
        TokenEndpointAuthMethod::None,
        TokenEndpointAuthMethod::ClientSecretBasic,
        TokenEndpointAuthMethod::ClientSecretPost,
    ]
    .into_iter()
    .find(|m| meta.supports_auth_method(m.as_str()))
    .unwrap_or(preferred)
}

/// Builds the RFC 7591 §3.1 registration request.
pub fn dynamic_registration_request(
    meta: &AuthorizationServerMetadata,
    client: &ClientMetadata,
) -> Result<HttpRequest> {
    let endpoint =
        meta.registration_endpoint
            .as_deref()
            .ok_or_else(|| Error::RegistrationNotSupported {
                issuer: meta.issuer.clone(),
            })?;
    http::parse_secure_url(endpoint)?;
    let method = choose_auth_method(client.token_endpoint_auth_method, meta);
    // The error's text is not formatted, and members are set on the map rather than through
    // `Value`'s `IndexMut`: both would bring serde_json's messages into the wasm. A struct
    // always serialises as an object.
    let mut body = serde_json::to_value(client).map_err(|_| Error::InvalidJson {
        url: endpoint.to_owned(),
        detail: "a value JSON cannot represent".to_owned(),
    })?;
    if let serde_json::Value::Object(members) = &mut body {
        members.insert("token_endpoint_auth_method".into(), method.as_str().into());
        // Ask only for grants the AS says it supports (when it says): an unsupported grant
        // type is a common reason for `invalid_client_metadata`. authorization_code is always
        // kept.
        if let Some(supported) = &meta.grant_types_supported {
            let grants: Vec<String> = client
                .grant_types
                .iter()
                .filter(|g| *g == "authorization_code" || supported.contains(g))
                .cloned()
                .collect();
            members.insert("grant_types".into(), grants.into());
        }
    }
    Ok(HttpRequest::post_json(endpoint, &body))
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_expires_at: Option<u64>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    registration_access_token: Option<String>,
}

/// Checks the RFC 7591 §3.2 response (201, or 200 from lenient servers).
pub fn process_registration_response(
    response: &HttpResponse,
    url: &str,
    issuer: &str,
    requested: &ClientMetadata,
) -> Result<ClientCredentials> {
    check_status(response, url, Endpoint::Registration)?;
    let r: RegistrationResponse = parse_json(response, url)?;
    if r.client_id.is_empty() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "client_id",
        });
    }
    let secret = r
        .client_secret
        .filter(|s| !s.is_empty())
        .map(ClientSecret::new);
    let auth_method = match r.token_endpoint_auth_method.as_deref() {
        Some(m) => TokenEndpointAuthMethod::parse(m).ok_or(Error::InvalidJson {
            url: url.to_owned(),
            detail: "token_endpoint_auth_method is not one this client supports".into(),
        })?,
        // RFC 7591 §2: default client_secret_basic; without a secret the client is public.
        None if secret.is_some() => TokenEndpointAuthMethod::ClientSecretBasic,
        None => TokenEndpointAuthMethod::None,
    };
    let secret_method = matches!(
        auth_method,
        TokenEndpointAuthMethod::ClientSecretBasic | TokenEndpointAuthMethod::ClientSecretPost
    );
    if secret_method && secret.is_none() {
        return Err(Error::MissingField {
            url: url.to_owned(),
            field: "client_secret",
        });
    }
    Ok(ClientCredentials {
        issuer: issuer.to_owned(),
        client_id: r.client_id,
        client_secret: secret,
        auth_method,
        source: RegistrationSource::Dynamic,
        redirect_uris: r
            .redirect_uris
            .unwrap_or_else(|| requested.redirect_uris.clone()),
        secret_expires_at: r.client_secret_expires_at.filter(|&t| t != 0),
        registration_access_token: r
            .registration_access_token
            .map(RegistrationAccessToken::new),
    })
}

/// A client identified by its Client ID Metadata Document URL (no registration request).
pub fn metadata_document_client(
    issuer: &str,
    client_id_url: &str,
    redirect_uri: &str,
) -> Result<ClientCredentials> {
    let u = http::parse_secure_url(client_id_url)?;
    if u.scheme() != "https" || u.path() == "/" || u.fragment().is_some() {
        return Err(Error::InvalidUrl {
            url: client_id_url.to_owned(),
            reason: "a client ID metadata document URL must be https with a path",
        });
    }
    Ok(ClientCredentials {
        issuer: issuer.to_owned(),
        client_id: client_id_url.to_owned(),
        client_secret: None,
        auth_method: TokenEndpointAuthMethod::None,
        source: RegistrationSource::MetadataDocument,
        redirect_uris: vec![redirect_uri.to_owned()],
        secret_expires_at: None,
        registration_access_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_meta() -> AuthorizationServerMetadata {
        AuthorizationServerMetadata {
            issuer: "https://as.example.com".into(),
            registration_endpoint: Some("https://as.example.com/register".into()),
            token_endpoint_auth_methods_supported: Some(vec![
                "client_secret_basic".into(),
                "none".into(),
            ]),
            ..Default::default()
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn dcr_request_has_application_type() {
        let cm = ClientMetadata::native("edge-oauth", "http://127.0.0.1:8976/callback");
        let req = dynamic_registration_request(&as_meta(), &cm).unwrap();
        let body: serde_json::Value = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["application_type"], "native");
        assert_eq!(body["token_endpoint_auth_method"], "none");
        assert_eq!(body["redirect_uris"][0], "http://127.0.0.1:8976/callback");
        assert_eq!(
            body["grant_types"],
            serde_json::json!(["authorization_code", "refresh_token"])
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn dcr_asks_only_for_advertised_grants() {
        let mut cm = ClientMetadata::native("edge-oauth", "http://127.0.0.1:8976/callback");
        cm.grant_types.push(crate::device::DEVICE_CODE_GRANT.into());
        let mut m = as_meta();
        m.grant_types_supported = Some(vec!["authorization_code".into(), "refresh_token".into()]);
        let req = dynamic_registration_request(&m, &cm).unwrap();
        let body: serde_json::Value = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body["grant_types"],
            serde_json::json!(["authorization_code", "refresh_token"])
        );
        m.grant_types_supported = None;
        let req = dynamic_registration_request(&m, &cm).unwrap();
        let body: serde_json::Value = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["grant_types"][2], crate::device::DEVICE_CODE_GRANT);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn auth_method_follows_server() {
        let mut m = as_meta();
        m.token_endpoint_auth_methods_supported = Some(vec!["client_secret_post".into()]);
        assert_eq!(
            choose_auth_method(TokenEndpointAuthMethod::None, &m),
            TokenEndpointAuthMethod::ClientSecretPost
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn registration_response() {
        let cm = ClientMetadata::native("n", "http://127.0.0.1/cb");
        let ok = HttpResponse::json(
            201,
            &serde_json::json!({"client_id": "abc", "client_secret": "s3", "token_endpoint_auth_method": "client_secret_post"}),
        );
        let c = process_registration_response(&ok, "u", "https://as", &cm).unwrap();
        assert_eq!(c.auth_method, TokenEndpointAuthMethod::ClientSecretPost);
        assert_eq!(c.client_secret.as_ref().unwrap().secret(), "s3");
        let public = HttpResponse::json(201, &serde_json::json!({"client_id": "abc"}));
        assert_eq!(
            process_registration_response(&public, "u", "https://as", &cm)
                .unwrap()
                .auth_method,
            TokenEndpointAuthMethod::None
        );
        let err = HttpResponse::json(
            400,
            &serde_json::json!({"error": "invalid_redirect_uri", "error_description": "no"}),
        );
        let e = process_registration_response(&err, "u", "https://as", &cm).unwrap_err();
        assert_eq!(e.oauth_code().unwrap().as_str(), "invalid_redirect_uri");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn basic_auth_encodes_per_rfc6749() {
        let c = ClientCredentials {
            issuer: "i".into(),
            client_id: "a b".into(),
            client_secret: Some(ClientSecret::new("p:w")),
            auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
            source: RegistrationSource::PreRegistered,
            redirect_uris: vec![],
            secret_expires_at: None,
            registration_access_token: None,
        };
        let r = c.authenticate(
            HttpRequest::post_form("https://as/token", []),
            vec![("grant_type", "x".into())],
        );
        // "a+b:p%3Aw"
        assert_eq!(r.header("authorization"), Some("Basic YStiOnAlM0F3"));
        // The id is also in the body (RFC 6749 §3.2.1), the secret only in the header.
        let pairs = r.form_pairs();
        assert!(
            pairs.contains(&("client_id".into(), "a b".into())),
            "{pairs:?}"
        );
        assert!(!pairs.iter().any(|(k, _)| k == "client_secret"));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn cimd_requires_https_path() {
        assert!(
            metadata_document_client("i", "https://app.example.com/oauth/client.json", "cb")
                .is_ok()
        );
        assert!(metadata_document_client("i", "https://app.example.com/", "cb").is_err());
    }
}
