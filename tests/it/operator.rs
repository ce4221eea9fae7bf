//! Operators: finding codex under a bare systemd PATH, `doctor`, `session`,
//! `make install`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::{adapter, codex_launcher, run, scratch, spawn, World, ADAPTER};

fn symlink(target: &Path, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// A turn with a bare PATH and a fake HOME in which codex was installed.
#[test]
fn codex_is_found_under_a_bare_path_in_the_usual_places() {
    let places = ["local-bin", "nvm", "npmrc-prefix"];
    for place in places {
        let world = World::with_config(
            &format!("discover-{place}"),
            |codex_home| json!({ "binary": "codex", "env": { "CODEX_HOME": codex_home } }),
        );
        let home = world.dir.join("home");
        let link = match place {
            "local-bin" => home.join(".local/bin/codex"),
            "nvm" => home.join(".nvm/versions/node/v22.11.0/bin/codex"),
            _ => {
                std::fs::create_dir_all(&home).unwrap();
                std::fs::write(home.join(".npmrc"), "fund=false\nprefix=~/npm-prefix\n").unwrap();
                home.join("npm-prefix/bin/codex")
            }
        };
        symlink(&codex_launcher(), &link);
        let mut command = world.turn_command(&[], "found you");
        command
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &home)
            .env("PLEXUM_LOG", "debug");
        let run = run(&mut command, None);
        assert_eq!(run.text(), "echo: found you", "{place}: {}", run.stderr);
        // The launcher (a Node script) was replaced by the native binary:
        // no `node` on this PATH would have been needed.
        let line = run.stderr.lines().find(|l| l.contains("running ")).unwrap();
        assert!(
            line.contains("/bin/codex") && line.contains("vendor/"),
            "{place}: {line}"
        );
    }
}

fn doctor(config: &Path, workspace: Option<&Path>) -> (bool, Value) {
    let mut command = adapter();
    command.args(["doctor", "--json", "--config"]).arg(config);
    if let Some(workspace) = workspace {
        command.arg("--workspace").arg(workspace);
    }
    let output = command.output().unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(report["ok"], output.status.success());
    (output.status.success(), report)
}

fn verdict<'a>(report: &'a Value, name: &str) -> &'a Value {
    let checks = report["checks"].as_array().unwrap();
    let check = checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {report}"));
    &check["verdict"]
}

#[test]
fn doctor_approves_a_good_setup() {
    let world = World::new("doctor-good");
    world.turn("make a session");
    let (ok, report) = doctor(&world.config, Some(&world.workspace));
    assert!(ok, "{report:#}");
    assert_eq!(verdict(&report, "config"), "ok");
    assert_eq!(verdict(&report, "binary"), "ok");
    assert_eq!(verdict(&report, "version"), "ok");
    // Not logged in, but codex's config selects the mock provider.
    assert_eq!(verdict(&report, "login"), "warning");
    assert_eq!(verdict(&report, "workspace"), "ok");
    assert_eq!(verdict(&report, "transport"), "ok", "{report:#}");
    let text = report.to_string();
    if crate::support::app_server() {
        assert!(
            text.contains("answers initialize") && text.contains("tested on 0.135.0 to 0.171.0"),
            "{text}"
        );
    } else {
        assert!(text.contains("exec (`codex exec --json`"), "{text}");
    }
    assert!(
        text.contains("supported: 0.135.0 and later") && text.contains("native binary"),
        "{text}"
    );
}

