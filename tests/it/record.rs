//! `make record`: re-records `fixtures/codex/<version>/` (exec) or
//! `fixtures/app-server/<version>/` (PLEXUM_TEST_TRANSPORT=app-server) from
//! the real codex under test (PLEXUM_TEST_CODEX; the Makefile loops over
//! versions and transports) against
//! the mock, with `turn --record`. Ignored in `make test`; after recording,
//! `make bless` and a review of `git diff fixtures/`.
//! `RECORD_ONLY=a,b` records just those scenarios.

use crate::golden::fixtures;
use crate::support::{codex_launcher, codex_version, World};

/// Scenario name → message sent to the mock (`resumed` is a second turn).
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
    ("stream", "mock:stream"),
    ("drop", "mock:drop"),
    ("websearch", "mock:websearch"),
    ("mcp", "mock:mcp"),
    ("resumed", "second turn"),
];

#[test]
#[ignore = "re-records fixtures; run with `make record`"]
fn record_fixtures() {
    let launcher = codex_launcher();
    let (major, minor, patch) = codex_version();
    let folder = if crate::support::app_server() {
        "app-server"
    } else {
        "codex"
    };
    let dir = fixtures().join(format!("{folder}/{major}.{minor}.{patch}"));
    std::fs::create_dir_all(&dir).unwrap();
    let only = std::env::var("RECORD_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|w| w == name);
    for (name, message) in SCENARIOS.iter().filter(|(name, _)| wanted(name)) {
        let world = World::with_codex(&format!("record-{name}"), &launcher);
        match *name {
            "resumed" => drop(world.turn("first turn")),
            "mcp" => world.add_mcp_echo(),
            "drop" => crate::mock_responses::MockServer::allow_stream_retries(
                &world.dir.join("codex-home"),
            ),
            _ => {}
        }
        let path = dir.join(format!("{name}.codex.jsonl"));
        let _ = std::fs::remove_file(&path);
        world.turn_with(&["--record", path.to_str().unwrap()], message, None);
        println!("recorded {}", path.display());
    }
}
