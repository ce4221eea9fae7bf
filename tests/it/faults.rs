//! Turns that go wrong: time, signals, a closed host pipe, processes left
//! behind, concurrency, stale state, bad input. The real codex wherever it
//! can show the fault; a fake codex script for faults it cannot produce on
//! demand (garbage, truncation, floods, crashes).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{run, spawn, Run, World};

/// Reads the adapter's stdout until an event of `kind` arrives; returns
/// the lines read and the rest of the reader.
pub(crate) fn read_until(
    child: &mut Child,
    kind: &str,
) -> (Vec<Value>, BufReader<std::process::ChildStdout>) {
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut events = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stdout ended before {kind}: {events:?}"
        );
        let event: Value = serde_json::from_str(&line).unwrap();
        let found = event["type"] == kind;
        events.push(event);
        if found {
            return (events, reader);
        }
    }
}

/// The rest of the run: remaining stdout, then the exit and stderr.
pub(crate) fn finish(
    child: Child,
    mut reader: BufReader<std::process::ChildStdout>,
    mut earlier: Vec<Value>,
) -> Run {
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    let mut stdout: String = earlier.drain(..).map(|e| format!("{e}\n")).collect();
    stdout.push_str(&rest);
    Run::from_output(std::process::Output {
        status: output.status,
        stdout: stdout.into_bytes(),
        stderr: output.stderr,
    })
}

