//! `edge-oauth conformance <url>`: the client the MCP conformance suite runs. A fresh
//! in-memory store, headless authorization, and the usual MCP traffic (initialize,
//! tools/list, tools/call). The suite describes each scenario to the client through
//! `MCP_CONFORMANCE_SCENARIO`, `MCP_CONFORMANCE_CONTEXT` and `MCP_CONFORMANCE_PROTOCOL_VERSION`.

use edge_oauth_core::MemoryStore;
use serde_json::{Value, json};

use crate::mcp::{McpError, McpSession};
use crate::{AnyStore, Opts, build_client, clean, parse_server};

pub async fn run(mut o: Opts) -> Result<(), String> {
    let server_idx = o
        .positional
        .len()
        .checked_sub(1)
        .ok_or("missing <mcp-url>")?;
    o.positional = vec!["conformance".into(), o.positional[server_idx].clone()];
    o.headless = true;
    if let Ok(ctx) = std::env::var("MCP_CONFORMANCE_CONTEXT") {
        let v: Value =
            serde_json::from_str(&ctx).map_err(|e| format!("MCP_CONFORMANCE_CONTEXT: {e}"))?;
        if let Some(id) = v.get("client_id").and_then(Value::as_str) {
            o.client_id = Some(id.to_owned());
            o.client_secret = v
                .get("client_secret")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
    }
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    eprintln!("scenario {scenario}");
    let server = parse_server(&o, 1)?;
    // A free loopback port per run: scenarios run in parallel.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(33418);
    o.port = port;
    let client = build_client(&o, AnyStore::Memory(MemoryStore::new()))
        .await
        .map_err(|e| e.to_string())?;
    let mut mcp = McpSession::new(&client, server.as_str());
    if let Ok(v) = std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION") {
        mcp = mcp.with_protocol_version(&v);
    }
    let run = async {
        mcp.initialize().await?;
        let tools = mcp.request("tools/list", json!({})).await?;
        let name = tools
            .pointer("/tools/0/name")
            .and_then(Value::as_str)
            .unwrap_or("test-tool")
            .to_owned();
        mcp.request("tools/call", json!({"name": name, "arguments": {}}))
            .await?;
        Ok::<(), McpError>(())
    };
    let result = run.await;
    eprintln!("discovery trace:");
    for s in client.last_trace() {
        eprintln!(
            "  {:?} {} {} {}",
            s.status,
            s.what,
            clean(&s.url),
            clean(&s.outcome)
        );
    }
    result.map_err(|e| e.to_string())
}
