//! The session file `<workspace>/.plexum-codex-session` (PROTOCOL.md
//! section 7): the workspace's codex thread and its running usage totals,
//! written atomically; and the per-workspace turn lock.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::Usage;

pub const SESSION_FILE: &str = ".plexum-codex-session";
const LOCK_FILE: &str = ".plexum-codex-session.lock";
const CORRUPT_SUFFIX: &str = ".corrupt";

/// What the session file says.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// No file: the next turn starts a new thread.
    Fresh,
    /// A thread to resume. `totals` is `None` for the v0.1 format (a bare id).
    Thread {
        thread_id: String,
        totals: Option<Usage>,
    },
    /// The file exists but cannot be used; `reason` says why.
    Corrupt { reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionJson {
    thread_id: String,
    #[serde(default)]
    thread_usage: Option<Usage>,
}

pub fn session_path(workspace: &Path) -> PathBuf {
    workspace.join(SESSION_FILE)
}

pub fn read(workspace: &Path) -> Stored {
    let path = session_path(workspace);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Stored::Fresh,
        Err(error) => {
            return Stored::Corrupt {
                reason: format!("cannot read it: {error}"),
            }
        }
    };
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Stored {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Stored::Corrupt {
            reason: String::from("it is not UTF-8"),
        };
    };
    let text = text.trim();
    // v0.1 wrote the bare thread id.
    if is_uuid(text) {
        return Stored::Thread {
            thread_id: text.to_string(),
            totals: None,
        };
    }
    match serde_json::from_str::<SessionJson>(text) {
        Ok(session) if is_uuid(&session.thread_id) => Stored::Thread {
            thread_id: session.thread_id,
            totals: session.thread_usage,
        },
        // Codex silently starts a new thread for an id that is not a UUID.
        Ok(session) => Stored::Corrupt {
            reason: format!("its thread id {:?} is not a UUID", session.thread_id),
        },
        Err(error) => Stored::Corrupt {
            reason: format!("it is neither a thread id nor session JSON ({error})"),
        },
    }
}

/// Writes the session atomically: a temporary file, fsync, rename. A crash
/// leaves the old file or the new one, never half of one; the fsync keeps a
/// power loss from leaving an empty file under the new name. The folder is
/// not synced: on a power loss the rename may be lost, which leaves the
/// previous, consistent file (a sync would cost ~0.3 ms twice a turn).
pub fn write(workspace: &Path, thread_id: &str, totals: Option<Usage>) -> io::Result<()> {
    let session = SessionJson {
        thread_id: thread_id.to_string(),
        thread_usage: totals,
    };
    let mut json = serde_json::to_vec_pretty(&session).map_err(io::Error::other)?;
    json.push(b'\n');
    let temporary = workspace.join(format!("{SESSION_FILE}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&temporary, session_path(workspace))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Moves an unusable session file aside as `.plexum-codex-session.corrupt`.
pub fn keep_corrupt(workspace: &Path) -> io::Result<PathBuf> {
    let kept = workspace.join(format!("{SESSION_FILE}{CORRUPT_SUFFIX}"));
    std::fs::rename(session_path(workspace), &kept)?;
    Ok(kept)
}

/// Held for the whole turn; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct TurnLock {
    _file: File,
}

pub enum LockError {
    Busy,
    Io(io::Error),
}

/// Takes the workspace's turn lock without waiting.
pub fn lock(workspace: &Path) -> Result<TurnLock, LockError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(workspace.join(LOCK_FILE))
        .map_err(LockError::Io)?;
    match file.try_lock() {
        Ok(()) => Ok(TurnLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Busy),
        Err(std::fs::TryLockError::Error(error)) => Err(LockError::Io(error)),
    }
}

/// Codex thread ids are UUIDs; codex treats anything else as a thread name
/// and silently starts a new thread when none matches.
pub fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "01a20bef-77e0-7061-a52a-e86d8a4aaf20";

    fn workspace(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("plexum-session-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn round_trip_and_v01_format() {
        let dir = workspace("roundtrip");
        assert_eq!(read(&dir), Stored::Fresh);
        std::fs::write(session_path(&dir), format!("{ID}\n")).unwrap();
        assert_eq!(
            read(&dir),
            Stored::Thread {
                thread_id: ID.into(),
                totals: None
            }
        );
        let totals = Usage {
            input_tokens: 7,
            ..Usage::default()
        };
        write(&dir, ID, Some(totals)).unwrap();
        assert_eq!(
            read(&dir),
            Stored::Thread {
                thread_id: ID.into(),
                totals: Some(totals)
            }
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn corrupt_files_are_recognised() {
        for bad in [
            &b"garbage"[..],
            b"{\"thread_id\": \"my-name\"}",
            b"\xff\xfe",
            b"{\"thread_id\": 5}",
        ] {
            assert!(matches!(parse(bad), Stored::Corrupt { .. }), "{bad:?}");
        }
    }

    #[test]
    fn second_lock_is_busy() {
        let dir = workspace("lock");
        let first = lock(&dir).ok().unwrap();
        assert!(matches!(lock(&dir), Err(LockError::Busy)));
        drop(first);
        assert!(lock(&dir).is_ok());
    }
}
