//! `chronoctl onboard`: a new customer account in one command — deploy every stack
//! (bootstrapping on first use), migrate the database, smoke-test the API, print the
//! endpoints. Config validation and `check` run before it (in the CLI).
//!
//! Resumable: finished steps are recorded in the bootstrap lock table under
//! `onboard#<customer>#<stage>` together with a hash of the plan; a rerun of the same
//! plan redeploys (a no-op for stacks already done) and skips a migration that already
//! ran.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono_contract::outputs;
use futures::future::BoxFuture;

use crate::deploy::engine::{DeployReport, Engine, OUTPUT_ASSETS_BUCKET};
use crate::deploy::error::{DeployError, sdk_message};
use crate::deploy::lock::LOCK_KEY_ATTRIBUTE;
use crate::deploy::plan::{BOOTSTRAP, DeployPlan, content_hash};
use crate::deploy::progress::Event;

/// Outputs of every stack, by short stack name.
pub type AllOutputs = BTreeMap<String, BTreeMap<String, String>>;

/// The steps that need the runtime: database migrations and the smoke test.
pub trait OnboardHooks: Send + Sync {
    /// Runs the database migrations; returns a one-line summary.
    fn migrate<'a>(&'a self, outputs: &'a AllOutputs) -> BoxFuture<'a, Result<String, String>>;
    /// Checks the deployed API answers; returns a one-line summary.
    fn smoke<'a>(&'a self, outputs: &'a AllOutputs) -> BoxFuture<'a, Result<String, String>>;
}

/// One step of onboarding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepReport {
    /// Step name.
    pub step: String,
    /// `done`, `skipped`, `failed`.
    pub status: String,
    /// Detail.
    pub detail: String,
}

/// The result of `onboard`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OnboardReport {
    /// Steps in order.
    pub steps: Vec<StepReport>,
    /// The deploy step's report.
    pub deploy: Option<DeployReport>,
    /// Endpoints and names to hand over.
    pub endpoints: BTreeMap<String, String>,
}

/// A hash of everything that is deployed: templates, assets and the runtime image.
pub fn plan_hash(plan: &DeployPlan) -> String {
    let mut s = String::new();
    for st in &plan.stacks {
        s.push_str(&format!("{}={};", st.name, st.template_hash));
    }
    for a in &plan.assets {
        s.push_str(&format!("{}={};", a.name, a.content_hash()));
    }
    if let Some(d) = plan.image.digest() {
        s.push_str(&format!("image={d};"));
    }
    content_hash(s.as_bytes())
}

impl Engine {
    async fn progress(&self, table: &str, key: &str) -> Result<(String, Vec<String>), DeployError> {
        let got = self
            .clients
            .ddb
            .get_item()
            .table_name(table)
            .key(LOCK_KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DeployError::Aws {
                stack: table.to_owned(),
                operation: "GetItem",
                message: sdk_message(&e),
            })?;
        let Some(item) = got.item() else {
            return Ok((String::new(), Vec::new()));
        };
        let s = |k: &str| match item.get(k) {
            Some(AttributeValue::S(v)) => v.clone(),
            _ => String::new(),
        };
        let done = s("done")
            .split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect();
        Ok((s("plan_hash"), done))
    }

