//! Just enough of MCP's Streamable HTTP transport for the CLI: JSON-RPC requests over POST,
//! JSON or SSE responses, session id and protocol version headers, all through the OAuth
//! client so 401 and 403 challenges are handled on the way.

use std::cell::{Cell, RefCell};

use edge_oauth_core::env::{Clock, RandomSource};
use edge_oauth_core::{
    Authorizer, CredentialStore, HttpClient, HttpRequest, HttpResponse, OAuthClient,
};
use serde_json::{Value, json};

pub const PROTOCOL_VERSION: &str = "2025-11-25";

#[derive(Debug)]
pub enum McpError {
    Auth(edge_oauth_core::Error),
    Http { status: u16, body: String },
    Protocol(String),
    Rpc { code: i64, message: String },
}

impl std::fmt::Display for McpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpError::Auth(e) => write!(f, "{e} [{}]", e.code()),
            McpError::Http { status, body } => {
                write!(f, "MCP server answered HTTP {status}: {body}")
            }
            McpError::Protocol(m) => write!(f, "MCP protocol error: {m}"),
            McpError::Rpc { code, message } => write!(f, "MCP error {code}: {message}"),
        }
    }
}

impl From<edge_oauth_core::Error> for McpError {
    fn from(e: edge_oauth_core::Error) -> Self {
        McpError::Auth(e)
    }
}

pub struct McpSession<'a, H, S, A, R, C> {
    client: &'a OAuthClient<H, S, A, R, C>,
    url: String,
    session_id: RefCell<Option<String>>,
    protocol_version: RefCell<Option<String>>,
    requested_version: String,
    next_id: Cell<i64>,
}

impl<'a, H, S, A, R, C> McpSession<'a, H, S, A, R, C>
where
    H: HttpClient,
    S: CredentialStore,
    A: Authorizer,
    R: RandomSource,
    C: Clock,
{
    pub fn new(client: &'a OAuthClient<H, S, A, R, C>, url: &str) -> Self {
        Self {
            client,
            url: url.to_owned(),
            session_id: RefCell::new(None),
            protocol_version: RefCell::new(None),
            requested_version: PROTOCOL_VERSION.to_owned(),
            next_id: Cell::new(1),
        }
    }

    /// Asks for another protocol revision in `initialize`.
    pub fn with_protocol_version(mut self, version: &str) -> Self {
        self.requested_version = version.to_owned();
        self
    }

    fn post(&self, body: &Value) -> HttpRequest {
        let mut req = HttpRequest::post_json(self.url.clone(), body);
        req.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("accept"));
        req.headers.push((
            "Accept".into(),
            "application/json, text/event-stream".into(),
        ));
        // On every request, initialize included: the negotiated version once known, the
        // requested one before (newer revisions require the header on all requests).
        let version = self
            .protocol_version
            .borrow()
            .clone()
            .unwrap_or_else(|| self.requested_version.clone());
        req.headers.push(("MCP-Protocol-Version".into(), version));
        if let Some(s) = self.session_id.borrow().as_ref() {
            req.headers.push(("Mcp-Session-Id".into(), s.clone()));
        }
        req
    }

    async fn exchange(&self, body: &Value) -> Result<HttpResponse, McpError> {
        let response = self.client.send(self.post(body)).await?;
        if let Some(sid) = response.header("mcp-session-id") {
            *self.session_id.borrow_mut() = Some(sid.to_owned());
        }
        if !response.is_success() {
            let text = String::from_utf8_lossy(&response.body);
            return Err(McpError::Http {
                status: response.status,
                body: text.chars().take(300).collect(),
            });
        }
        Ok(response)
    }

    /// Sends a request and returns its `result`.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.exchange(&body).await?;
        let message = find_response(&response, id)?;
        if let Some(err) = message.get("error") {
            return Err(McpError::Rpc {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            });
        }
        message
            .get("result")
            .cloned()
            .ok_or_else(|| McpError::Protocol("response without result".into()))
    }

    /// Sends a notification (202 expected).
    pub async fn notify(&self, method: &str) -> Result<(), McpError> {
        self.exchange(&json!({"jsonrpc": "2.0", "method": method}))
            .await
            .map(|_| ())
    }

    /// `initialize` then `notifications/initialized`.
    pub async fn initialize(&self) -> Result<Value, McpError> {
        let result = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": self.requested_version,
                    "capabilities": {},
                    "clientInfo": {"name": "edge-oauth", "version": env!("CARGO_PKG_VERSION")}
                }),
            )
            .await?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(&self.requested_version)
            .to_owned();
        *self.protocol_version.borrow_mut() = Some(version);
        self.notify("notifications/initialized").await?;
        Ok(result)
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
        .find(|m| m.get("id").and_then(Value::as_i64) == Some(id))
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
        assert_eq!(find_response(&sse, 3).unwrap()["result"]["ok"], true);
        let js = HttpResponse::json(200, &json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        assert!(find_response(&js, 1).is_ok());
        assert!(find_response(&js, 2).is_err());
    }
}
