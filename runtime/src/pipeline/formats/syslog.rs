//! syslog text: RFC 3164 (`<PRI>Mmm dd hh:mm:ss host tag[pid]: msg`, PRI optional as in
//! files rsyslog writes), RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`), and
//! the RFC 3339-stamped file lines of rsyslog's high-precision format
//! (`2024-03-01T10:00:00.123456+00:00 host tag[pid]: msg`).
//!
//! RFC 3164 lines carry no year and no zone. The year comes from the member's
//! [`reference_time`](super::MemberContext::reference_time) (evidence metadata, archive
//! entry time or file time): a line gets the year that puts it at or before the reference
//! time (plus one day of slack), so a log that spans New Year gets December in the earlier
//! year. The time is taken as UTC. Without a reference time such lines are bad records —
//! the pipeline never guesses "now". A log spanning more than a year cannot be dated this
//! way (its oldest lines land a year late).
//!
//! Every non-blank line is a record; blank lines are not counted.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use std::io::BufRead;

use super::MemberContext;
use crate::pipeline::accounting::{BadRecord, Location, RecordSink};
use crate::pipeline::error::PipelineError;
use crate::pipeline::event::{
    Attributes, NormalizedEvent, Provenance, dedup_key, truncate_to_micros,
};
use crate::pipeline::normalize::{clip_message, linux};
use crate::pipeline::text::{Line, Lines, MAX_LINE_LEN, NumberedLine, is_blank};

/// The dialect of a parsed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// BSD syslog, no year.
    Rfc3164,
    /// IETF syslog.
    Rfc5424,
    /// File line with an RFC 3339 timestamp.
    Rfc3339,
}

impl Dialect {
    fn parser(self) -> &'static str {
        match self {
            Dialect::Rfc3164 => "syslog_rfc3164",
            Dialect::Rfc5424 => "syslog_rfc5424",
            Dialect::Rfc3339 => "syslog_rfc3339",
        }
    }
}

/// The timestamp of a line, before RFC 3164's year is filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stamp {
    Full(DateTime<Utc>),
    /// Month, day, and time of day (as a date in the year 2000, a leap year).
    NoYear {
        month: u32,
        day: u32,
        time: chrono::NaiveTime,
    },
    /// RFC 5424 NILVALUE.
    Missing,
}

/// A syslog line split into its fields.
#[derive(Debug, Clone, PartialEq)]
struct Parsed<'a> {
    dialect: Dialect,
    pri: Option<u8>,
    stamp: Stamp,
    host: Option<&'a str>,
    app: Option<&'a str>,
    pid: Option<&'a str>,
    msgid: Option<&'a str>,
    structured_data: Option<&'a str>,
    msg: &'a str,
}

/// Whether a line looks like syslog (used by format detection).
pub fn looks_like_syslog(line: &str) -> bool {
    parse_line(line).is_some()
}

/// Parses a syslog member.
pub fn parse(
    reader: &mut dyn BufRead,
    ctx: &MemberContext,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    let mut lines = Lines::new(reader, MAX_LINE_LEN);
    loop {
        let line = lines
            .next_line()
            .map_err(PipelineError::io("reading a syslog file"))?;
        let Some(NumberedLine {
            number,
            offset,
            line,
        }) = line
        else {
            break;
        };
        let location = || Location {
            offset: Some(offset),
            ..Location::line(&ctx.member, number)
        };
        let record = match line {
            Line::TooLong(len) => Err(BadRecord::new(
                location(),
                format!("line of {len} bytes is longer than the limit"),
            )),
            Line::Text(bytes) if is_blank(bytes) => continue,
            Line::Text(bytes) => match std::str::from_utf8(bytes) {
                Err(_) => Err(BadRecord::new(location(), "line is not valid utf-8")),
                Ok(text) => event(text, number, offset, ctx)
                    .map_err(|reason| BadRecord::new(location(), reason)),
            },
        };
        sink.accept(record)?;
    }
    Ok(())
}

