//! The translator fed what real codex app-servers printed
//! (`fixtures/app-server/<version>/sample_*.codex.jsonl`, the `<<` side of
//! the transcripts in shared/samples/app-server), and hand-made sequences
//! for what the recordings do not show.

use super::*;
use crate::event::{ToolKind, ToolStatus};
use crate::translate::DEFAULT_OUTPUT_LIMIT;

fn context(resumed_thread: Option<&str>) -> TurnContext {
    TurnContext {
        model: String::from("codex"),
        resumed_thread: resumed_thread.map(String::from),
        previous_totals: Some(Usage::default()),
        notices: Vec::new(),
        output_limit: DEFAULT_OUTPUT_LIMIT,
    }
}

fn fixture(version: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/fixtures/app-server/{version}/sample_{name}.codex.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn translate_bytes(bytes: &[u8], resumed: Option<&str>, stream_text: bool) -> Vec<Event> {
    let mut translator = Translator::new(context(resumed), stream_text);
    let mut events = Vec::new();
    for line in bytes.split(|b| *b == b'\n') {
        translator.line(line, &mut events);
    }
    translator.finish(StreamEnd::Closed, &mut events);
    check_terminal_rule(&events);
    events
}

fn translate(version: &str, name: &str) -> Vec<Event> {
    translate_bytes(&fixture(version, name), None, true)
}

fn check_terminal_rule(events: &[Event]) {
    let terminal: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].is_terminal())
        .collect();
    assert_eq!(terminal, [events.len() - 1], "{events:#?}");
}

/// The text a host shows after applying every delta and reset in order.
fn shown_text(events: &[Event]) -> String {
    let mut shown = String::new();
    for event in events {
        match event {
            Event::TextDelta { text } => shown.push_str(text),
            Event::TextReset { text } => shown = text.clone(),
            _ => {}
        }
    }
    shown
}

fn deltas(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn resets(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::TextReset { .. }))
        .count()
}

fn end_usage(events: &[Event]) -> (Usage, Usage) {
    match events.last() {
        Some(Event::MessageEnd {
            usage,
            thread_usage,
            ..
        }) => (*usage, *thread_usage),
        other => panic!("not message_end: {other:?}"),
    }
}

