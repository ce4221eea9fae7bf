//! `turn`: one user turn of one workspace. Checks everything that can be
//! checked before codex starts, runs codex, feeds its stdout through the
//! translator, keeps the session file current, and ends with exactly one
//! terminal event whatever happens.

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use crate::child::{self, CodexProcess, StdoutMessage};
use crate::cli::{MessageArg, TurnArgs};
use crate::config::{Config, ModelChoice, CONFIG_ENV};
use crate::event::{ErrorCode, Event, NoticeLevel, TurnError, Usage};
use crate::exec::translate::{StreamEnd, TurnContext, DEFAULT_OUTPUT_LIMIT};
use crate::locate::{self, CodexBinary};
use crate::log;
use crate::output::{exit_code, finish_with, Output};
use crate::session::{self, Stored, TurnLock};
use crate::signals;
use crate::transport::{self, Conversation, Launch};

/// Codex refuses prompts over this many characters (Unicode scalars).
pub const MAX_MESSAGE_CHARS: usize = 1_048_576;

/// How often the turn's loop looks at signals and the clock while codex is
/// silent. Events themselves are passed on the moment they arrive.
const TICK: Duration = Duration::from_millis(50);

/// After codex printed its terminal event, how long it gets to exit.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Everything a turn needs, checked before codex starts.
struct Prepared {
    config: Config,
    model: ModelChoice,
    workspace: PathBuf,
    message: String,
    binary: CodexBinary,
    images: Vec<PathBuf>,
    record: Option<std::fs::File>,
    timeout: Duration,
    /// `--events all`: text as codex streams it (app-server).
    stream_text: bool,
    stored: Stored,
    _lock: TurnLock,
}

pub fn run(args: TurnArgs) -> ExitCode {
    let started = Instant::now();
    signals::install(true);
    let mut output = Output::stdout(args.output);
    let prepared = match prepare(args) {
        Ok(prepared) => prepared,
        Err(error) => {
            if error.code == ErrorCode::Usage {
                log::say(format_args!("{}", error.message));
            }
            return finish_with(&mut output, Event::Error(error));
        }
    };
    let code = execute(prepared, &mut output);
    log::debug!("turn took {:?}", started.elapsed());
    code
}

fn prepare(args: TurnArgs) -> Result<Prepared, TurnError> {
    let stream_text = !args.output.core_events_only;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let env_config = std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let (config, source) = Config::load(args.config.as_deref(), env_config, home.clone())?;
    log::debug!("config: {source:?}");
    let model = config.model(args.model.as_deref())?;
    let Some(workspace) = args.workspace else {
        return Err(TurnError::new(
            ErrorCode::Usage,
            "turn needs --workspace DIR (see `turn --help`)",
        ));
    };
    check_workspace(&workspace)?;
    let message = read_message(args.message)?;
    let lock = match session::lock(&workspace) {
        Ok(lock) => lock,
        Err(session::LockError::Busy) => {
            return Err(TurnError::new(
                ErrorCode::SessionBusy,
                format!(
                    "another turn is running in workspace {}; retry when it has ended",
                    workspace.display()
                ),
            ));
        }
        Err(session::LockError::Io(error)) => {
            return Err(TurnError::new(
                ErrorCode::Workspace,
                format!(
                    "cannot create the turn lock in workspace {}: {error}",
                    workspace.display()
                ),
            ));
        }
    };
    let binary = locate::locate(&config.binary, std::env::var_os("PATH"), home.as_deref())?;
    let record = match &args.record {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| {
                    TurnError::new(
                        ErrorCode::Usage,
                        format!("cannot open --record file {}: {error}", path.display()),
                    )
                })?,
        ),
        None => None,
    };
    // Codex runs in the workspace: relative paths must not move with it.
    let mut images = Vec::with_capacity(args.images.len());
    for image in &args.images {
        match std::fs::canonicalize(image) {
            Ok(path) if path.is_file() => images.push(path),
            _ => {
                return Err(TurnError::new(
                    ErrorCode::Usage,
                    format!("--image {}: no such file", image.display()),
                ));
            }
        }
    }
    let timeout = Duration::from_secs(args.timeout_secs.unwrap_or(config.timeout_secs));
    let stored = session::read(&workspace);
    Ok(Prepared {
        config,
        model,
        workspace,
        message,
        binary,
        images,
        record,
        timeout,
        stream_text,
        stored,
        _lock: lock,
    })
}

