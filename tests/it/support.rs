//! Driving the built executable in an isolated environment: a folder per
//! test under the target dir, a mock Responses server, a CODEX_HOME pointing
//! codex at it, and strict decoding of what the adapter prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::Value;

use crate::mock_responses::MockServer;
pub use crate::rss::peak_rss_sampler;

pub const ADAPTER: &str = env!("CARGO_BIN_EXE_plexum-openai-provider");

/// The pinned codex launcher (`node_modules/.bin/codex`), installed by make.
pub fn codex_launcher() -> PathBuf {
    codex_from("PLEXUM_TEST_CODEX", "0.171.0")
}

/// The oldest supported codex launcher.
pub fn codex_launcher_oldest() -> PathBuf {
    codex_from("PLEXUM_TEST_CODEX_OLDEST", "0.135.0")
}

/// The transport under test: `exec` (default) or `app-server`, from
/// PLEXUM_TEST_TRANSPORT (`make test` runs the real-codex suites with both).
pub fn transport() -> &'static str {
    match std::env::var("PLEXUM_TEST_TRANSPORT").as_deref() {
        Ok("app-server") => "app-server",
        Ok("exec") | Err(_) => "exec",
        Ok(other) => panic!("PLEXUM_TEST_TRANSPORT={other:?}: use exec or app-server"),
    }
}

pub fn app_server() -> bool {
    transport() == "app-server"
}

/// The version of the codex under test, e.g. (0, 169, 0).
pub fn codex_version() -> (u64, u64, u64) {
    static VERSION: std::sync::OnceLock<(u64, u64, u64)> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        let launcher = codex_launcher();
        let native = plexum_openai_provider::locate::native_for_launcher(&launcher)
            .map(|binary| binary.path)
            .unwrap_or(launcher);
        let output = Command::new(&native).arg("--version").output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        plexum_openai_provider::doctor::parse_version(&text)
            .unwrap_or_else(|| panic!("codex --version said {text:?}"))
    })
}

fn codex_from(variable: &str, version: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!(".codex/{version}/node_modules/.bin/codex"))
        });
    assert!(
        path.exists(),
        "the real codex CLI {version} is not installed at {}; run the tests with `make test`, which installs it",
        path.display()
    );
    path
}

