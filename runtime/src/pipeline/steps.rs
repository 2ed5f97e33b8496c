//! The pipeline's stateless steps as library functions over `Read`/`Write`:
//!
//! * [`split`]: evidence → a [`PartsManifest`]: one part per readable archive member, and
//!   per range of chunks for large EVTX files (in record order). Nothing is copied: a part
//!   names the member (and chunk range) in the evidence.
//! * [`parse_part`]: one part → normalized events as gzip-compressed JSON lines, and a
//!   [`PartSummary`] with the counts.
//!
//! Artifacts, under one prefix per evidence (a directory locally, a key prefix in the
//! artifacts bucket): `manifest.json` (the [`PartsManifest`]; Step Functions maps over its
//! `parts`), `parts/<part>.json` (one [`PartSpec`]; `parse --part` takes its key),
//! `events/<part>.jsonl.gz` (gzip JSON lines, one [`NormalizedEvent`] a line) and
//! `events/<part>.summary.json` (the [`PartSummary`]). Files are written under a temporary
//! name and renamed, so a retried task never leaves half a file behind. In the artifacts
//! bucket the prefix is `evidence/<evidence id>/`, and `parts.json` (what the state
//! machine maps over) lists the part keys; see [`super::jobs`].
//!
//! Containers: the evidence may be a zip (members read one by one, streaming), gzip
//! (unpacked on the fly, also inside zips), or a plain file. Members are detected by
//! content. Unknown members of an archive are listed in the manifest's `skipped` with
//! their reason (not silently dropped) and do not fail the evidence; an archive with no
//! readable member, or an unknown plain file, fails it. EVTX needs to seek: a compressed
//! EVTX member is spooled to an anonymous temporary file first (disk, not memory).

use chrono::{DateTime, TimeZone, Utc};
use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::sync::mpsc;
use uuid::Uuid;

use super::accounting::{BadRecord, Location, RecordResult, RecordSink, Tally};
use super::detect::{Format, SNIFF_LEN, peek, sniff};
use super::error::PipelineError;
use super::event::NormalizedEvent;
use super::formats::{self, MemberContext, evtx};
use super::limits::{Bounded, Compressed, Counting, Deadline, Limits, Timed};

/// Default number of EVTX chunks (64 KiB each) in one part: 16 MiB.
pub const DEFAULT_EVTX_CHUNKS_PER_PART: u64 = 256;
/// Default number of bad records kept with their location per part.
pub const DEFAULT_MAX_ERRORS: usize = 100;
const MAX_GZIP_LAYERS: usize = 3;

/// What `split` is told about the evidence.
#[derive(Debug, Clone)]
pub struct SplitOptions {
    /// The evidence's file name or object key (names plain-file members).
    pub source_name: String,
    /// The evidence, when known.
    pub evidence_id: Option<Uuid>,
    /// When the evidence was collected or last written (for RFC 3164 years); members with
    /// their own time (zip entry, gzip header) use that instead.
    pub reference_time: Option<DateTime<Utc>>,
    /// EVTX chunks per part.
    pub evtx_chunks_per_part: u64,
    /// Bounds on unpacking ([`super::limits`]).
    pub limits: Limits,
}

impl SplitOptions {
    /// Options for an evidence named `source_name`, with the defaults.
    pub fn new(source_name: impl Into<String>) -> SplitOptions {
        SplitOptions {
            source_name: source_name.into(),
            evidence_id: None,
            reference_time: None,
            evtx_chunks_per_part: DEFAULT_EVTX_CHUNKS_PER_PART,
            limits: Limits::default(),
        }
    }
}

