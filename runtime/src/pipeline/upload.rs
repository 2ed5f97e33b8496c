//! The `upload` step's database side: one parsed part (gzip JSON lines of
//! [`NormalizedEvent`]s and its [`PartSummary`]) into PostgreSQL.
//!
//! Rows go in batches through `COPY` (text format) into a session-local staging table;
//! each batch's devices and identities are upserted first (`ON CONFLICT DO NOTHING` on
//! their natural keys, committed on their own: they are shared by the case, and concurrent
//! evidence must not wait on each other's parts for them), then its events are inserted
//! linked to them with `INSERT .. SELECT .. ON CONFLICT (evidence_id, dedup_key) DO
//! NOTHING`, so re-running a part or a whole evidence inserts no duplicates. Decoding runs
//! on a blocking thread while the previous batch is in the database; memory is bounded by
//! two batches.
//!
//! **Counts and rows commit together.** All batches of a part and the evidence's new counts
//! are one transaction: a part is stored whole with its counts, or not at all (a crash, a
//! bad artifact, a database outage midway leave nothing of it). The evidence's
//! `events_count` grows by exactly the rows that transaction inserted, so it always equals
//! the evidence's rows in `events`; `bad_records` is summed from one row per part in
//! `evidence_parts` (a re-run replaces its part's row) over the parts of the current split,
//! and `records_seen = events_count + bad_records`. When every part of the split is
//! uploaded the evidence is `done`, with its distinct devices and identities counted.
//!
//! This module never reads S3; [`super::jobs`] hands it the streams.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::error::PipelineError;
use super::event::NormalizedEvent;
use super::steps::PartSummary;

/// Rows per `COPY` batch.
pub const BATCH_ROWS: usize = 20_000;
/// Errors kept on the evidence row (the first ones, in part order).
pub const EVIDENCE_MAX_ERRORS: i64 = 100;

/// The evidence a step works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The case.
    pub case_id: Uuid,
    /// The evidence.
    pub evidence_id: Uuid,
}

/// What one part's upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// Events read from the part's artifact.
    pub rows: u64,
    /// Events that were new (the rest were already in the database).
    pub inserted: u64,
    /// The evidence's state afterwards (`processing`, `done`, or `failed`).
    pub state: String,
}

const STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS chrono_upload_stage (
    ts timestamptz NOT NULL, timestamp_desc text NOT NULL, data_type text NOT NULL,
    source text NOT NULL, parser text NOT NULL, message text, device text,
    identity_kind text, identity_value text, event_code text, action text, outcome text,
    src_ip inet, dst_ip inet, attributes text NOT NULL, tags text[] NOT NULL,
    source_file text, record_ref text NOT NULL, dedup_key text NOT NULL, title text,
    category text)";

const COPY_STAGE: &str = "COPY chrono_upload_stage FROM STDIN";

const BATCH_TIMEOUT: &str = "SET LOCAL statement_timeout = '15min'";

const UPSERT_DEVICES: &str = "INSERT INTO devices (id, case_id, name)
    SELECT gen_random_uuid(), $1, d.name FROM unnest($2::text[]) AS d(name)
    ORDER BY d.name
    ON CONFLICT (case_id, name) DO NOTHING";

const UPSERT_IDENTITIES: &str = "INSERT INTO identities (id, case_id, kind, value)
    SELECT gen_random_uuid(), $1, i.kind, i.value
    FROM unnest($2::text[], $3::text[]) AS i(kind, value)
    ORDER BY i.kind, i.value
    ON CONFLICT (case_id, kind, value) DO NOTHING";

const INSERT_EVENTS: &str = "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc,
        data_type, source, parser, message, device_id, identity_id, event_code, action,
        outcome, src_ip, dst_ip, attributes, tags, source_file, record_ref, dedup_key, title,
        category)
    SELECT $1, $2, s.ts, s.timestamp_desc, s.data_type, s.source, s.parser, s.message,
        d.id, i.id, s.event_code, s.action, s.outcome, s.src_ip, s.dst_ip,
        s.attributes::jsonb, s.tags, s.source_file, s.record_ref, s.dedup_key, s.title,
        s.category
    FROM chrono_upload_stage s
    LEFT JOIN devices d ON d.case_id = $1 AND d.name = s.device
    LEFT JOIN identities i ON i.case_id = $1 AND i.kind = s.identity_kind
        AND i.value = s.identity_value
    ON CONFLICT (evidence_id, dedup_key) DO NOTHING";

