//! Validation: the issue's limits, which operators each field takes, and the type of every
//! value. Each error names the JSON path of the offending part (`$.where.any[2].value`),
//! so a person, the UI or the AI translator can fix exactly that.
//!
//! [`check_leaf`] turns a leaf into a typed [`Pred`], which the compiler emits; validation
//! and compilation therefore cannot disagree about what a leaf means.

use std::str::FromStr;

use serde_json::Value;
use sqlx::types::ipnetwork::IpNetwork;
use uuid::Uuid;

use super::document::{Field, FilterDocument, Leaf, Node, Op, TimePoint, truncate};
use crate::vocab::{Action, Category, Outcome};

/// Deepest nesting of `all`/`any`/`not` above a leaf.
pub const MAX_DEPTH: usize = 4;
/// Most leaves in one document.
pub const MAX_LEAVES: usize = 32;
/// Most values in one `in`/`nin`.
pub const MAX_IN_VALUES: usize = 100;
/// Longest string value, in characters.
pub const MAX_STRING_CHARS: usize = 256;
/// Largest `limit`.
pub const MAX_LIMIT: u32 = 1000;

/// A document that cannot be used, and where (a JSON path from `$`, the document root).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct FilterError {
    /// JSON path of the offending part, e.g. `$.where.all[1].value`.
    pub path: String,
    /// What is wrong.
    pub kind: FilterErrorKind,
}

/// What is wrong with a filter document.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterErrorKind {
    /// Not JSON, or not the document's shape.
    #[error("{0}")]
    Syntax(String),
    /// Too deeply nested.
    #[error("conditions are nested more than {MAX_DEPTH} levels deep; flatten the tree")]
    TooDeep,
    /// Too many leaves.
    #[error("more than {MAX_LEAVES} conditions; split the question into several filters")]
    TooManyLeaves,
    /// An empty group.
    #[error("an `all`/`any` group needs at least one condition")]
    EmptyGroup,
    /// `in`/`nin` list size.
    #[error("`in`/`nin` take 1 to {MAX_IN_VALUES} values")]
    InListSize,
    /// A string value is too long.
    #[error("strings are at most {MAX_STRING_CHARS} characters")]
    StringTooLong,
    /// `limit` out of range.
    #[error("limit must be between 1 and {MAX_LIMIT}")]
    Limit,
    /// Operator not available for the field.
    #[error("field `{field}` does not take operator `{op}`; it takes {allowed}")]
    OpNotAllowed {
        /// The field.
        field: String,
        /// The operator.
        op: &'static str,
        /// Operators the field takes.
        allowed: String,
    },
    /// A value of the wrong type or form.
    #[error("{0}")]
    BadValue(String),
    /// A time that cannot be resolved.
    #[error("{0}")]
    BadTime(String),
}

impl FilterError {
    pub(crate) fn new(path: impl Into<String>, kind: FilterErrorKind) -> Self {
        FilterError {
            path: path.into(),
            kind,
        }
    }

    fn bad(path: &str, msg: impl Into<String>) -> Self {
        FilterError::new(path, FilterErrorKind::BadValue(msg.into()))
    }
}

/// A filter document that is not a JSON object (an array, a string, a number).
fn not_an_object() -> FilterError {
    FilterError::new(
        "$",
        FilterErrorKind::Syntax("a filter document must be a JSON object".into()),
    )
}

impl FilterDocument {
    /// Deserializes untrusted JSON and validates it. Shape errors carry the path serde was
    /// at (`$.where.all[0].op`), limit and value errors the path of the offending part.
    pub fn parse(json: &[u8]) -> Result<FilterDocument, FilterError> {
        // serde would read a JSON array as the struct's fields in order
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(not_an_object());
        }
        let de = &mut serde_json::Deserializer::from_slice(json);
        let doc: FilterDocument = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = json_path(&e.path().to_string());
            FilterError::new(path, FilterErrorKind::Syntax(e.into_inner().to_string()))
        })?;
        doc.validate()?;
        Ok(doc)
    }

    /// [`FilterDocument::parse`] from an already parsed JSON value.
    pub fn from_value(value: Value) -> Result<FilterDocument, FilterError> {
        if !value.is_object() {
            return Err(not_an_object());
        }
        let doc: FilterDocument = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = json_path(&e.path().to_string());
            FilterError::new(path, FilterErrorKind::Syntax(e.into_inner().to_string()))
        })?;
        doc.validate()?;
        Ok(doc)
    }

    /// Checks the limits (depth, leaves, list sizes, string lengths, limit) and that every
    /// leaf's operator and value suit its field. Time zones are not needed here; a local
    /// time that falls in a DST gap is reported when the range is resolved.
    pub fn validate(&self) -> Result<(), FilterError> {
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(FilterError::new("$.limit", FilterErrorKind::Limit));
        }
        if let Some(node) = &self.condition {
            let mut leaves = 0;
            walk(node, "$.where", 0, &mut leaves)?;
        }
        Ok(())
    }
}

