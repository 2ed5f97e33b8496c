//! Starting the processing pipeline of one evidence, once the request is recorded as a
//! durable job ([`crate::queue`]): through Step Functions in AWS (`StartExecution` on the
//! state machine from `CHRONO_PIPELINE_STATE_MACHINE_ARN`, named after the job), or —
//! locally — by leaving the job in the queue for the worker process. The API only starts;
//! it never runs the pipeline itself, and it never reports a start that did not happen.
//!
//! Step Functions also answers for its executions ([`PipelineLauncher::describe`]): the
//! API asks when an evidence looks stuck, and fails the evidence whose execution is gone,
//! failed, timed out or aborted (see [`crate::api`]'s evidence routes).

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::queue::Runner;

/// What the pipeline needs to process one evidence file (the Step Functions input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineJob {
    /// The case.
    pub case_id: Uuid,
    /// The evidence.
    pub evidence_id: Uuid,
    /// Its object key in the sources bucket.
    pub source_key: String,
    /// The SHA-256 (lowercase hex) the file must have, when it was declared at upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Why the pipeline did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// Nothing here can process evidence (no state machine, no local queue).
    #[error("{0}")]
    Unavailable(String),
    /// The start request failed.
    #[error("could not start the pipeline: {0}")]
    Failed(String),
}

/// Where an execution is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionState {
    /// Still running.
    Running,
    /// Ended well (the evidence's own state says what it holds).
    Succeeded,
    /// Ended badly: failed, timed out or aborted, with what Step Functions says.
    Ended(String),
    /// Step Functions knows no such execution (never started, or expired from its history).
    Gone,
}

/// The future a launcher's start returns: the execution's ARN, when one was started.
pub type LaunchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<String>, LaunchError>> + Send + 'a>>;
/// The future of [`PipelineLauncher::describe`].
pub type DescribeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ExecutionState, LaunchError>> + Send + 'a>>;

/// Starts the pipeline for one recorded job.
pub trait PipelineLauncher: Send + Sync + std::fmt::Debug {
    /// Who runs the jobs; [`LaunchError::Unavailable`] when nothing can process here (the
    /// request is refused before anything is recorded).
    fn runner(&self) -> Result<Runner, LaunchError>;
    /// Starts job `job_id` for `job`. Step Functions: an execution named after the job
    /// (starting it twice is idempotent), its ARN returned. The local queue: nothing to do
    /// (the worker claims the job), `None`.
    fn start(&self, job_id: Uuid, job: PipelineJob) -> LaunchFuture<'_>;
    /// The state of execution `arn` (Step Functions only).
    fn describe(&self, arn: String) -> DescribeFuture<'_>;
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

    /// The ARN of this state machine's execution named `name`
    /// (`arn:<partition>:states:<region>:<account>:execution:<machine>:<name>`).
    pub fn execution_arn(&self, name: &str) -> String {
        format!(
            "{}:{name}",
            self.state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1)
        )
    }
}

fn sfn_error<E>(e: aws_sdk_sfn::error::SdkError<E>) -> LaunchError
where
    E: std::error::Error + Send + Sync + 'static,
{
    LaunchError::Failed(aws_sdk_sfn::error::DisplayErrorContext(e).to_string())
}

impl PipelineLauncher for StepFunctionsLauncher {
    fn runner(&self) -> Result<Runner, LaunchError> {
        Ok(Runner::StepFunctions)
    }

