//! The local AWS emulator: the `moto` server (pinned in the Makefile, installed into the
//! project's `.venv` by `make venv`), on a loopback port, and the SDK configuration that
//! points every client at it.
//!
//! moto serves DynamoDB (chat sessions, intent cache, conversations) and Step Functions;
//! S3 is the local S3 server on disk ([`super::s3`]): moto's S3 lived in memory, and its
//! recording of multi-MB parallel uploads was what hung and lost evidence (issue 18).
//!
//! moto keeps its state in memory. So that chat sessions survive `down` + `up` like the
//! database does, the server records every request to a file (moto's own recorder) and
//! `up` replays that file into a fresh server before anything else talks to it; `down
//! --wipe` removes the file with the rest. What is left to record is small JSON requests;
//! a `kill -9` of moto can still tear the line being written, so `up` drops lines that are
//! not whole JSON documents before replaying ([`repair_recording`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;

use super::LocalError;
use super::process;

/// Credentials the emulator accepts (it does not check them; SDKs need some to sign).
pub const ACCESS_KEY_ID: &str = "testing";
/// See [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "testing";

/// The `moto_server` entry point of a virtualenv, or how to install it.
pub fn program(venv: &Path) -> Result<PathBuf, LocalError> {
    let program = std::path::absolute(venv.join("bin").join("moto_server"))
        .map_err(LocalError::io("resolving", venv))?;
    if program.is_file() {
        Ok(program)
    } else {
        Err(LocalError::Missing {
            what: format!("the moto server ({})", program.display()),
            install:
                "create the virtualenv with `make venv` (installs the pinned moto), or pass --venv"
                    .into(),
        })
    }
}

/// Starts `moto_server` on `127.0.0.1:port`, output to `log`, recording every request to
/// `recording` when given.
pub fn start(
    program: &Path,
    port: u16,
    log: &Path,
    recording: Option<&Path>,
) -> Result<Child, LocalError> {
    let mut cmd = Command::new(program);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // As strict as S3: browsers get CORS answers only from a bucket's own CORS rules
        // (moto otherwise allows every origin on every request).
        .env("MOTO_DISABLE_GLOBAL_CORS", "true");
    if let Some(file) = recording {
        cmd.env("MOTO_ENABLE_RECORDING", "true")
            .env("MOTO_RECORDER_FILEPATH", file);
    }
    process::spawn(cmd, log)
}

/// Drops the lines of the recording at `path` that are not whole JSON documents (the
/// torn last line of a killed moto) and rewrites it atomically; returns how many were
/// dropped. A missing file is an empty recording.
pub fn repair_recording(path: &Path) -> Result<usize, LocalError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(LocalError::io("reading", path)(e)),
    };
    let mut kept = Vec::with_capacity(text.len());
    let mut dropped = 0;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if serde_json::from_slice::<serde_json::Value>(line).is_ok_and(|v| v.is_object()) {
            kept.extend_from_slice(line);
            kept.push(b'\n');
        } else {
            dropped += 1;
        }
    }
    if dropped > 0 {
        let tmp = path.with_extension("jsonl.tmp");
        std::fs::write(&tmp, &kept).map_err(LocalError::io("writing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(LocalError::io("writing", path))?;
    }
    Ok(dropped)
}

/// Replays the server's recording into it (the state of the previous run).
pub async fn replay(client: &reqwest::Client, endpoint: &str) -> Result<(), LocalError> {
    let url = format!("{endpoint}/moto-api/recorder/replay-recording");
    let resp = client
        .post(&url)
        .timeout(std::time::Duration::from_secs(300))
        .send()
        .await
        .map_err(|e| LocalError::Provision {
            resource: "the emulator's previous state".into(),
            reason: format!("{url}: {e}"),
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(LocalError::Provision {
            resource: "the emulator's previous state".into(),
            reason: format!("{url}: HTTP {}", resp.status()),
        })
    }
}

/// An SDK configuration for the emulator at `endpoint`.
pub fn sdk_config(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "chronoctl-local",
            )),
        )
        .build()
}

/// The environment that points a runtime process's SDK at the emulator.
pub fn env(endpoint: &str, region: &str) -> [(&'static str, String); 5] {
    [
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
        // Never read the developer's real profile or instance metadata in local mode.
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_recording_line_is_dropped_and_whole_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moto-recording.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        assert_eq!(repair_recording(&path).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(repair_recording(&path).unwrap(), 0);
        assert_eq!(repair_recording(&dir.path().join("none")).unwrap(), 0);
    }
}