    async fn save_progress(
        &self,
        table: &str,
        key: &str,
        hash: &str,
        done: &[String],
    ) -> Result<(), DeployError> {
        self.clients
            .ddb
            .put_item()
            .table_name(table)
            .item(LOCK_KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .item("plan_hash", AttributeValue::S(hash.to_owned()))
            .item("done", AttributeValue::S(done.join(",")))
            .item(
                "updated_at",
                AttributeValue::S(chrono::Utc::now().to_rfc3339()),
            )
            .send()
            .await
            .map_err(|e| DeployError::Aws {
                stack: table.to_owned(),
                operation: "PutItem",
                message: sdk_message(&e),
            })?;
        Ok(())
    }

    /// Onboards the plan's account. Stops at the first failed step (rerun to resume).
    pub async fn onboard(
        &self,
        plan: &DeployPlan,
        hooks: &dyn OnboardHooks,
    ) -> Result<OnboardReport, DeployError> {
        let mut report = OnboardReport::default();
        let hash = plan_hash(plan);
        let key = format!("onboard#{}#{}", plan.customer, plan.stage);

        let deploy = self.deploy(plan).await?;
        let ok = deploy.is_success();
        let first_failure = deploy.stacks.iter().find_map(|s| match &s.outcome {
            crate::deploy::StackOutcome::Failed(m) => Some(format!("{}: {m}", s.name)),
            _ => None,
        });
        report.steps.push(StepReport {
            step: "deploy".into(),
            status: if ok { "done" } else { "failed" }.into(),
            detail: format!(
                "{} stacks, {} change sets executed",
                deploy.stacks.len(),
                deploy.change_sets_executed
            ),
        });
        report.deploy = Some(deploy.clone());
        if !ok {
            return Err(DeployError::Onboard {
                step: "deploy",
                message: first_failure.unwrap_or_else(|| "a stack did not deploy".into()),
            });
        }
        if self.opts.dry_run {
            for step in ["migrate", "smoke"] {
                report.steps.push(StepReport {
                    step: step.into(),
                    status: "skipped".into(),
                    detail: "dry run".into(),
                });
            }
            return Ok(report);
        }
        let outputs: AllOutputs = deploy
            .stacks
            .iter()
            .map(|s| (s.name.clone(), s.outputs.clone()))
            .collect();
        let boot = self
            .bootstrap_info(plan)
            .await?
            .ok_or_else(|| DeployError::NotDeployed(plan.stack_name(BOOTSTRAP)))?;
        let (saved_hash, mut done) = self.progress(&boot.lock_table, &key).await?;
        if saved_hash != hash {
            done.clear();
        }
        if !done.iter().any(|d| d == "deploy") {
            done.push("deploy".into());
            self.save_progress(&boot.lock_table, &key, &hash, &done)
                .await?;
        }

        if done.iter().any(|d| d == "migrate") {
            report.steps.push(StepReport {
                step: "migrate".into(),
                status: "skipped".into(),
                detail: "done in an earlier run".into(),
            });
        } else {
            self.reporter.on(&Event::Info {
                message: "migrating the database".into(),
            });
            match hooks.migrate(&outputs).await {
                Ok(d) => {
                    report.steps.push(StepReport {
                        step: "migrate".into(),
                        status: "done".into(),
                        detail: d,
                    });
                    done.push("migrate".into());
                    self.save_progress(&boot.lock_table, &key, &hash, &done)
                        .await?;
                }
                Err(m) => {
                    return Err(DeployError::Onboard {
                        step: "migrate",
                        message: m,
                    });
                }
            }
        }

        self.reporter.on(&Event::Info {
            message: "smoke test".into(),
        });
        match hooks.smoke(&outputs).await {
            Ok(d) => report.steps.push(StepReport {
                step: "smoke".into(),
                status: "done".into(),
                detail: d,
            }),
            Err(m) => {
                return Err(DeployError::Onboard {
                    step: "smoke",
                    message: m,
                });
            }
        }
        done.push("smoke".into());
        self.save_progress(&boot.lock_table, &key, &hash, &done)
            .await?;

        report.endpoints = self.endpoints(plan, &outputs).await?;
        Ok(report)
    }

    /// API URL, WebSocket URL, buckets, tables and log groups of a deployed account.
    pub async fn endpoints(
        &self,
        plan: &DeployPlan,
        outputs: &AllOutputs,
    ) -> Result<BTreeMap<String, String>, DeployError> {
        let mut e = BTreeMap::new();
        let pick = [
            ("api", outputs::HTTP_API_URL, "api_url"),
            ("api", outputs::WEBSOCKET_URL, "websocket_url"),
            ("data", outputs::SOURCES_BUCKET, "sources_bucket"),
            ("data", outputs::ARTIFACTS_BUCKET, "artifacts_bucket"),
            (BOOTSTRAP, OUTPUT_ASSETS_BUCKET, "assets_bucket"),
            (
                "compute",
                outputs::PIPELINE_STATE_MACHINE_ARN,
                "pipeline_state_machine",
            ),
        ];
        for (stack, out, name) in pick {
            if let Some(v) = outputs.get(stack).and_then(|o| o.get(out)) {
                e.insert(name.to_owned(), v.clone());
            }
        }
        let mut groups = Vec::new();
        for s in &plan.stacks {
            let name = plan.stack_name(&s.name);
            if crate::deploy::cfn::describe(&self.clients.cfn, &name)
                .await?
                .is_none()
            {
                continue;
            }
            for r in crate::deploy::cfn::resources(&self.clients.cfn, &name).await? {
                if r.resource_type == "AWS::Logs::LogGroup" {
                    groups.push(r.physical_id);
                }
            }
        }
        if !groups.is_empty() {
            e.insert("log_groups".into(), groups.join(", "));
        }
        Ok(e)
    }
}
