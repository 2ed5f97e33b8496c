//! `chrono-filter-ai`: the filter-ai ECS service (WebSocket + HTTP chat), also the local
//! AI server. Everything lives in `chrono_runtime::ai`; this parses arguments and runs it.

use std::net::SocketAddr;

use clap::Parser;

/// Serve the AI filter chat (WebSocket and `POST /api/v1/ai/chat`).
#[derive(Debug, Parser)]
#[command(name = "chrono-filter-ai", version = chrono_runtime::build_info::VERSION)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080", env = chrono_contract::env::AI_ADDR)]
    addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // JSON logs by default on ECS (CloudWatch), text locally; CHRONO_LOG_FORMAT overrides.
    chrono_runtime::server::init_logging(
        std::env::var_os("ECS_CONTAINER_METADATA_URI_V4").is_some(),
    );
    chrono_runtime::ai::config::serve_from_env(args.addr).await?;
    Ok(())
}
