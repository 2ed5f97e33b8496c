//! Database migrations during `onboard`: the migration Lambda (the `chrono-api` code, its
//! own function with Lambda's longest timeout: `chrono_stacks::compute::MIGRATE_TIMEOUT_S`)
//! runs the runtime's migrations when invoked with the payload [`MIGRATE_PAYLOAD`] (it is
//! in the VPC next to Aurora and has the database secret; chronoctl is not and has not). A
//! function error is a failed step; rerunning `onboard` retries it.
//!
//! The invocation waits as long as the function may run and is not retried by the SDK: a
//! second migration started while the first still runs would only wait for its lock.

use std::time::Duration;

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::deploy::error::sdk_message;

/// The event the API function treats as "run the migrations" (contract with the runtime:
/// `chrono_runtime::server::lambda_entry`; a test there sends this exact text).
pub const MIGRATE_PAYLOAD: &str = r#"{"chrono_command":"migrate"}"#;

/// Invokes `function` (name or ARN) synchronously with [`MIGRATE_PAYLOAD`]; returns the
/// function's answer.
pub async fn migrate_via_lambda(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<String, String> {
    let out = lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(MIGRATE_PAYLOAD.as_bytes()))
        .customize()
        .config_override(
            aws_sdk_lambda::config::Builder::default()
                .retry_config(RetryConfig::standard().with_max_attempts(1))
                .timeout_config(
                    TimeoutConfig::builder()
                        .read_timeout(Duration::from_secs(
                            u64::from(chrono_stacks::compute::MIGRATE_TIMEOUT_S) + 60,
                        ))
                        .build(),
                ),
        )
        .send()
        .await
        .map_err(|e| format!("invoking {function}: {}", sdk_message(&e)))?;
    let body = out
        .payload()
        .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
        .unwrap_or_default();
    if let Some(kind) = out.function_error() {
        return Err(format!(
            "{function} failed ({kind}): {}",
            body.chars().take(400).collect::<String>()
        ));
    }
    Ok(format!(
        "{function}: {}",
        body.chars().take(200).collect::<String>()
    ))
}
