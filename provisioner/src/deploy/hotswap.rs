//! `chronoctl deploy --hotswap` (non-prod stages): when only code changed — Lambda code
//! keys and the runtime image digest — update the functions, task definitions, services
//! and the state machine directly through their service APIs, in seconds instead of a
//! CloudFormation update, and record what was swapped in the bootstrap lock table
//! (`hotswap#<customer>#<stage>`). `status` lists these pending reconciliations; the next
//! full `deploy` brings reality back in line with CloudFormation ([`Engine::reconcile_hotswaps`])
//! and clears the record.
//!
//! Anything but code (a template, a non-code parameter, a stack that is not deployed or not
//! settled, the prod stage) is refused, naming the reason. The decision is a pure function
//! of the plan, the deployed stacks and the templates ([`decide`], [`consumers`]); the
//! service calls follow it.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde_json::Value;

use crate::deploy::assets::{self, Upload};
use crate::deploy::cfn::{self, StackInfo};
use crate::deploy::engine::{BootstrapInfo, DeployReport, Engine};
use crate::deploy::error::DeployError;
use crate::deploy::lock::LOCK_KEY_ATTRIBUTE;
use crate::deploy::plan::{BOOTSTRAP, DeployPlan, ParamSource, PlanImage, TEMPLATE_HASH_TAG};
use crate::deploy::progress::Event;

/// The record key of a customer + stage in the lock table.
pub fn record_key(plan: &DeployPlan) -> String {
    format!("hotswap#{}#{}", plan.customer, plan.stage)
}

/// A code parameter whose planned value differs from the deployed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChange {
    /// Short stack name.
    pub stack: String,
    /// The parameter.
    pub parameter: String,
    /// Deployed value.
    pub old: String,
    /// Planned value.
    pub new: String,
    /// Lambda code (an asset key) or the image digest.
    pub kind: SwapKind,
}

/// What a code parameter feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapKind {
    /// `AWS::Lambda::Function` code (S3 key of the zip).
    LambdaCode,
    /// The image of `AWS::ECS::TaskDefinition` containers.
    TaskDefinition,
}

/// The deployed state of one stack, as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// CloudFormation's view (`None`: not deployed).
    pub info: Option<StackInfo>,
    /// The planned parameter values.
    pub planned: BTreeMap<String, String>,
}

/// Decides whether the plan differs from what is deployed by code only. Returns the code
/// changes (empty: nothing to do) or the reason it is not a hot swap.
pub fn decide(
    plan: &DeployPlan,
    deployed: &BTreeMap<String, Deployed>,
) -> Result<Vec<CodeChange>, String> {
    if !plan.is_hotswap_stage() {
        return Err(format!(
            "stage {} is production: hot swaps are for non-prod stages only; run `chronoctl deploy` without --hotswap",
            plan.stage
        ));
    }
    let mut changes = Vec::new();
    for s in &plan.stacks {
        let name = plan.stack_name(&s.name);
        let d = deployed.get(&s.name);
        let Some(info) = d.and_then(|d| d.info.as_ref()) else {
            return Err(format!(
                "stack {name} is not deployed; run a full `chronoctl deploy` first"
            ));
        };
        if !crate::deploy::decide::is_settled(&crate::deploy::decide::status(&info.status)) {
            return Err(format!(
                "stack {name} is {}; run a full `chronoctl deploy`",
                info.status
            ));
        }
        if info.tags.get(TEMPLATE_HASH_TAG) != Some(&s.template_hash) {
            return Err(format!(
                "stack {name}: its template changed, not only code; run a full `chronoctl deploy`"
            ));
        }
        let planned = d.map(|d| &d.planned).cloned().unwrap_or_default();
        for (k, v) in &planned {
            let old = info.parameters.get(k);
            if old == Some(v) {
                continue;
            }
            let kind = match s.parameters.get(k) {
                Some(ParamSource::AssetKey { .. }) => SwapKind::LambdaCode,
                Some(ParamSource::ImageDigest) => SwapKind::TaskDefinition,
                _ => {
                    return Err(format!(
                        "stack {name}: parameter {k} changed ({} -> {v}), which is not code; run a full `chronoctl deploy`",
                        old.map_or("unset", String::as_str)
                    ));
                }
            };
            changes.push(CodeChange {
                stack: s.name.clone(),
                parameter: k.clone(),
                old: old.cloned().unwrap_or_default(),
                new: v.clone(),
                kind,
            });
        }
        if let Some(extra) = info.parameters.keys().find(|k| !planned.contains_key(*k)) {
            return Err(format!(
                "stack {name}: parameter {extra} was removed, which is not code; run a full `chronoctl deploy`"
            ));
        }
    }
    Ok(changes)
}

