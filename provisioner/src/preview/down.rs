//! `chronoctl preview down NAME` and `chronoctl preview gc`: delete a preview from its
//! name alone. The stacks, their order (`chrono:depends-on` tags) and the buckets to empty
//! (from each stack's deployed template) all come from the account; the engine's
//! `destroy` deletes them in reverse order, emptying versioned buckets (every version and
//! delete marker) first. The shared account bootstrap is never deleted.
//!
//! Slow deletions are waited out: a Lambda function in a VPC leaves its network
//! interfaces behind for up to tens of minutes after it is deleted, and CloudFormation can
//! report DELETE_FAILED for the security groups and subnets they hold
//! (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html>,
//! "Lambda Hyperplane ENIs"). `down` shows progress, retries the deletion a few times, and
//! at the end reports what remains instead of failing on the first timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_contract::tags;

use crate::deploy::destroy::{DestroyOptions, DestroyedStack};
use crate::deploy::plan::BOOTSTRAP;
use crate::deploy::progress::Event;
use crate::deploy::{DeployPlan, Engine, PlannedStack};
use crate::preview::PreviewError;
use crate::preview::inventory::{self, GcVerdict, LiveStack, Preview};

/// Deletion attempts before `down` gives up and reports what remains.
pub const ATTEMPTS: usize = 3;

