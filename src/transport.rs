//! The two ways of driving codex for a turn, behind one face: `turn` asks
//! for a transport, gets a running codex and a [`Conversation`] that reads
//! its lines, and otherwise does not care which it got. `replay` gets the
//! matching pure translator for a recording ([`Recording`]).

use std::ffi::OsString;

use std::path::{Path, PathBuf};

use crate::app_server;
use crate::child::{CodexProcess, SpawnError, SpawnRequest};
use crate::config::{Sandbox, Transport};
use crate::event::{ErrorCode, Event, TurnError};
use crate::exec::argv::{self, ExecRequest};
use crate::exec::translate::Translator;
use crate::translate::{LineOutcome, StreamEnd, TurnContext, TurnEvents};

/// What a turn asks of codex, whichever transport carries it.
pub struct Launch<'a> {
    pub transport: Transport,
    pub program: &'a Path,
    pub env: Vec<(String, OsString)>,
    pub workspace: &'a Path,
    pub message: &'a str,
    pub images: &'a [PathBuf],
    pub sandbox: Sandbox,
    pub codex_model: Option<&'a str>,
    pub extra_args: &'a [String],
    pub resume: Option<&'a str>,
    pub record: Option<std::fs::File>,
    pub echo_stderr: bool,
    pub context: TurnContext,
    /// `--events all`: text as codex streams it (app-server).
    pub stream_text: bool,
}

/// Why `launch` cannot be carried by its transport, before anything is
/// started: app-server's JSON names the workspace and the images by path,
/// and JSON strings hold UTF-8 only (exec passes such paths to codex, which
/// refuses them the same way).
pub fn refusal(launch: &Launch) -> Option<TurnError> {
    if launch.transport != Transport::AppServer {
        return None;
    }
    let workspace = std::path::absolute(launch.workspace).ok()?;
    let odd = std::iter::once(&workspace)
        .chain(launch.images)
        .find(|path| path.to_str().is_none())?;
    Some(TurnError::new(
        ErrorCode::Config,
        format!(
            "the path {} is not UTF-8, and the app-server transport can only name UTF-8 paths to codex; rename it",
            odd.display()
        ),
    ))
}

/// Codex's side of one turn: the translator, and for app-server the
/// JSON-RPC conversation that drives codex.
pub enum Conversation {
    Exec(Box<Translator>),
    AppServer(Box<app_server::Driver>),
}

/// Starts codex for `launch`; the argv (message elided) for the debug log.
pub fn spawn(
    launch: Launch,
    give_up: &dyn Fn() -> bool,
) -> Result<(CodexProcess, Conversation, Vec<OsString>), SpawnError> {
    let args = match launch.transport {
        Transport::Exec => argv::exec_args(&ExecRequest {
            sandbox: Some(launch.sandbox),
            codex_model: launch.codex_model,
            images: launch.images,
            extra_args: launch.extra_args,
            resume_thread: launch.resume,
        }),
        Transport::AppServer => app_server::args(launch.extra_args),
    };
    let request = SpawnRequest {
        program: launch.program,
        args: args.clone(),
        workspace: launch.workspace,
        env: launch.env,
        message: match launch.transport {
            Transport::Exec => launch.message.to_string(),
            Transport::AppServer => String::new(),
        },
        record: launch.record,
        echo_stderr: launch.echo_stderr,
    };
    match launch.transport {
        Transport::Exec => {
            let process = CodexProcess::spawn(request)?;
            Ok((
                process,
                Conversation::Exec(Box::new(Translator::new(launch.context))),
                args,
            ))
        }
        Transport::AppServer => {
            let (process, stdin) = CodexProcess::spawn_keeping_stdin(request)?;
            // `refusal` has checked that these are UTF-8.
            let workspace = std::path::absolute(launch.workspace)
                .unwrap_or_else(|_| launch.workspace.to_path_buf());
            let plan = app_server::rpc::TurnPlan {
                cwd: workspace.to_string_lossy().into_owned(),
                sandbox: launch.sandbox,
                codex_model: launch.codex_model.map(String::from),
                resume: launch.resume.map(String::from),
                message: launch.message.to_string(),
                images: launch
                    .images
                    .iter()
                    .map(|path| path.to_string_lossy().into_owned())
                    .collect(),
            };
            let mut driver =
                app_server::Driver::new(plan, launch.context, launch.stream_text, stdin);
            driver.begin(give_up);
            Ok((process, Conversation::AppServer(Box::new(driver)), args))
        }
    }
}

