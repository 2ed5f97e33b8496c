//! `chrono-ai-chat`: the Lambda handler of `POST /api/v1/ai/chat` (API Gateway HTTP API
//! v2 events; claims from the JWT authorizer). Everything lives in `chrono_runtime::ai`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if chrono_runtime::build_info::version_requested("chrono-ai-chat") {
        return Ok(());
    }
    chrono_runtime::server::init_logging(true);
    chrono_runtime::ai::config::run_lambda().await?;
    Ok(())
}
