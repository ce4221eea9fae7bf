//! The config file (PROTOCOL.md section 6): strict, so a typo is an error
//! and never a silent fallback; and the model table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::event::{ErrorCode, TurnError};

pub const CONFIG_ENV: &str = "PLEXUM_OPENAI_PROVIDER_CONFIG";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub binary: String,
    pub extra_args: Vec<String>,
    pub supported_models: Vec<String>,
    pub model_args: BTreeMap<String, String>,
    pub timeout_secs: u64,
    pub env: BTreeMap<String, String>,
    pub sandbox: Sandbox,
    pub transport: Transport,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            binary: String::from("codex"),
            extra_args: Vec::new(),
            supported_models: vec![String::from("codex")],
            model_args: BTreeMap::new(),
            timeout_secs: 1800,
            env: BTreeMap::new(),
            sandbox: Sandbox::Bypass,
            transport: Transport::Exec,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sandbox {
    /// `--dangerously-bypass-approvals-and-sandbox`, as v0.1: for hosts that
    /// isolate the workspace themselves.
    Bypass,
    WorkspaceWrite,
    ReadOnly,
}

/// How codex is driven for a turn (PROTOCOL.md section 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// `codex exec --json`: each agent message when it is complete.
    Exec,
    /// `codex app-server` on stdio: the reply streamed as the model writes it.
    AppServer,
}

/// Where the config came from, for messages.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigSource {
    /// The default path did not exist: all defaults.
    Defaults(PathBuf),
    File(PathBuf),
}

/// The Plexum model a turn runs, and the `--model` value codex gets.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelChoice {
    pub plexum_id: String,
    pub codex_model: Option<String>,
}

impl Config {
    /// Loads from `--config`, else `$PLEXUM_OPENAI_PROVIDER_CONFIG`, else the
    /// default path, which may be missing.
    pub fn load(
        explicit: Option<&Path>,
        env_path: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> Result<(Config, ConfigSource), TurnError> {
        let (path, must_exist) = match (explicit, env_path) {
            (Some(path), _) => (path.to_path_buf(), true),
            (None, Some(path)) => (path, true),
            (None, None) => match home {
                Some(home) => (
                    home.join(".plexum/plugins/plexum-openai-provider/config.json"),
                    false,
                ),
                None => return Ok((Config::default(), ConfigSource::Defaults(PathBuf::new()))),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok((Config::default(), ConfigSource::Defaults(path)));
            }
            Err(error) => {
                return Err(TurnError::new(
                    ErrorCode::Config,
                    format!("cannot read config file {}: {error}", path.display()),
                ));
            }
        };
        let config = Config::parse(&text).map_err(|message| {
            TurnError::new(
                ErrorCode::Config,
                format!("config file {}: {message}", path.display()),
            )
        })?;
        Ok((config, ConfigSource::File(path)))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if config.supported_models.is_empty() {
            return Err(String::from(
                "`supported_models` is empty: list at least one model id (the first is the default)",
            ));
        }
        if config.timeout_secs == 0 {
            return Err(String::from("`timeout_secs` must be above 0"));
        }
        if config.binary.is_empty() {
            return Err(String::from("`binary` is empty: name the codex executable"));
        }
        // Codex would read such a `--model` value as a flag (or none at all).
        let ids = config
            .supported_models
            .iter()
            .map(|id| ("supported_models", id));
        let mapped = config.model_args.values().map(|id| ("model_args", id));
        if let Some((field, id)) = ids
            .chain(mapped)
            .find(|(_, id)| id.trim().is_empty() || id.starts_with('-'))
        {
            return Err(format!(
                "`{field}` holds the model id {id:?}: a model id must not be empty or start with `-`"
            ));
        }
        // The process environment cannot carry these: codex could not start.
        for (key, value) in &config.env {
            if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                return Err(format!(
                    "`env` entry {key:?} cannot be passed to codex: a name must be non-empty without `=` or NUL, a value without NUL"
                ));
            }
        }
        if config.binary.contains('\0') {
            return Err(String::from("`binary` holds a NUL character"));
        }
        if let Some(argument) = sandbox_argument(&config.extra_args) {
            return Err(format!(
                "`extra_args` holds {argument:?}, which sets how codex may act (its sandbox or \
                 approval policy); `sandbox` is the one place that decides: remove it from \
                 `extra_args` and set `sandbox` to \"bypass\", \"workspace-write\" or \"read-only\""
            ));
        }
        Ok(config)
    }

