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
use crate::exec::translate::{bound_output, StreamEnd, TurnContext};

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
                "the thread's earlier usage totals are unknown (session file from v0.1); \
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
            StreamEnd::Stopped(error) => error,
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

    /// A tool started: its `tool_call`, once per id.
    pub fn open_tool(&mut self, tool: Tool, out: &mut Vec<Event>) {
        if self.open_tools.iter().any(|open| open.id == tool.id) {
            return;
        }
        self.open_tools.push(OpenTool {
            id: tool.id.clone(),
            kind: tool.kind,
        });
        let (call, _) = tool.into_events(self.output_limit);
        self.emit(call, out);
    }

    /// A tool finished: its `tool_result`, after its `tool_call` (sent now
    /// if codex reported no start).
    pub fn finish_tool(&mut self, tool: Tool, out: &mut Vec<Event>) {
        let open = self.open_tools.iter().position(|open| open.id == tool.id);
        let (call, result) = tool.into_events(self.output_limit);
        match open {
            Some(index) => {
                self.open_tools.remove(index);
            }
            None => self.emit(call, out),
        }
        self.emit(result, out);
    }

    fn close_open_tools(&mut self, out: &mut Vec<Event>) {
        for tool in std::mem::take(&mut self.open_tools) {
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
        let message = format!(
            "codex printed a line of {length} bytes, over the adapter's limit; it was skipped"
        );
        self.emit(Event::notice(NoticeLevel::Warning, message), out);
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
    pub fn command(
        id: String,
        command: String,
        output: String,
        exit_code: Option<i64>,
        status: ToolStatus,
    ) -> Tool {
        Tool {
            id,
            kind: ToolKind::Command,
            name: String::from("shell"),
            input: json!({ "command": command }),
            status,
            output,
            exit_code: Some(exit_code),
        }
    }

    /// A file change, `changes` as `(path, kind)`.
    pub fn file_change(id: String, changes: &[(String, String)], status: ToolStatus) -> Tool {
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
            status,
            output,
            exit_code: None,
        }
    }

    pub fn mcp(
        id: String,
        server: String,
        tool: String,
        arguments: Value,
        result: Value,
        error: Value,
        status: ToolStatus,
    ) -> Tool {
        Tool {
            id,
            kind: ToolKind::Mcp,
            name: tool,
            input: json!({ "server": server, "arguments": arguments }),
            status,
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
        }
    }

    pub fn web_search(id: String, query: String, action: Value) -> Tool {
        Tool {
            id,
            kind: ToolKind::WebSearch,
            name: String::from("web_search"),
            input: json!({ "query": query, "action": action }),
            status: ToolStatus::Completed,
            output: String::new(),
            exit_code: None,
        }
    }

    /// An action of a type this adapter does not know.
    pub fn other(id: String, item_type: String, fields: Value, status: ToolStatus) -> Tool {
        Tool {
            id,
            kind: ToolKind::Other,
            name: item_type,
            input: fields,
            status,
            output: String::new(),
            exit_code: None,
        }
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
