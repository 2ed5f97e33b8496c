//! Which stored event counts answer a histogram exactly.
//!
//! The database keeps, per case, the number of events in every UTC minute and every UTC
//! hour (`event_counts_minute`, `event_counts_hour`; migration
//! `20261202000200_event_counts.sql`, kept by triggers on `events`). A histogram of a
//! document with only a time range sums those cells instead of counting each event, when
//! every bucket edge falls on a whole minute (widths of whole minutes, an origin on a
//! whole minute: every zone of today's tz database; not the local mean times of the 19th
//! century, which count raw events).
//!
//! [`cover`] cuts the range into the pieces each bucket is made of: whole hours inside a
//! bucket come from the hour cells, the whole minutes around them from the minute cells,
//! and the parts of minutes at the range's ends (a range starting at 10:00:30) from the
//! events themselves — so a bucket's count is always the exact number of its events.
//! This module decides; it runs no SQL.

use chrono::{DateTime, Utc};

const MINUTE: i64 = 60 * 1_000_000;
const HOUR: i64 = 60 * MINUTE;
/// Most buckets a cover is computed for; a plan with more counts raw events.
const MAX_BUCKETS: i64 = 100_000;

/// Half-open intervals `[lo, hi)` of the time axis, sorted, disjoint, each counted at
/// one grain; together they are exactly the range given to [`cover`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cover {
    /// Whole UTC hours, summed from the hour cells.
    pub hours: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Whole UTC minutes, summed from the minute cells.
    pub minutes: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// The rest, counted from the events: only the partial minutes at the range's two
    /// ends, as every bucket edge is a whole minute.
    pub raw: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Microseconds since the Unix epoch (as PostgreSQL stores `timestamptz`).
type Micros = i64;

#[derive(Default)]
struct Builder {
    hours: Vec<(Micros, Micros)>,
    minutes: Vec<(Micros, Micros)>,
    raw: Vec<(Micros, Micros)>,
}

/// Appends `[lo, hi)`, merged with the previous interval where they touch.
fn push(list: &mut Vec<(Micros, Micros)>, lo: Micros, hi: Micros) {
    if lo >= hi {
        return;
    }
    match list.last_mut() {
        Some(last) if last.1 == lo => last.1 = hi,
        _ => list.push((lo, hi)),
    }
}

fn floor(t: Micros, grain: Micros) -> Micros {
    t - t.rem_euclid(grain)
}

fn ceil(t: Micros, grain: Micros) -> Micros {
    let f = floor(t, grain);
    if f == t { t } else { f + grain }
}

impl Builder {
    /// One piece `[a, b)` that lies inside one bucket.
    fn piece(&mut self, a: Micros, b: Micros) {
        let (m_lo, m_hi) = (ceil(a, MINUTE), floor(b, MINUTE));
        if m_lo >= m_hi {
            push(&mut self.raw, a, b);
            return;
        }
        push(&mut self.raw, a, m_lo);
        let (h_lo, h_hi) = (ceil(a, HOUR), floor(b, HOUR));
        if h_lo < h_hi {
            push(&mut self.minutes, m_lo, h_lo);
            push(&mut self.hours, h_lo, h_hi);
            push(&mut self.minutes, h_hi, m_hi);
        } else {
            push(&mut self.minutes, m_lo, m_hi);
        }
        push(&mut self.raw, m_hi, b);
    }
}

fn at(t: Micros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t).unwrap_or_default()
}

fn intervals(list: Vec<(Micros, Micros)>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    list.into_iter().map(|(a, b)| (at(a), at(b))).collect()
}

