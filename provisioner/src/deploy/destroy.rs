//! `chronoctl destroy`: delete the stacks of a customer account in reverse dependency
//! order. Refuses without `--yes`. Data resources kept by their `DeletionPolicy`
//! (Retain/Snapshot) are listed; in a non-preview stage, deleting data (buckets, tables,
//! the database) needs `--release-data`, which also deletes the retained buckets and
//! tables once their stack is gone. Buckets being deleted are emptied first.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::deploy::cfn;
use crate::deploy::engine::Engine;
use crate::deploy::error::{DeployError, sdk_message};
use crate::deploy::plan::{BOOTSTRAP, DeployPlan};
use crate::deploy::progress::Event;

/// Options of `destroy`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DestroyOptions {
    /// Confirmed.
    pub yes: bool,
    /// Delete data of a non-preview stage too.
    pub release_data: bool,
}

/// A data resource and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DataResource {
    /// Logical id.
    pub logical_id: String,
    /// Type.
    pub resource_type: String,
    /// Physical id (when deployed).
    pub physical_id: String,
    /// `retained`, `snapshot`, `deleted`, `released`.
    pub fate: String,
}

/// Result for one stack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DestroyedStack {
    /// Short name.
    pub name: String,
    /// CloudFormation name.
    pub stack_name: String,
    /// `deleted`, `absent`, `would delete`.
    pub outcome: String,
    /// Data resources and their fate.
    pub data: Vec<DataResource>,
}

/// (logical id, type, deletion policy) of the stateful resources of a deployed template.
/// Fails closed: an unreadable template is an error, never "no data".
pub fn data_resources(
    stack: &str,
    body: &str,
) -> Result<Vec<(String, String, String)>, DeployError> {
    Ok(crate::deploy::guard::deletion_fates(stack, body)?
        .into_iter()
        .map(|f| (f.logical_id, f.resource_type, f.policy))
        .collect())
}

