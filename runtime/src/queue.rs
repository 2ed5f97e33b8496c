//! Durable processing jobs (table `pipeline_jobs`): a processing request is a row before
//! it is acknowledged, and every row has a way forward.
//!
//! * **Locally** a worker ([`crate::pipeline::worker`]) claims queued jobs with `FOR
//!   UPDATE SKIP LOCKED` ([`claim`]), holds a lease it renews while it works
//!   ([`renew`]), and closes the job ([`finish`]). A worker that dies stops renewing; the
//!   job is claimed again when the lease lapses (the steps are idempotent), and after
//!   [`MAX_ATTEMPTS`] claims it fails with the reason ([`reap`]). A retryable failure (the
//!   emulator or the database gone for a moment) puts the job back with a delay.
//! * **In AWS** the job names its Step Functions execution (named after the job, so a
//!   repeated start is idempotent); the API asks Step Functions about it when the evidence
//!   looks stuck ([`crate::launcher`]) and fails the evidence when the execution is gone,
//!   failed, timed out or aborted.
//!
//! **Fair order.** Jobs are taken by `rank_at`: the request time plus a handicap that
//! grows with the file's size ([`handicap`], at most [`MAX_HANDICAP`]), so a small file
//! requested just after a big one goes first while a big one that waited long enough goes
//! before later small ones. Besides its regular slots a worker keeps one **express** slot
//! for files up to [`EXPRESS_MAX_BYTES`], so small evidence never waits behind big
//! evidence that fills every regular slot.
//!
//! Nothing here touches S3; the decisions (handicap, retry delay, what a lapsed lease
//! means) are pure functions tested by table.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Claims of one job before it fails for good.
pub const MAX_ATTEMPTS: i32 = 3;
/// Files up to this size may use a worker's express slot.
pub const EXPRESS_MAX_BYTES: i64 = 16 * 1024 * 1024;
/// The largest handicap of a big file in the queue's order.
pub const MAX_HANDICAP: Duration = Duration::from_secs(10 * 60);
/// The handicap's rate: one second per this many bytes.
pub const HANDICAP_BYTES_PER_SECOND: i64 = 8 * 1024 * 1024;

/// Who runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// The local worker (leases).
    Local,
    /// A Step Functions execution.
    StepFunctions,
}

impl Runner {
    /// The `runner` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Local => "local",
            Runner::StepFunctions => "step_functions",
        }
    }
}

/// A job as the worker sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Job {
    /// The job (also the Step Functions execution name in AWS).
    pub id: Uuid,
    /// The evidence it processes.
    pub evidence_id: Uuid,
    /// Its case.
    pub case_id: Uuid,
    /// The evidence file in the sources bucket.
    pub source_key: String,
    /// The file's size in bytes (0 when unknown).
    pub size_bytes: i64,
    /// Claims so far, this one included.
    pub attempts: i32,
    /// The SHA-256 the file must have (lowercase hex), when known.
    pub sha256: Option<String>,
    /// S3's composite checksum of a multipart upload, when there is one.
    pub sha256_composite: Option<String>,
    /// The multipart upload's part size, when there is one.
    pub part_size: Option<i64>,
}

/// What the request to process an evidence records.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The evidence.
    pub evidence_id: Uuid,
    /// Its case.
    pub case_id: Uuid,
    /// Its file.
    pub source_key: &'a str,
    /// Who runs it.
    pub runner: Runner,
    /// The file's size in bytes (0 when unknown).
    pub size_bytes: i64,
    /// Who asked.
    pub requested_by: &'a str,
}

/// How much later than its request time a job of `size_bytes` ranks: one second per
/// [`HANDICAP_BYTES_PER_SECOND`], at most [`MAX_HANDICAP`].
pub fn handicap(size_bytes: i64) -> Duration {
    let secs = size_bytes.max(0) / HANDICAP_BYTES_PER_SECOND;
    Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)).min(MAX_HANDICAP)
}

/// The delay before a job that failed with a retryable error after `attempts` claims is
/// taken again: 2 s, 4 s, 8 s, ... at most a minute.
pub fn retry_delay(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 6)).unwrap_or(1);
    Duration::from_secs(2u64.pow(exp)).min(Duration::from_secs(60))
}

