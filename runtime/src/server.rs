//! Entry points of `chrono-api`: the Lambda handler (behind API Gateway's HTTP API) and the
//! local HTTP server, both over the same [`crate::api::router`]. Settings come from the
//! environment (see the contracts: `DATABASE_URL`, `CHRONO_SOURCES_BUCKET`,
//! `CHRONO_PIPELINE_STATE_MACHINE_ARN`, `CHRONO_JWT_*`, `CHRONO_JWKS_*`, ...).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chrono_contract::env as vars;

use crate::api::{AppState, router};
use crate::auth::{
    Authenticator, ClaimNames, DEFAULT_CASES_CLAIM, DEFAULT_ROLES_CLAIM, JwtVerifier,
};
use crate::db::{ConnectPolicy, Credentials, SecretSource};
use crate::launcher::{LocalLauncher, PipelineLauncher, StepFunctionsLauncher};
use crate::storage::SourcesBucket;

/// Why `chrono-api` could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A required setting is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(String),
    /// The JWT key set could not be loaded.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The server or the Lambda runtime failed.
    #[error("server: {0}")]
    Server(String),
}

/// How the API authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lambda behind API Gateway: claims from the authorizer context.
    Lambda,
    /// Local server: verify JWTs here.
    Local,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn claim_names() -> ClaimNames {
    ClaimNames {
        roles: env(vars::ROLES_CLAIM).unwrap_or_else(|| DEFAULT_ROLES_CLAIM.into()),
        cases: env(vars::CASES_CLAIM).unwrap_or_else(|| DEFAULT_CASES_CLAIM.into()),
    }
}

/// The statement timeout of request sessions: `CHRONO_DB_STATEMENT_TIMEOUT_MS`, else
/// [`crate::db::DEFAULT_STATEMENT_TIMEOUT`].
pub fn statement_timeout_from_env() -> Result<Duration, StartError> {
    env(vars::DB_STATEMENT_TIMEOUT_MS)
        .map(|v| {
            v.parse::<u64>().map(Duration::from_millis).map_err(|_| {
                StartError::Config(format!(
                    "{} must be milliseconds",
                    vars::DB_STATEMENT_TIMEOUT_MS
                ))
            })
        })
        .transpose()
        .map(|t| t.unwrap_or(crate::db::DEFAULT_STATEMENT_TIMEOUT))
}

/// The database login from the environment: `DATABASE_URL` when set (local mode, tests),
/// else the Aurora endpoint `CHRONO_DB_HOST`/`CHRONO_DB_PORT`/`CHRONO_DB_NAME` with the
/// credentials of the Secrets Manager secret `CHRONO_DB_SECRET_ARN` (read again when the
/// database refuses them: [`crate::db::credentials`]).
pub async fn credentials_from_env() -> Result<Credentials, StartError> {
    if let Some(url) = env(vars::DATABASE_URL) {
        return Credentials::url(&url).map_err(|e| StartError::Config(e.to_string()));
    }
    let Some(arn) = env(vars::DB_SECRET_ARN) else {
        return Err(StartError::Config(format!(
            "set {}, or {} and {}",
            vars::DATABASE_URL,
            vars::DB_HOST,
            vars::DB_SECRET_ARN
        )));
    };
    let host = env(vars::DB_HOST).ok_or_else(|| {
        StartError::Config(format!(
            "set {} with {}",
            vars::DB_HOST,
            vars::DB_SECRET_ARN
        ))
    })?;
    let port = env(vars::DB_PORT)
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| StartError::Config(format!("{} must be a port number", vars::DB_PORT)))
        })
        .transpose()?
        .unwrap_or(5432);
    let name = env(vars::DB_NAME).unwrap_or_else(|| "chrono".into());
    let sdk = aws_config::load_from_env().await;
    Ok(Credentials::Secret(SecretSource::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        arn,
        host,
        port,
        name,
    )))
}

/// A request pool from the environment ([`credentials_from_env`],
/// [`statement_timeout_from_env`]), waiting for the database as `policy` says.
pub async fn pool_from_env(
    max_connections: u32,
    policy: ConnectPolicy,
) -> Result<sqlx::PgPool, StartError> {
    let credentials = credentials_from_env().await?;
    pool_with(&credentials, max_connections, policy).await
}

