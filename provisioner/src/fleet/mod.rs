//! A fleet deploy: `chronoctl deploy --all` (every config under `customers/`) or several
//! `--config` files, many accounts at once with a bound (`--parallel K`).
//!
//! Each account is deployed by its own `chronoctl deploy --config FILE --output json`
//! process: a crash, a refusal (wrong account, a guard) or a stuck stack of one account
//! cannot stop or corrupt another, and every account keeps the single-account guarantees
//! (account guard, its own credentials and deploy role, the lock healed on SIGINT/SIGTERM).
//! The fleet reads each process's JSON events for one live line per account (plain lines
//! when stderr is not a terminal), records per account what happened in a state file
//! ([`state`]) after every change, and prints one summary table (or, with `--output
//! json`, one JSON line per finished account and a `fleet_summary` line).
//!
//! Resuming is explicit: `--resume` redoes only the accounts the recorded run did not
//! finish (failed, interrupted, never started, or whose config changed since); without it
//! a fleet run starts a new state file.

pub mod state;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::Semaphore;

use crate::deploy::target::DeployArgs;
use crate::output::OutputFormat;
use state::{Entry, FleetState, Status};

/// Exit code of an account's deploy that was interrupted (the single-account code).
const INTERRUPTED: i32 = 130;

/// Fleet options of `deploy`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Deploy every *.yaml config in DIR (default `customers`) as a fleet, accounts in
    /// parallel. Several `--config` files make a fleet too.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "customers", conflicts_with = "config")]
    pub all: Option<PathBuf>,
    /// Fleet: most accounts deployed at the same time (each deploys up to --concurrency
    /// stacks at once).
    #[arg(long, value_name = "K", default_value_t = 4)]
    pub parallel: usize,
    /// Fleet: redo only the accounts that the run recorded in --state did not finish
    /// (failed, interrupted, not started, or whose config changed since).
    #[arg(long)]
    pub resume: bool,
    /// Fleet: the state file recording each account's outcome (rewritten by every run).
    #[arg(long, value_name = "FILE", default_value = state::DEFAULT_STATE)]
    pub state: PathBuf,
}

impl FleetArgs {
    /// Whether this deploy is a fleet run.
    pub fn is_fleet(&self, configs: &[PathBuf]) -> bool {
        self.all.is_some() || self.resume || configs.len() > 1
    }
}

/// The configs of a fleet: every `*.yaml`/`*.yml` in the `--all` directory (sorted), or the
/// `--config` files in the order given, each once.
pub fn select(all: Option<&Path>, configs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    if let Some(dir) = all {
        let rd = std::fs::read_dir(dir).map_err(|e| {
            anyhow::anyhow!("--all {}: cannot list the configs: {e}", dir.display())
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|d| d.path())
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            anyhow::bail!("--all {}: no *.yaml config there", dir.display());
        }
        out = files;
    } else {
        let mut seen = BTreeSet::new();
        for c in configs {
            if seen.insert(c.clone()) {
                out.push(c.clone());
            }
        }
    }
    Ok(out)
}

/// Flags of a single-account deploy that make no sense for a fleet, with why.
fn refused_flags(a: &DeployArgs) -> Option<String> {
    let t = &a.target;
    if t.templates.is_some() {
        return Some("--templates names one account's templates; a fleet synthesizes each config's own (drop --templates)".into());
    }
    if t.region.is_some() {
        return Some(
            "--region: every config of a fleet deploys to its own `region` (drop --region)".into(),
        );
    }
    if a.require_approval {
        return Some("--require-approval asks on the terminal, and the prompts of parallel accounts would interleave; review each account with `chronoctl diff --config FILE` and deploy it alone".into());
    }
    if a.plan.is_some() {
        return Some(
            "--plan executes one account's reviewed change sets: deploy it with its own --config"
                .into(),
        );
    }
    if a.fleet.parallel == 0 {
        return Some("--parallel must be at least 1".into());
    }
    None
}

