//! Time expressions of plain-language questions ("yesterday", "after midnight last
//! Tuesday", "between 10:00 and 11:30 on 2024-03-04", "in the last 3 hours"), turned into
//! a [`TimeRange`] of the filter document, relative to the caller's now and time zone.
//!
//! Calendar expressions become *local* instants (read by the compiler in the caller's
//! zone); "the last N hours" becomes `{"last": "3h"}`. Conventions, stated once:
//! a day is `00:00 ..= 23:59:59.999999`; "last Tuesday" is the most recent Tuesday before
//! today; "after midnight" means the small hours (`00:00 ..= 05:59:59.999999`); a bare
//! clock time with "at"/"around" is a ±15 minute window; a clock time without a day is
//! today.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use chrono_tz::Tz;

use crate::filter::{Span, SpanUnit, TimePoint, TimeRange};

/// Tokens of the question, lowercased; matched tokens are consumed (set to `None`).
pub(crate) type Tokens = Vec<Option<String>>;

/// The caller's present: now in their zone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Today {
    pub date: NaiveDate,
}

impl Today {
    pub(crate) fn new(now: DateTime<chrono::Utc>, tz: Tz) -> Self {
        Today {
            date: now.with_timezone(&tz).date_naive(),
        }
    }
}

/// A calendar day span, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Days2 {
    first: NaiveDate,
    last: NaiveDate,
}

/// A clock span within a day, inclusive; `None` ends are the day's ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clock {
    from: Option<NaiveTime>,
    to: Option<NaiveTime>,
}