/// One unit of work for `parse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSpec {
    /// Part id, unique in the manifest (`part-00001`).
    pub id: String,
    /// Where `split` wrote this description, relative to the manifest (`parts/part-00001.json`).
    pub key: String,
    /// The evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<Uuid>,
    /// The evidence's file name or object key.
    pub source: String,
    /// The member's path within the evidence (provenance of its events).
    pub member: String,
    /// The member's entry index, when the evidence is a zip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_index: Option<usize>,
    /// Whether the member is gzip-compressed (inside any zip).
    #[serde(default)]
    pub gzip: bool,
    /// The member's format (after unpacking).
    pub format: Format,
    /// For EVTX parts of a larger file: the chunks of this part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<evtx::ChunkRange>,
    /// The member's reference time (RFC 3164 years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_time: Option<DateTime<Utc>>,
}

/// An archive member that is not processed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedMember {
    /// The member's path.
    pub member: String,
    /// Why it is skipped.
    pub reason: String,
}

/// What `split` produces: the parts of one evidence, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsManifest {
    /// The evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<Uuid>,
    /// The evidence's file name or object key.
    pub source: String,
    /// The format of the evidence itself (`zip`, `gzip`, `evtx`, …).
    pub format: Format,
    /// The parts.
    pub parts: Vec<PartSpec>,
    /// Archive members not processed.
    #[serde(default)]
    pub skipped: Vec<SkippedMember>,
}

/// `source` under its processing-time budget ([`Limits::deadline`]), and that deadline.
fn timed<R: Read + Seek>(
    mut source: R,
    member: &str,
    limits: &Limits,
) -> Result<Timed<R>, PipelineError> {
    let stored = source
        .seek(SeekFrom::End(0))
        .map_err(PipelineError::io("reading the evidence"))?;
    Ok(Timed::new(source, limits.deadline(member, stored)))
}

/// Splits an evidence into parts.
pub fn split<R: Read + Seek>(
    source: R,
    opts: &SplitOptions,
) -> Result<PartsManifest, PipelineError> {
    let name = opts.source_name.clone();
    let mut source = timed(source, &name, &opts.limits)?;
    let io_err = PipelineError::io("reading the evidence");
    source.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut head = Vec::new();
    (&mut source)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)
        .map_err(PipelineError::io("reading the evidence"))?;
    source
        .seek(SeekFrom::Start(0))
        .map_err(PipelineError::io("reading the evidence"))?;
    let format = sniff(&head).map_err(|reason| PipelineError::UnknownFormat {
        member: name.clone(),
        reason,
    })?;
    let mut builder = ManifestBuilder::new(opts, format);
    match format {
        Format::Zip => split_zip(source, opts, &mut builder)?,
        Format::Evtx => {
            let ranges = evtx::record_order_ranges(&mut source, opts.evtx_chunks_per_part)
                .map_err(PipelineError::io("reading an evtx file"))?;
            // A file that fits in one part is parsed whole (the evtx crate orders its chunks).
            let chunks: u64 = ranges.iter().map(|r| r.end - r.start).sum();
            let whole = chunks <= opts.evtx_chunks_per_part.max(1);
            let base = Member {
                name: name.clone(),
                zip_index: None,
                gzip: false,
                format,
                reference_time: opts.reference_time,
            };
            if whole {
                builder.push(&base, None);
            } else {
                for range in ranges {
                    builder.push(&base, Some(range));
                }
            }
        }
        _ => {
            let content = open_content(Box::new(&mut source), &name, &opts.limits)?;
            let inner = content
                .format
                .map_err(|reason| PipelineError::UnknownFormat {
                    member: name.clone(),
                    reason,
                })?;
            if inner == Format::Zip {
                return Err(PipelineError::UnknownFormat {
                    member: name,
                    reason: "a zip inside gzip; upload the zip itself".into(),
                });
            }
            let member = Member {
                name: name.clone(),
                zip_index: None,
                gzip: content.gzip,
                format: inner,
                reference_time: content.gzip_time.or(opts.reference_time),
            };
            builder.push(&member, None);
        }
    }
    Ok(builder.manifest)
}

struct Member {
    name: String,
    zip_index: Option<usize>,
    gzip: bool,
    format: Format,
    reference_time: Option<DateTime<Utc>>,
}

struct ManifestBuilder {
    manifest: PartsManifest,
}

