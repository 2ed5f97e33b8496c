//! Plaso `json_line` output (`psort.py -o json_line`): one event object a line, with the
//! time in `timestamp` (µs) and/or a nested `date_time` object (dfdatetime's
//! serialization), and the file the event came from in a nested `pathspec` chain.
//!
//! `date_time` classes read: `Filetime`, `PosixTime`, `PosixTimeInMilliseconds`,
//! `PosixTimeInMicroseconds`, `PosixTimeInNanoseconds`, `JavaTime`, `WebKitTime`,
//! `CocoaTime`, `HFSTime`, `TimeElements` (and `…InMilliseconds`/`…InMicroseconds`),
//! `Systemtime`; a `time_zone_offset` (minutes) is applied. `NotSet`/`SemanticTime` and
//! other classes have no usable time: such records are bad records unless a top-level
//! `timestamp` is present.
//!
//! The `pathspec` chain becomes the event's provenance origin, outermost first:
//! `OS:/cases/disk.raw > TSK:/Windows/System32/winevt/Logs/Security.evtx`.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use std::io::BufRead;

use super::MemberContext;
use super::generic::{self, Flavor};
use super::timesketch::json_lines;
use crate::pipeline::accounting::RecordSink;
use crate::pipeline::error::PipelineError;
use crate::pipeline::event::ts_from_micros;
use crate::pipeline::normalize::json_str;

const PLASO: Flavor = Flavor {
    parser: "plaso_json_line",
    default_data_type: "plaso:event",
};

/// Parses a Plaso json_line member.
pub fn parse(
    reader: &mut dyn BufRead,
    ctx: &MemberContext,
    sink: &mut dyn RecordSink,
) -> Result<(), PipelineError> {
    json_lines(
        reader,
        ctx,
        sink,
        "reading a plaso json_line file",
        |map, raw, ctx, line, offset| {
            let ts = time_of(&map)?;
            let origin = map.get("pathspec").and_then(pathspec);
            let rec = generic::Record {
                fields: map,
                raw: Some(raw),
                ts,
                line,
                offset: Some(offset),
                origin,
            };
            Ok(generic::event(rec, PLASO, ctx))
        },
    )
}

fn time_of(map: &Map<String, Value>) -> Result<DateTime<Utc>, String> {
    if let Some(ts) = map
        .get("timestamp")
        .and_then(generic::micros)
        .and_then(ts_from_micros)
    {
        return Ok(ts);
    }
    if let Some(dt) = map.get("date_time") {
        return date_time(dt);
    }
    if let Some(ts) = map
        .get("datetime")
        .and_then(Value::as_str)
        .and_then(generic::parse_datetime)
    {
        return Ok(ts);
    }
    Err("no timestamp, date_time or datetime".into())
}

/// Decodes a serialized dfdatetime object.
fn date_time(dt: &Value) -> Result<DateTime<Utc>, String> {
    let class = dt
        .get("__class_name__")
        .and_then(Value::as_str)
        .unwrap_or("");
    let int = |k: &str| dt.get(k).and_then(generic::micros);
    let float = |k: &str| dt.get(k).and_then(Value::as_f64).filter(|f| f.is_finite());
    const FILETIME_EPOCH_DELTA_US: i64 = 11_644_473_600_000_000;
    let micros: Option<i64> = match class {
        "Filetime" => int("timestamp").map(|t| t / 10 - FILETIME_EPOCH_DELTA_US),
        "PosixTime" => int("timestamp").and_then(|t| t.checked_mul(1_000_000)),
        "PosixTimeInMilliseconds" | "JavaTime" => {
            int("timestamp").and_then(|t| t.checked_mul(1_000))
        }
        "PosixTimeInMicroseconds" => int("timestamp"),
        "PosixTimeInNanoseconds" => int("timestamp").map(|t| t / 1_000),
        "WebKitTime" => int("timestamp").map(|t| t - FILETIME_EPOCH_DELTA_US),
        "CocoaTime" => float("timestamp").map(|t| ((t + 978_307_200.0) * 1e6) as i64),
        "HFSTime" => int("timestamp").map(|t| (t - 2_082_844_800) * 1_000_000),
        "TimeElements" | "TimeElementsInMilliseconds" | "TimeElementsInMicroseconds" => {
            elements(dt.get("time_elements_tuple"), class)
        }
        "Systemtime" => dt
            .get("system_time_tuple")
            .and_then(Value::as_array)
            .and_then(|t| {
                let n = |i: usize| t.get(i).and_then(Value::as_i64);
                let (y, mo, d) = (n(0)?, n(1)?, n(3)?);
                civil(y, mo, d, n(4)?, n(5)?, n(6)?, n(7).unwrap_or(0) * 1_000)
            }),
        "" => return Err("date_time has no __class_name__".into()),
        other => return Err(format!("date_time of class {other} has no usable time")),
    };
    let offset_minutes = dt
        .get("time_zone_offset")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    micros
        .and_then(|m| m.checked_sub(offset_minutes.checked_mul(60_000_000)?))
        .and_then(ts_from_micros)
        .ok_or_else(|| format!("date_time of class {class} is out of range or incomplete"))
}

