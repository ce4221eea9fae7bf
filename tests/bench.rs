//! `make bench`: the adapter's cost, measured against its budgets.
//!
//! 1. Per-turn overhead: `turn` vs the same codex command run directly,
//!    alternated, with the real codex against the mock, with a fake codex
//!    that prints a recorded stream instantly, and through the npm launcher.
//! 2. Translation throughput: `replay` of large recorded-shape streams,
//!    MB/s and peak RSS at two lengths.
//! 3. Streaming latency: a fake codex prints a timestamped event every few
//!    ms; the time until the adapter's matching event is on its stdout.
//! 4. Start-up: `--version` and `models`, and the binary's size.
//! 5. A host that reads slowly: `turn` with a fake codex printing 100 MB
//!    and 400 MB of agent messages at once (as many bytes of events), read
//!    64 KiB at a time with a pause; the adapter's peak RSS must not grow
//!    with the stream's length.
//! 6. Transports, side by side with the real codex against the mock: the
//!    time from spawn to the first `text_delta` on a reply streamed over
//!    about 2 s, and the cost of a whole plain turn, exec vs app-server.
//!
//! This binary is also the fake codex (selected by environment variables).

#[path = "support/mock_responses.rs"]
mod mock_responses;
#[path = "support/rss.rs"]
mod rss;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FAKE_STREAM: &str = "PLEXUM_BENCH_FAKE_STREAM";
const FAKE_TICKER: &str = "PLEXUM_BENCH_FAKE_TICKER";

fn main() {
    if let Some(stream) = std::env::var_os(FAKE_STREAM) {
        return fake_stream(Path::new(&stream));
    }
    if let Some(count) = std::env::var_os(FAKE_TICKER) {
        return fake_ticker(count.to_str().unwrap().parse().unwrap());
    }
    // `bench SECTION…` (make bench BENCH="transports") runs just those.
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |section: &str| only.is_empty() || only.iter().any(|s| s == section);
    let bench = Bench::new();
    let mut verdicts = Vec::new();
    if wanted("overhead") {
        verdicts.extend(bench.overhead());
    }
    if wanted("throughput") {
        verdicts.push(bench.throughput());
    }
    if wanted("latency") {
        verdicts.push(bench.latency());
    }
    if wanted("startup") {
        verdicts.push(bench.startup());
    }
    if wanted("slow_host") {
        verdicts.push(bench.slow_host());
    }
    if wanted("transports") {
        verdicts.extend(bench.transports());
    }
    println!("\n== budgets");
    for (name, met, figure) in &verdicts {
        println!(
            "{} {name}: {figure}",
            if *met { "MET   " } else { "NOT MET" }
        );
    }
}

/// Fake codex: drains stdin, prints a recorded stream at once.
fn fake_stream(stream: &Path) {
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
    let bytes = std::fs::read(stream).unwrap();
    std::io::stdout().write_all(&bytes).unwrap();
}

fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Fake codex: one agent message every 2 ms, its text the monotonic time
/// at which it was written.
fn fake_ticker(count: usize) {
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        r#"{{"type":"thread.started","thread_id":"01a20bef-77e0-7061-a52a-e86d8a4aaf20"}}"#
    )
    .unwrap();
    writeln!(stdout, r#"{{"type":"turn.started"}}"#).unwrap();
    stdout.flush().unwrap();
    for i in 0..count {
        std::thread::sleep(Duration::from_millis(2));
        let line = format!(
            r#"{{"type":"item.completed","item":{{"id":"item_{i}","type":"agent_message","text":"{}"}}}}"#,
            monotonic_nanos()
        );
        stdout.write_all(line.as_bytes()).unwrap();
        stdout.write_all(b"\n").unwrap();
        stdout.flush().unwrap();
    }
    writeln!(
        stdout,
        r#"{{"type":"turn.completed","usage":{{"input_tokens":1}}}}"#
    )
    .unwrap();
}

