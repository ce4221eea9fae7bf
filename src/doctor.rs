//! `doctor`: every check a turn depends on, each with a verdict and, for a
//! problem, the fix. Exits 0 when a turn would work.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::config::{Config, ConfigSource, CONFIG_ENV};
use crate::locate::{self, CodexBinary};
use crate::output::print_text;
use crate::session::{self, SessionFiles, SessionNames, Stored};

/// The oldest codex release the adapter supports.
pub const OLDEST_SUPPORTED: (u64, u64, u64) = (0, 135, 0);

/// The codex releases the app-server transport was tested on (`make
/// compat`): its protocol is experimental and changes between releases.
pub const APP_SERVER_TESTED: [(u64, u64, u64); 2] = [OLDEST_SUPPORTED, (0, 171, 0)];

/// The PATH a systemd service gets when its unit sets none.
pub const SYSTEMD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Warning,
    Problem,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warning(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            verdict: Verdict::Warning,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn problem(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            verdict: Verdict::Problem,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    checks: &'a [Check],
}

pub fn run(args: DoctorArgs) -> ExitCode {
    let checks = checks(&args);
    let ok = checks.iter().all(|check| check.verdict != Verdict::Problem);
    if args.json {
        let report = Report {
            ok,
            checks: &checks,
        };
        let text = serde_json::to_string_pretty(&report).expect("the report serialises");
        print_text(&format!(
            "{text}
"
        ));
    } else {
        for check in &checks {
            let tag = match check.verdict {
                Verdict::Ok => "ok     ",
                Verdict::Warning => "warning",
                Verdict::Problem => "PROBLEM",
            };
            print_text(&format!("{tag} {}: {}\n", check.name, check.detail));
            if let Some(fix) = &check.fix {
                print_text(&format!("        fix: {fix}\n"));
            }
        }
        let verdict = if ok {
            "a turn would work"
        } else {
            "a turn would fail: fix the problems above"
        };
        print_text(&format!("{verdict}\n"));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn checks(args: &DoctorArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let env_config = std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let config = match Config::load(args.config.as_deref(), env_config, home.clone()) {
        Ok((config, source)) => {
            let detail = match source {
                ConfigSource::File(path) => format!("{} is valid", path.display()),
                ConfigSource::Defaults(path) => {
                    format!("no file at {}; using the defaults", path.display())
                }
            };
            checks.push(Check::ok("config", detail));
            config
        }
        Err(error) => {
            let fix = if error.message.starts_with("cannot read") {
                "create the file, or point --config or PLEXUM_OPENAI_PROVIDER_CONFIG at an existing one"
            } else {
                "correct the named field (see the README's configuration table)"
            };
            checks.push(Check::problem("config", error.message, fix));
            return checks;
        }
    };

    let path = locate::codex_path(&config.env, std::env::var_os("PATH"));
    let binary = match locate::locate(&config.binary, path, home.as_deref()) {
        Ok(binary) => {
            checks.push(Check::ok("binary", describe_binary(&binary)));
            Some(binary)
        }
        Err(error) => {
            // The message ends with the fix; the fix line says it once.
            let detail = error
                .message
                .strip_suffix(locate::INSTALL_FIX)
                .map_or(error.message.as_str(), |rest| rest.trim_end_matches("; "));
            checks.push(Check::problem("binary", detail, locate::INSTALL_FIX));
            None
        }
    };
    if let Some(binary) = &binary {
        checks.push(version_check(binary, &config));
        checks.push(auth_check(binary, &config));
        checks.push(transport_check(binary, &config));
    }
    // Without any codex, the binary check already says what to do.
    if binary.is_some() {
        checks.push(systemd_check(&config, home.as_deref(), binary.as_ref()));
    }
    if let Some(workspace) = &args.workspace {
        checks.push(workspace_check(workspace));
        if workspace.is_dir() {
            checks.push(conversations_check(workspace));
        }
    }
    checks
}

fn describe_binary(binary: &CodexBinary) -> String {
    match &binary.launcher {
        Some(launcher) => format!(
            "{} (the native binary of the npm launcher {}; no Node start per turn)",
            binary.path.display(),
            launcher.display()
        ),
        None => binary.path.display().to_string(),
    }
}

/// Runs codex with `args` and the config's environment, bounded in time.
fn run_codex(
    binary: &CodexBinary,
    config: &Config,
    args: &[&str],
) -> Result<(bool, String), String> {
    let mut command = Command::new(&binary.path);
    command
        .args(args)
        .envs(binary.launcher_env.iter().map(|(k, v)| (k, v)))
        .envs(config.env.iter().map(|(k, v)| (k, OsString::from(v))))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.path.display()))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`codex {}` did not answer within 20 s",
                    args.join(" ")
                ));
            }
        }
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    text.split_whitespace().find_map(|word| {
        // "0.170.0-alpha.1" is 0.170.0.
        let release = word.split('-').next()?;
        let mut parts = release.split('.').map(|part| part.parse::<u64>().ok());
        let version = (parts.next()??, parts.next()??, parts.next()??);
        Some(version)
    })
}