fn check_workspace(workspace: &Path) -> Result<(), TurnError> {
    let shown = workspace.display();
    let meta = std::fs::metadata(workspace).map_err(|error| {
        TurnError::new(
            ErrorCode::Workspace,
            format!("workspace {shown} is not usable: {error}"),
        )
    })?;
    if !meta.is_dir() {
        return Err(TurnError::new(
            ErrorCode::Workspace,
            format!("workspace {shown} is not a directory"),
        ));
    }
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(workspace.as_os_str().as_bytes()).map_err(|_| {
        TurnError::new(
            ErrorCode::Workspace,
            format!("workspace {shown} has a NUL in its path"),
        )
    })?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let error = io::Error::last_os_error();
        return Err(TurnError::new(
            ErrorCode::Workspace,
            format!("workspace {shown} is not writable: {error}"),
        ));
    }
    Ok(())
}

/// The user's message, checked as codex would check it, before codex runs.
fn read_message(arg: Option<MessageArg>) -> Result<String, TurnError> {
    let bytes = match arg {
        None => {
            return Err(TurnError::new(
                ErrorCode::Usage,
                "turn needs a MESSAGE (after `--`), or `-` to read it from stdin",
            ));
        }
        Some(MessageArg::Text(text)) => os_string_bytes(text),
        Some(MessageArg::Stdin) => {
            let mut bytes = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|error| {
                    TurnError::new(
                        ErrorCode::Usage,
                        format!("cannot read the message from stdin: {error}"),
                    )
                })?;
            bytes
        }
    };
    let message = String::from_utf8(bytes).map_err(|error| {
        TurnError::new(
            ErrorCode::Usage,
            format!(
                "the message is not valid UTF-8 (invalid byte at offset {}); convert it to UTF-8 and retry",
                error.utf8_error().valid_up_to()
            ),
        )
    })?;
    if message.trim().is_empty() {
        return Err(TurnError::new(
            ErrorCode::Usage,
            "the message is empty or only whitespace; codex needs a prompt",
        ));
    }
    let chars = message.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(TurnError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "the message has {chars} characters; codex accepts at most {MAX_MESSAGE_CHARS}"
            ),
        ));
    }
    Ok(message)
}

fn os_string_bytes(text: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    text.into_vec()
}

/// Where the turn starts from, after reading the session file.
struct Start {
    resume: Option<String>,
    previous_totals: Option<Usage>,
    notices: Vec<Event>,
}

fn start_from(stored: &Stored, workspace: &Path) -> Start {
    match stored {
        Stored::Fresh => Start {
            resume: None,
            previous_totals: Some(Usage::default()),
            notices: Vec::new(),
        },
        Stored::Thread { thread_id, totals } => Start {
            resume: Some(thread_id.clone()),
            previous_totals: *totals,
            notices: Vec::new(),
        },
        Stored::Corrupt { reason } => {
            let kept = match session::keep_corrupt(workspace) {
                Ok(kept) => format!("kept as {}", kept.display()),
                Err(error) => format!("could not be moved aside: {error}"),
            };
            let message = format!(
                "the session file {} is unusable ({reason}); starting a new codex thread; the old file {kept}",
                session::session_path(workspace).display()
            );
            log::warning!("{message}");
            Start {
                resume: None,
                previous_totals: Some(Usage::default()),
                notices: vec![Event::notice(NoticeLevel::Warning, message)],
            }
        }
    }
}

/// How a run of the translation loop ended.
enum LoopEnd {
    /// The translator printed the terminal event.
    Terminal,
    /// Codex's stdout ended without a terminal event.
    StreamClosed,
    /// The adapter decided to stop codex.
    Stop(TurnError),
    /// Our stdout is gone: the host stopped listening.
    HostGone,
}