/// The arguments of one account's `chronoctl deploy` (everything the fleet was given that
/// applies to one account; output as JSON lines for the fleet to read).
pub fn child_args(a: &DeployArgs, config: &Path) -> Vec<OsString> {
    let t = &a.target;
    let mut v: Vec<OsString> = vec!["--output".into(), "json".into(), "deploy".into()];
    v.push("--config".into());
    v.push(config.into());
    let mut opt = |k: &str, val: Option<OsString>| {
        if let Some(val) = val {
            v.push(k.into());
            v.push(val);
        }
    };
    opt("--artifacts", t.artifacts.clone().map(Into::into));
    opt("--registry-url", t.registry_url.clone().map(Into::into));
    opt("--profile", t.profile.clone().map(Into::into));
    opt("--endpoint-url", t.endpoint_url.clone().map(Into::into));
    opt("--poll-ms", Some(t.poll_ms.to_string().into()));
    opt(
        "--lock-lease-secs",
        Some(a.mutate.lock_lease_secs.to_string().into()),
    );
    opt("--concurrency", Some(a.concurrency.to_string().into()));
    opt("--app-dir", Some(a.app_dir.clone().into()));
    if !a.stacks.is_empty() {
        opt("--stack", Some(a.stacks.join(",").into()));
    }
    for r in &a.allow_replace {
        opt("--allow-replace", Some(r.into()));
    }
    for (on, flag) in [
        (a.mutate.dry_run, "--dry-run"),
        (a.mutate.break_lock, "--break-lock"),
        (a.yes, "--yes"),
        (a.no_wait, "--no-wait"),
        (a.hotswap, "--hotswap"),
    ] {
        if on {
            v.push(flag.into());
        }
    }
    v
}

