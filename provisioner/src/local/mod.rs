//! `chronoctl local`: the whole platform on one machine, no AWS account.
//!
//! `up` starts the moto server (from the project's `.venv`) and a private PostgreSQL
//! cluster, creates in the emulator what the data and compute stacks describe (buckets,
//! tables, the pipeline state machine: from the typed stack model, never hand-written
//! names), applies the runtime's migrations as the Aurora-like master user (not a
//! superuser), mints a signing key and runs an OpenID Connect issuer with it (see
//! [`issuer`]), runs the runtime's handlers as local processes, and serves the web app, the
//! API, the AI chat and its WebSocket on one origin (see [`web`]). `status`, `down`, `logs`,
//! `token`, `demo` and `seed` work on what `up` recorded in the state file.
//!
//! Everything lives under one directory (default `.chrono/local`, see [`layout`]).
//! Processes are tracked by pid (checked against their command line, so a recycled pid
//! is never mistaken for ours) and are only ever stopped by that pid.
//!
//! This module must not fake a component: what the runtime does not provide yet is
//! reported as not yet available.

pub mod control;
pub mod demo;
pub mod issuer;
pub mod keys;
pub mod layout;
pub mod moto;
pub mod postgres;
pub mod process;
pub mod provision;
pub mod runtime;
pub mod s3;
pub mod web;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::output::OutputFormat;

/// `chronoctl local` arguments.
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// Directory holding the cluster, keys, logs and state.
    #[arg(
        long,
        global = true,
        default_value = ".chrono/local",
        env = "CHRONO_LOCAL_DIR"
    )]
    pub dir: PathBuf,
    /// Subcommand.
    #[command(subcommand)]
    pub command: LocalCommand,
}

/// `chronoctl local` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum LocalCommand {
    /// Start (or repair) the local platform; returns when every component answers.
    Up(UpArgs),
    /// What runs where, healthy or not.
    Status,
    /// Stop everything `up` started (by pid); data stays unless --wipe.
    Down {
        /// Remove the database, keys, logs and state as well.
        #[arg(long)]
        wipe: bool,
    },
    /// Print the log of one component (or list the log files).
    Logs {
        /// Component: s3, moto, postgres, issuer, api, filter-ai, web.
        component: Option<String>,
    },
    /// Print a signed token for the local API.
    Token(TokenArgs),
    /// End-to-end demo against the running platform: case, uploads, pipeline, search, AI.
    Demo(demo::DemoArgs),
    /// Load synthetic events into a case of the running platform (for benchmarks of the
    /// web app; runs `chrono-api seed` against the local database).
    #[command(hide = true)]
    Seed(SeedArgs),
    /// The OpenID Connect issuer (the `issuer` component `up` starts; not meant to be run
    /// by hand).
    #[command(hide = true)]
    ServeIssuer {
        /// Listen address.
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// The issuer identifier (its own base URL).
        #[arg(long)]
        issuer: String,
        /// The public key set file.
        #[arg(long)]
        jwks: PathBuf,
        /// The private signing key.
        #[arg(long)]
        signing_key: PathBuf,
        /// The app's client id.
        #[arg(long)]
        client_id: String,
        /// The `aud` of access tokens.
        #[arg(long)]
        audience: String,
        /// A redirect URI the client may use (repeatable).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
    },
    /// The S3 server on disk (the `s3` component `up` starts; not meant to be run by hand).
    ServeS3 {
        /// Listen address.
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// Directory holding the buckets.
        #[arg(long)]
        root: PathBuf,
    },
    /// The one-origin front door (the `web` component `up` starts; not meant to be run by
    /// hand).
    #[command(hide = true)]
    ServeWeb {
        /// Listen address.
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// The built app.
        #[arg(long)]
        app_dir: PathBuf,
        /// chrono-api's base URL.
        #[arg(long)]
        api: String,
        /// filter-ai's base URL.
        #[arg(long)]
        ai: String,
        /// The app configuration file served at /config.json.
        #[arg(long)]
        config: PathBuf,
        /// A source the app may connect to besides itself (repeatable; CSP connect-src).
        #[arg(long = "connect-src")]
        connect_src: Vec<String>,
    },
}

/// `local seed` arguments.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// The case (it must exist).
    #[arg(long)]
    pub case: uuid::Uuid,
    /// How many events.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: i64,
    /// Directory of the runtime binaries (default: next to chronoctl).
    #[arg(long, env = "CHRONO_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// `local up` arguments.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// The customer config the emulator is provisioned from.
    #[arg(long, default_value = "customers/demo-local.yaml")]
    pub config: PathBuf,
    /// The project's Python virtualenv holding moto (created by `make venv`).
    #[arg(long, default_value = ".venv", env = "CHRONO_VENV")]
    pub venv: PathBuf,
    /// Directory of the runtime binaries (default: next to chronoctl).
    #[arg(long, env = "CHRONO_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// The built web app, served on the app's origin.
    #[arg(long, default_value = "app/dist", env = "CHRONO_APP_DIR")]
    pub app_dir: PathBuf,
    /// Show what would be started and provisioned; start nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Roles a local token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    /// Cases, uploads, processing, and everything an analyst does.
    Admin,
    /// Read, search, labels, AI filter.
    Analyst,
}

impl TokenRole {
    /// The string in the roles claim.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::Analyst => "analyst",
        }
    }
}

