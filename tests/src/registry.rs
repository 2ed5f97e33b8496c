//! A real OCI registry for tests: Debian's `docker-registry` (the CNCF distribution
//! registry) on a free 127.0.0.1 port, with a config file of ours — filesystem storage in a
//! temporary directory, HTTP basic authentication from an htpasswd file (bcrypt) holding
//! the credentials of moto's ECR tokens — killed
//! when dropped. `make test` installs the package (`make registry-bin`).
//!
//! Also the standard clients the tests check images with: `skopeo` (pull by digest) and
//! `umoci` (unpack to a root file system).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The registry server binary.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// Errors starting the registry or running a client.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A program is missing.
    #[error(
        "{0} not found; run `make registry-bin` (apt-get install docker-registry skopeo umoci)"
    )]
    NotInstalled(String),
    /// It could not be started or did not answer.
    #[error("{0}")]
    Start(String),
}

fn free_port() -> Result<u16, RegistryError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| RegistryError::Start(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| RegistryError::Start(e.to_string()))
}

/// The ECR user of a registry token (`AWS:<password>`).
pub const ECR_USER: &str = "AWS";
/// The password of moto's ECR tokens for its default account: moto derives it from the
/// account id (`<account>-auth-token`).
pub const MOTO_ECR_PASSWORD: &str = "123456789012-auth-token";
/// A bcrypt hash (`$2b$`, the registry's htpasswd format) of [`MOTO_ECR_PASSWORD`], made
/// once with the system's `crypt(3)` (libxcrypt).
const MOTO_ECR_PASSWORD_BCRYPT: &str =
    "$2b$04$g7YWY6YwOnfZ7ylnOKi3pewiGxw1SkBBV4u2CCgSSci.R287pFEiy";

impl Registry {
    /// Starts a registry that accepts the credentials of moto's ECR tokens
    /// ([`ECR_USER`] / [`MOTO_ECR_PASSWORD`]) and waits until it answers (60 s at most).
    pub fn start() -> Result<Self, RegistryError> {
        if !Path::new(REGISTRY_BIN).exists() {
            return Err(RegistryError::NotInstalled(REGISTRY_BIN.into()));
        }
        let dir = tempfile::Builder::new()
            .prefix("chrono-registry")
            .tempdir()
            .map_err(|e| RegistryError::Start(e.to_string()))?;
        let port = free_port()?;
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(
            &htpasswd,
            format!("{ECR_USER}:{MOTO_ECR_PASSWORD_BCRYPT}\n"),
        )
        .map_err(|e| RegistryError::Start(e.to_string()))?;
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: chrono-test\n    path: {}\n",
                dir.path().join("data").display(),
                htpasswd.display()
            ),
        )
        .map_err(|e| RegistryError::Start(e.to_string()))?;
        let log = std::fs::File::create(dir.path().join("registry.log"))
            .map_err(|e| RegistryError::Start(e.to_string()))?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| RegistryError::Start(format!("{REGISTRY_BIN}: {e}")))?;
        let mut reg = Self { child, port, dir };
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(reg);
            }
            if let Ok(Some(status)) = reg.child.try_wait() {
                return Err(RegistryError::Start(format!(
                    "docker-registry exited early with {status}: {}",
                    reg.log()
                )));
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(RegistryError::Start(
                    "docker-registry did not answer within 60s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>` (for image references).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where it stores blobs.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client program; returns stdout, or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, RegistryError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RegistryError::NotInstalled(program.into()),
            _ => RegistryError::Start(format!("{program}: {e}")),
        })?;
    if !out.status.success() {
        return Err(RegistryError::Start(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