pub(crate) fn send_signal(child: &Child, signal: i32) {
    // SAFETY: plain syscall on our own unreaped child.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

/// Live processes (not zombies) whose working directory is `dir` or whose
/// command line holds `marker`.
pub(crate) fn processes(dir: Option<&Path>, marker: Option<&str>) -> Vec<String> {
    let dir = dir.map(|d| std::fs::canonicalize(d).unwrap());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        if matches!(state, None | Some("Z") | Some("X")) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
        let in_dir = dir.is_some() && cwd.as_deref() == dir.as_deref();
        let marked = marker.is_some_and(|m| cmdline.contains(m));
        if in_dir || marked {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Waits (generously) for processes to disappear; returns the survivors.
pub(crate) fn survivors(dir: Option<&Path>, marker: Option<&str>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes(dir, marker);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_silent_provider_ends_in_timeout() {
    let world = World::new("timeout");
    let started = Instant::now();
    // Long enough for codex to name its thread on a loaded machine (the
    // deadline counts from the start of `turn`).
    let run = world.turn_with(&["--timeout", "5"], "mock:hang", None);
    assert_eq!(run.error_code(), "timeout", "{}", run.stdout);
    assert_eq!(run.terminal()["retryable"], true);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a generous bound: {:?}",
        started.elapsed()
    );
    assert!(survivors(Some(&world.workspace), None).is_empty());
    // The thread was saved: the next turn resumes it.
    assert_eq!(world.session_file().unwrap()["thread_id"], run.session_id());
}

#[test]
fn signals_cancel_the_turn_and_stop_codex() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let world = World::new("signal");
        let mut child = spawn(&mut world.turn_command(&[], "mock:hang"), None);
        let (events, reader) = read_until(&mut child, "message_start");
        send_signal(&child, signal);
        let run = finish(child, reader, events);
        assert_eq!(
            run.error_code(),
            "cancelled",
            "signal {signal}: {}",
            run.stdout
        );
        assert!(!run.status.success());
        assert!(
            survivors(Some(&world.workspace), None).is_empty(),
            "signal {signal}"
        );
    }
}

#[test]
fn a_signal_ends_a_replay_waiting_on_stdin_with_cancelled() {
    let mut command = crate::support::adapter();
    command
        .args(["replay", "--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    // One line, then the pipe stays open: the replay blocks on stdin.
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, format!("{THREAD}\n").as_bytes()).unwrap();
    let (events, reader) = read_until(&mut child, "message_start");
    send_signal(&child, libc::SIGTERM);
    let run = finish(child, reader, events);
    drop(stdin);
    assert_eq!(run.error_code(), "cancelled", "{}", run.stdout);
}

#[test]
fn a_host_that_closes_stdout_stops_the_turn_quietly() {
    let world = World::new("epipe");
    let mut child = spawn(&mut world.turn_command(&[], "mock:hang"), None);
    // Once codex has printed what it prints before asking the model
    // (thread.started, on 0.169 a warning item, turn.started) it is silent
    // while the provider hangs: only watching the pipe can tell that the
    // host went away. The mock has the request by then.
    let (_, reader) = read_until(&mut child, "message_start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.mock.requests().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    drop(reader);
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it noticed: {:?}",
        started.elapsed()
    );
    assert!(survivors(Some(&world.workspace), None).is_empty());
}

#[test]
fn a_killed_adapter_takes_codex_with_it_and_keeps_the_thread() {
    let world = World::new("sigkill");
    // Codex runs a command and prints nothing while it waits for it (the
    // mock asks for a 10 s yield): it would not notice our death by itself.
    let marker = format!("27.{}", std::process::id() % 1000);
    let mut child = spawn(
        &mut world.turn_command(&[], &format!("mock:exec sleep {marker}")),
        None,
    );
    let (events, _reader) = read_until(&mut child, "tool_call");
    send_signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let codex_in_workspace = || -> Vec<String> {
        let in_workspace = processes(Some(&world.workspace), None);
        in_workspace
            .into_iter()
            .filter(|p| p.contains("codex exec") || p.contains("codex app-server"))
            .collect()
    };
    // A generous bound: the parent-death signal acts at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !codex_in_workspace().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let codex_left = codex_in_workspace();
    // The command codex started is not ours to reap once we are dead.
    for line in processes(None, Some(&format!("sleep {marker}"))) {
        let pid: i32 = line.split(':').next().unwrap().parse().unwrap();
        // SAFETY: plain syscall.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(
        codex_left.is_empty(),
        "codex outlived the adapter: {codex_left:?}"
    );
    // The thread id was saved before message_start was shown.
    assert_eq!(
        world.session_file().unwrap()["thread_id"],
        events[0]["session_id"]
    );
}

#[test]
fn commands_codex_started_do_not_outlive_the_turn() {
    // Each case backgrounds a sleep with a unique length, detached from
    // codex's pipes, and ends the turn a different way.
    let cases: [(&str, &[&str], Option<i32>); 3] = [
        ("normal", &[], None),
        ("timeout", &["--timeout", "4"], None),
        ("sigterm", &[], Some(libc::SIGTERM)),
    ];
    for (index, (how, extra, signal)) in cases.into_iter().enumerate() {
        let world = World::new(&format!("orphans-{how}"));
        let marker = format!("31{index}.{}", std::process::id() % 1000);
        let hang = if how == "normal" { "" } else { "; sleep 600" };
        let message =
            format!("mock:exec sleep {marker} > /dev/null 2>&1 < /dev/null & echo started{hang}");
        let mut child = spawn(&mut world.turn_command(extra, &message), None);
        if let Some(signal) = signal {
            let (events, reader) = read_until(&mut child, "tool_call");
            // Give the command a moment to start its background sleep.
            let deadline = Instant::now() + Duration::from_secs(10);
            while processes(None, Some(&marker)).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            send_signal(&child, signal);
            finish(child, reader, events);
        } else {
            let output = child.wait_with_output().unwrap();
            let run = Run::from_output(output);
            if how == "normal" {
                run.assert_completed();
            } else {
                assert_eq!(run.error_code(), "timeout");
            }
        }
        let left = survivors(None, Some(&format!("sleep {marker}")));
        assert!(left.is_empty(), "{how}: left behind: {left:?}");
    }
}

/// `second` was refused with a retryable `session_busy` before codex
/// started (the mock got no further request).
pub(crate) fn assert_refused_busy(world: &World, second: &Run, requests_before: usize) {
    assert_eq!(second.error_code(), "session_busy", "{}", second.stdout);
    assert_eq!(second.terminal()["retryable"], true);
    assert_eq!(
        world.mock.requests().len(),
        requests_before,
        "the second turn never reached codex"
    );
}

#[test]
fn a_second_turn_in_a_busy_workspace_is_refused_at_once() {
    let world = World::new("busy");
    let mut first = spawn(&mut world.turn_command(&[], "mock:hang"), None);
    let (events, reader) = read_until(&mut first, "message_start");
    let requests_before = world.mock.requests().len();
    let second = world.turn("me too");
    assert_refused_busy(&world, &second, requests_before);
    send_signal(&first, libc::SIGTERM);
    let first = finish(first, reader, events);
    assert_eq!(first.error_code(), "cancelled");
    assert_eq!(
        world.session_file().unwrap()["thread_id"],
        first.session_id()
    );
}

/// Two workspaces holding the same thread (a copied session file): from
/// 0.147 codex refuses a second writer, which is `session_busy`; 0.135
/// lets both write one history.
#[test]
fn another_writer_on_the_thread_is_session_busy_on_newer_codex() {
    let world = World::new("writer");
    world.turn("start a thread");
    let other = world.dir.join("other-workspace");
    std::fs::create_dir_all(&other).unwrap();
    let session = ".plexum-codex-session";
    std::fs::copy(world.workspace.join(session), other.join(session)).unwrap();
    let requests = world.mock.requests().len();
    let mut first = spawn(&mut world.turn_command(&[], "mock:hang"), None);
    let (events, reader) = read_until(&mut first, "message_start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.mock.requests().len() == requests && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run(
        crate::support::adapter()
            .args(["turn", "--config"])
            .arg(&world.config)
            .arg("--workspace")
            .arg(&other)
            .args(["--", "me too"]),
        None,
    );
    if crate::support::codex_version() >= (0, 147, 0) {
        assert_eq!(second.error_code(), "session_busy", "{}", second.stdout);
        assert!(second.terminal()["message"]
            .as_str()
            .unwrap()
            .contains("another process"));
    } else {
        assert_eq!(second.text(), "echo: me too", "{}", second.stdout);
    }
    send_signal(&first, libc::SIGTERM);
    finish(first, reader, events);
}

#[test]
fn sixteen_workspaces_run_in_parallel() {
    let worlds: Vec<World> = (0..16)
        .map(|i| World::new(&format!("parallel{i}")))
        .collect();
    let children: Vec<Child> = worlds
        .iter()
        .enumerate()
        .map(|(i, world)| {
            spawn(
                &mut world.turn_command(&[], &format!("parallel turn {i}")),
                None,
            )
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let run = Run::from_output(child.wait_with_output().unwrap());
        assert_eq!(
            run.text(),
            format!("echo: parallel turn {i}"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_stale_thread_is_replaced_in_the_same_run() {
    let world = World::new("stale");
    let stale = "01a20bf7-0000-7000-8000-000000000000";
    let old = json!({"thread_id": stale, "thread_usage": {"input_tokens": 99999}});
    std::fs::write(
        world.workspace.join(".plexum-codex-session"),
        old.to_string(),
    )
    .unwrap();
    let run = world.turn("are you there?");
    run.assert_completed();
    assert_eq!(
        run.text(),
        "echo: are you there?",
        "the message was not lost"
    );
    assert_ne!(run.session_id(), stale);
    assert_eq!(run.events[0]["resumed"], false);
    let notice = &run.events[1];
    assert_eq!(notice["type"], "notice");
    assert!(
        notice["message"].as_str().unwrap().contains(stale),
        "{notice}"
    );
    // The baseline was reset with the new thread.
    assert_eq!(run.terminal()["usage"], run.terminal()["thread_usage"]);
    assert_eq!(world.session_file().unwrap()["thread_id"], run.session_id());
}

#[test]
fn a_corrupt_session_file_is_kept_aside_and_replaced() {
    let world = World::new("corrupt");
    std::fs::write(world.workspace.join(".plexum-codex-session"), "{not json").unwrap();
    let run = world.turn("hello after corruption");
    assert_eq!(run.text(), "echo: hello after corruption");
    assert_eq!(run.types()[1], "notice");
    let kept =
        std::fs::read_to_string(world.workspace.join(".plexum-codex-session.corrupt")).unwrap();
    assert_eq!(kept, "{not json");
    assert_eq!(world.session_file().unwrap()["thread_id"], run.session_id());
}

#[test]
fn a_v01_session_file_is_resumed_with_unknown_totals() {
    let world = World::new("v01");
    let first = world.turn("first");
    std::fs::write(
        world.workspace.join(".plexum-codex-session"),
        format!("{}\n", first.session_id()),
    )
    .unwrap();
    let second = world.turn("second");
    assert_eq!(second.events[0]["resumed"], true);
    if crate::support::app_server() {
        // App-server reports each request: the turn's usage is exact
        // without the earlier totals, and nothing needs saying.
        let reported = world.mock.reported_usage();
        assert_eq!(
            second.terminal()["usage"]["input_tokens"],
            reported.last().unwrap().input_tokens,
            "{}",
            second.stdout
        );
        assert_ne!(
            second.terminal()["usage"],
            second.terminal()["thread_usage"]
        );
        return;
    }
    assert_eq!(second.types()[1], "notice");
    assert_eq!(
        second.terminal()["usage"],
        second.terminal()["thread_usage"]
    );
}

#[test]
fn bad_messages_are_refused_before_codex_starts() {
    let world = World::new("badinput");
    let session =
        json!({"thread_id": "01a20bf7-1111-7000-8000-000000000000", "thread_usage": null})
            .to_string();
    std::fs::write(world.workspace.join(".plexum-codex-session"), &session).unwrap();
    let too_large = "x".repeat(1_048_577);
    let cases: [(&str, Option<&[u8]>, &str); 5] = [
        ("", None, "usage"),
        (" \n\t ", None, "usage"),
        ("-", Some(b"\xff\xfe not utf-8"), "usage"),
        ("-", Some(b"  \n "), "usage"),
        ("-", Some(too_large.as_bytes()), "message_too_large"),
    ];
    for (message, stdin, code) in cases {
        let run = world.turn_with(&[], message, stdin);
        assert_eq!(run.error_code(), code, "{message:?}");
        assert_eq!(run.events.len(), 1);
    }
    let run = world.turn_with(&[], "-", Some(too_large.as_bytes()));
    let message = run.terminal()["message"].as_str().unwrap();
    assert!(
        message.contains("1048577") && message.contains("1048576"),
        "{message}"
    );
    assert!(world.mock.requests().is_empty(), "codex was never started");
    assert_eq!(
        std::fs::read_to_string(world.workspace.join(".plexum-codex-session")).unwrap(),
        session
    );
}

#[test]
fn setup_problems_have_their_codes() {
    let world = World::new("setup");
    let missing = world.dir.join("missing");
    let file = world.dir.join("config.json");
    for workspace in [&missing, &file] {
        let run = run(
            crate::support::adapter()
                .args(["turn", "--config"])
                .arg(&world.config)
                .arg("--workspace")
                .arg(workspace)
                .args(["--", "hi"]),
            None,
        );
        assert_eq!(run.error_code(), "workspace", "{}", workspace.display());
    }
    let run = world.turn_with(&["--model", "gpt-nope"], "hi", None);
    assert_eq!(run.error_code(), "unknown_model");
    assert!(run.terminal()["message"]
        .as_str()
        .unwrap()
        .contains("codex"));

    let run = world.turn_with(&["--bogus"], "hi", None);
    assert_eq!(run.error_code(), "usage");
    assert!(run.stderr.contains("--bogus"));

    let bad = world.dir.join("bad.json");
    for text in [
        r#"{"sandbox": "none"}"#,
        r#"{"timeout": 5}"#,
        "{",
        r#"{"env": []}"#,
    ] {
        std::fs::write(&bad, text).unwrap();
        let run = world.turn_with(&["--config", bad.to_str().unwrap()], "hi", None);
        assert_eq!(run.error_code(), "config", "{text}");
    }
}

#[test]
fn a_missing_or_unusable_binary_says_what_was_tried() {
    for binary in ["/nonexistent/codex", "codex-not-installed-anywhere"] {
        let world = World::with_config("nobinary", |_| json!({ "binary": binary }));
        let run = world.turn("hi");
        assert_eq!(run.error_code(), "codex_not_found");
        let message = run.terminal()["message"].as_str().unwrap();
        assert!(
            message.contains(binary) && message.contains("absolute path"),
            "{message}"
        );
    }
    let world = World::new("notexec");
    let script = world.dir.join("codex");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let config = json!({ "binary": script });
    std::fs::write(&world.config, config.to_string()).unwrap();
    assert_eq!(world.turn("hi").error_code(), "codex_not_found");
}

/// A fake codex: a shell script standing in for the binary.
pub(crate) fn fake_codex(name: &str, script: &str) -> World {
    let dir = crate::support::scratch(&format!("fake-{name}"));
    let path: PathBuf = dir.join("fake-codex");
    crate::support::write_executable(&path, &format!("#!/bin/sh\ncat > /dev/null\n{script}\n"));
    World::with_config(name, |_| json!({ "binary": path }))
}

/// A fake codex for `transport` whose script reads its stdin itself (for
/// app-server, `APP_SERVER_OPENING` answers the handshake).
pub(crate) fn scripted_codex(name: &str, script: &str, transport: &str) -> World {
    let dir = crate::support::scratch(&format!("fake-{name}"));
    let path: PathBuf = dir.join("fake-codex");
    crate::support::write_executable(&path, &format!("#!/bin/sh\n{script}\n"));
    World::with_config(name, |_| json!({ "binary": path, "transport": transport }))
}

/// What app-server says up to a running turn, as a script reading the
/// adapter's requests: `initialize`, the thread, `turn/start`.
pub(crate) const APP_SERVER_OPENING: &str = r#"read -r initialize
echo '{"id":1,"result":{"userAgent":"fake/0.171.0"}}'
read -r initialized
read -r thread
echo '{"id":2,"result":{"thread":{"id":"01a2335d-7bea-7433-9d84-d00d56e6f4d0"}}}'
read -r turn
echo '{"id":3,"result":{"turn":{"id":"U"}}}'"#;

pub(crate) const THREAD: &str =
    r#"{"type":"thread.started","thread_id":"01a20bef-77e0-7061-a52a-e86d8a4aaf20"}"#;
pub(crate) const DONE: &str = r#"{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1,"reasoning_output_tokens":0}}"#;

#[test]
fn broken_codex_output_ends_with_the_right_code() {
    // The same faults on either transport: after codex named the thread
    // (exec's `thread.started`, app-server's answers up to `turn/start`).
    let named = if crate::support::app_server() {
        APP_SERVER_OPENING.to_string()
    } else {
        format!("cat > /dev/null; echo '{THREAD}'")
    };
    let cases = [
        (
            "garbage",
            format!("{named}\necho 'not json'; echo '{{\"type\":'; exit 0"),
            "protocol",
        ),
        (
            "truncated",
            format!("{named}\nprintf '%s' '{{\"type\":\"item.comp'"),
            "protocol",
        ),
        ("silent-exit-0", named.clone(), "protocol"),
        (
            "crash",
            format!("{named}\necho 'Error: it broke' >&2; exit 3"),
            "codex_crashed",
        ),
        ("killed", format!("{named}\nkill -KILL $$"), "codex_crashed"),
        (
            "writer",
            "echo 'Error: thread 01a2 already has an active writer' >&2; exit 1".to_string(),
            "session_busy",
        ),
        (
            "closed-stdout-hangs",
            format!("{named}\nexec >&-; sleep 60"),
            "timeout",
        ),
        // Nothing printed at all: not codex.
        ("never-spoke", String::from("exit 0"), "config"),
    ];
    for (name, script, code) in cases {
        let world = scripted_codex(name, &script, crate::support::transport());
        let run = world.turn_with(&["--timeout", "3"], "hi", None);
        assert_eq!(run.error_code(), code, "{name}: {}", run.stdout);
        if name == "crash" {
            let detail = run.terminal()["detail"].as_str().unwrap();
            assert!(detail.contains("Error: it broke"), "{detail}");
        }
        if name == "garbage" {
            assert!(run
                .of_type("notice")
                .iter()
                .any(|n| n["message"].as_str().unwrap().contains("not json")));
        }
    }
}

#[test]
fn a_100_mib_line_and_a_stderr_flood_keep_memory_bounded() {
    let script = format!(
        "echo '{THREAD}'; head -c 50000000 /dev/zero >&2; head -c 104857600 /dev/zero | tr '\\0' a; echo; echo '{DONE}'"
    );
    let world = fake_codex("huge", &script);
    let mut command = world.turn_command(&[], "hi");
    let (run, peak_kib) = crate::support::run_measuring_memory(&mut command, u64::MAX);
    run.assert_completed();
    assert!(run
        .of_type("notice")
        .iter()
        .any(|n| n["message"].as_str().unwrap().contains("104857600 bytes")));
    // The cap is 16 MiB; without it the line alone would take over 100 MiB.
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
}
