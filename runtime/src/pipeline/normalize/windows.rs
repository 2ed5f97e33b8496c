//! Windows event rules: what a rendered EVTX record is, from the event catalog
//! ([`crate::knowledge`]): its title, category and action (`action:` of the entries in
//! `runtime/catalog/windows-security.yaml`, `windows-system.yaml`, `sysmon.yaml`), and who and
//! which addresses it is about.
//!
//! Outcomes: Security 4624 is `success` and 4625 `failure`; other Security auditing events
//! take theirs from the audit keywords (`Audit Failure`, `0x0010000000000000`, is
//! `failure`, anything else `success`); events of other providers with an action are
//! `success`. Event ids are only looked up for their own provider (a Sysmon id 1 is not a
//! kernel id 1).

use std::borrow::Cow;

use crate::knowledge::{self, EventType};
use crate::pipeline::event::{Identity, parse_ip};
use crate::vocab::{Action, Category, Outcome};

/// Provider of the Security log's auditing events.
pub const SECURITY_AUDITING: &str = "Microsoft-Windows-Security-Auditing";
/// Provider of Sysmon events.
pub const SYSMON: &str = "Microsoft-Windows-Sysmon";
/// Provider of service-control events (7045) in the System log.
pub const SERVICE_CONTROL_MANAGER: &str = "Service Control Manager";

const AUDIT_FAILURE: u64 = 0x0010_0000_0000_0000;

/// The action and outcome of a Windows event, from its provider, id and keywords.
pub fn action(provider: &str, event_id: u32, keywords: Option<u64>) -> Option<(Action, Outcome)> {
    let entry = knowledge::catalog().windows(provider, event_id)?;
    action_of(entry, provider, event_id, keywords)
}

fn action_of(
    entry: &EventType,
    provider: &str,
    event_id: u32,
    keywords: Option<u64>,
) -> Option<(Action, Outcome)> {
    let action = entry.action?;
    let audited = provider.eq_ignore_ascii_case(SECURITY_AUDITING) && event_id != 4624;
    let failed = event_id == 4625 || keywords.is_some_and(|k| k & AUDIT_FAILURE != 0);
    let outcome = if audited && failed {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    Some((action, outcome))
}

/// Parses an EVTX `Keywords` value (`0x8020000000000000`).
pub fn parse_keywords(s: &str) -> Option<u64> {
    let s = s.trim();
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(hex, 16).ok()
}

/// What the normalizer takes from one EVTX record (the evtx crate's JSON of `<Event>`).
#[derive(Debug, Default)]
pub struct WindowsFields {
    /// `System/Provider/@Name`.
    pub provider: String,
    /// `System/Channel`.
    pub channel: String,
    /// `System/EventID`.
    pub event_id: Option<u32>,
    /// `System/Computer`.
    pub computer: Option<String>,
    /// Action and outcome, when mapped.
    pub action: Option<(Action, Outcome)>,
    /// The catalog's title of the event, when it knows the event.
    pub title: Option<&'static str>,
    /// The catalog's category of the event.
    pub category: Option<Category>,
    /// The identity the event is about.
    pub identity: Option<Identity>,
    /// Source address.
    pub src_ip: Option<std::net::IpAddr>,
    /// Destination address.
    pub dst_ip: Option<std::net::IpAddr>,
    /// A one-line description.
    pub message: String,
}

// The parts of the rendered record the rules read are found by a scanner over the JSON
// text that borrows from it and builds nothing: no tree of the record, no serde visitor per
// member, no copies of values that have no escapes. Records are a few kilobytes and the
// rules read a dozen members, so skipping the rest quickly is what the time goes on.

/// Where a JSON value ends: the index after it, or `None` for text that is not JSON
/// (RFC 8259, read strictly: a value this accepts, serde_json accepts too). The scan is
/// the record's JSON check as well, so the record is not parsed a second time to know it.
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    value_end_at(b, start, 0)
}

/// Nesting deeper than this is not followed: serde_json refuses more than 128 levels, and
/// a record is read back one level down in its event's JSON line.
const MAX_DEPTH: usize = 100;

