//! `POST /api/v1/cases/{case}/events/histogram`: how many events match a filter document
//! (the same document the search takes), per time bucket, for the timeline's overview.
//!
//! The time span is the document's range, or, where the range is open, that of the
//! matching events. The bucket width is the smallest "round" width (1 s, 5 s, ... 1 h,
//! 1 d, 7 d, ...) that cuts the span into at most the requested number of buckets;
//! buckets are aligned on local midnight of a Monday in the caller's time zone (its UTC
//! offset at the start of the span), so day buckets start at midnight and week buckets on
//! Mondays. Every bucket of the span is returned, empty ones with count 0.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use chrono::{DateTime, NaiveDate, Offset, SubsecRound, TimeDelta, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::events::time_zone;
use super::{ApiPath, AppError, AppState, ErrorBody, accessible_case, require_read};
use crate::auth::Principal;
use crate::filter::{self, FilterDocument, ResolveCtx, Span, SpanUnit};

/// Buckets unless `?buckets=` says otherwise.
pub const DEFAULT_BUCKETS: u32 = 100;
/// Most buckets one request may ask for.
pub const MAX_BUCKETS: u32 = 1000;

/// Query parameters of the histogram.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistogramParams {
    /// Most buckets wanted, 1 to 1000 (default 100).
    pub buckets: Option<u32>,
    /// IANA time zone for local times in the document and bucket alignment (default UTC).
    pub tz: Option<String>,
}

/// Events in one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistogramBucket {
    /// Start of the bucket (inclusive); it ends where the next one starts.
    pub start: DateTime<Utc>,
    /// Matching events in it.
    pub count: i64,
}

/// Event counts over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Histogram {
    /// Bucket width as a span of the filter language (`"5m"`, `"1h"`, `"7d"`); absent when
    /// nothing matched and the document has no time range.
    pub interval: Option<String>,
    /// Bucket width in seconds.
    pub interval_seconds: Option<i64>,
    /// Start of the first bucket.
    pub from: Option<DateTime<Utc>>,
    /// End of the last bucket (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Matching events in all buckets.
    pub total: i64,
    /// Every bucket from `from` to `to`, in time order.
    pub buckets: Vec<HistogramBucket>,
}

/// Bucket widths, smallest first; spans longer than 1000 × 365 days use whole days.
const WIDTHS: &[(u32, SpanUnit)] = &[
    (1, SpanUnit::Seconds),
    (2, SpanUnit::Seconds),
    (5, SpanUnit::Seconds),
    (10, SpanUnit::Seconds),
    (15, SpanUnit::Seconds),
    (30, SpanUnit::Seconds),
    (1, SpanUnit::Minutes),
    (2, SpanUnit::Minutes),
    (5, SpanUnit::Minutes),
    (10, SpanUnit::Minutes),
    (15, SpanUnit::Minutes),
    (30, SpanUnit::Minutes),
    (1, SpanUnit::Hours),
    (2, SpanUnit::Hours),
    (3, SpanUnit::Hours),
    (6, SpanUnit::Hours),
    (12, SpanUnit::Hours),
    (1, SpanUnit::Days),
    (2, SpanUnit::Days),
    (7, SpanUnit::Days),
    (14, SpanUnit::Days),
    (30, SpanUnit::Days),
    (90, SpanUnit::Days),
    (180, SpanUnit::Days),
    (365, SpanUnit::Days),
];

/// The buckets of a span: width, alignment, first bucket and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Bucket width.
    pub width: Span,
    /// Where buckets are aligned.
    pub origin: DateTime<Utc>,
    /// Start of the first bucket.
    pub first: DateTime<Utc>,
    /// Number of buckets.
    pub count: i64,
}

impl Plan {
    /// Width in seconds.
    pub fn seconds(&self) -> i64 {
        i64::from(self.width.n) * self.width.unit.seconds()
    }

    /// Start of bucket `i`.
    pub fn start(&self, i: i64) -> DateTime<Utc> {
        self.first + TimeDelta::seconds(self.seconds() * i)
    }
}

/// The start of the bucket of width `seconds` aligned on `origin` that holds `t` (`None`
/// only beyond the representable time range).
fn bin(t: DateTime<Utc>, origin: DateTime<Utc>, seconds: i64) -> Option<DateTime<Utc>> {
    let width = seconds.checked_mul(1_000_000)?;
    let offset = (t - origin).num_microseconds()?;
    origin.checked_add_signed(TimeDelta::microseconds(offset - offset.rem_euclid(width)))
}