    fn start(&self, job_id: Uuid, job: PipelineJob) -> LaunchFuture<'_> {
        Box::pin(async move {
            let input =
                serde_json::to_string(&job).map_err(|e| LaunchError::Failed(e.to_string()))?;
            let name = job_id.to_string();
            let out = self
                .client
                .start_execution()
                .state_machine_arn(&self.state_machine_arn)
                .name(&name)
                .input(input)
                .send()
                .await;
            match out {
                Ok(out) => Ok(Some(out.execution_arn().to_owned())),
                // Started before (a retried request, or a closed execution of this job):
                // the execution is the one named after the job.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_execution_already_exists()) =>
                {
                    Ok(Some(self.execution_arn(&name)))
                }
                Err(e) => Err(sfn_error(e)),
            }
        })
    }

    fn describe(&self, arn: String) -> DescribeFuture<'_> {
        Box::pin(async move {
            use aws_sdk_sfn::types::ExecutionStatus;
            let out = match self
                .client
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_execution_does_not_exist()) =>
                {
                    return Ok(ExecutionState::Gone);
                }
                Err(e) => return Err(sfn_error(e)),
            };
            let detail = [out.error(), out.cause()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            let ended = |what: &str| {
                let mut reason = format!("the pipeline execution {what}");
                if !detail.is_empty() {
                    reason.push_str(": ");
                    reason.extend(detail.chars().take(500));
                }
                ExecutionState::Ended(reason)
            };
            Ok(match out.status() {
                ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {
                    ExecutionState::Running
                }
                ExecutionStatus::Succeeded => ExecutionState::Succeeded,
                ExecutionStatus::Failed => ended("failed"),
                ExecutionStatus::TimedOut => ended("timed out"),
                ExecutionStatus::Aborted => ended("was aborted"),
                other => ended(&format!("ended as {}", other.as_str())),
            })
        })
    }
}

/// Local mode: the durable queue, which the worker process (`chrono-pipeline work`)
/// drains; or nothing at all, when every start is refused with
/// [`LaunchError::Unavailable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLauncher {
    queue: bool,
}

impl LocalLauncher {
    /// Jobs wait in the queue for the worker.
    pub fn queue() -> Self {
        LocalLauncher { queue: true }
    }

    /// Nothing processes here.
    pub fn unavailable() -> Self {
        LocalLauncher { queue: false }
    }
}

impl PipelineLauncher for LocalLauncher {
    fn runner(&self) -> Result<Runner, LaunchError> {
        if self.queue {
            Ok(Runner::Local)
        } else {
            Err(LaunchError::Unavailable(
                "the pipeline is not available here: no local pipeline queue (set \
                 CHRONO_ARTIFACTS_BUCKET and run `chrono-pipeline work`) and \
                 CHRONO_PIPELINE_STATE_MACHINE_ARN is not set"
                    .into(),
            ))
        }
    }

    fn start(&self, _job_id: Uuid, _job: PipelineJob) -> LaunchFuture<'_> {
        Box::pin(async move { self.runner().map(|_| None) })
    }

    fn describe(&self, arn: String) -> DescribeFuture<'_> {
        Box::pin(async move {
            Err(LaunchError::Unavailable(format!(
                "{arn} is not a Step Functions execution of this deployment"
            )))
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
            sha256: None,
        }
    }

    #[tokio::test]
    async fn the_local_queue_leaves_jobs_to_the_worker() {
        let launcher = LocalLauncher::queue();
        assert_eq!(launcher.runner(), Ok(Runner::Local));
        assert_eq!(launcher.start(Uuid::now_v7(), job()).await, Ok(None));
    }

    #[tokio::test]
    async fn without_a_queue_starting_fails_instead_of_pretending() {
        let launcher = LocalLauncher::unavailable();
        assert!(
            matches!(launcher.runner(), Err(LaunchError::Unavailable(m)) if m.contains("not available"))
        );
        assert!(matches!(
            launcher.start(Uuid::now_v7(), job()).await,
            Err(LaunchError::Unavailable(_))
        ));
    }

    #[test]
    fn an_execution_is_named_after_its_job_under_the_state_machine() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        let l = StepFunctionsLauncher::new(
            aws_sdk_sfn::Client::new(&sdk),
            "arn:aws:states:eu-west-1:123456789012:stateMachine:acme-prod-pipeline",
        );
        assert_eq!(
            l.execution_arn("0190-job"),
            "arn:aws:states:eu-west-1:123456789012:execution:acme-prod-pipeline:0190-job"
        );
    }

    #[test]
    fn the_execution_input_carries_the_declared_sha256_only_when_there_is_one() {
        let without = serde_json::to_value(job()).unwrap();
        assert!(without.get("sha256").is_none());
        let with = PipelineJob {
            sha256: Some("ab".repeat(32)),
            ..job()
        };
        let back: PipelineJob =
            serde_json::from_value(serde_json::to_value(&with).unwrap()).unwrap();
        assert_eq!(back, with);
    }
}