fn value_end_at(b: &[u8], start: usize, depth: usize) -> Option<usize> {
    match *b.get(start)? {
        b'"' => string_end(b, start),
        open @ (b'{' | b'[') => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let close = if open == b'{' { b'}' } else { b']' };
            let mut i = skip_ws(b, start + 1);
            if b.get(i) == Some(&close) {
                return Some(i + 1);
            }
            loop {
                if close == b'}' {
                    if b.get(i) != Some(&b'"') {
                        return None;
                    }
                    i = skip_ws(b, string_end(b, i)?);
                    if b.get(i) != Some(&b':') {
                        return None;
                    }
                    i = skip_ws(b, i + 1);
                }
                i = skip_ws(b, value_end_at(b, i, depth + 1)?);
                match *b.get(i)? {
                    b',' => i = skip_ws(b, i + 1),
                    c if c == close => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b't' => literal_end(b, start, b"true"),
        b'f' => literal_end(b, start, b"false"),
        b'n' => literal_end(b, start, b"null"),
        _ => number_end(b, start),
    }
}

fn literal_end(b: &[u8], start: usize, literal: &[u8]) -> Option<usize> {
    let end = start + literal.len();
    (b.get(start..end)? == literal).then_some(end)
}

/// The index after the number at `start`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]?
/// [0-9]+)?`.
fn number_end(b: &[u8], start: usize) -> Option<usize> {
    let digits = |from: usize| {
        let n = b.get(from..).map_or(0, |rest| {
            rest.iter().take_while(|c| c.is_ascii_digit()).count()
        });
        (n > 0).then_some(from + n)
    };
    let mut i = start + usize::from(b.get(start) == Some(&b'-'));
    i = match b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        i = digits(i)?;
    }
    Some(i)
}

/// The index after the string that starts (with its quote) at `start`; `None` when it is
/// unterminated, holds a raw control character or a malformed escape.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    string_end_escaped(b, start).map(|(end, _)| end)
}

