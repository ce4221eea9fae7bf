//! What only the `app-server` transport does, with the REAL codex
//! app-server against the mock: text streamed as the model writes it, a
//! restarted message reset rather than doubled, exact per-turn usage,
//! threads shared with exec, requests answered at once. These tests pick
//! app-server themselves, whatever PLEXUM_TEST_TRANSPORT says; the shared
//! suites (e2e, faults, operator) run on both transports from `make test`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use crate::faults::{scripted_codex, APP_SERVER_OPENING};
use crate::mock_responses::{
    user_texts, MockServer, AFTER_DROP_REPLY, DROPPED_PART, STREAMED_REPLY,
};
use crate::support::{codex_launcher, run, spawn, Run, World};

fn world_on(name: &str, transport: &str) -> World {
    let codex = codex_launcher();
    World::with_config(
        name,
        |codex_home| json!({ "binary": codex, "env": { "CODEX_HOME": codex_home }, "transport": transport }),
    )
}

/// Switches the world's config to `transport` (same workspace, same codex home).
fn use_transport(world: &World, transport: &str) {
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&world.config).unwrap()).unwrap();
    config["transport"] = json!(transport);
    std::fs::write(&world.config, config.to_string()).unwrap();
}

/// Runs a turn, noting when each stdout line was read.
fn timed_turn(world: &World, extra: &[&str], message: &str) -> (Run, Vec<Instant>) {
    let mut child = spawn(&mut world.turn_command(extra, message), None);
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut stdout = String::new();
    let mut times = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        times.push(Instant::now());
        stdout.push_str(&line);
    }
    let output = child.wait_with_output().unwrap();
    let run = Run::from_output(std::process::Output {
        status: output.status,
        stdout: stdout.into_bytes(),
        stderr: output.stderr,
    });
    (run, times)
}

#[test]
fn the_first_words_arrive_while_the_model_is_still_writing() {
    let world = world_on("as-stream", "app-server");
    let (run, read_at) = timed_turn(&world, &[], "mock:stream tell me");
    run.assert_completed();
    assert_eq!(run.text(), STREAMED_REPLY);
    let written = world.mock.delta_times();
    assert_eq!(written.len(), 20);
    let deltas: Vec<usize> = (0..run.events.len())
        .filter(|&i| run.events[i]["type"] == "text_delta")
        .collect();
    assert!(
        deltas.len() >= 10,
        "streamed in pieces, not at once: {}",
        run.stdout
    );
    // The first words were on our stdout while the mock was still writing
    // the reply, and most of it came piece by piece before its last word:
    // the host did not wait for the message to complete.
    let last_written = *written.last().unwrap();
    let first_read = read_at[deltas[0]];
    assert!(first_read > written[0]);
    assert!(
        first_read < last_written,
        "the first text_delta came only after the mock's last delta"
    );
    let early = deltas
        .iter()
        .filter(|&&i| read_at[i] < last_written)
        .count();
    assert!(
        early >= 10,
        "only {early} text_deltas before the reply was complete"
    );

    // Exec, the same reply: all of it after the mock's last delta.
    let world = world_on("exec-stream", "exec");
    let (run, read_at) = timed_turn(&world, &[], "mock:stream tell me");
    let first = (0..run.events.len())
        .find(|&i| run.events[i]["type"] == "text_delta")
        .unwrap();
    assert!(read_at[first] > *world.mock.delta_times().last().unwrap());
}

#[test]
fn a_dropped_stream_is_retried_and_the_text_reset_not_doubled() {
    for events in ["all", "core"] {
        let world = world_on(&format!("as-drop-{events}"), "app-server");
        MockServer::allow_stream_retries(&world.dir.join("codex-home"));
        let run = world.turn_with(&["--events", events], "mock:drop answer me", None);
        run.assert_completed();
        assert_eq!(run.text(), AFTER_DROP_REPLY, "{}", run.stdout);
        let resets = run.of_type("text_reset");
        if events == "all" {
            // The partial text was shown, then taken back.
            assert!(
                run.of_type("text_delta")
                    .iter()
                    .any(|e| e["text"] == DROPPED_PART),
                "{}",
                run.stdout
            );
            assert!(!resets.is_empty(), "{}", run.stdout);
            assert!(run
                .of_type("notice")
                .iter()
                .any(|n| n["message"].as_str().unwrap().contains("Reconnecting")));
        } else {
            assert!(resets.is_empty(), "core: never a reset");
            assert_eq!(run.of_type("text_delta").len(), 1, "core: once, complete");
        }
    }
}