/// Records a job in the caller's transaction (the one that marks the evidence
/// `processing`); returns its id. Fails on the unique index when the evidence already has
/// an open job.
pub async fn enqueue(conn: &mut PgConnection, job: &NewJob<'_>) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let handicap_ms = i64::try_from(handicap(job.size_bytes).as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO pipeline_jobs (id, evidence_id, case_id, source_key, runner, size_bytes,
             rank_at, requested_by)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7::float8 / 1000), $8)",
    )
    .bind(id)
    .bind(job.evidence_id)
    .bind(job.case_id)
    .bind(job.source_key)
    .bind(job.runner.as_str())
    .bind(job.size_bytes.max(0))
    .bind(handicap_ms)
    .bind(job.requested_by)
    .execute(&mut *conn)
    .await?;
    // wakes an idle local worker at once (it polls anyway)
    sqlx::query("SELECT pg_notify('chrono_jobs', $1)")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// Claims the next local job in fair order for `owner` with a lease of `lease`: a queued
/// job whose time has come, or a running one whose lease lapsed (its worker died). With
/// `express_only`, only files up to [`EXPRESS_MAX_BYTES`]. `None` when there is nothing
/// to do.
pub async fn claim(
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    express_only: bool,
) -> Result<Option<Job>, sqlx::Error> {
    let max_size = if express_only {
        EXPRESS_MAX_BYTES
    } else {
        i64::MAX
    };
    sqlx::query_as(
        "WITH next AS (
             SELECT j.id FROM pipeline_jobs j
             JOIN evidence e ON e.id = j.evidence_id AND e.state = 'processing'
                 AND e.job_id = j.id
             WHERE j.runner = 'local'
               AND (j.state = 'queued' AND (j.lease_expires_at IS NULL OR j.lease_expires_at <= now())
                    OR j.state = 'running' AND j.lease_expires_at <= now())
               AND j.attempts < j.max_attempts
               AND j.size_bytes <= $3
             ORDER BY j.rank_at, j.id
             LIMIT 1
             FOR UPDATE OF j SKIP LOCKED)
         UPDATE pipeline_jobs j SET state = 'running', attempts = j.attempts + 1,
             lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::float8 / 1000),
             started_at = coalesce(j.started_at, now())
         FROM next, evidence e
         WHERE j.id = next.id AND e.id = j.evidence_id
         RETURNING j.id, j.evidence_id, j.case_id, j.source_key, j.size_bytes, j.attempts,
             e.sha256, e.sha256_composite, e.part_size",
    )
    .bind(owner)
    .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
    .bind(max_size)
    .fetch_optional(pool)
    .await
}

/// Extends `owner`'s lease of job `id`; `false` when the lease is no longer `owner`'s (it
/// lapsed and another worker took the job, or the job was closed).
pub async fn renew(
    pool: &PgPool,
    id: Uuid,
    owner: &str,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE pipeline_jobs SET lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
         WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How a claimed job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The evidence was processed (its state says `done`).
    Done,
    /// It failed for good; the evidence was marked `failed` with this reason.
    Failed(String),
    /// It failed in a way a later attempt may not (a dependency was away): queue it again
    /// after `delay`, unless this was the last attempt, then fail the evidence with the
    /// reason.
    Retry {
        /// Why it failed.
        reason: String,
        /// When to try again.
        delay: Duration,
    },
}

