//! `turn`: one user turn of one workspace. Checks everything that can be
//! checked before codex starts, runs codex, feeds its stdout through the
//! translator, keeps the session file current, and ends with exactly one
//! terminal event whatever happens.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::child::{self, CodexProcess, SpawnError, StdoutMessage};
use crate::cli::{MessageArg, TurnArgs};
use crate::config::{Config, ModelChoice, CONFIG_ENV};
use crate::event::{ErrorCode, Event, NoticeLevel, TurnError, Usage};
use crate::images::{self, Images};
use crate::line_queue::RecvError;
use crate::locate::{self, CodexBinary};
use crate::log;
use crate::output::{exit_code, finish_with, HostPipe, Output, WriteLimits};
use crate::session::{self, SessionFiles, SessionNames, Stored, TurnLock};
use crate::signals;
use crate::translate::{classify_failure, StreamEnd, TurnContext, DEFAULT_OUTPUT_LIMIT};
use crate::transport::{self, Conversation, Launch};

/// Codex refuses prompts over this many characters (Unicode scalars).
pub const MAX_MESSAGE_CHARS: usize = 1_048_576;

/// At most this many bytes are read from stdin: the limit plus one
/// character, in UTF-8's widest form. More than that is too large, however
/// much more there is, so an endless stdin costs 4 MiB and no more.
const MAX_MESSAGE_BYTES: usize = 4 * (MAX_MESSAGE_CHARS + 1);

/// Longer timeouts are taken as this one (a year): `Instant` arithmetic
/// must not overflow, and nobody waits longer for a turn.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);

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
    images: Images,
    record: Option<std::fs::File>,
    /// The whole turn ends by then, from the moment `turn` started.
    deadline: Instant,
    session: SessionFiles,
    /// `--events all`: text as codex streams it (app-server).
    stream_text: bool,
    stored: Stored,
    /// What the lock found at its name and kept aside, for notices.
    lock_kept_aside: Vec<String>,
}

pub fn run(args: TurnArgs) -> ExitCode {
    let started = Instant::now();
    signals::install(true);
    let mut output = Output::stdout(args.output);
    output.writer_mut().set_limits(WriteLimits::stoppable(None));
    let (prepared, lock) = match prepare(args, started) {
        Ok(prepared) => prepared,
        Err(error) => {
            if error.code == ErrorCode::Usage {
                log::say(format_args!("{}", error.message));
            }
            give_host_grace(&mut output, Instant::now());
            return finish_with(&mut output, Event::Error(error));
        }
    };
    let code = execute(prepared, lock, &mut output);
    log::debug!("turn took {:?}", started.elapsed());
    code
}

/// The end of the turn is being written: no more stopping for signals or
/// the deadline, only a bounded wait for a host that reads slowly.
fn give_host_grace(output: &mut Output<HostPipe>, from: Instant) {
    output
        .writer_mut()
        .set_limits(WriteLimits::grace_from(from));
}

/// The instant `timeout` after `started`, with an absurd timeout capped.
pub fn deadline_after(started: Instant, timeout: Duration) -> Instant {
    if timeout > MAX_TIMEOUT {
        log::debug!("timeout {timeout:?} capped to {MAX_TIMEOUT:?}");
    }
    // A year always fits in an `Instant` on Linux; were it not so, a day.
    let day = Duration::from_secs(24 * 3600);
    started
        .checked_add(timeout.min(MAX_TIMEOUT))
        .or_else(|| started.checked_add(day))
        .unwrap_or(started)
}

