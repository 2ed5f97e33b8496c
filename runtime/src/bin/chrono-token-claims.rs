//! `chrono-token-claims`: the Cognito pre-token-generation trigger (V2_0) of the user pool
//! the stacks create. Everything lives in `chrono_runtime::claims`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    chrono_runtime::server::init_logging(true);
    chrono_runtime::claims::run_lambda().await
}