#[test]
fn usage_is_exact_over_a_tool_turn_a_failed_turn_and_a_plain_turn() {
    let world = world_on("as-usage", "app-server");
    let mut reported_before = 0;
    for message in ["mock:tool one", "mock:failafter two", "three"] {
        let run = world.turn(message);
        let reported = world.mock.reported_usage();
        let this_turn = &reported[reported_before..];
        reported_before = reported.len();
        if message.contains("failafter") {
            assert_eq!(run.error_code(), "turn_failed", "{}", run.stdout);
            assert_eq!(this_turn.len(), 1, "the failed turn consumed a request");
            continue;
        }
        run.assert_completed();
        let usage = &run.terminal()["usage"];
        let sum = |f: fn(&crate::mock_responses::ReportedUsage) -> u64| {
            this_turn.iter().map(f).sum::<u64>()
        };
        assert_eq!(
            usage["input_tokens"],
            sum(|u| u.input_tokens),
            "{message}: {}",
            run.stdout
        );
        assert_eq!(usage["cached_input_tokens"], sum(|u| u.cached_tokens));
        assert_eq!(usage["output_tokens"], sum(|u| u.output_tokens));
        assert_eq!(usage["reasoning_tokens"], sum(|u| u.reasoning_tokens));
        if crate::support::codex_version() >= (0, 145, 0) {
            assert_eq!(usage["cache_write_tokens"], sum(|u| u.cache_write_tokens));
        }
    }
}

#[test]
fn a_thread_moves_between_transports_both_ways() {
    let world = world_on("as-across", "exec");
    let first = world.turn("Remember the word heliotrope.");
    first.assert_completed();
    use_transport(&world, "app-server");
    let record = world.dir.join("resume.jsonl");
    let second = world.turn_with(
        &["--record", record.to_str().unwrap()],
        "Which word was it?",
        None,
    );
    second.assert_completed();
    // Some codex versions before 0.169 refuse `excludeTurns` on the stable
    // API: the adapter then resumes again without it (request 6).
    let recorded = std::fs::read_to_string(&record).unwrap();
    let refused = recorded.contains("excludeTurns requires");
    let resumed_again = recorded.lines().any(|l| l.starts_with(r#"{"id":6,"#));
    assert_eq!(resumed_again, refused, "{recorded}");
    if crate::support::codex_version() <= (0, 135, 0) {
        assert!(refused, "0.135 refuses it: {recorded}");
    }
    assert_eq!(second.events[0]["resumed"], true, "{}", second.stdout);
    assert_eq!(second.session_id(), first.session_id());
    use_transport(&world, "exec");
    let third = world.turn("And once more?");
    assert_eq!(third.events[0]["resumed"], true);
    assert_eq!(third.session_id(), first.session_id());
    // The mock saw one conversation: the last request carries all three.
    let texts = user_texts(world.mock.requests().last().unwrap());
    for prompt in ["heliotrope", "Which word", "once more"] {
        assert!(
            texts.iter().any(|t| t.contains(prompt)),
            "{prompt}: {texts:?}"
        );
    }
}

#[test]
fn sigterm_mid_stream_stops_codex_and_keeps_the_thread() {
    let world = world_on("as-sigterm", "app-server");
    let record = world.dir.join("killed.jsonl");
    let record_arg = record.to_str().unwrap();
    let mut child = spawn(
        &mut world.turn_command(&["--record", record_arg], "mock:stream keep going"),
        None,
    );
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut events = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "ended early: {events:?}"
        );
        let event: Value = serde_json::from_str(&line).unwrap();
        let text = event["type"] == "text_delta";
        events.push(event);
        if text {
            break;
        }
    }
    // SAFETY: plain syscall on our own unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    let mut stdout: String = events.iter().map(|e| format!("{e}\n")).collect();
    stdout.push_str(&rest);
    let run = Run::from_output(std::process::Output {
        status: output.status,
        stdout: stdout.into_bytes(),
        stderr: output.stderr,
    });
    assert_eq!(run.error_code(), "cancelled", "{}", run.stdout);
    assert!(no_codex_in(&world.workspace), "codex left running");
    // Codex was asked to interrupt the turn, and did, before it was stopped.
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert!(recorded.contains(r#""status":"interrupted""#), "{recorded}");
    // The killed turn stays resumable.
    let next = world.turn("are you still there?");
    next.assert_completed();
    assert_eq!(next.session_id(), run.session_id());
    assert_eq!(next.events[0]["resumed"], true);
}

fn no_codex_in(workspace: &Path) -> bool {
    let workspace = std::fs::canonicalize(workspace).unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            let pid = entry.file_name();
            let cwd = std::fs::read_link(Path::new("/proc").join(&pid).join("cwd")).ok();
            let stat = std::fs::read_to_string(Path::new("/proc").join(&pid).join("stat"))
                .unwrap_or_default();
            let zombie = stat
                .rfind(')')
                .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
            cwd.as_deref() == Some(&workspace) && !zombie
        });
        if !left {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A fake app-server that asks for an approval and finishes the turn only
/// once it is answered: the real codex asks nothing with approval policy
/// `never`, so only a stand-in can show that a question never hangs a turn.
#[test]
fn a_request_for_approval_is_declined_at_once() {
    let script = format!(
        r#"{APP_SERVER_OPENING}
echo '{{"id":0,"method":"item/commandExecution/requestApproval","params":{{"itemId":"c"}}}}'
read -r answer
case "$answer" in
  *'"decline"'*) text=declined ;;
  *) text="unexpected answer" ;;
esac
echo '{{"method":"item/completed","params":{{"item":{{"type":"agentMessage","id":"m","text":"'"$text"'"}}}}}}'
echo '{{"method":"turn/completed","params":{{"turn":{{"id":"U","status":"completed"}}}}}}'
read -r closed"#
    );
    let world = scripted_codex("as-approval", &script, "app-server");
    let run = world.turn_with(&["--timeout", "20"], "do something risky", None);
    run.assert_completed();
    assert_eq!(run.text(), "declined");
    assert!(run
        .of_type("notice")
        .iter()
        .any(|n| n["message"].as_str().unwrap().contains("requestApproval")));
}

