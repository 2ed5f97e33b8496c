//! Reviewable plans, like `terraform plan -out`: `chronoctl diff --out plan.json` keeps
//! the change sets it creates and records, per stack, the template hash, a hash of the
//! parameters and the state of the stack it saw; `chronoctl deploy --plan plan.json`
//! executes exactly those change sets, under the deploy lock, and refuses — before
//! executing anything — when something moved since: the config now synthesizes other
//! templates, a stack was updated (status or last update time differ), a change set is
//! gone or no longer executable. Our own data guard runs again on the saved changes.
//!
//! Plan change sets are named `chronoplan-...`, not `chronoctl-...`: the orphan sweep of
//! a later run leaves them alone. CloudFormation deletes every other change set of a
//! stack when one is executed
//! (<https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-changesets-execute.html>),
//! so a plan made stale by a deploy loses its change sets and is refused.
//!
//! A plan covers deployed stacks only: a stack that does not exist yet (or cannot be
//! compared) makes `diff --out` refuse, as its parameters may need outputs that do not
//! exist yet; deploy it first.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::deploy::cfn::{self, ResourceChange};
use crate::deploy::engine::{DeployReport, Engine, StackOutcome, StackReport, refused_changes};
use crate::deploy::error::DeployError;
use crate::deploy::plan::DeployPlan;
use crate::deploy::progress::Event;

/// Prefix of the change sets of saved plans (not swept as orphans).
pub const PLAN_CHANGE_SET_PREFIX: &str = "chronoplan-";

/// Format version of plan files.
pub const VERSION: u32 = 1;

/// A new change set name for a saved plan.
pub fn change_set_name() -> String {
    format!(
        "{PLAN_CHANGE_SET_PREFIX}{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S%3f"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// SHA-256 of parameters (`key=value` lines, sorted).
pub fn params_hash(params: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in params {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// One stack of a saved plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedStack {
    /// Short name.
    pub name: String,
    /// CloudFormation name.
    pub stack_name: String,
    /// Hash of the template the change set was made from.
    pub template_hash: String,
    /// Hash of the parameter values of the change set.
    pub parameters_sha256: String,
    /// Stack status when planned.
    pub status: String,
    /// Last update (or creation) time when planned.
    pub last_updated: Option<String>,
    /// The change set to execute; `None` when there was nothing to change.
    pub change_set_id: Option<String>,
    /// Its changes (as reviewed).
    pub changes: Vec<ResourceChange>,
}

/// A plan file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedPlan {
    /// [`VERSION`].
    pub version: u32,
    /// Customer.
    pub customer: String,
    /// Stage.
    pub stage: String,
    /// Account of the config.
    pub account_id: Option<String>,
    /// Region of the config.
    pub region: Option<String>,
    /// When it was made (RFC 3339).
    pub created: String,
    /// Stacks, in dependency order.
    pub stacks: Vec<SavedStack>,
}

/// Reading or writing a plan file failed.
#[derive(Debug, thiserror::Error)]
#[error("plan file {path}: {reason}")]
pub struct PlanFileError {
    /// The file.
    pub path: String,
    /// What failed.
    pub reason: String,
}

impl SavedPlan {
    /// Writes the plan file.
    pub fn save(&self, path: &Path) -> Result<(), PlanFileError> {
        let err = |reason: String| PlanFileError {
            path: path.display().to_string(),
            reason,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| err(e.to_string()))
    }

    /// Reads a plan file.
    pub fn load(path: &Path) -> Result<Self, PlanFileError> {
        let err = |reason: String| PlanFileError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let p: Self = serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "not a chronoctl plan ({e}); make one with `chronoctl diff --out FILE`"
            ))
        })?;
        if p.version != VERSION {
            return Err(err(format!(
                "version {} (this chronoctl reads {VERSION}); make a new one with `chronoctl diff --out FILE`",
                p.version
            )));
        }
        Ok(p)
    }

    /// Stacks with a change set to execute.
    pub fn change_sets(&self) -> impl Iterator<Item = &SavedStack> {
        self.stacks.iter().filter(|s| s.change_set_id.is_some())
    }
}

