//! The local pipeline worker (`chrono-pipeline work`, a process of its own in local mode):
//! it runs the same steps as the ECS tasks — split → parse each part → upload each part —
//! against the emulator's S3 and the local PostgreSQL, for the durable jobs the API records
//! ([`crate::queue`]).
//!
//! [`LocalWorker`] runs the steps of one evidence; whatever stops the evidence for good (an
//! unknown file, a part that cannot be read, a limit exceeded) marks it `failed` with the
//! reason, as the state machine's `Catch` does in AWS. [`Worker`] takes jobs from the
//! queue: several at once (a bound of regular slots plus an express slot for small files),
//! each under a lease it renews; a retryable failure (S3 or the database away for a moment)
//! goes back to the queue with a delay instead of failing the evidence.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use sqlx::PgPool;
use tokio::task::JoinSet;

use super::error::PipelineError;
use super::jobs::{self, Buckets, PartsIndex};
use super::steps::{DEFAULT_EVTX_CHUNKS_PER_PART, ParseOptions};
use super::upload::{self, Target};
use crate::launcher::PipelineJob;
use crate::queue::{self, Job, Outcome};

/// Runs pipeline jobs in-process.
#[derive(Debug, Clone)]
pub struct LocalWorker {
    /// S3 client (path-style for the emulator).
    pub s3: Client,
    /// The database.
    pub pool: PgPool,
    /// Sources and artifacts buckets.
    pub buckets: Buckets,
    /// How `parse` runs.
    pub parse: ParseOptions,
    /// EVTX chunks per part.
    pub evtx_chunks_per_part: u64,
}

/// The outcome of one processed evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// The split's parts index.
    pub index: PartsIndex,
    /// Events read from the parts.
    pub rows: u64,
    /// Events new to the database.
    pub inserted: u64,
    /// The evidence's final state.
    pub state: String,
}

impl LocalWorker {
    /// A worker with the default step options.
    pub fn new(s3: Client, pool: PgPool, buckets: Buckets) -> LocalWorker {
        LocalWorker {
            s3,
            pool,
            buckets,
            parse: ParseOptions::default(),
            evtx_chunks_per_part: DEFAULT_EVTX_CHUNKS_PER_PART,
        }
    }

    /// Runs every step for one evidence. On failure the evidence is marked `failed` with
    /// the reason (when the database can be reached) and the error is returned.
    pub async fn process(&self, job: &PipelineJob) -> Result<Processed, PipelineError> {
        let target = Target {
            case_id: job.case_id,
            evidence_id: job.evidence_id,
        };
        let mut location = job.source_key.clone();
        let result = self.run(target, job, &mut location).await;
        if let Err(e) = &result
            && !matches!(e, PipelineError::EvidenceNotFound { .. })
        {
            upload::mark_failed(&self.pool, target, &location, &e.to_string()).await?;
        }
        result
    }

    /// Runs every step for a queued job and says how it ended: a final failure marks the
    /// evidence `failed` (as [`LocalWorker::process`] does); a retryable one leaves the
    /// evidence `processing` for the next attempt.
    pub async fn run_job(&self, job: &PipelineJob, attempts: i32) -> Outcome {
        let target = Target {
            case_id: job.case_id,
            evidence_id: job.evidence_id,
        };
        let mut location = job.source_key.clone();
        match self.run(target, job, &mut location).await {
            Ok(done) if done.state == "done" => Outcome::Done,
            Ok(done) => Outcome::Failed(format!(
                "the evidence ended `{}` after its last part",
                done.state
            )),
            Err(e) if e.is_retryable() => Outcome::Retry {
                reason: e.to_string(),
                delay: queue::retry_delay(attempts),
            },
            Err(e) => {
                let reason = e.to_string();
                if !matches!(e, PipelineError::EvidenceNotFound { .. })
                    && let Err(db) =
                        upload::mark_failed(&self.pool, target, &location, &reason).await
                {
                    // the database went away: try again later rather than lose the reason
                    return Outcome::Retry {
                        reason: format!("{reason} (and marking it failed: {db})"),
                        delay: queue::retry_delay(attempts),
                    };
                }
                Outcome::Failed(reason)
            }
        }
    }

    async fn run(
        &self,
        target: Target,
        job: &PipelineJob,
        location: &mut String,
    ) -> Result<Processed, PipelineError> {
        let index = jobs::split(
            &self.s3,
            &self.buckets,
            target,
            Some(&job.source_key),
            self.evtx_chunks_per_part,
        )
        .await?;
        jobs::check_declared_sha256(target, &index, job.sha256.as_deref())?;
        let mut rows = 0;
        let mut inserted = 0;
        let mut state = String::new();
        for part in &index.parts {
            part.clone_into(location);
            jobs::parse(&self.s3, &self.buckets, target, part, self.parse).await?;
            let report = jobs::upload(&self.s3, &self.pool, &self.buckets, target, part).await?;
            rows += report.rows;
            inserted += report.inserted;
            state = report.state;
        }
        if index.parts.is_empty() {
            return Err(PipelineError::Artifact {
                key: jobs::parts_manifest_key(target),
                reason: "the evidence has no parts to process".into(),
            });
        }
        Ok(Processed {
            index,
            rows,
            inserted,
            state,
        })
    }
}