fn execute(prepared: Prepared, output: &mut Output<io::Stdout>) -> ExitCode {
    child::become_subreaper();
    let deadline = Instant::now() + prepared.timeout;
    let start = start_from(&prepared.stored, &prepared.workspace);
    let resumed_thread = start.resume.clone().unwrap_or_default();
    let mut start = start;
    // Several app-servers started at once on a fresh CODEX_HOME race on
    // codex's database; all but one exit before answering, and a second
    // start works.
    for attempt in 1.. {
        match run_codex(&prepared, start, deadline, attempt < 3, output) {
            Ended::Turn(code) => return code,
            Ended::NeverAnswered(again) => {
                log::info!("codex exited before answering; starting it once more");
                start = again;
            }
            Ended::UnknownThread => break,
        }
    }
    // Only a resume gets here: codex no longer knows the thread. Start
    // afresh in this run so the user's message is not lost.
    let message = format!(
        "codex no longer knows thread {resumed_thread} (its sessions were removed or CODEX_HOME changed); started a new thread"
    );
    log::warning!("{message}");
    let fresh = Start {
        resume: None,
        previous_totals: Some(Usage::default()),
        notices: vec![Event::notice(NoticeLevel::Warning, message)],
    };
    run_codex(&prepared, fresh, deadline, false, output).exit_code()
}

/// How one run of codex ended.
enum Ended {
    /// The turn is over (its terminal event written, or the host gone).
    Turn(ExitCode),
    /// Codex said the thread to resume is unknown before naming any
    /// thread; nothing was printed, so a new thread can start in this run.
    UnknownThread,
    /// Codex exited before it could be spoken to; nothing was printed.
    NeverAnswered(Start),
}

impl Ended {
    fn exit_code(self) -> ExitCode {
        match self {
            Ended::Turn(code) => code,
            _ => ExitCode::FAILURE,
        }
    }
}

