//! `chronoctl preview up|list|down|gc`: arguments and rendering around [`crate::preview`].
//! Exit codes: 0 ok, 1 refused or failed (collision, expired, stacks left behind), 2 bad
//! input or unexpected error.

use crate::output::Verdict;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{Failure, OutputFormat};
use crate::aws::{AwsOptions, Clients};
use crate::deploy::cfn::Timing;
use crate::deploy::target::{ArtifactNeed, TargetArgs, artifacts_for, plan_for_config};
use crate::deploy::{DeployOptions, Engine};
use crate::preview::PreviewError;
use crate::preview::down::{DownReport, down, gc};
use crate::preview::inventory::{previews, relative, render_list};
use crate::preview::up::{UpRequest, parse_ttl, up};

/// `chronoctl preview ...`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Command.
    #[command(subcommand)]
    pub command: PreviewCommand,
    /// AWS settings.
    #[command(flatten)]
    pub aws: PreviewAws,
}

/// How to reach the developer account.
#[derive(Debug, Clone, Args)]
pub struct PreviewAws {
    /// AWS profile (default: AWS_PROFILE / the default profile).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region (`up`: default the base config's region; others: the SDK default).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Endpoint override (default: AWS_ENDPOINT_URL), e.g. the local emulator.
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Poll interval of CloudFormation waits, in milliseconds.
    #[arg(
        long,
        default_value_t = 3000,
        hide = true,
        env = "CHRONO_POLL_MS",
        global = true
    )]
    pub poll_ms: u64,
}

/// The preview commands.
#[derive(Debug, Subcommand)]
pub enum PreviewCommand {
    /// Deploy (or update) the preview NAME (default: the current git branch) from a base config.
    Up(UpArgs),
    /// Every preview in the account and region, from stack tags.
    List,
    /// Delete the preview NAME (buckets emptied, stacks in reverse order).
    Down(DownArgs),
    /// Delete every expired preview (only stacks tagged chrono:preview=true and managed by chronoctl).
    Gc(GcArgs),
}

/// `preview up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// The preview's name; default: the current git branch, normalized.
    pub name: Option<String>,
    /// The config the preview copies (region, identity provider, models, sizing).
    #[arg(long, value_name = "FILE", env = "CHRONO_PREVIEW_FROM")]
    pub from: PathBuf,
    /// Lifetime from now (`72h`, `3d`, `90m`); extends (or shortens) an existing preview.
    /// Default: 72h for a new preview; an existing one keeps its expiry.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Artifacts built elsewhere (`chronoctl build --out DIR`); default: build them.
    #[arg(long, value_name = "DIR", env = "CHRONO_ARTIFACTS_DIR")]
    pub artifacts: Option<PathBuf>,
    /// Print what would happen; call no mutating API.
    #[arg(long)]
    pub dry_run: bool,
}

/// `preview down`.
#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// The preview's name (`chronoctl preview list`).
    pub name: String,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `preview gc`.
#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The current git branch (`git rev-parse --abbrev-ref HEAD`).
fn git_branch() -> Result<String, PreviewError> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--abbrev-ref", "HEAD"])
        .output()
        .map_err(|e| {
            PreviewError::Usage(format!(
                "cannot run git to name the preview ({e}); pass NAME"
            ))
        })?;
    let b = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || b.is_empty() || b == "HEAD" {
        return Err(PreviewError::Usage(
            "no current git branch (not a repository, or a detached HEAD); pass NAME".into(),
        ));
    }
    Ok(b)
}

fn print_json<T: serde::Serialize>(v: &T) {
    if let Ok(s) = serde_json::to_string(v) {
        println!("{s}");
    }
}

async fn engine(
    aws: &PreviewAws,
    region: Option<String>,
    dry_run: bool,
    output: OutputFormat,
) -> Engine {
    let clients = Clients::load(&AwsOptions {
        profile: aws.profile.clone(),
        region,
        endpoint_url: aws.endpoint_url.clone(),
    })
    .await;
    let opts = DeployOptions {
        timing: Timing {
            poll: Duration::from_millis(aws.poll_ms.max(1)),
            ..Timing::default()
        },
        dry_run,
        ..DeployOptions::default()
    };
    Engine::new(clients, opts, crate::deploy::target::reporter(output))
}

fn render_down(r: &DownReport) -> String {
    let mut s = crate::deploy::destroy::render_destroy(&r.stacks);
    if r.remaining.is_empty() {
        if !r.dry_run {
            s.push_str(&format!(
                "preview {}: deleted (the account bootstrap stays)\n",
                r.name
            ));
        }
    } else {
        s.push_str(&format!(
            "preview {}: still there after the retries:\n",
            r.name
        ));
        for (k, v) in &r.remaining {
            s.push_str(&format!("   {k} {v}\n"));
        }
        for e in &r.errors {
            s.push_str(&format!("   cause: {e}\n"));
        }
        s.push_str(&format!(
            "rerun `chronoctl preview down {}` once the cause is fixed\n",
            r.name
        ));
    }
    s
}

/// Runs a preview command.
pub fn run(args: &PreviewArgs, output: OutputFormat) -> Result<(), Failure> {
    let rt = crate::exec::runtime()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
    match rt.block_on(run_async(args, output)) {
        Ok(code) => Failure::from_verdict(code),
        Err(e @ (PreviewError::Usage(_) | PreviewError::Name(_) | PreviewError::Config(_))) => {
            Err(Failure::Usage(e.to_string()))
        }
        Err(e) => Err(Failure::Failed(Some(e.to_string()))),
    }
}