struct Bench {
    root: PathBuf,
    dir: PathBuf,
    adapter: PathBuf,
    launcher: PathBuf,
    native: PathBuf,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let index = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1;
    values[index]
}

/// Runs a command to completion with `stdin`, returning its wall time.
fn timed(command: &mut Command, stdin: &[u8]) -> Duration {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let mut sink = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut sink).unwrap();
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    assert!(
        status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&sink)
    );
    elapsed
}

impl Bench {
    fn new() -> Bench {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let exe = std::env::current_exe().unwrap();
        let adapter = exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("plexum-openai-provider");
        let launcher = std::env::var_os("PLEXUM_TEST_CODEX")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".codex/0.171.0/node_modules/.bin/codex"));
        let native = plexum_openai_provider::locate::native_for_launcher(&launcher)
            .expect("the pinned codex is installed (make bench installs it)")
            .path;
        let dir = root.join("target/bench");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        println!(
            "machine: {} cores, {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model()
        );
        println!("adapter: {}", adapter.display());
        Bench {
            root,
            dir,
            adapter,
            launcher,
            native,
        }
    }

    fn workspace(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn config(&self, name: &str, binary: &Path, env: serde_json::Value) -> PathBuf {
        let path = self.dir.join(format!("{name}.json"));
        let config = serde_json::json!({ "binary": binary, "env": env });
        std::fs::write(&path, config.to_string()).unwrap();
        path
    }

    fn turn(&self, config: &Path, workspace: &Path, message: &str) -> Command {
        let mut command = Command::new(&self.adapter);
        // A clean HOME for both sides: codex starts a login shell, and a
        // profile that starts background jobs (pyenv rehash here) would
        // leave them running after direct runs and skew later ones.
        command
            .env("HOME", &self.dir)
            .args(["turn", "--format", "jsonl", "--config"])
            .arg(config)
            .arg("--workspace")
            .arg(workspace)
            .args(["--", message]);
        command
    }

    /// What the adapter runs, run directly: same argv, cwd, environment.
    fn direct(&self, program: &Path, workspace: &Path, env: &[(&str, &Path)]) -> Command {
        let mut command = Command::new(program);
        command
            .env("HOME", &self.dir)
            .args([
                "exec",
                "--json",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                "--",
                "-",
            ])
            .current_dir(workspace);
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// Alternates adapter and direct runs; new thread each time for both.
    fn alternate(
        &self,
        runs: usize,
        mut adapter: impl FnMut(usize) -> Duration,
        mut direct: impl FnMut(usize) -> Duration,
    ) -> (f64, f64, f64, f64) {
        let (mut through, mut alone, mut ratios, mut diffs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let a = adapter(i).as_secs_f64() * 1000.0;
            let d = direct(i).as_secs_f64() * 1000.0;
            through.push(a);
            alone.push(d);
            ratios.push(a / d);
            diffs.push(a - d);
        }
        (
            median(&mut through),
            median(&mut alone),
            median(&mut ratios),
            median(&mut diffs),
        )
    }

    fn overhead(&self) -> Vec<(String, bool, String)> {
        println!("\n== 1. per-turn overhead (medians of alternated runs)");
        let mut verdicts = Vec::new();

        // Real codex against the mock.
        let mock = mock_responses::MockServer::start();
        let codex_home = self.dir.join("codex-home");
        mock.write_codex_home(&codex_home);
        let env = serde_json::json!({ "CODEX_HOME": codex_home });
        let config = self.config("real", &self.launcher, env.clone());
        // The direct run gets what the adapter gives codex: the same argv,
        // cwd, CODEX_HOME and the two variables the npm launcher would set.
        let native = plexum_openai_provider::locate::native_for_launcher(&self.launcher).unwrap();
        let direct_native = |i: usize| {
            let mut command = self.direct(
                &self.native,
                &self.workspace(&format!("rd{i}")),
                &[("CODEX_HOME", &codex_home)],
            );
            command.envs(native.launcher_env.iter().map(|(k, v)| (k, v)));
            timed(&mut command, b"hello")
        };
        let runs = 31;
        let (through, alone, ratio, diff) = self.alternate(
            runs,
            |i| {
                timed(
                    &mut self.turn(&config, &self.workspace(&format!("ra{i}")), "hello"),
                    b"",
                )
            },
            direct_native,
        );
        println!("real codex + mock, {runs} pairs: turn {through:.1} ms, codex alone {alone:.1} ms, ratio {ratio:.3}, difference {diff:+.1} ms");
        verdicts.push((
            String::from("overhead vs real codex ≤ 2 ms"),
            diff <= 2.0,
            format!("{diff:+.2} ms (ratio {ratio:.3})"),
        ));

        // The npm launcher, as operators ran codex before.
        let (launcher_ms, native_ms, _, launcher_diff) = self.alternate(
            runs,
            |i| {
                timed(
                    &mut self.direct(
                        &self.launcher,
                        &self.workspace(&format!("la{i}")),
                        &[("CODEX_HOME", &codex_home)],
                    ),
                    b"hello",
                )
            },
            |i| {
                timed(
                    &mut self.direct(
                        &self.native,
                        &self.workspace(&format!("ln{i}")),
                        &[("CODEX_HOME", &codex_home)],
                    ),
                    b"hello",
                )
            },
        );
        println!(
            "npm launcher (node_modules/.bin/codex) {launcher_ms:.1} ms vs the native binary the adapter runs {native_ms:.1} ms: {launcher_diff:+.1} ms per turn"
        );

        // A fake codex that prints a recorded stream at once: the adapter's own cost.
        let stream = self.root.join("fixtures/codex/0.171.0/tool.codex.jsonl");
        let exe = std::env::current_exe().unwrap();
        let env = serde_json::json!({ FAKE_STREAM: stream });
        let config = self.config("fake", &exe, env);
        let runs = 200;
        let (through, alone, ratio, diff) = self.alternate(
            runs,
            |i| {
                timed(
                    &mut self.turn(&config, &self.workspace(&format!("fa{}", i % 4)), "hello"),
                    b"",
                )
            },
            |_| {
                timed(
                    self.direct(&exe, &self.dir, &[]).env(FAKE_STREAM, &stream),
                    b"hello",
                )
            },
        );
        println!("instant fake codex, {runs} pairs: turn {through:.2} ms, fake alone {alone:.2} ms, ratio {ratio:.2}, difference {diff:+.2} ms");
        verdicts.push((
            String::from("adapter's own cost ≤ 2 ms"),
            diff <= 2.0,
            format!("{diff:+.2} ms"),
        ));
        verdicts
    }

    fn throughput(&self) -> (String, bool, String) {
        println!("\n== 2. translation throughput (replay)");
        let mut results = Vec::new();
        for megabytes in [100u64, 400] {
            let path = self.dir.join(format!("stream-{megabytes}.jsonl"));
            let bytes = write_stream(&path, megabytes * 1_000_000);
            let mut best = f64::MAX;
            let mut peak_kib = 0;
            for _ in 0..3 {
                let started = Instant::now();
                let child = Command::new(&self.adapter)
                    .args(["replay", "--format", "jsonl"])
                    .arg(&path)
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap();
                let (elapsed, rss) = wait_rss(child.id(), started);
                std::mem::forget(child);
                best = best.min(elapsed.as_secs_f64());
                peak_kib = peak_kib.max(rss);
            }
            let rate = bytes as f64 / 1e6 / best;
            println!(
                "{:.0} MB stream: {rate:.0} MB/s (best of 3), peak RSS {:.1} MiB",
                bytes as f64 / 1e6,
                peak_kib as f64 / 1024.0
            );
            results.push((rate, peak_kib));
            let _ = std::fs::remove_file(&path);
        }
        let rate = results.iter().map(|r| r.0).fold(f64::MAX, f64::min);
        let (small, large) = (results[0].1 as f64, results[1].1 as f64);
        let flat = large <= small * 1.25 + 4096.0;
        println!(
            "peak RSS at 4× the stream length: {:.2}× (flat: {flat})",
            large / small
        );
        (
            String::from("replay ≥ 300 MB/s, flat memory"),
            rate >= 300.0 && flat,
            format!(
                "{rate:.0} MB/s, RSS {:.1} → {:.1} MiB",
                small / 1024.0,
                large / 1024.0
            ),
        )
    }

    fn latency(&self) -> (String, bool, String) {
        println!("\n== 3. streaming latency (codex line written → adapter event on stdout)");
        let exe = std::env::current_exe().unwrap();
        let count = 2000;
        let config = self.config(
            "ticker",
            &exe,
            serde_json::json!({ FAKE_TICKER: count.to_string() }),
        );
        let workspace = self.workspace("ticker");
        let mut child = self
            .turn(&config, &workspace, "tick")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let mut latencies = Vec::new();
        for line in reader.lines() {
            let now = monotonic_nanos();
            let line = line.unwrap();
            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
            if event["type"] != "text_delta" {
                continue;
            }
            let sent: u64 = event["text"].as_str().unwrap().trim().parse().unwrap();
            latencies.push((now - sent) as f64 / 1000.0);
        }
        child.wait().unwrap();
        let p50 = median(&mut latencies);
        let p99 = percentile(&mut latencies, 0.99);
        println!(
            "{} events: median {p50:.0} µs, p99 {p99:.0} µs",
            latencies.len()
        );
        (
            String::from("p99 latency < 1 ms"),
            p99 < 1000.0,
            format!("median {p50:.0} µs, p99 {p99:.0} µs"),
        )
    }

    fn transports(&self) -> Vec<(String, bool, String)> {
        println!("\n== 6. transports: exec vs app-server (real codex + mock, alternated)");
        let mock = mock_responses::MockServer::start();
        let codex_home = self.dir.join("codex-home-transports");
        mock.write_codex_home(&codex_home);
        let config = |transport: &str| {
            let path = self.dir.join(format!("transport-{transport}.json"));
            let config = serde_json::json!({
                "binary": self.launcher,
                "env": { "CODEX_HOME": codex_home },
                "transport": transport,
            });
            std::fs::write(&path, config.to_string()).unwrap();
            path
        };
        let (exec, app_server) = (config("exec"), config("app-server"));
        // Spawn → first text_delta on stdout, and the whole turn.
        let first_text = |config: &Path, name: String, message: &str| -> (f64, f64) {
            let started = Instant::now();
            let mut child = self
                .turn(config, &self.workspace(&name), message)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut first = None;
            for line in BufReader::new(child.stdout.take().unwrap()).lines() {
                let line = line.unwrap();
                if first.is_none() && line.contains(r#""type":"text_delta""#) {
                    first = Some(started.elapsed());
                }
            }
            assert!(child.wait().unwrap().success(), "{name}");
            let total = started.elapsed().as_secs_f64() * 1000.0;
            (first.expect("a text_delta").as_secs_f64() * 1000.0, total)
        };
        let pairs = 5;
        let (mut exec_first, mut as_first) = (Vec::new(), Vec::new());
        for i in 0..pairs {
            exec_first.push(first_text(&exec, format!("se{i}"), "mock:stream go").0);
            as_first.push(first_text(&app_server, format!("sa{i}"), "mock:stream go").0);
        }
        let (exec_first, as_first) = (median(&mut exec_first), median(&mut as_first));
        let earlier = exec_first - as_first;
        println!(
            "reply streamed over ~2 s, {pairs} pairs: first text_delta after {exec_first:.0} ms (exec) vs {as_first:.0} ms (app-server): {earlier:.0} ms earlier"
        );
        let runs = 21;
        let (mut exec_turn, mut as_turn, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let e = first_text(&exec, format!("pe{i}"), "hello").1;
            let a = first_text(&app_server, format!("pa{i}"), "hello").1;
            exec_turn.push(e);
            as_turn.push(a);
            diffs.push(a - e);
        }
        let (exec_turn, as_turn, diff) = (
            median(&mut exec_turn),
            median(&mut as_turn),
            median(&mut diffs),
        );
        println!(
            "plain turn, {runs} pairs: exec {exec_turn:.1} ms, app-server {as_turn:.1} ms, difference {diff:+.1} ms"
        );
        vec![
            (
                String::from("app-server's first text ≥ 1.5 s earlier on a 2 s reply"),
                earlier >= 1500.0,
                format!("{earlier:.0} ms earlier ({exec_first:.0} vs {as_first:.0} ms)"),
            ),
            (
                String::from("app-server ≤ 50 ms slower per turn"),
                diff <= 50.0,
                format!("{diff:+.1} ms ({exec_turn:.1} vs {as_turn:.1} ms)"),
            ),
        ]
    }

    fn startup(&self) -> (String, bool, String) {
        println!("\n== 4. start-up");
        let mut version = Vec::new();
        let mut models = Vec::new();
        for _ in 0..200 {
            version.push(
                timed(Command::new(&self.adapter).arg("--version"), b"").as_secs_f64() * 1000.0,
            );
            let mut command = Command::new(&self.adapter);
            command.args(["models"]).env("HOME", &self.dir);
            models.push(timed(&mut command, b"").as_secs_f64() * 1000.0);
        }
        let size = std::fs::metadata(&self.adapter).unwrap().len();
        let (version, models) = (median(&mut version), median(&mut models));
        println!(
            "--version {version:.2} ms, models {models:.2} ms (medians of 200), binary {:.2} MiB",
            size as f64 / 1048576.0
        );
        (
            String::from("start-up (no budget set)"),
            true,
            format!(
                "--version {version:.2} ms, models {models:.2} ms, {:.2} MiB",
                size as f64 / 1048576.0
            ),
        )
    }
}

impl Bench {
    fn slow_host(&self) -> (String, bool, String) {
        println!("\n== 5. a host that reads slowly (turn, fake codex printing at once)");
        let exe = std::env::current_exe().unwrap();
        let mut peaks = Vec::new();
        for megabytes in [100u64, 400] {
            let path = self.dir.join(format!("slow-{megabytes}.jsonl"));
            let bytes = write_message_stream(&path, megabytes * 1_000_000);
            let config = self.config(
                &format!("slow-{megabytes}"),
                &exe,
                serde_json::json!({ FAKE_STREAM: path }),
            );
            let workspace = self.workspace(&format!("slow-{megabytes}"));
            let started = Instant::now();
            let mut child = self
                .turn(&config, &workspace, "flood")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let peak = rss::peak_rss_sampler(child.id(), u64::MAX);
            let mut stdout = child.stdout.take().unwrap();
            let mut chunk = vec![0u8; 64 * 1024];
            let mut read = 0u64;
            let mut last = Vec::new();
            loop {
                let n = stdout.read(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                read += n as u64;
                last = chunk[..n].to_vec();
                // Slower than the adapter can translate: the pipe stays full.
                std::thread::sleep(Duration::from_micros(500));
            }
            // Not wait4's figure: that includes the fake codex, which holds
            // the whole stream in memory.
            let rss = peak.join().unwrap() as i64;
            let (elapsed, _) = wait_rss(child.id(), started);
            std::mem::forget(child);
            let ended = String::from_utf8_lossy(&last).contains("\"message_end\"");
            println!(
                "{:.0} MB stream read at {:.0} MB/s: {:.0} MB of events, peak RSS {:.1} MiB, message_end last: {ended}",
                bytes as f64 / 1e6,
                read as f64 / 1e6 / elapsed.as_secs_f64(),
                read as f64 / 1e6,
                rss as f64 / 1024.0
            );
            peaks.push(rss as f64);
            let _ = std::fs::remove_file(&path);
        }
        let (small, large) = (peaks[0], peaks[1]);
        let flat = large <= small * 1.25 + 4096.0;
        println!(
            "peak RSS at 4× the stream length: {:.2}× (flat: {flat})",
            large / small
        );
        (
            String::from("slow host: flat memory"),
            flat,
            format!("RSS {:.1} → {:.1} MiB", small / 1024.0, large / 1024.0),
        )
    }
}

/// A codex stream of about `target` bytes of 1 KB agent messages: its
/// events are as large as the stream itself.
fn write_message_stream(path: &Path, target: u64) -> u64 {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut put = |line: &str, written: &mut u64| {
        file.write_all(line.as_bytes()).unwrap();
        file.write_all(b"\n").unwrap();
        *written += line.len() as u64 + 1;
    };
    put(
        r#"{"type":"thread.started","thread_id":"01a20bef-77e0-7061-a52a-e86d8a4aaf20"}"#,
        &mut written,
    );
    let text = "words of an answer ".repeat(1000 / 19);
    let message = format!(
        r#"{{"type":"item.completed","item":{{"id":"m","type":"agent_message","text":"{text}"}}}}"#
    );
    while written < target {
        put(&message, &mut written);
    }
    put(
        r#"{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1,"reasoning_output_tokens":0}}"#,
        &mut written,
    );
    file.flush().unwrap();
    written
}

/// Waits for a child with wait4, returning wall time and peak RSS (KiB).
/// The bench process is small, so the pre-exec copy does not distort it.
fn wait_rss(pid: u32, started: Instant) -> (Duration, i64) {
    let mut status = 0;
    // SAFETY: plain data filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child.
    unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    (started.elapsed(), usage.ru_maxrss)
}

/// A recorded-shape codex stream of about `target` bytes: commands with
/// outputs from a few bytes to 4 MB, many small messages, reasoning, todos.
fn write_stream(path: &Path, target: u64) -> u64 {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut put = |line: String, written: &mut u64| {
        file.write_all(line.as_bytes()).unwrap();
        file.write_all(b"\n").unwrap();
        *written += line.len() as u64 + 1;
    };
    put(
        r#"{"type":"thread.started","thread_id":"01a20bef-77e0-7061-a52a-e86d8a4aaf20"}"#.into(),
        &mut written,
    );
    put(r#"{"type":"turn.started"}"#.into(), &mut written);
    let big = "line of command output with \"quotes\" and \\ escapes\\n".repeat(4_000_000 / 56);
    let mut n = 0u64;
    while written < target {
        n += 1;
        let command = format!(r#"/bin/bash -lc 'cat file{n}'"#);
        put(
            format!(
                r#"{{"type":"item.started","item":{{"id":"item_{n}","type":"command_execution","command":{command:?},"aggregated_output":"","exit_code":null,"status":"in_progress"}}}}"#
            ),
            &mut written,
        );
        let output = if n.is_multiple_of(10) {
            big.as_str()
        } else {
            "short output\\n"
        };
        put(
            format!(
                r#"{{"type":"item.completed","item":{{"id":"item_{n}","type":"command_execution","command":{command:?},"aggregated_output":"{output}","exit_code":0,"status":"completed"}}}}"#
            ),
            &mut written,
        );
        for k in 0..20 {
            put(
                format!(
                    r#"{{"type":"item.completed","item":{{"id":"m{n}_{k}","type":"agent_message","text":"Message {k} about step {n}, with a little text."}}}}"#
                ),
                &mut written,
            );
        }
        put(
            format!(
                r#"{{"type":"item.completed","item":{{"id":"r{n}","type":"reasoning","text":"**Thinking** about step {n}"}}}}"#
            ),
            &mut written,
        );
        put(
            format!(
                r#"{{"type":"item.updated","item":{{"id":"t","type":"todo_list","items":[{{"text":"step {n}","completed":false}}]}}}}"#
            ),
            &mut written,
        );
    }
    put(r#"{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1,"reasoning_output_tokens":0}}"#.into(), &mut written);
    file.flush().unwrap();
    written
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| String::from("unknown CPU"))
}
