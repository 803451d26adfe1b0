//! `edge-oauth conformance <url>`: the client the MCP conformance suite runs. A fresh
//! in-memory store, headless authorization, then the usual MCP traffic: connect (the era is
//! negotiated), list the tools, call them, and list and read prompts and resources when the
//! server offers them. The suite describes each scenario to the client through
//! `MCP_CONFORMANCE_SCENARIO`, `MCP_CONFORMANCE_CONTEXT` and `MCP_CONFORMANCE_PROTOCOL_VERSION`.
//!
//! The client is configured as a deployment would be, from what the context provides: a
//! private key makes a `private_key_jwt` machine client, a workload JWT the JWT bearer grant,
//! an IdP's ID token enterprise-managed authorization, and DPoP is on where servers offer it
//! (with a key of the run's own).

use edge_oauth_core::env::{Clock, RandomSource};
use edge_oauth_core::{Authorizer, CredentialStore, HttpClient};
use edge_oauth_core::{
    DpopPolicy, IdToken, IdentityAssertionGrant, JwtAssertion, MemoryStore, NonInteractiveGrant,
    Signer,
};
use serde_json::{Map, Value, json};

use crate::keys::EcKey;
use crate::mcp::mrtr::InputResponder;
use crate::mcp::{McpError, McpSession};
use crate::{AnyStore, Opts, build_client, clean, parse_server};

/// The scenarios whose pre-registered credentials belong to a machine client (the client
/// credentials extension). The context alone does not say so: `auth/pre-registration` hands
/// out the same `client_id` and `client_secret` for a user's authorization code flow — which
/// one a deployment is, is the deployment's choice, and the scenario name states it here.
const CLIENT_CREDENTIALS_SCENARIOS: &str = "auth/client-credentials-";

/// The scenario that asks the client to hand one tool's `inputSchema` back verbatim.
const SCHEMA_ECHO_SCENARIO: &str = "json-schema-2020-12-preservation";

pub async fn run(mut o: Opts) -> Result<(), String> {
    let server_idx = o
        .positional
        .len()
        .checked_sub(1)
        .ok_or("missing <mcp-url>")?;
    o.positional = vec!["conformance".into(), o.positional[server_idx].clone()];
    o.headless = true;
    let context: Value = match std::env::var("MCP_CONFORMANCE_CONTEXT") {
        Ok(ctx) => {
            serde_json::from_str(&ctx).map_err(|e| format!("MCP_CONFORMANCE_CONTEXT: {e}"))?
        }
        Err(_) => Value::Null,
    };
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    eprintln!("scenario {scenario}");
    configure(&mut o, &context, &scenario)?;
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
    let mut mcp =
        McpSession::new(&client, server.as_str()).with_input(Box::new(AcceptWithDefaults));
    if let Ok(v) = std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION") {
        mcp = mcp.with_protocol_version(&v);
    }
    let result = exercise(&mcp, &scenario, &context).await;
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

/// The client's configuration from the scenario context.
fn configure(o: &mut Opts, context: &Value, scenario: &str) -> Result<(), String> {
    let field = |name: &str| context.get(name).and_then(Value::as_str).map(str::to_owned);
    // DPoP wherever an authorization server offers it, with this run's own key.
    o.dpop = DpopPolicy::Prefer;
    if let Some(jwt) = field("valid_jwt") {
        // Workload identity: the platform's JWT is the grant; no client registration.
        o.grant = Some(NonInteractiveGrant::JwtBearer {
            assertion: JwtAssertion::new(jwt),
        });
        return Ok(());
    }
    o.client_id = field("client_id");
    o.client_secret = field("client_secret");
    if let Some(pem) = field("private_key_pem") {
        let alg = field("signing_algorithm").unwrap_or_else(|| "ES256".into());
        if alg != "ES256" {
            return Err(format!(
                "signing_algorithm {alg}: this client signs with ES256"
            ));
        }
        o.client_key = Some(Signer::new(EcKey::from_pem(&pem)?));
        o.grant = Some(NonInteractiveGrant::ClientCredentials);
    } else if let Some(id_token) = field("idp_id_token") {
        let (Some(endpoint), Some(idp_client_id)) =
            (field("idp_token_endpoint"), field("idp_client_id"))
        else {
            return Err("an idp_id_token without idp_token_endpoint and idp_client_id".into());
        };
        o.grant = Some(NonInteractiveGrant::IdentityAssertion(
            IdentityAssertionGrant {
                idp_token_endpoint: endpoint,
                idp_client_id,
                idp_client_secret: None,
                id_token: IdToken::new(id_token),
            },
        ));
    } else if o.client_secret.is_some() && scenario.starts_with(CLIENT_CREDENTIALS_SCENARIOS) {
        o.grant = Some(NonInteractiveGrant::ClientCredentials);
    }
    Ok(())
}

