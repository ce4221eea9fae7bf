//! `replay`: a recorded codex stream through exactly the translation of
//! `turn`, without starting anything. `resumed` is false and the previous
//! usage totals are unknown, so `usage` equals the running totals.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::process::ExitCode;

use crate::cli::{ReplayArgs, ReplayInput};
use crate::event::{ErrorCode, Event, TurnError};
use crate::exec::translate::{StreamEnd, TurnContext, DEFAULT_OUTPUT_LIMIT};
use crate::line_reader::{LineRead, LineReader};
use crate::output::{exit_code, finish_with, Output};
use crate::signals;
use crate::transport::Recording;

pub fn run(args: ReplayArgs) -> ExitCode {
    signals::install(false);
    let mut output = Output::stdout(args.output);
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
        Err(_) => exit_code(false),
    }
}

/// Translates a whole stream into `output`; `Ok(true)` after `message_end`.
/// An `Err` means `output` itself failed (the host went away). Which
/// transport recorded the stream is told by its first line;
/// `stream_text` is false for `--events core` (app-server recordings then
/// give each message once it is complete).
pub fn translate_stream<W: io::Write>(
    input: impl BufRead,
    model: String,
    stream_text: bool,
    output: &mut Output<W>,
) -> io::Result<bool> {
    let context = TurnContext {
        model,
        resumed_thread: None,
        previous_totals: None,
        notices: Vec::new(),
        output_limit: DEFAULT_OUTPUT_LIMIT,
    };
    let mut lines = LineReader::new(input, None);
    let mut line = Vec::new();
    // The first line tells which transport recorded the stream.
    let first = loop {
        match lines.next_line(&mut line) {
            Ok(LineRead::Line) => break Ok(true),
            Ok(LineRead::Oversized(length)) => break Err(length),
            Ok(LineRead::End) => break Ok(false),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {
                if signals::received().is_some() {
                    break Ok(false);
                }
            }
            Err(_) => break Ok(false),
        }
    };
    let mut translator = Recording::for_first_line(&line, context, stream_text);
    let mut events = Vec::new();
    match first {
        Ok(true) => {
            translator.line(&line, &mut events);
        }
        Ok(false) => {}
        Err(length) => translator.oversized_line(length, &mut events),
    }
    let end = loop {
        for event in events.drain(..) {
            output.emit(&event)?;
        }
        if translator.is_ended() {
            return Ok(translator.succeeded());
        }
        if let Some(signal) = signals::received() {
            break StreamEnd::Stopped(signals::cancelled(signal, "the replay was stopped"));
        }
        match lines.next_line(&mut line) {
            Ok(LineRead::Line) => {
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
    };
    translator.finish(end, &mut events);
    for event in events.drain(..) {
        output.emit(&event)?;
    }
    Ok(translator.succeeded())
}