/// Codex exits before answering `initialize` (app-server) or before naming
/// a thread (exec; seen on 0.135 when two turns start at once on a fresh
/// CODEX_HOME), having lost a race on its database: the adapter starts it
/// once more and the turn goes on.
#[test]
fn a_codex_that_exits_before_answering_is_started_again() {
    let races = [
        ("app-server", "Error: table thread_goals already exists"),
        ("exec", "Error: failed to initialize sqlite state runtime: while executing migration 17: error returned from database: (code: 1) no such table: stage1_outputs"),
    ];
    for (transport, complaint) in races {
        let name = format!("as-race-{transport}");
        let dir = crate::support::scratch(&name);
        let marker = dir.join("started-once");
        let fake = dir.join("fake-codex");
        let real = codex_launcher();
        let script = format!(
            "#!/bin/sh\nif [ ! -e '{marker}' ]; then touch '{marker}'; echo '{complaint}' >&2; exit 1; fi\nexec '{real}' \"$@\"\n",
            marker = marker.display(),
            real = real.display()
        );
        crate::support::write_executable(&fake, &script);
        let world = World::with_config(
            &name,
            |codex_home| json!({ "binary": fake, "transport": transport, "env": { "CODEX_HOME": codex_home } }),
        );
        let run = world.turn("hello again");
        run.assert_completed();
        assert_eq!(run.text(), "echo: hello again", "{transport}");
        assert!(marker.exists());
    }
}

#[test]
fn replay_tells_the_transports_apart_and_gives_the_turns_events() {
    let world = world_on("as-record", "app-server");
    let record = world.dir.join("turn.jsonl");
    let record_arg = record.to_str().unwrap();
    let run = world.turn_with(&["--record", record_arg], "mock:stream record me", None);
    run.assert_completed();
    let replayed = run_replay(record_arg, &[]);
    assert_eq!(replayed.events, run.events);
    let core = run_replay(record_arg, &["--events", "core"]);
    assert_eq!(core.text(), STREAMED_REPLY);
    assert_eq!(core.of_type("text_delta").len(), 1);
}

fn run_replay(file: &str, extra: &[&str]) -> Run {
    run(
        crate::support::adapter()
            .args(["replay", "--format", "jsonl"])
            .args(extra)
            .arg(file),
        None,
    )
}