/// What makes a saved plan differ from the plan synthesized now (customer, stage,
/// account, region, the set of stacks, a template): `None` when they agree. Pure.
pub fn template_drift(saved: &SavedPlan, now: &DeployPlan) -> Option<String> {
    if saved.customer != now.customer
        || saved.stage != now.stage
        || saved.account_id != now.account_id
        || saved.region != now.region
    {
        return Some(format!(
            "the plan is for {}-{} (account {}, region {}), the config for {}-{} (account {}, region {})",
            saved.customer,
            saved.stage,
            saved.account_id.as_deref().unwrap_or("-"),
            saved.region.as_deref().unwrap_or("-"),
            now.customer,
            now.stage,
            now.account_id.as_deref().unwrap_or("-"),
            now.region.as_deref().unwrap_or("-"),
        ));
    }
    let mut names: Vec<&str> = saved.stacks.iter().map(|s| s.name.as_str()).collect();
    let mut now_names: Vec<&str> = now.stacks.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    now_names.sort_unstable();
    if names != now_names {
        return Some(format!(
            "the plan covers stacks {}, the config now has {}",
            names.join(", "),
            now_names.join(", ")
        ));
    }
    let differ: Vec<&str> = saved
        .stacks
        .iter()
        .filter(|s| now.stack(&s.name).map(|n| &n.template_hash) != Some(&s.template_hash))
        .map(|s| s.name.as_str())
        .collect();
    (!differ.is_empty()).then(|| {
        format!(
            "the templates of {} differ from the ones planned (the config or chronoctl changed since)",
            differ.join(", ")
        )
    })
}

fn moved(detail: String) -> DeployError {
    DeployError::PlanMoved(detail)
}

impl Engine {
    /// `diff --out`: the diff, with its change sets kept and recorded for `deploy --plan`.
    /// Refuses (deleting the change sets it made) when a stack is not deployed or cannot
    /// be compared.
    pub async fn save_plan(
        &self,
        plan: &DeployPlan,
    ) -> Result<(Vec<crate::deploy::diff::StackDiff>, SavedPlan), DeployError> {
        let (diffs, saved) = self.diff_with(plan, true).await?;
        let unplannable: Vec<String> = diffs
            .iter()
            .filter(|d| !saved.iter().any(|s| s.name == d.name))
            .map(|d| format!("{} ({})", d.name, d.state))
            .collect();
        if !unplannable.is_empty() {
            for s in &saved {
                if let Some(id) = &s.change_set_id {
                    cfn::delete_change_set(&self.clients.cfn, &s.stack_name, id).await?;
                }
            }
            return Err(moved(format!(
                "no plan written: {} cannot be planned; a plan covers deployed, settled stacks — deploy first (`chronoctl deploy`), then plan the next change",
                unplannable.join(", ")
            )));
        }
        let saved = SavedPlan {
            version: VERSION,
            customer: plan.customer.clone(),
            stage: plan.stage.clone(),
            account_id: plan.account_id.clone(),
            region: plan.region.clone(),
            created: chrono::Utc::now().to_rfc3339(),
            stacks: saved,
        };
        Ok((diffs, saved))
    }

    /// `deploy --plan`: executes exactly the saved change sets, in order, under the deploy
    /// lock; refuses before executing anything when something moved since the plan.
    pub async fn execute_saved(
        &self,
        plan: &DeployPlan,
        saved: &SavedPlan,
    ) -> Result<DeployReport, DeployError> {
        let start = Instant::now();
        self.verify_account(plan).await?;
        if let Some(why) = template_drift(saved, plan) {
            return Err(moved(why));
        }
        let boot = self
            .bootstrap_info(plan)
            .await?
            .ok_or_else(|| DeployError::NotDeployed(plan.stack_name("bootstrap")))?;
        let guard = self.lock(plan, &boot).await?;
        let r = self.execute_locked(plan, saved).await;
        let released = self.release(guard).await;
        let mut report = r?;
        released?;
        report.elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }

