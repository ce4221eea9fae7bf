//! Golden replays: every recorded codex stream under `fixtures/` through the
//! translation, compared with its blessed `.events.jsonl`. Bless with
//! `UPDATE_EXPECT=1` (`make bless`), review with `git diff fixtures/`.
//!
//! `fixtures/codex/<version>/<case>.codex.jsonl` are recorded from the real
//! codex (`make record`; `sample_*` are the recordings of
//! `shared/samples/`); `fixtures/broken/` holds deliberately broken input.

use std::path::{Path, PathBuf};

use plexum_openai_provider::output::Output;
use plexum_openai_provider::replay::translate_stream;
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every `*.codex.jsonl` below `dir`, sorted.
pub fn streams(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(".codex.jsonl") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The replay of one stream, as JSONL.
pub fn replay(stream: &Path) -> String {
    let file = std::fs::File::open(stream).unwrap_or_else(|e| panic!("{}: {e}", stream.display()));
    let input = std::io::BufReader::new(file);
    let mut output = Output::new(Vec::new(), false, false, false);
    translate_stream(input, String::from("codex"), true, &mut output).unwrap();
    String::from_utf8(output.into_inner()).unwrap()
}

fn expected_path(stream: &Path) -> PathBuf {
    let name = stream
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".codex.jsonl", ".events.jsonl");
    stream.with_file_name(name)
}

#[test]
fn golden_replays_match() {
    let bless = std::env::var_os("UPDATE_EXPECT").is_some();
    let streams = streams(&fixtures());
    assert!(streams.len() > 100, "fixtures missing: {}", streams.len());
    let mut mismatched = Vec::new();
    for stream in &streams {
        let actual = replay(stream);
        let expected_path = expected_path(stream);
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            mismatched.push(format!(
                "{}\n--- expected\n{expected}--- actual\n{actual}",
                stream.display()
            ));
        }
    }
    assert!(
        mismatched.is_empty(),
        "{} replays differ from their golden files (bless with UPDATE_EXPECT=1 after review):\n{}",
        mismatched.len(),
        mismatched.join("\n")
    );
}

fn terminal(stream: &Path) -> Value {
    let output = replay(stream);
    serde_json::from_str(output.lines().last().unwrap()).unwrap()
}

/// The failure table, checked on what BOTH versions really printed.
#[test]
fn recorded_failures_classify_on_both_versions() {
    let cases: &[(&str, &str, &str, bool)] = &[
        ("0.169.0", "sample_err_e401", "auth", false),
        ("0.135.0", "sample_err_e401", "auth", false),
        ("0.169.0", "sample_err_e403", "auth", false),
        ("0.135.0", "sample_err_e403", "auth", false),
        ("0.169.0", "sample_err_e429", "rate_limited", true),
        ("0.135.0", "sample_err_e429", "rate_limited", true),
        ("0.169.0", "sample_err_e429usage", "rate_limited", true),
        ("0.135.0", "sample_err_e429usage", "rate_limited", true),
        ("0.169.0", "sample_err_e429quota", "rate_limited", true),
        ("0.135.0", "sample_err_e429quota", "rate_limited", true),
        ("0.169.0", "sample_err_quota", "rate_limited", true),
        ("0.135.0", "sample_err_quota", "rate_limited", true),
        ("0.169.0", "sample_err_ratefailed", "rate_limited", true),
        ("0.135.0", "sample_err_ratefailed", "rate_limited", true),
        ("0.169.0", "sample_err_ctx", "context_window", false),
        ("0.135.0", "sample_err_ctx", "context_window", false),
        ("0.169.0", "sample_err_e400ctx", "context_window", false),
        ("0.135.0", "sample_err_e400ctx", "context_window", false),
        ("0.169.0", "sample_err_e500", "turn_failed", true),
        ("0.135.0", "sample_err_e500", "turn_failed", true),
        ("0.169.0", "sample_err_e503", "turn_failed", true),
        ("0.135.0", "sample_err_e503", "turn_failed", true),
        ("0.169.0", "sample_err_disconnect", "turn_failed", true),
        ("0.135.0", "sample_err_disconnect", "turn_failed", true),
        (
            "0.169.0",
            "sample_err_connection_closed_without_response",
            "turn_failed",
            true,
        ),
        ("0.169.0", "sample_retry_default_e401", "auth", false),
        ("0.135.0", "sample_retry_default_e401", "auth", false),
        ("0.169.0", "sample_retry_default_e429", "rate_limited", true),
        (
            "0.169.0",
            "sample_retry_default_disconnect",
            "turn_failed",
            true,
        ),
        (
            "0.169.0",
            "sample_retry_default_ctx",
            "context_window",
            false,
        ),
        // Killed mid-turn: no terminal codex event.
        (
            "0.169.0",
            "sample_sig_TERM_native_during_tool_sleep",
            "protocol",
            true,
        ),
        ("0.135.0", "sample_hang_idle3s", "protocol", true),
        // Recorded here with `make record`.
        ("0.169.0", "e401", "auth", false),
        ("0.135.0", "e401", "auth", false),
        ("0.169.0", "e429", "rate_limited", true),
        ("0.135.0", "e429", "rate_limited", true),
        ("0.169.0", "ctx", "context_window", false),
        ("0.135.0", "ctx", "context_window", false),
        ("0.169.0", "e500", "turn_failed", true),
        ("0.135.0", "e500", "turn_failed", true),
        ("0.169.0", "failed", "turn_failed", true),
        ("0.135.0", "failed", "turn_failed", true),
    ];
    for (version, case, code, retryable) in cases {
        let stream = fixtures().join(format!("codex/{version}/{case}.codex.jsonl"));
        let terminal = terminal(&stream);
        assert_eq!(terminal["type"], "error", "{version} {case}: {terminal}");
        assert_eq!(terminal["code"], *code, "{version} {case}: {terminal}");
        assert_eq!(
            terminal["retryable"], *retryable,
            "{version} {case}: {terminal}"
        );
    }
}

