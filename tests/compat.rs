//! `make compat VERSIONS="…"`: the real-codex suites (end to end, faults,
//! operators) against each codex version, as a table version × case.
//! The Makefile installs each version first; this runs `cargo test` per
//! version with PLEXUM_TEST_CODEX pointing at it.

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
    for version in &versions {
        let launcher = root.join(format!(".codex/{version}/node_modules/.bin/codex"));
        eprintln!("compat: codex {version} …");
        let output = Command::new("cargo")
            .args([
                "test",
                "--test",
                "it",
                "--",
                "e2e::",
                "faults::",
                "operator::",
            ])
            .env("PLEXUM_TEST_CODEX", &launcher)
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
                .insert(version.clone(), verdict.to_string());
        }
        if seen == 0 || !output.status.success() {
            all_passed = false;
            if seen == 0 {
                eprintln!(
                    "compat: no test ran for {version}:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
    let width = table.keys().map(String::len).max().unwrap_or(4);
    print!("{:width$}", "case");
    for version in &versions {
        print!("  {version:>8}");
    }
    println!();
    for (case, verdicts) in &table {
        print!("{case:width$}");
        for version in &versions {
            print!(
                "  {:>8}",
                verdicts.get(version).map(String::as_str).unwrap_or("-")
            );
        }
        println!();
    }
    let verdict = if all_passed { "all green" } else { "FAILURES" };
    println!(
        "{verdict}: {} cases × {} versions",
        table.len(),
        versions.len()
    );
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
