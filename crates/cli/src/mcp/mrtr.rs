//! Multi Round-Trip Requests (2026-07-28 basic/patterns/mrtr, SEP-2322): a server that needs
//! input (elicitation, sampling, roots) answers with an `InputRequiredResult`; the client
//! gathers the input and retries the original request with `inputResponses`, echoing the
//! opaque `requestState` exactly, under a new JSON-RPC id.

use serde_json::{Map, Value};

use super::McpError;

/// The requests that may be answered with an `InputRequiredResult`.
pub const SUPPORTS_INPUT: &[&str] = &["tools/call", "prompts/get", "resources/read"];

/// What a result is, by its `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `complete`, or no `resultType` at all (servers of earlier revisions send none).
    Complete,
    /// `input_required`.
    InputRequired(InputRequired),
}

/// The parts of an `InputRequiredResult` the client acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequired {
    /// `inputRequests`: server-assigned key → `{method, params}`.
    pub requests: Option<Map<String, Value>>,
    /// `requestState`, opaque to the client.
    pub state: Option<String>,
}

/// Reads `resultType`. A value the client does not know makes the result invalid.
pub fn outcome(result: &Value) -> Result<Outcome, McpError> {
    match result.get("resultType") {
        None => Ok(Outcome::Complete),
        Some(Value::String(t)) if t == "complete" => Ok(Outcome::Complete),
        Some(Value::String(t)) if t == "input_required" => {
            let requests = match result.get("inputRequests") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m.clone()),
                Some(_) => return Err(McpError::Protocol("inputRequests is not an object".into())),
            };
            let state = match result.get("requestState") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(McpError::Protocol("requestState is not a string".into())),
            };
            if requests.is_none() && state.is_none() {
                return Err(McpError::Protocol(
                    "input_required result with neither inputRequests nor requestState".into(),
                ));
            }
            Ok(Outcome::InputRequired(InputRequired { requests, state }))
        }
        Some(other) => Err(McpError::Protocol(format!(
            "unrecognized resultType {other}"
        ))),
    }
}

/// Answers the server's input requests (`elicitation/create`, `sampling/createMessage`,
/// `roots/list`), and declares in the client capabilities which of them it can answer.
pub trait InputResponder {
    /// `ClientCapabilities` sent with every modern request.
    fn capabilities(&self) -> Value;
    /// The result for one input request (an `ElicitResult`, `CreateMessageResult`, ...).
    fn respond(&self, method: &str, params: &Value) -> Result<Value, McpError>;
}

/// A client that offers no input: it declares no capabilities, so a server must not ask.
pub struct NoInput;

impl InputResponder for NoInput {
    fn capabilities(&self) -> Value {
        Value::Object(Map::new())
    }
    fn respond(&self, method: &str, _params: &Value) -> Result<Value, McpError> {
        Err(McpError::Protocol(format!(
            "the server asked for input ({method}) that this client did not offer"
        )))
    }
}

/// The responses to every input request, keyed like the requests.
pub fn respond_all(
    requests: &Map<String, Value>,
    responder: &dyn InputResponder,
) -> Result<Map<String, Value>, McpError> {
    let mut out = Map::new();
    for (key, request) in requests {
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| McpError::Protocol(format!("input request {key:?} has no method")))?;
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        out.insert(key.clone(), responder.respond(method, &params)?);
    }
    Ok(out)
}

/// The params of a retry: the original request's params, plus `inputResponses` when input
/// was asked for and `requestState` exactly as received when there was one. Built from the
/// original each time, so nothing from one round or request leaks into another.
pub fn retry_params(
    original: &Value,
    responses: Option<Map<String, Value>>,
    state: Option<&str>,
) -> Value {
    let mut params = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    params.remove("inputResponses");
    params.remove("requestState");
    if let Some(r) = responses {
        params.insert("inputResponses".into(), Value::Object(r));
    }
    if let Some(s) = state {
        params.insert("requestState".into(), Value::String(s.to_owned()));
    }
    Value::Object(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn result_types() {
        assert_eq!(outcome(&json!({"content": []})).unwrap(), Outcome::Complete);
        assert_eq!(
            outcome(&json!({"resultType": "complete"})).unwrap(),
            Outcome::Complete
        );
        let r = json!({"resultType": "input_required", "requestState": "opaque==",
                       "inputRequests": {"confirm": {"method": "elicitation/create", "params": {}}}});
        let Outcome::InputRequired(ir) = outcome(&r).unwrap() else {
            panic!("input required")
        };
        assert_eq!(ir.state.as_deref(), Some("opaque=="));
        assert!(ir.requests.unwrap().contains_key("confirm"));
        assert!(outcome(&json!({"resultType": "task"})).is_err());
        assert!(outcome(&json!({"resultType": "input_required"})).is_err());
    }

    #[test]
    fn retries_echo_state_exactly_and_only_when_given() {
        let original = json!({"name": "t", "arguments": {"a": 1}});
        let mut responses = Map::new();
        responses.insert("confirm".into(), json!({"action": "accept"}));
        let state = " {\"nonce\":\"x\"} ";
        let retry = retry_params(&original, Some(responses), Some(state));
        assert_eq!(retry["requestState"], state);
        assert_eq!(retry["inputResponses"]["confirm"]["action"], "accept");
        assert_eq!(retry["arguments"]["a"], 1);
        let no_state = retry_params(&original, Some(Map::new()), None);
        assert!(no_state.get("requestState").is_none());
        // A round's input never carries over into the next one.
        let again = retry_params(&retry, None, None);
        assert!(again.get("requestState").is_none() && again.get("inputResponses").is_none());
    }

    #[test]
    fn a_client_without_input_refuses_to_answer() {
        let reqs = json!({"q": {"method": "sampling/createMessage", "params": {}}});
        let err = respond_all(reqs.as_object().unwrap(), &NoInput).unwrap_err();
        assert!(err.to_string().contains("sampling/createMessage"));
        assert_eq!(NoInput.capabilities(), json!({}));
    }
}
