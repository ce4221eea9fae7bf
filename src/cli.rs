//! argv → a [`Command`] value, and the help texts. Records only what was
//! typed: config, environment and defaults are merged later.

use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::prelude::*;

pub const HELP: &str = "\
plexum-openai-provider: runs the OpenAI Codex CLI as a Plexum model backend

Usage:
  plexum-openai-provider turn --workspace DIR [OPTIONS] [--] MESSAGE
  plexum-openai-provider replay [--model ID] [--format F] [--events E] FILE|-
  plexum-openai-provider models [--config FILE]
  plexum-openai-provider doctor [--config FILE] [--workspace DIR] [--json]
  plexum-openai-provider session show|reset --workspace DIR
  plexum-openai-provider --help | --version

Commands:
  turn     run one user turn in a workspace with `codex exec --json`,
           resuming the workspace's codex thread; events on stdout
  replay   translate a recorded codex stream (a --record file) as `turn` would
  models   print the advertised model ids as a JSON array, default first
  doctor   check that a turn would work, and say how to fix what would not
  session  show the workspace's codex thread, or reset it (the next turn
           starts a new thread)

Run `plexum-openai-provider turn --help` for the options of a turn.
";

pub const TURN_HELP: &str = "\
Usage: plexum-openai-provider turn --workspace DIR [OPTIONS] [--] MESSAGE

MESSAGE is the user's text, never an option; give it after `--`. A MESSAGE
of `-` reads the text from stdin (for messages over 128 KiB).

Options:
  --workspace DIR      the agent's workspace (codex's working directory)
  --model ID           a Plexum model id (see `models`); default: the first
  --config FILE        config file (default: $PLEXUM_OPENAI_PROVIDER_CONFIG or
                       ~/.plexum/plugins/plexum-openai-provider/config.json)
  --timeout SECS       stop the turn after SECS seconds (default: timeout_secs)
  --image FILE         attach an image to the message (repeatable)
  --record FILE        append codex's raw stdout to FILE, for `replay`
  --format FORMAT      auto (default), jsonl, or text
  --events SET         all (default), or core: text_delta, message_end, error

Exit status: 0 after message_end, non-zero after error.
";

pub const REPLAY_HELP: &str = "\
Usage: plexum-openai-provider replay [--model ID] [--format F] [--events E] FILE|-

Translates a recorded codex JSONL stream (a `turn --record` file or a
fixture) exactly as `turn` would, without starting codex. `-` reads stdin.
";

pub const DOCTOR_HELP: &str = "\
Usage: plexum-openai-provider doctor [--config FILE] [--workspace DIR] [--json]

Checks the config, which codex would run and its version, codex's login,
the workspace's session, and what a bare systemd PATH would find. Prints a
fix for each problem. Exits 0 when a turn would work, 1 otherwise.
";

pub const SESSION_HELP: &str = "\
Usage: plexum-openai-provider session show|reset --workspace DIR

show   print the workspace's codex thread, its running usage totals and
       whether a turn is running, as JSON
reset  forget the thread: the next turn starts a new one (refused with
       session_busy while a turn runs)
";

pub const MODELS_HELP: &str = "\
Usage: plexum-openai-provider models [--config FILE]

Prints the advertised Plexum model ids as a JSON array, the default first.
";

