//! `chrono-ws-authorizer`: the Lambda REQUEST authorizer of the WebSocket API's `$connect`
//! route. Everything lives in `chrono_runtime::ai::authorizer`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if chrono_runtime::build_info::version_requested("chrono-ws-authorizer") {
        return Ok(());
    }
    chrono_runtime::server::init_logging(true);
    chrono_runtime::ai::authorizer::run_lambda().await?;
    Ok(())
}
