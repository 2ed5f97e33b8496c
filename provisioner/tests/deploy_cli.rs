//! The `chronoctl` deploy commands as a user runs them, against the local AWS emulator:
//! exit codes, `--dry-run`, `--output json`, refusals (a `--region` other than the
//! config's, a `--templates` directory of another customer or stage); `preview list`,
//! `preview gc --dry-run`, `preview down` of an unknown name, and the offline `cost`.

use std::process::{Command, Output};

use chrono_tests::moto::Moto;

fn chronoctl(moto: &Moto, args: &[&str]) -> Output {
    chronoctl_at(Some(&moto.endpoint()), args)
}

/// `chronoctl ARGS` from the repository root with test credentials, against `endpoint`
/// (or offline).
fn chronoctl_at(endpoint: Option<&str>, args: &[&str]) -> Output {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut c = Command::new(env!("CARGO_BIN_EXE_chronoctl"));
    c.current_dir(&root)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "eu-west-1")
        .env("CHRONO_POLL_MS", "5")
        .env_remove("AWS_PROFILE");
    if let Some(e) = endpoint {
        c.args(["--endpoint-url", e]);
    }
    c.output().expect("chronoctl runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn status_dry_run_and_refusals_from_the_command_line() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    moto.reset().unwrap();
    let cfg = "customers/demo-local.yaml";

    let o = chronoctl(&moto, &["status", "--config", cfg, "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["bootstrap", "network", "web", "data", "compute", "api"]
    );
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["drift"] == "not_deployed")
    );

    let o = chronoctl(
        &moto,
        &["deploy", "--config", cfg, "--dry-run", "--output", "json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary");
    let stacks = summary["report"]["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), 6);
    assert!(
        stacks.iter().all(|s| s["outcome"] == "would_create"),
        "{out}"
    );
    // nothing was created
    let o = chronoctl(&moto, &["status", "--config", cfg]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches("NOT_DEPLOYED")
            .count(),
        6,
        "{}",
        text(&o)
    );

    let o = chronoctl(&moto, &["destroy", "--config", cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("rerun with --yes to confirm"),
        "{}",
        text(&o)
    );

    let o = chronoctl(&moto, &["recover", "--config", cfg, "--stack", "data"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("chrono-demo-local-data is not deployed"),
        "{}",
        text(&o)
    );

    // the config's region only: another one is refused before any AWS call
    let o = chronoctl(
        &moto,
        &[
            "deploy",
            "--config",
            cfg,
            "--region",
            "eu-west-1",
            "--dry-run",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--region eu-west-1 conflicts with region us-east-1"),
        "{}",
        text(&o)
    );
    let o = chronoctl(&moto, &["status", "--config", cfg, "--region", "us-east-1"]);
    assert!(o.status.success(), "{}", text(&o));

    // templates of another customer and stage are refused
    let o = chronoctl(
        &moto,
        &[
            "deploy",
            "--config",
            cfg,
            "--templates",
            "templates/acme-staging",
            "--dry-run",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("holds the templates of acme-staging (account 444455556666"),
        "{}",
        text(&o)
    );
    // its own templates are accepted
    let o = chronoctl(
        &moto,
        &[
            "deploy",
            "--config",
            cfg,
            "--templates",
            "templates/demo-local",
            "--dry-run",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn preview_list_gc_and_down_from_the_command_line() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    moto.reset().unwrap();

    let o = chronoctl(&moto, &["preview", "list", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));

    let o = chronoctl(&moto, &["preview", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no previews"), "{}", text(&o));

    let o = chronoctl(&moto, &["preview", "gc", "--dry-run", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["previews"], serde_json::json!([]));

    let o = chronoctl(&moto, &["preview", "down", "Feature/Nope"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no preview named feature-nope"),
        "{}",
        text(&o)
    );
}

#[test]
fn cost_prints_the_breakdown_and_the_prices_it_used() {
    let o = chronoctl_at(
        None,
        &["cost", "customers/acme-prod.yaml", "--output", "json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["region"], "eu-west-1");
    assert_eq!(v["prices"]["nat_gateway_hour"], 0.048);
    assert_eq!(v["prices_read"], "2026-12-02");
    assert!(v["total_monthly"].as_f64().unwrap() > 500.0, "{v}");

    let o = chronoctl_at(None, &["cost", "customers/acme-staging.yaml", "--preview"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("idle cost estimate of cost-estimate-preview"),
        "{t}"
    );
    assert!(t.contains("total, idle"), "{t}");
    assert!(!t.contains("NatGateway"), "{t}");

    let o = chronoctl_at(None, &["cost", "customers/missing.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("customers/missing.yaml"), "{}", text(&o));
}
