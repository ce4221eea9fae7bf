//! End to end with the REAL codex CLI (the pinned version) against the mock
//! Responses server: what a host sees, turn by turn.

use serde_json::Value;

use crate::mock_responses::user_texts;
use crate::support::{run, World};

#[test]
fn first_turn_then_a_resumed_turn_in_one_conversation() {
    let world = World::new("resume");
    let first = world.turn("Remember the word heliotrope.");
    // Codex 0.169 adds a warning notice for the mock's unknown model.
    let kinds: Vec<&str> = first
        .types()
        .into_iter()
        .filter(|t| *t != "notice")
        .collect();
    assert_eq!(
        kinds,
        ["message_start", "text_delta", "message_end"],
        "{}",
        first.stdout
    );
    assert_eq!(first.events[0]["resumed"], false);
    assert_eq!(first.events[0]["model"], "codex");
    assert_eq!(first.text(), "echo: Remember the word heliotrope.");
    let thread = first.session_id().to_string();
    assert_eq!(world.session_file().unwrap()["thread_id"], thread.as_str());

    let second = world.turn("What was the word?");
    assert_eq!(second.session_id(), thread);
    assert_eq!(second.events[0]["resumed"], true);
    assert_eq!(second.terminal()["session_id"], thread.as_str());
    // The mock saw both prompts in one conversation.
    let requests = world.mock.requests();
    let last = user_texts(requests.last().unwrap());
    assert!(last.iter().any(|t| t.contains("heliotrope")), "{last:?}");
    assert!(
        last.iter().any(|t| t.contains("What was the word?")),
        "{last:?}"
    );
}

#[test]
fn usage_is_per_turn_over_three_turns() {
    let world = World::new("usage");
    let mut previous_total = 0;
    let mut reported_before = 0;
    for message in ["one", "mock:tool two", "three"] {
        let run = world.turn(message);
        let end = run.terminal();
        run.assert_completed();
        // This turn's usage is what the mock reported during this turn.
        let reported = world.mock.reported_usage();
        let this_turn = &reported[reported_before..];
        reported_before = reported.len();
        let input: u64 = this_turn.iter().map(|u| u.input_tokens).sum();
        let output: u64 = this_turn.iter().map(|u| u.output_tokens).sum();
        let cached: u64 = this_turn.iter().map(|u| u.cached_tokens).sum();
        let reasoning: u64 = this_turn.iter().map(|u| u.reasoning_tokens).sum();
        // Codex reports cache writes from 0.145 on; before, the field is
        // missing and reads as 0.
        let cache_write: u64 = if crate::support::codex_version() >= (0, 145, 0) {
            this_turn.iter().map(|u| u.cache_write_tokens).sum()
        } else {
            0
        };
        assert_eq!(
            end["usage"]["cache_write_tokens"], cache_write,
            "{}",
            run.stdout
        );
        assert_eq!(
            end["usage"]["input_tokens"], input,
            "{message}: {}",
            run.stdout
        );
        assert_eq!(end["usage"]["output_tokens"], output);
        assert_eq!(end["usage"]["cached_input_tokens"], cached);
        assert_eq!(end["usage"]["reasoning_tokens"], reasoning);
        // thread_usage is the running total.
        let total = end["thread_usage"]["input_tokens"].as_u64().unwrap();
        assert_eq!(total, previous_total + input);
        previous_total = total;
        assert_eq!(
            world.session_file().unwrap()["thread_usage"]["input_tokens"],
            total
        );
    }
}

#[test]
fn a_tool_call_and_its_result() {
    let world = World::new("tool");
    let run = world.turn("mock:tool run something");
    run.assert_completed();
    let call = run.of_type("tool_call")[0];
    assert_eq!(call["kind"], "command");
    assert!(call["input"]["command"]
        .as_str()
        .unwrap()
        .contains("echo hello-from-tool"));
    let result = run.of_type("tool_result")[0];
    assert_eq!(result["id"], call["id"]);
    assert_eq!(result["status"], "completed");
    assert_eq!(result["exit_code"], 0);
    assert!(
        result["output"]
            .as_str()
            .unwrap()
            .contains("hello-from-tool\nline2"),
        "{result}"
    );
    assert!(
        run.text().starts_with("done after 1 tool call(s)"),
        "{}",
        run.text()
    );
}

#[test]
fn a_failing_command_reports_its_exit_code() {
    let world = World::new("toolfail");
    let run = world.turn("mock:toolfail");
    let result = run.of_type("tool_result")[0];
    assert_eq!(result["status"], "failed");
    assert_eq!(result["exit_code"], 3);
    assert!(result["output"].as_str().unwrap().contains("failing"));
}

