//! Cross-account deploys against the local AWS emulator (moto over HTTP): a config naming
//! `deploy_role_arn` in its own account (not the caller's) is deployed by a real
//! `chronoctl deploy` process that assumes the role (STS AssumeRole from the standard
//! credentials, the session named after the operator); the account guard checks the
//! assumed identity, and the stacks land in the role's account, not the caller's. moto
//! puts an assumed role's calls in the role's account (its docs: "The ARN can point to
//! another account, providing an opportunity to switch accounts"); it does not check
//! trust policies or the external id.

mod cli_support;

use std::path::Path;

use chrono_tests::moto::Moto;
use cli_support::{chronoctl, demo_config, text};

const ROLE: &str = "arn:aws:iam::111111111111:role/chrono-deploy";

fn write_config(path: &Path, role: bool) {
    let mut cfg = demo_config("xacct", "111111111111");
    if role {
        cfg.push_str(&format!("deploy_role_arn: {ROLE}\nexternal_id: ops-4242\n"));
    }
    std::fs::write(path, cfg).unwrap();
}

async fn cfn_as(moto: &Moto, role: Option<&str>) -> aws_sdk_cloudformation::Client {
    let sdk = cli_support::sdk(moto).await;
    let Some(role) = role else {
        return aws_sdk_cloudformation::Client::new(&sdk);
    };
    let c = aws_sdk_sts::Client::new(&sdk)
        .assume_role()
        .role_arn(role)
        .role_session_name("test")
        .send()
        .await
        .unwrap();
    let c = c.credentials().unwrap();
    let creds = aws_sdk_cloudformation::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "assumed",
    );
    let sdk = sdk.into_builder().credentials_provider(
        aws_credential_types::provider::SharedCredentialsProvider::new(creds),
    );
    aws_sdk_cloudformation::Client::new(&sdk.build())
}

async fn stack_names(c: &aws_sdk_cloudformation::Client) -> Vec<String> {
    let mut v: Vec<String> = c
        .describe_stacks()
        .send()
        .await
        .unwrap()
        .stacks()
        .iter()
        .filter_map(|s| s.stack_name().map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_assumes_the_configs_role_and_the_guard_checks_the_assumed_identity() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    moto.reset().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xacct-local.yaml");

    // without the role, the caller's own account (moto's 123456789012) is refused
    write_config(&cfg, false);
    let cfg_arg = cfg.to_str().unwrap();
    let o = chronoctl(
        &moto,
        &["deploy", "--config", cfg_arg, "--stack", "network"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("111111111111"), "{}", text(&o));

    write_config(&cfg, true);
    let o = chronoctl(
        &moto,
        &[
            "deploy", "--config", cfg_arg, "--stack", "network", "--output", "json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let infos: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "info")
        .map(|v| v["message"].as_str().unwrap().to_owned())
        .collect();
    // the role was assumed from the standard credentials, the session naming the operator
    assert!(
        infos.iter().any(|m| m.starts_with(&format!(
            "acting as deploy role {ROLE} (assumed by arn:aws:sts::123456789012:"
        )) && m.contains("session chronoctl-")),
        "{infos:?}"
    );
    // the account guard saw the assumed identity in the role's account
    assert!(
        infos.iter().any(|m| m.starts_with("account 111111111111")
            && m.contains("as arn:aws:sts::111111111111:assumed-role/chrono-deploy/chronoctl-")),
        "{infos:?}"
    );
    // the stacks are in the role's account, not the caller's
    assert_eq!(
        stack_names(&cfn_as(&moto, Some(ROLE)).await).await,
        ["chrono-xacct-local-bootstrap", "chrono-xacct-local-network"]
    );
    assert!(
        stack_names(&cfn_as(&moto, None).await).await.is_empty(),
        "nothing in the caller's account"
    );

    // status reads through the role too
    let o = chronoctl(&moto, &["status", "--config", cfg_arg, "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let network = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "network")
        .unwrap();
    assert_ne!(network["drift"], "not_deployed", "{rows}");
}

#[test]
fn session_name_names_the_operator_within_sts_limits() {
    use chrono_provisioner::aws::session_name;
    assert_eq!(
        session_name("arn:aws:iam::999900001111:user/alice"),
        "chronoctl-alice"
    );
    assert_eq!(
        session_name("arn:aws:sts::999900001111:assumed-role/OpsAdmin/bob@example.com"),
        "chronoctl-bob@example.com"
    );
    assert_eq!(
        session_name("arn:aws:iam::999900001111:root"),
        "chronoctl-root"
    );
    let long = session_name(&format!("arn:aws:iam::1:user/{}", "x".repeat(100)));
    assert_eq!(long.len(), 64);
    assert_eq!(session_name("arn:aws:iam::1:user/a b"), "chronoctl-a-b");
}
