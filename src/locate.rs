//! Finding the codex executable: a bare name on PATH or in the usual install
//! places (systemd services see a bare PATH), and the npm launcher replaced
//! by the native binary it ships.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::event::{ErrorCode, TurnError};

/// The executable to run, and the environment the npm launcher would have
/// added when it is bypassed.
#[derive(Debug, Clone, PartialEq)]
pub struct CodexBinary {
    pub path: PathBuf,
    /// The launcher this native binary was found through, if any.
    pub launcher: Option<PathBuf>,
    pub launcher_env: Vec<(String, OsString)>,
}

/// What to do when codex is not found; the end of that error's message.
pub const INSTALL_FIX: &str = "install codex (`npm install -g @openai/codex`) or set `binary` in the config to its absolute path";

/// Where a bare name is looked for after PATH.
pub fn fallback_dirs(home: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = home {
        dirs.push(home.join(".local/bin"));
        if let Some(prefix) = npm_prefix(home) {
            dirs.push(prefix.join("bin"));
        }
        dirs.push(home.join(".npm-global/bin"));
        dirs.push(home.join(".volta/bin"));
        // nvm: every installed Node version, newest name last.
        if let Ok(entries) = std::fs::read_dir(home.join(".nvm/versions/node")) {
            let mut versions: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect();
            versions.sort();
            versions.reverse();
            dirs.extend(versions);
        }
    }
    dirs.push(PathBuf::from("/usr/local/bin"));
    dirs.push(PathBuf::from("/opt/homebrew/bin"));
    dirs.push(PathBuf::from("/usr/bin"));
    dirs
}

/// The npm global prefix a user set in `~/.npmrc` (`prefix=…`); asking npm
/// itself would need `node` on PATH, which a service may not have.
fn npm_prefix(home: &Path) -> Option<PathBuf> {
    let npmrc = std::fs::read_to_string(home.join(".npmrc")).ok()?;
    npmrc.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if key.trim() != "prefix" {
            return None;
        }
        let value = value.trim();
        let path = match value.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => PathBuf::from(value),
        };
        Some(path)
    })
}

/// The PATH codex will run with: the one the config's `env` gives it, else
/// ours. A bare `binary` is looked up on it, so the codex found is the one
/// that codex's own PATH would find.
pub fn codex_path(
    config_env: &std::collections::BTreeMap<String, String>,
    ours: Option<OsString>,
) -> Option<OsString> {
    match config_env.get("PATH") {
        Some(path) => Some(OsString::from(path)),
        None => ours,
    }
}

/// Resolves `binary` (config `binary`) to an executable file, by an
/// absolute path: codex runs in the workspace, and a relative path (or a
/// relative PATH entry) would be looked up there, where anyone may have
/// put a file of that name. A relative `binary` is taken against the
/// adapter's own working directory, once, before anything changes
/// directory; relative PATH entries (and an empty one, which means `.`)
/// are skipped.
pub fn locate(
    binary: &str,
    path_var: Option<OsString>,
    home: Option<&Path>,
) -> Result<CodexBinary, TurnError> {
    let mut tried: Vec<PathBuf> = Vec::new();
    let found = if binary.contains('/') {
        let candidate = match std::env::current_dir() {
            Ok(cwd) => cwd.join(binary),
            Err(_) => PathBuf::from(binary),
        };
        tried.push(candidate.clone());
        (candidate.is_absolute() && is_executable(&candidate)).then_some(candidate)
    } else {
        let mut dirs: Vec<PathBuf> = path_var
            .as_deref()
            .map(|paths| std::env::split_paths(paths).collect())
            .unwrap_or_default();
        dirs.extend(fallback_dirs(home));
        dirs.retain(|dir| dir.is_absolute());
        // PATH often holds the fallback places too: each is tried (and
        // listed) once.
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|dir| seen.insert(dir.clone()));
        dirs.iter().map(|dir| dir.join(binary)).find(|candidate| {
            tried.push(candidate.clone());
            is_executable(candidate)
        })
    };
    let Some(path) = found else {
        let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        return Err(TurnError::new(
            ErrorCode::CodexNotFound,
            format!(
                "codex executable {binary:?} not found or not executable; tried: {}; {INSTALL_FIX}",
                list.join(", ")
            ),
        ));
    };
    Ok(native_for_launcher(&path).unwrap_or(CodexBinary {
        path,
        launcher: None,
        launcher_env: Vec::new(),
    }))
}

