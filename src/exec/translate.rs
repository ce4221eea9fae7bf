//! The translation from codex's JSONL stream to canonical events: a pure
//! state machine (bytes in, events out; no I/O, no clocks), shared by `turn`
//! and `replay`.
//!
//! [`Translator::line`] takes one line of codex's stdout and appends the
//! events it causes; [`Translator::finish`] ends the run and appends exactly
//! one terminal event unless a line already did. Nothing is appended after a
//! terminal event.

use serde_json::{json, Value};

use crate::event::{
    ErrorCode, Event, NoticeLevel, TodoItem, ToolKind, ToolStatus, TurnError, Usage,
};
use crate::exec::event::{CodexEvent, CodexUsage, Item};

/// `tool_result.output` beyond this many bytes keeps its head and tail.
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;

/// Lines that are not codex events become notices, up to this many a turn,
/// so a stream of garbage cannot flood the host.
const MAX_GARBAGE_NOTICES: usize = 3;

/// What the translator knows before the first line.
#[derive(Debug, Clone)]
pub struct TurnContext {
    /// The Plexum model id, echoed in `message_start`.
    pub model: String,
    /// The thread this run asked codex to resume, if any.
    pub resumed_thread: Option<String>,
    /// The thread's running totals before this turn; `None` when unknown
    /// (a v0.1 session file, a replay).
    pub previous_totals: Option<Usage>,
    /// Notices the adapter already holds (stale or corrupt session), shown
    /// right after `message_start`.
    pub notices: Vec<Event>,
    pub output_limit: usize,
}

/// How codex's stream ended when no terminal codex event came.
#[derive(Debug, Clone)]
pub enum StreamEnd {
    /// The stream just ended: a replay, or codex exited 0 without finishing.
    Closed,
    /// Codex exited with a failure code or a signal; `how` says which.
    Crashed { how: String, stderr_tail: String },
    /// The adapter ended the turn itself (timeout, signal, a known stderr
    /// cause); this is the terminal error.
    Stopped(TurnError),
}

/// What [`Translator::line`] made of a line, for debug logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// The line produced events, or changed state.
    Handled,
    /// A known or unknown codex event that produces no output.
    Ignored(String),
    /// Not a codex event (not JSON, or not an object with a `type`).
    NotAnEvent,
    /// The turn had already ended.
    AfterEnd,
}

pub struct Translator {
    state: State,
    context: TurnContext,
    /// Events that came before codex named the thread; they follow
    /// `message_start` (or the terminal error if no thread is ever named).
    early: Vec<Event>,
    session_id: Option<String>,
    resumed: bool,
    previous_totals: Option<Usage>,
    /// A top-level non-retry `error`: the echo of a fatal message if the next
    /// line is `turn.failed`, otherwise a notice.
    held_error: Option<String>,
    /// Tools started and not yet finished, in start order.
    open_tools: Vec<OpenTool>,
    agent_messages: usize,
    last_todo: Option<Vec<TodoItem>>,
    garbage_lines: usize,
    succeeded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before `thread.started`: no `message_start` yet.
    AwaitingThread,
    /// `message_start` is out; items flow.
    Running,
    /// The terminal event is out; every further line is ignored.
    Ended,
}

struct OpenTool {
    id: String,
    kind: ToolKind,
    /// A `tool_call` not shown yet: a web search codex names only when it
    /// completes (`item.started` has `query: ""`, action `other`).
    unshown_call: Option<Event>,
}

impl Translator {
    pub fn new(mut context: TurnContext) -> Translator {
        let notices = std::mem::take(&mut context.notices);
        Translator {
            state: State::AwaitingThread,
            previous_totals: context.previous_totals,
            early: notices,
            session_id: None,
            resumed: false,
            held_error: None,
            open_tools: Vec::new(),
            agent_messages: 0,
            last_todo: None,
            garbage_lines: 0,
            succeeded: false,
            context,
        }
    }

    /// The thread codex named, once it has.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// Whether codex resumed the thread it was asked to resume.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Whether the turn ended with `message_end`.
    pub fn succeeded(&self) -> bool {
        self.succeeded
    }

    /// The running totals this turn's usage is counted from: what the session
    /// file should hold until the turn completes. `None` when unknown.
    pub fn baseline(&self) -> Option<Usage> {
        self.previous_totals
    }

