//! The deploy commands of `chronoctl` (`deploy`, `diff`, `onboard`, `destroy`, `status`,
//! `outputs`, `recover`): argument parsing and rendering around [`crate::deploy`].
//!
//! Every command reads one customer config, synthesizes its stacks in memory (or reads
//! `--templates DIR`), and talks to AWS with the standard settings (or, with the config's
//! `deploy_role_arn`, as that role). Exit codes: 0 ok, 1 a stack or step failed / refused
//! (a guard, the account check, a moved plan, `status --drift` finding drift), 2 bad input
//! or unexpected error, 130 interrupted. Several configs (or `--all`) make a fleet
//! ([`crate::fleet`]).

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono_contract::outputs;
use clap::{Args, Subcommand};
use futures::future::BoxFuture;

use crate::aws::{AwsOptions, Clients, DeployRole};
use crate::cli::OutputFormat;
use crate::deploy::cfn::Timing;
use crate::deploy::destroy::{DestroyOptions, render_destroy};
use crate::deploy::diff::render_diff;
use crate::deploy::onboard::{AllOutputs, OnboardHooks};
use crate::deploy::plan::PlanArtifacts;
use crate::deploy::progress::{JsonLines, LiveBars, PlainLines, Reporter};
use crate::deploy::status::{render_outputs, render_status};
use crate::deploy::{DeployError, DeployOptions, DeployPlan, DeployReport, Engine, StackOutcome};

/// The deploy commands (flattened into `chronoctl`'s command list).
#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Deploy every stack of a customer account (bootstrap on first use), in dependency order.
    Deploy(DeployArgs),
    /// Show per stack what a deploy would change; flags data-losing replacements.
    Diff(DiffArgs),
    /// Onboard an account: check, bootstrap, deploy, migrate, smoke test, print endpoints.
    Onboard(DeployArgs),
    /// Delete the stacks in reverse order (needs --yes; data needs --release-data outside preview).
    Destroy(DestroyArgs),
    /// Per stack: status, last update, drift from the synthesized template.
    Status(StatusArgs),
    /// Per stack: its outputs.
    Outputs(TargetArgs),
    /// Continue a rollback stuck in UPDATE_ROLLBACK_FAILED.
    Recover(RecoverArgs),
}

/// Which account and how to reach AWS.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The customer config (customers/<customer>-<stage>.yaml). `deploy` takes several
    /// (`--config a.yaml b.yaml`, or repeated): a fleet run, see --all.
    #[arg(long = "config", value_name = "FILE", num_args = 1..)]
    pub config: Vec<PathBuf>,
    /// Deploy the templates in this directory (with manifest.json) instead of
    /// synthesizing from the config.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Artifacts built elsewhere (`chronoctl build --out DIR`, or `<binary>.zip` /
    /// `<binary>` files and an OCI image layout in `image/`), checked like a build. Without
    /// it, deploy and onboard build the runtime from the source tree (stage `local`:
    /// placeholders).
    #[arg(long, value_name = "DIR", env = "CHRONO_ARTIFACTS_DIR")]
    pub artifacts: Option<PathBuf>,
    /// Push the runtime image to this registry instead of the ECR endpoint
    /// (same repository path and ECR credentials; for tests against a local registry).
    #[arg(long, value_name = "URL", env = "CHRONO_REGISTRY_URL", hide = true)]
    pub registry_url: Option<String>,
    /// AWS profile (default: AWS_PROFILE / the default profile).
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS region; must be the config's region (a different one is refused: the stacks of
    /// a customer live in one region; change `region` in the config to move them).
    #[arg(long)]
    pub region: Option<String>,
    /// Endpoint override (default: AWS_ENDPOINT_URL), e.g. the local emulator.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Poll interval of CloudFormation waits, in milliseconds.
    #[arg(long, default_value_t = 3000, hide = true, env = "CHRONO_POLL_MS")]
    pub poll_ms: u64,
}

