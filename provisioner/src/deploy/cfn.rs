//! Thin CloudFormation operations used by every command: describe a stack (what its status
//! means is [`super::decide`]'s), create/wait/execute/delete change sets, wait for a stack while streaming its
//! events, and find the root cause of a failure.
//!
//! Polling intervals and timeouts come from [`Timing`], so tests can run them fast.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, StackEvent, Tag,
};

use crate::aws::error::{AwsError, Service};
use crate::deploy::error::{DeployError, RootCause, sdk_message};

/// Polling and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Interval between polls.
    pub poll: Duration,
    /// Longest wait for one stack operation.
    pub stack_timeout: Duration,
    /// Longest wait for another operator's operation with `--wait`.
    pub in_progress_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(3),
            stack_timeout: Duration::from_secs(3 * 3600),
            in_progress_timeout: Duration::from_secs(3600),
        }
    }
}

/// What chronoctl needs to know about a deployed stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StackInfo {
    /// Stack status.
    pub status: String,
    /// Stack status reason.
    pub reason: Option<String>,
    /// Outputs.
    pub outputs: BTreeMap<String, String>,
    /// Current parameter values.
    pub parameters: BTreeMap<String, String>,
    /// Stack tags.
    pub tags: BTreeMap<String, String>,
    /// Last update (or creation) time, RFC 3339.
    pub last_updated: Option<String>,
    /// Whether termination protection is on.
    pub termination_protection: bool,
}

/// A failed SDK call as a [`DeployError::Aws`] (any service's client).
pub(crate) fn aws<E, R>(
    stack: &str,
    operation: &'static str,
    e: &aws_sdk_cloudformation::error::SdkError<E, R>,
) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DeployError::Aws {
        stack: stack.to_owned(),
        operation,
        message: sdk_message(e),
    }
}

/// A failed CloudFormation call as a [`DeployError::Call`]: service, operation, endpoint,
/// HTTP status, error code and what to try.
pub(crate) fn cfn_err<E>(
    cfn: &Client,
    stack: &str,
    operation: &'static str,
    e: &aws_sdk_cloudformation::error::SdkError<
        E,
        aws_sdk_cloudformation::config::http::HttpResponse,
    >,
) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let region = cfn.config().region().map_or("us-east-1", |r| r.as_ref());
    let endpoint = crate::aws::endpoint_for(Service::CloudFormation, region);
    AwsError::from_sdk(Service::CloudFormation, operation, &endpoint, e)
        .on(stack)
        .into()
}

/// The template body a stack was deployed from (`GetTemplate`, stage `Original`: as
/// submitted, before transforms).
pub async fn get_template(cfn: &Client, stack: &str) -> Result<String, DeployError> {
    let out = cfn
        .get_template()
        .stack_name(stack)
        .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
        .send()
        .await
        .map_err(|e| cfn_err(cfn, stack, "GetTemplate", &e))?;
    Ok(out.template_body().unwrap_or_default().to_owned())
}

/// Turns termination protection of a stack on or off:
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html>.
pub async fn set_termination_protection(
    cfn: &Client,
    stack: &str,
    enable: bool,
) -> Result<(), DeployError> {
    cfn.update_termination_protection()
        .stack_name(stack)
        .enable_termination_protection(enable)
        .send()
        .await
        .map_err(|e| cfn_err(cfn, stack, "UpdateTerminationProtection", &e))?;
    Ok(())
}

fn is_missing<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ValidationError") && e.message().is_some_and(|m| m.contains("does not exist"))
}

/// Describes a stack; `None` when it does not exist.
pub async fn describe(cfn: &Client, stack: &str) -> Result<Option<StackInfo>, DeployError> {
    let out = match cfn.describe_stacks().stack_name(stack).send().await {
        Ok(o) => o,
        Err(e) if e.as_service_error().is_some_and(is_missing) => return Ok(None),
        Err(e) => return Err(cfn_err(cfn, stack, "DescribeStacks", &e)),
    };
    let Some(s) = out.stacks().first() else {
        return Ok(None);
    };
    let info = stack_info(s);
    if info.status == "DELETE_COMPLETE" {
        return Ok(None);
    }
    Ok(Some(info))
}

