//! Slow, odd and hurried hosts, and odd numbers from codex (issue 10; and
//! finding 11 of issue 9): a host that does not read, a non-blocking
//! stdout, a next turn started on `message_end`, signals while the message
//! is read, absurd timeouts, usage across a codex downgrade, setup errors
//! codex reports, web searches, multi-turn records, exit statuses. The real
//! codex wherever it can produce the situation; a fake codex script only for
//! floods, numbers codex does not print, and seeing whether codex started.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::faults::{
    fake_codex, finish, processes, read_until, send_signal, survivors, DONE, THREAD,
};
use crate::support::{
    adapter, codex_launcher, codex_launcher_oldest, codex_version, peak_rss_sampler, run, spawn,
    Run, World,
};

/// Past this a memory test has failed already: the sampler kills the
/// adapter before a broken build (growing without end) can hurt the machine.
const RSS_GUARD_KIB: u64 = 256 * 1024;

/// Waits (generously) until `ready` holds; false if it never did.
fn eventually(mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Finding 1: with a host that does not read, codex is slowed (it blocks on
/// its own pipe) instead of its output piling up in the adapter, and the
/// timeout, or SIGTERM, still ends the turn and stops codex.
#[test]
fn a_host_that_does_not_read_keeps_memory_flat_and_the_turn_still_ends() {
    let text = "a".repeat(1000);
    let line = format!(
        r#"{{"type":"item.completed","item":{{"id":"m","type":"agent_message","text":"{text}"}}}}"#
    );
    for how in ["timeout", "sigterm"] {
        // An endless stream of 1 KB events, as fast as `yes` can print them.
        let world = fake_codex(
            &format!("flood-{how}"),
            &format!("echo '{THREAD}'; exec yes '{line}'"),
        );
        let extra: &[&str] = if how == "timeout" {
            &["--timeout", "3"]
        } else {
            &[]
        };
        let mut child = spawn(&mut world.turn_command(extra, "hi"), None);
        let peak = peak_rss_sampler(child.id(), RSS_GUARD_KIB);
        // The host reads nothing until codex has been stopped.
        assert!(eventually(
            || !processes(Some(&world.workspace), None).is_empty()
        ));
        if how == "sigterm" {
            // Long enough for the pipe to our stdout to be full.
            std::thread::sleep(Duration::from_secs(1));
            send_signal(&child, libc::SIGTERM);
        }
        let left = survivors(Some(&world.workspace), None);
        if !left.is_empty() {
            let _ = child.kill();
        }
        assert!(left.is_empty(), "{how}: codex still runs: {left:?}");
        let output = child.wait_with_output().unwrap();
        let peak_kib = peak.join().unwrap();
        let run = Run::from_output(output);
        let code = if how == "timeout" {
            "timeout"
        } else {
            "cancelled"
        };
        assert_eq!(run.error_code(), code, "{how}: {}", run.stderr);
        assert!(peak_kib > 0, "the sampler saw the adapter");
        assert!(peak_kib < 64 * 1024, "{how}: peak RSS {peak_kib} KiB");
    }
}

/// Finding 1, one huge event: a stop that comes while a line larger than
/// the pipe is half written still ends the turn (the host's grace runs out)
/// when the host never reads again; codex and its command are stopped.
#[test]
fn a_host_that_stops_reading_in_the_middle_of_a_huge_line_cannot_pin_the_turn() {
    let text = "b".repeat(3_000_000);
    let world = fake_codex(
        "huge-line",
        &format!(
            "echo '{THREAD}'; echo '{{\"type\":\"item.completed\",\"item\":{{\"id\":\"m\",\"type\":\"agent_message\",\"text\":\"{text}\"}}}}'; exec sleep 60"
        ),
    );
    let mut child = spawn(&mut world.turn_command(&["--timeout", "2"], "hi"), None);
    assert!(eventually(
        || !processes(Some(&world.workspace), None).is_empty()
    ));
    // Nobody reads our stdout: the deadline comes mid-line, then the grace.
    let left = survivors(Some(&world.workspace), None);
    let gone = eventually(|| child.try_wait().unwrap().is_some());
    if !gone {
        let _ = child.kill();
    }
    let _ = child.wait();
    assert!(left.is_empty(), "codex still runs: {left:?}");
    assert!(
        gone,
        "the adapter was still writing to a host that does not read"
    );
}

/// Finding 2: a non-blocking stdout that is full for a while is waited on,
/// not taken for a closed one; every line arrives whole.
#[test]
fn a_full_non_blocking_stdout_is_waited_on() {
    let world = World::new("nonblocking");
    let (read_end, write_end) = nonblocking_pipe();
    let filled = fill(&write_end);
    let mut command = world.turn_command(&[], "mock:tool");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    drop(command); // our copy of the write end: EOF once the adapter exits
                   // Full while codex works and the adapter has events to write.
    assert!(eventually(|| world.mock.requests().len() >= 2));
    std::thread::sleep(Duration::from_millis(500));
    let mut stdout = Vec::new();
    std::fs::File::from(read_end)
        .read_to_end(&mut stdout)
        .unwrap();
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(stdout[..filled].iter().all(|&b| b == b'#'));
    let run = Run::from_output(std::process::Output {
        status,
        stdout: stdout[filled..].to_vec(),
        stderr,
    });
    run.assert_completed();
    assert!(run.text().contains("hello-from-tool"), "{}", run.stdout);
}

/// A pipe whose write end is non-blocking (as many Node hosts hand it on)
/// and whose read end blocks.
fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let flags = libc::fcntl(fds[1], libc::F_GETFL);
        libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Fills a non-blocking pipe to the brim with `#`; returns how many bytes.
fn fill(write_end: &OwnedFd) -> usize {
    let mut filled = 0;
    for size in [4096, 1] {
        let chunk = vec![b'#'; size];
        loop {
            // SAFETY: writes from a valid buffer.
            let n = unsafe { libc::write(write_end.as_raw_fd(), chunk.as_ptr().cast(), size) };
            if n <= 0 {
                break;
            }
            filled += n as usize;
        }
    }
    assert!(filled > 0);
    filled
}

/// Finding 3: a host that starts the next turn the moment it reads
/// `message_end` is not refused, ten times over.
#[test]
fn the_next_turn_started_on_message_end_is_not_refused() {
    let world = World::new("handoff");
    let mut child = spawn(&mut world.turn_command(&[], "turn 0"), None);
    let mut thread = None;
    for i in 1..=10 {
        let (events, reader) = read_until(&mut child, "message_end");
        let next = spawn(&mut world.turn_command(&[], &format!("turn {i}")), None);
        let run = finish(child, reader, events);
        run.assert_completed();
        assert_eq!(run.text(), format!("echo: turn {}", i - 1));
        let id = thread.get_or_insert_with(|| run.session_id().to_string());
        assert_eq!(run.session_id(), id, "turn {} resumed the thread", i - 1);
        child = next;
    }
    let last = Run::from_output(child.wait_with_output().unwrap());
    last.assert_completed();
    assert_eq!(last.events[0]["resumed"], true);
}

/// Whether `pid` has its handler for SIGTERM installed (so a signal is
/// recorded, not fatal).
fn handles_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let caught = status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    caught & (1 << (libc::SIGTERM - 1)) != 0
}

/// Finding 4: SIGTERM (or the deadline) while the message is read from a
/// stdin that stays open ends the turn at once, and nothing is started: no
/// lock taken, no codex. A fake codex leaves a mark when it starts.
#[test]
fn a_signal_or_the_deadline_while_reading_stdin_ends_the_turn_and_starts_nothing() {
    for how in ["sigterm", "timeout"] {
        let world = fake_codex(
            &format!("stdin-{how}"),
            &format!("touch codex-started; echo '{THREAD}'; echo '{DONE}'"),
        );
        let extra: &[&str] = if how == "timeout" {
            &["--timeout", "2"]
        } else {
            &[]
        };
        let mut command = world.turn_command(extra, "-");
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"the first half of a message").unwrap();
        // The host keeps stdin open; a fallback closes it much later, so a
        // broken adapter fails this test instead of hanging it.
        let closed = Arc::new(AtomicBool::new(false));
        let closer = {
            let closed = Arc::clone(&closed);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(30));
                closed.store(true, Ordering::SeqCst);
                drop(stdin);
            })
        };
        if how == "sigterm" {
            assert!(eventually(|| handles_sigterm(child.id())));
            send_signal(&child, libc::SIGTERM);
        }
        let run = Run::from_output(child.wait_with_output().unwrap());
        assert!(
            !closed.load(Ordering::SeqCst),
            "{how}: the adapter waited for stdin to close"
        );
        let code = if how == "sigterm" {
            "cancelled"
        } else {
            "timeout"
        };
        assert_eq!(run.error_code(), code, "{how}: {}", run.stdout);
        assert_eq!(run.events.len(), 1);
        assert!(
            !world.workspace.join("codex-started").exists(),
            "{how}: codex was started"
        );
        assert!(
            !world.workspace.join(".plexum-codex-session").exists(),
            "{how}"
        );
        drop(closer); // detached; it ends on its own
    }
}

