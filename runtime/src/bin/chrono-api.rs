//! `chrono-api`: the ChronoTracer REST API. In Lambda (`AWS_LAMBDA_RUNTIME_API` set) it runs
//! the Lambda handler; locally `chrono-api serve --addr 127.0.0.1:8080`, and
//! `chrono-api migrate` applies the database migrations.

use std::net::SocketAddr;
use std::process::ExitCode;

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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    server::init_logging(server::in_lambda());
    let result = match cli.command {
        None if server::in_lambda() => server::run_lambda().await,
        None => Err(server::StartError::Config(
            "not running in Lambda; use `chrono-api serve --addr 127.0.0.1:8080`".into(),
        )),
        Some(Command::Serve { addr }) => match server::state_from_env(Mode::Local, None).await {
            Ok(state) => server::serve(addr, state).await,
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