impl TargetArgs {
    /// The one config of a single-account command.
    pub fn config(&self) -> anyhow::Result<&std::path::Path> {
        match self.config.as_slice() {
            [one] => Ok(one),
            [] => anyhow::bail!("--config FILE is required"),
            many => anyhow::bail!(
                "{} configs given: this command takes one --config (only `deploy` runs a fleet)",
                many.len()
            ),
        }
    }
}

/// Options shared by the commands that change things.
#[derive(Debug, Clone, Args)]
pub struct MutateArgs {
    /// Print what would happen; call no mutating API.
    #[arg(long)]
    pub dry_run: bool,
    /// Take the deploy lock even if another run holds it (only when that run is dead).
    #[arg(long)]
    pub break_lock: bool,
    /// Lease of the deploy lock in seconds (renewed while running).
    #[arg(long, default_value_t = 120, hide = true)]
    pub lock_lease_secs: u64,
}

/// `deploy` / `onboard`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Mutation options.
    #[command(flatten)]
    pub mutate: MutateArgs,
    /// Delete stacks left in ROLLBACK_COMPLETE by a failed create before re-creating them.
    #[arg(long)]
    pub yes: bool,
    /// Refuse (instead of waiting for) operations someone else started on a stack.
    #[arg(long)]
    pub no_wait: bool,
    /// Allow replacing or removing this stateful resource (LOGICAL_ID or STACK/LOGICAL_ID); repeatable.
    #[arg(long, value_name = "LOGICAL_ID")]
    pub allow_replace: Vec<String>,
    /// Most stacks deployed at the same time.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The built web app, published with its config.json after the stacks (only
    /// config.json when there is no index.html).
    #[arg(long, default_value = "app/dist", env = "CHRONO_APP_DIR")]
    pub app_dir: std::path::PathBuf,
    /// Ask before executing a change that broadens access (new IAM statements, trust or
    /// resource policies, security-group rules): the additions are printed and a `y` is
    /// read from stdin (EOF or anything else refuses the stack).
    #[arg(long)]
    pub require_approval: bool,
    /// Non-prod stages, code changes only: update the Lambda code, task definitions,
    /// services and state machine in place (seconds), recorded until the next full deploy
    /// reconciles CloudFormation; refused, naming the reason, when anything else changed.
    #[arg(long)]
    pub hotswap: bool,
    /// Deploy only this stack (and the stacks it needs); repeatable or comma-separated.
    #[arg(long = "stack", value_name = "STACK", value_delimiter = ',')]
    pub stacks: Vec<String>,
    /// Execute exactly the change sets of a plan saved by `chronoctl diff --out FILE`;
    /// refused when anything moved since (a stack changed, a change set is gone, the
    /// templates differ).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["stacks", "hotswap", "all", "resume"])]
    pub plan: Option<PathBuf>,
    /// Fleet runs (several accounts).
    #[command(flatten)]
    pub fleet: crate::fleet::FleetArgs,
}

/// `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Also run CloudFormation drift detection (DetectStackDrift) on every deployed stack:
    /// resources changed outside CloudFormation, property by property. Exits 1 when a
    /// stack drifted.
    #[arg(long)]
    pub drift: bool,
}

/// `diff`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Keep the change sets and save them as a reviewable plan (with the template hashes
    /// and the state of each stack seen) for `chronoctl deploy --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Only this stack (and the stacks it needs); repeatable or comma-separated.
    #[arg(long = "stack", value_name = "STACK", value_delimiter = ',')]
    pub stacks: Vec<String>,
}

/// `destroy`.
#[derive(Debug, Clone, Args)]
pub struct DestroyArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Mutation options.
    #[command(flatten)]
    pub mutate: MutateArgs,
    /// Confirm the deletion.
    #[arg(long)]
    pub yes: bool,
    /// Also delete data (buckets, tables, database) of a non-preview stage.
    #[arg(long)]
    pub release_data: bool,
}

