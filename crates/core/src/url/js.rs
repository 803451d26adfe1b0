//! `Url` over the JS engine's WHATWG `URL` (the `js-url` feature on wasm32): parsed once by
//! the engine, its serialisation kept, every accessor answered from that string.

use core::fmt;
use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// The input is not a URL the WHATWG parser accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError;

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid URL")
    }
}

impl std::error::Error for ParseError {}

/// The host of a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host<S = String> {
    /// A domain name (ASCII, as the parser serialised it).
    Domain(S),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address.
    Ipv6(Ipv6Addr),
}

/// The origin of a URL (WHATWG): scheme, host and port for special schemes; otherwise an
/// opaque origin, equal to no other.
#[derive(Clone, Debug)]
pub struct Origin(Option<(String, String, u16)>);

impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        matches!((&self.0, &other.0), (Some(a), Some(b)) if a == b)
    }
}

impl Origin {
    /// `scheme://host[:port]`, or `null` for an opaque origin.
    pub fn ascii_serialization(&self) -> String {
        match &self.0 {
            None => "null".into(),
            Some((scheme, host, port)) if default_port(scheme) == Some(*port) => {
                format!("{scheme}://{host}")
            }
            Some((scheme, host, port)) => format!("{scheme}://{host}:{port}"),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        _ => None,
    }
}

/// A parsed absolute URL.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Url {
    href: String,
    scheme: String,
    hostname: String,
    port: Option<u16>,
    path: String,
    username: String,
    password: String,
}

fn get(o: &JsValue, k: &str) -> String {
    Reflect::get(o, &JsValue::from_str(k))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

fn construct(input: &str, base: Option<&str>) -> Result<JsValue, ParseError> {
    let ctor: Function = Reflect::get(&js_sys::global(), &JsValue::from_str("URL"))
        .map_err(|_| ParseError)?
        .dyn_into()
        .map_err(|_| ParseError)?;
    let args = match base {
        Some(b) => js_sys::Array::of2(&JsValue::from_str(input), &JsValue::from_str(b)),
        None => js_sys::Array::of1(&JsValue::from_str(input)),
    };
    Reflect::construct(&ctor, &args).map_err(|_| ParseError)
}

impl Url {
    fn from_js(u: &JsValue) -> Result<Url, ParseError> {
        let protocol = get(u, "protocol");
        let port = get(u, "port");
        Ok(Url {
            href: get(u, "href"),
            scheme: protocol.trim_end_matches(':').to_owned(),
            hostname: get(u, "hostname"),
            port: if port.is_empty() {
                None
            } else {
                Some(port.parse().map_err(|_| ParseError)?)
            },
            path: get(u, "pathname"),
            username: get(u, "username"),
            password: get(u, "password"),
        })
    }

    /// Parses an absolute URL.
    pub fn parse(input: &str) -> Result<Url, ParseError> {
        Url::from_js(&construct(input, None)?)
    }

    /// Resolves `input` against this URL.
    pub fn join(&self, input: &str) -> Result<Url, ParseError> {
        Url::from_js(&construct(input, Some(&self.href))?)
    }

    /// The serialisation.
    pub fn as_str(&self) -> &str {
        &self.href
    }

    /// The scheme, lower case, without `:`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host, if any.
    pub fn host(&self) -> Option<Host<&str>> {
        let h = self.hostname.as_str();
        if h.is_empty() {
            return None;
        }
        if let Some(v6) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return parse_ipv6(v6).map(Host::Ipv6);
        }
        Some(match parse_ipv4(h) {
            Some(ip) => Host::Ipv4(ip),
            None => Host::Domain(h),
        })
    }

    /// The host as the parser serialised it.
    pub fn host_str(&self) -> Option<&str> {
        (!self.hostname.is_empty()).then_some(self.hostname.as_str())
    }

    /// The explicit port, if any (a default port is not explicit).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port, or the scheme's default.
    pub fn port_or_known_default(&self) -> Option<u16> {
        self.port.or_else(|| default_port(&self.scheme))
    }

    /// The user name of the userinfo (percent-encoded; empty when none).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password of the userinfo, if any.
    pub fn password(&self) -> Option<&str> {
        (!self.password.is_empty()).then_some(self.password.as_str())
    }

    /// The path.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn before_fragment(&self) -> &str {
        self.href.split_once('#').map_or(&self.href, |(a, _)| a)
    }

    /// The query without `?` (`Some("")` for a bare `?`).
    pub fn query(&self) -> Option<&str> {
        self.before_fragment().split_once('?').map(|(_, q)| q)
    }

    /// The fragment without `#`.
    pub fn fragment(&self) -> Option<&str> {
        self.href.split_once('#').map(|(_, f)| f)
    }

    /// The query's `application/x-www-form-urlencoded` pairs.
    pub fn query_pairs(&self) -> form_urlencoded::Parse<'_> {
        form_urlencoded::parse(self.query().unwrap_or("").as_bytes())
    }

    /// The origin.
    pub fn origin(&self) -> Origin {
        Origin(default_port(&self.scheme).map(|_| {
            (
                self.scheme.clone(),
                self.hostname.clone(),
                self.port_or_known_default().unwrap_or(0),
            )
        }))
    }

    fn rebuild(&mut self, prefix: &str, rest: &str) {
        let candidate = format!("{prefix}{rest}");
        if let Ok(u) = Url::parse(&candidate) {
            *self = u;
        }
    }

    /// Replaces the query (`None` removes it).
    pub fn set_query(&mut self, query: Option<&str>) {
        let fragment = self.fragment().map(|f| format!("#{f}")).unwrap_or_default();
        let base = self
            .before_fragment()
            .split_once('?')
            .map_or(self.before_fragment(), |(a, _)| a)
            .to_owned();
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        self.rebuild(&base, &format!("{q}{fragment}"));
    }

    /// Replaces the fragment (`None` removes it).
    pub fn set_fragment(&mut self, fragment: Option<&str>) {
        let base = self.before_fragment().to_owned();
        let f = fragment.map(|f| format!("#{f}")).unwrap_or_default();
        self.rebuild(&base, &f);
    }

    /// Replaces the path.
    pub fn set_path(&mut self, path: &str) {
        let Ok(u) = construct(&self.href, None) else {
            return;
        };
        let _ = Reflect::set(&u, &JsValue::from_str("pathname"), &JsValue::from_str(path));
        if let Ok(u) = Url::from_js(&u) {
            *self = u;
        }
    }

    /// Appends to the query: `url.query_pairs_mut().append_pair(k, v)`; applied when the
    /// returned value is dropped.
    pub fn query_pairs_mut(&mut self) -> QueryPairs<'_> {
        QueryPairs {
            url: self,
            added: form_urlencoded::Serializer::new(String::new()),
        }
    }
}

