//! `local up`, `status`, `down`, `logs` and `token`: starting, inspecting and stopping
//! the local platform from what the state file records.
//!
//! `up` is idempotent: a component whose recorded pid is still ours is kept, one that
//! died is reported and started again, ports chosen on the first `up` are reused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::output::Verdict;
use std::time::{Duration, Instant};

use chrono_contract::env as vars;
use chrono_stacks::config::Config;
use serde_json::json;

use super::issuer::{self, ISSUER};
use super::keys::{SigningKey, TokenClaims};
use super::layout::{Component, Layout, State};
use super::postgres::{self, Binaries};
use super::runtime::{self, PROCESSES, RuntimeProcess, Wiring};
use super::s3::{self, S3};
use super::web::{self, WEB};
use super::{LocalError, SeedArgs, TokenArgs, UpArgs, moto, process, provision};
use crate::output::OutputFormat;
use crate::webapp::{self, AppConfig, OidcConfig};

/// Component names of the infrastructure `up` starts before the runtime.
pub const MOTO: &str = "moto";
/// See [`MOTO`].
pub const POSTGRES: &str = "postgres";

const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);

fn say(output: OutputFormat, line: impl AsRef<str>) {
    if output == OutputFormat::Text {
        eprintln!("{}", line.as_ref());
    }
}

fn port(state: &mut State, name: &str) -> Result<u16, LocalError> {
    if let Some(p) = state.ports.get(name) {
        return Ok(*p);
    }
    let p = process::free_port()?;
    state.ports.insert(name.to_owned(), p);
    Ok(p)
}

/// The recorded component `name` if its pid is still ours.
fn running<'a>(state: &'a State, name: &str) -> Option<&'a Component> {
    state
        .components
        .get(name)
        .filter(|c| c.pid.is_some_and(|pid| process::is_ours(pid, &c.program)))
}

/// Whether `url` answers HTTP at all (any status).
async fn answers(client: &reqwest::Client, url: &str) -> bool {
    client.get(url).send().await.is_ok()
}