/// `recover`.
#[derive(Debug, Clone, Args)]
pub struct RecoverArgs {
    /// Target.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Mutation options.
    #[command(flatten)]
    pub mutate: MutateArgs,
    /// The stack (short name, e.g. `data`).
    #[arg(long)]
    pub stack: String,
    /// Logical ids to skip (resources that cannot be rolled back), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
}

/// What a command needs of the runtime's artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactNeed {
    /// Deploy (or diff) them: build when not given (placeholders only for stage `local`).
    Ship,
    /// Only the stacks matter (status, outputs, destroy, recover): never build.
    Inspect,
}

/// The artifacts of a command: `--artifacts DIR` (checked), a build of the source tree
/// (cached when unchanged), or placeholders (stage `local`, or a command that ships
/// nothing).
pub fn artifacts_for(
    cfg: &chrono_stacks::Config,
    t: &TargetArgs,
    need: ArtifactNeed,
) -> anyhow::Result<PlanArtifacts> {
    use crate::build::{self, BuildOptions, BuildSpec, artifacts::Artifacts};
    if need == ArtifactNeed::Inspect {
        return Ok(PlanArtifacts::placeholders());
    }
    let spec = BuildSpec::for_config(cfg)?;
    if let Some(dir) = &t.artifacts {
        return Ok(PlanArtifacts::from_artifacts(Artifacts::load(dir, &spec)?));
    }
    if cfg.stage == chrono_stacks::config::Stage::Local {
        return Ok(PlanArtifacts::placeholders());
    }
    let ws = crate::cli_build::workspace()?;
    let opts = BuildOptions::new(&ws, spec.arch);
    let report = build::run(&spec, &opts)?;
    Ok(PlanArtifacts::from_artifacts(Artifacts::from_build(
        &report.out,
        &report.record,
    )?))
}

/// Loads the config and builds the plan (in-memory synth or `--templates`), with the
/// artifacts the command needs.
pub fn load_plan_for(
    t: &TargetArgs,
    need: ArtifactNeed,
) -> anyhow::Result<(DeployPlan, String, Vec<String>)> {
    let cfg = chrono_stacks::Config::load(t.config()?)?;
    if let Some(r) = &t.region
        && r != &cfg.region
    {
        anyhow::bail!(
            "--region {r} conflicts with region {} of {}: the stacks of {} live in {}; drop --region, or change `region` in the config to move them",
            cfg.region,
            t.config()?.display(),
            chrono_stacks::synth::dir_name(&cfg),
            cfg.region
        );
    }
    let artifacts = artifacts_for(&cfg, t, need)?;
    let synthesized = || plan_for_config(&cfg, &artifacts);
    let (plan, placeholders) = match &t.templates {
        Some(dir) => {
            let (plan, placeholders) = DeployPlan::from_synth(dir, &artifacts)?;
            let (own, _) = synthesized()?;
            templates_belong(&plan, &own, dir, t.config()?)?;
            (plan, placeholders)
        }
        None => synthesized()?,
    };
    Ok((plan, cfg.region.clone(), placeholders))
}

/// Synthesizes a config in memory into a plan with the given artifacts; returns the plan
/// and the Lambda binaries deployed as placeholders.
pub fn plan_for_config(
    cfg: &chrono_stacks::Config,
    artifacts: &PlanArtifacts,
) -> anyhow::Result<(DeployPlan, Vec<String>)> {
    let files = chrono_stacks::synth::synthesize(cfg)?;
    let dir = chrono_stacks::synth::dir_name(cfg);
    Ok(DeployPlan::from_synth_files(&dir, artifacts, |name| {
        let path = format!("{dir}/{name}");
        files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.contents.clone())
            .ok_or_else(|| crate::deploy::plan::PlanError::Read {
                path,
                reason: "not synthesized".into(),
            })
    })?)
}

