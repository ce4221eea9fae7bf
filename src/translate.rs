//! The rules both transports' translators share, so that `exec` and
//! `app-server` give a host the same events for the same work:
//! `message_start` first and the held notices right after it, events that
//! came before the thread was named held until then, tools opened and
//! closed (a tool never reported finished is closed at the end), the todo
//! list shown only when it changed, usage, garbage lines as bounded
//! notices, and the terminal rule (exactly one terminal event, nothing
//! after it). Pure: no I/O, no clocks.

use serde_json::{json, Value};

use crate::event::{
    ErrorCode, Event, NoticeLevel, TodoItem, ToolKind, ToolStatus, TurnError, Usage,
};

/// `tool_result.output` beyond this many bytes keeps its head and tail.
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;

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

/// Lines that are not codex messages become notices, up to this many a
/// turn, so a stream of garbage cannot flood the host.
const MAX_GARBAGE_NOTICES: usize = 3;

/// Where a turn's event stream stands, and what it must still say.
pub struct TurnEvents {
    state: State,
    model: String,
    /// The thread this run asked codex to resume, if any.
    asked_thread: Option<String>,
    /// The adapter's own notices (stale or corrupt session): right after
    /// `message_start`.
    held: Vec<Event>,
    /// Codex's events from before it named the thread: after those.
    early: Vec<Event>,
    session_id: Option<String>,
    resumed: bool,
    previous_totals: Option<Usage>,
    /// Tools started and not yet finished, in start order.
    open_tools: Vec<OpenTool>,
    last_todo: Option<Vec<TodoItem>>,
    garbage_lines: usize,
    succeeded: bool,
    pub output_limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Codex has not named the thread: no `message_start` yet.
    AwaitingThread,
    /// `message_start` is out; events flow.
    Running,
    /// The terminal event is out; nothing more is said.
    Ended,
}

struct OpenTool {
    id: String,
    kind: ToolKind,
    /// A `tool_call` not shown yet: a web search codex names only when it
    /// completes (its start has no query yet).
    unshown_call: Option<Event>,
}

/// How the turn's usage is known when codex names the thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSource {
    /// Running totals only (exec): this turn's share needs the previous
    /// totals, and a notice says when those are unknown.
    RunningTotals,
    /// Codex reports each request of the turn (app-server): exact as is.
    PerRequest,
}

impl TurnEvents {
    pub fn new(context: TurnContext) -> TurnEvents {
        TurnEvents {
            state: State::AwaitingThread,
            model: context.model,
            asked_thread: context.resumed_thread,
            held: context.notices,
            early: Vec::new(),
            session_id: None,
            resumed: false,
            previous_totals: context.previous_totals,
            open_tools: Vec::new(),
            last_todo: None,
            garbage_lines: 0,
            succeeded: false,
            output_limit: context.output_limit,
        }
    }

    /// The thread codex named, once it has.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// Whether codex named a thread yet (`message_start` is out).
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    /// Whether codex resumed the thread it was asked to resume.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Whether the turn ended with `message_end`.
    pub fn succeeded(&self) -> bool {
        self.succeeded
    }

    /// The running totals this turn's usage is counted from: what the
    /// session file holds until the turn completes. `None` when unknown.
    pub fn baseline(&self) -> Option<Usage> {
        self.previous_totals
    }

    /// The thread the run asked for, if any.
    pub fn asked_thread(&self) -> Option<&str> {
        self.asked_thread.as_deref()
    }

    /// A recording goes on with another turn after the terminal event
    /// (`--record` appends): the same run continues, as if it had not ended.
    pub fn reopen(&mut self) {
        if self.state != State::Ended {
            return;
        }
        self.state = match self.session_id {
            Some(_) => State::Running,
            None => State::AwaitingThread,
        };
        self.succeeded = false;
    }

    /// Codex no longer knows the thread it was asked to resume; the turn
    /// goes on in a new one, and the host hears why right after
    /// `message_start`.
    pub fn replace_stale_thread(&mut self, notice: Event) {
        self.asked_thread = None;
        self.previous_totals = Some(Usage::default());
        self.held.push(notice);
    }

