//! The URL type of the core. Natively (and on wasm32 by default) it is the `url` crate's
//! WHATWG `Url`. With the `js-url` feature on wasm32 — for code that runs in a JS engine
//! (pages, workers, Node) — it is a small type of the same shape backed by the engine's own
//! WHATWG `URL`, which keeps the `url` crate and its IDNA code out of the wasm (about 20 KB
//! gzip). Both follow the WHATWG URL Standard, so parsing and serialisation agree.

#[cfg(not(all(target_arch = "wasm32", feature = "js-url")))]
pub use url_crate::*;

#[cfg(all(target_arch = "wasm32", feature = "js-url"))]
mod js;
#[cfg(all(target_arch = "wasm32", feature = "js-url"))]
pub use form_urlencoded;
#[cfg(all(target_arch = "wasm32", feature = "js-url"))]
pub use js::{Host, Origin, ParseError, Url};

/// The same assertions hold for both back ends: `cargo test` natively (the `url` crate) and
/// `cargo test --target wasm32-unknown-unknown --features js-url` (the engine's `URL`).
#[cfg(test)]
mod tests {
    use super::{Host, Url};

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn ip_hosts_as_std_reads_them() {
        use std::net::{Ipv4Addr, Ipv6Addr};
        for (url, ip) in [
            ("http://127.0.0.1/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://255.255.255.255/", "255.255.255.255"),
            ("http://10.0.200.9:80/", "10.0.200.9"),
        ] {
            assert_eq!(
                u(url).host(),
                Some(Host::Ipv4(ip.parse::<Ipv4Addr>().unwrap())),
                "{url}"
            );
        }
        for (url, ip) in [
            ("http://[::1]/", "::1"),
            ("http://[::]/", "::"),
            ("http://[2001:DB8::1]/", "2001:db8::1"),
            ("http://[1:2:3:4:5:6:7:8]/", "1:2:3:4:5:6:7:8"),
            ("http://[1:0:0:4:0:0:0:8]/", "1:0:0:4::8"),
            ("http://[fe80::]/", "fe80::"),
            ("http://[::ffff:1.2.3.4]/", "::ffff:1.2.3.4"),
            ("http://[0:0:0:0:0:0:0:1]/", "::1"),
        ] {
            assert_eq!(
                u(url).host(),
                Some(Host::Ipv6(ip.parse::<Ipv6Addr>().unwrap())),
                "{url}"
            );
        }
        for bad in [
            "http://[:::]/",
            "http://[:1:2:3:4:5:6:7]/",
            "http://[1:2:3:4:5:6:7:]/",
            "http://[1::2::3]/",
            "http://[1:2:3:4:5:6:7:8:9]/",
            "http://[12345::]/",
            "http://[::g]/",
            "http://256.0.0.1/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        for url in ["http://1.2.3.4.example/", "http://example.com/"] {
            assert!(matches!(u(url).host(), Some(Host::Domain(_))), "{url}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn parse_and_serialise_like_whatwg() {
        assert_eq!(
            u("HTTPS://Example.COM:443/a/../b?x=1#f").as_str(),
            "https://example.com/b?x=1#f"
        );
        assert_eq!(u("https://example.com").as_str(), "https://example.com/");
        assert_eq!(
            u("http://127.1:8080/").host(),
            Some(Host::Ipv4([127, 0, 0, 1].into()))
        );
        assert_eq!(
            u("http://[::1]/").host(),
            Some(Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            u("http://localhost/").host(),
            Some(Host::Domain("localhost"))
        );
        assert_eq!(
            u("https://x.com:8443/p").port_or_known_default(),
            Some(8443)
        );
        assert_eq!(u("https://x.com/p").port_or_known_default(), Some(443));
        assert_eq!(u("https://x.com/p").port(), None);
        assert_eq!(u("https://x.com/p?").query(), Some(""));
        assert_eq!(u("https://x.com/p").query(), None);
        assert_eq!(u("https://x.com/p#").fragment(), Some(""));
        assert_eq!(u("https://x.com/p?a=1#z?b").query(), Some("a=1"));
        assert_eq!(u("com.example.app:/cb").scheme(), "com.example.app");
        assert_eq!(u("https://a%20b:p@x.com/").username(), "a%20b");
        assert_eq!(u("https://a:p@x.com/").password(), Some("p"));
        assert_eq!(u("https://x.com/").username(), "");
        assert_eq!(u("https://x.com/").password(), None);
        // (Chromium's URL, unlike Node's and the url crate, accepts a space in a host and
        // percent-encodes it; every comparison here parses both sides with the same parser.)
        for bad in ["", "/relative", "http://", "http://[::1/"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn join_origin_and_edits() {
        let base = u("https://as.example.com/tenant/");
        assert_eq!(
            base.join("/.well-known/x/tenant").unwrap().as_str(),
            "https://as.example.com/.well-known/x/tenant"
        );
        assert_eq!(
            base.origin(),
            u("https://AS.example.com:443/other").origin()
        );
        assert!(base.origin() != u("http://as.example.com/").origin());
        assert_eq!(
            base.origin().ascii_serialization(),
            "https://as.example.com"
        );
        assert_eq!(
            u("http://h:8080/").origin().ascii_serialization(),
            "http://h:8080"
        );
        // Opaque origins equal nothing, not even themselves.
        assert!(u("com.example.app:/cb").origin() != u("com.example.app:/cb").origin());
        let mut e = u("https://x.com/a?q=1#f");
        e.set_fragment(None);
        assert_eq!(e.as_str(), "https://x.com/a?q=1");
        e.set_query(None);
        assert_eq!(e.as_str(), "https://x.com/a");
        e.set_path("/");
        assert_eq!(e.as_str(), "https://x.com/");
        e.query_pairs_mut()
            .append_pair("redirect_uri", "http://127.0.0.1:9/cb?as=t")
            .append_pair("scope", "a b");
        assert_eq!(
            e.as_str(),
            "https://x.com/?redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb%3Fas%3Dt&scope=a+b"
        );
        let pairs: Vec<(String, String)> = e.query_pairs().into_owned().collect();
        assert_eq!(pairs[0].1, "http://127.0.0.1:9/cb?as=t");
        assert_eq!(pairs[1].1, "a b");
    }
}
