//! The PostgreSQL pool of the runtime: every connection gets a statement timeout, and the
//! schema migrations (`runtime/migrations/`) are embedded here.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The schema migrations, applied by `chrono-api migrate` and by `chronoctl` on deploy.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Statement timeout of API connections unless configured (`CHRONO_DB_STATEMENT_TIMEOUT_MS`).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection options from a URL, with the statement timeout applied to every session.
pub fn options(url: &str, statement_timeout: Duration) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(with_timeouts(
        PgConnectOptions::from_str(url)?,
        statement_timeout,
    ))
}

/// Adds the statement timeout (and a bound on idle transactions) to connection options.
pub fn with_timeouts(opts: PgConnectOptions, statement_timeout: Duration) -> PgConnectOptions {
    opts.options([
        (
            "statement_timeout",
            statement_timeout.as_millis().to_string(),
        ),
        ("idle_in_transaction_session_timeout", "60000".to_string()),
    ])
    .application_name("chrono-runtime")
}

/// A pool over `opts` (use [`options`] or [`with_timeouts`] to build them).
pub async fn connect(opts: PgConnectOptions, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
}