/// The resources of a template that consume a code parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumers {
    /// Functions whose `Code.S3Key` is the parameter.
    pub functions: Vec<String>,
    /// Task definitions with a container image that substitutes the parameter.
    pub task_definitions: Vec<String>,
    /// Services (logical id, its task definition's logical id, its cluster's logical id).
    pub services: Vec<(String, String, String)>,
    /// State machines (logical id, the task definition it substitutes, through
    /// `DefinitionSubstitutions` or a `Fn::Sub` definition).
    pub state_machines: Vec<(String, String)>,
}

fn is_ref(v: &Value, target: &str) -> bool {
    v.get("Ref").and_then(Value::as_str) == Some(target)
}

fn mentions_param(v: &Value, param: &str) -> bool {
    let needle = format!("${{{param}}}");
    match v {
        Value::String(s) => s.contains(&needle),
        Value::Object(m) => {
            is_ref(v, param)
                || m.get("Fn::Sub").is_some_and(|s| match s {
                    Value::String(s) => s.contains(&needle),
                    Value::Array(a) => a
                        .first()
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.contains(&needle)),
                    _ => false,
                })
        }
        _ => false,
    }
}

/// Finds what consumes `param` in a template (YAML or JSON). A consumer of a kind that
/// cannot be hot-swapped is an error naming it.
pub fn consumers(template_body: &str, param: &str, kind: SwapKind) -> Result<Consumers, String> {
    let doc: Value = serde_yaml::from_str(template_body)
        .map_err(|e| format!("cannot read the template: {e}"))?;
    let resources = doc["Resources"].as_object().cloned().unwrap_or_default();
    let mut c = Consumers::default();
    for (id, r) in &resources {
        let props = &r["Properties"];
        match (r["Type"].as_str().unwrap_or_default(), kind) {
            ("AWS::Lambda::Function", SwapKind::LambdaCode)
                if is_ref(&props["Code"]["S3Key"], param) =>
            {
                c.functions.push(id.clone());
            }
            ("AWS::ECS::TaskDefinition", SwapKind::TaskDefinition)
                if props["ContainerDefinitions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|cd| mentions_param(&cd["Image"], param))) =>
            {
                c.task_definitions.push(id.clone());
            }
            _ => {
                // Any other use of the parameter cannot be swapped in place.
                let text = props.to_string();
                if text.contains(&format!("\"Ref\":\"{param}\""))
                    || text.contains(&format!("${{{param}}}"))
                {
                    return Err(format!(
                        "parameter {param} is also used by {id} ({}), which cannot be hot-swapped; run a full `chronoctl deploy`",
                        r["Type"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
    }
    for (id, r) in &resources {
        let props = &r["Properties"];
        for td in &c.task_definitions {
            match r["Type"].as_str().unwrap_or_default() {
                "AWS::ECS::Service" if is_ref(&props["TaskDefinition"], td) => {
                    let cluster = props["Cluster"]["Ref"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    c.services.push((id.clone(), td.clone(), cluster));
                }
                "AWS::StepFunctions::StateMachine"
                    if props["DefinitionSubstitutions"]
                        .as_object()
                        .is_some_and(|m| m.values().any(|v| is_ref(v, td)))
                        || mentions_param(&props["DefinitionString"], td) =>
                {
                    c.state_machines.push((id.clone(), td.clone()));
                }
                _ => {}
            }
        }
    }
    Ok(c)
}

/// One hot-swapped resource, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Swap {
    /// Short stack name.
    pub stack: String,
    /// Logical id of the function or task definition.
    pub logical_id: String,
    /// What was swapped.
    pub kind: SwapKind,
    /// The parameter whose new value it runs.
    pub parameter: String,
    /// That value (asset key or image digest).
    pub value: String,
    /// Function name, or the task definition CloudFormation manages.
    pub physical_id: String,
    /// Task definition revisions registered by hot swaps (deregistered on reconciliation).
    #[serde(default)]
    pub registered: Vec<String>,
    /// Services moved to a registered revision: (cluster, service).
    #[serde(default)]
    pub services: Vec<(String, String)>,
    /// State machines whose definition now names a registered revision.
    #[serde(default)]
    pub state_machines: Vec<String>,
    /// When (RFC 3339).
    pub at: String,
}

impl Swap {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self.kind {
            SwapKind::LambdaCode => format!(
                "{}/{}: function {} runs {} (hot-swapped {})",
                self.stack, self.logical_id, self.physical_id, self.value, self.at
            ),
            SwapKind::TaskDefinition => format!(
                "{}/{}: image {} in {} (hot-swapped {})",
                self.stack,
                self.logical_id,
                self.value,
                self.registered.last().map_or("?", String::as_str),
                self.at
            ),
        }
    }
}

/// The result of `deploy --hotswap`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HotswapReport {
    /// The code changes found.
    pub changes: usize,
    /// What was swapped now (or would be, in a dry run).
    pub swapped: Vec<Swap>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whole run.
    pub elapsed_ms: u64,
}

/// Lambda's `CodeSha256` (base64 of the zip's SHA-256) of an asset key `assets/<hex>.zip`.
pub fn code_sha256_of_key(key: &str) -> Option<String> {
    let hex_part = key.rsplit('/').next()?.split('.').next()?;
    let bytes = hex::decode(hex_part).ok()?;
    (bytes.len() == 32).then(|| base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl Engine {
    async fn load_swaps(&self, table: &str, key: &str) -> Result<Vec<Swap>, DeployError> {
        let got = self
            .clients
            .ddb
            .get_item()
            .table_name(table)
            .key(LOCK_KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| cfn::aws(table, "GetItem", &e))?;
        let Some(AttributeValue::S(text)) = got.item().and_then(|i| i.get("swaps")) else {
            return Ok(Vec::new());
        };
        serde_json::from_str(text).map_err(|e| DeployError::Aws {
            stack: table.to_owned(),
            operation: "GetItem",
            message: format!("the hot-swap record {key} is unreadable: {e}"),
        })
    }

    async fn save_swaps(&self, table: &str, key: &str, swaps: &[Swap]) -> Result<(), DeployError> {
        if swaps.is_empty() {
            self.clients
                .ddb
                .delete_item()
                .table_name(table)
                .key(LOCK_KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
                .send()
                .await
                .map_err(|e| cfn::aws(table, "DeleteItem", &e))?;
            return Ok(());
        }
        self.clients
            .ddb
            .put_item()
            .table_name(table)
            .item(LOCK_KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .item(
                "swaps",
                AttributeValue::S(serde_json::to_string(swaps).unwrap_or_default()),
            )
            .item(
                "updated_at",
                AttributeValue::S(chrono::Utc::now().to_rfc3339()),
            )
            .send()
            .await
            .map_err(|e| cfn::aws(table, "PutItem", &e))?;
        Ok(())
    }

    /// The hot swaps not yet reconciled by a full deploy (empty when nothing is deployed).
    pub async fn pending_hotswaps(&self, plan: &DeployPlan) -> Result<Vec<Swap>, DeployError> {
        match self.bootstrap_info(plan).await? {
            Some(boot) => self.load_swaps(&boot.lock_table, &record_key(plan)).await,
            None => Ok(Vec::new()),
        }
    }

    /// `deploy --hotswap`: swap code in place, or refuse naming the reason.
    pub async fn hotswap(&self, plan: &DeployPlan) -> Result<HotswapReport, DeployError> {
        let start = Instant::now();
        let refuse = |reason: String| DeployError::HotswapRefused(reason);
        if !plan.is_hotswap_stage() {
            return Err(refuse(
                decide(plan, &BTreeMap::new()).err().unwrap_or_default(),
            ));
        }
        self.verify_account(plan).await?;
        let boot = self.bootstrap_info(plan).await?.ok_or_else(|| {
            refuse(format!(
                "stack {} is not deployed; run a full `chronoctl deploy` first",
                plan.stack_name(BOOTSTRAP)
            ))
        })?;
        let guard = if self.opts.dry_run {
            None
        } else {
            Some(self.lock(plan, &boot).await?)
        };
        let result = self.hotswap_locked(plan, &boot).await;
        if let Some(g) = guard {
            self.release(g).await?;
        }
        let mut report = result?;
        report.elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }

    async fn hotswap_locked(
        &self,
        plan: &DeployPlan,
        boot: &BootstrapInfo,
    ) -> Result<HotswapReport, DeployError> {
        let asset_keys: BTreeMap<String, String> = plan
            .assets
            .iter()
            .map(|a| (a.name.clone(), a.key()))
            .collect();
        let mut deployed = BTreeMap::new();
        for s in plan.order()? {
            let info = cfn::describe(&self.clients.cfn, &plan.stack_name(&s.name)).await?;
            let planned = if info.is_some() {
                self.resolve_params(
                    plan,
                    s,
                    &BTreeMap::new(),
                    &asset_keys,
                    Some(&boot.assets_bucket),
                )
                .await?
            } else {
                BTreeMap::new()
            };
            deployed.insert(s.name.clone(), Deployed { info, planned });
        }
        let changes = decide(plan, &deployed).map_err(DeployError::HotswapRefused)?;
        let mut report = HotswapReport {
            changes: changes.len(),
            dry_run: self.opts.dry_run,
            ..HotswapReport::default()
        };
        if changes.is_empty() {
            self.info_line("hotswap: the deployed code is already this code; nothing to do");
            return Ok(report);
        }
        // Work out every consumer before touching anything.
        let mut work = Vec::new();
        for ch in &changes {
            let body = plan
                .stack(&ch.stack)
                .map(|s| s.template_body.as_str())
                .unwrap_or_default();
            let c = consumers(body, &ch.parameter, ch.kind).map_err(|r| {
                DeployError::HotswapRefused(format!("stack {}: {r}", plan.stack_name(&ch.stack)))
            })?;
            let physical: BTreeMap<String, String> =
                cfn::resources(&self.clients.cfn, &plan.stack_name(&ch.stack))
                    .await?
                    .into_iter()
                    .map(|r| (r.logical_id, r.physical_id))
                    .collect();
            work.push((ch, c, physical));
        }
        let now = chrono::Utc::now().to_rfc3339();
        let key = record_key(plan);
        let mut record = if self.opts.dry_run {
            Vec::new()
        } else {
            self.load_swaps(&boot.lock_table, &key).await?
        };
        for a in &plan.assets {
            if changes.iter().any(|c| c.new == a.key()) {
                let up = assets::upload_if_absent(
                    &self.clients.s3,
                    &boot.assets_bucket,
                    &a.key(),
                    &a.bytes,
                    self.opts.dry_run,
                )
                .await?;
                if up == Upload::Uploaded {
                    self.info_line(format!("asset {}: uploaded {}", a.name, a.key()));
                }
            }
        }
        if let PlanImage::Built(image) = &plan.image
            && changes.iter().any(|c| c.kind == SwapKind::TaskDefinition)
        {
            self.ship_image(boot, image).await?;
        }
        for (ch, c, physical) in work {
            let phys = |logical: &str| {
                physical.get(logical).cloned().ok_or_else(|| {
                    DeployError::HotswapRefused(format!(
                        "stack {}: resource {logical} is not deployed; run a full `chronoctl deploy`",
                        plan.stack_name(&ch.stack)
                    ))
                })
            };
            for f in &c.functions {
                let name = phys(f)?;
                let swap = Swap {
                    stack: ch.stack.clone(),
                    logical_id: f.clone(),
                    kind: SwapKind::LambdaCode,
                    parameter: ch.parameter.clone(),
                    value: ch.new.clone(),
                    physical_id: name.clone(),
                    registered: Vec::new(),
                    services: Vec::new(),
                    state_machines: Vec::new(),
                    at: now.clone(),
                };
                if !self.opts.dry_run {
                    self.update_function_code(&name, &boot.assets_bucket, &ch.new)
                        .await?;
                    self.info_line(format!("hotswap: function {name} now runs {}", ch.new));
                }
                upsert(&mut record, swap.clone());
                report.swapped.push(swap);
            }
            for td in &c.task_definitions {
                let cfn_arn = phys(td)?;
                let previous = record
                    .iter()
                    .find(|s| s.stack == ch.stack && s.logical_id == *td)
                    .map(|s| s.registered.clone())
                    .unwrap_or_default();
                let mut swap = Swap {
                    stack: ch.stack.clone(),
                    logical_id: td.clone(),
                    kind: SwapKind::TaskDefinition,
                    parameter: ch.parameter.clone(),
                    value: ch.new.clone(),
                    physical_id: cfn_arn.clone(),
                    registered: previous.clone(),
                    services: Vec::new(),
                    state_machines: Vec::new(),
                    at: now.clone(),
                };
                let current = previous.last().cloned().unwrap_or_else(|| cfn_arn.clone());
                let new_arn = if self.opts.dry_run {
                    format!("{current} (new revision)")
                } else {
                    self.register_with_image(&current, &ch.old, &ch.new).await?
                };
                swap.registered.push(new_arn.clone());
                for (svc, _, cluster) in c.services.iter().filter(|(_, t, _)| t == td) {
                    let (svc, cluster) = (phys(svc)?, phys(cluster)?);
                    if !self.opts.dry_run {
                        self.update_service(&cluster, &svc, &new_arn).await?;
                    }
                    swap.services.push((cluster, svc));
                }
                for (sm, _) in c.state_machines.iter().filter(|(_, t)| t == td) {
                    let sm = phys(sm)?;
                    if !self.opts.dry_run {
                        let mut olds = swap.registered.clone();
                        olds.pop();
                        olds.push(cfn_arn.clone());
                        self.point_state_machine(&sm, &olds, &new_arn).await?;
                    }
                    swap.state_machines.push(sm);
                }
                swap.services.dedup();
                swap.state_machines.dedup();
                if !self.opts.dry_run {
                    self.info_line(format!(
                        "hotswap: task definition {td} -> {new_arn} ({} services, {} state machines)",
                        swap.services.len(),
                        swap.state_machines.len()
                    ));
                }
                upsert(&mut record, swap.clone());
                report.swapped.push(swap);
            }
        }
        if !self.opts.dry_run {
            self.save_swaps(&boot.lock_table, &key, &record).await?;
        }
        Ok(report)
    }

    fn info_line(&self, message: impl Into<String>) {
        self.reporter.on(&Event::Info {
            message: message.into(),
        });
    }

    async fn update_function_code(
        &self,
        name: &str,
        bucket: &str,
        key: &str,
    ) -> Result<(), DeployError> {
        use aws_sdk_lambda::client::Waiters;
        self.clients
            .lambda
            .update_function_code()
            .function_name(name)
            .s3_bucket(bucket)
            .s3_key(key)
            .send()
            .await
            .map_err(|e| cfn::aws(name, "UpdateFunctionCode", &e))?;
        self.clients
            .lambda
            .wait_until_function_updated_v2()
            .function_name(name)
            .wait(std::time::Duration::from_secs(300))
            .await
            .map_err(|e| DeployError::Aws {
                stack: name.to_owned(),
                operation: "GetFunction (waiting for the update)",
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// Registers a copy of task definition `from` whose container images `…@old` become
    /// `…@new`; returns the new revision's ARN.
    async fn register_with_image(
        &self,
        from: &str,
        old: &str,
        new: &str,
    ) -> Result<String, DeployError> {
        let ecs = &self.clients.ecs;
        let got = ecs
            .describe_task_definition()
            .task_definition(from)
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| cfn::aws(from, "DescribeTaskDefinition", &e))?;
        let td = got.task_definition().ok_or_else(|| DeployError::Aws {
            stack: from.to_owned(),
            operation: "DescribeTaskDefinition",
            message: "no task definition in the answer".into(),
        })?;
        let containers: Vec<aws_sdk_ecs::types::ContainerDefinition> = td
            .container_definitions()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if let Some(img) = c.image()
                    && let Some(repo) = img.strip_suffix(&format!("@{old}"))
                {
                    c.image = Some(format!("{repo}@{new}"));
                }
                c
            })
            .collect();
        let out = ecs
            .register_task_definition()
            .family(td.family().unwrap_or_default())
            .set_task_role_arn(td.task_role_arn().map(str::to_owned))
            .set_execution_role_arn(td.execution_role_arn().map(str::to_owned))
            .set_network_mode(td.network_mode().cloned())
            .set_container_definitions(Some(containers))
            .set_volumes(Some(td.volumes().to_vec()))
            .set_placement_constraints(Some(td.placement_constraints().to_vec()))
            .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
            .set_cpu(td.cpu().map(str::to_owned))
            .set_memory(td.memory().map(str::to_owned))
            .set_runtime_platform(td.runtime_platform().cloned())
            .set_ephemeral_storage(td.ephemeral_storage().cloned())
            .set_tags(Some(got.tags().to_vec()).filter(|t| !t.is_empty()))
            .send()
            .await
            .map_err(|e| cfn::aws(from, "RegisterTaskDefinition", &e))?;
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_owned)
            .ok_or_else(|| DeployError::Aws {
                stack: from.to_owned(),
                operation: "RegisterTaskDefinition",
                message: "no task definition ARN in the answer".into(),
            })
    }

    async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        td: &str,
    ) -> Result<(), DeployError> {
        self.clients
            .ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .task_definition(td)
            .send()
            .await
            .map_err(|e| cfn::aws(service, "UpdateService", &e))?;
        Ok(())
    }

    /// Rewrites a state machine's definition so every task definition ARN in `olds` becomes
    /// `new` (the definition names the revision it runs).
    async fn point_state_machine(
        &self,
        arn: &str,
        olds: &[String],
        new: &str,
    ) -> Result<bool, DeployError> {
        let sfn = &self.clients.sfn;
        let got = sfn
            .describe_state_machine()
            .state_machine_arn(arn)
            .send()
            .await
            .map_err(|e| cfn::aws(arn, "DescribeStateMachine", &e))?;
        let mut def = got.definition().to_owned();
        let before = def.clone();
        for old in olds.iter().filter(|o| o.as_str() != new) {
            def = def.replace(old.as_str(), new);
        }
        if def == before {
            return Ok(false);
        }
        sfn.update_state_machine()
            .state_machine_arn(arn)
            .definition(def)
            .send()
            .await
            .map_err(|e| cfn::aws(arn, "UpdateStateMachine", &e))?;
        Ok(true)
    }

    /// After a full deploy: makes every hot-swapped resource of a successfully deployed stack
    /// match CloudFormation again (function code, services, state machine), deregisters the
    /// revisions hot swaps registered, and clears their records. Returns what was reconciled.
    pub async fn reconcile_hotswaps(
        &self,
        plan: &DeployPlan,
        boot: &BootstrapInfo,
        report: &DeployReport,
    ) -> Result<Vec<String>, DeployError> {
        let key = record_key(plan);
        let swaps = self.load_swaps(&boot.lock_table, &key).await?;
        if swaps.is_empty() {
            return Ok(Vec::new());
        }
        let mut pending = Vec::new();
        let mut done = Vec::new();
        let mut stacks: BTreeMap<String, (StackInfo, BTreeMap<String, String>)> = BTreeMap::new();
        for swap in swaps {
            let ok = report.stack(&swap.stack).is_some_and(|r| {
                !matches!(
                    r.outcome,
                    crate::deploy::StackOutcome::Failed(_)
                        | crate::deploy::StackOutcome::Skipped(_)
                )
            });
            if !ok {
                pending.push(swap);
                continue;
            }
            if !stacks.contains_key(&swap.stack) {
                let name = plan.stack_name(&swap.stack);
                let Some(info) = cfn::describe(&self.clients.cfn, &name).await? else {
                    pending.push(swap);
                    continue;
                };
                let physical = cfn::resources(&self.clients.cfn, &name)
                    .await?
                    .into_iter()
                    .map(|r| (r.logical_id, r.physical_id))
                    .collect();
                stacks.insert(swap.stack.clone(), (info, physical));
            }
            let Some((info, physical)) = stacks.get(&swap.stack) else {
                continue;
            };
            match swap.kind {
                SwapKind::LambdaCode => {
                    let Some(key) = info.parameters.get(&swap.parameter) else {
                        continue;
                    };
                    let got = self
                        .clients
                        .lambda
                        .get_function()
                        .function_name(&swap.physical_id)
                        .send()
                        .await
                        .map_err(|e| cfn::aws(&swap.physical_id, "GetFunction", &e))?;
                    let running = got.configuration().and_then(|c| c.code_sha256());
                    if running != code_sha256_of_key(key).as_deref() {
                        self.update_function_code(&swap.physical_id, &boot.assets_bucket, key)
                            .await?;
                    }
                }
                SwapKind::TaskDefinition => {
                    let Some(cfn_td) = physical.get(&swap.logical_id) else {
                        continue;
                    };
                    for (cluster, service) in &swap.services {
                        let got = self
                            .clients
                            .ecs
                            .describe_services()
                            .cluster(cluster)
                            .services(service)
                            .send()
                            .await
                            .map_err(|e| cfn::aws(service, "DescribeServices", &e))?;
                        let current = got.services().first().and_then(|s| s.task_definition());
                        if current != Some(cfn_td.as_str()) {
                            self.update_service(cluster, service, cfn_td).await?;
                        }
                    }
                    for sm in &swap.state_machines {
                        self.point_state_machine(sm, &swap.registered, cfn_td)
                            .await?;
                    }
                    for arn in swap.registered.iter().filter(|a| *a != cfn_td) {
                        // Already inactive (deregistered by hand) is fine.
                        let _ = self
                            .clients
                            .ecs
                            .deregister_task_definition()
                            .task_definition(arn)
                            .send()
                            .await;
                    }
                }
            }
            let line = format!("{}/{}", swap.stack, swap.logical_id);
            self.info_line(format!("reconciled hot swap of {line} with CloudFormation"));
            done.push(line);
        }
        self.save_swaps(&boot.lock_table, &key, &pending).await?;
        Ok(done)
    }
}

/// Replaces the record of the same resource, or appends.
fn upsert(record: &mut Vec<Swap>, swap: Swap) {
    match record
        .iter_mut()
        .find(|s| s.stack == swap.stack && s.logical_id == swap.logical_id)
    {
        Some(s) => *s = swap,
        None => record.push(swap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::plan::PlannedStack;

    const TEMPLATE: &str = r#"{
      "Parameters": {"CodeKey": {"Type": "String"}, "ImageDigest": {"Type": "String"}, "Repo": {"Type": "String"}, "Other": {"Type": "String"}},
      "Resources": {
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Bucket": "b", "S3Key": {"Ref": "CodeKey"}}}},
        "Td": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"ContainerDefinitions": [{"Image": {"Fn::Sub": "${Repo}@${ImageDigest}"}}]}},
        "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {}},
        "Svc": {"Type": "AWS::ECS::Service", "Properties": {"Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "Td"}}},
        "Sm": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {"DefinitionSubstitutions": {"TaskDefinitionArn": {"Ref": "Td"}}}}
      }
    }"#;

    fn plan(stage: &str) -> DeployPlan {
        DeployPlan::new("acme", stage).with_stack(
            PlannedStack::new("compute", TEMPLATE)
                .param(
                    "CodeKey",
                    ParamSource::AssetKey {
                        asset: "api".into(),
                    },
                )
                .param("ImageDigest", ParamSource::ImageDigest)
                .param("Other", ParamSource::Literal { value: "x".into() }),
        )
    }

    fn deployed(
        p: &DeployPlan,
        params: &[(&str, &str)],
        planned: &[(&str, &str)],
    ) -> BTreeMap<String, Deployed> {
        let s = &p.stacks[0];
        let info = StackInfo {
            status: "UPDATE_COMPLETE".into(),
            parameters: params
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            tags: [(TEMPLATE_HASH_TAG.to_owned(), s.template_hash.clone())].into(),
            ..StackInfo::default()
        };
        BTreeMap::from([(
            "compute".to_owned(),
            Deployed {
                info: Some(info),
                planned: planned
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            },
        )])
    }

    const OLD: &[(&str, &str)] = &[
        ("CodeKey", "assets/a.zip"),
        ("ImageDigest", "sha256:1"),
        ("Other", "x"),
    ];

    #[test]
    fn only_code_changes_are_hot_swaps() {
        let p = plan("staging");
        let new = [
            ("CodeKey", "assets/b.zip"),
            ("ImageDigest", "sha256:2"),
            ("Other", "x"),
        ];
        let ch = decide(&p, &deployed(&p, OLD, &new)).unwrap();
        assert_eq!(ch.len(), 2);
        assert_eq!(ch[0].kind, SwapKind::LambdaCode);
        assert_eq!(
            (ch[0].old.as_str(), ch[0].new.as_str()),
            ("assets/a.zip", "assets/b.zip")
        );
        assert_eq!(ch[1].kind, SwapKind::TaskDefinition);
        assert!(decide(&p, &deployed(&p, OLD, OLD)).unwrap().is_empty());
    }

    #[test]
    fn refusals_name_the_reason() {
        let p = plan("prod");
        let e = decide(&p, &deployed(&p, OLD, OLD)).unwrap_err();
        assert!(e.contains("production"), "{e}");

        let p = plan("preview");
        let other = [
            ("CodeKey", "assets/a.zip"),
            ("ImageDigest", "sha256:1"),
            ("Other", "y"),
        ];
        let e = decide(&p, &deployed(&p, OLD, &other)).unwrap_err();
        assert!(
            e.contains("parameter Other changed (x -> y), which is not code"),
            "{e}"
        );

        let mut d = deployed(&p, OLD, OLD);
        d.get_mut("compute")
            .unwrap()
            .info
            .as_mut()
            .unwrap()
            .tags
            .clear();
        let e = decide(&p, &d).unwrap_err();
        assert!(e.contains("template changed"), "{e}");

        let mut d = deployed(&p, OLD, OLD);
        d.get_mut("compute").unwrap().info.as_mut().unwrap().status =
            "UPDATE_ROLLBACK_FAILED".into();
        assert!(
            decide(&p, &d)
                .unwrap_err()
                .contains("UPDATE_ROLLBACK_FAILED")
        );

        let mut d = deployed(&p, OLD, OLD);
        d.get_mut("compute").unwrap().info = None;
        assert!(decide(&p, &d).unwrap_err().contains("not deployed"));
    }

    #[test]
    fn consumers_are_found_and_other_uses_refused() {
        let c = consumers(TEMPLATE, "CodeKey", SwapKind::LambdaCode).unwrap();
        assert_eq!(c.functions, ["Fn"]);
        let c = consumers(TEMPLATE, "ImageDigest", SwapKind::TaskDefinition).unwrap();
        assert_eq!(c.task_definitions, ["Td"]);
        assert_eq!(
            c.services,
            [("Svc".to_owned(), "Td".to_owned(), "Cluster".to_owned())]
        );
        assert_eq!(c.state_machines, [("Sm".to_owned(), "Td".to_owned())]);
        let sub = TEMPLATE.replace(
            r#""DefinitionSubstitutions": {"TaskDefinitionArn": {"Ref": "Td"}}"#,
            r#""DefinitionString": {"Fn::Sub": "{\"TaskDefinition\":\"${Td}\"}"}"#,
        );
        assert_ne!(sub, TEMPLATE);
        let c = consumers(&sub, "ImageDigest", SwapKind::TaskDefinition).unwrap();
        assert_eq!(c.state_machines, [("Sm".to_owned(), "Td".to_owned())]);

        let odd = TEMPLATE.replace(r#""Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {}}"#, r#""Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": {"Ref": "CodeKey"}}}"#);
        let e = consumers(&odd, "CodeKey", SwapKind::LambdaCode).unwrap_err();
        assert!(
            e.contains("Cluster (AWS::ECS::Cluster), which cannot be hot-swapped"),
            "{e}"
        );
    }

    #[test]
    fn code_sha256_of_an_asset_key_is_lambdas_base64() {
        let key = crate::deploy::plan::Asset::zip("api", b"hello".to_vec()).key();
        // base64 of SHA-256("hello")
        assert_eq!(
            code_sha256_of_key(&key).as_deref(),
            Some("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
        );
        assert_eq!(code_sha256_of_key("assets/zz.zip"), None);
    }
}
