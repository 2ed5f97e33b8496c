//! The typed filter document: what the JSON looks like, and its JSON Schema.
//!
//! Shapes that serde alone would accept too loosely (a node that is both a group and a
//! leaf, a time range with both `last` and `from`) are rejected while deserializing, so a
//! document that deserializes is well-formed; [`super::FilterDocument::validate`] then checks
//! limits and which operators and values each field takes.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A filter over the events of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ChronoTracer event filter")]
pub struct FilterDocument {
    /// Which part of the timeline; absent = all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeRange>,
    /// The condition events must meet; absent = every event in the time range.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub condition: Option<Node>,
    /// Order of the timeline (ties broken by event id).
    #[serde(default)]
    pub sort: Sort,
    /// Events per page, 1 to 1000.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: u32,
}

fn default_limit() -> u32 {
    100
}

impl Default for FilterDocument {
    fn default() -> Self {
        FilterDocument {
            time: None,
            condition: None,
            sort: Sort::default(),
            limit: default_limit(),
        }
    }
}

/// Timeline order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Oldest first.
    #[default]
    TsAsc,
    /// Newest first.
    TsDesc,
}

/// The time range: `{from, to}` (either may be left out), `{around, window}` (± window)
/// or `{last}` (the span up to now). Instants carry an offset (`2024-03-01T10:00:00+01:00`)
/// or are local times read in the caller's time zone (`2024-03-01T10:00`, `2024-03-01`).
#[derive(Debug, Clone, PartialEq)]
pub enum TimeRange {
    /// From `from` (inclusive) to `to` (inclusive).
    Between {
        /// Start; `None` = open.
        from: Option<TimePoint>,
        /// End; `None` = open.
        to: Option<TimePoint>,
    },
    /// `at - window ..= at + window`.
    Around {
        /// The centre.
        at: TimePoint,
        /// Half the width.
        window: Span,
    },
    /// `now - span ..= now`; days and weeks are calendar days in the caller's time zone.
    Last(Span),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<TimePoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<TimePoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    around: Option<TimePoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<Span>,
}

impl TryFrom<RawTimeRange> for TimeRange {
    type Error = String;

    fn try_from(r: RawTimeRange) -> Result<Self, String> {
        let forms = [
            r.from.is_some() || r.to.is_some(),
            r.around.is_some() || r.window.is_some(),
            r.last.is_some(),
        ];
        if forms.iter().filter(|f| **f).count() != 1 {
            return Err("a time range is exactly one of {\"from\", \"to\"}, \
                        {\"around\", \"window\"} or {\"last\"}"
                .into());
        }
        if let Some(span) = r.last {
            return Ok(TimeRange::Last(span));
        }
        match (r.around, r.window) {
            (Some(at), Some(window)) => Ok(TimeRange::Around { at, window }),
            (Some(_), None) => Err("`around` needs a `window`, e.g. \"15m\"".into()),
            (None, Some(_)) => Err("`window` needs an `around` instant".into()),
            (None, None) => Ok(TimeRange::Between {
                from: r.from,
                to: r.to,
            }),
        }
    }
}

impl From<TimeRange> for RawTimeRange {
    fn from(t: TimeRange) -> Self {
        match t {
            TimeRange::Between { from, to } => RawTimeRange {
                from,
                to,
                ..Default::default()
            },
            TimeRange::Around { at, window } => RawTimeRange {
                around: Some(at),
                window: Some(window),
                ..Default::default()
            },
            TimeRange::Last(span) => RawTimeRange {
                last: Some(span),
                ..Default::default()
            },
        }
    }
}

impl Serialize for TimeRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawTimeRange::from(self.clone()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawTimeRange::deserialize(d)?;
        TimeRange::try_from(raw).map_err(serde::de::Error::custom)
    }
}

// Schema-only mirror of the three time-range shapes (serde goes through `RawTimeRange`).
/// A time range: exactly one of the three shapes.
#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
enum TimeRangeSchema {
    /// Between two instants (inclusive); either may be left out.
    Between {
        from: Option<TimePoint>,
        to: Option<TimePoint>,
    },
    /// `around` ± `window`.
    Around { around: TimePoint, window: Span },
    /// The last span up to now.
    Last { last: Span },
}

impl JsonSchema for TimeRange {
    fn schema_name() -> Cow<'static, str> {
        "TimeRange".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        TimeRangeSchema::json_schema(generator)
    }
}

