//! Normalization shared by the exports of other forensic tools (Timesketch, Plaso): a flat
//! JSON object with a time, a message and attributes. The object itself becomes the
//! event's attributes unchanged.
//!
//! Fields read (first one present wins): device `hostname`, `computer_name`, `host`;
//! identity `username`, `user`, `user_name`; event code `event_identifier`, `event_id`;
//! addresses `src_ip`/`source_ip`, `dst_ip`/`dest_ip`/`destination_ip`; tags `tag`;
//! origin `display_name`, `filename`. Records of Windows event logs
//! (`data_type` `windows:evtx:record`) and of syslog (`syslog:*`) get the same actions as
//! the native parsers give them.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::MemberContext;
use crate::pipeline::event::{
    Attributes, Identity, NormalizedEvent, Provenance, dedup_key, parse_ip, truncate_to_micros,
};
use crate::pipeline::normalize::{clip_message, json_str, linux, windows};

/// What differs between the tools.
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    /// Our parser name.
    pub parser: &'static str,
    /// `data_type` when the record has none.
    pub default_data_type: &'static str,
}

/// One record as read, before normalization.
#[derive(Debug)]
pub struct Record {
    /// The record's fields.
    pub fields: Map<String, Value>,
    /// Its JSON text when it was read as JSON (kept verbatim as the attributes).
    pub raw: Option<String>,
    /// Its time.
    pub ts: DateTime<Utc>,
    /// Its line number in the member.
    pub line: u64,
    /// Its byte offset in the member.
    pub offset: Option<u64>,
    /// Where the upstream tool found it, when the format says (Plaso `pathspec`).
    pub origin: Option<String>,
}

/// Builds the event of one record.
pub fn event(rec: Record, flavor: Flavor, ctx: &MemberContext) -> NormalizedEvent {
    let Record {
        fields: record,
        raw,
        ts,
        line: record_no,
        offset,
        origin,
    } = rec;
    let text = |names: &[&str]| -> Option<String> {
        names.iter().find_map(|n| {
            record
                .get(*n)
                .and_then(json_str)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
    };
    let data_type = text(&["data_type"]).unwrap_or_else(|| flavor.default_data_type.to_owned());
    let source =
        text(&["parser", "source_short", "source"]).unwrap_or_else(|| flavor.parser.to_owned());
    let event_code = text(&["event_identifier", "event_id"]);
    let identity_name = text(&["username", "user", "user_name"]);
    let mut identity = identity_name.as_deref().and_then(|n| {
        if n.contains('\\') {
            Identity::windows(Some(n), None, None)
        } else {
            Identity::user(n)
        }
    });
    let mut action = None;
    let mut entry = None;
    let mut src_ip = text(&["src_ip", "source_ip"]).and_then(|s| parse_ip(&s));
    if data_type == chrono_contract::data_type::WINDOWS_EVTX {
        let provider = text(&["source_name", "provider"]).unwrap_or_default();
        if let Some(id) = event_code.as_deref().and_then(|c| c.parse::<u32>().ok()) {
            action = windows::action(&provider, id, None);
            entry = crate::knowledge::catalog().windows(&provider, id);
        }
    } else if data_type.starts_with("syslog") {
        let program = text(&["reporter", "program"]).unwrap_or_default();
        let body = text(&["body"]).unwrap_or_default();
        if let Some(m) = linux::map(&program, &body) {
            entry = crate::knowledge::catalog().linux(m.key);
            action = Some((m.action, m.outcome));
            identity = identity.or_else(|| m.identity());
            src_ip = src_ip.or(m.src_ip);
        }
    }
    let origin = origin.or_else(|| text(&["display_name", "filename"]));
    let message = text(&["message"]).unwrap_or_else(|| format!("{data_type} record"));
    NormalizedEvent {
        ts: truncate_to_micros(ts),
        timestamp_desc: text(&["timestamp_desc"]).unwrap_or_default(),
        data_type,
        source,
        parser: flavor.parser.to_owned(),
        message: clip_message(message),
        device: text(&["hostname", "computer_name", "host"]),
        identity,
        event_code,
        action: action.map(|a| a.0),
        outcome: action.map(|a| a.1),
        title: entry.map(|e| std::borrow::Cow::Borrowed(e.title.as_str())),
        category: entry.map(|e| e.category),
        src_ip,
        dst_ip: text(&["dst_ip", "dest_ip", "destination_ip"]).and_then(|s| parse_ip(&s)),
        tags: record.get("tag").map(tags).unwrap_or_default(),
        provenance: Provenance {
            evidence_id: ctx.evidence_id,
            member: ctx.member.clone(),
            record: record_no,
            offset,
            origin,
        },
        dedup_key: dedup_key(&ctx.member, &format!("line:{record_no}")),
        attributes: match raw.map(Attributes::from_json) {
            Some(Ok(attributes)) => attributes,
            _ => Attributes::from_value(&Value::Object(record)),
        },
    }
}

/// Tags as JSON arrays, or strings as CSV exports write them (`a,b` or `['a', 'b']`).
fn tags(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(json_str)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        Value::String(s) => {
            let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
            inner
                .split(',')
                .map(|t| t.trim().trim_matches(['\'', '"']).trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Parses a `datetime` as the tools write it: RFC 3339, or without a zone (taken as UTC).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(ts) = DateTime::parse_from_rfc3339(s) {
        return Some(ts.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(ts) = DateTime::parse_from_str(s, fmt) {
            return Some(ts.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(ts) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(ts.and_utc());
        }
    }
    None
}

/// Microseconds since the epoch, from a JSON number or a numeric string.
pub fn micros(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.0e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_come_from_arrays_and_csv_strings() {
        assert_eq!(tags(&json!(["a", " b "])), vec!["a", "b"]);
        assert_eq!(tags(&json!("['malware', 'c2']")), vec!["malware", "c2"]);
        assert_eq!(tags(&json!("")), Vec::<String>::new());
    }

    #[test]
    fn datetimes_with_and_without_zone_parse() {
        let a = parse_datetime("2015-07-24T19:01:01+00:00").unwrap();
        assert_eq!(a.timestamp(), 1437764461);
        assert_eq!(parse_datetime("2015-07-24 19:01:01").unwrap(), a);
        assert_eq!(parse_datetime("2015-07-24T21:01:01+02:00").unwrap(), a);
        assert!(parse_datetime("yesterday").is_none());
    }
}
