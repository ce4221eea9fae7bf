//! `codex exec --json`'s command line: pure, so every ordering rule is a
//! unit test.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::Sandbox;

/// What codex is asked to do, before it becomes an argv.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest<'a> {
    pub sandbox: Option<Sandbox>,
    pub codex_model: Option<&'a str>,
    pub images: &'a [PathBuf],
    pub extra_args: &'a [String],
    pub resume_thread: Option<&'a str>,
}

/// `codex exec` arguments: every flag before `resume` (codex rejects
/// exec-only flags after it), then `-- -` so the message, read from stdin,
/// can never be taken for a flag or a subcommand.
pub fn exec_args(request: &ExecRequest) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["exec", "--json", "--skip-git-repo-check"]
        .iter()
        .map(OsString::from)
        .collect();
    match request.sandbox.unwrap_or(Sandbox::Bypass) {
        Sandbox::Bypass => args.push("--dangerously-bypass-approvals-and-sandbox".into()),
        sandbox => {
            let mode = match sandbox {
                Sandbox::ReadOnly => "read-only",
                _ => "workspace-write",
            };
            args.extend(["--sandbox".into(), mode.into()]);
            // Nobody is there to approve: codex must never ask.
            args.extend(["-c".into(), "approval_policy=\"never\"".into()]);
        }
    }
    if let Some(model) = request.codex_model {
        args.extend(["--model".into(), model.into()]);
    }
    // `--image=PATH`, one per image: codex's `--image PATH…` is variadic
    // and would take `resume <id>` as two more images (a new thread,
    // silently); the `=` form ends each value. Paths are absolute and
    // comma-free (see `images`).
    for image in request.images {
        let mut arg = OsString::from("--image=");
        arg.push(image.as_os_str());
        args.push(arg);
    }
    args.extend(request.extra_args.iter().map(OsString::from));
    if let Some(thread) = request.resume_thread {
        args.extend(["resume".into(), thread.into()]);
    }
    args.extend(["--".into(), "-".into()]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn new_thread_argv_ends_with_dash_dash_dash() {
        let args = exec_args(&ExecRequest::default());
        assert_eq!(
            words(&args),
            [
                "exec",
                "--json",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                "--",
                "-"
            ]
        );
    }

    #[test]
    fn resume_comes_after_every_flag() {
        let extra = vec![String::from("-c"), String::from("x=1")];
        let images = vec![PathBuf::from("a.png")];
        let args = exec_args(&ExecRequest {
            sandbox: Some(Sandbox::WorkspaceWrite),
            codex_model: Some("gpt-5"),
            images: &images,
            extra_args: &extra,
            resume_thread: Some("01a20bef-77e0-7061-a52a-e86d8a4aaf20"),
        });
        let words = words(&args);
        let resume = words.iter().position(|w| *w == "resume").unwrap();
        assert_eq!(
            &words[resume..],
            ["resume", "01a20bef-77e0-7061-a52a-e86d8a4aaf20", "--", "-"]
        );
        for flag in ["--sandbox", "--model", "--image=a.png", "-c"] {
            assert!(
                words.iter().position(|w| w == &flag).unwrap() < resume,
                "{flag}"
            );
        }
        assert!(!words.contains(&"--image"), "never the variadic form");
        assert!(!words.contains(&"--dangerously-bypass-approvals-and-sandbox"));
    }
}
