//! `chronoctl status` and `outputs`: per stack, its status, last update, drift from the
//! synthesized template (the content hash recorded in the `chrono:template-hash` tag)
//! and its outputs, plus the resources hot-swapped since the last full deploy (pending
//! reconciliation). Read-only.

use std::collections::BTreeMap;

use crate::deploy::cfn;
use crate::deploy::engine::{Engine, resolve_outputs};
use crate::deploy::error::DeployError;
use crate::deploy::plan::{DeployPlan, TEMPLATE_HASH_TAG};

/// Drift of a deployed stack from the current templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Drift {
    /// Deployed from the current template.
    InSync,
    /// Deployed from another template (`chronoctl deploy` would update it).
    TemplateChanged,
    /// Deployed without our hash tag (by hand, or by an older chronoctl).
    Unknown,
    /// Not deployed.
    NotDeployed,
}

impl Drift {
    /// Display text.
    pub fn label(self) -> &'static str {
        match self {
            Self::InSync => "in sync",
            Self::TemplateChanged => "template changed",
            Self::Unknown => "unknown (no hash tag)",
            Self::NotDeployed => "not deployed",
        }
    }
}

/// One line of `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackStatus {
    /// Short name.
    pub name: String,
    /// CloudFormation name.
    pub stack_name: String,
    /// Status (`NOT_DEPLOYED` when absent).
    pub status: String,
    /// Last update (or creation), RFC 3339.
    pub last_updated: Option<String>,
    /// Drift from the synthesized template.
    pub drift: Drift,
    /// Outputs.
    pub outputs: BTreeMap<String, String>,
    /// Resources hot-swapped since the last full deploy (pending reconciliation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hotswapped: Vec<String>,
}

impl Engine {
    /// Status of every stack of the plan, in dependency order.
    pub async fn status(&self, plan: &DeployPlan) -> Result<Vec<StackStatus>, DeployError> {
        let mut out = Vec::new();
        for s in plan.order()? {
            let name = plan.stack_name(&s.name);
            let row = match cfn::describe(&self.clients.cfn, &name).await? {
                None => StackStatus {
                    name: s.name.clone(),
                    stack_name: name,
                    status: "NOT_DEPLOYED".into(),
                    last_updated: None,
                    drift: Drift::NotDeployed,
                    outputs: BTreeMap::new(),
                    hotswapped: Vec::new(),
                },
                Some(info) => {
                    let drift = match info.tags.get(TEMPLATE_HASH_TAG) {
                        Some(h) if *h == s.template_hash => Drift::InSync,
                        Some(_) => Drift::TemplateChanged,
                        None => Drift::Unknown,
                    };
                    let outputs =
                        resolve_outputs(&self.clients.cfn, &name, &info, Some(&s.template_body))
                            .await?;
                    StackStatus {
                        name: s.name.clone(),
                        stack_name: name,
                        status: info.status,
                        last_updated: info.last_updated,
                        drift,
                        outputs,
                        hotswapped: Vec::new(),
                    }
                }
            };
            out.push(row);
        }
        for swap in self.pending_hotswaps(plan).await? {
            if let Some(row) = out.iter_mut().find(|r| r.name == swap.stack) {
                row.hotswapped.push(swap.describe());
            }
        }
        Ok(out)
    }
}

/// Renders `status` as a table.
pub fn render_status(rows: &[StackStatus]) -> String {
    let mut s = format!(
        "{:<12} {:<26} {:<22} {:<26}\n",
        "STACK", "STATUS", "DRIFT", "LAST UPDATE"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<12} {:<26} {:<22} {:<26}\n",
            r.name,
            r.status,
            r.drift.label(),
            r.last_updated.as_deref().unwrap_or("-")
        ));
        for h in &r.hotswapped {
            s.push_str(&format!(
                "  pending reconciliation (the next full `chronoctl deploy` reconciles): {h}\n"
            ));
        }
    }
    s
}

/// Renders `outputs` as `stack.Key = value` lines.
pub fn render_outputs(rows: &[StackStatus]) -> String {
    let mut s = String::new();
    for r in rows {
        for (k, v) in &r.outputs {
            s.push_str(&format!("{}.{k} = {v}\n", r.name));
        }
    }
    s
}
