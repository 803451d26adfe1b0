//! HTTP headers that mirror the JSON-RPC body (2026-07-28 Streamable HTTP, "Request
//! Metadata", SEP-2243): `Mcp-Method`, `Mcp-Name`, and the `Mcp-Param-{Name}` headers a tool
//! asks for with `x-mcp-header` in its `inputSchema`, with their value encoding.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// The schema keyword that designates a tool parameter to be mirrored into a header.
pub const X_MCP_HEADER: &str = "x-mcp-header";

/// Integers outside ±(2^53 − 1) lose precision in JavaScript, so they may not be mirrored.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The standard headers of a request: `Mcp-Method` always, `Mcp-Name` for `tools/call`,
/// `prompts/get` (`params.name`) and `resources/read` (`params.uri`), encoded like any other
/// mirrored value.
pub fn standard_headers(method: &str, params: &Value) -> Vec<(String, String)> {
    let mut headers = vec![("Mcp-Method".to_owned(), method.to_owned())];
    let name = match method {
        "tools/call" | "prompts/get" => params.get("name"),
        "resources/read" => params.get("uri"),
        _ => None,
    };
    if let Some(name) = name.and_then(Value::as_str) {
        headers.push(("Mcp-Name".to_owned(), encode_value(name)));
    }
    headers
}

/// A header value as sent: plain when every character is visible ASCII or an inner space,
/// otherwise (non-ASCII, control characters including tab, leading or trailing whitespace, or
/// a value that itself looks like the sentinel) `=?base64?…?=` over its UTF-8 bytes.
pub fn encode_value(value: &str) -> String {
    let visible_ascii = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let padded = value.starts_with(' ') || value.ends_with(' ');
    let sentinel = value.starts_with("=?base64?") && value.ends_with("?=");
    if visible_ascii && !padded && !sentinel {
        value.to_owned()
    } else {
        format!("=?base64?{}?=", STANDARD.encode(value.as_bytes()))
    }
}

/// One parameter a tool wants mirrored: the header's name part and the chain of `properties`
/// keys that leads to the parameter from the schema root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    pub name: String,
    pub path: Vec<String>,
}

impl ParamHeader {
    pub fn header_name(&self) -> String {
        format!("Mcp-Param-{}", self.name)
    }
}

/// Why a tool definition was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidToolHeader(pub String);

impl std::fmt::Display for InvalidToolHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `x-mcp-header` annotations of an `inputSchema`, checked against the constraints of the
/// schema extension: a non-empty HTTP token, unique without regard to case, on an `integer`,
/// `string` or `boolean` parameter reached from the root through `properties` keys only.
/// Any violation rejects the whole tool (the client then leaves it out of its tool list).
pub fn param_headers(input_schema: &Value) -> Result<Vec<ParamHeader>, InvalidToolHeader> {
    let mut found = Vec::new();
    walk(input_schema, Some(&mut Vec::new()), &mut found)?;
    for (i, a) in found.iter().enumerate() {
        if found[..i]
            .iter()
            .any(|b: &ParamHeader| b.name.eq_ignore_ascii_case(&a.name))
        {
            return Err(InvalidToolHeader(format!(
                "x-mcp-header {:?} is used twice (names are compared without regard to case)",
                a.name
            )));
        }
    }
    Ok(found)
}

/// Keywords whose value is a single subschema.
const SUBSCHEMA: &[&str] = &[
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
];
/// Keywords whose value is an array of subschemas.
const SUBSCHEMA_ARRAY: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value is a map of subschemas.
const SUBSCHEMA_MAP: &[&str] = &[
    "$defs",
    "definitions",
    "patternProperties",
    "dependentSchemas",
];
/// Keywords whose value is instance data, never a schema.
const DATA: &[&str] = &["default", "const", "enum", "examples"];

