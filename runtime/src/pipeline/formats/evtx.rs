//! Windows EVTX, read with the `evtx` crate: chunks are parsed on its thread pool and the
//! records come out in record order (the crate starts at the chunk holding the oldest
//! records, as Windows does for a log that has wrapped around). Records are rendered to
//! JSON and normalized on the worker threads; the caller's sink sees them in order.
//!
//! A chunk that cannot be read (bad magic, truncated) is one bad record located by its
//! chunk number; a damaged record inside a good chunk is one bad record too. The other
//! chunks' records are kept. Exactly the records the crate iterates are counted.
//!
//! A part of a large file is a [`ChunkRange`]: the parser sees a virtual file made of the
//! original file header followed by only those chunks, and reports chunk numbers of the
//! original file.

use evtx::err::EvtxError;
use evtx::{EvtxChunkHeader, EvtxParser, ParserSettings};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use uuid::Uuid;

use super::MemberContext;
use crate::pipeline::accounting::{BadRecord, Location, RecordResult, RecordSink};
use crate::pipeline::error::PipelineError;
use crate::pipeline::event::{Attributes, NormalizedEvent, Provenance, dedup_key, ts_from_micros};
use crate::pipeline::normalize::windows;

/// Size of the EVTX file header block.
pub const FILE_HEADER_SIZE: u64 = 4096;
/// Size of one EVTX chunk.
pub const CHUNK_SIZE: u64 = 65536;
const CHUNK_HEADER_SIZE: usize = 512;

/// A range of chunks of an EVTX file, `start..end`, by chunk number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRange {
    /// First chunk (inclusive).
    pub start: u64,
    /// Last chunk (exclusive).
    pub end: u64,
}

/// The number of whole chunks in an EVTX file of `len` bytes.
pub fn chunk_count(len: u64) -> u64 {
    len.saturating_sub(FILE_HEADER_SIZE) / CHUNK_SIZE
}

/// Cuts an EVTX file into chunk ranges of at most `max_chunks`, in record order: from the
/// chunk holding the oldest records to the end of the file, then from the start.
pub fn record_order_ranges<R: Read + Seek>(
    reader: &mut R,
    max_chunks: u64,
) -> io::Result<Vec<ChunkRange>> {
    let len = reader.seek(SeekFrom::End(0))?;
    let count = chunk_count(len);
    let mut oldest = (u64::MAX, 0);
    let mut header = [0u8; CHUNK_HEADER_SIZE];
    for chunk in 0..count {
        reader.seek(SeekFrom::Start(FILE_HEADER_SIZE + chunk * CHUNK_SIZE))?;
        reader.read_exact(&mut header)?;
        if let Ok(h) = EvtxChunkHeader::from_bytes(&header)
            && h.first_event_record_id <= h.last_event_record_id
            && h.first_event_record_id < oldest.0
        {
            oldest = (h.first_event_record_id, chunk);
        }
    }
    let max = max_chunks.max(1);
    let mut ranges = Vec::new();
    for (from, to) in [(oldest.1, count), (0, oldest.1)] {
        let mut start = from;
        while start < to {
            let end = (start + max).min(to);
            ranges.push(ChunkRange { start, end });
            start = end;
        }
    }
    Ok(ranges)
}

/// Parses an EVTX member (or the chunks `range` of it) with `threads` worker threads
/// (`0`: one per core).
///
/// A file that ends with a partial chunk (a truncated copy) has that tail reported as one
/// bad record: the evtx crate stops at the last whole chunk without a word.
pub fn parse<R: Read + Seek>(
    mut reader: R,
    range: Option<ChunkRange>,
    ctx: &MemberContext,
    threads: usize,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    let len = reader
        .seek(SeekFrom::End(0))
        .and_then(|len| reader.seek(SeekFrom::Start(0)).map(|_| len))
        .map_err(PipelineError::io("reading an evtx file"))?;
    let whole_chunks = chunk_count(len);
    let tail = len.saturating_sub(FILE_HEADER_SIZE) % CHUNK_SIZE;
    let reports_tail = tail > 0 && range.is_none_or(|r| r.end >= whole_chunks);
    match range {
        None => parse_whole(reader, 0, ctx, threads, sink)?,
        Some(range) => {
            let window =
                Window::new(reader, range).map_err(PipelineError::io("reading an evtx file"))?;
            parse_whole(window, range.start, ctx, threads, sink)?
        }
    }
    if reports_tail {
        let at = FILE_HEADER_SIZE + whole_chunks * CHUNK_SIZE;
        sink.accept(Err(BadRecord::new(
            Location {
                chunk: Some(whole_chunks),
                offset: Some(at),
                ..Location::member(&ctx.member)
            },
            format!("the file ends with a partial chunk of {tail} bytes (truncated copy?); its records cannot be read"),
        )))?;
    }
    Ok(())
}