/// The cover of `from ..= to` (both inclusive, to the microsecond) for buckets
/// `width_seconds` wide aligned on `origin`, or `None` where the stored counts cannot
/// answer exactly (a bucket edge inside a minute) or the range has too many buckets.
pub fn cover(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    origin: DateTime<Utc>,
    width_seconds: i64,
) -> Option<Cover> {
    let width = width_seconds.checked_mul(1_000_000)?;
    let origin = origin.timestamp_micros();
    if width <= 0 || width % MINUTE != 0 || origin.rem_euclid(MINUTE) != 0 {
        return None;
    }
    let (from, end) = (
        from.timestamp_micros(),
        to.timestamp_micros().checked_add(1)?,
    );
    let buckets = (end.saturating_sub(from)) / width + 2;
    if buckets > MAX_BUCKETS {
        return None;
    }
    let mut b = Builder::default();
    let mut a = from;
    while a < end {
        let next = (a - origin)
            .div_euclid(width)
            .checked_add(1)?
            .checked_mul(width)?
            .checked_add(origin)?;
        let stop = next.min(end);
        b.piece(a, stop);
        a = stop;
    }
    Some(Cover {
        hours: intervals(b.hours),
        minutes: intervals(b.minutes),
        raw: intervals(b.raw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn iv(list: &[(&str, &str)]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        list.iter().map(|(a, b)| (t(a), t(b))).collect()
    }

    #[test]
    fn hour_buckets_on_whole_hours_use_one_run_of_hours_and_edges() {
        let c = cover(
            t("2024-03-01T10:00:30Z"),
            t("2024-03-01T13:20:00Z"),
            t("2001-01-01T00:00:00Z"),
            3600,
        )
        .unwrap();
        assert_eq!(
            c.hours,
            iv(&[("2024-03-01T11:00:00Z", "2024-03-01T13:00:00Z")])
        );
        assert_eq!(
            c.minutes,
            iv(&[
                ("2024-03-01T10:01:00Z", "2024-03-01T11:00:00Z"),
                ("2024-03-01T13:00:00Z", "2024-03-01T13:20:00Z"),
            ])
        );
        // the 30 s before the first whole minute, and the last instant (to is inclusive)
        assert_eq!(
            c.raw,
            iv(&[
                ("2024-03-01T10:00:30Z", "2024-03-01T10:01:00Z"),
                ("2024-03-01T13:20:00Z", "2024-03-01T13:20:00.000001Z"),
            ])
        );
    }

    #[test]
    fn half_hour_zones_split_hours_at_bucket_edges() {
        // Kolkata (UTC+5:30): day buckets start at 18:30 UTC.
        let origin = t("2000-12-31T18:30:00Z");
        let c = cover(
            t("2024-03-01T18:30:00Z"),
            t("2024-03-03T18:29:59.999999Z"),
            origin,
            86_400,
        )
        .unwrap();
        assert!(c.raw.is_empty(), "{:?}", c.raw);
        assert_eq!(
            c.hours,
            iv(&[
                ("2024-03-01T19:00:00Z", "2024-03-02T18:00:00Z"),
                ("2024-03-02T19:00:00Z", "2024-03-03T18:00:00Z"),
            ])
        );
        assert_eq!(
            c.minutes,
            iv(&[
                ("2024-03-01T18:30:00Z", "2024-03-01T19:00:00Z"),
                ("2024-03-02T18:00:00Z", "2024-03-02T19:00:00Z"),
                ("2024-03-03T18:00:00Z", "2024-03-03T18:30:00Z"),
            ])
        );
    }

    #[test]
    fn minute_buckets_use_minutes_only() {
        let c = cover(
            t("2024-03-01T10:00:00Z"),
            t("2024-03-01T10:59:59.999999Z"),
            t("2001-01-01T00:00:00Z"),
            300,
        )
        .unwrap();
        assert!(c.hours.is_empty() && c.raw.is_empty());
        assert_eq!(
            c.minutes,
            iv(&[("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z")])
        );
    }

    #[test]
    fn edges_inside_a_minute_are_not_covered() {
        let origin = t("2001-01-01T00:00:00Z");
        let (a, b) = (t("2024-03-01T10:00:00Z"), t("2024-03-01T11:00:00Z"));
        // sub-minute widths
        assert_eq!(cover(a, b, origin, 30), None);
        assert_eq!(cover(a, b, origin, 90), None);
        // an origin off the minute (a local mean time such as UTC+0:53:28)
        assert_eq!(cover(a, b, t("2000-12-31T23:06:32Z"), 3600), None);
        // a range of less than a minute: all raw
        let c = cover(a, t("2024-03-01T10:00:10Z"), origin, 60).unwrap();
        assert!(c.hours.is_empty() && c.minutes.is_empty());
        assert_eq!(
            c.raw,
            iv(&[("2024-03-01T10:00:00Z", "2024-03-01T10:00:10.000001Z")])
        );
    }

    #[test]
    fn the_pieces_tile_the_range_exactly() {
        let origin = t("2000-12-31T18:15:00Z");
        for (from, to, width) in [
            ("2024-03-01T10:00:30.5Z", "2024-03-09T13:20:07Z", 3 * 3600),
            ("2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z", 60),
            ("1999-12-31T23:59:59Z", "2000-01-02T00:00:01Z", 86_400),
            ("2024-03-01T10:07:00Z", "2024-03-01T12:00:00Z", 900),
        ] {
            let c = cover(t(from), t(to), origin, width).unwrap();
            let mut all: Vec<_> = c
                .hours
                .iter()
                .chain(&c.minutes)
                .chain(&c.raw)
                .copied()
                .collect();
            all.sort();
            assert_eq!(all.first().unwrap().0, t(from));
            assert_eq!(
                all.last().unwrap().1,
                t(to) + chrono::TimeDelta::microseconds(1)
            );
            for w in all.windows(2) {
                assert_eq!(w[0].1, w[1].0, "{from}..{to}: gap or overlap");
            }
            for (lo, hi) in &c.hours {
                assert_eq!(lo.timestamp() % 3600, 0);
                assert_eq!(hi.timestamp() % 3600, 0);
            }
        }
    }
}