fn terminal_error(events: &[Event]) -> &TurnError {
    match events.last() {
        Some(Event::Error(error)) => error,
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn a_slow_reply_streams_delta_by_delta_on_both_versions() {
    for version in ["0.169.0", "0.171.0"] {
        let events = translate(version, "slow");
        assert!(matches!(
            events[0],
            Event::MessageStart { resumed: false, .. }
        ));
        assert_eq!(
            deltas(&events),
            ["Slow ", "streamed ", "answer ", "in ", "parts."],
            "{version}"
        );
        assert_eq!(resets(&events), 0);
        let (usage, thread_usage) = end_usage(&events);
        assert_eq!(usage, thread_usage, "{version}: a new thread");
        assert!(usage.input_tokens > 0);
    }
}

#[test]
fn with_core_events_the_text_comes_per_completed_message() {
    let events = translate_bytes(&fixture("0.171.0", "slow"), None, false);
    assert_eq!(deltas(&events), ["Slow streamed answer in parts."]);
    let events = translate_bytes(&fixture("0.171.0", "b_tool2"), None, false);
    assert_eq!(
        shown_text(&events),
        shown_text(&translate("0.171.0", "b_tool2"))
    );
}

#[test]
fn a_restarted_message_is_reset_not_doubled() {
    for name in ["retry_disconnect", "b_retry"] {
        let events = translate("0.171.0", name);
        // Five retries, each a notice and a reset of the partial text.
        let retries = events
            .iter()
            .filter(|e| matches!(e, Event::Notice { message, .. } if message.starts_with("Reconnecting...")))
            .count();
        assert_eq!(retries, 5, "{name}");
        assert_eq!(resets(&events), 5, "{name}");
        assert_eq!(shown_text(&events), "partial answer th", "{name}");
        let error = terminal_error(&events);
        assert_eq!(error.code, ErrorCode::TurnFailed);
        assert!(error.retryable, "a dropped stream is worth a retry");
        // The fatal `error` echo is folded into the terminal error.
        assert!(!events
            .iter()
            .any(|e| matches!(e, Event::Notice { message, .. } if *message == error.message)));
    }
    let events = translate_bytes(&fixture("0.171.0", "retry_disconnect"), None, false);
    assert_eq!(resets(&events), 0, "core: never a reset");
    assert!(deltas(&events).is_empty(), "no message completed");
}

#[test]
fn a_retry_in_the_middle_of_a_message_ends_with_the_exact_text() {
    let thread = r#"{"id":2,"result":{"thread":{"id":"T"}}}"#;
    let turn = r#"{"id":3,"result":{"turn":{"id":"U"}}}"#;
    let first = r#"{"method":"item/agentMessage/delta","params":{"turnId":"U","itemId":"m1","delta":"First."}}"#;
    let first_done = r#"{"method":"item/completed","params":{"item":{"type":"agentMessage","id":"m1","text":"First."}}}"#;
    let start = r#"{"method":"item/started","params":{"item":{"type":"agentMessage","id":"m2","text":""}}}"#;
    let partial = r#"{"method":"item/agentMessage/delta","params":{"turnId":"U","itemId":"m2","delta":"Hel"}}"#;
    let retry = r#"{"method":"error","params":{"error":{"message":"Reconnecting... 1/5","codexErrorInfo":{"responseStreamDisconnected":{}}},"willRetry":true}}"#;
    let whole = r#"{"method":"item/agentMessage/delta","params":{"turnId":"U","itemId":"m2","delta":"Hello there."}}"#;
    let done = r#"{"method":"item/completed","params":{"item":{"type":"agentMessage","id":"m2","text":"Hello there."}}}"#;
    let end = r#"{"method":"turn/completed","params":{"turn":{"id":"U","status":"completed"}}}"#;
    let stream = [
        thread, turn, first, first_done, start, partial, retry, start, whole, done, end,
    ]
    .join("\n");
    let events = translate_bytes(stream.as_bytes(), None, true);
    assert_eq!(shown_text(&events), "First.\n\nHello there.");
    let reset = events.iter().find_map(|e| match e {
        Event::TextReset { text } => Some(text.as_str()),
        _ => None,
    });
    assert_eq!(reset, Some("First."), "the completed message stays");
    let core = translate_bytes(stream.as_bytes(), None, false);
    assert_eq!(deltas(&core), ["First.", "\n\nHello there."]);
    assert_eq!(resets(&core), 0);
}

#[test]
fn the_completed_text_is_the_truth() {
    let stream = [
        r#"{"id":2,"result":{"thread":{"id":"T"}}}"#,
        r#"{"method":"item/agentMessage/delta","params":{"itemId":"m","delta":"Hel"}}"#,
        // A missing tail is sent; a different text is a reset.
        r#"{"method":"item/completed","params":{"item":{"type":"agentMessage","id":"m","text":"Hello"}}}"#,
        r#"{"method":"item/agentMessage/delta","params":{"itemId":"n","delta":"Wrnog"}}"#,
        r#"{"method":"item/completed","params":{"item":{"type":"agentMessage","id":"n","text":"Right"}}}"#,
        r#"{"method":"turn/completed","params":{"turn":{"id":"U","status":"completed"}}}"#,
    ]
    .join("\n");
    let events = translate_bytes(stream.as_bytes(), None, true);
    assert_eq!(deltas(&events), ["Hel", "lo", "\n\nWrnog"]);
    assert_eq!(shown_text(&events), "Hello\n\nRight");
}

#[test]
fn usage_counts_this_turns_requests_only() {
    // Resumed: codex first repeats the previous turn's totals (1020).
    let events = translate_bytes(
        &fixture("0.171.0", "resume_tool"),
        Some("01a2335b-cd02-7270-998a-bf424d25b319"),
        true,
    );
    assert!(
        matches!(events[0], Event::MessageStart { resumed: true, .. }),
        "{events:#?}"
    );
    let (usage, thread_usage) = end_usage(&events);
    assert_eq!(usage.input_tokens, 1090 + 1101);
    assert_eq!(usage.output_tokens, 29 + 30);
    assert_eq!(thread_usage.input_tokens, 3211);
    // A tool turn: one update per model request.
    let (usage, thread_usage) = end_usage(&translate("0.171.0", "b_tool2"));
    assert_eq!(usage.input_tokens, 1850 + 1861 + 1872);
    assert_eq!(usage.cached_input_tokens, 185 + 186 + 187);
    assert_eq!(usage, thread_usage);
}

#[test]
fn failures_classify_from_codexs_error_kinds() {
    let cases = [
        ("0.171.0", "ctx", ErrorCode::ContextWindow, false),
        ("0.171.0", "err_e401", ErrorCode::Auth, false),
        ("0.171.0", "b_e429usage", ErrorCode::RateLimited, true),
        ("0.169.0", "b_e429usage", ErrorCode::RateLimited, true),
        ("0.171.0", "writer_B", ErrorCode::SessionBusy, true),
    ];
    for (version, name, code, retryable) in cases {
        let events = translate_bytes(
            &fixture(version, name),
            Some("01a2335c-9136-7552-b3d8-24906cb8e542"),
            true,
        );
        let error = terminal_error(&events);
        assert_eq!(
            (error.code, error.retryable),
            (code, retryable),
            "{version} {name}: {error:?}"
        );
    }
    let error = classify_error(&ErrorInfo {
        message: String::from("stream disconnected before completion: Rate limit reached for gpt"),
        codex_error_info: serde_json::json!({"responseStreamDisconnected": {}}),
        additional_details: None,
    });
    assert_eq!(
        error.code,
        ErrorCode::RateLimited,
        "the text names the cause"
    );
    let error = classify_error(&ErrorInfo {
        message: String::from("something"),
        codex_error_info: serde_json::json!({"httpConnectionFailed": {"httpStatusCode": 503}}),
        additional_details: None,
    });
    assert_eq!((error.code, error.retryable), (ErrorCode::TurnFailed, true));
}

#[test]
fn an_input_over_codexs_limit_is_message_too_large() {
    let events = translate("0.171.0", "too_large");
    let error = terminal_error(&events);
    assert_eq!(error.code, ErrorCode::MessageTooLarge);
    assert!(
        error.message.contains("1048577") && error.message.contains("1048576"),
        "{}",
        error.message
    );
}

#[test]
fn an_unknown_thread_is_not_the_end_of_the_turn() {
    let asked = "01a20000-0000-7000-8000-000000000000";
    let refused = fixture("0.171.0", "resume_unknown");
    let mut stream = refused.clone();
    // What the conversation then does: a new thread in the same process.
    stream.extend_from_slice(b"{\"id\":5,\"result\":{\"thread\":{\"id\":\"NEW\"}}}\n{\"id\":3,\"result\":{\"turn\":{\"id\":\"U\"}}}\n{\"method\":\"turn/completed\",\"params\":{\"turn\":{\"id\":\"U\",\"status\":\"completed\"}}}\n");
    let events = translate_bytes(&stream, Some(asked), true);
    assert!(
        matches!(&events[0], Event::MessageStart { session_id, resumed: false, .. } if session_id == "NEW"),
        "{events:#?}"
    );
    assert!(
        matches!(&events[1], Event::Notice { message, .. } if message.contains(asked)),
        "{events:#?}"
    );
    assert!(matches!(events.last(), Some(Event::MessageEnd { .. })));
    // A replay knows no asked thread: the id comes from codex's message.
    let events = translate_bytes(&stream, None, true);
    assert!(matches!(&events[1], Event::Notice { message, .. } if message.contains(asked)));
}

#[test]
fn tools_look_as_they_do_with_exec() {
    let events = translate("0.171.0", "b_tool2");
    let calls: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::ToolCall { .. }))
        .collect();
    assert_eq!(calls.len(), 2);
    match calls[0] {
        Event::ToolCall {
            kind, name, input, ..
        } => {
            assert_eq!((*kind, name.as_str()), (ToolKind::Command, "shell"));
            assert_eq!(input["command"], "/bin/bash -lc 'echo first'");
        }
        _ => unreachable!(),
    }
    let result = events.iter().find_map(|e| match e {
        Event::ToolResult {
            status,
            output,
            exit_code,
            ..
        } => Some((*status, output.clone(), *exit_code)),
        _ => None,
    });
    let (status, output, exit_code) = result.unwrap();
    assert_eq!(status, ToolStatus::Completed);
    assert!(output.ends_with("first\n"), "{output:?}");
    assert_eq!(exit_code, Some(Some(0)));
    assert_eq!(
        shown_text(&events).split("\n\n").count(),
        2,
        "two messages, a blank line between"
    );

    let events = translate("0.171.0", "b_webs");
    assert!(events.iter().any(|e| matches!(e, Event::ToolCall { kind: ToolKind::WebSearch, input, .. } if input["query"] == "rust jsonl")));
    let events = translate("0.171.0", "b_patch");
    assert!(events.iter().any(|e| matches!(e, Event::ToolCall { kind: ToolKind::FileChange, input, .. } if input["changes"][0]["kind"] == "add")));
    let events = translate("0.171.0", "b_mcp");
    assert!(events.iter().any(|e| matches!(e, Event::ToolResult { kind: ToolKind::Mcp, output, .. } if output == "pong: hi")));
    let events = translate("0.171.0", "b_reason");
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Reasoning { text } if text.contains("Thinking hard"))));
}

