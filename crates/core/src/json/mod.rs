//! JSON of the core: every parse and serialisation of a document goes through here.
//!
//! Natively (and on wasm32 by default) this is `serde_json`. With the `js-json` feature on
//! wasm32 — for code that runs in a JS engine (pages, workers, Node) — text is parsed by the
//! engine's own `JSON.parse` and written by `JSON.stringify`: a small serde `Deserializer`
//! reads the engine's values, and `serde_json`'s parser, writer and float formatting (core's
//! too: its errors never format a number from the input) stay out of the wasm. The document model ([`Value`], [`Map`], [`json!`]) is `serde_json`'s in both cases.
//!
//! Both back ends take RFC 8259 JSON; both refuse nesting [`MAX_DEPTH`] deep. Where they
//! may differ: a duplicated member name (`serde_json` refuses it for a typed struct, the engine
//! keeps the last, as `serde_json` does for a [`Value`]), and integers above 2^53 (the engine
//! reads them as doubles, so a `u64` field refuses them).

use core::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
pub use serde_json::{Map, Value, json};

/// Arrays and objects nested this deep are refused (`serde_json`'s own limit; the engine's
/// parser has none of its own, so the JS back end checks first).
pub const MAX_DEPTH: usize = 128;

/// A document that does not parse into the wanted type. Its text names the category, the
/// field for a missing or unknown one and the expected type — never a value from the input.
/// Natively it ends with the position (`at line 1 column 9`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Parses a JSON document from bytes into `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    imp::from_slice(bytes)
}

/// Parses a JSON document from text into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    imp::from_slice(text.as_bytes())
}

/// Serialises `value` as compact JSON text.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    imp::to_string(value)
}

/// Serialises `value` as compact JSON bytes.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    to_string(value).map(String::into_bytes)
}

/// A [`Value`] as compact JSON text. A `Value` always serialises (its keys are strings), so
/// this cannot fail.
pub fn value_to_string(value: &Value) -> String {
    // Neither back end fails on a `Value`; "null" keeps the signature total without a panic.
    to_string(value).unwrap_or_else(|_| "null".to_owned())
}

#[cfg(not(all(target_arch = "wasm32", feature = "js-json")))]
mod imp {
    use super::{DeserializeOwned, Error, Serialize};

    pub(super) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(bytes).map_err(|e| detail(&e))
    }

    pub(super) fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
        serde_json::to_string(value).map_err(|e| detail(&e))
    }

    fn detail(e: &serde_json::Error) -> Error {
        use serde_json::error::Category;
        let msg = e.to_string();
        let head = msg.split(" at line ").next().unwrap_or(&msg);
        let kept = kept_detail(head).unwrap_or_else(|| {
            match e.classify() {
                Category::Syntax => "syntax error",
                Category::Eof => "unexpected end of input",
                Category::Data => "invalid value",
                Category::Io => "read error",
            }
            .to_owned()
        });
        if e.line() == 0 {
            return Error(kept);
        }
        Error(format!("{kept} at line {} column {}", e.line(), e.column()))
    }

    /// Keeps the category, a missing or unknown field's name and the expected type of a serde
    /// message; drops any value it quotes ("invalid type: string \"...\", expected u64").
    fn kept_detail(msg: &str) -> Option<String> {
        if msg.starts_with("missing field") || msg.starts_with("unknown field") {
            return Some(msg.to_owned());
        }
        if msg.starts_with("invalid type") {
            return Some(match msg.rsplit_once(", expected ") {
                Some((kind, expected)) => {
                    let kind = kind
                        .trim_start_matches("invalid type: ")
                        .split([' ', '`'])
                        .next()
                        .unwrap_or("value");
                    format!("invalid type {kind}, expected {expected}")
                }
                None => "invalid type".to_owned(),
            });
        }
        None
    }
}

#[cfg(all(target_arch = "wasm32", feature = "js-json"))]
#[path = "js.rs"]
mod imp;