/// Buckets for `from ..= to` (at most `max_buckets` of them), aligned in `tz`.
pub fn plan(from: DateTime<Utc>, to: DateTime<Utc>, max_buckets: u32, tz: chrono_tz::Tz) -> Plan {
    let (from, to) = if from <= to { (from, to) } else { (to, from) };
    let offset = i64::from(
        tz.offset_from_utc_datetime(&from.naive_utc())
            .fix()
            .local_minus_utc(),
    );
    // 2001-01-01 was a Monday.
    let monday = NaiveDate::from_ymd_opt(2001, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .unwrap_or_default();
    let origin = monday - TimeDelta::seconds(offset);
    let max = i64::from(max_buckets.max(1));
    let make = |n: u32, unit: SpanUnit, origin: DateTime<Utc>| {
        let seconds = i64::from(n) * unit.seconds();
        let first = bin(from, origin, seconds)?;
        let count = (bin(to, origin, seconds)? - first).num_seconds() / seconds + 1;
        Some(Plan {
            width: Span { n, unit },
            origin,
            first,
            count,
        })
    };
    if let Some(p) = WIDTHS
        .iter()
        .filter_map(|&(n, unit)| make(n, unit, origin))
        .find(|p| p.count <= max)
    {
        return p;
    }
    // Longer than the table allows: whole days from the local midnight before `from`,
    // enough of them that `max` buckets reach past `to`.
    let midnight = bin(from, origin, 86_400).unwrap_or(from);
    let days_needed = (to - midnight).num_days() + 1;
    let days = u32::try_from((days_needed + max - 1) / max).unwrap_or(u32::MAX);
    make(days, SpanUnit::Days, midnight).unwrap_or(Plan {
        width: Span {
            n: days,
            unit: SpanUnit::Days,
        },
        origin: midnight,
        first: midnight,
        count: 1,
    })
}

/// Counts matching events per time bucket. The body is a filter document (its `sort` and
/// `limit` are ignored).
#[utoipa::path(post, path = "/api/v1/cases/{case}/events/histogram", operation_id = "event_histogram", tag = "events",
    params(("case" = Uuid, Path, description = "case id"), HistogramParams),
    request_body(content = Object, description = "a filter document (JSON Schema at /api/v1/filter.schema.json)"),
    responses((status = 200, body = Histogram), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn histogram(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
    Query(params): Query<HistogramParams>,
    body: Bytes,
) -> Result<Json<Histogram>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let doc = FilterDocument::parse(&body)?;
    let tz = time_zone(params.tz.as_deref())?;
    let max_buckets = params.buckets.unwrap_or(DEFAULT_BUCKETS);
    if !(1..=MAX_BUCKETS).contains(&max_buckets) {
        return Err(AppError::BadRequest {
            code: "invalid_request",
            message: format!("buckets must be 1 to {MAX_BUCKETS}"),
            path: Some("buckets".into()),
        });
    }
    let ctx = ResolveCtx {
        now: Utc::now().trunc_subsecs(6),
        tz,
    };
    let range = match &doc.time {
        Some(t) => t
            .resolve(&ctx)
            .map_err(|m| filter::FilterError::new("$.time", filter::FilterErrorKind::BadTime(m)))?,
        None => filter::ResolvedRange::default(),
    };
    let (from, to) = if let (Some(from), Some(to)) = (range.from, range.to) {
        (Some(from), Some(to))
    } else {
        let q = filter::compile_bounds(&doc, case, &ctx)?;
        let args = q.arguments().map_err(AppError::internal)?;
        let (min, max): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as_with(&q.sql, args)
                .fetch_one(state.db())
                .await?;
        (range.from.or(min), range.to.or(max))
    };
    let (Some(from), Some(to)) = (from, to) else {
        return Ok(Json(Histogram {
            interval: None,
            interval_seconds: None,
            from: None,
            to: None,
            total: 0,
            buckets: Vec::new(),
        }));
    };
    let plan = plan(from, to, max_buckets, tz);
    let q = filter::compile_histogram(&doc, case, &ctx, plan.origin, plan.seconds(), (from, to))?;
    let args = q.arguments().map_err(AppError::internal)?;
    // Without parallel workers: the statement sums a few thousand stored counts (or counts
    // a filter's matches), and starting workers cost more than that — 25–30 ms measured
    // when the planner chose a Gather for the stored counts' many small index ranges.
    let mut tx = state.db().begin().await?;
    sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(DateTime<Utc>, i64)> = sqlx::query_as_with(&q.sql, args)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut buckets: Vec<HistogramBucket> = (0..plan.count)
        .map(|i| HistogramBucket {
            start: plan.start(i),
            count: 0,
        })
        .collect();
    let mut total = 0;
    for (start, count) in rows {
        let i = (start - plan.first).num_seconds() / plan.seconds();
        if let Some(b) = usize::try_from(i).ok().and_then(|i| buckets.get_mut(i)) {
            b.count += count;
            total += count;
        }
    }
    Ok(Json(Histogram {
        interval: Some(plan.width.to_string()),
        interval_seconds: Some(plan.seconds()),
        from: Some(plan.first),
        to: Some(plan.start(plan.count)),
        total,
        buckets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_width_is_the_smallest_round_one_that_fits() {
        let utc = chrono_tz::Tz::UTC;
        for (from, to, max, width, first, count) in [
            // one instant: one 1 s bucket
            (
                "2024-03-01T10:00:00.5Z",
                "2024-03-01T10:00:00.5Z",
                100,
                "1s",
                "2024-03-01T10:00:00Z",
                1,
            ),
            // 1 hour in ≤ 100 buckets: 1 m buckets, 61 of them (both ends inclusive)
            (
                "2024-03-01T10:00:00Z",
                "2024-03-01T11:00:00Z",
                100,
                "1m",
                "2024-03-01T10:00:00Z",
                61,
            ),
            // 1 hour in ≤ 12 buckets: 5 m would need 13, so 10 m
            (
                "2024-03-01T10:00:00Z",
                "2024-03-01T11:00:00Z",
                12,
                "10m",
                "2024-03-01T10:00:00Z",
                7,
            ),
            // 30 days in ≤ 100: 12 h (61 buckets; 6 h would need 121)
            (
                "2024-01-01T00:00:00Z",
                "2024-01-31T00:00:00Z",
                100,
                "12h",
                "2024-01-01T00:00:00Z",
                61,
            ),
            // a year in ≤ 100: 7-day buckets starting on the Monday before
            (
                "2024-01-03T12:00:00Z",
                "2024-12-31T00:00:00Z",
                100,
                "7d",
                "2024-01-01T00:00:00Z",
                53,
            ),
        ] {
            let p = plan(at(from), at(to), max, utc);
            assert_eq!(p.width.to_string(), width, "{from}..{to} in {max}");
            assert_eq!(p.first, at(first), "{from}..{to} in {max}");
            assert_eq!(p.count, count, "{from}..{to} in {max}");
            assert!(p.count <= i64::from(max));
            assert!(p.first <= at(from) && p.start(p.count) > at(to));
        }
    }

    #[test]
    fn spans_beyond_the_table_use_whole_days() {
        for max in [1, 2, 10, 1000] {
            let (from, to) = (at("0100-01-01T00:00:00Z"), at("9100-06-01T12:34:56Z"));
            let p = plan(from, to, max, chrono_tz::Tz::UTC);
            assert_eq!(p.width.unit, SpanUnit::Days, "{max}");
            assert!(p.width.n > 365, "{max}: {}", p.width);
            assert!(
                p.count <= i64::from(max) && p.count >= 1,
                "{max}: {}",
                p.count
            );
            assert!(p.first <= from && p.start(p.count) > to, "{max}");
        }
    }

    #[test]
    fn day_buckets_start_at_local_midnight() {
        // Berlin is UTC+1 in January: local midnight is 23:00 UTC the day before.
        let p = plan(
            at("2024-01-10T12:00:00Z"),
            at("2024-01-20T12:00:00Z"),
            20,
            chrono_tz::Europe::Berlin,
        );
        assert_eq!(p.width.to_string(), "1d");
        assert_eq!(p.first, at("2024-01-09T23:00:00Z"));
        assert_eq!(p.count, 11);
    }
}