/// Loads one part's events (a gzip JSON lines stream) into the database and updates the
/// evidence: its per-part counts from `summary`, its state, and — once every part named
/// in `all_parts` is uploaded — its device and identity counts.
///
/// The number of events in the stream must equal the summary's; otherwise nothing of the
/// evidence's counts changes and the error says to re-run `parse`.
pub async fn upload_part<R: Read + Send + 'static>(
    pool: &PgPool,
    target: Target,
    summary: &PartSummary,
    all_parts: &[String],
    events_gz: R,
) -> Result<UploadReport, PipelineError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(PipelineError::db("connecting"))?;
    ensure_evidence(&mut conn, target).await?;
    sqlx::query(STAGE)
        .execute(&mut *conn)
        .await
        .map_err(PipelineError::db("creating the staging table"))?;
    let mut tx = sqlx::Connection::begin(&mut *conn)
        .await
        .map_err(PipelineError::db("starting a transaction"))?;
    // A part may take longer than an API statement; only this transaction gets more time.
    sqlx::query(BATCH_TIMEOUT)
        .execute(&mut *tx)
        .await
        .map_err(PipelineError::db("setting the batch timeout"))?;
    let (rows, inserted) = load_events(&mut tx, pool, target, events_gz).await?;
    if rows != summary.tally.events {
        // rolled back with `tx`: nothing of the part is stored
        return Err(PipelineError::Artifact {
            key: summary.part.clone(),
            reason: format!(
                "the events file holds {rows} events but its summary says {}; re-run `parse` for this part",
                summary.tally.events
            ),
        });
    }
    let state = record_part(&mut tx, target, summary, all_parts, inserted).await?;
    tx.commit()
        .await
        .map_err(PipelineError::db("committing the part"))?;
    Ok(UploadReport {
        rows,
        inserted,
        state,
    })
}

/// Checks the SHA-256 of the file `split` read (`actual`, lowercase hex) against the
/// evidence's: a mismatch is [`PipelineError::Custody`]; an evidence without one (a
/// multipart upload whose uploader declared none) gets it now. Either way the time of the
/// check is kept.
pub async fn check_custody(
    pool: &PgPool,
    target: Target,
    actual: Option<&str>,
) -> Result<(), PipelineError> {
    let Some(actual) = actual else {
        // parts.json of a split from before checksums: nothing to check against
        return Ok(());
    };
    let recorded: Option<(Option<String>,)> = sqlx::query_as(
        "UPDATE evidence SET sha256 = coalesce(sha256, $3), sha256_verified_at = now()
         WHERE id = $1 AND case_id = $2 AND (sha256 IS NULL OR sha256 = $3)
         RETURNING sha256",
    )
    .bind(target.evidence_id)
    .bind(target.case_id)
    .bind(actual)
    .fetch_optional(pool)
    .await
    .map_err(PipelineError::db("checking the evidence's SHA-256"))?;
    if recorded.is_some() {
        return Ok(());
    }
    let expected: Option<(Option<String>,)> =
        sqlx::query_as("SELECT sha256 FROM evidence WHERE id = $1 AND case_id = $2")
            .bind(target.evidence_id)
            .bind(target.case_id)
            .fetch_optional(pool)
            .await
            .map_err(PipelineError::db("reading the evidence's SHA-256"))?;
    match expected {
        None => Err(PipelineError::EvidenceNotFound {
            evidence_id: target.evidence_id,
            case_id: target.case_id,
        }),
        Some((expected,)) => Err(PipelineError::Custody {
            expected: expected.unwrap_or_default(),
            actual: actual.to_owned(),
        }),
    }
}