/// Visits a schema node. `reachable` is the `properties` chain from the root, or `None` once
/// the walk has passed through any other keyword.
fn walk(
    node: &Value,
    reachable: Option<&mut Vec<String>>,
    found: &mut Vec<ParamHeader>,
) -> Result<(), InvalidToolHeader> {
    let Some(obj) = node.as_object() else {
        return Ok(());
    };
    let mut reachable = reachable;
    if let Some(annotation) = obj.get(X_MCP_HEADER) {
        let path = match reachable.as_deref() {
            Some(p) if !p.is_empty() => p.clone(),
            _ => {
                return Err(InvalidToolHeader(
                    "x-mcp-header on a schema not reached from the root through `properties` alone"
                        .into(),
                ));
            }
        };
        found.push(check_annotation(annotation, obj, &path)?);
    }
    for (key, value) in obj {
        match key.as_str() {
            "properties" => {
                let Some(props) = value.as_object() else {
                    continue;
                };
                for (name, sub) in props {
                    match reachable.as_deref_mut() {
                        Some(path) => {
                            path.push(name.clone());
                            let r = walk(sub, Some(path), found);
                            path.pop();
                            r?;
                        }
                        None => walk(sub, None, found)?,
                    }
                }
            }
            k if SUBSCHEMA.contains(&k) => walk(value, None, found)?,
            k if SUBSCHEMA_ARRAY.contains(&k) => {
                for sub in value.as_array().into_iter().flatten() {
                    walk(sub, None, found)?;
                }
            }
            k if SUBSCHEMA_MAP.contains(&k) => {
                for sub in value.as_object().into_iter().flat_map(Map::values) {
                    walk(sub, None, found)?;
                }
            }
            k if DATA.contains(&k) || k == X_MCP_HEADER => {}
            // An unknown keyword may hold subschemas too: an annotation anywhere inside it is
            // not statically reachable.
            _ if mentions_annotation(value) => {
                return Err(InvalidToolHeader(format!(
                    "x-mcp-header inside `{key}`, not reached from the root through `properties` alone"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn mentions_annotation(v: &Value) -> bool {
    match v {
        Value::Object(o) => o
            .iter()
            .any(|(k, v)| (k == X_MCP_HEADER && v.is_string()) || mentions_annotation(v)),
        Value::Array(a) => a.iter().any(mentions_annotation),
        _ => false,
    }
}

fn check_annotation(
    annotation: &Value,
    schema: &Map<String, Value>,
    path: &[String],
) -> Result<ParamHeader, InvalidToolHeader> {
    let at = path.join(".");
    let name = annotation
        .as_str()
        .ok_or_else(|| InvalidToolHeader(format!("x-mcp-header of `{at}` is not a string")))?;
    if name.is_empty() {
        return Err(InvalidToolHeader(format!(
            "x-mcp-header of `{at}` is empty"
        )));
    }
    if let Some(c) = name.chars().find(|c| !is_tchar(*c)) {
        return Err(InvalidToolHeader(format!(
            "x-mcp-header {name:?} of `{at}` has {c:?}, not allowed in an HTTP field name"
        )));
    }
    let primitive = |t: &str| matches!(t, "string" | "integer" | "boolean");
    let ok = match schema.get("type") {
        Some(Value::String(t)) => primitive(t),
        // A nullable primitive (`["string", "null"]`): a null value just omits the header.
        Some(Value::Array(ts)) => {
            let ts: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            ts.iter().any(|t| primitive(t)) && ts.iter().all(|t| primitive(t) || *t == "null")
        }
        _ => false,
    };
    if !ok {
        return Err(InvalidToolHeader(format!(
            "x-mcp-header {name:?} is on `{at}`, which is not of type integer, string or boolean"
        )));
    }
    Ok(ParamHeader {
        name: name.to_owned(),
        path: path.to_vec(),
    })
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The `Mcp-Param-*` headers for one call's arguments: each annotated value found at its exact
/// path, converted (string as is, integer in decimal, boolean as `true`/`false`) and encoded.
/// A missing or null value omits its header; a value of another type is refused, since the
/// server could not match it against the body either.
pub fn param_header_values(
    params: &[ParamHeader],
    arguments: &Value,
) -> Result<Vec<(String, String)>, InvalidToolHeader> {
    let mut out = Vec::new();
    for p in params {
        let mut v = Some(arguments);
        for key in &p.path {
            v = v.and_then(|v| v.get(key));
        }
        let text = match v {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => integer_text(n).ok_or_else(|| {
                InvalidToolHeader(format!(
                    "argument `{}` ({n}) for header {} is not an integer within ±(2^53 − 1)",
                    p.path.join("."),
                    p.header_name()
                ))
            })?,
            Some(_) => {
                return Err(InvalidToolHeader(format!(
                    "argument `{}` for header {} is not a string, integer or boolean",
                    p.path.join("."),
                    p.header_name()
                )));
            }
        };
        out.push((p.header_name(), encode_value(&text)));
    }
    Ok(out)
}

fn integer_text(n: &serde_json::Number) -> Option<String> {
    let i = if let Some(i) = n.as_i64() {
        i
    } else {
        // 42.0 is the integer 42; 4.2 is not an integer.
        let f = n.as_f64()?;
        if f.fract() != 0.0 || f.abs() > MAX_SAFE_INTEGER as f64 {
            return None;
        }
        f as i64
    };
    (i.abs() <= MAX_SAFE_INTEGER).then(|| i.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_plain_only_when_safe() {
        assert_eq!(encode_value("us-west1"), "us-west1");
        assert_eq!(encode_value("us west 1"), "us west 1");
        assert_eq!(encode_value(""), "");
        // The examples of the 2026-07-28 transport's Value Encoding table.
        assert_eq!(
            encode_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            encode_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        for unsafe_value in [
            " lead",
            "trail ",
            "\tindented",
            "a\tb",
            "cr\rlf",
            "del\u{7f}",
        ] {
            assert!(
                encode_value(unsafe_value).starts_with("=?base64?"),
                "{unsafe_value:?}"
            );
        }
        // Only the whole sentinel shape is ambiguous.
        assert_eq!(encode_value("=?base64?x"), "=?base64?x");
    }

    #[test]
    fn standard_headers_name_the_method_and_target() {
        let h = standard_headers("tools/call", &json!({"name": "my-tool", "arguments": {}}));
        assert_eq!(
            h,
            vec![
                ("Mcp-Method".into(), "tools/call".into()),
                ("Mcp-Name".into(), "my-tool".into())
            ]
        );
        let h = standard_headers("resources/read", &json!({"uri": "file:///a%20b.txt"}));
        assert_eq!(h[1], ("Mcp-Name".into(), "file:///a%20b.txt".into()));
        let h = standard_headers("prompts/get", &json!({"name": "résumé"}));
        assert_eq!(h[1].1, "=?base64?csOpc3Vtw6k=?=");
        assert_eq!(standard_headers("tools/list", &json!({})).len(), 1);
    }

    fn tool(props: Value) -> Value {
        json!({"type": "object", "properties": props})
    }

    #[test]
    fn annotations_are_found_at_their_property_path() {
        let schema = tool(json!({
            "region": {"type": "string", "x-mcp-header": "Region"},
            "query": {"type": "string"},
            "opts": {"type": "object", "properties": {
                "verbose": {"type": ["boolean", "null"], "x-mcp-header": "Verbose"}
            }},
            "note": {"type": "string", "default": {"x-mcp-header": "NotAnAnnotation"}}
        }));
        let mut found = param_headers(&schema).unwrap();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            found,
            vec![
                ParamHeader {
                    name: "Region".into(),
                    path: vec!["region".into()]
                },
                ParamHeader {
                    name: "Verbose".into(),
                    path: vec!["opts".into(), "verbose".into()]
                },
            ]
        );
        assert_eq!(param_headers(&json!({"type": "object"})).unwrap(), vec![]);
    }

    #[test]
    fn invalid_annotations_reject_the_tool() {
        let bad = [
            tool(json!({"v": {"type": "string", "x-mcp-header": ""}})),
            tool(json!({"v": {"type": "object", "x-mcp-header": "Data"}})),
            tool(json!({"v": {"type": "array", "x-mcp-header": "Items"}})),
            tool(json!({"v": {"type": "null", "x-mcp-header": "Nil"}})),
            tool(json!({"v": {"type": "number", "x-mcp-header": "Score"}})),
            tool(json!({"v": {"x-mcp-header": "Untyped"}})),
            tool(json!({"v": {"type": "string", "x-mcp-header": 7}})),
            tool(json!({
                "a": {"type": "string", "x-mcp-header": "Region"},
                "b": {"type": "string", "x-mcp-header": "Region"}
            })),
            tool(json!({
                "a": {"type": "string", "x-mcp-header": "MyField"},
                "b": {"type": "string", "x-mcp-header": "myfield"}
            })),
            tool(json!({"v": {"type": "string", "x-mcp-header": "My Region"}})),
            tool(json!({"v": {"type": "string", "x-mcp-header": "Region:Primary"}})),
            tool(json!({"v": {"type": "string", "x-mcp-header": "Région"}})),
            tool(json!({"v": {"type": "string", "x-mcp-header": "Region\t1"}})),
            // Not statically reachable: through items, composition, $defs, the root itself.
            tool(json!({"v": {"type": "array", "items": {"type": "string", "x-mcp-header": "I"}}})),
            json!({"anyOf": [{"properties": {"v": {"type": "string", "x-mcp-header": "V"}}}]}),
            json!({"$defs": {"d": {"type": "string", "x-mcp-header": "D"}}}),
            json!({"type": "string", "x-mcp-header": "Root"}),
            json!({"x-vendor": {"properties": {"v": {"type": "string", "x-mcp-header": "V"}}}}),
        ];
        for schema in bad {
            assert!(param_headers(&schema).is_err(), "{schema}");
        }
    }

    #[test]
    fn argument_values_become_headers() {
        let schema = tool(json!({
            "region": {"type": "string", "x-mcp-header": "Region"},
            "priority": {"type": "integer", "x-mcp-header": "Priority"},
            "verbose": {"type": "boolean", "x-mcp-header": "Verbose"},
            "debug": {"type": "boolean", "x-mcp-header": "Debug"},
            "greeting": {"type": "string", "x-mcp-header": "Greeting"},
            "method_val": {"type": "string", "x-mcp-header": "Method"},
            "float_val": {"type": "number"}
        }));
        let params = param_headers(&schema).unwrap();
        let mut got = param_header_values(
            &params,
            &json!({"region": "us-west1", "priority": -7, "verbose": null, "debug": true,
                     "greeting": "Hello, 世界", "method_val": "m", "float_val": 3.5}),
        )
        .unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("Mcp-Param-Debug".into(), "true".into()),
                (
                    "Mcp-Param-Greeting".into(),
                    "=?base64?SGVsbG8sIOS4lueVjA==?=".into()
                ),
                ("Mcp-Param-Method".into(), "m".into()),
                ("Mcp-Param-Priority".into(), "-7".into()),
                ("Mcp-Param-Region".into(), "us-west1".into()),
            ]
        );
        // 42.0 is an integer; 2^53 and 4.2 are refused rather than sent inexactly.
        assert_eq!(
            param_header_values(&params, &json!({"priority": 42.0})).unwrap(),
            vec![("Mcp-Param-Priority".into(), "42".into())]
        );
        assert!(
            param_header_values(&params, &json!({"priority": 9_007_199_254_740_992_i64})).is_err()
        );
        assert!(param_header_values(&params, &json!({"priority": 4.2})).is_err());
        assert!(param_header_values(&params, &json!({"region": {"a": 1}})).is_err());
        assert_eq!(param_header_values(&params, &json!({})).unwrap(), vec![]);
    }
}