/// Every check before codex starts, in the order a person would fix them;
/// each of them honours signals, and the message read from stdin the
/// deadline too. The lock is taken last but one: a refused turn takes none.
fn prepare(args: TurnArgs, started: Instant) -> Result<(Prepared, TurnLock), TurnError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let env_config = std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let (config, source) = Config::load(args.config.as_deref(), env_config, home.clone())?;
    log::debug!("config: {source:?}");
    let timeout = Duration::from_secs(args.timeout_secs.unwrap_or(config.timeout_secs));
    let deadline = deadline_after(started, timeout);
    let model = config.model(args.model.as_deref())?;
    let Some(workspace) = args.workspace else {
        return Err(TurnError::new(
            ErrorCode::Usage,
            "turn needs --workspace DIR (see `turn --help`)",
        ));
    };
    check_workspace(&workspace)?;
    let message = read_message(args.message, deadline)?;
    // A cancel while the message was read (or just after) starts nothing.
    not_stopped(deadline, "nothing was started")?;
    let session = SessionFiles::open(&workspace, SessionNames::of(args.conversation.as_ref()))
        .map_err(|error| {
            TurnError::new(
                ErrorCode::Workspace,
                format!("cannot open workspace {}: {error}", workspace.display()),
            )
        })?;
    let lock = match session.lock() {
        Ok(lock) => {
            for message in &lock.kept_aside {
                log::warning!("{message}");
            }
            lock
        }
        Err(session::LockError::Busy) => {
            return Err(TurnError::new(
                ErrorCode::SessionBusy,
                match session.names().key() {
                    Some(key) => format!(
                        "another turn of conversation {:?} is running in workspace {}; retry when it has ended",
                        key.as_str(),
                        workspace.display()
                    ),
                    None => format!(
                        "another turn is running in workspace {}; retry when it has ended",
                        workspace.display()
                    ),
                },
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
    let binary = locate::locate(
        &config.binary,
        locate::codex_path(&config.env, std::env::var_os("PATH")),
        home.as_deref(),
    )?;
    let record = match &args.record {
        Some(path) => Some(open_record(path).map_err(|error| {
            TurnError::new(
                ErrorCode::Usage,
                format!("cannot open --record file {}: {error}", path.display()),
            )
        })?),
        None => None,
    };
    // Codex runs in the workspace: relative paths must not move with it.
    let images = images::prepare(&args.images)?;
    let stored = session.read();
    // Nothing above can block; a signal that came meanwhile still counts.
    not_stopped(deadline, "codex was not started")?;
    let prepared = Prepared {
        config,
        model,
        workspace,
        message,
        binary,
        images,
        record,
        deadline,
        session,
        stream_text: !args.output.core_events_only,
        stored,
        lock_kept_aside: lock.kept_aside.clone(),
    };
    Ok((prepared, lock))
}

/// The `--record` file, opened for appending. A FIFO there without a
/// reader must not block the turn before codex starts: opened
/// non-blocking (a FIFO then fails at once), then made blocking again.
fn open_record(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    crate::workspace::clear_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&file))?;
    Ok(file)
}

/// The signal or timeout that ends the turn now, as an error.
fn not_stopped(deadline: Instant, what: &str) -> Result<(), TurnError> {
    match stop_reason(deadline) {
        Some(mut stop) => {
            if stop.code == ErrorCode::Cancelled {
                stop = signals::cancelled(signals::received().unwrap_or(0), what);
            }
            Err(stop)
        }
        None => Ok(()),
    }
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
fn read_message(arg: Option<MessageArg>, deadline: Instant) -> Result<String, TurnError> {
    let bytes = match arg {
        None => {
            return Err(TurnError::new(
                ErrorCode::Usage,
                "turn needs a MESSAGE (after `--`), or `-` to read it from stdin",
            ));
        }
        Some(MessageArg::Text(text)) => os_string_bytes(text),
        Some(MessageArg::Stdin) => read_stdin(libc::STDIN_FILENO, MAX_MESSAGE_BYTES, deadline)?,
    };
    if bytes.len() >= MAX_MESSAGE_BYTES {
        // Reading stopped at the cap: over the limit whatever follows.
        let valid = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(error) => std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default(),
        };
        return Err(TurnError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "the message on stdin has more than {} characters (reading stopped at {MAX_MESSAGE_BYTES} bytes); codex accepts at most {MAX_MESSAGE_CHARS}",
                valid.chars().count().max(MAX_MESSAGE_CHARS)
            ),
        ));
    }
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

