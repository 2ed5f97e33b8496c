//! The evidence pipeline: real formats in, normalized timeline events out.
//!
//! Layout, from the outside in:
//!
//! * [`jobs`] — the steps as the state machine runs them: `split` and `parse` from S3 to
//!   S3, `upload` from S3 to PostgreSQL; [`cli`] — the `chrono-pipeline` binary's command
//!   line over them; [`worker`] — the same steps in-process for local mode; [`failure`] —
//!   the end of the state machine's failure path (run by the API function).
//! * [`steps`] — `split` and `parse` as functions over `Read`/`Write`; [`upload`] — the
//!   database side of `upload` (`COPY` batches, idempotent, evidence counts and state).
//! * [`detect`] — format detection from content; [`formats`] — one streaming parser per
//!   format; [`normalize`] — the rules from source fields to actions, outcomes,
//!   identities.
//! * [`event`] — [`NormalizedEvent`], the row the pipeline writes; [`accounting`] — every
//!   record is an event or a bad record: `events + bad_records = records_seen`.
//!
//! Only [`upload`] (and [`worker`] and [`failure`], which mark failed evidence) touches the database;
//! only [`jobs`] touches S3; everything below them reads and writes streams.

pub mod accounting;
pub mod cli;
pub mod detect;
pub mod error;
pub mod event;
pub mod failure;
pub mod formats;
pub mod jobs;
pub mod limits;
pub mod normalize;
pub mod steps;
pub mod text;
pub mod upload;
pub mod worker;

pub use accounting::{
    BadRecord, CollectSink, CountSink, Location, RecordResult, RecordSink, Tally,
};
pub use detect::Format;
pub use error::PipelineError;
pub use event::{Identity, IdentityKind, NormalizedEvent, Provenance};
pub use steps::{
    ParseOptions, PartSpec, PartSummary, PartsManifest, SkippedMember, SplitOptions,
    parse_evidence, parse_part, parse_to_writer, split,
};