/// One entry per config: what the config says (or why it cannot be deployed).
fn entries(configs: &[PathBuf], a: &DeployArgs) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut names: std::collections::BTreeMap<String, PathBuf> = Default::default();
    for c in configs {
        let mut e = Entry {
            config: c.clone(),
            name: c
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            account_id: String::new(),
            region: String::new(),
            config_sha256: state::file_sha256(c).unwrap_or_default(),
            status: Status::Pending,
            exit_code: None,
            elapsed_ms: 0,
            detail: String::new(),
            dry_run: a.mutate.dry_run,
        };
        match chrono_stacks::Config::load(c) {
            Ok(cfg) => {
                e.name = chrono_stacks::synth::dir_name(&cfg);
                e.account_id = cfg.account_id.clone();
                e.region = cfg.region.clone();
                if let Some(other) = names.insert(e.name.clone(), c.clone()) {
                    anyhow::bail!(
                        "{} and {} both deploy {}: one config per customer and stage in a fleet",
                        other.display(),
                        c.display(),
                        e.name
                    );
                }
                if cfg.stage != chrono_stacks::config::Stage::Local && a.target.artifacts.is_none()
                {
                    e.status = Status::Failed;
                    e.detail = format!(
                        "stage {} ships the built runtime: build once with `chronoctl build --config {} --out DIR` and pass --artifacts DIR to the fleet (parallel accounts do not each build)",
                        cfg.stage,
                        c.display()
                    );
                }
            }
            Err(err) => {
                e.status = Status::Failed;
                e.detail = err.to_string();
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// The live view: one line per account.
enum Board {
    /// A terminal: one redrawn line per account.
    Live(MultiProgress, Vec<ProgressBar>),
    /// Not a terminal: a plain line per state change of an account, on stderr.
    Plain(Mutex<Vec<String>>),
    /// `--output json`: one JSON line per finished account on stdout.
    Json,
}

impl Board {
    fn new(output: OutputFormat, names: &[String]) -> Self {
        match output {
            OutputFormat::Json => Self::Json,
            OutputFormat::Text if std::io::stderr().is_terminal() => {
                let multi = MultiProgress::new();
                let width = names.iter().map(String::len).max().unwrap_or(8);
                let style = ProgressStyle::with_template(&format!(
                    "{{spinner}} {{prefix:<{width}}} {{elapsed:>4}} {{wide_msg}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let bars = names
                    .iter()
                    .map(|n| {
                        let b = multi.add(ProgressBar::new_spinner());
                        b.set_style(style.clone());
                        b.set_prefix(n.clone());
                        b.set_message("waiting for a slot");
                        b
                    })
                    .collect();
                Self::Live(multi, bars)
            }
            OutputFormat::Text => Self::Plain(Mutex::new(vec![String::new(); names.len()])),
        }
    }

    /// Account `i` (`name`) is now doing `msg`.
    fn line(&self, i: usize, name: &str, msg: &str) {
        match self {
            Self::Live(_, bars) => {
                if let Some(b) = bars.get(i) {
                    b.enable_steady_tick(Duration::from_millis(200));
                    b.set_message(msg.to_owned());
                }
            }
            Self::Plain(last) => {
                if let Ok(mut last) = last.lock() {
                    if last.get(i).is_some_and(|l| l == msg) {
                        return;
                    }
                    if let Some(l) = last.get_mut(i) {
                        *l = msg.to_owned();
                    }
                }
                eprintln!("{name}: {msg}");
            }
            Self::Json => {}
        }
    }

    /// Account `i` is finished.
    fn done(&self, i: usize, e: &Entry) {
        match self {
            Self::Live(_, bars) => {
                if let Some(b) = bars.get(i) {
                    b.finish_with_message(format!("{} {}", e.status.label(), e.detail));
                }
            }
            Self::Plain(_) => eprintln!("{}: {} {}", e.name, e.status.label(), e.detail),
            Self::Json => {
                if let Ok(s) = serde_json::to_string(&serde_json::json!({
                    "event": "account", "account": e,
                })) {
                    println!("{s}");
                }
            }
        }
    }

    fn finish(&self) {
        if let Self::Live(multi, bars) = self {
            for b in bars {
                if !b.is_finished() {
                    b.finish();
                }
            }
            let _ = multi.clear();
        }
    }
}

/// What an account's JSON event line says, as a live line (`None`: nothing to show).
fn describe(event: &serde_json::Value, stacks_done: &mut usize) -> Option<String> {
    let s = |k: &str| event.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    match s("event") {
        "stack" => Some(format!(
            "{}: {} ({}/{})",
            s("stack"),
            s("state"),
            event.get("done").and_then(|v| v.as_u64()).unwrap_or(0),
            event.get("total").and_then(|v| v.as_u64()).unwrap_or(0)
        )),
        "done" => {
            *stacks_done += 1;
            Some(format!(
                "{} {} ({} stacks finished)",
                s("stack"),
                s("outcome"),
                stacks_done
            ))
        }
        "info" => Some(s("message").to_owned()),
        "error" => Some(format!("error: {}", s("message"))),
        _ => None,
    }
}

/// One line for a finished deploy from its `summary` event: counts per stack outcome.
fn summarize(summary: &serde_json::Value) -> String {
    let stacks = summary
        .pointer("/report/stacks")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut failed = Vec::new();
    for st in &stacks {
        let outcome = st
            .get("outcome")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .replace('_', " ");
        if outcome == "failed" {
            failed.push(format!(
                "{}: {}",
                st.get("name").and_then(|v| v.as_str()).unwrap_or("?"),
                st.get("detail").and_then(|v| v.as_str()).unwrap_or("")
            ));
        }
        *counts.entry(outcome).or_default() += 1;
    }
    let mut line = format!(
        "{} stacks: {}",
        stacks.len(),
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !failed.is_empty() {
        line.push_str("; ");
        line.push_str(&failed.join("; "));
    }
    line
}

/// Shared state of a running fleet.
struct Run {
    state: Mutex<FleetState>,
    path: PathBuf,
    board: Board,
    /// PIDs of the running account deploys (to forward SIGINT/SIGTERM).
    pids: Mutex<BTreeSet<u32>>,
    /// Set once interrupted: accounts not started stay pending.
    stopping: std::sync::atomic::AtomicBool,
}

impl Run {
    fn update(&self, i: usize, f: impl FnOnce(&mut Entry)) -> Entry {
        let (entry, snapshot) = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = s.accounts.get_mut(i) {
                f(e);
            }
            (s.accounts.get(i).cloned(), s.clone())
        };
        if let Err(e) = snapshot.save(&self.path) {
            eprintln!("chronoctl: {e}");
        }
        entry.unwrap_or_else(|| snapshot.accounts[0].clone())
    }
}

/// Deploys one account through its own `chronoctl deploy` process.
async fn deploy_account(run: Arc<Run>, i: usize, exe: PathBuf, args: Vec<OsString>) {
    let name = run
        .state
        .lock()
        .map(|s| s.accounts[i].name.clone())
        .unwrap_or_default();
    let started = Instant::now();
    run.update(i, |e| {
        e.status = Status::Running;
        e.detail.clear();
    });
    run.board.line(i, &name, "starting");
    let child = tokio::process::Command::new(&exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(err) => {
            let e = run.update(i, |e| {
                e.status = Status::Failed;
                e.detail = format!("cannot start {}: {err}", exe.display());
            });
            run.board.done(i, &e);
            return;
        }
    };
    let pid = child.id();
    if let (Some(pid), Ok(mut p)) = (pid, run.pids.lock()) {
        p.insert(pid);
    }
    let stderr = child.stderr.take().map(|mut err| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text).await;
            text
        })
    });
    let mut error: Option<String> = None;
    let mut summary: Option<String> = None;
    let mut stacks_done = 0;
    if let Some(out) = child.stdout.take() {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) else {
                continue;
            };
            match v.get("event").and_then(|e| e.as_str()) {
                Some("summary") => summary = Some(summarize(&v)),
                Some("error") => {
                    error = v.get("message").and_then(|m| m.as_str()).map(str::to_owned);
                }
                _ => {}
            }
            if let Some(msg) = describe(&v, &mut stacks_done) {
                run.board.line(i, &name, &msg);
            }
        }
    }
    let status = child.wait().await;
    if let (Some(pid), Ok(mut p)) = (pid, run.pids.lock()) {
        p.remove(&pid);
    }
    let stderr = match stderr {
        Some(h) => h.await.unwrap_or_default(),
        None => String::new(),
    };
    let code = status.as_ref().ok().and_then(|s| s.code());
    let e = run.update(i, |e| {
        e.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        e.exit_code = code;
        e.status = match code {
            Some(0) => Status::Succeeded,
            Some(INTERRUPTED) => Status::Interrupted,
            None if run.stopping.load(std::sync::atomic::Ordering::SeqCst) => Status::Interrupted,
            _ => Status::Failed,
        };
        e.detail = match (&error, &summary) {
            (Some(err), Some(s)) => format!("{s}; {err}"),
            (Some(err), None) => err.clone(),
            (None, Some(s)) => s.clone(),
            (None, None) => match &status {
                Err(err) => format!("waiting for the deploy failed: {err}"),
                Ok(st) => {
                    let last = stderr
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("no output");
                    format!("exit {st}: {last}")
                }
            },
        };
    });
    run.board.done(i, &e);
}

