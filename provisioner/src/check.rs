//! placeholder
use std::process::ExitCode;
/// x
pub fn run(_a: &crate::cli::ConfigArgs, _o: crate::OutputFormat) -> Result<ExitCode, crate::Error> { Ok(ExitCode::SUCCESS) }
