//! The YAML writer of templates: block style, and every string written so that it is a
//! string under YAML 1.1 as well as 1.2.
//!
//! CloudFormation reads YAML templates with YAML 1.1 rules, where a plain `off`, `on`,
//! `yes`, `no`, `y` or `n` is a boolean, `2010-09-09` a date, `1:20` a base-60 integer and
//! `~` null (<https://yaml.org/type/bool.html>, <https://yaml.org/type/timestamp.html>,
//! <https://yaml.org/type/int.html>). YAML 1.2 writers such as `serde_yaml` leave those
//! plain, so `EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic: off` reached
//! CloudFormation as `false`. Here a string is plain only when it starts with a letter or
//! one of `/ $ ^ _` and is not one of YAML 1.1's boolean or null words — no YAML 1.1
//! resolver (int, float, bool, null, timestamp, merge, value) matches such a scalar —
//! otherwise it is single-quoted (or double-quoted when it holds characters a single-quoted
//! scalar cannot carry). `stacks/tests/yaml11.rs` loads every template with PyYAML (a YAML
//! 1.1 loader) and compares it with the model's JSON.
//!
//! The layout follows `serde_yaml` (two-space indentation, sequence items at their key's
//! indentation, `{}`/`[]` for empty collections) so templates read the same as before.

use serde_json::{Map, Value};

/// Words YAML 1.1 resolves to a boolean or null when plain (every casing is quoted, not
/// only the ones the specification lists, so no loader can read them otherwise).
const RESERVED_WORDS: [&str; 11] = [
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
];

/// The value as a YAML document (ends with a newline).
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

/// Whether `s` may be written as a plain scalar and read back as the same string by a
/// YAML 1.1 or 1.2 loader.
pub fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || matches!(first, '/' | '$' | '^' | '_')) {
        return false;
    }
    if RESERVED_WORDS.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        return false;
    }
    // Printable ASCII only; no comment (` #`), no `key: value` inside, no trailing space or
    // colon (both change how a plain scalar ends).
    s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'#')
        && !s.contains(": ")
        && !s.ends_with([':', ' '])
}

/// A string scalar: plain when safe, else single-quoted, else double-quoted.
fn string(s: &str) -> String {
    if plain_is_safe(s) {
        s.to_owned()
    } else if s
        .chars()
        .all(|c| c == ' ' || !(c.is_control() || c.is_whitespace()))
    {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        // JSON's escapes (\" \\ \n \t \uXXXX ...) are all valid in a YAML double-quoted scalar.
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// A scalar or empty collection on one line.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => false,
    }
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A mapping whose first key is already indented (at `n`) on the current line.
fn write_map_entries(out: &mut String, m: &Map<String, Value>, n: usize, first_indented: bool) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !first_indented {
            indent(out, n);
        }
        out.push_str(&string(k));
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(out, inner, n + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_seq(out, items, n);
            }
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

fn write_map(out: &mut String, m: &Map<String, Value>, n: usize) {
    write_map_entries(out, m, n, false);
}

/// Sequence items at indentation `n` (`- item`); a block item continues at `n + 2`.
fn write_seq(out: &mut String, items: &[Value], n: usize) {
    for item in items {
        indent(out, n);
        write_item(out, item, n);
    }
}

/// One item after its `- ` marker (the marker not yet written), at indentation `n`.
fn write_item(out: &mut String, item: &Value, n: usize) {
    out.push_str("- ");
    match item {
        Value::Object(m) if !m.is_empty() => write_map_entries(out, m, n + 2, true),
        Value::Array(a) if !a.is_empty() => {
            let (first, rest) = a.split_first().unwrap_or((item, &[]));
            write_item(out, first, n + 2);
            write_seq(out, rest, n + 2);
        }
        scalar => {
            debug_assert!(!is_block(scalar));
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_1_1_booleans_nulls_numbers_and_dates_are_quoted() {
        for s in [
            "off",
            "On",
            "YES",
            "n",
            "y",
            "No",
            "true",
            "NULL",
            "~",
            "",
            "2010-09-09",
            "2025-01-01T00:00:00Z",
            "1:20",
            "0x1F",
            "010",
            ".inf",
            "-.nan",
            "1_000",
            "<<",
            "=",
            "-",
            "+1",
            "10.0.0.0/16",
        ] {
            assert!(!plain_is_safe(s), "{s:?} must be quoted");
            let w = string(s);
            assert!(w.starts_with('\'') || w.starts_with('"'), "{s:?} -> {w}");
        }
    }

    #[test]
    fn ordinary_strings_stay_plain() {
        for s in [
            "AWS::Lambda::Function",
            "Fn::GetAtt",
            "arn:${AWS::Partition}:s3:::${Bucket}/*",
            "/aws/lambda/chrono-acme-prod-api",
            "$connect",
            "^arn:.+",
            "States.Array('split', '--evidence-id', $.evidence_id)",
            "offline",
            "Yesterday",
        ] {
            assert!(plain_is_safe(s), "{s:?} should stay plain");
        }
    }

    #[test]
    fn strings_that_end_or_break_a_plain_scalar_are_quoted() {
        assert_eq!(string("a: b"), "'a: b'");
        assert_eq!(string("x #y"), "'x #y'");
        assert_eq!(string("trailing:"), "'trailing:'");
        assert_eq!(string("it's"), "it's");
        assert_eq!(string("'quoted"), "'''quoted'");
        assert_eq!(string("two\nlines"), "\"two\\nlines\"");
        assert_eq!(string("tab\there"), "\"tab\\there\"");
    }

    #[test]
    fn layout_follows_serde_yaml() {
        let v = json!({
            "A": {"B": [1, {"C": "off", "D": [true, null]}, [2, 3]], "E": {}},
            "F": [],
            "G": "2010-09-09"
        });
        let text = to_string(&v);
        assert_eq!(
            text,
            "A:\n  B:\n  - 1\n  - C: 'off'\n    D:\n    - true\n    - null\n  - - 2\n    - 3\n  E: {}\nF: []\nG: '2010-09-09'\n"
        );
        let back: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
