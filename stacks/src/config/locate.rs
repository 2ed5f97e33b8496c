//! Find the line and column of a dotted key path (`aurora.max_acu`) in a YAML document.
//!
//! serde_yaml reports locations for parse errors but keeps no spans on parsed values;
//! validation after parsing uses this to point at the offending field. It understands
//! block mappings (the form of our configs); when a key is not written (a default was
//! used) it falls back to the nearest written ancestor, then to 1:1.

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based.
    pub column: usize,
}

/// The location of the value of `path` (or of its key when the value is on later lines).
pub fn locate(source: &str, path: &[&str]) -> Location {
    let mut best = Location { line: 1, column: 1 };
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut matched = 0;
    for (n, raw) in source.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        let Some((key, rest)) = split_key(trimmed) else {
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_owned()));
        let depth = stack.len();
        if depth <= path.len()
            && stack.iter().zip(path).all(|((_, k), p)| k == p)
            && depth > matched
        {
            matched = depth;
            let value = rest.trim_start();
            let column = if depth == path.len() && !value.is_empty() && !value.starts_with('#') {
                indent + key.len() + 1 + (rest.len() - value.len()) + 1
            } else {
                indent + 1
            };
            best = Location {
                line: n + 1,
                column,
            };
            if depth == path.len() {
                return best;
            }
        }
    }
    best
}

fn split_key(line: &str) -> Option<(&str, &str)> {
    // A key ends at the first ": " (or at a trailing ":"); keys may contain ':' (tags).
    let colon = line
        .find(": ")
        .or_else(|| line.ends_with(':').then(|| line.len() - 1))?;
    let key = line[..colon].trim_matches(|c| c == '"' || c == '\'');
    let ok = !key.is_empty()
        && !key.starts_with('-')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-:./".contains(&b));
    ok.then_some((key, &line[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "customer: acme\n# comment\naurora:\n  min_acu: 1\n  max_acu: 0   # bad\nnetwork:\n  az_count: 3\n";

    #[test]
    fn finds_nested_values() {
        assert_eq!(
            locate(DOC, &["aurora", "max_acu"]),
            Location {
                line: 5,
                column: 12
            }
        );
        assert_eq!(
            locate(DOC, &["customer"]),
            Location {
                line: 1,
                column: 11
            }
        );
        assert_eq!(
            locate(DOC, &["network", "az_count"]),
            Location {
                line: 7,
                column: 13
            }
        );
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        assert_eq!(
            locate(DOC, &["network", "nat_gateways"]),
            Location { line: 6, column: 1 }
        );
        assert_eq!(
            locate(DOC, &["bedrock", "guard_model_id"]),
            Location { line: 1, column: 1 }
        );
    }
}