async fn run_async(args: &PreviewArgs, output: OutputFormat) -> Result<Verdict, PreviewError> {
    let now = chrono::Utc::now();
    let aws = &args.aws;
    match &args.command {
        PreviewCommand::List => {
            let e = engine(aws, aws.region.clone(), false, output).await;
            let ps = previews(&e.clients.cfn).await?;
            if output == OutputFormat::Json {
                let rows: Vec<serde_json::Value> = ps
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "name": p.name, "owner": p.owner, "base": p.base,
                            "created": p.created.map(crate::preview::inventory::format_time),
                            "expires_at": p.expires_at,
                            "expires": p.expires().map(|t| relative(t, now)),
                            "expired": p.is_expired(now),
                            "status": p.status, "endpoints": p.endpoints,
                            "stacks": p.stacks.values().map(|s| &s.stack_name).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                print_json(&rows);
            } else {
                print!("{}", render_list(&ps, now));
            }
            Ok(Verdict::Pass)
        }
        PreviewCommand::Down(a) => {
            let e = engine(aws, aws.region.clone(), a.dry_run, output).await;
            let r = down(&e, &chrono_stacks::preview::normalize_name(&a.name)?).await;
            e.reporter.finish();
            let r = r?;
            if output == OutputFormat::Json {
                print_json(&serde_json::json!({"event": "summary", "down": r}));
            } else {
                print!("{}", render_down(&r));
            }
            Ok(if r.remaining.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail
            })
        }
        PreviewCommand::Gc(a) => {
            let e = engine(aws, aws.region.clone(), a.dry_run, output).await;
            let rows = gc(&e, now).await;
            e.reporter.finish();
            let rows = rows?;
            let left = rows
                .iter()
                .any(|r| r.down.as_ref().is_some_and(|d| !d.remaining.is_empty()));
            if output == OutputFormat::Json {
                print_json(
                    &serde_json::json!({"event": "summary", "dry_run": a.dry_run, "previews": rows}),
                );
            } else {
                for r in &rows {
                    let what = match (&r.verdict, a.dry_run) {
                        (crate::preview::inventory::GcVerdict::Expired, true) => "would delete",
                        (crate::preview::inventory::GcVerdict::Expired, false) => "deleted",
                        (crate::preview::inventory::GcVerdict::Live, _) => "kept",
                        (crate::preview::inventory::GcVerdict::NoExpiry, _) => {
                            "kept (no readable chrono:expires-at)"
                        }
                    };
                    println!(
                        "{:<20} {:<16} {} (expires {})",
                        r.name, what, r.owner, r.expires_at
                    );
                    if let Some(d) = &r.down
                        && !d.remaining.is_empty()
                    {
                        print!("{}", render_down(d));
                    }
                }
                if rows.is_empty() {
                    println!("no previews in this account and region");
                }
            }
            Ok(if left { Verdict::Fail } else { Verdict::Pass })
        }
        PreviewCommand::Up(a) => {
            let base_file = a.from.display().to_string();
            let base = chrono_stacks::Config::load(&a.from).map_err(|e| match e {
                chrono_stacks::config::LoadError::Invalid(c) => PreviewError::Config(c),
                other => PreviewError::Usage(other.to_string()),
            })?;
            let branch = match &a.name {
                Some(n) => n.clone(),
                None => git_branch()?,
            };
            let name = chrono_stacks::preview::normalize_name(&branch)?;
            let ttl = a.ttl.as_deref().map(parse_ttl).transpose()?;
            let region = aws.region.clone().unwrap_or_else(|| base.region.clone());
            let mut base = base;
            base.region.clone_from(&region);
            let e = engine(aws, Some(region), a.dry_run, output).await;
            let target = TargetArgs {
                config: vec![a.from.clone()],
                templates: None,
                artifacts: a.artifacts.clone(),
                registry_url: None,
                profile: aws.profile.clone(),
                region: aws.region.clone(),
                endpoint_url: aws.endpoint_url.clone(),
                poll_ms: aws.poll_ms,
            };
            let req = UpRequest {
                base,
                base_file,
                name: name.clone(),
                ttl,
                now,
            };
            let plan_err = |reason: String| PreviewError::Plan {
                name: name.clone(),
                reason,
            };
            let r = up(&e, &req, |cfg| {
                let artifacts = artifacts_for(cfg, &target, ArtifactNeed::Ship)
                    .map_err(|e| plan_err(format!("{e:#}")))?;
                plan_for_config(cfg, &artifacts)
                    .map(|(p, _)| p)
                    .map_err(|e| plan_err(format!("{e:#}")))
            })
            .await;
            e.reporter.finish();
            let (cfg, r) = r?;
            let cost = crate::cost::estimate_config(&cfg).map_err(|e| plan_err(e.to_string()))?;
            if output == OutputFormat::Json {
                print_json(&serde_json::json!({"event": "summary", "preview": r, "cost": cost}));
            } else {
                println!(
                    "preview {} {} (owner {}), expires {} ({})",
                    r.name,
                    if e.opts.dry_run {
                        "dry run"
                    } else if r.updated {
                        "updated"
                    } else {
                        "created"
                    },
                    r.owner,
                    r.expires_at,
                    crate::preview::inventory::parse_time(&r.expires_at)
                        .map(|t| relative(t, now))
                        .unwrap_or_default()
                );
                for (k, v) in &r.endpoints {
                    println!("{k}: {v}");
                }
                print!("{}", crate::cost::render(&cost));
            }
            Ok(Verdict::Pass)
        }
    }
}
