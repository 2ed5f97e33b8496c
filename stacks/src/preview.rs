//! The preview shape: a developer's short-lived copy of a customer config, named after a
//! git branch. Pure data: the provisioner (`chronoctl preview up`) supplies the branch, the
//! account (from STS) and the expiry (from the clock), and deploys what this derives.
//!
//! A preview is an ordinary config with `customer` = the preview's NAME and `stage:
//! preview`, so its stacks are `chrono-<NAME>-preview-<stack>`. NAME is at most
//! [`MAX_NAME`] characters, which keeps every name the stacks derive from the prefix within
//! the limits the customer field already guarantees (`customer` ≤ 20 and stage `preview`
//! is as long as `staging`): S3 bucket names ≤ 63 (`chrono-<NAME>-preview-artifacts-<account>`
//! is ≤ 58), Lambda function names ≤ 64, IAM role names ≤ 64, Cognito domain prefixes ≤ 63;
//! synthesis checks each of them ([`crate::synth::synthesize`]).

use crate::config::{Config, ConfigError, PreviewConfig, Stage};

/// Longest preview name (the limit of `customer`).
pub const MAX_NAME: usize = 20;

/// Why a branch or name cannot name a preview.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing usable is left after normalizing.
    #[error(
        "{0:?} has no letters or digits to name a preview; pass a NAME (`chronoctl preview up NAME`)"
    )]
    Empty(String),
    /// The name holds a word Cognito refuses in a hosted-domain prefix.
    #[error(
        "preview name {name:?} contains {word:?}, which Cognito refuses in a domain prefix; pass another NAME"
    )]
    Reserved {
        /// The normalized name.
        name: String,
        /// The refused word.
        word: &'static str,
    },
}

/// Words a Cognito hosted-domain prefix may not contain
/// (<https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-assign-domain-prefix.html>).
const COGNITO_RESERVED: &[&str] = &["aws", "amazon", "cognito"];

/// Normalizes a git branch (or a NAME given by hand) into a preview name: lowercase ASCII
/// letters, digits and single `-`, starting with a letter (a leading digit gets `p-`),
/// at most [`MAX_NAME`] characters. A longer name keeps its first 13 characters and adds
/// `-` and 6 hex digits of the SHA-256 of the input, so two long branches with the same
/// start do not collide (`feature/login-with-sso` → `feature-login-3f2a9c`).
pub fn normalize_name(branch: &str) -> Result<String, NameError> {
    let mut out = String::new();
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_end_matches('-').to_owned();
    if trimmed.is_empty() {
        return Err(NameError::Empty(branch.to_owned()));
    }
    let mut name = if trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        format!("p-{trimmed}")
    } else {
        trimmed
    };
    if name.len() > MAX_NAME {
        use sha2::{Digest, Sha256};
        let digest = hex::encode(Sha256::digest(branch.as_bytes()));
        let head = name[..13].trim_end_matches('-');
        name = format!("{head}-{}", &digest[..6]);
    }
    if let Some(word) = COGNITO_RESERVED.iter().find(|w| name.contains(**w)) {
        return Err(NameError::Reserved { name, word });
    }
    Ok(name)
}