#[test]
fn a_declined_request_is_a_notice_and_the_command_declined() {
    let events = translate("0.171.0", "approve_untrusted_decline");
    assert!(events.iter().any(
        |e| matches!(e, Event::Notice { message, .. } if message.contains("requestApproval"))
    ));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ToolResult {
            status: ToolStatus::Declined,
            ..
        }
    )));
    assert!(matches!(events.last(), Some(Event::MessageEnd { .. })));
}

#[test]
fn an_interrupted_turn_closes_its_running_command() {
    let events = translate("0.171.0", "interrupt_tool");
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ToolResult {
            status: ToolStatus::Failed,
            exit_code: Some(None),
            ..
        }
    )));
    assert_eq!(terminal_error(&events).code, ErrorCode::TurnFailed);
    // Closed mid-turn: the stream just ends.
    let events = translate("0.171.0", "close_stdin_midturn");
    assert_eq!(terminal_error(&events).code, ErrorCode::Protocol);
}

#[test]
fn every_recording_translates_under_the_terminal_rule() {
    for version in ["0.169.0", "0.171.0"] {
        let dir = format!(
            "{}/fixtures/app-server/{version}",
            env!("CARGO_MANIFEST_DIR")
        );
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            for stream_text in [true, false] {
                let events = translate_bytes(&bytes, None, stream_text);
                if !stream_text {
                    assert_eq!(resets(&events), 0, "{}", entry.path().display());
                }
            }
        }
    }
}

