//! `chronoctl` entry point: parse arguments, call the library, map the result to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = chrono_provisioner::Cli::parse();
    match chrono_provisioner::run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chronoctl: {e}");
            ExitCode::from(2)
        }
    }
}