async fn ensure_evidence(conn: &mut PgConnection, target: Target) -> Result<(), PipelineError> {
    let found: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM evidence WHERE id = $1 AND case_id = $2")
            .bind(target.evidence_id)
            .bind(target.case_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(PipelineError::db("looking up the evidence"))?;
    match found {
        Some(_) => Ok(()),
        None => Err(PipelineError::EvidenceNotFound {
            evidence_id: target.evidence_id,
            case_id: target.case_id,
        }),
    }
}

/// One batch, encoded for `COPY`, its row count, and the devices and identities it names
/// (as the staging table will hold them).
struct Batch {
    copy: Vec<u8>,
    rows: usize,
    devices: BTreeSet<String>,
    identities: BTreeSet<(String, String)>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            copy: Vec::with_capacity(BATCH_ROWS * 512),
            rows: 0,
            devices: BTreeSet::new(),
            identities: BTreeSet::new(),
        }
    }
}

/// Streams the events into the part's transaction `tx` (devices and identities through
/// `pool`, committed on their own); returns (rows read, rows inserted).
async fn load_events<R: Read + Send + 'static>(
    tx: &mut PgConnection,
    pool: &PgPool,
    target: Target,
    events_gz: R,
) -> Result<(u64, u64), PipelineError> {
    let (sender, mut rx) = mpsc::channel::<Result<Batch, PipelineError>>(2);
    let decoder = tokio::task::spawn_blocking(move || decode_batches(events_gz, &sender));
    let mut rows = 0u64;
    let mut inserted = 0u64;
    let mut failure = None;
    while let Some(batch) = rx.recv().await {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        rows += batch.rows as u64;
        let loaded = match upsert_entities(pool, target, &batch).await {
            Ok(()) => load_batch(tx, target, batch).await,
            Err(e) => Err(e),
        };
        match loaded {
            Ok(n) => inserted += n,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(rx);
    // The decoder ends when its channel closes; its panics are not ours to hide.
    let _ = decoder.await;
    match failure {
        Some(e) => Err(e),
        None => Ok((rows, inserted)),
    }
}

/// The batch's devices and identities, in a short transaction of their own.
async fn upsert_entities(
    pool: &PgPool,
    target: Target,
    batch: &Batch,
) -> Result<(), PipelineError> {
    if !batch.devices.is_empty() {
        let names: Vec<&str> = batch.devices.iter().map(String::as_str).collect();
        sqlx::query(UPSERT_DEVICES)
            .bind(target.case_id)
            .bind(&names)
            .execute(pool)
            .await
            .map_err(PipelineError::db("upserting devices"))?;
    }
    if !batch.identities.is_empty() {
        let (kinds, values): (Vec<&str>, Vec<&str>) = batch
            .identities
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .unzip();
        sqlx::query(UPSERT_IDENTITIES)
            .bind(target.case_id)
            .bind(&kinds)
            .bind(&values)
            .execute(pool)
            .await
            .map_err(PipelineError::db("upserting identities"))?;
    }
    Ok(())
}

async fn load_batch(
    tx: &mut PgConnection,
    target: Target,
    batch: Batch,
) -> Result<u64, PipelineError> {
    sqlx::query("TRUNCATE chrono_upload_stage")
        .execute(&mut *tx)
        .await
        .map_err(PipelineError::db("clearing the staging table"))?;
    let mut copy = tx
        .copy_in_raw(COPY_STAGE)
        .await
        .map_err(PipelineError::db("starting COPY"))?;
    copy.send(batch.copy)
        .await
        .map_err(PipelineError::db("sending rows"))?;
    copy.finish()
        .await
        .map_err(PipelineError::db("finishing COPY"))?;
    let done = sqlx::query(INSERT_EVENTS)
        .bind(target.case_id)
        .bind(target.evidence_id)
        .execute(&mut *tx)
        .await
        .map_err(PipelineError::db("inserting events"))?;
    Ok(done.rows_affected())
}

/// A text value as the staging table holds it after `COPY`'s text escaping (NUL becomes
/// U+FFFD, see [`escape`]): what a device or identity row must match.
fn staged(value: &str) -> String {
    crate::names::storable(value).into_owned()
}

/// Reads gzip JSON lines and sends `COPY` batches; stops when the receiver is gone.
fn decode_batches<R: Read>(events_gz: R, tx: &mpsc::Sender<Result<Batch, PipelineError>>) {
    let mut lines = BufReader::with_capacity(
        256 * 1024,
        flate2::read::MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, events_gz)),
    );
    let mut line = Vec::with_capacity(8 * 1024);
    let mut batch = Batch::new();
    let mut number = 0u64;
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(PipelineError::io("reading the events file")(e)));
                return;
            }
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event: NormalizedEvent = match serde_json::from_slice(&line) {
            Ok(e) => e,
            Err(e) => {
                let _ = tx.blocking_send(Err(PipelineError::Artifact {
                    key: format!("events line {number}"),
                    reason: format!("not a normalized event ({e}); re-run `parse` for this part"),
                }));
                return;
            }
        };
        encode_row(&event, &mut batch.copy);
        batch.rows += 1;
        if let Some(device) = &event.device {
            batch.devices.insert(staged(device));
        }
        if let Some(identity) = &event.identity {
            batch
                .identities
                .insert((staged(identity.kind.as_str()), staged(&identity.value)));
        }
        if batch.rows >= BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Batch::new());
            if tx.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if batch.rows > 0 {
        let _ = tx.blocking_send(Ok(batch));
    }
}

