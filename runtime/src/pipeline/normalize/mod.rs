//! Normalization rules: from a source's own fields to the timeline's `action`, `outcome`,
//! identity and addresses. Each submodule owns the rules of one family of sources and
//! follows the mapping table of [`crate::vocab::Action`]; parsers call them, they never
//! read input themselves.

pub mod aws;
pub mod linux;
pub mod windows;

/// The longest `message` an event gets; the full record stays in its attributes.
pub const MAX_MESSAGE_LEN: usize = 2048;

/// Cuts a message to [`MAX_MESSAGE_LEN`] bytes on a character boundary.
pub fn clip_message(mut s: String) -> String {
    if s.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// A JSON value as a flat string: strings as they are, numbers and booleans printed,
/// `{"#text": v}` objects (EVTX attributes) unwrapped; `None` for null, arrays and objects.
pub fn json_str(v: &serde_json::Value) -> Option<std::borrow::Cow<'_, str>> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        Value::Object(o) => o.get("#text").and_then(json_str),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let s = "é".repeat(MAX_MESSAGE_LEN);
        let clipped = clip_message(s);
        assert!(clipped.len() <= MAX_MESSAGE_LEN + '…'.len_utf8());
        assert!(clipped.ends_with('…'));
        assert_eq!(clip_message("short".into()), "short");
    }
}
