//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1), with the Bearer parameters of RFC 6750 §3
//! and RFC 9728 §5.1 (`resource_metadata`).

/// One challenge: a scheme and its parameters (names lower-cased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The auth scheme, as sent (compare case-insensitively).
    pub scheme: String,
    /// A token68 value, when the challenge carries one instead of parameters.
    pub token68: Option<String>,
    /// `name=value` parameters, names lower-cased, quoted strings unescaped.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter by (case-insensitive) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The Bearer challenge fields the client acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// `error` (e.g. `invalid_token`, `insufficient_scope`).
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
    /// `scope`: the scopes needed (authoritative for step-up in MCP).
    pub scope: Option<String>,
    /// `resource_metadata` (RFC 9728 §5.1).
    pub resource_metadata: Option<String>,
    /// `realm`.
    pub realm: Option<String>,
}

/// Parses a header value (several headers may be joined with `,`). Never panics; malformed
/// tails are dropped and what parsed before them is kept.
pub fn parse_challenges(input: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: input.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_ws_and_commas();
        if p.done() {
            break;
        }
        let scheme = p.token();
        if scheme.is_empty() {
            p.i += 1; // junk where a scheme should be: skip it, keep looking
            continue;
        }
        let mut ch = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        let mut first = true;
        loop {
            p.skip_ws();
            if p.done() {
                break;
            }
            if p.peek() == Some(b',') {
                // Either the list separator between params, or the end of this challenge.
                let save = p.i;
                p.i += 1;
                p.skip_ws_and_commas();
                if !p.param_ahead() {
                    p.i = save;
                    break;
                }
                continue;
            }
            if p.param_ahead() {
                let name = p.token().to_ascii_lowercase();
                p.skip_ws();
                p.i += 1; // '='
                p.skip_ws();
                let value = if p.peek() == Some(b'"') {
                    p.quoted()
                } else {
                    p.token()
                };
                ch.params.push((name, value));
            } else if first {
                let t = p.token68();
                if t.is_empty() {
                    break;
                }
                ch.token68 = Some(t);
            } else {
                break;
            }
            first = false;
        }
        out.push(ch);
    }
    out
}

/// The first Bearer challenge's fields, if any.
pub fn parse_bearer(input: &str) -> Option<BearerChallenge> {
    let ch = parse_challenges(input)
        .into_iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
    Some(token_challenge_fields(&ch))
}

/// The fields of the challenge for an OAuth access token: the first Bearer challenge, else the
/// first DPoP one (RFC 9449 §7.1 uses the same `error`, `error_description`, `scope` and, with
/// RFC 9728 §5.1, `resource_metadata` parameters). A server that takes only DPoP tokens
/// challenges with DPoP alone.
pub fn parse_token_challenge(input: &str) -> Option<BearerChallenge> {
    let all = parse_challenges(input);
    let ch = all
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        .or_else(|| all.iter().find(|c| c.scheme.eq_ignore_ascii_case("dpop")))?;
    Some(token_challenge_fields(ch))
}

fn token_challenge_fields(ch: &Challenge) -> BearerChallenge {
    let get = |n: &str| ch.param(n).map(str::to_owned);
    BearerChallenge {
        error: get("error"),
        error_description: get("error_description"),
        scope: get("scope"),
        resource_metadata: get("resource_metadata"),
        realm: get("realm"),
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> String {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn token68(&mut self) -> String {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"-._~+/".contains(&c))
        {
            self.i += 1;
        }
        while self.peek() == Some(b'=') {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    /// `token BWS "=" BWS (token | quoted-string)` starts here (and is not a token68's padding).
    fn param_ahead(&self) -> bool {
        let mut j = self.i;
        let start = j;
        while self.s.get(j).copied().is_some_and(is_tchar) {
            j += 1;
        }
        if j == start {
            return false;
        }
        while matches!(self.s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        if self.s.get(j) != Some(&b'=') {
            return false;
        }
        j += 1;
        while matches!(self.s.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        matches!(self.s.get(j), Some(&c) if c == b'"' || is_tchar(c))
    }
    fn quoted(&mut self) -> String {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn bearer_with_resource_metadata() {
        let h = r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource""#;
        let b = parse_bearer(h).unwrap();
        assert_eq!(b.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(b.scope.as_deref(), Some("files:read files:write"));
        assert_eq!(
            b.resource_metadata.as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource")
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn several_challenges_and_token68() {
        let h = r#"Basic realm="x", DPoP algs="ES256 RS256", error=invalid_token, Bearer realm="mcp", Negotiate abc123=="#;
        let cs = parse_challenges(h);
        let schemes: Vec<_> = cs.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "DPoP", "Bearer", "Negotiate"]);
        assert_eq!(cs[1].param("algs"), Some("ES256 RS256"));
        assert_eq!(cs[1].param("ERROR"), Some("invalid_token"));
        assert_eq!(cs[3].token68.as_deref(), Some("abc123=="));
        assert_eq!(parse_bearer(h).unwrap().realm.as_deref(), Some("mcp"));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn quoted_escapes_and_case() {
        let b = parse_bearer(r#"bearer Error_Description="say \"hi\", ok", SCOPE=a"#).unwrap();
        assert_eq!(b.error_description.as_deref(), Some(r#"say "hi", ok"#));
        assert_eq!(b.scope.as_deref(), Some("a"));
        assert_eq!(parse_bearer("Bearer").unwrap(), BearerChallenge::default());
        assert!(parse_bearer("Basic realm=x").is_none());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn hostile_inputs() {
        for h in [
            "",
            ",,,",
            "=",
            "\"",
            "Bearer =",
            "Bearer a=\"unterminated",
            "Bearer a=b,,,, c",
            "é ü",
            "Bearer ,=,\"\\",
        ] {
            let _ = parse_challenges(h);
        }
        assert_eq!(parse_bearer("Bearer a=\"unterminated").unwrap().error, None);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn dpop_only_challenge() {
        let h = r#"DPoP algs="ES256", error="use_dpop_nonce", resource_metadata="https://rs/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(parse_bearer(h), None);
        let c = parse_token_challenge(h).unwrap();
        assert_eq!(c.error.as_deref(), Some("use_dpop_nonce"));
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://rs/.well-known/oauth-protected-resource/mcp")
        );
        // Bearer first when both are offered.
        let both = r#"DPoP error="invalid_token", Bearer scope="a""#;
        assert_eq!(
            parse_token_challenge(both).unwrap().scope.as_deref(),
            Some("a")
        );
    }
}