/// Finding 11 of issue 9: `turn -- -` reads stdin only up to the limit plus
/// one character. The host writes 200 MiB (far past the limit; endless as
/// far as the adapter can tell): memory stays small, the turn is refused.
#[test]
fn an_endless_stdin_is_read_only_to_the_limit() {
    let world = World::new("endless-stdin");
    let mut command = world.turn_command(&[], "-");
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let peak = peak_rss_sampler(child.id(), RSS_GUARD_KIB);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        let mut written = 0usize;
        while written < 200 << 20 {
            // The adapter stops reading: the pipe breaks when it exits.
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            written += chunk.len();
        }
        written
    });
    let run = Run::from_output(child.wait_with_output().unwrap());
    let written = writer.join().unwrap();
    let peak_kib = peak.join().unwrap();
    assert_eq!(run.error_code(), "message_too_large", "{}", run.stdout);
    assert!(
        run.terminal()["message"]
            .as_str()
            .unwrap()
            .contains("1048576"),
        "{}",
        run.stdout
    );
    assert!(written < 200 << 20, "the adapter read all {written} bytes");
    assert!(peak_kib < 48 * 1024, "peak RSS {peak_kib} KiB");
    assert!(world.mock.requests().is_empty());
}

/// Finding 5: an absurd timeout is capped, not an overflow (a panic).
#[test]
fn an_absurd_timeout_is_capped_not_a_panic() {
    let world = World::new("huge-timeout");
    let run = world.turn_with(&["--timeout", &u64::MAX.to_string()], "hi", None);
    run.assert_completed();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&world.config).unwrap()).unwrap();
    config["timeout_secs"] = json!(u64::MAX);
    std::fs::write(&world.config, config.to_string()).unwrap();
    let run = world.turn("again");
    run.assert_completed();
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// Finding 6: codex downgraded on the same thread (0.169 reports cache
/// writes, 0.135 none): the turn's usage is still this turn's own, the field
/// that went backwards counts 0 with a notice, the new totals are kept.
#[test]
fn usage_across_a_codex_downgrade_is_this_turns_own() {
    if codex_version() < (0, 145, 0) {
        eprintln!("skipped: the codex under test reports no cache writes to go back from");
        return;
    }
    let world = World::new("downgrade");
    world.turn("first on the newer codex").assert_completed();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&world.config).unwrap()).unwrap();
    config["binary"] = json!(codex_launcher_oldest());
    std::fs::write(&world.config, config.to_string()).unwrap();
    let second = world.turn("second on the oldest codex");
    second.assert_completed();
    assert_eq!(second.events[0]["resumed"], true, "{}", second.stdout);
    let reported = *world.mock.reported_usage().last().unwrap();
    let usage = &second.terminal()["usage"];
    assert_eq!(usage["input_tokens"], reported.input_tokens);
    assert_eq!(usage["output_tokens"], reported.output_tokens);
    assert_eq!(usage["cache_write_tokens"], 0);
    let notices = second.of_type("notice");
    // App-server reports each request: nothing went backwards to say.
    assert!(
        crate::support::app_server()
            || notices.iter().any(|n| n["message"]
                .as_str()
                .unwrap()
                .contains("cache_write_tokens")),
        "{}",
        second.stdout
    );
    let thread_usage = &second.terminal()["thread_usage"];
    assert_eq!(thread_usage["cache_write_tokens"], 0);
    assert_eq!(&world.session_file().unwrap()["thread_usage"], thread_usage);
}

