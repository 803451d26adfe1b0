//! The JSON-RPC messages of MCP's Streamable HTTP transport, as data: protocol versions and
//! their eras, the per-request `_meta` of the 2026-07-28 revision, request bodies and
//! headers, and replies read from a JSON body or an SSE stream.

use edge_oauth_core::{HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};

use super::McpError;

/// Revisions without a handshake: version, identity and capabilities travel in every
/// request's `_meta` (2026-07-28 "Versioning": modern). Most preferred first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// Revisions with an `initialize` handshake over Streamable HTTP (legacy). 2024-11-05 used
/// the older HTTP+SSE transport, which this client does not speak.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

/// The `_meta` keys every modern request carries (2026-07-28 basic, `_meta`).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// The error codes the 2026-07-28 revision defines (basic, "Error Codes"). A reply carrying
/// one of them comes from a modern server.
pub const HEADER_MISMATCH: i64 = -32020;
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

pub fn is_modern_version(v: &str) -> bool {
    MODERN_VERSIONS.contains(&v)
}

pub fn is_legacy_version(v: &str) -> bool {
    LEGACY_VERSIONS.contains(&v)
}

/// Whether an error code is one only a modern server sends: such a reply settles the era.
pub fn is_modern_error(code: i64) -> bool {
    matches!(
        code,
        HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY | UNSUPPORTED_PROTOCOL_VERSION
    )
}

/// The version to retry with after an `UnsupportedProtocolVersionError` listing `supported`:
/// the most preferred modern version both sides know, else the most preferred legacy one.
pub fn choose_version(supported: &[String]) -> Option<&'static str> {
    MODERN_VERSIONS
        .iter()
        .chain(LEGACY_VERSIONS)
        .find(|v| supported.iter().any(|s| s == *v))
        .copied()
}

/// What the client says about itself on every request.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// `Implementation`: name and version.
    pub info: Value,
    /// `ClientCapabilities` (elicitation, sampling, roots, extensions).
    pub capabilities: Value,
}

impl ClientIdentity {
    pub fn new(capabilities: Value) -> Self {
        Self {
            info: json!({"name": "edge-oauth", "version": env!("CARGO_PKG_VERSION")}),
            capabilities,
        }
    }
}

/// `params` with the modern request metadata in its `_meta`: the protocol version, the
/// client's capabilities and its info. Other `_meta` keys the caller set (a progress token)
/// are kept; the three reserved keys are always the client's own.
pub fn with_request_meta(params: Value, version: &str, client: &ClientIdentity) -> Value {
    let mut params = match params {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert(META_PROTOCOL_VERSION.into(), version.into());
        meta.insert(META_CLIENT_CAPABILITIES.into(), client.capabilities.clone());
        meta.insert(META_CLIENT_INFO.into(), client.info.clone());
    }
    Value::Object(params)
}

/// A JSON-RPC request body.
pub fn request_body(id: i64, method: &str, params: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// The POST that carries one JSON-RPC message: both response types accepted, the protocol
/// version header (which must equal the `_meta` version on a modern request), the session
/// id on a legacy one, and the mirrored headers.
pub fn post(
    url: &str,
    body: &Value,
    version: &str,
    session_id: Option<&str>,
    mirrored: Vec<(String, String)>,
) -> HttpRequest {
    let mut req = HttpRequest::post_json(url.to_owned(), body);
    req.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("accept"));
    req.headers.push((
        "Accept".into(),
        "application/json, text/event-stream".into(),
    ));
    req.headers
        .push(("MCP-Protocol-Version".into(), version.to_owned()));
    if let Some(s) = session_id {
        req.headers.push(("Mcp-Session-Id".into(), s.to_owned()));
    }
    req.headers.extend(mirrored);
    req
}

/// A JSON-RPC error from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    /// `data.supported` of an `UnsupportedProtocolVersionError`.
    pub fn supported_versions(&self) -> Vec<String> {
        self.data
            .as_ref()
            .and_then(|d| d.get("supported"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    }

    fn from_value(err: &Value) -> Option<Self> {
        Some(Self {
            code: err.get("code")?.as_i64()?,
            message: err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            data: err.get("data").cloned(),
        })
    }
}

/// The server's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Result(Value),
    Error(RpcError),
}

/// Reads the reply to request `id`. A success status carries it in a JSON body or an SSE
/// stream (notifications before it are skipped); an error status may carry a JSON-RPC error
/// (modern servers answer 400 and 404 that way), else it is an HTTP error.
pub fn read_reply(response: &HttpResponse, id: i64) -> Result<Reply, McpError> {
    if !response.is_success() {
        let text = String::from_utf8_lossy(&response.body);
        if let Ok(v) = serde_json::from_str::<Value>(&text)
            && match v.get("id") {
                None | Some(Value::Null) => true,
                Some(other) => other.as_i64() == Some(id),
            }
            && let Some(err) = v.get("error").and_then(RpcError::from_value)
        {
            return Ok(Reply::Error(err));
        }
        return Err(McpError::Http {
            status: response.status,
            body: text.chars().take(300).collect(),
        });
    }
    let message = find_response(response, id)?;
    if let Some(err) = message.get("error") {
        return RpcError::from_value(err)
            .map(Reply::Error)
            .ok_or_else(|| McpError::Protocol("malformed JSON-RPC error".into()));
    }
    match message.get("result") {
        Some(r @ Value::Object(_)) => Ok(Reply::Result(r.clone())),
        Some(_) => Err(McpError::Protocol("result is not an object".into())),
        None => Err(McpError::Protocol("response without result".into())),
    }
}

