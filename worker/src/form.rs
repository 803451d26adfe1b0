//! The token and revocation request bodies (RFC 6749 §3.2, §4.1.3, §6; RFC 7009 §2.1), parsed
//! into the few parameters the proxy forwards. Everything else the page sends is dropped: the
//! upstream request is built from scratch, never copied.

use edge_oauth_core::url::form_urlencoded;

use crate::error::ProxyError;

/// True for `application/x-www-form-urlencoded` (parameters ignored).
pub fn is_form_content_type(value: &str) -> bool {
    value.split(';').next().is_some_and(|m| {
        m.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// A parsed form: pairs in order, empty values dropped (RFC 6749 §3.1: a parameter sent
/// without a value is treated as omitted).
#[derive(Debug)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses a body.
    pub fn parse(body: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(body)
                .into_owned()
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        )
    }

    /// The one value of `name`; repeated → `duplicate_parameter` (RFC 6749 §3.1).
    pub fn single(&self, name: &'static str) -> Result<Option<&str>, ProxyError> {
        let mut values = self.0.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(ProxyError::DuplicateParameter { name });
        }
        Ok(first)
    }

    /// The one value of a required parameter.
    pub fn required(&self, name: &'static str) -> Result<&str, ProxyError> {
        self.single(name)?
            .ok_or(ProxyError::MissingParameter { name })
    }
}

/// A token request the proxy accepts.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenRequest {
    /// `grant_type=authorization_code` (RFC 6749 §4.1.3, PKCE RFC 7636 §4.5, RFC 8707 §2.2).
    AuthorizationCode {
        /// `client_id`, selecting the provider.
        client_id: Option<String>,
        /// The code.
        code: String,
        /// The redirect URI of the authorization request.
        redirect_uri: String,
        /// The PKCE verifier.
        code_verifier: String,
        /// The resource indicator.
        resource: Option<String>,
    },
    /// `grant_type=refresh_token` with the session handle in `refresh_token`.
    RefreshToken {
        /// The session handle.
        handle: String,
    },
}

impl TokenRequest {
    /// Reads the request from a form. `scope` on a refresh is refused rather than ignored: the
    /// session serves one access token, and silently widening a narrowed request would surprise.
    pub fn from_form(form: &Form) -> Result<Self, ProxyError> {
        match form.required("grant_type")? {
            "authorization_code" => Ok(TokenRequest::AuthorizationCode {
                client_id: form.single("client_id")?.map(str::to_owned),
                code: form.required("code")?.to_owned(),
                redirect_uri: form.required("redirect_uri")?.to_owned(),
                code_verifier: form.required("code_verifier")?.to_owned(),
                resource: form.single("resource")?.map(str::to_owned),
            }),
            "refresh_token" => {
                if form.single("scope")?.is_some() {
                    return Err(ProxyError::UnsupportedParameter { name: "scope" });
                }
                Ok(TokenRequest::RefreshToken {
                    handle: form.required("refresh_token")?.to_owned(),
                })
            }
            _ => Err(ProxyError::UnsupportedGrantType),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_form_content_type(
            "application/x-www-form-urlencoded;charset=UTF-8"
        ));
        assert!(is_form_content_type("Application/X-WWW-Form-Urlencoded"));
        assert!(!is_form_content_type("application/json"));
        assert!(!is_form_content_type(""));
    }

    #[test]
    fn code_exchange() {
        let f = Form::parse(b"grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fa%2Fcb&code_verifier=v&client_secret=x&extra=1&resource=");
        let r = TokenRequest::from_form(&f).unwrap();
        assert_eq!(
            r,
            TokenRequest::AuthorizationCode {
                client_id: None,
                code: "abc".into(),
                redirect_uri: "https://a/cb".into(),
                code_verifier: "v".into(),
                resource: None,
            }
        );
        let f = Form::parse(
            b"grant_type=authorization_code&code=a&code=b&redirect_uri=x&code_verifier=v",
        );
        assert_eq!(
            TokenRequest::from_form(&f),
            Err(ProxyError::DuplicateParameter { name: "code" })
        );
        let f = Form::parse(b"grant_type=authorization_code&code=a&redirect_uri=x");
        assert_eq!(
            TokenRequest::from_form(&f),
            Err(ProxyError::MissingParameter {
                name: "code_verifier"
            })
        );
    }

    #[test]
    fn refresh_and_other_grants() {
        let f = Form::parse(b"grant_type=refresh_token&refresh_token=h");
        assert_eq!(
            TokenRequest::from_form(&f),
            Ok(TokenRequest::RefreshToken { handle: "h".into() })
        );
        let f = Form::parse(b"grant_type=refresh_token&refresh_token=h&scope=a");
        assert_eq!(
            TokenRequest::from_form(&f),
            Err(ProxyError::UnsupportedParameter { name: "scope" })
        );
        for g in [
            "client_credentials",
            "password",
            "urn:ietf:params:oauth:grant-type:device_code",
        ] {
            let f = Form::parse(format!("grant_type={g}").as_bytes());
            assert_eq!(
                TokenRequest::from_form(&f),
                Err(ProxyError::UnsupportedGrantType)
            );
        }
        assert_eq!(
            TokenRequest::from_form(&Form::parse(b"")),
            Err(ProxyError::MissingParameter { name: "grant_type" })
        );
    }
}
