//! `GET /relay?url=`: the authorization server metadata of configured issuers, for pages whose
//! authorization server serves its discovery documents without CORS. Only the exact
//! well-known URLs the core derives from each configured issuer (RFC 8414 §3 and OpenID
//! Connect Discovery, in the MCP order) are relayed: never another URL, query or host.

use edge_oauth_core::discovery::authorization_server_metadata_urls;
use edge_oauth_core::url::Url;

use crate::config::Provider;

/// The largest metadata document relayed.
pub const MAX_RELAY_BYTES: usize = 64 * 1024;

/// Response headers of the metadata passed back.
pub const RELAY_RESPONSE_HEADERS: &[&str] = &["cache-control", "content-type"];

/// The well-known metadata URLs of every configured issuer.
pub fn allowed_urls(providers: &[Provider]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in providers {
        let Ok(issuer) = Url::parse(&p.issuer) else {
            continue;
        };
        for (url, _) in authorization_server_metadata_urls(&issuer) {
            let s = url.as_str().to_owned();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// The URL to fetch for a `url` parameter, when it is one of the allowed ones (compared after
/// parsing, so `HTTPS://AS.example.com:443/...` names the same document).
pub fn relay_target(requested: &str, providers: &[Provider]) -> Option<String> {
    let url = Url::parse(requested).ok()?;
    let wanted = url.as_str();
    allowed_urls(providers).into_iter().find(|a| a == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Source};

    struct Vars;
    impl Source for Vars {
        fn var(&self, name: &str) -> Option<String> {
            match name {
                "ALLOWED_ORIGINS" => Some("https://app.example.com".into()),
                "PROVIDERS" => Some(
                    r#"[{"name":"a","issuer":"https://as.example.com","client_id":"c","client_secret_binding":"S","redirect_uris":["https://app.example.com/cb"]},
                        {"name":"b","issuer":"https://id.example.org/tenant/1","client_id":"d","client_secret_binding":"S","redirect_uris":["https://app.example.com/cb"]}]"#
                        .into(),
                ),
                _ => None,
            }
        }
        fn secret(&self, name: &str) -> Option<String> {
            (name == "S").then(|| "x".into())
        }
    }

    #[test]
    fn only_the_well_known_urls_of_configured_issuers() {
        let c = Config::load(&Vars).unwrap();
        let allowed = allowed_urls(&c.providers);
        assert_eq!(
            allowed,
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration",
                "https://id.example.org/.well-known/oauth-authorization-server/tenant/1",
                "https://id.example.org/.well-known/openid-configuration/tenant/1",
                "https://id.example.org/tenant/1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            relay_target(
                "HTTPS://AS.example.com:443/.well-known/openid-configuration",
                &c.providers
            )
            .as_deref(),
            Some("https://as.example.com/.well-known/openid-configuration")
        );
        for refused in [
            "https://as.example.com/.well-known/oauth-authorization-server?x=1",
            "https://as.example.com/.well-known/oauth-authorization-server#f",
            "https://as.example.com/token",
            "https://evil.example/.well-known/oauth-authorization-server",
            "http://as.example.com/.well-known/oauth-authorization-server",
            "https://as.example.com.evil.example/.well-known/openid-configuration",
            "https://169.254.169.254/latest/meta-data/",
            "not a url",
            "",
        ] {
            assert!(relay_target(refused, &c.providers).is_none(), "{refused}");
        }
    }
}