fn parse_whole<R: Read + Seek>(
    reader: R,
    first_chunk: u64,
    ctx: &MemberContext,
    threads: usize,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    let settings = ParserSettings::new().num_threads(threads).indent(false);
    let mut parser = EvtxParser::from_read_seek(reader)
        .map_err(|e| PipelineError::Unreadable {
            member: ctx.member.clone(),
            format: "evtx",
            reason: error_chain(&e),
        })?
        .with_configuration(settings);
    let shared = Arc::new((ctx.member.clone(), ctx.evidence_id));
    let records = parser.serialized_records(move |record| {
        let record = record?;
        let id = record.event_record_id;
        let micros = record.timestamp.as_microsecond();
        let place = (
            record.chunk.header.first_event_record_id,
            record.binxml_offset,
        );
        let rendered = record
            .into_json()
            .map_err(|e| EvtxError::FailedToParseRecord {
                record_id: id,
                source: Box::new(e),
            })?;
        Ok(build(rendered.data, id, micros, place, &shared))
    });
    // The evtx crate is fuzzed upstream; should it still panic on some input, the records
    // before stay counted and the rest of the member is one bad record, not a crash.
    let mut seen = 0u64;
    let walk = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for item in records {
            let result = match item {
                Ok(result) => result,
                Err(e) => Err(bad_record(&e, first_chunk, &ctx.member)),
            };
            seen += 1;
            sink.accept(result)?;
        }
        Ok(())
    }));
    match walk {
        Ok(result) => result,
        Err(_) => sink.accept(Err(BadRecord::new(
            Location::member(&ctx.member),
            format!(
                "the evtx parser failed after {seen} records; the rest of the file cannot be read"
            ),
        ))),
    }
}

fn build(
    record: String,
    id: u64,
    micros: i64,
    place: (u64, u64),
    shared: &(String, Option<Uuid>),
) -> RecordResult {
    let (member, evidence_id) = shared;
    let Some(ts) = ts_from_micros(micros) else {
        return Err(BadRecord::new(
            Location {
                record: Some(id),
                ..Location::member(member)
            },
            "record time is out of range",
        ));
    };
    // Checked first: the field scanner then reads text it knows to be JSON.
    let attributes = match Attributes::from_json(record) {
        Ok(a) => a,
        Err(e) => {
            return Err(BadRecord::new(
                Location {
                    record: Some(id),
                    ..Location::member(member)
                },
                format!("record renders to invalid json: {e}"),
            ));
        }
    };
    let f = windows::fields(attributes.as_str());
    Ok(NormalizedEvent {
        ts,
        timestamp_desc: "Event Recorded".into(),
        data_type: "windows:evtx:record".into(),
        source: if f.channel.is_empty() {
            f.provider.clone()
        } else {
            f.channel
        },
        parser: "winevtx".into(),
        message: f.message,
        device: f.computer,
        identity: f.identity,
        event_code: f.event_id.map(|i| i.to_string()),
        action: f.action.map(|a| a.0),
        outcome: f.action.map(|a| a.1),
        src_ip: f.src_ip,
        dst_ip: f.dst_ip,
        attributes,
        tags: Vec::new(),
        provenance: Provenance {
            evidence_id: *evidence_id,
            member: member.clone(),
            record: id,
            offset: None,
            origin: None,
        },
        // The record id alone can repeat in a dirty log; its chunk and place in it cannot.
        dedup_key: dedup_key(member, &format!("evtx:{id}:{}:{}", place.0, place.1)),
    })
}