/// Reads `fd` to its end or to `cap` bytes, whichever comes first, waiting
/// with `poll` so that a signal or the deadline ends the wait (a blocking
/// read would restart after a signal, and a non-blocking stdin says
/// `EAGAIN`).
fn read_stdin(fd: i32, cap: usize, deadline: Instant) -> Result<Vec<u8>, TurnError> {
    let failed = |error: io::Error| {
        TurnError::new(
            ErrorCode::Usage,
            format!("cannot read the message from stdin: {error}"),
        )
    };
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while bytes.len() < cap {
        not_stopped(
            deadline,
            "the message was not read to its end; nothing was started",
        )?;
        let mut pollfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = deadline.saturating_duration_since(Instant::now()).min(TICK);
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pollfd, 1, wait.as_millis() as libc::c_int) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(failed(error));
        }
        if ready == 0 {
            continue;
        }
        let room = chunk.len().min(cap - bytes.len());
        // SAFETY: reads into a valid buffer of `room` bytes.
        let read = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), room) };
        match read {
            0 => break,
            n if n > 0 => bytes.extend_from_slice(&chunk[..n as usize]),
            _ => {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                    _ => return Err(failed(error)),
                }
            }
        }
    }
    Ok(bytes)
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

fn start_from(prepared: &Prepared) -> Start {
    let mut notices = lock_notices(prepared);
    match &prepared.stored {
        Stored::Fresh => Start {
            resume: None,
            previous_totals: Some(Usage::default()),
            notices,
        },
        Stored::Thread {
            thread_id,
            totals,
            odd_totals,
        } => {
            if let Some(why) = odd_totals {
                let message = format!(
                    "the session file {} was written by another adapter version ({why}); thread {thread_id} is resumed, its earlier usage totals are unknown",
                    prepared.session.path().display()
                );
                log::warning!("{message}");
                notices.push(Event::notice(NoticeLevel::Warning, message));
            }
            Start {
                resume: Some(thread_id.clone()),
                previous_totals: *totals,
                notices,
            }
        }
        Stored::Corrupt { reason } => {
            let kept = match prepared.session.keep_corrupt() {
                Ok(kept) => format!("kept as {}", kept.display()),
                Err(error) => format!("could not be moved aside: {error}"),
            };
            let message = format!(
                "the session file {} is unusable ({reason}); starting a new codex thread; the old file {kept}",
                prepared.session.path().display()
            );
            log::warning!("{message}");
            notices.push(Event::notice(NoticeLevel::Warning, message));
            Start {
                resume: None,
                previous_totals: Some(Usage::default()),
                notices,
            }
        }
    }
}

/// What the lock found at its name and kept aside (logged when found).
fn lock_notices(prepared: &Prepared) -> Vec<Event> {
    let kept = &prepared.lock_kept_aside;
    kept.iter()
        .map(|message| Event::notice(NoticeLevel::Warning, message.clone()))
        .collect()
}

/// How a run of the translation loop ended.
enum LoopEnd {
    /// The translator printed the terminal event.
    Terminal,
    /// Codex's stdout ended without a terminal event.
    StreamClosed,
    /// The adapter decided to stop codex, at that instant.
    Stop(TurnError, Instant),
    /// Our stdout is gone: the host stopped listening (or stopped reading
    /// in the middle of a line and did not go on within the grace).
    HostGone,
}