    /// Resolves `--model` against the advertised ids.
    pub fn model(&self, requested: Option<&str>) -> Result<ModelChoice, TurnError> {
        let plexum_id = match requested {
            None => self.supported_models[0].clone(),
            Some(id) if self.supported_models.iter().any(|m| m == id) => id.to_string(),
            Some(id) => {
                return Err(TurnError::new(
                    ErrorCode::UnknownModel,
                    format!(
                        "model {id:?} is not advertised; use one of: {} (or add it to `supported_models` in the config)",
                        self.supported_models.join(", ")
                    ),
                ));
            }
        };
        let codex_model = match self.model_args.get(&plexum_id) {
            Some(mapped) => Some(mapped.clone()),
            // `codex` means the CLI's own default: the only model ChatGPT-login
            // installs accept.
            None if plexum_id == "codex" => None,
            None => Some(plexum_id.clone()),
        };
        Ok(ModelChoice {
            plexum_id,
            codex_model,
        })
    }
}

/// Codex flags that choose the sandbox or the approval policy, or bypass
/// both (`--yolo` is a hidden alias of the bypass; `-a` is the TUI's).
const SANDBOX_FLAGS: &[&str] = &[
    "-s",
    "--sandbox",
    "--full-auto",
    "--yolo",
    "--approve-for-me",
    "-a",
    "--ask-for-approval",
];

/// Config keys (`-c KEY=VALUE`) that do the same; also under a profile
/// (`profiles.NAME.sandbox_mode`). `default_permissions` picks a newer
/// codex's permission profile, which is its sandbox.
const SANDBOX_KEYS: &[&str] = &["sandbox_mode", "approval_policy", "default_permissions"];

/// The first of `extra_args` that would set the sandbox or the approval
/// policy, in any spelling codex accepts: `--flag VALUE`, `--flag=VALUE`,
/// `-sVALUE`, `-c KEY=V`, `-cKEY=V`, `-c=KEY=V`, `--config=KEY=V`.
fn sandbox_argument(extra_args: &[String]) -> Option<String> {
    let mut args = extra_args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with('-') => (flag, Some(value)),
            _ => (arg.as_str(), None),
        };
        if flag.starts_with("--dangerously-") || SANDBOX_FLAGS.contains(&flag) {
            let takes_value = matches!(flag, "-s" | "--sandbox" | "-a" | "--ask-for-approval");
            return Some(match args.next() {
                Some(value) if takes_value && inline.is_none() => format!("{arg} {value}"),
                _ => arg.clone(),
            });
        }
        // A short flag with its value attached: `-sread-only`.
        let short = flag.get(..2).filter(|_| !flag.starts_with("--"));
        if short.is_some_and(|short| flag.len() > 2 && SANDBOX_FLAGS.contains(&short)) {
            return Some(arg.clone());
        }
        let setting = match (flag, inline) {
            ("-c" | "--config", Some(setting)) => Some(setting.to_string()),
            ("-c" | "--config", None) => match args.next() {
                Some(setting) if sets_sandbox(setting) => {
                    return Some(format!("{arg} {setting}"));
                }
                _ => None,
            },
            (short, _) if short.starts_with("-c") && !short.starts_with("--") => {
                Some(arg[2..].to_string())
            }
            _ => None,
        };
        if setting.is_some_and(|setting| sets_sandbox(&setting)) {
            return Some(arg.clone());
        }
    }
    None
}