/// What chronoctl needs of a stack `DescribeStacks` returned.
pub fn stack_info(s: &aws_sdk_cloudformation::types::Stack) -> StackInfo {
    StackInfo {
        status: s
            .stack_status()
            .map(|x| x.as_str().to_owned())
            .unwrap_or_default(),
        reason: s.stack_status_reason().map(str::to_owned),
        outputs: s
            .outputs()
            .iter()
            .filter_map(|o| {
                Some((
                    o.output_key()?.to_owned(),
                    o.output_value().unwrap_or("").to_owned(),
                ))
            })
            .collect(),
        parameters: s
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_owned(),
                    p.parameter_value().unwrap_or("").to_owned(),
                ))
            })
            .collect(),
        tags: s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect(),
        last_updated: s
            .last_updated_time()
            .or(s.creation_time())
            .and_then(|t| t.fmt(aws_smithy_types_fmt()).ok()),
        termination_protection: s.enable_termination_protection().unwrap_or(false),
    }
}

fn aws_smithy_types_fmt() -> aws_sdk_cloudformation::primitives::DateTimeFormat {
    aws_sdk_cloudformation::primitives::DateTimeFormat::DateTime
}

/// One resource change of a change set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceChange {
    /// `Add`, `Modify`, `Remove`, ...
    pub action: String,
    /// Logical id.
    pub logical_id: String,
    /// Resource type.
    pub resource_type: String,
    /// `True`, `False`, `Conditional` (empty for add/remove).
    pub replacement: String,
    /// Properties (or attributes) whose change causes the modification, with whether
    /// each requires recreation (`Always`, `Conditionally`, `Never`).
    pub causes: Vec<(String, String)>,
}

/// The outcome of creating a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeSet {
    /// It has changes.
    Ready {
        /// Change set ARN.
        id: String,
        /// Its changes.
        changes: Vec<ResourceChange>,
    },
    /// CloudFormation found nothing to change; the change set was deleted.
    Empty,
}

/// Input of [`create_change_set`].
#[derive(Debug, Clone)]
pub struct ChangeSetRequest<'a> {
    /// Stack name.
    pub stack: &'a str,
    /// Create or update.
    pub create: bool,
    /// Inline body, or `None` with `template_url`.
    pub template_body: Option<&'a str>,
    /// URL of an uploaded template.
    pub template_url: Option<String>,
    /// Parameter values.
    pub parameters: &'a BTreeMap<String, String>,
    /// Stack tags.
    pub tags: &'a BTreeMap<String, String>,
    /// The change set's name ([`change_set_name`]); known before the call so that an
    /// interrupted run can delete it.
    pub name: &'a str,
    /// CloudFormation's execution role (`RoleARN`), if any.
    pub role_arn: Option<&'a str>,
}

/// Prefix of the change sets chronoctl creates (the next run deletes orphans of ours).
pub const CHANGE_SET_PREFIX: &str = "chronoctl-";

