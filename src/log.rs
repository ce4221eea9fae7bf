//! Logs for people, on stderr only. `PLEXUM_LOG` = error, warn (default),
//! info or debug.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

static LEVEL: OnceLock<Level> = OnceLock::new();

pub fn level() -> Level {
    *LEVEL.get_or_init(|| match std::env::var("PLEXUM_LOG").as_deref() {
        Ok("error") => Level::Error,
        Ok("info") => Level::Info,
        Ok("debug") => Level::Debug,
        _ => Level::Warn,
    })
}

pub fn enabled(at: Level) -> bool {
    at <= level()
}

/// A plain message for the person at the terminal, on stderr. Never
/// panics: a closed stderr must not turn a good turn into a failed one.
/// Messages quote what the workspace and codex hold (file contents in
/// reasons, codex's words): control characters are shown, not sent.
pub fn say(message: std::fmt::Arguments) {
    use std::io::Write;
    let message = message.to_string();
    let _ = writeln!(
        std::io::stderr().lock(),
        "plexum-openai-provider: {}",
        crate::output::visible(&message)
    );
}

pub fn write(at: Level, message: std::fmt::Arguments) {
    use std::io::Write;
    if enabled(at) {
        let tag = match at {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        };
        let message = message.to_string();
        let _ = writeln!(
            std::io::stderr().lock(),
            "plexum-openai-provider {tag}: {}",
            crate::output::visible(&message)
        );
    }
}

macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($arg)*)) };
}
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*)) };
}
pub(crate) use {debug, info, warning};
