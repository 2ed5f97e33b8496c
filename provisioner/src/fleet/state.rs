//! The state file of a fleet run: per account (config file), what the last run did to it,
//! so that `deploy --all --resume` redoes only what did not succeed.
//!
//! Pure data and decisions; the runner ([`super`]) writes it after every change, atomically
//! (a temporary file renamed over the old one), so a killed fleet leaves a readable file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Default location of the state file (the project's local working directory).
pub const DEFAULT_STATE: &str = ".chrono/fleet-state.json";

/// Version of the file format.
pub const VERSION: u32 = 1;

/// Where an account stands in a fleet run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not started yet (waiting for a slot).
    Pending,
    /// Its deploy runs (a fleet killed now leaves this: redone on resume).
    Running,
    /// Deployed (exit 0).
    Succeeded,
    /// Failed or refused (the detail says why).
    Failed,
    /// Stopped by SIGINT/SIGTERM (its lock released, change sets deleted).
    Interrupted,
    /// Not run now: succeeded in the run this one resumes.
    Resumed,
}

impl Status {
    /// Label of the summary table.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Resumed => "done before",
        }
    }

    /// Whether the account is done (nothing to redo).
    pub fn is_done(self) -> bool {
        matches!(self, Self::Succeeded | Self::Resumed)
    }
}

/// One account of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// The config file, as given.
    pub config: PathBuf,
    /// `<customer>-<stage>` (empty when the config did not load).
    pub name: String,
    /// The config's account id (empty when it did not load).
    pub account_id: String,
    /// The config's region.
    pub region: String,
    /// SHA-256 of the config file's bytes when it ran: a changed config is redone.
    pub config_sha256: String,
    /// Where it stands.
    pub status: Status,
    /// Exit code of its deploy (when it ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Wall time of its deploy.
    pub elapsed_ms: u64,
    /// The root cause on failure, else a one-line summary.
    pub detail: String,
    /// Whether it ran with `--dry-run` (a dry run never counts as deployed).
    pub dry_run: bool,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FleetState {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Unix seconds when the run (or the run it resumes) started.
    pub started_unix: u64,
    /// Per account, in the order given.
    pub accounts: Vec<Entry>,
}

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("fleet state {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The file is not a fleet state.
    #[error(
        "fleet state {path} is not readable as a fleet state ({reason}); delete it and run without --resume"
    )]
    Format {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
}

/// SHA-256 (hex) of a file's bytes; `None` when unreadable.
pub fn file_sha256(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| hex::encode(Sha256::digest(&b)))
}

impl FleetState {
    /// A new state: every account pending.
    pub fn new(accounts: Vec<Entry>) -> Self {
        Self {
            version: VERSION,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            accounts,
        }
    }

    /// Reads a state file.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let text = std::fs::read_to_string(path).map_err(|e| StateError::Io {
            path: path.display().to_string(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file: nothing to resume (run without --resume first)".to_owned()
            } else {
                e.to_string()
            },
        })?;
        let s: Self = serde_json::from_str(&text).map_err(|e| StateError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if s.version != VERSION {
            return Err(StateError::Format {
                path: path.display().to_string(),
                reason: format!("version {} (this chronoctl writes {VERSION})", s.version),
            });
        }
        Ok(s)
    }

    /// Writes the file atomically (temporary file + rename), creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |e: std::io::Error| StateError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let text = serde_json::to_string_pretty(self).map_err(|e| StateError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Marks what a resumed run need not redo: every account that succeeded in `previous`
    /// with the same config bytes and the same mode (a dry run never counts as deployed).
    /// Accounts new to the selection, changed, failed, interrupted or never started run.
    pub fn resume_from(&mut self, previous: &FleetState) {
        self.started_unix = previous.started_unix;
        for e in &mut self.accounts {
            let done = previous.accounts.iter().any(|p| {
                p.config == e.config
                    && p.status.is_done()
                    && !p.config_sha256.is_empty()
                    && p.config_sha256 == e.config_sha256
                    && p.dry_run == e.dry_run
            });
            if done {
                e.status = Status::Resumed;
                e.detail = "succeeded in the run this one resumes; not redone".to_owned();
            }
        }
    }

    /// Counts per status, for the summary line.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for e in &self.accounts {
            *m.entry(e.status.label()).or_default() += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(config: &str, sha: &str, status: Status, dry_run: bool) -> Entry {
        Entry {
            config: config.into(),
            name: String::new(),
            account_id: String::new(),
            region: String::new(),
            config_sha256: sha.into(),
            status,
            exit_code: None,
            elapsed_ms: 0,
            detail: String::new(),
            dry_run,
        }
    }

    #[test]
    fn resume_redoes_only_what_did_not_succeed_with_the_same_config() {
        let previous = FleetState::new(vec![
            entry("a.yaml", "1", Status::Succeeded, false),
            entry("b.yaml", "2", Status::Failed, false),
            entry("c.yaml", "3", Status::Succeeded, false),
            entry("d.yaml", "4", Status::Running, false),
            entry("e.yaml", "5", Status::Succeeded, true),
            entry("f.yaml", "6", Status::Resumed, false),
            entry("g.yaml", "7", Status::Interrupted, false),
        ]);
        let mut now = FleetState::new(vec![
            entry("a.yaml", "1", Status::Pending, false),
            entry("b.yaml", "2", Status::Pending, false),
            entry("c.yaml", "changed", Status::Pending, false),
            entry("d.yaml", "4", Status::Pending, false),
            entry("e.yaml", "5", Status::Pending, false),
            entry("f.yaml", "6", Status::Pending, false),
            entry("g.yaml", "7", Status::Pending, false),
            entry("new.yaml", "8", Status::Pending, false),
        ]);
        now.resume_from(&previous);
        let redo: Vec<&str> = now
            .accounts
            .iter()
            .filter(|e| e.status == Status::Pending)
            .map(|e| e.config.to_str().unwrap())
            .collect();
        assert_eq!(
            redo,
            ["b.yaml", "c.yaml", "d.yaml", "e.yaml", "g.yaml", "new.yaml"]
        );
        assert_eq!(now.accounts[0].status, Status::Resumed);
        assert_eq!(now.accounts[5].status, Status::Resumed);
        assert_eq!(now.started_unix, previous.started_unix);
    }

    #[test]
    fn an_unreadable_config_never_counts_as_done() {
        let previous = FleetState::new(vec![entry("a.yaml", "", Status::Succeeded, false)]);
        let mut now = FleetState::new(vec![entry("a.yaml", "", Status::Pending, false)]);
        now.resume_from(&previous);
        assert_eq!(now.accounts[0].status, Status::Pending);
    }

    #[test]
    fn state_round_trips_and_a_foreign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let s = FleetState::new(vec![entry("a.yaml", "1", Status::Failed, false)]);
        s.save(&path).unwrap();
        assert_eq!(FleetState::load(&path).unwrap(), s);
        std::fs::write(&path, "{\"not\": 1}").unwrap();
        let e = FleetState::load(&path).unwrap_err().to_string();
        assert!(e.contains("not readable as a fleet state"), "{e}");
        let e = FleetState::load(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nothing to resume"), "{e}");
    }
}