fn execute(prepared: Prepared, lock: TurnLock, output: &mut Output<HostPipe>) -> ExitCode {
    child::become_subreaper();
    let deadline = prepared.deadline;
    let mut host = Host {
        output,
        session: &prepared.session,
        lock: Some(lock),
        pending: VecDeque::new(),
        graced: false,
    };
    let start = start_from(&prepared);
    let resumed_thread = start.resume.clone().unwrap_or_default();
    let mut start = start;
    // Several app-servers started at once on a fresh CODEX_HOME race on
    // codex's database; all but one exit before answering, and a second
    // start works.
    for attempt in 1.. {
        match run_codex(&prepared, start, deadline, attempt < 3, &mut host) {
            Ended::Turn(code) => return code,
            Ended::NeverAnswered(again) => {
                log::info!("codex lost a race on its database; starting it once more");
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
    let mut notices = lock_notices(&prepared);
    notices.push(Event::notice(NoticeLevel::Warning, message));
    let fresh = Start {
        resume: None,
        previous_totals: Some(Usage::default()),
        notices,
    };
    run_codex(&prepared, fresh, deadline, false, &mut host).exit_code()
}

/// How one run of codex ended.
enum Ended {
    /// The turn is over (its terminal event written, or the host gone).
    Turn(ExitCode),
    /// Codex said the thread to resume is unknown before naming any
    /// thread; nothing was printed, so a new thread can start in this run.
    UnknownThread,
    /// Codex exited before it could be spoken to, having lost a race on
    /// its database; nothing was printed.
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

/// Runs codex once from `start` and, unless nothing could be printed yet
/// (see [`Ended`]), ends the turn.
fn run_codex(
    prepared: &Prepared,
    start: Start,
    deadline: Instant,
    may_start_again: bool,
    host: &mut Host,
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
            return Ended::Turn(host.finish_with(error));
        }
        None => None,
    };
    // Nothing is started after a cancel or past the deadline.
    if let Err(stop) = not_stopped(deadline, "codex was not started") {
        return Ended::Turn(host.finish_with(stop));
    }
    let resuming = start.resume.is_some();
    let again = Start {
        resume: start.resume.clone(),
        previous_totals: start.previous_totals,
        notices: start.notices.clone(),
    };
    let spawn_started = Instant::now();
    let give_up = || stop_reason(deadline).is_some();
    let launch = Launch {
        transport: prepared.config.transport,
        program: &prepared.binary.path,
        env,
        workspace: &prepared.workspace,
        message: &prepared.message,
        images: &prepared.images.paths,
        sandbox: prepared.config.sandbox,
        codex_model: prepared.model.codex_model.as_deref(),
        extra_args: &prepared.config.extra_args,
        resume: again.resume.as_deref(),
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
    };
    if let Some(error) = transport::refusal(&launch) {
        return Ended::Turn(host.finish_with(error));
    }
    let spawned = transport::spawn(launch, &give_up);
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
        Err(error) => return Ended::Turn(host.finish_with(spawn_failed(&prepared.binary, error))),
    };
    log::debug!("codex started in {:?}", spawn_started.elapsed());
    let mut events = Vec::new();
    let mut lines_seen = 0usize;
    let mut loop_end = pump(
        spawn_started,
        &mut process,
        &mut translator,
        &mut events,
        host,
        deadline,
        &mut lines_seen,
    );
    // Codex's stdout ended: its exit (bounded by the same clock and
    // signals) tells why.
    if matches!(loop_end, LoopEnd::StreamClosed) {
        if let Err(stop) = wait_for_exit(&process, deadline) {
            loop_end = LoopEnd::Stop(stop, Instant::now());
        }
    }
    let stream_end = match loop_end {
        LoopEnd::HostGone => {
            translator.interrupt(&process);
            process.finish();
            log::info!("the host closed our stdout (or stopped reading); codex was stopped");
            return Ended::Turn(ExitCode::FAILURE);
        }
        LoopEnd::Terminal => {
            // App-server ends when its stdin closes.
            translator.close();
            // The terminal event is out and the lock released: the host may
            // start its next turn while this codex exits.
            if !process.wait_for(EXIT_GRACE) {
                log::warning!(
                    "codex did not exit within {EXIT_GRACE:?} of finishing its turn; stopping it"
                );
            }
            process.finish();
            return Ended::Turn(exit_code(translator.turn().succeeded()));
        }
        LoopEnd::Stop(error, stopped_at) => {
            // The host gets a bounded time for the rest, counted from the
            // stop, so a host that does not read cannot keep us here.
            host.grace(stopped_at);
            // App-server: the turn interrupted first, so codex stores it.
            translator.interrupt(&process);
            let status = process.stop();
            log::debug!("codex stopped: {status:?}");
            StreamEnd::Stopped(error.with_detail(process.stderr_facts().tail_text()))
        }
        LoopEnd::StreamClosed => {
            let status = process.stop();
            let facts = process.stderr_facts();
            if resuming && facts.unknown_thread && translator.turn().session_id().is_none() {
                process.finish();
                return Ended::UnknownThread;
            }
            if may_start_again && translator.never_answered() && facts.lost_database_race() {
                process.finish();
                return Ended::NeverAnswered(again);
            }
            let silent = lines_seen == 0;
            closed_stream_end(status, &facts, silent, &prepared.binary.path)
        }
    };
    translator.finish(stream_end, &mut events);
    // A host that went away gets no terminal event: it cannot read one.
    let delivered = host.deliver_to_end(&mut events, &translator);
    process.finish();
    Ended::Turn(exit_code(
        delivered.is_ok() && translator.turn().succeeded(),
    ))
}

/// The terminal error for a codex that could not be started.
fn spawn_failed(binary: &CodexBinary, error: SpawnError) -> TurnError {
    let path = binary.path.display();
    match error {
        // Out of processes or memory: the same turn may well start later.
        SpawnError::Exec(error) | SpawnError::Thread(error)
            if matches!(error.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOMEM)) =>
        {
            TurnError::new(
                ErrorCode::CodexCrashed,
                format!(
                    "cannot start codex at {path}, or the threads that serve it: {error}; the system is out of processes or memory, retry when it has room"
                ),
            )
        }
        SpawnError::Thread(error) => TurnError::new(
            ErrorCode::Internal,
            format!("cannot start a thread to serve codex: {error}; codex was stopped"),
        ),
        SpawnError::Exec(error) => TurnError::new(
            ErrorCode::CodexNotFound,
            format!(
                "cannot start codex at {path}: {error}; set `binary` in the config to the absolute path of a working codex"
            ),
        ),
    }
}

