//! The CLI's MCP client over Streamable HTTP, through the OAuth client so 401 and 403
//! challenges are handled on the way. It speaks both eras and picks by negotiation
//! (2026-07-28 basic/versioning): a modern request first, stateless with `_meta` on every
//! request; a server that answers it with anything but a modern error gets the legacy
//! `initialize` handshake and a session.

pub mod headers;
pub mod mrtr;
pub mod wire;

use std::cell::{Cell, RefCell};

use edge_oauth_core::env::{Clock, RandomSource};
use edge_oauth_core::{Authorizer, CredentialStore, HttpClient, HttpRequest, OAuthClient};
use serde_json::{Value, json};

use headers::ParamHeader;
use mrtr::{InputResponder, NoInput, Outcome};
use wire::{ClientIdentity, Reply, RpcError};

/// The most rounds of input one request may ask for before the client gives up.
const MAX_INPUT_ROUNDS: usize = 8;
/// The most `tools/list` pages read.
const MAX_PAGES: usize = 100;

#[derive(Debug)]
pub enum McpError {
    Auth(edge_oauth_core::Error),
    Http {
        status: u16,
        body: String,
    },
    Protocol(String),
    Rpc(RpcError),
    /// The server supports no protocol version this client speaks.
    NoCommonVersion {
        supported: Vec<String>,
    },
    /// Arguments that cannot be sent to a tool (a header value it asks for, a rejected tool).
    Arguments(String),
}

impl std::fmt::Display for McpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpError::Auth(e) => write!(f, "{e} [{}]", e.code()),
            McpError::Http { status, body } => {
                write!(f, "MCP server answered HTTP {status}: {body}")
            }
            McpError::Protocol(m) => write!(f, "MCP protocol error: {m}"),
            McpError::Rpc(e) => write!(f, "MCP error {}: {}", e.code, e.message),
            McpError::NoCommonVersion { supported } => write!(
                f,
                "the MCP server supports only protocol versions {supported:?}; this client speaks {:?}",
                wire::MODERN_VERSIONS
                    .iter()
                    .chain(wire::LEGACY_VERSIONS)
                    .collect::<Vec<_>>()
            ),
            McpError::Arguments(m) => write!(f, "{m}"),
        }
    }
}

impl From<edge_oauth_core::Error> for McpError {
    fn from(e: edge_oauth_core::Error) -> Self {
        McpError::Auth(e)
    }
}

/// Which revision the server speaks, once known.
#[derive(Debug, Clone)]
enum Era {
    Unknown,
    /// Stateless: this version in the header and in every request's `_meta`.
    Modern {
        version: String,
    },
    /// After `initialize`: the negotiated version and the session the server assigned.
    Legacy {
        version: String,
        session_id: Option<String>,
    },
}

/// What the server said about itself when the client connected.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub protocol_version: String,
    /// Modern (stateless, 2026-07-28 and later) or legacy (`initialize`).
    pub modern: bool,
    pub name: Option<String>,
    pub capabilities: Value,
}

/// A tool as the server defined it (kept verbatim: its `inputSchema` is never rewritten,
/// and `$ref`s are never fetched), with the parameters it asks to see in headers.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    pub definition: Value,
    headers: Vec<ParamHeader>,
}

