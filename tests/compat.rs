//! `make compat VERSIONS="…"`: the real-codex suites (end to end, faults,
//! operators, and app-server's own) against each codex version on both
//! transports, as a table case × version/transport. The Makefile installs
//! each version first; this runs `cargo test` per version and transport
//! with PLEXUM_TEST_CODEX and PLEXUM_TEST_TRANSPORT set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let versions: Vec<String> = std::env::args().skip(1).collect();
    if versions.is_empty() {
        eprintln!("usage: compat VERSION...   (make compat VERSIONS=\"0.135.0 0.169.0\")");
        return ExitCode::FAILURE;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // case → version → verdict
    let mut table: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut all_passed = true;
    let mut columns = Vec::new();
    for version in &versions {
        for transport in ["exec", "app-server"] {
            let column = format!(
                "{version}/{}",
                if transport == "exec" { "exec" } else { "as" }
            );
            columns.push(column.clone());
            let launcher = root.join(format!(".codex/{version}/node_modules/.bin/codex"));
            eprintln!("compat: codex {version}, {transport} …");
            let output = Command::new("cargo")
                .args([
                    "test",
                    "--test",
                    "it",
                    "--",
                    "e2e::",
                    "faults::",
                    "operator::",
                    "app_server::",
                ])
                .env("PLEXUM_TEST_CODEX", &launcher)
                .env("PLEXUM_TEST_TRANSPORT", transport)
                .current_dir(&root)
                .output()
                .expect("run cargo test");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let mut seen = 0;
            for line in stdout.lines() {
                let Some(rest) = line.strip_prefix("test ") else {
                    continue;
                };
                let Some((name, verdict)) = rest.rsplit_once(" ... ") else {
                    continue;
                };
                seen += 1;
                let verdict = match verdict {
                    "ok" => "ok",
                    "ignored" => "skip",
                    _ => {
                        all_passed = false;
                        "FAIL"
                    }
                };
                table
                    .entry(name.to_string())
                    .or_default()
                    .insert(column.clone(), verdict.to_string());
            }
            if seen == 0 || !output.status.success() {
                all_passed = false;
                if seen == 0 {
                    eprintln!(
                        "compat: no test ran for {column}:\n{}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            }
        }
    }
    let width = table.keys().map(String::len).max().unwrap_or(4);
    print!("{:width$}", "case");
    for column in &columns {
        print!("  {column:>12}");
    }
    println!();
    for (case, verdicts) in &table {
        print!("{case:width$}");
        for column in &columns {
            print!(
                "  {:>12}",
                verdicts.get(column).map(String::as_str).unwrap_or("-")
            );
        }
        println!();
    }
    let verdict = if all_passed { "all green" } else { "FAILURES" };
    println!(
        "{verdict}: {} cases × {} versions × 2 transports",
        table.len(),
        versions.len()
    );
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
