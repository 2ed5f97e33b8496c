//! Resolving a document's time range and instants to UTC, against the caller's "now" and
//! IANA time zone (so "last 2d" and "2024-03-01T10:00" mean what the investigator meant).

use chrono::{DateTime, Days, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;

use super::document::{Span, SpanUnit, TimePoint, TimeRange};

/// What relative times are resolved against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolveCtx {
    /// The current instant (a cursor pins it, so every page of a search sees the same one).
    pub now: DateTime<Utc>,
    /// The caller's time zone, for local instants and calendar days.
    pub tz: Tz,
}

impl ResolveCtx {
    /// `now` in UTC.
    pub fn utc(now: DateTime<Utc>) -> Self {
        ResolveCtx { now, tz: Tz::UTC }
    }
}

/// A time range in UTC; both ends inclusive, `None` = open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResolvedRange {
    /// Earliest instant.
    pub from: Option<DateTime<Utc>>,
    /// Latest instant.
    pub to: Option<DateTime<Utc>>,
}

impl TimePoint {
    /// The instant in UTC. A local time in a DST gap is an error (give an offset); a
    /// repeated local time (DST fold) is the earlier one.
    pub fn resolve(&self, tz: Tz) -> Result<DateTime<Utc>, String> {
        match self {
            TimePoint::Fixed(t) => Ok(t.with_timezone(&Utc)),
            TimePoint::Local(naive) => match tz.from_local_datetime(naive) {
                LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(early, _) => Ok(early.with_timezone(&Utc)),
                LocalResult::None => Err(format!(
                    "local time {naive} does not exist in {tz} (clock change); give an offset"
                )),
            },
        }
    }
}

impl TimeRange {
    /// The range in UTC.
    pub fn resolve(&self, ctx: &ResolveCtx) -> Result<ResolvedRange, String> {
        match self {
            TimeRange::Between { from, to } => {
                let from = from.as_ref().map(|p| p.resolve(ctx.tz)).transpose()?;
                let to = to.as_ref().map(|p| p.resolve(ctx.tz)).transpose()?;
                if let (Some(f), Some(t)) = (from, to)
                    && f > t
                {
                    return Err("`from` is after `to`".into());
                }
                Ok(ResolvedRange { from, to })
            }
            TimeRange::Around { at, window } => {
                let at = at.resolve(ctx.tz)?;
                let w = window.duration();
                let out_of_range = || "`around` ± `window` is out of range".to_string();
                Ok(ResolvedRange {
                    from: Some(at.checked_sub_signed(w).ok_or_else(out_of_range)?),
                    to: Some(at.checked_add_signed(w).ok_or_else(out_of_range)?),
                })
            }
            TimeRange::Last(span) => Ok(ResolvedRange {
                from: Some(span_before(ctx, *span)?),
                to: Some(ctx.now),
            }),
        }
    }
}

/// `now - span`; days and weeks step back calendar days in the caller's zone (so "1d"
/// across a DST change is 23 or 25 hours), falling back to 24-hour days when the local
/// result does not exist.
fn span_before(ctx: &ResolveCtx, span: Span) -> Result<DateTime<Utc>, String> {
    let days = match span.unit {
        SpanUnit::Days => Some(u64::from(span.n)),
        SpanUnit::Weeks => Some(u64::from(span.n) * 7),
        _ => None,
    };
    let calendar = days.and_then(|d| {
        ctx.now
            .with_timezone(&ctx.tz)
            .checked_sub_days(Days::new(d))
            .map(|t| t.with_timezone(&Utc))
    });
    calendar
        .or_else(|| ctx.now.checked_sub_signed(span.duration()))
        .ok_or_else(|| format!("`last` {span} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn last_days_are_calendar_days_in_the_callers_zone() {
        // 2024-03-31 is the EU spring-forward day: one calendar day back is 23 hours.
        let ctx = ResolveCtx {
            now: at("2024-03-31T12:00:00Z"),
            tz: chrono_tz::Europe::Berlin,
        };
        let r = TimeRange::Last("1d".parse().unwrap())
            .resolve(&ctx)
            .unwrap();
        assert_eq!(r.from, Some(at("2024-03-30T13:00:00Z")));
        assert_eq!(r.to, Some(ctx.now));
        let r = TimeRange::Last("24h".parse().unwrap())
            .resolve(&ctx)
            .unwrap();
        assert_eq!(r.from, Some(at("2024-03-30T12:00:00Z")));
    }

    #[test]
    fn local_times_are_read_in_the_zone_and_gaps_are_errors() {
        let tz = chrono_tz::America::New_York;
        let p: TimePoint = "2024-07-01T09:30".parse().unwrap();
        assert_eq!(p.resolve(tz).unwrap(), at("2024-07-01T13:30:00Z"));
        let gap: TimePoint = "2024-03-10T02:30".parse().unwrap();
        assert!(gap.resolve(tz).unwrap_err().contains("does not exist"));
        let fixed: TimePoint = "2024-07-01T09:30:00+02:00".parse().unwrap();
        assert_eq!(fixed.resolve(tz).unwrap(), at("2024-07-01T07:30:00Z"));
    }

    #[test]
    fn around_is_symmetric_and_between_rejects_reversed_bounds() {
        let ctx = ResolveCtx::utc(at("2024-01-01T00:00:00Z"));
        let r = TimeRange::Around {
            at: "2024-05-05T10:00:00Z".parse().unwrap(),
            window: "15m".parse().unwrap(),
        }
        .resolve(&ctx)
        .unwrap();
        assert_eq!(r.from, Some(at("2024-05-05T09:45:00Z")));
        assert_eq!(r.to, Some(at("2024-05-05T10:15:00Z")));
        let reversed = TimeRange::Between {
            from: Some("2024-05-05T10:00:00Z".parse().unwrap()),
            to: Some("2024-05-04T10:00:00Z".parse().unwrap()),
        };
        assert!(reversed.resolve(&ctx).is_err());
    }
}
