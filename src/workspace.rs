//! The files the adapter keeps in a workspace, opened as if hostile
//! (PROTOCOL.md section 7). Codex, every command the model runs, and perhaps
//! other users write there, so every name is reached through the workspace's
//! directory descriptor, never through a symbolic link (`O_NOFOLLOW`), only
//! as a regular file of ours (`lstat` before, `fstat` after the open),
//! without ever blocking (`O_NONBLOCK` for the open, cleared after), created
//! exclusively (`O_EXCL`) with mode 0600 under an unpredictable temporary
//! name, and read up to a bound. OpenSSH's `auth_openfile()` is the model.
//!
//! Nothing here knows what the files hold; `session` does.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Temporary files are created 0600, and so is the lock: nobody else may
/// read the thread id or hold the lock.
const PRIVATE_MODE: libc::mode_t = 0o600;

/// How many numbered copies may be kept aside under one name.
const MAX_KEPT_COPIES: usize = 1000;

/// One workspace directory, held open: a name swapped for a link halfway
/// through a turn cannot move our files elsewhere.
#[derive(Debug)]
pub struct Workspace {
    dir: OwnedFd,
    path: PathBuf,
}

/// Something found at one of our names that is not a file we could have
/// written (a link, a FIFO, a device, another user's file, a huge file), or
/// that could not be opened at all. `what` completes "it is …".
#[derive(Debug)]
pub struct Odd {
    pub what: String,
    /// What was seen there (device, inode), when it could be seen.
    seen: Option<FileId>,
}

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

/// Taking a lock file.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    Busy,
    Io(io::Error),
}

/// A lock held on one of our files, and what had to be moved out of its way.
#[derive(Debug)]
pub struct Locked {
    pub file: File,
    /// One sentence per thing found at the lock's name and kept aside.
    pub kept_aside: Vec<String>,
}