/// Appends one event as a row of `COPY .. FROM STDIN` (text format) for the staging table.
pub fn encode_row(e: &NormalizedEvent, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = write!(out, "{}", e.ts.format("%Y-%m-%d %H:%M:%S%.6f+00"));
    field(out, Some(&e.timestamp_desc));
    field(out, Some(&e.data_type));
    field(out, Some(&e.source));
    field(out, Some(&e.parser));
    field(out, Some(&e.message));
    field(out, e.device.as_deref());
    field(out, e.identity.as_ref().map(|i| i.kind.as_str()));
    field(out, e.identity.as_ref().map(|i| i.value.as_str()));
    field(out, e.event_code.as_deref());
    field(out, e.action.map(|a| a.as_str()));
    field(out, e.outcome.map(|o| o.as_str()));
    field(out, e.src_ip.map(|ip| ip.to_string()).as_deref());
    field(out, e.dst_ip.map(|ip| ip.to_string()).as_deref());
    let attributes = e.attributes.as_str();
    if attributes.contains("\\u0000") {
        // PostgreSQL's jsonb refuses the NUL character; keep the record, mark the spot.
        field(out, Some(&attributes.replace("\\u0000", "\\ufffd")));
    } else {
        field(out, Some(attributes));
    }
    out.push(b'\t');
    let mut array = String::from("{");
    for (i, tag) in e.tags.iter().enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push('"');
        for c in tag.chars() {
            if c == '"' || c == '\\' {
                array.push('\\');
            }
            array.push(c);
        }
        array.push('"');
    }
    array.push('}');
    escape(out, &array);
    field(out, Some(&e.provenance.member));
    field(out, Some(&e.provenance.record.to_string()));
    field(out, Some(&e.dedup_key));
    field(out, e.title.as_deref());
    field(out, e.category.map(|c| c.as_str()));
    out.push(b'\n');
}

fn field(out: &mut Vec<u8>, value: Option<&str>) {
    out.push(b'\t');
    match value {
        Some(v) => escape(out, v),
        None => out.extend_from_slice(b"\\N"),
    }
}

