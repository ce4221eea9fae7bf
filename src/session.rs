//! The session files (PROTOCOL.md section 7): one codex thread and its
//! running usage totals per workspace and conversation, written
//! atomically, each with its own turn lock. The workspace's default
//! conversation keeps v0.1's `<workspace>/.plexum-codex-session`; a keyed
//! one (`turn --conversation KEY`) lives in
//! `.plexum-codex-conversation.<tag>`, named by a hash of the key and
//! holding the key itself. This module is also where a key finds its
//! thread, whichever transport runs the turn. Every file goes through
//! `workspace`, which treats the workspace as hostile; this module only
//! knows what the files mean.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::conversation::ConversationKey;
use crate::event::Usage;
use crate::workspace::{self, Workspace};

/// A session file is a few hundred bytes; anything much larger is not one.
const MAX_SESSION_BYTES: usize = 64 * 1024;

/// The default conversation's session file: v0.1's name.
const DEFAULT_SESSION: &str = ".plexum-codex-session";

/// A keyed conversation's session file is this followed by the key's
/// file tag (32 hex digits).
const CONVERSATION_PREFIX: &str = ".plexum-codex-conversation.";

/// The names of one thread's files in a workspace: the session file, its
/// temporaries, its lock, and the copies kept aside. All come from one
/// base name, so another thread slot (another conversation) is another
/// value of this, not another set of constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionNames {
    base: String,
    owner: Owner,
}

/// Whose thread a set of names holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// The workspace's default conversation (no `--conversation`).
    Default,
    /// A host's conversation: its key is stored in the file and checked
    /// on every read.
    Keyed(ConversationKey),
    /// A keyed conversation's file found by `list` whose key is unknown
    /// (the file is not readable as ours).
    Unknown,
}

impl SessionNames {
    /// The workspace's own thread: `.plexum-codex-session` (v0.1's name).
    pub fn workspace_default() -> SessionNames {
        SessionNames {
            base: String::from(DEFAULT_SESSION),
            owner: Owner::Default,
        }
    }

    /// The thread of the host's conversation `key`. The key is never part
    /// of a path: only its hash is.
    pub fn conversation(key: &ConversationKey) -> SessionNames {
        SessionNames {
            base: format!("{CONVERSATION_PREFIX}{}", key.file_tag()),
            owner: Owner::Keyed(key.clone()),
        }
    }

    /// The names for a turn with `--conversation KEY`, or without it.
    pub fn of(conversation: Option<&ConversationKey>) -> SessionNames {
        match conversation {
            Some(key) => SessionNames::conversation(key),
            None => SessionNames::workspace_default(),
        }
    }

    /// The conversation's key; `None` for the default conversation (and
    /// for a listed file whose key could not be read).
    pub fn key(&self) -> Option<&ConversationKey> {
        match &self.owner {
            Owner::Keyed(key) => Some(key),
            Owner::Default | Owner::Unknown => None,
        }
    }

    pub fn is_default(&self) -> bool {
        self.owner == Owner::Default
    }

    pub fn session(&self) -> &str {
        &self.base
    }

    /// The file tag of a keyed conversation's session file name (not of
    /// its lock, temporaries or copies).
    fn tag_of(name: &str) -> Option<&str> {
        let tag = name.strip_prefix(CONVERSATION_PREFIX)?;
        let is_tag = tag.len() == 32 && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        is_tag.then_some(tag)
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
    /// The key of a keyed conversation; absent in the default one's file,
    /// which keeps v0.1's format.
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation: Option<&'a str>,
}

/// A conversation `list` found: its files, its key where readable, and
/// what its session file says.
#[derive(Debug)]
pub struct Listed {
    pub files: SessionFiles,
    pub key: Option<String>,
    pub stored: Stored,
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

    pub fn names(&self) -> &SessionNames {
        &self.names
    }

    /// The session file's path, for messages.
    pub fn path(&self) -> PathBuf {
        self.workspace.file_path(self.names.session())
    }

    /// The lock file's path, for messages.
    pub fn lock_path(&self) -> PathBuf {
        self.workspace.file_path(&self.names.lock())
    }

    /// Reads the session file: a bounded read of a regular file of ours,
    /// anything else `Corrupt`. A keyed conversation's file must name that
    /// conversation: any other (a copy of another one's file, a planted
    /// one) is not its thread.
    pub fn read(&self) -> Stored {
        match self.read_keyed() {
            (stored @ Stored::Thread { .. }, found) => match (&self.names.owner, found) {
                (Owner::Keyed(key), Some(found)) if found == key.as_str() => stored,
                (Owner::Keyed(_), Some(found)) => Stored::Corrupt {
                    reason: format!("it belongs to another conversation, {found:?}"),
                },
                (Owner::Keyed(_), None) => Stored::Corrupt {
                    reason: String::from("it names no conversation"),
                },
                (Owner::Default | Owner::Unknown, _) => stored,
            },
            (other, _) => other,
        }
    }

