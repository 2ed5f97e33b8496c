//! Command-line interface of `chronoctl` (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// JSON on stdout: one document (synth, check, diff, status, outputs), or one object
    /// per line ending with a summary (deploy, onboard, destroy, recover, fleets).
    Json,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write templates/<customer>-<stage>/<stack>.yaml and manifest.json for each config.
    Synth(SynthArgs),
    /// Check the synthesized templates against the policy rules.
    Check(ConfigArgs),
    /// Build the runtime (release, the config's architecture): Lambda zips and the OCI image.
    Build(crate::cli_build::BuildArgs),
    /// Deploy commands (deploy, diff, onboard, destroy, status, outputs, recover).
    #[command(flatten)]
    Deploy(crate::cli_deploy::DeployCommand),
    /// Run the whole platform on this machine (moto + PostgreSQL + runtime processes).
    Local(crate::local::LocalArgs),
    /// Developer previews: up, list, down, gc.
    Preview(crate::preview::cli::PreviewArgs),
    /// Offline estimate of a config's idle monthly cost, per resource, from a price file.
    Cost(crate::cost::CostArgs),
}

/// Which configs to use.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// A customer config; repeatable. Default: every *.yaml in --customers.
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// Directory of customer configs.
    #[arg(long, default_value = "customers")]
    pub customers: PathBuf,
}

/// `synth` arguments.
#[derive(Debug, Clone, Args)]
pub struct SynthArgs {
    /// Configs.
    #[command(flatten)]
    pub configs: ConfigArgs,
    /// Root of the generated templates.
    #[arg(long, default_value = "templates")]
    pub out: PathBuf,
    /// Write nothing; exit 1 and name the stale files if the templates on disk differ.
    #[arg(long)]
    pub check: bool,
    /// Write nothing; list what synth would write or remove, and exit 0.
    #[arg(long, conflicts_with = "check")]
    pub dry_run: bool,
}
