//! The normalized event: one row of the timeline, as the `parse` step writes it and the
//! `upload` step reads it back.
//!
//! # Identities
//!
//! An event names at most one [`Identity`]: the account the event is *about*.
//!
//! * Windows logon events (4624, 4625, 4634, 4647) and account-management events
//!   (4720–4726, 4738): the target account (`TargetUserName`/`TargetDomainName`, else
//!   `TargetUserSid`/`TargetSid`); group-membership events (4727–4737): the member added or
//!   removed (`MemberName`/`MemberSid`), else the subject; everything else (4648, 4672, 4688,
//!   7045, …): the subject (`SubjectUserName`…), else `System/Security/@UserID`. Sysmon: its
//!   `User` field.
//! * syslog: the user named by the line (sshd: the user logging in; sudo/su: the user who
//!   invoked it; useradd/userdel/usermod/passwd: the account concerned).
//! * CloudTrail: the caller (`userIdentity.arn`, else its `userName`); the target of an IAM
//!   call stays in `requestParameters`.
//! * Timesketch / Plaso: the `username` (or `user`) attribute.
//!
//! Not every name is an identity. These are *not* turned into identities (the event keeps
//! them in its attributes): empty values and placeholders (`-`, `N/A`, `NULL SID`,
//! CloudTrail's `HIDDEN_DUE_TO_SECURITY_REASONS`); the null SID `S-1-0-0`; the built-in
//! service principals that stand for "the machine itself" rather than for someone —
//! `SYSTEM`/`LOCAL SERVICE`/`NETWORK SERVICE` (`S-1-5-18`, `-19`, `-20`), `ANONYMOUS LOGON`
//! (`S-1-5-7`), anything in the `NT AUTHORITY` domain, and the per-session virtual accounts
//! of the window manager and font driver (`DWM-n`, `UMFD-n`, `S-1-5-90-…`, `S-1-5-96-…`);
//! and user names sshd reports as invalid (they do not exist on the host: attackers choose
//! them). Machine accounts (`HOST$`) *are* identities: they authenticate on the network.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::net::IpAddr;
use uuid::Uuid;

use crate::vocab::{Action, Category, Outcome};

/// What kind of principal an [`Identity`] value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// A user name, `DOMAIN\name` when the domain is known.
    User,
    /// A Windows security identifier, when no name is known.
    Sid,
    /// An AWS ARN.
    Arn,
}

impl IdentityKind {
    /// The string stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            IdentityKind::User => "user",
            IdentityKind::Sid => "sid",
            IdentityKind::Arn => "arn",
        }
    }
}

/// A principal an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    /// What the value is.
    pub kind: IdentityKind,
    /// The name, SID or ARN.
    pub value: String,
}

impl Identity {
    /// A plain user name (syslog, Timesketch, Plaso); `None` for placeholders.
    pub fn user(name: &str) -> Option<Identity> {
        let name = name.trim();
        if is_placeholder_name(name) {
            return None;
        }
        Some(Identity {
            kind: IdentityKind::User,
            value: name.to_owned(),
        })
    }

    /// A Windows account from its name, domain and SID, whichever are real: the name
    /// (with its domain) wins, the SID stands in when there is no name. `None` when both
    /// are placeholders or built-in service principals.
    pub fn windows(
        name: Option<&str>,
        domain: Option<&str>,
        sid: Option<&str>,
    ) -> Option<Identity> {
        // The null SID means "no SID" (a failed logon of an unknown account): the name may
        // still be an identity. A service principal's SID means the machine itself.
        let sid = sid.map(str::trim).filter(|s| !is_null_sid(s));
        if sid.is_some_and(is_service_sid) {
            return None;
        }
        let (domain, name) = match name.map(str::trim) {
            // `User` fields of Sysmon carry `DOMAIN\name` in one string.
            Some(full) if domain.is_none() && full.contains('\\') => {
                let (d, n) = full.split_once('\\').unwrap_or(("", full));
                (Some(d), Some(n))
            }
            other => (domain.map(str::trim), other),
        };
        let domain = domain.filter(|d| !is_placeholder_name(d));
        if domain.is_some_and(|d| {
            ["NT AUTHORITY", "Window Manager", "Font Driver Host"]
                .iter()
                .any(|x| d.eq_ignore_ascii_case(x))
        }) {
            return None;
        }
        if let Some(name) = name.filter(|n| !is_placeholder_name(n) && !is_builtin_account(n)) {
            let value = match domain {
                Some(d) => format!("{d}\\{name}"),
                None => name.to_owned(),
            };
            return Some(Identity {
                kind: IdentityKind::User,
                value,
            });
        }
        if name.is_some_and(is_builtin_account) {
            return None;
        }
        sid.map(|s| Identity {
            kind: IdentityKind::Sid,
            value: s.to_owned(),
        })
    }

