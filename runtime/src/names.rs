//! Names from outside (uploaded file names, archive member names) made representable
//! everywhere they go: PostgreSQL `text` and `jsonb` cannot hold NUL, and control
//! characters in a name confuse logs and screens. Such characters become U+FFFD; the
//! original is kept, escaped (`\u{0}`), as metadata next to the clean name.

/// A name fit to store, and the original when it had to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clean {
    /// The name with NUL, control characters and non-characters replaced by U+FFFD.
    pub name: String,
    /// The original, escaped (`\u{0}`, `\n`, `\\`), when it differs from `name`.
    pub original: Option<String>,
}

/// Whether `c` has no place in a stored name.
fn unrepresentable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}') || ('\u{fdd0}'..='\u{fdef}').contains(&c)
}

/// `name` with every unrepresentable character replaced (see the module docs).
pub fn clean(name: &str) -> Clean {
    if !name.chars().any(unrepresentable) {
        return Clean {
            name: name.to_owned(),
            original: None,
        };
    }
    Clean {
        name: name
            .chars()
            .map(|c| if unrepresentable(c) { '\u{fffd}' } else { c })
            .collect(),
        original: Some(name.escape_debug().to_string()),
    }
}

/// `text` without NUL (PostgreSQL refuses it in `text` and `jsonb`), for messages that
/// quote outside data.
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrepresentable_characters_are_replaced_and_the_original_kept_escaped() {
        for (raw, name, original) in [
            ("Security.evtx", "Security.evtx", None),
            ("Sécurité 1.evtx", "Sécurité 1.evtx", None),
            ("a\0b.log", "a\u{fffd}b.log", Some("a\\0b.log")),
            ("line\nbreak", "line\u{fffd}break", Some("line\\nbreak")),
            (
                "bell\u{7}\u{9f}",
                "bell\u{fffd}\u{fffd}",
                Some("bell\\u{7}\\u{9f}"),
            ),
            ("x\u{ffff}", "x\u{fffd}", Some("x\\u{ffff}")),
        ] {
            let got = clean(raw);
            assert_eq!(got.name, name, "{raw:?}");
            assert_eq!(got.original.as_deref(), original, "{raw:?}");
            assert!(!got.name.contains('\0'));
        }
        assert_eq!(storable("a\0b"), "a\u{fffd}b");
        assert!(matches!(storable("ab"), std::borrow::Cow::Borrowed("ab")));
    }
}