#[test]
fn reasoning_and_several_messages() {
    let world = World::new("reason");
    let run = world.turn("mock:reason");
    assert_eq!(
        run.of_type("reasoning")[0]["text"],
        "**Thinking hard** about the request"
    );
    let world = World::new("multi");
    let run = world.turn("mock:multi");
    assert_eq!(
        run.text(),
        "First message (commentary).\n\nSecond message (final)."
    );
}

#[test]
fn failures_map_to_stable_codes() {
    let cases = [
        ("mock:e401", "auth", false),
        ("mock:e403", "auth", false),
        ("mock:e429", "rate_limited", true),
        ("mock:ctx", "context_window", false),
        ("mock:e500", "turn_failed", true),
        ("mock:failed", "turn_failed", true),
    ];
    let world = World::new("errors");
    for (message, code, retryable) in cases {
        std::fs::remove_file(world.workspace.join(".plexum-codex-session")).ok();
        let run = world.turn(message);
        assert_eq!(run.error_code(), code, "{message}: {}", run.stdout);
        assert_eq!(run.terminal()["retryable"], retryable, "{message}");
        // The fatal `error` echo is folded into the terminal error.
        let notices = run.of_type("notice");
        let echoed = notices
            .iter()
            .any(|n| n["message"] == run.terminal()["message"]);
        assert!(!echoed, "{message}: {}", run.stdout);
        // A failed turn is still resumable: the thread was saved.
        assert_eq!(world.session_file().unwrap()["thread_id"], run.session_id());
    }
}

#[test]
fn messages_that_look_like_flags_reach_codex_as_text() {
    let world = World::new("flags");
    for message in [
        "--help",
        "resume",
        "--dangerously-bypass-approvals-and-sandbox",
        "-i x.png hello",
        "help",
    ] {
        std::fs::remove_file(world.workspace.join(".plexum-codex-session")).ok();
        let run = world.turn(message);
        run.assert_completed();
        let request = world.mock.requests().pop().unwrap();
        assert_eq!(user_texts(&request).last().unwrap(), message);
    }
    // A message that is exactly "-" goes as `-` with the text on stdin.
    std::fs::remove_file(world.workspace.join(".plexum-codex-session")).ok();
    let run = world.turn_with(&[], "-", Some(b"-"));
    run.assert_completed();
    assert_eq!(
        user_texts(&world.mock.requests().pop().unwrap())
            .last()
            .unwrap(),
        "-"
    );
}

#[test]
fn a_300_kib_message_on_stdin_arrives_intact() {
    let world = World::new("large");
    let message: String = (0..300 * 1024 / 32)
        .map(|i| format!("{i:08} line of the big message\n"))
        .collect();
    let run = world.turn_with(&[], "-", Some(message.as_bytes()));
    run.assert_completed();
    let request = world.mock.requests().pop().unwrap();
    assert_eq!(*user_texts(&request).last().unwrap(), message);
}

#[test]
fn unicode_round_trips() {
    let world = World::new("unicode");
    let message = "Grüße 👋🏽 שלום \"quoted\" 'single' \\ back\nnew line\ttab e\u{301} 中文";
    let run = world.turn(message);
    assert_eq!(
        user_texts(&world.mock.requests().pop().unwrap())
            .last()
            .unwrap(),
        message
    );
    assert_eq!(run.text(), format!("echo: {message}"));
}

#[test]
fn record_then_replay_gives_the_same_events() {
    let world = World::new("record");
    let record = world.dir.join("turn.jsonl");
    let record_arg = record.to_str().unwrap();
    let run = world.turn_with(&["--record", record_arg], "mock:tool record me", None);
    run.assert_completed();
    let replayed = crate::support::run(
        crate::support::adapter().args(["replay", "--format", "jsonl", record_arg]),
        None,
    );
    assert_eq!(replayed.events, run.events);
    // The record is codex's stdout byte for byte: every line is codex JSON.
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert!(recorded
        .lines()
        .all(|line| serde_json::from_str::<Value>(line).is_ok()));
    let first = if crate::support::app_server() {
        r#"{"id":1,"result":"#
    } else {
        r#"{"type":"thread.started""#
    };
    assert!(recorded.starts_with(first), "{recorded}");
}

#[test]
fn core_events_and_text_format() {
    let world = World::new("formats");
    let run = world.turn_with(&["--events", "core"], "mock:tool hi", None);
    assert!(
        run.types()
            .iter()
            .all(|t| ["text_delta", "message_end", "error"].contains(t)),
        "{:?}",
        run.types()
    );
    let mut command = world.turn_command(&["--format", "text"], "hello text");
    let output = command.output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success());
    assert!(text.contains("echo: hello text"), "{text}");
    assert!(text.contains("── usage:"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal: {text:?}"
    );
}

