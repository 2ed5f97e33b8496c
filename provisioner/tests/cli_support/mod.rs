//! `chronoctl` as a user runs it against the local AWS emulator (moto over HTTP), for the
//! tests that drive whole processes: the command with the emulator's endpoint and test
//! credentials (no profile, no instance metadata), its combined output, a CloudFormation
//! client of moto's default account, and copies of the demo config under other names.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use chrono_tests::moto::Moto;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `chronoctl ARGS` from the workspace root with test credentials and no profile, no
/// config file, no instance metadata: it can reach no real account.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chronoctl"));
    c.current_dir(root())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CHRONO_POLL_MS", "10")
        .env_remove("AWS_PROFILE");
    c
}

/// Runs `chronoctl ARGS --endpoint-url <moto>` from the workspace root.
pub fn chronoctl(moto: &Moto, args: &[&str]) -> Output {
    command(args)
        .args(["--endpoint-url", &moto.endpoint()])
        .output()
        .expect("chronoctl runs")
}

/// stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `customers/demo-local.yaml` as customer `customer` in account `account`.
pub fn demo_config(customer: &str, account: &str) -> String {
    let demo = std::fs::read_to_string(root().join("customers/demo-local.yaml")).unwrap();
    let cfg = demo
        .replace("customer: demo\n", &format!("customer: {customer}\n"))
        .replace(
            "account_id: \"123456789012\"",
            &format!("account_id: \"{account}\""),
        );
    assert!(cfg.contains(&format!("customer: {customer}\n")));
    assert!(cfg.contains(&format!("account_id: \"{account}\"")));
    cfg
}

/// The SDK configuration of moto's default account (123456789012).
pub async fn sdk(moto: &Moto) -> aws_types::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// A CloudFormation client of moto's default account.
pub async fn cfn(moto: &Moto) -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::new(&sdk(moto).await)
}