fn end_of_day() -> NaiveTime {
    NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap_or(NaiveTime::MIN)
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

fn just_before(t: NaiveTime) -> NaiveTime {
    t.overflowing_sub_signed(chrono::TimeDelta::microseconds(1))
        .0
}

fn local(d: NaiveDate, t: NaiveTime) -> TimePoint {
    TimePoint::Local(NaiveDateTime::new(d, t))
}

const WEEKDAYS: &[(&str, Weekday)] = &[
    ("monday", Weekday::Mon),
    ("tuesday", Weekday::Tue),
    ("wednesday", Weekday::Wed),
    ("thursday", Weekday::Thu),
    ("friday", Weekday::Fri),
    ("saturday", Weekday::Sat),
    ("sunday", Weekday::Sun),
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month_of(t: &str) -> Option<u32> {
    if t.len() < 3 {
        return None;
    }
    let full = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    MONTHS
        .iter()
        .zip(full.iter())
        .position(|(short, long)| t == *short || t == *long || (t == "sept" && *short == "sep"))
        .map(|i| i as u32 + 1)
}

fn day_number(t: &str) -> Option<u32> {
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &t[digits.len()..];
    if !["", "st", "nd", "rd", "th"].contains(&suffix) || digits.is_empty() || digits.len() > 2 {
        return None;
    }
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

fn year_number(t: &str) -> Option<i32> {
    (t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()))
        .then(|| t.parse().ok())
        .flatten()
        .filter(|y| (1970..=2200).contains(y))
}

/// `2024-03-01`, `2024/03/01`.
fn iso_date(t: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(t, "%Y/%m/%d"))
        .ok()
}

/// `2024-03-01t10:00[:00]` (tokens are lowercased).
fn iso_datetime(t: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%dt%H:%M:%S", "%Y-%m-%dt%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
}

/// A clock time at tokens `i..`: `10:15`, `10:15:30`, `10am`, `10 am`, `10:30pm`, `noon`,
/// `midnight`. Returns the time and how many tokens it used.
fn clock_at(toks: &Tokens, i: usize) -> Option<(NaiveTime, usize)> {
    let t = toks.get(i)?.as_deref()?;
    match t {
        "noon" | "midday" => return Some((hm(12, 0), 1)),
        "midnight" => return Some((NaiveTime::MIN, 1)),
        _ => {}
    }
    let next = toks.get(i + 1).and_then(|t| t.as_deref());
    let (body, meridiem, used) = if let Some(b) = t.strip_suffix("am") {
        (b, Some(false), 1)
    } else if let Some(b) = t.strip_suffix("pm") {
        (b, Some(true), 1)
    } else if matches!(next, Some("am" | "a.m." | "a.m")) {
        (t, Some(false), 2)
    } else if matches!(next, Some("pm" | "p.m." | "p.m")) {
        (t, Some(true), 2)
    } else {
        (t, None, 1)
    };
    let mut parts = body.split(':');
    let h: u32 = parts
        .next()
        .filter(|p| !p.is_empty() && p.len() <= 2)?
        .parse()
        .ok()?;
    let m: u32 = match parts.next() {
        Some(p) if p.len() == 2 => p.parse().ok()?,
        Some(_) => return None,
        None if meridiem.is_some() => 0,
        None => return None,
    };
    let s: u32 = match parts.next() {
        Some(p) if p.len() == 2 => p.parse().ok()?,
        Some(_) => return None,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    let h = match meridiem {
        Some(pm) => {
            if !(1..=12).contains(&h) {
                return None;
            }
            (h % 12) + if pm { 12 } else { 0 }
        }
        None => h,
    };
    NaiveTime::from_hms_opt(h, m, s).map(|t| (t, used))
}

/// What a span of tokens means.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Atom {
    Day(Days2),
    Clock(NaiveTime),
    At(NaiveDateTime),
    Period(Clock),
    /// A whole range on its own (`last 3h`, `this week`).
    Whole(WholeRange),
    /// Two local instants (`last night`).
    Range(NaiveDateTime, NaiveDateTime),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum WholeRange {
    Last(Span),
    Since(NaiveDate),
}

/// The most recent `wd` strictly before today (`last tuesday`), or today if `allow_today`.
fn previous_weekday(today: NaiveDate, wd: Weekday, allow_today: bool) -> NaiveDate {
    let mut d = if allow_today {
        today
    } else {
        today.pred_opt().unwrap_or(today)
    };
    for _ in 0..7 {
        if d.weekday() == wd {
            return d;
        }
        d = d.pred_opt().unwrap_or(d);
    }
    d
}

fn unit_of(t: &str) -> Option<SpanUnit> {
    Some(match t {
        "second" | "seconds" | "sec" | "secs" | "s" => SpanUnit::Seconds,
        "minute" | "minutes" | "min" | "mins" | "m" => SpanUnit::Minutes,
        "hour" | "hours" | "hr" | "hrs" | "h" => SpanUnit::Hours,
        "day" | "days" | "d" => SpanUnit::Days,
        "week" | "weeks" | "wk" | "wks" | "w" => SpanUnit::Weeks,
        _ => return None,
    })
}

fn number_word(t: &str) -> Option<u32> {
    Some(match t {
        "a" | "an" | "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "twelve" => 12,
        "fifteen" => 15,
        "thirty" => 30,
        _ => return t.parse().ok().filter(|n| *n > 0 && *n < 1_000_000),
    })
}

/// `24h`, `15m`, `7d` as one token.
fn compact_span(t: &str) -> Option<Span> {
    let unit_at = t.find(|c: char| !c.is_ascii_digit())?;
    if unit_at == 0 {
        return None;
    }
    let n: u32 = t[..unit_at].parse().ok()?;
    let unit = unit_of(&t[unit_at..])?;
    format!("{n}{}", unit_suffix(unit)).parse().ok()
}

fn tok(toks: &Tokens, i: usize) -> Option<&str> {
    toks.get(i).and_then(|t| t.as_deref())
}

/// An atom starting at token `i`: the atom and the number of tokens it spans.
fn atom_at(toks: &Tokens, i: usize, today: Today) -> Option<(Atom, usize)> {
    let t = tok(toks, i)?;
    let t1 = tok(toks, i + 1);
    let t2 = tok(toks, i + 2);
    let day = |d: NaiveDate| Atom::Day(Days2 { first: d, last: d });

    // relative spans: (last|past|previous) [N] unit
    if matches!(t, "last" | "past" | "previous") {
        if let Some(n) = t1.and_then(number_word)
            && let Some(unit) = t2.and_then(unit_of)
        {
            let span: Span = format!("{n}{}", unit_suffix(unit)).parse().ok()?;
            return Some((Atom::Whole(WholeRange::Last(span)), 3));
        }
        if let Some(span) = t1.and_then(compact_span) {
            return Some((Atom::Whole(WholeRange::Last(span)), 2));
        }
        match t1 {
            Some("hour") => {
                return Some((Atom::Whole(WholeRange::Last(span1(SpanUnit::Hours))), 2));
            }
            Some("minute") => {
                return Some((Atom::Whole(WholeRange::Last(span1(SpanUnit::Minutes))), 2));
            }
            Some("day" | "24h") => {
                return Some((Atom::Whole(WholeRange::Last(span1(SpanUnit::Days))), 2));
            }
            Some("week") if t == "last" => {
                // the previous calendar week, Monday to Sunday
                let this_monday = previous_weekday(today.date, Weekday::Mon, true);
                let first = this_monday.checked_sub_days(Days::new(7))?;
                let last = this_monday.pred_opt()?;
                return Some((Atom::Day(Days2 { first, last }), 2));
            }
            Some("week") => {
                return Some((Atom::Whole(WholeRange::Last(span1(SpanUnit::Weeks))), 2));
            }
            Some("month") if t == "last" => {
                let first_this = today.date.with_day(1)?;
                let first = first_this.checked_sub_months(Months::new(1))?;
                return Some((
                    Atom::Day(Days2 {
                        first,
                        last: first_this.pred_opt()?,
                    }),
                    2,
                ));
            }
            Some("month") => {
                let first = today.date.checked_sub_months(Months::new(1))?;
                return Some((Atom::Whole(WholeRange::Since(first)), 2));
            }
            Some("night") => {
                let y = today.date.pred_opt()?;
                return Some((
                    Atom::Range(
                        NaiveDateTime::new(y, hm(18, 0)),
                        NaiveDateTime::new(today.date, just_before(hm(6, 0))),
                    ),
                    2,
                ));
            }
            Some(w) => {
                if let Some((_, wd)) = WEEKDAYS.iter().find(|(n, _)| *n == w) {
                    return Some((day(previous_weekday(today.date, *wd, false)), 2));
                }
            }
            None => {}
        }
    }
    if t == "this" {
        match t1 {
            Some("week") => {
                let monday = previous_weekday(today.date, Weekday::Mon, true);
                return Some((Atom::Whole(WholeRange::Since(monday)), 2));
            }
            Some("month") => {
                return Some((Atom::Whole(WholeRange::Since(today.date.with_day(1)?)), 2));
            }
            Some("morning") => return Some((Atom::Period(MORNING), 2)),
            Some("afternoon") => return Some((Atom::Period(AFTERNOON), 2)),
            Some("evening") => return Some((Atom::Period(EVENING), 2)),
            Some(w) => {
                if let Some((_, wd)) = WEEKDAYS.iter().find(|(n, _)| *n == w) {
                    return Some((day(previous_weekday(today.date, *wd, true)), 2));
                }
            }
            None => {}
        }
    }
    if t == "tonight" {
        return Some((Atom::Period(EVENING), 1));
    }
    if t == "today" {
        return Some((day(today.date), 1));
    }
    if t == "yesterday" {
        return Some((day(today.date.pred_opt()?), 1));
    }
    if t == "day" && t1 == Some("before") && t2 == Some("yesterday") {
        return Some((day(today.date.checked_sub_days(Days::new(2))?), 3));
    }
    // N days ago
    if let Some(n) = number_word(t)
        && matches!(t1, Some("day" | "days"))
        && t2 == Some("ago")
    {
        return Some((
            day(today.date.checked_sub_days(Days::new(u64::from(n)))?),
            3,
        ));
    }
    if let Some((_, wd)) = WEEKDAYS.iter().find(|(n, _)| *n == t && t.len() > 3) {
        return Some((day(previous_weekday(today.date, *wd, false)), 1));
    }
    match t {
        "morning" => return Some((Atom::Period(MORNING), 1)),
        "afternoon" => return Some((Atom::Period(AFTERNOON), 1)),
        "evening" => return Some((Atom::Period(EVENING), 1)),
        "overnight" | "night" => return Some((Atom::Period(NIGHT), 1)),
        "business" if t1 == Some("hours") => return Some((Atom::Period(BUSINESS), 2)),
        _ => {}
    }
    if let Some(dt) = iso_datetime(t) {
        return Some((Atom::At(dt), 1));
    }
    if let Some(d) = iso_date(t) {
        if let Some((clock, used)) = clock_at(toks, i + 1) {
            return Some((Atom::At(NaiveDateTime::new(d, clock)), 1 + used));
        }
        return Some((day(d), 1));
    }
    // month day [year] | day month [year]
    let dated = |m: u32, d: u32, y: Option<i32>| -> Option<NaiveDate> {
        match y {
            Some(y) => NaiveDate::from_ymd_opt(y, m, d),
            None => {
                let this = NaiveDate::from_ymd_opt(today.date.year(), m, d)?;
                if this > today.date {
                    NaiveDate::from_ymd_opt(today.date.year() - 1, m, d)
                } else {
                    Some(this)
                }
            }
        }
    };
    if let Some(m) = month_of(t)
        && let Some(d) = t1.and_then(day_number)
    {
        let y = t2.and_then(year_number);
        let used = 2 + usize::from(y.is_some());
        return Some((day(dated(m, d, y)?), used));
    }
    if let Some(d) = day_number(t)
        && let Some(m) = t1.and_then(month_of)
    {
        let y = t2.and_then(year_number);
        let used = 2 + usize::from(y.is_some());
        return Some((day(dated(m, d, y)?), used));
    }
    if let Some((clock, used)) = clock_at(toks, i) {
        return Some((Atom::Clock(clock), used));
    }
    None
}

fn span1(unit: SpanUnit) -> Span {
    Span { n: 1, unit }
}

fn unit_suffix(u: SpanUnit) -> char {
    match u {
        SpanUnit::Seconds => 's',
        SpanUnit::Minutes => 'm',
        SpanUnit::Hours => 'h',
        SpanUnit::Days => 'd',
        SpanUnit::Weeks => 'w',
    }
}

const MORNING: Clock = Clock {
    from: Some(NaiveTime::from_hms_opt(6, 0, 0).expect("valid")),
    to: Some(NaiveTime::from_hms_micro_opt(11, 59, 59, 999_999).expect("valid")),
};
const AFTERNOON: Clock = Clock {
    from: Some(NaiveTime::from_hms_opt(12, 0, 0).expect("valid")),
    to: Some(NaiveTime::from_hms_micro_opt(17, 59, 59, 999_999).expect("valid")),
};
const EVENING: Clock = Clock {
    from: Some(NaiveTime::from_hms_opt(18, 0, 0).expect("valid")),
    to: None,
};
const NIGHT: Clock = Clock {
    from: None,
    to: Some(NaiveTime::from_hms_micro_opt(5, 59, 59, 999_999).expect("valid")),
};
const BUSINESS: Clock = Clock {
    from: Some(NaiveTime::from_hms_opt(9, 0, 0).expect("valid")),
    to: Some(NaiveTime::from_hms_micro_opt(16, 59, 59, 999_999).expect("valid")),
};

/// Where a bound instant lies, before the day is known.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    Clock(NaiveTime),
    At(NaiveDateTime),
    Day(Days2),
}

/// Finds the time expression in `toks` (consuming what it used) and returns the range.
pub(crate) fn extract(toks: &mut Tokens, today: Today) -> Option<TimeRange> {
    // Pass 1: atoms with the connector word in front of them.
    let mut found: Vec<(Option<String>, Atom, usize, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i].is_none() {
            i += 1;
            continue;
        }
        if let Some((atom, used)) = atom_at(toks, i, today) {
            let prev = (0..i).rev().find_map(|j| toks[j].clone()).filter(|p| {
                matches!(
                    p.as_str(),
                    "since"
                        | "after"
                        | "before"
                        | "until"
                        | "till"
                        | "between"
                        | "from"
                        | "and"
                        | "to"
                        | "at"
                        | "around"
                        | "about"
                        | "on"
                        | "in"
                        | "during"
                        | "within"
                        | "over"
                        | "the"
                        | "of"
                )
            });
            found.push((prev, atom, i, used));
            i += used;
        } else {
            i += 1;
        }
    }
    if found.is_empty() {
        return None;
    }
    // Consume the atoms and their connectors.
    for (_, _, start, used) in &found {
        for t in toks.iter_mut().skip(*start).take(*used) {
            *t = None;
        }
        // connector words directly before the atom
        let mut j = *start;
        while j > 0 {
            j -= 1;
            match toks[j].as_deref() {
                Some(
                    "since" | "after" | "before" | "until" | "till" | "between" | "from" | "and"
                    | "to" | "at" | "around" | "about" | "on" | "in" | "during" | "within" | "over"
                    | "the" | "of",
                ) => toks[j] = None,
                None => {}
                _ => break,
            }
        }
    }

    let mut day: Option<Days2> = None;
    let mut from: Option<Bound> = None;
    let mut to: Option<Bound> = None;
    let mut around: Option<Bound> = None;
    let mut period: Option<Clock> = None;
    let mut whole: Option<WholeRange> = None;
    let mut pending_between = false;
    let mut range: Option<(NaiveDateTime, NaiveDateTime)> = None;

    for (prev, atom, _, _) in &found {
        let prev = prev.as_deref();
        let bound = match atom {
            Atom::Clock(t) => Some(Bound::Clock(*t)),
            Atom::At(t) => Some(Bound::At(*t)),
            Atom::Day(d) => Some(Bound::Day(*d)),
            Atom::Period(c) => {
                if *c == NIGHT && prev == Some("after") {
                    period = Some(NIGHT);
                } else {
                    period = Some(*c);
                }
                None
            }
            Atom::Whole(w) => {
                whole = Some(*w);
                None
            }
            Atom::Range(a, b) => {
                range = Some((*a, *b));
                None
            }
        };
        let Some(bound) = bound else { continue };
        match prev {
            Some("between" | "from") => {
                from = Some(bound);
                pending_between = true;
            }
            Some("and" | "to" | "until" | "till") if pending_between => {
                to = Some(bound);
                pending_between = false;
            }
            Some("since") => from = Some(bound),
            Some("after") => {
                if let Bound::Clock(t) = bound
                    && t == NaiveTime::MIN
                {
                    period = Some(NIGHT);
                } else {
                    from = Some(after(bound));
                }
            }
            Some("before" | "until" | "till") => to = Some(before(bound)),
            Some("at" | "around" | "about") if !matches!(bound, Bound::Day(_)) => {
                around = Some(bound)
            }
            _ => match bound {
                Bound::Day(d) => day = Some(d),
                other => around = Some(other),
            },
        }
    }

    if let Some(w) = whole {
        return Some(match w {
            WholeRange::Last(span) => TimeRange::Last(span),
            WholeRange::Since(d) => TimeRange::Between {
                from: Some(local(d, NaiveTime::MIN)),
                to: None,
            },
        });
    }

    if let Some((a, b)) = range {
        return Some(TimeRange::Between {
            from: Some(TimePoint::Local(a)),
            to: Some(TimePoint::Local(b)),
        });
    }
    let on = day;
    let pin = |b: Bound, end: bool| -> TimePoint {
        match b {
            Bound::At(t) => TimePoint::Local(t),
            Bound::Clock(t) => local(on.map_or(today.date, |d| d.first), t),
            Bound::Day(d) => {
                if end {
                    local(d.last, end_of_day())
                } else {
                    local(d.first, NaiveTime::MIN)
                }
            }
        }
    };

    if from.is_some() || to.is_some() {
        // With a day named, a clock bound on one side is closed by the day on the other.
        if let Some(d) = day {
            let from_clock = matches!(from, Some(Bound::Clock(_)));
            let to_clock = matches!(to, Some(Bound::Clock(_)));
            if from_clock && to.is_none() {
                to = Some(Bound::Day(d));
            } else if to_clock && from.is_none() {
                from = Some(Bound::Day(d));
            }
        }
        return Some(TimeRange::Between {
            from: from.map(|b| pin(b, false)),
            to: to.map(|b| pin(b, true)),
        });
    }
    if let Some(b) = around {
        let at = match b {
            Bound::At(t) => TimePoint::Local(t),
            other => pin(other, false),
        };
        return Some(TimeRange::Around {
            at,
            window: Span {
                n: 15,
                unit: SpanUnit::Minutes,
            },
        });
    }
    let d = day.unwrap_or(Days2 {
        first: today.date,
        last: today.date,
    });
    if day.is_none() && period.is_none() {
        return None;
    }
    let c = period.unwrap_or(Clock {
        from: None,
        to: None,
    });
    Some(TimeRange::Between {
        from: Some(local(d.first, c.from.unwrap_or(NaiveTime::MIN))),
        to: Some(local(d.last, c.to.unwrap_or_else(end_of_day))),
    })
}

/// "after X": a day starts the next day, a time is itself.
fn after(b: Bound) -> Bound {
    match b {
        Bound::Day(d) => {
            let next = d.last.succ_opt().unwrap_or(d.last);
            Bound::Day(Days2 {
                first: next,
                last: next,
            })
        }
        other => other,
    }
}

/// "before X": up to just before X.
fn before(b: Bound) -> Bound {
    match b {
        Bound::Day(d) => {
            let prev = d.first.pred_opt().unwrap_or(d.first);
            Bound::Day(Days2 {
                first: prev,
                last: prev,
            })
        }
        Bound::Clock(t) => Bound::Clock(just_before(t)),
        Bound::At(t) => Bound::At(NaiveDateTime::new(t.date(), just_before(t.time()))),
    }
}
