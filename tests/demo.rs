//! The README's main job (`make run`): the real codex CLI, pointed at the
//! bundled mock Responses server, answers a first turn; a second turn in the
//! same workspace resumes the same codex thread, and a third gets a reply
//! the mock streams over two seconds. Rendered for a person.
//! PLEXUM_DEMO_TRANSPORT=app-server (`make run TRANSPORT=app-server`) shows
//! that reply word by word as the model writes it; exec shows it at once.

#[path = "support/mock_responses.rs"]
mod mock_responses;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let codex = std::env::var_os("PLEXUM_TEST_CODEX")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".codex/0.171.0/node_modules/.bin/codex"));
    if !codex.exists() {
        eprintln!(
            "demo: codex not found at {}; run `make run` (it installs the pinned codex)",
            codex.display()
        );
        return ExitCode::FAILURE;
    }
    // The adapter binary sits next to the examples folder: target/<profile>/.
    let exe = std::env::current_exe().expect("own path");
    let adapter = exe
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("plexum-openai-provider");
    if !adapter.exists() {
        eprintln!("demo: {} is not built; run `make run`", adapter.display());
        return ExitCode::FAILURE;
    }

    let mock = mock_responses::MockServer::start();
    let demo = root.join("target/demo");
    let _ = std::fs::remove_dir_all(&demo);
    let codex_home = demo.join("codex-home");
    let workspace = demo.join("workspace");
    let home = demo.join("home");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    mock.write_codex_home(&codex_home);
    let config = demo.join("config.json");
    let transport = std::env::var("PLEXUM_DEMO_TRANSPORT").unwrap_or_else(|_| String::from("exec"));
    println!("=== transport: {transport}");
    let config_json = serde_json::json!({
        "binary": codex,
        "env": { "CODEX_HOME": codex_home },
        "transport": transport,
    });
    std::fs::write(&config, config_json.to_string()).unwrap();

    let turns = [
        "Hello! Who are you?",
        "mock:tool Please run a command in my workspace and tell me what it printed.",
        "mock:stream Count to twenty, slowly.",
    ];
    for (number, message) in turns.iter().enumerate() {
        println!("\n=== turn {} · you: {message}\n", number + 1);
        let status = Command::new(&adapter)
            // A clean HOME: codex runs commands in a login shell, and a
            // profile's background jobs (pyenv rehash, say) would hold its
            // output open until codex's yield time.
            .env("HOME", &home)
            .args(["turn", "--format", "text", "--workspace"])
            .arg(&workspace)
            .arg("--config")
            .arg(&config)
            .args(["--", message])
            .status()
            .expect("run the adapter");
        if !status.success() {
            eprintln!("demo: turn {} failed ({status})", number + 1);
            return ExitCode::FAILURE;
        }
    }
    let session =
        std::fs::read_to_string(workspace.join(".plexum-codex-session")).unwrap_or_default();
    println!("\n=== the workspace's session file after three turns:\n{session}");
    let requests = mock.requests();
    let last = requests
        .last()
        .map(mock_responses::user_texts)
        .unwrap_or_default();
    let all = turns
        .iter()
        .all(|turn| last.iter().any(|text| text.contains(turn)));
    let verdict = if all {
        "every prompt (one conversation)"
    } else {
        "NOT every prompt"
    };
    println!(
        "=== the mock saw {} requests; the last one carried {verdict}",
        requests.len()
    );
    if !all {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
