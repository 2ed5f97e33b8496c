//! `chrono-api`: the ChronoTracer REST API. In Lambda (`AWS_LAMBDA_RUNTIME_API` set) it runs
//! the Lambda handler; locally `chrono-api serve --addr 127.0.0.1:8080`, and
//! `chrono-api migrate` applies the database migrations. Served locally without
//! `CHRONO_PIPELINE_STATE_MACHINE_ARN`, it runs the pipeline worker in-process.

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
}

/// Local mode without a state machine: the pipeline runs in this process when its
/// buckets are configured (`CHRONO_ARTIFACTS_BUCKET`); otherwise processing is refused.
async fn local_pipeline() -> Result<Option<Arc<dyn PipelineLauncher>>, server::StartError> {
    let has = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if has(env::PIPELINE_STATE_MACHINE_ARN) || !has(env::ARTIFACTS_BUCKET) {
        return Ok(None);
    }
    let (launcher, _worker) = chrono_runtime::pipeline::worker::local_from_env(64)
        .await
        .map_err(|e| server::StartError::Config(format!("local pipeline worker: {e}")))?;
    Ok(Some(Arc::new(launcher)))
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chrono-api: {e}");
            ExitCode::FAILURE
        }
    }
}