/// Why codex's stdout ended without a terminal event, from how it exited,
/// what it said on stderr, and whether it printed anything at all (`silent`).
fn closed_stream_end(
    status: io::Result<std::process::ExitStatus>,
    facts: &child::StderrFacts,
    silent: bool,
    binary: &Path,
) -> StreamEnd {
    if facts.active_writer {
        let error = TurnError::new(
            ErrorCode::SessionBusy,
            "codex says another process is writing this thread; retry when it has ended",
        );
        return StreamEnd::Stopped(error.with_detail(facts.tail_text()));
    }
    let status = match status {
        Ok(status) => status,
        Err(error) => {
            return StreamEnd::Crashed {
                how: format!("could not be waited for ({error})"),
                stderr_tail: facts.tail_text(),
            }
        }
    };
    if silent {
        if let Some(error) = refused_to_start(&status, facts, binary) {
            return StreamEnd::Stopped(error.with_detail(facts.tail_text()));
        }
    }
    if status.success() {
        return StreamEnd::Closed;
    }
    StreamEnd::Crashed {
        how: child::describe_exit(&status),
        stderr_tail: facts.tail_text(),
    }
}

/// Codex exited before printing a single line: it refused its command line
/// (clap: exit 2, `error: …`), its config (`Error loading config.toml`), the
/// workspace, or it is not codex at all. Running the same turn again would
/// fail the same way, so these are `config` errors, not retryable ones
/// (unless codex's own text names a cause that is, e.g. a refused login).
fn refused_to_start(
    status: &std::process::ExitStatus,
    facts: &child::StderrFacts,
    binary: &Path,
) -> Option<TurnError> {
    let lines: Vec<&str> = facts.tail.iter().map(String::as_str).collect();
    if status.success() {
        return Some(TurnError::new(
            ErrorCode::Config,
            format!(
                "codex at {} exited without printing anything; check that `binary` in the config is the codex CLI",
                binary.display()
            ),
        ));
    }
    if let Some(index) = lines
        .iter()
        .position(|line| line.contains("Error loading config"))
    {
        let cause = lines[index..]
            .iter()
            .take(3)
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        return Some(TurnError::new(
            ErrorCode::Config,
            format!("codex cannot load its config.toml (in CODEX_HOME): {cause}; fix that file"),
        ));
    }
    let clap = lines.iter().find(|line| line.starts_with("error:"));
    if let (Some(2), Some(clap)) = (status.code(), clap) {
        return Some(TurnError::new(
            ErrorCode::Config,
            format!(
                "codex refused its command line ({clap}); check `extra_args` in the config against `codex exec --help` (`codex app-server --help` for the app-server transport)"
            ),
        ));
    }
    let said = lines.iter().find(|line| line.starts_with("Error"))?;
    let error = classify_failure(said);
    if error.code != ErrorCode::TurnFailed || error.retryable {
        return Some(error);
    }
    Some(TurnError::new(
        ErrorCode::Config,
        format!(
            "codex refused to start ({said}); check the config, the workspace path and CODEX_HOME"
        ),
    ))
}