impl Workspace {
    /// Opens the workspace directory itself. Its path comes from the host
    /// and is trusted; only what is inside it is not.
    pub fn open(path: &Path) -> io::Result<Workspace> {
        let name = c_path(path.as_os_str().as_bytes())?;
        // O_PATH: a handle for the *at calls only, so a workspace we may
        // write and enter but not list still works.
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: a valid NUL-terminated path; the descriptor is owned below.
        let fd = unsafe { libc::open(name.as_ptr(), flags) };
        let dir = owned(fd)?;
        Ok(Workspace {
            dir,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `name` is, for messages.
    pub fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads the regular file `name`, at most `limit` bytes. `Ok(None)` when
    /// nothing is there.
    pub fn read(&self, name: &str, limit: usize) -> Result<Option<Vec<u8>>, Odd> {
        let Some(file) = self.open_regular(name)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        // One byte more than allowed tells a full file from a huge one.
        file.take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| Odd::new(format!("unreadable ({error})"), None))?;
        if bytes.len() > limit {
            return Err(Odd::new(format!("larger than {limit} bytes"), None));
        }
        Ok(Some(bytes))
    }

    /// Replaces `name` with `contents` atomically: a new file under an
    /// unpredictable name `<temp_prefix><random>`, created exclusively,
    /// written, synced, then renamed over `name` (a rename replaces a link
    /// planted at `name`, it never writes through it). A crash leaves the
    /// old file or the new one, never half of one.
    pub fn replace(&self, name: &str, temp_prefix: &str, contents: &[u8]) -> io::Result<()> {
        let (temporary, mut file) = self.create_temporary(temp_prefix)?;
        let result = file
            .write_all(contents)
            .and_then(|()| file.sync_all())
            .and_then(|()| self.rename(&temporary, name));
        if result.is_err() {
            let _ = self.remove(&temporary);
        }
        result
    }

    /// Moves whatever is at `name` (a file, a link, a FIFO…: the name
    /// itself, never what a link points to) to the first free name of
    /// `aside`, `aside.1`, `aside.2`…, never replacing an earlier copy.
    /// Returns the name it got.
    pub fn keep_aside(&self, name: &str, aside: &str) -> io::Result<String> {
        for number in 0..MAX_KEPT_COPIES {
            let candidate = match number {
                0 => aside.to_string(),
                n => format!("{aside}.{n}"),
            };
            match self.rename_no_replace(name, &candidate) {
                Ok(()) => return Ok(candidate),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
        Err(io::Error::other(format!(
            "{aside} and {} numbered copies of it already exist",
            MAX_KEPT_COPIES - 1
        )))
    }

    /// Removes `name` (the name itself, also when it is a link); nothing
    /// there is fine.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        let name = c_name(name)?;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        if unsafe { libc::unlinkat(self.dir.as_raw_fd(), name.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        match io::Error::last_os_error() {
            error if error.kind() == io::ErrorKind::NotFound => Ok(()),
            error => Err(error),
        }
    }

    /// Takes an exclusive lock on the file `name` without waiting, creating
    /// it (0600) when missing. Anything at that name that is not a regular
    /// file of ours is kept aside as `aside` (numbered), then replaced; a
    /// file of ours with a wider mode (v0.1 made it 0644) is narrowed to 0600.
    pub fn lock(&self, name: &str, aside: &str) -> Result<Locked, LockError> {
        let mut kept_aside = Vec::new();
        // Each round either locks, or saw the name change under it; a
        // few rounds only fail when something keeps swapping the name.
        for _ in 0..8 {
            let file = match self.open_regular(name) {
                Ok(Some(file)) => file,
                Ok(None) => match self.create(name) {
                    Ok(file) => file,
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(error) => return Err(LockError::Io(error)),
                },
                Err(odd) => {
                    if let Some(kept) = self.keep_odd_aside(name, aside, &odd)? {
                        kept_aside.push(format!(
                            "the lock file {} was {}; it was kept as {} and replaced",
                            self.file_path(name).display(),
                            odd.what,
                            self.file_path(&kept).display()
                        ));
                    }
                    continue;
                }
            };
            let fd = file.as_raw_fd();
            let stat = fstat(fd).map_err(LockError::Io)?;
            if stat.st_mode & 0o7777 != PRIVATE_MODE {
                // SAFETY: a valid descriptor of a regular file of ours.
                if unsafe { libc::fchmod(fd, PRIVATE_MODE) } != 0 {
                    return Err(LockError::Io(io::Error::last_os_error()));
                }
            }
            // SAFETY: a valid descriptor.
            if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let error = io::Error::last_os_error();
                return Err(match error.raw_os_error() {
                    Some(libc::EWOULDBLOCK) => LockError::Busy,
                    _ => LockError::Io(error),
                });
            }
            // Locked, but is it still the file at that name? Another
            // adapter may have kept it aside in between.
            let still_there = self
                .lstat(name)
                .ok()
                .flatten()
                .is_some_and(|now| FileId::of(&now) == FileId::of(&stat));
            if still_there {
                return Ok(Locked { file, kept_aside });
            }
        }
        Err(LockError::Io(io::Error::other(format!(
            "{} kept changing while the lock was taken",
            self.file_path(name).display()
        ))))
    }

    /// Opens `name` for reading only when it is a regular file of ours:
    /// `lstat` first (nothing else is opened at all, so no device or FIFO
    /// is ever touched), then an open that neither follows a link nor
    /// blocks, then `fstat` to check it is still the same file.
    fn open_regular(&self, name: &str) -> Result<Option<File>, Odd> {
        let before = match self.lstat(name) {
            Ok(Some(stat)) => stat,
            Ok(None) => return Ok(None),
            Err(error) => return Err(Odd::new(format!("not inspectable ({error})"), None)),
        };
        let seen = Some(FileId::of(&before));
        if let Some(what) = oddity(&before) {
            return Err(Odd::new(what, seen));
        }
        let c_name = c_name(name).map_err(|error| Odd::new(error.to_string(), seen))?;
        let flags =
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        let fd = unsafe { libc::openat(self.dir.as_raw_fd(), c_name.as_ptr(), flags) };
        let fd = match owned(fd) {
            Ok(fd) => fd,
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Odd::new("a symbolic link".into(), seen))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Odd::new(format!("not openable ({error})"), seen)),
        };
        let after = fstat(fd.as_raw_fd()).map_err(|error| Odd::new(error.to_string(), seen))?;
        if let Some(what) = oddity(&after) {
            return Err(Odd::new(what, Some(FileId::of(&after))));
        }
        if FileId::of(&after) != FileId::of(&before) {
            return Err(Odd::new(
                "changing while it was opened".into(),
                Some(FileId::of(&after)),
            ));
        }
        clear_nonblocking(fd.as_raw_fd()).map_err(|error| Odd::new(error.to_string(), seen))?;
        Ok(Some(File::from(fd)))
    }

    /// Keeps aside what `open_regular` refused, and checks that what moved
    /// is what was refused: another adapter may have put a good lock there
    /// in between, which goes back (and then that adapter holds the lock).
    /// `None` when it was gone already (another adapter moved it).
    fn keep_odd_aside(
        &self,
        name: &str,
        aside: &str,
        odd: &Odd,
    ) -> Result<Option<String>, LockError> {
        let kept = match self.keep_aside(name, aside) {
            Ok(kept) => kept,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(LockError::Io(error)),
        };
        let moved = self
            .lstat(&kept)
            .ok()
            .flatten()
            .map(|stat| FileId::of(&stat));
        if odd.seen.is_some() && moved != odd.seen {
            return match self.rename_no_replace(&kept, name) {
                Ok(()) => Err(LockError::Busy),
                Err(error) => Err(LockError::Io(error)),
            };
        }
        Ok(Some(kept))
    }

    /// A new file `<prefix><32 random hex digits>`, 0600, never an existing
    /// name or a link.
    fn create_temporary(&self, prefix: &str) -> io::Result<(String, File)> {
        // 128 random bits: only a planted name collides, so draw again, a
        // few times at most.
        let mut last_error = None;
        for _ in 0..16 {
            let name = format!("{prefix}{}", random_hex()?);
            match self.create(&name) {
                Ok(file) => return Ok((name, file)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no temporary name was free")))
    }

    /// Creates `name` exclusively with mode 0600 (`O_EXCL` also refuses a
    /// link at that name, dangling or not).
    fn create(&self, name: &str) -> io::Result<File> {
        let c_name = c_name(name)?;
        let flags = libc::O_WRONLY
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_NOFOLLOW
            | libc::O_NOCTTY
            | libc::O_CLOEXEC;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c_name.as_ptr(),
                flags,
                libc::c_uint::from(PRIVATE_MODE),
            )
        };
        let fd = owned(fd)?;
        // The umask may only have narrowed the mode; make it exactly 0600
        // so the owner can always read it back.
        // SAFETY: a valid descriptor.
        if unsafe { libc::fchmod(fd.as_raw_fd(), PRIVATE_MODE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(File::from(fd))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        let dir = self.dir.as_raw_fd();
        // SAFETY: valid descriptors and NUL-terminated names.
        if unsafe { libc::renameat(dir, from.as_ptr(), dir, to.as_ptr()) } == 0 {
            return Ok(());
        }
        Err(io::Error::last_os_error())
    }

    /// Renames without replacing anything at `to` (`AlreadyExists` then).
    fn rename_no_replace(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        let dir = self.dir.as_raw_fd();
        // SAFETY: valid descriptors and NUL-terminated names.
        let renamed = unsafe {
            libc::renameat2(dir, from.as_ptr(), dir, to.as_ptr(), libc::RENAME_NOREPLACE)
        };
        if renamed == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if !matches!(error.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(error);
        }
        // A filesystem without RENAME_NOREPLACE: a hard link (which fails
        // on an existing name, and links a symbolic link itself), then the
        // old name goes.
        // SAFETY: valid descriptors and NUL-terminated names; flags 0 does
        // not follow a link at `from`.
        if unsafe { libc::linkat(dir, from.as_ptr(), dir, to.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::unlinkat(dir, from.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `lstat` of `name` in the workspace; `None` when nothing is there.
    fn lstat(&self, name: &str) -> io::Result<Option<libc::stat>> {
        let c_name = c_name(name)?;
        // SAFETY: an all-zero stat is a valid out-parameter.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid directory descriptor, name and out-parameter.
        let result = unsafe {
            libc::fstatat(
                self.dir.as_raw_fd(),
                c_name.as_ptr(),
                &mut stat,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if result == 0 {
            return Ok(Some(stat));
        }
        match io::Error::last_os_error() {
            error if error.kind() == io::ErrorKind::NotFound => Ok(None),
            error => Err(error),
        }
    }
}

impl Odd {
    fn new(what: String, seen: Option<FileId>) -> Odd {
        Odd { what, seen }
    }
}

impl std::fmt::Display for Odd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl FileId {
    fn of(stat: &libc::stat) -> FileId {
        FileId(stat.st_dev, stat.st_ino)
    }
}

/// Why a file with this `lstat`/`fstat` is not one we could have written;
/// `None` for a regular file of our own user.
fn oddity(stat: &libc::stat) -> Option<String> {
    let kind = match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG => None,
        libc::S_IFLNK => Some("a symbolic link"),
        libc::S_IFIFO => Some("a FIFO"),
        libc::S_IFCHR => Some("a character device"),
        libc::S_IFBLK => Some("a block device"),
        libc::S_IFDIR => Some("a directory"),
        libc::S_IFSOCK => Some("a socket"),
        _ => Some("not a regular file"),
    };
    if let Some(kind) = kind {
        return Some(kind.to_string());
    }
    // SAFETY: no arguments, cannot fail.
    let me = unsafe { libc::geteuid() };
    if stat.st_uid != me {
        return Some(format!("owned by another user (uid {})", stat.st_uid));
    }
    // A hard link is another name of a file that may live outside the
    // workspace: reading, locking or narrowing its mode would act on that
    // file. We never link our files, so a second name means a planted one.
    (stat.st_nlink != 1).then(|| format!("a file with {} hard links", stat.st_nlink))
}

/// 128 bits from the kernel's random source, as 32 hex digits.
fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: writes at most `rest.len()` bytes into `rest`.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        filled += got as usize;
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and out-parameter.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat)
}

/// Reads and writes block again once the open could not.
pub fn clear_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a valid descriptor.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One of our own names: a single path component.
fn c_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::other(format!(
            "{name:?} is not a file name inside the workspace (a bug)"
        )));
    }
    c_path(name.as_bytes())
}

fn c_path(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::other("a path with a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn scratch(name: &str) -> (PathBuf, Workspace) {
        let dir =
            std::env::temp_dir().join(format!("plexum-workspace-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ws")).unwrap();
        let workspace = Workspace::open(&dir.join("ws")).unwrap();
        (dir, workspace)
    }

    #[test]
    fn create_refuses_an_existing_name_and_never_writes_through_a_link() {
        let (dir, ws) = scratch("create");
        let target = dir.join("target");
        std::fs::write(&target, "precious").unwrap();
        symlink(&target, dir.join("ws/planted")).unwrap();
        symlink(dir.join("dangling"), dir.join("ws/dangling")).unwrap();
        for name in ["planted", "dangling"] {
            let error = ws.create(name).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{name}");
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        assert!(!dir.join("dangling").exists());
    }

    #[test]
    fn temporary_names_are_unpredictable_and_files_private() {
        let (dir, ws) = scratch("temporary");
        let mut names = std::collections::HashSet::new();
        for _ in 0..200 {
            let (name, _file) = ws.create_temporary("t.").unwrap();
            let random = name.strip_prefix("t.").unwrap();
            assert_eq!(random.len(), 32, "{name}");
            // 128 random bits in hex; a pid may turn up in them by chance,
            // so only the old, predictable name itself is ruled out.
            assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
            assert_ne!(random, std::process::id().to_string());
            let meta = std::fs::symlink_metadata(dir.join("ws").join(&name)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{name}");
            assert!(names.insert(name));
        }
    }

    #[test]
    fn replace_writes_the_name_itself_not_a_link_there() {
        let (dir, ws) = scratch("replace");
        let target = dir.join("target");
        std::fs::write(&target, "precious").unwrap();
        symlink(&target, dir.join("ws/file")).unwrap();
        ws.replace("file", "file.tmp.", b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        let meta = std::fs::symlink_metadata(dir.join("ws/file")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(ws.read("file", 10).unwrap().unwrap(), b"new");
    }

    #[test]
    fn read_refuses_links_fifos_devices_and_huge_files_without_blocking() {
        let (dir, ws) = scratch("read");
        let ws_dir = dir.join("ws");
        std::fs::write(dir.join("target"), "outside").unwrap();
        symlink(dir.join("target"), ws_dir.join("link")).unwrap();
        symlink("/dev/zero", ws_dir.join("zero")).unwrap();
        let fifo = c_path(ws_dir.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::fs::create_dir(ws_dir.join("dir")).unwrap();
        std::fs::File::create(ws_dir.join("huge"))
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        for (name, what) in [
            ("link", "a symbolic link"),
            ("zero", "a symbolic link"),
            ("fifo", "a FIFO"),
            ("dir", "a directory"),
            ("huge", "larger than 100 bytes"),
        ] {
            let odd = ws.read(name, 100).unwrap_err();
            assert_eq!(odd.what, what, "{name}");
        }
        assert!(ws.read("absent", 100).unwrap().is_none());
    }

    #[test]
    fn copies_kept_aside_are_numbered_and_never_replaced() {
        let (dir, ws) = scratch("aside");
        let ws_dir = dir.join("ws");
        for (round, text) in ["first", "second", "third"].iter().enumerate() {
            std::fs::write(ws_dir.join("file"), text).unwrap();
            let kept = ws.keep_aside("file", "file.corrupt").unwrap();
            let expected = match round {
                0 => String::from("file.corrupt"),
                n => format!("file.corrupt.{n}"),
            };
            assert_eq!(kept, expected);
        }
        assert_eq!(
            std::fs::read_to_string(ws_dir.join("file.corrupt")).unwrap(),
            "first"
        );
        assert_eq!(
            std::fs::read_to_string(ws_dir.join("file.corrupt.2")).unwrap(),
            "third"
        );
    }

    #[test]
    fn a_lock_is_exclusive_private_and_moves_odd_things_aside() {
        let (dir, ws) = scratch("lock");
        let ws_dir = dir.join("ws");
        symlink(dir.join("outside"), ws_dir.join("lock")).unwrap();
        let first = ws.lock("lock", "lock.corrupt").unwrap();
        assert!(
            !dir.join("outside").exists(),
            "a dangling link is not followed"
        );
        assert_eq!(first.kept_aside.len(), 1, "{:?}", first.kept_aside);
        assert!(std::fs::symlink_metadata(ws_dir.join("lock.corrupt"))
            .unwrap()
            .file_type()
            .is_symlink());
        let meta = std::fs::symlink_metadata(ws_dir.join("lock")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(meta.uid(), unsafe { libc::geteuid() });
        assert!(matches!(
            ws.lock("lock", "lock.corrupt"),
            Err(LockError::Busy)
        ));
        drop(first);
        let again = ws.lock("lock", "lock.corrupt").unwrap();
        assert!(again.kept_aside.is_empty());
    }
}