fn elements(tuple: Option<&Value>, class: &str) -> Option<i64> {
    let t = tuple?.as_array()?;
    let n = |i: usize| t.get(i).and_then(Value::as_i64);
    let fraction = match class {
        "TimeElementsInMilliseconds" => n(6)? * 1_000,
        "TimeElementsInMicroseconds" => n(6)?,
        _ => 0,
    };
    civil(n(0)?, n(1)?, n(2)?, n(3)?, n(4)?, n(5)?, fraction)
}

fn civil(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> Option<i64> {
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(y).ok()?,
        u32::try_from(mo).ok()?,
        u32::try_from(d).ok()?,
    )?;
    let time = chrono::NaiveTime::from_hms_micro_opt(
        u32::try_from(h).ok()?,
        u32::try_from(mi).ok()?,
        u32::try_from(s).ok()?,
        u32::try_from(us).ok()?,
    )?;
    Some(date.and_time(time).and_utc().timestamp_micros())
}

/// Flattens a pathspec chain, outermost first.
fn pathspec(spec: &Value) -> Option<String> {
    let mut parts = Vec::new();
    let mut current = Some(spec);
    while let Some(spec) = current.filter(|_| parts.len() < 16) {
        let kind = spec.get("type_indicator").and_then(json_str);
        let place = spec
            .get("location")
            .and_then(json_str)
            .or_else(|| spec.get("inode").and_then(json_str));
        match (kind, place) {
            (Some(k), Some(p)) => parts.push(format!("{k}:{p}")),
            (Some(k), None) => parts.push(k.into_owned()),
            (None, Some(p)) => parts.push(p.into_owned()),
            (None, None) => {}
        }
        current = spec.get("parent");
    }
    parts.reverse();
    (!parts.is_empty()).then(|| parts.join(" > "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn date_time_classes_decode_to_the_same_instant() {
        let want = 1_437_764_461_000_000; // 2015-07-24T19:01:01Z
        for dt in [
            json!({"__class_name__": "PosixTime", "timestamp": 1_437_764_461}),
            json!({"__class_name__": "PosixTimeInMicroseconds", "timestamp": want}),
            json!({"__class_name__": "Filetime", "timestamp": 130_822_380_610_000_000_i64}),
            json!({"__class_name__": "TimeElements", "time_elements_tuple": [2015, 7, 24, 19, 1, 1]}),
            json!({"__class_name__": "TimeElements", "time_elements_tuple": [2015, 7, 24, 21, 1, 1], "time_zone_offset": 120}),
            json!({"__class_name__": "Systemtime", "system_time_tuple": [2015, 7, 5, 24, 19, 1, 1, 0]}),
        ] {
            assert_eq!(date_time(&dt).unwrap().timestamp_micros(), want, "{dt}");
        }
        assert!(date_time(&json!({"__class_name__": "NotSet", "string": "Not set"})).is_err());
    }

    #[test]
    fn pathspec_chain_is_flattened_outermost_first() {
        let spec = json!({"type_indicator": "TSK", "location": "/Windows/x.evtx", "inode": 5,
            "parent": {"type_indicator": "OS", "location": "/cases/disk.raw"}});
        assert_eq!(
            pathspec(&spec).unwrap(),
            "OS:/cases/disk.raw > TSK:/Windows/x.evtx"
        );
    }
}
