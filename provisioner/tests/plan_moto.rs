//! Reviewable plans against the local AWS emulator (moto over HTTP), as a user runs them:
//! `chronoctl diff --out plan.json` keeps the change sets it creates; `chronoctl deploy
//! --plan plan.json` executes exactly those, and refuses when the templates differ from the
//! planned ones, when the stack changed since, or when a planned change set is gone.

mod cli_support;

use std::path::Path;

use chrono_tests::moto::Moto;
use cli_support::{cfn, chronoctl, demo_config, text};

/// demo-local.yaml as customer `planned`, with these VPC interface endpoints (a change of
/// the network stack only: moto loses the bootstrap stack's outputs when it updates it).
fn write_config(path: &Path, endpoints: Option<&str>) {
    let mut cfg = demo_config("planned", "123456789012");
    if let Some(e) = endpoints {
        cfg.push_str(&format!("network:\n  interface_endpoints: [{e}]\n"));
    }
    std::fs::write(path, cfg).unwrap();
}

/// Interface endpoints in the deployed template (their logical ids).
async fn endpoints(c: &aws_sdk_cloudformation::Client, stack: &str) -> Vec<&'static str> {
    let out = c.get_template().stack_name(stack).send().await.unwrap();
    let body = out.template_body().unwrap_or_default().to_owned();
    ["LogsEndpoint", "StsEndpoint"]
        .into_iter()
        .filter(|e| body.contains(e))
        .collect()
}

fn plan_file(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_plan_executes_exactly_the_saved_change_sets_and_refuses_when_anything_moved() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    moto.reset().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("planned-local.yaml");
    let cfg_arg = cfg.to_str().unwrap();
    let plan = dir.path().join("plan.json");
    let plan_arg = plan.to_str().unwrap();
    let c = cfn(&moto).await;
    let network = "chrono-planned-local-network";

    write_config(&cfg, None);
    let o = chronoctl(
        &moto,
        &["deploy", "--config", cfg_arg, "--stack", "network"],
    );
    assert!(o.status.success(), "{}", text(&o));

    // a plan of a stack that does not exist yet is refused, and nothing is written
    let o = chronoctl(
        &moto,
        &[
            "diff", "--config", cfg_arg, "--stack", "web", "--out", plan_arg,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("web (new) cannot be planned"),
        "{}",
        text(&o)
    );
    assert!(!plan.exists());

    // plan a change (a tag on every resource); nothing is executed by planning
    write_config(&cfg, Some("logs"));
    let o = chronoctl(
        &moto,
        &[
            "diff", "--config", cfg_arg, "--stack", "network", "--out", plan_arg,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("plan saved to"), "{}", text(&o));
    let saved = plan_file(&plan);
    let net = saved["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "network")
        .unwrap()
        .clone();
    let cs = net["change_set_id"]
        .as_str()
        .expect("a kept change set")
        .to_owned();
    assert!(net["template_hash"].as_str().unwrap().len() >= 16);
    assert!(net["last_updated"].is_string(), "{net}");
    assert!(
        endpoints(&c, network).await.is_empty(),
        "planning executed nothing"
    );
    let kept = c
        .describe_change_set()
        .stack_name(network)
        .change_set_name(&cs)
        .send()
        .await
        .unwrap();
    assert_eq!(kept.execution_status().unwrap().as_str(), "AVAILABLE");

    // the templates differ from the planned ones: refused, nothing executed
    write_config(&cfg, Some("sts"));
    let o = chronoctl(&moto, &["deploy", "--config", cfg_arg, "--plan", plan_arg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("plan refused: the templates of") && text(&o).contains("network"),
        "{}",
        text(&o)
    );
    assert!(endpoints(&c, network).await.is_empty());

    // as planned: exactly the saved change set is executed
    write_config(&cfg, Some("logs"));
    let o = chronoctl(
        &moto,
        &[
            "deploy", "--config", cfg_arg, "--plan", plan_arg, "--output", "json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let stacks = summary["report"]["stacks"].as_array().unwrap();
    let outcome = |n: &str| {
        stacks
            .iter()
            .find(|s| s["name"] == n)
            .map(|s| s["outcome"].as_str().unwrap().to_owned())
    };
    assert_eq!(outcome("network").as_deref(), Some("updated"), "{out}");
    assert!(summary["report"]["change_sets_created"] == 0, "{out}");
    assert_eq!(endpoints(&c, network).await, ["LogsEndpoint"]);

    // the same plan again: the stack changed since (and its change set was used)
    let o = chronoctl(&moto, &["deploy", "--config", cfg_arg, "--plan", plan_arg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("plan refused: {network} changed since the plan")),
        "{}",
        text(&o)
    );

    // a planned change set deleted by someone else: refused
    write_config(&cfg, Some("logs, sts"));
    let o = chronoctl(
        &moto,
        &[
            "diff", "--config", cfg_arg, "--stack", "network", "--out", plan_arg,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let saved = plan_file(&plan);
    for s in saved["stacks"].as_array().unwrap() {
        if let Some(id) = s["change_set_id"].as_str() {
            c.delete_change_set()
                .stack_name(s["stack_name"].as_str().unwrap())
                .change_set_name(id)
                .send()
                .await
                .unwrap();
        }
    }
    let o = chronoctl(&moto, &["deploy", "--config", cfg_arg, "--plan", plan_arg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("is gone"), "{}", text(&o));
    assert_eq!(endpoints(&c, network).await, ["LogsEndpoint"]);

    // a plan file that is not one: a clear error
    std::fs::write(&plan, "{}").unwrap();
    let o = chronoctl(&moto, &["deploy", "--config", cfg_arg, "--plan", plan_arg]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a chronoctl plan"), "{}", text(&o));
}
