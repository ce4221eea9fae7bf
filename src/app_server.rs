//! The `app-server` transport: `codex app-server` driven over stdio for
//! exactly one turn. `message` types what codex prints, `rpc` holds the
//! JSON-RPC conversation (what to send, when) and writes codex's stdin, and
//! `translate` turns codex's messages into canonical events, purely.
//! [`Driver`] puts the three together for `turn`.

pub mod message;
pub mod rpc;
pub mod translate;

use std::process::ChildStdin;
use std::time::{Duration, Instant};

use crate::child::{CodexProcess, StdoutMessage};
use crate::event::Event;
use crate::line_queue::RecvError;
use crate::translate::{LineOutcome, StreamEnd, TurnContext};
use message::Message;
use rpc::{Conversation, RpcWriter, TurnPlan};
use translate::Translator;

/// After `turn/interrupt`, how long codex gets to end the turn (it takes
/// ~10 ms) before its stdin is closed and the group stopped.
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);

/// `codex app-server`'s arguments: the adapter's own, then `extra_args`
/// (app-server takes codex's `-c key=value` overrides).
pub fn args(extra_args: &[String]) -> Vec<std::ffi::OsString> {
    let mut args = vec![std::ffi::OsString::from("app-server")];
    args.extend(extra_args.iter().map(Into::into));
    args
}

/// One app-server turn: the conversation, the translator, codex's stdin.
pub struct Driver {
    conversation: Conversation,
    translator: Translator,
    writer: RpcWriter,
}

impl Driver {
    pub fn new(
        plan: TurnPlan,
        context: TurnContext,
        stream_text: bool,
        stdin: ChildStdin,
    ) -> Driver {
        Driver {
            conversation: Conversation::new(plan),
            translator: Translator::new(context, stream_text),
            writer: RpcWriter::new(stdin),
        }
    }

    /// Says the first word (`initialize`).
    pub fn begin(&mut self, give_up: &dyn Fn() -> bool) {
        let opening = self.conversation.opening();
        self.send(&opening, give_up);
    }

    pub fn translator(&self) -> &Translator {
        &self.translator
    }

    /// Whether codex answered `initialize`: a codex that exits before that
    /// lost a race on its own database (several app-servers starting on a
    /// fresh CODEX_HOME), and a second start works.
    pub fn answered_initialize(&self) -> bool {
        self.conversation.answered_initialize()
    }

    /// One line of codex's stdout: answered where codex waits for an
    /// answer, translated into events.
    pub fn line(
        &mut self,
        line: &[u8],
        out: &mut Vec<Event>,
        give_up: &dyn Fn() -> bool,
    ) -> LineOutcome {
        let message = match Message::parse(crate::translate::trim_ascii_whitespace(line)) {
            Ok(message) => message,
            // Garbage, or an empty line: the translator says what it is.
            Err(_) => return self.translator.line(line, out),
        };
        for reply in self.conversation.on_message(&message) {
            self.send(&reply, give_up);
        }
        let outcome = self.translator.message(message, out);
        if self.translator.turn().is_ended() || self.conversation.is_done() {
            // Codex ends at once when its stdin closes.
            self.writer.close();
        }
        outcome
    }

    pub fn oversized_line(&mut self, length: usize, out: &mut Vec<Event>) {
        self.translator.oversized_line(length, out);
    }

    pub fn finish(&mut self, end: StreamEnd, out: &mut Vec<Event>) {
        self.translator.finish(end, out);
    }

    /// The turn is to stop (timeout, signal, host gone): `turn/interrupt`,
    /// a short wait for codex to end the turn (so it stores it and the
    /// thread stays resumable), then codex's stdin closed. What codex says
    /// meanwhile goes to the record, not to the host: the adapter's own
    /// error ends this turn.
    pub fn interrupt(&mut self, process: &CodexProcess) {
        let deadline = Instant::now() + INTERRUPT_GRACE;
        let give_up = || Instant::now() >= deadline;
        if let Some(interrupt) = self.conversation.interrupt() {
            self.send(&interrupt, &give_up);
            while !self.conversation.is_done() && !give_up() {
                let wait = deadline.saturating_duration_since(Instant::now());
                match process.lines.recv_timeout(wait) {
                    Ok(StdoutMessage::Line(line)) => {
                        if let Ok(message) =
                            Message::parse(crate::translate::trim_ascii_whitespace(&line))
                        {
                            for reply in self.conversation.on_message(&message) {
                                self.send(&reply, &give_up);
                            }
                        }
                    }
                    Ok(StdoutMessage::Oversized(_)) => {}
                    Ok(StdoutMessage::End | StdoutMessage::Failed(_))
                    | Err(RecvError::Timeout | RecvError::Disconnected) => break,
                }
            }
        }
        self.writer.close();
    }

    /// The turn is over: codex's stdin closes, and app-server exits.
    pub fn close(&mut self) {
        self.writer.close();
    }

    fn send(&mut self, message: &serde_json::Value, give_up: &dyn Fn() -> bool) {
        // A codex that is gone or stopped reading: its stdout and exit
        // tell the turn what happened.
        if let Err(error) = self.writer.send(message, give_up) {
            crate::log::debug!("writing to codex's stdin failed: {error}");
            self.writer.close();
        }
    }
}
