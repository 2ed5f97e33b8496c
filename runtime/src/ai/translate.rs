//! The deterministic translator behind the `local` provider: a plain-language question →
//! a filter document, with no model.
//!
//! It reads, in this order: quoted text (→ `message contains`), time expressions (see
//! [`super::timeexpr`]), IP addresses and CIDR blocks, event codes (Windows ids, CloudTrail
//! API names), actions and outcomes of the normalized vocabulary ([`crate::vocab`]),
//! sources, logon types, process names, people and machines, and ordering words. What it
//! cannot place it ignores; a question with nothing it can place is a clarification.
//!
//! Phrases → vocabulary (the pipeline's mapping in `vocab.rs`):
//!
//! | phrase | leaf |
//! |---|---|
//! | failed logon / login / sign-in, brute force, bad password | `action = logon`, `outcome = failure` |
//! | logon, login, sign-in, ssh session, logged in/on | `action = logon` |
//! | logoff, logout, signed out | `action = logoff` |
//! | process start, process created, executed, ran, launched | `action = process_start` |
//! | account / user created, new user, useradd | `action = account_created` |
//! | service installed, new service | `action = service_installed` |
//! | sudo, su, privilege escalation | `action = privilege_escalation` |
//! | access key created | `action = access_key_created` |
//! | policy change, attached policy | `action = policy_changed` |
//! | s3 read / download, s3 write / upload, s3 delete | `object_read`, `object_write`, `object_deleted` |
//!
//! (the full table is [`ACTION_PHRASES`]). The output never names a case: scope is added
//! by the server from the authenticated session.

use std::net::IpAddr;
use std::str::FromStr;

use chrono_contract::data_type;
use serde_json::{Value, json};
use sqlx::types::ipnetwork::IpNetwork;

use super::timeexpr::{self, Today, Tokens};
use crate::filter::{Field, FilterDocument, Leaf, Node, Op, ResolveCtx, Sort};
use crate::vocab::{Action, Outcome};

/// What the translator made of a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Translation {
    /// A filter document (already valid).
    Filter(FilterDocument),
    /// Nothing recognisable: ask the investigator to say more.
    Clarify(String),
}

