//! Writing events: JSON Lines flushed per event (the host format), or text
//! for a person; `--events core` filtering. Decides nothing about what to emit.
//!
//! Our stdout is written through [`HostPipe`]: the host may read slowly or
//! hand us a non-blocking pipe, and neither may lose a line or pin a turn.

use std::io::{self, IsTerminal, Write};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

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

impl Output<HostPipe> {
    /// Our stdout, with `auto` resolved against it being a terminal.
    pub fn stdout(args: OutputArgs) -> Output<HostPipe> {
        let terminal = io::stdout().is_terminal();
        let stdout = HostPipe::stdout();
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
    /// Through a [`HostPipe`] the error's kind tells what happened:
    /// `BrokenPipe` the host is gone; `Interrupted` a stop (signal or
    /// deadline) came before the line was begun, so nothing was written;
    /// `TimedOut` the host stopped reading in the middle of the line.
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

    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.writer
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
                self.buf.extend_from_slice(visible(text).as_bytes());
                self.at_line_start = text.ends_with('\n');
            }
            Event::TextReset { text } => {
                // A terminal cannot take text back: say so, then show the
                // turn's text as it now stands.
                self.dim_line("↺ codex restarted its reply; it now reads:");
                self.buf.extend_from_slice(visible(text).as_bytes());
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

    /// Every line but the text goes through here, so every piece of it
    /// (codex's ids, the model's commands, codex's stderr in `detail`) has
    /// its control characters made visible; `style` is our own escape.
    fn styled_line(&mut self, line: &str, style: &str) {
        self.end_line();
        if self.color {
            self.buf.extend_from_slice(style.as_bytes());
        }
        self.buf.extend_from_slice(visible(line).as_bytes());
        if self.color {
            self.buf.extend_from_slice(b"\x1b[0m");
        }
        self.buf.push(b'\n');
    }
}

/// How long, once a turn is being stopped, the host still gets to take the
/// rest of the stream (the line being written, the closing events and the
/// terminal one) before the adapter gives up on it and exits.
pub const HOST_GRACE: Duration = Duration::from_secs(3);

/// How often a wait for the host looks at the signals and the clock.
const WRITE_TICK: Duration = Duration::from_millis(50);

/// When waiting for the host must stop.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteLimits {
    /// Stop waiting at this instant (the turn's deadline).
    pub deadline: Option<Instant>,
    /// Stop waiting once SIGTERM, SIGINT or SIGHUP has been received.
    pub signals: bool,
}

impl WriteLimits {
    /// While the turn runs: stop waiting on a signal or at `deadline`.
    pub fn stoppable(deadline: Option<Instant>) -> WriteLimits {
        WriteLimits {
            deadline,
            signals: true,
        }
    }

    /// The end of a run is being written: no stopping for signals any
    /// more, only a bounded wait ([`HOST_GRACE`] from `from`) for the host.
    pub fn grace_from(from: Instant) -> WriteLimits {
        WriteLimits {
            deadline: Some(from + HOST_GRACE),
            signals: false,
        }
    }
}

/// Our stdout as the host hands it to us: a pipe it may read slowly, may
/// never read, or may have made non-blocking (many Node hosts do). Every
/// write waits for room with `poll`, looking at the signals and the clock
/// while it waits, so a stuck host can never pin a turn: `EAGAIN` is waited
/// on, only `EPIPE` or `POLLERR`/`POLLHUP` mean the host is gone.
///
/// A line is written whole or not at all: a stop that comes before its
/// first byte leaves it unwritten (`Interrupted`); one that comes in the
/// middle gives the host [`HOST_GRACE`] to take the rest (`TimedOut` when
/// it does not).
///
/// No write may block, yet the host's descriptor must keep its flags (it
/// is shared with the host). A pipe is therefore reopened through
/// `/proc/self/fd` as a description of our own, non-blocking; a socket is
/// written with `MSG_DONTWAIT`; anything else that can block (a terminal,
/// or a pipe that cannot be reopened) gets pieces of at most `PIPE_BUF`
/// after `poll` said there is room, which the kernel never blocks on.
pub struct HostPipe {
    fd: RawFd,
    /// Our own non-blocking description of the host's pipe, if made.
    _reopened: Option<std::os::fd::OwnedFd>,
    socket: bool,
    limits: WriteLimits,
    /// The most one `write` may carry.
    piece: usize,
}

impl HostPipe {
    pub fn stdout() -> HostPipe {
        HostPipe::new(libc::STDOUT_FILENO)
    }

