//! Writing events: JSON Lines flushed per event (the host format), or text
//! for a person; `--events core` filtering. Decides nothing about what to emit.

use std::io::{self, IsTerminal, Write};

use crate::cli::{Format, OutputArgs};
use crate::event::{Event, NoticeLevel, ToolStatus, Usage};

pub struct Output<W: Write> {
    writer: W,
    text: bool,
    core_only: bool,
    color: bool,
    /// Reused serialisation buffer: one write (and flush) per event.
    buf: Vec<u8>,
    /// Text mode: whether the cursor is at the start of a line.
    at_line_start: bool,
}

/// The exit status of `turn` and `replay`: 0 after `message_end` only.
pub fn exit_code(completed: bool) -> std::process::ExitCode {
    if completed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Writes a lone terminal event (nothing ran) and returns the exit status
/// it implies.
pub fn finish_with<W: Write>(output: &mut Output<W>, event: Event) -> std::process::ExitCode {
    let _ = output.emit(&event);
    exit_code(matches!(event, Event::MessageEnd { .. }))
}

/// Prints text for `doctor`, `models`, `session`, `--help`, `--version`.
/// A reader that went away (`| head`) ends the output quietly.
pub fn print_text(text: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

impl Output<io::Stdout> {
    /// Our stdout, with `auto` resolved against it being a terminal.
    pub fn stdout(args: OutputArgs) -> Output<io::Stdout> {
        let stdout = io::stdout();
        let terminal = stdout.is_terminal();
        let text = match args.format {
            Format::Auto => terminal,
            Format::Jsonl => false,
            Format::Text => true,
        };
        let color = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Output::new(stdout, text, args.core_events_only, color)
    }
}

impl<W: Write> Output<W> {
    pub fn new(writer: W, text: bool, core_only: bool, color: bool) -> Output<W> {
        Output {
            writer,
            text,
            core_only,
            color,
            buf: Vec::with_capacity(1024),
            at_line_start: true,
        }
    }

    /// Writes one event and flushes it: the host streams events as they come.
    pub fn emit(&mut self, event: &Event) -> io::Result<()> {
        if self.core_only && !event.is_core() {
            return Ok(());
        }
        self.buf.clear();
        if self.text {
            self.render_text(event);
        } else {
            serde_json::to_writer(&mut self.buf, event).map_err(io::Error::other)?;
            self.buf.push(b'\n');
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        self.writer.write_all(&self.buf)?;
        self.writer.flush()
    }

    pub fn into_inner(self) -> W {
        self.writer
    }

    fn render_text(&mut self, event: &Event) {
        match event {
            Event::MessageStart {
                session_id,
                resumed,
                model,
            } => {
                let how = if *resumed { "resumed" } else { "new" };
                self.dim_line(&format!("── {how} thread {session_id} · model {model}"));
            }
            Event::TextDelta { text } => {
                self.buf.extend_from_slice(text.as_bytes());
                self.at_line_start = text.ends_with('\n');
            }
            Event::TextReset { text } => {
                // A terminal cannot take text back: say so, then show the
                // turn's text as it now stands.
                self.dim_line("↺ codex restarted its reply; it now reads:");
                self.buf.extend_from_slice(text.as_bytes());
                self.at_line_start = text.is_empty() || text.ends_with('\n');
            }
            Event::Reasoning { text } => self.dim_line(&format!("thinking: {}", one_line(text))),
            Event::ToolCall { name, input, .. } => {
                let shown = match input.get("command").and_then(|c| c.as_str()) {
                    Some(command) => command.to_string(),
                    None => input.to_string(),
                };
                self.dim_line(&format!("▸ {name} {}", one_line(&shown)));
            }
            Event::ToolResult {
                status, exit_code, ..
            } => {
                let exit = match exit_code {
                    Some(Some(code)) => format!(" (exit {code})"),
                    _ => String::new(),
                };
                match status {
                    ToolStatus::Completed => {}
                    ToolStatus::Failed => self.dim_line(&format!("  ✗ failed{exit}")),
                    ToolStatus::Declined => self.dim_line("  ✗ declined"),
                }
            }
            Event::Todo { items } => {
                for item in items {
                    let mark = if item.done { "☑" } else { "☐" };
                    self.dim_line(&format!("{mark} {}", item.text));
                }
            }
            Event::Notice { level, message } => {
                let tag = match level {
                    NoticeLevel::Info => "note",
                    NoticeLevel::Warning => "warning",
                };
                self.dim_line(&format!("{tag}: {message}"));
            }
            Event::MessageEnd {
                usage,
                thread_usage,
                ..
            } => {
                self.end_line();
                let line = format!(
                    "── usage: {} · thread so far: {}",
                    usage_text(usage),
                    usage_text(thread_usage)
                );
                self.dim_line(&line);
            }
            Event::Error(error) => {
                self.end_line();
                let line = format!("error [{}]: {}", error.code.as_str(), error.message);
                self.styled_line(&line, "\x1b[31m");
                if let Some(detail) = &error.detail {
                    self.dim_line(detail);
                }
            }
        }
    }

    fn end_line(&mut self) {
        if !self.at_line_start {
            self.buf.push(b'\n');
            self.at_line_start = true;
        }
    }

    fn dim_line(&mut self, line: &str) {
        self.styled_line(line, "\x1b[2m");
    }

    fn styled_line(&mut self, line: &str, style: &str) {
        self.end_line();
        if self.color {
            self.buf.extend_from_slice(style.as_bytes());
        }
        self.buf.extend_from_slice(line.as_bytes());
        if self.color {
            self.buf.extend_from_slice(b"\x1b[0m");
        }
        self.buf.push(b'\n');
    }
}

fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    let mut shown: String = first.chars().take(160).collect();
    if shown.len() < text.trim_end().len() {
        shown.push('…');
    }
    shown
}

fn usage_text(usage: &Usage) -> String {
    format!(
        "{} in ({} cached), {} out ({} reasoning)",
        usage.input_tokens, usage.cached_input_tokens, usage.output_tokens, usage.reasoning_tokens
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ErrorCode, TurnError};

    #[test]
    fn jsonl_is_one_object_per_line_and_core_filters() {
        let mut output = Output::new(Vec::new(), false, true, false);
        output
            .emit(&Event::notice(NoticeLevel::Info, "skipped in core"))
            .unwrap();
        output
            .emit(&Event::TextDelta {
                text: "a\nb".into(),
            })
            .unwrap();
        output
            .emit(&Event::Error(TurnError::new(ErrorCode::Timeout, "late")))
            .unwrap();
        let text = String::from_utf8(output.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], r#"{"type":"text_delta","text":"a\nb"}"#);
        assert!(lines[1].starts_with(r#"{"type":"error","code":"timeout""#));
    }

    #[test]
    fn text_mode_puts_tool_lines_on_their_own_line_without_color_when_asked() {
        let mut output = Output::new(Vec::new(), true, false, false);
        output
            .emit(&Event::TextDelta {
                text: "Let me look.".into(),
            })
            .unwrap();
        let call = Event::ToolCall {
            id: "item_1".into(),
            kind: crate::event::ToolKind::Command,
            name: "shell".into(),
            input: serde_json::json!({"command": "ls"}),
        };
        output.emit(&call).unwrap();
        let text = String::from_utf8(output.into_inner()).unwrap();
        assert_eq!(text, "Let me look.\n▸ shell ls\n");
    }
}
