//! Errors of the deploy engine. Every message says what to do next and stays short: a
//! failed stack is reported by its root cause in at most three lines.

use crate::deploy::lock::LockError;
use crate::deploy::plan::PlanError;

/// The first resource that failed in a stack operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RootCause {
    /// Logical id of the failed resource.
    pub logical_id: String,
    /// Its type.
    pub resource_type: String,
    /// Its failed status (`CREATE_FAILED`, ...).
    pub status: String,
    /// CloudFormation's reason.
    pub reason: String,
}

/// Errors of deploy, diff, destroy, status, recover and onboard.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The plan is inconsistent.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The lock is held or could not be managed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// An asset could not be uploaded.
    #[error(transparent)]
    Asset(#[from] crate::deploy::assets::AssetError),
    /// An AWS call failed (service, operation, endpoint, status, code and what to try).
    #[error(transparent)]
    Call(Box<crate::aws::error::AwsError>),
    /// The credentials act in another account than the config's.
    #[error(
        "refusing to touch {customer}-{stage}: the config names account {expected}, but the credentials act in account {actual} ({arn}); use the profile (or deploy_role_arn) of account {expected}, or fix account_id in the config"
    )]
    WrongAccount {
        /// Customer.
        customer: String,
        /// Stage.
        stage: String,
        /// The config's account.
        expected: String,
        /// The caller's account.
        actual: String,
        /// The caller's ARN.
        arn: String,
    },
    /// Our own data guard (or the policy data behind it) refused.
    #[error(transparent)]
    Guard(#[from] crate::deploy::guard::GuardError),
    /// `--require-approval` and the broadening was not approved.
    #[error(
        "{stack}: not approved; the change broadens access:\n  {}\n  review it with `chronoctl diff`, then rerun and approve it (or without --require-approval)",
        .broadening.join("\n  ")
    )]
    NotApproved {
        /// Stack name.
        stack: String,
        /// What it adds.
        broadening: Vec<String>,
    },
    /// A stack has termination protection (prod).
    #[error(
        "stack {stack} has termination protection (stage prod); if it really must go, lift it first: aws cloudformation update-termination-protection --no-enable-termination-protection --stack-name {stack} --region {region}"
    )]
    TerminationProtected {
        /// Stack name.
        stack: String,
        /// Region.
        region: String,
    },
    /// An AWS call failed (calls not yet reported through [`crate::aws::error::AwsError`]).
    #[error("{stack}: {operation} failed: {message}")]
    Aws {
        /// CloudFormation stack (or resource) name.
        stack: String,
        /// Operation.
        operation: &'static str,
        /// SDK error text.
        message: String,
    },
    /// A stack operation failed and rolled back (or did not).
    #[error("{}", stack_failed(.stack, .status, .root_cause.as_deref(), .stack_reason.as_deref()))]
    StackFailed {
        /// Stack name.
        stack: String,
        /// Final status.
        status: String,
        /// The first failed resource, if CloudFormation reported one.
        root_cause: Option<Box<RootCause>>,
        /// The stack's own status reason (used when no resource failed).
        stack_reason: Option<String>,
    },
    /// The stack is in ROLLBACK_COMPLETE after a failed create.
    #[error(
        "stack {stack} is in {status} after a failed create and must be deleted before it can be created again; rerun with --yes to delete it"
    )]
    NeedsDelete {
        /// Stack name.
        stack: String,
        /// ROLLBACK_COMPLETE or ROLLBACK_FAILED.
        status: String,
    },
    /// The stack is in UPDATE_ROLLBACK_FAILED.
    #[error("{}", rollback_failed(.stack, .short, .skip))]
    UpdateRollbackFailed {
        /// Stack name.
        stack: String,
        /// Short stack name (for the recover command line).
        short: String,
        /// Logical ids that failed to roll back (candidates for `--skip`).
        skip: Vec<String>,
    },
    /// Another operation is running on the stack.
    #[error(
        "stack {stack} is busy ({status}) with an operation chronoctl did not start; wait for it to finish, or rerun with --wait to wait up to {timeout_s}s"
    )]
    InProgress {
        /// Stack name.
        stack: String,
        /// The *_IN_PROGRESS status.
        status: String,
        /// The wait timeout that applies with `--wait`.
        timeout_s: u64,
    },
    /// Waiting for a stack or change set took too long.
    #[error(
        "{stack}: still {status} after {timeout_s}s; check the CloudFormation console and rerun"
    )]
    Timeout {
        /// Stack name.
        stack: String,
        /// Last seen status.
        status: String,
        /// Timeout.
        timeout_s: u64,
    },
    /// A change set could not be created.
    #[error("{stack}: change set failed: {reason}")]
    ChangeSetFailed {
        /// Stack name.
        stack: String,
        /// CloudFormation's reason.
        reason: String,
    },
    /// The change set replaces or removes stateful resources.
    #[error(
        "{stack}: the change would {}; data would be lost. Review with `chronoctl diff`, then rerun with {}",
        .resources.iter().map(|(id, what)| format!("{what} {id}")).collect::<Vec<_>>().join(", "),
        .resources.iter().map(|(id, _)| format!("--allow-replace {id}")).collect::<Vec<_>>().join(" ")
    )]
    ReplacementRefused {
        /// Stack name.
        stack: String,
        /// (logical id, `replace`/`remove`).
        resources: Vec<(String, String)>,
    },
    /// A parameter needs an output the source stack does not have.
    #[error(
        "stack {stack}: parameter {parameter} needs output {output} of {source_stack}, which it does not have; redeploy {source_stack} or run `chronoctl synth`"
    )]
    MissingOutput {
        /// The stack with the parameter.
        stack: String,
        /// The parameter.
        parameter: String,
        /// The source stack (short name).
        source_stack: String,
        /// The output key.
        output: String,
    },
    /// A stack runs the runtime image, but the plan has none.
    #[error(
        "stack {stack}: parameter {parameter} needs the runtime image; let `chronoctl deploy` build it (in the source tree) or pass --artifacts DIR from `chronoctl build --out DIR`"
    )]
    NoImage {
        /// The stack.
        stack: String,
        /// The parameter.
        parameter: String,
    },
    /// The runtime image could not be pushed or is not in ECR.
    #[error(transparent)]
    Image(#[from] crate::deploy::image::ImageShipError),
    /// `diff --out` / `deploy --plan` refused (something moved since the plan, or a stack
    /// cannot be planned).
    #[error("plan refused: {0}")]
    PlanMoved(String),
    /// Hot swap refused.
    #[error("hotswap refused: {0}")]
    HotswapRefused(String),
    /// A stack needed for this command is not deployed.
    #[error("stack {0} is not deployed; run `chronoctl deploy` (or `chronoctl onboard`) first")]
    NotDeployed(String),
    /// Destroy without `--yes`.
    #[error("destroy deletes {0}; rerun with --yes to confirm")]
    ConfirmDestroy(String),
    /// Destroy of data in a non-preview stage without `--release-data`.
    #[error(
        "stage {stage} keeps its data: {stack} would delete {}; rerun with --release-data to delete it",
        .resources.join(", ")
    )]
    DataProtected {
        /// Stage.
        stage: String,
        /// Stack name.
        stack: String,
        /// Logical ids of the data resources.
        resources: Vec<String>,
    },
    /// Some stacks failed; details were reported per stack.
    #[error("{failed} of {total} stacks failed: {first}")]
    StacksFailed {
        /// Number of failed stacks.
        failed: usize,
        /// Number of stacks.
        total: usize,
        /// The first failure.
        first: Box<DeployError>,
    },
    /// An onboarding step failed.
    #[error("onboard step `{step}` failed: {message}")]
    Onboard {
        /// The step.
        step: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl From<crate::aws::error::AwsError> for DeployError {
    fn from(e: crate::aws::error::AwsError) -> Self {
        Self::Call(Box::new(e))
    }
}

fn stack_failed(stack: &str, status: &str, rc: Option<&RootCause>, reason: Option<&str>) -> String {
    let mut s = format!("stack {stack} failed ({status})");
    match rc {
        Some(rc) => {
            s.push_str(&format!(
                "\n  root cause: {} ({}) {}: {}",
                rc.logical_id,
                rc.resource_type,
                rc.status,
                first_line(&rc.reason)
            ));
        }
        None => {
            if let Some(r) = reason {
                s.push_str(&format!("\n  reason: {}", first_line(r)));
            }
        }
    }
    if status == "UPDATE_ROLLBACK_FAILED" {
        s.push_str("\n  run `chronoctl recover` to continue the rollback");
    } else if status == "ROLLBACK_COMPLETE" {
        s.push_str("\n  fix the cause, then rerun with --yes to delete and recreate the stack");
    } else if status == "CREATE_FAILED" || status == "UPDATE_FAILED" {
        // only with rollback disabled; RollbackStack leaves the state:
        // https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_RollbackStack.html
        s.push_str(&format!(
            "\n  its last operation ran with rollback disabled: roll it back (`aws cloudformation rollback-stack --stack-name {stack}`), then rerun"
        ));
    } else if status == "DELETE_FAILED" {
        s.push_str("\n  a delete failed: finish it (delete the resources named in the stack events, then the stack) before deploying again");
    }
    s
}

fn rollback_failed(stack: &str, short: &str, skip: &[String]) -> String {
    let mut s = format!(
        "stack {stack} is in UPDATE_ROLLBACK_FAILED; run `chronoctl recover --stack {short}` to continue the rollback"
    );
    if !skip.is_empty() {
        s.push_str(&format!(
            "\n  resources that failed to roll back (add `--skip {}` if they cannot be fixed)",
            skip.join(",")
        ));
    }
    s
}

fn first_line(s: &str) -> &str {
    let l = s.lines().next().unwrap_or("");
    if l.len() > 300 {
        let mut end = 300;
        while !l.is_char_boundary(end) {
            end -= 1;
        }
        &l[..end]
    } else {
        l
    }
}

/// Formats an SDK error as `Code: message`.
pub(crate) fn sdk_message<E, R>(e: &aws_sdk_cloudformation::error::SdkError<E, R>) -> String
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("error"),
            se.message().unwrap_or("no message")
        ),
        None => match std::error::Error::source(e) {
            Some(src) => format!("{e}: {src}"),
            None => format!("{e}"),
        },
    }
}