fn json_path(serde_path: &str) -> String {
    if serde_path == "." || serde_path.is_empty() {
        "$".into()
    } else if serde_path.starts_with('[') {
        format!("${serde_path}")
    } else {
        format!("$.{serde_path}")
    }
}

fn walk(node: &Node, path: &str, depth: usize, leaves: &mut usize) -> Result<(), FilterError> {
    match node {
        Node::All(children) | Node::Any(children) => {
            let key = if matches!(node, Node::All(_)) {
                "all"
            } else {
                "any"
            };
            let here = format!("{path}.{key}");
            if depth + 1 > MAX_DEPTH {
                return Err(FilterError::new(here, FilterErrorKind::TooDeep));
            }
            if children.is_empty() {
                return Err(FilterError::new(here, FilterErrorKind::EmptyGroup));
            }
            for (i, child) in children.iter().enumerate() {
                walk(child, &format!("{here}[{i}]"), depth + 1, leaves)?;
            }
            Ok(())
        }
        Node::Not(child) => {
            let here = format!("{path}.not");
            if depth + 1 > MAX_DEPTH {
                return Err(FilterError::new(here, FilterErrorKind::TooDeep));
            }
            walk(child, &here, depth + 1, leaves)
        }
        Node::Leaf(leaf) => {
            *leaves += 1;
            if *leaves > MAX_LEAVES {
                return Err(FilterError::new(path, FilterErrorKind::TooManyLeaves));
            }
            check_leaf(leaf, path).map(|_| ())
        }
    }
}

/// Comparison of an ordered value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }
}

/// A device or identity reference: ids and/or names.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Refs {
    pub ids: Vec<Uuid>,
    pub names: Vec<String>,
}

