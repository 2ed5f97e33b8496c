//! The deploy engine: bootstrap on first use, take the lock, upload assets, then deploy
//! the stacks of a plan in dependency order — independent stacks in parallel, bounded —
//! each through a change set, filling parameters from earlier stacks' outputs.
//!
//! It decides what to do from the stack's status (create, update, delete a failed create,
//! wait for or refuse another operator's operation, refuse an update that failed to roll
//! back) and reports progress through a [`Reporter`]. It never interleaves with an
//! operation it did not start.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws::Clients;
use crate::deploy::assets::{self, Upload};
use chrono_contract::outputs;

use crate::deploy::cfn::{self, ChangeSet, ChangeSetRequest, StackInfo, Timing};
use crate::deploy::error::DeployError;
use crate::deploy::lock::{self, LockGuard, LockRequest};
use crate::deploy::plan::{
    BOOTSTRAP, DeployPlan, ParamSource, PlanImage, PlannedStack, TEMPLATE_HASH_TAG,
};
use crate::deploy::progress::{Event, Reporter};
use crate::deploy::service_roles;
use crate::deploy::{decide, guard};
use aws_sdk_cloudformation::types::StackStatus;

/// Output of the bootstrap stack naming the assets bucket.
pub const OUTPUT_ASSETS_BUCKET: &str = outputs::ASSETS_BUCKET;
/// Output of the bootstrap stack naming the lock table.
pub const OUTPUT_LOCK_TABLE: &str = outputs::DEPLOY_LOCK_TABLE;
/// Output of the bootstrap stack with the ECR repository URI.
pub const OUTPUT_ECR_REPOSITORY: &str = outputs::RUNTIME_REPOSITORY_URI;

/// Largest template body CloudFormation accepts inline; larger ones go through S3.
pub const MAX_INLINE_TEMPLATE: usize = chrono_contract::limits::MAX_INLINE_TEMPLATE_BYTES;

/// Whether a resource type holds data (a type of `stacks/data/replacement.yaml`). Fails
/// closed: when that data cannot be read, every type counts as holding data.
pub fn is_stateful(resource_type: &str) -> bool {
    chrono_stacks::replacement::rules().map_or(true, |r| r.is_stateful(resource_type))
}

/// Options of `deploy` (and the parts of other commands that share them).
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Most stacks deployed at once.
    pub concurrency: usize,
    /// Polling and timeouts.
    pub timing: Timing,
    /// Print what would happen; call no mutating API.
    pub dry_run: bool,
    /// Delete stacks left in ROLLBACK_COMPLETE before re-creating them.
    pub yes: bool,
    /// Wait for operations started by someone else instead of refusing.
    pub wait: bool,
    /// Logical ids (or `stack/LogicalId`) whose replacement or removal is allowed.
    pub allow_replace: BTreeSet<String>,
    /// Lock owner description.
    pub lock_owner: String,
    /// Lock lease.
    pub lock_lease: Duration,
    /// Take the lock even when held.
    pub break_lock: bool,
    /// Registry to push the runtime image to instead of ECR's endpoint (tests).
    pub registry_url: Option<String>,
    /// `--require-approval`: a change set that broadens access (IAM statements, trust
    /// policies, resource policies, security-group rules; [`guard::broadening`]) is only
    /// executed once [`DeployOptions::approver`] says yes (refused without one).
    pub require_approval: bool,
    /// Asks a human (the CLI asks on the terminal).
    pub approver: Option<Arc<dyn Approver>>,
    /// CloudFormation's execution role (config `cfn_execution_role_arn`), sent as
    /// `RoleARN` on CreateChangeSet and DeleteStack; `None`: the caller's credentials.
    pub cfn_role_arn: Option<String>,
}

/// Asks whether a change set that broadens access may be executed.
pub trait Approver: std::fmt::Debug + Send + Sync {
    /// `true` to execute the change set of `stack`.
    fn approve<'a>(
        &'a self,
        stack: &'a str,
        broadening: &'a [guard::Broadening],
    ) -> futures::future::BoxFuture<'a, bool>;
}

impl Default for DeployOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            timing: Timing::default(),
            dry_run: false,
            yes: false,
            wait: true,
            allow_replace: BTreeSet::new(),
            lock_owner: lock::default_owner(),
            lock_lease: Duration::from_secs(120),
            break_lock: false,
            registry_url: None,
            require_approval: false,
            approver: None,
            cfn_role_arn: None,
        }
    }
}

/// What happened to one stack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum StackOutcome {
    /// Created now.
    Created,
    /// Updated now.
    Updated,
    /// Nothing to change.
    Unchanged,
    /// `--dry-run`: would be created.
    WouldCreate,
    /// `--dry-run`: would be updated (or checked through a change set).
    WouldUpdate,
    /// Failed; the message is the root cause.
    Failed(String),
    /// Not attempted because a dependency failed.
    Skipped(String),
}

impl StackOutcome {
    /// Short name used in events.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::WouldCreate => "would create",
            Self::WouldUpdate => "would update",
            Self::Failed(_) => "failed",
            Self::Skipped(_) => "skipped",
        }
    }

    fn ok(&self) -> bool {
        !matches!(self, Self::Failed(_) | Self::Skipped(_))
    }
}

/// Result of one stack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackReport {
    /// Short name.
    pub name: String,
    /// CloudFormation name.
    pub stack_name: String,
    /// Outcome.
    #[serde(flatten)]
    pub outcome: StackOutcome,
    /// Wall time.
    pub elapsed_ms: u64,
    /// Outputs after the run.
    pub outputs: BTreeMap<String, String>,
}

