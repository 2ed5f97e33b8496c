//! Timesketch import files: CSV and JSON lines with `message`, `datetime` and/or
//! `timestamp` (µs since the epoch), `timestamp_desc`, and any other column as attribute.
//!
//! Time: `datetime` wins when it parses (as in Timesketch's own importer, which derives
//! `timestamp` from it); `timestamp` is used otherwise. A row with neither is a bad record.
//! Every column, including the four above, is kept in the attributes exactly as read (CSV
//! values as strings).

use serde_json::{Map, Value};
use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use super::MemberContext;
use super::generic::{self, Flavor};
use crate::pipeline::accounting::{BadRecord, Location, RecordSink};
use crate::pipeline::error::PipelineError;
use crate::pipeline::event::{NormalizedEvent, ts_from_micros};
use crate::pipeline::text::{Line, Lines, MAX_LINE_LEN, NumberedLine, is_blank};

const CSV: Flavor = Flavor {
    parser: "timesketch_csv",
    default_data_type: "timesketch:event",
};
const JSONL: Flavor = Flavor {
    parser: "timesketch_jsonl",
    default_data_type: "timesketch:event",
};

/// The largest CSV record (an unclosed quote would otherwise swallow the whole file).
pub const MAX_CSV_RECORD: u64 = 16 * 1024 * 1024;

/// Parses a Timesketch CSV member.
pub fn parse_csv(
    reader: &mut dyn BufRead,
    ctx: &MemberContext,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    let since_record = Rc::new(Cell::new(0u64));
    let guarded = Guard {
        inner: reader,
        since_record: Rc::clone(&since_record),
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(guarded);
    let unreadable = |reason: String| PipelineError::Unreadable {
        member: ctx.member.clone(),
        format: "timesketch csv",
        reason,
    };
    let headers: Vec<String> = match csv.byte_headers() {
        Ok(h) => h
            .iter()
            .map(|f| std::str::from_utf8(f).map(|s| s.trim().to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|_| unreadable("the header row is not valid utf-8".into()))?,
        Err(e) => return Err(unreadable(format!("cannot read the header row: {e}"))),
    };
    let mut record = csv::ByteRecord::new();
    loop {
        since_record.set(0);
        let line = csv.position().line() + 1;
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                let location = Location::line(&ctx.member, line);
                let result = row(&headers, &record)
                    .and_then(|map| time_of(&map).map(|ts| (map, ts)))
                    .map(|(map, ts)| {
                        let rec = generic::Record {
                            fields: map,
                            raw: None,
                            ts,
                            line,
                            offset: record.position().map(|p| p.byte()),
                            origin: None,
                        };
                        generic::event(rec, CSV, ctx)
                    })
                    .map_err(|reason| BadRecord::new(location, reason));
                sink.accept(result)?;
            }
            Err(e) => {
                let location = Location::line(&ctx.member, e.position().map_or(line, |p| p.line()));
                if let csv::ErrorKind::Io(io_err) = e.kind() {
                    if io_err.kind() == io::ErrorKind::OutOfMemory {
                        // The guard tripped: the rest of the file cannot be split into records.
                        sink.accept(Err(BadRecord::new(
                            location,
                            format!("record longer than {MAX_CSV_RECORD} bytes (unclosed quote?); the rest of the file was not read"),
                        )))?;
                        break;
                    }
                    let err = io::Error::new(io_err.kind(), io_err.to_string());
                    return Err(PipelineError::io("reading a timesketch csv file")(err));
                }
                sink.accept(Err(BadRecord::new(
                    location,
                    format!("malformed csv row: {e}"),
                )))?;
            }
        }
    }
    Ok(())
}

/// Fails the read once a single record grows past [`MAX_CSV_RECORD`].
struct Guard<'a> {
    inner: &'a mut dyn BufRead,
    since_record: Rc<Cell<u64>>,
}

impl Read for Guard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.since_record.get() > MAX_CSV_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "csv record too long",
            ));
        }
        let n = self.inner.read(buf)?;
        self.since_record.set(self.since_record.get() + n as u64);
        Ok(n)
    }
}

fn row(headers: &[String], record: &csv::ByteRecord) -> Result<Map<String, Value>, String> {
    if record.len() != headers.len() {
        return Err(format!(
            "row has {} fields, the header has {}",
            record.len(),
            headers.len()
        ));
    }
    let mut map = Map::with_capacity(headers.len());
    for (name, field) in headers.iter().zip(record.iter()) {
        let value =
            std::str::from_utf8(field).map_err(|_| format!("field {name:?} is not valid utf-8"))?;
        map.insert(name.clone(), Value::String(value.to_owned()));
    }
    Ok(map)
}

/// The time of a Timesketch record: `datetime`, else `timestamp` (µs).
fn time_of(map: &Map<String, Value>) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let datetime = map
        .get("datetime")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty());
    if let Some(ts) = datetime.and_then(generic::parse_datetime) {
        return Ok(ts);
    }
    if let Some(ts) = map
        .get("timestamp")
        .and_then(generic::micros)
        .and_then(ts_from_micros)
    {
        return Ok(ts);
    }
    Err(match datetime {
        Some(d) => format!("datetime {d:?} is not a date and there is no valid timestamp"),
        None => "no datetime and no valid timestamp (µs since the epoch)".into(),
    })
}

/// Parses a Timesketch JSON-lines member.
pub fn parse_jsonl(
    reader: &mut dyn BufRead,
    ctx: &MemberContext,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    json_lines(
        reader,
        ctx,
        sink,
        "reading a timesketch jsonl file",
        |map, raw, ctx, line, offset| {
            let ts = time_of(&map)?;
            let rec = generic::Record {
                fields: map,
                raw: Some(raw),
                ts,
                line,
                offset: Some(offset),
                origin: None,
            };
            Ok(generic::event(rec, JSONL, ctx))
        },
    )
}

/// Reads JSON lines, one object a line, each turned into an event by `build`.
pub(crate) fn json_lines(
    reader: &mut dyn BufRead,
    ctx: &MemberContext,
    sink: &mut dyn RecordSink,
    doing: &'static str,
    build: impl Fn(
        Map<String, Value>,
        String,
        &MemberContext,
        u64,
        u64,
    ) -> Result<NormalizedEvent, String>,
) -> Result<(), PipelineError> {
    let mut lines = Lines::new(reader, MAX_LINE_LEN);
    while let Some(NumberedLine {
        number,
        offset,
        line,
    }) = lines.next_line().map_err(PipelineError::io(doing))?
    {
        let location = Location {
            offset: Some(offset),
            ..Location::line(&ctx.member, number)
        };
        let result = match line {
            Line::TooLong(len) => Err(format!("line of {len} bytes is longer than the limit")),
            Line::Text(bytes) if is_blank(bytes) => continue,
            Line::Text(bytes) => match serde_json::from_slice::<Value>(bytes) {
                // Valid JSON is valid UTF-8.
                Ok(Value::Object(map)) => build(
                    map,
                    String::from_utf8_lossy(bytes).into_owned(),
                    ctx,
                    number,
                    offset,
                ),
                Ok(_) => Err("line is json but not an object".into()),
                Err(e) => Err(format!("line is not valid json: {e}")),
            },
        };
        sink.accept(result.map_err(|reason| BadRecord::new(location, reason)))?;
    }
    Ok(())
}