/// Phrases naming actions, most specific first, with the outcome they imply.
pub const ACTION_PHRASES: &[(&str, Action, Option<Outcome>)] = &[
    ("failed logons", Action::Logon, Some(Outcome::Failure)),
    ("failed logon", Action::Logon, Some(Outcome::Failure)),
    ("failed logins", Action::Logon, Some(Outcome::Failure)),
    ("failed login", Action::Logon, Some(Outcome::Failure)),
    ("failed sign-ins", Action::Logon, Some(Outcome::Failure)),
    ("failed sign-in", Action::Logon, Some(Outcome::Failure)),
    ("failed sign ins", Action::Logon, Some(Outcome::Failure)),
    ("failed signins", Action::Logon, Some(Outcome::Failure)),
    ("failed password", Action::Logon, Some(Outcome::Failure)),
    ("failed passwords", Action::Logon, Some(Outcome::Failure)),
    ("bad password", Action::Logon, Some(Outcome::Failure)),
    ("bad passwords", Action::Logon, Some(Outcome::Failure)),
    ("wrong password", Action::Logon, Some(Outcome::Failure)),
    ("brute force", Action::Logon, Some(Outcome::Failure)),
    ("brute-force", Action::Logon, Some(Outcome::Failure)),
    ("password spraying", Action::Logon, Some(Outcome::Failure)),
    ("logon failures", Action::Logon, Some(Outcome::Failure)),
    ("logon failure", Action::Logon, Some(Outcome::Failure)),
    ("login failures", Action::Logon, Some(Outcome::Failure)),
    ("login failure", Action::Logon, Some(Outcome::Failure)),
    ("failed to log in", Action::Logon, Some(Outcome::Failure)),
    ("invalid user", Action::Logon, Some(Outcome::Failure)),
    ("successful logons", Action::Logon, Some(Outcome::Success)),
    ("successful logon", Action::Logon, Some(Outcome::Success)),
    ("successful logins", Action::Logon, Some(Outcome::Success)),
    ("successful login", Action::Logon, Some(Outcome::Success)),
    ("successful sign-ins", Action::Logon, Some(Outcome::Success)),
    ("accepted password", Action::Logon, Some(Outcome::Success)),
    ("logged in", Action::Logon, Some(Outcome::Success)),
    ("logged on", Action::Logon, Some(Outcome::Success)),
    ("log in", Action::Logon, None),
    ("log on", Action::Logon, None),
    ("console logins", Action::Logon, None),
    ("console login", Action::Logon, None),
    ("session closed", Action::Logoff, None),
    ("sessions closed", Action::Logoff, None),
    ("ssh sessions", Action::Logon, None),
    ("logons", Action::Logon, None),
    ("logon", Action::Logon, None),
    ("logins", Action::Logon, None),
    ("login", Action::Logon, None),
    ("sign-ins", Action::Logon, None),
    ("sign-in", Action::Logon, None),
    ("signins", Action::Logon, None),
    ("sign ins", Action::Logon, None),
    ("authentications", Action::Logon, None),
    ("authentication", Action::Logon, None),
    ("logoffs", Action::Logoff, None),
    ("logoff", Action::Logoff, None),
    ("logouts", Action::Logoff, None),
    ("logout", Action::Logoff, None),
    ("log off", Action::Logoff, None),
    ("logged off", Action::Logoff, None),
    ("logged out", Action::Logoff, None),
    ("explicit credentials", Action::ExplicitCredentials, None),
    ("runas", Action::ExplicitCredentials, None),
    ("special privileges", Action::SpecialPrivileges, None),
    ("admin privileges assigned", Action::SpecialPrivileges, None),
    ("privileged logons", Action::SpecialPrivileges, None),
    ("process starts", Action::ProcessStart, None),
    ("process start", Action::ProcessStart, None),
    ("process creations", Action::ProcessStart, None),
    ("process creation", Action::ProcessStart, None),
    ("processes started", Action::ProcessStart, None),
    ("processes created", Action::ProcessStart, None),
    ("new processes", Action::ProcessStart, None),
    ("new process", Action::ProcessStart, None),
    ("processes", Action::ProcessStart, None),
    ("process", Action::ProcessStart, None),
    ("executions", Action::ProcessStart, None),
    ("executed", Action::ProcessStart, None),
    ("launched", Action::ProcessStart, None),
    ("ran", Action::ProcessStart, None),
    ("network connections", Action::NetworkConnection, None),
    ("network connection", Action::NetworkConnection, None),
    ("outbound connections", Action::NetworkConnection, None),
    ("connections", Action::NetworkConnection, None),
    ("accounts created", Action::AccountCreated, None),
    ("account created", Action::AccountCreated, None),
    ("account creations", Action::AccountCreated, None),
    ("account creation", Action::AccountCreated, None),
    ("created accounts", Action::AccountCreated, None),
    ("created account", Action::AccountCreated, None),
    ("users created", Action::AccountCreated, None),
    ("user created", Action::AccountCreated, None),
    ("created users", Action::AccountCreated, None),
    ("created user", Action::AccountCreated, None),
    ("new accounts", Action::AccountCreated, None),
    ("new account", Action::AccountCreated, None),
    ("new users", Action::AccountCreated, None),
    ("new user", Action::AccountCreated, None),
    ("useradd", Action::AccountCreated, None),
    ("accounts enabled", Action::AccountEnabled, None),
    ("account enabled", Action::AccountEnabled, None),
    ("enabled accounts", Action::AccountEnabled, None),
    ("password changes", Action::PasswordChange, None),
    ("password change", Action::PasswordChange, None),
    ("password changed", Action::PasswordChange, None),
    ("changed password", Action::PasswordChange, None),
    ("changed passwords", Action::PasswordChange, None),
    ("changed their password", Action::PasswordChange, None),
    ("passwd", Action::PasswordChange, None),
    ("password resets", Action::PasswordReset, None),
    ("password reset", Action::PasswordReset, None),
    ("reset password", Action::PasswordReset, None),
    ("accounts disabled", Action::AccountDisabled, None),
    ("account disabled", Action::AccountDisabled, None),
    ("disabled accounts", Action::AccountDisabled, None),
    ("disabled account", Action::AccountDisabled, None),
    ("accounts deleted", Action::AccountDeleted, None),
    ("account deleted", Action::AccountDeleted, None),
    ("deleted accounts", Action::AccountDeleted, None),
    ("deleted account", Action::AccountDeleted, None),
    ("deleted users", Action::AccountDeleted, None),
    ("users deleted", Action::AccountDeleted, None),
    ("user deleted", Action::AccountDeleted, None),
    ("account deletions", Action::AccountDeleted, None),
    ("account deletion", Action::AccountDeleted, None),
    ("user deletions", Action::AccountDeleted, None),
    ("userdel", Action::AccountDeleted, None),
    ("group changes", Action::GroupChanged, None),
    ("group change", Action::GroupChanged, None),
    ("group membership", Action::GroupChanged, None),
    ("added to a group", Action::GroupChanged, None),
    ("added to group", Action::GroupChanged, None),
    ("group changed", Action::GroupChanged, None),
    ("account changes", Action::AccountChanged, None),
    ("account changed", Action::AccountChanged, None),
    ("accounts modified", Action::AccountChanged, None),
    ("account modified", Action::AccountChanged, None),
    ("modified accounts", Action::AccountChanged, None),
    ("usermod", Action::AccountChanged, None),
    ("services installed", Action::ServiceInstalled, None),
    ("service installed", Action::ServiceInstalled, None),
    ("service installs", Action::ServiceInstalled, None),
    ("service installations", Action::ServiceInstalled, None),
    ("installed services", Action::ServiceInstalled, None),
    ("installed service", Action::ServiceInstalled, None),
    ("new services", Action::ServiceInstalled, None),
    ("new service", Action::ServiceInstalled, None),
    ("privilege escalations", Action::PrivilegeEscalation, None),
    ("privilege escalation", Action::PrivilegeEscalation, None),
    ("sudo", Action::PrivilegeEscalation, None),
    ("su", Action::PrivilegeEscalation, None),
    ("access keys created", Action::AccessKeyCreated, None),
    ("access key created", Action::AccessKeyCreated, None),
    ("access key creations", Action::AccessKeyCreated, None),
    ("new access keys", Action::AccessKeyCreated, None),
    ("new access key", Action::AccessKeyCreated, None),
    ("created access keys", Action::AccessKeyCreated, None),
    ("created access key", Action::AccessKeyCreated, None),
    ("access keys", Action::AccessKeyCreated, None),
    ("policy changes", Action::PolicyChanged, None),
    ("policy change", Action::PolicyChanged, None),
    ("policies changed", Action::PolicyChanged, None),
    ("policy changed", Action::PolicyChanged, None),
    ("attached policies", Action::PolicyChanged, None),
    ("attached policy", Action::PolicyChanged, None),
    ("iam policy", Action::PolicyChanged, None),
    ("policies", Action::PolicyChanged, None),
    ("s3 reads", Action::ObjectRead, None),
    ("s3 read", Action::ObjectRead, None),
    ("s3 downloads", Action::ObjectRead, None),
    ("object reads", Action::ObjectRead, None),
    ("objects read", Action::ObjectRead, None),
    ("downloads", Action::ObjectRead, None),
    ("downloaded", Action::ObjectRead, None),
    ("s3 writes", Action::ObjectWrite, None),
    ("s3 write", Action::ObjectWrite, None),
    ("s3 uploads", Action::ObjectWrite, None),
    ("object writes", Action::ObjectWrite, None),
    ("objects written", Action::ObjectWrite, None),
    ("uploads", Action::ObjectWrite, None),
    ("uploaded", Action::ObjectWrite, None),
    ("s3 deletes", Action::ObjectDeleted, None),
    ("s3 deletions", Action::ObjectDeleted, None),
    ("objects deleted", Action::ObjectDeleted, None),
    ("deleted objects", Action::ObjectDeleted, None),
    ("object deletions", Action::ObjectDeleted, None),
    ("api calls", Action::ApiCall, None),
    ("api call", Action::ApiCall, None),
];

