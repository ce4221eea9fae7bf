//! The `app-server` transport: `codex app-server` driven over stdio for
//! exactly one turn. `message` types what codex prints, `rpc` holds the
//! JSON-RPC conversation (what to send, when) and writes codex's stdin, and
//! `translate` turns codex's messages into canonical events, purely.

pub mod message;
pub mod rpc;
pub mod translate;