impl ManifestBuilder {
    fn new(opts: &SplitOptions, format: Format) -> ManifestBuilder {
        ManifestBuilder {
            manifest: PartsManifest {
                evidence_id: opts.evidence_id,
                source: opts.source_name.clone(),
                format,
                parts: Vec::new(),
                skipped: Vec::new(),
            },
        }
    }

    fn push(&mut self, member: &Member, chunks: Option<evtx::ChunkRange>) {
        let id = format!("part-{:05}", self.manifest.parts.len() + 1);
        self.manifest.parts.push(PartSpec {
            key: format!("parts/{id}.json"),
            id,
            evidence_id: self.manifest.evidence_id,
            source: self.manifest.source.clone(),
            member: member.name.clone(),
            zip_index: member.zip_index,
            gzip: member.gzip,
            format: member.format,
            chunks,
            reference_time: member.reference_time,
        });
    }
}

fn split_zip<R: Read + Seek>(
    source: R,
    opts: &SplitOptions,
    builder: &mut ManifestBuilder,
) -> Result<(), PipelineError> {
    let unreadable = |reason: String| PipelineError::Unreadable {
        member: opts.source_name.clone(),
        format: "zip",
        reason,
    };
    let mut archive = zip::ZipArchive::new(source).map_err(|e| unreadable(e.to_string()))?;
    let mut declared = 0u64;
    for index in 0..archive.len() {
        if let Ok(entry) = archive.by_index_raw(index) {
            declared = declared.saturating_add(entry.size());
        }
    }
    opts.limits
        .check_declared_total(&opts.source_name, declared)?;
    let mut seen_names: HashMap<String, usize> = HashMap::new();
    for index in 0..archive.len() {
        let raw_name = archive.name_for_index(index).unwrap_or("?").to_owned();
        let mut entry = match archive.by_index(index) {
            Ok(entry) => entry,
            Err(e) => {
                let name = raw_name;
                builder.manifest.skipped.push(SkippedMember {
                    member: name,
                    reason: format!("cannot open the archive member: {e}"),
                });
                continue;
            }
        };
        if entry.is_dir() {
            continue;
        }
        let name = member_name(&mut seen_names, entry.name(), index);
        if entry.size() == 0 {
            builder.manifest.skipped.push(SkippedMember {
                member: name,
                reason: "the file is empty".into(),
            });
            continue;
        }
        let entry_time = entry.last_modified().and_then(zip_time);
        let content = match open_content(Box::new(&mut entry), &name, &opts.limits) {
            Ok(content) => content,
            Err(e) => {
                builder.manifest.skipped.push(SkippedMember {
                    member: name,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        match content.format {
            Ok(Format::Zip) => builder.manifest.skipped.push(SkippedMember {
                member: name,
                reason: "a zip inside the zip; unpack it and upload its files".into(),
            }),
            Ok(format) => {
                let member = Member {
                    name,
                    zip_index: Some(index),
                    gzip: content.gzip,
                    format,
                    reference_time: content.gzip_time.or(entry_time).or(opts.reference_time),
                };
                builder.push(&member, None);
            }
            Err(reason) => builder.manifest.skipped.push(SkippedMember {
                member: name,
                reason: format!("unknown format: {reason}"),
            }),
        }
    }
    if builder.manifest.parts.is_empty() {
        return Err(PipelineError::EmptyArchive {
            member: opts.source_name.clone(),
            skipped: builder.manifest.skipped.len(),
        });
    }
    Ok(())
}

/// The member's name, made unique when an archive holds the same name twice.
fn member_name(seen: &mut HashMap<String, usize>, name: &str, index: usize) -> String {
    let count = seen.entry(name.to_owned()).or_insert(0);
    *count += 1;
    if *count == 1 {
        name.to_owned()
    } else {
        format!("{name}#{index}")
    }
}

fn zip_time(t: zip::DateTime) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(
        i32::from(t.year()),
        u32::from(t.month()),
        u32::from(t.day()),
        u32::from(t.hour()),
        u32::from(t.minute()),
        u32::from(t.second()),
    )
    .single()
}

/// A member's content after unpacking gzip layers.
struct Content<'a> {
    format: Result<Format, String>,
    gzip: bool,
    gzip_time: Option<DateTime<Utc>>,
    reader: Box<dyn Read + 'a>,
}

fn open_content<'a>(
    reader: Box<dyn Read + 'a>,
    member: &str,
    limits: &Limits,
) -> Result<Content<'a>, PipelineError> {
    let mut reader = reader;
    let mut gzip = false;
    let mut gzip_time = None;
    for _ in 0..=MAX_GZIP_LAYERS {
        let (head, chained) = peek(reader, SNIFF_LEN).map_err(|e| {
            match PipelineError::io("unpacking the evidence")(e) {
                PipelineError::Corrupt { source, .. } => PipelineError::Unreadable {
                    member: member.to_owned(),
                    format: "gzip",
                    reason: source.to_string(),
                },
                other => other,
            }
        })?;
        match sniff(&head) {
            Ok(Format::Gzip) => {
                if gzip_time.is_none() {
                    gzip_time = head
                        .get(4..8)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .filter(|&t| t != 0)
                        .and_then(|t| DateTime::from_timestamp(i64::from(t), 0));
                }
                gzip = true;
                let (counted, compressed) = Counting::new(chained);
                reader = Box::new(Bounded::new(
                    MultiGzDecoder::new(counted),
                    member,
                    Compressed::Counted(compressed),
                    *limits,
                ));
            }
            format => {
                return Ok(Content {
                    format,
                    gzip,
                    gzip_time,
                    reader: Box::new(chained),
                });
            }
        }
    }
    Ok(Content {
        format: Err(format!("more than {MAX_GZIP_LAYERS} nested gzip layers")),
        gzip,
        gzip_time,
        reader,
    })
}

