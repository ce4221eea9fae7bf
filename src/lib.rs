//! plexum-openai-provider: runs the OpenAI Codex CLI as a Plexum model
//! backend, one process per conversation turn.
//!
//! Data flows one way:
//!
//! ```text
//! cli (argv → Command) → config (file, model table) → session (thread id,
//! totals, lock; its files through workspace, which treats the workspace as
//! hostile) → exec::argv + child (the codex process) → exec::translate
//! (pure: codex JSONL lines → canonical events) → output (JSONL or text)
//! ```
//!
//! `turn` touches all of them; `replay` feeds a recorded stream straight to
//! `exec::translate`. Everything for people goes to stderr.

pub mod app_server;
pub mod child;
pub mod cli;
pub mod config;
pub mod conversation;
pub mod doctor;
pub mod event;
pub mod exec;
mod images;
pub mod line_queue;
pub mod line_reader;
pub mod locate;
mod log;
pub mod output;
pub mod replay;
pub mod session;
mod session_command;
mod signals;
pub mod translate;
pub mod transport;
pub mod turn;
pub mod workspace;

use std::process::ExitCode;

use cli::{CliError, Command};
use event::{ErrorCode, Event, TurnError};

/// Runs the command line and returns the process's exit code.
pub fn run() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(error) => return command_line_error(error),
    };
    let subcommand = match &command {
        Command::Turn(_) => Some("turn"),
        Command::Replay(_) => Some("replay"),
        _ => None,
    };
    let output_args = match &command {
        Command::Turn(args) => Some(args.output),
        Command::Replay(args) => Some(args.output),
        _ => None,
    };
    // A panic is a bug, but turn and replay still owe the host their
    // terminal event.
    let result = std::panic::catch_unwind(move || dispatch(command));
    match (result, output_args) {
        (Ok(code), _) => code,
        (Err(_), Some(output_args)) => {
            let message = format!(
                "{} hit a bug in the adapter (a panic; see stderr); please report it",
                subcommand.unwrap_or("run")
            );
            let mut output = output::Output::stdout(output_args);
            let grace = output::WriteLimits::grace_from(std::time::Instant::now());
            output.writer_mut().set_limits(grace);
            output::finish_with(
                &mut output,
                Event::Error(TurnError::new(ErrorCode::Internal, message)),
            )
        }
        (Err(_), None) => ExitCode::from(101),
    }
}

fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Turn(args) => turn::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Models { config } => models(config),
        Command::Doctor(args) => doctor::run(args),
        Command::Session {
            action,
            workspace,
            conversation,
        } => session_command::run(action, &workspace, conversation.as_ref()),
        Command::Help(text) => {
            output::print_text(text);
            ExitCode::SUCCESS
        }
        Command::Version => {
            output::print_text(concat!(
                "plexum-openai-provider ",
                env!("CARGO_PKG_VERSION"),
                "\n"
            ));
            ExitCode::SUCCESS
        }
    }
}

fn models(config_path: Option<std::path::PathBuf>) -> ExitCode {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let env_config = std::env::var_os(config::CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(Into::into);
    match config::Config::load(config_path.as_deref(), env_config, home) {
        Ok((config, _)) => {
            let json = serde_json::to_string(&config.supported_models).expect("strings serialise");
            output::print_text(&format!("{json}\n"));
            ExitCode::SUCCESS
        }
        Err(error) => {
            log::say(format_args!("{}", error.message));
            ExitCode::FAILURE
        }
    }
}

/// Bad arguments: a message on stderr, and for `turn` / `replay` also the
/// terminal `usage` error on stdout.
fn command_line_error(error: CliError) -> ExitCode {
    log::say(format_args!("{}", error.message));
    if error.subcommand.is_some() {
        let mut output = output::Output::stdout(error.output);
        let grace = output::WriteLimits::grace_from(std::time::Instant::now());
        output.writer_mut().set_limits(grace);
        let _ = output.emit(&Event::Error(TurnError::new(
            ErrorCode::Usage,
            error.message,
        )));
    }
    ExitCode::from(2)
}