/// Result of a deploy run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeployReport {
    /// Per stack, in completion order.
    pub stacks: Vec<StackReport>,
    /// Change sets executed.
    pub change_sets_executed: usize,
    /// Change sets created.
    pub change_sets_created: usize,
    /// Assets uploaded now (not already present).
    pub assets_uploaded: usize,
    /// Assets already present.
    pub assets_present: usize,
    /// Whole run.
    pub elapsed_ms: u64,
    /// Holder displaced with `--break-lock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broke_lock_of: Option<String>,
    /// The runtime image push (when the plan ships an image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<crate::deploy::image::PushReport>,
    /// Hot-swapped resources brought back in line with CloudFormation by this deploy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reconciled: Vec<String>,
}

impl DeployReport {
    /// The report of a stack.
    pub fn stack(&self, name: &str) -> Option<&StackReport> {
        self.stacks.iter().find(|s| s.name == name)
    }

    /// Whether every stack succeeded.
    pub fn is_success(&self) -> bool {
        self.stacks.iter().all(|s| s.outcome.ok())
    }
}

/// The names the bootstrap stack gives us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapInfo {
    /// Assets bucket.
    pub assets_bucket: String,
    /// Lock table.
    pub lock_table: String,
    /// Name of the runtime's ECR repository (absent from stacks that have none).
    pub repository: Option<String>,
}

struct Ctx {
    clients: Clients,
    opts: DeployOptions,
    reporter: Arc<dyn Reporter>,
    tags: BTreeMap<String, String>,
    customer_stage: (String, String),
    assets_bucket: Option<String>,
    executed: AtomicUsize,
    created: AtomicUsize,
    run: Arc<RunState>,
}

/// What a run has in flight that an interrupted run must undo: the lock it holds and the
/// change sets it created but did not execute (yet). [`Engine::abort`] undoes them.
#[derive(Debug, Default)]
pub struct RunState {
    lock: std::sync::Mutex<Option<lock::LockHandle>>,
    change_sets: std::sync::Mutex<BTreeMap<String, String>>,
    caller: std::sync::OnceLock<crate::aws::Identity>,
}

impl RunState {
    fn pending(&self, stack: &str, change_set: Option<&str>) {
        let mut m = self.change_sets.lock().unwrap_or_else(|e| e.into_inner());
        match change_set {
            Some(cs) => {
                m.insert(stack.to_owned(), cs.to_owned());
            }
            None => {
                m.remove(stack);
            }
        }
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

/// Runs commands of the engine against one account.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Service clients.
    pub clients: Clients,
    /// Options.
    pub opts: DeployOptions,
    /// Where progress goes.
    pub reporter: Arc<dyn Reporter>,
    /// What the current run holds (lock, pending change sets), for [`Engine::abort`].
    pub run: Arc<RunState>,
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Engine {
    /// An engine.
    pub fn new(clients: Clients, opts: DeployOptions, reporter: Arc<dyn Reporter>) -> Self {
        Self {
            clients,
            opts,
            reporter,
            run: Arc::new(RunState::default()),
        }
    }

    /// The account guard: asks STS who the credentials act as and refuses when the plan
    /// names another account. Called before any call that changes something. `None` when
    /// the plan names no account (plans built by hand).
    pub async fn verify_account(
        &self,
        plan: &DeployPlan,
    ) -> Result<Option<crate::aws::Identity>, DeployError> {
        let Some(expected) = &plan.account_id else {
            return Ok(None);
        };
        let id = crate::aws::caller_identity(&self.clients).await?;
        if &id.account != expected {
            return Err(DeployError::WrongAccount {
                customer: plan.customer.clone(),
                stage: plan.stage.clone(),
                expected: expected.clone(),
                actual: id.account,
                arn: id.arn,
            });
        }
        self.info(format!(
            "account {} ({}), region {}, as {}",
            id.account,
            plan.stack_name(""),
            self.clients.region,
            id.arn
        ));
        let _ = self.run.caller.set(id.clone());
        Ok(Some(id))
    }

    /// Who holds the lock: the caller's ARN (when known), host and pid.
    pub fn lock_owner(&self) -> String {
        match self.run.caller.get() {
            Some(id) => format!("{} on {}", id.arn, self.opts.lock_owner),
            None => self.opts.lock_owner.clone(),
        }
    }

    /// Undoes what an interrupted run holds: deletes the change sets it created and did
    /// not execute, then releases its lock. Errors are reported, not returned: this runs
    /// on the way out.
    pub async fn abort(&self) {
        let pending: Vec<(String, String)> = {
            let mut m = self
                .run
                .change_sets
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *m).into_iter().collect()
        };
        for (stack, cs) in pending {
            match cfn::delete_change_set(&self.clients.cfn, &stack, &cs).await {
                Ok(()) => self.info(format!("interrupted: deleted change set {cs} of {stack}")),
                Err(e) => self.info(format!(
                    "interrupted: change set {cs} of {stack} not deleted: {e}"
                )),
            }
        }
        let held = self
            .run
            .lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = held {
            match h.release().await {
                Ok(()) => self.info(format!("interrupted: released the deploy lock {}", h.key)),
                Err(e) => self.info(format!(
                    "interrupted: the deploy lock was not released: {e}"
                )),
            }
        }
    }

    fn info(&self, message: impl Into<String>) {
        self.reporter.on(&Event::Info {
            message: message.into(),
        });
    }

    /// Reads the bootstrap stack's bucket and lock table (`None` if not deployed).
    pub async fn bootstrap_info(
        &self,
        plan: &DeployPlan,
    ) -> Result<Option<BootstrapInfo>, DeployError> {
        let name = plan.stack_name(BOOTSTRAP);
        let Some(info) = cfn::describe(&self.clients.cfn, &name).await? else {
            return Ok(None);
        };
        if matches!(
            decide::next_step(Some(&decide::status(&info.status)), Default::default()),
            decide::Next::StartOver | decide::Next::Refuse(decide::Refusal::NeedsDelete)
        ) {
            return Ok(None);
        }
        let body = plan.stack(BOOTSTRAP).map(|s| s.template_body.as_str());
        let outputs = resolve_outputs(&self.clients.cfn, &name, &info, body).await?;
        let missing = |k: &str| DeployError::MissingOutput {
            stack: name.clone(),
            parameter: "(bootstrap)".into(),
            source_stack: BOOTSTRAP.into(),
            output: k.into(),
        };
        let assets_bucket = outputs
            .get(OUTPUT_ASSETS_BUCKET)
            .cloned()
            .ok_or_else(|| missing(OUTPUT_ASSETS_BUCKET))?;
        let lock_table = outputs
            .get(OUTPUT_LOCK_TABLE)
            .cloned()
            .ok_or_else(|| missing(OUTPUT_LOCK_TABLE))?;
        // The repository's name: from its URI output, or (the local emulator does not
        // report `Fn::GetAtt` outputs) from the stack's ECR repository resource.
        let repository = match outputs.get(OUTPUT_ECR_REPOSITORY) {
            Some(uri) => Some(crate::deploy::image::repository_name(uri).to_owned()),
            None => cfn::resources(&self.clients.cfn, &name)
                .await?
                .into_iter()
                .find(|r| r.resource_type == "AWS::ECR::Repository")
                .map(|r| r.physical_id),
        };
        Ok(Some(BootstrapInfo {
            assets_bucket,
            lock_table,
            repository,
        }))
    }

    /// Takes the deploy lock of the plan's customer + stage.
    pub async fn lock(
        &self,
        plan: &DeployPlan,
        boot: &BootstrapInfo,
    ) -> Result<LockGuard, DeployError> {
        let owner = self.lock_owner();
        let guard = lock::acquire(
            &self.clients.ddb,
            &LockRequest {
                table: boot.lock_table.clone(),
                key: plan.lock_key(),
                owner: owner.clone(),
                lease: self.opts.lock_lease,
                break_lock: self.opts.break_lock,
            },
        )
        .await?;
        if let Some(prev) = &guard.broke {
            self.info(format!("broke the deploy lock held by {prev}"));
        }
        self.info(format!("deploy lock {} taken by {owner}", plan.lock_key()));
        *self.run.lock.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard.handle());
        Ok(guard)
    }

