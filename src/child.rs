//! A codex child process, for either transport: its own process group,
//! stdin written by a thread and closed, stderr drained into a bounded tail,
//! stdout read line by line on a thread into a bounded queue (a slow host
//! slows codex, memory stays flat), and a guard that kills the group and
//! reaps everything on every path.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::line_queue::{self, Receiver, Sender, Weight, QUEUE_BYTES};
use crate::line_reader::{LineRead, LineReader};

/// How much of codex's stderr is kept for `error.detail`.
const STDERR_TAIL_LINES: usize = 40;
const STDERR_TAIL_LINE_BYTES: usize = 2048;
/// After SIGTERM to its group, how long codex gets before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Facts the stderr drain noticed, beyond the tail.
#[derive(Debug, Default, Clone)]
pub struct StderrFacts {
    pub tail: VecDeque<String>,
    /// "no rollout found for thread id": the thread is unknown to codex.
    pub unknown_thread: bool,
    /// "already has an active writer": another process writes this thread.
    pub active_writer: bool,
    /// The drain read to the end of codex's stderr.
    pub ended: bool,
}

/// The facts, and a signal for whoever waits for the drain to end.
#[derive(Default)]
struct SharedFacts {
    facts: Mutex<StderrFacts>,
    ended: Condvar,
}

/// Once codex has exited, how long its last stderr lines may take to be
/// drained (a grandchild holding the pipe open must not hold us up).
const STDERR_SETTLE: Duration = Duration::from_millis(500);

impl StderrFacts {
    /// Codex lost a race on its database with another codex starting on
    /// the same fresh CODEX_HOME (seen with app-server, and with exec on
    /// 0.135): `table … already exists`, `UNIQUE constraint failed:
    /// _sqlx_migrations…`, `while executing migration N: … no such table`.
    /// A second start works.
    pub fn lost_database_race(&self) -> bool {
        self.tail.iter().any(|line| {
            let line = line.to_lowercase();
            (line.contains("table") && line.contains("already exists"))
                || line.contains("_sqlx_migrations")
                || line.contains("while executing migration")
                || line.contains("database is locked")
        })
    }

    pub fn tail_text(&self) -> String {
        let lines: Vec<&str> = self.tail.iter().map(String::as_str).collect();
        lines.join("\n")
    }
}

/// One chunk of what codex's stdout reader saw.
#[derive(Debug)]
pub enum StdoutMessage {
    Line(Vec<u8>),
    Oversized(usize),
    /// Reading failed (or the record file could not be written).
    Failed(io::Error),
    End,
}

impl Weight for StdoutMessage {
    fn bytes(&self) -> usize {
        match self {
            StdoutMessage::Line(line) => line.capacity(),
            _ => 0,
        }
    }
}

/// A job for one of the threads that serve codex's pipes.
type Job = Box<dyn FnOnce() + Send>;

/// Starts a thread for a job (`std::thread::Builder`, or a failing one in tests).
type ThreadStarter = fn(Job) -> io::Result<JoinHandle<()>>;

/// Why codex could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// The program could not be executed (missing, not executable, …).
    Exec(io::Error),
    /// Codex started but a thread to serve its pipes could not be (a
    /// process or memory limit); codex was stopped again.
    Thread(io::Error),
}

pub struct SpawnRequest<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub workspace: &'a Path,
    pub env: Vec<(String, OsString)>,
    pub message: String,
    pub record: Option<std::fs::File>,
    /// Copy codex's stderr to ours as it comes (PLEXUM_LOG=debug).
    pub echo_stderr: bool,
}

/// A running codex. Dropping it kills codex's process group and reaps it.
pub struct CodexProcess {
    child: Child,
    /// Readable once codex has exited: waits wake at once, not on a tick.
    pidfd: Option<OwnedFd>,
    status: Option<ExitStatus>,
    pub lines: Receiver<StdoutMessage>,
    stderr_facts: Arc<SharedFacts>,
    threads: Vec<JoinHandle<()>>,
}

