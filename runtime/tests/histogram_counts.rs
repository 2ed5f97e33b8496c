//! The stored per-minute and per-hour event counts (migration
//! `20261202000200_event_counts.sql`) and the histogram built from them, against a real
//! PostgreSQL as the non-superuser owner: the counts equal a GROUP BY of `events` after
//! every way events arrive or leave (multi-row INSERT, COPY, INSERT ... ON CONFLICT DO
//! NOTHING with duplicates, UPDATE of the time, DELETE, evidence and case deletion
//! cascades, TRUNCATE), concurrent inserts into the same minutes neither deadlock nor lose
//! counts, and the histogram route answers exactly what counting every event answers, for
//! random ranges, bucket counts and time zones (half- and quarter-hour offsets and a
//! 19th-century local mean time among them).

mod common;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use common::{call, token};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// A small deterministic generator (SplitMix64): reproducible "random" cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Eucla",
    "America/St_Johns",
    "Pacific/Chatham",
    "Europe/Amsterdam",
];

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An instant near `base` (within `span`), often on a minute, hour or half-hour edge or
/// just before one, where a wrong cover would show.
fn instant(rng: &mut Rng, base: DateTime<Utc>, span: TimeDelta) -> DateTime<Utc> {
    let micros = rng.below(span.num_microseconds().unwrap() as u64) as i64;
    let t = base + TimeDelta::microseconds(micros);
    let minute = t - TimeDelta::microseconds(t.timestamp_micros().rem_euclid(60_000_000));
    let hour = t - TimeDelta::microseconds(t.timestamp_micros().rem_euclid(3_600_000_000));
    match rng.below(8) {
        0 => minute,
        1 => hour,
        2 => hour + TimeDelta::minutes(30),
        3 => minute - TimeDelta::microseconds(1),
        4 => hour - TimeDelta::microseconds(1),
        5 => hour + TimeDelta::minutes(45),
        _ => t,
    }
}

async fn insert_case(db: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, 'counts', 'test')")
        .bind(id)
        .execute(db)
        .await
        .unwrap();
    id
}

/// Inserts events at `times` in one multi-row statement with dedup keys `{key_prefix}{i}`
/// (ON CONFLICT DO NOTHING skips keys the evidence already has). Returns rows inserted.
async fn insert_events(
    db: &PgPool,
    case: Uuid,
    evidence: Uuid,
    times: &[DateTime<Utc>],
    key_prefix: &str,
) -> u64 {
    let keys: Vec<String> = (0..times.len())
        .map(|i| format!("{key_prefix}{i}"))
        .collect();
    sqlx::query(
        "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, data_type, source, \
         parser, record_ref, dedup_key) \
         SELECT $1, $2, x.ts, 'Event Recorded', 'test', 'test', 'test', x.k, x.k \
         FROM unnest($3::timestamptz[], $4::text[]) AS x(ts, k) \
         ON CONFLICT (evidence_id, dedup_key) DO NOTHING",
    )
    .bind(case)
    .bind(evidence)
    .bind(times)
    .bind(&keys)
    .execute(db)
    .await
    .unwrap()
    .rows_affected()
}

/// The stored counts equal counting the events, at both grains, for every case.
async fn assert_counts_match_events(db: &PgPool, when: &str) {
    for (table, cell, grain) in [
        ("event_counts_minute", "minute", "1 minute"),
        ("event_counts_hour", "hour", "1 hour"),
    ] {
        let sql = format!(
            "WITH truth AS (SELECT case_id, date_bin('{grain}', ts, '2001-01-01 00:00:00+00') \
               AS cell, count(*) AS n FROM events GROUP BY 1, 2), \
             stored AS (SELECT case_id, {cell} AS cell, n FROM {table}) \
             SELECT (SELECT count(*) FROM (SELECT * FROM truth EXCEPT SELECT * FROM stored) a) \
                  + (SELECT count(*) FROM (SELECT * FROM stored EXCEPT SELECT * FROM truth) b)"
        );
        let wrong: i64 = sqlx::query_scalar(&sql).fetch_one(db).await.unwrap();
        assert_eq!(
            wrong, 0,
            "{when}: {table} differs from the events in {wrong} cells"
        );
    }
}

async fn event_times(db: &PgPool, case: Uuid) -> Vec<DateTime<Utc>> {
    sqlx::query_scalar("SELECT ts FROM events WHERE case_id = $1 ORDER BY ts")
        .bind(case)
        .fetch_all(db)
        .await
        .unwrap()
}

