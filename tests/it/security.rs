//! Nothing in a workspace can turn the adapter against its user
//! (PROTOCOL.md sections 2, 3, 6 and 7; issue 9). Each test plants what an
//! attacker would (a link, a FIFO, a device, a huge file, a program named
//! like codex, escape sequences, another user's lock) and checks that what
//! must not happen did not: the link's target is byte-identical, nothing
//! appeared outside the workspace, the turn ended on its own with exactly
//! one terminal event, memory stayed bounded, no planted program ran. The
//! real codex wherever codex is involved; a fake one only for its stderr.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mock_responses::user_texts;
use crate::support::{run, run_measuring_memory, Run, World, PNG};

const SESSION: &str = ".plexum-codex-session";
const LOCK: &str = ".plexum-codex-session.lock";

/// A 1×1 PNG; bytes after its end mark tell copies apart (codex sends an
/// image's bytes as they are).
fn png(tag: &str) -> Vec<u8> {
    [PNG, tag.as_bytes()].concat()
}

/// A folder beside the workspace holding one file an attacker wants
/// overwritten; returns the folder and the file.
pub fn outside(world: &World) -> (PathBuf, PathBuf) {
    let dir = world.dir.join("outside");
    std::fs::create_dir_all(&dir).unwrap();
    let precious = dir.join("precious");
    std::fs::write(&precious, "precious bytes\n").unwrap();
    (dir, precious)
}

pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn euid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

