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

/// Why the database settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbConfigError {
    /// The secret is not the JSON Secrets Manager generates for a database.
    #[error("the database secret must be JSON with `username` and `password`: {0}")]
    Secret(String),
}

#[derive(serde::Deserialize)]
struct DbSecret {
    username: String,
    password: String,
}

/// Connection options for the AWS deployment: the Aurora endpoint (`CHRONO_DB_HOST`,
/// `CHRONO_DB_PORT`, `CHRONO_DB_NAME`) and the text of the generated master secret
/// (`{"username": .., "password": ..}`). TLS is required.
pub fn options_from_secret(
    host: &str,
    port: u16,
    database: &str,
    secret: &str,
    statement_timeout: Duration,
) -> Result<PgConnectOptions, DbConfigError> {
    let s: DbSecret =
        serde_json::from_str(secret).map_err(|e| DbConfigError::Secret(e.to_string()))?;
    let opts = PgConnectOptions::new()
        .host(host)
        .port(port)
        .database(database)
        .username(&s.username)
        .password(&s.password)
        .ssl_mode(sqlx::postgres::PgSslMode::Require);
    Ok(with_timeouts(opts, statement_timeout))
}

/// A pool over `opts` (use [`options`] or [`with_timeouts`] to build them).
pub async fn connect(opts: PgConnectOptions, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_options_use_the_endpoint_and_the_secret() {
        let o = options_from_secret(
            "db.cluster-x.eu-west-1.rds.amazonaws.com",
            5432,
            "chrono",
            r#"{"username": "chrono_admin", "password": "p@ss:/word", "engine": "postgres"}"#,
            DEFAULT_STATEMENT_TIMEOUT,
        )
        .unwrap();
        assert_eq!(o.get_host(), "db.cluster-x.eu-west-1.rds.amazonaws.com");
        assert_eq!(o.get_port(), 5432);
        assert_eq!(o.get_database(), Some("chrono"));
        assert_eq!(o.get_username(), "chrono_admin");
        assert!(
            options_from_secret(
                "h",
                5432,
                "d",
                "{\"username\": \"x\"}",
                DEFAULT_STATEMENT_TIMEOUT
            )
            .is_err()
        );
        assert!(
            options_from_secret("h", 5432, "d", "not json", DEFAULT_STATEMENT_TIMEOUT).is_err()
        );
    }
}