/// How `parse` runs.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// EVTX worker threads (`0`: one per core).
    pub threads: usize,
    /// Bad records kept with their location.
    pub max_errors: usize,
    /// Bounds on unpacking ([`super::limits`]).
    pub limits: Limits,
}

impl Default for ParseOptions {
    fn default() -> ParseOptions {
        ParseOptions {
            threads: 0,
            max_errors: DEFAULT_MAX_ERRORS,
            limits: Limits::default(),
        }
    }
}

/// Parses one part of an evidence, pushing every record into `sink`.
///
/// Data that breaks off in the middle (a truncated gzip stream) ends the part with one
/// bad record after the records read so far; the part still succeeds.
pub fn parse_part<R: Read + Seek>(
    source: R,
    part: &PartSpec,
    opts: &ParseOptions,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    let mut source = timed(source, &part.member, &opts.limits)?;
    let ctx = MemberContext {
        member: part.member.clone(),
        evidence_id: part.evidence_id,
        reference_time: part.reference_time,
    };
    let mut counted = Counted {
        inner: sink,
        seen: 0,
        deadline: source.deadline().clone(),
    };
    let result = parse_member(&mut source, part, opts, &ctx, &mut counted);
    match result {
        Err(PipelineError::Corrupt { doing, source }) => {
            let seen = counted.seen;
            counted.accept(Err(BadRecord::new(
                Location::member(&part.member),
                format!("corrupt data while {doing} after {seen} records, the rest cannot be read: {source}"),
            )))
        }
        other => other,
    }
}

struct Counted<'a> {
    inner: &'a mut dyn RecordSink,
    seen: u64,
    deadline: Deadline,
}

impl RecordSink for Counted<'_> {
    fn accept(&mut self, record: RecordResult) -> Result<(), PipelineError> {
        self.deadline.check()?;
        self.seen += 1;
        self.inner.accept(record)
    }
}

