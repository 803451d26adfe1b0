//! The session against scripted servers: era negotiation, version retry, request metadata,
//! mirrored headers and MRTR retries, as seen on the wire.

use std::cell::RefCell;

use edge_oauth_core::env::{OsRandom, SystemClock};
use edge_oauth_core::registration::ClientMetadata;
use edge_oauth_core::{
    ClientConfig, HttpClient, HttpRequest, HttpResponse, MemoryStore, OAuthClient, TransportError,
};
use serde_json::{Value, json};

use super::mrtr::InputResponder;
use super::{McpError, McpSession};
use crate::authorizer::HeadlessAuthorizer;

const URL: &str = "http://127.0.0.1:9/mcp";

type Answer = Box<dyn Fn(&Value, &HttpRequest) -> HttpResponse>;

/// A server as a function of each request's JSON body, recording every request.
struct Scripted {
    log: RefCell<Vec<HttpRequest>>,
    answer: Answer,
}

impl HttpClient for Scripted {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let body: Value = serde_json::from_slice(request.body.as_deref().unwrap_or(b"null"))
            .unwrap_or(Value::Null);
        let response = (self.answer)(&body, &request);
        self.log.borrow_mut().push(request);
        Ok(response)
    }
}

type Client = OAuthClient<Scripted, MemoryStore, HeadlessAuthorizer, OsRandom, SystemClock>;

fn client(answer: impl Fn(&Value, &HttpRequest) -> HttpResponse + 'static) -> Client {
    let authorizer = HeadlessAuthorizer::new("http://127.0.0.1:1/callback".into()).unwrap();
    let config = ClientConfig::new(ClientMetadata::native(
        "test",
        "http://127.0.0.1:1/callback",
    ));
    OAuthClient::new(
        Scripted {
            log: RefCell::new(Vec::new()),
            answer: Box::new(answer),
        },
        MemoryStore::new(),
        authorizer,
        OsRandom,
        SystemClock,
        config,
    )
}

fn sent(c: &Client) -> Vec<(Value, HttpRequest)> {
    c.http()
        .log
        .borrow()
        .iter()
        .map(|r| {
            (
                serde_json::from_slice(r.body.as_deref().unwrap_or(b"null")).unwrap(),
                r.clone(),
            )
        })
        .collect()
}

fn result(body: &Value, result: Value) -> HttpResponse {
    HttpResponse::json(
        200,
        &json!({"jsonrpc": "2.0", "id": body["id"], "result": result}),
    )
}

fn error(status: u16, body: &Value, code: i64, data: Value) -> HttpResponse {
    HttpResponse::json(
        status,
        &json!({"jsonrpc": "2.0", "id": body["id"], "error": {"code": code, "message": "no", "data": data}}),
    )
}

/// A 2026-07-28 server: checks that the header matches `_meta`, answers discover and tools.
fn modern(body: &Value, req: &HttpRequest) -> HttpResponse {
    let meta = &body["params"]["_meta"];
    let version = meta["io.modelcontextprotocol/protocolVersion"].as_str();
    if version.is_none() || version != req.header("mcp-protocol-version") {
        return error(400, body, -32020, Value::Null);
    }
    match body["method"].as_str() {
        Some("server/discover") => result(
            body,
            json!({"resultType": "complete", "supportedVersions": ["2026-07-28"],
                   "capabilities": {"tools": {}}, "serverInfo": {"name": "modern"},
                   "ttlMs": 0, "cacheScope": "private"}),
        ),
        Some("tools/list") => result(
            body,
            json!({"tools": [
                {"name": "weather", "inputSchema": {"type": "object", "properties": {
                    "region": {"type": "string", "x-mcp-header": "Region"}}}},
                {"name": "broken", "inputSchema": {"type": "object", "properties": {
                    "n": {"type": "number", "x-mcp-header": "N"}}}}
            ]}),
        ),
        Some("tools/call") => result(body, json!({"resultType": "complete", "content": []})),
        _ => error(404, body, -32601, Value::Null),
    }
}

