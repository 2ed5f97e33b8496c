//! The deterministic translator behind the `local` provider: a plain-language question →
//! a filter document, with no model.
//!
//! It reads, in this order: quoted text (→ `message contains`), logon types and well-known
//! accounts (the catalog's field knowledge, `runtime/catalog/windows-fields.yaml`), time
//! expressions (see [`super::timeexpr`]), ordering words, IP addresses and CIDR blocks,
//! event codes the investigator typed (Windows ids the catalog knows, CloudTrail API
//! names), labels, machines and people, then **the kinds of events** — the question's
//! remaining words matched, ranked, against the event catalog's titles and terms
//! ([`super::matching`]): actions of the vocabulary, categories, families, audit
//! subcategories or single event types — and last sources, program names and outcome
//! words. What it cannot place it ignores; a question with nothing it can place is a
//! clarification.
//!
//! Several kinds of events narrow each other (AND) unless the question joins them with
//! "or"/"and" (then any of them); a kind the question qualifies ("logons with explicit
//! credentials") is one kind, not two. Names are written as typed: the server resolves them
//! (a bare account name in every domain, a host by short name or FQDN). The output never
//! names a case: scope is added by the server from the authenticated session.

use std::net::IpAddr;
use std::str::FromStr;

use chrono_contract::data_type;
use serde_json::{Value, json};
use sqlx::types::ipnetwork::IpNetwork;

use super::matching::{self, Target};
use super::timeexpr::{self, Today, Tokens};
use super::words;
use crate::filter::{Field, FilterDocument, Leaf, Node, Op, ResolveCtx, Sort};
use crate::knowledge::{self, EventType};
use crate::vocab::{Action, Category, Outcome};

/// What the translator made of a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Translation {
    /// A filter document (already valid).
    Filter(FilterDocument),
    /// Nothing recognisable: ask the investigator to say more.
    Clarify(String),
}

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

