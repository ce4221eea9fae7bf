//! The translation of codex app-server's messages into canonical events: a
//! pure state machine (messages in, events out; no I/O, no clocks), shared
//! by `turn` and `replay`. The rules both transports share live in
//! `crate::translate`; this file knows only what app-server says.
//!
//! Text is streamed as codex streams it (`item/agentMessage/delta`) and
//! reconciled with the completed item, whose text is the truth. When codex
//! restarts a message after a transient error, the host gets a
//! `text_reset` with the turn's text as it now stands. With `--events core`
//! (`stream_text` false) each message is printed once it is complete, and
//! nothing is ever retracted.

use crate::app_server::message::{
    request_id, thread_id_of, turn_id_of, ErrorInfo, Item, Message, Notification, RpcError,
    ThreadRefusal, TokenBreakdown,
};
use crate::event::{ErrorCode, Event, NoticeLevel, TurnError, Usage};
use crate::translate::{
    classify_failure, trim_ascii_whitespace, Action, LineOutcome, StreamEnd, Tool, TurnContext,
    TurnEvents, UsageSource,
};

pub struct Translator {
    turn: TurnEvents,
    /// Text as codex streams it (`--events all`), or per completed message.
    stream_text: bool,
    /// This turn's id, once codex said it: usage is counted for it alone.
    turn_id: Option<String>,
    /// The turn's agent messages, in order: what the host has been shown.
    messages: Vec<AgentText>,
    /// The sum of `last` over this turn's usage updates.
    usage: Usage,
    /// The thread's running totals, from the latest update.
    thread_usage: Option<Usage>,
    /// A non-retry `error`: the echo of the failure `turn/completed` reports,
    /// or a notice if the turn completes after all.
    held_error: Option<ErrorInfo>,
    /// Codex refused the thread as unknown once; a new one was asked for.
    replaced_stale: bool,
}

/// One agent message of the turn, as shown to the host.
struct AgentText {
    id: String,
    /// The blank line before it, once it has text and text came before it.
    separator: &'static str,
    text: String,
    completed: bool,
}

impl Translator {
    pub fn new(context: TurnContext, stream_text: bool) -> Translator {
        Translator {
            turn: TurnEvents::new(context),
            stream_text,
            turn_id: None,
            messages: Vec::new(),
            usage: Usage::default(),
            thread_usage: None,
            held_error: None,
            replaced_stale: false,
        }
    }

    /// The turn's shared state (see `crate::translate::TurnEvents`).
    pub fn turn(&self) -> &TurnEvents {
        &self.turn
    }

    pub fn oversized_line(&mut self, length: usize, out: &mut Vec<Event>) {
        self.turn.oversized_line(length, out);
    }

    /// After the terminal event: whether `line` begins another turn of the
    /// same recording (`--record` appends; each app-server process begins
    /// with the answer to `initialize`). If so the run goes on with it:
    /// its own usage, messages after the earlier turns' text.
    pub fn begins_next_turn(&mut self, line: &[u8]) -> bool {
        if !self.turn.is_ended() {
            return false;
        }
        let next = matches!(
            Message::parse(trim_ascii_whitespace(line)),
            Ok(Message::Response {
                id: request_id::INITIALIZE,
                outcome: Ok(_)
            })
        );
        if next {
            self.turn.reopen();
            self.turn_id = None;
            self.usage = Usage::default();
            self.thread_usage = None;
            self.held_error = None;
            self.replaced_stale = false;
            self.messages.retain(|m| m.completed);
        }
        next
    }

    /// Translates one line of codex's stdout (without or with its `\n`).
    pub fn line(&mut self, line: &[u8], out: &mut Vec<Event>) -> LineOutcome {
        if self.turn.is_ended() {
            return LineOutcome::AfterEnd;
        }
        let line = trim_ascii_whitespace(line);
        if line.is_empty() {
            return LineOutcome::Ignored(String::from("(empty line)"));
        }
        match Message::parse(line) {
            Ok(message) => self.message(message, out),
            Err(error) => {
                self.turn.garbage(line, &error, out);
                LineOutcome::NotAnEvent
            }
        }
    }