/// An instant: RFC 3339 with an offset, or a local date-time / date read in the caller's
/// time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePoint {
    /// `2024-03-01T10:00:00Z`, `2024-03-01T10:00:00.123+01:00`.
    Fixed(DateTime<FixedOffset>),
    /// `2024-03-01T10:00[:00[.123]]` or `2024-03-01` (midnight), in the caller's zone.
    Local(NaiveDateTime),
}

impl FromStr for TimePoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let point = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            TimePoint::Fixed(t)
        } else if let Some(t) = [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S%.f",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        {
            TimePoint::Local(t)
        } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            TimePoint::Local(d.and_time(chrono::NaiveTime::MIN))
        } else {
            return Err(format!(
                "`{}` is not a time; use RFC 3339 (2024-03-01T10:00:00+01:00) \
                 or a local time (2024-03-01T10:00)",
                truncate(s)
            ));
        };
        let year = match point {
            TimePoint::Fixed(t) => t.year(),
            TimePoint::Local(t) => t.year(),
        };
        if !(1..=9999).contains(&year) {
            return Err(format!("year {year} is out of range 1..9999"));
        }
        Ok(point)
    }
}

impl fmt::Display for TimePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimePoint::Fixed(t) => {
                f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
            TimePoint::Local(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S%.f")),
        }
    }
}

impl Serialize for TimePoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimePoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for TimePoint {
    fn schema_name() -> Cow<'static, str> {
        "TimePoint".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "RFC 3339 with offset (2024-03-01T10:00:00+01:00), or a local \
                            date-time or date (2024-03-01T10:00, 2024-03-01) read in the \
                            caller's time zone",
            "examples": ["2024-03-01T10:00:00Z", "2024-03-01T10:00"]
        })
    }
}

/// A length of time: a count and a unit, written `"90s"`, `"15m"`, `"24h"`, `"7d"`, `"2w"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// How many units (1 or more; the whole span is at most 100 years).
    pub n: u32,
    /// The unit.
    pub unit: SpanUnit,
}

/// The unit of a [`Span`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanUnit {
    /// `s`
    Seconds,
    /// `m`
    Minutes,
    /// `h`
    Hours,
    /// `d` (calendar days in the caller's zone for `last`)
    Days,
    /// `w` (7 calendar days)
    Weeks,
}

impl SpanUnit {
    fn suffix(self) -> char {
        match self {
            SpanUnit::Seconds => 's',
            SpanUnit::Minutes => 'm',
            SpanUnit::Hours => 'h',
            SpanUnit::Days => 'd',
            SpanUnit::Weeks => 'w',
        }
    }

    /// Seconds in one unit (a day counted as 24 hours).
    pub fn seconds(self) -> i64 {
        match self {
            SpanUnit::Seconds => 1,
            SpanUnit::Minutes => 60,
            SpanUnit::Hours => 3_600,
            SpanUnit::Days => 86_400,
            SpanUnit::Weeks => 7 * 86_400,
        }
    }
}

impl Span {
    /// Longest span accepted: 100 years of seconds.
    pub const MAX_SECONDS: i64 = 100 * 366 * 86_400;

    /// The span as a fixed duration (days = 24 h).
    pub fn duration(self) -> chrono::TimeDelta {
        chrono::TimeDelta::seconds(i64::from(self.n) * self.unit.seconds())
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{}` is not a span; write a count and a unit s, m, h, d or w, e.g. \"15m\"",
                truncate(s)
            )
        };
        let unit = match s.chars().last() {
            Some('s') => SpanUnit::Seconds,
            Some('m') => SpanUnit::Minutes,
            Some('h') => SpanUnit::Hours,
            Some('d') => SpanUnit::Days,
            Some('w') => SpanUnit::Weeks,
            _ => return Err(bad()),
        };
        let digits = &s[..s.len() - 1];
        if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = digits.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err("a span must be at least 1 unit".into());
        }
        if i64::from(n) * unit.seconds() > Span::MAX_SECONDS {
            return Err(format!("span `{s}` is longer than 100 years"));
        }
        Ok(Span { n, unit })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.n, self.unit.suffix())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Span {
    fn schema_name() -> Cow<'static, str> {
        "Span".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[1-9][0-9]{0,8}[smhdw]$",
            "description": "count + unit (s, m, h, d, w), at most 100 years",
            "examples": ["15m", "24h", "7d"]
        })
    }
}

/// A node of the boolean tree: a group or a leaf condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Every child holds (`{"all": [..]}`).
    All(Vec<Node>),
    /// At least one child holds (`{"any": [..]}`).
    Any(Vec<Node>),
    /// The child does not hold (`{"not": {..}}`); events lacking the field match.
    Not(Box<Node>),
    /// `{"field", "op", "value"}`.
    Leaf(Leaf),
}

/// A condition on one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Leaf {
    /// What to test.
    pub field: Field,
    /// How to test it.
    pub op: Op,
    /// The operand: a string, number or boolean; an array for `in`/`nin`; absent (or a
    /// boolean) for `exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    all: Option<Vec<Node>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    any: Option<Vec<Node>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not: Option<Box<Node>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    op: Option<Op>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
}

impl TryFrom<RawNode> for Node {
    type Error = String;