fn version_check(binary: &CodexBinary, config: &Config) -> Check {
    let (major, minor, patch) = OLDEST_SUPPORTED;
    let oldest = format!("{major}.{minor}.{patch}");
    let upgrade = "upgrade codex: `npm install -g @openai/codex@latest`";
    match run_codex(binary, config, &["--version"]) {
        Err(error) => Check::problem(
            "version",
            error,
            "check that the codex binary runs on this machine",
        ),
        Ok((_, text)) => match parse_version(&text) {
            None => Check::problem(
                "version",
                format!("cannot read a version from {:?}", text.trim()),
                upgrade,
            ),
            Some(version) if version < OLDEST_SUPPORTED => Check::problem(
                "version",
                format!(
                    "codex {}.{}.{} is older than the oldest supported, {oldest}",
                    version.0, version.1, version.2
                ),
                upgrade,
            ),
            Some(version) => Check::ok(
                "version",
                format!(
                    "codex {}.{}.{} (supported: {oldest} and later)",
                    version.0, version.1, version.2
                ),
            ),
        },
    }
}

fn version_text((major, minor, patch): (u64, u64, u64)) -> String {
    format!("{major}.{minor}.{patch}")
}

/// The transport the config picks: for app-server, whether codex answers
/// `initialize`, and whether its version is one the transport was tested on.
fn transport_check(binary: &CodexBinary, config: &Config) -> Check {
    let name = "transport";
    let [oldest, newest] = APP_SERVER_TESTED.map(version_text);
    if config.transport == crate::config::Transport::Exec {
        return Check::ok(
            name,
            format!("exec (`codex exec --json`: each agent message when it is complete; supported: {} and later)", version_text(OLDEST_SUPPORTED)),
        );
    }
    match app_server_handshake(binary, config) {
        Err(error) => Check::problem(
            name,
            format!("app-server: {error}"),
            "check that `codex app-server` runs for the service's user, or set `transport` to \"exec\"",
        ),
        Ok(user_agent) => {
            let version = user_agent
                .split('/')
                .nth(1)
                .and_then(|rest| parse_version(&rest.replace(['(', ')'], " ")));
            let tested = format!("tested on {oldest} to {newest}");
            match version {
                Some(version) if version >= APP_SERVER_TESTED[0] && version <= APP_SERVER_TESTED[1] => Check::ok(
                    name,
                    format!("app-server: codex {} answers initialize ({tested})", version_text(version)),
                ),
                Some(version) if version < APP_SERVER_TESTED[0] => Check::problem(
                    name,
                    format!("app-server: codex {} is older than {oldest}", version_text(version)),
                    "upgrade codex: `npm install -g @openai/codex@latest`",
                ),
                _ => Check::warning(
                    name,
                    format!("app-server: codex answers initialize ({user_agent}), but the transport was {tested}; its protocol is experimental"),
                    "run `make compat VERSIONS=latest` before relying on it, or set `transport` to \"exec\"",
                ),
            }
        }
    }
}