/// A request pool over `credentials` with the statement timeout from the environment.
pub async fn pool_with(
    credentials: &Credentials,
    max_connections: u32,
    policy: ConnectPolicy,
) -> Result<sqlx::PgPool, StartError> {
    let session = crate::db::Session::runtime(statement_timeout_from_env()?);
    crate::db::open(credentials, session, max_connections, policy)
        .await
        .map_err(|e| match e {
            crate::db::ConnectError::Config(c) => StartError::Config(c.to_string()),
            other => StartError::Database(other.to_string()),
        })
}

/// The authenticator for `mode`, from the environment.
pub async fn authenticator_from_env(mode: Mode) -> Result<Authenticator, StartError> {
    let names = claim_names();
    if mode == Mode::Lambda {
        return Ok(Authenticator::ApiGateway(names));
    }
    let issuer = env(vars::JWT_ISSUER)
        .ok_or_else(|| StartError::Config(format!("set {}", vars::JWT_ISSUER)))?;
    let audience = env(vars::JWT_AUDIENCE)
        .ok_or_else(|| StartError::Config(format!("set {}", vars::JWT_AUDIENCE)))?;
    let verifier = if let Some(file) = env(vars::JWKS_FILE) {
        JwtVerifier::from_jwks_file(&PathBuf::from(file), &issuer, &audience, names)?
    } else if let Some(url) = env(vars::JWKS_URL) {
        JwtVerifier::from_jwks_url(&url, &issuer, &audience, names).await?
    } else {
        return Err(StartError::Config(
            "set CHRONO_JWKS_FILE or CHRONO_JWKS_URL to verify tokens locally".into(),
        ));
    };
    Ok(Authenticator::Jwt(Box::new(verifier)))
}

/// Connections of the local server's request pool (the load benchmark gives bare SQL a
/// pool of the same size).
pub const LOCAL_POOL_CONNECTIONS: u32 = 16;

/// The application state from the environment. Without a state machine the launcher is
/// a [`LocalLauncher`] with no worker (processing answers `pipeline_unavailable`); local
/// mode may pass its own launcher instead.
pub async fn state_from_env(
    mode: Mode,
    launcher: Option<Arc<dyn PipelineLauncher>>,
) -> Result<AppState, StartError> {
    state_with(mode, launcher, &credentials_from_env().await?).await
}

/// [`state_from_env`] with the database login given.
pub async fn state_with(
    mode: Mode,
    launcher: Option<Arc<dyn PipelineLauncher>>,
    credentials: &Credentials,
) -> Result<AppState, StartError> {
    let db = match mode {
        Mode::Lambda => pool_with(credentials, 2, ConnectPolicy::LAMBDA).await?,
        Mode::Local => {
            pool_with(credentials, LOCAL_POOL_CONNECTIONS, ConnectPolicy::REQUESTS).await?
        }
    };
    let auth = authenticator_from_env(mode).await?;
    let sdk = aws_config::load_from_env().await;
    let sources =
        env(vars::SOURCES_BUCKET).map(|b| SourcesBucket::new(SourcesBucket::client_from(&sdk), b));
    let launcher = match (launcher, env(vars::PIPELINE_STATE_MACHINE_ARN)) {
        (Some(l), _) => l,
        (None, Some(arn)) => Arc::new(StepFunctionsLauncher::new(
            aws_sdk_sfn::Client::new(&sdk),
            arn,
        )),
        (None, None) => Arc::new(LocalLauncher::unavailable()),
    };
    Ok(AppState::new(db, auth, sources, launcher))
}

/// The Lambda service: API Gateway events in, API Gateway responses out.
pub fn lambda_handler(
    app: Router,
) -> lambda_http::Adapter<'static, axum::response::Response, Router> {
    lambda_http::Adapter::from(app)
}

/// The operator event `chronoctl onboard` sends to apply the database migrations (the
/// function runs in the VPC next to Aurora with the database secret; chronoctl has
/// neither). Contract with `chrono_provisioner::deploy::migrate`.
pub const COMMAND_KEY: &str = "chrono_command";