/// Finding 7: numbers codex does not print today (negative: codex's own
/// type is signed; a float; null; beyond u64) count as 0, and the finished
/// turn still ends with `message_end`.
#[test]
fn ill_typed_usage_numbers_still_complete_the_turn() {
    let done = r#"{"type":"turn.completed","usage":{"input_tokens":-5,"cached_input_tokens":1.5,"cache_write_input_tokens":null,"output_tokens":18446744073709551616,"reasoning_output_tokens":4}}"#;
    let world = fake_codex("odd-usage", &format!("echo '{THREAD}'; echo '{done}'"));
    let run = world.turn("hi");
    run.assert_completed();
    let usage = &run.terminal()["usage"];
    assert_eq!(
        usage,
        &json!({"input_tokens": 0, "cached_input_tokens": 0, "cache_write_tokens": 0,
                "output_tokens": 0, "reasoning_tokens": 4})
    );
}

/// Finding 8: codex refusing its command line, its config.toml, the
/// workspace, or a `binary` that is not codex: `config`, never retryable,
/// with codex's own words.
#[test]
fn setup_errors_codex_reports_are_config_and_not_retryable() {
    // `codex app-server` knows no `--json` at all.
    let twice = if crate::support::app_server() {
        "--json"
    } else {
        "cannot be used multiple times"
    };
    let cases: [(&str, Value, &str); 2] = [
        ("twice", json!(["--json"]), twice),
        ("unknown", json!(["--no-such-flag"]), "--no-such-flag"),
    ];
    for (name, extra_args, said) in cases {
        let world = World::with_config(
            &format!("extra-{name}"),
            |codex_home| json!({"binary": codex_launcher(), "env": {"CODEX_HOME": codex_home}, "extra_args": extra_args, "transport": crate::support::transport()}),
        );
        let run = world.turn("hi");
        assert_config_error(&run, said);
    }

    let world = World::new("broken-toml");
    std::fs::write(
        world.dir.join("codex-home/config.toml"),
        "model = [broken\n",
    )
    .unwrap();
    assert_config_error(&world.turn("hi"), "config.toml");

    let world = World::new("odd-workspace");
    use std::os::unix::ffi::OsStrExt;
    let odd = world
        .dir
        .join(std::ffi::OsStr::from_bytes(b"workspace-\xff"));
    std::fs::create_dir_all(&odd).unwrap();
    let run = run(
        adapter()
            .args(["turn", "--config"])
            .arg(&world.config)
            .arg("--workspace")
            .arg(&odd)
            .args(["--", "hi"]),
        None,
    );
    assert_config_error(&run, "UTF-8");

    let world = World::with_config("not-codex", |_| json!({"binary": "/bin/true"}));
    assert_config_error(&world.turn("hi"), "/bin/true");
}

