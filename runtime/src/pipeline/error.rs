//! Errors of the pipeline steps: what failed a whole file, part or step.
//!
//! A bad *record* is not an error here: it is counted and reported as a
//! [`BadRecord`](super::BadRecord) while the good records around it are kept. These errors
//! are for what stops a step: an unknown or unreadable file, a broken part description, or
//! an output that cannot be written. Each says whether retrying can help, so the Step
//! Functions definition retries only what is retryable (I/O, S3 throttling or network
//! errors, the database).

use std::io;

/// Exit code of a pipeline task for bad input: not retried by Step Functions.
pub const EXIT_BAD_INPUT: u8 = chrono_contract::pipeline::EXIT_BAD_INPUT;
/// Exit code of a pipeline task for a failure that may pass on a retry (I/O, throttling).
pub const EXIT_RETRYABLE: u8 = chrono_contract::pipeline::EXIT_RETRYABLE;
/// Exit code of a pipeline task whose environment is incomplete (`EX_CONFIG`), not retried.
pub const EXIT_CONFIG: u8 = chrono_contract::pipeline::EXIT_CONFIG;

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
    /// An S3 request failed (`retryable` unless the object or bucket does not exist or
    /// access is denied).
    #[error("s3 error while {doing} s3://{bucket}/{key}: {message}")]
    Storage {
        /// What the step was doing.
        doing: &'static str,
        /// The bucket.
        bucket: String,
        /// The object key (or prefix).
        key: String,
        /// What S3 (or the network) said.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
    },
    /// An artifact of an earlier step is missing or does not fit.
    #[error("artifact {key}: {reason}")]
    Artifact {
        /// The object key.
        key: String,
        /// What is wrong; says which step to re-run.
        reason: String,
    },
    /// The evidence is not in the database (or not in the given case).
    #[error(
        "evidence {evidence_id} of case {case_id} is not in the database; register it through the API first"
    )]
    EvidenceNotFound {
        /// The evidence.
        evidence_id: uuid::Uuid,
        /// The case.
        case_id: uuid::Uuid,
    },
    /// A database statement failed (connection, timeout, constraint).
    #[error("database error while {doing}: {source}")]
    Database {
        /// What the step was doing.
        doing: &'static str,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },
    /// The step's environment is incomplete (bucket names, database URL).
    #[error("configuration: {0}")]
    Config(String),
    /// The stored evidence file is not the one uploaded: its SHA-256 differs from the one
    /// declared at upload (or established by an earlier processing). Not retried; nothing
    /// of it is stored.
    #[error(
        "chain of custody: the stored file's SHA-256 is {actual}, not {expected} as recorded at \
         upload; the file changed after upload and is not processed"
    )]
    Custody {
        /// The SHA-256 on record.
        expected: String,
        /// The SHA-256 of the bytes read now.
        actual: String,
    },
    /// The evidence exceeds a processing limit (decompressed size, expansion ratio, record
    /// size, nesting depth). Not retried.
    #[error(
        "{member}: {what} exceeds the limit of {limit}; the evidence is not processed further ({hint})"
    )]
    Limit {
        /// The file or archive member.
        member: String,
        /// What was measured (`decompressed size 1.0 GiB`, ...).
        what: String,
        /// The limit.
        limit: String,
        /// The setting that raises it.
        hint: String,
    },
}

impl PipelineError {
    /// Wraps an I/O error with what the step was doing.
    ///
    /// Errors that mean the data is bad (invalid data, unexpected end) become
    /// [`PipelineError::Corrupt`]; the others stay [`PipelineError::Io`] (retryable).
    pub fn io(doing: &'static str) -> impl FnOnce(io::Error) -> PipelineError {
        move |source| match source.kind() {
            // a bound of [`super::limits`]: its own error when it travelled unchanged
            io::ErrorKind::FileTooLarge => match source
                .get_ref()
                .and_then(|e| e.downcast_ref::<super::limits::Exceeded>())
            {
                Some(e) => e.clone().into(),
                None => PipelineError::Limit {
                    member: "the evidence".into(),
                    what: source.to_string(),
                    limit: "a processing limit".into(),
                    hint: "see the pipeline's limits".into(),
                },
            },
            io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::UnexpectedEof => PipelineError::Corrupt { doing, source },
            _ => PipelineError::Io { doing, source },
        }
    }

    /// Whether running the same step again may succeed (only I/O failures may).
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Io { .. } | PipelineError::Database { .. } => true,
            PipelineError::Storage { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Wraps a database error with what the step was doing.
    pub fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> PipelineError {
        move |source| {
            crate::db::note_error(&source);
            PipelineError::Database { doing, source }
        }
    }

    /// The process exit code a pipeline task ends with for this error.
    pub fn exit_code(&self) -> u8 {
        if matches!(self, PipelineError::Config(_)) {
            EXIT_CONFIG
        } else if self.is_retryable() {
            EXIT_RETRYABLE
        } else {
            EXIT_BAD_INPUT
        }
    }
}
