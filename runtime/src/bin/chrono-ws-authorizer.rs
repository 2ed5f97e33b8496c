//! `chrono-ws-authorizer`: the Lambda REQUEST authorizer of the WebSocket API's `$connect`
//! route. Everything lives in `chrono_runtime::ai::authorizer`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    chrono_runtime::server::init_logging(true);
    chrono_runtime::ai::authorizer::run_lambda().await?;
    Ok(())
}
