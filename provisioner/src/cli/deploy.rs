//! The deploy commands of `chronoctl` (`deploy`, `diff`, `onboard`, `destroy`, `status`,
//! `outputs`, `recover`): argument parsing and rendering around [`crate::deploy`].
//!
//! Every command reads one customer config, synthesizes its stacks in memory (or reads
//! `--templates DIR`), and talks to AWS with the standard settings (or, with the config's
//! `deploy_role_arn`, as that role). Exit codes: 0 ok, 1 a stack or step failed / refused
//! (a guard, the account check, a moved plan, `status --drift` finding drift), 2 bad input
//! or unexpected error, 130 interrupted. Several configs (or `--all`) make a fleet
//! ([`crate::fleet`]).

use crate::output::Verdict;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono_contract::outputs;
use clap::{Args, Subcommand};
use futures::future::BoxFuture;

use super::{Failure, OutputFormat};
use crate::aws::{AwsOptions, Clients, DeployRole};
use crate::deploy::cfn::Timing;
use crate::deploy::destroy::{DestroyOptions, render_destroy};
use crate::deploy::diff::render_diff;
use crate::deploy::onboard::{AllOutputs, OnboardHooks};
use crate::deploy::status::{render_outputs, render_status};
use crate::deploy::target::{
    ArtifactNeed, DeployArgs, MutateArgs, TargetArgs, load_plan, load_plan_for, reporter,
};
use crate::deploy::{DeployError, DeployOptions, DeployReport, Engine, StackOutcome};

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

/// The engine of the running command, for the signal handler.
type Slot = Arc<std::sync::OnceLock<Engine>>;

/// Runs a deploy command. On SIGINT/SIGTERM the run stops, its pending change sets are
/// deleted and its lock released before it fails as [`Failure::Interrupted`] (exit 130).
pub fn run(cmd: &DeployCommand, output: OutputFormat) -> Result<(), Failure> {
    if let DeployCommand::Deploy(a) = cmd
        && a.fleet.is_fleet(&a.target.config)
    {
        return match crate::fleet::run(a, output) {
            Ok(0) => Ok(()),
            Ok(130) => Err(Failure::Interrupted(None)),
            Ok(_) => Err(Failure::Failed(None)),
            Err(e) => Err(Failure::Usage(e.to_string())),
        };
    }
    if let DeployCommand::Onboard(a) = cmd
        && (a.fleet.is_fleet(&a.target.config) || a.plan.is_some())
    {
        return Err(Failure::Usage(
            "onboard takes one account and no plan (one --config, no --all/--resume/--plan): onboard each new account alone, then `chronoctl deploy --all` keeps the fleet up to date".into(),
        ));
    }
    let rt = crate::exec::runtime()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
    let slot: Slot = Arc::default();
    let result = rt.block_on(async {
        tokio::select! {
            r = run_async(cmd, output, &slot) => Ok(r),
            sig = crate::exec::interrupted() => {
                if let Some(e) = slot.get() {
                    e.abort().await;
                    e.reporter.finish();
                }
                Err(Failure::Interrupted(Some(format!("interrupted by {sig}: pending change sets deleted, deploy lock released; rerun to continue"))))
            }
        }
    });
    // a prompt may still wait for stdin on a blocking thread: do not wait for it
    rt.shutdown_background();
    match result? {
        Ok(code) => Failure::from_verdict(code),
        Err(e) if e.downcast_ref::<DeployError>().is_some() => {
            Err(Failure::Failed(Some(e.to_string())))
        }
        Err(e) => Err(Failure::Usage(e.to_string())),
    }
}

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
) -> anyhow::Result<Verdict> {
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
                return Ok(Verdict::Pass);
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
                return Ok(Verdict::Pass);
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
                Verdict::Pass
            } else {
                Verdict::Fail
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
                options(t, &MutateArgs::read_only()),
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
            Ok(Verdict::Pass)
        }
        DeployCommand::Status(StatusArgs { target: t, .. }) | DeployCommand::Outputs(t) => {
            let drift = matches!(cmd, DeployCommand::Status(StatusArgs { drift: true, .. }));
            let (plan, region, _) = load_plan(t)?;
            let e = engine(
                t,
                &region,
                options(t, &MutateArgs::read_only()),
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
                    Verdict::Fail
                } else {
                    Verdict::Pass
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
            Ok(Verdict::Pass)
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
            Ok(Verdict::Pass)
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
            Ok(Verdict::Pass)
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