/// Closes (or requeues) `owner`'s job `id`; `false` when the job was no longer `owner`'s.
/// A retry past the last attempt fails the job and its evidence with the reason.
pub async fn finish(
    pool: &PgPool,
    id: Uuid,
    owner: &str,
    outcome: &Outcome,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let job: Option<(i32, i32, Uuid, Uuid)> = sqlx::query_as(
        "SELECT attempts, max_attempts, evidence_id, case_id FROM pipeline_jobs
         WHERE id = $1 AND lease_owner = $2 AND state = 'running' FOR UPDATE",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((attempts, max_attempts, evidence_id, case_id)) = job else {
        return Ok(false);
    };
    match outcome {
        Outcome::Done => {
            close(&mut tx, id, "done", None).await?;
        }
        Outcome::Failed(reason) => {
            close(&mut tx, id, "failed", Some(reason)).await?;
        }
        Outcome::Retry { reason, delay } if attempts < max_attempts => {
            sqlx::query(
                "UPDATE pipeline_jobs SET state = 'queued', lease_owner = NULL, error = $2,
                     lease_expires_at = now() + make_interval(secs => $3::float8 / 1000)
                 WHERE id = $1",
            )
            .bind(id)
            .bind(reason)
            .bind(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        Outcome::Retry { reason, .. } => {
            let reason = format!("gave up after {attempts} attempts; the last one: {reason}");
            close(&mut tx, id, "failed", Some(&reason)).await?;
            fail_evidence(&mut tx, evidence_id, case_id, id, &reason).await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

async fn close(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pipeline_jobs SET state = $2, error = coalesce($3, error), lease_owner = NULL,
             lease_expires_at = NULL, finished_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks evidence `failed` with `reason` as its first error when it is still processing
/// under job `job` (a later request may have started another job meanwhile).
pub async fn fail_evidence(
    conn: &mut PgConnection,
    evidence_id: Uuid,
    case_id: Uuid,
    job: Uuid,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE evidence SET state = 'failed', updated_at = now(),
             errors = jsonb_build_array(jsonb_build_object('record', 'pipeline', 'message', $4::text))
                 || (SELECT coalesce(jsonb_agg(x ORDER BY i), '[]'::jsonb) FROM (
                     SELECT x, i FROM jsonb_array_elements(errors) WITH ORDINALITY AS t(x, i)
                     ORDER BY i LIMIT 99) e)
         WHERE id = $1 AND case_id = $2 AND state = 'processing' AND job_id = $3",
    )
    .bind(evidence_id)
    .bind(case_id)
    .bind(job)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What [`reap`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Local jobs whose lease lapsed on their last attempt: failed with their evidence.
    pub abandoned: u64,
    /// Evidence `processing` with no open job (lost before this version): failed.
    pub orphaned: u64,
    /// Open jobs whose evidence is no longer processing under them: closed.
    pub stale: u64,
}

/// The reason given to evidence whose local job ran out of attempts.
pub fn abandoned_reason(attempts: i32, last_error: Option<&str>) -> String {
    match last_error {
        Some(e) => format!(
            "the pipeline worker stopped or failed {attempts} times while processing this \
             evidence (last error: {e}); process it again"
        ),
        None => format!(
            "the pipeline worker stopped {attempts} times while processing this evidence \
             (it was killed or lost its database); process it again"
        ),
    }
}

/// Gives every stuck state its way forward (locally; run by the worker between claims):
/// local jobs out of attempts whose lease lapsed fail with their evidence; evidence
/// `processing` with no open job fails; open jobs whose evidence moved on are closed.
pub async fn reap(pool: &PgPool) -> Result<Reaped, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let abandoned: Vec<(Uuid, Uuid, Uuid, i32, Option<String>)> = sqlx::query_as(
        "SELECT id, evidence_id, case_id, attempts, error FROM pipeline_jobs
         WHERE runner = 'local' AND state IN ('queued', 'running') AND attempts >= max_attempts
           AND (lease_expires_at IS NULL OR lease_expires_at <= now())
         FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, evidence, case, attempts, error) in &abandoned {
        let reason = abandoned_reason(*attempts, error.as_deref());
        close(&mut tx, *id, "failed", Some(&reason)).await?;
        fail_evidence(&mut tx, *evidence, *case, *id, &reason).await?;
    }
    let stale = sqlx::query(
        "UPDATE pipeline_jobs j SET state = 'done', lease_owner = NULL, lease_expires_at = NULL,
             finished_at = now(), error = coalesce(j.error, 'closed: the evidence moved on')
         FROM evidence e
         WHERE e.id = j.evidence_id AND j.runner = 'local' AND j.state IN ('queued', 'running')
           AND (e.state <> 'processing' OR e.job_id IS DISTINCT FROM j.id)
           AND (j.lease_expires_at IS NULL OR j.lease_expires_at <= now())",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let orphaned = sqlx::query(
        "UPDATE evidence e SET state = 'failed', updated_at = now(),
             errors = jsonb_build_array(jsonb_build_object('record', 'pipeline', 'message',
                 'processing was interrupted and no job is left to finish it; process the evidence again'))
                 || e.errors
         WHERE e.state = 'processing' AND e.updated_at < now() - interval '1 minute'
           AND NOT EXISTS (SELECT 1 FROM pipeline_jobs j
                           WHERE j.evidence_id = e.id AND j.state IN ('queued', 'running'))",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Reaped {
        abandoned: abandoned.len() as u64,
        orphaned,
        stale,
    })
}

/// An open Step Functions job of an evidence, as the API checks it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpenExecution {
    /// The job (the execution's name).
    pub id: Uuid,
    /// The evidence.
    pub evidence_id: Uuid,
    /// Its case.
    pub case_id: Uuid,
    /// The execution, once started.
    pub execution_arn: Option<String>,
    /// When the job was recorded.
    pub created_at: DateTime<Utc>,
}

/// The open Step Functions job of evidence `id` that was not checked in the last
/// `interval` (and marks it checked now, so concurrent readers do not all ask).
pub async fn due_for_check(
    pool: &PgPool,
    evidence_id: Uuid,
    interval: Duration,
) -> Result<Option<OpenExecution>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE pipeline_jobs SET checked_at = now()
         WHERE id = (SELECT id FROM pipeline_jobs
                     WHERE evidence_id = $1 AND runner = 'step_functions'
                       AND state IN ('queued', 'running')
                       AND (checked_at IS NULL
                            OR checked_at < now() - make_interval(secs => $2::float8 / 1000))
                     FOR UPDATE SKIP LOCKED)
         RETURNING id, evidence_id, case_id, execution_arn, created_at",
    )
    .bind(evidence_id)
    .bind(i64::try_from(interval.as_millis()).unwrap_or(i64::MAX))
    .fetch_optional(pool)
    .await
}

/// Records the execution a Step Functions job started.
pub async fn set_execution(pool: &PgPool, id: Uuid, arn: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE pipeline_jobs SET execution_arn = $2, state = 'running',
             started_at = coalesce(started_at, now())
         WHERE id = $1 AND state IN ('queued', 'running')",
    )
    .bind(id)
    .bind(arn)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE evidence SET execution_id = $2 WHERE job_id = $1")
        .bind(id)
        .bind(arn)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Closes a Step Functions job whose execution ended: `done` (the evidence says how it
/// went), or `failed` with `reason`, failing the evidence when it is still processing
/// under this job. Returns whether the evidence was failed here.
pub async fn close_execution(
    pool: &PgPool,
    job: &OpenExecution,
    failure: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let failed = match failure {
        None => {
            close(&mut tx, job.id, "done", None).await?;
            false
        }
        Some(reason) => {
            close(&mut tx, job.id, "failed", Some(reason)).await?;
            fail_evidence(&mut tx, job.evidence_id, job.case_id, job.id, reason).await?
        }
    };
    tx.commit().await?;
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_files_rank_later_within_a_bound() {
        const MIB: i64 = 1024 * 1024;
        for (size, secs) in [
            (0, 0),
            (-5, 0),
            (1024, 0),
            (8 * MIB, 1),
            (1024 * MIB, 128),
            (100 * 1024 * MIB, 600),
            (i64::MAX, 600),
        ] {
            assert_eq!(handicap(size), Duration::from_secs(secs), "{size}");
        }
    }

    #[test]
    fn retries_back_off_up_to_a_minute() {
        let delays: Vec<u64> = (0..9).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [2, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn an_abandoned_job_says_what_happened() {
        assert!(abandoned_reason(3, None).contains("stopped 3 times"));
        let with_error = abandoned_reason(3, Some("s3 unavailable"));
        assert!(
            with_error.contains("last error: s3 unavailable"),
            "{with_error}"
        );
    }
}