    /// Codex named its thread: `message_start`, then what was held.
    pub fn start(&mut self, thread_id: String, usage: UsageSource, out: &mut Vec<Event>) {
        if self.state != State::AwaitingThread {
            return;
        }
        let mut notices = Vec::new();
        match &self.asked_thread {
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
        if self.resumed && self.previous_totals.is_none() && usage == UsageSource::RunningTotals {
            notices.push(Event::notice(
                NoticeLevel::Info,
                "the thread's earlier usage totals are unknown (a v0.1 session file, or one this version cannot read); \
                 this turn's usage is the thread's running total",
            ));
        }
        out.push(Event::MessageStart {
            session_id: thread_id.clone(),
            resumed: self.resumed,
            model: self.model.clone(),
        });
        self.session_id = Some(thread_id);
        self.state = State::Running;
        out.append(&mut self.held);
        out.append(&mut self.early);
        out.extend(notices);
    }

    /// Emits now, or holds until `message_start` while the thread is unnamed.
    pub fn emit(&mut self, event: Event, out: &mut Vec<Event>) {
        match self.state {
            State::AwaitingThread => self.early.push(event),
            State::Running => out.push(event),
            State::Ended => {}
        }
    }

    /// Ends the turn with `error`: open tools closed, held events out,
    /// then the error.
    pub fn end_with(&mut self, error: TurnError, out: &mut Vec<Event>) {
        if self.state == State::Ended {
            return;
        }
        self.close_open_tools(out);
        out.append(&mut self.held);
        out.append(&mut self.early);
        out.push(Event::Error(error));
        self.state = State::Ended;
    }

    /// The turn completed: open tools closed, then `message_end`.
    pub fn complete(&mut self, usage: Usage, thread_usage: Usage, out: &mut Vec<Event>) {
        if self.state == State::Ended {
            return;
        }
        self.close_open_tools(out);
        let Some(session_id) = self.session_id.clone() else {
            let error = TurnError::new(
                ErrorCode::Protocol,
                "codex reported the turn completed without naming its thread first",
            );
            self.end_with(error, out);
            return;
        };
        out.push(Event::MessageEnd {
            stop_reason: "end_turn",
            usage,
            thread_usage,
            session_id,
        });
        self.state = State::Ended;
        self.succeeded = true;
    }

    /// Ends a run whose stream stopped without a terminal codex message.
    /// `held_error` is codex's last fatal-looking error, if it said one;
    /// `terminal_names` names what was missing ("turn/completed").
    pub fn finish(
        &mut self,
        end: StreamEnd,
        held_error: Option<String>,
        terminal_names: &str,
        out: &mut Vec<Event>,
    ) {
        let error = match end {
            // The adapter's own reason ends the turn; codex's last error
            // (perhaps the real cause, e.g. a 401) is not lost.
            StreamEnd::Stopped(error) => {
                if let Some(held) = held_error {
                    self.emit(Event::notice(NoticeLevel::Warning, held), out);
                }
                error
            }
            StreamEnd::Crashed { how, stderr_tail } => {
                let mut message = format!("codex {how} before finishing the turn");
                if let Some(held) = held_error {
                    message = format!("{message}: {held}");
                }
                TurnError::new(ErrorCode::CodexCrashed, message).with_detail(stderr_tail)
            }
            StreamEnd::Closed => {
                let mut message = format!("codex's output ended without {terminal_names}");
                if let Some(held) = held_error {
                    message = format!("{message}; its last error: {held}");
                }
                TurnError::new(ErrorCode::Protocol, message)
            }
        };
        self.end_with(error, out);
    }

    /// A tool started: its `tool_call`, once per id; with `shown` false
    /// the call waits for the completion, which names the tool (a search's
    /// query), or for the end of the turn.
    pub fn open_tool(&mut self, tool: Tool, shown: bool, out: &mut Vec<Event>) {
        if self.open_tools.iter().any(|open| open.id == tool.id) {
            return;
        }
        let (id, kind) = (tool.id.clone(), tool.kind);
        let (call, _) = tool.into_events(self.output_limit);
        let unshown_call = if shown {
            self.emit(call, out);
            None
        } else {
            Some(call)
        };
        self.open_tools.push(OpenTool {
            id,
            kind,
            unshown_call,
        });
    }

    /// A tool finished: its `tool_result`, after its `tool_call` (sent now,
    /// with what the completed item says, if it was not shown yet or codex
    /// reported no start).
    pub fn finish_tool(&mut self, tool: Tool, out: &mut Vec<Event>) {
        let open = self.open_tools.iter().position(|open| open.id == tool.id);
        let (call, result) = tool.into_events(self.output_limit);
        let shown = match open {
            Some(index) => self.open_tools.remove(index).unshown_call.is_none(),
            None => false,
        };
        if !shown {
            self.emit(call, out);
        }
        self.emit(result, out);
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

    /// The todo list, when it changed (codex repeats the same snapshot).
    pub fn todo(&mut self, items: Vec<(String, bool)>, out: &mut Vec<Event>) {
        let items: Vec<TodoItem> = items
            .into_iter()
            .map(|(text, done)| TodoItem { text, done })
            .collect();
        if self.last_todo.as_ref() == Some(&items) {
            return;
        }
        self.last_todo = Some(items.clone());
        self.emit(Event::Todo { items }, out);
    }

    /// A line that is not a codex message: a notice, the first few times.
    pub fn garbage(&mut self, line: &[u8], error: &serde_json::Error, out: &mut Vec<Event>) {
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
}

/// An item that is an action, as either transport's stream describes it,
/// before it becomes a [`Tool`].
#[derive(Debug)]
pub enum Action {
    Command {
        id: String,
        command: String,
        /// The truth on completion (app-server's output deltas can miss a
        /// command's first output).
        output: String,
        exit_code: Option<i64>,
        status: String,
    },
    FileChange {
        id: String,
        /// `(path, kind)`, kind as exec names it: `add`, `delete`, `update`.
        changes: Vec<(String, String)>,
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

impl Action {
    /// A command item; the two transports name output and exit code apart.
    pub fn command(item: &mut Value, output_key: &str, exit_code_key: &str) -> Action {
        Action::Command {
            id: take_string(item, "id"),
            command: take_string(item, "command"),
            output: take_string(item, output_key),
            exit_code: item.get(exit_code_key).and_then(Value::as_i64),
            status: take_string(item, "status"),
        }
    }

    /// An MCP tool call item (the same fields in both transports).
    pub fn mcp(item: &mut Value) -> Action {
        Action::Mcp {
            id: take_string(item, "id"),
            server: take_string(item, "server"),
            tool: take_string(item, "tool"),
            arguments: take(item, "arguments"),
            result: take(item, "result"),
            error: take(item, "error"),
            status: take_string(item, "status"),
        }
    }

    /// A web search item (the same fields in both transports).
    pub fn web_search(item: &mut Value) -> Action {
        Action::WebSearch {
            id: take_string(item, "id"),
            query: take_string(item, "query"),
            action: take(item, "action"),
        }
    }

    /// An item of a type this adapter does not know; the tool's input is
    /// what is left: not its id, type or status.
    pub fn unknown(mut item: Value, item_type: String) -> Action {
        let id = take_string(&mut item, "id");
        let status = item.get("status").and_then(Value::as_str).map(String::from);
        if let Some(fields) = item.as_object_mut() {
            for key in ["id", "type", "status"] {
                fields.remove(key);
            }
        }
        Action::Other {
            id,
            item_type,
            status,
            fields: item,
        }
    }

    /// The tool this action is; `None` for unknown items without a status.
    pub fn into_tool(self) -> Option<Tool> {
        let tool = match self {
            Action::Command {
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
                    // A non-zero exit is a failure, whatever the status says.
                    "in_progress" | "inProgress" | "completed"
                        if exit_code.is_some_and(|code| code != 0) =>
                    {
                        ToolStatus::Failed
                    }
                    other => tool_status(other),
                },
                output,
                exit_code: Some(exit_code),
            },
            Action::FileChange {
                id,
                changes,
                status,
            } => {
                let listed: Vec<Value> = changes
                    .iter()
                    .map(|(path, kind)| json!({ "path": path, "kind": kind }))
                    .collect();
                let output = changes
                    .iter()
                    .map(|(path, kind)| format!("{kind} {path}"))
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
            Action::Mcp {
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
            Action::WebSearch { id, query, action } => Tool {
                id,
                kind: ToolKind::WebSearch,
                name: String::from("web_search"),
                input: json!({ "query": query, "action": action }),
                status: ToolStatus::Completed,
                output: String::new(),
                exit_code: None,
            },
            Action::Other {
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
            Action::Other { status: None, .. } => return None,
        };
        Some(tool)
    }
}

/// A tool item, in canonical terms: what `tool_call` and `tool_result` say.
pub struct Tool {
    pub id: String,
    pub kind: ToolKind,
    pub name: String,
    pub input: Value,
    pub status: ToolStatus,
    pub output: String,
    /// Commands only: their exit code, null while unknown.
    pub exit_code: Option<Option<i64>>,
}

impl Tool {
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

/// A tool's status word (either transport's spelling) in canonical terms.
pub fn tool_status(status: &str) -> ToolStatus {
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

/// Moves a string field out of a codex JSON object (no copy of large
/// outputs); anything else reads as empty.
pub(crate) fn take_string(item: &mut Value, key: &str) -> String {
    match take(item, key) {
        Value::String(text) => text,
        _ => String::new(),
    }
}

/// Moves a field out of a codex JSON object; null when it is missing.
pub(crate) fn take(item: &mut Value, key: &str) -> Value {
    item.get_mut(key).map(Value::take).unwrap_or(Value::Null)
}

/// Strips ASCII whitespace at both ends of a line (`\r\n` included).
pub fn trim_ascii_whitespace(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else { return &[] };
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .unwrap_or(start);
    &line[start..=end]
}
