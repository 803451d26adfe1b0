//! Scope selection (MCP authorization spec, "Scope Selection Strategy") and step-up unions.

use crate::discovery::{AuthorizationServerMetadata, ProtectedResourceMetadata};

/// `offline_access` (OpenID Connect Core §11): asked for only when the AS lists it.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The scope to request: the challenge's `scope` when the resource sent one (authoritative),
/// else the resource metadata's `scopes_supported`, else none; plus `offline_access` when the
/// authorization server advertises it, so that a refresh token is issued — but never alone:
/// without any other scope the parameter is omitted and the AS applies its defaults.
pub fn select_scope(
    challenge_scope: Option<&str>,
    resource: Option<&ProtectedResourceMetadata>,
    server: &AuthorizationServerMetadata,
) -> Option<String> {
    let base = match challenge_scope.filter(|s| !s.trim().is_empty()) {
        Some(s) => Some(s.to_owned()),
        None => resource
            .and_then(|r| r.scopes_supported.as_ref())
            .filter(|v| !v.is_empty())
            .map(|v| v.join(" ")),
    };
    match base {
        Some(b) if server.supports_scope(OFFLINE_ACCESS) => {
            Some(union(Some(&b), Some(OFFLINE_ACCESS)))
        }
        other => other,
    }
}

/// Space-separated union, order kept, duplicates dropped (RFC 6749 §3.3 scope tokens).
pub fn union(a: Option<&str>, b: Option<&str>) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in a.into_iter().chain(b).flat_map(str::split_ascii_whitespace) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

/// True when every scope token of `needed` is in `granted`.
pub fn contains_all(granted: Option<&str>, needed: Option<&str>) -> bool {
    let g: Vec<&str> = granted.unwrap_or("").split_ascii_whitespace().collect();
    needed
        .unwrap_or("")
        .split_ascii_whitespace()
        .all(|n| g.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_meta(scopes: &[&str]) -> AuthorizationServerMetadata {
        AuthorizationServerMetadata {
            scopes_supported: Some(scopes.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn challenge_wins_then_prm_then_none() {
        let prm = ProtectedResourceMetadata {
            scopes_supported: Some(vec!["a".into(), "b".into()]),
            ..Default::default()
        };
        let m = as_meta(&["a", "b"]);
        assert_eq!(
            select_scope(Some("c"), Some(&prm), &m).as_deref(),
            Some("c")
        );
        assert_eq!(select_scope(None, Some(&prm), &m).as_deref(), Some("a b"));
        assert_eq!(select_scope(None, None, &m), None);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn offline_access_only_when_advertised() {
        assert_eq!(
            select_scope(Some("c"), None, &as_meta(&["c", "offline_access"])).as_deref(),
            Some("c offline_access")
        );
        assert_eq!(
            select_scope(None, None, &as_meta(&["offline_access"])).as_deref(),
            None
        );
        assert_eq!(
            select_scope(Some("c"), None, &as_meta(&["c"])).as_deref(),
            Some("c")
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn unions() {
        assert_eq!(union(Some("a b"), Some("b c")), "a b c");
        assert_eq!(union(None, Some(" x  y ")), "x y");
        assert!(contains_all(Some("a b c"), Some("c a")));
        assert!(!contains_all(Some("a"), Some("a b")));
        assert!(contains_all(None, None));
    }
}