/// Starts `codex app-server`, says `initialize`, and returns the userAgent
/// of its answer; codex is stopped either way.
fn app_server_handshake(binary: &CodexBinary, config: &Config) -> Result<String, String> {
    use std::io::{BufRead, Write};
    let mut child = Command::new(&binary.path)
        .args(crate::app_server::args(&config.extra_args))
        .envs(binary.launcher_env.iter().map(|(k, v)| (k, v)))
        .envs(config.env.iter().map(|(k, v)| (k, OsString::from(v))))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.path.display()))?;
    let plan = crate::app_server::rpc::TurnPlan {
        cwd: String::from("."),
        sandbox: config.sandbox,
        codex_model: None,
        resume: None,
        message: String::new(),
        images: Vec::new(),
    };
    let opening = crate::app_server::rpc::Conversation::new(plan).opening();
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let _ = writeln!(stdin, "{opening}");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (sender, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .split(b'\n')
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(wait) {
            Ok(line) => {
                let value: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
                if value["id"] == crate::app_server::message::request_id::INITIALIZE {
                    break match value["result"]["userAgent"].as_str() {
                        Some(agent) => Ok(agent.to_string()),
                        None => Err(format!("codex refused initialize: {}", value["error"])),
                    };
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                break Err(String::from(
                    "`codex app-server` did not answer initialize within 20 s",
                ))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err(String::from(
                    "`codex app-server` exited without answering initialize",
                ))
            }
        }
    };
    // Closing stdin ends app-server; a kill covers one that does not.
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    answer
}

fn auth_check(binary: &CodexBinary, config: &Config) -> Check {
    let key_set =
        config.env.contains_key("OPENAI_API_KEY") || std::env::var_os("OPENAI_API_KEY").is_some();
    if key_set {
        return Check::ok(
            "login",
            "OPENAI_API_KEY is set for codex (its value is not shown)",
        );
    }
    let status = run_codex(binary, config, &["login", "status"]);
    match (status, custom_provider(config)) {
        (Ok((true, text)), _) => {
            let line = text.lines().rfind(|l| !l.trim().is_empty() && !l.starts_with("WARNING")).unwrap_or("");
            Check::ok("login", format!("codex is logged in ({})", line.trim()))
        }
        (Ok((false, _)), Some(provider)) => Check::warning(
            "login",
            format!(
                "codex is not logged in, but its config selects the model provider {provider:?}, which may not need it"
            ),
            "if turns fail with `auth`, run `codex login` as the service's user, or set OPENAI_API_KEY in the config's `env`",
        ),
        (Ok((false, _)), None) => Check::problem(
            "login",
            "codex is not logged in and OPENAI_API_KEY is not set",
            "run `codex login` as the service's user (same HOME and CODEX_HOME), or set OPENAI_API_KEY in the config's `env`",
        ),
        (Err(error), _) => Check::problem("login", error, "check that `codex login status` runs"),
    }
}

/// The `model_provider` of codex's config.toml, when it is not OpenAI's.
fn custom_provider(config: &Config) -> Option<String> {
    let codex_home = config
        .env
        .get("CODEX_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CODEX_HOME").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".codex")))?;
    let text = std::fs::read_to_string(codex_home.join("config.toml")).ok()?;
    // Top-level keys only: stop at the first table.
    for line in text
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with('['))
    {
        if let Some(value) = line
            .strip_prefix("model_provider")
            .map(str::trim)
            .and_then(|r| r.strip_prefix('='))
        {
            let provider = value.trim().trim_matches('"').to_string();
            return (provider != "openai").then_some(provider);
        }
    }
    None
}

fn systemd_check(config: &Config, home: Option<&Path>, found: Option<&CodexBinary>) -> Check {
    let name = "systemd";
    match locate::locate(&config.binary, Some(OsString::from(SYSTEMD_PATH)), home) {
        Ok(binary) => Check::ok(
            name,
            format!(
                "with systemd's bare PATH, codex is found at {}",
                binary.path.display()
            ),
        ),
        Err(_) => {
            let fix = match found {
                Some(binary) => format!(
                    "set `binary` in the config to \"{}\", or set PATH in the service's unit",
                    binary.launcher.as_ref().unwrap_or(&binary.path).display()
                ),
                None => String::from(
                    "install codex, then set `binary` in the config to its absolute path",
                ),
            };
            Check::warning(
                name,
                format!("with systemd's bare PATH ({SYSTEMD_PATH}) codex would not be found"),
                fix,
            )
        }
    }
}