const OUTCOME_WORDS: &[(&str, Outcome)] = &[
    ("unsuccessful", Outcome::Failure),
    ("failed", Outcome::Failure),
    ("failures", Outcome::Failure),
    ("failure", Outcome::Failure),
    ("denied", Outcome::Failure),
    ("errors", Outcome::Failure),
    ("successful", Outcome::Success),
    ("succeeded", Outcome::Success),
    ("successes", Outcome::Success),
];

/// `data_type` of the pipeline's EVTX records.
pub const WINDOWS_DATA_TYPE: &str = data_type::WINDOWS_EVTX;
/// `data_type` of the pipeline's syslog lines (RFC 3164/5424, auth.log).
pub const SYSLOG_DATA_TYPE: &str = data_type::SYSLOG;
/// `data_type` of the pipeline's CloudTrail records.
pub const CLOUDTRAIL_DATA_TYPE: &str = data_type::CLOUDTRAIL;
/// Where the pipeline keeps an EVTX record's logon type (the record stays nested in
/// `attributes`; the filter compiler follows dotted keys).
pub const LOGON_TYPE_ATTR: &str = "Event.EventData.LogonType";

/// Words naming where events come from, as the pipeline writes them: a family of sources
/// is a `data_type`; `source` is the channel (EVTX), program (syslog) or service
/// (CloudTrail `eventSource`).
const SOURCES: &[(&str, Field, &str)] = &[
    ("windows", Field::DataType, WINDOWS_DATA_TYPE),
    ("event log", Field::DataType, WINDOWS_DATA_TYPE),
    ("eventlog", Field::DataType, WINDOWS_DATA_TYPE),
    ("evtx", Field::DataType, WINDOWS_DATA_TYPE),
    (
        "sysmon",
        Field::Source,
        "Microsoft-Windows-Sysmon/Operational",
    ),
    ("security log", Field::Source, "Security"),
    ("sshd", Field::Source, "sshd"),
    ("ssh", Field::Source, "sshd"),
    ("linux", Field::DataType, SYSLOG_DATA_TYPE),
    ("syslog", Field::DataType, SYSLOG_DATA_TYPE),
    ("cloudtrail", Field::DataType, CLOUDTRAIL_DATA_TYPE),
    ("aws", Field::DataType, CLOUDTRAIL_DATA_TYPE),
    ("iam", Field::Source, "iam.amazonaws.com"),
    ("s3", Field::Source, "s3.amazonaws.com"),
];

/// Well-known Windows event ids the pipeline maps (so a bare "4625" is an event code).
const WINDOWS_CODES: &[&str] = &[
    "1102", "4624", "4625", "4634", "4647", "4648", "4672", "4688", "4720", "4722", "4723", "4724",
    "4725", "4726", "4727", "4728", "4729", "4730", "4731", "4732", "4733", "4734", "4735", "4736",
    "4737", "4738", "7045", "4104",
];

/// Programs whose name in a question means "the message mentions it".
const PROGRAMS: &[&str] = &[
    "powershell",
    "cmd",
    "mimikatz",
    "psexec",
    "rundll32",
    "certutil",
    "wmic",
    "whoami",
    "regsvr32",
    "mshta",
    "bitsadmin",
    "schtasks",
    "vssadmin",
    "procdump",
    "curl",
    "wget",
    "ping",
    "ipconfig",
    "regedit",
];

