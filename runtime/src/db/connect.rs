//! Opening a pool that survives what Aurora Serverless v2 does to connections:
//!
//! * **Auto-pause.** With a minimum of 0 ACU an idle instance pauses; the first connection
//!   resumes it, and is only accepted once it has resumed. AWS gives about 15 seconds for
//!   a resume, longer after a long pause
//!   (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html;
//!   "It can take up to 15 seconds for the database to resume",
//!   https://aws.amazon.com/blogs/database/introducing-scaling-to-0-capacity-with-amazon-aurora-serverless-v2/).
//!   Every connection attempt waits [`ConnectPolicy::attempt`] (longer than a resume), and
//!   opening a pool retries refused, reset, timed-out and "starting up" connections with
//!   exponential backoff for [`ConnectPolicy::budget`].
//! * **Secret rotation.** A refused password makes the pool read the secret again
//!   ([`super::credentials`]): while opening, before the next attempt; later, when any
//!   caller reports the refusal through [`note_error`] (the API's, AI's and pipeline's
//!   error conversions do), a task of the pool re-reads it and replaces the pool's
//!   options, so the next connection logs in with the new password.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::Notify;

use super::Session;
use super::credentials::{Credentials, DbConfigError};

/// How long to wait for the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectPolicy {
    /// One connection attempt (also the pool's acquire timeout): longer than a resume.
    pub attempt: Duration,
    /// Opening the pool retries until this much time has passed; zero opens it lazily
    /// (the first query connects, within one attempt).
    pub budget: Duration,
    /// The first pause between attempts; it doubles up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest pause between attempts.
    pub max_backoff: Duration,
}

impl ConnectPolicy {
    /// ECS tasks, local processes and migrations: wait up to two minutes at start (a
    /// resume after a long pause takes longer than the usual 15 s).
    pub const SERVICE: ConnectPolicy = ConnectPolicy {
        attempt: Duration::from_secs(20),
        budget: Duration::from_secs(120),
        first_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(8),
    };

    /// Lambda functions: open lazily, so the init phase (10 s at most) never waits for a
    /// resume; the first request's connection attempt does, within API Gateway's 30 s.
    pub const LAMBDA: ConnectPolicy = ConnectPolicy {
        attempt: Duration::from_secs(20),
        budget: Duration::ZERO,
        first_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(8),
    };
}

/// What a failed connection means for the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server is not there yet, resuming, starting or full: try again.
    Transient,
    /// The login was refused: the password may have rotated.
    Auth,
    /// Anything else (a missing database, a bad URL, a query error): final.
    Other,
}

/// Classifies an error met while connecting (or reported by a caller).
pub fn classify(e: &sqlx::Error) -> Failure {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => Failure::Transient,
        sqlx::Error::Database(d) => match d.code().as_deref() {
            // invalid_password, invalid_authorization_specification
            Some("28P01" | "28000") => Failure::Auth,
            // cannot_connect_now, too_many_connections, admin/crash shutdown
            Some("57P03" | "53300" | "57P01" | "57P02") => Failure::Transient,
            // connection_exception and its subclasses
            Some(c) if c.starts_with("08") => Failure::Transient,
            _ => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// Refused logins reported by [`note_error`]; every secret-backed pool of the process
/// waits on it.
static LOGIN_REFUSED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Reports a database error seen anywhere in the process: a refused login makes every
/// secret-backed pool read its secret again. Cheap for every other error.
pub fn note_error(e: &sqlx::Error) {
    if classify(e) == Failure::Auth {
        LOGIN_REFUSED.notify_waiters();
    }
}

/// Why no pool.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The credentials cannot be read or used.
    #[error(transparent)]
    Config(#[from] DbConfigError),
    /// The database answered with a final error.
    #[error("the database refused the connection: {0}")]
    Refused(#[source] sqlx::Error),
    /// The database did not accept a connection in time.
    #[error(
        "the database did not accept a connection within {}s ({attempts} attempts; a paused \
         Aurora Serverless instance takes about 15 s to resume): {source}",
        waited.as_secs()
    )]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        waited: Duration,
        /// The last attempt's error.
        #[source]
        source: sqlx::Error,
    },
}

/// A pool of at most `max_connections` sessions with `session`'s settings, logged in with
/// `credentials`; waits for the database as `policy` says (see the module docs).
pub async fn open(
    credentials: &Credentials,
    session: Session,
    max_connections: u32,
    policy: ConnectPolicy,
) -> Result<PgPool, ConnectError> {
    let opts = credentials.options(&session).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(policy.attempt)
        .connect_lazy_with(opts);
    if !policy.budget.is_zero() {
        establish(&pool, credentials, &session, policy).await?;
    }
    if credentials.can_refresh() {
        spawn_refresher(pool.clone(), credentials.clone(), session);
    }
    Ok(pool)
}

/// Connects once, retrying what [`classify`] calls transient (and a refused login after
/// reading the secret again) with exponential backoff within the policy's budget.
async fn establish(
    pool: &PgPool,
    credentials: &Credentials,
    session: &Session,
    policy: ConnectPolicy,
) -> Result<(), ConnectError> {
    let start = Instant::now();
    let mut backoff = policy.first_backoff;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let error = match pool.acquire().await {
            Ok(_) => {
                if attempts > 1 {
                    tracing::info!(attempts, "connected to the database");
                }
                return Ok(());
            }
            Err(e) => e,
        };
        match classify(&error) {
            Failure::Transient => {}
            Failure::Auth if credentials.can_refresh() => {
                // a rotation in progress may still hand out the old password: read again
                // before every attempt until the budget runs out
                pool.set_connect_options(credentials.options(session).await?);
            }
            Failure::Auth | Failure::Other => return Err(ConnectError::Refused(error)),
        }
        let waited = start.elapsed();
        if waited + backoff > policy.budget {
            return Err(ConnectError::GaveUp {
                attempts,
                waited,
                source: error,
            });
        }
        tracing::warn!(attempts, %error, retry_in_ms = backoff.as_millis() as u64,
            "the database is not accepting connections yet");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}

/// Re-reads the credentials whenever a refused login is reported, at most once a second,
/// until the pool is closed.
fn spawn_refresher(pool: PgPool, credentials: Credentials, session: Session) {
    tokio::spawn(async move {
        loop {
            LOGIN_REFUSED.notified().await;
            if pool.is_closed() {
                return;
            }
            match credentials.options(&session).await {
                Ok(opts) => {
                    pool.set_connect_options(opts);
                    tracing::info!("the database refused a login: read the secret again");
                }
                Err(e) => tracing::warn!(error = %e, "the database secret could not be read"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_classified_for_the_next_attempt() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&sqlx::Error::Io(refused)), Failure::Transient);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Failure::Transient);
        assert_eq!(classify(&sqlx::Error::PoolClosed), Failure::Other);
        assert_eq!(
            classify(&sqlx::Error::Configuration("bad url".into())),
            Failure::Other
        );
    }
}