fn workspace_check(workspace: &Path) -> Check {
    let name = "workspace";
    if !workspace.is_dir() {
        return Check::problem(
            name,
            format!("{} is not a directory", workspace.display()),
            "create it, or pass the workspace Plexum uses",
        );
    }
    let session = match SessionFiles::open(workspace, SessionNames::workspace_default()) {
        Ok(session) => session,
        Err(error) => {
            return Check::problem(
                name,
                format!("cannot open {}: {error}", workspace.display()),
                "make the workspace readable for the service's user",
            );
        }
    };
    let running = match session.lock() {
        Ok(_lock) => false,
        Err(session::LockError::Busy) => true,
        Err(session::LockError::Io(error)) => {
            return Check::problem(
                name,
                format!(
                    "cannot create the turn lock in {}: {error}",
                    workspace.display()
                ),
                "make the workspace writable for the service's user",
            );
        }
    };
    let running = if running {
        "; a turn is running now"
    } else {
        ""
    };
    match session.read() {
        Stored::Fresh => Check::ok(name, format!("no codex thread yet; the next turn starts one{running}")),
        Stored::Thread { thread_id, totals, .. } => {
            let totals = match totals {
                Some(usage) => format!("{} input and {} output tokens so far", usage.input_tokens, usage.output_tokens),
                None => String::from("usage totals unknown (v0.1 session file)"),
            };
            Check::ok(name, format!("codex thread {thread_id}, {totals}{running}"))
        }
        Stored::Corrupt { reason } => Check::warning(
            name,
            format!("the session file is unusable ({reason}){running}"),
            "nothing to do: the next turn keeps it as .plexum-codex-session.corrupt and starts a new thread",
        ),
    }
}

/// How many keyed conversations `doctor` names.
const SHOWN_CONVERSATIONS: usize = 20;

/// The keyed conversations (`turn --conversation KEY`) the workspace holds.
fn conversations_check(workspace: &Path) -> Check {
    let name = "conversations";
    let found = match session::list(workspace) {
        Ok(found) => found,
        Err(error) => {
            return Check::warning(
                name,
                format!(
                    "cannot list the conversations in {}: {error}",
                    workspace.display()
                ),
                "make the workspace readable for the service's user",
            );
        }
    };
    let keyed: Vec<_> = found
        .iter()
        .filter(|listed| !listed.files.names().is_default())
        .collect();
    if keyed.is_empty() {
        return Check::ok(
            name,
            "no keyed conversations (turns with --conversation) yet",
        );
    }
    let mut corrupt = 0;
    let described: Vec<String> = keyed
        .iter()
        .map(|listed| {
            // Debug quoting: a key is the host's text and may hold control
            // characters or bidi overrides.
            let key = match &listed.key {
                Some(key) => format!("{key:?}"),
                None => String::from("(unreadable key)"),
            };
            match &listed.stored {
                Stored::Thread { thread_id, .. } => format!("{key}: thread {thread_id}"),
                Stored::Fresh => format!("{key}: no thread"),
                Stored::Corrupt { reason } => {
                    corrupt += 1;
                    format!(
                        "{key}: unusable file {} ({reason})",
                        listed.files.path().display()
                    )
                }
            }
        })
        .collect();
    // A busy agent may hold thousands; `session list` has them all.
    let mut detail = format!(
        "{} keyed: {}",
        keyed.len(),
        described[..described.len().min(SHOWN_CONVERSATIONS)].join("; ")
    );
    if described.len() > SHOWN_CONVERSATIONS {
        detail.push_str(&format!(
            "; and {} more (see `session list`)",
            described.len() - SHOWN_CONVERSATIONS
        ));
    }
    if corrupt > 0 {
        return Check::warning(
            name,
            detail,
            "nothing to do: the next turn of such a conversation keeps its file aside as .corrupt and starts a new thread",
        );
    }
    Check::ok(name, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_and_compared() {
        assert_eq!(parse_version("codex-cli 0.169.0\n"), Some((0, 169, 0)));
        assert_eq!(
            parse_version("codex-cli 0.170.0-alpha.2"),
            Some((0, 170, 0))
        );
        assert_eq!(parse_version("not a version"), None);
        assert!(parse_version("codex-cli 0.120.5").unwrap() < OLDEST_SUPPORTED);
        assert!(parse_version("codex-cli 1.0.0").unwrap() > OLDEST_SUPPORTED);
    }
}
