//! The local pipeline worker: in local mode (`chronoctl local`, tests) the API's
//! [`LocalLauncher`](crate::launcher::LocalLauncher) hands jobs to this worker, which runs
//! the same steps as the ECS tasks — split → parse each part → upload each part —
//! in-process against the emulator's S3 and the local PostgreSQL. Whatever stops the
//! evidence (an unknown file, a part that cannot be read) marks it `failed` with the
//! reason, as the state machine's `Catch` does in AWS.

use aws_sdk_s3::Client;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::error::PipelineError;
use super::jobs::{self, Buckets, PartsIndex};
use super::steps::{DEFAULT_EVTX_CHUNKS_PER_PART, ParseOptions};
use super::upload::{self, Target};
use crate::launcher::PipelineJob;

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

    /// Processes jobs from the launcher's channel, one at a time, until it closes.
    pub fn spawn(self, mut jobs: mpsc::Receiver<PipelineJob>) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                match self.process(&job).await {
                    Ok(done) => tracing::info!(
                        evidence_id = %job.evidence_id, parts = done.index.parts.len(),
                        rows = done.rows, inserted = done.inserted, state = %done.state,
                        "evidence processed"
                    ),
                    Err(e) => tracing::warn!(
                        evidence_id = %job.evidence_id, error = %e, "evidence failed"
                    ),
                }
            }
        })
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

/// Local mode from the environment: a [`LocalLauncher`](crate::launcher::LocalLauncher)
/// for the API and the worker processing its jobs (`CHRONO_SOURCES_BUCKET`,
/// `CHRONO_ARTIFACTS_BUCKET`, the database settings, and `AWS_ENDPOINT_URL` for the
/// emulator). The worker runs until the launcher is dropped.
pub async fn local_from_env(
    capacity: usize,
) -> Result<(crate::launcher::LocalLauncher, JoinHandle<()>), PipelineError> {
    let buckets = Buckets::from_env()?;
    let pool = jobs::pool_from_env().await?;
    let sdk = aws_config::load_from_env().await;
    let s3 = crate::storage::SourcesBucket::client_from(&sdk);
    let (launcher, rx) = crate::launcher::LocalLauncher::channel(capacity);
    let handle = LocalWorker::new(s3, pool, buckets).spawn(rx);
    Ok((launcher, handle))
}
