//! One human line describing a filter document ("failed logon by bob on devices
//! containing "laptop", 2024-03-12 00:00 – 05:59"), shown next to the editable chips, and
//! what each name in it matched in the case.

use serde_json::Value;

use super::catalog::Resolution;

use crate::filter::{Field, FilterDocument, Leaf, Node, Op, Sort, TimePoint, TimeRange};

/// The summary of `doc`.
pub fn summarize(doc: &FilterDocument) -> String {
    let mut parts = Vec::new();
    if let Some(node) = &doc.condition {
        parts.push(node_text(node));
    } else {
        parts.push("all events".to_string());
    }
    if let Some(t) = &doc.time {
        parts.push(time_text(t));
    }
    let mut line = parts.join(", ");
    if doc.sort == Sort::TsDesc {
        line.push_str(", newest first");
    }
    if doc.limit != 100 {
        line.push_str(&format!(", {} per page", doc.limit));
    }
    line
}

/// `line` followed by what each looked-up name matched ("user Administrator =
/// WIN-1\Administrator, WIN-2\Administrator"; "host ws09 matched nothing in this case").
pub fn with_names(mut line: String, resolved: &[Resolution]) -> String {
    for r in resolved {
        let what = if r.field == "device" { "host" } else { "user" };
        line.push_str("; ");
        if r.matched.is_empty() {
            line.push_str(&format!("{what} {} matched nothing in this case", r.name));
        } else {
            line.push_str(&format!("{what} {} = {}", r.name, r.matched.join(", ")));
        }
    }
    line
}

fn node_text(node: &Node) -> String {
    match node {
        Node::All(children) => children
            .iter()
            .map(node_text)
            .collect::<Vec<_>>()
            .join(" and "),
        Node::Any(children) => format!(
            "({})",
            children
                .iter()
                .map(node_text)
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        Node::Not(child) => format!("not ({})", node_text(child)),
        Node::Leaf(leaf) => leaf_text(leaf),
    }
}

fn value_text(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" or "),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn field_text(f: &Field) -> String {
    match f {
        Field::Action => "action".into(),
        Field::Outcome => "outcome".into(),
        Field::Category => "category".into(),
        Field::Identity => "user".into(),
        Field::Device => "host".into(),
        Field::SrcIp => "source IP".into(),
        Field::DstIp => "destination IP".into(),
        Field::EventCode => "event code".into(),
        Field::Message => "message".into(),
        other => other.to_string(),
    }
}

fn leaf_text(leaf: &Leaf) -> String {
    let v = value_text(&leaf.value);
    let f = field_text(&leaf.field);
    match leaf.op {
        Op::Eq | Op::In => format!("{f} {v}"),
        Op::Neq | Op::Nin => format!("{f} not {v}"),
        Op::Contains => format!("{f} containing \"{v}\""),
        Op::Prefix => format!("{f} starting with \"{v}\""),
        Op::Gt => format!("{f} > {v}"),
        Op::Gte => format!("{f} ≥ {v}"),
        Op::Lt => format!("{f} < {v}"),
        Op::Lte => format!("{f} ≤ {v}"),
        Op::Exists => match leaf.value {
            Some(Value::Bool(false)) => format!("without {f}"),
            _ => format!("with {f}"),
        },
        Op::Cidr => format!("{f} in {v}"),
    }
}

fn point_text(p: &TimePoint) -> String {
    match p {
        TimePoint::Local(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        TimePoint::Fixed(t) => t.format("%Y-%m-%d %H:%M %:z").to_string(),
    }
}

fn time_text(t: &TimeRange) -> String {
    match t {
        TimeRange::Last(span) => format!("in the last {span}"),
        TimeRange::Around { at, window } => format!("within {window} of {}", point_text(at)),
        TimeRange::Between { from, to } => match (from, to) {
            (Some(f), Some(t)) => format!("{} – {}", point_text(f), point_text(t)),
            (Some(f), None) => format!("since {}", point_text(f)),
            (None, Some(t)) => format!("until {}", point_text(t)),
            (None, None) => "any time".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_reads_as_one_line() {
        let doc = FilterDocument::from_value(serde_json::json!({
            "time": {"from": "2024-03-12T00:00", "to": "2024-03-12T05:59:59.999999"},
            "where": {"all": [
                {"field": "action", "op": "eq", "value": "logon"},
                {"field": "identity", "op": "in", "value": ["bob", "alice"]},
                {"not": {"field": "src_ip", "op": "cidr", "value": "10.0.0.0/8"}}]},
            "sort": "ts_desc", "limit": 10
        }))
        .unwrap();
        assert_eq!(
            summarize(&doc),
            "action logon and user bob or alice and not (source IP in 10.0.0.0/8), \
             2024-03-12 00:00 – 2024-03-12 05:59, newest first, 10 per page"
        );
        assert_eq!(summarize(&FilterDocument::default()), "all events");
    }

    #[test]
    fn names_say_what_they_matched() {
        let resolved = vec![
            Resolution {
                field: "identity".into(),
                name: "Administrator".into(),
                ids: vec![uuid::Uuid::nil(), uuid::Uuid::max()],
                matched: vec!["HOST\\Administrator".into(), "CORP\\Administrator".into()],
            },
            Resolution {
                field: "device".into(),
                name: "ws09".into(),
                ids: Vec::new(),
                matched: Vec::new(),
            },
        ];
        assert_eq!(
            with_names("action logon".into(), &resolved),
            "action logon; user Administrator = HOST\\Administrator, CORP\\Administrator; \
             host ws09 matched nothing in this case"
        );
    }
}