impl CodexProcess {
    /// Starts codex with `request.message` written to its stdin, which is
    /// then closed (exec: codex must never wait for input).
    pub fn spawn(request: SpawnRequest) -> Result<CodexProcess, SpawnError> {
        let (process, _) = CodexProcess::spawn_with(request, spawn_thread, false)?;
        Ok(process)
    }

    /// Starts codex and hands its stdin to the caller, who writes it from
    /// the thread that owns the turn (app-server's JSON-RPC requests);
    /// `request.message` is not written.
    pub fn spawn_keeping_stdin(
        request: SpawnRequest,
    ) -> Result<(CodexProcess, ChildStdin), SpawnError> {
        let (process, stdin) = CodexProcess::spawn_with(request, spawn_thread, true)?;
        Ok((process, stdin.expect("stdin is kept")))
    }

    /// `spawn`, with the function that starts the I/O threads given (tests
    /// make it fail as a process limit would), and codex's stdin kept for
    /// the caller or written by a thread.
    fn spawn_with(
        request: SpawnRequest,
        start_thread: ThreadStarter,
        keep_stdin: bool,
    ) -> Result<(CodexProcess, Option<ChildStdin>), SpawnError> {
        let mut command = Command::new(request.program);
        command
            .args(&request.args)
            .current_dir(request.workspace)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .envs(request.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: we signal the whole group, and the terminal's
            // Ctrl-C reaches us, not codex directly.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                // If the adapter dies (even by SIGKILL), codex dies with it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(SpawnError::Exec)?;
        let pidfd = pidfd_open(child.id());
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = line_queue::bounded(QUEUE_BYTES);
        let mut process = CodexProcess {
            child,
            pidfd,
            status: None,
            lines,
            stderr_facts: Arc::new(SharedFacts::default()),
            threads: Vec::new(),
        };
        let message = request.message;
        let facts = Arc::clone(&process.stderr_facts);
        let echo = request.echo_stderr;
        let record = request
            .record
            .map(|file| Box::new(io::BufWriter::new(file)) as Box<dyn Write + Send>);
        let mut jobs: Vec<Job> = vec![
            Box::new(move || drain_stderr(stderr, &facts, echo)),
            Box::new(move || read_stdout(stdout, record, &sender)),
        ];
        let kept = if keep_stdin {
            Some(stdin)
        } else {
            jobs.push(Box::new(move || write_stdin(stdin, message)));
            None
        };
        for job in jobs {
            match start_thread(job) {
                Ok(thread) => process.threads.push(thread),
                // Dropping the rest closes their pipes; `finish` stops
                // codex and joins what did start.
                Err(error) => {
                    process.finish();
                    return Err(SpawnError::Thread(error));
                }
            }
        }
        Ok((process, kept))
    }

    /// What codex said on stderr. Once it has exited, the drain is given a
    /// moment to read its last lines (the reason it exited is often there).
    pub fn stderr_facts(&self) -> StderrFacts {
        let Ok(mut facts) = self.stderr_facts.facts.lock() else {
            return StderrFacts::default();
        };
        if self.status.is_some() || self.has_exited() {
            let deadline = Instant::now() + STDERR_SETTLE;
            while !facts.ended {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                facts = match self.stderr_facts.ended.wait_timeout(facts, deadline - now) {
                    Ok((facts, _)) => facts,
                    Err(_) => return StderrFacts::default(),
                };
            }
        }
        facts.clone()
    }

    /// Waits up to `limit` for codex to exit, without reaping it (so its pid,
    /// which is its group's id, stays reserved until `stop`); whether it did.
    pub fn wait_for(&self, limit: Duration) -> bool {
        if self.status.is_some() {
            return true;
        }
        let deadline = Instant::now() + limit;
        loop {
            if self.has_exited() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let pause = deadline - now;
            match &self.pidfd {
                Some(pidfd) => wait_ready(pidfd, libc::POLLIN, pause),
                // Kernels before 5.3: a short sleep.
                None => std::thread::sleep(pause.min(Duration::from_millis(1))),
            }
        }
    }

    /// Whether codex has exited (a zombie now), leaving it unreaped.
    fn has_exited(&self) -> bool {
        // SAFETY: siginfo_t is plain data filled by the kernel.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: waitid on our own child, with a valid siginfo_t.
        let result = unsafe { libc::waitid(libc::P_PID, self.child.id(), &mut info, flags) };
        // SAFETY: si_pid is set (non-zero) only when the child has exited.
        result == 0 && unsafe { info.si_pid() } != 0
    }

    /// Stops codex's whole group (SIGTERM, then SIGKILL after the grace),
    /// then reaps codex. The group is signalled before codex is reaped, so
    /// its id cannot have been reused.
    pub fn stop(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.signal_group(libc::SIGTERM);
        self.wait_for(STOP_GRACE);
        self.signal_group(libc::SIGKILL);
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    fn signal_group(&self, signal: i32) {
        // The group id is codex's pid (process_group(0)); codex is not
        // reaped yet (alive or a zombie), so the id is still ours.
        let group = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall.
        unsafe {
            libc::kill(-group, signal);
        }
    }

    /// Stops and reaps codex and its group, kills and reaps every
    /// descendant left behind elsewhere, and joins the I/O threads.
    pub fn finish(mut self) -> Option<ExitStatus> {
        let status = self.stop().ok();
        // Commands codex started live in sessions of their own, outside its
        // group. As a child subreaper we inherited any it left behind.
        reap_orphans();
        // A reader blocked on a full queue must be let go to be joined.
        self.lines.close();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        status
    }
}

impl Drop for CodexProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.stop();
        }
    }
}