    /// Translates one message codex sent.
    pub fn message(&mut self, message: Message, out: &mut Vec<Event>) -> LineOutcome {
        if self.turn.is_ended() {
            return LineOutcome::AfterEnd;
        }
        match message {
            Message::Response { id, outcome } => self.response(id, outcome, out),
            Message::Request { method, .. } => {
                // The conversation answers it at once (declined).
                let message = format!(
                    "codex asked `{method}`, which would wait for a person; declined at once (nobody is there to answer)"
                );
                self.turn
                    .emit(Event::notice(NoticeLevel::Warning, message), out);
                LineOutcome::Handled
            }
            Message::Notification(notification) => self.notification(notification, out),
        }
    }

    /// Ends the run: closes what is open and appends the terminal event,
    /// unless a message already ended the turn.
    pub fn finish(&mut self, end: StreamEnd, out: &mut Vec<Event>) {
        if self.turn.is_ended() {
            return;
        }
        let held = self.held_error.take().map(|error| error.message);
        self.turn.finish(end, held, "turn/completed", out);
    }

    fn response(
        &mut self,
        id: u64,
        outcome: Result<serde_json::Value, RpcError>,
        out: &mut Vec<Event>,
    ) -> LineOutcome {
        match (id, outcome) {
            (
                request_id::THREAD | request_id::FRESH_THREAD | request_id::RESUME_AGAIN,
                Ok(result),
            ) => {
                let Some(thread_id) = thread_id_of(&result) else {
                    let error = TurnError::new(
                        ErrorCode::Protocol,
                        "codex opened a thread without saying its id",
                    );
                    self.turn.end_with(error, out);
                    return LineOutcome::Handled;
                };
                self.turn
                    .start(thread_id.to_string(), UsageSource::PerRequest, out);
            }
            (
                request_id::THREAD | request_id::FRESH_THREAD | request_id::RESUME_AGAIN,
                Err(error),
            ) => self.thread_refused(id, &error, out),
            (request_id::TURN_START, Ok(result)) => {
                if let Some(turn_id) = turn_id_of(&result) {
                    self.turn_id.get_or_insert_with(|| turn_id.to_string());
                }
            }
            (request_id::TURN_START, Err(error)) => {
                let error = if error.data.get("input_error_code").and_then(|c| c.as_str())
                    == Some("input_too_large")
                {
                    let number = |key: &str| {
                        error
                            .data
                            .get(key)
                            .and_then(|n| n.as_u64())
                            .unwrap_or_default()
                    };
                    TurnError::new(
                        ErrorCode::MessageTooLarge,
                        format!(
                            "the message has {} characters; codex accepts at most {}",
                            number("actual_chars"),
                            number("max_chars")
                        ),
                    )
                } else {
                    let mut refused = classify_failure(&error.message);
                    refused.message = format!("codex refused to start the turn: {}", error.message);
                    refused
                };
                self.turn.end_with(error, out);
            }
            (request_id::INITIALIZE, Err(error)) => {
                let error = TurnError::new(
                    ErrorCode::Protocol,
                    format!(
                        "codex refused the app-server handshake (initialize): {}",
                        error.message
                    ),
                );
                self.turn.end_with(error, out);
            }
            (id, _) => return LineOutcome::Ignored(format!("response to request {id}")),
        }
        LineOutcome::Handled
    }