    /// The session file and the conversation key stored in it.
    fn read_keyed(&self) -> (Stored, Option<String>) {
        match self.workspace.read(self.names.session(), MAX_SESSION_BYTES) {
            Ok(Some(bytes)) => (parse(&bytes), stored_key(&bytes)),
            Ok(None) => (Stored::Fresh, None),
            Err(odd) => (
                Stored::Corrupt {
                    reason: format!("it is {odd}"),
                },
                None,
            ),
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
            conversation: self.names.key().map(ConversationKey::as_str),
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

/// Every conversation of `workspace` that has a session file (or something
/// at its name): the default one first, then the keyed ones by key. Only
/// names are listed from the folder; each file is read like a turn reads
/// it, so a link or a FIFO there is reported, never followed or waited on.
pub fn list(workspace: &Path) -> io::Result<Vec<Listed>> {
    let mut found = Vec::new();
    let default = SessionFiles::open(workspace, SessionNames::workspace_default())?;
    let stored = default.read();
    if stored != Stored::Fresh {
        found.push(Listed {
            files: default,
            key: None,
            stored,
        });
    }
    let mut keyed = Vec::new();
    for entry in std::fs::read_dir(workspace)? {
        let entry = entry?;
        let Some(tag) = entry
            .file_name()
            .to_str()
            .and_then(SessionNames::tag_of)
            .map(String::from)
        else {
            continue;
        };
        let unknown = SessionNames {
            base: format!("{CONVERSATION_PREFIX}{tag}"),
            owner: Owner::Unknown,
        };
        let files = SessionFiles::open(workspace, unknown)?;
        let (stored, key) = files.read_keyed();
        // The key must be the one the name was made from; anything else is
        // reported as it is, under the name it was found at.
        let key = key
            .and_then(|key| ConversationKey::parse(key.into()).ok())
            .filter(|key| key.file_tag() == tag);
        let listed = match key {
            Some(key) => Listed {
                files: SessionFiles::open(workspace, SessionNames::conversation(&key))?,
                key: Some(key.as_str().to_string()),
                stored,
            },
            None if matches!(stored, Stored::Thread { .. }) => Listed {
                files,
                key: None,
                stored: Stored::Corrupt {
                    reason: String::from("it names no conversation whose hash is its file name"),
                },
            },
            None => Listed {
                files,
                key: None,
                stored,
            },
        };
        keyed.push(listed);
    }
    // Keys first, in byte order; files without a readable key last.
    keyed.sort_by(|a, b| {
        (a.key.is_none(), &a.key, a.files.names.session()).cmp(&(
            b.key.is_none(),
            &b.key,
            b.files.names.session(),
        ))
    });
    found.extend(keyed);
    Ok(found)
}

/// The conversation key a session file stores, if it stores one as text.
fn stored_key(bytes: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    match json.get("conversation")? {
        serde_json::Value::String(key) => Some(key.clone()),
        _ => None,
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

    fn key(text: &str) -> ConversationKey {
        ConversationKey::parse(text.into()).unwrap()
    }

    #[test]
    fn conversation_names_come_from_the_hash_only() {
        let odd = SessionNames::conversation(&key("../x/\u{202e}"));
        assert!(odd.session().starts_with(CONVERSATION_PREFIX));
        assert!(!odd.session().contains('/'));
        assert_ne!(odd, SessionNames::conversation(&key("alice")));
        assert_eq!(SessionNames::of(None), SessionNames::workspace_default());
        assert!(SessionNames::of(None).is_default());
        assert!(!odd.is_default());
        // Only the session file itself is listed, not its lock or copies.
        assert!(SessionNames::tag_of(odd.session()).is_some());
        for other in [odd.lock(), odd.corrupt(), odd.temporary_prefix()] {
            assert_eq!(SessionNames::tag_of(&other), None, "{other}");
        }
        assert_eq!(SessionNames::tag_of(DEFAULT_SESSION), None);
    }

    #[test]
    fn a_keyed_file_holds_its_key_and_only_its_key_reads_it() {
        let default = files("keyed");
        let workspace = default.workspace().to_path_buf();
        let open =
            |k: &str| SessionFiles::open(&workspace, SessionNames::conversation(&key(k))).unwrap();
        let (alice, bob) = (open("alice"), open("bob"));
        alice.write(ID, None).unwrap();
        assert!(matches!(alice.read(), Stored::Thread { .. }));
        assert_eq!(bob.read(), Stored::Fresh);
        assert_eq!(default.read(), Stored::Fresh);
        // bob's file name, alice's content: not bob's thread.
        std::fs::copy(alice.path(), bob.path()).unwrap();
        assert!(matches!(bob.read(), Stored::Corrupt { reason } if reason.contains("\"alice\"")));
        // The default file keeps v0.1's format: no key inside.
        default.write(ID, None).unwrap();
        let text = std::fs::read_to_string(default.path()).unwrap();
        assert!(!text.contains("conversation"), "{text}");

        let listed = list(&workspace).unwrap();
        let keys: Vec<_> = listed.iter().map(|l| l.key.as_deref()).collect();
        assert_eq!(keys, [None, Some("alice"), None]);
        assert!(listed[0].files.names().is_default());
        assert!(matches!(listed[2].stored, Stored::Corrupt { .. }));
        assert!(!listed[2].files.names().is_default());
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