    /// After the terminal event: whether `line` begins another turn of the
    /// same recording (`--record` appends every turn to one file). If so
    /// the translator goes on with that turn as part of the same run, and
    /// the caller drops the terminal event it held back.
    pub fn begins_next_turn(&mut self, line: &[u8]) -> bool {
        if self.state != State::Ended {
            return false;
        }
        let next = matches!(
            CodexEvent::parse(trim_ascii_whitespace(line)),
            Ok(CodexEvent::ThreadStarted { .. } | CodexEvent::TurnStarted)
        );
        if next {
            self.state = match self.session_id {
                Some(_) => State::Running,
                None => State::AwaitingThread,
            };
            self.succeeded = false;
            self.held_error = None;
        }
        next
    }

    /// A line over the reader's cap was skipped; the host hears of it.
    pub fn oversized_line(&mut self, length: usize, out: &mut Vec<Event>) {
        if self.state == State::Ended {
            return;
        }
        let message = format!(
            "codex printed a line of {length} bytes, over the adapter's limit; it was skipped"
        );
        self.emit(Event::notice(NoticeLevel::Warning, message), out);
    }

    /// Translates one line of codex's stdout (without or with its `\n`).
    pub fn line(&mut self, line: &[u8], out: &mut Vec<Event>) -> LineOutcome {
        if self.state == State::Ended {
            return LineOutcome::AfterEnd;
        }
        let line = trim_ascii_whitespace(line);
        if line.is_empty() {
            return LineOutcome::Ignored(String::from("(empty line)"));
        }
        let event = match CodexEvent::parse(line) {
            Ok(event) => event,
            Err(error) => {
                self.release_held_error(out);
                self.garbage(line, &error, out);
                return LineOutcome::NotAnEvent;
            }
        };
        match event {
            CodexEvent::TurnFailed { message } => {
                let held = self.held_error.take();
                let message = match held {
                    // The echo of the failure: folded into it.
                    Some(held) if message.is_empty() || held.trim() == message.trim() => held,
                    // Another error came first: the host sees it too.
                    Some(held) => {
                        self.emit(Event::notice(NoticeLevel::Warning, held), out);
                        message
                    }
                    None => message,
                };
                self.end_with(classify_failure(&message), out);
                LineOutcome::Handled
            }
            CodexEvent::Error { message } if is_retry_notice(&message) => {
                self.release_held_error(out);
                self.emit(Event::notice(NoticeLevel::Info, message), out);
                LineOutcome::Handled
            }
            CodexEvent::Error { message } => {
                self.release_held_error(out);
                self.held_error = Some(message);
                LineOutcome::Handled
            }
            other => {
                self.release_held_error(out);
                self.event(other, out)
            }
        }
    }

    /// Ends the run: closes what is open and appends the terminal event,
    /// unless a line already ended the turn.
    pub fn finish(&mut self, end: StreamEnd, out: &mut Vec<Event>) {
        if self.state == State::Ended {
            return;
        }
        let held = self.held_error.take();
        let error = match end {
            // The adapter's own reason ends the turn; codex's last error
            // (perhaps the real cause, e.g. a 401) is not lost.
            StreamEnd::Stopped(error) => {
                if let Some(held) = held {
                    self.emit(Event::notice(NoticeLevel::Warning, held), out);
                }
                error
            }
            StreamEnd::Crashed { how, stderr_tail } => {
                let mut message = format!("codex {how} before finishing the turn");
                if let Some(held) = held {
                    message = format!("{message}: {held}");
                }
                TurnError::new(ErrorCode::CodexCrashed, message).with_detail(stderr_tail)
            }
            StreamEnd::Closed => {
                let mut message =
                    String::from("codex's output ended without turn.completed or turn.failed");
                if let Some(held) = held {
                    message = format!("{message}; its last error: {held}");
                }
                TurnError::new(ErrorCode::Protocol, message)
            }
        };
        self.end_with(error, out);
    }

    fn event(&mut self, event: CodexEvent, out: &mut Vec<Event>) -> LineOutcome {
        match event {
            CodexEvent::ThreadStarted { thread_id } => {
                if self.state != State::AwaitingThread {
                    return LineOutcome::Ignored(String::from("thread.started (again)"));
                }
                self.start(thread_id, out);
            }
            CodexEvent::TurnStarted => return LineOutcome::Ignored(String::from("turn.started")),
            CodexEvent::ItemStarted(item) => self.item_started(Item::from_value(item), out),
            CodexEvent::ItemUpdated(item) => match Item::from_value(item) {
                Item::TodoList { items } => self.todo(items, out),
                _ => return LineOutcome::Ignored(String::from("item.updated")),
            },
            CodexEvent::ItemCompleted(item) => self.item_completed(Item::from_value(item), out),
            CodexEvent::TurnCompleted { usage } => self.completed(usage, out),
            CodexEvent::Unknown(kind) => return LineOutcome::Ignored(kind),
            CodexEvent::TurnFailed { .. } | CodexEvent::Error { .. } => {
                unreachable!("handled in line()")
            }
        }
        LineOutcome::Handled
    }