#[tokio::test]
async fn a_modern_server_is_used_statelessly() {
    let c = client(|b, r| {
        let mut resp = modern(b, r);
        // A session id from a modern server means nothing and is never sent back.
        resp.headers
            .push(("mcp-session-id".into(), "ignored".into()));
        resp
    });
    let mcp = McpSession::new(&c, URL);
    let server = mcp.connect().await.unwrap();
    assert!(server.modern);
    assert_eq!(server.protocol_version, "2026-07-28");
    assert_eq!(server.name.as_deref(), Some("modern"));
    let list = mcp.list_tools().await.unwrap();
    assert_eq!(list.tools.len(), 1);
    assert_eq!(list.rejected[0].0, "broken");
    mcp.call_tool("weather", json!({"region": "Zürich"}))
        .await
        .unwrap();
    let err = mcp.call_tool("broken", json!({"n": 1})).await.unwrap_err();
    assert!(matches!(err, McpError::Arguments(_)), "{err}");

    let log = sent(&c);
    let methods: Vec<&str> = log
        .iter()
        .map(|(b, _)| b["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["server/discover", "tools/list", "tools/call"]);
    for (body, req) in &log {
        let meta = &body["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientCapabilities"],
            json!({})
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientInfo"]["name"],
            "edge-oauth"
        );
        assert_eq!(req.header("mcp-method"), body["method"].as_str());
        assert_eq!(req.header("mcp-session-id"), None);
    }
    let (_, call) = &log[2];
    assert_eq!(call.header("mcp-name"), Some("weather"));
    assert_eq!(
        call.header("mcp-param-region"),
        Some("=?base64?WsO8cmljaA==?=")
    );
}

#[tokio::test]
async fn a_legacy_server_gets_initialize_and_a_session() {
    // Like the MCP SDK's 2025-11-25 transport: an unknown version header is a plain 400.
    let c = client(|b, r| {
        if r.header("mcp-protocol-version") == Some("2026-07-28") {
            return HttpResponse::json(
                400,
                &json!({"jsonrpc": "2.0", "id": null,
                        "error": {"code": -32000, "message": "Bad Request: Unsupported protocol version"}}),
            );
        }
        match b["method"].as_str() {
            Some("initialize") => {
                let mut resp = result(
                    b,
                    json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                           "serverInfo": {"name": "legacy", "version": "1"}}),
                );
                resp.headers.push(("mcp-session-id".into(), "s-1".into()));
                resp
            }
            Some("notifications/initialized") => HttpResponse::new(202, vec![], ""),
            _ => {
                assert_eq!(r.header("mcp-session-id"), Some("s-1"));
                result(b, json!({"tools": []}))
            }
        }
    });
    let mcp = McpSession::new(&c, URL);
    let server = mcp.connect().await.unwrap();
    assert!(!server.modern);
    assert_eq!(server.protocol_version, "2025-06-18");
    mcp.list_tools().await.unwrap();
    let log = sent(&c);
    let methods: Vec<&str> = log
        .iter()
        .map(|(b, _)| b["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/list"
        ]
    );
    assert_eq!(log[1].0["params"]["protocolVersion"], "2025-11-25");
    for (body, req) in &log[1..] {
        assert!(body["params"].get("_meta").is_none(), "{body}");
        assert_eq!(
            req.header("mcp-protocol-version"),
            Some(if body["method"] == "initialize" {
                "2025-11-25"
            } else {
                "2025-06-18"
            })
        );
    }
}

