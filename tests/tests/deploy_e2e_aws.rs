//! Builds the runtime, onboards a preview-stage customer config into a real AWS account
//! with the `chronoctl` binary (no `--artifacts`: onboard uses the build, pushes the image
//! and deploys it by digest; the smoke test answers from the real API Lambda), checks
//! status, then destroys it. Run by `make e2e-aws` only (this target has `test = false`):
//! it needs `CHRONO_E2E_AWS=1`, credentials for the account from any standard source, and
//! `CHRONO_E2E_CONFIG` naming a `stage: preview` config whose account id is that
//! account's. The config's architecture must be one this machine builds (`x86_64` on
//! x86-64 Linux).

use std::path::PathBuf;
use std::process::Command;

fn chronoctl(args: &[&str]) -> (bool, String, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "run",
            "--quiet",
            "-p",
            "chrono-provisioner",
            "--bin",
            "chronoctl",
            "--",
        ])
        .args(args)
        .output()
        .expect("cargo runs chronoctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn onboard_then_destroy_a_preview_account() {
    assert_eq!(
        std::env::var("CHRONO_E2E_AWS").as_deref(),
        Ok("1"),
        "run through `make e2e-aws` with CHRONO_E2E_AWS=1"
    );
    let config =
        std::env::var("CHRONO_E2E_CONFIG").expect("CHRONO_E2E_CONFIG names a preview config");
    let text = std::fs::read_to_string(&config).expect("the config is readable");
    assert!(
        text.contains("stage: preview"),
        "{config} must be a preview-stage config"
    );

    let (built, bout, berr) = chronoctl(&["build", "--config", &config, "--output", "json"]);
    assert!(built, "build failed:\n{bout}\n{berr}");
    assert!(
        bout.contains("\"digest\":\"sha256:"),
        "no image built:\n{bout}"
    );

    let (ok, out, err) = chronoctl(&["onboard", "--config", &config, "--output", "json"]);
    let onboarded = ok && out.contains("\"api_url\"") && out.contains("\"smoke\"");
    // Always clean up, even when onboarding failed half-way.
    let (status_ok, status, _) = chronoctl(&["status", "--config", &config, "--output", "json"]);
    let (destroyed, dout, derr) =
        chronoctl(&["destroy", "--config", &config, "--yes", "--output", "json"]);
    assert!(onboarded, "onboard failed:\n{out}\n{err}");
    assert!(
        status_ok && status.contains("\"in_sync\""),
        "status after onboard:\n{status}"
    );
    assert!(destroyed, "destroy failed:\n{dout}\n{derr}");
    let (_, after, _) = chronoctl(&["status", "--config", &config, "--output", "json"]);
    assert!(
        !after.contains("_COMPLETE\""),
        "stacks left after destroy:\n{after}"
    );
}
