//! The translation from codex's JSONL stream to canonical events: a pure
//! state machine (bytes in, events out; no I/O, no clocks), shared by `turn`
//! and `replay`. The rules both transports share live in
//! `crate::translate`; this file knows only what `codex exec --json` says.
//!
//! [`Translator::line`] takes one line of codex's stdout and appends the
//! events it causes; [`Translator::finish`] ends the run and appends exactly
//! one terminal event unless a line already did. Nothing is appended after a
//! terminal event.

use crate::event::{Event, NoticeLevel, ToolKind, Usage};
use crate::exec::event::{CodexEvent, CodexUsage, Item};
use crate::translate::{
    classify_failure, trim_ascii_whitespace, LineOutcome, StreamEnd, Tool, TurnContext, TurnEvents,
    UsageSource,
};

pub struct Translator {
    turn: TurnEvents,
    /// A top-level non-retry `error`: the echo of a fatal message if the next
    /// line is `turn.failed`, otherwise a notice.
    held_error: Option<String>,
    agent_messages: usize,
}

impl Translator {
    pub fn new(context: TurnContext) -> Translator {
        Translator {
            turn: TurnEvents::new(context),
            held_error: None,
            agent_messages: 0,
        }
    }

    /// The turn's shared state: its thread, whether it resumed, ended or
    /// succeeded, and the usage baseline.
    pub fn turn(&self) -> &TurnEvents {
        &self.turn
    }

    /// After the terminal event: whether `line` begins another turn of the
    /// same recording (`--record` appends every turn to one file). If so
    /// the translator goes on with that turn as part of the same run, and
    /// the caller drops the terminal event it held back.
    pub fn begins_next_turn(&mut self, line: &[u8]) -> bool {
        if !self.turn.is_ended() {
            return false;
        }
        let next = matches!(
            CodexEvent::parse(trim_ascii_whitespace(line)),
            Ok(CodexEvent::ThreadStarted { .. } | CodexEvent::TurnStarted)
        );
        if next {
            self.turn.reopen();
            self.held_error = None;
        }
        next
    }

    /// A line over the reader's cap was skipped; the host hears of it.
    pub fn oversized_line(&mut self, length: usize, out: &mut Vec<Event>) {
        self.turn.oversized_line(length, out);
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
        let event = match CodexEvent::parse(line) {
            Ok(event) => event,
            Err(error) => {
                self.release_held_error(out);
                self.turn.garbage(line, &error, out);
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
                        self.turn
                            .emit(Event::notice(NoticeLevel::Warning, held), out);
                        message
                    }
                    None => message,
                };
                self.turn.end_with(classify_failure(&message), out);
                LineOutcome::Handled
            }
            CodexEvent::Error { message } if is_retry_notice(&message) => {
                self.release_held_error(out);
                self.turn
                    .emit(Event::notice(NoticeLevel::Info, message), out);
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
        if self.turn.is_ended() {
            return;
        }
        let held = self.held_error.take();
        self.turn
            .finish(end, held, "turn.completed or turn.failed", out);
    }

    fn event(&mut self, event: CodexEvent, out: &mut Vec<Event>) -> LineOutcome {
        match event {
            CodexEvent::ThreadStarted { thread_id } => {
                if self.turn.session_id().is_some() {
                    return LineOutcome::Ignored(String::from("thread.started (again)"));
                }
                self.turn.start(thread_id, UsageSource::RunningTotals, out);
            }
            CodexEvent::TurnStarted => return LineOutcome::Ignored(String::from("turn.started")),
            CodexEvent::ItemStarted(item) => self.item_started(Item::from_value(item), out),
            CodexEvent::ItemUpdated(item) => match Item::from_value(item) {
                Item::TodoList { items } => self.turn.todo(items, out),
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

    fn completed(&mut self, usage: CodexUsage, out: &mut Vec<Event>) {
        let thread_usage = Usage {
            input_tokens: usage.input_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            cache_write_tokens: usage.cache_write_input_tokens,
            output_tokens: usage.output_tokens,
            reasoning_tokens: usage.reasoning_output_tokens,
        };
        let turn_usage = match self.turn.baseline() {
            Some(previous) => {
                let (usage, backwards) = thread_usage.since(&previous);
                if !backwards.is_empty() {
                    // The new total is kept as the baseline all the same.
                    let message = format!(
                        "codex's running usage total went backwards for {} (codex downgraded, or another process wrote the thread); counted as 0 for this turn",
                        backwards.join(", ")
                    );
                    self.turn
                        .emit(Event::notice(NoticeLevel::Warning, message), out);
                }
                usage
            }
            None => thread_usage,
        };
        self.turn.complete(turn_usage, thread_usage, out);
    }

    fn item_started(&mut self, item: Item, out: &mut Vec<Event>) {
        match item {
            Item::TodoList { items } => self.turn.todo(items, out),
            item => {
                let Some(tool) = tool_of(item) else {
                    return;
                };
                // Codex names a search only when it completes (`item.started`
                // has `query: ""`, action `other`).
                let unnamed_search =
                    tool.kind == ToolKind::WebSearch && tool.input["query"].as_str() == Some("");
                self.turn.open_tool(tool, !unnamed_search, out);
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
                self.turn.emit(Event::TextDelta { text }, out);
            }
            Item::Reasoning { text } => {
                if !text.trim().is_empty() {
                    self.turn.emit(Event::Reasoning { text }, out);
                }
            }
            Item::TodoList { items } => self.turn.todo(items, out),
            Item::Warning { message } => self
                .turn
                .emit(Event::notice(NoticeLevel::Warning, message), out),
            item => {
                if let Some(tool) = tool_of(item) {
                    self.turn.finish_tool(tool, out);
                }
            }
        }
    }

    fn release_held_error(&mut self, out: &mut Vec<Event>) {
        if let Some(message) = self.held_error.take() {
            self.turn
                .emit(Event::notice(NoticeLevel::Warning, message), out);
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

fn is_retry_notice(message: &str) -> bool {
    message.starts_with("Reconnecting...") || message.starts_with("Reconnecting…")
}

#[cfg(test)]
mod tests;
