//! `session show|reset|list`: a workspace's codex threads, one per
//! conversation, for operators.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::cli::SessionAction;
use crate::conversation::ConversationKey;
use crate::event::{ErrorCode, TurnError};
use crate::session::{self, LockError, SessionFiles, SessionNames, Stored};

pub fn run(
    action: SessionAction,
    workspace: &Path,
    conversation: Option<&ConversationKey>,
) -> ExitCode {
    let result = match action {
        SessionAction::Show => open(workspace, conversation).map(|files| show(&files)),
        SessionAction::Reset => open(workspace, conversation).and_then(|files| reset(&files)),
        SessionAction::List => {
            check_workspace(workspace).and_then(|()| list(workspace, conversation))
        }
    };
    match result {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).expect("the report serialises");
            crate::output::print_text(&format!("{text}\n"));
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

fn check_workspace(workspace: &Path) -> Result<(), TurnError> {
    if workspace.is_dir() {
        return Ok(());
    }
    Err(TurnError::new(
        ErrorCode::Workspace,
        format!("workspace {} is not a directory", workspace.display()),
    ))
}

/// The files of one conversation (the default one without a key).
fn open(
    workspace: &Path,
    conversation: Option<&ConversationKey>,
) -> Result<SessionFiles, TurnError> {
    check_workspace(workspace)?;
    SessionFiles::open(workspace, SessionNames::of(conversation)).map_err(|error| {
        TurnError::new(
            ErrorCode::Workspace,
            format!("cannot open workspace {}: {error}", workspace.display()),
        )
    })
}

/// One conversation as `show` and `list` print it. `conversation` is null
/// for the default one, and for a keyed file too broken to name its key.
fn describe(files: &SessionFiles, stored: &Stored, key: Option<&str>) -> serde_json::Value {
    let turn_running = matches!(files.lock(), Err(LockError::Busy));
    let mut report = match stored {
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
    report["conversation"] = json!(key);
    report["default"] = json!(files.names().is_default());
    report["session_file"] = json!(files.path());
    report["lock_file"] = json!(files.lock_path());
    report["turn_running"] = json!(turn_running);
    report
}

fn show(files: &SessionFiles) -> serde_json::Value {
    let key = files.names().key().map(ConversationKey::as_str);
    describe(files, &files.read(), key)
}

/// Every conversation with a session file, the default one first; with a
/// key, only that one.
fn list(workspace: &Path, only: Option<&ConversationKey>) -> Result<serde_json::Value, TurnError> {
    let found = session::list(workspace).map_err(|error| {
        TurnError::new(
            ErrorCode::Workspace,
            format!(
                "cannot list the conversations of workspace {}: {error}",
                workspace.display()
            ),
        )
    })?;
    let conversations: Vec<serde_json::Value> = found
        .iter()
        .filter(|listed| match only {
            None => true,
            Some(key) => listed.key.as_deref() == Some(key.as_str()),
        })
        .map(|listed| describe(&listed.files, &listed.stored, listed.key.as_deref()))
        .collect();
    Ok(json!({"workspace": workspace, "conversations": conversations}))
}

fn reset(files: &SessionFiles) -> Result<serde_json::Value, TurnError> {
    let workspace = files.workspace().display();
    // Held while the file goes, so no turn starts halfway.
    let _lock = match files.lock() {
        Ok(lock) => lock,
        Err(LockError::Busy) => {
            return Err(TurnError::new(
                ErrorCode::SessionBusy,
                format!(
                    "a turn of this conversation is running in workspace {workspace}; reset it when the turn has ended"
                ),
            ));
        }
        Err(LockError::Io(error)) => {
            return Err(TurnError::new(
                ErrorCode::Workspace,
                format!("cannot take the turn lock in workspace {workspace}: {error}"),
            ));
        }
    };
    let previous = match files.read() {
        Stored::Thread { thread_id, .. } => Some(thread_id),
        _ => None,
    };
    files.remove().map_err(|error| {
        TurnError::new(
            ErrorCode::Workspace,
            format!("cannot remove {}: {error}", files.path().display()),
        )
    })?;
    Ok(json!({
        "reset": true,
        "conversation": files.names().key().map(ConversationKey::as_str),
        "previous_thread_id": previous,
    }))
}