/// A `--templates` directory must be the config's: same customer, stage, account and
/// region in its manifest, and the same templates (hashes) the config synthesizes to.
pub fn templates_belong(
    given: &DeployPlan,
    own: &DeployPlan,
    dir: &std::path::Path,
    config: &std::path::Path,
) -> anyhow::Result<()> {
    let who = |p: &DeployPlan| {
        format!(
            "{}-{} (account {}, region {})",
            p.customer,
            p.stage,
            p.account_id.as_deref().unwrap_or("not named"),
            p.region.as_deref().unwrap_or("not named")
        )
    };
    if who(given) != who(own) {
        anyhow::bail!(
            "{} holds the templates of {}, but {} is {}; pass the matching --config, or synthesize this config's templates with `chronoctl synth`",
            dir.display(),
            who(given),
            config.display(),
            who(own)
        );
    }
    let hashes = |p: &DeployPlan| -> std::collections::BTreeMap<String, String> {
        p.stacks
            .iter()
            .map(|s| (s.name.clone(), s.template_hash.clone()))
            .collect()
    };
    let (g, o) = (hashes(given), hashes(own));
    if g != o {
        let differ: Vec<&str> = g
            .keys()
            .chain(o.keys())
            .filter(|k| g.get(*k) != o.get(*k))
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        anyhow::bail!(
            "the templates in {} are not what {} synthesizes (stacks {} differ); rerun `chronoctl synth` (or `make templates`) and deploy again",
            dir.display(),
            config.display(),
            differ.join(", ")
        );
    }
    Ok(())
}

/// [`load_plan_for`] without shipping anything (placeholders, never a build).
pub fn load_plan(t: &TargetArgs) -> anyhow::Result<(DeployPlan, String, Vec<String>)> {
    load_plan_for(t, ArtifactNeed::Inspect)
}

/// The progress renderer of an output format (live bars on a terminal).
pub fn reporter(output: OutputFormat) -> Arc<dyn Reporter> {
    match output {
        OutputFormat::Json => Arc::new(JsonLines),
        OutputFormat::Text if std::io::stderr().is_terminal() => Arc::new(LiveBars::default()),
        OutputFormat::Text => Arc::new(PlainLines::default()),
    }
}

async fn engine(
    t: &TargetArgs,
    region: &str,
    opts: DeployOptions,
    output: OutputFormat,
    slot: &Slot,
    streams: bool,
) -> anyhow::Result<Engine> {
    let cfg = chrono_stacks::Config::load(t.config()?)?;
    let role = cfg.deploy_role_arn.as_ref().map(|arn| DeployRole {
        arn: arn.clone(),
        external_id: cfg.external_id.clone(),
    });
    let (clients, operator) = Clients::load_as(
        &AwsOptions {
            profile: t.profile.clone(),
            region: Some(region.to_owned()),
            endpoint_url: t.endpoint_url.clone(),
        },
        role.as_ref(),
    )
    .await?;
    let opts = DeployOptions {
        cfn_role_arn: cfg.cfn_execution_role_arn.clone(),
        ..opts
    };
    let e = Engine::new(clients, opts, reporter(output));
    // a command printing one JSON document says it on stderr only in text mode
    if let (Some(role), Some(operator), true) =
        (&role, &operator, streams || output == OutputFormat::Text)
    {
        e.reporter.on(&crate::deploy::progress::Event::Info {
            message: format!(
                "acting as deploy role {} (assumed by {operator}, session {})",
                role.arn,
                crate::aws::session_name(operator)
            ),
        });
    }
    let _ = slot.set(e.clone());
    Ok(e)
}