fn event(
    text: &str,
    number: u64,
    offset: u64,
    ctx: &MemberContext,
) -> Result<NormalizedEvent, String> {
    let p = parse_line(text).ok_or("line is not syslog (no rfc 3164, 5424 or 3339 header)")?;
    let ts = match p.stamp {
        Stamp::Full(ts) => ts,
        Stamp::Missing => return Err("line has no timestamp (nilvalue)".into()),
        Stamp::NoYear { month, day, time } => {
            let reference = ctx
                .reference_time
                .ok_or("rfc 3164 line has no year and the evidence has no reference time; give the evidence's collection time")?;
            with_year(month, day, time, reference).ok_or_else(|| {
                format!("rfc 3164 date {month:02}-{day:02} does not exist near the reference time")
            })?
        }
    };
    let program = p.app.unwrap_or("");
    let mapping = linux::map(program, p.msg);
    let entry = mapping
        .as_ref()
        .and_then(|m| crate::knowledge::catalog().linux(m.key));
    let mut attributes = Map::new();
    attributes.insert("line".into(), json!(text));
    attributes.insert(
        "format".into(),
        json!(p.dialect.parser().trim_start_matches("syslog_")),
    );
    if let Some(pri) = p.pri {
        attributes.insert("facility".into(), json!(pri >> 3));
        attributes.insert("severity".into(), json!(pri & 7));
    }
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            attributes.insert(k.into(), json!(v));
        }
    };
    put("hostname", p.host);
    put("program", p.app);
    put("pid", p.pid);
    put("msgid", p.msgid);
    put("structured_data", p.structured_data);
    put("body", Some(p.msg));
    if let Some(m) = &mapping {
        put("user", m.user.as_deref());
        put("target_user", m.target_user.as_deref());
    }
    let message = match (p.app, p.pid) {
        (Some(app), Some(pid)) => format!("{app}[{pid}]: {}", p.msg),
        (Some(app), None) => format!("{app}: {}", p.msg),
        _ => p.msg.to_owned(),
    };
    Ok(NormalizedEvent {
        ts: truncate_to_micros(ts),
        timestamp_desc: "Entry Written".into(),
        data_type: chrono_contract::data_type::SYSLOG.into(),
        source: if program.is_empty() {
            "syslog".into()
        } else {
            program.to_owned()
        },
        parser: p.dialect.parser().into(),
        message: clip_message(message),
        device: p.host.map(str::to_owned),
        identity: mapping.as_ref().and_then(linux::LinuxMapping::identity),
        event_code: None,
        action: mapping.as_ref().map(|m| m.action),
        outcome: mapping.as_ref().map(|m| m.outcome),
        title: entry.map(|e| std::borrow::Cow::Borrowed(e.title.as_str())),
        category: entry.map(|e| e.category),
        src_ip: mapping.as_ref().and_then(|m| m.src_ip),
        dst_ip: None,
        attributes: Attributes::from_value(&Value::Object(attributes)),
        tags: Vec::new(),
        provenance: Provenance {
            evidence_id: ctx.evidence_id,
            member: ctx.member.clone(),
            record: number,
            offset: Some(offset),
            origin: None,
        },
        dedup_key: dedup_key(&ctx.member, &format!("line:{number}")),
    })
}

/// Gives an RFC 3164 date the year that puts it at or before `reference` (+1 day).
fn with_year(
    month: u32,
    day: u32,
    time: chrono::NaiveTime,
    reference: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let limit = reference + TimeDelta::days(1);
    let year = reference.year();
    for y in [year, year - 1] {
        if let Some(date) = NaiveDate::from_ymd_opt(y, month, day) {
            let ts = NaiveDateTime::new(date, time).and_utc();
            if ts <= limit {
                return Some(ts);
            }
        }
    }
    // Feb 29 of a leap year further back.
    (2..=8).find_map(|back| {
        let date = NaiveDate::from_ymd_opt(year - back, month, day)?;
        Some(NaiveDateTime::new(date, time).and_utc())
    })
}

fn parse_line(line: &str) -> Option<Parsed<'_>> {
    let line = line.trim_end();
    let (pri, rest) = match line.strip_prefix('<') {
        Some(r) => {
            let end = r.find('>')?;
            if end == 0 || end > 3 {
                return None;
            }
            let pri: u8 = r[..end].parse().ok().filter(|p| *p <= 191)?;
            (Some(pri), &r[end + 1..])
        }
        None => (None, line),
    };
    if pri.is_some()
        && let Some(r) = rest.strip_prefix("1 ")
    {
        return parse_5424(pri, r);
    }
    if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        let (stamp, r) = rest.split_once(' ')?;
        let ts = DateTime::parse_from_rfc3339(stamp)
            .ok()?
            .with_timezone(&Utc);
        let (host, r) = r.split_once(' ').unwrap_or((r, ""));
        return Some(with_tag(
            Dialect::Rfc3339,
            pri,
            Stamp::Full(ts),
            Some(host),
            r,
        ));
    }
    parse_3164(pri, rest)
}

fn parse_5424(pri: Option<u8>, rest: &str) -> Option<Parsed<'_>> {
    let mut fields = rest.splitn(6, ' ');
    let stamp = fields.next()?;
    let host = nil(fields.next()?);
    let app = nil(fields.next()?);
    let pid = nil(fields.next()?);
    let msgid = nil(fields.next()?);
    let rest = fields.next().unwrap_or("");
    let stamp = if stamp == "-" {
        Stamp::Missing
    } else {
        Stamp::Full(
            DateTime::parse_from_rfc3339(stamp)
                .ok()?
                .with_timezone(&Utc),
        )
    };
    let (structured_data, msg) = split_structured_data(rest)?;
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some(Parsed {
        dialect: Dialect::Rfc5424,
        pri,
        stamp,
        host,
        app,
        pid,
        msgid,
        structured_data,
        msg,
    })
}

fn nil(s: &str) -> Option<&str> {
    (s != "-" && !s.is_empty()).then_some(s)
}

