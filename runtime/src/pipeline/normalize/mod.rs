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
    use crate::vocab::Action;
    use std::collections::BTreeSet;

    /// Every action of the vocabulary table is produced by at least one rule.
    #[test]
    fn every_action_of_the_vocabulary_is_mapped() {
        let mut seen = BTreeSet::new();
        for (provider, ids) in [
            (windows::SECURITY_AUDITING, 4600..4800),
            (windows::SYSMON, 0..30),
            (windows::SERVICE_CONTROL_MANAGER, 7000..7100),
        ] {
            for id in ids {
                seen.extend(windows::action(provider, id, None).map(|a| a.0));
            }
        }
        for (program, line) in [
            ("sshd", "Accepted password for a from 1.2.3.4 port 1 ssh2"),
            ("sshd", "pam_unix(sshd:session): session closed for user a"),
            (
                "sudo",
                "a : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
            ),
            ("su", "(to root) a on pts/0"),
            ("useradd", "new user: name=a, UID=1"),
            ("userdel", "delete user 'a'"),
            ("usermod", "change user 'a' shell"),
            (
                "passwd",
                "pam_unix(passwd:chauthtok): password changed for a",
            ),
        ] {
            seen.extend(linux::map(program, line).map(|m| m.action));
        }
        for (source, name) in [
            ("signin.amazonaws.com", "ConsoleLogin"),
            ("iam.amazonaws.com", "CreateUser"),
            ("iam.amazonaws.com", "DeleteUser"),
            ("iam.amazonaws.com", "UpdateUser"),
            ("iam.amazonaws.com", "ChangePassword"),
            ("iam.amazonaws.com", "CreateAccessKey"),
            ("iam.amazonaws.com", "PutRolePolicy"),
            ("iam.amazonaws.com", "CreateGroup"),
            ("s3.amazonaws.com", "GetObject"),
            ("s3.amazonaws.com", "CopyObject"),
            ("s3.amazonaws.com", "DeleteObjects"),
            ("sts.amazonaws.com", "AssumeRole"),
        ] {
            seen.insert(aws::action(source, name));
        }
        let all: BTreeSet<Action> = Action::ALL.iter().copied().collect();
        assert_eq!(
            seen,
            all,
            "missing: {:?}",
            all.difference(&seen).collect::<Vec<_>>()
        );
    }

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let s = "é".repeat(MAX_MESSAGE_LEN);
        let clipped = clip_message(s);
        assert!(clipped.len() <= MAX_MESSAGE_LEN + '…'.len_utf8());
        assert!(clipped.ends_with('…'));
        assert_eq!(clip_message("short".into()), "short");
    }
}