/// The preview of `base` named `name` (normalized) in `account_id`, expiring at
/// `expires_at` (RFC 3339 UTC): the base's region, architecture, identity provider, models
/// and sizing, with the preview shape —
/// * no NAT gateway and no interface endpoint (but a base's `bedrock-runtime`, the opt-in
///   for Bedrock), 2 AZs, IPv6 egress through an egress-only internet gateway
///   ([`Config::ipv6_egress`]);
/// * no WebSocket API, no filter-ai service, no load balancer ([`Config::websocket_api`]):
///   zero always-on tasks; the AI chat is the Lambda, on the deterministic translator
///   unless Bedrock was opted into ([`Config::ai_provider`]);
/// * Aurora Serverless v2 at 0 ACU minimum (auto-pause), at most 2 ACU, no readers, 1 day
///   of backups;
/// * at most 2 pipeline tasks at a time (on demand, in the public subnets);
/// * 7 days of log retention, 1 day of noncurrent versions;
/// * `Delete` policies everywhere (the stage's policy), no custom domain, the default
///   Cognito domain (`chrono-<NAME>-preview`), the base's own tags;
/// * no `deploy_role_arn`, `external_id` or `cfn_execution_role_arn` (the customer
///   account's, not the developer's).
///
/// The result is validated like a config file (`<base file> (preview NAME)`).
pub fn derive(
    base: &Config,
    base_file: &str,
    name: &str,
    account_id: &str,
    expires_at: &str,
) -> Result<Config, ConfigError> {
    let mut cfg = base.clone();
    cfg.customer = name.to_owned();
    cfg.account_id = account_id.to_owned();
    cfg.stage = Stage::Preview;
    cfg.preview = Some(PreviewConfig {
        expires_at: expires_at.to_owned(),
    });
    cfg.network.az_count = 2;
    cfg.network.nat_gateways = None;
    // No interface endpoints (each bills per AZ and hour): the preview reaches AWS over
    // IPv6 ([`Config::ipv6_egress`]); only a base's `bedrock-runtime` endpoint is kept, the
    // opt-in for Bedrock in previews ([`Config::ai_provider`]).
    cfg.network.interface_endpoints = base
        .network
        .interface_endpoints
        .iter()
        .flatten()
        .any(|e| e == "bedrock-runtime")
        .then(|| vec!["bedrock-runtime".to_owned()]);
    cfg.aurora.min_acu = None;
    cfg.aurora.max_acu = cfg.aurora.max_acu.min(2.0);
    cfg.aurora.readers = None;
    cfg.aurora.backup_retention_days = 1;
    cfg.log_retention_days = 7;
    cfg.sizing.filter_ai_tasks = cfg.sizing.filter_ai_tasks.min(1);
    cfg.sizing.pipeline_max_concurrency = cfg.sizing.pipeline_max_concurrency.min(2);
    cfg.data_retention.noncurrent_versions_days = 1;
    cfg.web.domain = None;
    cfg.web.certificate_arn = None;
    if let Some(c) = cfg.auth.cognito.as_mut() {
        c.domain_prefix = None;
    }
    cfg.tags
        .retain(|k, _| !k.starts_with("chrono:") && !k.starts_with("aws:"));
    // A preview runs in the developer's account with the developer's credentials: the
    // customer account's deploy role, external id and execution role are not its own.
    cfg.deploy_role_arn = None;
    cfg.external_id = None;
    cfg.cfn_execution_role_arn = None;
    // The base file's rules apply to what was derived from it; errors name the base file
    // (line 1: the derived values have no line of their own).
    cfg.validate_derived(&format!("{base_file} (preview {name})"))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_normalize_into_short_safe_names() {
        for (branch, want) in [
            ("main", "main"),
            ("Feature/Login", "feature-login"),
            ("fix--double__sep/", "fix-double-sep"),
            ("42-hotfix", "p-42-hotfix"),
            ("dependabot/cargo/serde-1.0.200", "dependabot-ca-"),
        ] {
            let got = normalize_name(branch).unwrap();
            assert!(got.starts_with(want), "{branch}: {got}");
            assert!(got.len() <= MAX_NAME, "{got}");
            assert!(
                got.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{got}"
            );
            assert!(!got.ends_with('-') && !got.contains("--"), "{got}");
        }
    }

    #[test]
    fn long_branches_with_the_same_start_get_different_names() {
        let a = normalize_name("feature/login-with-sso-part-one").unwrap();
        let b = normalize_name("feature/login-with-sso-part-two").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), MAX_NAME);
        assert!(a.starts_with("feature-login-"), "{a}");
    }

    #[test]
    fn unusable_and_reserved_names_are_refused() {
        assert!(matches!(normalize_name("///"), Err(NameError::Empty(_))));
        assert!(matches!(
            normalize_name("aws-sdk-bump"),
            Err(NameError::Reserved { word: "aws", .. })
        ));
    }

    fn example(file: &str) -> Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../customers")
            .join(file);
        Config::load(&path).unwrap()
    }

    #[test]
    fn a_preview_of_a_cross_account_config_drops_the_customer_deploy_role() {
        let base = example("initech-staging.yaml");
        assert!(base.deploy_role_arn.is_some() && base.cfn_execution_role_arn.is_some());
        let cfg = derive(
            &base,
            "initech-staging.yaml",
            "feature-x",
            "210987654321",
            "2026-12-05T00:00:00Z",
        )
        .unwrap();
        assert_eq!(
            (
                cfg.deploy_role_arn,
                cfg.external_id,
                cfg.cfn_execution_role_arn
            ),
            (None, None, None)
        );
    }

    #[test]
    fn every_example_config_derives_a_preview_that_synthesizes_at_the_longest_name() {
        let name = "a".repeat(MAX_NAME - 2) + "-z";
        for file in [
            "acme-prod.yaml",
            "acme-staging.yaml",
            "initech-staging.yaml",
        ] {
            let cfg = derive(
                &example(file),
                file,
                &name,
                "210987654321",
                "2026-12-05T00:00:00Z",
            )
            .unwrap();
            assert_eq!(cfg.stage, Stage::Preview);
            assert_eq!(cfg.nat_gateways(), 0, "{file}");
            assert_eq!(cfg.min_acu(), 0.0, "{file}");
            assert_eq!(cfg.readers(), 0, "{file}");
            assert!(cfg.sizing.filter_ai_tasks <= 1, "{file}");
            assert_eq!(cfg.log_retention_days, 7);
            // every name the stacks derive passes synthesis' limit checks
            let files = crate::synth::synthesize(&cfg).unwrap_or_else(|e| panic!("{file}: {e}"));
            let manifest = files
                .iter()
                .find(|f| f.path.ends_with("manifest.json"))
                .unwrap();
            let m: serde_json::Value = serde_json::from_str(&manifest.contents).unwrap();
            for s in m["stacks"].as_array().unwrap() {
                let stack = s["stack"].as_str().unwrap();
                let tags = &s["tags"];
                if stack == "bootstrap" {
                    assert_eq!(s["name"], crate::bootstrap::ACCOUNT_STACK);
                    assert_eq!(tags["chrono:scope"], "account");
                    assert!(tags.get("chrono:preview").is_none(), "{tags}");
                } else {
                    assert_eq!(s["name"], format!("chrono-{name}-preview-{stack}"));
                    assert_eq!(tags["chrono:preview"], "true");
                    assert_eq!(tags["chrono:expires-at"], "2026-12-05T00:00:00Z");
                }
            }
            // nothing is retained or snapshotted: a preview leaves nothing behind
            for f in &files {
                if !f.path.ends_with("bootstrap.yaml") {
                    assert!(
                        !f.contents.contains("DeletionPolicy: Retain")
                            && !f.contents.contains("DeletionPolicy: Snapshot"),
                        "{}",
                        f.path
                    );
                }
            }
        }
    }

    #[test]
    fn two_previews_share_a_byte_identical_account_bootstrap() {
        let base = example("acme-staging.yaml");
        let boot = |name: &str, exp: &str| {
            let cfg = derive(&base, "acme-staging.yaml", name, "210987654321", exp).unwrap();
            crate::synth::synthesize(&cfg)
                .unwrap()
                .into_iter()
                .find(|f| f.path.ends_with("/bootstrap.yaml"))
                .unwrap()
                .contents
        };
        let a = boot("alice-feature", "2026-12-05T00:00:00Z");
        assert_eq!(a, boot("bob-fix", "2027-01-01T00:00:00Z"));
        assert!(a.contains("chrono-assets-210987654321-eu-west-1"), "{a}");
        assert!(a.contains("AWS::ApiGateway::Account"));
        assert!(!a.contains("alice"));
    }

    #[test]
    fn a_derived_preview_is_validated_like_a_file() {
        let base = example("acme-staging.yaml");
        let e = derive(&base, "acme-staging.yaml", "x", "210987654321", "soon").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("acme-staging.yaml (preview x):1:1: customer"),
            "{e}"
        );
        let e = derive(
            &base,
            "acme-staging.yaml",
            "ok-name",
            "210987654321",
            "soon",
        )
        .unwrap_err();
        assert!(e.to_string().contains("preview.expires_at"), "{e}");
    }

    /// Name limits of the named properties the stacks set (AWS documentation of each
    /// resource type; the CloudFormation reference repeats them).
    const NAME_LIMITS: &[(&str, &str, usize)] = &[
        ("AWS::S3::Bucket", "BucketName", 63),
        ("AWS::Lambda::Function", "FunctionName", 64),
        ("AWS::Logs::LogGroup", "LogGroupName", 512),
        ("AWS::DynamoDB::Table", "TableName", 255),
        ("AWS::ECR::Repository", "RepositoryName", 256),
        ("AWS::ECS::Cluster", "ClusterName", 255),
        ("AWS::ECS::Service", "ServiceName", 255),
        ("AWS::ECS::TaskDefinition", "Family", 255),
        ("AWS::StepFunctions::StateMachine", "StateMachineName", 80),
        ("AWS::KMS::Alias", "AliasName", 256),
        ("AWS::Cognito::UserPoolDomain", "Domain", 63),
        ("AWS::Cognito::UserPool", "UserPoolName", 128),
        ("AWS::Cognito::UserPoolClient", "ClientName", 128),
        ("AWS::CloudFront::Function", "Name", 64),
        ("AWS::ApiGatewayV2::Api", "Name", 128),
    ];

    #[test]
    fn every_name_of_a_longest_named_preview_is_within_its_aws_limit() {
        let name = "b".repeat(MAX_NAME);
        let mut checked = 0;
        for file in ["acme-staging.yaml", "initech-staging.yaml"] {
            let cfg = derive(
                &example(file),
                file,
                &name,
                "210987654321",
                "2026-12-05T00:00:00Z",
            )
            .unwrap();
            for f in crate::synth::synthesize(&cfg).unwrap() {
                if !f.path.ends_with(".yaml") {
                    continue;
                }
                let t: serde_yaml::Value = serde_yaml::from_str(&f.contents).unwrap();
                let Some(resources) = t.get("Resources").and_then(|r| r.as_mapping()) else {
                    continue;
                };
                for (id, r) in resources {
                    let ty = r["Type"].as_str().unwrap_or_default();
                    for (_, prop, max) in NAME_LIMITS.iter().filter(|(t, _, _)| *t == ty) {
                        if let Some(v) = r["Properties"].get(*prop).and_then(|v| v.as_str()) {
                            checked += 1;
                            assert!(v.len() <= *max, "{}: {id:?} {prop} {v} > {max}", f.path);
                        }
                    }
                }
            }
        }
        assert!(checked > 40, "only {checked} names found");
    }
}