    fn thread_refused(&mut self, id: u64, error: &RpcError, out: &mut Vec<Event>) {
        match ThreadRefusal::of(error) {
            ThreadRefusal::NeedsExperimentalApi if id == request_id::THREAD => {
                // The conversation resumes again without `excludeTurns`.
            }
            ThreadRefusal::UnknownThread
                if id != request_id::FRESH_THREAD && !self.replaced_stale =>
            {
                self.replaced_stale = true;
                // The conversation starts a new thread in the same run.
                let thread = self
                    .turn
                    .asked_thread()
                    .map(String::from)
                    .unwrap_or_else(|| thread_named_in(&error.message));
                let message = format!(
                    "codex no longer knows thread {thread} (its sessions were removed or CODEX_HOME changed); started a new thread"
                );
                self.turn
                    .replace_stale_thread(Event::notice(NoticeLevel::Warning, message));
            }
            ThreadRefusal::ActiveWriter => {
                let error = TurnError::new(
                    ErrorCode::SessionBusy,
                    "codex says another process is writing this thread; retry when it has ended",
                )
                .with_detail(error.message.clone());
                self.turn.end_with(error, out);
            }
            _ => {
                let error = TurnError::new(
                    ErrorCode::Config,
                    format!(
                        "codex refused to open the thread: {}; check `sandbox`, `model_args` and codex's own config",
                        error.message
                    ),
                );
                self.turn.end_with(error, out);
            }
        }
    }

    fn notification(&mut self, notification: Notification, out: &mut Vec<Event>) -> LineOutcome {
        match notification {
            Notification::ThreadStarted { thread_id } => {
                if self.turn.is_running() {
                    return LineOutcome::Ignored(String::from("thread/started"));
                }
                self.turn.start(thread_id, UsageSource::PerRequest, out);
            }
            Notification::TurnStarted { turn_id } => {
                self.turn_id.get_or_insert(turn_id);
                return LineOutcome::Ignored(String::from("turn/started"));
            }
            Notification::ItemStarted { item } => self.item_started(item, out),
            Notification::ItemCompleted { item } => self.item_completed(item, out),
            Notification::AgentMessageDelta { item_id, delta } => self.delta(item_id, delta, out),
            Notification::PlanUpdated { plan } => self.turn.todo(plan, out),
            Notification::TokenUsage {
                turn_id,
                total,
                last,
            } => {
                self.thread_usage = Some(usage_of(&total));
                // On resume codex first repeats the stored totals under the
                // previous turn's id: only this turn's requests count.
                let ours = match &self.turn_id {
                    Some(ours) => turn_id == *ours || turn_id.is_empty(),
                    None => false,
                };
                if ours {
                    self.usage = add(self.usage, usage_of(&last));
                }
            }
            Notification::Error {
                error,
                will_retry: true,
            } => {
                let mut message = error.message;
                if let Some(details) = error.additional_details.filter(|d| !d.is_empty()) {
                    message = format!("{message} ({details})");
                }
                self.turn
                    .emit(Event::notice(NoticeLevel::Info, message), out);
                // Codex restarts the model request: what it streamed of
                // unfinished messages will come again from their start.
                let unfinished = self.messages.iter().position(|m| !m.completed);
                if let Some(index) = unfinished {
                    self.retract_from(index, out);
                }
            }
            Notification::Error {
                error,
                will_retry: false,
            } => {
                self.release_held_error(out);
                self.held_error = Some(error);
            }
            Notification::Warning { message } => self
                .turn
                .emit(Event::notice(NoticeLevel::Warning, message), out),
            Notification::SetupNotice { message } => self
                .turn
                .emit(Event::notice(NoticeLevel::Info, message), out),

            Notification::TurnCompleted {
                turn_id,
                status,
                error,
            } => {
                if self.turn_id.as_ref().is_some_and(|ours| *ours != turn_id) {
                    return LineOutcome::Ignored(String::from("turn/completed (another turn)"));
                }
                self.completed(&status, error, out);
            }
            Notification::Other(method) => return LineOutcome::Ignored(method),
        }
        LineOutcome::Handled
    }

