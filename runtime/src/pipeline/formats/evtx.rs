//! Windows EVTX, read with the `evtx` crate: chunks come out in record order (the crate
//! starts at the chunk holding the oldest records, as Windows does for a log that has
//! wrapped around), each rendered whole to JSON on the crate's thread pool by the renderer
//! `evtx_dump` uses (`chunks_json_bytes`, `#[doc(hidden)]`: the workspace pins evtx
//! exactly). The written time and place of each record come from its header, read from a
//! copy of the chunk bytes the crate reads (`ChunkTee`). Chunks are normalized on worker
//! threads of our own and handed to the caller's sink in order.
//!
//! A chunk that cannot be read (bad magic, truncated) is one bad record located by its
//! chunk number; a damaged record inside a good chunk is one bad record too. The other
//! chunks' records are kept. Exactly the records the crate iterates are counted.
//!
//! A part of a large file is a [`ChunkRange`]: the parser sees a virtual file made of the
//! original file header followed by only those chunks, and reports chunk numbers of the
//! original file.

use evtx::err::EvtxError;
use evtx::{EvtxChunkHeader, EvtxParser, ParserSettings, RenderedChunk, RenderedChunkItem};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, mpsc};
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
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let tee = ChunkTee::new(reader);
    let captured = Arc::clone(&tee.done);
    let settings = ParserSettings::new().num_threads(threads).indent(false);
    let mut parser = EvtxParser::from_read_seek(tee)
        .map_err(|e| PipelineError::Unreadable {
            member: ctx.member.clone(),
            format: "evtx",
            reason: error_chain(&e),
        })?
        .with_configuration(settings);
    let shared = Arc::new(Shared {
        member: ctx.member.clone(),
        evidence_id: ctx.evidence_id,
        first_chunk,
    });
    // The evtx crate is fuzzed upstream; should it still panic on some input, the records
    // before stay counted and the rest of the member is one bad record, not a crash.
    let mut seen = 0u64;
    let walk = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let chunks = parser.chunks_json_bytes(false).map(|rendered| {
            let index = take_index(&captured, &rendered);
            (rendered, index)
        });
        let mut emit = |records: Vec<RecordResult>| -> Result<(), PipelineError> {
            for record in records {
                seen += 1;
                sink.accept(record)?;
            }
            Ok(())
        };
        if threads == 1 {
            for (rendered, index) in chunks {
                emit(normalize_chunk(&rendered, index.as_ref(), &shared))?;
            }
            Ok(())
        } else {
            normalize_in_parallel(chunks, threads, &shared, emit)
        }
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

/// What every record of a member shares.
#[derive(Debug)]
struct Shared {
    member: String,
    evidence_id: Option<Uuid>,
    /// Number in the original file of the first chunk the parser sees.
    first_chunk: u64,
}

/// Where the records of one chunk are, read from its bytes as the evtx crate read them:
/// the parse needs each record's written time and place, which the rendered JSON lacks.
#[derive(Debug, Clone)]
struct ChunkIndex {
    /// The chunk's number in the file the parser sees.
    number: u64,
    /// Whether the chunk is all zeros (the crate skips those without a word).
    empty: bool,
    /// The first record number of the chunk's header (part of each record's dedup key).
    first_number: u64,
    /// Each record in chunk order: its id, FILETIME written and the offset of its header.
    records: Vec<(u64, u64, u32)>,
    /// The chunk's bytes, kept only when the walk over its records stopped short of its
    /// used space (a damaged record): the crate may find records past it, which are then
    /// searched for.
    raw: Option<Vec<u8>>,
}