/// Finds the JSON-RPC response with `id` in a JSON body or an SSE stream.
fn find_response(response: &HttpResponse, id: i64) -> Result<Value, McpError> {
    let ct = response
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = String::from_utf8_lossy(&response.body);
    let candidates: Vec<Value> = if ct.starts_with("text/event-stream") {
        parse_sse(&body)
            .into_iter()
            .filter_map(|d| serde_json::from_str(&d).ok())
            .collect()
    } else {
        match serde_json::from_str::<Value>(&body) {
            Ok(Value::Array(a)) => a,
            Ok(v) => vec![v],
            Err(e) => return Err(McpError::Protocol(format!("invalid JSON response: {e}"))),
        }
    };
    candidates
        .into_iter()
        .find(|m| m.get("id").and_then(Value::as_i64) == Some(id) && m.get("method").is_none())
        .ok_or_else(|| McpError::Protocol(format!("no response with id {id}")))
}

/// The `data` of each SSE event (multi-line data joined with `\n`).
fn parse_sse(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for line in body.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if !data.is_empty() {
                out.push(data.join("\n"));
                data.clear();
            }
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    if !data.is_empty() {
        out.push(data.join("\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_and_json() {
        let sse = HttpResponse::new(
            200,
            vec![("content-type".into(), "text/event-stream".into())],
            ": keepalive\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\r\ndata: \"result\":{\"ok\":true}}\r\n\r\n",
        );
        assert_eq!(
            read_reply(&sse, 3).unwrap(),
            Reply::Result(json!({"ok": true}))
        );
        let js = HttpResponse::json(200, &json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        assert!(read_reply(&js, 1).is_ok());
        assert!(read_reply(&js, 2).is_err());
    }

    #[test]
    fn error_statuses_carry_json_rpc_errors() {
        let body = json!({"jsonrpc": "2.0", "id": 4, "error": {"code": -32022,
            "message": "Unsupported protocol version",
            "data": {"supported": ["2026-07-28", "2025-11-25"], "requested": "1900-01-01"}}});
        let Reply::Error(e) = read_reply(&HttpResponse::json(400, &body), 4).unwrap() else {
            panic!("an error reply")
        };
        assert_eq!(e.code, UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(e.supported_versions(), ["2026-07-28", "2025-11-25"]);
        // An error with a null id (the server could not read it) still counts.
        let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000,
            "message": "Bad Request: Server not initialized"}});
        assert!(matches!(
            read_reply(&HttpResponse::json(400, &body), 9),
            Ok(Reply::Error(RpcError { code: -32000, .. }))
        ));
        // Anything else is an HTTP error.
        let plain = HttpResponse::new(404, vec![], "Not Found");
        assert!(matches!(
            read_reply(&plain, 1),
            Err(McpError::Http { status: 404, .. })
        ));
    }

    #[test]
    fn request_meta_is_added_and_owned_by_the_client() {
        let client = ClientIdentity::new(json!({"elicitation": {}}));
        let params = with_request_meta(
            json!({"name": "t", "_meta": {"progressToken": 7,
                   "io.modelcontextprotocol/protocolVersion": "forged"}}),
            "2026-07-28",
            &client,
        );
        assert_eq!(params["name"], "t");
        let meta = &params["_meta"];
        assert_eq!(meta["progressToken"], 7);
        assert_eq!(meta[META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(meta[META_CLIENT_CAPABILITIES], json!({"elicitation": {}}));
        assert_eq!(meta[META_CLIENT_INFO]["name"], "edge-oauth");
        assert!(meta[META_CLIENT_INFO]["version"].is_string());
        let empty = with_request_meta(Value::Null, "2026-07-28", &client);
        assert_eq!(empty.as_object().unwrap().len(), 1);
    }

    #[test]
    fn the_post_carries_the_version_and_mirrored_headers() {
        let body = request_body(1, "tools/list", &json!({}));
        let req = post(
            "https://mcp.example/mcp",
            &body,
            "2026-07-28",
            None,
            vec![("Mcp-Method".into(), "tools/list".into())],
        );
        assert_eq!(req.header("mcp-protocol-version"), Some("2026-07-28"));
        assert_eq!(
            req.header("accept"),
            Some("application/json, text/event-stream")
        );
        assert_eq!(req.header("mcp-method"), Some("tools/list"));
        assert_eq!(req.header("mcp-session-id"), None);
        let req = post(
            "https://mcp.example/mcp",
            &body,
            "2025-11-25",
            Some("s1"),
            vec![],
        );
        assert_eq!(req.header("mcp-session-id"), Some("s1"));
    }

    #[test]
    fn versions_are_chosen_from_what_the_server_supports() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choose_version(&s(&["2025-11-25", "2026-07-28"])),
            Some("2026-07-28")
        );
        assert_eq!(
            choose_version(&s(&["2025-06-18", "2025-11-25"])),
            Some("2025-11-25")
        );
        assert_eq!(choose_version(&s(&["2099-01-01"])), None);
        assert_eq!(choose_version(&[]), None);
        assert!(is_modern_error(UNSUPPORTED_PROTOCOL_VERSION) && !is_modern_error(-32601));
    }
}
