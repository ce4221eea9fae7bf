//! The executable: everything lives in the library.

fn main() -> std::process::ExitCode {
    plexum_openai_provider::run()
}
