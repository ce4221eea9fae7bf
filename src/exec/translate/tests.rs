//! Unit tests of the translator: single behaviours, then every short
//! sequence of interesting lines against the terminal rule.

use super::*;
use crate::event::{ErrorCode, ToolStatus, TurnError};
use crate::translate::{bound_output, DEFAULT_OUTPUT_LIMIT};
use serde_json::json;

fn context() -> TurnContext {
    TurnContext {
        model: String::from("codex"),
        resumed_thread: None,
        previous_totals: Some(Usage::default()),
        notices: Vec::new(),
        output_limit: DEFAULT_OUTPUT_LIMIT,
    }
}

fn run(context: TurnContext, lines: &[&str], end: StreamEnd) -> Vec<Event> {
    let mut translator = Translator::new(context);
    let mut out = Vec::new();
    for line in lines {
        translator.line(line.as_bytes(), &mut out);
    }
    translator.finish(end, &mut out);
    out
}

const THREAD: &str =
    r#"{"type":"thread.started","thread_id":"01a20bef-77e0-7061-a52a-e86d8a4aaf20"}"#;
const TURN: &str = r#"{"type":"turn.started"}"#;
const MESSAGE: &str =
    r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"hi"}}"#;
const DONE: &str = r#"{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":10,"cache_write_input_tokens":3,"output_tokens":20,"reasoning_output_tokens":5}}"#;
const CMD_START: &str = r#"{"type":"item.started","item":{"id":"item_2","type":"command_execution","command":"ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#;
const CMD_DONE: &str = r#"{"type":"item.completed","item":{"id":"item_2","type":"command_execution","command":"ls","aggregated_output":"a\n","exit_code":0,"status":"completed"}}"#;
const FATAL: &str = r#"{"type":"error","message":"unexpected status 401 Unauthorized: bad key"}"#;
const FAILED: &str =
    r#"{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized: bad key"}}"#;
const RETRY: &str =
    r#"{"type":"error","message":"Reconnecting... 1/5 (stream disconnected before completion)"}"#;

fn types(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|event| match event {
            Event::MessageStart { .. } => "message_start",
            Event::TextDelta { .. } => "text_delta",
            Event::TextReset { .. } => "text_reset",
            Event::Reasoning { .. } => "reasoning",
            Event::ToolCall { .. } => "tool_call",
            Event::ToolResult { .. } => "tool_result",
            Event::Todo { .. } => "todo",
            Event::Notice { .. } => "notice",
            Event::MessageEnd { .. } => "message_end",
            Event::Error(_) => "error",
        })
        .collect()
}

#[test]
fn a_plain_turn_reads_as_start_text_end() {
    let events = run(context(), &[THREAD, TURN, MESSAGE, DONE], StreamEnd::Closed);
    assert_eq!(
        types(&events),
        ["message_start", "text_delta", "message_end"]
    );
}

#[test]
fn usage_is_this_turn_and_thread_usage_the_total() {
    let mut context = context();
    context.resumed_thread = Some(String::from("01a20bef-77e0-7061-a52a-e86d8a4aaf20"));
    context.previous_totals = Some(Usage {
        input_tokens: 60,
        output_tokens: 5,
        ..Usage::default()
    });
    let events = run(context, &[THREAD, DONE], StreamEnd::Closed);
    let Event::MessageStart { resumed, .. } = &events[0] else {
        panic!()
    };
    assert!(resumed);
    let Event::MessageEnd {
        usage,
        thread_usage,
        ..
    } = events.last().unwrap()
    else {
        panic!("{events:?}")
    };
    assert_eq!(usage.input_tokens, 40);
    assert_eq!(usage.output_tokens, 15);
    assert_eq!(usage.cache_write_tokens, 3);
    assert_eq!(thread_usage.input_tokens, 100);
}

