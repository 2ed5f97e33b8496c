//! `chronoctl check`: the example configs pass, and each rule catches a deliberately
//! broken template.

use chrono_provisioner::check::{Violation, check_config, check_template, limits};
use chrono_stacks::Config;
use chrono_stacks::model::Template;
use chrono_stacks::resources::compute::LogGroup;
use chrono_stacks::synth::build_stacks;
use serde_json::{Value, json};

fn example(name: &str) -> Config {
    let path = format!("{}/../customers/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    Config::load(std::path::Path::new(&path)).unwrap()
}

/// The template of `stack` for `cfg`, broken by `edit`, checked.
fn violations(cfg: &Config, stack: &str, edit: impl FnOnce(&mut Value)) -> Vec<Violation> {
    let s = build_stacks(cfg)
        .unwrap()
        .into_iter()
        .find(|s| s.kind.as_str() == stack)
        .unwrap();
    let mut t = s.template.to_json();
    edit(&mut t);
    check_template(cfg, &s.name, &t).unwrap()
}

fn assert_caught(v: &[Violation], rule: &str, logical_id: &str) {
    assert!(
        v.iter()
            .any(|v| v.rule == rule && v.logical_id == logical_id && !v.hint.is_empty()),
        "expected {rule} on {logical_id}, got {v:#?}"
    );
    assert!(
        v.iter().all(|v| v.rule == rule),
        "other rules fired too: {v:#?}"
    );
}

fn statement<'a>(t: &'a mut Value, role: &str, sid: &str) -> &'a mut Value {
    t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["Sid"] == sid)
        .unwrap()
}

#[test]
fn example_configs_pass_every_rule() {
    for name in ["acme-prod", "acme-staging", "demo-local", "initech-staging"] {
        assert_eq!(check_config(&example(name)).unwrap(), Vec::new(), "{name}");
    }
}