    /// Releases a lock taken with [`Engine::lock`].
    pub async fn release(&self, guard: LockGuard) -> Result<(), DeployError> {
        self.run
            .lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        guard.release().await?;
        Ok(())
    }

    /// Deploys a plan: bootstrap (created without the lock on first use), lock, assets,
    /// stacks. Stack failures are in the report; errors are about the run as a whole.
    pub async fn deploy(&self, plan: &DeployPlan) -> Result<DeployReport, DeployError> {
        let start = Instant::now();
        plan.order()?;
        self.verify_account(plan).await?;
        let mut report = DeployReport::default();
        let mut boot = self.bootstrap_info(plan).await?;
        let mut done: BTreeMap<String, StackReport> = BTreeMap::new();
        if boot.is_none() && plan.stack(BOOTSTRAP).is_some() {
            self.info(format!(
                "bootstrap stack {} not found: creating it (first use)",
                plan.stack_name(BOOTSTRAP)
            ));
            let only: BTreeSet<String> = [BOOTSTRAP.to_owned()].into();
            let r = self.run_stacks(plan, &only, &BTreeMap::new(), None).await;
            report.change_sets_created += r.change_sets_created;
            report.change_sets_executed += r.change_sets_executed;
            let failed = !r.is_success();
            for s in r.stacks {
                done.insert(s.name.clone(), s);
            }
            if failed || self.opts.dry_run {
                let skipped: Vec<StackReport> = plan
                    .stacks
                    .iter()
                    .filter(|s| s.name != BOOTSTRAP)
                    .map(|s| StackReport {
                        name: s.name.clone(),
                        stack_name: plan.stack_name(&s.name),
                        outcome: if self.opts.dry_run {
                            StackOutcome::WouldCreate
                        } else {
                            StackOutcome::Skipped("bootstrap failed".into())
                        },
                        elapsed_ms: 0,
                        outputs: BTreeMap::new(),
                    })
                    .collect();
                report.stacks = done.into_values().chain(skipped).collect();
                report.elapsed_ms = ms(start);
                return Ok(report);
            }
            boot = self.bootstrap_info(plan).await?;
        }
        let boot = boot.ok_or_else(|| DeployError::NotDeployed(plan.stack_name(BOOTSTRAP)))?;

        let guard = if self.opts.dry_run {
            if let Some((owner, since, _)) =
                lock::holder(&self.clients.ddb, &boot.lock_table, &plan.lock_key()).await?
            {
                self.info(format!(
                    "dry run: the deploy lock is held by {owner} since {since}"
                ));
            }
            None
        } else {
            Some(self.lock(plan, &boot).await?)
        };
        report.broke_lock_of = guard.as_ref().and_then(|g| g.broke.clone());
        let result = self.deploy_locked(plan, &boot, done, &mut report).await;
        if let Some(g) = guard {
            self.release(g).await?;
        }
        result?;
        report.elapsed_ms = ms(start);
        Ok(report)
    }