/// Words that are never a person's or machine's name (besides the words that carry no
/// meaning at all, [`words::is_stop`]).
const NOT_NAMES: &[&str] = &[
    "events",
    "event",
    "activity",
    "entries",
    "records",
    "logs",
    "log",
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
    "other",
    "but",
    "except",
    "excluding",
    "ip",
    "address",
    "addresses",
    "source",
    "destination",
    "anything",
    "everything",
    "something",
    "time",
    "now",
    "between",
    "since",
    "after",
    "before",
    "until",
    "during",
    "within",
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
    "performed",
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
        // "logged in", "sign-in", "shut down": one word, so later steps see one concept
        let mut lower: Tokens = Vec::with_capacity(typed.len());
        let mut i = 0;
        while i < typed.len() {
            let one = typed[i].to_ascii_lowercase();
            let two = typed
                .get(i + 1)
                .map(|n| words::fold_phrases(&[one.clone(), n.to_ascii_lowercase()]));
            match two {
                Some(folded) if folded.len() == 1 => {
                    lower.push(folded.into_iter().next());
                    lower.push(None);
                    i += 2;
                }
                _ => {
                    lower.push(Some(one));
                    i += 1;
                }
            }
        }
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

/// Leaves collected per field, to merge same-field values into one `in`, and the event
/// kinds' conditions that are more than one leaf.
#[derive(Default)]
struct Collected {
    positive: Vec<(Field, Op, Value)>,
    negative: Vec<(Field, Op, Value)>,
    nodes: Vec<(bool, Node)>,
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
        self.positive.is_empty() && self.negative.is_empty() && self.nodes.is_empty()
    }

    /// Adds a condition: its leaves merge with the others, an `any` stays whole.
    fn add_node(&mut self, negated: bool, node: Node) {
        match node {
            Node::Leaf(Leaf {
                field,
                op,
                value: Some(value),
            }) => self.add(negated, field, op, value),
            Node::All(children) if !negated => {
                for child in children {
                    self.add_node(false, child);
                }
            }
            other => self.nodes.push((negated, other)),
        }
    }

    /// The condition: same-field `eq` leaves merged into `in` (`nin` when negated); what
    /// happened first, then where and who.
    fn into_node(mut self) -> Option<Node> {
        let rank = |f: &Field| match f {
            Field::Action => 0,
            Field::Outcome => 1,
            Field::Category => 2,
            Field::DataType | Field::Source | Field::EventCode => 3,
            Field::Attr(_) => 4,
            _ => 5,
        };
        self.positive.sort_by_key(|(f, _, _)| rank(f));
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
        for (negated, node) in self.nodes {
            nodes.push(if negated {
                Node::Not(Box::new(node))
            } else {
                node
            });
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

    // Field knowledge first: "network logons by anonymous logon" names no person.
    logon_types(&mut w, &mut c);
    accounts(&mut w, &mut c);
    // "access denied" is a CloudTrail error code, not an event kind
    if let Some((i, n)) = w.find("access denied") {
        c.add(
            false,
            Field::Attr("errorCode".into()),
            Op::Eq,
            json!("AccessDenied"),
        );
        c.add(
            false,
            Field::Outcome,
            Op::Eq,
            json!(Outcome::Failure.as_str()),
        );
        w.consume(i, n);
    }
    let time = timeexpr::extract(&mut w.lower, Today::new(ctx.now, ctx.tz));
    let (sort, limit) = ordering(&mut w);
    addresses(&mut w, &mut c);
    event_codes(&mut w, &mut c);
    labels(&mut w, &mut c);
    machines(&mut w, &mut c);
    people(&mut w, &mut c);
    event_kinds(&mut w, &mut c);
    sources(&mut w, &mut c);
    programs(&mut w, &mut c);
    outcomes(&mut w, &mut c);

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
        let catalogued = t.len() == 4
            && t.parse::<u32>().is_ok_and(|id| {
                knowledge::catalog()
                    .stored(WINDOWS_DATA_TYPE, "Security", Some(&id.to_string()))
                    .is_some()
            });
        // "ProcessAccess", "FileCreate": Sysmon's event names, read as words of events
        let event_name = knowledge::catalog().event_types.iter().any(|e| {
            matches!(e.origin, knowledge::Origin::Windows { .. })
                && e.title.split([' ', '(']).next() == Some(typed.as_str())
        });
        let is_code =
            (numeric && (catalogued || after_marker)) || (is_api_name(&typed) && !event_name);
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

/// Whether the word at `i` (or the next one) is a logon ("service logons", "logons of
/// type network").
fn near_logon(w: &Words, i: usize, n: usize) -> bool {
    let is_logon = |k: usize| {
        w.get(k)
            .and_then(words::concept)
            .is_some_and(|c| c == "logon" || c == "loggedon")
    };
    is_logon(i + n) || (i > 0 && is_logon(i - 1)) || (i > 1 && is_logon(i - 2))
}

/// Logon types (`runtime/catalog/windows-fields.yaml`): "remote desktop", "rdp",
/// "interactive" name one on their own; generic words ("network", "service", "batch",
/// "unlock") only next to a logon.
fn logon_types(w: &mut Words, c: &mut Collected) {
    const GENERIC: &[&str] = &["network", "service", "batch", "unlock", "system"];
    let catalog = knowledge::catalog();
    let field = Field::Attr(catalog.logon_type_field.clone());
    let mut terms: Vec<(&str, u32)> = catalog
        .logon_types
        .iter()
        .flat_map(|l| l.terms.iter().map(move |t| (t.as_str(), l.value)))
        .collect();
    // longest first: "cached remote interactive" before "remote interactive"
    terms.sort_by_key(|(t, _)| std::cmp::Reverse(t.split(' ').count()));
    for (term, value) in terms {
        let Some((i, n)) = w.find(term) else {
            continue;
        };
        let generic = GENERIC.contains(&term);
        let logon_named = term.split(' ').any(|p| p == "logon");
        if generic && !near_logon(w, i, n) {
            continue;
        }
        let negated = w.negated_before(i);
        c.add(negated, field.clone(), Op::Eq, json!(value.to_string()));
        if logon_named || near_logon(w, i, n) || !generic {
            c.add(false, Field::Action, Op::Eq, json!(Action::Logon.as_str()));
        }
        w.consume(i, n);
        // the logon word itself is said by the action now
        if w.get(i + n).and_then(words::concept).as_deref() == Some("logon") {
            w.consume(i + n, 1);
        }
    }
}

/// Well-known accounts with no identity of their own (the pipeline files none for them):
/// "anonymous logon", "the SYSTEM account" → the logon's `TargetUserSid`.
fn accounts(w: &mut Words, c: &mut Collected) {
    let catalog = knowledge::catalog();
    let mut terms: Vec<(String, &str)> = Vec::new();
    for s in &catalog.sids {
        let (Some(sid), true) = (&s.sid, s.machine) else {
            continue;
        };
        for t in &s.terms {
            terms.push((t.to_ascii_lowercase(), sid.as_str()));
        }
    }
    terms.sort_by_key(|(t, _)| std::cmp::Reverse(t.split(' ').count()));
    for (term, sid) in terms {
        let Some((i, n)) = w.find(&term) else {
            continue;
        };
        // an account on its own ("anonymous") needs a logon in the question
        if n == 1
            && !near_logon(w, i, n)
            && !w
                .lower
                .iter()
                .flatten()
                .any(|t| t == "logon" || t == "logons")
        {
            continue;
        }
        let negated = w.negated_before(i);
        c.add(
            negated,
            Field::Attr("Event.EventData.TargetUserSid".into()),
            Op::Eq,
            json!(sid),
        );
        c.add(false, Field::Action, Op::Eq, json!(Action::Logon.as_str()));
        w.consume(i, n);
        // "the SYSTEM account", "by anonymous logon"
        if i > 0 && matches!(w.get(i - 1), Some("the" | "by" | "as" | "of" | "for")) {
            w.consume(i - 1, 1);
        }
        if matches!(w.get(i + n), Some("account" | "user")) {
            w.consume(i + n, 1);
        }
    }
}

/// The kinds of events the remaining words name, from the event catalog (see
/// [`super::matching`]).
fn event_kinds(w: &mut Words, c: &mut Collected) {
    // "security-enabled", "per-user": every part of a word is a concept
    // and every part of "CreateRemoteThread"
    let typed = w.typed.clone();
    let seq: Vec<(usize, String)> = (0..w.lower.len())
        .filter_map(|i| w.get(i).map(|t| (i, t)))
        .flat_map(|(i, t)| {
            let camel = typed[i].chars().skip(1).any(|c| c.is_ascii_uppercase())
                && typed[i].chars().any(|c| c.is_ascii_lowercase());
            let parts = if camel {
                words::concepts(&typed[i])
            } else if t.contains('-') {
                words::concepts(t)
            } else {
                words::concept(t).into_iter().collect()
            };
            parts.into_iter().map(move |cpt| (i, cpt))
        })
        .collect();
    let mut chosen = matching::choose(&seq);
    if chosen.is_empty() {
        return;
    }
    // "accounts created or deleted": the word after "or" shares the head of the kind
    // before it
    let explained: std::collections::BTreeSet<usize> = chosen
        .iter()
        .flat_map(|ch| ch.words.iter().copied())
        .collect();
    let mut more = Vec::new();
    for (i, cpt) in &seq {
        let after_join = (1..=2).any(|k| {
            i.checked_sub(k)
                .is_some_and(|j| matches!(w.get(j), Some("or" | "and")))
        });
        if explained.contains(i) || !after_join {
            continue;
        }
        for ch in &chosen {
            for &head in ch.words.iter().filter(|&&h| h < *i) {
                let Some((_, head_cpt)) = seq.iter().find(|(k, _)| *k == head) else {
                    continue;
                };
                let pair = [(head, head_cpt.clone()), (*i, cpt.clone())];
                if let Some(found) = matching::choose(&pair)
                    .into_iter()
                    .find(|f| f.words.contains(i) && f.words.contains(&head))
                {
                    more.push(matching::Chosen {
                        words: [*i].into_iter().collect(),
                        ..found
                    });
                }
            }
        }
    }
    more.dedup_by(|a, b| a.targets == b.targets);
    chosen.extend(more);
    // "logons or logoffs", "created and deleted": any of them; otherwise they narrow
    let joined = (0..w.lower.len()).any(|i| {
        matches!(w.get(i), Some("or" | "and"))
            && chosen.iter().any(|ch| ch.words.iter().any(|&k| k < i))
            && chosen.iter().any(|ch| ch.words.iter().any(|&k| k > i))
    });
    let catalog = knowledge::catalog();
    let mut actions: Vec<Action> = Vec::new();
    let mut categories: Vec<Category> = Vec::new();
    let mut kinds: Vec<Vec<usize>> = Vec::new();
    let mut outcome = None;
    let first_word = chosen
        .iter()
        .flat_map(|ch| ch.words.iter().copied())
        .min()
        .unwrap_or(0);
    let negated = w.negated_before(first_word);
    for ch in &chosen {
        let mut types: Vec<usize> = Vec::new();
        for t in &ch.targets {
            match t {
                Target::Action(a) => actions.push(*a),
                Target::Category(k) => categories.push(*k),
                other => types.extend(other.event_types(catalog)),
            }
        }
        if !types.is_empty() {
            types.sort_unstable();
            types.dedup();
            kinds.push(types);
        }
        if let Some(o) = ch.outcome {
            outcome = Some(o);
        }
        for &i in &ch.words {
            w.consume(i, 1);
        }
    }
    let leaf = |field: Field, values: Vec<&str>| {
        let (op, value) = match values.as_slice() {
            [one] => (Op::Eq, json!(one)),
            many => (Op::In, json!(many)),
        };
        Node::Leaf(Leaf {
            field,
            op,
            value: Some(value),
        })
    };
    let mut parts: Vec<Node> = Vec::new();
    if !actions.is_empty() {
        actions.dedup();
        if joined || actions.len() == 1 {
            parts.push(leaf(
                Field::Action,
                actions.iter().map(|a| a.as_str()).collect(),
            ));
        } else {
            parts.extend(
                actions
                    .iter()
                    .map(|a| leaf(Field::Action, vec![a.as_str()])),
            );
        }
    }
    if !categories.is_empty() {
        categories.dedup();
        parts.push(leaf(
            Field::Category,
            categories.iter().map(|k| k.as_str()).collect(),
        ));
    }
    let kinds: Vec<Vec<usize>> = if joined && kinds.len() > 1 {
        let mut all: Vec<usize> = kinds.concat();
        all.sort_unstable();
        all.dedup();
        vec![all]
    } else if kinds.len() > 1 {
        // narrowing two sets of event kinds is their intersection, when they share any
        let shared: Vec<usize> = kinds[0]
            .iter()
            .copied()
            .filter(|t| kinds[1..].iter().all(|k| k.contains(t)))
            .collect();
        if shared.is_empty() {
            kinds
        } else {
            vec![shared]
        }
    } else {
        kinds
    };
    for types in kinds {
        let refs: Vec<&EventType> = types.iter().map(|&i| &catalog.event_types[i]).collect();
        if let Some(node) = knowledge::condition(&refs) {
            parts.push(node);
        }
    }
    if joined && parts.len() > 1 {
        c.add_node(negated, Node::Any(parts));
    } else {
        for p in parts {
            c.add_node(negated, p);
        }
    }
    if let Some(o) = outcome
        && !negated
    {
        c.add(false, Field::Outcome, Op::Eq, json!(o.as_str()));
    }
}

/// Outcome words the event kinds did not explain ("failed", "successful").
fn outcomes(w: &mut Words, c: &mut Collected) {
    for (word, o) in OUTCOME_WORDS {
        if let Some((i, n)) = w.find(word) {
            if !c.positive.iter().any(|(f, _, _)| *f == Field::Outcome) {
                c.add(false, Field::Outcome, Op::Eq, json!(o.as_str()));
            }
            w.consume(i, n);
        }
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
        && !words::is_stop(t)
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
        // "workstation unlocks": a word of events, not a host
        if !host_like(&typed) && catalog_word(w, i) {
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
        // "accounts created", "users added", "for invalid users": words of events
        let noun_marker = prev.as_deref().is_some_and(|p| {
            matches!(
                p,
                "user" | "users" | "account" | "accounts" | "identity" | "person"
            )
        });
        if catalog_word(w, i) && (noun_marker || catalog_word(w, i + 1)) {
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

/// Whether the word at `i` is one the event catalog knows, typed the way words (not names
/// or hosts) are: lower case, no digits.
fn catalog_word(w: &Words, i: usize) -> bool {
    let Some(t) = w.get(i) else {
        return false;
    };
    let typed = &w.typed[i];
    typed.chars().all(|c| c.is_ascii_lowercase())
        && !t.is_empty()
        && words::concept(t).is_some_and(|c| matching::known(&c))
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
        // sshd writes as `sshd-session` since OpenSSH 9.8
        let w = leaves("failed ssh logins");
        assert!(
            w.as_array().unwrap().contains(&serde_json::json!(
                {"field": "source", "op": "in", "value": ["sshd", "sshd-session"]}
            )),
            "{w}"
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

    /// The failure classes of issue 17, on its own illustrative questions.
    #[test]
    fn qualifiers_narrow_and_every_part_of_a_question_is_kept() {
        let text = |q: &str| doc(q).to_string();
        // qualifiers narrow: one kind of event, not logons *or* 4648
        let d = doc("logons with explicit credentials");
        assert_eq!(
            d["where"],
            json!({"field": "action", "op": "eq", "value": "explicit_credentials"})
        );
        // the host is kept, the actions are not OR-ed
        let d = doc("special privileges assigned to new logons on HOST1");
        assert_eq!(
            d["where"],
            json!({"all": [
                {"field": "action", "op": "eq", "value": "special_privileges"},
                {"field": "device", "op": "eq", "value": "HOST1"}
            ]})
        );
        // an absolute date and a window on it are kept
        let d = doc("audit log cleared on HOST1 on 3 March 2016 between 10:00 and 11:30");
        assert_eq!(
            d["time"],
            json!({"from": "2016-03-03T10:00:00", "to": "2016-03-03T11:30:00"})
        );
        assert!(text("audit log cleared on 3 March 2016").contains("\"1102\""));
        // events outside the old actions are reachable
        for (q, code) in [
            ("group membership changes", "4732"),
            ("security-enabled global groups created", "4727"),
            ("system time changes", "4616"),
            ("audit policy changes", "4719"),
            ("NTLM credential validation", "4776"),
            ("event log service stopped", "1100"),
            ("accounts renamed", "4781"),
            ("services installed", "7045"),
        ] {
            assert!(text(q).contains(&format!("\"{code}\"")), "{q}: {}", text(q));
        }
        // record fields: logon types, anonymous logons, the source address
        let d = text("network logons by anonymous logon from 10.0.0.5");
        for part in ["\"3\"", "S-1-5-7", "10.0.0.5", "\"logon\""] {
            assert!(d.contains(part), "{d}");
        }
        assert!(!d.contains("identity"), "{d}");
        // "or" joins kinds of events
        assert_eq!(
            doc("accounts created or deleted")["where"],
            json!({"field": "action", "op": "in", "value": ["account_created", "account_deleted"]})
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