    fn completed(&mut self, status: &str, error: Option<ErrorInfo>, out: &mut Vec<Event>) {
        match status {
            "completed" => {
                self.release_held_error(out);
                let thread_usage = self
                    .thread_usage
                    .unwrap_or_else(|| add(self.turn.baseline().unwrap_or_default(), self.usage));
                self.turn.complete(self.usage, thread_usage, out);
            }
            "failed" => {
                let held = self.held_error.take();
                let error = match (error, held) {
                    (Some(error), _) if !error.message.is_empty() => error,
                    (_, Some(held)) => held,
                    (error, None) => error.unwrap_or_default(),
                };
                self.turn.end_with(classify_error(&error), out);
            }
            "interrupted" => {
                let error = TurnError {
                    code: ErrorCode::TurnFailed,
                    message: String::from("codex reported the turn interrupted"),
                    retryable: true,
                    detail: None,
                };
                self.turn.end_with(error, out);
            }
            other => {
                let error = TurnError::new(
                    ErrorCode::Protocol,
                    format!("codex ended the turn with an unknown status {other:?}"),
                );
                self.turn.end_with(error, out);
            }
        }
    }

    fn item_started(&mut self, item: Item, out: &mut Vec<Event>) {
        match item {
            Item::AgentMessage { id, .. } => {
                // The same id again: codex restarted the message.
                if let Some(index) = self.messages.iter().position(|m| m.id == id) {
                    self.retract_from(index, out);
                }
                self.message_entry(&id);
            }
            Item::Reasoning { .. } | Item::UserMessage => {}
            item => {
                // A search's query is known only when it completes.
                let shown = !matches!(item, Item::Action(Action::WebSearch { .. }));
                if let Some(tool) = tool_of(item) {
                    self.turn.open_tool(tool, shown, out);
                }
            }
        }
    }

    fn item_completed(&mut self, item: Item, out: &mut Vec<Event>) {
        match item {
            Item::AgentMessage { id, text } => self.message_completed(id, text, out),
            Item::Reasoning { summary } => {
                if !summary.trim().is_empty() {
                    self.turn.emit(Event::Reasoning { text: summary }, out);
                }
            }
            Item::UserMessage => {}
            item => {
                if let Some(tool) = tool_of(item) {
                    self.turn.finish_tool(tool, out);
                }
            }
        }
    }

    /// The message with this id, added at the end if it is new.
    fn message_entry(&mut self, id: &str) -> usize {
        if let Some(index) = self.messages.iter().position(|m| m.id == id) {
            return index;
        }
        self.messages.push(AgentText {
            id: id.to_string(),
            separator: "",
            text: String::new(),
            completed: false,
        });
        self.messages.len() - 1
    }

    fn delta(&mut self, item_id: String, delta: String, out: &mut Vec<Event>) {
        if delta.is_empty() {
            return;
        }
        let index = self.message_entry(&item_id);
        let starts = self.messages[index].text.is_empty();
        if starts {
            self.messages[index].separator = self.separator_before(index);
        }
        let message = &mut self.messages[index];
        message.text.push_str(&delta);
        if self.stream_text {
            let text = if starts {
                format!("{}{delta}", message.separator)
            } else {
                delta
            };
            self.turn.emit(Event::TextDelta { text }, out);
        }
    }

    fn message_completed(&mut self, id: String, text: String, out: &mut Vec<Event>) {
        let index = self.message_entry(&id);
        if self.messages[index].text.is_empty() {
            self.messages[index].separator = self.separator_before(index);
        }
        let message = &mut self.messages[index];
        message.completed = true;
        if !self.stream_text {
            message.text = text;
            if !message.text.is_empty() {
                let text = format!("{}{}", message.separator, message.text);
                self.turn.emit(Event::TextDelta { text }, out);
            }
            return;
        }
        // The completed text is the truth; the deltas were a preview.
        if text == message.text {
            return;
        }
        if let Some(rest) = text.strip_prefix(message.text.as_str()) {
            let shown = if message.text.is_empty() {
                format!("{}{rest}", message.separator)
            } else {
                rest.to_string()
            };
            message.text = text;
            self.turn.emit(Event::TextDelta { text: shown }, out);
            return;
        }
        message.text = text;
        let whole = self.turn_text();
        self.turn.emit(Event::TextReset { text: whole }, out);
    }

