//! Customer config parsing and validation: defaults, and bad configs with their exact
//! messages (file, line, column, field, what is allowed).

use chrono_stacks::config::{Architecture, Config, Stage};

const BASE: &str = "\
customer: acme
account_id: \"111122223333\"
region: eu-west-1
stage: prod
network:
  az_count: 3
aurora:
  max_acu: 16
auth:
  jwt_issuer: https://acme.eu.auth0.com/
  jwt_audience: https://api.acme.example
  app_client_id: acme-app
";

fn error(yaml: &str) -> String {
    match Config::parse("customers/bad.yaml", yaml) {
        Ok(cfg) => panic!("accepted a bad config: {cfg:?}"),
        Err(e) => e.to_string(),
    }
}

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from} not in base config");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_config_parses_with_stage_defaults() {
    let cfg = Config::parse("base.yaml", BASE).unwrap();
    assert_eq!(cfg.stage, Stage::Prod);
    assert_eq!(cfg.nat_gateways(), 3, "prod defaults to one NAT per AZ");
    assert_eq!(cfg.readers(), 1);
    assert!((cfg.min_acu() - 0.5).abs() < f64::EPSILON);
    assert_eq!(cfg.log_retention_days, 90);
    assert_eq!(cfg.network.vpc_cidr, "10.0.0.0/16");
    assert_eq!(cfg.auth.roles_claim, "https://chronotracer.io/roles");
    assert_eq!(cfg.prefix(), "chrono-acme-prod");

    let staging = Config::parse("s.yaml", &with("stage: prod", "stage: staging")).unwrap();
    assert_eq!(staging.nat_gateways(), 1);
    assert_eq!(staging.readers(), 0);
}

#[test]
fn example_configs_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../customers");
    for name in ["acme-prod", "acme-staging", "demo-local"] {
        let cfg = Config::load(std::path::Path::new(&format!("{dir}/{name}.yaml"))).unwrap();
        assert_eq!(format!("{}-{}", cfg.customer, cfg.stage), name);
    }
}

#[test]
fn max_acu_out_of_range() {
    assert_eq!(
        error(&with("max_acu: 16", "max_acu: 0")),
        "customers/bad.yaml:8:12: aurora.max_acu must be between 1 and 256 in steps of 0.5, got 0"
    );
}

#[test]
fn min_acu_above_max_acu() {
    assert_eq!(
        error(&with("max_acu: 16", "max_acu: 16\n  min_acu: 32")),
        "customers/bad.yaml:9:12: aurora.min_acu must not exceed aurora.max_acu (16), got 32"
    );
}

#[test]
fn unknown_top_level_key() {
    let msg = error(&format!("{BASE}colour: blue\n"));
    assert!(
        msg.starts_with(
            "customers/bad.yaml:13:1: unknown field `colour`, expected one of `customer`, "
        ),
        "{msg}"
    );
}

#[test]
fn unknown_nested_key() {
    let msg = error(&with("max_acu: 16", "max_acus: 16"));
    assert_eq!(
        msg,
        "customers/bad.yaml:8:3: aurora: unknown field `max_acus`, expected one of `engine_version`, `min_acu`, `max_acu`, `readers`, `backup_retention_days`"
    );
}

#[test]
fn unknown_stage() {
    assert_eq!(
        error(&with("stage: prod", "stage: production")),
        "customers/bad.yaml:4:8: stage: unknown variant `production`, expected one of `prod`, `staging`, `preview`, `local`"
    );
}

#[test]
fn architecture_defaults_to_x86_64_and_accepts_arm64() {
    let cfg = Config::parse("base.yaml", BASE).unwrap();
    assert_eq!(cfg.architecture, Architecture::X86_64);
    let arm = Config::parse(
        "arm.yaml",
        &with("stage: prod", "stage: prod\narchitecture: arm64"),
    )
    .unwrap();
    assert_eq!(arm.architecture, Architecture::Arm64);
    assert_eq!(arm.architecture.ecs_cpu_architecture(), "ARM64");
}

#[test]
fn unknown_architecture() {
    assert_eq!(
        error(&with("stage: prod", "stage: prod\narchitecture: amd64")),
        "customers/bad.yaml:5:15: architecture: unknown variant `amd64`, expected `x86_64` or `arm64`"
    );
}

#[test]
fn missing_required_field() {
    let yaml = BASE.replace("stage: prod\n", "");
    assert_eq!(
        error(&yaml),
        "customers/bad.yaml:1:1: missing field `stage`"
    );
}

#[test]
fn without_an_issuer_the_stacks_create_a_user_pool() {
    let yaml = BASE.split("auth:").next().unwrap().to_owned();
    let cfg = Config::parse("c.yaml", &yaml).unwrap();
    assert_eq!(cfg.auth.external(), None);
    assert_eq!(cfg.cognito_domain_prefix(), "chrono-acme-prod");
    let named = Config::parse(
        "c.yaml",
        &format!("{yaml}auth:\n  cognito:\n    domain_prefix: acme-login\n"),
    )
    .unwrap();
    assert_eq!(named.cognito_domain_prefix(), "acme-login");
    let external = Config::parse("b.yaml", BASE).unwrap();
    let ext = external.auth.external().unwrap();
    assert_eq!(
        (ext.issuer, ext.audience, ext.app_client_id),
        (
            "https://acme.eu.auth0.com/",
            "https://api.acme.example",
            "acme-app"
        )
    );
}