#[tokio::test]
async fn an_unsupported_version_is_retried_once_with_a_supported_one() {
    let c = client(|b, r| {
        if r.header("mcp-protocol-version") == Some("2026-07-28")
            && b["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
            && b["id"] == 1
        {
            // The first request is refused whatever it asked for.
            return error(
                400,
                b,
                -32022,
                json!({"supported": ["2026-07-28"], "requested": "x"}),
            );
        }
        modern(b, r)
    });
    let mcp = McpSession::new(&c, URL);
    assert!(mcp.connect().await.unwrap().modern);
    let log = sent(&c);
    assert_eq!(log.len(), 2);
    assert_ne!(log[0].0["id"], log[1].0["id"]);

    // A modern server that names only versions this client lacks ends the attempt.
    let c = client(|b, _| error(400, b, -32022, json!({"supported": ["2099-01-01"]})));
    let mcp = McpSession::new(&c, URL);
    assert!(matches!(
        mcp.connect().await,
        Err(McpError::NoCommonVersion { .. })
    ));
    assert_eq!(sent(&c).len(), 1, "no fall back to initialize");
}

#[tokio::test]
async fn a_dual_era_server_offering_only_legacy_versions_gets_initialize() {
    let c = client(|b, _| match b["method"].as_str() {
        Some("server/discover") => error(400, b, -32022, json!({"supported": ["2025-06-18"]})),
        Some("initialize") => result(
            b,
            json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
        ),
        _ => HttpResponse::new(202, vec![], ""),
    });
    let mcp = McpSession::new(&c, URL);
    let server = mcp.connect().await.unwrap();
    assert!(!server.modern);
    assert_eq!(sent(&c)[1].0["params"]["protocolVersion"], "2025-06-18");
}

struct Confirm;

impl InputResponder for Confirm {
    fn capabilities(&self) -> Value {
        json!({"elicitation": {}})
    }
    fn respond(&self, method: &str, _params: &Value) -> Result<Value, McpError> {
        assert_eq!(method, "elicitation/create");
        Ok(json!({"action": "accept", "content": {"ok": true}}))
    }
}

#[tokio::test]
async fn input_requests_are_answered_and_the_state_echoed() {
    let c = client(|b, r| {
        if b["method"] != "tools/call" {
            return modern(b, r);
        }
        let p = &b["params"];
        match (p.get("inputResponses"), p["name"].as_str()) {
            (None, Some("weather")) => result(
                b,
                json!({"resultType": "input_required", "requestState": "opaque-1",
                       "inputRequests": {"confirm": {"method": "elicitation/create",
                           "params": {"message": "sure?", "requestedSchema": {"type": "object"}}}}}),
            ),
            (Some(_), Some("weather")) if p["requestState"] == "opaque-1" => {
                result(b, json!({"content": [{"type": "text", "text": "done"}]}))
            }
            _ => error(400, b, -32602, Value::Null),
        }
    });
    let mcp = McpSession::new(&c, URL).with_input(Box::new(Confirm));
    let out = mcp
        .call_tool("weather", json!({"region": "eu"}))
        .await
        .unwrap();
    assert_eq!(out["content"][0]["text"], "done");
    let log = sent(&c);
    let calls: Vec<&(Value, HttpRequest)> = log
        .iter()
        .filter(|(b, _)| b["method"] == "tools/call")
        .collect();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].0["id"], calls[1].0["id"]);
    assert_eq!(
        calls[1].0["params"]["inputResponses"]["confirm"]["action"],
        "accept"
    );
    assert_eq!(calls[1].0["params"]["arguments"], json!({"region": "eu"}));
    assert_eq!(
        calls[1].0["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"],
        json!({"elicitation": {}})
    );
    // The retry carries the same mirrored headers.
    assert_eq!(calls[1].1.header("mcp-param-region"), Some("eu"));

    // Without declared input, a server that asks anyway gets an error, not an answer.
    let c = client(|b, r| {
        if b["method"] == "tools/call" {
            return result(
                b,
                json!({"resultType": "input_required",
                "inputRequests": {"q": {"method": "roots/list"}}}),
            );
        }
        modern(b, r)
    });
    let mcp = McpSession::new(&c, URL);
    assert!(mcp.call_tool("weather", json!({})).await.is_err());
    assert_eq!(
        sent(&c)
            .iter()
            .filter(|(b, _)| b["method"] == "tools/call")
            .count(),
        1
    );
}