/// What a leaf tests, typed. `neq`/`nin` are their positive forms with `negated = true`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pred {
    Time(Cmp, TimePoint),
    TextEq(&'static str, Vec<String>),
    TextLike(&'static str, String),
    NotNull(&'static str),
    IpEq(&'static str, Vec<IpNetwork>),
    IpIn(&'static str, IpNetwork),
    TagAny(Vec<String>),
    TagExists,
    LabelAny(Vec<String>),
    LabelExists,
    /// Device or identity, by ids and/or names.
    RefEq(RefKind, Refs),
    RefLike(RefKind, String),
    AttrEq(String, Vec<String>),
    AttrLike(String, String),
    AttrExists(String),
    AttrNum(String, Cmp, f64),
}

/// Which lookup table a reference field points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefKind {
    Device,
    Identity,
}

/// A checked leaf: its predicate, and whether it is negated (`neq`, `nin`, `exists: false`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checked {
    pub pred: Pred,
    pub negated: bool,
}

fn allowed_ops(field: &Field) -> &'static [Op] {
    use Op::*;
    match field {
        Field::Ts => &[Eq, Neq, Gt, Gte, Lt, Lte],
        Field::DataType | Field::Source | Field::EventCode | Field::Message => {
            &[Eq, Neq, In, Nin, Contains, Prefix, Exists]
        }
        Field::Action | Field::Outcome | Field::Category | Field::Tag | Field::Label => {
            &[Eq, Neq, In, Nin, Exists]
        }
        Field::SrcIp | Field::DstIp => &[Eq, Neq, In, Nin, Cidr, Exists],
        Field::Device | Field::Identity => &[Eq, Neq, In, Nin, Contains, Prefix, Exists],
        Field::Attr(_) => &[Eq, Neq, In, Nin, Contains, Prefix, Gt, Gte, Lt, Lte, Exists],
    }
}

/// Checks one leaf at `path` and returns what it tests.
pub(crate) fn check_leaf(leaf: &Leaf, path: &str) -> Result<Checked, FilterError> {
    let allowed = allowed_ops(&leaf.field);
    if !allowed.contains(&leaf.op) {
        let names: Vec<&str> = allowed.iter().map(|o| o.as_str()).collect();
        return Err(FilterError::new(
            format!("{path}.op"),
            FilterErrorKind::OpNotAllowed {
                field: leaf.field.to_string(),
                op: leaf.op.as_str(),
                allowed: names.join(", "),
            },
        ));
    }
    let vpath = format!("{path}.value");
    let negated = matches!(leaf.op, Op::Neq | Op::Nin);

    if leaf.op == Op::Exists {
        let present = match &leaf.value {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(FilterError::bad(
                    &vpath,
                    "`exists` takes true, false or no value",
                ));
            }
        };
        let pred = match &leaf.field {
            Field::Tag => Pred::TagExists,
            Field::Label => Pred::LabelExists,
            Field::Attr(key) => Pred::AttrExists(key.clone()),
            Field::Device => Pred::NotNull("e.device_id"),
            Field::Identity => Pred::NotNull("e.identity_id"),
            other => Pred::NotNull(column(other)),
        };
        return Ok(Checked {
            pred,
            negated: !present,
        });
    }

    // The operand(s): one value, or a list for in/nin.
    let values: Vec<(String, &Value)> = match leaf.op {
        Op::In | Op::Nin => match &leaf.value {
            Some(Value::Array(items)) => {
                if items.is_empty() || items.len() > MAX_IN_VALUES {
                    return Err(FilterError::new(&vpath, FilterErrorKind::InListSize));
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{vpath}[{i}]"), v))
                    .collect()
            }
            _ => {
                return Err(FilterError::bad(
                    &vpath,
                    "`in`/`nin` take an array of values",
                ));
            }
        },
        _ => match &leaf.value {
            Some(Value::Array(_)) => {
                return Err(FilterError::bad(
                    &vpath,
                    format!(
                        "`{}` takes a single value; use `in` for a list",
                        leaf.op.as_str()
                    ),
                ));
            }
            Some(v) => vec![(vpath.clone(), v)],
            None => {
                return Err(FilterError::bad(
                    &vpath,
                    format!("`{}` needs a value", leaf.op.as_str()),
                ));
            }
        },
    };

    let pred = match &leaf.field {
        Field::Ts => {
            let cmp = cmp_of(leaf.op);
            let (p, v) = &values[0];
            let s = string(p, v)?;
            let t = TimePoint::from_str(&s).map_err(|e| FilterError::bad(p, e))?;
            Pred::Time(cmp, t)
        }
        Field::Action | Field::Outcome | Field::Category => {
            let mut out = Vec::new();
            for (p, v) in &values {
                let s = string(p, v)?;
                let known = match leaf.field {
                    Field::Action => Action::parse(&s).is_some(),
                    Field::Category => Category::parse(&s).is_some(),
                    _ => Outcome::parse(&s).is_some(),
                };
                if !known {
                    let list: Vec<&str> = match leaf.field {
                        Field::Action => Action::ALL.iter().map(|a| a.as_str()).collect(),
                        Field::Category => Category::ALL.iter().map(|c| c.as_str()).collect(),
                        _ => Outcome::ALL.iter().map(|o| o.as_str()).collect(),
                    };
                    return Err(FilterError::bad(
                        p,
                        format!(
                            "`{}` is not a known {}; use one of {}",
                            truncate(&s),
                            leaf.field,
                            list.join(", ")
                        ),
                    ));
                }
                out.push(s);
            }
            Pred::TextEq(column(&leaf.field), out)
        }
        Field::DataType | Field::Source | Field::EventCode | Field::Message => {
            let col = column(&leaf.field);
            match leaf.op {
                Op::Contains | Op::Prefix => {
                    let (p, v) = &values[0];
                    Pred::TextLike(col, like_pattern(leaf.op, &string(p, v)?))
                }
                _ => Pred::TextEq(col, strings(&values)?),
            }
        }
        Field::SrcIp | Field::DstIp => {
            let col = column(&leaf.field);
            if leaf.op == Op::Cidr {
                let (p, v) = &values[0];
                let s = string(p, v)?;
                let net = IpNetwork::from_str(&s).map_err(|_| {
                    FilterError::bad(
                        p,
                        format!("`{}` is not a CIDR block like 10.0.0.0/8", truncate(&s)),
                    )
                })?;
                Pred::IpIn(col, net)
            } else {
                let mut ips = Vec::new();
                for (p, v) in &values {
                    let s = string(p, v)?;
                    let ip = std::net::IpAddr::from_str(&s).map_err(|_| {
                        FilterError::bad(p, format!("`{}` is not an IP address", truncate(&s)))
                    })?;
                    ips.push(IpNetwork::from(ip));
                }
                Pred::IpEq(col, ips)
            }
        }
        Field::Tag => Pred::TagAny(strings(&values)?),
        Field::Label => Pred::LabelAny(strings(&values)?),
        Field::Device | Field::Identity => {
            let kind = if leaf.field == Field::Device {
                RefKind::Device
            } else {
                RefKind::Identity
            };
            match leaf.op {
                Op::Contains | Op::Prefix => {
                    let (p, v) = &values[0];
                    Pred::RefLike(kind, like_pattern(leaf.op, &string(p, v)?))
                }
                _ => {
                    let mut refs = Refs::default();
                    for s in strings(&values)? {
                        match Uuid::parse_str(&s) {
                            Ok(id) => refs.ids.push(id),
                            Err(_) => refs.names.push(s),
                        }
                    }
                    Pred::RefEq(kind, refs)
                }
            }
        }
        Field::Attr(key) => match leaf.op {
            Op::Contains | Op::Prefix => {
                let (p, v) = &values[0];
                Pred::AttrLike(key.clone(), like_pattern(leaf.op, &string(p, v)?))
            }
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                let (p, v) = &values[0];
                let n = v.as_f64().ok_or_else(|| {
                    FilterError::bad(p, "`gt`/`gte`/`lt`/`lte` on an attribute take a number")
                })?;
                Pred::AttrNum(key.clone(), cmp_of(leaf.op), n)
            }
            _ => {
                let mut out = Vec::new();
                for (p, v) in &values {
                    out.push(match v {
                        Value::String(_) => string(p, v)?,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(FilterError::bad(
                                p,
                                "expected a string, number or boolean",
                            ));
                        }
                    });
                }
                Pred::AttrEq(key.clone(), out)
            }
        },
    };
    Ok(Checked { pred, negated })
}

