//! Serde types for what `codex app-server` prints on stdout: JSON-RPC 2.0
//! without the `"jsonrpc"` member, one object per line. Tolerant of what
//! newer versions add: unknown methods, item types and fields, and fields
//! older versions leave out (0.135 has no `cacheWriteInputTokens`).
//!
//! A line is read once into a [`Message`]; the conversation (`rpc`) and the
//! translation (`translate`) both look at that one value.

use serde::Deserialize;
use serde_json::Value;

use crate::translate::{take_string, Action};

/// The ids of the adapter's own requests. Fixed, so that a recording of
/// codex's side alone (`--record`) still says which response answers what.
pub mod request_id {
    pub const INITIALIZE: u64 = 1;
    /// `thread/start` or `thread/resume`.
    pub const THREAD: u64 = 2;
    pub const TURN_START: u64 = 3;
    pub const INTERRUPT: u64 = 4;
    /// `thread/start` after codex refused to resume a thread it no longer knows.
    pub const FRESH_THREAD: u64 = 5;
    /// `thread/resume` again without `excludeTurns`, which codex before
    /// 0.169 refuses without the experimental API.
    pub const RESUME_AGAIN: u64 = 6;
}

/// One line of codex's stdout.
#[derive(Debug)]
pub enum Message {
    /// The answer to one of the adapter's requests.
    Response {
        id: u64,
        outcome: Result<Value, RpcError>,
    },
    /// Codex asks the client something (an approval, a question); the turn
    /// waits until it is answered.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification(Notification),
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Value,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    id: Option<Value>,
    method: Option<String>,
    #[serde(default)]
    params: Value,
    result: Option<Value>,
    error: Option<RpcError>,
}

impl Message {
    pub fn parse(line: &[u8]) -> Result<Message, serde_json::Error> {
        let raw: RawMessage = serde_json::from_slice(line)?;
        let message = match (raw.id, raw.method) {
            (Some(id), Some(method)) => Message::Request {
                id,
                method,
                params: raw.params,
            },
            (None, Some(method)) => {
                Message::Notification(Notification::from_parts(method, raw.params))
            }
            (Some(id), None) => Message::Response {
                // Codex answers with the id it was given; ours are small numbers.
                id: id.as_u64().unwrap_or(u64::MAX),
                outcome: match raw.error {
                    Some(error) => Err(error),
                    None => Ok(raw.result.unwrap_or(Value::Null)),
                },
            },
            (None, None) => {
                return Err(serde::de::Error::custom(
                    "neither a method nor an id: not a JSON-RPC message",
                ))
            }
        };
        Ok(message)
    }
}

/// A notification, by method.
#[derive(Debug)]
pub enum Notification {
    ThreadStarted {
        thread_id: String,
    },
    TurnStarted {
        turn_id: String,
    },
    TurnCompleted {
        turn_id: String,
        status: String,
        error: Option<ErrorInfo>,
    },
    ItemStarted {
        item: Item,
    },
    ItemCompleted {
        item: Item,
    },
    AgentMessageDelta {
        item_id: String,
        delta: String,
    },
    PlanUpdated {
        plan: Vec<(String, bool)>,
    },
    TokenUsage {
        turn_id: String,
        total: TokenBreakdown,
        last: TokenBreakdown,
    },
    /// `error`: a retry (`will_retry`), or the echo of a fatal failure that
    /// `turn/completed` repeats.
    Error {
        error: ErrorInfo,
        will_retry: bool,
    },
    /// `warning`, `model/rerouted`: what exec shows as a warning item.
    Warning {
        message: String,
    },
    /// `configWarning`, `deprecationNotice`: about codex's setup rather than
    /// the turn (exec prints them on stderr).
    SetupNotice {
        message: String,
    },
    /// A method this adapter does not act on; carries its name.
    Other(String),
}

impl Notification {
    fn from_parts(method: String, params: Value) -> Notification {
        let parsed = match method.as_str() {
            "thread/started" => {
                from::<ThreadStartedParams>(params).map(|p| Notification::ThreadStarted {
                    thread_id: p.thread.id,
                })
            }
            "turn/started" => {
                from::<TurnParams>(params).map(|p| Notification::TurnStarted { turn_id: p.turn.id })
            }
            "turn/completed" => from::<TurnParams>(params).map(|p| Notification::TurnCompleted {
                turn_id: p.turn.id,
                status: p.turn.status,
                error: p.turn.error,
            }),
            "item/started" => from::<ItemParams>(params).map(|p| Notification::ItemStarted {
                item: Item::from_value(p.item),
            }),
            "item/completed" => from::<ItemParams>(params).map(|p| Notification::ItemCompleted {
                item: Item::from_value(p.item),
            }),
            "item/agentMessage/delta" => {
                from::<DeltaParams>(params).map(|p| Notification::AgentMessageDelta {
                    item_id: p.item_id,
                    delta: p.delta,
                })
            }
            "turn/plan/updated" => from::<PlanParams>(params).map(|p| Notification::PlanUpdated {
                plan: p
                    .plan
                    .into_iter()
                    .map(|step| (step.step, step.status == "completed"))
                    .collect(),
            }),
            "thread/tokenUsage/updated" => {
                from::<TokenUsageParams>(params).map(|p| Notification::TokenUsage {
                    turn_id: p.turn_id,
                    total: p.token_usage.total,
                    last: p.token_usage.last,
                })
            }
            "error" => from::<ErrorParams>(params).map(|p| Notification::Error {
                error: p.error,
                will_retry: p.will_retry,
            }),
            "warning" => {
                from::<WarningParams>(params).map(|p| Notification::Warning { message: p.message })
            }
            "configWarning" | "deprecationNotice" => {
                from::<SummaryParams>(params).map(|p| Notification::SetupNotice {
                    message: match p.details {
                        Some(details) if !details.is_empty() => {
                            format!("{} ({details})", p.summary)
                        }
                        _ => p.summary,
                    },
                })
            }
            "model/rerouted" => Some(Notification::Warning {
                message: format!("codex rerouted the model: {params}"),
            }),
            _ => None,
        };
        // A known method whose params do not fit is, for us, unknown.
        parsed.unwrap_or(Notification::Other(method))
    }
}