#[derive(Debug, PartialEq)]
pub enum Command {
    Turn(TurnArgs),
    Replay(ReplayArgs),
    Models {
        config: Option<PathBuf>,
    },
    Doctor(DoctorArgs),
    Session {
        action: SessionAction,
        workspace: PathBuf,
    },
    Help(&'static str),
    Version,
}

#[derive(Debug, Default, PartialEq)]
pub struct TurnArgs {
    pub workspace: Option<PathBuf>,
    pub model: Option<String>,
    pub config: Option<PathBuf>,
    pub timeout_secs: Option<u64>,
    pub images: Vec<PathBuf>,
    pub record: Option<PathBuf>,
    pub output: OutputArgs,
    pub message: Option<MessageArg>,
}

#[derive(Debug, Default, PartialEq)]
pub struct ReplayArgs {
    pub model: Option<String>,
    pub output: OutputArgs,
    pub input: Option<ReplayInput>,
}

#[derive(Debug, Default, PartialEq)]
pub struct DoctorArgs {
    pub config: Option<PathBuf>,
    pub workspace: Option<PathBuf>,
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAction {
    Show,
    Reset,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OutputArgs {
    pub format: Format,
    pub core_events_only: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// `text` on a terminal, `jsonl` otherwise.
    #[default]
    Auto,
    Jsonl,
    Text,
}

#[derive(Debug, PartialEq)]
pub enum MessageArg {
    Text(OsString),
    /// `-`: the message is on stdin.
    Stdin,
}

#[derive(Debug, PartialEq)]
pub enum ReplayInput {
    File(PathBuf),
    Stdin,
}

/// A command line that could not be parsed. `subcommand` is set once `turn`
/// or `replay` was recognised: those runs must still end with an `error`
/// event on stdout.
#[derive(Debug)]
pub struct CliError {
    pub subcommand: Option<&'static str>,
    pub output: OutputArgs,
    pub message: String,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    let mut parser = lexopt::Parser::from_args(args);
    let fail = |subcommand, message: String| CliError {
        subcommand,
        output: OutputArgs::default(),
        message,
    };
    let first = parser.next().map_err(|e| fail(None, e.to_string()))?;
    match first {
        Some(Long("help")) | Some(Short('h')) => Ok(Command::Help(HELP)),
        Some(Long("version")) | Some(Short('V')) => Ok(Command::Version),
        Some(Value(word)) => match word.to_str() {
            Some("turn") => parse_turn(&mut parser),
            Some("replay") => parse_replay(&mut parser),
            Some("models") => parse_models(&mut parser).map_err(|e| fail(None, e)),
            Some("doctor") => parse_doctor(&mut parser).map_err(|e| fail(None, e)),
            Some("session") => parse_session(&mut parser).map_err(|e| fail(None, e)),
            Some("help") => Ok(Command::Help(HELP)),
            _ => Err(fail(
                None,
                format!(
                    "unknown command {:?}: expected turn, replay, models, doctor or session (see --help)",
                    word.to_string_lossy()
                ),
            )),
        },
        Some(other) => Err(fail(
            None,
            format!(
                "{}; expected a command first (see --help)",
                other.unexpected()
            ),
        )),
        None => Err(fail(None, String::from("no command given (see --help)"))),
    }
}

fn parse_turn(parser: &mut lexopt::Parser) -> Result<Command, CliError> {
    let mut args = TurnArgs::default();
    let result = (|| -> Result<Option<Command>, lexopt::Error> {
        while let Some(arg) = parser.next()? {
            match arg {
                Long("workspace") => args.workspace = Some(parser.value()?.into()),
                Long("model") => args.model = Some(parser.value()?.string()?),
                Long("config") => args.config = Some(parser.value()?.into()),
                Long("timeout") => args.timeout_secs = Some(parse_timeout(parser.value()?)?),
                Long("image") => args.images.push(parser.value()?.into()),
                Long("record") => args.record = Some(parser.value()?.into()),
                Long("format") => args.output.format = parse_format(parser.value()?)?,
                Long("events") => args.output.core_events_only = parse_events(parser.value()?)?,
                Long("help") | Short('h') => return Ok(Some(Command::Help(TURN_HELP))),
                Value(message) => {
                    if args.message.is_some() {
                        return Err(
                            "turn takes one MESSAGE; quote it, and put `--` before it".into()
                        );
                    }
                    args.message = Some(if message == "-" {
                        MessageArg::Stdin
                    } else {
                        MessageArg::Text(message)
                    });
                }
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(None)
    })();
    // What is missing is a bad command line too (exit status 2), found
    // before any file is read.
    let result = result.and_then(|help| match (&help, &args.workspace, &args.message) {
        (Some(_), _, _) => Ok(help),
        (None, None, _) => Err("needs --workspace DIR".into()),
        (None, _, None) => Err("needs a MESSAGE (after `--`), or `-` to read it from stdin".into()),
        (None, Some(_), Some(_)) => Ok(None),
    });
    match result {
        Ok(Some(help)) => Ok(help),
        Ok(None) => Ok(Command::Turn(args)),
        Err(error) => Err(CliError {
            subcommand: Some("turn"),
            output: args.output,
            message: format!("turn: {error} (see `turn --help`)"),
        }),
    }
}

fn parse_replay(parser: &mut lexopt::Parser) -> Result<Command, CliError> {
    let mut args = ReplayArgs::default();
    let result = (|| -> Result<Option<Command>, lexopt::Error> {
        while let Some(arg) = parser.next()? {
            match arg {
                Long("model") => args.model = Some(parser.value()?.string()?),
                Long("format") => args.output.format = parse_format(parser.value()?)?,
                Long("events") => args.output.core_events_only = parse_events(parser.value()?)?,
                Long("help") | Short('h') => return Ok(Some(Command::Help(REPLAY_HELP))),
                Value(input) if args.input.is_none() => {
                    args.input = Some(if input == "-" {
                        ReplayInput::Stdin
                    } else {
                        ReplayInput::File(input.into())
                    });
                }
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(None)
    })();
    let result = result.and_then(|help| match (&help, &args.input) {
        (None, None) => Err("needs a FILE (or `-` for stdin)".into()),
        _ => Ok(help),
    });
    match result {
        Ok(Some(help)) => Ok(help),
        Ok(None) => Ok(Command::Replay(args)),
        Err(error) => Err(CliError {
            subcommand: Some("replay"),
            output: args.output,
            message: format!("replay: {error} (see `replay --help`)"),
        }),
    }
}

fn parse_models(parser: &mut lexopt::Parser) -> Result<Command, String> {
    let mut config = None;
    let result = (|| -> Result<Option<Command>, lexopt::Error> {
        while let Some(arg) = parser.next()? {
            match arg {
                Long("config") => config = Some(parser.value()?.into()),
                Long("help") | Short('h') => return Ok(Some(Command::Help(MODELS_HELP))),
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(None)
    })();
    match result {
        Ok(Some(help)) => Ok(help),
        Ok(None) => Ok(Command::Models { config }),
        Err(error) => Err(format!("models: {error}")),
    }
}

fn parse_doctor(parser: &mut lexopt::Parser) -> Result<Command, String> {
    let mut args = DoctorArgs::default();
    let result = (|| -> Result<Option<Command>, lexopt::Error> {
        while let Some(arg) = parser.next()? {
            match arg {
                Long("config") => args.config = Some(parser.value()?.into()),
                Long("workspace") => args.workspace = Some(parser.value()?.into()),
                Long("json") => args.json = true,
                Long("help") | Short('h') => return Ok(Some(Command::Help(DOCTOR_HELP))),
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(None)
    })();
    match result {
        Ok(Some(help)) => Ok(help),
        Ok(None) => Ok(Command::Doctor(args)),
        Err(error) => Err(format!("doctor: {error} (see `doctor --help`)")),
    }
}

fn parse_session(parser: &mut lexopt::Parser) -> Result<Command, String> {
    let mut action = None;
    let mut workspace = None;
    let result = (|| -> Result<Option<Command>, lexopt::Error> {
        while let Some(arg) = parser.next()? {
            match arg {
                Value(word) if action.is_none() => {
                    action = Some(match word.to_str() {
                        Some("show") => SessionAction::Show,
                        Some("reset") => SessionAction::Reset,
                        _ => {
                            return Err(
                                format!("unknown action {word:?}: expected show or reset").into()
                            )
                        }
                    });
                }
                Long("workspace") => workspace = Some(parser.value()?.into()),
                Long("help") | Short('h') => return Ok(Some(Command::Help(SESSION_HELP))),
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(None)
    })();
    match result {
        Ok(Some(help)) => Ok(help),
        Ok(None) => match (action, workspace) {
            (Some(action), Some(workspace)) => Ok(Command::Session { action, workspace }),
            (None, _) => Err(String::from(
                "session: expected show or reset (see `session --help`)",
            )),
            (_, None) => Err(String::from(
                "session: needs --workspace DIR (see `session --help`)",
            )),
        },
        Err(error) => Err(format!("session: {error} (see `session --help`)")),
    }
}

fn parse_timeout(value: OsString) -> Result<u64, lexopt::Error> {
    let text = value.string()?;
    match text.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(secs),
        _ => Err(
            format!("invalid --timeout {text:?}: expected a whole number of seconds above 0")
                .into(),
        ),
    }
}

fn parse_format(value: OsString) -> Result<Format, lexopt::Error> {
    match value.string()?.as_str() {
        "auto" => Ok(Format::Auto),
        "jsonl" => Ok(Format::Jsonl),
        "text" => Ok(Format::Text),
        other => Err(format!("invalid --format {other:?}: expected auto, jsonl or text").into()),
    }
}

fn parse_events(value: OsString) -> Result<bool, lexopt::Error> {
    match value.string()?.as_str() {
        "all" => Ok(false),
        "core" => Ok(true),
        other => Err(format!("invalid --events {other:?}: expected all or core").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Command, CliError> {
        parse(words.iter().map(OsString::from))
    }

    #[test]
    fn message_after_double_dash_is_text_whatever_it_looks_like() {
        for message in [
            "--help",
            "--dangerously-bypass-approvals-and-sandbox",
            "resume",
            "-x",
            "help",
        ] {
            let command = parse_words(&["turn", "--workspace", "w", "--", message]).unwrap();
            let Command::Turn(args) = command else {
                panic!("{message}")
            };
            assert_eq!(
                args.message,
                Some(MessageArg::Text(message.into())),
                "{message}"
            );
        }
    }

    #[test]
    fn dash_means_stdin() {
        let Command::Turn(args) = parse_words(&["turn", "--workspace", "w", "--", "-"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(args.message, Some(MessageArg::Stdin));
    }

    #[test]
    fn bad_turn_arguments_name_the_subcommand() {
        let error = parse_words(&["turn", "--format", "xml", "hi"]).unwrap_err();
        assert_eq!(error.subcommand, Some("turn"));
        assert!(error.message.contains("--format"), "{}", error.message);
        let error = parse_words(&["turn", "--timeout", "0", "hi"]).unwrap_err();
        assert!(error.message.contains("--timeout"), "{}", error.message);
    }

    #[test]
    fn what_is_missing_is_a_bad_command_line() {
        for (words, missing) in [
            (&["turn", "--", "hi"][..], "--workspace"),
            (&["turn", "--workspace", "w"][..], "MESSAGE"),
            (&["replay", "--format", "jsonl"][..], "FILE"),
        ] {
            let error = parse_words(words).unwrap_err();
            assert!(error.subcommand.is_some(), "{words:?}");
            assert!(error.message.contains(missing), "{}", error.message);
        }
        assert!(matches!(
            parse_words(&["turn", "--help"]),
            Ok(Command::Help(TURN_HELP))
        ));
    }

    #[test]
    fn two_messages_are_refused() {
        let error = parse_words(&["turn", "a", "b"]).unwrap_err();
        assert!(error.message.contains("one MESSAGE"));
    }

    /// Every short sequence of interesting words parses or fails, never panics.
    #[test]
    fn short_argument_sequences_never_panic() {
        let words = [
            "turn",
            "replay",
            "models",
            "doctor",
            "session",
            "reset",
            "--json",
            "--workspace",
            "--model",
            "--format",
            "text",
            "-",
            "--",
            "x",
            "--events",
            "-h",
            "--timeout",
            "5",
        ];
        let n = words.len();
        for length in 0..=4u32 {
            for mut index in 0..n.pow(length) {
                let mut argv = Vec::new();
                for _ in 0..length {
                    argv.push(words[index % n]);
                    index /= n;
                }
                let _ = parse_words(&argv);
            }
        }
    }
}
