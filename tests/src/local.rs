//! A private `chronoctl local` platform in a temporary directory, for the end-to-end and
//! soak tests: run `chronoctl local …` against it, read its state file, and take it down
//! (`down --wipe`) when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::bin_dir;

/// The repository's root (where `chronoctl local` finds `customers/` and the migrations).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A local platform rooted in a temporary directory.
#[derive(Debug)]
pub struct Local {
    dir: tempfile::TempDir,
}

impl Local {
    /// A new, empty directory (`prefix` names it); nothing is started yet.
    pub fn new(prefix: &str) -> Local {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        // The `postgres` user must reach the data directory inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Local { dir }
    }

    /// Where a built web app may be put; served (`CHRONO_APP_DIR`) when it exists.
    pub fn app_dir(&self) -> PathBuf {
        self.dir.path().join("app-dist")
    }

    /// The platform's directory (`chronoctl local --dir`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("local")
    }

    /// Runs `chronoctl local --dir <root> <args>` with this build's binaries: exit code,
    /// stdout, stderr.
    pub fn chronoctl(&self, args: &[&str]) -> (i32, String, String) {
        let chronoctl = bin_dir().join("chronoctl");
        assert!(
            chronoctl.is_file(),
            "build the workspace first ({} missing)",
            chronoctl.display()
        );
        let mut command = Command::new(chronoctl);
        command
            .current_dir(repo())
            .args(["local", "--dir"])
            .arg(self.root())
            .args(args)
            .env_remove("DATABASE_URL")
            .env("CHRONO_BIN_DIR", bin_dir());
        if self.app_dir().is_dir() {
            command.env("CHRONO_APP_DIR", self.app_dir());
        }
        let out = command.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// [`Local::chronoctl`], which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.chronoctl(args);
        assert_eq!(code, 0, "chronoctl local {args:?} failed:\n{out}\n{err}");
        out
    }

    /// The state file (`state.json`).
    pub fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.root().join("state.json")).unwrap())
            .unwrap()
    }

    /// Every running component and its process id.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.state()["components"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(k, v)| v["pid"].as_u64().map(|p| (k.clone(), p as u32)))
            .collect()
    }

    /// The process id of component `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.state()["components"][name]["pid"]
            .as_u64()
            .map(|p| p as u32)
    }

    /// A variable of the environment the platform gives its processes.
    pub fn env(&self, name: &str) -> Option<String> {
        self.state()["env"][name].as_str().map(str::to_owned)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if self.root().exists() {
            let _ = self.chronoctl(&["down", "--wipe"]);
        }
    }
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next())
        })
        .is_some_and(|st| !matches!(st, Some('Z' | 'X') | None))
}