fn parse_member<R: Read + Seek>(
    source: &mut R,
    part: &PartSpec,
    opts: &ParseOptions,
    ctx: &MemberContext,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    let mismatch = |reason: String| PipelineError::PartMismatch {
        part: part.id.clone(),
        reason,
    };
    source
        .seek(SeekFrom::Start(0))
        .map_err(PipelineError::io("reading the evidence"))?;
    if part.format == Format::Evtx && part.zip_index.is_none() && !part.gzip {
        return evtx::parse(source, part.chunks, ctx, opts.threads, sink);
    }
    let mut archive;
    let mut entry;
    let reader: Box<dyn Read + '_> = match part.zip_index {
        Some(index) => {
            archive = zip::ZipArchive::new(&mut *source)
                .map_err(|e| mismatch(format!("the evidence is not a readable zip: {e}")))?;
            entry = archive
                .by_index(index)
                .map_err(|e| mismatch(format!("member {index} cannot be opened: {e}")))?;
            if !part.member.starts_with(entry.name()) {
                return Err(mismatch(format!(
                    "member {index} is {:?}, not {:?}",
                    entry.name(),
                    part.member
                )));
            }
            if entry.compression() == zip::CompressionMethod::Stored {
                Box::new(&mut entry)
            } else {
                let compressed = Compressed::Known(entry.compressed_size());
                Box::new(Bounded::new(
                    &mut entry,
                    &part.member,
                    compressed,
                    opts.limits,
                ))
            }
        }
        None => Box::new(&mut *source),
    };
    let content = open_content(reader, &part.member, &opts.limits)?;
    match content.format {
        Ok(found) if found == part.format => {}
        Ok(found) => {
            return Err(mismatch(format!(
                "the manifest says {}, the content is {}",
                part.format.name(),
                found.name()
            )));
        }
        Err(reason) => {
            return Err(mismatch(format!(
                "the content is no longer recognized: {reason}"
            )));
        }
    }
    if part.format == Format::Evtx {
        let mut spool =
            tempfile::tempfile().map_err(PipelineError::io("creating a temporary file"))?;
        let mut reader = content.reader;
        io::copy(&mut reader, &mut spool).map_err(PipelineError::io("unpacking an evtx file"))?;
        spool
            .seek(SeekFrom::Start(0))
            .map_err(PipelineError::io("reading a temporary file"))?;
        return evtx::parse(spool, part.chunks, ctx, opts.threads, sink);
    }
    let mut buffered = BufReader::with_capacity(256 * 1024, content.reader);
    formats::parse_text(part.format, &mut buffered, ctx, sink)
}

/// Counts of one parsed part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    /// The part.
    pub part: String,
    /// The evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<Uuid>,
    /// The member.
    pub member: String,
    /// The member's format.
    pub format: Format,
    /// Records seen, events, bad records and the first errors.
    #[serde(flatten)]
    pub tally: Tally,
    /// Distinct devices named by the events.
    pub devices: u64,
    /// Distinct identities named by the events.
    pub identities: u64,
    /// Time of the earliest event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ts: Option<DateTime<Utc>>,
    /// Time of the latest event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<DateTime<Utc>>,
}

/// Parses one part and writes its events to `out` as gzip-compressed JSON lines.
///
/// Compression runs on a thread of its own, fed 256 KiB blocks of JSON lines through a
/// short queue: gzip costs about as much as parsing and serializing, and overlapped the
/// two take half the time on two cores. Memory stays bounded by the queue.
pub fn parse_to_writer<R: Read + Seek, W: Write + Send>(
    source: R,
    part: &PartSpec,
    opts: &ParseOptions,
    out: W,
) -> Result<PartSummary, PipelineError> {
    std::thread::scope(|scope| {
        let (blocks, queue) = mpsc::sync_channel::<Vec<u8>>(COMPRESS_QUEUE);
        let compressor = scope.spawn(move || -> io::Result<()> {
            let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            for block in queue {
                gz.write_all(&block)?;
            }
            gz.finish()?.flush()
        });
        let mut sink = JsonLinesSink::new(blocks, opts.max_errors);
        let parsed = parse_part(source, part, opts, &mut sink).and_then(|()| sink.finish(part));
        // Closing the queue lets the compressor finish the gzip stream.
        drop(sink);
        let compressed = compressor
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the compressing thread panicked")));
        // A compressor that failed (disk full) stopped taking blocks: its error is the cause.
        compressed.map_err(PipelineError::io("writing events"))?;
        parsed
    })
}