    async fn deploy_locked(
        &self,
        plan: &DeployPlan,
        boot: &BootstrapInfo,
        done: BTreeMap<String, StackReport>,
        report: &mut DeployReport,
    ) -> Result<(), DeployError> {
        let mut asset_keys = BTreeMap::new();
        for a in &plan.assets {
            let key = a.key();
            let up = assets::upload_if_absent(
                &self.clients.s3,
                &boot.assets_bucket,
                &key,
                &a.bytes,
                self.opts.dry_run,
            )
            .await?;
            match up {
                Upload::Uploaded => {
                    report.assets_uploaded += 1;
                    self.info(format!(
                        "asset {}: uploaded s3://{}/{key}",
                        a.name, boot.assets_bucket
                    ));
                }
                Upload::AlreadyPresent => report.assets_present += 1,
                Upload::WouldUpload => self.info(format!(
                    "asset {}: would upload s3://{}/{key}",
                    a.name, boot.assets_bucket
                )),
            }
            asset_keys.insert(a.name.clone(), key);
        }
        if let PlanImage::Built(image) = &plan.image
            && plan.uses_image()
        {
            report.image = Some(self.ship_image(boot, image).await?);
        }
        let todo: BTreeSet<String> = plan
            .stacks
            .iter()
            .filter(|s| !done.contains_key(&s.name))
            .map(|s| s.name.clone())
            .collect();
        self.ensure_service_roles(plan, &todo).await?;
        let mut r = self
            .run_stacks_with(
                plan,
                &todo,
                &asset_keys,
                Some(boot.assets_bucket.clone()),
                done,
            )
            .await;
        report.change_sets_created += r.change_sets_created;
        report.change_sets_executed += r.change_sets_executed;
        report.stacks.append(&mut r.stacks);
        if !self.opts.dry_run {
            report.reconciled = self.reconcile_hotswaps(plan, boot, report).await?;
        }
        Ok(())
    }

    /// The ECS service-linked role, before the first stack of `todo` that declares ECS
    /// resources ([`service_roles`]); nothing when no stack does.
    async fn ensure_service_roles(
        &self,
        plan: &DeployPlan,
        todo: &BTreeSet<String>,
    ) -> Result<(), DeployError> {
        let needs = plan.stacks.iter().any(|s| {
            todo.contains(&s.name)
                && service_roles::declares_resource_type(
                    &s.template_body,
                    service_roles::ECS_RESOURCE_PREFIX,
                )
        });
        if !needs {
            return Ok(());
        }
        let service = service_roles::ECS_SERVICE;
        if self.opts.dry_run {
            self.info(format!(
                "service-linked role of {service}: would be created if the account lacks it"
            ));
            return Ok(());
        }
        match service_roles::ensure_service_linked_role(&self.clients.iam, service).await? {
            service_roles::Ensured::Created(name) => {
                self.info(format!("service-linked role of {service}: created {name}"))
            }
            service_roles::Ensured::AlreadyThere => {
                self.info(format!("service-linked role of {service}: present"))
            }
        }
        Ok(())
    }

    async fn run_stacks(
        &self,
        plan: &DeployPlan,
        only: &BTreeSet<String>,
        asset_keys: &BTreeMap<String, String>,
        bucket: Option<String>,
    ) -> DeployReport {
        self.run_stacks_with(plan, only, asset_keys, bucket, BTreeMap::new())
            .await
    }