fn cmp_of(op: Op) -> Cmp {
    match op {
        Op::Gt => Cmp::Gt,
        Op::Gte => Cmp::Gte,
        Op::Lt => Cmp::Lt,
        Op::Lte => Cmp::Lte,
        _ => Cmp::Eq,
    }
}

/// The SQL column of a plain field. Only called for fields stored in one column.
pub(crate) fn column(field: &Field) -> &'static str {
    match field {
        Field::Ts => "e.ts",
        Field::DataType => "e.data_type",
        Field::Source => "e.source",
        Field::EventCode => "e.event_code",
        Field::Action => "e.action",
        Field::Outcome => "e.outcome",
        Field::Category => "e.category",
        Field::Message => "e.message",
        Field::SrcIp => "e.src_ip",
        Field::DstIp => "e.dst_ip",
        Field::Device => "e.device_id",
        Field::Identity => "e.identity_id",
        Field::Tag => "e.tags",
        // Attributes and labels are never compiled through `column`.
        Field::Label | Field::Attr(_) => "e.attributes",
    }
}

/// A string value: at most [`MAX_STRING_CHARS`] characters and no NUL (PostgreSQL text
/// cannot hold it).
fn string(path: &str, v: &Value) -> Result<String, FilterError> {
    let Value::String(s) = v else {
        return Err(FilterError::bad(path, "expected a string"));
    };
    if s.chars().count() > MAX_STRING_CHARS {
        return Err(FilterError::new(path, FilterErrorKind::StringTooLong));
    }
    if s.contains('\0') {
        return Err(FilterError::bad(
            path,
            "strings cannot contain NUL characters",
        ));
    }
    Ok(s.clone())
}

fn strings(values: &[(String, &Value)]) -> Result<Vec<String>, FilterError> {
    values.iter().map(|(p, v)| string(p, v)).collect()
}