    async fn execute_locked(
        &self,
        plan: &DeployPlan,
        saved: &SavedPlan,
    ) -> Result<DeployReport, DeployError> {
        // every check first: nothing is executed from a plan that moved
        for s in &saved.stacks {
            let info = cfn::describe(&self.clients.cfn, &s.stack_name)
                .await?
                .ok_or_else(|| moved(format!("{} was deleted since the plan", s.stack_name)))?;
            if info.status != s.status || info.last_updated != s.last_updated {
                return Err(moved(format!(
                    "{} changed since the plan (was {} at {}, is {} at {})",
                    s.stack_name,
                    s.status,
                    s.last_updated.as_deref().unwrap_or("-"),
                    info.status,
                    info.last_updated.as_deref().unwrap_or("-")
                )));
            }
            if let Some(id) = &s.change_set_id {
                self.check_change_set(s, id).await?;
                let deployed = cfn::get_template(&self.clients.cfn, &s.stack_name).await?;
                let new_body = plan
                    .stack(&s.name)
                    .map(|p| p.template_body.as_str())
                    .unwrap_or_default();
                let refused = refused_changes(
                    &s.name,
                    &s.stack_name,
                    &deployed,
                    &info.parameters,
                    new_body,
                    &info.parameters,
                    &s.changes,
                    &self.opts.allow_replace,
                )?;
                if !refused.is_empty() {
                    return Err(DeployError::ReplacementRefused {
                        stack: s.stack_name.clone(),
                        resources: refused,
                    });
                }
            }
        }
        let mut report = DeployReport::default();
        for s in &saved.stacks {
            let t = Instant::now();
            let Some(id) = &s.change_set_id else {
                report.stacks.push(StackReport {
                    name: s.name.clone(),
                    stack_name: s.stack_name.clone(),
                    outcome: StackOutcome::Unchanged,
                    elapsed_ms: 0,
                    outputs: BTreeMap::new(),
                });
                continue;
            };
            if self.opts.dry_run {
                report.stacks.push(StackReport {
                    name: s.name.clone(),
                    stack_name: s.stack_name.clone(),
                    outcome: StackOutcome::WouldUpdate,
                    elapsed_ms: 0,
                    outputs: BTreeMap::new(),
                });
                continue;
            }
            let seen = cfn::latest_event(&self.clients.cfn, &s.stack_name).await?;
            self.reporter.on(&Event::Stack {
                stack: s.name.clone(),
                state: "executing the planned change set".into(),
                done: 0,
                total: s.changes.len(),
                elapsed_ms: 0,
            });
            cfn::execute_change_set(&self.clients.cfn, &s.stack_name, id).await?;
            report.change_sets_executed += 1;
            let reporter = self.reporter.clone();
            let short = s.name.clone();
            let (info, events) = cfn::wait_stable(
                &self.clients.cfn,
                &s.stack_name,
                &self.opts.timing,
                self.opts.timing.stack_timeout,
                seen,
                |e, _| {
                    reporter.on(&Event::Resource {
                        stack: short.clone(),
                        logical_id: e.logical_id.clone(),
                        resource_type: e.resource_type.clone(),
                        status: e.status.clone(),
                        reason: e.reason.clone(),
                    });
                },
            )
            .await?;
            let status = info.as_ref().map(|i| i.status.clone()).unwrap_or_default();
            let elapsed_ms = u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX);
            let outcome = if status == "UPDATE_COMPLETE" {
                StackOutcome::Updated
            } else {
                let cause = cfn::root_cause(&events, &s.stack_name)
                    .map(|c| format!("{}: {}", c.logical_id, c.reason))
                    .unwrap_or_else(|| status.clone());
                StackOutcome::Failed(format!("{} ended {status}: {cause}", s.stack_name))
            };
            self.reporter.on(&Event::Done {
                stack: s.name.clone(),
                outcome: outcome.label().to_owned(),
                detail: match &outcome {
                    StackOutcome::Failed(m) => Some(m.clone()),
                    _ => None,
                },
                elapsed_ms,
            });
            let failed = matches!(outcome, StackOutcome::Failed(_));
            report.stacks.push(StackReport {
                name: s.name.clone(),
                stack_name: s.stack_name.clone(),
                outcome,
                elapsed_ms,
                outputs: info.map(|i| i.outputs).unwrap_or_default(),
            });
            if failed {
                // the later change sets were planned against this stack's success
                for rest in saved.stacks.iter().skip_while(|x| x.name != s.name).skip(1) {
                    report.stacks.push(StackReport {
                        name: rest.name.clone(),
                        stack_name: rest.stack_name.clone(),
                        outcome: StackOutcome::Skipped(format!(
                            "planned after {}, which failed",
                            s.name
                        )),
                        elapsed_ms: 0,
                        outputs: BTreeMap::new(),
                    });
                }
                break;
            }
        }
        Ok(report)
    }

    /// The change set must still exist, be complete and executable.
    async fn check_change_set(&self, s: &SavedStack, id: &str) -> Result<(), DeployError> {
        use aws_sdk_cloudformation::types::{ChangeSetStatus, ExecutionStatus};
        let out = self
            .clients
            .cfn
            .describe_change_set()
            .stack_name(&s.stack_name)
            .change_set_name(id)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            // AWS answers ChangeSetNotFound
            // (<https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeChangeSet.html>);
            // moto a ValidationError "... does not exist"
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    use aws_sdk_cloudformation::error::ProvideErrorMetadata;
                    se.is_change_set_not_found_exception()
                        || (se.code() == Some("ValidationError")
                            && se.message().is_some_and(|m| m.contains("does not exist")))
                }) =>
            {
                return Err(moved(format!(
                    "the planned change set of {} is gone (a deploy since executes or removes it); make a new plan with `chronoctl diff --out`",
                    s.stack_name
                )));
            }
            Err(e) => {
                return Err(cfn::cfn_err(
                    &self.clients.cfn,
                    &s.stack_name,
                    "DescribeChangeSet",
                    &e,
                ));
            }
        };
        let ok = out.status() == Some(&ChangeSetStatus::CreateComplete)
            && out.execution_status() == Some(&ExecutionStatus::Available);
        if !ok {
            return Err(moved(format!(
                "the planned change set of {} can no longer be executed (status {}, execution {}); make a new plan with `chronoctl diff --out`",
                s.stack_name,
                out.status().map_or("-", |x| x.as_str()),
                out.execution_status().map_or("-", |x| x.as_str())
            )));
        }
        let params: BTreeMap<String, String> = out
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_owned(),
                    p.parameter_value().unwrap_or_default().to_owned(),
                ))
            })
            .collect();
        if !params.is_empty() && params_hash(&params) != s.parameters_sha256 {
            return Err(moved(format!(
                "the change set of {} holds other parameters than the ones planned",
                s.stack_name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::plan::PlannedStack;

    fn saved_of(plan: &DeployPlan) -> SavedPlan {
        SavedPlan {
            version: VERSION,
            customer: plan.customer.clone(),
            stage: plan.stage.clone(),
            account_id: plan.account_id.clone(),
            region: plan.region.clone(),
            created: String::new(),
            stacks: plan
                .stacks
                .iter()
                .map(|s| SavedStack {
                    name: s.name.clone(),
                    stack_name: plan.stack_name(&s.name),
                    template_hash: s.template_hash.clone(),
                    parameters_sha256: String::new(),
                    status: "UPDATE_COMPLETE".into(),
                    last_updated: None,
                    change_set_id: None,
                    changes: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn template_drift_names_what_moved() {
        let plan = DeployPlan::new("acme", "prod")
            .in_account("111122223333", "eu-west-1")
            .with_stack(PlannedStack::new("network", "{\"a\": 1}"))
            .with_stack(PlannedStack::new("data", "{\"b\": 1}"));
        let saved = saved_of(&plan);
        assert_eq!(template_drift(&saved, &plan), None);

        let changed = DeployPlan::new("acme", "prod")
            .in_account("111122223333", "eu-west-1")
            .with_stack(PlannedStack::new("network", "{\"a\": 2}"))
            .with_stack(PlannedStack::new("data", "{\"b\": 1}"));
        let why = template_drift(&saved, &changed).unwrap();
        assert!(why.contains("templates of network differ"), "{why}");

        let other = DeployPlan::new("acme", "staging")
            .in_account("111122223333", "eu-west-1")
            .with_stack(PlannedStack::new("network", "{\"a\": 1}"))
            .with_stack(PlannedStack::new("data", "{\"b\": 1}"));
        let why = template_drift(&saved, &other).unwrap();
        assert!(why.contains("the plan is for acme-prod"), "{why}");

        let fewer = DeployPlan::new("acme", "prod")
            .in_account("111122223333", "eu-west-1")
            .with_stack(PlannedStack::new("network", "{\"a\": 1}"));
        let why = template_drift(&saved, &fewer).unwrap();
        assert!(why.contains("covers stacks data, network"), "{why}");
    }

    #[test]
    fn params_hash_depends_on_every_key_and_value() {
        let a: BTreeMap<String, String> = [("A".into(), "1".into())].into();
        let b: BTreeMap<String, String> = [("A".into(), "2".into())].into();
        let c: BTreeMap<String, String> =
            [("A".into(), "1".into()), ("B".into(), "".into())].into();
        assert_ne!(params_hash(&a), params_hash(&b));
        assert_ne!(params_hash(&a), params_hash(&c));
        assert_eq!(params_hash(&a), params_hash(&a.clone()));
    }

    #[test]
    fn plan_change_sets_are_not_swept_as_orphans() {
        assert!(!change_set_name().starts_with(cfn::CHANGE_SET_PREFIX));
    }
}
