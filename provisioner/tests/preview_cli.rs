//! `chronoctl preview` and `chronoctl cost` as a user runs them: `preview list --output json`,
//! `preview gc --dry-run` and `preview down` of an unknown name against the local AWS
//! emulator (exit codes, messages), and the offline `cost` estimate with its price table.

use std::process::{Command, Output};

use chrono_tests::moto::Moto;

fn chronoctl(endpoint: Option<&str>, args: &[&str]) -> Output {
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
fn preview_list_gc_and_down_from_the_command_line() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    moto.reset().unwrap();
    let ep = moto.endpoint();

    let o = chronoctl(Some(&ep), &["preview", "list", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]));

    let o = chronoctl(Some(&ep), &["preview", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no previews"), "{}", text(&o));

    let o = chronoctl(Some(&ep), &["preview", "gc", "--dry-run", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["previews"], serde_json::json!([]));

    let o = chronoctl(Some(&ep), &["preview", "down", "Feature/Nope"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no preview named feature-nope"),
        "{}",
        text(&o)
    );
}

#[test]
fn cost_prints_the_breakdown_and_the_prices_it_used() {
    let o = chronoctl(None, &["cost", "customers/acme-prod.yaml", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["region"], "eu-west-1");
    assert_eq!(v["prices"]["nat_gateway_hour"], 0.048);
    assert_eq!(v["prices_read"], "2026-12-02");
    assert!(v["total_monthly"].as_f64().unwrap() > 500.0, "{v}");

    let o = chronoctl(None, &["cost", "customers/acme-staging.yaml", "--preview"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("idle cost estimate of cost-estimate-preview"), "{t}");
    assert!(t.contains("total, idle"), "{t}");
    assert!(!t.contains("NatGateway"), "{t}");

    let o = chronoctl(None, &["cost", "customers/missing.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("customers/missing.yaml"), "{}", text(&o));
}