    /// Codex will stream the message at `index` (and any after it) again:
    /// they leave what the host is shown, with a `text_reset` if any of
    /// their text was shown.
    fn retract_from(&mut self, index: usize, out: &mut Vec<Event>) {
        let shown = self.messages[index..].iter().any(|m| !m.text.is_empty());
        self.messages.truncate(index);
        if shown && self.stream_text {
            let whole = self.turn_text();
            self.turn.emit(Event::TextReset { text: whole }, out);
        }
    }

    fn separator_before(&self, index: usize) -> &'static str {
        if self.messages[..index].iter().any(|m| !m.text.is_empty()) {
            "\n\n"
        } else {
            ""
        }
    }

    /// The turn's text as the host should now show it.
    fn turn_text(&self) -> String {
        self.messages
            .iter()
            .filter(|m| !m.text.is_empty())
            .map(|m| format!("{}{}", m.separator, m.text))
            .collect()
    }

    fn release_held_error(&mut self, out: &mut Vec<Event>) {
        if let Some(error) = self.held_error.take() {
            self.turn
                .emit(Event::notice(NoticeLevel::Warning, error.message), out);
        }
    }
}

/// The tool an item describes; `None` for items that are not actions.
fn tool_of(item: Item) -> Option<Tool> {
    match item {
        Item::Action(action) => action.into_tool(),
        _ => None,
    }
}

/// The terminal error for a failed turn: codex's structured kind where it
/// decides, its message text (exec's `FAILURE_PATTERNS`) otherwise.
pub fn classify_error(error: &ErrorInfo) -> TurnError {
    let by_text = classify_failure(&error.message);
    let decided = match error.kind() {
        Some("contextWindowExceeded") => Some((ErrorCode::ContextWindow, false)),
        Some("usageLimitExceeded" | "rateLimitExceeded") => Some((ErrorCode::RateLimited, true)),
        Some("unauthorized") => Some((ErrorCode::Auth, false)),
        Some("httpConnectionFailed") => match error.http_status() {
            Some(401 | 403) => Some((ErrorCode::Auth, false)),
            Some(429) => Some((ErrorCode::RateLimited, true)),
            Some(status) if status >= 500 => Some((ErrorCode::TurnFailed, true)),
            _ => None,
        },
        Some("internalServerError" | "serverOverloaded") => Some((ErrorCode::TurnFailed, true)),
        // A transport problem, unless the text names a cause (a rate limit
        // reported through a dropped stream).
        Some(
            "responseStreamDisconnected"
            | "responseStreamConnectionFailed"
            | "responseTooManyFailedAttempts",
        ) if by_text.code == ErrorCode::TurnFailed => Some((ErrorCode::TurnFailed, true)),
        _ => None,
    };
    match decided {
        Some((code, retryable)) => TurnError {
            code,
            retryable,
            ..by_text
        },
        None => by_text,
    }
}

/// The thread id at the end of "no rollout found for thread id X".
fn thread_named_in(message: &str) -> String {
    message
        .split_whitespace()
        .last()
        .unwrap_or("(unknown)")
        .to_string()
}

fn usage_of(breakdown: &TokenBreakdown) -> Usage {
    Usage {
        input_tokens: breakdown.input_tokens,
        cached_input_tokens: breakdown.cached_input_tokens,
        cache_write_tokens: breakdown.cache_write_input_tokens,
        output_tokens: breakdown.output_tokens,
        reasoning_tokens: breakdown.reasoning_output_tokens,
    }
}

fn add(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens.saturating_add(b.input_tokens),
        cached_input_tokens: a.cached_input_tokens.saturating_add(b.cached_input_tokens),
        cache_write_tokens: a.cache_write_tokens.saturating_add(b.cache_write_tokens),
        output_tokens: a.output_tokens.saturating_add(b.output_tokens),
        reasoning_tokens: a.reasoning_tokens.saturating_add(b.reasoning_tokens),
    }
}

#[cfg(test)]
mod tests;
