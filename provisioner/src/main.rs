//! `chronoctl` entry point: parse arguments, run the command, print its failure once and
//! exit with the failure's code (README, "Exit codes").

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = chrono_provisioner::Cli::parse();
    match chrono_provisioner::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            f.print(cli.output);
            ExitCode::from(f.exit_code())
        }
    }
}
