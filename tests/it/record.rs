//! `make record`: re-records `fixtures/codex/<version>/` from the real codex
//! (pinned and oldest) against the mock, with `turn --record`. Ignored in
//! `make test`; the golden test then needs `make bless` and a review.

use crate::golden::fixtures;
use crate::support::{codex_launcher, codex_version, World};

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

#[test]
#[ignore = "re-records fixtures; run with `make record`"]
fn record_fixtures() {
    // The codex under test (PLEXUM_TEST_CODEX); `make record` loops over versions.
    {
        let launcher = codex_launcher();
        let (major, minor, patch) = codex_version();
        let version = format!("{major}.{minor}.{patch}");
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
