//! Evidence format parsers. Each reads one member as a stream and pushes every record it
//! sees, as an event or a bad record, into a [`RecordSink`]. Parsers never panic on input
//! and never stop at a bad record; they return `Err` only when the member as a whole cannot
//! be read (or the sink fails).

pub mod cloudtrail;
pub mod evtx;
pub mod generic;
pub mod plaso;
pub mod syslog;
pub mod timesketch;

use chrono::{DateTime, Utc};
use std::io::BufRead;
use uuid::Uuid;

use super::accounting::RecordSink;
use super::detect::Format;
use super::error::PipelineError;

/// What a parser knows about the member it reads.
#[derive(Debug, Clone, Default)]
pub struct MemberContext {
    /// The member's path within the evidence (the evidence's file name for a plain file).
    pub member: String,
    /// The evidence, when known.
    pub evidence_id: Option<Uuid>,
    /// When the member was last written (evidence metadata, archive entry or gzip time):
    /// gives RFC 3164 syslog lines their missing year. Never "now".
    pub reference_time: Option<DateTime<Utc>>,
}

/// Parses a text member of a known format.
///
/// EVTX is not text: use [`evtx::parse`] (it needs to seek).
pub fn parse_text(
    format: Format,
    reader: &mut dyn BufRead,
    ctx: &MemberContext,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    match format {
        Format::Syslog => syslog::parse(reader, ctx, sink),
        Format::TimesketchCsv => timesketch::parse_csv(reader, ctx, sink),
        Format::TimesketchJsonl => timesketch::parse_jsonl(reader, ctx, sink),
        Format::PlasoJsonLine => plaso::parse(reader, ctx, sink),
        Format::CloudTrail => cloudtrail::parse(reader, ctx, sink),
        Format::CloudTrailJsonl => cloudtrail::parse_jsonl(reader, ctx, sink),
        Format::Evtx | Format::Gzip | Format::Zip => Err(PipelineError::Unreadable {
            member: ctx.member.clone(),
            format: format.name(),
            reason: "not a text format (internal routing error)".into(),
        }),
    }
}