fn bad_record(e: &EvtxError, first_chunk: u64, member: &str) -> BadRecord {
    let mut location = Location::member(member);
    let reason = match e {
        EvtxError::FailedToParseChunk { chunk_id, source } => {
            let chunk = first_chunk + chunk_id;
            location.chunk = Some(chunk);
            location.offset = Some(FILE_HEADER_SIZE + chunk * CHUNK_SIZE);
            format!(
                "chunk {chunk} cannot be read, its records are lost: {}",
                error_chain(source.as_ref())
            )
        }
        EvtxError::FailedToReadRecordAt {
            chunk,
            offset,
            source,
        } => {
            let chunk = chunk.map(|c| c + first_chunk);
            location.chunk = chunk;
            location.offset = chunk.map(|c| FILE_HEADER_SIZE + c * CHUNK_SIZE + offset);
            format!(
                "damaged record at offset {offset:#x} of its chunk: {}",
                error_chain(source.as_ref())
            )
        }
        EvtxError::FailedToParseRecord { record_id, source } => {
            location.record = Some(*record_id);
            format!(
                "record cannot be rendered: {}",
                error_chain(source.as_ref())
            )
        }
        other => error_chain(other),
    };
    BadRecord::new(location, reason)
}

/// An error and its sources, lowercase-first, joined with `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = lowercase_first(&e.to_string());
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&lowercase_first(&s.to_string()));
        source = s.source();
    }
    out
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A virtual EVTX file: the original header block followed by chunks `range` only.
#[derive(Debug)]
struct Window<R> {
    inner: R,
    /// Offset of the first chunk of the range in the original file.
    chunks_at: u64,
    /// Length of the virtual file.
    len: u64,
    /// Position in the virtual file.
    pos: u64,
}

impl<R: Read + Seek> Window<R> {
    fn new(mut inner: R, range: ChunkRange) -> io::Result<Window<R>> {
        let real_len = inner.seek(SeekFrom::End(0))?;
        let chunks_at = FILE_HEADER_SIZE + range.start * CHUNK_SIZE;
        let wanted = range.end.saturating_sub(range.start) * CHUNK_SIZE;
        let available = real_len.saturating_sub(chunks_at);
        let len = FILE_HEADER_SIZE.min(real_len) + wanted.min(available);
        Ok(Window {
            inner,
            chunks_at,
            len,
            pos: 0,
        })
    }

    fn real(&self, virtual_pos: u64) -> u64 {
        if virtual_pos < FILE_HEADER_SIZE {
            virtual_pos
        } else {
            self.chunks_at + (virtual_pos - FILE_HEADER_SIZE)
        }
    }
}

impl<R: Read + Seek> Read for Window<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        // Never cross the header/chunks boundary or the end in one read.
        let limit = if self.pos < FILE_HEADER_SIZE {
            FILE_HEADER_SIZE.min(self.len)
        } else {
            self.len
        };
        let n = ((limit - self.pos) as usize).min(buf.len());
        self.inner.seek(SeekFrom::Start(self.real(self.pos)))?;
        let read = self.inner.read(&mut buf[..n])?;
        self.pos += read as u64;
        Ok(read)
    }
}

impl<R: Read + Seek> Seek for Window<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_shows_the_header_then_only_its_chunks() {
        let mut file = vec![b'H'; FILE_HEADER_SIZE as usize];
        for c in 0..4u8 {
            file.extend(std::iter::repeat_n(b'0' + c, CHUNK_SIZE as usize));
        }
        let mut w = Window::new(io::Cursor::new(file), ChunkRange { start: 1, end: 3 }).unwrap();
        let mut all = Vec::new();
        w.read_to_end(&mut all).unwrap();
        assert_eq!(all.len() as u64, FILE_HEADER_SIZE + 2 * CHUNK_SIZE);
        assert_eq!(all[0], b'H');
        assert_eq!(all[FILE_HEADER_SIZE as usize], b'1');
        assert_eq!(*all.last().unwrap(), b'2');
        w.seek(SeekFrom::Start(FILE_HEADER_SIZE + CHUNK_SIZE))
            .unwrap();
        let mut one = [0u8; 1];
        w.read_exact(&mut one).unwrap();
        assert_eq!(one[0], b'2');
    }
}
