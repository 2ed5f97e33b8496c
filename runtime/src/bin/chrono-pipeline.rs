//! `chrono-pipeline`: the evidence pipeline's steps as one binary, run by Step Functions as
//! ECS tasks (`split`, `parse`, `upload`, `fail`) and locally on files.
//!
//! Exit codes: 0 done; 65 bad input (not retried); 75 retryable failure; 78 incomplete
//! configuration (not retried).

use std::process::ExitCode;

use clap::Parser;

// Parsing allocates many small strings per record on several threads; mimalloc is
// measurably faster at that than the system allocator (`make bench`, pipeline_evtx).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = chrono_runtime::pipeline::cli::Cli::parse();
    match chrono_runtime::pipeline::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("chrono-pipeline: {}", failure.message);
            ExitCode::from(failure.exit_code)
        }
    }
}
