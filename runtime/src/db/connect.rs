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
//! * **Interrupted work.** A future dropped in the middle of a database call (a worker
//!   killed, a lease lost, an HTTP client gone) can leave its connection in a state sqlx
//!   0.8 does not repair: a `begin()` cancelled before the server's answer leaves the
//!   session inside a transaction nothing will end (sqlx issues 4385/4393: every later
//!   borrower's writes stay uncommitted, hold their locks, and vanish with the session),
//!   and a `COPY` cancelled after `CopyDone` leaves one `ReadyForQuery` unaccounted for,
//!   so the next statement on that session reads the previous one's answer (an `UPDATE ..
//!   RETURNING` that did update reports no row). Every pool therefore checks a connection
//!   when it is given back ([`guard_releases`]) and closes it unless it is idle, outside
//!   a transaction, and in step with the server.

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
    /// One connection attempt while opening the pool: longer than a resume.
    pub attempt: Duration,
    /// How long a caller waits for a connection of the pool, connecting included (the
    /// pool's acquire timeout). Request paths keep it at [`REQUEST_WAIT`]: a database
    /// that is down, or still resuming, answers 503 with `Retry-After` at once instead of
    /// holding the request.
    pub acquire: Duration,
    /// Opening the pool retries until this much time has passed; zero opens it lazily
    /// (the first query connects, within one attempt).
    pub budget: Duration,
    /// The first pause between attempts; it doubles up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest pause between attempts.
    pub max_backoff: Duration,
}

/// The longest a request waits for the database (issue 18: "a database outage answers
/// 503 within 1 s").
pub const REQUEST_WAIT: Duration = Duration::from_secs(1);

impl ConnectPolicy {
    /// Background work (the pipeline worker and tasks) and migrations: wait up to two
    /// minutes at start (a resume after a long pause takes longer than the usual 15 s),
    /// and as long as a resume for each connection later: a job is better late than
    /// retried.
    pub const SERVICE: ConnectPolicy = ConnectPolicy {
        attempt: Duration::from_secs(20),
        acquire: Duration::from_secs(20),
        budget: Duration::from_secs(120),
        first_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(8),
    };

    /// Servers of requests (the local API server, the filter-ai service): wait for the
    /// database at start like [`ConnectPolicy::SERVICE`], but a request waits at most
    /// [`REQUEST_WAIT`] for a connection; past it the client gets 503 with `Retry-After`
    /// (the connection attempt has woken a paused instance meanwhile, and the retry finds
    /// it resumed).
    pub const REQUESTS: ConnectPolicy = ConnectPolicy {
        acquire: REQUEST_WAIT,
        ..ConnectPolicy::SERVICE
    };

    /// Lambda functions: open lazily, so the init phase (10 s at most) never waits for a
    /// resume; a request waits at most [`REQUEST_WAIT`] (503 with `Retry-After` while a
    /// paused instance resumes, as for [`ConnectPolicy::REQUESTS`]).
    pub const LAMBDA: ConnectPolicy = ConnectPolicy {
        attempt: Duration::from_secs(20),
        acquire: REQUEST_WAIT,
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
    let pool = guard_releases(PgPoolOptions::new())
        .max_connections(max_connections)
        .acquire_timeout(policy.acquire)
        .connect_lazy_with(opts);
    if !policy.budget.is_zero() {
        establish(&pool, credentials, &session, policy).await?;
    }
    if credentials.can_refresh() {
        spawn_refresher(pool.clone(), credentials.clone(), session);
    }
    Ok(pool)
}

/// The statement [`guard_releases`] runs: in a session that is outside any transaction
/// it is the first command of its own, whose statement and transaction start times are
/// the same (https://www.postgresql.org/docs/current/functions-datetime.html#FUNCTIONS-DATETIME-CURRENT:
/// "statement_timestamp() and transaction_timestamp() return the same value during the
/// first command of a transaction"); in a transaction left open they differ. Sent as a
/// simple query, so a session out of step (an answer still unread) answers it with no row
/// and fails the check too.
const RELEASE_CHECK: &str = "SELECT statement_timestamp() = transaction_timestamp()";

/// `options` plus a check of every connection given back to the pool: one that is inside
/// a transaction, or out of step with the server, is closed (the server rolls back what
/// it holds) instead of being handed to the next borrower. See the module docs for what
/// leaves a connection so. Costs one round trip per release, off the borrower's path.
pub fn guard_releases(options: PgPoolOptions) -> PgPoolOptions {
    options.after_release(|conn, _meta| Box::pin(fit_for_reuse(conn)))
}

/// Whether a session given back can serve the next borrower (see [`guard_releases`]).
async fn fit_for_reuse(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    use sqlx::{Executor as _, Row as _};
    let row = conn.fetch_one(RELEASE_CHECK).await?;
    let idle = row.try_get::<bool, _>(0)?;
    if !idle {
        tracing::warn!(
            "closing a database connection given back inside a transaction (a call on it \
             was interrupted)"
        );
    }
    Ok(idle)
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
        // a connection of its own, so an attempt may outlast the pool's acquire timeout
        let options = pool.connect_options();
        let attempt = tokio::time::timeout(
            policy.attempt,
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&*options),
        )
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
        let error = match attempt {
            Ok(conn) => {
                let _ = sqlx::Connection::close(conn).await;
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