/// How the queue worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Jobs run at once in the regular slots.
    pub concurrency: usize,
    /// One more slot, only for files up to [`queue::EXPRESS_MAX_BYTES`], used when every
    /// regular slot is busy.
    pub express: bool,
    /// How long a claim holds without renewal (renewed every third of it).
    pub lease: Duration,
    /// How often an idle worker looks for work.
    pub poll: Duration,
}

impl WorkerOptions {
    /// The jobs a worker runs at once: its regular slots and the express one.
    pub fn slots(&self) -> usize {
        self.concurrency + usize::from(self.express)
    }

    /// The connections a worker's pool needs so that no job ever waits for a connection
    /// another job holds: a job uploading a part holds the part's transaction while it
    /// upserts the part's devices and identities on a second connection (committed on
    /// their own, see [`super::upload`]), so `slots` jobs may hold `slots` connections
    /// while each asks for one more; claiming, renewing and closing jobs take one more.
    /// With fewer, every connection can end up held by a transaction waiting for another
    /// (the pool starves until its acquire timeout, and again on the retry).
    pub fn connections(&self) -> u32 {
        u32::try_from(2 * self.slots() + 1).unwrap_or(u32::MAX)
    }

    /// These options cut down to what a pool of `connections` connections can serve
    /// without starving ([`WorkerOptions::connections`]): first the express slot, then
    /// regular slots, never below one regular slot.
    pub fn fitting(mut self, connections: u32) -> WorkerOptions {
        while self.connections() > connections {
            if self.express {
                self.express = false;
            } else if self.concurrency > 1 {
                self.concurrency -= 1;
            } else {
                break;
            }
        }
        self
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 2,
            express: true,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
        }
    }
}

/// The queue worker: claims jobs in fair order, runs them with [`LocalWorker`], renews
/// their leases, closes them.
#[derive(Debug, Clone)]
pub struct Worker {
    steps: Arc<LocalWorker>,
    owner: Arc<str>,
    options: WorkerOptions,
}

impl Worker {
    /// A worker named `owner` (unique among running workers: host, pid, a random part).
    pub fn new(steps: LocalWorker, owner: impl Into<String>, options: WorkerOptions) -> Worker {
        let fits = options.fitting(steps.pool.options().get_max_connections());
        if fits != options {
            tracing::warn!(
                ?options,
                ?fits,
                "the worker's database pool is too small for its slots; running fewer jobs at once"
            );
        }
        let options = fits;
        Worker {
            steps: Arc::new(steps),
            owner: Arc::from(owner.into()),
            options,
        }
    }

    /// A name unique to this process.
    pub fn default_owner() -> String {
        format!("worker-{}-{}", std::process::id(), uuid::Uuid::now_v7())
    }

    fn pool(&self) -> &PgPool {
        &self.steps.pool
    }

    /// Works until `shutdown` resolves; then stops claiming, gives back the leases of the
    /// jobs it holds (they are taken again at once by the next worker) and returns.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut regular = JoinSet::new();
        let mut express = JoinSet::new();
        let mut last_reap: Option<tokio::time::Instant> = None;
        loop {
            if last_reap.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                last_reap = Some(tokio::time::Instant::now());
                match queue::reap(self.pool()).await {
                    Ok(r) if r != queue::Reaped::default() => {
                        tracing::warn!(?r, "gave stuck evidence its way forward");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot check for stuck jobs"),
                }
            }
            while regular.len() < self.options.concurrency {
                match self.claim(false).await {
                    Some(job) => {
                        regular.spawn(self.clone().work(job));
                    }
                    None => break,
                }
            }
            if self.options.express
                && express.is_empty()
                && regular.len() >= self.options.concurrency
                && let Some(job) = self.claim(true).await
            {
                express.spawn(self.clone().work(job));
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.options.poll) => {}
                Some(_) = regular.join_next() => {}
                Some(_) = express.join_next() => {}
            }
        }
        regular.abort_all();
        express.abort_all();
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "could not give back the leases; they lapse on their own");
        }
    }

    async fn claim(&self, express_only: bool) -> Option<Job> {
        match queue::claim(self.pool(), &self.owner, self.options.lease, express_only).await {
            Ok(job) => job,
            Err(e) => {
                crate::db::note_error(&e);
                tracing::warn!(error = %e, "cannot claim a job");
                None
            }
        }
    }

    /// Runs one claimed job under its lease.
    async fn work(self, job: Job) {
        let evidence_id = job.evidence_id;
        tracing::info!(%evidence_id, job = %job.id, attempt = job.attempts, "processing");
        // The lease is renewed while the steps run, in the same task: when the task ends
        // (or is aborted) nothing renews it any more, and it lapses.
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.options.lease / 3).await;
                match queue::renew(self.pool(), job.id, &self.owner, self.options.lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    // the database is away: keep trying; the lease may lapse meanwhile
                    Err(e) => tracing::warn!(error = %e, "cannot renew a job's lease"),
                }
            }
        };
        let input = PipelineJob {
            case_id: job.case_id,
            evidence_id: job.evidence_id,
            source_key: job.source_key.clone(),
            sha256: job.sha256.clone(),
        };
        let outcome = tokio::select! {
            outcome = self.steps.run_job(&input, job.attempts) => outcome,
            () = heartbeat => {
                tracing::warn!(%evidence_id, "lost the job's lease; another worker has it");
                return;
            }
        };
        match &outcome {
            Outcome::Done => tracing::info!(%evidence_id, "evidence processed"),
            Outcome::Failed(reason) => tracing::warn!(%evidence_id, reason, "evidence failed"),
            Outcome::Retry { reason, delay } => {
                tracing::warn!(%evidence_id, reason, retry_in_s = delay.as_secs(), "will retry")
            }
        }
        // The database may be away for a moment: try a few times; if it stays away the
        // lease lapses and the job runs again (the steps are idempotent).
        for attempt in 0..5u32 {
            match queue::finish(self.pool(), job.id, &self.owner, &outcome).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "cannot close the job yet");
                    tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(attempt)).await;
                }
            }
        }
    }

    /// Gives back the leases this worker holds (a graceful stop is not a failed attempt).
    async fn release(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE pipeline_jobs SET state = 'queued', lease_owner = NULL,
                 lease_expires_at = NULL, attempts = greatest(attempts - 1, 0)
             WHERE lease_owner = $1 AND state = 'running'",
        )
        .bind(&*self.owner)
        .execute(self.pool())
        .await
        .map(|_| ())
    }
}