/// An `ILIKE` pattern matching the text literally (`%`, `_` and `\` escaped).
fn like_pattern(op: Op, text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    match op {
        Op::Prefix => format!("{escaped}%"),
        _ => format!("%{escaped}%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> FilterError {
        FilterDocument::parse(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn shape_errors_carry_the_serde_path() {
        let e =
            err(r#"{"where": {"all": [{"field": "action", "op": "equals", "value": "logon"}]}}"#);
        assert_eq!(e.path, "$.where.all[0].op");
        let e = err(r#"{"where": {"field": "password", "op": "eq", "value": "x"}}"#);
        assert_eq!(e.path, "$.where.field");
        let e = err(r#"{"limit": -1}"#);
        assert_eq!(e.path, "$.limit");
        let e = err(r#"{"time": {"last": "24h", "from": "2024-01-01"}}"#);
        assert_eq!(e.path, "$.time");
        let e = err(r#"{"where": {"all": [], "field": "x"}}"#);
        assert!(e.path.starts_with("$.where"), "{e}");
        let e = err("not json");
        assert_eq!(e.path, "$");
    }

    #[test]
    fn limits_are_enforced_with_the_offending_path() {
        let e = err(r#"{"limit": 1001}"#);
        assert_eq!(
            (e.path.as_str(), &e.kind),
            ("$.limit", &FilterErrorKind::Limit)
        );

        let leaf = r#"{"field": "source", "op": "eq", "value": "EVT"}"#;
        let deep = format!(
            r#"{{"where": {{"not": {{"not": {{"not": {{"not": {{"not": {leaf}}}}}}}}}}}}}}}"#
        );
        let e = err(&deep);
        assert_eq!(e.kind, FilterErrorKind::TooDeep);
        assert_eq!(e.path, "$.where.not.not.not.not.not");

        let many = vec![leaf; 33].join(",");
        let e = err(&format!(r#"{{"where": {{"any": [{many}]}}}}"#));
        assert_eq!(
            (e.path.as_str(), &e.kind),
            ("$.where.any[32]", &FilterErrorKind::TooManyLeaves)
        );

        let values: Vec<String> = (0..101).map(|i| format!("\"{i}\"")).collect();
        let e = err(&format!(
            r#"{{"where": {{"field": "event_code", "op": "in", "value": [{}]}}}}"#,
            values.join(",")
        ));
        assert_eq!(
            (e.path.as_str(), &e.kind),
            ("$.where.value", &FilterErrorKind::InListSize)
        );

        let long = "x".repeat(257);
        let e = err(&format!(
            r#"{{"where": {{"field": "message", "op": "contains", "value": "{long}"}}}}"#
        ));
        assert_eq!(
            (e.path.as_str(), &e.kind),
            ("$.where.value", &FilterErrorKind::StringTooLong)
        );
    }

    #[test]
    fn operators_and_values_must_suit_the_field() {
        let e = err(r#"{"where": {"field": "action", "op": "contains", "value": "log"}}"#);
        assert_eq!(e.path, "$.where.op");
        assert!(
            e.to_string().contains("takes eq, neq, in, nin, exists"),
            "{e}"
        );
        let e = err(r#"{"where": {"all": [{"field": "action", "op": "eq", "value": "login"}]}}"#);
        assert_eq!(e.path, "$.where.all[0].value");
        let e = err(r#"{"where": {"field": "category", "op": "eq", "value": "logons"}}"#);
        assert_eq!(e.path, "$.where.value");
        assert!(e.to_string().contains("account_management"), "{e}");
        assert!(
            FilterDocument::parse(
                br#"{"where": {"field": "category", "op": "in", "value": ["logon", "event_log"]}}"#
            )
            .is_ok()
        );
        let e = err(r#"{"where": {"field": "src_ip", "op": "in", "value": ["10.0.0.1", "nope"]}}"#);
        assert_eq!(e.path, "$.where.value[1]");
        let e = err(r#"{"where": {"field": "message", "op": "eq", "value": "a\u0000b"}}"#);
        assert_eq!(e.path, "$.where.value");
        let e = err(r#"{"where": {"field": "attr.Logon", "op": "gt", "value": "3"}}"#);
        assert_eq!(e.path, "$.where.value");
        let ok = FilterDocument::parse(
            br#"{"time": {"around": "2024-03-01T10:00", "window": "15m"},
                 "where": {"all": [{"field": "attr.LogonType", "op": "in", "value": [3, "10"]},
                                   {"field": "label", "op": "exists"}]},
                 "sort": "ts_desc", "limit": 1000}"#,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern(Op::Contains, "50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern(Op::Prefix, "C:\\"), "C:\\\\%");
    }
}
