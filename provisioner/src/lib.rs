//! `chrono-provisioner`: the library behind `chronoctl`.
//!
//! It owns everything that talks to the outside world on behalf of ops: writing
//! templates, policy checks, and CloudFormation deployments. The stack shapes
//! themselves live in `chrono-stacks`.
//!
//! * [`synth`]: `chronoctl synth [--check]`, templates on disk;
//! * [`check`]: `chronoctl check`, policy rules over the synthesized templates;
//! * [`build`]: `chronoctl build`, the runtime's Lambda zips and OCI image;
//! * [`deploy`]: the deploy engine (`deploy`, `diff`, `onboard`, `destroy`, `status`,
//!   `outputs`, `recover`), with [`aws`] for the SDK configuration.
//! * [`local`]: `chronoctl local`, the whole platform on one machine;
//! * [`webapp`]: the web app's `config.json`, written by `local up` and by `deploy`;
//! * [`preview`]: `chronoctl preview up|list|down|gc`, developer previews with an expiry;
//! * [`cost`]: `chronoctl cost`, the idle monthly estimate from the templates and a price file;
//! * [`fleet`]: `chronoctl deploy --all`, one `chronoctl deploy` process per account;
//! * [`cli`]: the clap tree and the thin per-command layers on top of all of the above
//!   (nothing imports it back), with [`Failure`], the one error every command returns and
//!   its exit code; [`exec`] holds the one tokio runtime and the interrupt signal,
//!   [`output`] the `--output` format.

pub mod aws;
pub mod build;
pub mod check;
pub mod cli;
pub mod cost;
pub mod deploy;
pub mod exec;
pub mod fleet;
pub mod local;
pub mod output;
pub mod preview;
pub mod synth;
pub mod webapp;

pub use cli::{Cli, Command, Failure, OutputFormat, run};

use std::path::PathBuf;

use chrono_stacks::config::LoadError;
use chrono_stacks::synth::SynthError;

/// Errors of `chronoctl` commands.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config is invalid or unreadable.
    #[error(transparent)]
    Config(#[from] LoadError),
    /// A stack could not be synthesized.
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// No config was found.
    #[error("no customer configs (*.yaml) in {0}; pass --config <file> or add one")]
    NoConfigs(PathBuf),
    /// Two configs would write the same directory.
    #[error(
        "{first} and {second} both describe {dir}; each customer and stage needs exactly one config"
    )]
    DuplicateTarget {
        /// Template directory.
        dir: String,
        /// First config.
        first: PathBuf,
        /// Second config.
        second: PathBuf,
    },
    /// `chronoctl local` failed.
    #[error(transparent)]
    Local(#[from] local::LocalError),
    /// `chronoctl build` could not start (bad configs, no source tree).
    #[error("{}: {source}", config.display())]
    Build {
        /// The config (or `.` for the source tree).
        config: PathBuf,
        /// Cause.
        source: Box<build::BuildError>,
    },
    /// Arguments that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// The policy engine could not evaluate the rules.
    #[error(
        "policy engine failed on {stack}: {reason}; this is a bug in the rules under provisioner/rules/"
    )]
    Guard {
        /// Stack.
        stack: String,
        /// Cause.
        reason: String,
    },
}
