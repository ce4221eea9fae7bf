//! The session file `<workspace>/.plexum-codex-session` (PROTOCOL.md
//! section 7): the workspace's codex thread and its running usage totals,
//! written atomically; and the per-workspace turn lock. Every file goes
//! through `workspace`, which treats the workspace as hostile; this module
//! only knows what the files mean.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::event::Usage;
use crate::workspace::{self, Workspace};

/// A session file is a few hundred bytes; anything much larger is not one.
const MAX_SESSION_BYTES: usize = 64 * 1024;

/// The names of one thread's files in a workspace: the session file, its
/// temporaries, its lock, and the copies kept aside. All come from one
/// base name, so another thread slot (another conversation) is another
/// value of this, not another set of constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionNames {
    base: String,
}

impl SessionNames {
    /// The workspace's own thread: `.plexum-codex-session` (v0.1's name).
    pub fn workspace_default() -> SessionNames {
        SessionNames {
            base: String::from(".plexum-codex-session"),
        }
    }

    pub fn session(&self) -> &str {
        &self.base
    }

    fn temporary_prefix(&self) -> String {
        format!("{}.tmp.", self.base)
    }

    fn corrupt(&self) -> String {
        format!("{}.corrupt", self.base)
    }

    fn lock(&self) -> String {
        format!("{}.lock", self.base)
    }

    fn lock_corrupt(&self) -> String {
        format!("{}.lock.corrupt", self.base)
    }
}

/// What the session file says.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// No file: the next turn starts a new thread.
    Fresh,
    /// A thread to resume. `totals` is `None` when unknown: the v0.1 format
    /// (a bare id), or totals this adapter cannot read (`odd_totals` says
    /// why; another adapter version wrote them).
    Thread {
        thread_id: String,
        totals: Option<Usage>,
        odd_totals: Option<String>,
    },
    /// Something is at the name but it cannot be used; `reason` says why.
    Corrupt { reason: String },
}

#[derive(Debug, Serialize)]
struct SessionJson<'a> {
    thread_id: &'a str,
    thread_usage: Option<Usage>,
}

/// One thread's session file and lock in one workspace.
#[derive(Debug)]
pub struct SessionFiles {
    workspace: Workspace,
    names: SessionNames,
}

/// Held for the whole turn; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct TurnLock {
    _file: File,
    /// What was found at the lock's name and kept aside, for notices.
    pub kept_aside: Vec<String>,
}

pub enum LockError {
    Busy,
    Io(io::Error),
}

impl SessionFiles {
    /// Opens the workspace directory (the path itself is the host's).
    pub fn open(workspace: &Path, names: SessionNames) -> io::Result<SessionFiles> {
        Ok(SessionFiles {
            workspace: Workspace::open(workspace)?,
            names,
        })
    }

    pub fn workspace(&self) -> &Path {
        self.workspace.path()
    }

    /// The session file's path, for messages.
    pub fn path(&self) -> PathBuf {
        self.workspace.file_path(self.names.session())
    }

    /// Reads the session file: a bounded read of a regular file of ours,
    /// anything else `Corrupt`.
    pub fn read(&self) -> Stored {
        match self.workspace.read(self.names.session(), MAX_SESSION_BYTES) {
            Ok(Some(bytes)) => parse(&bytes),
            Ok(None) => Stored::Fresh,
            Err(odd) => Stored::Corrupt {
                reason: format!("it is {odd}"),
            },
        }
    }

    /// Writes the session atomically (see `Workspace::replace`). The fsync
    /// keeps a power loss from leaving an empty file under the new name.
    /// The folder is not synced: on a power loss the rename may be lost,
    /// which leaves the previous, consistent file (a sync would cost
    /// ~0.3 ms twice a turn).
    pub fn write(&self, thread_id: &str, totals: Option<Usage>) -> io::Result<()> {
        let session = SessionJson {
            thread_id,
            thread_usage: totals,
        };
        let mut json = serde_json::to_vec_pretty(&session).map_err(io::Error::other)?;
        json.push(b'\n');
        self.workspace
            .replace(self.names.session(), &self.names.temporary_prefix(), &json)
    }

    /// Moves an unusable session file (or whatever is at its name) aside as
    /// `.plexum-codex-session.corrupt`, or `.corrupt.1`, `.2`… when earlier
    /// copies are there: every copy is kept.
    pub fn keep_corrupt(&self) -> io::Result<PathBuf> {
        let kept = self
            .workspace
            .keep_aside(self.names.session(), &self.names.corrupt())?;
        Ok(self.workspace.file_path(&kept))
    }

