//! `chronoctl synth`: byte-identical reruns, `--check` catching hand edits, missing and
//! extra files, and the committed templates being fresh.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono_provisioner::cli::{ConfigArgs, SynthArgs};
use chrono_provisioner::synth::{StaleFile, Staleness, synth};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn args(out: &Path, check: bool) -> SynthArgs {
    SynthArgs {
        configs: ConfigArgs {
            configs: Vec::new(),
            customers: root().join("customers"),
        },
        out: out.to_owned(),
        check,
        dry_run: false,
    }
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for d in std::fs::read_dir(dir).unwrap() {
        let d = d.unwrap().path();
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            files.push((f.clone(), std::fs::read(&f).unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn synth_twice_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let first = synth(&args(tmp.path(), false)).unwrap();
    assert_eq!(
        first.written.len(),
        29,
        "4 configs x (6 templates + manifest) + initech-staging's deploy-access.yaml"
    );
    let before = snapshot(tmp.path());
    let second = synth(&args(tmp.path(), false)).unwrap();
    assert!(second.written.is_empty());
    assert_eq!(second.unchanged, 29);
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn check_names_edited_missing_and_extra_files() {
    let tmp = tempfile::tempdir().unwrap();
    synth(&args(tmp.path(), false)).unwrap();
    assert!(synth(&args(tmp.path(), true)).unwrap().stale.is_empty());

    let edited = tmp.path().join("acme-prod/data.yaml");
    let text = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(
        &edited,
        text.replace("StorageEncrypted: true", "StorageEncrypted: false"),
    )
    .unwrap();
    let missing = tmp.path().join("demo-local/manifest.json");
    std::fs::remove_file(&missing).unwrap();
    let extra = tmp.path().join("old-customer-prod/network.yaml");
    std::fs::create_dir_all(extra.parent().unwrap()).unwrap();
    std::fs::write(&extra, "x").unwrap();

    let report = synth(&args(tmp.path(), true)).unwrap();
    let mut stale = report.stale.clone();
    stale.sort();
    let mut want = vec![
        StaleFile {
            path: edited.clone(),
            why: Staleness::Differs,
        },
        StaleFile {
            path: missing.clone(),
            why: Staleness::Missing,
        },
        StaleFile {
            path: extra.clone(),
            why: Staleness::Extra,
        },
    ];
    want.sort();
    assert_eq!(stale, want);
    assert!(report.written.is_empty(), "--check writes nothing");
    assert!(!missing.exists());

    // A plain synth repairs everything and removes what no config produces.
    synth(&args(tmp.path(), false)).unwrap();
    assert!(synth(&args(tmp.path(), true)).unwrap().stale.is_empty());
    assert!(!extra.parent().unwrap().exists());
}

#[test]
fn chronoctl_synth_check_exits_non_zero_and_names_the_stale_file() {
    let tmp = tempfile::tempdir().unwrap();
    let chronoctl = env!("CARGO_BIN_EXE_chronoctl");
    let run = |extra: &[&str]| {
        Command::new(chronoctl)
            .current_dir(root())
            .args(["synth", "--out"])
            .arg(tmp.path())
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(run(&[]).status.success());
    let ok = run(&["--check"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let edited = tmp.path().join("acme-staging/api.yaml");
    let mut text = std::fs::read_to_string(&edited).unwrap();
    text.push_str("# hand edit\n");
    std::fs::write(&edited, text).unwrap();
    let stale = run(&["--check"]);
    assert_eq!(stale.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&stale.stdout);
    assert!(
        stdout.contains(&format!("stale: {} differs", edited.display())),
        "{stdout}"
    );
}

#[test]
fn committed_templates_are_fresh() {
    let report = synth(&args(&root().join("templates"), true)).unwrap();
    assert!(
        report.stale.is_empty(),
        "run `make templates`: {:?}",
        report.stale
    );
}

#[test]
fn bad_config_is_reported_with_its_location() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("broken.yaml");
    std::fs::write(
        &cfg,
        "customer: acme\naccount_id: \"111122223333\"\nregion: eu-west-1\nstage: prod\naurora:\n  max_acu: 0\n\
         auth:\n  jwt_issuer: https://x.example/\n  jwt_audience: x\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chronoctl"))
        .args(["synth", "--check", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:6:12: aurora.max_acu must be between 1 and 256 in steps of 0.5, got 0",
            cfg.display()
        )),
        "{stderr}"
    );
}

#[test]
fn check_command_passes_the_examples_and_speaks_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_chronoctl"))
        .current_dir(root())
        .args(["check", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["configs"], 4);
    assert_eq!(doc["violations"], serde_json::json!([]));
}

#[test]
fn dry_run_lists_changes_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chronoctl"))
        .current_dir(root())
        .args([
            "synth",
            "--dry-run",
            "--config",
            "customers/demo-local.yaml",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "would create {}",
            tmp.path().join("demo-local/compute.yaml").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("dry run: 7 file(s) would change, 0 unchanged"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
