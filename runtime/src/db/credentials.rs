//! Who the runtime logs in as: a fixed set of connection options (`DATABASE_URL`: local
//! mode, tests), or the Aurora master secret in Secrets Manager, read again whenever the
//! database refuses the password it holds.
//!
//! Why re-read rather than IAM database authentication: Aurora rotates the RDS-managed
//! master secret every 7 days by default
//! (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/rds-secrets-manager.html),
//! and a managed rotation "typically completes within one minute", during which new
//! connections that read the secret "may get the previous version of the credentials"
//! (https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_managed.html).
//! Re-reading on an authentication failure, with retries over that minute, keeps the one
//! login the stacks already have; IAM authentication would need a token minted per
//! connection (valid 15 minutes), `rds-db:connect` grants on each role and a login role per
//! workload, with the same refresh problem in the pool. A refused password is the signal
//! that the secret changed; nothing polls Secrets Manager.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::Session;

/// Why the database settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbConfigError {
    /// The secret is not the JSON Secrets Manager generates for a database.
    #[error("the database secret must be JSON with `username` and `password`: {0}")]
    Secret(String),
    /// The secret could not be read.
    #[error("cannot read the database secret {arn}: {message}")]
    Read {
        /// The secret's ARN.
        arn: String,
        /// What Secrets Manager answered.
        message: String,
    },
    /// `DATABASE_URL` is not a PostgreSQL URL.
    #[error("{var}: {0}", var = chrono_contract::env::DATABASE_URL)]
    Url(String),
}

#[derive(serde::Deserialize)]
struct DbSecret {
    username: String,
    password: String,
}

/// The Aurora endpoint and the secret holding its master credentials.
#[derive(Debug, Clone)]
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
    host: String,
    port: u16,
    database: String,
    ssl_mode: PgSslMode,
}

impl SecretSource {
    /// The endpoint `host:port/database` with the credentials of secret `arn`. TLS is
    /// required (Aurora); see [`SecretSource::ssl_mode`].
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        arn: impl Into<String>,
        host: impl Into<String>,
        port: u16,
        database: impl Into<String>,
    ) -> Self {
        SecretSource {
            client,
            arn: arn.into(),
            host: host.into(),
            port,
            database: database.into(),
            ssl_mode: PgSslMode::Require,
        }
    }

    /// Another TLS mode (a local server without TLS in tests).
    pub fn ssl_mode(mut self, mode: PgSslMode) -> Self {
        self.ssl_mode = mode;
        self
    }

    /// The secret's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Reads the secret now and builds the connection options from it.
    pub async fn read(&self) -> Result<PgConnectOptions, DbConfigError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .send()
            .await
            .map_err(|e| DbConfigError::Read {
                arn: self.arn.clone(),
                message: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            })?;
        let text = out.secret_string().ok_or_else(|| DbConfigError::Read {
            arn: self.arn.clone(),
            message: "the secret has no string value".into(),
        })?;
        self.options(text)
    }

    /// The connection options for the secret text `secret`
    /// (`{"username": .., "password": ..}`, the JSON RDS generates).
    pub fn options(&self, secret: &str) -> Result<PgConnectOptions, DbConfigError> {
        let s: DbSecret =
            serde_json::from_str(secret).map_err(|e| DbConfigError::Secret(e.to_string()))?;
        Ok(PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .database(&self.database)
            .username(&s.username)
            .password(&s.password)
            .ssl_mode(self.ssl_mode))
    }
}

/// Where a pool's login comes from.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Fixed options (a URL); a refused login is final.
    Fixed(Box<PgConnectOptions>),
    /// The secret, read again after a refused login.
    Secret(SecretSource),
}

impl Credentials {
    /// Fixed connection options.
    pub fn fixed(opts: PgConnectOptions) -> Self {
        Credentials::Fixed(Box::new(opts))
    }

    /// From a `postgres://` URL.
    pub fn url(url: &str) -> Result<Self, DbConfigError> {
        PgConnectOptions::from_str(url)
            .map(|o| Credentials::Fixed(Box::new(o)))
            .map_err(|e| DbConfigError::Url(e.to_string()))
    }

    /// The current connection options with `session` applied (reads the secret).
    pub async fn options(&self, session: &Session) -> Result<PgConnectOptions, DbConfigError> {
        let base = match self {
            Credentials::Fixed(o) => o.as_ref().clone(),
            Credentials::Secret(s) => s.read().await?,
        };
        Ok(session.apply(base))
    }

    /// Whether reading them again may give another password.
    pub fn can_refresh(&self) -> bool {
        matches!(self, Credentials::Secret(_))
    }
}
