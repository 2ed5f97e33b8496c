//! The end of the pipeline's failure path: the state machine's `FailEvidence` state invokes
//! the API function with [`FailEvidence`] (`{"chrono_command": "fail_evidence", ...}`),
//! which marks the evidence `failed` with a reason a person can read.
//!
//! What Step Functions caught arrives as `{"Error", "Cause"}`, and the cause comes in
//! several shapes ([`reason`] reads them all and never fails on one):
//!
//! * a container that exited: `States.TaskFailed` with the ECS task description as JSON
//!   (`Containers[0].ExitCode`); the step itself left its message in `step-error.json`;
//! * a task that never ran (image missing, no capacity): the same JSON without an exit
//!   code, with `StoppedReason` and the container's `Reason`;
//! * a launch refused or an ECS API error (`ECS.AccessDeniedException`, `AmazonECS.Unknown`,
//!   or `States.TaskFailed`): plain text;
//! * a timeout (`States.Timeout`), often without a cause;
//! * the parts' map failing (`States.ExceedToleratedFailureThreshold`): the failing part
//!   has already reported itself, so the evidence is failed by then.
//!
//! The first failure wins: an evidence already `failed` keeps its reason.

use aws_sdk_s3::Client;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::error::PipelineError;
use super::jobs::{self, Buckets, StepError};
use super::upload::{self, Target};

/// The `chrono_command` of the failure path.
pub const COMMAND: &str = chrono_contract::pipeline::FAIL_COMMAND;

/// Longest part of a cause kept in a reason.
const MAX_CAUSE_CHARS: usize = 500;

/// What `FailEvidence` sends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FailEvidence {
    /// The evidence.
    pub evidence_id: Uuid,
    /// Its case.
    pub case_id: Uuid,
    /// The step that failed: `split`, `parse`, `upload`, or `parts` (the map).
    pub step: String,
    /// What the `Catch` caught.
    pub failure: Caught,
}

/// A caught error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Caught {
    /// The error name (`States.TaskFailed`, `States.Timeout`, `ECS.AccessDeniedException`).
    #[serde(rename = "Error", default)]
    pub error: String,
    /// Its cause: JSON text, plain text, or absent.
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// What the ECS task description in a cause says about how the task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TaskEnd {
    /// The container ran and exited with this code (and maybe a reason).
    Exited(i64, Option<String>),
    /// The task stopped without the container exiting: why.
    NotRun(String),
}

fn task_end(cause: &str) -> Option<TaskEnd> {
    let task: Value = serde_json::from_str(cause).ok()?;
    let container = task.get("Containers")?.get(0);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let container_reason = text(container.and_then(|c| c.get("Reason")));
    if let Some(code) = container
        .and_then(|c| c.get("ExitCode"))
        .and_then(Value::as_i64)
    {
        return Some(TaskEnd::Exited(code, container_reason));
    }
    let why: Vec<String> = [text(task.get("StoppedReason")), container_reason]
        .into_iter()
        .flatten()
        .chain(text(task.get("StopCode")))
        .filter(|s| !s.is_empty())
        .collect();
    Some(TaskEnd::NotRun(if why.is_empty() {
        "the task stopped before its container ran".into()
    } else {
        why.join("; ")
    }))
}