impl Tool {
    pub fn input_schema(&self) -> Option<&Value> {
        self.definition.get("inputSchema")
    }
    pub fn description(&self) -> &str {
        self.definition
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// `tools/list` as the client uses it: the valid tools, and those left out with the reason
/// (a tool whose `x-mcp-header` annotations break the rules must not be offered).
#[derive(Debug, Clone, Default)]
pub struct ToolList {
    pub tools: Vec<Tool>,
    pub rejected: Vec<(String, String)>,
}

pub struct McpSession<'a, H, S, A, R, C> {
    client: &'a OAuthClient<H, S, A, R, C>,
    url: String,
    preferred: String,
    era: RefCell<Era>,
    tools: RefCell<Option<ToolList>>,
    identity: ClientIdentity,
    responder: Box<dyn InputResponder + 'a>,
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
            preferred: wire::MODERN_VERSIONS[0].to_owned(),
            era: RefCell::new(Era::Unknown),
            tools: RefCell::new(None),
            identity: ClientIdentity::new(NoInput.capabilities()),
            responder: Box::new(NoInput),
            next_id: Cell::new(1),
        }
    }

    /// Starts with this protocol version: a legacy one goes straight to `initialize`, a modern
    /// one is tried first. Versions this client does not know are ignored.
    pub fn with_protocol_version(mut self, version: &str) -> Self {
        if wire::is_modern_version(version) || wire::is_legacy_version(version) {
            self.preferred = version.to_owned();
        }
        self
    }

    /// Answers the server's input requests with `responder`, and declares its capabilities.
    pub fn with_input(mut self, responder: Box<dyn InputResponder + 'a>) -> Self {
        self.identity.capabilities = responder.capabilities();
        self.responder = responder;
        self
    }

    /// Finds out which revision the server speaks. A modern `server/discover` first (unless a
    /// legacy version was asked for): a result, or a modern error, means a modern server; an
    /// `UnsupportedProtocolVersionError` is answered once with a version from its `supported`
    /// list; anything else (a 400, 404 or 405 without a modern error, another JSON-RPC error)
    /// means a legacy server, which then gets `initialize`.
    pub async fn connect(&self) -> Result<ServerInfo, McpError> {
        if wire::is_legacy_version(&self.preferred) {
            return self.initialize(&self.preferred.clone()).await;
        }
        self.set_era(Era::Modern {
            version: self.preferred.clone(),
        });
        let mut renegotiated = false;
        loop {
            match self.send_once("server/discover", &json!({}), &[]).await {
                Ok(Reply::Result(r)) => return Ok(self.discovered(&r)),
                Ok(Reply::Error(e))
                    if e.code == wire::UNSUPPORTED_PROTOCOL_VERSION && !renegotiated =>
                {
                    renegotiated = true;
                    let supported = e.supported_versions();
                    match wire::choose_version(&supported) {
                        Some(v) if wire::is_modern_version(v) => self.set_era(Era::Modern {
                            version: v.to_owned(),
                        }),
                        Some(v) => return self.initialize(v).await,
                        None => return Err(McpError::NoCommonVersion { supported }),
                    }
                }
                Ok(Reply::Error(e)) if wire::is_modern_error(e.code) => {
                    return Err(McpError::Rpc(e));
                }
                Ok(Reply::Error(_))
                | Err(McpError::Http {
                    status: 400 | 404 | 405,
                    ..
                }) => {
                    return self.initialize(wire::LEGACY_VERSIONS[0]).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn discovered(&self, result: &Value) -> ServerInfo {
        let version = match &*self.era.borrow() {
            Era::Modern { version } => version.clone(),
            _ => self.preferred.clone(),
        };
        let info = result.get("serverInfo").or_else(|| {
            result
                .get("_meta")
                .and_then(|m| m.get(wire::META_SERVER_INFO))
        });
        ServerInfo {
            protocol_version: version,
            modern: true,
            name: info
                .and_then(|i| i.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            capabilities: result.get("capabilities").cloned().unwrap_or(json!({})),
        }
    }

    /// The legacy handshake: `initialize` with `version`, the version the server chose (one
    /// this client speaks), the session id, then `notifications/initialized`. Legacy servers
    /// send their own requests on SSE streams, which this client does not serve: it declares
    /// no client capabilities there.
    async fn initialize(&self, version: &str) -> Result<ServerInfo, McpError> {
        self.set_era(Era::Legacy {
            version: version.to_owned(),
            session_id: None,
        });
        let params = json!({
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": self.identity.info,
        });
        let result = match self.send_once("initialize", &params, &[]).await? {
            Reply::Result(r) => r,
            Reply::Error(e) => return Err(McpError::Rpc(e)),
        };
        let chosen = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(version)
            .to_owned();
        if !wire::is_legacy_version(&chosen) {
            return Err(McpError::NoCommonVersion {
                supported: vec![chosen],
            });
        }
        let session_id = match &*self.era.borrow() {
            Era::Legacy { session_id, .. } => session_id.clone(),
            _ => None,
        };
        self.set_era(Era::Legacy {
            version: chosen.clone(),
            session_id,
        });
        self.notify("notifications/initialized").await?;
        Ok(ServerInfo {
            protocol_version: chosen,
            modern: false,
            name: result
                .pointer("/serverInfo/name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            capabilities: result.get("capabilities").cloned().unwrap_or(json!({})),
        })
    }

    fn set_era(&self, era: Era) {
        *self.era.borrow_mut() = era;
    }

    fn next_id(&self) -> i64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// One POST carrying one request, shaped for the era: modern requests carry the request
    /// metadata in `_meta`, legacy ones the session id. Both carry the standard headers.
    async fn send_once(
        &self,
        method: &str,
        params: &Value,
        extra_headers: &[(String, String)],
    ) -> Result<Reply, McpError> {
        let id = self.next_id();
        let (version, session_id, params_sent) = match &*self.era.borrow() {
            Era::Modern { version } => (
                version.clone(),
                None,
                wire::with_request_meta(params.clone(), version, &self.identity),
            ),
            Era::Legacy {
                version,
                session_id,
            } => (version.clone(), session_id.clone(), params.clone()),
            Era::Unknown => return Err(McpError::Protocol("not connected".into())),
        };
        let body = wire::request_body(id, method, &params_sent);
        let mut mirrored = headers::standard_headers(method, params);
        mirrored.extend(extra_headers.iter().cloned());
        let request = wire::post(&self.url, &body, &version, session_id.as_deref(), mirrored);
        let response = self.client.send(request).await?;
        if let (Some(sid), Era::Legacy { session_id, .. }) = (
            response.header("mcp-session-id"),
            &mut *self.era.borrow_mut(),
        ) {
            *session_id = Some(sid.to_owned());
        }
        wire::read_reply(&response, id)
    }

    /// A request, retried once with a version from the server's `supported` list when it
    /// answers `UnsupportedProtocolVersionError` (SEP-2575).
    async fn rpc(
        &self,
        method: &str,
        params: &Value,
        extra_headers: &[(String, String)],
    ) -> Result<Value, McpError> {
        let mut renegotiated = false;
        loop {
            match self.send_once(method, params, extra_headers).await? {
                Reply::Result(r) => return Ok(r),
                Reply::Error(e)
                    if e.code == wire::UNSUPPORTED_PROTOCOL_VERSION
                        && !renegotiated
                        && matches!(&*self.era.borrow(), Era::Modern { .. }) =>
                {
                    renegotiated = true;
                    let supported = e.supported_versions();
                    match wire::choose_version(&supported) {
                        Some(v) if wire::is_modern_version(v) => self.set_era(Era::Modern {
                            version: v.to_owned(),
                        }),
                        Some(v) => {
                            self.initialize(v).await?;
                        }
                        None => return Err(McpError::NoCommonVersion { supported }),
                    }
                }
                Reply::Error(e) => return Err(McpError::Rpc(e)),
            }
        }
    }

    /// Sends a request and returns its final result: connects first if needed, and answers
    /// input requests (MRTR) by retrying with the responder's answers.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, McpError> {
        self.request_with_headers(method, params, &[]).await
    }

    async fn request_with_headers(
        &self,
        method: &str,
        params: Value,
        extra_headers: &[(String, String)],
    ) -> Result<Value, McpError> {
        if matches!(&*self.era.borrow(), Era::Unknown) {
            self.connect().await?;
        }
        let mut attempt = params.clone();
        for _ in 0..MAX_INPUT_ROUNDS {
            let result = self.rpc(method, &attempt, extra_headers).await?;
            let input = match mrtr::outcome(&result)? {
                Outcome::Complete => return Ok(result),
                Outcome::InputRequired(input) => input,
            };
            if !mrtr::SUPPORTS_INPUT.contains(&method) {
                return Err(McpError::Protocol(format!(
                    "the server asked for input on {method}, which may not ask for any"
                )));
            }
            let responses = input
                .requests
                .as_ref()
                .map(|r| mrtr::respond_all(r, self.responder.as_ref()))
                .transpose()?;
            attempt = mrtr::retry_params(&params, responses, input.state.as_deref());
        }
        Err(McpError::Protocol(format!(
            "{method} still needed input after {MAX_INPUT_ROUNDS} rounds"
        )))
    }

    /// Sends a notification (legacy servers only: the 2026-07-28 revision has none from the
    /// client over HTTP). 202 expected.
    async fn notify(&self, method: &str) -> Result<(), McpError> {
        let (version, session_id) = match &*self.era.borrow() {
            Era::Legacy {
                version,
                session_id,
            } => (version.clone(), session_id.clone()),
            _ => return Ok(()),
        };
        let body = json!({"jsonrpc": "2.0", "method": method});
        let mirrored = headers::standard_headers(method, &Value::Null);
        let request = wire::post(&self.url, &body, &version, session_id.as_deref(), mirrored);
        let response = self.client.send(request).await?;
        if !response.is_success() {
            return Err(McpError::Http {
                status: response.status,
                body: String::from_utf8_lossy(&response.body)
                    .chars()
                    .take(300)
                    .collect(),
            });
        }
        Ok(())
    }

    /// All pages of `tools/list`. Tools whose `x-mcp-header` annotations are invalid are left
    /// out and listed in `rejected`.
    pub async fn list_tools(&self) -> Result<ToolList, McpError> {
        let mut list = ToolList::default();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = self.request("tools/list", params).await?;
            let tools = page
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| McpError::Protocol("tools/list without tools".into()))?;
            for t in tools {
                let Some(name) = t.get("name").and_then(Value::as_str) else {
                    list.rejected
                        .push(("?".into(), "a tool without a name".into()));
                    continue;
                };
                match headers::param_headers(t.get("inputSchema").unwrap_or(&Value::Null)) {
                    Ok(headers) => list.tools.push(Tool {
                        name: name.to_owned(),
                        definition: t.clone(),
                        headers,
                    }),
                    Err(e) => list.rejected.push((name.to_owned(), e.0)),
                }
            }
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        *self.tools.borrow_mut() = Some(list.clone());
        Ok(list)
    }

    /// `tools/call`, with the `Mcp-Param-*` headers the tool's schema asks for (the tools are
    /// listed first when they are not known yet). On a `HeaderMismatch` the tools are listed
    /// again and the call is retried once if the tool's headers changed.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<Value, McpError> {
        if self.tools.borrow().is_none() {
            self.list_tools().await?;
        }
        let params = json!({"name": name, "arguments": arguments});
        let mut headers = self.tool_headers(name, &arguments)?;
        let mut relisted = false;
        loop {
            match self
                .request_with_headers("tools/call", params.clone(), &headers)
                .await
            {
                Err(McpError::Rpc(e)) if e.code == wire::HEADER_MISMATCH && !relisted => {
                    relisted = true;
                    self.list_tools().await?;
                    let fresh = self.tool_headers(name, &arguments)?;
                    if fresh == headers {
                        return Err(McpError::Rpc(e));
                    }
                    headers = fresh;
                }
                other => return other,
            }
        }
    }

    fn tool_headers(
        &self,
        name: &str,
        arguments: &Value,
    ) -> Result<Vec<(String, String)>, McpError> {
        let tools = self.tools.borrow();
        let Some(list) = tools.as_ref() else {
            return Ok(Vec::new());
        };
        if let Some(tool) = list.tools.iter().find(|t| t.name == name) {
            return headers::param_header_values(&tool.headers, arguments)
                .map_err(|e| McpError::Arguments(format!("tool {name}: {e}")));
        }
        if let Some((_, why)) = list.rejected.iter().find(|(n, _)| n == name) {
            return Err(McpError::Arguments(format!(
                "tool {name} was rejected: {why}"
            )));
        }
        // Not listed: the server decides.
        Ok(Vec::new())
    }
}

/// An unauthenticated modern `server/discover`, for reading a server's challenge.
pub fn probe_request(url: &str) -> HttpRequest {
    let version = wire::MODERN_VERSIONS[0];
    let identity = ClientIdentity::new(NoInput.capabilities());
    let params = wire::with_request_meta(json!({}), version, &identity);
    let body = wire::request_body(0, "server/discover", &params);
    wire::post(
        url,
        &body,
        version,
        None,
        headers::standard_headers("server/discover", &params),
    )
}

#[cfg(test)]
mod tests;