#[test]
fn auth_and_web_settings_are_checked() {
    let no_auth = BASE.split("auth:").next().unwrap().to_owned();
    for (yaml, want) in [
        (
            with("  app_client_id: acme-app\n", ""),
            "customers/bad.yaml:9:1: auth.app_client_id is required with auth.jwt_issuer (an external identity provider)",
        ),
        (
            format!("{no_auth}auth:\n  jwt_audience: x\n"),
            "customers/bad.yaml:10:17: auth.jwt_audience needs auth.jwt_issuer (without an external issuer the stacks create a Cognito user pool)",
        ),
        (
            format!("{BASE}  cognito: {{}}\n"),
            "customers/bad.yaml:13:12: auth.cognito is only for the user pool the stacks create; remove it or auth.jwt_issuer",
        ),
        (
            format!("{no_auth}auth:\n  cognito:\n    domain_prefix: my-aws-login\n"),
            "customers/bad.yaml:11:20: auth.cognito.domain_prefix must be 1-63 lowercase letters, digits and inner hyphens, without aws, amazon or cognito, got \"my-aws-login\"",
        ),
        (
            format!("{BASE}web:\n  domain: app.acme.example\n"),
            "customers/bad.yaml:13:1: web.certificate_arn is required with web.domain: an ACM certificate in us-east-1",
        ),
        (
            format!(
                "{BASE}web:\n  domain: app.acme.example\n  certificate_arn: arn:aws:acm:eu-west-1:111122223333:certificate/x\n"
            ),
            "customers/bad.yaml:15:20: web.certificate_arn must be an ACM certificate ARN in us-east-1, got \"arn:aws:acm:eu-west-1:111122223333:certificate/x\"",
        ),
        (
            format!("{BASE}web:\n  price_class: PriceClass_42\n"),
            "customers/bad.yaml:14:16: web.price_class must be PriceClass_100, PriceClass_200 or PriceClass_All, got \"PriceClass_42\"",
        ),
    ] {
        assert_eq!(error(&yaml), want, "{yaml}");
    }
}

#[test]
fn wrong_type() {
    assert_eq!(
        error(&with("max_acu: 16", "max_acu: 16\n  readers: two")),
        "customers/bad.yaml:9:12: aurora.readers: invalid type: string \"two\", expected u32"
    );
}

#[test]
fn account_id_not_twelve_digits() {
    assert_eq!(
        error(&with("\"111122223333\"", "\"1234\"")),
        "customers/bad.yaml:2:13: account_id must be a 12-digit AWS account id (quote it), got \"1234\""
    );
}

#[test]
fn bad_region() {
    assert_eq!(
        error(&with("eu-west-1", "Europe")),
        "customers/bad.yaml:3:9: region must be an AWS region like eu-west-1, got \"Europe\""
    );
}

#[test]
fn bad_customer_name() {
    assert_eq!(
        error(&with("customer: acme", "customer: Acme_Corp")),
        "customers/bad.yaml:1:11: customer must be 2-20 lowercase letters, digits or '-', starting with a letter, got \"Acme_Corp\""
    );
}

#[test]
fn az_count_out_of_range() {
    assert_eq!(
        error(&with("az_count: 3", "az_count: 4")),
        "customers/bad.yaml:6:13: network.az_count must be 2 or 3, got 4"
    );
}

#[test]
fn more_nat_gateways_than_azs() {
    assert_eq!(
        error(&with("az_count: 3", "az_count: 2\n  nat_gateways: 3")),
        "customers/bad.yaml:7:17: network.nat_gateways must be between 0 and network.az_count (2), got 3"
    );
}

#[test]
fn preview_with_nat_gateways() {
    let yaml = with("stage: prod", "stage: preview").replacen(
        "az_count: 3",
        "az_count: 3\n  nat_gateways: 1",
        1,
    ) + "preview:\n  expires_at: 2026-12-01T00:00:00Z\n";
    assert_eq!(
        error(&yaml),
        "customers/bad.yaml:7:17: network.nat_gateways must be 0 for stage preview (previews use no NAT), got 1"
    );
}

#[test]
fn preview_without_expiry() {
    assert_eq!(
        error(&with("stage: prod", "stage: preview")),
        "customers/bad.yaml:1:1: preview is required for stage preview: set preview.expires_at (e.g. 2026-12-01T00:00:00Z)"
    );
}

#[test]
fn preview_expiry_not_a_timestamp() {
    let yaml = with("stage: prod", "stage: preview") + "preview:\n  expires_at: next week\n";
    assert_eq!(
        error(&yaml),
        "customers/bad.yaml:14:15: preview.expires_at must be an RFC 3339 UTC time like 2026-12-01T00:00:00Z, got \"next week\""
    );
}