/// A fresh change set name.
pub fn change_set_name() -> String {
    format!(
        "{CHANGE_SET_PREFIX}{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S%3f"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A change-set reason that means "nothing to do".
pub fn is_no_change_reason(reason: &str) -> bool {
    reason.contains("didn't contain changes")
        || reason.contains("No updates are to be performed")
        || reason.contains("does not contain changes")
}

/// Creates a change set, waits for it, and returns its changes (or `Empty`, after
/// deleting it, when there is nothing to change).
pub async fn create_change_set(
    cfn: &Client,
    req: &ChangeSetRequest<'_>,
    timing: &Timing,
) -> Result<ChangeSet, DeployError> {
    let name = req.name;
    let mut call = cfn
        .create_change_set()
        .stack_name(req.stack)
        .change_set_name(name)
        .change_set_type(if req.create {
            ChangeSetType::Create
        } else {
            ChangeSetType::Update
        })
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .description("created by chronoctl")
        .set_role_arn(req.role_arn.map(str::to_owned));
    call = match (&req.template_url, req.template_body) {
        (Some(u), _) => call.template_url(u),
        (None, Some(b)) => call.template_body(b),
        (None, None) => call,
    };
    for (k, v) in req.parameters {
        call = call.parameters(
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build(),
        );
    }
    for (k, v) in req.tags {
        call = call.tags(Tag::builder().key(k).value(v).build());
    }
    let created = match call.send().await {
        Ok(c) => c,
        // Some endpoints (the local emulator, like UpdateStack) refuse the call itself.
        Err(e)
            if e.as_service_error()
                .and_then(|se| se.message())
                .is_some_and(is_no_change_reason) =>
        {
            return Ok(ChangeSet::Empty);
        }
        Err(e) => return Err(cfn_err(cfn, req.stack, "CreateChangeSet", &e)),
    };
    let id = created.id().unwrap_or(name).to_owned();
    let start = Instant::now();
    loop {
        let mut changes = Vec::new();
        let mut token: Option<String> = None;
        let mut status;
        let mut reason;
        loop {
            let out = cfn
                .describe_change_set()
                .stack_name(req.stack)
                .change_set_name(&id)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| cfn_err(cfn, req.stack, "DescribeChangeSet", &e))?;
            status = out.status().cloned();
            reason = out.status_reason().unwrap_or("").to_owned();
            for c in out.changes() {
                if let Some(rc) = c.resource_change() {
                    changes.push(ResourceChange {
                        action: rc
                            .action()
                            .map(|a| a.as_str().to_owned())
                            .unwrap_or_default(),
                        logical_id: rc.logical_resource_id().unwrap_or("").to_owned(),
                        resource_type: rc.resource_type().unwrap_or("").to_owned(),
                        replacement: rc
                            .replacement()
                            .map(|r| r.as_str().to_owned())
                            .unwrap_or_default(),
                        causes: rc
                            .details()
                            .iter()
                            .filter_map(|d| {
                                let t = d.target()?;
                                let name =
                                    t.name().or(t.attribute().map(|a| a.as_str()))?.to_owned();
                                Some((
                                    name,
                                    t.requires_recreation()
                                        .map(|r| r.as_str().to_owned())
                                        .unwrap_or_default(),
                                ))
                            })
                            .collect(),
                    });
                }
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() || status != Some(ChangeSetStatus::CreateComplete) {
                break;
            }
        }
        match status {
            Some(ChangeSetStatus::CreateComplete) => {
                if changes.is_empty() {
                    delete_change_set(cfn, req.stack, &id).await?;
                    return Ok(ChangeSet::Empty);
                }
                return Ok(ChangeSet::Ready { id, changes });
            }
            Some(ChangeSetStatus::Failed) => {
                if is_no_change_reason(&reason) {
                    delete_change_set(cfn, req.stack, &id).await?;
                    return Ok(ChangeSet::Empty);
                }
                return Err(DeployError::ChangeSetFailed {
                    stack: req.stack.to_owned(),
                    reason,
                });
            }
            _ => {}
        }
        if start.elapsed() > timing.stack_timeout {
            return Err(DeployError::Timeout {
                stack: req.stack.to_owned(),
                status: status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                timeout_s: timing.stack_timeout.as_secs(),
            });
        }
        tokio::time::sleep(timing.poll).await;
    }
}

/// Deletes a change set.
pub async fn delete_change_set(cfn: &Client, stack: &str, id: &str) -> Result<(), DeployError> {
    cfn.delete_change_set()
        .stack_name(stack)
        .change_set_name(id)
        .send()
        .await
        .map_err(|e| cfn_err(cfn, stack, "DeleteChangeSet", &e))?;
    Ok(())
}

/// Deletes the change sets of chronoctl ([`CHANGE_SET_PREFIX`]) left on a stack by runs
/// that were killed between creating and executing them (never one being executed).
/// Returns their names. Call it only under the deploy lock: then no other run of ours
/// has a change set waiting.
pub async fn delete_orphan_change_sets(
    cfn: &Client,
    stack: &str,
) -> Result<Vec<String>, DeployError> {
    use aws_sdk_cloudformation::types::ExecutionStatus;
    let mut orphans = Vec::new();
    let mut pages = cfn
        .list_change_sets()
        .stack_name(stack)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| cfn_err(cfn, stack, "ListChangeSets", &e))?;
        for c in page.summaries() {
            // AWS answers for `stack` only; moto's ListChangeSets ignores StackName and
            // lists the region's change sets, where another stack's fresh one must be left
            let this_stack = c
                .stack_name()
                .is_none_or(|n| n == stack || c.stack_id() == Some(stack));
            let ours = this_stack
                && c.change_set_name()
                    .is_some_and(|n| n.starts_with(CHANGE_SET_PREFIX));
            let idle = matches!(
                c.execution_status(),
                Some(ExecutionStatus::Available | ExecutionStatus::Unavailable)
            );
            if ours
                && idle
                && let Some(id) = c.change_set_id().or(c.change_set_name())
            {
                orphans.push((id.to_owned(), c.change_set_name().unwrap_or(id).to_owned()));
            }
        }
    }
    let mut names = Vec::new();
    for (id, name) in orphans {
        delete_change_set(cfn, stack, &id).await?;
        names.push(name);
    }
    Ok(names)
}