fn spawn_thread(job: Job) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new().spawn(job)
}

/// A descriptor that becomes readable when the process exits (Linux 5.3+).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Blocks until `fd` is ready for `events` (`POLLIN`, `POLLOUT`) or
/// `limit` has passed.
pub fn wait_ready(fd: &impl AsRawFd, events: libc::c_short, limit: Duration) {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    let millis = limit.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    unsafe {
        libc::poll(&mut pollfd, 1, millis);
    }
}

/// A human description of how codex ended, e.g. "exited with code 2".
pub fn describe_exit(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => String::from("ended"),
    }
}

/// Makes the adapter the reaper of every orphaned descendant, so nothing a
/// turn started can outlive it unseen.
pub fn become_subreaper() {
    // SAFETY: plain syscall.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

/// Kills and reaps our remaining children (orphans re-parented to us), until
/// none is left. Only called once codex itself was reaped.
pub fn reap_orphans() {
    let me = std::process::id() as i32;
    for _ in 0..100 {
        // Reap whatever already exited; ECHILD means we have no child at
        // all, so nothing was left behind (and /proc need not be read).
        loop {
            // SAFETY: plain syscall with a null status pointer.
            let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
            if pid > 0 {
                continue;
            }
            if pid < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                return;
            }
            break;
        }
        let children = children_of(me);
        if children.is_empty() {
            return;
        }
        crate::log::debug!(
            "killing {} process(es) the turn left behind",
            children.len()
        );
        for &pid in &children {
            // SAFETY: plain syscall; the pid is our unreaped child, so not reused.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        // SIGKILL cannot be caught: each exits at once; reap it. Their own
        // children are re-parented to us, hence the next round.
        for pid in children {
            // SAFETY: plain syscall on our own child.
            unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Pids whose parent is `parent`, read from /proc.
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|field| field.parse::<i32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// Passes codex's stdout on, a line at a time, until it ends; copies every
/// byte to the record file first (flushed per line, so a killed turn's
/// record is whole up to its last line). A full queue blocks this thread,
/// and so codex on its pipe: that is the back-pressure.
fn read_stdout(
    stdout: std::process::ChildStdout,
    record: Option<Box<dyn Write + Send>>,
    sender: &Sender<StdoutMessage>,
) {
    let mut reader = LineReader::new(BufReader::with_capacity(64 * 1024, stdout), record);
    // Kept across an interrupted read: the reader goes on with its line.
    let mut buf = Vec::new();
    loop {
        let message = match reader.next_line(&mut buf) {
            Ok(LineRead::Line) => StdoutMessage::Line(std::mem::take(&mut buf)),
            Ok(LineRead::Oversized(length)) => StdoutMessage::Oversized(length),
            Ok(LineRead::End) => StdoutMessage::End,
            // The turn's loop watches the signals, not this thread.
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => StdoutMessage::Failed(error),
        };
        let last = matches!(message, StdoutMessage::End | StdoutMessage::Failed(_));
        let message = match reader.flush_record() {
            Ok(()) => message,
            Err(error) => StdoutMessage::Failed(error),
        };
        let failed = matches!(message, StdoutMessage::Failed(_));
        if sender.send(message).is_err() || last || failed {
            return;
        }
    }
}

fn write_stdin(mut stdin: std::process::ChildStdin, message: String) {
    // Codex may exit before reading (bad flags): a broken pipe is expected.
    let _ = stdin.write_all(message.as_bytes());
    // Dropping stdin closes the pipe: codex reads to EOF and must not wait.
}

fn drain_stderr(stderr: ChildStderr, shared: &SharedFacts, echo: bool) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded: a line longer than this is cut, the rest read as more lines.
        match (&mut reader).take(64 * 1024).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => {
                if let Ok(mut facts) = shared.facts.lock() {
                    facts.ended = true;
                }
                shared.ended.notify_all();
                return;
            }
            Ok(_) => {}
        }
        if echo {
            let _ = io::stderr().write_all(&line);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let Ok(mut facts) = shared.facts.lock() else {
            return;
        };
        if text.contains("no rollout found") {
            facts.unknown_thread = true;
        }
        if text.contains("already has an active writer") {
            facts.active_writer = true;
        }
        if text.is_empty()
            || text.trim_start().starts_with(|c: char| c.is_ascii_digit())
                && text.contains(": <unknown>")
        {
            continue; // blank lines and empty backtrace frames say nothing
        }
        let mut kept = text.to_string();
        if kept.len() > STDERR_TAIL_LINE_BYTES {
            let mut cut = STDERR_TAIL_LINE_BYTES;
            while !kept.is_char_boundary(cut) {
                cut -= 1;
            }
            kept.truncate(cut);
            kept.push('…');
        }
        if facts.tail.len() == STDERR_TAIL_LINES {
            facts.tail.pop_front();
        }
        facts.tail.push_back(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts the first I/O thread, then fails as a process limit would.
    fn second_thread_fails(job: Job) -> io::Result<JoinHandle<()>> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        if STARTED.fetch_add(1, Ordering::SeqCst) == 0 {
            return spawn_thread(job);
        }
        Err(io::Error::from_raw_os_error(libc::EAGAIN))
    }

    #[test]
    fn a_thread_that_cannot_start_is_an_error_and_codex_is_stopped() {
        let workspace = std::env::temp_dir();
        let marker = format!("echo started; exec sleep 37.{}", std::process::id() % 1000);
        let request = SpawnRequest {
            program: Path::new("/bin/sh"),
            args: vec!["-c".into(), marker.clone().into()],
            workspace: &workspace,
            env: Vec::new(),
            message: String::from("hi"),
            record: None,
            echo_stderr: false,
        };
        let error = match CodexProcess::spawn_with(request, second_thread_fails, false)
            .map(|(process, _)| process)
        {
            Err(error) => error,
            Ok(_) => panic!("the thread failure was not reported"),
        };
        assert!(matches!(&error, SpawnError::Thread(e) if e.raw_os_error() == Some(libc::EAGAIN)));
        // Codex was stopped and reaped: no child of ours is left.
        // SAFETY: plain syscall with a null status pointer.
        let left = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        assert!(left <= 0, "a child was left: {left}");
    }
}