/// Splits `SD MSG`: `-` or one or more `[id k="v" …]` elements (with `\]` escapes).
fn split_structured_data(s: &str) -> Option<(Option<&str>, &str)> {
    if let Some(msg) = s.strip_prefix('-') {
        return Some((None, msg.strip_prefix(' ').unwrap_or(msg)));
    }
    if !s.starts_with('[') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] == b'[' {
        let mut in_quotes = false;
        i += 1;
        loop {
            match bytes.get(i)? {
                b'\\' => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    let (sd, msg) = s.split_at(i);
    Some((Some(sd), msg.strip_prefix(' ').unwrap_or(msg)))
}

fn parse_3164(pri: Option<u8>, rest: &str) -> Option<Parsed<'_>> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| rest.starts_with(m))? as u32 + 1;
    let r = rest.get(3..)?.strip_prefix(' ')?;
    let r = r.strip_prefix(' ').unwrap_or(r);
    let (day, r) = r.split_once(' ')?;
    let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let (time, r) = r.split_once(' ')?;
    let time = chrono::NaiveTime::parse_from_str(time, "%H:%M:%S%.f").ok()?;
    // The leap-year 2000 validates the day of the month (Feb 29 included).
    NaiveDate::from_ymd_opt(2000, month, day)?;
    let (host, r) = r.split_once(' ').unwrap_or((r, ""));
    if host.is_empty() {
        return None;
    }
    Some(with_tag(
        Dialect::Rfc3164,
        pri,
        Stamp::NoYear { month, day, time },
        Some(host),
        r,
    ))
}

/// Splits `tag[pid]: msg` (or `tag: msg`; without a tag the whole rest is the message).
fn with_tag<'a>(
    dialect: Dialect,
    pri: Option<u8>,
    stamp: Stamp,
    host: Option<&'a str>,
    rest: &'a str,
) -> Parsed<'a> {
    let tag_end = rest.find([':', '[', ' ']).unwrap_or(rest.len());
    let (app, pid, msg) = match rest.as_bytes().get(tag_end) {
        Some(b'[') => match rest[tag_end + 1..].split_once("]:") {
            Some((pid, msg)) => (Some(&rest[..tag_end]), Some(pid), msg),
            None => (None, None, rest),
        },
        Some(b':') => (Some(&rest[..tag_end]), None, &rest[tag_end + 1..]),
        _ => (None, None, rest),
    };
    let app = app.filter(|a| !a.is_empty());
    Parsed {
        dialect,
        pri,
        stamp,
        host: host.filter(|h| !h.is_empty() && *h != "-"),
        app,
        pid,
        msgid: None,
        structured_data: None,
        msg: msg.strip_prefix(' ').unwrap_or(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rfc3164_lines_split_into_fields() {
        let p = parse_line(
            "Mar  7 04:02:16 web01 sshd[1234]: Accepted password for bob from 1.2.3.4 port 22 ssh2",
        )
        .unwrap();
        assert_eq!(p.dialect, Dialect::Rfc3164);
        assert_eq!(
            (p.host, p.app, p.pid),
            (Some("web01"), Some("sshd"), Some("1234"))
        );
        assert_eq!(p.msg, "Accepted password for bob from 1.2.3.4 port 22 ssh2");
        let p = parse_line("<86>Dec 31 23:59:59 db kernel: oops").unwrap();
        assert_eq!((p.pri, p.app, p.msg), (Some(86), Some("kernel"), "oops"));
        assert!(parse_line("hello world").is_none());
        assert!(parse_line("Feb 30 00:00:00 h x: y").is_none());
    }

    #[test]
    fn rfc5424_lines_keep_structured_data() {
        let p = parse_line(r#"<38>1 2024-03-01T10:00:00.123456Z host1 sshd 42 ID7 [meta x="a\]b"][o y="z"] Invalid user x from 1.2.3.4"#).unwrap();
        assert_eq!(p.dialect, Dialect::Rfc5424);
        assert_eq!(p.structured_data, Some(r#"[meta x="a\]b"][o y="z"]"#));
        assert_eq!(p.msg, "Invalid user x from 1.2.3.4");
        assert_eq!(
            p.stamp,
            Stamp::Full(
                Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap()
                    + TimeDelta::microseconds(123456)
            )
        );
        let p = parse_line("<13>1 - - - - - -").unwrap();
        assert_eq!((p.stamp, p.msg), (Stamp::Missing, ""));
    }

    #[test]
    fn rfc3164_year_comes_from_the_reference_time() {
        let reference = Utc.with_ymd_and_hms(2024, 1, 5, 0, 0, 0).unwrap();
        let t = chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap();
        assert_eq!(with_year(12, 31, t, reference).unwrap().year(), 2023);
        assert_eq!(with_year(1, 5, t, reference).unwrap().year(), 2024);
        assert_eq!(with_year(2, 29, t, reference).unwrap().year(), 2020);
    }
}