    pub fn new(fd: RawFd) -> HostPipe {
        use std::os::fd::FromRawFd;
        // SAFETY: fstat and fcntl on a descriptor number, into plain data.
        let (kind, flags) = unsafe {
            let mut stat: libc::stat = std::mem::zeroed();
            let kind = match libc::fstat(fd, &mut stat) {
                0 => stat.st_mode & libc::S_IFMT,
                _ => 0,
            };
            (kind, libc::fcntl(fd, libc::F_GETFL))
        };
        let nonblocking = flags >= 0 && flags & libc::O_NONBLOCK != 0;
        let mut pipe = HostPipe {
            fd,
            _reopened: None,
            socket: kind == libc::S_IFSOCK,
            limits: WriteLimits::default(),
            piece: usize::MAX,
        };
        if nonblocking || pipe.socket {
            return pipe;
        }
        if kind == libc::S_IFIFO {
            let path = format!("/proc/self/fd/{fd}\0");
            let mode = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
            // SAFETY: a NUL-terminated path; a non-negative result is ours.
            let own = unsafe { libc::open(path.as_ptr().cast(), mode) };
            if own >= 0 {
                pipe.fd = own;
                // SAFETY: just opened, owned by nobody else.
                pipe._reopened = Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(own) });
                return pipe;
            }
        }
        // SAFETY: isatty on a descriptor number.
        let terminal = kind == libc::S_IFCHR && unsafe { libc::isatty(fd) } == 1;
        if kind == libc::S_IFIFO || terminal {
            pipe.piece = libc::PIPE_BUF;
        }
        pipe
    }

    pub fn set_limits(&mut self, limits: WriteLimits) {
        self.limits = limits;
    }

    fn stop_wanted(&self, now: Instant) -> bool {
        self.limits.signals && crate::signals::received().is_some()
            || self.limits.deadline.is_some_and(|deadline| now >= deadline)
    }

    /// Waits until the host can take bytes. A stop wanted before the line
    /// was begun (`stoppable`) ends the wait at once; one wanted in the
    /// middle of a line starts the host's grace (`give_up`), checked on
    /// every tick, so a host that never reads cannot hold the wait open.
    /// `Ok(true)`: there is room.
    fn wait_for_room(&self, stoppable: bool, give_up: &mut Option<Instant>) -> io::Result<bool> {
        loop {
            let now = Instant::now();
            if give_up.is_none() && self.stop_wanted(now) {
                if stoppable {
                    return Ok(false);
                }
                *give_up = Some(now + HOST_GRACE);
            }
            if give_up.is_some_and(|end| now >= end) {
                return Ok(false);
            }
            let mut pollfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            let millis = WRITE_TICK.as_millis() as libc::c_int;
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
            if ready < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if pollfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if pollfd.revents & libc::POLLNVAL != 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            if pollfd.revents & libc::POLLOUT != 0 {
                return Ok(true);
            }
        }
    }
}

impl Write for HostPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, line: &[u8]) -> io::Result<()> {
        let mut written = 0;
        // Set once a stop is wanted in the middle of the line.
        let mut give_up: Option<Instant> = None;
        while written < line.len() {
            if !self.wait_for_room(written == 0, &mut give_up)? {
                return Err(match written {
                    0 => io::Error::new(
                        io::ErrorKind::Interrupted,
                        "the turn is being stopped; the line was not begun",
                    ),
                    _ => io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the host stopped reading in the middle of a line",
                    ),
                });
            }
            let rest = &line[written..];
            let piece = &rest[..rest.len().min(self.piece)];
            // SAFETY: writes from a valid slice.
            let result = unsafe {
                if self.socket {
                    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
                    libc::send(self.fd, piece.as_ptr().cast(), piece.len(), flags)
                } else {
                    libc::write(self.fd, piece.as_ptr().cast(), piece.len())
                }
            };
            if result >= 0 {
                written += result as usize;
                continue;
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                // Full after all (non-blocking), or a signal: wait again.
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                Some(libc::EPIPE) => return Err(io::ErrorKind::BrokenPipe.into()),
                _ => return Err(error),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `text` with every character that could steer a terminal shown as an
/// escape instead: C0 controls but newline and tab (`\x1b`, `\r`), DEL, C1
/// controls (`\u{9b}` starts a sequence on some terminals) and the
/// bidirectional overrides that reorder what a line seems to say. Only the
/// adapter's own colours reach the terminal as escapes.
pub fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(steers_terminal) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\r' => shown.push_str("\\r"),
            c if steers_terminal(c) && (c as u32) < 0x80 => {
                shown.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if steers_terminal(c) => shown.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => shown.push(c),
        }
    }
    std::borrow::Cow::Owned(shown)
}