/// Reads codex's lines until a terminal event, the end of its stdout, a
/// signal, the deadline, or the host going away.
fn pump(
    spawned: Instant,
    process: &mut CodexProcess,
    translator: &mut Conversation,
    events: &mut Vec<Event>,
    host: &mut Host,
    deadline: Instant,
    lines_seen: &mut usize,
) -> LoopEnd {
    let give_up = || stop_reason(deadline).is_some();
    host.output
        .writer_mut()
        .set_limits(WriteLimits::stoppable(Some(deadline)));
    loop {
        if let Some(stop) = stop_reason(deadline) {
            return LoopEnd::Stop(stop, Instant::now());
        }
        let wait = deadline.saturating_duration_since(Instant::now()).min(TICK);
        let message = match process.lines.recv_timeout(wait) {
            Ok(message) => message,
            Err(RecvError::Timeout) => {
                // Codex is silent: a host that went away would otherwise go
                // unnoticed until the next event.
                if stdout_closed() {
                    return LoopEnd::HostGone;
                }
                continue;
            }
            Err(RecvError::Disconnected) => return LoopEnd::StreamClosed,
        };
        match message {
            StdoutMessage::Line(line) => {
                if *lines_seen == 0 {
                    log::debug!("codex's first line after {:?}", spawned.elapsed());
                }
                *lines_seen += 1;
                let outcome = translator.line(&line, events, &give_up);
                if log::enabled(log::Level::Debug) {
                    if let crate::translate::LineOutcome::Ignored(kind) = &outcome {
                        log::debug!("codex event {kind} produced no output");
                    }
                }
            }
            StdoutMessage::Oversized(length) => {
                *lines_seen += 1;
                translator.oversized_line(length, events)
            }
            StdoutMessage::Failed(error) => {
                let error = TurnError::new(
                    ErrorCode::Protocol,
                    format!(
                        "reading codex's output (or writing the --record file) failed: {error}"
                    ),
                );
                return LoopEnd::Stop(error, Instant::now());
            }
            StdoutMessage::End => return LoopEnd::StreamClosed,
        }
        match host.deliver(events, translator) {
            Ok(()) => {}
            Err(Undelivered::Stopped) => {
                let stop = stop_reason(deadline).unwrap_or_else(timed_out);
                return LoopEnd::Stop(stop, Instant::now());
            }
            Err(Undelivered::HostGone) => return LoopEnd::HostGone,
        }
        if translator.turn().is_ended() {
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
        return Some(timed_out());
    }
    None
}

fn timed_out() -> TurnError {
    TurnError::new(
        ErrorCode::Timeout,
        "the turn ran past its time limit (--timeout or `timeout_secs`); codex was stopped",
    )
}

/// Why events could not all be written.
enum Undelivered {
    /// A stop (signal, deadline) came before the next line was begun; the
    /// events not written are kept for the end of the turn.
    Stopped,
    /// The host is gone, or stopped reading in the middle of a line.
    HostGone,
}

/// Where the turn's events go: the host's stdout, with the session file
/// kept current on the way (the thread saved before `message_start` is
/// shown, the new running totals before `message_end`) and the turn lock
/// let go once the terminal event is all that is left to write.
struct Host<'a> {
    output: &'a mut Output<HostPipe>,
    session: &'a SessionFiles,
    lock: Option<TurnLock>,
    /// Events not written yet, and whether the session was already saved
    /// for each.
    pending: VecDeque<(Event, bool)>,
    /// The turn is being stopped: the host has its bounded time already.
    graced: bool,
}

