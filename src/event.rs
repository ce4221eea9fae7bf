//! The canonical events the host reads (PROTOCOL.md sections 4 and 5) and
//! the stable error codes. Knows nothing about codex.

use serde::Serialize;

/// One line of our stdout.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    MessageStart {
        session_id: String,
        resumed: bool,
        model: String,
    },
    TextDelta {
        text: String,
    },
    /// The turn's text so far replaces what was shown (codex restarted a
    /// message after a transient error; app-server only).
    TextReset {
        text: String,
    },
    Reasoning {
        text: String,
    },
    ToolCall {
        id: String,
        kind: ToolKind,
        name: String,
        input: serde_json::Value,
    },
    ToolResult {
        id: String,
        kind: ToolKind,
        status: ToolStatus,
        output: String,
        /// Present (possibly null) for commands only.
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<Option<i64>>,
    },
    Todo {
        items: Vec<TodoItem>,
    },
    Notice {
        level: NoticeLevel,
        message: String,
    },
    MessageEnd {
        stop_reason: &'static str,
        usage: Usage,
        thread_usage: Usage,
        session_id: String,
    },
    Error(TurnError),
}

impl Event {
    pub fn notice(level: NoticeLevel, message: impl Into<String>) -> Event {
        Event::Notice {
            level,
            message: message.into(),
        }
    }

    /// `message_end` and `error` end a run; nothing may follow them.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Event::MessageEnd { .. } | Event::Error(_))
    }

    /// The events `--events core` keeps.
    pub fn is_core(&self) -> bool {
        matches!(
            self,
            Event::TextDelta { .. } | Event::MessageEnd { .. } | Event::Error(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Command,
    FileChange,
    Mcp,
    WebSearch,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    Completed,
    Failed,
    Declined,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TodoItem {
    pub text: String,
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeLevel {
    Info,
    Warning,
}

/// Token counts, either of one turn or the running totals of a thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    /// This turn's usage: `self` (the new running total) minus the previous
    /// total, field by field. A field that went backwards (codex downgraded
    /// on the thread: 0.135 reports no cache writes; two writers on 0.135)
    /// counts as 0 and is named in the second value; the other fields are
    /// still this turn's own.
    pub fn since(&self, previous: &Usage) -> (Usage, Vec<&'static str>) {
        let mut backwards = Vec::new();
        let mut field = |name, now: u64, before: u64| {
            now.checked_sub(before).unwrap_or_else(|| {
                backwards.push(name);
                0
            })
        };
        let usage = Usage {
            input_tokens: field("input_tokens", self.input_tokens, previous.input_tokens),
            cached_input_tokens: field(
                "cached_input_tokens",
                self.cached_input_tokens,
                previous.cached_input_tokens,
            ),
            cache_write_tokens: field(
                "cache_write_tokens",
                self.cache_write_tokens,
                previous.cache_write_tokens,
            ),
            output_tokens: field("output_tokens", self.output_tokens, previous.output_tokens),
            reasoning_tokens: field(
                "reasoning_tokens",
                self.reasoning_tokens,
                previous.reasoning_tokens,
            ),
        };
        (usage, backwards)
    }
}

/// The terminal `error` event, and the error value every fallible step of a
/// run returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnError {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl TurnError {
    /// An error with the retryable flag the code implies.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> TurnError {
        TurnError {
            code,
            message: message.into(),
            retryable: code.retryable(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> TurnError {
        let detail = detail.into();
        self.detail = (!detail.is_empty()).then_some(detail);
        self
    }
}

impl std::fmt::Display for TurnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// PROTOCOL.md section 5. Add codes, never rename them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Usage,
    MessageTooLarge,
    Config,
    Workspace,
    UnknownModel,
    CodexNotFound,
    SessionBusy,
    Auth,
    RateLimited,
    ContextWindow,
    TurnFailed,
    CodexCrashed,
    Protocol,
    Timeout,
    Cancelled,
    Internal,
}

impl ErrorCode {
    /// The default retryable flag; `turn_failed` decides per message.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::SessionBusy
                | ErrorCode::RateLimited
                | ErrorCode::CodexCrashed
                | ErrorCode::Protocol
                | ErrorCode::Timeout
                | ErrorCode::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Usage => "usage",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::Config => "config",
            ErrorCode::Workspace => "workspace",
            ErrorCode::UnknownModel => "unknown_model",
            ErrorCode::CodexNotFound => "codex_not_found",
            ErrorCode::SessionBusy => "session_busy",
            ErrorCode::Auth => "auth",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ContextWindow => "context_window",
            ErrorCode::TurnFailed => "turn_failed",
            ErrorCode::CodexCrashed => "codex_crashed",
            ErrorCode::Protocol => "protocol",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_since_subtracts_and_clamps_each_field_that_went_backwards() {
        let previous = Usage {
            input_tokens: 2031,
            cache_write_tokens: 7,
            output_tokens: 10,
            ..Usage::default()
        };
        let total = Usage {
            input_tokens: 5154,
            output_tokens: 25,
            ..Usage::default()
        };
        let (turn, backwards) = total.since(&previous);
        assert_eq!(turn.input_tokens, 3123);
        assert_eq!(turn.output_tokens, 15);
        assert_eq!(turn.cache_write_tokens, 0);
        assert_eq!(backwards, ["cache_write_tokens"]);
        let (_, backwards) = previous.since(&total);
        assert_eq!(backwards, ["input_tokens", "output_tokens"]);
        assert_eq!(total.since(&total), (Usage::default(), Vec::new()));
    }

    #[test]
    fn error_code_names_match_serde() {
        for code in [
            ErrorCode::Usage,
            ErrorCode::MessageTooLarge,
            ErrorCode::CodexNotFound,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
