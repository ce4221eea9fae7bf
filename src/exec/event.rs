//! Serde types for the JSONL stream of `codex exec --json`, tolerant of what
//! newer versions add: unknown event and item types, missing fields.
//!
//! Items stay a `serde_json::Value` until [`Item::from_value`]: codex prints
//! the key `id` twice in `web_search` items, which a derived struct rejects
//! as a duplicate field while a `Value` keeps the last one.

use serde::Deserialize;
use serde_json::Value;

use crate::translate::{take_string, Action};

/// One line of codex's stdout, as codex wrote it.
///
/// A flat struct rather than an internally tagged enum: serde deserializes
/// it in one pass without buffering the line (multi-MB command outputs).
/// Only `type` must be well-formed: every other field is a `Value` read
/// leniently, so an odd payload (a negative token count, a null message)
/// never decides whether `turn.completed` or `turn.failed` is recognised.
#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    thread_id: Value,
    item: Option<Value>,
    #[serde(default)]
    usage: Value,
    #[serde(default)]
    error: Value,
    #[serde(default)]
    message: Value,
}

/// serde_json refuses values nested deeper than this (its recursion limit
/// is 128); deeper parts of a line are replaced before it is parsed again.
const MAX_DEPTH: usize = 100;

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
        let raw: RawEvent = match serde_json::from_slice(line) {
            Ok(raw) => raw,
            // E.g. an MCP tool's result nested 200 deep: the event is still
            // the event, with the too-deep part replaced by a marker.
            Err(error) if error.to_string().starts_with("recursion limit exceeded") => {
                serde_json::from_slice(&shallow(line, MAX_DEPTH))?
            }
            Err(error) => return Err(error),
        };
        let event = match raw.kind.as_str() {
            "thread.started" => match raw.thread_id {
                Value::String(thread_id) => CodexEvent::ThreadStarted { thread_id },
                _ => CodexEvent::Unknown(raw.kind),
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
                usage: CodexUsage::from_value(&raw.usage),
            },
            "turn.failed" => CodexEvent::TurnFailed {
                message: match raw.error.get("message") {
                    Some(Value::String(message)) => message.clone(),
                    _ => String::new(),
                },
            },
            "error" => CodexEvent::Error {
                message: match raw.message {
                    Value::String(message) => message,
                    _ => String::new(),
                },
            },
            _ => CodexEvent::Unknown(raw.kind),
        };
        Ok(event)
    }
}

/// `turn.completed.usage`: running totals of the whole thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodexUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    /// Only printed from 0.145 on.
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_output_tokens: u64,
}

impl CodexUsage {
    /// Read leniently: a field that is not a non-negative integer (codex's
    /// own type is signed; a float, null, a string, beyond u64) counts as 0,
    /// with a debug log, and the turn still completes.
    pub fn from_value(usage: &Value) -> CodexUsage {
        let field = |name: &str| {
            match usage.get(name) {
            // Older versions lack some fields (cache writes before 0.145).
            None => 0,
            Some(value) => value.as_u64().unwrap_or_else(|| {
                crate::log::debug!(
                    "codex's usage field {name} is {value}, not a non-negative integer; counted as 0"
                );
                0
            }),
        }
        };
        if !usage.is_object() && !usage.is_null() {
            crate::log::debug!("codex's usage is {usage}, not an object; counted as 0");
        }
        CodexUsage {
            input_tokens: field("input_tokens"),
            cached_input_tokens: field("cached_input_tokens"),
            cache_write_input_tokens: field("cache_write_input_tokens"),
            output_tokens: field("output_tokens"),
            reasoning_output_tokens: field("reasoning_output_tokens"),
        }
    }
}

/// `line` with every array or object nested deeper than `max` replaced by
/// the string "[nested too deep]"; bytes inside strings are left alone.
fn shallow(line: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // The depth at which a too-deep value began; its bytes are dropped.
    let mut skipping: Option<usize> = None;
    for &byte in line {
        let keep = skipping.is_none();
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            if keep {
                out.push(byte);
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                if keep {
                    out.push(byte);
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if keep && depth > max {
                    skipping = Some(depth);
                    out.extend_from_slice(b"\"[nested too deep]\"");
                } else if keep {
                    out.push(byte);
                }
            }
            b']' | b'}' => {
                if skipping == Some(depth) {
                    skipping = None;
                } else if keep {
                    out.push(byte);
                }
                depth = depth.saturating_sub(1);
            }
            _ if keep => out.push(byte),
            _ => {}
        }
    }
    out
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
    /// A command, file change, MCP call, web search, or an unknown item.
    Action(Action),
    TodoList {
        items: Vec<(String, bool)>,
    },
    /// A non-fatal warning codex shows as an item.
    Warning {
        message: String,
    },
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
            "command_execution" => {
                Item::Action(Action::command(&mut item, "aggregated_output", "exit_code"))
            }
            "file_change" => Item::Action(Action::FileChange {
                id: take_string(&mut item, "id"),
                changes: item
                    .get("changes")
                    .and_then(Value::as_array)
                    .map(|changes| {
                        changes
                            .iter()
                            .map(|change| (str_field(change, "path"), str_field(change, "kind")))
                            .collect()
                    })
                    .unwrap_or_default(),
                status: take_string(&mut item, "status"),
            }),
            "mcp_tool_call" => Item::Action(Action::mcp(&mut item)),
            "web_search" => Item::Action(Action::web_search(&mut item)),
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
            _ => Item::Action(Action::unknown(item, item_type)),
        }
    }
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
            Item::Action(Action::WebSearch { id, query, .. }) => {
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