fn options(t: &TargetArgs, m: &MutateArgs) -> DeployOptions {
    DeployOptions {
        timing: Timing {
            poll: Duration::from_millis(t.poll_ms.max(1)),
            ..Timing::default()
        },
        dry_run: m.dry_run,
        break_lock: m.break_lock,
        lock_lease: Duration::from_secs(m.lock_lease_secs.max(1)),
        registry_url: t.registry_url.clone(),
        ..DeployOptions::default()
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    if let Ok(s) = serde_json::to_string(v) {
        println!("{s}");
    }
}

fn summary(r: &DeployReport, output: OutputFormat) {
    if output == OutputFormat::Json {
        print_json(&serde_json::json!({ "event": "summary", "report": r }));
        return;
    }
    for s in &r.stacks {
        let detail = match &s.outcome {
            StackOutcome::Failed(m) | StackOutcome::Skipped(m) => format!("\n{m}"),
            _ => String::new(),
        };
        println!(
            "{:<10} {:<14} {:>6.1}s{detail}",
            s.name,
            s.outcome.label(),
            s.elapsed_ms as f64 / 1000.0
        );
    }
    if let Some(i) = &r.image {
        println!(
            "image {}: {} blobs uploaded, {} already present",
            i.digest, i.blobs_uploaded, i.blobs_present
        );
    }
    for h in &r.reconciled {
        println!("reconciled hot swap: {h}");
    }
    println!(
        "{} change sets executed, {} assets uploaded ({} already present), {:.1}s",
        r.change_sets_executed,
        r.assets_uploaded,
        r.assets_present,
        r.elapsed_ms as f64 / 1000.0
    );
}

fn fail(e: &dyn std::fmt::Display, output: OutputFormat) -> ExitCode {
    if output == OutputFormat::Json {
        print_json(&serde_json::json!({ "event": "error", "message": e.to_string() }));
    } else {
        eprintln!("chronoctl: {e}");
    }
    ExitCode::from(1)
}

/// The engine of the running command, for the signal handler.
type Slot = Arc<std::sync::OnceLock<Engine>>;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        if let (Ok(mut term), Ok(mut int)) = (term, int) {
            return tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

/// Runs a deploy command; errors are printed here. On SIGINT/SIGTERM the run stops, its
/// pending change sets are deleted and its lock released before exiting with 130.
pub fn run(cmd: &DeployCommand, output: OutputFormat) -> ExitCode {
    if let DeployCommand::Deploy(a) = cmd
        && a.fleet.is_fleet(&a.target.config)
    {
        return crate::fleet::run(a, output);
    }
    if let DeployCommand::Onboard(a) = cmd
        && (a.fleet.is_fleet(&a.target.config) || a.plan.is_some())
    {
        let _ = fail(
            &"onboard takes one account and no plan (one --config, no --all/--resume/--plan): onboard each new account alone, then `chronoctl deploy --all` keeps the fleet up to date",
            output,
        );
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}"), output),
    };
    let slot: Slot = Arc::default();
    let result = rt.block_on(async {
        tokio::select! {
            r = run_async(cmd, output, &slot) => Some(r),
            sig = interrupted() => {
                if let Some(e) = slot.get() {
                    e.abort().await;
                    e.reporter.finish();
                }
                let _ = fail(&format!("interrupted by {sig}: pending change sets deleted, deploy lock released; rerun to continue"), output);
                None
            }
        }
    });
    // a prompt may still wait for stdin on a blocking thread: do not wait for it
    rt.shutdown_background();
    match result {
        None => ExitCode::from(130),
        Some(Ok(code)) => code,
        Some(Err(e)) => {
            let code = if e.downcast_ref::<DeployError>().is_some() {
                1
            } else {
                2
            };
            let _ = fail(&e, output);
            ExitCode::from(code)
        }
    }
}

/// Publishes the web app after the stacks, and says what it did.
async fn publish_app(
    e: &Engine,
    cfg: &chrono_stacks::Config,
    report: &DeployReport,
    a: &DeployArgs,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let dry = e.opts.dry_run;
    let Some(p) =
        crate::deploy::app::publish_deployment(&e.clients, cfg, report, &a.app_dir, dry).await?
    else {
        return Ok(());
    };
    if output == OutputFormat::Json {
        print_json(&serde_json::json!({"event": "web_app", "dry_run": dry, "publish": p}));
    } else {
        let verb = if dry { "would upload" } else { "uploaded" };
        eprintln!(
            "web app: {verb} {} file(s), {} unchanged, invalidated {}",
            p.uploaded.len(),
            p.unchanged,
            if p.invalidated.is_empty() {
                "nothing".to_owned()
            } else {
                p.invalidated.join(" ")
            }
        );
        if !a.app_dir.join("index.html").is_file() {
            eprintln!(
                "web app: {} has no index.html (build it with `make app`); only config.json was published",
                a.app_dir.display()
            );
        }
    }
    Ok(())
}

async fn run_async(
    cmd: &DeployCommand,
    output: OutputFormat,
    slot: &Slot,
) -> anyhow::Result<ExitCode> {
    match cmd {
        DeployCommand::Deploy(a) | DeployCommand::Onboard(a) => {
            let (mut plan, region, placeholders) = load_plan_for(&a.target, ArtifactNeed::Ship)?;
            plan.only(&a.stacks)?;
            let mut opts = options(&a.target, &a.mutate);
            opts.yes = a.yes;
            opts.wait = !a.no_wait;
            opts.allow_replace = a.allow_replace.iter().cloned().collect::<BTreeSet<_>>();
            opts.concurrency = a.concurrency.max(1);
            opts.require_approval = a.require_approval;
            opts.approver = Some(Arc::new(StdinApprover::default()));
            let e = engine(&a.target, &region, opts, output, slot, true).await?;
            if a.hotswap {
                if let DeployCommand::Onboard(_) = cmd {
                    anyhow::bail!(
                        "onboard has no --hotswap: onboard deploys everything; use `chronoctl deploy --hotswap`"
                    );
                }
                let r = e.hotswap(&plan).await;
                e.reporter.finish();
                let r = r?;
                if output == OutputFormat::Json {
                    print_json(&serde_json::json!({ "event": "summary", "hotswap": r }));
                } else {
                    for s in &r.swapped {
                        println!(
                            "{}{}",
                            if r.dry_run { "would swap " } else { "" },
                            s.describe()
                        );
                    }
                    println!(
                        "hotswap: {} code changes, {} resources {}in {:.1}s; the next full `chronoctl deploy` reconciles CloudFormation",
                        r.changes,
                        r.swapped.len(),
                        if r.dry_run {
                            "would be swapped "
                        } else {
                            "swapped "
                        },
                        r.elapsed_ms as f64 / 1000.0
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            for p in placeholders {
                e.reporter.on(&crate::deploy::progress::Event::Info {
                    message: format!(
                        "asset {p}: not built, deploying a placeholder (stage {} only)",
                        plan.stage
                    ),
                });
            }
            if let DeployCommand::Onboard(_) = cmd {
                let cfg = chrono_stacks::Config::load(a.target.config()?)?;
                let violations = crate::check::check_config(&cfg)?;
                if !violations.is_empty() {
                    for v in &violations {
                        eprintln!("{} {} {}: {}", v.stack, v.logical_id, v.rule, v.hint);
                    }
                    anyhow::bail!(
                        "onboard step `check` failed: {} policy violations",
                        violations.len()
                    );
                }
                for w in crate::check::model_warnings(&cfg) {
                    eprintln!("warning: {w}");
                }
                eprintln!(
                    "Bedrock model access ({} and {}), once per account, by the account owner:",
                    cfg.bedrock.guard_model_id, cfg.bedrock.main_model_id
                );
                for step in crate::check::model_access_steps() {
                    eprintln!("  - {step}");
                }
                let hooks = CliHooks {
                    lambda: e.clients.lambda.clone(),
                };
                let report = e.onboard(&plan, &hooks).await;
                e.reporter.finish();
                let report = report?;
                if let Some(deploy) = &report.deploy {
                    publish_app(&e, &cfg, deploy, a, output).await?;
                }
                if output == OutputFormat::Json {
                    print_json(&serde_json::json!({ "event": "summary", "report": report }));
                } else {
                    for s in &report.steps {
                        println!("{:<8} {:<8} {}", s.step, s.status, s.detail);
                    }
                    for (k, v) in &report.endpoints {
                        println!("{k}: {v}");
                    }
                    // what the account costs while idle (offline, from the price file)
                    match crate::cost::estimate_config(&cfg) {
                        Ok(c) => print!("{}", crate::cost::render(&c)),
                        Err(e) => eprintln!("cost estimate unavailable: {e}"),
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let r = match &a.plan {
                Some(file) => {
                    let saved = crate::deploy::saved_plan::SavedPlan::load(file)?;
                    let mut plan = plan.clone();
                    let names: Vec<String> = saved.stacks.iter().map(|s| s.name.clone()).collect();
                    plan.only(&names)?;
                    e.execute_saved(&plan, &saved).await
                }
                None => e.deploy(&plan).await,
            };
            e.reporter.finish();
            let r = r?;
            if r.is_success() {
                let cfg = chrono_stacks::Config::load(a.target.config()?)?;
                publish_app(&e, &cfg, &r, a, output).await?;
            }
            summary(&r, output);
            Ok(if r.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        DeployCommand::Diff(DiffArgs {
            target: t,
            out,
            stacks,
        }) => {
            let (mut plan, region, _) = load_plan_for(t, ArtifactNeed::Ship)?;
            plan.only(stacks)?;
            let e = engine(
                t,
                &region,
                options(
                    t,
                    &MutateArgs {
                        dry_run: false,
                        break_lock: false,
                        lock_lease_secs: 120,
                    },
                ),
                output,
                slot,
                false,
            )
            .await?;
            let d = match out {
                Some(file) => {
                    let (d, saved) = e.save_plan(&plan).await?;
                    if let Err(err) = saved.save(file) {
                        for s in &saved.stacks {
                            if let Some(id) = &s.change_set_id {
                                let _ = crate::deploy::cfn::delete_change_set(
                                    &e.clients.cfn,
                                    &s.stack_name,
                                    id,
                                )
                                .await;
                            }
                        }
                        return Err(err.into());
                    }
                    eprintln!(
                        "plan saved to {}: {} change set(s) kept; review, then `chronoctl deploy --config {} --plan {}`",
                        file.display(),
                        saved.change_sets().count(),
                        t.config()?.display(),
                        file.display()
                    );
                    d
                }
                None => e.diff(&plan).await?,
            };
            if output == OutputFormat::Json {
                print_json(&d);
            } else {
                print!("{}", render_diff(&d, std::io::stdout().is_terminal()));
            }
            Ok(ExitCode::SUCCESS)
        }
        DeployCommand::Status(StatusArgs { target: t, .. }) | DeployCommand::Outputs(t) => {
            let drift = matches!(cmd, DeployCommand::Status(StatusArgs { drift: true, .. }));
            let (plan, region, _) = load_plan(t)?;
            let e = engine(
                t,
                &region,
                options(
                    t,
                    &MutateArgs {
                        dry_run: false,
                        break_lock: false,
                        lock_lease_secs: 120,
                    },
                ),
                output,
                slot,
                false,
            )
            .await?;
            let rows = e.status(&plan).await?;
            if drift {
                let drifts = e.detect_drift(&plan).await?;
                let drifted = drifts.iter().any(|d| d.drifted());
                if output == OutputFormat::Json {
                    print_json(&serde_json::json!({ "stacks": rows, "drift": drifts }));
                } else {
                    print!("{}", render_status(&rows));
                    print!("{}", crate::deploy::drift::render_drift(&drifts));
                }
                return Ok(if drifted {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                });
            }
            match (output, cmd) {
                (OutputFormat::Json, DeployCommand::Outputs(_)) => {
                    let m: std::collections::BTreeMap<_, _> = rows
                        .iter()
                        .map(|r| (r.name.clone(), r.outputs.clone()))
                        .collect();
                    print_json(&m);
                }
                (OutputFormat::Json, _) => print_json(&rows),
                (_, DeployCommand::Outputs(_)) => print!("{}", render_outputs(&rows)),
                _ => print!("{}", render_status(&rows)),
            }
            Ok(ExitCode::SUCCESS)
        }
        DeployCommand::Destroy(a) => {
            let (plan, region, _) = load_plan(&a.target)?;
            let e = engine(
                &a.target,
                &region,
                options(&a.target, &a.mutate),
                output,
                slot,
                true,
            )
            .await?;
            let rows = e
                .destroy(
                    &plan,
                    DestroyOptions {
                        yes: a.yes,
                        release_data: a.release_data,
                    },
                )
                .await;
            e.reporter.finish();
            let rows = rows?;
            if output == OutputFormat::Json {
                print_json(&serde_json::json!({ "event": "summary", "stacks": rows }));
            } else {
                print!("{}", render_destroy(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        DeployCommand::Recover(a) => {
            let (plan, region, _) = load_plan(&a.target)?;
            let e = engine(
                &a.target,
                &region,
                options(&a.target, &a.mutate),
                output,
                slot,
                true,
            )
            .await?;
            let failed = e.recover(&plan, &a.stack, &a.skip).await?;
            if output == OutputFormat::Json {
                print_json(
                    &serde_json::json!({ "event": "summary", "stack": a.stack, "failed_resources": failed, "skipped": a.skip }),
                );
            } else if !a.mutate.dry_run {
                println!(
                    "{}: rollback completed (UPDATE_ROLLBACK_COMPLETE); rerun `chronoctl deploy`",
                    plan.stack_name(&a.stack)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Asks on stderr and reads the answer from stdin, one stack at a time.
#[derive(Debug, Default)]
struct StdinApprover(tokio::sync::Mutex<()>);

impl crate::deploy::engine::Approver for StdinApprover {
    fn approve<'a>(
        &'a self,
        stack: &'a str,
        broadening: &'a [crate::deploy::guard::Broadening],
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let _one = self.0.lock().await;
            let mut text = format!("{stack} broadens access:\n");
            for b in broadening {
                text.push_str(&format!(
                    "  + {} ({}): {}\n",
                    b.logical_id, b.resource_type, b.what
                ));
            }
            text.push_str(&format!("approve the change set of {stack}? [y/N] "));
            eprint!("{text}");
            tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                match std::io::stdin().read_line(&mut line) {
                    Ok(n) if n > 0 => matches!(line.trim(), "y" | "Y" | "yes"),
                    _ => false,
                }
            })
            .await
            .unwrap_or(false)
        })
    }
}

/// Onboarding steps that need the deployed runtime.
#[derive(Debug)]
struct CliHooks {
    lambda: aws_sdk_lambda::Client,
}

impl OnboardHooks for CliHooks {
    fn migrate<'a>(&'a self, outputs: &'a AllOutputs) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let output = outputs::MIGRATE_FUNCTION_ARN;
            let function = outputs
                .get("compute")
                .and_then(|o| o.get(output))
                .ok_or_else(|| format!("the compute stack has no {output} output"))?;
            crate::deploy::migrate::migrate_via_lambda(&self.lambda, function).await
        })
    }

    fn smoke<'a>(&'a self, outputs: &'a AllOutputs) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let url = outputs
                .get("api")
                .and_then(|o| o.get(outputs::HTTP_API_URL))
                .ok_or_else(|| format!("the api stack has no {} output", outputs::HTTP_API_URL))?;
            let health = format!("{}/healthz", url.trim_end_matches('/'));
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?;
            let mut last = String::new();
            for _ in 0..10 {
                match client.get(&health).send().await {
                    Ok(r) if r.status().is_success() => {
                        return Ok(format!("{health} answered {}", r.status()));
                    }
                    Ok(r) => last = format!("{health} answered {}", r.status()),
                    Err(e) => last = format!("{health}: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(last)
        })
    }
}