/// What the histogram must say: every event in `lo ..= hi` counted in the bucket that
/// holds it, the buckets being those the response lists.
fn assert_exact(
    h: &Value,
    times: &[DateTime<Utc>],
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    what: &str,
) {
    let buckets = h["buckets"].as_array().unwrap();
    let starts: Vec<DateTime<Utc>> = buckets
        .iter()
        .map(|b| t(b["start"].as_str().unwrap()))
        .collect();
    let end = t(h["to"].as_str().unwrap());
    let mut expected = vec![0i64; starts.len()];
    for &ts in times.iter().filter(|&&ts| ts >= lo && ts <= hi) {
        let i = starts.partition_point(|&s| s <= ts);
        assert!(
            i >= 1 && ts < end,
            "{what}: event at {ts} outside the buckets {:?}..{end}",
            starts.first()
        );
        expected[i - 1] += 1;
    }
    let got: Vec<i64> = buckets
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .collect();
    if got != expected {
        let diff: Vec<_> = starts
            .iter()
            .zip(got.iter().zip(&expected))
            .filter(|(_, (g, e))| g != e)
            .take(5)
            .map(|(s, (g, e))| format!("{s}: got {g}, want {e}"))
            .collect();
        panic!("{what}: buckets differ: {diff:?}");
    }
    assert_eq!(
        h["total"].as_i64().unwrap(),
        expected.iter().sum::<i64>(),
        "{what}"
    );
}

