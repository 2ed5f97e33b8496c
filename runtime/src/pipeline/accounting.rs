//! Accounting of a streaming parse: every record seen becomes either an event or a bad
//! record, so `events + bad_records = records_seen` holds by construction, and the first
//! bad records are kept with their location and reason for the evidence's state.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::error::PipelineError;
use super::event::NormalizedEvent;

/// Where a bad record is in its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Location {
    /// The file within the evidence.
    pub member: String,
    /// Line number in a text member (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Record number or index (EVTX record id, index in a JSON array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// EVTX chunk number in the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u64>,
    /// Byte offset in the (decompressed) member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl Location {
    /// The location of a whole member.
    pub fn member(member: &str) -> Location {
        Location {
            member: member.to_owned(),
            ..Location::default()
        }
    }

    /// A line of a text member.
    pub fn line(member: &str, line: u64) -> Location {
        Location {
            line: Some(line),
            ..Location::member(member)
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.member)?;
        if let Some(chunk) = self.chunk {
            write!(f, " chunk {chunk}")?;
        }
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(record) = self.record {
            write!(f, " record {record}")?;
        }
        if let Some(offset) = self.offset {
            write!(f, " offset {offset:#x}")?;
        }
        Ok(())
    }
}

/// A record that could not be turned into an event: counted, reported, skipped.
///
/// For EVTX a whole chunk that cannot be read counts as one bad record (its records
/// cannot be counted); a damaged record inside a good chunk counts as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRecord {
    /// Where it is.
    pub location: Location,
    /// Why it was rejected, lowercase.
    pub reason: String,
}

impl BadRecord {
    /// A bad record at `location`.
    pub fn new(location: Location, reason: impl Into<String>) -> BadRecord {
        BadRecord {
            location,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

/// What a parser produces for each record it sees.
pub type RecordResult = Result<NormalizedEvent, BadRecord>;

/// Receives the records of a streaming parse, in order.
///
/// Parsers push every record they see into a sink; an `Err` from the sink (typically a
/// failed write of the output) stops the parse.
pub trait RecordSink {
    /// Takes one record.
    fn accept(&mut self, record: RecordResult) -> Result<(), PipelineError>;
}

/// Counts of a parse, and the first bad records.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tally {
    /// Records seen: `events + bad_records`.
    pub records_seen: u64,
    /// Records turned into events.
    pub events: u64,
    /// Records rejected.
    pub bad_records: u64,
    /// The first bad records, at most the limit given to [`Tally::new`].
    pub errors: Vec<BadRecord>,
    /// How many errors the list may hold.
    #[serde(skip)]
    max_errors: usize,
}

impl Tally {
    /// An empty tally keeping the first `max_errors` bad records.
    pub fn new(max_errors: usize) -> Tally {
        Tally {
            max_errors,
            ..Tally::default()
        }
    }

    /// Counts one record; returns the event when it is one.
    pub fn count(&mut self, record: RecordResult) -> Option<NormalizedEvent> {
        self.records_seen += 1;
        match record {
            Ok(event) => {
                self.events += 1;
                Some(event)
            }
            Err(bad) => {
                self.bad_records += 1;
                if self.errors.len() < self.max_errors {
                    self.errors.push(bad);
                }
                None
            }
        }
    }

    /// Whether `events + bad_records = records_seen`.
    pub fn is_balanced(&self) -> bool {
        self.events + self.bad_records == self.records_seen
    }

    /// Adds another tally's counts (and errors, up to this tally's limit).
    pub fn merge(&mut self, other: Tally) {
        self.records_seen += other.records_seen;
        self.events += other.events;
        self.bad_records += other.bad_records;
        let room = self.max_errors.saturating_sub(self.errors.len());
        self.errors.extend(other.errors.into_iter().take(room));
    }
}

/// A sink that only counts, keeping the events in memory (for tests and small inputs).
#[derive(Debug, Default)]
pub struct CollectSink {
    /// The counts.
    pub tally: Tally,
    /// The events, in order.
    pub events: Vec<NormalizedEvent>,
}

impl CollectSink {
    /// An empty sink keeping the first `max_errors` bad records.
    pub fn new(max_errors: usize) -> CollectSink {
        CollectSink {
            tally: Tally::new(max_errors),
            events: Vec::new(),
        }
    }
}

impl RecordSink for CollectSink {
    fn accept(&mut self, record: RecordResult) -> Result<(), PipelineError> {
        if let Some(event) = self.tally.count(record) {
            self.events.push(event);
        }
        Ok(())
    }
}

/// A sink that counts and drops the events (for fuzzing and benchmarks).
#[derive(Debug, Default)]
pub struct CountSink {
    /// The counts.
    pub tally: Tally,
}

impl RecordSink for CountSink {
    fn accept(&mut self, record: RecordResult) -> Result<(), PipelineError> {
        self.tally.count(record);
        Ok(())
    }
}