pub fn notices(run: &Run) -> String {
    run.of_type("notice")
        .iter()
        .map(|n| n["message"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the adapter and requires it to end on its own within `limit`
/// (generous: the turn's own `--timeout` is well below it). A run that has
/// to be killed blocked, which is the failure these tests look for.
/// Returns the run and the adapter's pid.
pub fn run_unblocked(command: &mut Command, limit: Duration) -> (Run, u32) {
    let child = crate::support::spawn(command, None);
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let (done_flag, killed_flag) = (Arc::clone(&done), Arc::clone(&killed));
    std::thread::spawn(move || {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if done_flag.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !done_flag.load(Ordering::SeqCst) {
            killed_flag.store(true, Ordering::SeqCst);
            // SAFETY: plain syscall on our own child, not reaped yet.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    });
    let output = child.wait_with_output().unwrap();
    done.store(true, Ordering::SeqCst);
    assert!(
        !killed.load(Ordering::SeqCst),
        "the adapter blocked and was killed after {limit:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (Run::from_output(output), pid)
}

/// Finding 1: the temporary session file had the name
/// `.plexum-codex-session.tmp.<adapter pid>` and was opened following
/// links. The model's own command finds the adapter's pid (codex's
/// parent) and plants links at every name of that scheme around it,
/// before the adapter saves the session at the end of the turn.
#[test]
fn a_link_planted_at_a_temporary_name_during_the_turn_is_never_written_through() {
    let world = World::new("sec-temp-link");
    let (outside_dir, precious) = outside(&world);
    let before = names_in(&outside_dir);
    let find_adapter = "p=$PPID; while [ \"$p\" -gt 1 ] && [ \"$(cat /proc/$p/comm)\" != plexum-openai-p ]; do p=$(cut -d' ' -f4 /proc/$p/stat); done";
    let message = format!(
        "mock:exec {find_adapter}; for n in $(seq $((p-64)) $((p+64))); do ln -s {} {SESSION}.tmp.$n; done; echo $p > planted-for",
        precious.display()
    );
    let mut command = world.turn_command(&[], &message);
    let (run, pid) = run_unblocked(&mut command, Duration::from_secs(90));
    run.assert_completed();
    // (Read from a file: codex 0.135 often loses command results.)
    let planted_for = std::fs::read_to_string(world.workspace.join("planted-for")).unwrap();
    assert_eq!(
        planted_for.trim(),
        pid.to_string(),
        "the links were planted for the adapter's pid"
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"precious bytes\n");
    assert_eq!(names_in(&outside_dir), before);
    assert!(
        world
            .workspace
            .join(format!("{SESSION}.tmp.{pid}"))
            .is_symlink(),
        "the link at the old name is still there"
    );
    // And the session was still saved at the end of the turn.
    assert!(!notices(&run).contains("could not save"), "{}", run.stdout);
    let session = std::fs::symlink_metadata(world.workspace.join(SESSION)).unwrap();
    assert!(session.is_file());
    let saved = world.session_file().unwrap();
    assert_eq!(saved["thread_id"], run.session_id());
    assert_eq!(saved["thread_usage"], run.terminal()["thread_usage"]);
}

/// Finding 2: the lock was opened with create+write through links, so a
/// dangling link made the adapter create its target outside.
#[test]
fn a_dangling_link_at_the_lock_creates_nothing_outside() {
    let world = World::new("sec-lock-link");
    let (outside_dir, _) = outside(&world);
    let before = names_in(&outside_dir);
    let target = outside_dir.join("created-by-the-lock");
    symlink(&target, world.workspace.join(LOCK)).unwrap();
    let run = world.turn("hello past the link");
    run.assert_completed();
    assert_eq!(run.text(), "echo: hello past the link");
    assert!(!target.exists());
    assert_eq!(names_in(&outside_dir), before);
    // The link was kept aside as it was, and said so.
    let kept = world.workspace.join(format!("{LOCK}.corrupt"));
    assert_eq!(std::fs::read_link(&kept).unwrap(), target);
    assert!(notices(&run).contains("symbolic link"), "{}", run.stdout);
    let lock = std::fs::symlink_metadata(world.workspace.join(LOCK)).unwrap();
    assert!(lock.is_file());
}

/// Red-team finding: a hard link planted at the lock or session name is
/// another name of a file outside the workspace; the adapter must neither
/// narrow its mode (the lock used to fchmod it to 0600) nor read it as the
/// session.
#[test]
fn a_hard_link_at_our_names_leaves_the_file_outside_untouched() {
    use std::os::unix::fs::PermissionsExt;
    for name in [LOCK, SESSION] {
        let world = World::new("sec-hardlink");
        let (outside_dir, _) = outside(&world);
        let target = outside_dir.join("precious");
        std::fs::write(&target, "precious\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::hard_link(&target, world.workspace.join(name)).unwrap();
        let run = world.turn("past the hard link");
        run.assert_completed();
        assert_eq!(run.text(), "echo: past the hard link");
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644, "{name}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert!(
            notices(&run).contains("hard links"),
            "{name}: {}",
            run.stdout
        );
    }
}

/// Finding 3: a FIFO at the session or lock name blocked `turn` forever
/// in open/read, deaf to `--timeout` and SIGTERM, and every later turn
/// was `session_busy`. So did a FIFO given as `--record` file: no step
/// before codex starts may block.
#[test]
fn fifos_at_our_names_never_block_the_turn() {
    for name in [SESSION, LOCK] {
        let world = World::new("sec-fifo");
        mkfifo(&world.workspace.join(name));
        let message = format!("through the fifo at {name}");
        let mut command = world.turn_command(&["--timeout", "20"], &message);
        let (run, _) = run_unblocked(&mut command, Duration::from_secs(60));
        run.assert_completed();
        assert_eq!(run.text(), format!("echo: {message}"));
        assert!(notices(&run).contains("a FIFO"), "{}", run.stdout);
        assert!(world.workspace.join(format!("{name}.corrupt")).exists());
        // The next turn is not locked out, and resumes.
        let next = world.turn("and again");
        next.assert_completed();
        assert_eq!(next.events[0]["resumed"], true, "{}", next.stdout);
    }
    let world = World::new("sec-fifo-record");
    let record = world.dir.join("record.fifo");
    mkfifo(&record);
    let mut command = world.turn_command(&["--record", record.to_str().unwrap()], "hi");
    let (run, _) = run_unblocked(&mut command, Duration::from_secs(60));
    assert_eq!(run.error_code(), "usage", "{}", run.stdout);
    assert!(world.mock.requests().is_empty(), "codex never started");
}

/// Finding 3, memory: a link to /dev/zero at the session name grew memory
/// until it ran out. Neither it, nor a device node, nor a huge file is
/// read beyond a small bound.
#[test]
fn devices_and_huge_files_at_the_session_name_keep_memory_bounded() {
    let plant_device = |path: &Path| {
        let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path; character device 1:5 is /dev/zero.
        let made =
            unsafe { libc::mknod(name.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
        made == 0
    };
    type Plant = Box<dyn Fn(&Path) -> bool>;
    let cases: Vec<(&str, Plant, &str)> = vec![
        (
            "link-to-dev-zero",
            Box::new(|path: &Path| symlink("/dev/zero", path).is_ok()),
            "a symbolic link",
        ),
        ("device", Box::new(plant_device), "a character device"),
        (
            "huge-file",
            Box::new(|path: &Path| {
                let file = std::fs::File::create(path).unwrap();
                file.set_len(1 << 30).is_ok()
            }),
            "larger than",
        ),
    ];
    for (case, plant, what) in cases {
        let world = World::new(&format!("sec-{case}"));
        let session = world.workspace.join(SESSION);
        if !plant(&session) {
            eprintln!("{case}: cannot be planted here (needs root for mknod); skipped");
            continue;
        }
        let mut command = world.turn_command(&["--timeout", "30"], "bounded");
        let (run, peak_kib) = run_measuring_memory(&mut command, 512 * 1024);
        run.assert_completed();
        assert!(notices(&run).contains(what), "{case}: {}", run.stdout);
        eprintln!("{case}: peak RSS {peak_kib} KiB");
        assert!(peak_kib < 64 * 1024, "{case}: peak RSS {peak_kib} KiB");
        // Kept aside, not read: the huge file is still whole.
        let kept = world.workspace.join(format!("{SESSION}.corrupt"));
        let kept = std::fs::symlink_metadata(kept).unwrap();
        if case == "huge-file" {
            assert_eq!(kept.len(), 1 << 30);
        }
        assert_eq!(world.session_file().unwrap()["thread_id"], run.session_id());
    }
}

/// Finding 4: a relative `binary` (or PATH entry) was checked against the
/// adapter's working directory but executed after the chdir into the
/// workspace, so a file of that name there ran as codex.
#[test]
fn a_relative_binary_or_path_entry_never_runs_a_program_in_the_workspace() {
    let world = World::new("sec-relative");
    let native =
        plexum_openai_provider::locate::native_for_launcher(&crate::support::codex_launcher())
            .expect("the npm install ships a native codex")
            .path;
    let launch = world.dir.join("launch");
    std::fs::create_dir_all(launch.join("bin")).unwrap();
    symlink(&native, launch.join("bin/codex")).unwrap();
    // The planted program: the same relative name inside the workspace.
    let marker = world.dir.join("the-planted-program-ran");
    std::fs::create_dir_all(world.workspace.join("bin")).unwrap();
    let planted = world.workspace.join("bin/codex");
    std::fs::write(&planted, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o755)).unwrap();
    let codex_home = world.dir.join("codex-home");

    let config = json!({ "binary": "bin/codex", "env": { "CODEX_HOME": codex_home } });
    std::fs::write(&world.config, config.to_string()).unwrap();
    let mut command = world.turn_command(&[], "relative binary");
    command.current_dir(&launch);
    let run = run(&mut command, None);
    assert!(!marker.exists(), "the planted program ran: {}", run.stdout);
    run.assert_completed();
    assert_eq!(run.text(), "echo: relative binary");

    let config = json!({ "env": { "CODEX_HOME": codex_home } });
    std::fs::write(&world.config, config.to_string()).unwrap();
    let mut command = world.turn_command(&[], "relative PATH entry");
    command
        .current_dir(&launch)
        .env("PATH", "bin:/usr/bin:/bin");
    let run = crate::support::run(&mut command, None);
    assert!(!marker.exists(), "the planted program ran: {}", run.stdout);
    assert_eq!(run.error_code(), "codex_not_found", "{}", run.stdout);
    let message = run.terminal()["message"].as_str().unwrap();
    assert!(!message.contains(" bin/codex"), "{message}");
}

/// The images of a request, in order, as their data URLs.
fn images_sent(request: &Value) -> Vec<String> {
    let mut urls = Vec::new();
    for item in request["input"].as_array().unwrap() {
        for part in item["content"].as_array().into_iter().flatten() {
            if part["type"] == "input_image" {
                urls.push(part["image_url"].as_str().unwrap().to_string());
            }
        }
    }
    urls
}

fn data_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::from("data:image/png;base64,");
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// Finding 5: codex splits every image path on commas (`shot,1.png` sent
/// `shot` and `1.png`, one of them from the workspace), and its variadic
/// `-i` swallowed `resume <id>` (a new thread, silently). What the mock
/// server received shows which files codex attached, and whether the
/// conversation went on.
#[test]
fn images_reach_codex_as_the_files_named_on_fresh_and_resumed_turns() {
    let world = World::new("sec-image");
    let named = png("the file named");
    std::fs::write(world.dir.join("shot,1.png"), &named).unwrap();
    for decoy in [&world.dir, &world.workspace] {
        std::fs::write(decoy.join("shot"), png("decoy")).unwrap();
        std::fs::write(decoy.join("1.png"), png("decoy")).unwrap();
    }
    let mut command = world.turn_command(&["--image", "shot,1.png"], "first look");
    command.current_dir(&world.dir);
    let first = run(&mut command, None);
    first.assert_completed();
    let request = world.mock.requests().pop().unwrap();
    assert_eq!(images_sent(&request), [data_url(&named)]);

    // A resumed turn, and a name with a leading dash.
    let second_image = png("the second file named");
    std::fs::write(world.dir.join("-dash.png"), &second_image).unwrap();
    let mut command = world.turn_command(&["--image", "-dash.png"], "second look");
    command.current_dir(&world.dir);
    let second = run(&mut command, None);
    second.assert_completed();
    assert_eq!(second.events[0]["resumed"], true, "{}", second.stdout);
    assert_eq!(second.session_id(), first.session_id());
    let request = world.mock.requests().pop().unwrap();
    // The whole conversation: the first turn's image and text, then this one.
    assert_eq!(
        images_sent(&request),
        [data_url(&named), data_url(&second_image)]
    );
    assert!(user_texts(&request)
        .iter()
        .any(|t| t.contains("first look")));
}

/// Finding 6: `extra_args` that choose the sandbox or the approval policy
/// were passed on, so `--sandbox read-only` beside the default bypass ran
/// codex with full access. `sandbox` is the one place that decides.
#[test]
fn extra_args_cannot_choose_the_sandbox() {
    let refused: &[&[&str]] = &[
        &["--sandbox", "read-only"],
        &["-s", "danger-full-access"],
        &["--sandbox=workspace-write"],
        &["--full-auto"],
        &["--yolo"],
        &["--dangerously-bypass-approvals-and-sandbox"],
        &["-c", "sandbox_mode=\"danger-full-access\""],
        &["--config=approval_policy=\"never\""],
        &["-csandbox_mode=read-only"],
    ];
    for args in refused {
        let world = World::with_config(
            "sec-extra-args",
            |codex_home| json!({ "binary": crate::support::codex_launcher(), "env": { "CODEX_HOME": codex_home }, "extra_args": args }),
        );
        let run = world.turn("hi");
        assert_eq!(run.error_code(), "config", "{args:?}: {}", run.stdout);
        assert_eq!(run.terminal()["retryable"], false);
        let message = run.terminal()["message"].as_str().unwrap();
        let last = args.last().unwrap().replace('"', "\\\"");
        assert!(
            message.contains(&last) && message.contains("`sandbox`"),
            "{args:?}: {message}"
        );
        assert!(world.mock.requests().is_empty(), "{args:?}: codex ran");
    }
    // Other extra arguments still reach codex.
    let world = World::with_config(
        "sec-extra-args-ok",
        |codex_home| json!({ "binary": crate::support::codex_launcher(), "env": { "CODEX_HOME": codex_home }, "extra_args": ["-c", "model=\"mock-from-extra-args\""] }),
    );
    let run = world.turn("hi");
    run.assert_completed();
    assert_eq!(world.mock.requests()[0]["model"], "mock-from-extra-args");
}

/// What `--format text` showed, raw.
fn text_output(command: &mut Command) -> String {
    command.env("NO_COLOR", "1");
    let child = crate::support::spawn(command, None);
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout).unwrap()
}

fn assert_no_control_characters(shown: &str) {
    let raw: Vec<char> = shown
        .chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .collect();
    assert!(raw.is_empty(), "raw {raw:?} in {shown:?}");
}

/// Finding 7: text mode wrote the model's text, commands, notices and
/// codex's stderr raw: a title set, the clipboard written (OSC 52), the
/// screen cleared, and a `\r` that hid the command that ran behind a
/// harmless one.
#[test]
fn text_mode_shows_control_characters_visibly() {
    let world = World::new("sec-text");
    let hostile = "look \x1b]0;owned\x07 \x1b]52;c;aGk=\x07 \x1b[2J \u{9b}1m";
    let shown = text_output(&mut world.turn_command(&["--format", "text"], hostile));
    assert_no_control_characters(&shown);
    assert!(
        shown.contains("look \\x1b]0;owned\\x07 \\x1b]52;c;aGk=\\x07 \\x1b[2J \\u{9b}1m"),
        "{shown:?}"
    );
    let command = "mock:exec echo really-ran\recho harmless";
    let shown = text_output(&mut world.turn_command(&["--format", "text"], command));
    assert_no_control_characters(&shown);
    assert!(shown.contains("really-ran\\recho harmless"), "{shown:?}");

    // Codex's stderr, shown in the error's detail: a fake codex, the real
    // one cannot be made to print this. It waits a moment before exiting so
    // that its stderr is surely read by then on a loaded machine.
    let fake = world.dir.join("fake-codex");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncat >/dev/null\nprintf 'Error: \\033]52;c;aGk=\\007 \\033[2J\\r ok\\n' >&2\nsleep 1\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&world.config, json!({ "binary": fake }).to_string()).unwrap();
    let shown = text_output(&mut world.turn_command(&["--format", "text"], "hi"));
    assert_no_control_characters(&shown);
    assert!(
        shown.contains("Error: \\x1b]52;c;aGk=\\x07 \\x1b[2J\\r ok"),
        "{shown:?}"
    );
}

/// Finding 8: the lock and session files were 0644, so any user who can
/// read the workspace read the thread id and could hold the lock (flock
/// works on a read-only descriptor), blocking every turn. Tests run as
/// root, which bypasses permission checks: the mode bits are what counts.
#[test]
fn the_lock_and_session_files_are_private_and_nobody_else_holds_the_lock() {
    let world = World::new("sec-private");
    let lock = world.workspace.join(LOCK);
    std::fs::write(&lock, "").unwrap();
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
    let other_user_can_be_faked = std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).is_ok();
    // Another user's process holding that lock.
    let held = std::fs::File::open(&lock).unwrap();
    // SAFETY: a valid descriptor.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let run = world.turn("nobody else holds the lock");
    if other_user_can_be_faked {
        run.assert_completed();
        assert!(
            notices(&run).contains("owned by another user (uid 65534)"),
            "{}",
            run.stdout
        );
        let kept = world.workspace.join(format!("{LOCK}.corrupt"));
        assert_eq!(std::fs::metadata(kept).unwrap().uid(), 65534);
    } else {
        eprintln!("not root: another user's lock cannot be faked; checked the modes only");
        assert_eq!(run.error_code(), "session_busy");
        drop(held);
        std::fs::remove_file(&lock).unwrap();
        world.turn("again").assert_completed();
    }
    for name in [SESSION, LOCK] {
        let path = world.workspace.join(name);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file(), "{name}");
        assert_eq!(mode(&path), 0o600, "{name}");
        assert_eq!(meta.uid(), euid(), "{name}");
    }
    // A v0.1 lock of our own (0644) is narrowed, not replaced.
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
    let inode = std::fs::metadata(&lock).unwrap().ino();
    world.turn("narrowed").assert_completed();
    assert_eq!(mode(&lock), 0o600);
    assert_eq!(std::fs::metadata(&lock).unwrap().ino(), inode);
}

/// Finding 9: a session file whose totals had one field more (another
/// adapter version) was taken as corrupt and the conversation dropped; an
/// upper-case thread id was resumed by codex but reported as a new thread.
#[test]
fn session_files_of_other_versions_are_resumed() {
    let world = World::new("sec-lenient");
    let first = world.turn("first");
    first.assert_completed();
    let id = first.session_id().to_string();
    let mut totals = first.terminal()["thread_usage"].clone();
    // (A field name with an escape sequence: the log on stderr shows it.)
    totals["tokens_from_the_future\x1b[2J"] = json!(5);
    let session = json!({ "thread_id": id, "thread_usage": totals, "written_by": "v9" });
    std::fs::write(world.workspace.join(SESSION), session.to_string()).unwrap();
    let second = world.turn("second");
    second.assert_completed();
    assert_eq!(second.events[0]["resumed"], true, "{}", second.stdout);
    assert_eq!(second.session_id(), id);
    assert!(
        notices(&second).contains("tokens_from_the_future"),
        "{}",
        second.stdout
    );
    assert!(second.stderr.contains("tokens_from_the_future\\x1b[2J"));
    assert!(!second.stderr.contains('\x1b'), "{:?}", second.stderr);
    // Totals unknown: this turn's usage is the running total (app-server
    // counts the turn's own requests and needs no totals).
    if !crate::support::app_server() {
        assert_eq!(
            second.terminal()["usage"],
            second.terminal()["thread_usage"]
        );
    }
    assert!(user_texts(&world.mock.requests().pop().unwrap())
        .iter()
        .any(|t| t == "first"));

    let upper = json!({ "thread_id": id.to_ascii_uppercase(), "thread_usage": second.terminal()["thread_usage"] });
    std::fs::write(world.workspace.join(SESSION), upper.to_string()).unwrap();
    let third = world.turn("third");
    third.assert_completed();
    assert_eq!(third.events[0]["resumed"], true, "{}", third.stdout);
    assert!(third.session_id().eq_ignore_ascii_case(&id));
    assert!(!notices(&third).contains("new thread"), "{}", third.stdout);
}

/// Finding 10: a second corrupt session file overwrote the first copy.
/// Every one is kept, and a link planted at a copy's name is neither
/// followed nor replaced.
#[test]
fn every_corrupt_session_file_is_kept() {
    let world = World::new("sec-corrupt-copies");
    let (_, precious) = outside(&world);
    let kept = |suffix: &str| world.workspace.join(format!("{SESSION}.corrupt{suffix}"));
    for garbage in ["first garbage", "second garbage"] {
        std::fs::write(world.workspace.join(SESSION), garbage).unwrap();
        world.turn("hello").assert_completed();
    }
    symlink(&precious, kept(".2")).unwrap();
    std::fs::write(world.workspace.join(SESSION), "third garbage").unwrap();
    let run = world.turn("hello");
    run.assert_completed();
    assert!(notices(&run).contains(".corrupt.3"), "{}", run.stdout);
    assert_eq!(std::fs::read_to_string(kept("")).unwrap(), "first garbage");
    assert_eq!(
        std::fs::read_to_string(kept(".1")).unwrap(),
        "second garbage"
    );
    assert_eq!(std::fs::read_link(kept(".2")).unwrap(), precious);
    assert_eq!(
        std::fs::read_to_string(kept(".3")).unwrap(),
        "third garbage"
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"precious bytes\n");
}
