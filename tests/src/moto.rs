//! The local AWS emulator for tests: `moto_server` from the project's `.venv` (created by
//! `make venv`) on a free 127.0.0.1 port, ready when it answers, reset with
//! `POST /moto-api/reset`, killed when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
}

/// Errors starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// `.venv/bin/moto_server` is missing.
    #[error("{0} not found; run `make venv` first")]
    NotInstalled(String),
    /// The process could not be started or did not answer.
    #[error("moto_server: {0}")]
    Start(String),
}

/// Path of `moto_server` in the workspace's `.venv`.
pub fn moto_server_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".venv")
        .join("bin")
        .join("moto_server")
}

fn free_port() -> Result<u16, MotoError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| MotoError::Start(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| MotoError::Start(e.to_string()))
}

/// Sends one HTTP/1.0 request to 127.0.0.1:`port`, returns the status code.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    http_with(port, method, path, "")
}

/// [`http`] with a body.
fn http_with(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let len = body.len();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {len}\r\n\r\n{body}"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {head}")))
}

impl Moto {
    /// Starts moto on a free port and waits until it answers (at most 60 s: a loaded CI
    /// machine starting several at once).
    pub fn start() -> Result<Self, MotoError> {
        let bin = moto_server_path();
        if !bin.exists() {
            return Err(MotoError::NotInstalled(bin.display().to_string()));
        }
        let port = free_port()?;
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| MotoError::Start(e.to_string()))?;
        let mut moto = Self { child, port };
        let start = Instant::now();
        loop {
            if http(port, "GET", "/moto-api/").is_ok() {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(MotoError::Start(format!("exited early with {status}")));
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(MotoError::Start("did not answer within 60s".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An SDK configuration for this server in `region`, with moto's test credentials.
    pub async fn sdk_config(&self, region: &'static str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .endpoint_url(self.endpoint())
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    /// Forgets every resource (`POST /moto-api/reset`).
    pub fn reset(&self) -> Result<(), MotoError> {
        match http(self.port, "POST", "/moto-api/reset") {
            Ok(200) => Ok(()),
            Ok(code) => Err(MotoError::Start(format!("reset answered {code}"))),
            Err(e) => Err(MotoError::Start(format!("reset: {e}"))),
        }
    }
}

impl Moto {
    /// Turns IAM enforcement on from the next request: every request must then be signed
    /// by an IAM user's (or assumed role's) access key and is authorized against that
    /// principal's policies. moto's server counts unauthenticated requests up to
    /// `INITIAL_NO_AUTH_ACTION_COUNT` (default: unbounded); `POST /moto-api/reset-auth`
    /// with a count sets it and restarts the count, so `0` enforces from now on (moto
    /// 5.2.5 `moto_api/_internal/responses.py` `reset_auth_response`,
    /// `core/authorization.py`; <https://docs.getmoto.org/en/latest/docs/iam.html>).
    pub fn enforce_iam(&self) -> Result<(), MotoError> {
        match http_with(self.port, "POST", "/moto-api/reset-auth", "0") {
            Ok(200) => Ok(()),
            Ok(code) => Err(MotoError::Start(format!("reset-auth answered {code}"))),
            Err(e) => Err(MotoError::Start(format!("reset-auth: {e}"))),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