/// Every short sequence of interesting lines keeps the terminal rule and
/// never panics.
#[test]
fn short_sequences_of_interesting_lines() {
    let lines: &[&str] = &[
        r#"{"id":2,"result":{"thread":{"id":"T"}}}"#,
        r#"{"id":2,"error":{"code":-32600,"message":"no rollout found for thread id T"}}"#,
        r#"{"id":3,"result":{"turn":{"id":"U"}}}"#,
        r#"{"method":"item/agentMessage/delta","params":{"itemId":"m","delta":"a"}}"#,
        r#"{"method":"item/started","params":{"item":{"type":"agentMessage","id":"m"}}}"#,
        r#"{"method":"item/completed","params":{"item":{"type":"agentMessage","id":"m","text":"b"}}}"#,
        r#"{"method":"item/started","params":{"item":{"type":"commandExecution","id":"c","command":"x","status":"inProgress"}}}"#,
        r#"{"method":"error","params":{"error":{"message":"Reconnecting... 1/5"},"willRetry":true}}"#,
        r#"{"method":"error","params":{"error":{"message":"boom"},"willRetry":false}}"#,
        r#"{"method":"turn/completed","params":{"turn":{"id":"U","status":"failed"}}}"#,
        r#"{"method":"turn/completed","params":{"turn":{"id":"U","status":"completed"}}}"#,
        r#"{"id":0,"method":"item/tool/requestUserInput","params":{}}"#,
        "not json",
        "",
    ];
    let n = lines.len();
    for a in 0..n {
        for b in 0..n {
            for c in 0..n {
                let stream = [lines[a], lines[b], lines[c]].join("\n");
                for stream_text in [true, false] {
                    let events = translate_bytes(stream.as_bytes(), Some("T"), stream_text);
                    // message_start, when there is one, comes first.
                    let start = events
                        .iter()
                        .position(|e| matches!(e, Event::MessageStart { .. }));
                    assert!(matches!(start, None | Some(0)), "{stream}\n{events:#?}");
                    let stale = events.iter().filter(|e| matches!(e, Event::Notice { message, .. } if message.contains("no longer knows"))).count();
                    assert!(stale <= 1, "one stale-thread notice at most: {stream}");
                }
            }
        }
    }
}
