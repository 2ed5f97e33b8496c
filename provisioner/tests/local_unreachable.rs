//! Regression: a checkout (or `--dir`) under a `0700` directory, run as root. PostgreSQL
//! runs as the `postgres` OS user, which cannot enter it; `local up` must say so plainly,
//! and leave nothing running behind.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn up_explains_a_data_directory_the_postgres_user_cannot_reach() {
    // Only root hands the cluster to the `postgres` user; CI runs as root.
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !as_root {
        eprintln!("not root: the server runs as this user, nothing to hand over");
        return;
    }
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = private.path().join("local");
    let chronoctl = env!("CARGO_BIN_EXE_chronoctl");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(chronoctl)
        .arg("local")
        .arg("--dir")
        .arg(&dir)
        .arg("up")
        .current_dir(&repo)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Clean up whatever started before the failure (moto), whatever the outcome.
    let _ = Command::new(chronoctl)
        .arg("local")
        .arg("--dir")
        .arg(&dir)
        .args(["down", "--wipe"])
        .current_dir(&repo)
        .output();
    assert!(!out.status.success(), "up must fail: {err}");
    assert!(
        err.contains("`postgres` OS user, which cannot reach")
            && err.contains(&dir.join("pg").display().to_string()),
        "{err}"
    );
}