impl ChunkIndex {
    fn of(number: u64, bytes: &[u8]) -> ChunkIndex {
        let le64 = |at: usize| {
            bytes
                .get(at..at + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        };
        let le32 = |at: usize| {
            bytes
                .get(at..at + 4)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
        };
        let used = (le32(48) as usize).min(bytes.len());
        let mut records = Vec::with_capacity(128);
        let mut pos = CHUNK_HEADER_SIZE;
        while pos < used
            && let Some(h) = bytes.get(pos..pos + RECORD_HEADER_SIZE)
        {
            let size = le32(pos + 4) as usize;
            if &h[..4] != RECORD_MAGIC || size < RECORD_HEADER_SIZE || pos + size > bytes.len() {
                break;
            }
            records.push((le64(pos + 8), le64(pos + 16), pos as u32));
            pos += size;
        }
        ChunkIndex {
            number,
            // Eight bytes at a time: a fifth of a typical log's chunks are zeros.
            empty: bytes
                .chunks(8)
                .all(|w| w.iter().fold(0u8, |acc, b| acc | b) == 0),
            first_number: le64(8),
            records,
            raw: (pos < used).then(|| bytes.to_vec()),
        }
    }
}

/// The index of the chunk `rendered` was rendered from: the crate reads chunks in the
/// order it yields them, skipping all-zero ones and yielding a chunk it cannot read as one
/// failure, so the indexes line up with the rendered chunks.
fn take_index(
    indexes: &Mutex<VecDeque<ChunkIndex>>,
    rendered: &RenderedChunk,
) -> Option<ChunkIndex> {
    let mut queue = indexes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let [RenderedChunkItem::Failed(EvtxError::FailedToParseChunk { chunk_id, .. })] =
        rendered.items.as_slice()
    {
        while queue.front().is_some_and(|index| index.number <= *chunk_id) {
            queue.pop_front();
        }
        return None;
    }
    while let Some(index) = queue.pop_front() {
        if !index.empty {
            return Some(index);
        }
    }
    None
}

/// Normalizes rendered chunks on `threads` worker threads and hands their records to
/// `emit` in chunk order. At most `2 × threads` chunks are in flight: memory stays flat.
fn normalize_in_parallel(
    chunks: impl Iterator<Item = (RenderedChunk, Option<ChunkIndex>)>,
    threads: usize,
    shared: &Arc<Shared>,
    mut emit: impl FnMut(Vec<RecordResult>) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    type Job = (u64, RenderedChunk, Option<ChunkIndex>);
    let (jobs, job_queue) = mpsc::sync_channel::<Job>(threads);
    let job_queue = Arc::new(Mutex::new(job_queue));
    let (results, done) = mpsc::channel::<(u64, Vec<RecordResult>)>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (job_queue, results, shared) =
                (Arc::clone(&job_queue), results.clone(), Arc::clone(shared));
            scope.spawn(move || {
                loop {
                    let job = job_queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv();
                    let Ok((seq, rendered, index)) = job else {
                        return;
                    };
                    let records = normalize_chunk(&rendered, index.as_ref(), &shared);
                    if results.send((seq, records)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(results);
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut sent = 0u64;
        let mut flush = |waiting: &mut BTreeMap<u64, Vec<RecordResult>>,
                         next: &mut u64|
         -> Result<(), PipelineError> {
            while let Some(records) = waiting.remove(next) {
                *next += 1;
                emit(records)?;
            }
            Ok(())
        };
        let mut outcome = Ok(());
        for (rendered, index) in chunks {
            if jobs.send((sent, rendered, index)).is_err() {
                break;
            }
            sent += 1;
            // Keep at most `threads` chunks waiting for an earlier one.
            while sent - next > 2 * threads as u64 {
                match done.recv() {
                    Ok((seq, records)) => {
                        waiting.insert(seq, records);
                    }
                    Err(_) => break,
                }
                if let Err(e) = flush(&mut waiting, &mut next) {
                    outcome = Err(e);
                    break;
                }
            }
            if outcome.is_err() {
                break;
            }
            while let Ok((seq, records)) = done.try_recv() {
                waiting.insert(seq, records);
            }
            if let Err(e) = flush(&mut waiting, &mut next) {
                outcome = Err(e);
                break;
            }
        }
        drop(jobs);
        outcome?;
        for (seq, records) in done.iter() {
            waiting.insert(seq, records);
            flush(&mut waiting, &mut next)?;
        }
        Ok(())
    })
}

/// The records of one rendered chunk, in order: events, and bad records for what the
/// crate could not read or render.
fn normalize_chunk(
    rendered: &RenderedChunk,
    index: Option<&ChunkIndex>,
    shared: &Shared,
) -> Vec<RecordResult> {
    let mut out = Vec::with_capacity(rendered.items.len());
    let chunk_first_id = index.map_or(0, |i| i.first_number);
    let mut start = 0usize;
    let mut cursor = 0;
    for item in &rendered.items {
        match item {
            RenderedChunkItem::Record {
                event_record_id,
                end,
            } => {
                let text = rendered.data.get(start..end.saturating_sub(1));
                start = *end;
                let header = index.and_then(|i| record_header(i, &mut cursor, *event_record_id));
                out.push(build(
                    text.unwrap_or_default(),
                    *event_record_id,
                    header,
                    chunk_first_id,
                    shared,
                ));
            }
            RenderedChunkItem::Failed(e) => {
                out.push(Err(bad_record(e, shared.first_chunk, &shared.member)));
            }
        }
    }
    out
}

const RECORD_MAGIC: &[u8; 4] = b"\x2a\x2a\x00\x00";
const RECORD_HEADER_SIZE: usize = 24;

/// Where a rendered record is in its chunk: (FILETIME written time, offset of its BinXML).
/// Records come in the order the crate walks them, so the next record is almost always the
/// one at `cursor` in the index; past a damaged record, the chunk's bytes are searched.
fn record_header(index: &ChunkIndex, cursor: &mut usize, id: u64) -> Option<(u64, u64)> {
    let found = match index.records.get(*cursor) {
        Some(r) if r.0 == id => Some((*cursor, *r)),
        _ => index
            .records
            .iter()
            .enumerate()
            .find(|(_, r)| r.0 == id)
            .map(|(i, r)| (i, *r)),
    };
    if let Some((i, (_, filetime, pos))) = found {
        *cursor = i + 1;
        return Some((filetime, u64::from(pos) + RECORD_HEADER_SIZE as u64));
    }
    let chunk = index.raw.as_deref()?;
    (CHUNK_HEADER_SIZE..chunk.len().saturating_sub(RECORD_HEADER_SIZE)).find_map(|pos| {
        let h = chunk.get(pos..pos + RECORD_HEADER_SIZE)?;
        (&h[..4] == RECORD_MAGIC && u64::from_le_bytes(h[8..16].try_into().ok()?) == id).then(
            || {
                let filetime = u64::from_le_bytes(h[16..24].try_into().unwrap_or_default());
                (filetime, (pos + RECORD_HEADER_SIZE) as u64)
            },
        )
    })
}

/// Microseconds since the Unix epoch of a FILETIME (100 ns ticks since 1601).
fn filetime_micros(filetime: u64) -> i64 {
    const UNIX_EPOCH_MICROS: i64 = 11_644_473_600_000_000;
    (filetime / 10) as i64 - UNIX_EPOCH_MICROS
}

fn build(
    text: &[u8],
    id: u64,
    header: Option<(u64, u64)>,
    chunk_first_id: u64,
    shared: &Shared,
) -> RecordResult {
    let member = &shared.member;
    let bad = |reason: String| {
        Err(BadRecord::new(
            Location {
                record: Some(id),
                ..Location::member(member)
            },
            reason,
        ))
    };
    let Some((filetime, offset)) = header else {
        return bad("the record's header cannot be found in its chunk".into());
    };
    let Some(ts) = ts_from_micros(filetime_micros(filetime)) else {
        return bad("record time is out of range".into());
    };
    let text = match std::str::from_utf8(text) {
        Ok(t) => t,
        Err(e) => return bad(format!("record renders to invalid utf-8: {e}")),
    };
    // The field scan checks the JSON too (strictly: what it accepts, serde_json accepts);
    // text it does not vouch for (e.g. a `NaN` the renderer wrote) is left to serde_json.
    let (f, checked) = windows::fields_checked(text);
    // Should serde_json's raw-value protocol ever change (the tests of `event` say so), the
    // record is still checked and kept, only slower.
    let attributes = match checked {
        true => Attributes::from_checked_json(text.to_owned())
            .or_else(|_| Attributes::from_json(text.to_owned())),
        false => Attributes::from_json(text.to_owned()),
    };
    let attributes = match attributes {
        Ok(a) => a,
        Err(e) => return bad(format!("record renders to invalid json: {e}")),
    };
    Ok(NormalizedEvent {
        ts,
        timestamp_desc: "Event Recorded".into(),
        data_type: chrono_contract::data_type::WINDOWS_EVTX.into(),
        source: if f.channel.is_empty() {
            f.provider.clone()
        } else {
            f.channel
        },
        parser: "winevtx".into(),
        message: f.message,
        device: f.computer,
        identity: f.identity,
        event_code: f.event_id.map(|i| itoa::Buffer::new().format(i).to_owned()),
        action: f.action.map(|a| a.0),
        outcome: f.action.map(|a| a.1),
        title: f.title.map(Cow::Borrowed),
        category: f.category,
        src_ip: f.src_ip,
        dst_ip: f.dst_ip,
        attributes,
        tags: Vec::new(),
        provenance: Provenance {
            evidence_id: shared.evidence_id,
            member: member.clone(),
            record: id,
            offset: None,
            origin: None,
        },
        // The record id alone can repeat in a dirty log; its chunk and place in it cannot.
        dedup_key: dedup_key(member, &evtx_record_key(id, chunk_first_id, offset)),
    })
}

/// `evtx:{id}:{chunk_first_id}:{offset}`, the record's identity within its member (the
/// text `format!` wrote before: evidence processed then keeps its dedup keys).
fn evtx_record_key(id: u64, chunk_first_id: u64, offset: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let mut key = String::with_capacity(64);
    key.push_str("evtx:");
    key.push_str(digits.format(id));
    key.push(':');
    key.push_str(digits.format(chunk_first_id));
    key.push(':');
    key.push_str(digits.format(offset));
    key
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

/// A reader that indexes every whole chunk read through it, in read order (see
/// [`ChunkIndex`]): the evtx crate reads each chunk once, with one read, on the consumer
/// thread, before rendering it. A chunk that arrives in pieces is put together first.
#[derive(Debug)]
struct ChunkTee<R> {
    inner: R,
    pos: u64,
    /// A chunk arriving in pieces: its number and the bytes so far.
    partial: Option<(u64, Vec<u8>)>,
    done: Arc<Mutex<VecDeque<ChunkIndex>>>,
}

impl<R> ChunkTee<R> {
    fn new(inner: R) -> ChunkTee<R> {
        ChunkTee {
            inner,
            pos: 0,
            partial: None,
            done: Arc::default(),
        }
    }

    fn finished(&self, index: ChunkIndex) {
        self.done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(index);
    }

    /// Takes `bytes`, read at `at` (past the file header, within one chunk).
    fn see(&mut self, at: u64, bytes: &[u8]) {
        let offset = at - FILE_HEADER_SIZE;
        let (number, within) = (offset / CHUNK_SIZE, offset % CHUNK_SIZE);
        if within == 0 && bytes.len() as u64 == CHUNK_SIZE {
            self.partial = None;
            self.finished(ChunkIndex::of(number, bytes));
            return;
        }
        if within == 0 {
            // A new chunk (or only its header, when the crate looks for the oldest one).
            let mut buffer = self.partial.take().map(|(_, b)| b).unwrap_or_default();
            buffer.clear();
            self.partial = Some((number, buffer));
        }
        let whole = match &mut self.partial {
            Some((n, buffer)) if *n == number && buffer.len() as u64 == within => {
                buffer.extend_from_slice(bytes);
                buffer.len() as u64 == CHUNK_SIZE
            }
            _ => {
                self.partial = None;
                false
            }
        };
        if whole && let Some((number, buffer)) = self.partial.take() {
            self.finished(ChunkIndex::of(number, &buffer));
        }
    }
}

impl<R: Read> Read for ChunkTee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut at = self.pos;
        self.pos += n as u64;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if at < FILE_HEADER_SIZE {
                let skip = ((FILE_HEADER_SIZE - at) as usize).min(rest.len());
                (at, rest) = (at + skip as u64, &rest[skip..]);
                continue;
            }
            let left_in_chunk = CHUNK_SIZE - (at - FILE_HEADER_SIZE) % CHUNK_SIZE;
            let take = (left_in_chunk as usize).min(rest.len());
            self.see(at, &rest[..take]);
            (at, rest) = (at + take as u64, &rest[take..]);
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for ChunkTee<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
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

    fn fixture_chunks() -> (Vec<u8>, usize) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/evidence/security.evtx"
        );
        let file = std::fs::read(path).unwrap();
        let chunks = chunk_count(file.len() as u64) as usize;
        (file, chunks)
    }

    fn chunk(file: &[u8], n: usize) -> &[u8] {
        let at = FILE_HEADER_SIZE as usize + n * CHUNK_SIZE as usize;
        &file[at..at + CHUNK_SIZE as usize]
    }

    #[test]
    fn a_healthy_chunk_is_indexed_without_a_copy_and_pieces_index_alike() {
        let (file, chunks) = fixture_chunks();
        assert!(chunks > 1);
        let mut live = 0;
        for n in 0..chunks {
            let index = ChunkIndex::of(n as u64, chunk(&file, n));
            assert!(index.raw.is_none(), "chunk {n} walked to its free space");
            if index.empty {
                // The fixture's last chunks were never written.
                assert!(index.records.is_empty());
                continue;
            }
            live += 1;
            let header = EvtxChunkHeader::from_bytes(chunk(&file, n)).unwrap();
            assert_eq!(
                index.records.len() as u64,
                header.last_event_record_id - header.first_event_record_id + 1
            );
            assert_eq!(index.records[0].0, header.first_event_record_id);
        }
        assert!(live > 1);
        // Read whole, and in odd pieces that straddle the file header and the chunks.
        let whole = indexes_read_with(&file, file.len());
        let pieces = indexes_read_with(&file, 1000);
        assert_eq!(whole.len(), chunks);
        assert_eq!(pieces.len(), chunks);
        for (a, b) in whole.iter().zip(&pieces) {
            assert_eq!((a.number, a.first_number), (b.number, b.first_number));
            assert_eq!(a.records, b.records);
        }
    }

    fn indexes_read_with(file: &[u8], piece: usize) -> Vec<ChunkIndex> {
        let mut tee = ChunkTee::new(io::Cursor::new(file.to_vec()));
        let mut buf = vec![0u8; piece];
        while tee.read(&mut buf).unwrap() > 0 {}
        tee.done.lock().unwrap().iter().cloned().collect()
    }

    #[test]
    fn past_a_damaged_record_the_chunk_is_searched() {
        let (file, _) = fixture_chunks();
        let mut bytes = chunk(&file, 0).to_vec();
        let clean = ChunkIndex::of(0, &bytes);
        let (third_id, third_time, third_at) = clean.records[2];
        // Break the second record's magic: the walk stops there.
        let second_at = clean.records[1].2 as usize;
        bytes[second_at] = 0;
        let damaged = ChunkIndex::of(0, &bytes);
        assert_eq!(damaged.records.len(), 1);
        assert!(damaged.raw.is_some());
        let mut cursor = 1;
        assert_eq!(
            record_header(&damaged, &mut cursor, third_id),
            Some((third_time, u64::from(third_at) + RECORD_HEADER_SIZE as u64))
        );
        assert_eq!(record_header(&damaged, &mut cursor, u64::MAX), None);
        let mut cursor = 0;
        assert_eq!(
            record_header(&clean, &mut cursor, clean.records[0].0).map(|h| h.1),
            Some(u64::from(clean.records[0].2) + RECORD_HEADER_SIZE as u64)
        );
        assert_eq!(cursor, 1);
    }

    #[test]
    fn record_keys_are_the_text_they_always_were() {
        for (id, first, offset) in [(1, 1, 536), (0, 0, 0), (u64::MAX, 4_294_967_296, 65_000)] {
            assert_eq!(
                evtx_record_key(id, first, offset),
                format!("evtx:{id}:{first}:{offset}")
            );
        }
    }

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
