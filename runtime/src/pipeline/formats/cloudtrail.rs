//! AWS CloudTrail log files (`{"Records":[…]}`, one JSON document per file, as AWS writes
//! them to S3, plain or gzipped) and CloudTrail events as JSON lines.
//!
//! The document is read as a stream: each element of `Records` is cut out of the input
//! and parsed on its own, so memory stays flat however many records a file holds, and a
//! bad element is one bad record. When the document itself breaks off (truncated file,
//! stray bytes between records) the rest cannot be split into records: that is reported
//! as one bad record at the offset where it happened.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::io::{self, BufRead};

use super::MemberContext;
use super::timesketch::json_lines;
use crate::pipeline::accounting::{BadRecord, Location, RecordSink};
use crate::pipeline::error::PipelineError;
use crate::pipeline::event::{
    Attributes, Identity, NormalizedEvent, Provenance, dedup_key, parse_ip, truncate_to_micros,
};
use crate::pipeline::normalize::{aws, clip_message};

/// The largest single CloudTrail record accepted.
pub const MAX_RECORD_LEN: usize = 16 * 1024 * 1024;

/// Parses a CloudTrail log file.
pub fn parse(
    reader: &mut dyn BufRead,
    ctx: &MemberContext,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    let mut scan = Scanner {
        r: reader,
        offset: 0,
        first: true,
    };
    let unreadable = |reason: String| PipelineError::Unreadable {
        member: ctx.member.clone(),
        format: "cloudtrail",
        reason,
    };
    let io_err = PipelineError::io("reading a cloudtrail file");
    match scan.records_start() {
        Ok(()) => {}
        Err(Scan::Io(e)) => return Err(io_err(e)),
        Err(Scan::Syntax(why, at)) => return Err(unreadable(format!("{why} at offset {at}"))),
    }
    let mut index: u64 = 0;
    let mut buf = Vec::new();
    loop {
        let start = scan.offset;
        match scan.next_element(&mut buf) {
            Ok(false) => break,
            Ok(true) => {
                let location = Location {
                    record: Some(index),
                    offset: Some(start),
                    ..Location::member(&ctx.member)
                };
                let result = match serde_json::from_slice::<Value>(&buf) {
                    Ok(Value::Object(record)) => event(
                        record,
                        String::from_utf8_lossy(&buf).into_owned(),
                        ctx,
                        index,
                        Some(start),
                    ),
                    Ok(_) => Err("record is not a json object".into()),
                    Err(e) => Err(format!("record is not valid json: {e}")),
                };
                sink.accept(result.map_err(|reason| BadRecord::new(location, reason)))?;
                index += 1;
            }
            Err(Scan::Io(e)) => return Err(io_err(e)),
            Err(Scan::Syntax(why, at)) => {
                let location = Location {
                    record: Some(index),
                    offset: Some(at),
                    ..Location::member(&ctx.member)
                };
                sink.accept(Err(BadRecord::new(
                    location,
                    format!("{why}; the rest of the file cannot be read"),
                )))?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Parses CloudTrail events written one JSON object a line.
pub fn parse_jsonl(
    reader: &mut dyn BufRead,
    ctx: &MemberContext,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    json_lines(
        reader,
        ctx,
        sink,
        "reading cloudtrail json lines",
        |map, raw, ctx, line, offset| event(map, raw, ctx, line, Some(offset)),
    )
}

/// Builds the event of one CloudTrail record (`record_no`: index in `Records`, or line).
fn event(
    record: Map<String, Value>,
    raw: String,
    ctx: &MemberContext,
    record_no: u64,
    offset: Option<u64>,
) -> Result<NormalizedEvent, String> {
    let s = |k: &str| record.get(k).and_then(Value::as_str);
    let time = s("eventTime").ok_or("record has no eventTime")?;
    let ts: DateTime<Utc> = DateTime::parse_from_rfc3339(time)
        .map_err(|_| format!("eventTime {time:?} is not an rfc 3339 time"))?
        .with_timezone(&Utc);
    let name = s("eventName").ok_or("record has no eventName")?;
    let source = s("eventSource").ok_or("record has no eventSource")?;
    let action = aws::action(source, name);
    let outcome = aws::outcome(&record);
    let entry = crate::knowledge::catalog().cloudtrail(source, name);
    let user = record.get("userIdentity");
    let ustr = |k: &str| user.and_then(|u| u.get(k)).and_then(Value::as_str);
    let identity = ustr("arn")
        .and_then(Identity::arn)
        .or_else(|| ustr("userName").and_then(Identity::user));
    let who = identity
        .as_ref()
        .map(|i| i.value.clone())
        .or_else(|| ustr("invokedBy").map(str::to_owned))
        .or_else(|| ustr("type").map(str::to_owned))
        .unwrap_or_else(|| "unknown caller".into());
    let ip_text = s("sourceIPAddress");
    let mut message = format!("{name} on {source} by {who}");
    if let Some(ip) = ip_text {
        message.push_str(" from ");
        message.push_str(ip);
    }
    if let Some(code) = record.get("errorCode").and_then(Value::as_str) {
        message.push_str(" failed: ");
        message.push_str(code);
    }
    Ok(NormalizedEvent {
        ts: truncate_to_micros(ts),
        timestamp_desc: "Event Time".into(),
        data_type: chrono_contract::data_type::CLOUDTRAIL.into(),
        source: source.to_owned(),
        parser: "cloudtrail".into(),
        message: clip_message(message),
        device: None,
        identity,
        event_code: Some(name.to_owned()),
        action: Some(action),
        outcome: Some(outcome),
        title: entry.map(|e| std::borrow::Cow::Borrowed(e.title.as_str())),
        category: entry.map(|e| e.category),
        src_ip: ip_text.and_then(parse_ip),
        dst_ip: None,
        tags: Vec::new(),
        provenance: Provenance {
            evidence_id: ctx.evidence_id,
            member: ctx.member.clone(),
            record: record_no,
            offset,
            origin: None,
        },
        dedup_key: dedup_key(&ctx.member, &format!("record:{record_no}")),
        attributes: Attributes::from_json(raw)
            .map_err(|e| format!("record is not valid json: {e}"))?,
    })
}

enum Scan {
    Io(io::Error),
    /// What was wrong, and the offset.
    Syntax(&'static str, u64),
}

impl From<io::Error> for Scan {
    fn from(e: io::Error) -> Scan {
        Scan::Io(e)
    }
}

/// A byte-level walk over the JSON document that cuts out the elements of `Records`.
struct Scanner<'a> {
    r: &'a mut dyn BufRead,
    offset: u64,
    /// Whether the next element is the first of the array (no ',' before it).
    first: bool,
}

impl Scanner<'_> {
    fn peek(&mut self) -> Result<Option<u8>, Scan> {
        loop {
            match self.r.fill_buf() {
                Ok(b) => return Ok(b.first().copied()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Scan::Io(e)),
            }
        }
    }

    fn bump(&mut self) {
        self.r.consume(1);
        self.offset += 1;
    }

    fn skip_ws(&mut self) -> Result<Option<u8>, Scan> {
        while let Some(b) = self.peek()? {
            if b.is_ascii_whitespace() {
                self.bump();
            } else {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    fn expect(&mut self, want: u8, what: &'static str) -> Result<(), Scan> {
        match self.skip_ws()? {
            Some(b) if b == want => {
                self.bump();
                Ok(())
            }
            _ => Err(Scan::Syntax(what, self.offset)),
        }
    }

    /// Walks to the first element of `Records`, skipping any other members before it.
    fn records_start(&mut self) -> Result<(), Scan> {
        if self.peek()? == Some(0xef) {
            // UTF-8 byte order mark.
            for _ in 0..3 {
                self.bump();
            }
        }
        self.expect(b'{', "expected a json object")?;
        let mut key = Vec::new();
        loop {
            match self.skip_ws()? {
                Some(b'"') => {}
                _ => {
                    return Err(Scan::Syntax(
                        "no \"Records\" array in the document",
                        self.offset,
                    ));
                }
            }
            key.clear();
            self.value(&mut Some(&mut key), 4096)?;
            self.expect(b':', "expected ':' after a key")?;
            if key == b"\"Records\"" {
                self.expect(b'[', "\"Records\" is not an array")?;
                self.first = true;
                return Ok(());
            }
            self.value(&mut None, usize::MAX)?;
            match self.skip_ws()? {
                Some(b',') => self.bump(),
                _ => {
                    return Err(Scan::Syntax(
                        "no \"Records\" array in the document",
                        self.offset,
                    ));
                }
            }
        }
    }

    /// Cuts the next element of the array into `buf`; `false` at the end of the array.
    fn next_element(&mut self, buf: &mut Vec<u8>) -> Result<bool, Scan> {
        buf.clear();
        match self.skip_ws()? {
            Some(b']') => {
                self.bump();
                return Ok(false);
            }
            Some(b',') if !self.first => {
                self.bump();
            }
            None => {
                return Err(Scan::Syntax(
                    "the file ends inside the records array",
                    self.offset,
                ));
            }
            Some(_) if self.first => {}
            Some(_) => {
                return Err(Scan::Syntax(
                    "expected ',' or ']' between records",
                    self.offset,
                ));
            }
        }
        self.first = false;
        if self.skip_ws()?.is_none() {
            return Err(Scan::Syntax(
                "the file ends inside the records array",
                self.offset,
            ));
        }
        self.value(&mut Some(buf), MAX_RECORD_LEN)?;
        Ok(true)
    }

    /// Reads one JSON value's bytes (into `out` when given), without interpreting them
    /// beyond nesting and strings.
    fn value(&mut self, out: &mut Option<&mut Vec<u8>>, max: usize) -> Result<(), Scan> {
        let mut depth: usize = 0;
        let mut in_string = false;
        let mut escaped = false;
        let mut len: usize = 0;
        loop {
            let Some(b) = self.peek()? else {
                return Err(Scan::Syntax("the file ends inside a value", self.offset));
            };
            if !in_string && depth == 0 && len > 0 && matches!(b, b',' | b']' | b'}' | b':') {
                return Ok(());
            }
            if !in_string && depth == 0 && len > 0 && b.is_ascii_whitespace() {
                return Ok(());
            }
            if let Some(out) = out.as_deref_mut() {
                if len >= max {
                    return Err(Scan::Syntax("record longer than the limit", self.offset));
                }
                out.push(b);
            }
            len += 1;
            self.bump();
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        return Err(Scan::Syntax("unbalanced brackets", self.offset));
                    }
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }
}