    fn try_from(r: RawNode) -> Result<Self, String> {
        let is_leaf = r.field.is_some() || r.op.is_some() || r.value.is_some();
        let shapes = [r.all.is_some(), r.any.is_some(), r.not.is_some(), is_leaf];
        if shapes.iter().filter(|s| **s).count() != 1 {
            return Err(
                "a condition is exactly one of {\"all\": [..]}, {\"any\": [..]}, \
                        {\"not\": {..}} or {\"field\", \"op\", \"value\"}"
                    .into(),
            );
        }
        Ok(match (r.all, r.any, r.not) {
            (Some(children), _, _) => Node::All(children),
            (_, Some(children), _) => Node::Any(children),
            (_, _, Some(child)) => Node::Not(child),
            _ => match (r.field, r.op) {
                (Some(field), Some(op)) => Node::Leaf(Leaf {
                    field,
                    op,
                    value: r.value,
                }),
                (None, _) => return Err("this condition has no `field`".into()),
                (_, None) => return Err("this condition has no `op`".into()),
            },
        })
    }
}

impl From<Node> for RawNode {
    fn from(n: Node) -> Self {
        match n {
            Node::All(c) => RawNode {
                all: Some(c),
                ..Default::default()
            },
            Node::Any(c) => RawNode {
                any: Some(c),
                ..Default::default()
            },
            Node::Not(c) => RawNode {
                not: Some(c),
                ..Default::default()
            },
            Node::Leaf(l) => RawNode {
                field: Some(l.field),
                op: Some(l.op),
                value: l.value,
                ..Default::default()
            },
        }
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawNode::from(self.clone()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawNode::deserialize(d)?;
        Node::try_from(raw).map_err(serde::de::Error::custom)
    }
}

// Schema-only mirror of the four node shapes (serde goes through `RawNode`).
/// A condition: a group (`all`, `any`), a negation (`not`) or a leaf; nested at most 4
/// groups deep, at most 32 leaves in a document.
#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
enum NodeSchema {
    /// Every child holds.
    All {
        #[schemars(length(min = 1))]
        all: Vec<Node>,
    },
    /// At least one child holds.
    Any {
        #[schemars(length(min = 1))]
        any: Vec<Node>,
    },
    /// The child does not hold.
    Not { not: Box<Node> },
    /// A condition on one field.
    Leaf(Leaf),
}

impl JsonSchema for Node {
    fn schema_name() -> Cow<'static, str> {
        "Node".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        NodeSchema::json_schema(generator)
    }
}

/// The fields a filter may test (an allow-list; nothing else reaches SQL).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// Event time (UTC, microseconds).
    Ts,
    /// Data type, e.g. `windows:evtx:record`.
    DataType,
    /// Where the record was logged: EVTX channel (`Security`), syslog program (`sshd`),
    /// CloudTrail event source (`iam.amazonaws.com`).
    Source,
    /// Event id or API name, e.g. `4624`, `ConsoleLogin`.
    EventCode,
    /// Normalized action (see `vocab::Action`).
    Action,
    /// Normalized outcome (see `vocab::Outcome`).
    Outcome,
    /// The event catalog's category of the event (see `vocab::Category`).
    Category,
    /// Message text.
    Message,
    /// Source IP address.
    SrcIp,
    /// Destination IP address.
    DstIp,
    /// One of the event's tags.
    Tag,
    /// A label someone put on the event.
    Label,
    /// Device: its name (case-insensitive) or id.
    Device,
    /// Identity: its value (case-insensitive) or id.
    Identity,
    /// A key of the event's attributes (`attr.<key>`); a dotted key also reaches nested
    /// objects (`attr.Event.EventData.LogonType`), an exact top-level key first.
    Attr(String),
}

