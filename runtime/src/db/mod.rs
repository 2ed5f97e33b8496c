//! The PostgreSQL side of the runtime: connection options with the statement timeout, the
//! credentials (a URL, or the Aurora master secret re-read when it rotates:
//! [`credentials`]), opening a pool that waits for a resuming Aurora instance
//! ([`connect`]), and the schema migrations (`runtime/migrations/`), which run on a
//! connection of their own with their own timeouts ([`migrate`]).
//!
//! Nothing here knows which binary it serves; the entry points pick a [`ConnectPolicy`].

pub mod connect;
pub mod credentials;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;

pub use connect::{
    ConnectError, ConnectPolicy, Failure, classify, guard_releases, note_error, open,
};
pub use credentials::{Credentials, DbConfigError, SecretSource};

/// The schema migrations, applied by `chrono-api migrate` and by `chronoctl` on deploy.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Statement timeout of API connections unless configured (`CHRONO_DB_STATEMENT_TIMEOUT_MS`).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The group role every runtime session acts as (`SET ROLE` at login, see
/// [`Session::role`]): the login is the Aurora master user, which owns the tables, but the
/// API, the pipeline and the AI act with `chrono_rw`'s grants only — so the audit log and
/// the comments are append-only for them (no `UPDATE`/`DELETE` grant), whatever the login.
pub const RUNTIME_ROLE: &str = "chrono_rw";

/// Connection options from a URL, with the statement timeout applied to every session.
pub fn options(url: &str, statement_timeout: Duration) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(with_timeouts(
        PgConnectOptions::from_str(url)?,
        statement_timeout,
    ))
}

/// Adds the statement timeout (and a bound on idle transactions) to connection options,
/// and the runtime's role ([`RUNTIME_ROLE`]).
pub fn with_timeouts(opts: PgConnectOptions, statement_timeout: Duration) -> PgConnectOptions {
    Session::runtime(statement_timeout).apply(opts)
}

/// The settings of every session of a pool, applied on top of the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// `statement_timeout` of the session.
    pub statement_timeout: Duration,
    /// `lock_timeout` of the session (none: PostgreSQL's default, wait for ever).
    pub lock_timeout: Option<Duration>,
    /// `application_name`, as `pg_stat_activity` shows it.
    pub application: &'static str,
    /// The role the session acts as (`role` at login, i.e. `SET ROLE`); `None` acts as
    /// the login itself (migrations, which own the schema).
    pub role: Option<&'static str>,
}

impl Session {
    /// The runtime's request sessions: the statement timeout, a bound on idle transactions,
    /// acting as [`RUNTIME_ROLE`].
    pub fn runtime(statement_timeout: Duration) -> Self {
        Session {
            statement_timeout,
            lock_timeout: None,
            application: "chrono-runtime",
            role: Some(RUNTIME_ROLE),
        }
    }

    /// Adds these settings to connection options.
    pub fn apply(&self, opts: PgConnectOptions) -> PgConnectOptions {
        let mut settings = vec![
            (
                "statement_timeout",
                self.statement_timeout.as_millis().to_string(),
            ),
            ("idle_in_transaction_session_timeout", "60000".to_string()),
        ];
        if let Some(lock) = self.lock_timeout {
            settings.push(("lock_timeout", lock.as_millis().to_string()));
        }
        // `none` acts as the login even when the options given already name a role (later
        // settings win)
        settings.push(("role", self.role.unwrap_or("none").to_string()));
        opts.options(settings).application_name(self.application)
    }
}

/// How migrations run: on one connection of their own, not under the API's statement
/// timeout (a migration on a large `events` table takes minutes), but bounded so that a
/// stuck migration ends with a PostgreSQL error (rolled back) before the function that
/// runs it is stopped, and never queues application traffic behind a lock for long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationSettings {
    /// Statement timeout of the migration session: below the 15-minute maximum of the
    /// migration function (`stacks` compute, `MIGRATE_TIMEOUT_S`).
    pub statement_timeout: Duration,
    /// How long a DDL statement may wait for a lock (held by running queries) before the
    /// migration fails; rerun `onboard` when traffic is lower.
    pub lock_timeout: Duration,
    /// How long to wait for the database (a paused Aurora instance resumes first).
    pub connect: ConnectPolicy,
}

impl Default for MigrationSettings {
    fn default() -> Self {
        MigrationSettings {
            statement_timeout: Duration::from_secs(14 * 60),
            lock_timeout: Duration::from_secs(10),
            connect: ConnectPolicy::SERVICE,
        }
    }
}

/// Why the migrations did not apply.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// No connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A migration failed (it was rolled back).
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Applies `migrator` as the user of `credentials`, on a session with the migration
/// timeouts of `settings`; returns the latest version applied.
pub async fn migrate_with(
    migrator: &Migrator,
    credentials: &Credentials,
    settings: MigrationSettings,
) -> Result<Option<i64>, MigrateError> {
    let session = Session {
        statement_timeout: settings.statement_timeout,
        lock_timeout: Some(settings.lock_timeout),
        application: "chrono-migrate",
        role: None,
    };
    let pool = open(credentials, session, 1, settings.connect).await?;
    let result = migrator.run(&pool).await;
    pool.close().await;
    result?;
    Ok(migrator.iter().map(|m| m.version).max())
}

/// Applies the runtime's migrations ([`MIGRATOR`]) with the default settings.
pub async fn migrate(credentials: &Credentials) -> Result<Option<i64>, MigrateError> {
    migrate_with(&MIGRATOR, credentials, MigrationSettings::default()).await
}
