//! The output format every `chronoctl` command honours (`--output text|json`).

use clap::ValueEnum;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// JSON on stdout: one document (synth, check, diff, status, outputs), or one object
    /// per line ending with a summary (deploy, onboard, destroy, recover, fleets).
    Json,
}
