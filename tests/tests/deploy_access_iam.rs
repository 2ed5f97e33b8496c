//! The `deploy-access` template a customer deploys once for cross-account deploys
//! (issue 14): the deploy role trusts exactly the ops principal (and the external id),
//! allows every SDK operation chronoctl makes in a customer account (the list in
//! `chrono_provisioner::aws::permissions`, checked against the provisioner's source here)
//! and nothing that creates IAM or touches another stage; CloudFormation's execution role
//! holds the resource-creation rights. Evaluated with the documented-rules evaluator of
//! `chrono_tests::iam`; AWS's own evaluation of the trust policy is verified only on paper
//! (moto does not enforce trust policies).

use std::collections::BTreeSet;
use std::path::Path;

use chrono_provisioner::aws::permissions::CALLS;
use chrono_stacks::config::Config;
use chrono_stacks::deploy_access::{self, DEPLOY_ROLE, EXECUTION_ROLE, OPS_PRINCIPAL_PARAMETER};
use chrono_stacks::synth::build_stacks;
use chrono_tests::iam::{Request, Values, allows, resolve, role_statements};
use serde_json::{Value, json};

const OPS: &str = "arn:aws:iam::444455556666:role/chrono-ops";

fn config(name: &str) -> Config {
    let path = format!("{}/../customers/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    Config::load(Path::new(&path)).unwrap()
}

fn template(cfg: &Config) -> Option<Value> {
    let stacks = build_stacks(cfg).unwrap();
    deploy_access::build(cfg, &deploy_access::namespaces(&stacks))
        .unwrap()
        .map(|t| t.to_json())
}

fn values(cfg: &Config) -> Values {
    let mut v = Values::new(&cfg.region, &cfg.account_id);
    v.set(OPS_PRINCIPAL_PARAMETER, OPS);
    v
}

fn expand(pattern: &str, cfg: &Config) -> String {
    pattern
        .replace("{prefix}", &cfg.prefix())
        .replace("{account}", &cfg.account_id)
        .replace("{region}", &cfg.region)
}

/// initech-staging with the fields of a cross-account deploy set (or cleared).
fn cross_account(external_id: Option<&str>) -> Config {
    let mut cfg = config("initech-staging");
    cfg.external_id = external_id.map(str::to_owned);
    cfg
}

#[test]
fn the_trust_policy_names_exactly_the_ops_principal_and_the_external_id() {
    let cfg = cross_account(Some("initech-3c9e1f"));
    let t = template(&cfg).unwrap();
    let role = &t["Resources"][DEPLOY_ROLE];
    let trust = resolve(
        &role["Properties"]["AssumeRolePolicyDocument"],
        &values(&cfg),
    )
    .unwrap();
    assert_eq!(
        trust["Statement"],
        json!([{
            "Sid": "OpsAccountOnly",
            "Effect": "Allow",
            "Principal": {"AWS": OPS},
            "Action": ["sts:AssumeRole"],
            "Condition": {"StringEquals": {"sts:ExternalId": "initech-3c9e1f"}}
        }])
    );
    // without an external id in the config, no condition (and still only the ops principal)
    let cfg = cross_account(None);
    let t = template(&cfg).unwrap();
    let trust = resolve(
        &t["Resources"][DEPLOY_ROLE]["Properties"]["AssumeRolePolicyDocument"],
        &values(&cfg),
    )
    .unwrap();
    assert_eq!(trust["Statement"][0]["Principal"], json!({"AWS": OPS}));
    assert!(trust["Statement"][0].get("Condition").is_none());
    assert_eq!(trust["Statement"].as_array().unwrap().len(), 1);
    // the principal is a parameter the template pins to one IAM ARN
    let pattern = t["Parameters"][OPS_PRINCIPAL_PARAMETER]["AllowedPattern"]
        .as_str()
        .unwrap();
    assert!(
        pattern.starts_with("^arn:aws") && pattern.ends_with(")$") && !pattern.contains(".*"),
        "{pattern}"
    );
    // the execution role is CloudFormation's only
    let exec = &t["Resources"][EXECUTION_ROLE]["Properties"]["AssumeRolePolicyDocument"];
    assert_eq!(
        exec["Statement"][0]["Principal"],
        json!({"Service": "cloudformation.amazonaws.com"})
    );
    assert_eq!(exec["Statement"].as_array().unwrap().len(), 1);
}

#[test]
fn the_deploy_role_is_named_as_the_config_says_with_a_one_hour_session() {
    let cfg = config("initech-staging");
    let t = template(&cfg).unwrap();
    let p = &t["Resources"][DEPLOY_ROLE]["Properties"];
    assert_eq!(p["RoleName"], "chrono-deploy");
    assert_eq!(p["Path"], "/");
    assert_eq!(p["MaxSessionDuration"], 3600);
    assert_eq!(
        t["Resources"][EXECUTION_ROLE]["Properties"]["RoleName"],
        "chrono-initech-staging-cfn-execution"
    );
    // the config's cfn_execution_role_arn is the role the template creates
    assert_eq!(
        cfg.cfn_execution_role_arn.as_deref(),
        Some("arn:aws:iam::777788889999:role/chrono-initech-staging-cfn-execution")
    );
    // a role with a path keeps it
    let mut cfg = cfg;
    cfg.deploy_role_arn = Some("arn:aws:iam::777788889999:role/ops/deploy/chrono".into());
    let t = template(&cfg).unwrap();
    let p = &t["Resources"][DEPLOY_ROLE]["Properties"];
    assert_eq!(
        (&p["RoleName"], &p["Path"]),
        (&json!("chrono"), &json!("/ops/deploy/"))
    );
    // no deploy role, no template
    cfg.deploy_role_arn = None;
    cfg.external_id = None;
    assert!(template(&cfg).is_none());
    assert!(template(&config("acme-prod")).is_none());
}

#[test]
fn the_deploy_role_allows_every_call_chronoctl_makes_in_the_customer_account() {
    let cfg = config("initech-staging");
    let t = template(&cfg).unwrap();
    let statements = role_statements(&t, DEPLOY_ROLE, &values(&cfg)).unwrap();
    let mut refused = Vec::new();
    for call in CALLS {
        for r in call.requests {
            let mut req = Request::new(r.action, expand(r.resource, &cfg));
            for (k, v) in r.context {
                req = req.with(k, v);
            }
            if !allows(&statements, &req).unwrap() {
                refused.push(format!("{}.{}: {req:?}", call.client, call.operation));
            }
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}

#[test]
fn the_deploy_role_creates_no_iam_and_touches_no_other_stage() {
    let cfg = config("initech-staging");
    let t = template(&cfg).unwrap();
    let statements = role_statements(&t, DEPLOY_ROLE, &values(&cfg)).unwrap();
    let a = &cfg.account_id;
    let r = &cfg.region;
    let denied = [
        Request::new(
            "iam:CreateRole",
            format!("arn:aws:iam::{a}:role/chrono-initech-staging-x"),
        ),
        Request::new(
            "iam:PutRolePolicy",
            format!("arn:aws:iam::{a}:role/chrono-deploy"),
        ),
        Request::new(
            "iam:AttachRolePolicy",
            format!("arn:aws:iam::{a}:role/chrono-deploy"),
        ),
        Request::new(
            "iam:UpdateAssumeRolePolicy",
            format!("arn:aws:iam::{a}:role/chrono-initech-staging-cfn-execution"),
        ),
        // the execution role goes to CloudFormation only, other roles not to CloudFormation
        Request::new(
            "iam:PassRole",
            format!("arn:aws:iam::{a}:role/chrono-initech-staging-cfn-execution"),
        )
        .with("iam:PassedToService", "lambda.amazonaws.com"),
        Request::new("iam:PassRole", format!("arn:aws:iam::{a}:role/Admin"))
            .with("iam:PassedToService", "cloudformation.amazonaws.com"),
        Request::new(
            "iam:PassRole",
            format!("arn:aws:iam::{a}:role/chrono-initech-staging-compute-TaskRole"),
        )
        .with("iam:PassedToService", "cloudformation.amazonaws.com"),
        // another stage's or customer's stacks
        Request::new(
            "cloudformation:CreateChangeSet",
            format!("arn:aws:cloudformation:{r}:{a}:stack/chrono-initech-prod-api/1"),
        ),
        Request::new(
            "cloudformation:DeleteStack",
            format!("arn:aws:cloudformation:{r}:{a}:stack/other-app/1"),
        ),
        Request::new(
            "cloudformation:CreateStack",
            format!("arn:aws:cloudformation:{r}:{a}:stack/chrono-initech-staging-api/1"),
        ),
        Request::new(
            "s3:GetObject",
            format!("arn:aws:s3:::chrono-initech-prod-sources-{a}/x"),
        ),
        Request::new(
            "dynamodb:PutItem",
            format!("arn:aws:dynamodb:{r}:{a}:table/chrono-initech-staging-sessions"),
        ),
        Request::new(
            "lambda:UpdateFunctionCode",
            format!("arn:aws:lambda:{r}:{a}:function:other"),
        ),
        Request::new("ec2:RunInstances", "*"),
        Request::new("kms:Decrypt", "*"),
    ];
    for req in denied {
        assert!(!allows(&statements, &req).unwrap(), "allowed: {req:?}");
    }
    // no statement of the deploy role names an iam action other than these
    let iam: BTreeSet<String> = statements
        .iter()
        .flat_map(chrono_tests::iam::actions)
        .filter(|a| a.starts_with("iam:"))
        .collect();
    assert_eq!(
        iam,
        BTreeSet::from([
            "iam:CreateServiceLinkedRole".to_owned(),
            "iam:PassRole".to_owned()
        ])
    );
}

#[test]
fn the_execution_role_covers_every_service_of_the_stage_and_iam_only_by_name() {
    let cfg = config("initech-staging");
    let t = template(&cfg).unwrap();
    let statements = role_statements(&t, EXECUTION_ROLE, &values(&cfg)).unwrap();
    let a = &cfg.account_id;
    for stack in build_stacks(&cfg).unwrap() {
        for (id, r) in stack.template.resources() {
            let ns = r.kind.split("::").nth(1).unwrap();
            if ns == "IAM" {
                continue;
            }
            let service = deploy_access::iam_prefix(ns).unwrap();
            let req = Request::new(&format!("{service}:CreateSomething"), "arn:aws:x");
            assert!(
                allows(&statements, &req).unwrap(),
                "{} {id} {}",
                stack.name,
                r.kind
            );
        }
    }
    let role = |n: &str| format!("arn:aws:iam::{a}:role/{n}");
    assert!(
        allows(
            &statements,
            &Request::new("iam:CreateRole", role("chrono-initech-staging-api-Role-1"))
        )
        .unwrap()
    );
    for other in ["chrono-deploy", "Admin", "chrono-initech-prod-api-Role-1"] {
        assert!(
            !allows(&statements, &Request::new("iam:CreateRole", role(other))).unwrap(),
            "{other}"
        );
        assert!(
            !allows(&statements, &Request::new("iam:PutRolePolicy", role(other))).unwrap(),
            "{other}"
        );
    }
    assert!(
        !allows(
            &statements,
            &Request::new("iam:CreateUser", format!("arn:aws:iam::{a}:user/x"))
        )
        .unwrap()
    );
}

/// `<client>.<operation>()` calls in `src` (the client names of `Clients`).
fn sdk_calls(src: &str, clients: &[&str]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let bytes = src.as_bytes();
    for client in clients {
        let mut from = 0;
        while let Some(i) = src[from..].find(client) {
            let start = from + i;
            from = start + client.len();
            let before = start.checked_sub(1).map(|j| bytes[j]);
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            let rest = src[from..].trim_start();
            let Some(rest) = rest.strip_prefix('.') else {
                continue;
            };
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let after = &rest.trim_start()[name.len()..];
            if !name.is_empty() && after.starts_with("()") && name != "clone" {
                let client = if *client == "cfn_client" {
                    "cfn"
                } else {
                    client
                };
                out.insert((client.to_owned(), name));
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_sdk_call_of_the_provisioner_is_in_the_permissions_list() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioner/src");
    let clients = [
        "cfn",
        "cfn_client",
        "s3",
        "ddb",
        "lambda",
        "cloudfront",
        "ecr",
        "ecs",
        "sfn",
        "sts",
        "iam",
    ];
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = BTreeSet::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // the emulator's and previews' calls never run as the customer's deploy role;
        // AssumeRole is made with the operator's own credentials
        if rel.starts_with("local/") || rel.starts_with("preview/") {
            continue;
        }
        found.extend(sdk_calls(&std::fs::read_to_string(&f).unwrap(), &clients));
    }
    found.remove(&("sts".to_owned(), "assume_role".to_owned()));
    found.remove(&("cfn".to_owned(), "config".to_owned()));
    let listed: BTreeSet<(String, String)> = CALLS
        .iter()
        .map(|c| (c.client.to_owned(), c.operation.to_owned()))
        .collect();
    let missing: Vec<_> = found.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "SDK calls missing from aws::permissions::CALLS: {missing:?}"
    );
    let stale: Vec<_> = listed.difference(&found).collect();
    assert!(
        stale.is_empty(),
        "aws::permissions::CALLS lists calls the code no longer makes: {stale:?}"
    );
    // the scanner sees what it must (a call split over lines is found)
    assert!(found.contains(&("cfn".to_owned(), "create_change_set".to_owned())));
    assert_eq!(
        sdk_calls(
            "let x = ecs\n        .update_service()\n        .send();",
            &["ecs"]
        ),
        BTreeSet::from([("ecs".to_owned(), "update_service".to_owned())])
    );
}