/// Whether a `-c` setting `KEY=VALUE` sets one of `SANDBOX_KEYS`. The key
/// is a TOML dotted key: segments may be quoted and spaced.
fn sets_sandbox(setting: &str) -> bool {
    let key = setting.split('=').next().unwrap_or_default();
    let last = key.rsplit('.').next().unwrap_or_default();
    let last = last.trim().trim_matches(|c| c == '"' || c == '\'');
    SANDBOX_KEYS.contains(&last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make install` copies this file; it must stay valid and say the defaults.
    #[test]
    fn the_example_config_is_the_defaults() {
        let config = Config::parse(include_str!("config.example.json")).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn defaults_when_empty() {
        let config = Config::parse("{}").unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn unknown_field_is_named() {
        let error = Config::parse(r#"{"timeout_sec": 5}"#).unwrap_err();
        assert!(error.contains("timeout_sec"), "{error}");
    }

    #[test]
    fn sandbox_typo_is_an_error_not_bypass() {
        let error = Config::parse(r#"{"sandbox": "workspace_write"}"#).unwrap_err();
        assert!(error.contains("workspace_write"), "{error}");
        let config = Config::parse(r#"{"sandbox": "read-only"}"#).unwrap();
        assert_eq!(config.sandbox, Sandbox::ReadOnly);
    }

    /// Finding 13 of issue 10.
    #[test]
    fn odd_model_ids_and_env_entries_are_config_errors() {
        for text in [
            r#"{"supported_models": ["codex", ""]}"#,
            r#"{"supported_models": ["-m"]}"#,
            r#"{"model_args": {"codex": "--yolo"}}"#,
            r#"{"env": {"CODEX_HOME": "/a\u0000b"}}"#,
            r#"{"env": {"A=B": "x"}}"#,
            r#"{"env": {"": "x"}}"#,
        ] {
            assert!(Config::parse(text).is_err(), "{text}");
        }
        let error = Config::parse(r#"{"env": {"X": "\u0000"}}"#).unwrap_err();
        assert!(error.contains("`env`"), "{error}");
    }

    #[test]
    fn transport_is_exec_or_app_server() {
        let config = Config::parse(r#"{"transport": "app-server"}"#).unwrap();
        assert_eq!(config.transport, Transport::AppServer);
        let error = Config::parse(r#"{"transport": "appserver"}"#).unwrap_err();
        assert!(error.contains("appserver"), "{error}");
    }

    #[test]
    fn extra_args_that_set_the_sandbox_are_an_error_naming_them() {
        let refused: &[&[&str]] = &[
            &["--sandbox", "read-only"],
            &["--sandbox=danger-full-access"],
            &["-s", "workspace-write"],
            &["-sread-only"],
            &["-s=read-only"],
            &["--full-auto"],
            &["--yolo"],
            &["--approve-for-me"],
            &["--dangerously-bypass-approvals-and-sandbox"],
            &["--dangerously-bypass-hook-trust"],
            &["-a", "never"],
            &["--ask-for-approval=never"],
            &["-c", "sandbox_mode=\"danger-full-access\""],
            &["-c", "approval_policy=never"],
            &["-c", " \"sandbox_mode\" = 'read-only'"],
            &["-c", "profiles.work.approval_policy=never"],
            &["-c", "default_permissions=full"],
            &["--config", "sandbox_mode=read-only"],
            &["--config=approval_policy=never"],
            &["-csandbox_mode=read-only"],
            &["-c=sandbox_mode=read-only"],
            &["--model", "x", "-c", "sandbox_mode=read-only"],
        ];
        for args in refused {
            let extra: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let argument = sandbox_argument(&extra).unwrap_or_else(|| panic!("{args:?}"));
            assert!(
                extra.iter().any(|a| argument.contains(a.as_str())),
                "{argument}"
            );
            let json = serde_json::json!({ "extra_args": args }).to_string();
            let error = Config::parse(&json).unwrap_err();
            assert!(
                error.contains(&format!("{argument:?}")) && error.contains("`sandbox`"),
                "{args:?}: {error}"
            );
        }
        let allowed: &[&[&str]] = &[
            &["-c", "model_reasoning_effort=high"],
            &["-c", "sandbox_workspace_write.network_access=true"],
            &["--add-dir", "/srv/shared"],
            &["-m", "gpt-5", "--color", "never"],
            &["-c", "shell_environment_policy.inherit=all"],
        ];
        for args in allowed {
            let json = serde_json::json!({ "extra_args": args }).to_string();
            assert!(Config::parse(&json).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn ill_typed_field_is_an_error() {
        let error = Config::parse(r#"{"timeout_secs": "10"}"#).unwrap_err();
        assert!(error.contains("invalid type"), "{error}");
    }

    #[test]
    fn model_table() {
        let config = Config::parse(
            r#"{"supported_models": ["codex", "gpt-fast", "o-big"], "model_args": {"gpt-fast": "gpt-5-mini"}}"#,
        )
        .unwrap();
        assert_eq!(config.model(None).unwrap().codex_model, None);
        assert_eq!(
            config
                .model(Some("gpt-fast"))
                .unwrap()
                .codex_model
                .as_deref(),
            Some("gpt-5-mini")
        );
        assert_eq!(
            config.model(Some("o-big")).unwrap().codex_model.as_deref(),
            Some("o-big")
        );
        let error = config.model(Some("nope")).unwrap_err();
        assert_eq!(error.code, ErrorCode::UnknownModel);
        assert!(error.message.contains("codex, gpt-fast, o-big"));
    }

    #[test]
    fn missing_default_file_means_defaults_but_missing_explicit_file_is_an_error() {
        let home = std::env::temp_dir().join("plexum-no-such-home");
        let (config, source) = Config::load(None, None, Some(home)).unwrap();
        assert_eq!(config, Config::default());
        assert!(matches!(source, ConfigSource::Defaults(_)));
        let error =
            Config::load(Some(Path::new("/nonexistent/config.json")), None, None).unwrap_err();
        assert_eq!(error.code, ErrorCode::Config);
    }
}