#[test]
fn doctor_finds_what_would_fail() {
    let dir = scratch("doctor-bad");
    let config = dir.join("config.json");

    std::fs::write(&config, r#"{"binary": "/nonexistent/codex"}"#).unwrap();
    let (ok, report) = doctor(&config, None);
    assert!(!ok);
    assert_eq!(verdict(&report, "binary"), "problem");

    std::fs::write(&config, r#"{"sandbox": "off"}"#).unwrap();
    let (ok, report) = doctor(&config, None);
    assert!(!ok);
    assert_eq!(verdict(&report, "config"), "problem");
    assert!(report.to_string().contains("off"));

    let old = dir.join("old-codex");
    std::fs::write(&old, "#!/bin/sh\necho 'codex-cli 0.120.0'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&config, json!({ "binary": old }).to_string()).unwrap();
    let (ok, report) = doctor(&config, None);
    assert!(!ok);
    assert_eq!(verdict(&report, "version"), "problem");
    assert!(report.to_string().contains("0.135.0"), "{report}");

    // The text form prints the fix for each problem.
    let output = adapter()
        .args(["doctor", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("PROBLEM version") && text.contains("fix: upgrade codex"),
        "{text}"
    );
}

#[test]
fn session_show_and_reset() {
    let world = World::new("session-cmd");
    let first = world.turn("start a thread");
    let session = |action: &str| {
        let output = adapter()
            .args(["session", action, "--workspace"])
            .arg(&world.workspace)
            .output()
            .unwrap();
        (
            output.status.success(),
            serde_json::from_slice::<Value>(&output.stdout).unwrap(),
        )
    };
    let (ok, shown) = session("show");
    assert!(ok);
    assert_eq!(shown["thread_id"], first.session_id());
    assert_eq!(shown["turn_running"], false);
    let (ok, reset) = session("reset");
    assert!(ok);
    assert_eq!(reset["previous_thread_id"], first.session_id());
    assert_eq!(session("show").1["state"], "none");
    let next = world.turn("a fresh start");
    assert_eq!(next.events[0]["resumed"], false);
    assert_ne!(next.session_id(), first.session_id());

    // While a turn runs, reset refuses.
    let mut running = spawn(&mut world.turn_command(&[], "mock:hang"), None);
    let mut stdout = std::io::BufReader::new(running.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(session("show").1["turn_running"], true);
    let (ok, refused) = session("reset");
    assert!(!ok);
    assert_eq!(refused["code"], "session_busy");
    assert!(world.session_file().is_some(), "the session survived");
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(running.id() as i32, libc::SIGTERM) };
    running.wait().unwrap();
}

#[test]
fn make_install_into_a_prefix_keeps_an_existing_config() {
    let dir = scratch("install");
    let prefix = dir.join("prefix");
    let config_dir = dir.join("config");
    let install = |target: &str| {
        let status = Command::new("make")
            .arg("-s")
            .arg(target)
            .arg(format!("BIN={ADAPTER}"))
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("CONFIG_DIR={}", config_dir.display()))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "make {target}");
    };
    install("install-files");
    let installed: PathBuf = prefix.join("bin/plexum-openai-provider");
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert!(String::from_utf8(version.stdout)
        .unwrap()
        .starts_with("plexum-openai-provider "));
    let config = config_dir.join("config.json");
    let example: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(example["sandbox"], "bypass");
    std::fs::write(&config, r#"{"timeout_secs": 60}"#).unwrap();
    install("install-files");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        r#"{"timeout_secs": 60}"#,
        "not overwritten"
    );
    install("uninstall");
    assert!(!installed.exists());
    assert!(config.exists(), "uninstall keeps the operator's config");
}

/// Runs `replay` of a recorded turn with stdout on a pseudo-terminal and
/// returns what the terminal showed.
fn replay_on_a_terminal(extra_env: &[(&str, &str)]) -> String {
    let mut master = 0;
    let mut slave = 0;
    // SAFETY: two out-parameters for descriptors; no name, termios or size.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned here.
    let (master, slave) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    };
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/codex/0.169.0/tool.codex.jsonl");
    let mut command = adapter();
    command
        .arg("replay")
        .arg(&fixture)
        .env_remove("NO_COLOR")
        .stdout(slave);
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let status = command.status().unwrap();
    assert!(status.success());
    // The command still holds the terminal's other end: let it go, so the
    // read below ends once what the adapter wrote has been read.
    drop(command);
    // The pty returns EIO once the child's side is closed and drained.
    let mut shown = Vec::new();
    let mut reader = master;
    let mut chunk = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut reader, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => shown.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&shown).into_owned()
}

#[test]
fn text_on_a_terminal_has_colour_unless_no_color_is_set() {
    // `--format auto` renders text on a terminal, with dim tool lines.
    let coloured = replay_on_a_terminal(&[]);
    assert!(coloured.contains("▸ shell"), "{coloured}");
    assert!(!coloured.contains("\"type\""), "text, not JSON: {coloured}");
    assert!(coloured.contains("\x1b[2m"), "{coloured:?}");
    let plain = replay_on_a_terminal(&[("NO_COLOR", "1")]);
    assert!(plain.contains("▸ shell"), "{plain}");
    assert!(!plain.contains('\x1b'), "{plain:?}");
}