/// `COPY` text escaping; NUL (which PostgreSQL text cannot hold) becomes U+FFFD.
fn escape(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => "\u{fffd}".as_bytes(),
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(replacement);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Records the part's counts and updates the evidence's (in the part's transaction);
/// returns the evidence state.
async fn record_part(
    tx: &mut PgConnection,
    target: Target,
    summary: &PartSummary,
    all_parts: &[String],
    inserted: u64,
) -> Result<String, PipelineError> {
    let errors: Vec<serde_json::Value> = summary
        .tally
        .errors
        .iter()
        .map(|bad| {
            json!({"record": crate::names::storable(&bad.location.to_string()),
                   "message": crate::names::storable(&bad.reason)})
        })
        .collect();
    // Serializes concurrent parts of the same evidence.
    sqlx::query("SELECT 1 FROM evidence WHERE id = $1 FOR UPDATE")
        .bind(target.evidence_id)
        .execute(&mut *tx)
        .await
        .map_err(PipelineError::db("locking the evidence"))?;
    sqlx::query(
        "INSERT INTO evidence_parts (evidence_id, part, records_seen, events, bad_records, errors)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (evidence_id, part) DO UPDATE SET records_seen = excluded.records_seen,
             events = excluded.events, bad_records = excluded.bad_records,
             errors = excluded.errors, uploaded_at = now()",
    )
    .bind(target.evidence_id)
    .bind(crate::names::storable(&summary.part).as_ref())
    .bind(to_i64(summary.tally.records_seen))
    .bind(to_i64(summary.tally.events))
    .bind(to_i64(summary.tally.bad_records))
    .bind(serde_json::Value::Array(errors))
    .execute(&mut *tx)
    .await
    .map_err(PipelineError::db("recording the part"))?;
    let (state,): (String,) = sqlx::query_as(
        "WITH p AS (SELECT * FROM evidence_parts WHERE evidence_id = $1 AND part = ANY($2)),
              complete AS (SELECT count(*) >= cardinality($2::text[]) AS yes FROM p),
              bad AS (SELECT coalesce(sum(bad_records), 0) AS n FROM p),
              errs AS (SELECT coalesce(jsonb_agg(x ORDER BY part, n), '[]'::jsonb) AS list FROM (
                  SELECT p.part, t.n, t.x FROM p, jsonb_array_elements(p.errors)
                      WITH ORDINALITY AS t(x, n)
                  ORDER BY p.part, t.n LIMIT $3) e)
         UPDATE evidence SET
             events_count = events_count + $4,
             bad_records = (SELECT n FROM bad),
             records_seen = events_count + $4 + (SELECT n FROM bad),
             errors = (SELECT list FROM errs),
             devices_count = CASE WHEN (SELECT yes FROM complete) THEN
                 (SELECT count(DISTINCT device_id) FROM events WHERE evidence_id = $1)
                 ELSE devices_count END,
             identities_count = CASE WHEN (SELECT yes FROM complete) THEN
                 (SELECT count(DISTINCT identity_id) FROM events WHERE evidence_id = $1)
                 ELSE identities_count END,
             state = CASE WHEN (SELECT yes FROM complete) THEN 'done'
                 WHEN state = 'failed' THEN 'failed' ELSE 'processing' END,
             updated_at = now()
         WHERE id = $1
         RETURNING state",
    )
    .bind(target.evidence_id)
    .bind(all_parts)
    .bind(EVIDENCE_MAX_ERRORS)
    .bind(to_i64(inserted))
    .fetch_one(&mut *tx)
    .await
    .map_err(PipelineError::db("updating the evidence counts"))?;
    if state == "done" {
        close_executions(tx, target.evidence_id, None).await?;
        audit_outcome(tx, target, "evidence_processed", None).await?;
    }
    Ok(state)
}

/// Appends the pipeline's outcome for the evidence to the audit log (actor `pipeline`), in
/// the transaction that records it: the counts and the file's SHA-256 as they stand.
async fn audit_outcome(
    tx: &mut PgConnection,
    target: Target,
    action: &str,
    reason: Option<&str>,
) -> Result<(), PipelineError> {
    sqlx::query(
        "SELECT chrono_audit('pipeline', $2, $3, jsonb_build_object(
             'evidence_id', e.id, 'events_count', e.events_count, 'bad_records', e.bad_records,
             'sha256', e.sha256, 'job_id', e.job_id, 'reason', $4::text))
         FROM evidence e WHERE e.id = $1",
    )
    .bind(target.evidence_id)
    .bind(target.case_id)
    .bind(action)
    .bind(reason)
    .execute(&mut *tx)
    .await
    .map_err(PipelineError::db("appending to the audit log"))?;
    Ok(())
}