    /// Forgets the thread (`session reset`).
    pub fn remove(&self) -> io::Result<()> {
        self.workspace.remove(self.names.session())
    }

    /// Takes the thread's turn lock without waiting.
    pub fn lock(&self) -> Result<TurnLock, LockError> {
        match self
            .workspace
            .lock(&self.names.lock(), &self.names.lock_corrupt())
        {
            Ok(locked) => Ok(TurnLock {
                _file: locked.file,
                kept_aside: locked.kept_aside,
            }),
            Err(workspace::LockError::Busy) => Err(LockError::Busy),
            Err(workspace::LockError::Io(error)) => Err(LockError::Io(error)),
        }
    }
}

/// Lenient on purpose: another adapter version may have written the file.
/// A valid thread id is all a resume needs; totals that do not read as
/// ours become unknown, and letter case in the id does not matter (codex
/// prints ids in lower case).
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
            thread_id: text.to_ascii_lowercase(),
            totals: None,
            odd_totals: None,
        };
    }
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(error) => {
            return Stored::Corrupt {
                reason: format!("it is neither a thread id nor session JSON ({error})"),
            }
        }
    };
    let thread_id = match json.get("thread_id") {
        Some(serde_json::Value::String(id)) if is_uuid(id) => id.to_ascii_lowercase(),
        // Codex silently starts a new thread for an id that is not a UUID.
        Some(other) => {
            return Stored::Corrupt {
                reason: format!("its thread id {other} is not a UUID"),
            }
        }
        None => {
            return Stored::Corrupt {
                reason: String::from("it names no thread_id"),
            }
        }
    };
    let (totals, odd_totals) = match json.get("thread_usage") {
        None | Some(serde_json::Value::Null) => (None, None),
        // serde would read an array as the struct's fields in order.
        Some(usage) if !usage.is_object() => (
            None,
            Some(format!("its thread_usage {usage} is not an object")),
        ),
        Some(usage) => match serde::Deserialize::deserialize(usage) {
            Ok(totals) => (Some(totals), None),
            Err(error) => (
                None,
                Some(format!("its thread_usage is not readable: {error}")),
            ),
        },
    };
    Stored::Thread {
        thread_id,
        totals,
        odd_totals,
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

    fn files(name: &str) -> SessionFiles {
        let dir =
            std::env::temp_dir().join(format!("plexum-session-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        SessionFiles::open(&dir, SessionNames::workspace_default()).unwrap()
    }

    #[test]
    fn round_trip_and_v01_format() {
        let files = files("roundtrip");
        assert_eq!(files.read(), Stored::Fresh);
        std::fs::write(files.path(), format!("{ID}\n")).unwrap();
        assert_eq!(
            files.read(),
            Stored::Thread {
                thread_id: ID.into(),
                totals: None,
                odd_totals: None,
            }
        );
        let totals = Usage {
            input_tokens: 7,
            ..Usage::default()
        };
        files.write(ID, Some(totals)).unwrap();
        assert_eq!(
            files.read(),
            Stored::Thread {
                thread_id: ID.into(),
                totals: Some(totals),
                odd_totals: None,
            }
        );
        let leftovers: Vec<_> = std::fs::read_dir(files.workspace())
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
            b"{\"thread_usage\": null}",
        ] {
            assert!(matches!(parse(bad), Stored::Corrupt { .. }), "{bad:?}");
        }
    }

    #[test]
    fn other_versions_files_are_resumed_leniently() {
        let upper = ID.to_ascii_uppercase();
        let text = format!(
            r#"{{"thread_id": "{upper}", "thread_usage": {{"input_tokens": 5, "new_field": 1}}, "other": true}}"#
        );
        match parse(text.as_bytes()) {
            Stored::Thread {
                thread_id,
                totals: None,
                odd_totals: Some(why),
            } => {
                assert_eq!(thread_id, ID);
                assert!(why.contains("new_field"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(format!(r#"{{"thread_id": "{ID}", "thread_usage": [1]}}"#).as_bytes()),
            Stored::Thread {
                totals: None,
                odd_totals: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn second_lock_is_busy() {
        let files = files("lock");
        let first = files.lock().ok().unwrap();
        assert!(matches!(files.lock(), Err(LockError::Busy)));
        drop(first);
        assert!(files.lock().is_ok());
    }
}