/// What the API function answers to an invocation: an API Gateway response, or the
/// outcome of an operator command.
///
/// Events carrying [`COMMAND_KEY`] are commands (`migrate` from onboard, `fail_evidence`
/// from the pipeline state machine); every other event must be an API Gateway event and
/// goes through the router. Migrations do not use the request pool (its 5 s statement
/// timeout): they open a session of their own with `credentials` and
/// [`crate::db::MigrationSettings`], and onboard sends the command to the migration
/// function, whose timeout is not API Gateway's; `fail_evidence` uses the request pool
/// `db`. API Gateway
/// never produces a `chrono_command` field, and invoking the function directly needs
/// `lambda:InvokeFunction`, which only the operator's deploy role has.
pub async fn lambda_entry(
    app: Router,
    db: sqlx::PgPool,
    credentials: &Credentials,
    event: lambda_http::LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_http::Error> {
    use lambda_http::Service;
    let lambda_http::LambdaEvent { payload, context } = event;
    if let Some(command) = payload.get(COMMAND_KEY) {
        return match command.as_str() {
            Some("migrate") => {
                let latest = crate::db::migrate(credentials)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(?latest, "database migrated");
                Ok(serde_json::json!({"migrated": true, "latest_version": latest}))
            }
            Some(crate::pipeline::failure::COMMAND) => fail_evidence(&db, payload).await,
            _ => Err(format!(
                "unknown {COMMAND_KEY} {command}; the commands are \"migrate\" and \"{}\"",
                crate::pipeline::failure::COMMAND
            )
            .into()),
        };
    }
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(payload)
        .map_err(|e| format!("not an API Gateway event nor a {COMMAND_KEY}: {e}"))?;
    let response = lambda_handler(app)
        .call(lambda_http::LambdaEvent::new(request, context))
        .await?;
    Ok(serde_json::to_value(response)?)
}

/// The state machine's `FailEvidence` ([`crate::pipeline::failure`]): the evidence ends
/// `failed` with a readable reason. An error makes the state machine retry.
async fn fail_evidence(
    db: &sqlx::PgPool,
    payload: serde_json::Value,
) -> Result<serde_json::Value, lambda_http::Error> {
    use crate::pipeline::{failure, jobs::Buckets};
    let request: failure::FailEvidence =
        serde_json::from_value(payload).map_err(|e| format!("{}: {e}", failure::COMMAND))?;
    let buckets = Buckets::from_env().map_err(|e| e.to_string())?;
    let sdk = aws_config::load_from_env().await;
    let s3 = crate::storage::SourcesBucket::client_from(&sdk);
    let reason = failure::fail_evidence(&s3, &buckets, db, &request)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(evidence = %request.evidence_id, step = request.step, reason, "evidence failed");
    Ok(serde_json::json!({"state": "failed", "reason": reason}))
}

/// Runs as the Lambda function until the runtime stops it.
pub async fn run_lambda() -> Result<(), StartError> {
    let credentials = credentials_from_env().await?;
    let state = state_with(Mode::Lambda, None, &credentials).await?;
    let db = state.db().clone();
    let app = router(state);
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event| {
        let (app, db, credentials) = (app.clone(), db.clone(), credentials.clone());
        async move { lambda_entry(app, db, &credentials, event).await }
    }))
    .await
    .map_err(|e| StartError::Server(e.to_string()))
}

/// Serves the API on `addr` until Ctrl-C / SIGTERM.
pub async fn serve(addr: SocketAddr, state: AppState) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Server(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "chrono-api listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| StartError::Server(e.to_string()))
}

/// Applies the migrations to the database of the environment ([`credentials_from_env`]),
/// with the migration settings, not the request pool's.
pub async fn migrate() -> Result<(), StartError> {
    let credentials = credentials_from_env().await?;
    crate::db::migrate(&credentials)
        .await
        .map(|_| ())
        .map_err(|e| StartError::Database(e.to_string()))
}

/// Installs the log subscriber: JSON (default in Lambda) or text (`CHRONO_LOG_FORMAT`),
/// filtered by `RUST_LOG` (default `info`).
pub fn init_logging(default_json: bool) {
    let json = match env(vars::LOG_FORMAT).as_deref() {
        Some("json") => true,
        Some("text") => false,
        _ => default_json,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// Whether this process runs inside Lambda.
pub fn in_lambda() -> bool {
    env("AWS_LAMBDA_RUNTIME_API").is_some()
}