/// Runs a fleet deploy; after the summary, returns the exit code (0 every account done,
/// 1 an account failed, 130 interrupted); an error is bad input (or the fleet could not
/// start), which the caller reports (exit 2).
pub fn run(a: &DeployArgs, output: OutputFormat) -> anyhow::Result<u8> {
    let (state, path) = prepare(a)?;
    execute(a, output, state, path)
}

fn prepare(a: &DeployArgs) -> anyhow::Result<(FleetState, PathBuf)> {
    if let Some(why) = refused_flags(a) {
        anyhow::bail!("{why}");
    }
    let configs = select(a.fleet.all.as_deref(), &a.target.config)?;
    if configs.is_empty() {
        anyhow::bail!("a fleet needs --all or --config FILE (repeatable)");
    }
    let mut state = FleetState::new(entries(&configs, a)?);
    if a.fleet.resume {
        let previous = FleetState::load(&a.fleet.state)?;
        state.resume_from(&previous);
    }
    Ok((state, a.fleet.state.clone()))
}

fn execute(
    a: &DeployArgs,
    output: OutputFormat,
    state: FleetState,
    path: PathBuf,
) -> anyhow::Result<u8> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find its own executable: {e}"))?;
    let rt = crate::exec::runtime()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let names: Vec<String> = state.accounts.iter().map(|e| e.name.clone()).collect();
    let todo: Vec<usize> = state
        .accounts
        .iter()
        .enumerate()
        .filter(|(_, e)| e.status == Status::Pending)
        .map(|(i, _)| i)
        .collect();
    let board = Board::new(output, &names);
    for (i, e) in state.accounts.iter().enumerate() {
        if e.status != Status::Pending {
            board.done(i, e);
        }
    }
    if let Err(e) = state.save(&path) {
        board.finish();
        return Err(e.into());
    }
    let run = Arc::new(Run {
        state: Mutex::new(state),
        path,
        board,
        pids: Mutex::default(),
        stopping: false.into(),
    });
    let started = Instant::now();
    let interrupted = rt.block_on(async {
        let slots = Arc::new(Semaphore::new(a.fleet.parallel.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for i in todo {
            let (run, slots, exe) = (run.clone(), slots.clone(), exe.clone());
            let config = match run.state.lock() {
                Ok(s) => s.accounts[i].config.clone(),
                Err(_) => continue,
            };
            let args = child_args(a, &config);
            tasks.spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else {
                    return;
                };
                if run.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                deploy_account(run, i, exe, args).await;
            });
        }
        let all = async { while tasks.join_next().await.is_some() {} };
        tokio::pin!(all);
        tokio::select! {
            () = &mut all => None,
            sig = crate::exec::interrupted() => {
                run.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
                let pids: Vec<u32> = run.pids.lock().map(|p| p.iter().copied().collect()).unwrap_or_default();
                for pid in pids {
                    // each account's deploy releases its lock and deletes its change sets
                    let _ = crate::local::process::signal(pid, "TERM");
                }
                all.await;
                Some(sig)
            }
        }
    });
    rt.shutdown_background();
    run.board.finish();
    let state = run
        .state
        .lock()
        .map(|s| s.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let elapsed = started.elapsed();
    let code: u8 = if interrupted.is_some() {
        130
    } else if state.accounts.iter().all(|e| e.status.is_done()) {
        0
    } else {
        1
    };
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::json!({
                "event": "fleet_summary",
                "exit_code": code,
                "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                "parallel": a.fleet.parallel,
                "state_file": run.path,
                "accounts": state.accounts,
            })
        );
    } else {
        print!("{}", render_summary(&state, elapsed));
        if let Some(sig) = interrupted {
            eprintln!(
                "chronoctl: interrupted by {sig}: running accounts stopped (locks released, change sets deleted); `chronoctl deploy --resume` (same selection) continues"
            );
        } else if code != 0 {
            eprintln!(
                "chronoctl: {} of {} accounts not deployed; fix them and rerun with --resume (state: {})",
                state
                    .accounts
                    .iter()
                    .filter(|e| !e.status.is_done())
                    .count(),
                state.accounts.len(),
                run.path.display()
            );
        }
    }
    Ok(code)
}

/// The summary table of a fleet run.
pub fn render_summary(state: &FleetState, elapsed: Duration) -> String {
    let w = state
        .accounts
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut s = format!(
        "{:<w$}  {:<12}  {:<14}  {:<11}  {:>4}  {:>7}  DETAIL\n",
        "ACCOUNT", "ID", "REGION", "RESULT", "EXIT", "TIME"
    );
    for e in &state.accounts {
        s.push_str(&format!(
            "{:<w$}  {:<12}  {:<14}  {:<11}  {:>4}  {:>6.1}s  {}\n",
            e.name,
            e.account_id,
            e.region,
            e.status.label(),
            e.exit_code.map_or("-".to_owned(), |c| c.to_string()),
            e.elapsed_ms as f64 / 1000.0,
            e.detail
        ));
    }
    let counts = state.counts();
    s.push_str(&format!(
        "fleet: {} accounts in {:.1}s: {}\n",
        state.accounts.len(),
        elapsed.as_secs_f64(),
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s
}
