//! `chronoctl diff`: per stack, the changes a deploy would make — from a change set that
//! is created, read and deleted (never executed) — in a readable table. Replacing or
//! removing a stateful resource is highlighted: `deploy` refuses it without
//! `--allow-replace LOGICAL_ID`.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::StackStatus;

use crate::deploy::cfn::{self, ChangeSet, ChangeSetRequest};
use crate::deploy::decide;
use crate::deploy::engine::{Engine, MAX_INLINE_TEMPLATE, needs_allow, resolve_outputs};
use crate::deploy::error::DeployError;
use crate::deploy::plan::{DeployPlan, ParamSource, TEMPLATE_HASH_TAG};
use crate::deploy::saved_plan::{self, SavedStack};

/// One row of the diff table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffRow {
    /// `Add`, `Modify`, `Remove`.
    pub action: String,
    /// Logical id.
    pub logical_id: String,
    /// Resource type.
    pub resource_type: String,
    /// `True`, `False`, `Conditional`, or empty.
    pub replacement: String,
    /// Properties causing the change (`Name (Always)`).
    pub causes: Vec<String>,
    /// `replace` / `remove` when this loses data and needs `--allow-replace`.
    pub data_loss: Option<String>,
}

/// The diff of one stack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackDiff {
    /// Short name.
    pub name: String,
    /// CloudFormation name.
    pub stack_name: String,
    /// `new`, `changes`, `no changes`, or why it cannot be compared.
    pub state: String,
    /// Changes.
    pub rows: Vec<DiffRow>,
}

impl Engine {
    /// The diff of every stack of the plan, in dependency order.
    pub async fn diff(&self, plan: &DeployPlan) -> Result<Vec<StackDiff>, DeployError> {
        Ok(self.diff_with(plan, false).await?.0)
    }