/// [`string_end`], and whether the string has escapes: one that has none is its own text,
/// and need not be looked at again to be read.
fn string_end_escaped(b: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        i = string_stop(b, i)?;
        match b[i] {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                match b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => i += 6,
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
}

/// The text of a JSON string's body (between its quotes); `None` when an escape is
/// malformed. Lone surrogates become U+FFFD, as serde_json's lossy reading does.
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    // A byte search: `str::find` with a `char` pattern costs more on these short texts.
    while let Some(at) = rest.bytes().position(|c| c == b'\\') {
        out.push_str(&rest[..at]);
        let b = rest.as_bytes();
        let hex = |from: usize| -> Option<u32> {
            let digits = rest.get(from..from + 4)?;
            if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(digits, 16).ok()
        };
        let used = match *b.get(at + 1)? {
            c @ (b'"' | b'\\' | b'/') => {
                out.push(char::from(c));
                2
            }
            b'b' => {
                out.push('\u{8}');
                2
            }
            b'f' => {
                out.push('\u{c}');
                2
            }
            b'n' => {
                out.push('\n');
                2
            }
            b'r' => {
                out.push('\r');
                2
            }
            b't' => {
                out.push('\t');
                2
            }
            b'u' => {
                let unit = hex(at + 2)?;
                match unit {
                    0xD800..=0xDBFF
                        if b.get(at + 6..at + 8) == Some(b"\\u")
                            && hex(at + 8).is_some_and(|lo| (0xDC00..=0xDFFF).contains(&lo)) =>
                    {
                        let lo = hex(at + 8)?;
                        let c = 0x10000 + ((unit - 0xD800) << 10) + (lo - 0xDC00);
                        out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                        12
                    }
                    _ => {
                        out.push(char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER));
                        6
                    }
                }
            }
            _ => return None,
        };
        rest = rest.get(at + used..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// The first `"`, `\` or control character at or after `from`, eight bytes at a time: most
/// of a record's text is inside strings, so this loop is where the scanner spends its time.
fn string_stop(b: &[u8], mut from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` is zero where `(v - 1) & !v` has its high bit set, and below `n` where
    // `(v - n) & !v` has; the lowest such bit is always a real match (borrows only run
    // upwards), of whichever test.
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGHS;
    while let Some(word) = b.get(from..from + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes);
        let hits = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if hits != 0 {
            return Some(from + (hits.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    b.get(from..)?
        .iter()
        .position(|c| matches!(c, b'"' | b'\\' | 0..0x20))
        .map(|p| from + p)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// The members of a JSON object as (raw key, raw value) texts, in document order; nothing
/// for anything else. Stops quietly at text that is not JSON.
#[derive(Debug, Clone)]
struct Members<'a> {
    text: &'a str,
    /// The next member's position; `None` once done.
    at: Option<usize>,
}

impl<'a> Members<'a> {
    fn of(text: &'a str) -> Members<'a> {
        let i = skip_ws(text.as_bytes(), 0);
        let at = (text.as_bytes().get(i) == Some(&b'{')).then_some(i + 1);
        Members { text, at }
    }

    /// The raw value of the first member named `name`.
    fn named(mut self, name: &str) -> Option<&'a str> {
        self.find(|(k, _)| key(k) == name).map(|(_, v)| v)
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let b = self.text.as_bytes();
        let mut member = || {
            let (raw_key, _, value_start) = member_head(self.text, skip_ws(b, self.at?))?;
            let end = value_end(b, value_start)?;
            let next = skip_ws(b, end);
            self.at = (b.get(next) == Some(&b',')).then_some(next + 1);
            Some((raw_key, self.text.get(value_start..end)?))
        };
        let item = member();
        if item.is_none() {
            self.at = None;
        }
        item
    }
}

/// The elements of a JSON array as raw texts; nothing for anything else.
fn elements(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let open = skip_ws(b, 0);
    let mut at = (b.get(open) == Some(&b'[')).then_some(open + 1);
    std::iter::from_fn(move || {
        let start = skip_ws(b, at.take()?);
        let end = value_end(b, start)?;
        let next = skip_ws(b, end);
        if b.get(next) == Some(&b',') {
            at = Some(next + 1);
        }
        text.get(start..end)
    })
}

/// The members of `System` the rules read, in the order [`fields`] takes them.
const SYSTEM_MEMBERS: [&str; 6] = [
    "Provider", "EventID", "Channel", "Computer", "Keywords", "Security",
];

/// Walks the members of the object that starts at `at`, calling `visit(key, value
/// position)` for each: `visit` returns where the value ends when it read it, `None` to
/// have it skipped. Returns the index after the object; `None` for text that is not JSON
/// (the members before were visited).
fn walk_object<'a>(
    text: &'a str,
    at: usize,
    mut visit: impl FnMut(Cow<'a, str>, usize) -> Option<usize>,
) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, at);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        let (raw_key, escaped, value) = member_head(text, i)?;
        let end = match visit(decoded(raw_key, escaped)?, value) {
            Some(end) => end,
            None => value_end(b, value)?,
        };
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The head of the object member at `at`: its key (raw, between its quotes, and whether
/// it has escapes) and where its value starts, past the colon.
fn member_head(text: &str, at: usize) -> Option<(&str, bool, usize)> {
    let b = text.as_bytes();
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let (key_end, escaped) = string_end_escaped(b, at)?;
    let colon = skip_ws(b, key_end);
    if b.get(colon) != Some(&b':') {
        return None;
    }
    Some((
        text.get(at + 1..key_end - 1)?,
        escaped,
        skip_ws(b, colon + 1),
    ))
}

/// A string's body (between its quotes) as text: borrowed when it has no escapes, which
/// the scan that found its end already knows; `None` for a malformed escape.
fn decoded(body: &str, escaped: bool) -> Option<Cow<'_, str>> {
    if escaped {
        unescape(body).map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(body))
    }
}

/// A raw member name unescaped (EVTX names have no escapes: borrowed).
fn key(raw: &str) -> Cow<'_, str> {
    decoded(raw, raw.contains('\\')).unwrap_or(Cow::Borrowed(raw))
}

/// A member's value as the rules read it: a string already unescaped, anything else as
/// raw JSON.
#[derive(Debug, Clone)]
enum Value<'a> {
    Text(Cow<'a, str>),
    Raw(&'a str),
}

impl<'a> Value<'a> {
    fn of(raw: &'a str) -> Value<'a> {
        match scalar(raw) {
            Some(text) if raw.starts_with('"') => Value::Text(text),
            _ => Value::Raw(raw),
        }
    }

    fn scalar(&self) -> Option<Cow<'a, str>> {
        match self {
            Value::Text(text) => Some(text.clone()),
            Value::Raw(raw) => scalar(raw),
        }
    }
}

/// A JSON object's members in document order. Anything that is not an object reads as no
/// members (EVTX `EventData` can be text or a list).
#[derive(Default)]
struct Fields<'a>(Vec<(Cow<'a, str>, Value<'a>)>);

impl<'a> Fields<'a> {
    fn parse(raw: Option<&'a str>) -> Fields<'a> {
        Fields(
            raw.map(|r| {
                Members::of(r)
                    .map(|(k, v)| (key(k), Value::of(v)))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.scalar())
    }
}

/// A raw JSON scalar as text: strings unescaped, numbers and booleans printed, EVTX
/// `{"#text": v}` objects unwrapped; `None` for null, arrays and other objects.
fn scalar(text: &str) -> Option<Cow<'_, str>> {
    match text.as_bytes().first()? {
        // Most values have no escapes: borrow them without a copy.
        b'"' if text.len() >= 2 && !text.contains('\\') => {
            Some(Cow::Borrowed(&text[1..text.len() - 1]))
        }
        b'"' if text.len() >= 2 && text.ends_with('"') => {
            unescape(&text[1..text.len() - 1]).map(Cow::Owned)
        }
        b'"' => None,
        b'{' => Members::of(text).named("#text").and_then(scalar),
        b'[' | b'n' => None,
        _ => Some(Cow::Borrowed(text)),
    }
}

/// The `#attributes` member `name` of an element such as `Provider` or `Security`.
fn attribute(element: Option<&str>, name: &str) -> Option<String> {
    let attributes = Members::of(element?).named("#attributes")?;
    Members::of(attributes)
        .named(name)
        .and_then(scalar)
        .map(Cow::into_owned)
}

/// Reads the fields of an EVTX record rendered as JSON (`{"Event": {"System": …, "EventData": …}}`).
pub fn fields(json: &str) -> WindowsFields {
    fields_checked(json).0
}

/// [`fields`], and whether `json` is one JSON object with no surrounding whitespace, found
/// by the same scan: `true` means serde_json accepts the text as it is (the rendered record
/// need not be parsed again to be known to be JSON); `false` means it may not.
pub fn fields_checked(json: &str) -> (WindowsFields, bool) {
    // One pass over the record: the members of `Event` and of its `System` and
    // `EventData` are read where they are, everything else is skipped once.
    let mut found = false;
    let mut system = [None; SYSTEM_MEMBERS.len()];
    let mut data = None;
    let mut user_data = None;
    let end = walk_object(json, 0, |k, at| {
        if found || k != "Event" || json.as_bytes().get(at) != Some(&b'{') {
            return None;
        }
        found = true;
        let (mut seen_system, mut seen_data) = (false, false);
        walk_object(json, at, |k, at| match &*k {
            "System" if !seen_system => {
                seen_system = true;
                walk_object(json, at, |k, at| {
                    let slot = SYSTEM_MEMBERS.iter().position(|m| k == *m)?;
                    let end = value_end(json.as_bytes(), at)?;
                    system[slot].get_or_insert(json.get(at..end)?);
                    Some(end)
                })
            }
            "EventData" if !seen_data => {
                seen_data = true;
                if json.as_bytes().get(at) != Some(&b'{') {
                    let end = value_end(json.as_bytes(), at)?;
                    // Text or a list: no named fields; `null`: none at all.
                    if json.get(at..end)? != "null" {
                        data = Some(Fields::default());
                    }
                    return Some(end);
                }
                let mut fields = Vec::with_capacity(24);
                let end = walk_object(json, at, |k, at| {
                    let b = json.as_bytes();
                    if b.get(at) == Some(&b'"') {
                        // Strings are unescaped as they are scanned, once.
                        let (end, escaped) = string_end_escaped(b, at)?;
                        let text = decoded(json.get(at + 1..end - 1)?, escaped)?;
                        fields.push((k, Value::Text(text)));
                        return Some(end);
                    }
                    let end = value_end(b, at)?;
                    fields.push((k, Value::Raw(json.get(at..end)?)));
                    Some(end)
                });
                data = Some(Fields(fields));
                end
            }
            "UserData" if user_data.is_none() => {
                let end = value_end(json.as_bytes(), at)?;
                user_data = json.get(at..end);
                Some(end)
            }
            _ => None,
        })
    });
    let checked = json.starts_with('{') && end == Some(json.len());
    if !found {
        let fields = WindowsFields {
            message: "[? / ?] record without an Event element".into(),
            ..WindowsFields::default()
        };
        return (fields, checked);
    }
    let [provider, event_id, channel, computer, keywords, security] = system;
    let provider = attribute(provider, "Name").unwrap_or_default();
    let security_user = attribute(security, "UserID");
    fn sys(raw: Option<&str>) -> Option<Cow<'_, str>> {
        raw.and_then(scalar)
    }
    let channel = sys(channel).map(Cow::into_owned).unwrap_or_default();
    let event_id = sys(event_id).and_then(|s| s.trim().parse::<u32>().ok());
    let computer = sys(computer)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s != "-");
    let keywords = sys(keywords).and_then(|k| parse_keywords(&k));
    let data = data.unwrap_or_else(|| {
        // `UserData` holds one element whose children are the named fields.
        Fields::parse(
            Members::of(user_data.unwrap_or_default())
                .next()
                .map(|(_, v)| v),
        )
    });
    let entry = event_id.and_then(|id| knowledge::catalog().windows(&provider, id));
    let action = match (entry, event_id) {
        (Some(e), Some(id)) => action_of(e, &provider, id, keywords),
        _ => None,
    };

    let get = |name: &str| data.get(name);
    let subject = || {
        Identity::windows(
            get("SubjectUserName").as_deref(),
            get("SubjectDomainName").as_deref(),
            get("SubjectUserSid").as_deref(),
        )
    };
    let target = || {
        Identity::windows(
            get("TargetUserName").as_deref(),
            get("TargetDomainName").as_deref(),
            get("TargetUserSid").or_else(|| get("TargetSid")).as_deref(),
        )
    };
    let is_sysmon = provider.eq_ignore_ascii_case(SYSMON);
    let is_security = provider.eq_ignore_ascii_case(SECURITY_AUDITING);
    let identity = match event_id {
        _ if is_sysmon => Identity::windows(get("User").as_deref(), None, None),
        Some(4624 | 4625 | 4634 | 4647 | 4720..=4726 | 4738) if is_security => target(),
        Some(4727..=4737 | 4754..=4758) if is_security => {
            let name = get("MemberName").filter(|n| !n.to_ascii_uppercase().starts_with("CN="));
            Identity::windows(name.as_deref(), None, get("MemberSid").as_deref()).or_else(subject)
        }
        Some(7045) => Identity::windows(None, None, security_user.as_deref()),
        _ => subject().or_else(|| Identity::windows(None, None, security_user.as_deref())),
    };
    let ip = |name: &str| get(name).and_then(|s| parse_ip(&s));
    let (src_ip, dst_ip) = match event_id {
        Some(3) if is_sysmon => (ip("SourceIp"), ip("DestinationIp")),
        Some(4648) if is_security => (None, ip("IpAddress")),
        _ if is_security => (ip("IpAddress"), None),
        _ => (None, None),
    };
    let message = message(&channel, &provider, event_id, &data);
    let fields = WindowsFields {
        provider,
        channel,
        event_id,
        computer,
        action,
        title: entry.map(|e| e.title.as_str()),
        category: entry.map(|e| e.category),
        identity,
        src_ip,
        dst_ip,
        message,
    };
    (fields, checked)
}

fn message(channel: &str, provider: &str, event_id: Option<u32>, data: &Fields<'_>) -> String {
    let mut m = String::with_capacity(256);
    m.push('[');
    match event_id {
        Some(id) => m.push_str(itoa::Buffer::new().format(id)),
        None => m.push('?'),
    }
    m.push_str(" / ");
    m.push_str(provider);
    m.push_str("] ");
    m.push_str(channel);
    let mut first = true;
    for (k, v) in &data.0 {
        if k == "#attributes" {
            continue;
        }
        let v: Cow<'_, str> = match v {
            Value::Raw(list) if list.starts_with('[') => {
                let items: Vec<Cow<'_, str>> = elements(list).filter_map(scalar).collect();
                Cow::Owned(items.join(", "))
            }
            other => match other.scalar() {
                Some(s) => s,
                None => continue,
            },
        };
        m.push_str(if first { ": " } else { "; " });
        first = false;
        m.push_str(k);
        m.push('=');
        m.push_str(&v);
        if m.len() > super::MAX_MESSAGE_LEN {
            break;
        }
    }
    super::clip_message(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_field_scan_vouches_only_for_json_serde_json_accepts() {
        let record = r##"{"Event":{"#attributes":{"xmlns":"x"},"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Security-Auditing"}},"EventID":4624,"Channel":"Security","Computer":"WS1"},"EventData":{"TargetUserName":"alice","TargetDomainName":"CORP","IpAddress":"10.0.0.5","Ratio":-1.5e-3,"Flag":true,"None":null,"List":[1,{"k":"v\n\u00e9\\"}]}}}"##;
        let (f, checked) = fields_checked(record);
        assert!(checked);
        assert_eq!(f.event_id, Some(4624));
        assert_eq!(f.identity.unwrap().value, "CORP\\alice");
        let nan = record.replace("-1.5e-3", "NaN");
        for text in [
            nan.as_str(),
            &record.replace("-1.5e-3", "inf"),
            &record.replace("-1.5e-3", "01"),
            &record.replace("-1.5e-3", "1."),
            &record.replace("true", "tru"),
            &record.replace("\"alice\"", "\"al\u{1}ice\""),
            &record.replace("\\n", "\\x"),
            &record.replace("\\u00e9", "\\u00g9"),
            &record.replace("[1,", "[1,,"),
            &record.replace("\"WS1\"}", "\"WS1\",}"),
            &format!("{record} "),
            &format!(" {record}"),
            &format!("{record}{{}}"),
            &record[..record.len() - 1],
            r#"{"Other":NaN}"#,
            &format!("{{\"a\":{}{}}}", "[".repeat(120), "]".repeat(120)),
            "[]",
            "",
        ] {
            let (_, checked) = fields_checked(text);
            assert!(!checked, "{text}");
        }
        // Whatever the scan vouches for, serde_json takes as it is.
        let nested = format!("{{\"a\":{}{}}}", "[".repeat(90), "]".repeat(90));
        for text in [
            record,
            r#"{}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"Event":{"System":[]}}"#,
            &nested,
        ] {
            let (_, checked) = fields_checked(text);
            assert!(checked, "{text}");
            let raw = serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
            assert_eq!(raw.get(), text);
        }
        // A record the scan does not vouch for still has its fields read up to the damage.
        let (f, _) = fields_checked(&nan);
        assert_eq!(f.event_id, Some(4624));
        assert!(serde_json::value::RawValue::from_string(nan).is_err());
    }

    #[test]
    fn the_scanner_reads_members_past_escapes_and_nesting() {
        let text = r##"{"a\"b": "x\\\"y", "n": [1, {"k": "]}"}], "#attributes": {}, "EventID": {"#text": 4624}, "z": null}"##;
        let members: Vec<(&str, &str)> = Members::of(text).collect();
        assert_eq!(
            members,
            vec![
                (r#"a\"b"#, r#""x\\\"y""#),
                ("n", r#"[1, {"k": "]}"}]"#),
                ("#attributes", "{}"),
                ("EventID", r##"{"#text": 4624}"##),
                ("z", "null")
            ]
        );
        assert_eq!(key(members[0].0), "a\"b");
        assert_eq!(scalar(members[0].1).as_deref(), Some("x\\\"y"));
        assert_eq!(scalar(members[3].1).as_deref(), Some("4624"));
        assert_eq!(scalar(members[4].1), None);
        assert_eq!(
            elements(members[1].1).collect::<Vec<_>>(),
            vec!["1", r#"{"k": "]}"}"#]
        );
        // Text that is not JSON ends the members quietly.
        assert_eq!(Members::of(r#"{"a": "unterminated"#).count(), 0);
        assert_eq!(Members::of("[1]").count(), 0);
        for i in 0..40 {
            let s = format!("\"{}\\\\{}\"", "x".repeat(i), "y".repeat(i % 9));
            assert_eq!(string_end(s.as_bytes(), 0), Some(s.len()), "{s}");
        }
    }

    #[test]
    fn strings_unescape_as_serde_json_reads_them() {
        for body in [
            r#"plain"#,
            r#"C:\\Windows\\System32\\svchost.exe"#,
            r#"q\"uote\/slash\b\f\n\r\t"#,
            r#"\u00e9t\u00E9 \ud83d\ude00 \u0000"#,
            r#"ends with \\"#,
        ] {
            let expected: String = serde_json::from_str(&format!("\"{body}\"")).unwrap();
            assert_eq!(unescape(body).as_deref(), Some(expected.as_str()), "{body}");
        }
        // A lone surrogate reads as U+FFFD; a malformed escape is not text.
        assert_eq!(unescape(r"a\ud800b").as_deref(), Some("a\u{fffd}b"));
        assert_eq!(unescape(r"\udc00").as_deref(), Some("\u{fffd}"));
        assert_eq!(unescape(r"\x"), None);
        assert_eq!(unescape(r"\u12"), None);
        assert_eq!(unescape("\\"), None);
    }

    #[test]
    fn event_ids_map_only_for_their_provider() {
        assert_eq!(
            action(SECURITY_AUDITING, 4624, None),
            Some((Action::Logon, Outcome::Success))
        );
        assert_eq!(action("Microsoft-Windows-Kernel-General", 1, None), None);
        assert_eq!(
            action(SYSMON, 1, None),
            Some((Action::ProcessStart, Outcome::Success))
        );
        assert_eq!(action(SYSMON, 4624, None), None);
        assert_eq!(
            action(
                SECURITY_AUDITING,
                4723,
                parse_keywords("0x8010000000000000")
            ),
            Some((Action::PasswordChange, Outcome::Failure))
        );
        assert_eq!(
            action(SERVICE_CONTROL_MANAGER, 7045, None),
            Some((Action::ServiceInstalled, Outcome::Success))
        );
    }

    #[test]
    fn logon_fields_take_the_target_account_and_source_address() {
        let record = json!({"Event": {
            "System": {
                "Provider": {"#attributes": {"Name": SECURITY_AUDITING}},
                "EventID": 4625, "Keywords": "0x8010000000000000",
                "Channel": "Security", "Computer": "WS01"
            },
            "EventData": {
                "SubjectUserSid": "S-1-5-18", "SubjectUserName": "WS01$", "SubjectDomainName": "CORP",
                "TargetUserSid": "S-1-0-0", "TargetUserName": "admin", "TargetDomainName": "CORP",
                "IpAddress": "10.1.2.3", "IpPort": "51234"
            }
        }});
        let f = fields(&record.to_string());
        assert_eq!(f.action, Some((Action::Logon, Outcome::Failure)));
        assert_eq!(f.identity.unwrap().value, "CORP\\admin");
        assert_eq!(f.src_ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(f.computer.as_deref(), Some("WS01"));
        assert!(
            f.message
                .starts_with("[4625 / Microsoft-Windows-Security-Auditing] Security: ")
        );
        assert!(f.message.contains("TargetUserName=admin"));
    }

    #[test]
    fn event_id_with_qualifiers_is_read() {
        let record = json!({"Event": {"System": {
            "Provider": {"#attributes": {"Name": SERVICE_CONTROL_MANAGER}},
            "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 7045},
            "Security": {"#attributes": {"UserID": "S-1-5-21-1-2-3-500"}}
        }, "EventData": {"ServiceName": "evil", "ImagePath": "C:\\evil.exe", "AccountName": "LocalSystem"}}});
        let f = fields(&record.to_string());
        assert_eq!(f.event_id, Some(7045));
        assert_eq!(f.action, Some((Action::ServiceInstalled, Outcome::Success)));
        assert_eq!(f.identity.unwrap().value, "S-1-5-21-1-2-3-500");
    }
}