#[test]
fn the_npm_launcher_is_replaced_by_the_native_binary() {
    let world = World::new("native");
    let mut command = world.turn_command(&[], "which binary?");
    command.env("PLEXUM_LOG", "debug");
    let run = run(&mut command, None);
    run.assert_completed();
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("running "))
        .unwrap_or_default();
    assert!(
        line.contains("vendor/") && line.contains("/bin/codex"),
        "{}",
        run.stderr
    );
    assert!(!line.contains("codex.js"), "{line}");
}

/// The oldest supported codex: a turn, a resumed turn, a tool call.
#[test]
fn the_oldest_supported_codex_works_too() {
    let world = World::with_codex("oldest", &crate::support::codex_launcher_oldest());
    let first = world.turn("mock:tool on the oldest codex");
    first.assert_completed();
    assert!(!first.of_type("tool_call").is_empty());
    // Every tool call is closed, whether or not 0.135 reported its completion.
    assert_eq!(
        first.of_type("tool_call").len(),
        first.of_type("tool_result").len()
    );
    let second = world.turn("and again");
    assert_eq!(second.session_id(), first.session_id());
    assert_eq!(second.events[0]["resumed"], true);
    // 0.135 prints no cache_write_input_tokens: it reads as 0.
    assert_eq!(second.terminal()["usage"]["cache_write_tokens"], 0);
    let input = second.terminal()["usage"]["input_tokens"].as_u64().unwrap();
    let total = second.terminal()["thread_usage"]["input_tokens"]
        .as_u64()
        .unwrap();
    let first_total = first.terminal()["thread_usage"]["input_tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(input, total - first_total);
}

#[test]
fn an_image_given_by_a_relative_path_reaches_the_model() {
    let world = World::new("image");
    std::fs::write(world.dir.join("pixel.png"), crate::support::PNG).unwrap();
    // Relative to where the adapter runs, not to the workspace.
    let mut command = world.turn_command(&["--image", "pixel.png"], "what is in the picture?");
    command.current_dir(&world.dir);
    let run = run(&mut command, None);
    run.assert_completed();
    let request = world.mock.requests().pop().unwrap();
    let has_image = request["input"].as_array().unwrap().iter().any(|item| {
        item["role"] == "user"
            && item["content"]
                .as_array()
                .is_some_and(|parts| parts.iter().any(|p| p["type"] == "input_image"))
    });
    assert!(has_image, "no input_image in {request}");
    let missing = world.turn_with(&["--image", "no-such.png"], "hi", None);
    assert_eq!(missing.error_code(), "usage");
}

#[test]
fn a_web_search_is_a_tool_call() {
    let world = World::new("websearch");
    let run = world.turn("mock:websearch");
    run.assert_completed();
    let call = run.of_type("tool_call")[0];
    assert_eq!(call["kind"], "web_search");
    assert_eq!(call["input"]["query"], "lexopt argument parser");
    let result = run.of_type("tool_result")[0];
    assert_eq!(
        (&result["id"], &result["status"]),
        (&call["id"], &"completed".into())
    );
    assert_eq!(run.text(), "Found it.");
}

#[test]
fn an_mcp_tool_call() {
    let world = World::new("mcp");
    world.add_mcp_echo();
    let run = world.turn("mock:mcp");
    run.assert_completed();
    let call = run.of_type("tool_call")[0];
    assert_eq!(call["kind"], "mcp", "{}", run.stdout);
    assert_eq!(call["name"], "say");
    assert_eq!(call["input"]["server"], "echo");
    assert_eq!(call["input"]["arguments"]["text"], "from the model");
    let result = run.of_type("tool_result")[0];
    assert_eq!(result["id"], call["id"]);
    assert_eq!(result["status"], "completed");
    assert_eq!(result["output"], "echo: from the model");
}

/// Exactly codex's limit is accepted (one more is refused before codex
/// starts: faults::bad_messages_are_refused_before_codex_starts), and a NUL,
/// which only stdin can carry, arrives unchanged.
#[test]
fn a_message_at_the_limit_and_one_with_nul_reach_codex() {
    let world = World::new("limit");
    let at_limit: String = "é".repeat(1_048_576 - 3) + "end";
    assert_eq!(at_limit.chars().count(), 1_048_576);
    let run = world.turn_with(&[], "-", Some(at_limit.as_bytes()));
    run.assert_completed();
    assert_eq!(
        *user_texts(&world.mock.requests().pop().unwrap())
            .last()
            .unwrap(),
        at_limit
    );

    std::fs::remove_file(world.workspace.join(".plexum-codex-session")).unwrap();
    let with_nul = "before\0after";
    let run = world.turn_with(&[], "-", Some(with_nul.as_bytes()));
    run.assert_completed();
    assert_eq!(
        user_texts(&world.mock.requests().pop().unwrap())
            .last()
            .unwrap(),
        with_nul
    );
}