    /// The diff, and with `keep` the change sets kept for `deploy --plan` (with the state
    /// of each stack they were made against); without `keep` they are deleted.
    pub(crate) async fn diff_with(
        &self,
        plan: &DeployPlan,
        keep: bool,
    ) -> Result<(Vec<StackDiff>, Vec<SavedStack>), DeployError> {
        let mut saved = Vec::new();
        let mut out = Vec::new();
        let mut outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        self.verify_account(plan).await?;
        let boot = self.bootstrap_info(plan).await?;
        for s in plan.order()? {
            let name = plan.stack_name(&s.name);
            let info = cfn::describe(&self.clients.cfn, &name).await?;
            if let Some(i) = &info {
                let o =
                    resolve_outputs(&self.clients.cfn, &name, i, Some(&s.template_body)).await?;
                outputs.insert(s.name.clone(), o);
            }
            let mut d = StackDiff {
                name: s.name.clone(),
                stack_name: name.clone(),
                state: String::new(),
                rows: Vec::new(),
            };
            let live = info
                .as_ref()
                .filter(|i| decide::status(&i.status) != StackStatus::ReviewInProgress);
            let Some(live) = live else {
                d.state = "new".into();
                d.rows = template_resources(&s.template_body)
                    .into_iter()
                    .map(|(id, ty)| DiffRow {
                        action: "Add".into(),
                        logical_id: id,
                        resource_type: ty,
                        replacement: String::new(),
                        causes: Vec::new(),
                        data_loss: None,
                    })
                    .collect();
                out.push(d);
                continue;
            };
            if !decide::is_settled(&decide::status(&live.status)) {
                d.state = format!("cannot compare: stack is {}", live.status);
                out.push(d);
                continue;
            }
            let mut params = BTreeMap::new();
            let mut missing = None;
            for (k, src) in &s.parameters {
                let v = match src {
                    ParamSource::Literal { value } => Some(value.clone()),
                    ParamSource::AssetKey { asset } => plan.asset(asset).map(|a| a.key()),
                    ParamSource::AssetsBucket => boot.as_ref().map(|b| b.assets_bucket.clone()),
                    ParamSource::ImageDigest => plan.image.digest().map(str::to_owned),
                    ParamSource::Output { stack, output } => {
                        outputs.get(stack).and_then(|o| o.get(output)).cloned()
                    }
                };
                match v {
                    Some(v) => {
                        params.insert(k.clone(), v);
                    }
                    None => missing = Some(k.clone()),
                }
            }
            if let Some(k) = missing {
                d.state = format!(
                    "cannot compare: parameter {k} depends on a stack that is not deployed"
                );
                out.push(d);
                continue;
            }
            let mut tags = plan.tags.clone();
            tags.extend(s.tags.clone());
            tags.insert(TEMPLATE_HASH_TAG.to_owned(), s.template_hash.clone());
            let template_url = if s.template_body.len() > MAX_INLINE_TEMPLATE {
                let b = boot
                    .as_ref()
                    .ok_or_else(|| DeployError::NotDeployed(plan.stack_name("bootstrap")))?;
                let key = format!("templates/{}.template", s.template_hash);
                crate::deploy::assets::upload_if_absent(
                    &self.clients.s3,
                    &b.assets_bucket,
                    &key,
                    s.template_body.as_bytes(),
                    false,
                )
                .await?;
                Some(self.clients.object_url(&b.assets_bucket, &key))
            } else {
                None
            };
            let cs = cfn::create_change_set(
                &self.clients.cfn,
                &ChangeSetRequest {
                    stack: &name,
                    create: false,
                    template_body: if template_url.is_some() {
                        None
                    } else {
                        Some(&s.template_body)
                    },
                    template_url,
                    parameters: &params,
                    tags: &tags,
                    name: &if keep {
                        saved_plan::change_set_name()
                    } else {
                        cfn::change_set_name()
                    },
                    role_arn: self.opts.cfn_role_arn.as_deref(),
                },
                &self.opts.timing,
            )
            .await?;
            let mut kept = SavedStack {
                name: s.name.clone(),
                stack_name: name.clone(),
                template_hash: s.template_hash.clone(),
                parameters_sha256: saved_plan::params_hash(&params),
                status: live.status.clone(),
                last_updated: live.last_updated.clone(),
                change_set_id: None,
                changes: Vec::new(),
            };
            match cs {
                ChangeSet::Empty => d.state = "no changes".into(),
                ChangeSet::Ready { id, changes } => {
                    if keep {
                        kept.change_set_id = Some(id.clone());
                        kept.changes.clone_from(&changes);
                    } else {
                        cfn::delete_change_set(&self.clients.cfn, &name, &id).await?;
                    }
                    d.state = "changes".into();
                    d.rows = changes
                        .iter()
                        .map(|c| DiffRow {
                            action: c.action.clone(),
                            logical_id: c.logical_id.clone(),
                            resource_type: c.resource_type.clone(),
                            replacement: c.replacement.clone(),
                            causes: c
                                .causes
                                .iter()
                                .map(|(n, r)| {
                                    if r.is_empty() {
                                        n.clone()
                                    } else {
                                        format!("{n} ({r})")
                                    }
                                })
                                .collect(),
                            data_loss: needs_allow(&s.name, c, &self.opts.allow_replace),
                        })
                        .collect();
                }
            }
            saved.push(kept);
            out.push(d);
        }
        Ok((out, saved))
    }
}

/// (logical id, type) of every resource of a template (JSON or YAML).
pub fn template_resources(body: &str) -> Vec<(String, String)> {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(body) else {
        return Vec::new();
    };
    let Some(res) = doc.get("Resources").and_then(|r| r.as_mapping()) else {
        return Vec::new();
    };
    res.iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str()?.to_owned(),
                v.get("Type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("")
                    .to_owned(),
            ))
        })
        .collect()
}

/// Renders the diff as a table; data-losing rows are marked `!!` with what would happen.
pub fn render_diff(diffs: &[StackDiff], color: bool) -> String {
    let mut s = String::new();
    for d in diffs {
        s.push_str(&format!("{} ({}): {}\n", d.name, d.stack_name, d.state));
        if d.rows.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "   {:<8} {:<28} {:<32} {:<12} {}\n",
            "ACTION", "LOGICAL ID", "TYPE", "REPLACEMENT", "CAUSED BY"
        ));
        for r in &d.rows {
            let mark = if r.data_loss.is_some() { "!!" } else { "  " };
            let mut line = format!(
                "{mark} {:<8} {:<28} {:<32} {:<12} {}",
                r.action,
                r.logical_id,
                r.resource_type,
                if r.replacement.is_empty() {
                    "-"
                } else {
                    &r.replacement
                },
                r.causes.join(", ")
            );
            if let Some(w) = &r.data_loss {
                line.push_str(&format!(
                    "  <- would {w} a stateful resource; deploy needs --allow-replace {}",
                    r.logical_id
                ));
                if color {
                    line = format!("\x1b[1;31m{line}\x1b[0m");
                }
            }
            s.push_str(&line);
            s.push('\n');
        }
    }
    s
}
