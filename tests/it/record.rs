//! `make record`: re-records `fixtures/codex/<version>/` from the real codex
//! (pinned and oldest) against the mock, with `turn --record`. Ignored in
//! `make test`; the golden test then needs `make bless` and a review.

use std::path::Path;

use crate::golden::fixtures;
use crate::support::{codex_launcher, codex_launcher_oldest, World};

/// Scenario name → message sent to the mock.
const SCENARIOS: &[(&str, &str)] = &[
    ("basic", "Hello there"),
    ("multi", "mock:multi"),
    ("reason", "mock:reason"),
    ("tool", "mock:tool"),
    ("tool2", "mock:tool2"),
    ("toolfail", "mock:toolfail"),
    ("e401", "mock:e401"),
    ("e429", "mock:e429"),
    ("e500", "mock:e500"),
    ("ctx", "mock:ctx"),
    ("failed", "mock:failed"),
    ("slow", "mock:slow"),
];

fn version_of(launcher: &Path) -> String {
    // …/.codex/<version>/node_modules/.bin/codex
    let output = std::process::Command::new(launcher)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .last()
        .unwrap_or("unknown")
        .to_string()
}

#[test]
#[ignore = "re-records fixtures; run with `make record`"]
fn record_fixtures() {
    for launcher in [codex_launcher(), codex_launcher_oldest()] {
        let version = version_of(&launcher);
        let dir = fixtures().join("codex").join(&version);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, message) in SCENARIOS {
            let world = World::with_codex(&format!("record-{name}"), &launcher);
            let path = dir.join(format!("{name}.codex.jsonl"));
            let _ = std::fs::remove_file(&path);
            world.turn_with(&["--record", path.to_str().unwrap()], message, None);
            println!("recorded {}", path.display());
        }
        // A resumed turn: the second turn of a thread.
        let world = World::with_codex("record-resume", &launcher);
        world.turn("first turn");
        let path = dir.join("resumed.codex.jsonl");
        let _ = std::fs::remove_file(&path);
        world.turn_with(&["--record", path.to_str().unwrap()], "second turn", None);
        println!("recorded {}", path.display());
    }
}
