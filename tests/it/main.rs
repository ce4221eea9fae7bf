//! The integration tests: one binary driving the built executable.

#[path = "../support/mock_responses.rs"]
mod mock_responses;