/// Words that are never a person's or machine's name.
const NOT_NAMES: &[&str] = &[
    "a",
    "an",
    "the",
    "all",
    "any",
    "every",
    "each",
    "some",
    "and",
    "or",
    "not",
    "no",
    "of",
    "on",
    "in",
    "at",
    "to",
    "from",
    "for",
    "by",
    "with",
    "without",
    "me",
    "my",
    "us",
    "our",
    "show",
    "list",
    "find",
    "get",
    "give",
    "what",
    "which",
    "who",
    "when",
    "where",
    "how",
    "did",
    "do",
    "does",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "has",
    "have",
    "had",
    "it",
    "that",
    "this",
    "these",
    "those",
    "there",
    "events",
    "event",
    "activity",
    "entries",
    "records",
    "logs",
    "log",
    "happened",
    "machine",
    "machines",
    "host",
    "hosts",
    "server",
    "servers",
    "user",
    "users",
    "account",
    "accounts",
    "person",
    "people",
    "same",
    "only",
    "other",
    "than",
    "but",
    "except",
    "excluding",
    "also",
    "please",
    "can",
    "you",
    "i",
    "ip",
    "address",
    "addresses",
    "source",
    "destination",
    "anything",
    "everything",
    "something",
    "time",
    "times",
    "one",
    "ones",
    "them",
    "they",
    "he",
    "she",
    "his",
    "her",
    "their",
    "its",
    "via",
    "over",
    "into",
    "about",
    "as",
    "let",
    "see",
    "now",
    "then",
    "any",
    "between",
    "since",
    "after",
    "before",
    "until",
    "during",
    "within",
    "per",
    "whose",
    "code",
    "id",
    "rdp",
    "network",
    "interactive",
    "remote",
    "desktop",
    "first",
    "last",
    "latest",
    "recent",
    "newest",
    "oldest",
    "earliest",
    "most",
    "top",
    "sorted",
    "order",
    "ordered",
    "console",
    "made",
    "done",
    "performed",
    "happen",
    "occurred",
];

/// The question split into tokens: lowercased (ASCII) for matching, and as typed.
struct Words {
    lower: Tokens,
    typed: Vec<String>,
}

impl Words {
    fn new(text: &str) -> Self {
        let cleaned: String = text
            .chars()
            .map(|c| match c {
                '?' | ',' | '!' | ';' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | '\u{201c}'
                | '\u{201d}' | '`' => ' ',
                c if c.is_control() => ' ',
                c => c,
            })
            .collect();
        let typed: Vec<String> = cleaned
            .split_whitespace()
            .map(|w| {
                let w = w.trim_end_matches(['.', ':']);
                w.strip_suffix("'s").unwrap_or(w).to_string()
            })
            .filter(|w| !w.is_empty())
            .collect();
        let lower = typed.iter().map(|w| Some(w.to_ascii_lowercase())).collect();
        Words { lower, typed }
    }

    fn get(&self, i: usize) -> Option<&str> {
        self.lower.get(i).and_then(|t| t.as_deref())
    }

    fn consume(&mut self, i: usize, n: usize) {
        for t in self.lower.iter_mut().skip(i).take(n) {
            *t = None;
        }
    }

    /// Index of the multi-word `phrase` among unconsumed tokens.
    fn find(&self, phrase: &str) -> Option<(usize, usize)> {
        let parts: Vec<&str> = phrase.split(' ').collect();
        (0..self.lower.len()).find_map(|i| {
            parts
                .iter()
                .enumerate()
                .all(|(k, p)| self.get(i + k) == Some(p))
                .then_some((i, parts.len()))
        })
    }

    /// Whether the word before `i` (skipping consumed tokens? no: the direct neighbour)
    /// negates what follows.
    fn negated_before(&self, i: usize) -> bool {
        let prev = |k: usize| {
            i.checked_sub(k)
                .and_then(|j| self.lower.get(j).cloned().flatten())
        };
        let p1 = prev(1);
        let p2 = prev(2);
        matches!(
            p1.as_deref(),
            Some("except" | "excluding" | "exclude" | "without" | "not")
        ) || matches!(
            (p2.as_deref(), p1.as_deref()),
            (Some("other"), Some("than")) | (Some("but"), Some("not"))
        )
    }
}

/// Leaves collected per field, to merge same-field values into one `in`.
#[derive(Default)]
struct Collected {
    positive: Vec<(Field, Op, Value)>,
    negative: Vec<(Field, Op, Value)>,
}

impl Collected {
    fn add(&mut self, negated: bool, field: Field, op: Op, value: Value) {
        let list = if negated {
            &mut self.negative
        } else {
            &mut self.positive
        };
        if !list
            .iter()
            .any(|(f, o, v)| *f == field && *o == op && *v == value)
        {
            list.push((field, op, value));
        }
    }

    fn is_empty(&self) -> bool {
        self.positive.is_empty() && self.negative.is_empty()
    }

    /// The condition: same-field `eq` leaves merged into `in` (`nin` when negated).
    fn into_node(self) -> Option<Node> {
        let mut nodes = Vec::new();
        for (negated, list) in [(false, self.positive), (true, self.negative)] {
            let mut merged: Vec<(Field, Op, Value)> = Vec::new();
            for (field, op, value) in list {
                if op == Op::Eq
                    && let Some(existing) = merged
                        .iter_mut()
                        .find(|(f, o, _)| *f == field && matches!(o, Op::Eq | Op::In))
                {
                    let mut values = match std::mem::take(&mut existing.2) {
                        Value::Array(v) => v,
                        v => vec![v],
                    };
                    values.push(value);
                    *existing = (field, Op::In, Value::Array(values));
                    continue;
                }
                merged.push((field, op, value));
            }
            for (field, op, value) in merged {
                let op = match (negated, op) {
                    (true, Op::Eq) => Op::Neq,
                    (true, Op::In) => Op::Nin,
                    (_, op) => op,
                };
                let leaf = Node::Leaf(Leaf {
                    field,
                    op,
                    value: Some(value),
                });
                let negate_wrapper = negated && !matches!(op, Op::Neq | Op::Nin);
                nodes.push(if negate_wrapper {
                    Node::Not(Box::new(leaf))
                } else {
                    leaf
                });
            }
        }
        match nodes.len() {
            0 => None,
            1 => nodes.pop(),
            _ => Some(Node::All(nodes)),
        }
    }
}