#[test]
fn unencrypted_bucket() {
    let v = violations(&example("acme-prod"), "data", |t| {
        t["Resources"]["SourcesBucket"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("BucketEncryption");
    });
    assert_caught(&v, "bucket_encrypted", "SourcesBucket");
}

#[test]
fn bucket_with_public_access() {
    let v = violations(&example("acme-prod"), "data", |t| {
        t["Resources"]["ArtifactsBucket"]["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] =
            json!(false);
    });
    assert_caught(&v, "bucket_public_access_blocked", "ArtifactsBucket");
}

#[test]
fn bucket_without_tls_only_policy() {
    let v = violations(&example("acme-prod"), "bootstrap", |t| {
        t["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("AssetsBucketPolicy");
    });
    assert_caught(&v, "bucket_tls_only", "AssetsBucket");
    // With another bucket's policy still present, only the bucket without one is named.
    let v = violations(&example("acme-prod"), "data", |t| {
        t["Resources"]
            .as_object_mut()
            .unwrap()
            .remove("SourcesBucketPolicy");
    });
    assert_caught(&v, "bucket_tls_only", "SourcesBucket");
    assert!(v.iter().all(|v| v.logical_id == "SourcesBucket"), "{v:#?}");
}

#[test]
fn unencrypted_aurora() {
    let v = violations(&example("acme-prod"), "data", |t| {
        t["Resources"]["Database"]["Properties"]["StorageEncrypted"] = json!(false);
    });
    assert_caught(&v, "aurora_encrypted", "Database");
}

#[test]
fn public_aurora_instance() {
    let v = violations(&example("acme-prod"), "data", |t| {
        t["Resources"]["DatabaseWriter"]["Properties"]["PubliclyAccessible"] = json!(true);
    });
    assert_caught(&v, "aurora_not_public", "DatabaseWriter");
}

#[test]
fn prod_aurora_without_snapshot() {
    let v = violations(&example("acme-prod"), "data", |t| {
        t["Resources"]["Database"]["DeletionPolicy"] = json!("Delete");
    });
    assert_caught(&v, "aurora_snapshot_in_prod", "Database");
    // The same template is fine outside prod.
    let v = violations(&example("demo-local"), "data", |t| {
        t["Resources"]["Database"]["DeletionPolicy"] = json!("Delete");
    });
    assert_eq!(v, Vec::new());
}

#[test]
fn table_without_pitr() {
    let v = violations(&example("acme-prod"), "data", |t| {
        t["Resources"]["SessionsTable"]["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] =
            json!(false);
    });
    assert_caught(&v, "table_pitr", "SessionsTable");
}

#[test]
fn table_without_sse() {
    let v = violations(&example("acme-staging"), "data", |t| {
        t["Resources"]["IntentCacheTable"]["Properties"]["SSESpecification"] =
            json!({"SSEEnabled": false});
    });
    assert_caught(&v, "table_sse", "IntentCacheTable");
}

#[test]
fn iam_statement_with_star_action() {
    let v = violations(&example("acme-prod"), "compute", |t| {
        statement(t, "ApiRole", "StartPipeline")["Action"] = json!(["states:*"]);
    });
    assert_caught(&v, "iam_no_star_action", "ApiRole");
    let v = violations(&example("acme-prod"), "compute", |t| {
        statement(t, "ApiRole", "StartPipeline")["Action"] = json!(["*"]);
    });
    assert_caught(&v, "iam_no_star_action", "ApiRole");
}

#[test]
fn iam_star_resource_on_a_data_service() {
    let v = violations(&example("acme-prod"), "compute", |t| {
        statement(t, "PipelineTaskRole", "ReadSources")["Resource"] = json!(["*"]);
    });
    assert_caught(&v, "iam_no_star_resource_on_data", "PipelineTaskRole");
}

#[test]
fn log_group_without_retention() {
    let v = violations(&example("acme-prod"), "compute", |t| {
        t["Resources"]["ApiLogGroup"]["Properties"]
            .as_object_mut()
            .unwrap()
            .remove("RetentionInDays");
    });
    assert_caught(&v, "log_retention", "ApiLogGroup");
}

#[test]
fn bedrock_model_outside_the_config() {
    let v = violations(&example("acme-prod"), "compute", |t| {
        statement(t, "FilterAiTaskRole", "InvokeConfiguredModels")["Resource"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Fn::Sub":
            "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/anthropic.claude-3-opus-20240229-v1:0"}));
    });
    assert_caught(&v, "bedrock_configured_models_only", "FilterAiTaskRole");
    let v = violations(&example("acme-prod"), "compute", |t| {
        statement(t, "AiChatRole", "InvokeConfiguredModels")["Resource"] = json!(["*"]);
    });
    assert_caught(&v, "bedrock_configured_models_only", "AiChatRole");
}

#[test]
fn lambdas_sharing_a_role() {
    let v = violations(&example("acme-prod"), "compute", |t| {
        t["Resources"]["AiChatFunction"]["Properties"]["Role"] =
            json!({"Fn::GetAtt": ["ApiRole", "Arn"]});
    });
    assert_caught(&v, "own_role", "AiChatFunction");
    assert_caught(&v, "own_role", "ApiFunction");
    let v = violations(&example("acme-prod"), "compute", |t| {
        t["Resources"]["PipelineTaskDefinition"]["Properties"]["TaskRoleArn"] =
            json!("arn:aws:iam::1:role/shared");
    });
    assert_caught(&v, "own_role", "PipelineTaskDefinition");
}

#[test]
fn template_over_the_resource_limit() {
    let mut t = Template::new("too big");
    for i in 0..501 {
        let group = LogGroup {
            log_group_name: format!("/x/{i}"),
            retention_in_days: 7,
            tags: Vec::new(),
        };
        t.add(&format!("Group{i}"), group).unwrap();
    }
    let v = limits("chrono-acme-prod-compute", &t).unwrap();
    assert_eq!(v.rule, "cfn_limits");
    assert_eq!(
        v.hint,
        "template has 501 resources, CloudFormation allows at most 500; split the stack"
    );
    let fine = build_stacks(&example("acme-prod")).unwrap();
    assert!(fine.iter().all(|s| limits(&s.name, &s.template).is_none()));
}

#[test]
fn web_app_served_over_plain_http() {
    let v = violations(&example("acme-prod"), "web", |t| {
        t["Resources"]["AppDistribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
            ["ViewerProtocolPolicy"] = json!("allow-all");
    });
    assert_caught(&v, "cloudfront_https_only", "AppDistribution");
}

#[test]
fn web_app_origin_without_access_control_or_headers() {
    let v = violations(&example("acme-prod"), "web", |t| {
        t["Resources"]["AppDistribution"]["Properties"]["DistributionConfig"]["Origins"][0]
            .as_object_mut()
            .unwrap()
            .remove("OriginAccessControlId");
    });
    assert_caught(&v, "cloudfront_private_origin", "AppDistribution");
    let v = violations(&example("acme-prod"), "web", |t| {
        t["Resources"]["AppDistribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
            .as_object_mut()
            .unwrap()
            .remove("ResponseHeadersPolicyId");
    });
    assert_caught(&v, "cloudfront_security_headers", "AppDistribution");
}

#[test]
fn user_pool_without_mfa_open_sign_up_or_a_confidential_client() {
    let cfg = example("initech-staging");
    let v = violations(&cfg, "web", |t| {
        t["Resources"]["UserPool"]["Properties"]["MfaConfiguration"] = json!("OPTIONAL");
    });
    assert_caught(&v, "cognito_mfa_required", "UserPool");
    let v = violations(&cfg, "web", |t| {
        t["Resources"]["UserPool"]["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] =
            json!(false);
    });
    assert_caught(&v, "cognito_admin_created_users_only", "UserPool");
    let v = violations(&cfg, "web", |t| {
        t["Resources"]["AppClient"]["Properties"]["AllowedOAuthFlows"] =
            json!(["code", "implicit"]);
    });
    assert_caught(&v, "cognito_public_client_uses_code_flow", "AppClient");
}

/// Defect 5 of issue 13: the old defaults were Legacy models a new account cannot use;
/// `check` warns about them (and unknown ids), and says nothing about the examples.
#[test]
fn legacy_and_unknown_bedrock_models_are_warned_about() {
    use chrono_provisioner::check::model_warnings;
    for name in ["acme-prod", "acme-staging", "demo-local", "initech-staging"] {
        assert_eq!(
            model_warnings(&example(name)),
            Vec::<String>::new(),
            "{name}"
        );
    }
    let mut cfg = example("acme-prod");
    cfg.bedrock.guard_model_id = "anthropic.claude-3-haiku-20240307-v1:0".into();
    cfg.bedrock.main_model_id = "eu.anthropic.claude-opus-99-v1:0".into();
    let w = model_warnings(&cfg);
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w[0].contains("bedrock.guard_model_id") && w[0].contains("Legacy"),
        "{w:#?}"
    );
    assert!(
        w[1].contains("bedrock.main_model_id") && w[1].contains("not in"),
        "{w:#?}"
    );
    // the IAM of a Legacy id is still the configured one: warnings are not violations
    assert_eq!(check_config(&cfg).unwrap(), Vec::new());
}

/// `RUNTIME_SENDS` says what the runtime's Bedrock client sends; read its source (the
/// runtime is not a dependency of the provisioner's tests) so the two cannot drift.
#[test]
fn the_runtime_sends_what_check_assumes() {
    use chrono_provisioner::check::RUNTIME_SENDS;
    use chrono_stacks::bedrock::RequestSetting;
    let source = include_str!("../../runtime/src/ai/bedrock.rs");
    let forces = source.contains("ToolChoice::Tool(") || source.contains("ToolChoice::Any(");
    let samples = source.contains(".temperature(") || source.contains(".top_p(");
    assert_eq!(
        RUNTIME_SENDS.contains(&RequestSetting::ForcedToolChoice),
        forces
    );
    assert_eq!(
        RUNTIME_SENDS.contains(&RequestSetting::SamplingParameters),
        samples
    );
}