/// Worker settings from the environment: `CHRONO_WORKER_CONCURRENCY` (default 2),
/// `CHRONO_WORKER_LEASE_SECS` (default 30).
pub fn options_from_env() -> Result<WorkerOptions, PipelineError> {
    let mut options = WorkerOptions::default();
    let number = |name: &str| -> Result<Option<u64>, PipelineError> {
        match std::env::var(name).ok().filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| PipelineError::Config(format!("{name} must be a positive number"))),
        }
    };
    if let Some(n) = number(chrono_contract::env::WORKER_CONCURRENCY)? {
        options.concurrency = usize::try_from(n).unwrap_or(usize::MAX).min(64);
    }
    if let Some(n) = number(chrono_contract::env::WORKER_LEASE_SECS)? {
        options.lease = Duration::from_secs(n.max(3));
    }
    Ok(options)
}

/// The queue worker from the environment (`CHRONO_SOURCES_BUCKET`,
/// `CHRONO_ARTIFACTS_BUCKET`, the database settings, `AWS_ENDPOINT_URL` for the emulator,
/// [`options_from_env`]).
pub async fn from_env() -> Result<Worker, PipelineError> {
    let buckets = Buckets::from_env()?;
    let options = options_from_env()?;
    let pool = jobs::pool_from_env_sized(options.connections()).await?;
    let sdk = aws_config::load_from_env().await;
    let s3 = crate::storage::SourcesBucket::client_from(&sdk);
    let mut steps = LocalWorker::new(s3, pool, buckets);
    steps.parse.limits = super::limits::Limits::from_env()?;
    Ok(Worker::new(steps, Worker::default_owner(), options))
}

/// Local mode's in-process worker: the durable queue's launcher for the API, and the
/// [`Worker`] from the environment running on the current runtime until the process ends
/// (a killed process leaves its leases to lapse; the next one takes the jobs again).
pub async fn local_from_env()
-> Result<(crate::launcher::LocalLauncher, tokio::task::JoinHandle<()>), PipelineError> {
    let worker = from_env().await?;
    let handle = tokio::spawn(worker.run(std::future::pending()));
    Ok((crate::launcher::LocalLauncher::queue(), handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_s_pool_has_two_connections_per_job_and_one_more() {
        for (concurrency, express, connections) in [(1, false, 3), (2, true, 7), (64, true, 131)] {
            let options = WorkerOptions {
                concurrency,
                express,
                ..WorkerOptions::default()
            };
            assert_eq!(options.connections(), connections, "{options:?}");
            assert_eq!(options.fitting(connections), options);
        }
    }

    /// Regression (the soak stalled): three workers of three slots shared a pool of five
    /// connections; every connection ended up held by a part's transaction waiting for a
    /// second one. A worker now runs no more jobs than its pool can serve.
    #[test]
    fn a_worker_runs_only_the_jobs_its_pool_can_serve() {
        let wide = WorkerOptions {
            concurrency: 8,
            express: true,
            ..WorkerOptions::default()
        };
        for (connections, concurrency, express) in [
            (19, 8, true),
            (18, 8, false),
            (7, 3, false),
            (5, 2, false),
            (4, 1, false),
            (1, 1, false),
        ] {
            let fit = wide.fitting(connections);
            assert_eq!(
                (fit.concurrency, fit.express),
                (concurrency, express),
                "{connections} connections"
            );
            assert!(
                fit.connections() <= connections.max(3),
                "{connections}: {fit:?}"
            );
        }
    }
}