impl Engine {
    /// Destroys the plan's stacks in reverse order; the bootstrap stack goes last.
    pub async fn destroy(
        &self,
        plan: &DeployPlan,
        opts: DestroyOptions,
    ) -> Result<Vec<DestroyedStack>, DeployError> {
        self.verify_account(plan).await?;
        // Shared (account-wide) stacks are never deleted with one plan.
        let mut order: Vec<_> = plan
            .order()?
            .into_iter()
            .rev()
            .filter(|s| s.shared_name.is_none())
            .collect();
        order.sort_by_key(|s| s.name == BOOTSTRAP);
        if !opts.yes && !self.opts.dry_run {
            let names: Vec<String> = order.iter().map(|s| plan.stack_name(&s.name)).collect();
            return Err(DeployError::ConfirmDestroy(names.join(", ")));
        }
        // Refuse before deleting anything. What a stack holds is read from the deployed
        // template (GetTemplate), not the local one: that is what CloudFormation deletes.
        let mut live = Vec::new();
        let mut bodies = std::collections::BTreeMap::new();
        for s in &order {
            let name = plan.stack_name(&s.name);
            let Some(info) = cfn::describe(&self.clients.cfn, &name).await? else {
                continue;
            };
            if crate::deploy::decide::is_busy(&crate::deploy::decide::status(&info.status)) {
                return Err(DeployError::InProgress {
                    stack: name,
                    status: info.status,
                    timeout_s: self.opts.timing.in_progress_timeout.as_secs(),
                });
            }
            if info.termination_protection {
                return Err(DeployError::TerminationProtected {
                    stack: name,
                    region: self.clients.region.clone(),
                });
            }
            let body = cfn::get_template(&self.clients.cfn, &name).await?;
            let mut deleting: Vec<String> = data_resources(&name, &body)?
                .into_iter()
                .filter(|(_, _, p)| p == "Delete")
                .map(|(id, _, _)| id)
                .collect();
            deleting.sort();
            if !plan.is_disposable_stage() && !opts.release_data && !deleting.is_empty() {
                return Err(DeployError::DataProtected {
                    stage: plan.stage.clone(),
                    stack: name,
                    resources: deleting,
                });
            }
            live.push(s.name.clone());
            bodies.insert(s.name.clone(), body);
        }
        let mut report = Vec::new();
        let boot = self.bootstrap_info(plan).await?;
        let guard = match (&boot, self.opts.dry_run) {
            (Some(b), false) => Some(self.lock(plan, b).await?),
            _ => None,
        };
        let mut guard = guard;
        let mut result = Ok(());
        for s in &order {
            let name = plan.stack_name(&s.name);
            if !live.contains(&s.name) {
                report.push(DestroyedStack {
                    name: s.name.clone(),
                    stack_name: name,
                    outcome: "absent".into(),
                    data: Vec::new(),
                });
                continue;
            }
            if s.name == BOOTSTRAP {
                // The lock lives in the bootstrap stack: release it before deleting it.
                if let Some(g) = guard.take() {
                    self.release(g).await?;
                }
            }
            match self
                .destroy_one(
                    plan,
                    &s.name,
                    bodies.get(&s.name).map_or("", String::as_str),
                    opts,
                )
                .await
            {
                Ok(d) => report.push(d),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Some(g) = guard {
            self.release(g).await?;
        }
        result?;
        Ok(report)
    }

    async fn destroy_one(
        &self,
        plan: &DeployPlan,
        short: &str,
        body: &str,
        opts: DestroyOptions,
    ) -> Result<DestroyedStack, DeployError> {
        let name = plan.stack_name(short);
        let physical = cfn::resources(&self.clients.cfn, &name).await?;
        let phys = |id: &str| {
            physical
                .iter()
                .find(|r| r.logical_id == id)
                .map(|r| r.physical_id.clone())
                .unwrap_or_default()
        };
        let release = opts.release_data || plan.is_disposable_stage();
        let mut data: Vec<DataResource> = data_resources(&name, body)?
            .into_iter()
            .map(|(id, ty, policy)| DataResource {
                physical_id: phys(&id),
                fate: match policy.as_str() {
                    "Delete" => "deleted",
                    "Snapshot" => "snapshot",
                    _ if release
                        && matches!(ty.as_str(), "AWS::S3::Bucket" | "AWS::DynamoDB::Table") =>
                    {
                        "released"
                    }
                    _ => "retained",
                }
                .into(),
                logical_id: id,
                resource_type: ty,
            })
            .collect();
        if self.opts.dry_run {
            self.reporter.on(&Event::Info {
                message: format!(
                    "dry run: would delete {name}{}",
                    data.iter()
                        .map(|d| format!("; {} {} ({})", d.fate, d.logical_id, d.physical_id))
                        .collect::<String>()
                ),
            });
            return Ok(DestroyedStack {
                name: short.into(),
                stack_name: name,
                outcome: "would delete".into(),
                data,
            });
        }
        for d in data
            .iter()
            .filter(|d| d.fate == "deleted" && d.resource_type == "AWS::S3::Bucket")
        {
            self.empty_bucket(&d.physical_id).await?;
        }
        self.reporter.on(&Event::Stack {
            stack: short.into(),
            state: "DELETE_IN_PROGRESS".into(),
            done: 0,
            total: 0,
            elapsed_ms: 0,
        });
        let mark = cfn::latest_event(&self.clients.cfn, &name).await?;
        cfn::delete_stack(&self.clients.cfn, &name, self.opts.cfn_role_arn.as_deref()).await?;
        let (after, events) = cfn::wait_stable(
            &self.clients.cfn,
            &name,
            &self.opts.timing,
            self.opts.timing.stack_timeout,
            mark,
            |_, _| {},
        )
        .await?;
        if let Some(after) = after {
            return Err(DeployError::StackFailed {
                stack: name.clone(),
                status: after.status,
                root_cause: cfn::root_cause(&events, &name).map(Box::new),
                stack_reason: after.reason,
            });
        }
        for d in data
            .iter_mut()
            .filter(|d| d.fate == "released" && !d.physical_id.is_empty())
        {
            if d.resource_type == "AWS::S3::Bucket" {
                self.empty_bucket(&d.physical_id).await?;
                self.clients
                    .s3
                    .delete_bucket()
                    .bucket(&d.physical_id)
                    .send()
                    .await
                    .map_err(|e| DeployError::Aws {
                        stack: d.physical_id.clone(),
                        operation: "DeleteBucket",
                        message: sdk_message(&e),
                    })?;
            } else {
                self.clients
                    .ddb
                    .delete_table()
                    .table_name(&d.physical_id)
                    .send()
                    .await
                    .map_err(|e| DeployError::Aws {
                        stack: d.physical_id.clone(),
                        operation: "DeleteTable",
                        message: sdk_message(&e),
                    })?;
            }
        }
        self.reporter.on(&Event::Done {
            stack: short.into(),
            outcome: "deleted".into(),
            detail: None,
            elapsed_ms: 0,
        });
        Ok(DestroyedStack {
            name: short.into(),
            stack_name: name,
            outcome: "deleted".into(),
            data,
        })
    }

    /// Deletes every object version and delete marker of a bucket.
    async fn empty_bucket(&self, bucket: &str) -> Result<(), DeployError> {
        if bucket.is_empty() {
            return Ok(());
        }
        let err = |op: &'static str, m: String| DeployError::Aws {
            stack: bucket.to_owned(),
            operation: op,
            message: m,
        };
        loop {
            let page = match self
                .clients
                .s3
                .list_object_versions()
                .bucket(bucket)
                .send()
                .await
            {
                Ok(p) => p,
                Err(e)
                    if e.as_service_error().is_some_and(|s| {
                        aws_sdk_s3::error::ProvideErrorMetadata::code(s) == Some("NoSuchBucket")
                    }) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(err("ListObjectVersions", sdk_message(&e))),
            };
            let mut ids = Vec::new();
            for v in page.versions() {
                if let Some(k) = v.key() {
                    ids.push(
                        ObjectIdentifier::builder()
                            .key(k)
                            .set_version_id(v.version_id().map(str::to_owned))
                            .build(),
                    );
                }
            }
            for m in page.delete_markers() {
                if let Some(k) = m.key() {
                    ids.push(
                        ObjectIdentifier::builder()
                            .key(k)
                            .set_version_id(m.version_id().map(str::to_owned))
                            .build(),
                    );
                }
            }
            let ids: Vec<ObjectIdentifier> = ids.into_iter().filter_map(Result::ok).collect();
            if ids.is_empty() {
                return Ok(());
            }
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .build()
                .map_err(|e| err("DeleteObjects", e.to_string()))?;
            self.clients
                .s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| err("DeleteObjects", sdk_message(&e)))?;
        }
    }
}

/// Renders what destroy did.
pub fn render_destroy(rows: &[DestroyedStack]) -> String {
    let mut s = String::new();
    for r in rows {
        s.push_str(&format!("{}: {}\n", r.stack_name, r.outcome));
        for d in &r.data {
            s.push_str(&format!(
                "   {:<9} {} {} {}\n",
                d.fate, d.logical_id, d.resource_type, d.physical_id
            ));
        }
    }
    s
}