async fn exercise<H, S, A, R, C>(
    mcp: &McpSession<'_, H, S, A, R, C>,
    scenario: &str,
    context: &Value,
) -> Result<(), McpError>
where
    H: HttpClient,
    S: CredentialStore,
    A: Authorizer,
    R: RandomSource,
    C: Clock,
{
    let server = mcp.connect().await?;
    eprintln!(
        "protocol {} ({})",
        server.protocol_version,
        if server.modern {
            "stateless, _meta on every request"
        } else {
            "initialize, session"
        }
    );
    let list = mcp.list_tools().await?;
    for (name, why) in &list.rejected {
        eprintln!("warning: tool {} left out: {}", clean(name), clean(why));
    }
    if let Some(calls) = context.get("toolCalls").and_then(Value::as_array) {
        // The scenario names the calls and their arguments.
        for call in calls {
            let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
            let args = call.get("arguments").cloned().unwrap_or(json!({}));
            mcp.call_tool(name, args).await?;
        }
    } else if scenario == SCHEMA_ECHO_SCENARIO {
        // Hand the focal tool's inputSchema, exactly as received, to the echo tool.
        let schema = list
            .tools
            .iter()
            .find(|t| t.name == "json_schema_2020_12_tool")
            .and_then(|t| t.input_schema().cloned())
            .ok_or_else(|| McpError::Protocol("no json_schema_2020_12_tool listed".into()))?;
        mcp.call_tool("json_schema_echo", json!({ "schema": schema }))
            .await?;
    } else {
        // Every tool with example arguments. A tool the server then refuses to run is its
        // answer, not a client failure.
        for tool in &list.tools {
            let args = example_arguments(tool.input_schema().unwrap_or(&Value::Null));
            answered(mcp.call_tool(&tool.name, args).await, &tool.name)?;
        }
    }
    if server.capabilities.get("prompts").is_some() {
        let prompts = mcp.request("prompts/list", json!({})).await?;
        if let Some(p) = prompts.pointer("/prompts/0") {
            let mut args = Map::new();
            for a in p
                .get("arguments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if a.get("required").and_then(Value::as_bool) == Some(true)
                    && let Some(n) = a.get("name").and_then(Value::as_str)
                {
                    args.insert(n.to_owned(), json!("example"));
                }
            }
            let name = p.get("name").cloned().unwrap_or_default();
            let got = mcp
                .request("prompts/get", json!({"name": name, "arguments": args}))
                .await;
            answered(got, "prompts/get")?;
        }
    }
    if server.capabilities.get("resources").is_some() {
        let resources = mcp.request("resources/list", json!({})).await?;
        if let Some(uri) = resources.pointer("/resources/0/uri") {
            let got = mcp.request("resources/read", json!({ "uri": uri })).await;
            answered(got, "resources/read")?;
        }
    }
    Ok(())
}