    fn start(&mut self, thread_id: String, out: &mut Vec<Event>) {
        let mut notices = Vec::new();
        match &self.context.resumed_thread {
            Some(asked) if *asked == thread_id => self.resumed = true,
            Some(asked) => {
                // Codex silently starts a new thread for ids it cannot resolve.
                notices.push(Event::notice(
                    NoticeLevel::Warning,
                    format!(
                        "codex started a new thread {thread_id} instead of resuming {asked}; \
                         the earlier conversation is not in its context"
                    ),
                ));
                self.previous_totals = Some(Usage::default());
            }
            None => {}
        }
        if self.resumed && self.previous_totals.is_none() {
            notices.push(Event::notice(
                NoticeLevel::Info,
                "the thread's earlier usage totals are unknown (session file from v0.1); \
                 this turn's usage is the thread's running total",
            ));
        }
        out.push(Event::MessageStart {
            session_id: thread_id.clone(),
            resumed: self.resumed,
            model: self.context.model.clone(),
        });
        self.session_id = Some(thread_id);
        self.state = State::Running;
        let early = std::mem::take(&mut self.early);
        out.extend(early);
        out.extend(notices);
    }

    /// Emits now, or holds until `message_start` when the thread is unnamed.
    fn emit(&mut self, event: Event, out: &mut Vec<Event>) {
        match self.state {
            State::AwaitingThread => self.early.push(event),
            State::Running => out.push(event),
            State::Ended => {}
        }
    }

    fn end_with(&mut self, error: TurnError, out: &mut Vec<Event>) {
        self.close_open_tools(out);
        out.append(&mut self.early);
        out.push(Event::Error(error));
        self.state = State::Ended;
    }

    fn completed(&mut self, usage: CodexUsage, out: &mut Vec<Event>) {
        let thread_usage = Usage {
            input_tokens: usage.input_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            cache_write_tokens: usage.cache_write_input_tokens,
            output_tokens: usage.output_tokens,
            reasoning_tokens: usage.reasoning_output_tokens,
        };
        let turn_usage = match &self.previous_totals {
            Some(previous) => {
                let (usage, backwards) = thread_usage.since(previous);
                if !backwards.is_empty() {
                    // The new total is kept as the baseline all the same.
                    let message = format!(
                        "codex's running usage total went backwards for {} (codex downgraded, or another process wrote the thread); counted as 0 for this turn",
                        backwards.join(", ")
                    );
                    self.emit(Event::notice(NoticeLevel::Warning, message), out);
                }
                usage
            }
            None => thread_usage,
        };
        self.close_open_tools(out);
        let Some(session_id) = self.session_id.clone() else {
            let error = TurnError::new(
                ErrorCode::Protocol,
                "codex reported turn.completed without naming its thread first",
            );
            self.end_with(error, out);
            return;
        };
        out.push(Event::MessageEnd {
            stop_reason: "end_turn",
            usage: turn_usage,
            thread_usage,
            session_id,
        });
        self.state = State::Ended;
        self.succeeded = true;
    }

    fn item_started(&mut self, item: Item, out: &mut Vec<Event>) {
        match item {
            Item::TodoList { items } => self.todo(items, out),
            item => {
                let Some(tool) = Tool::from_item(item) else {
                    return;
                };
                if self.open_tools.iter().any(|open| open.id == tool.id) {
                    return;
                }
                let unnamed_search =
                    tool.kind == ToolKind::WebSearch && tool.input["query"].as_str() == Some("");
                let (id, kind) = (tool.id.clone(), tool.kind);
                let (call, _) = tool.into_events(self.context.output_limit);
                let unshown_call = if unnamed_search {
                    Some(call)
                } else {
                    self.emit(call, out);
                    None
                };
                self.open_tools.push(OpenTool {
                    id,
                    kind,
                    unshown_call,
                });
            }
        }
    }

    fn item_completed(&mut self, item: Item, out: &mut Vec<Event>) {
        match item {
            Item::AgentMessage { text } => {
                let text = if self.agent_messages == 0 {
                    text
                } else {
                    format!("\n\n{text}")
                };
                self.agent_messages += 1;
                self.emit(Event::TextDelta { text }, out);
            }
            Item::Reasoning { text } => {
                if !text.trim().is_empty() {
                    self.emit(Event::Reasoning { text }, out);
                }
            }
            Item::TodoList { items } => self.todo(items, out),
            Item::Warning { message } => {
                self.emit(Event::notice(NoticeLevel::Warning, message), out)
            }
            item => {
                let Some(tool) = Tool::from_item(item) else {
                    return;
                };
                let open = self.open_tools.iter().position(|open| open.id == tool.id);
                let (call, result) = tool.into_events(self.context.output_limit);
                let shown = match open {
                    Some(index) => self.open_tools.remove(index).unshown_call.is_none(),
                    // Completed without a start (some item types, some versions).
                    None => false,
                };
                // Shown now, with what the completed item says.
                if !shown {
                    self.emit(call, out);
                }
                self.emit(result, out);
            }
        }
    }