/// Translates `question` against the caller's now and zone.
pub fn translate(question: &str, ctx: &ResolveCtx) -> Translation {
    let (quoted, rest) = split_quoted(question);
    let mut w = Words::new(&rest);
    let mut c = Collected::default();
    for q in quoted {
        c.add(false, Field::Message, Op::Contains, json!(q));
    }

    // Actions first: "logged in yesterday" must keep its "in".
    logon_types(&mut w, &mut c);
    actions(&mut w, &mut c);
    let time = timeexpr::extract(&mut w.lower, Today::new(ctx.now, ctx.tz));
    let (sort, limit) = ordering(&mut w);
    addresses(&mut w, &mut c);
    event_codes(&mut w, &mut c);
    sources(&mut w, &mut c);
    programs(&mut w, &mut c);
    labels(&mut w, &mut c);
    machines(&mut w, &mut c);
    people(&mut w, &mut c);

    if c.is_empty() && time.is_none() {
        return Translation::Clarify(
            "I could not find anything to filter on. Name an action (failed logons, \
             process starts, accounts created…), a user, a host, an IP address or a time."
                .into(),
        );
    }
    let mut doc = FilterDocument {
        time,
        condition: c.into_node(),
        sort,
        ..FilterDocument::default()
    };
    if let Some(n) = limit {
        doc.limit = n;
    }
    match doc.validate() {
        Ok(()) => Translation::Filter(doc),
        Err(e) => Translation::Clarify(format!(
            "I could not turn that into a valid filter ({e}); try rephrasing it."
        )),
    }
}

/// Quoted phrases (`"…"`, `“…”`, `'…'` at word boundaries) and the text without them.
fn split_quoted(text: &str) -> (Vec<String>, String) {
    let mut quoted = Vec::new();
    let mut rest = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let close = match c {
            '"' => Some('"'),
            '\u{201c}' => Some('\u{201d}'),
            '\'' if i == 0 || chars[i - 1].is_whitespace() => Some('\''),
            _ => None,
        };
        if let Some(close) = close
            && let Some(len) = chars[i + 1..].iter().position(|x| *x == close)
        {
            let inner: String = chars[i + 1..i + 1 + len].iter().collect();
            let inner = inner.trim();
            if !inner.is_empty() {
                quoted.push(
                    inner
                        .chars()
                        .take(crate::filter::MAX_STRING_CHARS)
                        .collect(),
                );
            }
            rest.push(' ');
            i += len + 2;
            continue;
        }
        rest.push(c);
        i += 1;
    }
    (quoted, rest)
}

fn ordering(w: &mut Words) -> (Sort, Option<u32>) {
    let mut sort = Sort::TsAsc;
    let mut limit = None;
    for (phrase, s) in [
        ("most recent first", Sort::TsDesc),
        ("newest first", Sort::TsDesc),
        ("latest first", Sort::TsDesc),
        ("oldest first", Sort::TsAsc),
        ("most recent", Sort::TsDesc),
        ("latest", Sort::TsDesc),
        ("newest", Sort::TsDesc),
        ("recent", Sort::TsDesc),
        ("oldest", Sort::TsAsc),
        ("earliest", Sort::TsAsc),
    ] {
        if let Some((i, n)) = w.find(phrase) {
            sort = s;
            w.consume(i, n);
            // "the 10 most recent", "latest 5"
            let before = i.checked_sub(1).and_then(|j| w.get(j)).and_then(count);
            let after = w.get(i + n).and_then(count);
            if let Some(k) = before {
                limit = Some(k);
                w.consume(i - 1, 1);
            } else if let Some(k) = after {
                limit = Some(k);
                w.consume(i + n, 1);
            }
            break;
        }
    }
    if limit.is_none() {
        for word in ["top", "first", "last"] {
            if let Some((i, _)) = w.find(word)
                && let Some(k) = w.get(i + 1).and_then(count)
            {
                limit = Some(k);
                if word == "last" {
                    sort = Sort::TsDesc;
                }
                w.consume(i, 2);
                break;
            }
        }
    }
    (sort, limit)
}

fn count(t: &str) -> Option<u32> {
    t.parse::<u32>()
        .ok()
        .filter(|n| (1..=crate::filter::MAX_LIMIT).contains(n))
}

fn addresses(w: &mut Words, c: &mut Collected) {
    for i in 0..w.lower.len() {
        let Some(t) = w.get(i).map(str::to_owned) else {
            continue;
        };
        let prev = i.checked_sub(1).and_then(|j| w.get(j)).map(str::to_owned);
        let to_side = matches!(
            prev.as_deref(),
            Some("to" | "towards" | "destination" | "dst")
        );
        let field = if to_side { Field::DstIp } else { Field::SrcIp };
        let prepositioned = matches!(prev.as_deref(), Some("from" | "to"));
        let negated = w.negated_before(i) || (prepositioned && w.negated_before(i - 1));
        if t.contains('/') {
            if let Ok(net) = IpNetwork::from_str(&t) {
                c.add(negated, field, Op::Cidr, json!(net.to_string()));
                w.consume(i, 1);
            }
        } else if t.contains(['.', ':'])
            && let Ok(ip) = IpAddr::from_str(&t)
        {
            c.add(negated, field, Op::Eq, json!(ip.to_string()));
            w.consume(i, 1);
        } else {
            continue;
        }
        if let Some(j) = i.checked_sub(1)
            && matches!(
                prev.as_deref(),
                Some("from" | "to" | "ip" | "address" | "towards" | "destination" | "dst" | "src")
            )
        {
            w.consume(j, 1);
        }
    }
}