/// Runs codex once from `start` and, unless nothing could be printed
/// yet (see [`Ended`]), ends the turn.
fn run_codex(
    prepared: &Prepared,
    start: Start,
    deadline: Instant,
    may_start_again: bool,
    output: &mut Output<io::Stdout>,
) -> Ended {
    let mut env = prepared.binary.launcher_env.clone();
    env.extend(
        prepared
            .config
            .env
            .iter()
            .map(|(k, v)| (k.clone(), OsString::from(v))),
    );
    let record = match prepared.record.as_ref().map(std::fs::File::try_clone) {
        Some(Ok(file)) => Some(file),
        Some(Err(error)) => {
            let error = TurnError::new(
                ErrorCode::Internal,
                format!("cannot reuse the --record file: {error}"),
            );
            return Ended::Turn(finish_with(output, Event::Error(error)));
        }
        None => None,
    };
    let resuming = start.resume.is_some();
    let retry_start = Start {
        resume: start.resume.clone(),
        previous_totals: start.previous_totals,
        notices: start.notices.clone(),
    };
    let spawn_started = Instant::now();
    let give_up = || stop_reason(deadline).is_some();
    let spawned = transport::spawn(
        Launch {
            transport: prepared.config.transport,
            program: &prepared.binary.path,
            env,
            workspace: &prepared.workspace,
            message: &prepared.message,
            images: &prepared.images,
            sandbox: prepared.config.sandbox,
            codex_model: prepared.model.codex_model.as_deref(),
            extra_args: &prepared.config.extra_args,
            resume: retry_start.resume.as_deref(),
            record,
            echo_stderr: log::enabled(log::Level::Debug),
            context: TurnContext {
                model: prepared.model.plexum_id.clone(),
                resumed_thread: start.resume,
                previous_totals: start.previous_totals,
                notices: start.notices,
                output_limit: DEFAULT_OUTPUT_LIMIT,
            },
            stream_text: prepared.stream_text,
        },
        &give_up,
    );
    let (mut process, mut translator) = match spawned {
        Ok((process, translator, args)) => {
            log::debug!(
                "running {} {:?} in {}",
                prepared.binary.path.display(),
                args,
                prepared.workspace.display()
            );
            (process, translator)
        }
        Err(error) => {
            let error = TurnError::new(
                ErrorCode::CodexNotFound,
                format!(
                    "cannot start codex at {}: {error}; set `binary` in the config to the absolute path of a working codex",
                    prepared.binary.path.display()
                ),
            );
            return Ended::Turn(finish_with(output, Event::Error(error)));
        }
    };
    log::debug!("codex started in {:?}", spawn_started.elapsed());
    let mut events = Vec::new();
    let mut loop_end = pump(
        spawn_started,
        &mut process,
        &mut translator,
        &mut events,
        output,
        &prepared.workspace,
        deadline,
    );
    // Codex's stdout ended: its exit (bounded by the same clock and
    // signals) tells why.
    if matches!(loop_end, LoopEnd::StreamClosed) {
        if let Err(stop) = wait_for_exit(&process, deadline) {
            loop_end = LoopEnd::Stop(stop);
        }
    }
    let stream_end = match loop_end {
        LoopEnd::HostGone => {
            translator.interrupt(&process);
            process.finish();
            log::info!("the host closed our stdout; codex was stopped");
            return Ended::Turn(ExitCode::FAILURE);
        }
        LoopEnd::Terminal => {
            translator.close();
            if !process.wait_for(EXIT_GRACE) {
                log::warning!(
                    "codex did not exit within {EXIT_GRACE:?} of finishing its turn; stopping it"
                );
            }
            process.finish();
            return Ended::Turn(exit_code(translator.succeeded()));
        }
        LoopEnd::Stop(error) => {
            translator.interrupt(&process);
            let status = process.stop();
            log::debug!("codex stopped: {status:?}");
            StreamEnd::Stopped(error.with_detail(process.stderr_facts().tail_text()))
        }
        LoopEnd::StreamClosed => {
            let status = process.stop();
            let facts = process.stderr_facts();
            if resuming && facts.unknown_thread && translator.session_id().is_none() {
                process.finish();
                return Ended::UnknownThread;
            }
            // Not a clean exit, nor codex refusing its command line (clap
            // exits 2): those would end the same way again.
            if may_start_again
                && translator.never_answered()
                && !matches!(status, Ok(ref s) if s.success() || s.code() == Some(2))
            {
                process.finish();
                return Ended::NeverAnswered(retry_start);
            }
            closed_stream_end(status, &facts)
        }
    };
    translator.finish(stream_end, &mut events);
    // A host that went away gets no terminal event: it cannot read one.
    let delivered = deliver(&mut events, output, &prepared.workspace, &translator);
    process.finish();
    Ended::Turn(exit_code(delivered.is_ok() && translator.succeeded()))
}

/// Why codex's stdout ended without a terminal event, from how it exited
/// and what it said on stderr.
fn closed_stream_end(
    status: io::Result<std::process::ExitStatus>,
    facts: &child::StderrFacts,
) -> StreamEnd {
    if facts.active_writer {
        let error = TurnError::new(
            ErrorCode::SessionBusy,
            "codex says another process is writing this thread; retry when it has ended",
        );
        return StreamEnd::Stopped(error.with_detail(facts.tail_text()));
    }
    match status {
        Ok(status) if status.success() => StreamEnd::Closed,
        Ok(status) => StreamEnd::Crashed {
            how: child::describe_exit(&status),
            stderr_tail: facts.tail_text(),
        },
        Err(error) => StreamEnd::Crashed {
            how: format!("could not be waited for ({error})"),
            stderr_tail: facts.tail_text(),
        },
    }
}

