//! Errors of the pipeline steps: what failed a whole file, part or step.
//!
//! A bad *record* is not an error here: it is counted and reported as a
//! [`BadRecord`](super::BadRecord) while the good records around it are kept. These errors
//! are for what stops a step: an unknown or unreadable file, a broken part description, or
//! an output that cannot be written. Each says whether retrying can help, so the Step
//! Functions definition retries only what is retryable.

use std::io;

/// Exit code of a pipeline task for bad input: not retried by Step Functions.
pub const EXIT_BAD_INPUT: u8 = 65;
/// Exit code of a pipeline task for a failure that may pass on a retry (I/O, throttling).
pub const EXIT_RETRYABLE: u8 = 75;
/// Exit code of a pipeline task for a step that is not available in this build.
pub const EXIT_UNAVAILABLE: u8 = 69;

/// Why a pipeline step failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The evidence (or a member of it) is in no format the pipeline reads.
    #[error("{member}: unknown evidence format: {reason}")]
    UnknownFormat {
        /// The file or archive member.
        member: String,
        /// What the content looked like.
        reason: String,
    },
    /// The evidence is in a known format but cannot be read at all.
    #[error("{member}: unreadable {format} file: {reason}")]
    Unreadable {
        /// The file or archive member.
        member: String,
        /// The detected format.
        format: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An archive holds no member the pipeline can read.
    #[error(
        "{member}: the archive holds no readable evidence ({skipped} members skipped); upload the log files themselves or a zip of them"
    )]
    EmptyArchive {
        /// The archive.
        member: String,
        /// How many members were skipped (each with its reason in the manifest).
        skipped: usize,
    },
    /// A part description does not match the evidence it points at.
    #[error("part {part}: {reason}; re-run `split` for this evidence")]
    PartMismatch {
        /// The part id.
        part: String,
        /// What does not match.
        reason: String,
    },
    /// A part description or manifest is not valid JSON of the expected shape.
    #[error("part description is invalid: {0}; re-run `split` for this evidence")]
    InvalidPart(#[source] serde_json::Error),
    /// The data broke off or is corrupt (a truncated or damaged gzip stream, say). Within a
    /// part this becomes a bad record after the records read so far.
    #[error("corrupt data while {doing}: {source}")]
    Corrupt {
        /// What the step was doing.
        doing: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading the evidence or writing an artifact failed.
    #[error("i/o error while {doing}: {source}")]
    Io {
        /// What the step was doing.
        doing: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl PipelineError {
    /// Wraps an I/O error with what the step was doing.
    ///
    /// Errors that mean the data is bad (invalid data, unexpected end) become
    /// [`PipelineError::Corrupt`]; the others stay [`PipelineError::Io`] (retryable).
    pub fn io(doing: &'static str) -> impl FnOnce(io::Error) -> PipelineError {
        move |source| match source.kind() {
            io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::UnexpectedEof => PipelineError::Corrupt { doing, source },
            _ => PipelineError::Io { doing, source },
        }
    }

    /// Whether running the same step again may succeed (only I/O failures may).
    pub fn is_retryable(&self) -> bool {
        matches!(self, PipelineError::Io { .. })
    }

    /// The process exit code a pipeline task ends with for this error.
    pub fn exit_code(&self) -> u8 {
        if self.is_retryable() {
            EXIT_RETRYABLE
        } else {
            EXIT_BAD_INPUT
        }
    }
}
