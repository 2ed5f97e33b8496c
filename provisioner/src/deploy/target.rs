//! Which account a deploy command targets and the plan it deploys: the arguments shared by
//! the deploy commands, the fleet and the previews ([`TargetArgs`], [`MutateArgs`],
//! [`DeployArgs`]), loading a config into a [`DeployPlan`] with its artifacts, and the
//! progress renderer of an output format.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::deploy::DeployPlan;
use crate::deploy::plan::PlanArtifacts;
use crate::deploy::progress::{JsonLines, LiveBars, PlainLines, Reporter};
use crate::output::OutputFormat;

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

impl MutateArgs {
    /// The options of a command that changes nothing (diff, status, outputs): no dry
    /// run to ask for, no lock to break, the default lease.
    pub fn read_only() -> Self {
        Self {
            dry_run: false,
            break_lock: false,
            lock_lease_secs: 120,
        }
    }
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
    let ws = crate::build::workspace()?;
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
