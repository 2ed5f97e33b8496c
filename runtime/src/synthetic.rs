//! Synthetic events for benchmarks: the search/histogram bench (`make bench`) and
//! `chrono-api seed` (run by `chronoctl local seed`, for the web app's front-end
//! benchmarks) load the same generated timeline into a case.
//!
//! The timeline: one evidence record (`synthetic.evtx`, state `done`) holding `events`
//! Windows-like events, one every `step` from `start`; 50 devices (`host000`..) and 500
//! identities (`user000`..) per case; a realistic mix of actions (1 in 10 a failure),
//! a rare word (`mimikatz`, 1 in 1000 messages) and a rare tag (`suspicious`, 1 in 997).
//! Rows are generated server-side (`generate_series`) in batches, so loading a million
//! events takes seconds, not a million round trips. Nothing here is used to serve users.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// Devices per case.
pub const DEVICES: i64 = 50;
/// Identities per case.
pub const IDENTITIES: i64 = 500;
/// Events per `INSERT`.
pub const BATCH: i64 = 100_000;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// How many events.
    pub events: i64,
    /// Time of the first event.
    pub start: DateTime<Utc>,
    /// Time between events in milliseconds (2,592 ms puts a million events in 30 days).
    pub step_ms: i64,
}

impl Spec {
    /// `events` events spread over 30 days from `start`.
    pub fn over_30_days(events: i64, start: DateTime<Utc>) -> Self {
        Spec {
            events,
            start,
            step_ms: (30 * 86_400_000 / events.max(1)).max(1),
        }
    }
}

const INSERT_EVENTS: &str = "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, \
    data_type, source, parser, message, device_id, identity_id, event_code, action, outcome, \
    src_ip, attributes, tags, record_ref, dedup_key) \
    SELECT $1, $2, $3::timestamptz + g * ($4::bigint * interval '1 millisecond'), \
      'Event Recorded', 'windows:evtx:record', 'Security', 'winevtx', \
      CASE WHEN g % 1000 = 7 THEN 'Process created: C:\\Temp\\mimikatz.exe by user' || (g % 500) \
           ELSE 'An account event ' || (g % 9973) || ' for user' || (g % 500) || ' on host' || (g % 50) END, \
      d.ids[1 + g % 50], i.ids[1 + (g * 7) % 500], \
      (ARRAY['4624','4625','4634','4672','4688','4720','7045'])[1 + g % 7], \
      (ARRAY['logon','logon','logoff','special_privileges','process_start','account_created','service_installed'])[1 + g % 7], \
      CASE WHEN g % 10 = 1 THEN 'failure' ELSE 'success' END, \
      ('10.' || (g % 256) || '.' || ((g / 256) % 256) || '.1')::inet, \
      jsonb_build_object('LogonType', (g % 11)::text, 'seq', g), \
      CASE WHEN g % 997 = 0 THEN ARRAY['suspicious'] ELSE '{}'::text[] END, \
      'record ' || g, 'synthetic-' || g \
    FROM generate_series($5::bigint, $6::bigint) g, \
      (SELECT array_agg(id ORDER BY name) ids FROM devices \
       WHERE case_id = $1 AND name LIKE 'host%') d, \
      (SELECT array_agg(id ORDER BY value) ids FROM identities \
       WHERE case_id = $1 AND value LIKE 'user%') i";

/// Loads the synthetic timeline of `spec` into the existing case `case`: its devices and
/// identities (kept if they exist), a new evidence record and the events. `progress` is
/// called with the number of events inserted so far after every batch. Returns the
/// evidence id. The caller should `ANALYZE events` afterwards (see [`analyze`]).
pub async fn load(
    db: &PgPool,
    case: Uuid,
    spec: Spec,
    mut progress: impl FnMut(i64),
) -> Result<Uuid, sqlx::Error> {
    let evidence = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO evidence (id, case_id, file_name, format, source_key, created_by, state, \
         records_seen, events_count) \
         VALUES ($1, $2, 'synthetic.evtx', 'evtx', 'synthetic/' || $1::text, 'synthetic', \
         'done', $3, $3)",
    )
    .bind(evidence)
    .bind(case)
    .bind(spec.events)
    .execute(db)
    .await?;
    sqlx::query(
        "INSERT INTO devices (id, case_id, name) \
         SELECT gen_random_uuid(), $1, 'host' || lpad(g::text, 3, '0') \
         FROM generate_series(0, $2 - 1) g ON CONFLICT (case_id, name) DO NOTHING",
    )
    .bind(case)
    .bind(DEVICES)
    .execute(db)
    .await?;
    sqlx::query(
        "INSERT INTO identities (id, case_id, kind, value) \
         SELECT gen_random_uuid(), $1, 'windows_account', 'user' || lpad(g::text, 3, '0') \
         FROM generate_series(0, $2 - 1) g ON CONFLICT (case_id, kind, value) DO NOTHING",
    )
    .bind(case)
    .bind(IDENTITIES)
    .execute(db)
    .await?;
    let mut start = 0;
    while start < spec.events {
        let end = (start + BATCH).min(spec.events) - 1;
        sqlx::query(INSERT_EVENTS)
            .bind(case)
            .bind(evidence)
            .bind(spec.start)
            .bind(spec.step_ms)
            .bind(start)
            .bind(end)
            .execute(db)
            .await?;
        start = end + 1;
        progress(start);
    }
    Ok(evidence)
}

/// Refreshes the planner's statistics (and the visibility map, for index-only scans)
/// after a load; needs the tables' owner: runtime sessions act as
/// [`crate::db::RUNTIME_ROLE`], so this one connection goes back to its login (the owner)
/// and is closed afterwards, never returned to the pool.
pub async fn analyze(db: &PgPool) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let mut conn = db.acquire().await?.detach();
    sqlx::query("SET ROLE NONE").execute(&mut conn).await?;
    sqlx::query("VACUUM (ANALYZE) events, event_counts_minute, event_counts_hour")
        .execute(&mut conn)
        .await?;
    sqlx::query("ANALYZE devices, identities, evidence")
        .execute(&mut conn)
        .await?;
    conn.close().await
}