impl Host<'_> {
    fn deliver(
        &mut self,
        events: &mut Vec<Event>,
        translator: &Conversation,
    ) -> Result<(), Undelivered> {
        self.pending
            .extend(events.drain(..).map(|event| (event, false)));
        while let Some((event, saved)) = self.pending.pop_front() {
            if !saved {
                if let Some(notice) = self.save_session(&event, translator) {
                    match event {
                        // The notice follows message_start, precedes the end.
                        Event::MessageStart { .. } => self.pending.push_front((notice, true)),
                        _ => {
                            self.pending.push_front((event, true));
                            self.pending.push_front((notice, true));
                            continue;
                        }
                    }
                }
            }
            if event.is_terminal() {
                // The session is saved: the lock goes just before the
                // terminal event, so a host that starts the next turn when
                // it reads that event always finds the lock free.
                self.lock = None;
            }
            match self.output.emit(&event) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {
                    self.pending.push_front((event, true));
                    return Err(Undelivered::Stopped);
                }
                Err(_) => return Err(Undelivered::HostGone),
            }
        }
        Ok(())
    }

    /// The last events of the turn. A stop that comes while they are written
    /// only leaves the host a bounded time to take them.
    fn deliver_to_end(
        &mut self,
        events: &mut Vec<Event>,
        translator: &Conversation,
    ) -> Result<(), Undelivered> {
        match self.deliver(events, translator) {
            Err(Undelivered::Stopped) if !self.graced => {
                self.grace(Instant::now());
                self.deliver(events, translator)
            }
            other => other,
        }
    }

    /// From `from` on, writes only wait a bounded time for the host, once.
    fn grace(&mut self, from: Instant) {
        if !self.graced {
            self.graced = true;
            give_host_grace(self.output, from);
        }
    }

    /// A lone terminal event: codex never ran.
    fn finish_with(&mut self, error: TurnError) -> ExitCode {
        self.grace(Instant::now());
        finish_with(self.output, Event::Error(error))
    }

    /// Saves what `event` makes current; a notice when that failed.
    fn save_session(&self, event: &Event, translator: &Conversation) -> Option<Event> {
        let result = match event {
            // A resumed thread is already what the file holds.
            Event::MessageStart { session_id, .. } if !translator.turn().resumed() => {
                self.session.write(session_id, translator.turn().baseline())
            }
            Event::MessageEnd {
                session_id,
                thread_usage,
                ..
            } => self.session.write(session_id, Some(*thread_usage)),
            _ => return None,
        };
        result
            .err()
            .map(|error| session_write_failed(self.session, &error))
    }
}

fn session_write_failed(session: &SessionFiles, error: &io::Error) -> Event {
    let message = format!(
        "could not save the session file {}: {error}; the next turn will not resume this thread",
        session.path().display()
    );
    log::warning!("{message}");
    Event::notice(NoticeLevel::Warning, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary() -> CodexBinary {
        CodexBinary {
            path: PathBuf::from("/opt/codex"),
            launcher: None,
            launcher_env: Vec::new(),
        }
    }

    /// Finding 13 of issue 10: out of processes is worth a retry, a missing
    /// program is not; neither is a panic.
    #[test]
    fn a_codex_or_thread_that_cannot_start_is_classified() {
        let limit = || io::Error::from_raw_os_error(libc::EAGAIN);
        for error in [SpawnError::Thread(limit()), SpawnError::Exec(limit())] {
            let error = spawn_failed(&binary(), error);
            assert_eq!(error.code, ErrorCode::CodexCrashed);
            assert!(error.retryable);
        }
        let missing = io::Error::from_raw_os_error(libc::ENOENT);
        let error = spawn_failed(&binary(), SpawnError::Exec(missing));
        assert_eq!(error.code, ErrorCode::CodexNotFound);
        assert!(!error.retryable);
    }

    #[test]
    fn an_absurd_timeout_makes_a_far_deadline_not_a_panic() {
        let now = Instant::now();
        let deadline = deadline_after(now, Duration::from_secs(u64::MAX));
        assert_eq!(deadline, now + MAX_TIMEOUT);
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }
}