/// The destroy plan of a preview, from its stacks' tags: each stack depends on the stacks
/// its `chrono:depends-on` tag names that still exist; the bootstrap is the shared account
/// stack (never deleted) with its deployed template (`bootstrap_body`, for its outputs).
pub fn plan_of(p: &Preview, bootstrap_body: &str) -> DeployPlan {
    let mut plan = DeployPlan::new(p.name.clone(), "preview");
    let mut boot = PlannedStack::new(BOOTSTRAP, bootstrap_body);
    boot.shared_name = Some(chrono_stacks::bootstrap::ACCOUNT_STACK.to_owned());
    plan.stacks.push(boot);
    for (short, s) in &p.stacks {
        let mut ps = PlannedStack::new(short.clone(), "");
        ps.depends_on = s
            .tags
            .get(tags::DEPENDS_ON)
            .map(|d| {
                d.split_whitespace()
                    .filter(|d| *d == BOOTSTRAP || p.stacks.contains_key(*d))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        plan.stacks.push(ps);
    }
    plan
}

/// What `down` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DownReport {
    /// The preview.
    pub name: String,
    /// What destroy did, per stack (of the last attempt that got that far).
    pub stacks: Vec<DestroyedStack>,
    /// Stacks still there at the end (name → status).
    pub remaining: BTreeMap<String, String>,
    /// Errors of the attempts that failed.
    pub errors: Vec<String>,
    /// Whether nothing was deleted (`--dry-run`).
    pub dry_run: bool,
}

/// Deletes the preview `name`; an unknown name is an error (listing what exists).
pub async fn down(engine: &Engine, name: &str) -> Result<DownReport, PreviewError> {
    let previews = inventory::previews(&engine.clients.cfn).await?;
    let Some(p) = previews.iter().find(|p| p.name == name) else {
        return Err(PreviewError::NotFound {
            name: name.to_owned(),
            known: previews.iter().map(|p| p.name.clone()).collect(),
        });
    };
    down_preview(engine, p).await
}

async fn down_preview(engine: &Engine, p: &Preview) -> Result<DownReport, PreviewError> {
    let mut report = DownReport {
        name: p.name.clone(),
        stacks: Vec::new(),
        remaining: BTreeMap::new(),
        errors: Vec::new(),
        dry_run: engine.opts.dry_run,
    };
    let mut current = p.clone();
    let boot_stack = chrono_stacks::bootstrap::ACCOUNT_STACK;
    let boot_body = match crate::deploy::cfn::describe(&engine.clients.cfn, boot_stack).await? {
        Some(_) => crate::deploy::cfn::get_template(&engine.clients.cfn, boot_stack).await?,
        None => String::new(),
    };
    for attempt in 1..=ATTEMPTS {
        wait_in_progress(engine, &current).await?;
        match engine
            .destroy(
                &plan_of(&current, &boot_body),
                DestroyOptions {
                    yes: true,
                    release_data: false,
                },
            )
            .await
        {
            Ok(rows) => {
                report.stacks = rows;
                report.errors.clear();
                break;
            }
            Err(e) => {
                engine.reporter.on(&Event::Info {
                    message: format!(
                        "preview {}: deletion attempt {attempt}/{ATTEMPTS} stopped: {e}",
                        p.name
                    ),
                });
                report.errors.push(e.to_string());
            }
        }
        match remaining_of(engine, &p.name).await? {
            Some(rest) => current = rest,
            None => break,
        }
    }
    if !engine.opts.dry_run
        && let Some(rest) = remaining_of(engine, &p.name).await?
    {
        report.remaining = rest
            .stacks
            .values()
            .map(|s| (s.stack_name.clone(), s.status.clone()))
            .collect();
    }
    Ok(report)
}

async fn remaining_of(engine: &Engine, name: &str) -> Result<Option<Preview>, PreviewError> {
    Ok(inventory::previews(&engine.clients.cfn)
        .await?
        .into_iter()
        .find(|p| p.name == name))
}

/// Waits (with progress, bounded by the engine's stack timeout) until no stack of the
/// preview is in an operation: `destroy` refuses stacks in progress.
async fn wait_in_progress(engine: &Engine, p: &Preview) -> Result<(), PreviewError> {
    let start = std::time::Instant::now();
    let timing = engine.opts.timing;
    let mut last_report = Duration::ZERO;
    loop {
        let live = inventory::live_stacks(&engine.clients.cfn).await?;
        let busy: Vec<&LiveStack> = live
            .iter()
            .filter(|s| p.stacks.values().any(|o| o.stack_name == s.stack_name))
            .filter(|s| s.status.ends_with("_IN_PROGRESS"))
            .collect();
        if busy.is_empty() {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= last_report + Duration::from_secs(30) || last_report.is_zero() {
            last_report = waited.max(Duration::from_millis(1));
            engine.reporter.on(&Event::Info {
                message: format!(
                    "preview {}: waiting for {} ({}s; deleting Lambda network interfaces can take many minutes)",
                    p.name,
                    busy.iter()
                        .map(|s| format!("{} {}", s.stack_name, s.status))
                        .collect::<Vec<_>>()
                        .join(", "),
                    waited.as_secs()
                ),
            });
        }
        if waited > timing.stack_timeout {
            return Ok(());
        }
        tokio::time::sleep(timing.poll).await;
    }
}

/// One preview's fate in a gc run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GcRow {
    /// The preview.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// `chrono:expires-at`.
    pub expires_at: String,
    /// Verdict.
    pub verdict: GcVerdict,
    /// What `down` did (expired previews, not in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down: Option<DownReport>,
}

/// Deletes every expired preview (only stacks tagged `chrono:preview=true` and managed by
/// chronoctl: [`inventory::is_preview_stack`]); with `--dry-run` (the engine's) it only
/// reports.
pub async fn gc(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<GcRow>, PreviewError> {
    let mut rows = Vec::new();
    for p in inventory::previews(&engine.clients.cfn).await? {
        let verdict = inventory::gc_verdict(&p, now);
        let down = if verdict == GcVerdict::Expired && !engine.opts.dry_run {
            Some(down_preview(engine, &p).await?)
        } else {
            None
        };
        rows.push(GcRow {
            name: p.name.clone(),
            owner: p.owner.clone(),
            expires_at: p.expires_at.clone(),
            verdict,
            down,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destroy_plan_comes_from_tags_and_spares_the_account_bootstrap() {
        let mk = |name: &str, deps: &str| LiveStack {
            stack_name: format!("chrono-feat-preview-{name}"),
            status: "CREATE_COMPLETE".into(),
            created: None,
            tags: [
                (tags::PREVIEW, "true"),
                (tags::MANAGED_BY, "chronoctl"),
                (tags::STAGE, "preview"),
                (tags::CUSTOMER, "feat"),
                (tags::DEPENDS_ON, deps),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            outputs: BTreeMap::new(),
        };
        // `web` is gone already: `data` no longer waits for it
        let p = &inventory::group(&[
            mk("network", ""),
            mk("data", "network web"),
            mk("compute", "bootstrap network data"),
        ])[0];
        let plan = plan_of(p, "");
        let order: Vec<&str> = plan
            .order()
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(order, ["bootstrap", "network", "data", "compute"]);
        assert_eq!(plan.stack_name("bootstrap"), "chrono-bootstrap");
        assert_eq!(plan.stack_name("data"), "chrono-feat-preview-data");
    }
}