fn event_codes(w: &mut Words, c: &mut Collected) {
    for i in 0..w.lower.len() {
        let Some(t) = w.get(i).map(str::to_owned) else {
            continue;
        };
        let prev = i.checked_sub(1).and_then(|j| w.get(j)).map(str::to_owned);
        let after_marker = matches!(
            prev.as_deref(),
            Some("event" | "id" | "eventid" | "code" | "codes" | "ids" | "or" | "and")
        );
        let numeric = !t.is_empty() && t.len() <= 5 && t.bytes().all(|b| b.is_ascii_digit());
        let typed = w.typed[i].clone();
        let is_code = (numeric && (WINDOWS_CODES.contains(&t.as_str()) || after_marker))
            || is_api_name(&typed);
        if !is_code {
            continue;
        }
        let negated = w.negated_before(i);
        c.add(negated, Field::EventCode, Op::Eq, json!(typed));
        w.consume(i, 1);
        if let Some(j) = i.checked_sub(1)
            && matches!(
                prev.as_deref(),
                Some("event" | "id" | "eventid" | "code" | "codes" | "ids")
            )
        {
            w.consume(j, 1);
            if j > 0 && matches!(w.get(j - 1), Some("event")) {
                w.consume(j - 1, 1);
            }
        }
    }
}

/// CloudTrail API names: `ConsoleLogin`, `CreateAccessKey`, `GetObject` (two or more
/// capitalised humps, letters only).
fn is_api_name(t: &str) -> bool {
    let humps = t.chars().filter(|c| c.is_ascii_uppercase()).count();
    t.len() >= 6
        && t.chars().all(|c| c.is_ascii_alphabetic())
        && t.starts_with(|c: char| c.is_ascii_uppercase())
        && humps >= 2
        && t.chars().any(|c| c.is_ascii_lowercase())
}

fn logon_types(w: &mut Words, c: &mut Collected) {
    for (phrase, kind) in [
        ("remote desktop", "10"),
        ("rdp", "10"),
        ("network logons", "3"),
        ("network logon", "3"),
        ("interactive", "2"),
    ] {
        if let Some((i, n)) = w.find(phrase) {
            c.add(
                false,
                Field::Attr(LOGON_TYPE_ATTR.into()),
                Op::Eq,
                json!(kind),
            );
            // "network logon(s)" also names the action
            if phrase.starts_with("network") {
                c.add(false, Field::Action, Op::Eq, json!(Action::Logon.as_str()));
            }
            w.consume(i, n);
        }
    }
}

fn actions(w: &mut Words, c: &mut Collected) {
    let mut outcome: Option<Outcome> = None;
    // "access denied" is a CloudTrail error code
    if let Some((i, n)) = w.find("access denied") {
        c.add(
            false,
            Field::Attr("errorCode".into()),
            Op::Eq,
            json!("AccessDenied"),
        );
        outcome = Some(Outcome::Failure);
        w.consume(i, n);
    }
    for (phrase, action, implied) in ACTION_PHRASES {
        while let Some((i, n)) = w.find(phrase) {
            let negated = w.negated_before(i);
            c.add(negated, Field::Action, Op::Eq, json!(action.as_str()));
            if let Some(o) = implied
                && !negated
            {
                outcome = Some(*o);
            }
            w.consume(i, n);
        }
    }
    for (word, o) in OUTCOME_WORDS {
        if let Some((i, n)) = w.find(word) {
            outcome = Some(*o);
            w.consume(i, n);
        }
    }
    if let Some(o) = outcome {
        c.add(false, Field::Outcome, Op::Eq, json!(o.as_str()));
    }
}

fn sources(w: &mut Words, c: &mut Collected) {
    for (phrase, field, value) in SOURCES {
        if let Some((i, n)) = w.find(phrase) {
            let negated = w.negated_before(i);
            c.add(negated, field.clone(), Op::Eq, json!(value));
            w.consume(i, n);
        }
    }
}

fn programs(w: &mut Words, c: &mut Collected) {
    for i in 0..w.lower.len() {
        let Some(t) = w.get(i).map(str::to_owned) else {
            continue;
        };
        let base = t.strip_suffix(".exe").unwrap_or(&t);
        if t.ends_with(".exe") || PROGRAMS.contains(&base) {
            let negated = w.negated_before(i);
            c.add(negated, Field::Message, Op::Contains, json!(t));
            w.consume(i, 1);
        }
    }
}

fn labels(w: &mut Words, c: &mut Collected) {
    for marker in ["labelled", "labeled", "label"] {
        if let Some((i, _)) = w.find(marker)
            && let Some(name) = w.get(i + 1).map(str::to_owned)
        {
            c.add(false, Field::Label, Op::Eq, json!(name));
            w.consume(i, 2);
        }
    }
    for marker in ["tagged", "tag"] {
        if let Some((i, _)) = w.find(marker)
            && let Some(name) = w.get(i + 1).map(str::to_owned)
        {
            c.add(false, Field::Tag, Op::Eq, json!(name));
            w.consume(i, 2);
        }
    }
    if let Some((i, n)) = w.find("starred") {
        c.add(false, Field::Label, Op::Eq, json!("star"));
        w.consume(i, n);
    }
}