fn assert_config_error(run: &Run, said: &str) {
    assert_eq!(run.error_code(), "config", "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.terminal()["retryable"], false);
    let text = format!("{} {}", run.terminal()["message"], run.terminal()["detail"]);
    assert!(text.contains(said), "{said:?} not in {text}");
}

/// Finding 9: codex's `error` just before the end is not lost when the turn
/// then ends by timeout, or by a `turn.failed` with another text.
#[test]
fn a_held_codex_error_reaches_the_host() {
    let error = r#"{"type":"error","message":"unexpected status 401 Unauthorized: bad key"}"#;
    let world = fake_codex(
        "held-timeout",
        &format!("echo '{THREAD}'; echo '{error}'; sleep 60"),
    );
    let run = world.turn_with(&["--timeout", "4"], "hi", None);
    assert_eq!(run.error_code(), "timeout");
    assert_held_notice(&run);

    let failed =
        r#"{"type":"turn.failed","error":{"message":"stream disconnected before completion"}}"#;
    let world = fake_codex(
        "held-other",
        &format!("echo '{THREAD}'; echo '{error}'; echo '{failed}'"),
    );
    let run = world.turn("hi");
    assert_eq!(run.error_code(), "turn_failed");
    assert_held_notice(&run);
}

fn assert_held_notice(run: &Run) {
    let notices = run.of_type("notice");
    assert!(
        notices
            .iter()
            .any(|n| n["message"].as_str().unwrap().contains("401 Unauthorized")),
        "{}",
        run.stdout
    );
}

/// Finding 10: the real codex names a live web search's query only when it
/// completes; the host sees the query.
#[test]
fn a_web_search_shows_its_query() {
    let world = World::new("websearch-live");
    let run = world.turn("mock:websearchlive");
    run.assert_completed();
    let call = run.of_type("tool_call")[0];
    assert_eq!(call["kind"], "web_search");
    assert_eq!(
        call["input"]["query"], "lexopt argument parser",
        "{}",
        run.stdout
    );
    assert_eq!(call["input"]["action"]["type"], "search", "{}", run.stdout);
    let result = run.of_type("tool_result")[0];
    assert_eq!(result["status"], "completed");
}

/// Finding 11: `replay` of a real `--record` file holding two turns: one
/// `message_start`, both turns' events in order, one terminal event, the
/// last turn's.
#[test]
fn replay_of_a_two_turn_record_is_one_run() {
    let world = World::new("record-two");
    let record = world.dir.join("turns.jsonl");
    let record_arg = record.to_str().unwrap();
    let first = world.turn_with(&["--record", record_arg], "first turn", None);
    let second = world.turn_with(&["--record", record_arg], "second turn", None);
    second.assert_completed();
    let replayed = run(
        adapter().args(["replay", "--format", "jsonl"]).arg(&record),
        None,
    );
    replayed.assert_completed();
    assert_eq!(replayed.of_type("message_start").len(), 1);
    assert_eq!(replayed.session_id(), first.session_id());
    assert_eq!(replayed.text(), "echo: first turn\n\necho: second turn");
    assert_eq!(
        replayed.terminal()["thread_usage"],
        second.terminal()["thread_usage"]
    );
}

/// Finding 12: every bad command line exits 2, with a `usage` error.
#[test]
fn every_bad_command_line_exits_2() {
    let cases: [&[&str]; 4] = [
        &["turn", "--", "hi"],
        &["turn", "--workspace", "/tmp"],
        &["replay"],
        &["turn", "--workspace", "/tmp", "--bogus", "--", "hi"],
    ];
    for args in cases {
        let run = run(adapter().args(args), None);
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        assert_eq!(run.error_code(), "usage", "{args:?}");
    }
}

/// Finding 13, the smaller items that reach a turn or `doctor`.
#[test]
fn a_nul_in_env_is_a_config_error() {
    let world = World::with_config(
        "env-nul",
        |_| json!({"binary": codex_launcher(), "env": {"CODEX_HOME": "a\u{0}b"}}),
    );
    let run = world.turn("hi");
    assert_eq!(run.error_code(), "config", "{}", run.stdout);
    let world = World::with_config(
        "model-dash",
        |_| json!({"binary": codex_launcher(), "supported_models": ["-m"]}),
    );
    assert_eq!(world.turn("hi").error_code(), "config");
}

#[test]
fn a_bare_binary_is_looked_up_on_the_path_env_gives_codex() {
    let dir = crate::support::scratch("env-path");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(codex_launcher(), bin.join("codex")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let world = World::with_config(
        "env-path",
        |codex_home| json!({"binary": "codex", "env": {"CODEX_HOME": codex_home, "PATH": path}}),
    );
    let mut command = world.turn_command(&[], "found on env's PATH");
    command.env("PATH", "/usr/bin:/bin");
    let run = run(&mut command, None);
    run.assert_completed();
}

#[test]
fn doctor_lists_each_place_once_and_its_fix_once() {
    let world = World::with_config("doctor-once", |_| json!({"binary": "codex-nowhere"}));
    let output = adapter()
        .args(["doctor", "--config"])
        .arg(&world.config)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/local/bin")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.matches("/usr/local/bin/codex-nowhere").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("npm install -g").count(), 1, "{text}");
}

/// Waits up to 20 s for `child` to end; kills it and fails otherwise.
fn ended_within_bound(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running 20 s after it should have ended");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_signal_ends_a_replay_of_input_that_never_ends_a_line() {
    let mut child = adapter()
        .args(["replay", "--format", "jsonl", "/dev/zero"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let it install its handlers and get well into the endless line.
    std::thread::sleep(Duration::from_millis(500));
    send_signal(&child, libc::SIGTERM);
    let status = ended_within_bound(&mut child, "replay /dev/zero after SIGTERM");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let events: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let terminals: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "error" || e["type"] == "message_end")
        .collect();
    assert_eq!(terminals.len(), 1, "{stdout}");
    assert_eq!(terminals[0]["code"], "cancelled", "{stdout}");
    assert!(!status.success());
}