    /// The scheduler: launches every stack whose dependencies succeeded, at most
    /// `concurrency` at once; dependents of a failed stack are skipped.
    async fn run_stacks_with(
        &self,
        plan: &DeployPlan,
        only: &BTreeSet<String>,
        asset_keys: &BTreeMap<String, String>,
        bucket: Option<String>,
        already: BTreeMap<String, StackReport>,
    ) -> DeployReport {
        let mut tags = plan.tags.clone();
        tags.remove(TEMPLATE_HASH_TAG);
        let ctx = Arc::new(Ctx {
            clients: self.clients.clone(),
            opts: self.opts.clone(),
            reporter: self.reporter.clone(),
            tags,
            customer_stage: (plan.customer.clone(), plan.stage.clone()),
            assets_bucket: bucket.clone(),
            executed: AtomicUsize::new(0),
            created: AtomicUsize::new(0),
            run: self.run.clone(),
        });
        let sem = Arc::new(Semaphore::new(self.opts.concurrency.max(1)));
        let mut results: BTreeMap<String, StackReport> = already;
        let mut finished_order: Vec<String> = results.keys().cloned().collect();
        let order: Vec<PlannedStack> = match plan.order() {
            Ok(o) => o.into_iter().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut pending: Vec<PlannedStack> = order
            .into_iter()
            .filter(|s| only.contains(&s.name))
            .collect();
        let mut running: JoinSet<StackReport> = JoinSet::new();
        loop {
            let mut i = 0;
            while i < pending.len() {
                let s = &pending[i];
                let dep_reports: Vec<Option<&StackReport>> =
                    s.depends_on.iter().map(|d| results.get(d)).collect();
                if let Some(bad) = s
                    .depends_on
                    .iter()
                    .zip(&dep_reports)
                    .find(|(_, r)| r.is_some_and(|r| !r.outcome.ok()))
                    .map(|(d, _)| d.clone())
                {
                    let s = pending.remove(i);
                    let rep = StackReport {
                        stack_name: plan.stack_name(&s.name),
                        outcome: StackOutcome::Skipped(format!("dependency {bad} failed")),
                        name: s.name,
                        elapsed_ms: 0,
                        outputs: BTreeMap::new(),
                    };
                    emit_done(&*self.reporter, &rep);
                    finished_order.push(rep.name.clone());
                    results.insert(rep.name.clone(), rep);
                    continue;
                }
                let ready = s
                    .depends_on
                    .iter()
                    .all(|d| results.contains_key(d) || !only.contains(d));
                if !ready {
                    i += 1;
                    continue;
                }
                let s = pending.remove(i);
                let params = self
                    .resolve_params(plan, &s, &results, asset_keys, bucket.as_deref())
                    .await;
                let ctx = ctx.clone();
                let sem = sem.clone();
                let stack_name = plan.stack_name(&s.name);
                running.spawn(async move {
                    let start = Instant::now();
                    let (outcome, outputs) = match params {
                        Err(e) => (StackOutcome::Failed(e.to_string()), BTreeMap::new()),
                        Ok(params) => {
                            let _permit = sem.acquire_owned().await;
                            match deploy_one(&ctx, &s, &stack_name, &params, start).await {
                                Ok(x) => x,
                                Err(e) => (StackOutcome::Failed(e.to_string()), BTreeMap::new()),
                            }
                        }
                    };
                    let rep = StackReport {
                        name: s.name.clone(),
                        stack_name,
                        outcome,
                        elapsed_ms: ms(start),
                        outputs,
                    };
                    emit_done(&*ctx.reporter, &rep);
                    rep
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            match joined {
                Ok(rep) => {
                    finished_order.push(rep.name.clone());
                    results.insert(rep.name.clone(), rep);
                }
                Err(e) => {
                    // A panicked task: report it against every stack still unknown.
                    self.info(format!("internal error in a stack task: {e}"));
                }
            }
            if pending.is_empty() && running.is_empty() {
                break;
            }
        }
        for s in pending {
            let rep = StackReport {
                stack_name: plan.stack_name(&s.name),
                name: s.name.clone(),
                outcome: StackOutcome::Skipped("not started".into()),
                elapsed_ms: 0,
                outputs: BTreeMap::new(),
            };
            finished_order.push(rep.name.clone());
            results.insert(rep.name.clone(), rep);
        }
        let mut report = DeployReport {
            change_sets_executed: ctx.executed.load(Ordering::SeqCst),
            change_sets_created: ctx.created.load(Ordering::SeqCst),
            ..DeployReport::default()
        };
        for n in finished_order {
            if let Some(r) = results.remove(&n) {
                report.stacks.push(r);
            }
        }
        report
    }

    pub(crate) async fn resolve_params(
        &self,
        plan: &DeployPlan,
        s: &PlannedStack,
        results: &BTreeMap<String, StackReport>,
        asset_keys: &BTreeMap<String, String>,
        bucket: Option<&str>,
    ) -> Result<BTreeMap<String, String>, DeployError> {
        let mut out = BTreeMap::new();
        let mut fetched: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (k, src) in &s.parameters {
            let v = match src {
                ParamSource::Literal { value } => value.clone(),
                ParamSource::AssetKey { asset } => asset_keys
                    .get(asset)
                    .cloned()
                    .or_else(|| plan.asset(asset).map(|a| a.key()))
                    .unwrap_or_default(),
                ParamSource::AssetsBucket => bucket.unwrap_or_default().to_owned(),
                ParamSource::ImageDigest => match plan.image.digest() {
                    Some(d) => d.to_owned(),
                    None if self.opts.dry_run => "<runtime image digest>".to_owned(),
                    None => {
                        return Err(DeployError::NoImage {
                            stack: plan.stack_name(&s.name),
                            parameter: k.clone(),
                        });
                    }
                },
                ParamSource::Output { stack, output } => {
                    let outputs = match results.get(stack) {
                        Some(r) if !r.outputs.is_empty() || self.opts.dry_run => r.outputs.clone(),
                        _ => {
                            if !fetched.contains_key(stack) {
                                let name = plan.stack_name(stack);
                                let got = match cfn::describe(&self.clients.cfn, &name).await? {
                                    Some(info) => {
                                        let body =
                                            plan.stack(stack).map(|p| p.template_body.as_str());
                                        resolve_outputs(&self.clients.cfn, &name, &info, body)
                                            .await?
                                    }
                                    None => BTreeMap::new(),
                                };
                                fetched.insert(stack.clone(), got);
                            }
                            fetched.get(stack).cloned().unwrap_or_default()
                        }
                    };
                    match outputs.get(output) {
                        Some(v) => v.clone(),
                        None if self.opts.dry_run => format!("<{stack}.{output}>"),
                        None => {
                            return Err(DeployError::MissingOutput {
                                stack: plan.stack_name(&s.name),
                                parameter: k.clone(),
                                source_stack: stack.clone(),
                                output: output.clone(),
                            });
                        }
                    }
                }
            };
            out.insert(k.clone(), v);
        }
        Ok(out)
    }
}

fn emit_done(reporter: &dyn Reporter, rep: &StackReport) {
    let detail = match &rep.outcome {
        StackOutcome::Failed(m) | StackOutcome::Skipped(m) => Some(m.clone()),
        _ => None,
    };
    reporter.on(&Event::Done {
        stack: rep.name.clone(),
        outcome: rep.outcome.label().to_owned(),
        detail,
        elapsed_ms: rep.elapsed_ms,
    });
}

fn state(ctx: &Ctx, stack: &str, st: &str, done: usize, total: usize, start: Instant) {
    ctx.reporter.on(&Event::Stack {
        stack: stack.to_owned(),
        state: st.to_owned(),
        done,
        total,
        elapsed_ms: ms(start),
    });
}

/// Whether a change is refused without `--allow-replace`.
pub fn needs_allow(
    short: &str,
    c: &cfn::ResourceChange,
    allow: &BTreeSet<String>,
) -> Option<String> {
    if !is_stateful(&c.resource_type) {
        return None;
    }
    let what = if c.action == "Remove" {
        "remove"
    } else if c.action == "Modify" && (c.replacement == "True" || c.replacement == "Conditional") {
        "replace"
    } else {
        return None;
    };
    if guard::allowed(short, &c.logical_id, allow) {
        return None;
    }
    Some(what.to_owned())
}

/// The stateful resources a change would replace or remove without `--allow-replace`: what
/// the change set says (`Replacement` True/Conditional, `Remove`) and, whatever it says,
/// what our own data guard computes from the deployed and the new template
/// ([`guard::data_changes`]). An unreadable template refuses (fails closed).
#[allow(clippy::too_many_arguments)]
pub fn refused_changes(
    short: &str,
    stack_name: &str,
    deployed_body: &str,
    deployed_params: &BTreeMap<String, String>,
    new_body: &str,
    new_params: &BTreeMap<String, String>,
    changes: &[cfn::ResourceChange],
    allow: &BTreeSet<String>,
) -> Result<Vec<(String, String)>, DeployError> {
    let mut refused: BTreeMap<String, String> = changes
        .iter()
        .filter_map(|c| needs_allow(short, c, allow).map(|w| (c.logical_id.clone(), w)))
        .collect();
    let old = guard::parse(stack_name, "deployed", deployed_body)?;
    let new = guard::parse(stack_name, "new", new_body)?;
    for d in guard::data_changes(&old, deployed_params, &new, new_params)? {
        if !guard::allowed(short, &d.logical_id, allow) {
            refused
                .entry(d.logical_id)
                .or_insert_with(|| d.what.to_owned());
        }
    }
    Ok(refused.into_iter().collect())
}

/// `--require-approval`: what the change grants that the deployed stack did not, approved
/// by the [`Approver`] (or refused when there is none, or it says no).
async fn approve(
    ctx: &Ctx,
    stack_name: &str,
    deployed: Option<&(String, &StackInfo)>,
    s: &PlannedStack,
    params: &BTreeMap<String, String>,
) -> Result<(), DeployError> {
    let old = match deployed {
        Some((body, cur)) => Some((guard::parse(stack_name, "deployed", body)?, *cur)),
        None => None,
    };
    let new = guard::parse(stack_name, "new", &s.template_body)?;
    let b = guard::broadening(
        old.as_ref().map(|(t, cur)| (t, &cur.parameters)),
        &new,
        params,
    );
    if b.is_empty() {
        return Ok(());
    }
    let ok = match &ctx.opts.approver {
        Some(a) => a.approve(stack_name, &b).await,
        None => false,
    };
    if ok {
        return Ok(());
    }
    Err(DeployError::NotApproved {
        stack: stack_name.to_owned(),
        broadening: b
            .iter()
            .map(|x| format!("{}: {}", x.logical_id, x.what))
            .collect(),
    })
}

async fn deploy_one(
    ctx: &Ctx,
    s: &PlannedStack,
    stack_name: &str,
    params: &BTreeMap<String, String>,
    start: Instant,
) -> Result<(StackOutcome, BTreeMap<String, String>), DeployError> {
    let cfn_client = &ctx.clients.cfn;
    let short = s.name.as_str();
    let opts = &ctx.opts;
    state(ctx, short, "checking", 0, 0, start);
    let mut info = cfn::describe(cfn_client, stack_name).await?;
    let mut deleted_failed_create = false;
    let decide_opts = decide::DecideOptions {
        yes: opts.yes,
        wait: opts.wait,
    };
    let create = loop {
        let Some(cur) = &info else { break true };
        let status = StackStatus::from(cur.status.as_str());
        match decide::next_step(Some(&status), decide_opts) {
            decide::Next::Update => break false,
            decide::Next::Create => break true,
            decide::Next::StartOver => {
                // A create whose change set was never executed (e.g. a killed run): the
                // stack has no resources, so start over rather than stack change sets.
                if opts.dry_run {
                    break true;
                }
                state(
                    ctx,
                    short,
                    "removing a create that was never executed",
                    0,
                    0,
                    start,
                );
                cfn::delete_stack(cfn_client, stack_name, ctx.opts.cfn_role_arn.as_deref()).await?;
                let waited = Instant::now();
                loop {
                    match cfn::describe(cfn_client, stack_name).await? {
                        None => break,
                        Some(i)
                            if i.status == "REVIEW_IN_PROGRESS"
                                || i.status == "DELETE_IN_PROGRESS" => {}
                        Some(i) => {
                            return Err(DeployError::StackFailed {
                                stack: stack_name.to_owned(),
                                status: i.status,
                                root_cause: None,
                                stack_reason: i.reason,
                            });
                        }
                    }
                    if waited.elapsed() > opts.timing.stack_timeout {
                        return Err(DeployError::Timeout {
                            stack: stack_name.to_owned(),
                            status: "REVIEW_IN_PROGRESS".into(),
                            timeout_s: opts.timing.stack_timeout.as_secs(),
                        });
                    }
                    tokio::time::sleep(opts.timing.poll).await;
                }
                info = None;
            }
            decide::Next::Refuse(decide::Refusal::NeedsDelete) => {
                return Err(DeployError::NeedsDelete {
                    stack: stack_name.to_owned(),
                    status: cur.status.clone(),
                });
            }
            decide::Next::DeleteThenCreate => {
                if opts.dry_run {
                    return Ok((StackOutcome::WouldCreate, BTreeMap::new()));
                }
                state(
                    ctx,
                    short,
                    &format!("deleting stack left in {}", cur.status),
                    0,
                    0,
                    start,
                );
                cfn::delete_stack(cfn_client, stack_name, ctx.opts.cfn_role_arn.as_deref()).await?;
                let (after, _) = cfn::wait_stable(
                    cfn_client,
                    stack_name,
                    &opts.timing,
                    opts.timing.stack_timeout,
                    cfn::latest_event(cfn_client, stack_name).await?,
                    |_, _| {},
                )
                .await?;
                if let Some(after) = after {
                    return Err(DeployError::StackFailed {
                        stack: stack_name.to_owned(),
                        status: after.status,
                        root_cause: None,
                        stack_reason: after.reason,
                    });
                }
                deleted_failed_create = true;
                info = None;
            }
            decide::Next::Refuse(decide::Refusal::UpdateRollbackFailed) => {
                let skip = cfn::failed_resources(cfn_client, stack_name).await?;
                return Err(DeployError::UpdateRollbackFailed {
                    stack: stack_name.to_owned(),
                    short: short.to_owned(),
                    skip,
                });
            }
            decide::Next::Refuse(decide::Refusal::Busy) => {
                return Err(DeployError::InProgress {
                    stack: stack_name.to_owned(),
                    status: cur.status.clone(),
                    timeout_s: opts.timing.in_progress_timeout.as_secs(),
                });
            }
            decide::Next::Wait => {
                state(
                    ctx,
                    short,
                    &format!("waiting: {} by another operation", cur.status),
                    0,
                    0,
                    start,
                );
                let (after, _) = cfn::wait_stable(
                    cfn_client,
                    stack_name,
                    &opts.timing,
                    opts.timing.in_progress_timeout,
                    cfn::latest_event(cfn_client, stack_name).await?,
                    |_, _| {},
                )
                .await?;
                info = after;
            }
            decide::Next::Refuse(
                decide::Refusal::DeleteFailed
                | decide::Refusal::RollbackDisabled
                | decide::Refusal::ImportRollbackFailed
                | decide::Refusal::UnknownStatus,
            ) => {
                return Err(DeployError::StackFailed {
                    stack: stack_name.to_owned(),
                    status: cur.status.clone(),
                    root_cause: None,
                    stack_reason: cur.reason.clone(),
                });
            }
        }
    };
    let _ = deleted_failed_create;

    // A shared (account-wide) stack carries only its own tags: never a preview's.
    let mut tags = if s.shared_name.is_some() {
        BTreeMap::new()
    } else {
        ctx.tags.clone()
    };
    tags.extend(s.tags.clone());
    tags.insert(TEMPLATE_HASH_TAG.to_owned(), s.template_hash.clone());
    // What is deployed now (body and parameters): decides the skip and feeds our own data
    // guard. A matching hash tag alone never skips a stack.
    let deployed = match &info {
        Some(cur) if !create => Some((cfn::get_template(cfn_client, stack_name).await?, cur)),
        _ => None,
    };
    // Change sets a killed run of ours left behind (we hold the lock: none is live).
    if deployed.is_some() && !opts.dry_run {
        for cs in cfn::delete_orphan_change_sets(cfn_client, stack_name).await? {
            ctx.reporter.on(&Event::Info {
                message: format!("{short}: deleted change set {cs} left by an interrupted run"),
            });
        }
    }
    if let Some((body, cur)) = &deployed {
        let status = StackStatus::from(cur.status.as_str());
        let same = decide::is_unchanged(
            &decide::Deployed {
                status: &status,
                body: Some(body),
                parameters: &cur.parameters,
                tags: &cur.tags,
            },
            &decide::Wanted {
                body: &s.template_body,
                parameters: params,
                tags: &tags,
            },
            TEMPLATE_HASH_TAG,
        );
        if same {
            let outputs =
                resolve_outputs(cfn_client, stack_name, cur, Some(&s.template_body)).await?;
            return Ok((StackOutcome::Unchanged, outputs));
        }
    }
    if opts.dry_run {
        let outputs = match &info {
            Some(cur) if !create => {
                resolve_outputs(cfn_client, stack_name, cur, Some(&s.template_body)).await?
            }
            _ => BTreeMap::new(),
        };
        return Ok((
            if create {
                StackOutcome::WouldCreate
            } else {
                StackOutcome::WouldUpdate
            },
            outputs,
        ));
    }

    let template_url = if s.template_body.len() > MAX_INLINE_TEMPLATE {
        let bucket = ctx.assets_bucket.clone().ok_or_else(|| {
            DeployError::NotDeployed(format!(
                "chrono-{}-{}-{BOOTSTRAP}",
                ctx.customer_stage.0, ctx.customer_stage.1
            ))
        })?;
        let key = format!("templates/{}.template", s.template_hash);
        assets::upload_if_absent(
            &ctx.clients.s3,
            &bucket,
            &key,
            s.template_body.as_bytes(),
            false,
        )
        .await?;
        Some(ctx.clients.object_url(&bucket, &key))
    } else {
        None
    };
    state(ctx, short, "creating change set", 0, 0, start);
    ctx.created.fetch_add(1, Ordering::SeqCst);
    let cs_name = cfn::change_set_name();
    ctx.run.pending(stack_name, Some(&cs_name));
    let cs = cfn::create_change_set(
        cfn_client,
        &ChangeSetRequest {
            stack: stack_name,
            create,
            template_body: if template_url.is_some() {
                None
            } else {
                Some(&s.template_body)
            },
            template_url,
            parameters: params,
            tags: &tags,
            name: &cs_name,
            role_arn: opts.cfn_role_arn.as_deref(),
        },
        &opts.timing,
    )
    .await?;
    let (id, changes) = match cs {
        ChangeSet::Empty => {
            ctx.run.pending(stack_name, None);
            let cur = cfn::describe(cfn_client, stack_name)
                .await?
                .unwrap_or_default();
            let outputs =
                resolve_outputs(cfn_client, stack_name, &cur, Some(&s.template_body)).await?;
            return Ok((StackOutcome::Unchanged, outputs));
        }
        ChangeSet::Ready { id, changes } => (id, changes),
    };
    ctx.run.pending(stack_name, Some(&id));
    let refused = match &deployed {
        Some((body, cur)) => refused_changes(
            short,
            stack_name,
            body,
            &cur.parameters,
            &s.template_body,
            params,
            &changes,
            &opts.allow_replace,
        ),
        None => Ok(changes
            .iter()
            .filter_map(|c| {
                needs_allow(short, c, &opts.allow_replace).map(|w| (c.logical_id.clone(), w))
            })
            .collect()),
    };
    let refused = match refused {
        Ok(r) => r,
        Err(e) => {
            cfn::delete_change_set(cfn_client, stack_name, &id).await?;
            ctx.run.pending(stack_name, None);
            return Err(e);
        }
    };
    if !refused.is_empty() {
        cfn::delete_change_set(cfn_client, stack_name, &id).await?;
        ctx.run.pending(stack_name, None);
        return Err(DeployError::ReplacementRefused {
            stack: stack_name.to_owned(),
            resources: refused,
        });
    }
    if opts.require_approval
        && let Err(e) = approve(ctx, stack_name, deployed.as_ref(), s, params).await
    {
        cfn::delete_change_set(cfn_client, stack_name, &id).await?;
        ctx.run.pending(stack_name, None);
        return Err(e);
    }
    let total = changes.len();
    let mark = cfn::latest_event(cfn_client, stack_name).await?;
    state(ctx, short, "executing change set", 0, total, start);
    cfn::execute_change_set(cfn_client, stack_name, &id).await?;
    ctx.run.pending(stack_name, None);
    ctx.executed.fetch_add(1, Ordering::SeqCst);
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let (after, events) = cfn::wait_stable(
        cfn_client,
        stack_name,
        &opts.timing,
        opts.timing.stack_timeout,
        mark,
        |e, status| {
            if e.logical_id != stack_name && e.status.ends_with("_COMPLETE") {
                finished.insert(e.logical_id.clone());
            }
            ctx.reporter.on(&Event::Resource {
                stack: short.to_owned(),
                logical_id: e.logical_id.clone(),
                resource_type: e.resource_type.clone(),
                status: e.status.clone(),
                reason: e.reason.clone(),
            });
            state(ctx, short, status, finished.len().min(total), total, start);
        },
    )
    .await?;
    let Some(after) = after else {
        return Err(DeployError::NotDeployed(stack_name.to_owned()));
    };
    match after.status.as_str() {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" => {
            state(ctx, short, &after.status, total, total, start);
            if ctx.customer_stage.1 == "prod" && !after.termination_protection {
                // https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html
                cfn::set_termination_protection(cfn_client, stack_name, true).await?;
            }
            let outputs =
                resolve_outputs(cfn_client, stack_name, &after, Some(&s.template_body)).await?;
            Ok((
                if create {
                    StackOutcome::Created
                } else {
                    StackOutcome::Updated
                },
                outputs,
            ))
        }
        status => Err(DeployError::StackFailed {
            stack: stack_name.to_owned(),
            status: status.to_owned(),
            root_cause: cfn::root_cause(&events, stack_name).map(Box::new),
            stack_reason: after.reason.clone(),
        }),
    }
}

/// The outputs of a stack. When CloudFormation reports none although the template
/// declares some (the local emulator does not populate outputs after a change set),
/// outputs that are a plain `Ref` are resolved from the stack's parameters and resources.
pub async fn resolve_outputs(
    cfn_client: &aws_sdk_cloudformation::Client,
    stack_name: &str,
    info: &StackInfo,
    template_body: Option<&str>,
) -> Result<BTreeMap<String, String>, DeployError> {
    let mut outputs = info.outputs.clone();
    let Some(body) = template_body else {
        return Ok(outputs);
    };
    let declared = ref_outputs(body);
    if declared.iter().all(|(k, _)| outputs.contains_key(k)) {
        return Ok(outputs);
    }
    let mut physical: Option<BTreeMap<String, String>> = None;
    for (key, target) in declared {
        if outputs.contains_key(&key) {
            continue;
        }
        if let Some(v) = info.parameters.get(&target) {
            outputs.insert(key, v.clone());
            continue;
        }
        if physical.is_none() {
            physical = Some(
                cfn::resources(cfn_client, stack_name)
                    .await?
                    .into_iter()
                    .map(|r| (r.logical_id, r.physical_id))
                    .collect(),
            );
        }
        if let Some(v) = physical.as_ref().and_then(|p| p.get(&target)) {
            outputs.insert(key, v.clone());
        }
    }
    Ok(outputs)
}

/// Outputs of a template whose value is a plain `Ref`, as (output key, referenced name).
pub fn ref_outputs(body: &str) -> Vec<(String, String)> {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(body) else {
        return Vec::new();
    };
    let Some(outs) = doc.get("Outputs").and_then(|o| o.as_mapping()) else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for (k, o) in outs {
        let Some(k) = k.as_str() else { continue };
        let Some(value) = o.get("Value") else {
            continue;
        };
        let target = match value {
            serde_yaml::Value::Mapping(m) => {
                m.get("Ref").and_then(|r| r.as_str()).map(str::to_owned)
            }
            serde_yaml::Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str().map(str::to_owned),
            _ => None,
        };
        if let Some(t) = target {
            v.push((k.to_owned(), t));
        }
    }
    v
}
