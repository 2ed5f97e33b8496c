//! Starting the processing pipeline of one evidence file: through Step Functions in AWS
//! (`StartExecution` on the state machine from `CHRONO_PIPELINE_STATE_MACHINE_ARN`), or
//! through an in-process channel to a local worker. The API only starts; it never runs
//! the pipeline itself, and it never reports a start that did not happen.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

/// What the pipeline needs to process one evidence file (the Step Functions input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineJob {
    /// The case.
    pub case_id: Uuid,
    /// The evidence.
    pub evidence_id: Uuid,
    /// Its object key in the sources bucket.
    pub source_key: String,
}

/// Why the pipeline did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// Nothing here can process evidence (no state machine, no local worker).
    #[error("{0}")]
    Unavailable(String),
    /// The start request failed.
    #[error("could not start the pipeline: {0}")]
    Failed(String),
}

/// The future a launcher returns.
pub type LaunchFuture<'a> = Pin<Box<dyn Future<Output = Result<String, LaunchError>> + Send + 'a>>;

/// Starts the pipeline for one evidence; returns an execution id (an ARN in AWS).
pub trait PipelineLauncher: Send + Sync + std::fmt::Debug {
    /// Starts processing `job`.
    fn start(&self, job: PipelineJob) -> LaunchFuture<'_>;
}

/// Step Functions: `StartExecution` with the job as input.
#[derive(Debug, Clone)]
pub struct StepFunctionsLauncher {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl StepFunctionsLauncher {
    /// A launcher for the given state machine.
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        StepFunctionsLauncher {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }
}

impl PipelineLauncher for StepFunctionsLauncher {
    fn start(&self, job: PipelineJob) -> LaunchFuture<'_> {
        Box::pin(async move {
            let input =
                serde_json::to_string(&job).map_err(|e| LaunchError::Failed(e.to_string()))?;
            let out = self
                .client
                .start_execution()
                .state_machine_arn(&self.state_machine_arn)
                .input(input)
                .send()
                .await
                .map_err(|e| {
                    LaunchError::Failed(aws_sdk_sfn::error::DisplayErrorContext(e).to_string())
                })?;
            Ok(out.execution_arn().to_owned())
        })
    }
}

/// Local mode: jobs go to an in-process worker over a channel. Without a worker, every
/// start fails with [`LaunchError::Unavailable`].
#[derive(Debug, Clone)]
pub struct LocalLauncher {
    tx: Option<mpsc::Sender<PipelineJob>>,
}

impl LocalLauncher {
    /// A launcher whose jobs arrive on the returned receiver (the local worker's end).
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<PipelineJob>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (LocalLauncher { tx: Some(tx) }, rx)
    }

    /// A launcher with no worker behind it.
    pub fn unavailable() -> Self {
        LocalLauncher { tx: None }
    }
}

impl PipelineLauncher for LocalLauncher {
    fn start(&self, job: PipelineJob) -> LaunchFuture<'_> {
        Box::pin(async move {
            let unavailable = || {
                LaunchError::Unavailable(
                    "the pipeline is not available here: no local pipeline worker is running \
                     and CHRONO_PIPELINE_STATE_MACHINE_ARN is not set"
                        .into(),
                )
            };
            let tx = self.tx.as_ref().ok_or_else(unavailable)?;
            let id = format!("local:{}:{}", job.evidence_id, Uuid::now_v7());
            tx.try_send(job).map_err(|e| match e {
                mpsc::error::TrySendError::Closed(_) => unavailable(),
                mpsc::error::TrySendError::Full(_) => LaunchError::Unavailable(
                    "the local pipeline worker is busy; try again shortly".into(),
                ),
            })?;
            Ok(id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> PipelineJob {
        PipelineJob {
            case_id: Uuid::nil(),
            evidence_id: Uuid::max(),
            source_key: "cases/x/evidence/y/a.evtx".into(),
        }
    }

    #[tokio::test]
    async fn local_launcher_delivers_jobs_to_the_worker() {
        let (launcher, mut rx) = LocalLauncher::channel(4);
        let id = launcher.start(job()).await.unwrap();
        assert!(id.starts_with("local:ffffffff-"));
        assert_eq!(rx.recv().await, Some(job()));
    }

    #[tokio::test]
    async fn without_a_worker_starting_fails_instead_of_pretending() {
        let err = LocalLauncher::unavailable().start(job()).await.unwrap_err();
        assert!(matches!(err, LaunchError::Unavailable(m) if m.contains("not available")));
        let (launcher, rx) = LocalLauncher::channel(1);
        drop(rx);
        assert!(matches!(
            launcher.start(job()).await,
            Err(LaunchError::Unavailable(_))
        ));
    }
}