impl Conversation {
    /// One line of codex's stdout.
    pub fn line(
        &mut self,
        line: &[u8],
        out: &mut Vec<Event>,
        give_up: &dyn Fn() -> bool,
    ) -> LineOutcome {
        match self {
            Conversation::Exec(translator) => translator.line(line, out),
            Conversation::AppServer(driver) => driver.line(line, out, give_up),
        }
    }

    pub fn oversized_line(&mut self, length: usize, out: &mut Vec<Event>) {
        match self {
            Conversation::Exec(translator) => translator.oversized_line(length, out),
            Conversation::AppServer(driver) => driver.oversized_line(length, out),
        }
    }

    pub fn finish(&mut self, end: StreamEnd, out: &mut Vec<Event>) {
        match self {
            Conversation::Exec(translator) => translator.finish(end, out),
            Conversation::AppServer(driver) => driver.finish(end, out),
        }
    }

    /// Before the turn stops codex early: app-server interrupts the turn
    /// first, so that codex stores it.
    pub fn interrupt(&mut self, process: &CodexProcess) {
        if let Conversation::AppServer(driver) = self {
            driver.interrupt(process);
        }
    }

    /// The turn has ended: app-server needs its stdin closed to exit.
    pub fn close(&mut self) {
        if let Conversation::AppServer(driver) = self {
            driver.close();
        }
    }

    /// Codex exited before it could be spoken to (app-server: before it
    /// answered `initialize`; exec: before it named a thread, so the
    /// message reached no model): worth starting it once more.
    pub fn never_answered(&self) -> bool {
        match self {
            Conversation::Exec(translator) => translator.turn().session_id().is_none(),
            Conversation::AppServer(driver) => !driver.answered_initialize(),
        }
    }

    /// The turn's shared state, whichever transport runs it.
    pub fn turn(&self) -> &TurnEvents {
        match self {
            Conversation::Exec(translator) => translator.turn(),
            Conversation::AppServer(driver) => driver.translator().turn(),
        }
    }
}

/// A recording's translator, chosen by what the recording holds.
pub enum Recording {
    Exec(Translator),
    AppServer(app_server::translate::Translator),
}

impl Recording {
    /// The translator for a recording whose first line is `first_line`:
    /// exec's events have a `type`; app-server's JSON-RPC messages an `id`
    /// or a `method` and no `type`.
    pub fn for_first_line(first_line: &[u8], context: TurnContext, stream_text: bool) -> Recording {
        let value: serde_json::Value = serde_json::from_slice(first_line).unwrap_or_default();
        let app_server = value.get("type").is_none()
            && (value.get("id").is_some() || value.get("method").is_some());
        if app_server {
            Recording::AppServer(app_server::translate::Translator::new(context, stream_text))
        } else {
            Recording::Exec(Translator::new(context))
        }
    }

    /// After the terminal event: whether `line` begins another turn of the
    /// same recording (`--record` appends every turn to one file); the
    /// translator then goes on with it as part of the same run.
    pub fn begins_next_turn(&mut self, line: &[u8]) -> bool {
        match self {
            Recording::Exec(translator) => translator.begins_next_turn(line),
            Recording::AppServer(translator) => translator.begins_next_turn(line),
        }
    }

    pub fn line(&mut self, line: &[u8], out: &mut Vec<Event>) -> LineOutcome {
        match self {
            Recording::Exec(translator) => translator.line(line, out),
            Recording::AppServer(translator) => translator.line(line, out),
        }
    }

    pub fn oversized_line(&mut self, length: usize, out: &mut Vec<Event>) {
        match self {
            Recording::Exec(translator) => translator.oversized_line(length, out),
            Recording::AppServer(translator) => translator.oversized_line(length, out),
        }
    }

    pub fn finish(&mut self, end: StreamEnd, out: &mut Vec<Event>) {
        match self {
            Recording::Exec(translator) => translator.finish(end, out),
            Recording::AppServer(translator) => translator.finish(end, out),
        }
    }

    /// The turn's shared state, whichever kind of recording this is.
    pub fn turn(&self) -> &TurnEvents {
        match self {
            Recording::Exec(translator) => translator.turn(),
            Recording::AppServer(translator) => translator.turn(),
        }
    }
}
