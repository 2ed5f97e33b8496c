//! The runtime's handlers as local processes: what runs (binary, arguments, health path)
//! and the environment each gets, which is the compute stack's [`RUNTIME_ENV`] filled for
//! local mode (plus `DATABASE_URL` of the Aurora-like master user, the local issuer as
//! `CHRONO_JWT_ISSUER` with its `CHRONO_JWKS_URL`, the emulator's `AWS_*`, and
//! `AWS_ENDPOINT_URL_S3` of the local S3 server). Locally the
//! issuer is always the local one (the config's `auth.jwt_issuer` is for AWS).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono_contract::env as vars;
use chrono_stacks::compute::{API_BINARY, FILTER_AI_BINARY, FILTER_AI_HEALTH_PATH, RUNTIME_ENV};
use chrono_stacks::config::Config;

use super::keys::{CASES_CLAIM, ROLES_CLAIM};
use super::provision::Provisioned;

/// The SDK's service-specific endpoint variable of S3
/// (<https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>).
pub const S3_ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_S3";

/// A runtime process of local mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeProcess {
    /// Component name (state file, logs, `status`).
    pub name: &'static str,
    /// Binary in the runtime's build.
    pub binary: &'static str,
    /// Health check path (HTTP 200 when ready).
    pub health_path: &'static str,
    /// What it stands in for in AWS.
    pub stands_in_for: &'static str,
}

/// The API server.
pub const API: RuntimeProcess = RuntimeProcess {
    name: "api",
    binary: API_BINARY,
    health_path: "/healthz",
    stands_in_for: "API Gateway HTTP API + chrono-api Lambda; the pipeline worker runs in this process",
};

/// The AI filter server (HTTP chat + WebSocket).
pub const FILTER_AI: RuntimeProcess = RuntimeProcess {
    name: "filter-ai",
    binary: FILTER_AI_BINARY,
    health_path: FILTER_AI_HEALTH_PATH,
    stands_in_for: "filter-ai ECS service + AI-chat Lambda + WebSocket API",
};

/// Every runtime process, in start order.
pub const PROCESSES: [RuntimeProcess; 2] = [API, FILTER_AI];

impl RuntimeProcess {
    /// Command-line arguments to serve on `port`.
    pub fn args(&self, port: u16) -> Vec<String> {
        let addr = format!("127.0.0.1:{port}");
        match self.name {
            "api" => vec!["serve".into(), "--addr".into(), addr],
            _ => vec!["--addr".into(), addr],
        }
    }

    /// The binary in `bin_dir`, if it was built.
    pub fn program(&self, bin_dir: &Path) -> Option<PathBuf> {
        let p = bin_dir.join(self.binary);
        p.is_file().then_some(p)
    }
}

/// Runtime variables local mode deliberately leaves unset, and why.
pub const NOT_SET_LOCALLY: [(&str, &str); 7] = [
    (vars::DB_HOST, "DATABASE_URL is set and wins"),
    (vars::DB_PORT, "DATABASE_URL is set and wins"),
    (vars::DB_NAME, "DATABASE_URL is set and wins"),
    (
        vars::DB_SECRET_ARN,
        "no Secrets Manager secret: trust auth on loopback",
    ),
    (
        vars::GUARD_MODEL_ID,
        "CHRONO_AI_PROVIDER=local needs no Bedrock model",
    ),
    (
        vars::MAIN_MODEL_ID,
        "CHRONO_AI_PROVIDER=local needs no Bedrock model",
    ),
    (
        vars::PIPELINE_STATE_MACHINE_ARN,
        "the emulator runs no ECS tasks: the API hands evidence to its in-process worker",
    ),
];

/// Audience of local tokens when the config names none (a config whose stacks create a
/// Cognito user pool): the local issuer stands in for any provider.
pub const DEFAULT_AUDIENCE: &str = "chronotracer-local";

/// The audience of local tokens (and the local app client's id, as with a Cognito app
/// client): the config's `auth.jwt_audience`, or [`DEFAULT_AUDIENCE`].
pub fn audience(cfg: &Config) -> String {
    cfg.auth
        .jwt_audience
        .clone()
        .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned())
}

/// Where the shared settings come from.
#[derive(Debug, Clone)]
pub struct Wiring<'a> {
    /// The customer config.
    pub cfg: &'a Config,
    /// Names created in the emulator.
    pub provisioned: &'a Provisioned,
    /// Emulator endpoint (DynamoDB, Step Functions).
    pub aws_endpoint: &'a str,
    /// The local S3 server's endpoint (`AWS_ENDPOINT_URL_S3`, which the SDK prefers to
    /// `AWS_ENDPOINT_URL` for S3 clients).
    pub s3_endpoint: &'a str,
    /// The local issuer's identifier (the `iss` of its tokens).
    pub issuer: &'a str,
    /// JWKS URL of the local issuer.
    pub jwks_url: &'a str,
}

/// The environment of a runtime process whose database URL is `database_url`.
pub fn env(w: &Wiring<'_>, database_url: &str) -> BTreeMap<String, String> {
    let p = w.provisioned;
    let mut env: BTreeMap<String, String> = [
        (vars::CUSTOMER, w.cfg.customer.clone()),
        (vars::STAGE, w.cfg.stage.as_str().to_owned()),
        (vars::SOURCES_BUCKET, p.sources_bucket.clone()),
        (vars::ARTIFACTS_BUCKET, p.artifacts_bucket.clone()),
        (vars::SESSIONS_TABLE, p.sessions_table.clone()),
        (vars::INTENT_CACHE_TABLE, p.intent_cache_table.clone()),
        (vars::CONVERSATIONS_TABLE, p.conversations_table.clone()),
        (vars::JWT_ISSUER, w.issuer.to_owned()),
        (vars::JWT_AUDIENCE, audience(w.cfg)),
        (vars::ROLES_CLAIM, ROLES_CLAIM.to_owned()),
        (vars::CASES_CLAIM, CASES_CLAIM.to_owned()),
        (vars::AI_PROVIDER, "local".to_owned()),
        (vars::LOG_FORMAT, "text".to_owned()),
        (vars::JWKS_URL, w.jwks_url.to_owned()),
        (vars::DATABASE_URL, database_url.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in super::moto::env(w.aws_endpoint, &w.cfg.region) {
        env.insert(k.to_owned(), v);
    }
    env.insert(S3_ENDPOINT_VAR.to_owned(), w.s3_endpoint.to_owned());
    env.insert(
        "RUST_LOG".into(),
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    env
}

/// Contract variables neither set by [`env`] nor listed in [`NOT_SET_LOCALLY`] (empty
/// when local mode covers the whole contract).
pub fn uncovered(env: &BTreeMap<String, String>) -> Vec<&'static str> {
    RUNTIME_ENV
        .into_iter()
        .filter(|v| !env.contains_key(*v) && !NOT_SET_LOCALLY.iter().any(|(n, _)| n == v))
        .collect()
}