    fn close_open_tools(&mut self, out: &mut Vec<Event>) {
        for tool in std::mem::take(&mut self.open_tools) {
            if let Some(call) = tool.unshown_call {
                self.emit(call, out);
            }
            let result = Event::ToolResult {
                id: tool.id,
                kind: tool.kind,
                status: ToolStatus::Failed,
                output: String::from("codex reported no result for this tool call"),
                exit_code: (tool.kind == ToolKind::Command).then_some(None),
            };
            self.emit(result, out);
        }
    }

    fn todo(&mut self, items: Vec<(String, bool)>, out: &mut Vec<Event>) {
        let items: Vec<TodoItem> = items
            .into_iter()
            .map(|(text, done)| TodoItem { text, done })
            .collect();
        // Codex repeats the same snapshot at turn end; only changes are news.
        if self.last_todo.as_ref() == Some(&items) {
            return;
        }
        self.last_todo = Some(items.clone());
        self.emit(Event::Todo { items }, out);
    }

    fn release_held_error(&mut self, out: &mut Vec<Event>) {
        if let Some(message) = self.held_error.take() {
            self.emit(Event::notice(NoticeLevel::Warning, message), out);
        }
    }

    fn garbage(&mut self, line: &[u8], error: &serde_json::Error, out: &mut Vec<Event>) {
        self.garbage_lines += 1;
        if self.garbage_lines > MAX_GARBAGE_NOTICES {
            return;
        }
        let shown = String::from_utf8_lossy(&line[..line.len().min(200)]);
        let mut message = format!("codex printed a line that is not an event ({error}): {shown}");
        if self.garbage_lines == MAX_GARBAGE_NOTICES {
            message.push_str(" (further such lines are not shown)");
        }
        self.emit(Event::notice(NoticeLevel::Warning, message), out);
    }
}

/// A tool item, in canonical terms: what `tool_call` and `tool_result` say.
struct Tool {
    id: String,
    kind: ToolKind,
    name: String,
    input: Value,
    status: ToolStatus,
    output: String,
    /// Commands only: their exit code, null while unknown.
    exit_code: Option<Option<i64>>,
}

impl Tool {
    /// The tool an item describes; `None` for items that are not actions.
    fn from_item(item: Item) -> Option<Tool> {
        let tool = match item {
            Item::Command {
                id,
                command,
                output,
                exit_code,
                status,
            } => Tool {
                id,
                kind: ToolKind::Command,
                name: String::from("shell"),
                input: json!({ "command": command }),
                status: match status.as_str() {
                    "in_progress" | "completed" if exit_code.is_some_and(|code| code != 0) => {
                        ToolStatus::Failed
                    }
                    _ => tool_status(&status),
                },
                output,
                exit_code: Some(exit_code),
            },
            Item::FileChange {
                id,
                changes,
                status,
            } => {
                let listed: Vec<Value> = changes
                    .iter()
                    .map(|change| json!({ "path": change.path, "kind": change.kind }))
                    .collect();
                let output = changes
                    .iter()
                    .map(|change| format!("{} {}", change.kind, change.path))
                    .collect::<Vec<_>>()
                    .join("\n");
                Tool {
                    id,
                    kind: ToolKind::FileChange,
                    name: String::from("apply_patch"),
                    input: json!({ "changes": listed }),
                    status: tool_status(&status),
                    output,
                    exit_code: None,
                }
            }
            Item::Mcp {
                id,
                server,
                tool,
                arguments,
                result,
                error,
                status,
            } => Tool {
                id,
                kind: ToolKind::Mcp,
                name: tool,
                input: json!({ "server": server, "arguments": arguments }),
                status: tool_status(&status),
                output: match error {
                    Value::Null => mcp_result_text(result),
                    Value::String(message) => message,
                    error => error
                        .get("message")
                        .and_then(Value::as_str)
                        .map(String::from)
                        .unwrap_or_else(|| error.to_string()),
                },
                exit_code: None,
            },
            Item::WebSearch { id, query, action } => Tool {
                id,
                kind: ToolKind::WebSearch,
                name: String::from("web_search"),
                input: json!({ "query": query, "action": action }),
                status: ToolStatus::Completed,
                output: String::new(),
                exit_code: None,
            },
            Item::Other {
                id,
                item_type,
                status: Some(status),
                fields,
            } => Tool {
                id,
                kind: ToolKind::Other,
                name: item_type,
                input: fields,
                status: tool_status(&status),
                output: String::new(),
                exit_code: None,
            },
            _ => return None,
        };
        Some(tool)
    }