#[test]
fn recorded_successes_end_with_message_end() {
    for version in ["0.169.0", "0.135.0"] {
        for case in [
            "basic", "multi", "reason", "tool", "tool2", "toolfail", "patch_ws", "plan", "nousage",
            "slow",
        ] {
            let stream = fixtures().join(format!("codex/{version}/sample_{case}.codex.jsonl"));
            let terminal = terminal(&stream);
            assert_eq!(
                terminal["type"], "message_end",
                "{version} {case}: {terminal}"
            );
        }
    }
}

/// 0.135–0.145 lose command completions: the open command is closed at the
/// end with a failed result.
#[test]
fn a_lost_command_completion_is_closed_on_0_135() {
    let stream = fixtures().join("codex/0.135.0/sample_tool_streaming_output_ticker.codex.jsonl");
    let output = replay(&stream);
    let events: Vec<Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let result = events
        .iter()
        .find(|e| e["type"] == "tool_result")
        .expect("the open command is closed");
    assert_eq!(result["status"], "failed");
    assert_eq!(result["exit_code"], Value::Null);
    assert_eq!(events.last().unwrap()["type"], "message_end");
}

/// The failure table on what codex app-server printed, oldest and pinned.
#[test]
fn recorded_app_server_failures_classify_on_both_versions() {
    let cases: &[(&str, &str, bool)] = &[
        ("e401", "auth", false),
        ("e429", "rate_limited", true),
        ("ctx", "context_window", false),
        ("e500", "turn_failed", true),
        ("failed", "turn_failed", true),
    ];
    for version in ["0.135.0", "0.171.0"] {
        for (case, code, retryable) in cases {
            let stream = fixtures().join(format!("app-server/{version}/{case}.codex.jsonl"));
            let terminal = terminal(&stream);
            assert_eq!(terminal["code"], *code, "{version} {case}: {terminal}");
            assert_eq!(
                terminal["retryable"], *retryable,
                "{version} {case}: {terminal}"
            );
        }
        // A dropped stream: the partial text is taken back, the reply whole.
        let output = replay(&fixtures().join(format!("app-server/{version}/drop.codex.jsonl")));
        assert!(
            output.contains(r#""type":"text_reset""#),
            "{version}: {output}"
        );
    }
}