fn short(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_CAUSE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn step_label(step: &str, step_error: Option<&StepError>) -> String {
    match step_error {
        Some(StepError {
            step,
            part: Some(part),
            ..
        }) => format!("{step} of {}", part.rsplit('/').next().unwrap_or(part)),
        Some(e) => e.step.clone(),
        None if step == "parts" => "processing the parts".into(),
        None => step.to_owned(),
    }
}

/// Whether `reason` needs the step's own message (`step-error.json`): when a container
/// exited, or when the map failed (a part's step did).
pub fn wants_step_error(step: &str, failure: &Caught) -> bool {
    step == "parts"
        || failure
            .cause
            .as_deref()
            .and_then(task_end)
            .is_some_and(|end| matches!(end, TaskEnd::Exited(..)))
}

/// The reason an evidence failed, from the failing step, the caught error and (when the
/// container exited) the message the step left. Never fails, whatever the cause holds.
pub fn reason(step: &str, failure: &Caught, step_error: Option<&StepError>) -> String {
    let error = if failure.error.is_empty() {
        "an unknown error"
    } else {
        failure.error.as_str()
    };
    let cause = failure.cause.as_deref().filter(|c| !c.trim().is_empty());
    let step_error = step_error.filter(|e| step == "parts" || e.step == step);
    match cause.and_then(task_end) {
        Some(TaskEnd::Exited(code, container_reason)) => match step_error {
            Some(e) => format!(
                "{} failed with exit code {code}: {}",
                step_label(step, Some(e)),
                short(&e.message)
            ),
            None => format!(
                "{step} exited with code {code}{}",
                container_reason
                    .map(|r| format!(" ({})", short(&r)))
                    .unwrap_or_default()
            ),
        },
        Some(TaskEnd::NotRun(why)) => format!("{step} could not run: {}", short(&why)),
        None if error == "States.Timeout" => format!(
            "{step} timed out (States.Timeout){}",
            cause.map(|c| format!(": {}", short(c))).unwrap_or_default()
        ),
        None => match step_error {
            Some(e) if step == "parts" => format!(
                "{} failed: {}",
                step_label(step, Some(e)),
                short(&e.message)
            ),
            _ => format!(
                "{} failed ({error}){}",
                step_label(step, None),
                cause.map(|c| format!(": {}", short(c))).unwrap_or_default()
            ),
        },
    }
}

/// Handles `FailEvidence`: reads the step's message when the cause calls for it, marks the
/// evidence `failed` unless it already is, and returns the reason it holds now.
pub async fn fail_evidence(
    s3: &Client,
    buckets: &Buckets,
    pool: &PgPool,
    request: &FailEvidence,
) -> Result<String, PipelineError> {
    let target = Target {
        evidence_id: request.evidence_id,
        case_id: request.case_id,
    };
    let step_error = if wants_step_error(&request.step, &request.failure) {
        jobs::read_step_error(s3, buckets, target).await
    } else {
        None
    };
    let reason = reason(&request.step, &request.failure, step_error.as_ref());
    upload::mark_failed_first(pool, target, "pipeline", &reason).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caught(error: &str, cause: Option<&str>) -> Caught {
        Caught {
            error: error.into(),
            cause: cause.map(str::to_owned),
        }
    }

    fn step_error(step: &str, part: Option<&str>, message: &str) -> StepError {
        StepError {
            step: step.into(),
            part: part.map(str::to_owned),
            message: message.into(),
            exit_code: 65,
        }
    }

    const EXITED_65: &str = r#"{"Containers":[{"ExitCode":65,"Name":"pipeline"}],"StopCode":"EssentialContainerExited","StoppedReason":"Essential container in task exited"}"#;
    const IMAGE_MISSING: &str = r#"{"Containers":[{"Name":"pipeline","Reason":"CannotPullContainerError: pull image manifest has been retried 5 time(s): 123.dkr.ecr.eu-west-1.amazonaws.com/chrono:abc not found"}],"StopCode":"TaskFailedToStart","StoppedReason":"CannotPullContainerError: pull image manifest has been retried"}"#;

    #[test]
    fn every_kind_of_failure_gives_a_readable_reason() {
        let table: [(&str, Caught, Option<StepError>, &str); 9] = [
            (
                "split",
                caught("States.TaskFailed", Some(EXITED_65)),
                Some(step_error("split", None, "a.bin: unknown evidence format")),
                "split failed with exit code 65: a.bin: unknown evidence format",
            ),
            (
                "split",
                caught("States.TaskFailed", Some(EXITED_65)),
                None,
                "split exited with code 65",
            ),
            (
                "parse",
                caught("States.TaskFailed", Some(IMAGE_MISSING)),
                None,
                "parse could not run: CannotPullContainerError: pull image manifest has been retried; \
                 CannotPullContainerError: pull image manifest has been retried 5 time(s): \
                 123.dkr.ecr.eu-west-1.amazonaws.com/chrono:abc not found; TaskFailedToStart",
            ),
            (
                "split",
                caught(
                    "States.TaskFailed",
                    Some(
                        "User: arn:aws:sts::1:assumed-role/sm/x is not authorized to perform: ecs:TagResource",
                    ),
                ),
                None,
                "split failed (States.TaskFailed): User: arn:aws:sts::1:assumed-role/sm/x is not authorized to perform: ecs:TagResource",
            ),
            (
                "split",
                caught(
                    "ECS.AccessDeniedException",
                    Some("not authorized to perform: ecs:RunTask"),
                ),
                None,
                "split failed (ECS.AccessDeniedException): not authorized to perform: ecs:RunTask",
            ),
            (
                "upload",
                caught(
                    "AmazonECS.Unknown",
                    Some("{\"Failures\":[{\"Reason\":\"RESOURCE:ENI\"}]}"),
                ),
                None,
                "upload failed (AmazonECS.Unknown): {\"Failures\":[{\"Reason\":\"RESOURCE:ENI\"}]}",
            ),
            (
                "parse",
                caught("States.Timeout", None),
                None,
                "parse timed out (States.Timeout)",
            ),
            (
                "parts",
                caught(
                    "States.ExceedToleratedFailureThreshold",
                    Some("The specified tolerated failure threshold was exceeded"),
                ),
                Some(step_error(
                    "upload",
                    Some("evidence/e/parts/part-00002.json"),
                    "database unreachable",
                )),
                "upload of part-00002.json failed: database unreachable",
            ),
            (
                "split",
                caught("", Some("   ")),
                None,
                "split failed (an unknown error)",
            ),
        ];
        for (step, failure, step_error, want) in table {
            assert_eq!(reason(step, &failure, step_error.as_ref()), want);
        }
    }

    #[test]
    fn a_step_error_of_another_step_is_not_blamed() {
        let stale = step_error("split", None, "old split message");
        assert_eq!(
            reason(
                "parse",
                &caught("States.TaskFailed", Some(EXITED_65)),
                Some(&stale)
            ),
            "parse exited with code 65"
        );
    }

    #[test]
    fn long_and_broken_causes_are_cut_not_fatal() {
        let long = "x".repeat(10_000);
        let r = reason("split", &caught("States.TaskFailed", Some(&long)), None);
        assert!(r.chars().count() < 600, "{}", r.len());
        assert!(r.ends_with('…'));
        let broken = "{\"Containers\":[{\"ExitCode\":75"; // truncated JSON is plain text
        assert!(
            reason("split", &caught("States.TaskFailed", Some(broken)), None)
                .starts_with("split failed (States.TaskFailed): {\"Containers\"")
        );
    }

    #[test]
    fn the_step_error_is_read_only_when_a_container_exited_or_the_map_failed() {
        assert!(wants_step_error(
            "split",
            &caught("States.TaskFailed", Some(EXITED_65))
        ));
        assert!(!wants_step_error(
            "split",
            &caught("States.TaskFailed", Some(IMAGE_MISSING))
        ));
        assert!(!wants_step_error("split", &caught("States.Timeout", None)));
        assert!(wants_step_error(
            "parts",
            &caught("States.ExceedToleratedFailureThreshold", None)
        ));
    }

    #[test]
    fn the_payload_of_fail_evidence_deserializes_with_or_without_a_cause() {
        let p: FailEvidence = serde_json::from_value(serde_json::json!({
            "chrono_command": COMMAND,
            "evidence_id": Uuid::nil(), "case_id": Uuid::max(), "step": "split",
            "failure": {"Error": "States.Timeout"}
        }))
        .unwrap();
        assert_eq!(p.failure.cause, None);
        assert_eq!(p.step, "split");
    }
}
