//! The `exec` transport: `codex exec --json`, its argv, its JSONL event
//! types, and the pure translation of that stream into canonical events.

pub mod argv;
pub mod event;
pub mod translate;
