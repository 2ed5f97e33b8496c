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

/// How a command that prints its own findings ended: [`Verdict::Fail`] when it found
/// something wrong (stale templates, a violated rule, a failed stack, drift, an unhealthy
/// component) and has already said so; the command-line layer maps it to exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong.
    Pass,
    /// Something failed or was refused, already reported.
    Fail,
}
