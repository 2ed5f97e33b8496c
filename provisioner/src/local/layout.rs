//! Where the local platform keeps its files, and the state file recording what `up`
//! started (pids, ports, endpoints). The state file is the only memory between commands.
//!
//! ```text
//! <dir>/pg/            PostgreSQL data directory (owned by `postgres` when run as root)
//! <dir>/keys/          signing-key.pem (private, 0600) and jwks.json (public)
//! <dir>/logs/<c>.log   one log per component
//! <dir>/s3/            the local S3 server's buckets and objects (see `s3::store`)
//! <dir>/moto-recording.jsonl  requests to the emulator (DynamoDB, Step Functions), replayed by `up`
//! <dir>/app-config.json  the web app's config.json, served by the front door
//! <dir>/state.json     components, pids, ports
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LocalError;

/// Paths under the local directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root` (made absolute, so processes may run from anywhere).
    pub fn new(root: &Path) -> Self {
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        Layout { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// PostgreSQL data directory.
    pub fn pg_data(&self) -> PathBuf {
        self.root.join("pg")
    }

    /// Key directory.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The private signing key (PKCS#8 PEM).
    pub fn signing_key(&self) -> PathBuf {
        self.keys().join("signing-key.pem")
    }

    /// The public key set the API verifies tokens with.
    pub fn jwks(&self) -> PathBuf {
        self.keys().join("jwks.json")
    }

    /// Log directory.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Log file of a component.
    pub fn log(&self, component: &str) -> PathBuf {
        self.logs().join(format!("{component}.log"))
    }

    /// The local S3 server's storage.
    pub fn s3_data(&self) -> PathBuf {
        self.root.join("s3")
    }

    /// Every request the emulator received (replayed by the next `up`).
    pub fn moto_recording(&self) -> PathBuf {
        self.root.join("moto-recording.jsonl")
    }

    /// The web app's `config.json`, served by the front door.
    pub fn app_config(&self) -> PathBuf {
        self.root.join("app-config.json")
    }

    /// The state file.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// Creates the directories (world-traversable, so the `postgres` user reaches `pg/`).
    pub fn create(&self) -> Result<(), LocalError> {
        use std::os::unix::fs::PermissionsExt;
        for dir in [self.root.clone(), self.logs(), self.keys()] {
            std::fs::create_dir_all(&dir).map_err(LocalError::io("creating", &dir))?;
        }
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o755))
            .map_err(LocalError::io("setting permissions of", &self.root))?;
        std::fs::set_permissions(self.keys(), std::fs::Permissions::from_mode(0o700))
            .map_err(LocalError::io("setting permissions of", self.keys()))
    }

    /// The recorded state; `None` when nothing was ever started here.
    pub fn load(&self) -> Result<Option<State>, LocalError> {
        let path = self.state_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| LocalError::State {
                    path,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LocalError::io("reading", path)(e)),
        }
    }

    /// Writes the state atomically (temp file + rename).
    pub fn save(&self, state: &State) -> Result<(), LocalError> {
        let path = self.state_file();
        let tmp = path.with_extension("json.tmp");
        let mut text = serde_json::to_string_pretty(state).map_err(|e| LocalError::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        std::fs::write(&tmp, text).map_err(LocalError::io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(LocalError::io("writing", &path))
    }
}

/// What `up` recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The config the emulator was provisioned from.
    pub config: PathBuf,
    /// Ports chosen on the first `up`, kept so endpoints stay stable across restarts.
    pub ports: BTreeMap<String, u16>,
    /// Running (or last started) components by name.
    pub components: BTreeMap<String, Component>,
    /// Environment the runtime processes were given (no secrets: trust auth on loopback).
    pub env: BTreeMap<String, String>,
}

/// One process `up` started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Process id (`None` once stopped).
    pub pid: Option<u32>,
    /// The program; the pid only counts as ours while its command line names it.
    pub program: PathBuf,
    /// Base URL (`http://127.0.0.1:port`) or connection string.
    pub endpoint: String,
    /// Log file.
    pub log: PathBuf,
    /// Modification time of the program when it was started (seconds since the epoch):
    /// a rebuilt binary makes `up` restart the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_modified: Option<u64>,
}

/// Modification time of `path` in seconds since the epoch.
pub fn modified(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}