/// A JSON-RPC error is the server's answer and only noted; any other failure stands.
fn answered(result: Result<Value, McpError>, what: &str) -> Result<(), McpError> {
    match result {
        Ok(_) => Ok(()),
        Err(McpError::Rpc(e)) => {
            eprintln!(
                "note: {} answered with error {}: {}",
                clean(what),
                e.code,
                clean(&e.message)
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Answers form elicitations by accepting them with each field's default, or an example
/// value of its type. Declares form elicitation only, so no other input is asked for.
struct AcceptWithDefaults;

impl InputResponder for AcceptWithDefaults {
    fn capabilities(&self) -> Value {
        json!({"elicitation": {}})
    }

    fn respond(&self, method: &str, params: &Value) -> Result<Value, McpError> {
        match method {
            "elicitation/create" if params.get("mode").and_then(Value::as_str) != Some("url") => {
                let schema = params.get("requestedSchema").unwrap_or(&Value::Null);
                let mut content = Map::new();
                for (name, field) in schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let v = example_value(field, schema, 0);
                    // Elicited values are primitives (or lists of strings).
                    if matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                        content.insert(name.clone(), v);
                    }
                }
                Ok(json!({"action": "accept", "content": content}))
            }
            "elicitation/create" => Ok(json!({"action": "decline"})),
            other => Err(McpError::Protocol(format!(
                "the server asked for {other}, which this client did not offer"
            ))),
        }
    }
}

/// Arguments for a tool: every required property of its `inputSchema`, each with its
/// default or an example value of its type.
fn example_arguments(schema: &Value) -> Value {
    match example_value(schema, schema, 0) {
        v @ Value::Object(_) => v,
        _ => json!({}),
    }
}

/// An instance of `schema`: its `default`, `const`, first `enum` value or first example, else
/// a value of its type (objects with their required properties). `$ref`s are followed only
/// within the schema itself (`#/…`): a network URI is never fetched.
fn example_value(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    let Some(s) = schema.as_object() else {
        return Value::Null;
    };
    for key in ["default", "const"] {
        if let Some(v) = s.get(key) {
            return v.clone();
        }
    }
    for key in ["enum", "examples"] {
        if let Some(v) = s.get(key).and_then(|v| v.get(0)) {
            return v.clone();
        }
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
            Some(target) => example_value(target, root, depth + 1),
            None => Value::Null,
        };
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    };
    match ty {
        Some("string") => json!("example"),
        Some("integer" | "number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("null") => Value::Null,
        Some("object") => object_example(s, root, depth),
        _ if s.contains_key("properties") => object_example(s, root, depth),
        _ => match ["anyOf", "oneOf", "allOf"]
            .iter()
            .find_map(|k| s.get(*k).and_then(|v| v.get(0)))
        {
            Some(first) => example_value(first, root, depth + 1),
            None => Value::Null,
        },
    }
}

fn object_example(s: &Map<String, Value>, root: &Value, depth: usize) -> Value {
    let mut out = Map::new();
    let props = s.get("properties").and_then(Value::as_object);
    for name in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let v = props
            .and_then(|p| p.get(name))
            .map(|p| example_value(p, root, depth + 1))
            .unwrap_or(Value::Null);
        if !v.is_null() {
            out.insert(name.to_owned(), v);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    fn key_inner(k: &EcKey) -> p256::ecdsa::SigningKey {
        k.signing_key().clone()
    }

    #[test]
    fn example_arguments_fill_required_properties() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "number"}, "b": {"type": "integer"}, "s": {"type": "string"},
            "e": {"enum": ["x", "y"]}, "d": {"type": "string", "default": "dflt"},
            "id": {"$ref": "#/$defs/userId"}, "profile": {"$ref": "https://example.com/s.json"},
            "opt": {"type": "string"}
        }, "$defs": {"userId": {"type": "string"}},
        "required": ["a", "b", "s", "e", "d", "id", "profile"]});
        assert_eq!(
            example_arguments(&schema),
            json!({"a": 1, "b": 1, "s": "example", "e": "x", "d": "dflt", "id": "example"})
        );
        assert_eq!(example_arguments(&json!({"type": "object"})), json!({}));
        assert_eq!(example_arguments(&Value::Null), json!({}));
    }

    #[test]
    fn the_grant_comes_from_the_context() {
        let grant = |ctx: Value, scenario: &str| {
            let mut o = Opts::default();
            configure(&mut o, &ctx, scenario).unwrap();
            assert_eq!(o.dpop, DpopPolicy::Prefer);
            (
                o.grant.map(|g| format!("{g:?}")),
                o.client_id,
                o.client_key.is_some(),
            )
        };
        let secret = json!({"client_id": "c", "client_secret": "s"});
        let (g, id, _) = grant(secret.clone(), "auth/client-credentials-basic");
        assert_eq!(
            (g.as_deref(), id.as_deref()),
            (Some("ClientCredentials"), Some("c"))
        );
        // The same credentials in a user's flow: the code flow.
        assert_eq!(grant(secret, "auth/pre-registration").0, None);
        let key = EcKey::generate().unwrap();
        let pem = p256::SecretKey::from(&key_inner(&key))
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let (g, _, signer) = grant(
            json!({"client_id": "c", "private_key_pem": pem.as_str(), "signing_algorithm": "ES256"}),
            "auth/client-credentials-jwt",
        );
        assert_eq!((g.as_deref(), signer), (Some("ClientCredentials"), true));
        let (g, id, _) = grant(
            json!({"client_id": "w", "valid_jwt": "a.b.c", "expired_jwt": "d.e.f"}),
            "auth/wif-jwt-bearer",
        );
        assert!(g.unwrap().starts_with("JwtBearer") && id.is_none());
        let (g, id, _) = grant(
            json!({"client_id": "c", "client_secret": "s", "idp_client_id": "i", "idp_id_token": "x.y.z",
                   "idp_issuer": "http://localhost:1", "idp_token_endpoint": "http://localhost:1/token"}),
            "auth/enterprise-managed-authorization",
        );
        assert!(g.unwrap().starts_with("IdentityAssertion") && id.as_deref() == Some("c"));
        // No context (DPoP scenarios): the code flow, DPoP where offered.
        assert_eq!(grant(Value::Null, "auth/dpop").0, None);
    }

    #[test]
    fn elicitations_are_accepted_with_defaults() {
        let r = AcceptWithDefaults
            .respond(
                "elicitation/create",
                &json!({"message": "ok?", "requestedSchema": {"type": "object", "properties": {
                    "confirmed": {"type": "boolean"}, "name": {"type": "string", "default": "J"},
                    "nested": {"type": "object"}}}}),
            )
            .unwrap();
        assert_eq!(
            r,
            json!({"action": "accept", "content": {"confirmed": true, "name": "J"}})
        );
        assert!(
            AcceptWithDefaults
                .respond("roots/list", &json!({}))
                .is_err()
        );
        assert_eq!(
            AcceptWithDefaults
                .respond("elicitation/create", &json!({"mode": "url"}))
                .unwrap()["action"],
            "decline"
        );
    }
}