/// Blocks of JSON lines waiting for the compressor, at most.
const COMPRESS_QUEUE: usize = 4;

/// Serializes events as JSON lines into blocks for the compressor, while counting.
struct JsonLinesSink {
    out: mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
    tally: Tally,
    devices: BTreeSet<String>,
    identities: BTreeSet<(super::event::IdentityKind, String)>,
    first_ts: Option<DateTime<Utc>>,
    last_ts: Option<DateTime<Utc>>,
}

const FLUSH_AT: usize = 256 * 1024;

impl JsonLinesSink {
    fn new(out: mpsc::SyncSender<Vec<u8>>, max_errors: usize) -> Self {
        JsonLinesSink {
            out,
            buf: Vec::with_capacity(FLUSH_AT * 2),
            tally: Tally::new(max_errors),
            devices: BTreeSet::new(),
            identities: BTreeSet::new(),
            first_ts: None,
            last_ts: None,
        }
    }

    /// Hands the buffered lines to the compressor.
    fn send(&mut self) -> Result<(), PipelineError> {
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(FLUSH_AT * 2));
        self.out.send(block).map_err(|_| PipelineError::Io {
            doing: "writing events",
            source: io::Error::new(io::ErrorKind::BrokenPipe, "the compressor stopped"),
        })
    }

    fn write_event(&mut self, event: &NormalizedEvent) -> Result<(), PipelineError> {
        let start = self.buf.len();
        serde_json::to_writer(&mut self.buf, event).map_err(|e| PipelineError::Io {
            doing: "serializing an event",
            source: io::Error::other(e),
        })?;
        // Attributes are written verbatim, and a pretty-printed source record (CloudTrail)
        // brings its line breaks. Outside strings they are mere whitespace and inside
        // strings JSON has them escaped, so a blank keeps the JSON and one event a line.
        for b in &mut self.buf[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_AT {
            self.send()?;
        }
        Ok(())
    }

    /// Sends the last lines; the compressor finishes once the sink is dropped.
    fn finish(&mut self, part: &PartSpec) -> Result<PartSummary, PipelineError> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(PartSummary {
            part: part.id.clone(),
            evidence_id: part.evidence_id,
            member: part.member.clone(),
            format: part.format,
            tally: std::mem::take(&mut self.tally),
            devices: self.devices.len() as u64,
            identities: self.identities.len() as u64,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
        })
    }
}

impl RecordSink for JsonLinesSink {
    fn accept(&mut self, record: RecordResult) -> Result<(), PipelineError> {
        let Some(event) = self.tally.count(record) else {
            return Ok(());
        };
        if let Some(device) = &event.device
            && !self.devices.contains(device)
        {
            self.devices.insert(device.clone());
        }
        if let Some(id) = &event.identity {
            self.identities.insert((id.kind, id.value.clone()));
        }
        self.first_ts = Some(self.first_ts.map_or(event.ts, |t| t.min(event.ts)));
        self.last_ts = Some(self.last_ts.map_or(event.ts, |t| t.max(event.ts)));
        self.write_event(&event)
    }
}

/// Splits an evidence and parses every part into `sink` (tests, local runs, small files).
pub fn parse_evidence<R: Read + Seek>(
    mut source: R,
    split_opts: &SplitOptions,
    opts: &ParseOptions,
    sink: &mut dyn RecordSink,
) -> Result<PartsManifest, PipelineError> {
    let manifest = split(&mut source, split_opts)?;
    for part in &manifest.parts {
        parse_part(&mut source, part, opts, sink)?;
    }
    Ok(manifest)
}