#[test]
fn log_retention_not_a_cloudwatch_value() {
    let msg = error(&format!("{BASE}log_retention_days: 42\n"));
    assert!(
        msg.starts_with(
            "customers/bad.yaml:13:21: log_retention_days must be one of [1, 3, 5, 7, 14, 30,"
        ),
        "{msg}"
    );
    assert!(msg.ends_with("(CloudWatch Logs values), got 42"), "{msg}");
}

#[test]
fn issuer_must_be_https_outside_local() {
    assert_eq!(
        error(&with(
            "https://acme.eu.auth0.com/",
            "http://acme.eu.auth0.com/"
        )),
        "customers/bad.yaml:10:15: auth.jwt_issuer must be an https:// URL (http:// only for stage local), got \"http://acme.eu.auth0.com/\""
    );
}

#[test]
fn reserved_tag_prefix() {
    assert_eq!(
        error(&format!("{BASE}tags:\n  chrono:stage: x\n")),
        "customers/bad.yaml:14:17: tags.chrono:stage is not allowed: tag keys must be 1-128 characters and not start with chrono: or aws: (reserved)"
    );
}

#[test]
fn fargate_memory_must_match_cpu() {
    assert_eq!(
        error(&format!(
            "{BASE}sizing:\n  pipeline_cpu: 256\n  pipeline_memory_mb: 8192\n"
        )),
        "customers/bad.yaml:15:23: sizing.pipeline_memory_mb must be between 512 and 2048 in steps of 1024 for 256 CPU units, got 8192"
    );
}

#[test]
fn unknown_interface_endpoint() {
    let msg = error(&with(
        "az_count: 3",
        "az_count: 3\n  interface_endpoints: [ssm]",
    ));
    assert_eq!(
        msg,
        "customers/bad.yaml:7:24: network.interface_endpoints has unknown service \"ssm\"; allowed: bedrock-runtime, ecr.api, ecr.dkr, execute-api, kms, logs, secretsmanager, states, sts"
    );
}

#[test]
fn deploy_role_of_the_configs_account_with_an_external_id() {
    let cfg = Config::parse(
        "r.yaml",
        &format!(
            "{BASE}deploy_role_arn: arn:aws:iam::111122223333:role/ops/chrono-deploy\nexternal_id: acme-7f3a\n"
        ),
    )
    .unwrap();
    assert_eq!(
        cfg.deploy_role_arn.as_deref(),
        Some("arn:aws:iam::111122223333:role/ops/chrono-deploy")
    );
    assert_eq!(cfg.external_id.as_deref(), Some("acme-7f3a"));
    assert_eq!(Config::parse("b.yaml", BASE).unwrap().deploy_role_arn, None);
}

#[test]
fn deploy_role_of_another_account_or_not_a_role_is_refused_with_its_position() {
    let e = error(&format!(
        "{BASE}deploy_role_arn: arn:aws:iam::999988887777:role/chrono-deploy\n"
    ));
    assert!(
        e.starts_with("customers/bad.yaml:13:18: ")
            && e.contains("deploy_role_arn names a role of account 999988887777, but account_id is 111122223333"),
        "{e}"
    );
    let e = error(&format!(
        "{BASE}deploy_role_arn: arn:aws:iam::111122223333:user/alice\n"
    ));
    assert!(e.contains("deploy_role_arn must be an IAM role ARN"), "{e}");
    let e = error(&format!("{BASE}external_id: abc\n"));
    assert!(
        e.contains("external_id is only used with deploy_role_arn"),
        "{e}"
    );
    let e = error(&format!(
        "{BASE}deploy_role_arn: arn:aws:iam::111122223333:role/d\nexternal_id: \"has space\"\n"
    ));
    assert!(e.contains("external_id must be 2-1224 characters"), "{e}");
}

#[test]
fn cfn_execution_role_of_another_account_or_not_a_role_is_refused_with_its_position() {
    let cfg = Config::parse(
        "r.yaml",
        &format!(
            "{BASE}cfn_execution_role_arn: arn:aws:iam::111122223333:role/chrono-acme-prod-cfn-execution\n"
        ),
    )
    .unwrap();
    assert_eq!(
        cfg.cfn_execution_role_arn.as_deref(),
        Some("arn:aws:iam::111122223333:role/chrono-acme-prod-cfn-execution")
    );
    for bad in [
        "arn:aws:iam::999988887777:role/chrono-acme-prod-cfn-execution",
        "arn:aws:iam::111122223333:user/alice",
    ] {
        let e = error(&format!("{BASE}cfn_execution_role_arn: {bad}\n"));
        assert!(
            e.starts_with("customers/bad.yaml:13:")
                && e.contains(
                    "cfn_execution_role_arn must be an IAM role ARN of account 111122223333"
                ),
            "{e}"
        );
    }
}