fn name_like(t: &str) -> bool {
    !NOT_NAMES.contains(&t)
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '\\' | '@' | '$'))
        && t.chars().any(char::is_alphanumeric)
}

/// A token that looks like a machine name: `WS01`, `web-1`, `dc01.corp.local`.
fn host_like(typed: &str) -> bool {
    let has_digit = typed.chars().any(|c| c.is_ascii_digit());
    let has_alpha = typed.chars().any(|c| c.is_ascii_alphabetic());
    let all_upper = typed
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .all(|c| c.is_ascii_uppercase());
    has_alpha
        && (has_digit || (typed.contains('-') && all_upper) || typed.contains('.'))
        && !typed.contains('@')
        && !typed.contains('\\')
}

fn machines(w: &mut Words, c: &mut Collected) {
    // "on the laptop", "the domain controller"
    for (phrase, needle) in [
        ("the domain controller", "dc"),
        ("domain controller", "dc"),
        ("the laptop", "laptop"),
        ("the desktop", "desktop"),
        ("the workstation", "ws"),
    ] {
        if let Some((i, n)) = w.find(phrase) {
            let negated = w.negated_before(i);
            c.add(negated, Field::Device, Op::Contains, json!(needle));
            w.consume(i, n);
            if i > 0 && matches!(w.get(i - 1), Some("on" | "from" | "at")) {
                w.consume(i - 1, 1);
            }
        }
    }
    let markers = [
        "host",
        "hosts",
        "machine",
        "machines",
        "server",
        "servers",
        "computer",
        "device",
        "workstation",
        "hostname",
    ];
    for i in 0..w.lower.len() {
        let Some(t) = w.get(i).map(str::to_owned) else {
            continue;
        };
        let prev = i.checked_sub(1).and_then(|j| w.get(j)).map(str::to_owned);
        let typed = w.typed[i].clone();
        let marked = prev.as_deref().is_some_and(|p| markers.contains(&p));
        let located = matches!(prev.as_deref(), Some("on" | "at" | "from"))
            || (matches!(prev.as_deref(), Some("or" | "and"))
                && c.positive.iter().any(|(f, _, _)| *f == Field::Device));
        if !name_like(&t) || !(marked || (located && host_like(&typed))) {
            continue;
        }
        let negated = w.negated_before(i.saturating_sub(usize::from(marked)));
        c.add(negated, Field::Device, Op::Eq, json!(typed));
        w.consume(i, 1);
        if marked || located {
            w.consume(i - 1, 1);
        }
    }
}

fn people(w: &mut Words, c: &mut Collected) {
    let markers = [
        "user", "users", "account", "accounts", "for", "by", "as", "of", "username", "identity",
        "person", "did",
    ];
    // root and administrator are people wherever they appear
    for i in 0..w.lower.len() {
        if let Some(t) = w.get(i).map(str::to_owned)
            && matches!(t.as_str(), "root" | "administrator")
        {
            let negated = w.negated_before(i);
            c.add(negated, Field::Identity, Op::Eq, json!(w.typed[i].clone()));
            w.consume(i, 1);
        }
    }
    for i in 0..w.lower.len() {
        let Some(t) = w.get(i).map(str::to_owned) else {
            continue;
        };
        let prev = i.checked_sub(1).and_then(|j| w.get(j)).map(str::to_owned);
        let marked = prev.as_deref().is_some_and(|p| markers.contains(&p));
        let negation =
            matches!(
                prev.as_deref(),
                Some("except" | "excluding" | "than" | "without")
            ) || (prev.as_deref() == Some("not") && i >= 2 && matches!(w.get(i - 2), Some("but")));
        let chained = matches!(prev.as_deref(), Some("or" | "and"))
            && i >= 2
            && w.lower[i - 2].is_none()
            && c.positive
                .iter()
                .chain(c.negative.iter())
                .any(|(f, _, _)| *f == Field::Identity);
        let typed = w.typed[i].clone();
        // a machine-looking token after "from"/"on" was taken by `machines`
        if !name_like(&t) || !(marked || negation || chained) || is_noise_word(&t) {
            continue;
        }
        let negated = negation || w.negated_before(i.saturating_sub(1));
        let negated = negated
            || (chained
                && c.negative.iter().any(|(f, _, _)| *f == Field::Identity)
                && !c.positive.iter().any(|(f, _, _)| *f == Field::Identity));
        c.add(negated, Field::Identity, Op::Eq, json!(typed));
        w.consume(i, 1);
        if let Some(j) = i.checked_sub(1) {
            w.consume(j, 1);
        }
    }
}

