//! `session show|reset`: the workspace's codex thread, for operators.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::cli::SessionAction;
use crate::event::{ErrorCode, TurnError};
use crate::session::{LockError, SessionFiles, SessionNames, Stored};

pub fn run(action: SessionAction, workspace: &Path) -> ExitCode {
    let result = match action {
        SessionAction::Show => show(workspace),
        SessionAction::Reset => reset(workspace),
    };
    match result {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).expect("the report serialises");
            crate::output::print_text(&format!(
                "{text}
"
            ));
            ExitCode::SUCCESS
        }
        Err(error) => {
            crate::log::say(format_args!("{}", error.message));
            let line = json!({"type": "error", "code": error.code, "message": error.message, "retryable": error.retryable});
            crate::output::print_text(&format!("{line}\n"));
            ExitCode::FAILURE
        }
    }
}

fn open_workspace(workspace: &Path) -> Result<SessionFiles, TurnError> {
    if !workspace.is_dir() {
        return Err(TurnError::new(
            ErrorCode::Workspace,
            format!("workspace {} is not a directory", workspace.display()),
        ));
    }
    SessionFiles::open(workspace, SessionNames::workspace_default()).map_err(|error| {
        TurnError::new(
            ErrorCode::Workspace,
            format!("cannot open workspace {}: {error}", workspace.display()),
        )
    })
}

fn show(workspace: &Path) -> Result<serde_json::Value, TurnError> {
    let session = open_workspace(workspace)?;
    let turn_running = matches!(session.lock(), Err(LockError::Busy));
    let file = session.path();
    let report = match session.read() {
        Stored::Fresh => json!({"state": "none"}),
        Stored::Thread {
            thread_id, totals, ..
        } => json!({
            "state": "thread",
            "thread_id": thread_id,
            "thread_usage": totals,
        }),
        Stored::Corrupt { reason } => json!({"state": "corrupt", "reason": reason}),
    };
    let mut report = report;
    report["session_file"] = json!(file);
    report["turn_running"] = json!(turn_running);
    Ok(report)
}

fn reset(workspace: &Path) -> Result<serde_json::Value, TurnError> {
    let session = open_workspace(workspace)?;
    // Held while the file goes, so no turn starts halfway.
    let _lock = match session.lock() {
        Ok(lock) => lock,
        Err(LockError::Busy) => {
            return Err(TurnError::new(
                ErrorCode::SessionBusy,
                format!(
                    "a turn is running in workspace {}; reset it when the turn has ended",
                    workspace.display()
                ),
            ));
        }
        Err(LockError::Io(error)) => {
            return Err(TurnError::new(
                ErrorCode::Workspace,
                format!(
                    "cannot take the turn lock in workspace {}: {error}",
                    workspace.display()
                ),
            ));
        }
    };
    let previous = match session.read() {
        Stored::Thread { thread_id, .. } => Some(thread_id),
        _ => None,
    };
    if let Err(error) = session.remove() {
        return Err(TurnError::new(
            ErrorCode::Workspace,
            format!("cannot remove {}: {error}", session.path().display()),
        ));
    }
    Ok(json!({"reset": true, "previous_thread_id": previous}))
}