/// Executes a change set.
pub async fn execute_change_set(cfn: &Client, stack: &str, id: &str) -> Result<(), DeployError> {
    cfn.execute_change_set()
        .stack_name(stack)
        .change_set_name(id)
        .send()
        .await
        .map_err(|e| cfn_err(cfn, stack, "ExecuteChangeSet", &e))?;
    Ok(())
}

/// Deletes a stack (returns at once; use [`wait_stable`]), as CloudFormation's execution
/// role `role_arn` when given.
pub async fn delete_stack(
    cfn: &Client,
    stack: &str,
    role_arn: Option<&str>,
) -> Result<(), DeployError> {
    cfn.delete_stack()
        .stack_name(stack)
        .set_role_arn(role_arn.map(str::to_owned))
        .send()
        .await
        .map_err(|e| cfn_err(cfn, stack, "DeleteStack", &e))?;
    Ok(())
}

/// A resource event, flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceEvent {
    /// Event id.
    pub id: String,
    /// Logical id.
    pub logical_id: String,
    /// Type.
    pub resource_type: String,
    /// Status.
    pub status: String,
    /// Reason.
    pub reason: Option<String>,
}

fn flatten(e: &StackEvent) -> ResourceEvent {
    ResourceEvent {
        id: e.event_id().unwrap_or("").to_owned(),
        logical_id: e.logical_resource_id().unwrap_or("").to_owned(),
        resource_type: e.resource_type().unwrap_or("").to_owned(),
        status: e
            .resource_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        reason: e.resource_status_reason().map(str::to_owned),
    }
}

/// The id of the newest event of a stack (marks the start of an operation).
pub async fn latest_event(cfn: &Client, stack: &str) -> Result<Option<String>, DeployError> {
    match cfn.describe_stack_events().stack_name(stack).send().await {
        Ok(p) => Ok(p
            .stack_events()
            .first()
            .and_then(|e| e.event_id())
            .map(str::to_owned)),
        Err(e) if e.as_service_error().is_some_and(is_missing) => Ok(None),
        Err(e) => Err(cfn_err(cfn, stack, "DescribeStackEvents", &e)),
    }
}

/// Events newer than `seen` (an event id; `None` = all), oldest first; advances `seen`.
pub async fn new_events(
    cfn: &Client,
    stack: &str,
    seen: &mut Option<String>,
) -> Result<Vec<ResourceEvent>, DeployError> {
    let mut out = Vec::new();
    let mut pages = cfn
        .describe_stack_events()
        .stack_name(stack)
        .into_paginator()
        .send();
    'pages: while let Some(page) = pages.next().await {
        let page = match page {
            Ok(p) => p,
            Err(e) if e.as_service_error().is_some_and(is_missing) => break,
            Err(e) => return Err(cfn_err(cfn, stack, "DescribeStackEvents", &e)),
        };
        for ev in page.stack_events() {
            let f = flatten(ev);
            if seen.as_deref() == Some(f.id.as_str()) {
                break 'pages;
            }
            out.push(f);
        }
    }
    out.reverse();
    if let Some(last) = out.last() {
        *seen = Some(last.id.clone());
    }
    Ok(out)
}

