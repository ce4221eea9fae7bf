//! Serde types for the JSONL stream of `codex exec --json`, tolerant of what
//! newer versions add: unknown event and item types, missing fields.
//!
//! Items stay a `serde_json::Value` until [`Item::from_value`]: codex prints
//! the key `id` twice in `web_search` items, which a derived struct rejects
//! as a duplicate field while a `Value` keeps the last one.

use serde::Deserialize;
use serde_json::Value;

/// One line of codex's stdout, as codex wrote it.
///
/// A flat struct rather than an internally tagged enum: serde deserializes
/// it in one pass without buffering the line (multi-MB command outputs).
#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    thread_id: Option<String>,
    item: Option<Value>,
    usage: Option<CodexUsage>,
    error: Option<FailurePayload>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FailurePayload {
    #[serde(default)]
    message: String,
}

/// A codex event, by type.
#[derive(Debug)]
pub enum CodexEvent {
    ThreadStarted {
        thread_id: String,
    },
    TurnStarted,
    ItemStarted(Value),
    ItemUpdated(Value),
    ItemCompleted(Value),
    TurnCompleted {
        usage: CodexUsage,
    },
    TurnFailed {
        message: String,
    },
    /// A top-level `error`: a retry notice or the echo of a fatal message.
    Error {
        message: String,
    },
    /// A type this adapter does not know (newer codex); carries the type.
    Unknown(String),
}

impl CodexEvent {
    pub fn parse(line: &[u8]) -> Result<CodexEvent, serde_json::Error> {
        let raw: RawEvent = serde_json::from_slice(line)?;
        let event = match raw.kind.as_str() {
            "thread.started" => match raw.thread_id {
                Some(thread_id) => CodexEvent::ThreadStarted { thread_id },
                None => CodexEvent::Unknown(raw.kind),
            },
            "turn.started" => CodexEvent::TurnStarted,
            "item.started" | "item.updated" | "item.completed" => {
                let Some(item) = raw.item else {
                    return Ok(CodexEvent::Unknown(raw.kind));
                };
                match raw.kind.as_str() {
                    "item.started" => CodexEvent::ItemStarted(item),
                    "item.updated" => CodexEvent::ItemUpdated(item),
                    _ => CodexEvent::ItemCompleted(item),
                }
            }
            "turn.completed" => CodexEvent::TurnCompleted {
                usage: raw.usage.unwrap_or_default(),
            },
            "turn.failed" => CodexEvent::TurnFailed {
                message: raw.error.map(|e| e.message).unwrap_or_default(),
            },
            "error" => CodexEvent::Error {
                message: raw.message.unwrap_or_default(),
            },
            _ => CodexEvent::Unknown(raw.kind),
        };
        Ok(event)
    }
}

/// `turn.completed.usage`: running totals of the whole thread.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct CodexUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    /// Only printed from 0.145 on.
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_output_tokens: u64,
}

