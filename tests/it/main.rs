//! The integration tests: one binary driving the built executable, with
//! the real codex CLI against a mock Responses server.

#[path = "../support/mock_responses.rs"]
mod mock_responses;
#[path = "../support/rss.rs"]
mod rss;

mod app_server;
mod conversations;
mod e2e;
mod faults;
mod golden;
mod hosts;
mod operator;
mod record;
mod security;
mod support;