/// The first resource that failed, ignoring cancellations caused by it and the stack's
/// own event.
pub fn root_cause(events: &[ResourceEvent], stack: &str) -> Option<RootCause> {
    let failed = |e: &&ResourceEvent| e.status.ends_with("_FAILED") && e.logical_id != stack;
    let cancelled = |e: &&ResourceEvent| {
        e.reason
            .as_deref()
            .is_some_and(|r| r.contains("cancelled") || r.contains("canceled"))
    };
    let pick = events
        .iter()
        .filter(failed)
        .find(|e| !cancelled(e))
        .or_else(|| events.iter().find(failed))?;
    Some(RootCause {
        logical_id: pick.logical_id.clone(),
        resource_type: pick.resource_type.clone(),
        status: pick.status.clone(),
        reason: pick
            .reason
            .clone()
            .unwrap_or_else(|| "no reason given".to_owned()),
    })
}

/// Waits until the stack leaves `*_IN_PROGRESS`, calling `on_event` for every new
/// resource event and `on_status` for every status change. Returns the final info (or
/// `None` when the stack is gone) and all events seen.
pub async fn wait_stable(
    cfn: &Client,
    stack: &str,
    timing: &Timing,
    timeout: Duration,
    mut seen: Option<String>,
    mut on_event: impl FnMut(&ResourceEvent, &str),
) -> Result<(Option<StackInfo>, Vec<ResourceEvent>), DeployError> {
    let start = Instant::now();
    let mut all = Vec::new();
    loop {
        let info = describe(cfn, stack).await?;
        let evs = new_events(cfn, stack, &mut seen).await?;
        let status = info.as_ref().map(|i| i.status.clone()).unwrap_or_default();
        for e in &evs {
            on_event(e, &status);
        }
        all.extend(evs);
        let Some(info) = info else {
            return Ok((None, all));
        };
        if !info.status.ends_with("_IN_PROGRESS") || info.status == "REVIEW_IN_PROGRESS" {
            return Ok((Some(info), all));
        }
        if start.elapsed() > timeout {
            return Err(DeployError::Timeout {
                stack: stack.to_owned(),
                status: info.status,
                timeout_s: timeout.as_secs(),
            });
        }
        tokio::time::sleep(timing.poll).await;
    }
}

/// Logical ids of resources in a failed state (the candidates to skip in
/// `ContinueUpdateRollback`).
pub async fn failed_resources(cfn: &Client, stack: &str) -> Result<Vec<String>, DeployError> {
    Ok(resources(cfn, stack)
        .await?
        .into_iter()
        .filter(|r| r.status.ends_with("_FAILED"))
        .map(|r| r.logical_id)
        .collect())
}

/// A physical resource of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResource {
    /// Logical id.
    pub logical_id: String,
    /// Physical id.
    pub physical_id: String,
    /// Type.
    pub resource_type: String,
    /// Status (`CREATE_COMPLETE`, `UPDATE_FAILED`, ...).
    pub status: String,
}

/// All resources of a stack.
pub async fn resources(cfn: &Client, stack: &str) -> Result<Vec<StackResource>, DeployError> {
    let mut out = Vec::new();
    let mut pages = cfn
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| cfn_err(cfn, stack, "ListStackResources", &e))?;
        for r in page.stack_resource_summaries() {
            out.push(StackResource {
                logical_id: r.logical_resource_id().unwrap_or("").to_owned(),
                physical_id: r.physical_resource_id().unwrap_or("").to_owned(),
                resource_type: r.resource_type().unwrap_or("").to_owned(),
                status: r.resource_status().map_or("", |s| s.as_str()).to_owned(),
            });
        }
    }
    Ok(out)
}

/// `ContinueUpdateRollback`, skipping the given resources.
pub async fn continue_update_rollback(
    cfn: &Client,
    stack: &str,
    skip: &[String],
) -> Result<(), DeployError> {
    cfn.continue_update_rollback()
        .stack_name(stack)
        .set_resources_to_skip(if skip.is_empty() {
            None
        } else {
            Some(skip.to_vec())
        })
        .send()
        .await
        .map_err(|e| cfn_err(cfn, stack, "ContinueUpdateRollback", &e))?;
    Ok(())
}