    /// The `tool_call` and the `tool_result` (its output bounded).
    fn into_events(self, output_limit: usize) -> (Event, Event) {
        let call = Event::ToolCall {
            id: self.id.clone(),
            kind: self.kind,
            name: self.name,
            input: self.input,
        };
        let result = Event::ToolResult {
            id: self.id,
            kind: self.kind,
            status: self.status,
            output: bound_output(self.output, output_limit),
            exit_code: self.exit_code,
        };
        (call, result)
    }
}

fn tool_status(status: &str) -> ToolStatus {
    match status {
        "failed" => ToolStatus::Failed,
        "declined" => ToolStatus::Declined,
        _ => ToolStatus::Completed,
    }
}

/// An MCP result's text contents, or its JSON when it has another shape.
fn mcp_result_text(result: Value) -> String {
    if let Some(content) = result.get("content").and_then(Value::as_array) {
        let texts: Option<Vec<&str>> = content
            .iter()
            .map(|part| part.get("text").and_then(Value::as_str))
            .collect();
        if let Some(texts) = texts {
            return texts.join("\n");
        }
    }
    match result {
        Value::Null => String::new(),
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// Cuts `output` to about `limit` bytes, keeping head and tail on character
/// boundaries, with a marker saying how much was left out.
pub fn bound_output(output: String, limit: usize) -> String {
    if output.len() <= limit {
        return output;
    }
    let half = limit / 2;
    let mut head_end = half;
    while !output.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = output.len() - half;
    while !output.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let omitted = tail_start - head_end;
    format!(
        "{}\n[… {omitted} bytes of output omitted …]\n{}",
        &output[..head_end],
        &output[tail_start..]
    )
}

fn is_retry_notice(message: &str) -> bool {
    message.starts_with("Reconnecting...") || message.starts_with("Reconnecting…")
}

/// Which failure codex reported, by its text (exec drops the structured
/// error kinds). Order matters: "stream disconnected … Rate limit reached"
/// is a rate limit, not a transport problem.
const FAILURE_PATTERNS: &[(&str, ErrorCode, bool)] = &[
    ("401 unauthorized", ErrorCode::Auth, false),
    ("403 forbidden", ErrorCode::Auth, false),
    ("status 401", ErrorCode::Auth, false),
    ("status 403", ErrorCode::Auth, false),
    ("not logged in", ErrorCode::Auth, false),
    ("usage limit", ErrorCode::RateLimited, true),
    ("quota exceeded", ErrorCode::RateLimited, true),
    ("insufficient_quota", ErrorCode::RateLimited, true),
    ("429 too many requests", ErrorCode::RateLimited, true),
    ("rate limit", ErrorCode::RateLimited, true),
    ("context window", ErrorCode::ContextWindow, false),
    ("context_length_exceeded", ErrorCode::ContextWindow, false),
    ("high demand", ErrorCode::TurnFailed, true),
    ("at capacity", ErrorCode::TurnFailed, true),
    ("stream disconnected", ErrorCode::TurnFailed, true),
    ("idle timeout", ErrorCode::TurnFailed, true),
    ("internal server error", ErrorCode::TurnFailed, true),
    ("service unavailable", ErrorCode::TurnFailed, true),
    ("bad gateway", ErrorCode::TurnFailed, true),
    ("gateway timeout", ErrorCode::TurnFailed, true),
];

/// The terminal error for codex's `turn.failed` message.
pub fn classify_failure(message: &str) -> TurnError {
    let lowered = message.to_lowercase();
    let (code, retryable) = FAILURE_PATTERNS
        .iter()
        .find(|(pattern, _, _)| lowered.contains(pattern))
        .map(|(_, code, retryable)| (*code, *retryable))
        .unwrap_or((ErrorCode::TurnFailed, false));
    let message = if message.is_empty() {
        String::from("codex reported turn.failed without a message")
    } else {
        message.to_string()
    };
    TurnError {
        code,
        message,
        retryable,
        detail: None,
    }
}

fn trim_ascii_whitespace(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else { return &[] };
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .unwrap_or(start);
    &line[start..=end]
}

#[cfg(test)]
mod tests;