/// Whether `url` answers 2xx.
async fn healthy(client: &reqwest::Client, url: &str) -> bool {
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Polls `url` until it answers 2xx (or anything when `any_status`), the child exits, or
/// the timeout passes.
async fn wait_for(
    component: &str,
    url: &str,
    any_status: bool,
    mut child: Option<&mut Child>,
    log: &Path,
) -> Result<(), LocalError> {
    let client = http_client();
    let deadline = Instant::now() + HEALTH_TIMEOUT;
    loop {
        let ok = if any_status {
            answers(&client, url).await
        } else {
            healthy(&client, url).await
        };
        if ok {
            return Ok(());
        }
        if let Some(c) = child.as_deref_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            return Err(LocalError::Start {
                component: component.to_owned(),
                reason: format!("it exited ({status}) before answering {url}"),
                log: log.to_path_buf(),
            });
        }
        if Instant::now() > deadline {
            return Err(LocalError::Start {
                component: component.to_owned(),
                reason: format!("{url} did not answer within {}s", HEALTH_TIMEOUT.as_secs()),
                log: log.to_path_buf(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// The runtime binaries: `given`, or the directory of chronoctl itself.
fn bin_dir(given: Option<&PathBuf>) -> PathBuf {
    given.cloned().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."))
    })
}

/// `chronoctl local up`.
pub async fn up(
    layout: &Layout,
    args: &UpArgs,
    output: OutputFormat,
) -> Result<Verdict, LocalError> {
    let cfg_path =
        std::path::absolute(&args.config).map_err(LocalError::io("resolving", &args.config))?;
    let cfg = Config::load(&cfg_path)?;
    let plan = provision::plan(&cfg)?;
    let bins = bin_dir(args.bin_dir.as_ref());
    let moto_program = moto::program(&args.venv)?;
    let db = match std::env::var(vars::DATABASE_URL)
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(url) => Database::External(url),
        None => Database::Local(Binaries::find()?),
    };
    if args.dry_run {
        return dry_run(layout, &cfg, &plan, &bins, output);
    }
    layout.create()?;
    let mut state = layout.load()?.unwrap_or_default();
    state.config = cfg_path;

    // The local S3 server: evidence and artifacts on disk under <dir>/s3.
    let s3_port = port(&mut state, S3)?;
    let s3_url = format!("http://127.0.0.1:{s3_port}");
    let mut cmd = serve_command(layout, "serve-s3", s3_port)?;
    cmd.arg("--root").arg(layout.s3_data());
    let started = Started {
        name: S3,
        port: s3_port,
        health_path: s3::HEALTH_PATH,
    };
    ensure_started(layout, &mut state, &started, cmd, output).await?;

    // The emulator (DynamoDB, Step Functions).
    let moto_port = port(&mut state, MOTO)?;
    let moto_url = format!("http://127.0.0.1:{moto_port}");
    if running(&state, MOTO).is_none() {
        report_crash(&state, MOTO, output);
        let log = layout.log(MOTO);
        say(output, format!("starting moto on {moto_url}"));
        let recording = layout.moto_recording();
        let previous = std::fs::metadata(&recording).is_ok_and(|m| m.len() > 0);
        let mut child = moto::start(&moto_program, moto_port, &log, Some(&recording))?;
        record(&mut state, MOTO, child.id(), &moto_program, &moto_url, &log);
        layout.save(&state)?;
        wait_for(
            MOTO,
            &format!("{moto_url}/moto-api/"),
            true,
            Some(&mut child),
            &log,
        )
        .await?;
        if previous {
            let dropped = moto::repair_recording(&recording)?;
            if dropped > 0 {
                say(
                    output,
                    format!(
                        "dropped {dropped} torn line(s) from {} (moto was killed mid-write)",
                        recording.display()
                    ),
                );
            }
            say(
                output,
                "restoring the emulator's state from the previous run",
            );
            moto::replay(&http_client(), &moto_url).await?;
        }
    }

    // The database.
    let database = chrono_stacks::data::DATABASE_NAME;
    // The local cluster's port; `None` when every process uses DATABASE_URL as is.
    let pg_port = match &db {
        Database::External(_) => {
            say(output, "using the PostgreSQL server of DATABASE_URL");
            state.components.remove(POSTGRES);
            None
        }
        Database::Local(pg) => {
            let pg_port = port(&mut state, POSTGRES)?;
            if running(&state, POSTGRES).is_none() {
                report_crash(&state, POSTGRES, output);
                if pg.init(layout)? {
                    say(
                        output,
                        format!(
                            "created the PostgreSQL cluster in {}",
                            layout.pg_data().display()
                        ),
                    );
                }
                say(
                    output,
                    format!("starting PostgreSQL on 127.0.0.1:{pg_port}"),
                );
                let pid = pg.start(layout, pg_port)?;
                let endpoint = postgres::url(pg_port, postgres::MASTER_USER, database);
                record(
                    &mut state,
                    POSTGRES,
                    pid,
                    &pg.postgres(),
                    &endpoint,
                    &layout.log(POSTGRES),
                );
                layout.save(&state)?;
            }
            pg.ensure_master(pg_port, database)?;
            Some(pg_port)
        }
    };
    let external_url = match &db {
        Database::External(url) => url.clone(),
        Database::Local(_) => String::new(),
    };
    let user_url = |user: &str| {
        pg_port.map_or_else(
            || external_url.clone(),
            |port| postgres::url(port, user, database),
        )
    };
    // Migrations and every runtime process log in as the Aurora-like master user.
    let master_url = user_url(postgres::MASTER_USER);

    // The app's origin (the front door's port), which the issuer, the evidence bucket's
    // CORS rule and the app's configuration name.
    let web_port = port(&mut state, WEB)?;
    let origin = app_origin(web_port);

    // The emulated AWS resources, from the stack model.
    let sdk = moto::sdk_config(&moto_url, &cfg.region);
    let s3_sdk = moto::sdk_config(&s3_url, &cfg.region);
    let provisioned = provision::apply(&sdk, &s3_sdk, &cfg, &plan, &origin).await?;
    say(
        output,
        format!(
            "provisioned from {}: buckets {}, {}; tables {}, {}, {}; state machine {}",
            args.config.display(),
            provisioned.sources_bucket,
            provisioned.artifacts_bucket,
            provisioned.sessions_table,
            provisioned.intent_cache_table,
            provisioned.conversations_table,
            plan.state_machine,
        ),
    );

    // Schema and roles, applied by the runtime itself.
    let api_program = runtime::API.program(&bins);
    match &api_program {
        Some(api) => {
            process::run(
                Command::new(api)
                    .arg("migrate")
                    .env(vars::DATABASE_URL, &master_url)
                    .env(vars::LOG_FORMAT, "text"),
            )?;
            say(
                output,
                format!(
                    "database migrated as {} (CREATEROLE CREATEDB, not a superuser, like the Aurora master user)",
                    postgres::MASTER_USER
                ),
            );
        }
        None => say(
            output,
            format!(
                "migrations: not yet available ({} not built in {})",
                runtime::API.binary,
                bins.display()
            ),
        ),
    }

    // Identity.
    let (_, minted) = SigningKey::load_or_mint(layout)?;
    if minted {
        say(
            output,
            format!("minted a signing key; JWKS in {}", layout.jwks().display()),
        );
    }

    let issuer_port = port(&mut state, ISSUER)?;
    let issuer_url = issuer::issuer_url(issuer_port);
    start_issuer(layout, &mut state, &cfg, issuer_port, &origin, output).await?;

    // Runtime processes.
    let jwks_url = issuer::jwks_url(issuer_port);
    let wiring = Wiring {
        cfg: &cfg,
        provisioned: &provisioned,
        aws_endpoint: &moto_url,
        s3_endpoint: &s3_url,
        issuer: &issuer_url,
        jwks_url: &jwks_url,
    };
    let shared_env = runtime::env(&wiring, &master_url);
    state.env = shared_env.clone();
    state.env.remove(vars::DATABASE_URL);
    let mut unavailable = Vec::new();
    for rp in PROCESSES {
        let Some(program) = rp.program(&bins) else {
            unavailable.push(rp);
            state.components.remove(rp.name);
            continue;
        };
        let rp_port = port(&mut state, rp.name)?;
        let mut cmd = Command::new(&program);
        cmd.args(rp.args(rp_port))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&shared_env)
            .env(vars::DATABASE_URL, &master_url);
        let started = Started {
            name: rp.name,
            port: rp_port,
            health_path: rp.health_path,
        };
        ensure_started(layout, &mut state, &started, cmd, output).await?;
    }

    // The front door: the app, the API, the AI chat and its WebSocket on one origin.
    let app_config = AppConfig {
        api_url: origin.clone(),
        ws_url: Some(format!("ws://127.0.0.1:{web_port}{}", web::WS_PATH)),
        oidc: OidcConfig {
            issuer: issuer_url.clone(),
            client_id: runtime::audience(&cfg),
            scopes: webapp::SCOPES.map(String::from).to_vec(),
            redirect_uri: webapp::redirect_uri(&origin),
            audience: None,
            roles_claim: cfg.auth.roles_claim.clone(),
            cases_claim: cfg.auth.cases_claim.clone(),
        },
    };
    let config_file = layout.app_config();
    std::fs::write(&config_file, app_config.to_json())
        .map_err(LocalError::io("writing", &config_file))?;
    let app_dir =
        std::path::absolute(&args.app_dir).map_err(LocalError::io("resolving", &args.app_dir))?;
    let backend = |name: &str| {
        format!(
            "http://127.0.0.1:{}",
            state.ports.get(name).copied().unwrap_or(0)
        )
    };
    let mut cmd = serve_command(layout, "serve-web", web_port)?;
    cmd.arg("--app-dir")
        .arg(&app_dir)
        .arg("--api")
        .arg(backend(runtime::API.name))
        .arg("--ai")
        .arg(backend(runtime::FILTER_AI.name))
        .arg("--config")
        .arg(&config_file)
        .args(["--connect-src", &issuer_url, "--connect-src", &s3_url])
        .args(["--connect-src", &format!("ws://127.0.0.1:{web_port}")]);
    let started = Started {
        name: WEB,
        port: web_port,
        health_path: web::HEALTH_PATH,
    };
    ensure_started(layout, &mut state, &started, cmd, output).await?;
    if !app_dir.join("index.html").is_file() {
        say(
            output,
            format!(
                "the web app is not built ({} has no index.html): `make app` builds it",
                app_dir.display()
            ),
        );
    }
    layout.save(&state)?;

    let summary = summary(&state, &unavailable, layout);
    match output {
        OutputFormat::Json => println!("{summary:#}"),
        OutputFormat::Text => print_summary(&state, &unavailable, layout),
    }
    Ok(Verdict::Pass)
}

/// A process `up` keeps running: its component name, port and health path.
struct Started {
    name: &'static str,
    port: u16,
    health_path: &'static str,
}

/// Keeps component `p` if it still runs from the current build of its program; otherwise
/// (stopping an outdated one, reporting a crashed one) spawns `cmd`, records it and waits
/// until it answers its health check.
async fn ensure_started(
    layout: &Layout,
    state: &mut State,
    p: &Started,
    cmd: Command,
    output: OutputFormat,
) -> Result<(), LocalError> {
    let program = PathBuf::from(cmd.get_program());
    let url = format!("http://127.0.0.1:{}", p.port);
    if let Some(c) = running(state, p.name) {
        if c.program_modified == super::layout::modified(&program) {
            return Ok(());
        }
        say(
            output,
            format!(
                "{} was rebuilt since {} started; restarting it",
                program.display(),
                p.name
            ),
        );
        if let Some(pid) = c.pid {
            process::stop(pid, &c.program, STOP_GRACE)?;
        }
    } else {
        report_crash(state, p.name, output);
    }
    let log = layout.log(p.name);
    say(output, format!("starting {} on {url}", p.name));
    let mut child = process::spawn(cmd, &log)?;
    record(state, p.name, child.id(), &program, &url, &log);
    layout.save(state)?;
    wait_for(
        p.name,
        &format!("{url}{}", p.health_path),
        false,
        Some(&mut child),
        &log,
    )
    .await
}

/// The origin the app is served on by the front door listening on `port`.
pub fn app_origin(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// `chronoctl local --dir <root> <subcommand> --addr 127.0.0.1:<port>`: this very binary
/// as one of the servers of local mode, with a clean environment (`PATH` only).
fn serve_command(layout: &Layout, subcommand: &str, port: u16) -> Result<Command, LocalError> {
    let program = std::env::current_exe().map_err(LocalError::io("locating", "chronoctl"))?;
    let mut cmd = Command::new(program);
    cmd.arg("local")
        .arg("--dir")
        .arg(layout.root())
        .arg(subcommand)
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    Ok(cmd)
}

/// Starts the issuer (this very binary, `local serve-issuer`) unless it already runs from
/// the current build. Its one client is the app (client id = the API's audience, as with
/// a Cognito app client), redirecting to the app's callback on `origin`.
async fn start_issuer(
    layout: &Layout,
    state: &mut State,
    cfg: &Config,
    port: u16,
    origin: &str,
    output: OutputFormat,
) -> Result<(), LocalError> {
    let mut cmd = serve_command(layout, "serve-issuer", port)?;
    cmd.arg("--issuer")
        .arg(issuer::issuer_url(port))
        .arg("--jwks")
        .arg(layout.jwks())
        .arg("--signing-key")
        .arg(layout.signing_key())
        .arg("--client-id")
        .arg(runtime::audience(cfg))
        .arg("--audience")
        .arg(runtime::audience(cfg))
        .arg("--redirect-uri")
        .arg(webapp::redirect_uri(origin));
    let started = Started {
        name: ISSUER,
        port,
        health_path: issuer::HEALTH_PATH,
    };
    ensure_started(layout, state, &started, cmd, output).await
}

fn dry_run(
    layout: &Layout,
    cfg: &Config,
    plan: &provision::Plan,
    bins: &Path,
    output: OutputFormat,
) -> Result<Verdict, LocalError> {
    let doc = json!({
        "dir": layout.root(),
        "buckets": plan.buckets.iter().map(|b| &b.bucket_name).collect::<Vec<_>>(),
        "tables": plan.tables.iter().map(|t| json!({
            "name": t.table_name,
            "keys": t.key_schema.iter().map(|k| format!("{} {}", k.attribute_name, k.key_type)).collect::<Vec<_>>(),
            "ttl": t.time_to_live_specification.attribute_name,
        })).collect::<Vec<_>>(),
        "state_machine": plan.state_machine,
        "region": cfg.region,
        "processes": PROCESSES.iter().map(|p| json!({
            "name": p.name,
            "binary": bins.join(p.binary),
            "available": p.program(bins).is_some(),
        })).collect::<Vec<_>>(),
    });
    match output {
        OutputFormat::Json => println!("{doc:#}"),
        OutputFormat::Text => println!("local up --dry-run (nothing started):\n{doc:#}"),
    }
    Ok(Verdict::Pass)
}

/// Where the database comes from.
enum Database {
    /// `DATABASE_URL` was set: every process uses it as is.
    External(String),
    /// The private cluster under the local directory.
    Local(Binaries),
}

fn record(state: &mut State, name: &str, pid: u32, program: &Path, endpoint: &str, log: &Path) {
    state.components.insert(
        name.to_owned(),
        Component {
            pid: Some(pid),
            program: program.to_path_buf(),
            endpoint: endpoint.to_owned(),
            log: log.to_path_buf(),
            program_modified: super::layout::modified(program),
        },
    );
}

fn report_crash(state: &State, name: &str, output: OutputFormat) {
    if let Some(c) = state.components.get(name)
        && let Some(pid) = c.pid
    {
        say(
            output,
            format!(
                "{name} (pid {pid}) is no longer running; restarting it (see {})",
                c.log.display()
            ),
        );
    }
}

fn summary(state: &State, unavailable: &[RuntimeProcess], layout: &Layout) -> serde_json::Value {
    json!({
        "components": state.components.iter().map(|(n, c)| (n.clone(), json!({
            "pid": c.pid, "endpoint": c.endpoint, "log": c.log,
        }))).collect::<serde_json::Map<_, _>>(),
        "not_yet_available": unavailable.iter().map(|p| p.name).collect::<Vec<_>>(),
        "jwks": layout.jwks(),
        "jwks_url": state.ports.get(ISSUER).map(|p| issuer::jwks_url(*p)),
        "app_url": app_url(state),
    })
}

fn print_summary(state: &State, unavailable: &[RuntimeProcess], layout: &Layout) {
    println!(
        "ChronoTracer local platform is up ({}):",
        layout.root().display()
    );
    for (name, c) in &state.components {
        println!(
            "  {name:<10} pid {:<8} {}",
            c.pid.map(|p| p.to_string()).unwrap_or_default(),
            c.endpoint
        );
    }
    for p in unavailable {
        println!(
            "  {:<10} not yet available ({} is not built in this checkout)",
            p.name, p.binary
        );
    }
    if let Some(api) = state.components.get(runtime::API.name) {
        println!();
        println!("Try it:");
        println!("  TOKEN=$(chronoctl local token --role admin)");
        println!(
            "  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n       -d '{{\"name\":\"my case\"}}' {}/api/v1/cases",
            api.endpoint
        );
    }
    if let Some(url) = app_url(state) {
        println!();
        println!("Open the app: {url}");
    }
    println!("Logs: chronoctl local logs <component>   Stop: chronoctl local down [--wipe]");
}

/// The app's URL, when the front door was started.
pub fn app_url(state: &State) -> Option<String> {
    state
        .components
        .get(WEB)
        .map(|c| format!("{}/", c.endpoint.trim_end_matches('/')))
}

/// One line of `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentStatus {
    /// Component.
    pub name: String,
    /// `running`, `unhealthy`, `stopped`, `not yet available`.
    pub state: String,
    /// Pid, while running.
    pub pid: Option<u32>,
    /// Endpoint.
    pub endpoint: String,
}

/// The state of every component `up` knows about.
pub async fn statuses(layout: &Layout) -> Result<Vec<ComponentStatus>, LocalError> {
    let state = layout.load()?.ok_or(LocalError::NotRunning)?;
    let client = http_client();
    let mut out = Vec::new();
    for (name, c) in &state.components {
        let alive = c.pid.is_some_and(|pid| process::is_ours(pid, &c.program));
        let health = match name.as_str() {
            MOTO => format!("{}/moto-api/", c.endpoint),
            S3 => format!("{}{}", c.endpoint, s3::HEALTH_PATH),
            POSTGRES => String::new(),
            ISSUER => format!("{}{}", c.endpoint, issuer::HEALTH_PATH),
            WEB => format!("{}{}", c.endpoint, web::HEALTH_PATH),
            other => {
                let path = PROCESSES
                    .iter()
                    .find(|p| p.name == other)
                    .map(|p| p.health_path)
                    .unwrap_or("/healthz");
                format!("{}{path}", c.endpoint)
            }
        };
        let st = if !alive {
            "stopped"
        } else if health.is_empty()
            || (name == MOTO && answers(&client, &health).await)
            || healthy(&client, &health).await
        {
            "running"
        } else {
            "unhealthy"
        };
        out.push(ComponentStatus {
            name: name.clone(),
            state: st.into(),
            pid: if alive { c.pid } else { None },
            endpoint: c.endpoint.clone(),
        });
    }
    for p in PROCESSES {
        if !state.components.contains_key(p.name) {
            out.push(ComponentStatus {
                name: p.name.into(),
                state: "not yet available".into(),
                pid: None,
                endpoint: String::new(),
            });
        }
    }
    Ok(out)
}

/// `chronoctl local status`: exit 0 when everything recorded runs and answers.
pub async fn status(layout: &Layout, output: OutputFormat) -> Result<Verdict, LocalError> {
    let all = statuses(layout).await?;
    let ok = all
        .iter()
        .all(|s| s.state == "running" || s.state == "not yet available");
    match output {
        OutputFormat::Json => println!("{:#}", json!({"healthy": ok, "components": all})),
        OutputFormat::Text => {
            for s in &all {
                println!(
                    "{:<10} {:<18} {:<8} {}",
                    s.name,
                    s.state,
                    s.pid.map(|p| p.to_string()).unwrap_or_default(),
                    s.endpoint
                );
            }
            if let Some(web) = all.iter().find(|s| s.name == WEB && s.state == "running") {
                println!("app: {}/", web.endpoint);
            }
        }
    }
    Ok(if ok { Verdict::Pass } else { Verdict::Fail })
}

/// `chronoctl local down [--wipe]`: stops every recorded process by pid (runtime first,
/// then PostgreSQL, the emulator and the S3 server); `--wipe` then removes the directory
/// (uploaded files included; without it they stay for the next `up`).
pub async fn down(
    layout: &Layout,
    wipe: bool,
    output: OutputFormat,
) -> Result<Verdict, LocalError> {
    let mut stopped = BTreeMap::new();
    if let Some(mut state) = layout.load()? {
        let mut order: Vec<String> = vec![WEB.to_owned()];
        order.extend(PROCESSES.iter().map(|p| p.name.to_owned()));
        order.extend([POSTGRES.to_owned(), MOTO.to_owned(), S3.to_owned()]);
        order.extend(
            state
                .components
                .keys()
                .filter(|k| !order.contains(k))
                .cloned()
                .collect::<Vec<_>>(),
        );
        for name in order {
            let Some(c) = state.components.get_mut(&name) else {
                continue;
            };
            let was = match (name.as_str(), c.pid) {
                (POSTGRES, Some(_)) => Binaries::find()?.stop(layout)?,
                (_, Some(pid)) => process::stop(pid, &c.program, STOP_GRACE)?,
                (_, None) => false,
            };
            if was {
                say(output, format!("stopped {name}"));
            }
            stopped.insert(name, was);
            c.pid = None;
        }
        layout.save(&state)?;
    }
    if wipe && layout.root().exists() {
        std::fs::remove_dir_all(layout.root())
            .map_err(LocalError::io("removing", layout.root()))?;
        say(output, format!("removed {}", layout.root().display()));
    }
    if output == OutputFormat::Json {
        println!("{:#}", json!({"stopped": stopped, "wiped": wipe}));
    }
    Ok(Verdict::Pass)
}

/// `chronoctl local logs [component]`.
pub fn logs(layout: &Layout, component: Option<&str>) -> Result<Verdict, LocalError> {
    let names = [
        S3,
        MOTO,
        POSTGRES,
        ISSUER,
        runtime::API.name,
        runtime::FILTER_AI.name,
        WEB,
    ];
    match component {
        None => {
            for n in names {
                let p = layout.log(n);
                if let Ok(m) = std::fs::metadata(&p) {
                    println!("{n:<10} {:>10} bytes  {}", m.len(), p.display());
                }
            }
        }
        Some(n) if names.contains(&n) => {
            let p = layout.log(n);
            let text = std::fs::read(&p).map_err(LocalError::io("reading", &p))?;
            print!("{}", String::from_utf8_lossy(&text));
        }
        Some(other) => return Err(LocalError::UnknownComponent(other.to_owned())),
    }
    Ok(Verdict::Pass)
}

/// A token for the local API, as the configured identity provider would issue it.
pub fn mint_token(layout: &Layout, args: &TokenArgs) -> Result<String, LocalError> {
    let state = layout.load()?.ok_or(LocalError::NotRunning)?;
    let key = SigningKey::load(&layout.signing_key()).map_err(|_| LocalError::NotRunning)?;
    let get = |k: &str| state.env.get(k).map(String::as_str).unwrap_or_default();
    key.token(&TokenClaims {
        sub: &args.sub,
        issuer: get(vars::JWT_ISSUER),
        audience: get(vars::JWT_AUDIENCE),
        roles: vec![args.role.as_str()],
        cases: args.cases.clone(),
        ttl_seconds: args.ttl,
    })
}

/// `chronoctl local token`.
pub fn token(layout: &Layout, args: &TokenArgs) -> Result<Verdict, LocalError> {
    println!("{}", mint_token(layout, args)?);
    Ok(Verdict::Pass)
}

/// `chronoctl local seed`: `chrono-api seed` against the local database (as its owner,
/// which the statistics refresh needs), with the runtime's synthetic timeline.
pub async fn seed(layout: &Layout, args: &SeedArgs) -> Result<Verdict, LocalError> {
    let state = layout.load()?.ok_or(LocalError::NotRunning)?;
    let database_url = match (state.components.get(POSTGRES), state.ports.get(POSTGRES)) {
        (Some(_), Some(port)) => postgres::url(
            *port,
            postgres::SUPERUSER,
            chrono_stacks::data::DATABASE_NAME,
        ),
        _ => std::env::var("DATABASE_URL").map_err(|_| LocalError::Missing {
            what: "the database of the local platform".into(),
            install: "it runs on DATABASE_URL; set it for `local seed` too".into(),
        })?,
    };
    let bins = bin_dir(args.bin_dir.as_ref());
    let api = runtime::API
        .program(&bins)
        .ok_or_else(|| LocalError::Missing {
            what: format!("{} in {}", runtime::API.binary, bins.display()),
            install: "build the runtime (`cargo build -p chrono-runtime --bins`)".into(),
        })?;
    let status = Command::new(&api)
        .args(["seed", "--case", &args.case.to_string()])
        .args(["--events", &args.events.to_string()])
        .env("DATABASE_URL", database_url)
        .env("CHRONO_LOG_FORMAT", "text")
        .env("CHRONO_DB_STATEMENT_TIMEOUT_MS", "0")
        .status()
        .map_err(LocalError::io("running", &api))?;
    Ok(if status.success() {
        Verdict::Pass
    } else {
        Verdict::Fail
    })
}
