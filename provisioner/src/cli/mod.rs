//! Command-line interface of `chronoctl`: the clap tree, the dispatch to the subcommands'
//! thin argument-parsing and printing layers ([`build`], [`deploy`], [`preview`]), and the
//! one error type every subcommand returns, [`Failure`], which carries its exit code.
//!
//! This layer depends inward only (on `synth`, `check`, `build`, `deploy`, `fleet`,
//! `local`, `preview`, `cost`); nothing outside `cli/` imports it.

pub mod build;
pub mod deploy;
pub mod preview;

use clap::{Parser, Subcommand};

pub use crate::output::{OutputFormat, Verdict};
pub use crate::synth::{ConfigArgs, SynthArgs};

/// Provision ChronoTracer customer accounts.
#[derive(Debug, Parser)]
#[command(name = "chronoctl", version, about)]
pub struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write templates/<customer>-<stage>/<stack>.yaml and manifest.json for each config.
    Synth(SynthArgs),
    /// Check the synthesized templates against the policy rules.
    Check(ConfigArgs),
    /// Build the runtime (release, the config's architecture): Lambda zips and the OCI image.
    Build(build::BuildArgs),
    /// Deploy commands (deploy, diff, onboard, destroy, status, outputs, recover).
    #[command(flatten)]
    Deploy(deploy::DeployCommand),
    /// Run the whole platform on this machine (moto + PostgreSQL + runtime processes).
    Local(crate::local::LocalArgs),
    /// Developer previews: up, list, down, gc.
    Preview(preview::PreviewArgs),
    /// Offline estimate of a config's idle monthly cost, per resource, from a price file.
    Cost(crate::cost::CostArgs),
}

/// Why a command did not succeed; its class decides the exit code (README, "Exit codes").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The command ran and something failed or was refused: a stack, an account, a build,
    /// a guard, a moved plan, drift, stale templates, policy violations. Exit 1. `None` when
    /// the command already reported it (its own lines or JSON events).
    Failed(Option<String>),
    /// Bad input (arguments, config, plan or state file) or an unexpected error. Exit 2.
    Usage(String),
    /// Stopped by SIGINT/SIGTERM (change sets deleted, locks released). Exit 130.
    Interrupted(Option<String>),
}

impl Failure {
    /// The process exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Failed(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Interrupted(_) => 130,
        }
    }

    /// The message still to print, if the command has not reported it itself.
    pub fn message(&self) -> Option<&str> {
        match self {
            Failure::Failed(m) | Failure::Interrupted(m) => m.as_deref(),
            Failure::Usage(m) => Some(m),
        }
    }

    /// Prints the message (if any) once: `chronoctl: …` on stderr, or with `--output json`
    /// an `{"event":"error","message":…}` line on stdout.
    pub fn print(&self, output: OutputFormat) {
        let Some(m) = self.message() else { return };
        match output {
            OutputFormat::Json => {
                println!("{}", serde_json::json!({ "event": "error", "message": m }));
            }
            OutputFormat::Text => eprintln!("chronoctl: {m}"),
        }
    }

    /// The result of a command that reports its own findings: a [`Verdict::Fail`] is a
    /// failure already reported (exit 1).
    pub fn from_verdict(verdict: Verdict) -> Result<(), Failure> {
        match verdict {
            Verdict::Pass => Ok(()),
            Verdict::Fail => Err(Failure::Failed(None)),
        }
    }
}

/// Errors of the inner commands (config, synth, files, usage) are bad input: exit 2.
impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Self {
        Failure::Usage(e.to_string())
    }
}

/// Runs a parsed command line; `Ok` is exit 0, a [`Failure`] its own exit code.
pub fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Synth(args) => Failure::from_verdict(crate::synth::run(args, cli.output)?),
        Command::Check(args) => Failure::from_verdict(crate::check::run(args, cli.output)?),
        Command::Build(args) => build::run(args, cli.output),
        Command::Deploy(cmd) => deploy::run(cmd, cli.output),
        Command::Local(args) => Failure::from_verdict(
            crate::local::run(args, cli.output).map_err(|e| Failure::Usage(e.to_string()))?,
        ),
        Command::Preview(args) => preview::run(args, cli.output),
        Command::Cost(args) => Failure::from_verdict(crate::cost::run(args, cli.output)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_class_maps_to_the_readme_exit_code() {
        let table = [
            (Failure::Failed(Some("stack data failed".into())), 1),
            (Failure::Failed(None), 1),
            (Failure::Usage("--config FILE is required".into()), 2),
            (
                Failure::Interrupted(Some("interrupted by SIGINT".into())),
                130,
            ),
            (Failure::Interrupted(None), 130),
        ];
        for (f, code) in table {
            assert_eq!(f.exit_code(), code, "{f:?}");
        }
    }

    #[test]
    fn a_reported_failure_has_no_second_message() {
        assert_eq!(Failure::Failed(None).message(), None);
        assert_eq!(Failure::Usage("bad".into()).message(), Some("bad"));
        assert_eq!(
            Failure::Interrupted(Some("by SIGTERM".into())).message(),
            Some("by SIGTERM")
        );
    }

    #[test]
    fn a_failing_verdict_is_a_failure_already_reported() {
        assert_eq!(Failure::from_verdict(Verdict::Pass), Ok(()));
        assert_eq!(
            Failure::from_verdict(Verdict::Fail),
            Err(Failure::Failed(None))
        );
        assert_eq!(
            Failure::from_verdict(Verdict::Fail)
                .unwrap_err()
                .exit_code(),
            1
        );
    }

    #[test]
    fn inner_errors_are_bad_input() {
        let f: Failure = crate::Error::Usage("--out takes one".into()).into();
        assert_eq!(f.exit_code(), 2);
    }
}