/// Closes the evidence's open Step Functions job (its execution ends with this step; the
/// local worker closes its own jobs).
async fn close_executions(
    conn: &mut PgConnection,
    evidence_id: Uuid,
    failure: Option<&str>,
) -> Result<(), PipelineError> {
    sqlx::query(
        "UPDATE pipeline_jobs SET state = CASE WHEN $2::text IS NULL THEN 'done' ELSE 'failed' END,
             error = coalesce($2, error), finished_at = now()
         WHERE evidence_id = $1 AND runner = 'step_functions' AND state IN ('queued', 'running')",
    )
    .bind(evidence_id)
    .bind(failure)
    .execute(&mut *conn)
    .await
    .map_err(PipelineError::db("closing the pipeline job"))?;
    Ok(())
}

/// Marks the evidence failed with `reason` as its first error (an unknown or unreadable
/// file, a part that could not be processed). Events already loaded stay. Idempotent: run
/// again with the same location and reason, the error stays listed once.
pub async fn mark_failed(
    pool: &PgPool,
    target: Target,
    location: &str,
    reason: &str,
) -> Result<(), PipelineError> {
    set_failed(pool, target, location, reason, true)
        .await
        .map(drop)
}

/// The state machine's failure path: marks the evidence failed with `reason` unless it is
/// failed already (the first failure is the root cause: a failing part reports itself
/// before the map fails), and returns the reason it shows.
pub async fn mark_failed_first(
    pool: &PgPool,
    target: Target,
    location: &str,
    reason: &str,
) -> Result<String, PipelineError> {
    if set_failed(pool, target, location, reason, false).await? {
        return Ok(reason.to_owned());
    }
    let first: Option<String> = sqlx::query_scalar(
        "SELECT errors -> 0 ->> 'message' FROM evidence WHERE id = $1 AND case_id = $2",
    )
    .bind(target.evidence_id)
    .bind(target.case_id)
    .fetch_one(pool)
    .await
    .map_err(PipelineError::db("reading the evidence's reason"))?;
    Ok(first.unwrap_or_default())
}

/// Sets the evidence `failed` with `reason` first in its errors; with `again` false only
/// when it is not failed yet. Whether a row changed; an unknown evidence is an error.
async fn set_failed(
    pool: &PgPool,
    target: Target,
    location: &str,
    reason: &str,
    again: bool,
) -> Result<bool, PipelineError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(PipelineError::db("starting a transaction"))?;
    let location = crate::names::storable(location);
    let reason = crate::names::storable(reason);
    let done = sqlx::query(
        "UPDATE evidence SET state = 'failed', updated_at = now(),
             errors = jsonb_build_array(f.error)
                 || (SELECT coalesce(jsonb_agg(x ORDER BY i), '[]'::jsonb) FROM (
                     SELECT x, i FROM jsonb_array_elements(errors) WITH ORDINALITY AS t(x, i)
                     WHERE x <> f.error ORDER BY i LIMIT $5 - 1) e)
         FROM (SELECT jsonb_build_object('record', $3::text, 'message', $4::text) AS error) f
         WHERE id = $1 AND case_id = $2 AND ($6 OR state <> 'failed')",
    )
    .bind(target.evidence_id)
    .bind(target.case_id)
    .bind(location.as_ref())
    .bind(reason.as_ref())
    .bind(EVIDENCE_MAX_ERRORS)
    .bind(again)
    .execute(&mut *tx)
    .await
    .map_err(PipelineError::db("marking the evidence failed"))?;
    if done.rows_affected() > 0 {
        close_executions(&mut tx, target.evidence_id, Some(&reason)).await?;
        audit_outcome(&mut tx, target, "evidence_failed", Some(&reason)).await?;
        tx.commit()
            .await
            .map_err(PipelineError::db("committing the failure"))?;
        return Ok(true);
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM evidence WHERE id = $1 AND case_id = $2)")
            .bind(target.evidence_id)
            .bind(target.case_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(PipelineError::db("finding the evidence"))?;
    if exists {
        Ok(false)
    } else {
        Err(PipelineError::EvidenceNotFound {
            evidence_id: target.evidence_id,
            case_id: target.case_id,
        })
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escaping_keeps_tabs_newlines_backslashes_and_drops_nul() {
        let mut out = Vec::new();
        escape(&mut out, "a\tb\nc\\d\re\0f");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\tb\\nc\\\\d\\re\u{fffd}f"
        );
    }
}
