//! `chronoctl` exits with the code of README's scheme (0 ok, 1 failed, 2 bad input, 130
//! interrupted) for every command, and prints the reason once: `chronoctl: …` on stderr,
//! or one `{"event":"error"}` line on stdout with `--output json`. No AWS call is made:
//! every case fails on its input first.

use std::process::Output;

mod cli_support;

fn chronoctl(args: &[&str]) -> Output {
    cli_support::command(args).output().expect("chronoctl runs")
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The JSON error events on stdout.
fn error_events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "error")
        .collect()
}

#[test]
fn bad_input_of_every_command_kind_exits_2_with_one_message() {
    let missing = "customers/no-such-customer.yaml";
    let cases: [&[&str]; 4] = [
        &["synth", "--config", missing, "--dry-run"],
        &["check", "--config", missing],
        &["build", "--config", missing],
        &["onboard", "--config", missing, "--config", missing],
    ];
    for args in cases {
        let o = chronoctl(args);
        let (stdout, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        assert_eq!(
            stderr.matches("chronoctl: ").count(),
            1,
            "{args:?}: one message on stderr: {stderr}"
        );
        assert!(error_events(&stdout).is_empty(), "{args:?}: {stdout}");
    }
}

#[test]
fn with_output_json_the_reason_is_one_error_event_on_stdout() {
    let missing = "customers/no-such-customer.yaml";
    let cases: [&[&str]; 3] = [
        &[
            "synth",
            "--config",
            missing,
            "--dry-run",
            "--output",
            "json",
        ],
        &["check", "--config", missing, "--output", "json"],
        &[
            "onboard", "--config", missing, "--config", missing, "--output", "json",
        ],
    ];
    for args in cases {
        let o = chronoctl(args);
        let (stdout, stderr) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        let events = error_events(&stdout);
        assert_eq!(events.len(), 1, "{args:?}: {stdout}");
        assert!(
            events[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{args:?}: {stdout}"
        );
        assert!(!stderr.contains("chronoctl: "), "{args:?}: {stderr}");
    }
}

#[test]
fn a_usage_error_names_the_fix() {
    let o = chronoctl(&[
        "onboard",
        "--config",
        "customers/demo-local.yaml",
        "--plan",
        "plan.json",
    ]);
    let (_, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("onboard takes one account and no plan"),
        "{stderr}"
    );
}