/// An item of `item.started` / `item.updated` / `item.completed`.
#[derive(Debug)]
pub enum Item {
    AgentMessage {
        text: String,
    },
    Reasoning {
        text: String,
    },
    Command {
        id: String,
        command: String,
        output: String,
        exit_code: Option<i64>,
        status: String,
    },
    FileChange {
        id: String,
        changes: Vec<FileChangeEntry>,
        status: String,
    },
    Mcp {
        id: String,
        server: String,
        tool: String,
        arguments: Value,
        result: Value,
        error: Value,
        status: String,
    },
    WebSearch {
        id: String,
        query: String,
        action: Value,
    },
    TodoList {
        items: Vec<(String, bool)>,
    },
    /// A non-fatal warning codex shows as an item.
    Warning {
        message: String,
    },
    /// An item type this adapter does not know. Those with a `status` are
    /// actions (e.g. `collab_tool_call`) and are shown as tools of kind
    /// `other`; the rest are ignored.
    Other {
        id: String,
        item_type: String,
        status: Option<String>,
        fields: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChangeEntry {
    pub path: String,
    pub kind: String,
}

impl Item {
    pub fn from_value(mut item: Value) -> Item {
        let item_type = take_string(&mut item, "type");
        match item_type.as_str() {
            "agent_message" => Item::AgentMessage {
                text: take_string(&mut item, "text"),
            },
            "reasoning" => Item::Reasoning {
                text: take_string(&mut item, "text"),
            },
            "command_execution" => Item::Command {
                id: take_string(&mut item, "id"),
                command: take_string(&mut item, "command"),
                output: take_string(&mut item, "aggregated_output"),
                exit_code: item.get("exit_code").and_then(Value::as_i64),
                status: take_string(&mut item, "status"),
            },
            "file_change" => Item::FileChange {
                id: take_string(&mut item, "id"),
                changes: item
                    .get("changes")
                    .and_then(Value::as_array)
                    .map(|changes| {
                        changes
                            .iter()
                            .map(|change| FileChangeEntry {
                                path: str_field(change, "path"),
                                kind: str_field(change, "kind"),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                status: take_string(&mut item, "status"),
            },
            "mcp_tool_call" => Item::Mcp {
                id: take_string(&mut item, "id"),
                server: take_string(&mut item, "server"),
                tool: take_string(&mut item, "tool"),
                arguments: take(&mut item, "arguments"),
                result: take(&mut item, "result"),
                error: take(&mut item, "error"),
                status: take_string(&mut item, "status"),
            },
            "web_search" => Item::WebSearch {
                id: take_string(&mut item, "id"),
                query: take_string(&mut item, "query"),
                action: take(&mut item, "action"),
            },
            "todo_list" => Item::TodoList {
                items: item
                    .get("items")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .map(|todo| {
                                let done = todo.get("completed").and_then(Value::as_bool);
                                (str_field(todo, "text"), done.unwrap_or(false))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            "error" => Item::Warning {
                message: take_string(&mut item, "message"),
            },
            _ => {
                let id = take_string(&mut item, "id");
                let status = item.get("status").and_then(Value::as_str).map(String::from);
                if let Some(fields) = item.as_object_mut() {
                    fields.remove("status");
                }
                Item::Other {
                    id,
                    item_type,
                    status,
                    fields: item,
                }
            }
        }
    }
}

/// Moves a string field out of an object (no copy of large outputs).
fn take_string(item: &mut Value, key: &str) -> String {
    match take(item, key) {
        Value::String(text) => text,
        _ => String::new(),
    }
}

fn take(item: &mut Value, key: &str) -> Value {
    item.get_mut(key).map(Value::take).unwrap_or(Value::Null)
}

fn str_field(object: &Value, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_search_with_duplicate_id_key_parses() {
        let line = br#"{"type":"item.completed","item":{"id":"item_3","type":"web_search","id":"ws_1","query":"rust","action":{"type":"search"}}}"#;
        let CodexEvent::ItemCompleted(item) = CodexEvent::parse(line).unwrap() else {
            panic!("not an item event");
        };
        match Item::from_value(item) {
            Item::WebSearch { id, query, .. } => {
                assert_eq!(id, "ws_1");
                assert_eq!(query, "rust");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn usage_without_cache_write_field_defaults_to_zero() {
        let line = br#"{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":1,"output_tokens":2,"reasoning_output_tokens":0}}"#;
        let CodexEvent::TurnCompleted { usage } = CodexEvent::parse(line).unwrap() else {
            panic!("not turn.completed");
        };
        assert_eq!(usage.input_tokens, 5);
        assert_eq!(usage.cache_write_input_tokens, 0);
    }

    #[test]
    fn unknown_types_are_kept_by_name() {
        let event = CodexEvent::parse(br#"{"type":"turn.paused","x":1}"#).unwrap();
        assert!(matches!(event, CodexEvent::Unknown(kind) if kind == "turn.paused"));
    }
}