/// A fresh folder for one test, under the target dir (not /tmp: codex
/// warns about a CODEX_HOME under the system temp folder).
pub fn scratch(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("it/{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a shell script (a stand-in codex) and makes it executable.
pub fn write_executable(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One test's world: a workspace, a mock, a CODEX_HOME and a config file.
pub struct World {
    pub dir: PathBuf,
    pub workspace: PathBuf,
    pub config: PathBuf,
    pub mock: MockServer,
}

impl World {
    /// With the pinned real codex.
    pub fn new(name: &str) -> World {
        World::with_codex(name, &codex_launcher())
    }

    pub fn with_codex(name: &str, codex: &Path) -> World {
        World::with_config(
            name,
            |codex_home| serde_json::json!({ "binary": codex, "env": { "CODEX_HOME": codex_home }, "transport": transport() }),
        )
    }

    pub fn with_config(name: &str, config: impl FnOnce(&Path) -> Value) -> World {
        let dir = scratch(name);
        let workspace = dir.join("workspace");
        let codex_home = dir.join("codex-home");
        std::fs::create_dir_all(&workspace).unwrap();
        let mock = MockServer::start();
        mock.write_codex_home(&codex_home);
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, config(&codex_home).to_string()).unwrap();
        World {
            dir,
            workspace,
            config: config_path,
            mock,
        }
    }

    /// `turn --workspace W --config C [extra] -- MESSAGE`
    pub fn turn(&self, message: &str) -> Run {
        self.turn_with(&[], message, None)
    }

    pub fn turn_with(&self, extra: &[&str], message: &str, stdin: Option<&[u8]>) -> Run {
        let mut command = self.turn_command(extra, message);
        run(&mut command, stdin)
    }

    pub fn turn_command(&self, extra: &[&str], message: &str) -> Command {
        let mut command = adapter();
        command
            .arg("turn")
            .arg("--workspace")
            .arg(&self.workspace)
            .arg("--config")
            .arg(&self.config)
            .args(extra)
            .args(["--", message]);
        command
    }

    /// Gives codex the MCP server of tests/mcp_echo.rs as `echo`.
    pub fn add_mcp_echo(&self) {
        // target/<profile>/deps/it-… → target/<profile>/examples/mcp_echo,
        // built by `make test` (`cargo build --examples`; `cargo test` alone
        // builds examples as test harnesses elsewhere).
        let exe = std::env::current_exe().unwrap();
        let server = exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples/mcp_echo");
        assert!(
            server.exists(),
            "{} is not built; run `make test`",
            server.display()
        );
        let config = self.dir.join("codex-home/config.toml");
        let base = std::fs::read_to_string(&config).unwrap();
        let table = format!(
            "\n[mcp_servers.echo]\ncommand = {:?}\n",
            server.to_str().unwrap()
        );
        std::fs::write(&config, base + &table).unwrap();
    }

    pub fn session_file(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.workspace.join(".plexum-codex-session")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The adapter with a clean environment: no user config, no inherited log level.
pub fn adapter() -> Command {
    let mut command = Command::new(ADAPTER);
    command
        .env_remove("PLEXUM_OPENAI_PROVIDER_CONFIG")
        .env_remove("PLEXUM_LOG")
        .env(
            "HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("it/no-home"),
        );
    command
}

pub fn spawn(command: &mut Command, stdin: Option<&[u8]>) -> Child {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start the adapter");
    watchdog(child.id());
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.map(<[u8]>::to_vec).unwrap_or_default();
    std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    child
}

/// No adapter run may outlive this, even from a broken build: a test then
/// fails instead of hanging the suite.
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

fn watchdog(pid: u32) {
    std::thread::spawn(move || {
        std::thread::sleep(RUN_LIMIT);
        // Only a live adapter process with this pid (not a reused pid).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("plexum-openai-provider") {
            eprintln!("watchdog: adapter {pid} ran past {RUN_LIMIT:?}; killing it");
            // SAFETY: plain syscall.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    });
}

pub fn run(command: &mut Command, stdin: Option<&[u8]>) -> Run {
    let child = spawn(command, stdin);
    Run::from_output(child.wait_with_output().unwrap())
}

/// What one run printed, decoded.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Value>,
}

impl Run {
    pub fn from_output(output: Output) -> Run {
        let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let events = stdout
            .lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("stdout line is not JSON ({e}): {line:?}\nstderr: {stderr}")
                });
                // Our own output is decoded strictly: an unknown field or a
                // wrong type is a failure.
                if let Err(error) = serde_json::from_value::<Strict>(value.clone()) {
                    panic!("event does not match PROTOCOL.md ({error}): {line}");
                }
                value
            })
            .collect();
        let run = Run {
            status: output.status,
            stdout,
            stderr,
            events,
        };
        run.check_terminal_rule();
        run
    }

    /// PROTOCOL.md section 3: exactly one terminal event, last; exit code
    /// 0 after message_end only.
    pub fn check_terminal_rule(&self) {
        let terminal: Vec<usize> = (0..self.events.len())
            .filter(|&i| matches!(self.kind(i), "message_end" | "error"))
            .collect();
        assert_eq!(
            terminal,
            [self.events.len().saturating_sub(1)],
            "exactly one terminal event, last:\n{}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        let completed = self.kind(self.events.len() - 1) == "message_end";
        assert_eq!(
            self.status.success(),
            completed,
            "exit status {:?} after {}",
            self.status,
            self.stdout
        );
    }

    fn kind(&self, index: usize) -> &str {
        self.events[index]["type"].as_str().unwrap_or_default()
    }

    pub fn types(&self) -> Vec<&str> {
        (0..self.events.len()).map(|i| self.kind(i)).collect()
    }

    /// The turn ended with `message_end`; otherwise shows what it printed.
    pub fn assert_completed(&self) {
        assert_eq!(
            self.terminal()["type"],
            "message_end",
            "the turn did not complete:\n{}\nstderr: {}",
            self.stdout,
            self.stderr
        );
    }

    pub fn terminal(&self) -> &Value {
        self.events.last().unwrap()
    }

    pub fn error_code(&self) -> &str {
        let terminal = self.terminal();
        assert_eq!(
            terminal["type"], "error",
            "expected an error, got {}",
            self.stdout
        );
        terminal["code"].as_str().unwrap()
    }

    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == kind).collect()
    }

    /// The turn's text as a host shows it: the deltas in order, each
    /// `text_reset` replacing what came before.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for event in &self.events {
            match event["type"].as_str() {
                Some("text_delta") => text.push_str(event["text"].as_str().unwrap()),
                Some("text_reset") => text = event["text"].as_str().unwrap().to_string(),
                _ => {}
            }
        }
        text
    }

    pub fn session_id(&self) -> &str {
        self.events[0]["session_id"]
            .as_str()
            .expect("message_start first")
    }
}

/// The event shapes of PROTOCOL.md section 4, strictly.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Strict {
    MessageStart {
        session_id: String,
        resumed: bool,
        model: String,
    },
    TextDelta {
        text: String,
    },
    TextReset {
        text: String,
    },
    Reasoning {
        text: String,
    },
    ToolCall {
        id: String,
        kind: ToolKind,
        name: String,
        input: serde_json::Map<String, Value>,
    },
    ToolResult {
        id: String,
        kind: ToolKind,
        status: ToolStatus,
        output: String,
        #[serde(default)]
        exit_code: Option<i64>,
    },
    Todo {
        items: Vec<StrictTodo>,
    },
    Notice {
        level: Level,
        message: String,
    },
    MessageEnd {
        stop_reason: StopReason,
        usage: StrictUsage,
        thread_usage: StrictUsage,
        session_id: String,
    },
    Error {
        code: String,
        message: String,
        retryable: bool,
        #[serde(default)]
        detail: Option<String>,
    },
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToolKind {
    Command,
    FileChange,
    Mcp,
    WebSearch,
    Other,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToolStatus {
    Completed,
    Failed,
    Declined,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Level {
    Info,
    Warning,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum StopReason {
    EndTurn,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictTodo {
    text: String,
    done: bool,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictUsage {
    input_tokens: u64,
    cached_input_tokens: u64,
    cache_write_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
}

/// A 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Runs the adapter (stdin empty, stderr dropped) and returns the run and
/// its peak RSS in KiB; beyond `kill_above_kib` it is killed, so that a run
/// reading without bound fails instead of exhausting the machine.
pub fn run_measuring_memory(command: &mut Command, kill_above_kib: u64) -> (Run, u64) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peak = peak_rss_sampler(child.id(), kill_above_kib);
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    let peak_kib = peak.join().unwrap();
    let run = Run::from_output(Output {
        status,
        stdout,
        stderr: Vec::new(),
    });
    assert!(peak_kib > 0, "the sampler saw the adapter");
    (run, peak_kib)
}