impl Field {
    /// The named fields, with their names (everything but `attr.<key>`).
    pub const NAMED: &'static [(&'static str, Field)] = &[
        ("ts", Field::Ts),
        ("data_type", Field::DataType),
        ("source", Field::Source),
        ("event_code", Field::EventCode),
        ("action", Field::Action),
        ("outcome", Field::Outcome),
        ("category", Field::Category),
        ("message", Field::Message),
        ("src_ip", Field::SrcIp),
        ("dst_ip", Field::DstIp),
        ("tag", Field::Tag),
        ("label", Field::Label),
        ("device", Field::Device),
        ("identity", Field::Identity),
    ];

    /// Longest attribute key.
    pub const MAX_ATTR_KEY_CHARS: usize = 128;
}

impl FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((_, f)) = Field::NAMED.iter().find(|(n, _)| *n == s) {
            return Ok(f.clone());
        }
        if let Some(key) = s.strip_prefix("attr.") {
            let len = key.chars().count();
            if len == 0 || len > Field::MAX_ATTR_KEY_CHARS || key.chars().any(char::is_control) {
                return Err(format!(
                    "attribute key must be 1 to {} printable characters",
                    Field::MAX_ATTR_KEY_CHARS
                ));
            }
            return Ok(Field::Attr(key.to_owned()));
        }
        let names: Vec<&str> = Field::NAMED.iter().map(|(n, _)| *n).collect();
        Err(format!(
            "unknown field `{}`; use one of {} or attr.<key>",
            truncate(s),
            names.join(", ")
        ))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Attr(key) => write!(f, "attr.{key}"),
            named => {
                let name = Field::NAMED
                    .iter()
                    .find(|(_, v)| v == named)
                    .map(|(n, _)| *n)
                    .unwrap_or("?");
                f.write_str(name)
            }
        }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Field {
    fn schema_name() -> Cow<'static, str> {
        "Field".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Field::NAMED.iter().map(|(n, _)| *n).collect();
        json_schema!({
            "type": "string",
            "description": "a named field, or attr.<key> for a key of the event's attributes",
            "anyOf": [
                { "enum": names },
                { "pattern": "^attr\\..{1,128}$" }
            ]
        })
    }
}

/// Operators. Which fields take which operator is checked by validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal (text is case-sensitive, except device and identity names).
    Eq,
    /// Not equal; events lacking the field match.
    Neq,
    /// Equal to one of up to 100 values.
    In,
    /// Equal to none of the values; events lacking the field match.
    Nin,
    /// Contains the text, case-insensitive.
    Contains,
    /// Starts with the text, case-insensitive.
    Prefix,
    /// Greater than (time, numeric attribute).
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// The field is present (value `true` or absent) or absent (value `false`).
    Exists,
    /// The address is inside a CIDR block (`10.0.0.0/8`).
    Cidr,
}

impl Op {
    /// Every operator.
    pub const ALL: &'static [Op] = &[
        Op::Eq,
        Op::Neq,
        Op::In,
        Op::Nin,
        Op::Contains,
        Op::Prefix,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::Exists,
        Op::Cidr,
    ];

    /// The operator's name in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::In => "in",
            Op::Nin => "nin",
            Op::Contains => "contains",
            Op::Prefix => "prefix",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Exists => "exists",
            Op::Cidr => "cidr",
        }
    }
}

/// First 64 characters of user text, for error messages.
pub(crate) fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(64).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_through_json() {
        let text = r#"{"time":{"around":"2024-03-01T10:00:00.5","window":"15m"},
            "where":{"any":[{"not":{"field":"attr.Logon Type","op":"eq","value":3}},
                            {"field":"label","op":"exists"}]},"sort":"ts_desc","limit":7}"#;
        let doc: FilterDocument = serde_json::from_str(text).unwrap();
        let again: FilterDocument =
            serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
        assert_eq!(doc, again);
        assert_eq!(
            serde_json::to_value(&doc.time).unwrap(),
            serde_json::json!({"around": "2024-03-01T10:00:00.500", "window": "15m"})
        );
        let last: FilterDocument = serde_json::from_str(r#"{"time":{"last":"7d"}}"#).unwrap();
        assert_eq!(
            last.time,
            Some(TimeRange::Last(Span {
                n: 7,
                unit: SpanUnit::Days
            }))
        );
        assert_eq!(last.limit, 100);
    }

    #[test]
    fn spans_and_fields_reject_what_they_cannot_mean() {
        for bad in ["0m", "15", "m", "-1h", "1.5h", "99999999999d", "40000w"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
        assert!("attr.".parse::<Field>().is_err());
        assert!("attr.a b.c".parse::<Field>().is_ok());
        assert!("attr.a\nb".parse::<Field>().is_err());
        assert!("Action".parse::<Field>().is_err());
    }
}