fn steers_terminal(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            true
        }
        _ => false,
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
    use std::io::Read;

    #[test]
    fn a_text_reset_is_said_and_its_control_characters_shown_visibly() {
        let mut output = Output::new(Vec::new(), true, false, false);
        output
            .emit(&Event::TextDelta { text: "Hel".into() })
            .unwrap();
        output
            .emit(&Event::TextReset {
                text: "Hello \x1b[2J".into(),
            })
            .unwrap();
        let text = String::from_utf8(output.into_inner()).unwrap();
        assert!(text.contains("restarted its reply"), "{text:?}");
        assert!(!text.contains('\x1b'), "{text:?}");
    }

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

    /// A pipe (blocking, as a host would hand it) filled to the brim.
    fn full_pipe() -> (std::fs::File, RawFd) {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors; we own them from here on.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            let flags = libc::fcntl(fds[1], libc::F_GETFL);
            libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
            while libc::write(fds[1], b"#".as_ptr().cast(), 1) == 1 {}
            libc::fcntl(fds[1], libc::F_SETFL, flags);
            (std::fs::File::from_raw_fd(fds[0]), fds[1])
        }
    }

    #[test]
    fn a_full_pipe_is_waited_on_and_a_stop_before_the_line_writes_nothing() {
        let (mut read_end, write_fd) = full_pipe();
        let mut pipe = HostPipe::new(write_fd);
        // The host's own descriptor keeps blocking; ours does not.
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(write_fd, libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0);
        pipe.set_limits(WriteLimits::stoppable(Some(
            Instant::now() + Duration::from_millis(100),
        )));
        let error = pipe.write_all(b"{\"type\":\"late\"}\n").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Interrupted);
        // The host reads: the next line is waited on, then written whole.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            read_end.read_to_end(&mut all).unwrap();
            all
        });
        pipe.set_limits(WriteLimits::grace_from(Instant::now()));
        pipe.write_all(b"{\"type\":\"next\"}\n").unwrap();
        drop(pipe);
        // SAFETY: closing the write end we own: the reader sees EOF.
        unsafe { libc::close(write_fd) };
        let all = reader.join().unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(
            text.trim_start_matches('#') == "{\"type\":\"next\"}\n",
            "{text}"
        );
    }

    #[test]
    fn a_closed_pipe_is_the_host_gone() {
        let (read_end, write_fd) = full_pipe();
        drop(read_end);
        let mut pipe = HostPipe::new(write_fd);
        let error = pipe.write_all(b"x\n").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        // SAFETY: closing the write end we own.
        unsafe { libc::close(write_fd) };
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

    #[test]
    fn text_mode_shows_control_characters_and_only_our_colours_are_escapes() {
        let mut output = Output::new(Vec::new(), true, false, true);
        let hostile = "title\x1b]0;owned\x07 clip\x1b]52;c;aGk=\x07 \u{9b}2J \u{202e}txt.exe";
        output
            .emit(&Event::TextDelta {
                text: format!("{hostile}\nnext line\tok\n"),
            })
            .unwrap();
        let call = Event::ToolCall {
            id: "item_1".into(),
            kind: crate::event::ToolKind::Command,
            name: "shell".into(),
            input: serde_json::json!({"command": "rm -rf ~/x\recho harmless"}),
        };
        output.emit(&call).unwrap();
        output
            .emit(&Event::notice(NoticeLevel::Warning, "\x1b[2Jcleared"))
            .unwrap();
        output
            .emit(&Event::Error(
                TurnError::new(ErrorCode::CodexCrashed, "crashed\x1b[8m")
                    .with_detail("stderr \x1b]52;c;eA==\x07".to_string()),
            ))
            .unwrap();
        let text = String::from_utf8(output.into_inner()).unwrap();
        assert!(
            text.contains("title\\x1b]0;owned\\x07 clip\\x1b]52;c;aGk=\\x07 \\u{9b}2J \\u{202e}txt.exe\nnext line\tok\n"),
            "{text:?}"
        );
        assert!(text.contains("rm -rf ~/x\\recho harmless"), "{text:?}");
        assert!(text.contains("\\x1b[2Jcleared"), "{text:?}");
        assert!(text.contains("stderr \\x1b]52;c;eA==\\x07"), "{text:?}");
        // Every escape left is one of ours: dim, red, reset.
        let rest = text
            .replace("\x1b[2m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[0m", "");
        assert!(!rest.chars().any(steers_terminal), "{rest:?}");
    }
}