/// Pairs being appended to a URL's query.
pub struct QueryPairs<'a> {
    url: &'a mut Url,
    added: form_urlencoded::Serializer<'static, String>,
}

impl QueryPairs<'_> {
    /// Appends one pair.
    pub fn append_pair(&mut self, name: &str, value: &str) -> &mut Self {
        self.added.append_pair(name, value);
        self
    }

    /// Appends pairs.
    pub fn extend_pairs<I, K, V>(&mut self, pairs: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: core::borrow::Borrow<(K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.added.extend_pairs(pairs);
        self
    }
}

impl Drop for QueryPairs<'_> {
    fn drop(&mut self) {
        let added = self.added.finish();
        if added.is_empty() {
            return;
        }
        let query: Cow<'_, str> = match self.url.query() {
            Some(q) if !q.is_empty() => format!("{q}&{added}").into(),
            _ => added.into(),
        };
        let query = query.into_owned();
        self.url.set_query(Some(&query));
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.href)
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({:?})", self.href)
    }
}

impl core::str::FromStr for Url {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Url, ParseError> {
        Url::parse(s)
    }
}

// The engine serialises an IP host in one form only (WHATWG URL §3.5: four decimal parts; an
// IPv6 address as hexadecimal groups, lower case, the longest run of zeros as `::`, never with
// a dotted IPv4 tail), so these read that form. Not std's `FromStr` for addresses: its parser
// takes every textual form and costs a few KB of wasm.

/// `a.b.c.d`, each part 0–255 in decimal without leading zeros (what `Ipv4Addr`'s `FromStr`
/// takes too).
fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || (p.len() > 1 && p.starts_with('0')) {
            return None;
        }
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = u8::try_from(p.bytes().fold(0u16, |n, b| n * 10 + u16::from(b - b'0'))).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// Hexadecimal groups of one to four digits separated by `:`, with at most one `::` for a run of
/// zero groups. (Byte by byte: `from_str_radix`, `split_once("::")` and slicing would bring
/// their panic messages' formatting, `char`'s `Debug` among it, into the wasm.)
fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    fn hex(g: &str) -> Option<u16> {
        if g.is_empty() || g.len() > 4 {
            return None;
        }
        g.bytes().try_fold(0u16, |n, b| {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return None,
            };
            Some(n << 4 | u16::from(d))
        })
    }
    // A `::` at either end: one of its colons goes, so that splitting leaves one empty piece
    // for it, as for a `::` inside.
    let (leading, trailing) = (s.starts_with("::"), s.ends_with("::"));
    let mut rest = s;
    if leading {
        rest = rest.strip_prefix(':')?;
    }
    if trailing {
        rest = rest.strip_suffix(':')?;
    }
    let (mut groups, mut n, mut gap) = ([0u16; 8], 0usize, None);
    let mut pieces = rest.split(':').peekable();
    let mut first = true;
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        if piece.is_empty() {
            // The one `::`; an empty piece at an end without one is a lone `:`.
            if gap.is_some() || (first && !leading) || (last && !trailing) {
                return None;
            }
            gap = Some(n);
        } else {
            *groups.get_mut(n)? = hex(piece)?;
            n += 1;
        }
        first = false;
    }
    let mut segments = [0u16; 8];
    match gap {
        None if n == 8 => segments = groups,
        Some(at) if n < 8 => {
            for (k, g) in groups.iter().take(n).enumerate() {
                segments[if k < at { k } else { 8 - n + k }] = *g;
            }
        }
        _ => return None,
    }
    Some(Ipv6Addr::from(segments))
}

#[cfg(test)]
mod tests {
    use super::{parse_ipv4, parse_ipv6};

    #[wasm_bindgen_test::wasm_bindgen_test]
    fn address_readers_agree_with_std() {
        for s in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "",
            "a.b.c.d",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.-4",
            "1000.2.3.4",
        ] {
            assert_eq!(parse_ipv4(s), s.parse().ok(), "{s:?}");
        }
        for s in [
            "::",
            "::1",
            "1::",
            "fe80::",
            "1:2:3:4:5:6:7:8",
            "1:0:0:4::8",
            "2001:DB8::1",
            "1::2:3",
            ":::",
            ":1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:",
            "1::2::3",
            "1:2:3:4:5:6:7:8:9",
            "12345::",
            "::g",
            "",
            ":",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "1:2:3:4::5:6:7:8",
            "+1::",
            "1:2",
        ] {
            assert_eq!(parse_ipv6(s), s.parse().ok(), "{s:?}");
        }
    }
}