/// `rounds` random histograms of `case` through the route, each checked against counting
/// the events.
async fn check_random_histograms(
    app: &axum::Router,
    db: &PgPool,
    case: Uuid,
    rng: &mut Rng,
    rounds: usize,
    when: &str,
) {
    let times = event_times(db, case).await;
    let (Some(&min), Some(&max)) = (times.first(), times.last()) else {
        return;
    };
    let tok = token("u-analyst", &["analyst"], &[case.to_string()]);
    let span = max - min + TimeDelta::hours(2);
    for round in 0..rounds {
        let tz = *rng.pick(ZONES);
        let buckets = 1 + rng.below(1000);
        let mut a = instant(rng, min - TimeDelta::hours(1), span);
        let mut b = instant(rng, min - TimeDelta::hours(1), span);
        if rng.below(3) == 0 {
            // a short range: minute and second buckets
            b = a + TimeDelta::seconds(rng.below(4 * 3600) as i64);
        }
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        let (doc, lo, hi) = match rng.below(4) {
            0 => (json!({}), min, max),
            1 => (json!({"time": {"from": rfc3339(a)}}), a, max),
            2 => (json!({"time": {"to": rfc3339(b)}}), min, b),
            _ => (
                json!({"time": {"from": rfc3339(a), "to": rfc3339(b)}}),
                a,
                b,
            ),
        };
        if lo > hi {
            continue;
        }
        let uri = format!("/api/v1/cases/{case}/events/histogram?buckets={buckets}&tz={tz}");
        let (status, h) = call(app, "POST", &uri, Some(&tok), Some(doc.clone())).await;
        assert_eq!(status, 200, "{h}");
        let what = format!(
            "{when}, round {round}: {doc} in {buckets} buckets, {tz} ({})",
            h["interval"]
        );
        assert_exact(&h, &times, lo, hi, &what);
    }
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn histograms_from_stored_counts_equal_counting_every_event(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // the counts are written by the triggers only: skewing them takes the owner
    let owner = common::login_pool(opts.clone()).await;
    let db = common::pool(opts).await;
    let app = common::app(db.clone());
    let mut rng = Rng(0x15_2026_1202);
    let case = insert_case(&db).await;
    let other = insert_case(&db).await;
    let (e1, e2, e3) = (
        common::insert_evidence(&db, case).await,
        common::insert_evidence(&db, case).await,
        common::insert_evidence(&db, other).await,
    );
    let base = t("2024-03-01T00:00:00Z");

    // a multi-row INSERT ... SELECT over three days
    let times: Vec<_> = (0..2500)
        .map(|_| instant(&mut rng, base, TimeDelta::days(3)))
        .collect();
    assert_eq!(insert_events(&db, case, e1, &times, "a").await, 2500);
    // the same keys again plus new ones: ON CONFLICT DO NOTHING inserts only the new ones
    let more: Vec<_> = (0..3000)
        .map(|_| instant(&mut rng, base + TimeDelta::hours(30), TimeDelta::days(2)))
        .collect();
    assert_eq!(insert_events(&db, case, e1, &more, "a").await, 500);
    // another evidence, and another case in the same minutes (must never leak into ours)
    let second: Vec<_> = (0..1000)
        .map(|_| instant(&mut rng, base, TimeDelta::days(3)))
        .collect();
    insert_events(&db, case, e2, &second, "b").await;
    insert_events(&db, other, e3, &second, "c").await;
    // COPY fires the statement triggers too
    let mut conn = db.acquire().await.unwrap();
    let mut copy = conn
        .copy_in_raw(
            "COPY events (case_id, evidence_id, ts, timestamp_desc, data_type, source, parser, \
             record_ref, dedup_key) FROM STDIN",
        )
        .await
        .unwrap();
    let mut rows = String::new();
    for i in 0..300 {
        let ts = instant(&mut rng, base + TimeDelta::days(1), TimeDelta::hours(5));
        rows.push_str(&format!(
            "{case}\t{e2}\t{}\tEvent Recorded\ttest\ttest\ttest\tcopy{i}\tcopy{i}\n",
            rfc3339(ts)
        ));
    }
    copy.send(rows.as_bytes()).await.unwrap();
    assert_eq!(copy.finish().await.unwrap(), 300);
    drop(conn);
    // a few events in the 19th century: Amsterdam's local mean time (UTC+0:19:32) puts
    // bucket edges inside minutes, which must still count exactly
    let old: Vec<_> = (0..20)
        .map(|_| instant(&mut rng, t("1880-06-01T00:00:00Z"), TimeDelta::days(2)))
        .collect();
    insert_events(&db, case, e2, &old, "old").await;
    assert_counts_match_events(&db, "after inserts").await;
    check_random_histograms(&app, &db, case, &mut rng, 12, "after inserts").await;
    // only the 2024 part, where the 1880 events do not stretch the buckets to years
    for tz in ZONES {
        let (status, h) = call(
            &app,
            "POST",
            &format!("/api/v1/cases/{case}/events/histogram?buckets=100&tz={tz}"),
            Some(&token("u-analyst", &["analyst"], &[case.to_string()])),
            Some(json!({"time": {"from": "2024-02-29T00:00:00Z", "to": "2024-03-05T00:00:00Z"}})),
        )
        .await;
        assert_eq!(status, 200, "{h}");
        let times = event_times(&db, case).await;
        assert_exact(
            &h,
            &times,
            t("2024-02-29T00:00:00Z"),
            t("2024-03-05T00:00:00Z"),
            tz,
        );
    }
    delete_and_check(&app, (&db, &owner), (case, other), e2, &mut rng).await;
}

/// Events leave in every way; after each, the counts and random histograms are checked.
async fn delete_and_check(
    app: &axum::Router,
    (db, owner): (&PgPool, &PgPool),
    (case, other): (Uuid, Uuid),
    e2: Uuid,
    rng: &mut Rng,
) {
    // the old events leave; then single events and every seventh one
    sqlx::query("DELETE FROM events WHERE case_id = $1 AND ts < '2000-01-01'")
        .bind(case)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM events WHERE case_id = $1 AND id % 7 = 0")
        .bind(case)
        .execute(db)
        .await
        .unwrap();
    assert_counts_match_events(db, "after deleting events").await;
    check_random_histograms(app, db, case, rng, 12, "after deleting events").await;

    // events moved in time (and an update that moves nothing)
    sqlx::query(
        "UPDATE events SET ts = ts + interval '37 minutes 30 seconds' \
         WHERE case_id = $1 AND id % 5 = 0",
    )
    .bind(case)
    .execute(db)
    .await
    .unwrap();
    sqlx::query("UPDATE events SET message = 'seen' WHERE case_id = $1 AND id % 3 = 0")
        .bind(case)
        .execute(db)
        .await
        .unwrap();
    assert_counts_match_events(db, "after updates").await;
    check_random_histograms(app, db, case, rng, 8, "after updates").await;

    // an evidence file deleted: its events go by cascade
    sqlx::query("DELETE FROM evidence WHERE id = $1")
        .bind(e2)
        .execute(db)
        .await
        .unwrap();
    assert_counts_match_events(db, "after deleting an evidence").await;
    check_random_histograms(app, db, case, rng, 12, "after deleting an evidence").await;

    // a whole case deleted: its cells are gone, the other case's intact
    sqlx::query("DELETE FROM cases WHERE id = $1")
        .bind(other)
        .execute(db)
        .await
        .unwrap();
    assert_counts_match_events(db, "after deleting a case").await;
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM event_counts_minute WHERE case_id = $1) \
              + (SELECT count(*) FROM event_counts_hour WHERE case_id = $1)",
    )
    .bind(other)
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(left, 0, "cells of a deleted case remain");
    check_random_histograms(app, db, case, rng, 8, "after deleting a case").await;

    // the histogram really reads the stored counts: skew them and the answer moves
    let tok = token("u-analyst", &["analyst"], &[case.to_string()]);
    let uri = format!("/api/v1/cases/{case}/events/histogram");
    let (_, before) = call(app, "POST", &uri, Some(&tok), Some(json!({}))).await;
    sqlx::query("UPDATE event_counts_hour SET n = n + 1000 WHERE case_id = $1")
        .bind(case)
        .execute(owner)
        .await
        .unwrap();
    let (_, after) = call(app, "POST", &uri, Some(&tok), Some(json!({}))).await;
    assert!(
        after["total"].as_i64().unwrap() > before["total"].as_i64().unwrap(),
        "the whole-case histogram does not use the hour counts: {} then {}",
        before["total"],
        after["total"]
    );

    // TRUNCATE (the owner's) clears them
    sqlx::query("TRUNCATE events CASCADE")
        .execute(owner)
        .await
        .unwrap();
    assert_counts_match_events(db, "after TRUNCATE").await;
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn concurrent_inserts_into_the_same_minutes_neither_deadlock_nor_lose_counts(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await
        .unwrap();
    let case = insert_case(&db).await;
    let base = t("2024-03-01T10:00:00Z");
    let mut tasks = Vec::new();
    for worker in 0..6u64 {
        let db = db.clone();
        let ev = common::insert_evidence(&db, case).await;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(worker + 1);
            for batch in 0..15 {
                // 200 events over the same ten minutes (and two hours), in random order
                let mut times: Vec<_> = (0..200)
                    .map(|_| instant(&mut rng, base, TimeDelta::minutes(10)))
                    .collect();
                times.extend((0..20).map(|_| instant(&mut rng, base, TimeDelta::hours(2))));
                insert_events(&db, case, ev, &times, &format!("w{batch}-")).await;
                if batch % 5 == 4 {
                    // and deletes racing with the others' inserts
                    sqlx::query("DELETE FROM events WHERE evidence_id = $1 AND id % 4 = 0")
                        .bind(ev)
                        .execute(&db)
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_counts_match_events(&db, "after concurrent inserts").await;
    let (events, stored): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE case_id = $1), \
                (SELECT sum(n)::bigint FROM event_counts_minute WHERE case_id = $1)",
    )
    .bind(case)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(events, stored);
    assert!(events > 6 * 15 * 150, "{events}");
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_service_role_keeps_the_counts_through_the_trigger_but_cannot_write_them(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let case = insert_case(&db).await;
    let ev = common::insert_evidence(&db, case).await;
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE chrono_rw")
        .execute(&mut *tx)
        .await
        .unwrap();
    let inserted = sqlx::query(
        "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, data_type, source, \
         parser, record_ref, dedup_key) \
         SELECT $1, $2, '2024-03-01T10:00:00Z'::timestamptz + g * interval '7 seconds', \
         'Event Recorded', 'test', 'test', 'test', g::text, g::text \
         FROM generate_series(1, 1000) g",
    )
    .bind(case)
    .bind(ev)
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(inserted.rows_affected(), 1000);
    let stored: i64 =
        sqlx::query_scalar("SELECT sum(n)::bigint FROM event_counts_hour WHERE case_id = $1")
            .bind(case)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        stored, 1000,
        "the service role reads the counts its insert kept"
    );
    let forged =
        sqlx::query("INSERT INTO event_counts_minute (case_id, minute, n) VALUES ($1, now(), 5)")
            .bind(case)
            .execute(&mut *tx)
            .await
            .unwrap_err();
    assert!(
        forged.to_string().contains("permission denied"),
        "the service role wrote the counts: {forged}"
    );
}