/// `local token` arguments.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Role claim.
    #[arg(long, value_enum, default_value_t = TokenRole::Admin)]
    pub role: TokenRole,
    /// Case the token grants (repeatable); default: every case (`*`).
    #[arg(long = "case", value_name = "ID")]
    pub cases: Vec<uuid::Uuid>,
    /// Subject (`sub`).
    #[arg(long, default_value = "local-user")]
    pub sub: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 8 * 3600)]
    pub ttl: u64,
}

/// Errors of `chronoctl local`.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The customer config is invalid.
    #[error(transparent)]
    Config(#[from] chrono_stacks::config::LoadError),
    /// The stack model could not be built.
    #[error("building the stack model: {0}")]
    Model(String),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A tool the local platform needs is not installed.
    #[error("{what} not found; {install}")]
    Missing {
        /// What is missing.
        what: String,
        /// How to install it.
        install: String,
    },
    /// A component did not start or did not become healthy.
    #[error("{component} did not start: {reason}; see {log}")]
    Start {
        /// Component name.
        component: String,
        /// Why.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
    /// The `postgres` OS user cannot reach the cluster's data directory.
    #[error(
        "PostgreSQL runs as the `postgres` OS user, which cannot reach {0}; let it traverse the parent directories (e.g. `chmod o+x` on each), use `--dir` elsewhere (e.g. under /tmp), or set DATABASE_URL"
    )]
    Unreachable(PathBuf),
    /// A command we ran failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its (trimmed) output.
        output: String,
    },
    /// Creating a resource in the emulator failed.
    #[error("provisioning {resource} in the emulator: {reason}")]
    Provision {
        /// The resource.
        resource: String,
        /// Why.
        reason: String,
    },
    /// The local platform is not running (nothing recorded in the state file).
    #[error("the local platform is not running; start it with `chronoctl local up`")]
    NotRunning,
    /// The state file is unreadable.
    #[error(
        "state file {path} is corrupt ({reason}); stop leftovers by hand, remove it, run `chronoctl local up`"
    )]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Token signing failed.
    #[error("signing key: {0}; `chronoctl local down --wipe` and `up` mint a new one")]
    Key(String),
    /// No such component.
    #[error("no component `{0}`; one of: s3, moto, postgres, issuer, api, filter-ai, web")]
    UnknownComponent(String),
    /// A demo step failed or is not available yet.
    #[error("demo: {0}")]
    Demo(String),
}

impl LocalError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LocalError::Io {
            action,
            path,
            source,
        }
    }
}

/// Runs the HTTP server of component `component` on `addr` until the process is stopped
/// (`chronoctl local down`): binds first, then builds the app with `app` (which prints
/// the component's banner, and may fail), then serves. Every failure is a
/// [`LocalError::Start`] naming the component's `log`.
pub(crate) async fn serve_component(
    component: &str,
    addr: std::net::SocketAddr,
    log: &std::path::Path,
    app: impl FnOnce() -> Result<axum::Router, String>,
) -> Result<(), LocalError> {
    let failed = |reason: String| LocalError::Start {
        component: component.to_owned(),
        reason,
        log: log.to_path_buf(),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| failed(format!("binding {addr}: {e}")))?;
    axum::serve(listener, app().map_err(failed)?)
        .await
        .map_err(|e| failed(e.to_string()))
}

/// Runs `chronoctl local ...`; [`Verdict::Fail`](crate::output::Verdict::Fail) when it
/// reported something unhealthy or a failed step.
pub fn run(args: &LocalArgs, output: OutputFormat) -> Result<crate::output::Verdict, LocalError> {
    let rt = crate::exec::runtime().map_err(LocalError::io(
        "starting the async runtime for",
        "chronoctl",
    ))?;
    let layout = layout::Layout::new(&args.dir);
    rt.block_on(async {
        match &args.command {
            LocalCommand::Up(up) => control::up(&layout, up, output).await,
            LocalCommand::Status => control::status(&layout, output).await,
            LocalCommand::Down { wipe } => control::down(&layout, *wipe, output).await,
            LocalCommand::Logs { component } => control::logs(&layout, component.as_deref()),
            LocalCommand::Token(t) => control::token(&layout, t),
            LocalCommand::Demo(d) => demo::run(&layout, d, output).await,
            LocalCommand::Seed(a) => control::seed(&layout, a).await,
            LocalCommand::ServeIssuer {
                addr,
                issuer,
                jwks,
                signing_key,
                client_id,
                audience,
                redirect_uris,
            } => {
                let settings = issuer::IssuerSettings {
                    issuer: issuer.clone(),
                    jwks: jwks.clone(),
                    signing_key: signing_key.clone(),
                    client_id: client_id.clone(),
                    audience: audience.clone(),
                    redirect_uris: redirect_uris.clone(),
                };
                issuer::serve(*addr, settings, &layout.log(issuer::ISSUER))
                    .await
                    .map(|()| crate::output::Verdict::Pass)
            }
            LocalCommand::ServeS3 { addr, root } => s3::serve(*addr, root, &layout.log(s3::S3))
                .await
                .map(|()| crate::output::Verdict::Pass),
            LocalCommand::ServeWeb {
                addr,
                app_dir,
                api,
                ai,
                config,
                connect_src,
            } => {
                let settings = web::WebSettings {
                    app_dir: app_dir.clone(),
                    api: api.clone(),
                    ai: ai.clone(),
                    config_file: config.clone(),
                    headers: chrono_stacks::web::security_headers(connect_src),
                };
                web::serve(*addr, settings, &layout.log(web::WEB))
                    .await
                    .map(|()| crate::output::Verdict::Pass)
            }
        }
    })
}
