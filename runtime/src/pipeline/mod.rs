//! The evidence pipeline: real formats in, normalized timeline events out.
//!
//! Layout, from the outside in:
//!
//! * [`steps`] — the stateless steps (`split`, `parse`) as functions over `Read`/`Write`;
//!   the `chrono-pipeline` binary runs them as ECS tasks or locally. The `upload` step
//!   (artifacts → PostgreSQL) is not here yet: it needs the database schema.
//! * [`detect`] — format detection from content; [`formats`] — one streaming parser per
//!   format; [`normalize`] — the rules from source fields to actions, outcomes,
//!   identities.
//! * [`event`] — [`NormalizedEvent`], the row the pipeline writes; [`accounting`] — every
//!   record is an event or a bad record: `events + bad_records = records_seen`.
//!
//! This module never touches the database or AWS; it reads and writes streams.

pub mod accounting;
pub mod cli;
pub mod detect;
pub mod error;
pub mod event;
pub mod formats;
pub mod normalize;
pub mod steps;
pub mod text;

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