    /// An AWS ARN; `None` when empty.
    pub fn arn(arn: &str) -> Option<Identity> {
        let arn = arn.trim();
        arn.starts_with("arn:").then(|| Identity {
            kind: IdentityKind::Arn,
            value: arn.to_owned(),
        })
    }
}

/// Values that stand for "no account" in the sources we read.
fn is_placeholder_name(s: &str) -> bool {
    const PLACEHOLDERS: &[&str] = &[
        "",
        "-",
        "n/a",
        "none",
        "null",
        "null sid",
        "(null)",
        "unknown",
        "hidden_due_to_security_reasons",
    ];
    PLACEHOLDERS.iter().any(|p| s.eq_ignore_ascii_case(p))
}

/// Names of the built-in principals that are the machine itself, not someone.
fn is_builtin_account(s: &str) -> bool {
    const BUILTIN: &[&str] = &[
        "SYSTEM",
        "LOCAL SYSTEM",
        "LocalSystem",
        "LOCAL SERVICE",
        "NETWORK SERVICE",
        "ANONYMOUS LOGON",
    ];
    BUILTIN.iter().any(|b| s.eq_ignore_ascii_case(b))
        || ["DWM-", "UMFD-"].iter().any(|p| {
            strip_prefix_ignore_case(s, p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The null SID and placeholders: no SID at all.
fn is_null_sid(sid: &str) -> bool {
    sid.eq_ignore_ascii_case("S-1-0-0") || is_placeholder_name(sid)
}

/// SIDs of the built-in principals that are the machine itself (see the module
/// documentation).
fn is_service_sid(sid: &str) -> bool {
    ["S-1-5-7", "S-1-5-18", "S-1-5-19", "S-1-5-20"]
        .iter()
        .any(|s| sid.eq_ignore_ascii_case(s))
        || ["S-1-5-90-", "S-1-5-96-"]
            .iter()
            .any(|p| strip_prefix_ignore_case(sid, p).is_some())
}

/// `s` without `prefix`, compared ignoring ASCII case.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Where an event came from inside its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The evidence the event belongs to, when the step was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<Uuid>,
    /// The file within the evidence: the archive member's path, or the evidence's file name.
    pub member: String,
    /// The record number: the EVTX `EventRecordID`, the line number of a text file (from 1),
    /// or the index of a record in a JSON array (from 0).
    pub record: u64,
    /// The byte offset of the record in the (decompressed) member, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Where the upstream tool found the record (Plaso `pathspec`, Timesketch
    /// `display_name`), when the evidence is another tool's export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedEvent {
    /// When it happened, UTC, microsecond precision.
    pub ts: DateTime<Utc>,
    /// What the timestamp means (`Creation Time`, `Event Time`, …).
    pub timestamp_desc: String,
    /// The kind of record (`windows:evtx:record`, `syslog:line`, `aws:cloudtrail:event`, or
    /// the upstream tool's data type).
    pub data_type: String,
    /// Where the record was logged: EVTX channel, syslog program, CloudTrail event source.
    pub source: String,
    /// The parser that read it (`winevtx`, `syslog_rfc3164`, `cloudtrail`, …).
    pub parser: String,
    /// A one-line human description.
    pub message: String,
    /// The host the event was logged on, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The principal the event is about (see the module documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The source's own code: Windows event id, CloudTrail event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_code: Option<String>,
    /// The coarse "what happened", for the events investigators look for first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// How it ended; set whenever `action` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// What happened, in words: the event catalog's title of its kind of event, when the
    /// catalog knows it ([`crate::knowledge`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Cow<'static, str>>,
    /// The catalog's category of its kind of event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// Where it came from on the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    /// Where it went on the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    /// The full original record.
    pub attributes: Attributes,
    /// Labels carried by the source (Timesketch/Plaso `tag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Where in the evidence the record is.
    pub provenance: Provenance,
    /// Stable key of the record, unique within its evidence (see [`dedup_key`]).
    pub dedup_key: String,
}

/// The full original record as JSON text, kept verbatim: it is written out as it was
/// read (or rendered), never parsed into a tree and serialized again, which is what
/// keeps the EVTX path fast.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attributes(Box<serde_json::value::RawValue>);

impl Attributes {
    /// Takes JSON text as it is; `Err` when it is not valid JSON.
    pub fn from_json(text: String) -> Result<Attributes, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(Attributes)
    }

    /// Takes JSON text the caller has already checked (with a scan that accepts only what
    /// serde_json accepts as it is, e.g. [`crate::pipeline::normalize::windows::fields_checked`]),
    /// without serde_json scanning it again. `Err` only should serde_json's raw-value
    /// protocol change (see below), never for the text.
    ///
    /// serde_json has no public unchecked constructor; its `Box<RawValue>` deserializes from
    /// a one-entry map keyed by its raw-value token, whose value is the text taken as is:
    /// serde_json's own protocol between its deserializer and `RawValue` (the version is
    /// locked). The tests of this module fail should it change, and callers fall back to
    /// [`Attributes::from_json`] on `Err`, so a change costs time, never a record.
    pub(crate) fn from_checked_json(text: String) -> Result<Attributes, serde_json::Error> {
        use serde::de::value::MapDeserializer;
        const TOKEN: &str = "$serde_json::private::RawValue";
        let map = MapDeserializer::<_, serde_json::Error>::new(std::iter::once((TOKEN, text)));
        Deserialize::deserialize(map).map(Attributes)
    }

    /// Serializes a JSON value.
    pub fn from_value(value: &serde_json::Value) -> Attributes {
        // Serializing a `Value` cannot fail (its map keys are strings); `null` otherwise.
        Attributes(serde_json::value::to_raw_value(value).unwrap_or_default())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The record as a JSON tree (tests, rare lookups; the parse has a cost).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Attributes) -> bool {
        self.as_str() == other.as_str()
    }
}

/// The stable key of a record: a hash of the member path and the record's identity within
/// it (`record_id`, chosen by the parser to be unique in the member). Re-processing the
/// same evidence yields the same keys, so `upload` can skip what it already has.
pub fn dedup_key(member: &str, record_id: &str) -> String {
    let mut h = Sha256::new();
    h.update((member.len() as u64).to_le_bytes());
    h.update(member.as_bytes());
    h.update(record_id.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(32);
    for byte in &h.finalize()[..16] {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    key
}

/// A UTC time from microseconds since the Unix epoch; `None` outside chrono's range.
pub fn ts_from_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

/// Truncates a time to microseconds (the precision the timeline stores).
pub fn truncate_to_micros(ts: DateTime<Utc>) -> DateTime<Utc> {
    ts_from_micros(ts.timestamp_micros()).unwrap_or(ts)
}

/// Parses an IP address as sources write it (`::ffff:1.2.3.4`, `[::1]`); `None` for
/// placeholders (`-`, `AWS Internal`, host names).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = s.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_identity_prefers_the_name_and_drops_placeholders() {
        let id =
            Identity::windows(Some("alice"), Some("CORP"), Some("S-1-5-21-1-2-3-1001")).unwrap();
        assert_eq!(id.kind, IdentityKind::User);
        assert_eq!(id.value, "CORP\\alice");
        let id = Identity::windows(Some("-"), Some("-"), Some("S-1-5-21-1-2-3-1001")).unwrap();
        assert_eq!(id.kind, IdentityKind::Sid);
        assert_eq!(
            Identity::windows(Some("-"), Some("-"), Some("S-1-0-0")),
            None
        );
        assert_eq!(
            Identity::windows(Some("SYSTEM"), Some("NT AUTHORITY"), Some("S-1-5-18")),
            None
        );
        assert_eq!(
            Identity::windows(Some("NT AUTHORITY\\SYSTEM"), None, None),
            None
        );
        assert_eq!(
            Identity::windows(Some("DWM-1"), Some("Window Manager"), Some("S-1-5-90-1")),
            None
        );
        assert_eq!(
            Identity::windows(
                Some("WIN-QALA5Q3KJ43$"),
                Some("WORKGROUP"),
                Some("S-1-5-18")
            ),
            None,
            "the SYSTEM SID marks the machine itself even under its account name"
        );
        let machine = Identity::windows(Some("HOST$"), Some("CORP"), None).unwrap();
        assert_eq!(machine.value, "CORP\\HOST$");
        let sysmon = Identity::windows(Some("DESKTOP-1\\tony"), None, None).unwrap();
        assert_eq!(sysmon.value, "DESKTOP-1\\tony");
    }

    #[test]
    fn placeholders_are_not_users_or_arns() {
        assert_eq!(Identity::user("-"), None);
        assert_eq!(Identity::user("HIDDEN_DUE_TO_SECURITY_REASONS"), None);
        assert_eq!(Identity::user("root").unwrap().value, "root");
        assert_eq!(Identity::arn(""), None);
        assert_eq!(
            Identity::arn("arn:aws:iam::1:user/bob").unwrap().kind,
            IdentityKind::Arn
        );
    }

    #[test]
    fn checked_json_is_kept_verbatim_like_validated_json() {
        for text in [
            r#"{"Event":{"System":{"EventID":4624},"EventData":{"IpAddress":"10.0.0.1"}}}"#,
            r#"{"a": [1, -2.5e3, true, null], "b": "x\"y\u00e9"}"#,
            "[]",
        ] {
            let checked = Attributes::from_checked_json(text.to_owned()).unwrap();
            let validated = Attributes::from_json(text.to_owned()).unwrap();
            assert_eq!(checked.as_str(), text);
            assert_eq!(checked, validated);
            assert_eq!(checked.to_value(), validated.to_value());
            assert_eq!(
                serde_json::to_string(&checked).unwrap(),
                serde_json::to_string(&validated).unwrap()
            );
        }
        let checked = Attributes::from_checked_json(r#"{"n":4624}"#.into()).unwrap();
        assert_eq!(checked.to_value()["n"], 4624);
    }

    #[test]
    fn dedup_keys_are_stable_and_distinct() {
        assert_eq!(dedup_key("a.evtx", "1"), dedup_key("a.evtx", "1"));
        assert_ne!(dedup_key("a.evtx", "1"), dedup_key("a.evtx", "2"));
        assert_ne!(dedup_key("a", "b\u{0}c"), dedup_key("a\u{0}b", "c"));
        assert_eq!(dedup_key("a", "1").len(), 32);
        // The keys of evidence processed before stay the same: lowercase hex of the first
        // 16 bytes of SHA-256(len(member) as u64 LE ‖ member ‖ record id).
        let mut h = Sha256::new();
        h.update(6u64.to_le_bytes());
        h.update(b"a.evtxevtx:7:1:512");
        assert_eq!(
            dedup_key("a.evtx", "evtx:7:1:512"),
            hex::encode(&h.finalize()[..16])
        );
    }

    #[test]
    fn ips_are_parsed_and_placeholders_rejected() {
        assert_eq!(
            parse_ip("::ffff:10.0.0.1"),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(parse_ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip("-"), None);
        assert_eq!(parse_ip("AWS Internal"), None);
    }
}