/// The same assertions hold for both back ends: `cargo test` natively (`serde_json`) and
/// `cargo test --target wasm32-unknown-unknown --features js-json` (the engine's `JSON`).
#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Doc {
        name: String,
        n: u64,
        #[serde(default)]
        list: Vec<String>,
        opt: Option<String>,
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn parses_typed_and_untyped() {
        let d: Doc =
            from_slice(br#" {"name":"a\u00e9\n","n":7,"extra":[1,{"x":null}],"opt":null} "#)
                .unwrap();
        assert_eq!(
            d,
            Doc {
                name: "a\u{e9}\n".into(),
                n: 7,
                list: vec![],
                opt: None
            }
        );
        let v: Value = from_str(r#"{"a":[1,2.5,-3,true,null,"s"],"b":{}}"#).unwrap();
        assert_eq!(v, json!({"a": [1, 2.5, -3, true, null, "s"], "b": {}}));
        assert_eq!(v["a"][0].as_u64(), Some(1));
        assert_eq!(v["a"][2].as_i64(), Some(-3));
        // Enums are externally tagged, as serde_json has them.
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(rename_all = "snake_case")]
        enum E {
            UnitOne,
            Wrapped(u8),
        }
        assert_eq!(from_str::<E>(r#""unit_one""#).unwrap(), E::UnitOne);
        assert_eq!(from_str::<E>(r#"{"wrapped":3}"#).unwrap(), E::Wrapped(3));
        for bad in [
            r#""nope""#,
            r#"{"wrapped":300}"#,
            r#"{"unit_one":1}"#,
            "1",
            "{}",
        ] {
            assert!(from_str::<E>(bad).is_err(), "{bad}");
        }
        // The last of a duplicated member wins in a Value, on both back ends.
        let v: Value = from_str(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(v["a"], 2);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn errors_name_the_field_never_the_value() {
        let e = from_str::<Doc>(r#"{"n":1}"#).unwrap_err().to_string();
        assert!(e.starts_with("missing field `name`"), "{e}");
        let e = from_str::<Doc>(r#"{"name":"secret-value","n":"secret-value"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid type string, expected u64"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        for bad in [
            &b"{\"name\":\"secret-value\""[..],
            b"secret-value",
            b"{\"a\":1,}",
            b"{} {}",
            b"\xff\xfe",
            b"",
        ] {
            let e = from_slice::<Value>(bad).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{e}");
            assert!(!e.is_empty());
        }
        assert!(from_str::<Doc>(r#"{"name":"x","n":-1}"#).is_err());
        assert!(from_str::<Doc>(r#"{"name":"x","n":1.5}"#).is_err());
        assert!(from_str::<Doc>(r#"{"name":null,"n":1}"#).is_err());
        assert!(from_str::<Doc>(r#"[]"#).is_err());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn refuses_deep_nesting() {
        let n = MAX_DEPTH - 1;
        let ok = format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(from_str::<Value>(&ok).is_ok());
        for deep in [
            format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH)),
            format!("{}1{}", "{\"a\":[".repeat(10_000), "]}".repeat(10_000)),
        ] {
            assert!(from_str::<Value>(&deep).is_err());
        }
        // Brackets inside strings are not nesting.
        let s = format!(r#"["{}\"{}"]"#, "[".repeat(500), "{".repeat(500));
        assert!(from_str::<Value>(&s).is_ok());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn serialises_compactly_and_round_trips() {
        let d = Doc {
            name: "q\"\\\u{1}/é".into(),
            n: 1 << 40,
            list: vec!["x".into()],
            opt: None,
        };
        let s = to_string(&d).unwrap();
        // Member order is the struct's natively, sorted through the engine; both are JSON.
        assert!(!s.contains(' '), "{s}");
        assert_eq!(
            from_str::<Value>(&s).unwrap(),
            json!({"name": "q\"\\\u{1}/é", "n": 1099511627776_u64, "list": ["x"], "opt": null})
        );
        assert_eq!(from_str::<Doc>(&s).unwrap(), d);
        assert_eq!(to_vec(&d).unwrap(), s.into_bytes());
        assert_eq!(
            value_to_string(&json!({"b": [1, "two", null, true], "a": {}})),
            r#"{"a":{},"b":[1,"two",null,true]}"#
        );
        assert_eq!(value_to_string(&json!("x\ny")), r#""x\ny""#);
        assert_eq!(
            value_to_string(&json!("q\"\\\u{1}/é")),
            r#""q\"\\\u0001/é""#
        );
        // Not the prototype: an own member like any other.
        let v: Value = from_str(r#"{"__proto__":{"x":1}}"#).unwrap();
        assert_eq!(value_to_string(&v), r#"{"__proto__":{"x":1}}"#);
    }
}