/// Filler words that follow "for"/"by"/"of" without being names.
fn is_noise_word(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_digit())
        || [
            "example", "instance", "now", "today", "real", "sure", "while", "ever", "good", "them",
            "you", "me", "us",
        ]
        .contains(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn ctx() -> ResolveCtx {
        ResolveCtx {
            now: DateTime::parse_from_rfc3339("2024-03-14T15:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            tz: chrono_tz::Europe::Berlin,
        }
    }

    fn doc(q: &str) -> Value {
        match translate(q, &ctx()) {
            Translation::Filter(d) => serde_json::to_value(d).unwrap(),
            Translation::Clarify(m) => panic!("{q}: {m}"),
        }
    }

    #[test]
    fn the_issue_example_becomes_a_full_filter() {
        let d = doc("failed logons for bob on the laptop after midnight last Tuesday");
        assert_eq!(
            d,
            json!({
                "time": {"from": "2024-03-12T00:00:00", "to": "2024-03-12T05:59:59.999999"},
                "where": {"all": [
                    {"field": "action", "op": "eq", "value": "logon"},
                    {"field": "outcome", "op": "eq", "value": "failure"},
                    {"field": "device", "op": "contains", "value": "laptop"},
                    {"field": "identity", "op": "eq", "value": "bob"}
                ]},
                "sort": "ts_asc",
                "limit": 100
            })
        );
    }

    #[test]
    fn relative_times_follow_the_callers_zone() {
        // 02:00 UTC on the 14th is still the 13th in New York.
        let ny = ResolveCtx {
            now: DateTime::parse_from_rfc3339("2024-03-14T02:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            tz: chrono_tz::America::New_York,
        };
        let Translation::Filter(d) = translate("logons today", &ny) else {
            panic!("no filter")
        };
        assert_eq!(
            serde_json::to_value(d.time).unwrap(),
            json!({"from": "2024-03-13T00:00:00", "to": "2024-03-13T23:59:59.999999"})
        );
        for (q, time) in [
            ("logons in the last 90 minutes", json!({"last": "90m"})),
            ("logons over the past two weeks", json!({"last": "2w"})),
            ("logons since 10:30", json!({"from": "2024-03-14T10:30:00"})),
            (
                "logons at 9:15pm on March 2",
                json!({"around": "2024-03-02T21:15:00", "window": "15m"}),
            ),
            (
                "logons from 2024-03-01T08:00 to 2024-03-01T09:30",
                json!({"from": "2024-03-01T08:00:00", "to": "2024-03-01T09:30:00"}),
            ),
            (
                "logons last week",
                json!({"from": "2024-03-04T00:00:00", "to": "2024-03-10T23:59:59.999999"}),
            ),
            (
                "logons last month",
                json!({"from": "2024-02-01T00:00:00", "to": "2024-02-29T23:59:59.999999"}),
            ),
            // a date later in the year than today is last year's
            (
                "logons on 24 December",
                json!({"from": "2023-12-24T00:00:00", "to": "2023-12-24T23:59:59.999999"}),
            ),
        ] {
            let Translation::Filter(d) = translate(q, &ctx()) else {
                panic!("{q}: no filter")
            };
            assert_eq!(serde_json::to_value(d.time).unwrap(), time, "{q}");
        }
    }

    #[test]
    fn same_field_values_merge_and_negations_become_neq_or_not() {
        assert_eq!(
            doc("logons for bob or alice except from 10.0.0.5")["where"],
            json!({"all": [
                {"field": "action", "op": "eq", "value": "logon"},
                {"field": "identity", "op": "in", "value": ["bob", "alice"]},
                {"field": "src_ip", "op": "neq", "value": "10.0.0.5"}
            ]})
        );
        assert_eq!(
            doc("events except 10.0.0.0/8")["where"],
            json!({"not": {"field": "src_ip", "op": "cidr", "value": "10.0.0.0/8"}})
        );
    }

    #[test]
    fn odd_input_never_panics_and_stays_valid() {
        for q in [
            "",
            "\u{0}\u{0}",
            "\"unterminated quote",
            "last 0 hours",
            "between and",
            "99:99 on 2024-02-30",
            "event event event",
            "from from from 1.2.3.4.5",
            "on February 31",
            "logons at 25pm",
            "a".repeat(5000).as_str(),
            "\"x\" ".repeat(50).as_str(),
        ] {
            if let Translation::Filter(d) = translate(q, &ctx()) {
                assert!(d.validate().is_ok(), "{q}");
            }
        }
    }

    /// Regression: the translator wrote `source` values (`EVT`, `SYSLOG`, `CLOUDTRAIL`) and
    /// a top-level `LogonType` the pipeline never produces.
    #[test]
    fn sources_and_logon_types_are_what_the_pipeline_writes() {
        let leaves = |q: &str| doc(q)["where"]["all"].clone();
        let w = leaves("windows logons");
        assert!(w.as_array().unwrap().contains(
            &serde_json::json!({"field": "data_type", "op": "eq", "value": WINDOWS_DATA_TYPE})
        ));
        let w = leaves("interactive logons");
        assert!(w.as_array().unwrap().contains(&serde_json::json!(
            {"field": "attr.Event.EventData.LogonType", "op": "eq", "value": "2"}
        )));
        let w = leaves("failed ssh logins");
        assert!(
            w.as_array()
                .unwrap()
                .contains(&serde_json::json!({"field": "source", "op": "eq", "value": "sshd"}))
        );
        for q in ["linux events", "cloudtrail events", "sysmon events"] {
            let text = doc(q).to_string();
            assert!(
                !text.contains("EVT") && !text.contains("SYSLOG") && !text.contains("CLOUDTRAIL"),
                "{q}: {text}"
            );
        }
        assert_eq!(
            doc("linux events")["where"],
            serde_json::json!({"field": "data_type", "op": "eq", "value": SYSLOG_DATA_TYPE})
        );
        assert_eq!(
            doc("cloudtrail events")["where"],
            serde_json::json!({"field": "data_type", "op": "eq", "value": CLOUDTRAIL_DATA_TYPE})
        );
    }

    #[test]
    fn nothing_recognisable_asks_for_more() {
        assert!(matches!(
            translate("hello there", &ctx()),
            Translation::Clarify(_)
        ));
    }
}