/// Finding 6 of issue 10: one field going backwards (codex 0.169 → 0.135
/// reports no cache writes) no longer bills the whole thread as this turn.
#[test]
fn a_field_that_goes_backwards_is_clamped_alone_with_a_notice() {
    let mut context = context();
    context.previous_totals = Some(Usage {
        input_tokens: 60,
        cache_write_tokens: 7,
        output_tokens: 5,
        ..Usage::default()
    });
    let events = run(context, &[THREAD, DONE], StreamEnd::Closed);
    assert_eq!(types(&events), ["message_start", "notice", "message_end"]);
    let Event::Notice { message, .. } = &events[1] else {
        panic!()
    };
    assert!(message.contains("cache_write_tokens"), "{message}");
    let Event::MessageEnd {
        usage,
        thread_usage,
        ..
    } = events.last().unwrap()
    else {
        panic!()
    };
    assert_eq!(usage.input_tokens, 40);
    assert_eq!(usage.output_tokens, 15);
    assert_eq!(usage.cache_write_tokens, 0);
    assert_eq!(thread_usage.cache_write_tokens, 3, "the new total is kept");
}

/// Finding 7: an ill-typed number never makes a finished turn unreadable.
#[test]
fn odd_usage_numbers_count_as_zero_and_the_turn_completes() {
    for odd in [
        "-5",
        "1.5",
        "null",
        "\"12\"",
        "18446744073709551616",
        "[1]",
        "{}",
    ] {
        let done = format!(
            r#"{{"type":"turn.completed","usage":{{"input_tokens":{odd},"cached_input_tokens":1,"output_tokens":2,"reasoning_output_tokens":0}}}}"#
        );
        let events = run(context(), &[THREAD, &done], StreamEnd::Closed);
        let Some(Event::MessageEnd { usage, .. }) = events.last() else {
            panic!("{odd}: {events:?}")
        };
        assert_eq!((usage.input_tokens, usage.output_tokens), (0, 2), "{odd}");
    }
    for usage in ["null", "\"lots\"", "7", "[]"] {
        let done = format!(r#"{{"type":"turn.completed","usage":{usage}}}"#);
        let events = run(context(), &[THREAD, &done], StreamEnd::Closed);
        assert!(
            matches!(events.last(), Some(Event::MessageEnd { .. })),
            "{usage}"
        );
    }
    // The same for turn.failed: its payload does not decide what it is.
    for error in ["null", "5", r#"{"message":7}"#, r#""text""#] {
        let failed = format!(r#"{{"type":"turn.failed","error":{error}}}"#);
        let events = run(context(), &[THREAD, &failed], StreamEnd::Closed);
        let Some(Event::Error(error)) = events.last() else {
            panic!()
        };
        assert_eq!(error.code, ErrorCode::TurnFailed, "{error:?}");
    }
}

/// Finding 9: a held codex `error` is not lost when the turn ends otherwise.
#[test]
fn a_held_error_is_kept_on_timeout_and_before_a_different_failure() {
    let timeout = TurnError::new(ErrorCode::Timeout, "too slow");
    let events = run(context(), &[THREAD, FATAL], StreamEnd::Stopped(timeout));
    assert_eq!(types(&events), ["message_start", "notice", "error"]);
    let Event::Notice { message, .. } = &events[1] else {
        panic!()
    };
    assert!(message.contains("401"), "{message}");

    let other = r#"{"type":"turn.failed","error":{"message":"stream disconnected"}}"#;
    let events = run(context(), &[THREAD, FATAL, other], StreamEnd::Closed);
    assert_eq!(types(&events), ["message_start", "notice", "error"]);
    // The same text is folded, not repeated.
    let events = run(context(), &[THREAD, FATAL, FAILED], StreamEnd::Closed);
    assert_eq!(types(&events), ["message_start", "error"]);
}

/// Finding 10: codex may name the query only when the search completes.
#[test]
fn a_web_search_shows_the_query_of_the_completed_item() {
    let started = r#"{"type":"item.started","item":{"id":"item_1","type":"web_search","id":"ws_1","query":"","action":{"type":"other"}}}"#;
    let completed = r#"{"type":"item.completed","item":{"id":"item_1","type":"web_search","id":"ws_1","query":"rust lexopt","action":{"type":"search","query":"rust lexopt"}}}"#;
    let events = run(
        context(),
        &[THREAD, started, completed, DONE],
        StreamEnd::Closed,
    );
    assert_eq!(
        types(&events),
        ["message_start", "tool_call", "tool_result", "message_end"]
    );
    let Event::ToolCall { input, .. } = &events[1] else {
        panic!()
    };
    assert_eq!(input["query"], "rust lexopt");
    assert_eq!(input["action"]["type"], "search");
    // Never completed: the call is still shown, then closed as failed.
    let events = run(context(), &[THREAD, started], StreamEnd::Closed);
    assert_eq!(
        types(&events),
        ["message_start", "tool_call", "tool_result", "error"]
    );
}

/// Finding 13: an unknown item type's input carries no leftover nulls.
#[test]
fn an_unknown_item_types_input_is_its_own_fields() {
    let item = r#"{"type":"item.completed","item":{"id":"item_4","type":"collab_tool_call","status":"completed","tool":"spawn","prompt":"go"}}"#;
    let events = run(context(), &[THREAD, item, DONE], StreamEnd::Closed);
    let Event::ToolCall { name, input, .. } = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(name, "collab_tool_call");
    assert_eq!(input, &json!({"tool": "spawn", "prompt": "go"}));
}

/// Finding 13: an MCP result nested deeper than serde's recursion limit is
/// still a completed tool.
#[test]
fn an_mcp_result_nested_too_deep_is_still_completed() {
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let item = format!(
        r#"{{"type":"item.completed","item":{{"id":"item_5","type":"mcp_tool_call","server":"s","tool":"t","arguments":{{"a":"[{{"}},"result":{{"content":[{{"type":"text","text":"ok ]}}"}}],"structured_content":{deep}}},"error":null,"status":"completed"}}}}"#
    );
    let events = run(context(), &[THREAD, &item, DONE], StreamEnd::Closed);
    assert_eq!(
        types(&events),
        ["message_start", "tool_call", "tool_result", "message_end"]
    );
    let Event::ToolResult { status, output, .. } = &events[2] else {
        panic!()
    };
    assert_eq!(*status, ToolStatus::Completed);
    assert_eq!(output, "ok ]}");
    let Event::ToolCall { input, .. } = &events[1] else {
        panic!()
    };
    assert_eq!(input["arguments"]["a"], "[{", "strings are left alone");
}

/// Finding 11: a recording of two turns goes on after the first terminal.
#[test]
fn a_new_turn_after_the_end_goes_on_in_the_same_run() {
    let mut translator = Translator::new(context());
    let mut out = Vec::new();
    for line in [THREAD, TURN, MESSAGE, DONE] {
        translator.line(line.as_bytes(), &mut out);
    }
    assert!(translator.turn().is_ended());
    assert!(!translator.begins_next_turn(MESSAGE.as_bytes()));
    assert!(translator.begins_next_turn(THREAD.as_bytes()));
    for line in [THREAD, TURN, MESSAGE, DONE] {
        translator.line(line.as_bytes(), &mut out);
    }
    assert_eq!(
        types(&out),
        [
            "message_start",
            "text_delta",
            "message_end",
            "text_delta",
            "message_end"
        ]
    );
    assert!(translator.turn().succeeded());
}

#[test]
fn unknown_previous_totals_on_resume_are_noticed() {
    let mut context = context();
    context.resumed_thread = Some(String::from("01a20bef-77e0-7061-a52a-e86d8a4aaf20"));
    context.previous_totals = None;
    let events = run(context, &[THREAD, DONE], StreamEnd::Closed);
    assert_eq!(types(&events), ["message_start", "notice", "message_end"]);
}

#[test]
fn a_different_thread_on_resume_is_noticed_not_accepted_silently() {
    let mut context = context();
    context.resumed_thread = Some(String::from("01a20bef-0000-7000-8000-000000000000"));
    let events = run(context, &[THREAD, DONE], StreamEnd::Closed);
    let Event::MessageStart { resumed, .. } = &events[0] else {
        panic!()
    };
    assert!(!resumed);
    let Event::Notice { message, .. } = &events[1] else {
        panic!("{events:?}")
    };
    assert!(message.contains("instead of resuming"), "{message}");
}

#[test]
fn second_agent_message_is_separated_by_a_blank_line() {
    let events = run(
        context(),
        &[THREAD, MESSAGE, MESSAGE, DONE],
        StreamEnd::Closed,
    );
    let Event::TextDelta { text } = &events[2] else {
        panic!()
    };
    assert_eq!(text, "\n\nhi");
}

#[test]
fn fatal_error_echo_is_folded_into_the_terminal_error() {
    let events = run(
        context(),
        &[THREAD, TURN, RETRY, FATAL, FAILED],
        StreamEnd::Closed,
    );
    assert_eq!(types(&events), ["message_start", "notice", "error"]);
    let Event::Error(error) = &events[2] else {
        panic!()
    };
    assert_eq!(error.code, ErrorCode::Auth);
    assert!(!error.retryable);
}

#[test]
fn a_non_retry_error_not_followed_by_failure_becomes_a_notice() {
    let events = run(
        context(),
        &[THREAD, FATAL, MESSAGE, DONE],
        StreamEnd::Closed,
    );
    assert_eq!(
        types(&events),
        ["message_start", "notice", "text_delta", "message_end"]
    );
}

#[test]
fn an_open_command_is_closed_as_failed_at_turn_end() {
    let events = run(context(), &[THREAD, CMD_START, DONE], StreamEnd::Closed);
    assert_eq!(
        types(&events),
        ["message_start", "tool_call", "tool_result", "message_end"]
    );
    let Event::ToolResult {
        status,
        exit_code,
        output,
        ..
    } = &events[2]
    else {
        panic!()
    };
    assert_eq!(*status, ToolStatus::Failed);
    assert_eq!(*exit_code, Some(None));
    assert!(output.contains("no result"));
}

#[test]
fn a_finished_command_reports_output_and_exit_code() {
    let events = run(
        context(),
        &[THREAD, CMD_START, CMD_DONE, DONE],
        StreamEnd::Closed,
    );
    assert_eq!(
        types(&events),
        ["message_start", "tool_call", "tool_result", "message_end"]
    );
    let Event::ToolResult {
        status,
        exit_code,
        output,
        ..
    } = &events[2]
    else {
        panic!()
    };
    assert_eq!(*status, ToolStatus::Completed);
    assert_eq!(*exit_code, Some(Some(0)));
    assert_eq!(output, "a\n");
}

#[test]
fn an_ended_stream_without_terminal_is_a_protocol_error() {
    let events = run(context(), &[THREAD, MESSAGE], StreamEnd::Closed);
    let Event::Error(error) = events.last().unwrap() else {
        panic!()
    };
    assert_eq!(error.code, ErrorCode::Protocol);
    assert!(error.retryable);
}

#[test]
fn held_notices_follow_message_start() {
    let mut context = context();
    context.notices = vec![Event::notice(
        NoticeLevel::Warning,
        "stale session replaced",
    )];
    let events = run(context, &[THREAD, DONE], StreamEnd::Closed);
    assert_eq!(types(&events), ["message_start", "notice", "message_end"]);
}

#[test]
fn bound_output_keeps_head_and_tail_on_char_boundaries() {
    let output = "é".repeat(100_000);
    let bounded = bound_output(output, 1001);
    assert!(bounded.len() < 1100);
    assert!(bounded.starts_with('é') && bounded.ends_with('é'));
    assert!(bounded.contains("bytes of output omitted"));
}

#[test]
fn failure_classes_follow_the_table() {
    let cases = [
        (
            "unexpected status 403 Forbidden: forbidden",
            ErrorCode::Auth,
            false,
        ),
        (
            "You’ve hit your usage limit. Upgrade to Pro",
            ErrorCode::RateLimited,
            true,
        ),
        ("You've hit your usage limit.", ErrorCode::RateLimited, true),
        (
            "Quota exceeded. Check your plan",
            ErrorCode::RateLimited,
            true,
        ),
        (
            "exceeded retry limit, last status: 429 Too Many Requests",
            ErrorCode::RateLimited,
            true,
        ),
        (
            "stream disconnected before completion: Rate limit reached.",
            ErrorCode::RateLimited,
            true,
        ),
        (
            "Codex ran out of room in the model's context window.",
            ErrorCode::ContextWindow,
            false,
        ),
        (
            r#"{"code": "context_length_exceeded"}"#,
            ErrorCode::ContextWindow,
            false,
        ),
        (
            "We’re currently experiencing high demand",
            ErrorCode::TurnFailed,
            true,
        ),
        (
            "Selected model is at capacity.",
            ErrorCode::TurnFailed,
            true,
        ),
        (
            "stream disconnected before completion: error sending request",
            ErrorCode::TurnFailed,
            true,
        ),
        ("something else entirely", ErrorCode::TurnFailed, false),
    ];
    for (message, code, retryable) in cases {
        let error = classify_failure(message);
        assert_eq!(
            (error.code, error.retryable),
            (code, retryable),
            "{message}"
        );
    }
}

/// Lines worth combining: good events, codex's traps, broken input.
const VOCABULARY: &[&str] = &[
    THREAD,
    TURN,
    MESSAGE,
    DONE,
    CMD_START,
    CMD_DONE,
    FATAL,
    FAILED,
    RETRY,
    r#"{"type":"item.started","item":{"id":"item_5","type":"todo_list","items":[{"text":"a","completed":false}]}}"#,
    r#"{"type":"item.completed","item":{"id":"item_9","type":"error","message":"warning item"}}"#,
    r#"{"type":"item.completed","item":{"id":"item_3","type":"web_search","id":"ws","query":"q"}}"#,
    r#"{"type":"collab.new_event","x":1}"#,
    r#"{"type":"item.started","item":{"id":"item_7","type":"collab_tool_call","status":"in_progress"}}"#,
    r#"{"type":"turn.completed"}"#,
    r#"{"type":"turn.failed"}"#,
    r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_mess"#,
    "not json at all",
    "\u{0}\u{1}\u{ff}",
    "",
    "[1,2,3]",
    r#"{"type":7}"#,
];

/// The promises of PROTOCOL.md section 3 and 4 that hold for any input.
fn check_rules(lines: &[&str], events: &[Event]) {
    let terminal: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].is_terminal())
        .collect();
    assert_eq!(
        terminal,
        [events.len() - 1],
        "exactly one terminal, last: {lines:?} → {events:?}"
    );
    let starts = events
        .iter()
        .filter(|event| matches!(event, Event::MessageStart { .. }))
        .count();
    assert!(starts <= 1, "{lines:?}");
    if starts == 1 {
        assert!(
            matches!(events[0], Event::MessageStart { .. }),
            "message_start first: {lines:?}"
        );
    }
    let mut open: Vec<&str> = Vec::new();
    for event in events {
        match event {
            Event::ToolCall { id, .. } => open.push(id),
            Event::ToolResult { id, .. } => {
                let index = open.iter().position(|open_id| open_id == id);
                let index = index.unwrap_or_else(|| panic!("result without call: {lines:?}"));
                open.remove(index);
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "every tool closed: {lines:?} → {events:?}");
}

#[test]
fn every_short_sequence_obeys_the_terminal_rule() {
    let ends = [
        StreamEnd::Closed,
        StreamEnd::Crashed {
            how: String::from("was killed by signal 9"),
            stderr_tail: String::from("tail"),
        },
        StreamEnd::Stopped(TurnError::new(ErrorCode::Timeout, "timed out")),
    ];
    let n = VOCABULARY.len();
    let mut checked = 0;
    for length in 0..=4u32 {
        for mut index in 0..n.pow(length) {
            let mut lines = Vec::with_capacity(length as usize);
            for _ in 0..length {
                lines.push(VOCABULARY[index % n]);
                index /= n;
            }
            for end in &ends {
                let events = run(context(), &lines, end.clone());
                check_rules(&lines, &events);
                checked += 1;
            }
        }
    }
    assert!(checked > 3 * n.pow(4));
}
