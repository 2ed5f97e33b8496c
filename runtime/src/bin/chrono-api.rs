//! `chrono-api`: the ChronoTracer REST API. In Lambda (`AWS_LAMBDA_RUNTIME_API` set) it runs
//! the Lambda handler; locally `chrono-api serve --addr 127.0.0.1:8080`, and
//! `chrono-api migrate` applies the database migrations, `chrono-api openapi` prints the
//! OpenAPI document (the web app's types are generated from it). Served locally without
//! `CHRONO_PIPELINE_STATE_MACHINE_ARN`, it runs the pipeline worker in-process: it takes
//! the durable jobs of the database's queue, so a restarted API resumes what a killed one
//! left.

use std::net::SocketAddr;
use std::process::ExitCode;

use std::sync::Arc;

use chrono_contract::env;
use chrono_runtime::launcher::PipelineLauncher;
use chrono_runtime::server::{self, Mode};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chrono-api",
    version = chrono_runtime::build_info::VERSION,
    about = "ChronoTracer REST API (Lambda handler or local server)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API over HTTP (local mode; verifies JWTs itself).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
    },
    /// Apply the database migrations to DATABASE_URL.
    Migrate,
    /// Print the OpenAPI document (what `/api/v1/openapi.json` serves) and exit.
    Openapi,
    /// Load synthetic events into an existing case of DATABASE_URL (for benchmarks; run
    /// by `chronoctl local seed`).
    #[command(hide = true)]
    Seed {
        /// The case.
        #[arg(long)]
        case: uuid::Uuid,
        /// How many events.
        #[arg(long, default_value_t = 1_000_000)]
        events: i64,
        /// Time of the first event (RFC 3339); the events span 30 days from it.
        #[arg(long, default_value = "2024-01-01T00:00:00Z")]
        start: chrono::DateTime<chrono::Utc>,
    },
}

/// Local mode without a state machine: the pipeline worker runs in this process, draining
/// the durable job queue, when its buckets are configured (`CHRONO_ARTIFACTS_BUCKET`); otherwise processing is refused.
async fn local_pipeline() -> Result<Option<Arc<dyn PipelineLauncher>>, server::StartError> {
    let has = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if has(env::PIPELINE_STATE_MACHINE_ARN) || !has(env::ARTIFACTS_BUCKET) {
        return Ok(None);
    }
    let (launcher, _worker) = chrono_runtime::pipeline::worker::local_from_env()
        .await
        .map_err(|e| server::StartError::Config(format!("local pipeline worker: {e}")))?;
    Ok(Some(Arc::new(launcher)))
}

/// `chrono-api seed`: the synthetic timeline into `case`, with a line of progress per batch.
async fn seed(
    case: uuid::Uuid,
    events: i64,
    start: chrono::DateTime<chrono::Utc>,
) -> Result<(), server::StartError> {
    use chrono_runtime::synthetic;
    let db = server::pool_from_env(2, chrono_runtime::db::ConnectPolicy::SERVICE).await?;
    let database = |e: sqlx::Error| server::StartError::Database(e.to_string());
    let exists: Option<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM cases WHERE id = $1")
        .bind(case)
        .fetch_optional(&db)
        .await
        .map_err(database)?;
    if exists.is_none() {
        return Err(server::StartError::Config(format!(
            "no case {case} in this database; create it first (POST /api/v1/cases)"
        )));
    }
    if !(1..=100_000_000).contains(&events) {
        return Err(server::StartError::Config(
            "--events must be 1 to 100000000".into(),
        ));
    }
    let spec = synthetic::Spec::over_30_days(events, start);
    let evidence = synthetic::load(&db, case, spec, |done| {
        eprintln!("seed: {done} of {events} events");
    })
    .await
    .map_err(database)?;
    synthetic::analyze(&db).await.map_err(database)?;
    println!(
        "{}",
        serde_json::json!({"case": case, "evidence": evidence, "events": events})
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    server::init_logging(server::in_lambda());
    let result = match cli.command {
        None if server::in_lambda() => server::run_lambda().await,
        None => Err(server::StartError::Config(
            "not running in Lambda; use `chrono-api serve --addr 127.0.0.1:8080`".into(),
        )),
        Some(Command::Serve { addr }) => match local_pipeline().await {
            Ok(launcher) => match server::state_from_env(Mode::Local, launcher).await {
                Ok(state) => server::serve(addr, state).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        Some(Command::Migrate) => server::migrate().await,
        Some(Command::Seed {
            case,
            events,
            start,
        }) => seed(case, events, start).await,
        Some(Command::Openapi) => {
            println!("{}", chrono_runtime::api::openapi::document());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chrono-api: {e}");
            ExitCode::FAILURE
        }
    }
}