fn from<T: serde::de::DeserializeOwned>(params: Value) -> Option<T> {
    serde_json::from_value(params).ok()
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct ThreadStartedParams {
    thread: IdOnly,
}

#[derive(Deserialize)]
struct TurnParams {
    turn: TurnInfo,
}

#[derive(Deserialize)]
struct TurnInfo {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<ErrorInfo>,
}

#[derive(Deserialize)]
struct ItemParams {
    item: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaParams {
    item_id: String,
    delta: String,
}

#[derive(Deserialize)]
struct PlanParams {
    plan: Vec<PlanStep>,
}

#[derive(Deserialize)]
struct PlanStep {
    #[serde(default)]
    step: String,
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenUsageParams {
    #[serde(default)]
    turn_id: String,
    token_usage: TokenUsage,
}

#[derive(Deserialize)]
struct TokenUsage {
    #[serde(default)]
    total: TokenBreakdown,
    #[serde(default)]
    last: TokenBreakdown,
}

/// One `tokenUsage` breakdown. Numbers are read leniently: a missing field
/// (0.135 has no cache writes), a null or a negative value reads as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TokenBreakdown {
    #[serde(deserialize_with = "lenient_count")]
    pub input_tokens: u64,
    #[serde(deserialize_with = "lenient_count")]
    pub cached_input_tokens: u64,
    #[serde(deserialize_with = "lenient_count")]
    pub cache_write_input_tokens: u64,
    #[serde(deserialize_with = "lenient_count")]
    pub output_tokens: u64,
    #[serde(deserialize_with = "lenient_count")]
    pub reasoning_output_tokens: u64,
}

fn lenient_count<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(match value {
        Value::Number(number) => number
            .as_u64()
            .or_else(|| number.as_f64().filter(|f| *f > 0.0).map(|f| f as u64))
            .unwrap_or(0),
        _ => 0,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorParams {
    error: ErrorInfo,
    #[serde(default)]
    will_retry: bool,
}

/// Codex's error object: its text, and the structured kind where it has one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ErrorInfo {
    pub message: String,
    /// A bare string (`"contextWindowExceeded"`) or an object with one key
    /// (`{"httpConnectionFailed": {"httpStatusCode": 401}}`).
    pub codex_error_info: Value,
    pub additional_details: Option<String>,
}

impl ErrorInfo {
    /// The kind's name, e.g. `httpConnectionFailed`.
    pub fn kind(&self) -> Option<&str> {
        match &self.codex_error_info {
            Value::String(kind) => Some(kind),
            Value::Object(map) => map.keys().next().map(String::as_str),
            _ => None,
        }
    }

    /// The HTTP status codex saw, where the kind carries one.
    pub fn http_status(&self) -> Option<u64> {
        self.codex_error_info
            .as_object()?
            .values()
            .next()?
            .get("httpStatusCode")?
            .as_u64()
    }
}

#[derive(Deserialize)]
struct WarningParams {
    message: String,
}

#[derive(Deserialize)]
struct SummaryParams {
    summary: String,
    #[serde(default)]
    details: Option<String>,
}

/// An item of `item/started` / `item/completed`.
#[derive(Debug)]
pub enum Item {
    AgentMessage {
        id: String,
        text: String,
    },
    Reasoning {
        summary: String,
    },
    /// A command, file change, MCP call, web search, or an unknown item.
    Action(Action),
    /// The prompt echoed back: not output.
    UserMessage,
}

impl Item {
    pub fn from_value(mut item: Value) -> Item {
        let item_type = take_string(&mut item, "type");
        match item_type.as_str() {
            "agentMessage" => Item::AgentMessage {
                id: take_string(&mut item, "id"),
                text: take_string(&mut item, "text"),
            },
            "reasoning" => Item::Reasoning {
                summary: item
                    .get("summary")
                    .and_then(Value::as_array)
                    .map(|parts| {
                        parts
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("\n\n")
                    })
                    .unwrap_or_default(),
            },
            "commandExecution" => {
                Item::Action(Action::command(&mut item, "aggregatedOutput", "exitCode"))
            }
            "fileChange" => Item::Action(Action::FileChange {
                id: take_string(&mut item, "id"),
                changes: item
                    .get("changes")
                    .and_then(Value::as_array)
                    .map(|changes| changes.iter().map(change_of).collect())
                    .unwrap_or_default(),
                status: take_string(&mut item, "status"),
            }),
            "mcpToolCall" => Item::Action(Action::mcp(&mut item)),
            "webSearch" => Item::Action(Action::web_search(&mut item)),
            "userMessage" => Item::UserMessage,
            _ => Item::Action(Action::unknown(item, item_type)),
        }
    }
}

/// A file change as `(path, kind)`; app-server's kind is `{type}`.
fn change_of(change: &Value) -> (String, String) {
    let path = change.get("path").and_then(Value::as_str);
    let kind = change
        .pointer("/kind/type")
        .or_else(|| change.get("kind"))
        .and_then(Value::as_str);
    (
        path.unwrap_or_default().to_string(),
        kind.unwrap_or_default().to_string(),
    )
}

/// The `thread.id` of a `thread/start` or `thread/resume` result.
pub fn thread_id_of(result: &Value) -> Option<&str> {
    result.pointer("/thread/id").and_then(Value::as_str)
}

/// The `turn.id` of a `turn/start` result.
pub fn turn_id_of(result: &Value) -> Option<&str> {
    result.pointer("/turn/id").and_then(Value::as_str)
}

/// Why codex refused to open the thread (`thread/resume`, `thread/start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadRefusal {
    /// No rollout for that id (sessions removed, CODEX_HOME changed) or an
    /// id codex cannot read: the stale-thread rule applies.
    UnknownThread,
    /// Another process is writing the thread.
    ActiveWriter,
    /// Codex before 0.169: `excludeTurns requires experimentalApi capability`.
    NeedsExperimentalApi,
    Other,
}

impl ThreadRefusal {
    pub fn of(error: &RpcError) -> ThreadRefusal {
        let message = error.message.to_lowercase();
        if message.contains("no rollout found") || message.contains("invalid session id") {
            ThreadRefusal::UnknownThread
        } else if message.contains("active writer") {
            ThreadRefusal::ActiveWriter
        } else if message.contains("excludeturns") {
            ThreadRefusal::NeedsExperimentalApi
        } else {
            ThreadRefusal::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_kinds_of_message() {
        let response = Message::parse(br#"{"id":2,"result":{"thread":{"id":"t1"}}}"#).unwrap();
        assert!(
            matches!(response, Message::Response { id: 2, outcome: Ok(ref r) } if thread_id_of(r) == Some("t1"))
        );
        let error = Message::parse(
            br#"{"error":{"code":-32600,"message":"no rollout found for thread id x"},"id":2}"#,
        )
        .unwrap();
        let Message::Response {
            outcome: Err(error),
            ..
        } = error
        else {
            panic!("not an error response")
        };
        assert_eq!(ThreadRefusal::of(&error), ThreadRefusal::UnknownThread);
        let request =
            Message::parse(br#"{"method":"item/fileChange/requestApproval","id":0,"params":{}}"#)
                .unwrap();
        assert!(
            matches!(request, Message::Request { ref method, .. } if method == "item/fileChange/requestApproval")
        );
        let other = Message::parse(br#"{"method":"thread/status/changed","params":{}}"#).unwrap();
        assert!(
            matches!(other, Message::Notification(Notification::Other(ref m)) if m == "thread/status/changed")
        );
        assert!(Message::parse(br#"{"params":{}}"#).is_err());
    }

    #[test]
    fn usage_without_cache_writes_and_with_odd_numbers_reads_leniently() {
        let line = br#"{"method":"thread/tokenUsage/updated","params":{"turnId":"u","tokenUsage":{"total":{"inputTokens":5,"outputTokens":-3,"cachedInputTokens":null},"last":{"inputTokens":2.0}}}}"#;
        let Message::Notification(Notification::TokenUsage { total, last, .. }) =
            Message::parse(line).unwrap()
        else {
            panic!("not usage")
        };
        assert_eq!(total.input_tokens, 5);
        assert_eq!(total.output_tokens, 0);
        assert_eq!(total.cache_write_input_tokens, 0);
        assert_eq!(last.input_tokens, 2);
    }

    #[test]
    fn error_kinds_as_string_or_object() {
        let info: ErrorInfo = serde_json::from_str(
            r#"{"message":"m","codexErrorInfo":{"httpConnectionFailed":{"httpStatusCode":401}}}"#,
        )
        .unwrap();
        assert_eq!(info.kind(), Some("httpConnectionFailed"));
        assert_eq!(info.http_status(), Some(401));
        let info: ErrorInfo =
            serde_json::from_str(r#"{"message":"m","codexErrorInfo":"contextWindowExceeded"}"#)
                .unwrap();
        assert_eq!(info.kind(), Some("contextWindowExceeded"));
        assert_eq!(info.http_status(), None);
    }
}
