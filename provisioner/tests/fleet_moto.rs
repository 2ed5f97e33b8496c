//! A fleet deploy (`chronoctl deploy --all DIR`) of three accounts against the local AWS
//! emulator (moto over HTTP), one of which fails (its config names another account: the
//! account guard refuses it before any change): the two others are deployed completely,
//! the failure is reported per account (JSON and the state file) and leaves nothing behind;
//! then `--resume`, with the config fixed, deploys only the failed account.
//!
//! Each account deploys `--stack network` (bootstrap + network): moto cannot give the web
//! stack's `AppOrigin` output (`Fn::Sub` of a CloudFront distribution's `DomainName`), so
//! the whole demo plan does not complete on the emulator.

mod cli_support;

use std::path::Path;

use chrono_tests::moto::Moto;
use cli_support::{cfn, chronoctl, demo_config, text};

/// demo-local.yaml as customer `customer`, in `account`.
fn write_config(dir: &Path, customer: &str, account: &str) {
    std::fs::write(
        dir.join(format!("{customer}-local.yaml")),
        demo_config(customer, account),
    )
    .unwrap();
}

/// Live stacks by name, with the number of events of each (a redeploy adds events).
async fn stacks(c: &aws_sdk_cloudformation::Client) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let list = c.describe_stacks().send().await.unwrap();
    for s in list.stacks() {
        let name = s.stack_name().unwrap_or_default().to_owned();
        let events = c
            .describe_stack_events()
            .stack_name(&name)
            .send()
            .await
            .unwrap()
            .stack_events()
            .len();
        out.push((
            name,
            s.stack_status().map(|s| s.as_str().to_owned()).unwrap(),
            events,
        ));
    }
    out.sort();
    out
}

fn account<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no account {name} in {summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_of_three_with_one_failure_then_resume_redoes_only_the_failed_one() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    moto.reset().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("customers");
    std::fs::create_dir(&configs).unwrap();
    write_config(&configs, "fleeta", "123456789012");
    write_config(&configs, "fleetb", "111122223333"); // not moto's account: refused
    write_config(&configs, "fleetc", "123456789012");
    let state = dir.path().join("fleet-state.json");
    let all = configs.to_str().unwrap();
    let state_arg = state.to_str().unwrap();

    let o = chronoctl(
        &moto,
        &[
            "deploy",
            "--all",
            all,
            "--stack",
            "network",
            "--parallel",
            "2",
            "--state",
            state_arg,
            "--output",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["event"], "fleet_summary", "{stdout}");
    assert_eq!(summary["exit_code"], 1);
    let a = account(&summary, "fleeta-local");
    assert_eq!(a["status"], "succeeded", "{a}");
    assert_eq!(a["exit_code"], 0);
    assert!(
        a["detail"]
            .as_str()
            .unwrap()
            .contains("2 stacks: 2 created"),
        "{a}"
    );
    assert_eq!(account(&summary, "fleetc-local")["status"], "succeeded");
    let b = account(&summary, "fleetb-local");
    assert_eq!(b["status"], "failed", "{b}");
    assert_eq!(b["exit_code"], 1, "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("111122223333"),
        "the failure names the account: {b}"
    );
    // one JSON line per finished account before the summary
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("\"event\":\"account\""))
            .count(),
        3,
        "{stdout}"
    );
    // the state file says the same
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(account(&recorded, "fleetb-local")["status"], "failed");
    assert_eq!(account(&recorded, "fleeta-local")["status"], "succeeded");

    let c = cfn(&moto).await;
    let before = stacks(&c).await;
    let names: Vec<&str> = before.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.iter().all(|n| !n.contains("fleetb")), "{names:?}");
    assert!(
        before.iter().all(|s| s.1 == "CREATE_COMPLETE"),
        "{before:?}"
    );
    for who in ["fleeta", "fleetc"] {
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with(&format!("chrono-{who}-local-")))
                .count(),
            2,
            "{names:?}"
        );
    }

    // fix the failed account's config; resume: only it is deployed
    write_config(&configs, "fleetb", "123456789012");
    let o = chronoctl(
        &moto,
        &[
            "deploy", "--all", all, "--stack", "network", "--resume", "--state", state_arg,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}: {out}"))
            .to_owned()
    };
    assert!(row("fleeta-local").contains("done before"), "{out}");
    assert!(row("fleetc-local").contains("done before"), "{out}");
    assert!(row("fleetb-local").contains("succeeded"), "{out}");
    assert!(out.contains("fleet: 3 accounts"), "{out}");
    // not a terminal: a plain line per change of an account on stderr
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("fleetb-local: starting"), "{err}");
    assert!(err.contains("fleetb-local: succeeded"), "{err}");
    assert!(err.contains("fleeta-local: done before"), "{err}");
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(account(&recorded, "fleetb-local")["status"], "succeeded");
    assert_eq!(account(&recorded, "fleeta-local")["status"], "resumed");
    assert!(account(&recorded, "fleeta-local")["exit_code"].is_null());

    let after = stacks(&c).await;
    assert_eq!(after.len(), 6, "{after:?}");
    for s in &before {
        assert!(
            after.contains(s),
            "{} was touched by the resumed run: {after:?}",
            s.0
        );
    }
    assert_eq!(
        after
            .iter()
            .filter(|s| s.0.starts_with("chrono-fleetb-local-") && s.1 == "CREATE_COMPLETE")
            .count(),
        2,
        "{after:?}"
    );

    // resuming a finished fleet redoes nothing
    let o = chronoctl(
        &moto,
        &[
            "deploy", "--all", all, "--stack", "network", "--resume", "--state", state_arg,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("fleet") && l.contains("  done before  "))
            .count(),
        3,
        "{}",
        text(&o)
    );
    assert_eq!(stacks(&c).await, after);
}

#[test]
fn fleet_refusals_name_the_flag() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    let o = chronoctl(
        &moto,
        &[
            "deploy",
            "--all",
            "--require-approval",
            "--state",
            "/nonexistent/state.json",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--require-approval"), "{}", text(&o));
    let o = chronoctl(
        &moto,
        &[
            "deploy",
            "--all",
            "--resume",
            "--state",
            "/nonexistent/state.json",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("nothing to resume"), "{}", text(&o));
    let o = chronoctl(
        &moto,
        &[
            "status",
            "--config",
            "customers/demo-local.yaml",
            "customers/acme-prod.yaml",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("takes one --config"), "{}", text(&o));
}
