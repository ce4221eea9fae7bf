//! `replay`: a recorded codex stream through exactly the translation of
//! `turn`, without starting anything. `resumed` is false and the previous
//! usage totals are unknown, so `usage` equals the running totals.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::process::ExitCode;

use crate::cli::{ReplayArgs, ReplayInput};
use crate::event::{ErrorCode, Event, TurnError};
use crate::line_reader::{LineRead, LineReader};
use crate::output::{exit_code, finish_with, Output, WriteLimits};
use crate::signals;
use crate::translate::{StreamEnd, TurnContext, DEFAULT_OUTPUT_LIMIT};
use crate::transport::Recording;

pub fn run(args: ReplayArgs) -> ExitCode {
    signals::install(false);
    let mut output = Output::stdout(args.output);
    // A signal also ends a wait for a host that does not read.
    output.writer_mut().set_limits(WriteLimits::stoppable(None));
    let input: Box<dyn BufRead> = match &args.input {
        Some(ReplayInput::File(path)) => match File::open(path) {
            Ok(file) => Box::new(BufReader::with_capacity(256 * 1024, file)),
            Err(error) => {
                let message = format!("replay: cannot open {}: {error}", path.display());
                crate::log::say(format_args!("{message}"));
                return finish_with(
                    &mut output,
                    Event::Error(TurnError::new(ErrorCode::Usage, message)),
                );
            }
        },
        Some(ReplayInput::Stdin) => Box::new(io::stdin().lock()),
        None => {
            let message = "replay needs a FILE (or `-` for stdin)";
            crate::log::say(format_args!("{message}"));
            return finish_with(
                &mut output,
                Event::Error(TurnError::new(ErrorCode::Usage, message)),
            );
        }
    };
    let model = args.model.unwrap_or_else(|| String::from("codex"));
    let stream_text = !args.output.core_events_only;
    match translate_stream(input, model, stream_text, &mut output) {
        Ok(completed) => exit_code(completed),
        // Stopped before a line was begun: the host gets a bounded time
        // for the terminal event.
        Err(error) if error.kind() == io::ErrorKind::Interrupted => {
            let now = std::time::Instant::now();
            output.writer_mut().set_limits(WriteLimits::grace_from(now));
            let signal = signals::received().unwrap_or(0);
            let error = signals::cancelled(signal, "the replay was stopped");
            finish_with(&mut output, Event::Error(error))
        }
        Err(_) => exit_code(false),
    }
}

/// Translates a whole stream into `output`; `Ok(true)` after `message_end`.
/// An `Err` means `output` itself failed (the host went away).
///
/// A stream of several turns (a `--record` file appended to turn after
/// turn) is one run: every turn's events in order, one `message_start`, and
/// one terminal event at the end, the last turn's. Each turn's terminal
/// event is held back until the stream shows whether another turn follows.
///
/// Which transport recorded the stream is told by its first line;
/// `stream_text` is false for `--events core` (app-server recordings then
/// give each message once it is complete).
pub fn translate_stream<W: io::Write>(
    input: impl BufRead,
    model: String,
    stream_text: bool,
    output: &mut Output<W>,
) -> io::Result<bool> {
    let mut context = Some(TurnContext {
        model,
        resumed_thread: None,
        previous_totals: None,
        notices: Vec::new(),
        output_limit: DEFAULT_OUTPUT_LIMIT,
    });
    // Chosen by the first line (an empty stream is exec's).
    let mut chosen: Option<Recording> = None;
    let mut lines = LineReader::new(input, None).with_stop(|| signals::received().is_some());
    let mut line = Vec::new();
    let mut events = Vec::new();
    let mut held_terminal: Option<Event> = None;
    let end = loop {
        if let Some(signal) = signals::received() {
            break StreamEnd::Stopped(signals::cancelled(signal, "the replay was stopped"));
        }
        let read = lines.next_line(&mut line);
        let translator = chosen.get_or_insert_with(|| {
            let first: &[u8] = match read {
                Ok(LineRead::Line) => &line,
                _ => b"",
            };
            let context = context.take().expect("one translator per run");
            Recording::for_first_line(first, context, stream_text)
        });
        match read {
            Ok(LineRead::Line) => {
                if translator.turn().is_ended() && !translator.begins_next_turn(&line) {
                    continue; // after the end, only a new turn counts
                }
                held_terminal = None;
                translator.line(&line, &mut events);
            }
            Ok(LineRead::Oversized(length)) => translator.oversized_line(length, &mut events),
            Ok(LineRead::End) => break StreamEnd::Closed,
            // A signal: checked at the top of the loop.
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                let message = format!("reading the recorded stream failed: {error}");
                break StreamEnd::Stopped(TurnError::new(ErrorCode::Protocol, message));
            }
        }
        if translator.turn().is_ended() && held_terminal.is_none() {
            held_terminal = events.pop();
        }
        for event in events.drain(..) {
            output.emit(&event)?;
        }
    };
    match (held_terminal, end) {
        // Stopped after a turn had ended: the stop is the run's end.
        (Some(_), StreamEnd::Stopped(error)) => events.push(Event::Error(error)),
        (Some(terminal), _) => events.push(terminal),
        (None, end) => {
            let translator = chosen.get_or_insert_with(|| {
                let context = context.take().expect("one translator per run");
                Recording::for_first_line(b"", context, stream_text)
            });
            translator.finish(end, &mut events)
        }
    }
    let completed = matches!(events.last(), Some(Event::MessageEnd { .. }));
    for event in events.drain(..) {
        output.emit(&event)?;
    }
    Ok(completed)
}