/// The native binary the npm launcher (`node_modules/.bin/codex`, a Node
/// script) would run: no Node start per turn, no `node` on PATH, and no
/// launcher process between us and codex's signals.
pub fn native_for_launcher(launcher: &Path) -> Option<CodexBinary> {
    let script = std::fs::canonicalize(launcher).ok()?;
    if script.file_name()? != "codex.js" {
        return None;
    }
    // …/node_modules/@openai/codex/bin/codex.js
    let package_root = script.parent()?.parent()?;
    let (triple, platform_package) = native_target()?;
    let scoped = package_root.parent()?; // …/node_modules/@openai
    let candidates = [
        scoped
            .join(platform_package)
            .join("vendor")
            .join(triple)
            .join("bin/codex"),
        package_root
            .join("node_modules/@openai")
            .join(platform_package)
            .join("vendor")
            .join(triple)
            .join("bin/codex"),
        package_root.join("vendor").join(triple).join("bin/codex"),
        package_root.join("vendor").join(triple).join("codex/codex"),
    ];
    let path = candidates
        .into_iter()
        .find(|candidate| is_executable(candidate))?;
    Some(CodexBinary {
        path,
        launcher: Some(launcher.to_path_buf()),
        launcher_env: vec![
            (String::from("CODEX_MANAGED_BY_NPM"), OsString::from("1")),
            (
                String::from("CODEX_MANAGED_PACKAGE_ROOT"),
                package_root.as_os_str().to_owned(),
            ),
        ],
    })
}

fn native_target() -> Option<(&'static str, &'static str)> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some(("x86_64-unknown-linux-musl", "codex-linux-x64")),
        ("linux", "aarch64") => Some(("aarch64-unknown-linux-musl", "codex-linux-arm64")),
        ("macos", "x86_64") => Some(("x86_64-apple-darwin", "codex-darwin-x64")),
        ("macos", "aarch64") => Some(("aarch64-apple-darwin", "codex-darwin-arm64")),
        _ => None,
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_lists_every_place_tried() {
        let error = locate(
            "codex-surely-missing",
            Some(OsString::from("/nonexistent/a:/nonexistent/b")),
            None,
        )
        .unwrap_err();
        assert_eq!(error.code, ErrorCode::CodexNotFound);
        assert!(error
            .message
            .contains("/nonexistent/a/codex-surely-missing"));
        assert!(error
            .message
            .contains("/usr/local/bin/codex-surely-missing"));
        assert!(error.message.contains("absolute path"));
    }

    #[test]
    fn relative_paths_are_never_left_for_the_workspace_to_resolve() {
        let cwd = std::env::current_dir().unwrap();
        let dir = cwd.join("target/locate-relative");
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("codex-relative");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = locate("target/locate-relative/codex-relative", None, None).unwrap();
        assert_eq!(found.path, script);
        let error = locate(
            "codex-relative",
            Some(OsString::from("target/locate-relative::.")),
            None,
        )
        .unwrap_err();
        assert_eq!(error.code, ErrorCode::CodexNotFound);
        assert!(
            !error.message.contains("target/locate-relative/"),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_ordinary_executable_is_used_as_is() {
        let found = locate("/bin/sh", None, None).unwrap();
        assert_eq!(found.path, PathBuf::from("/bin/sh"));
        assert!(found.launcher.is_none());
    }
}