/// Reads codex's lines until a terminal event, the end of its stdout, a
/// signal, the deadline, or the host going away.
fn pump(
    spawned: Instant,
    process: &mut CodexProcess,
    translator: &mut Conversation,
    events: &mut Vec<Event>,
    output: &mut Output<io::Stdout>,
    workspace: &Path,
    deadline: Instant,
) -> LoopEnd {
    let give_up = || stop_reason(deadline).is_some();
    let mut first_line = true;
    loop {
        if let Some(stop) = stop_reason(deadline) {
            return LoopEnd::Stop(stop);
        }
        let wait = deadline.saturating_duration_since(Instant::now()).min(TICK);
        let message = match process.lines.recv_timeout(wait) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => {
                // Codex is silent: a host that went away would otherwise go
                // unnoticed until the next event.
                if stdout_closed() {
                    return LoopEnd::HostGone;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return LoopEnd::StreamClosed,
        };
        match message {
            StdoutMessage::Line(line) => {
                if std::mem::take(&mut first_line) {
                    log::debug!("codex's first line after {:?}", spawned.elapsed());
                }
                let outcome = translator.line(&line, events, &give_up);
                if log::enabled(log::Level::Debug) {
                    if let crate::exec::translate::LineOutcome::Ignored(kind) = &outcome {
                        log::debug!("codex event {kind} produced no output");
                    }
                }
            }
            StdoutMessage::Oversized(length) => translator.oversized_line(length, events),
            StdoutMessage::Failed(error) => {
                return LoopEnd::Stop(TurnError::new(
                    ErrorCode::Protocol,
                    format!(
                        "reading codex's output (or writing the --record file) failed: {error}"
                    ),
                ));
            }
            StdoutMessage::End => return LoopEnd::StreamClosed,
        }
        if deliver(events, output, workspace, translator).is_err() {
            return LoopEnd::HostGone;
        }
        if translator.is_ended() {
            return LoopEnd::Terminal;
        }
    }
}

/// After codex closed its stdout: waits for it to exit, still bounded by
/// the deadline and signals.
fn wait_for_exit(process: &CodexProcess, deadline: Instant) -> Result<(), TurnError> {
    loop {
        if let Some(stop) = stop_reason(deadline) {
            return Err(stop);
        }
        if process.wait_for(TICK) {
            return Ok(());
        }
    }
}

/// Whether the reader of our stdout is gone (a pipe whose read end was
/// closed polls as an error).
fn stdout_closed() -> bool {
    let mut stdout = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let ready = unsafe { libc::poll(&mut stdout, 1, 0) };
    ready > 0 && stdout.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

fn stop_reason(deadline: Instant) -> Option<TurnError> {
    if let Some(signal) = signals::received() {
        return Some(signals::cancelled(signal, "codex was stopped"));
    }
    if Instant::now() >= deadline {
        return Some(TurnError::new(
            ErrorCode::Timeout,
            "the turn ran past its time limit (--timeout or `timeout_secs`); codex was stopped",
        ));
    }
    None
}

/// Writes the events out, keeping the session file current on the way:
/// the thread is saved before `message_start` is shown, the new running
/// totals before `message_end`.
fn deliver(
    events: &mut Vec<Event>,
    output: &mut Output<io::Stdout>,
    workspace: &Path,
    translator: &Conversation,
) -> io::Result<()> {
    let mut pending_notice = None;
    for event in events.drain(..) {
        match &event {
            // A resumed thread is already what the file holds.
            Event::MessageStart { session_id, .. } if !translator.resumed() => {
                if let Err(error) = session::write(workspace, session_id, translator.baseline()) {
                    pending_notice = Some(session_write_failed(workspace, &error));
                }
            }
            Event::MessageEnd {
                session_id,
                thread_usage,
                ..
            } => {
                if let Err(error) = session::write(workspace, session_id, Some(*thread_usage)) {
                    output.emit(&session_write_failed(workspace, &error))?;
                }
            }
            _ => {}
        }
        output.emit(&event)?;
        if let Some(notice) = pending_notice.take() {
            output.emit(&notice)?;
        }
    }
    Ok(())
}

fn session_write_failed(workspace: &Path, error: &io::Error) -> Event {
    let message = format!(
        "could not save the session file in {}: {error}; the next turn will not resume this thread",
        workspace.display()
    );
    log::warning!("{message}");
    Event::notice(NoticeLevel::Warning, message)
}
