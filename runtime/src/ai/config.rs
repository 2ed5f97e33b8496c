//! Building the chat service from the environment (the contracts' variables):
//!
//! | variable | meaning |
//! |---|---|
//! | `CHRONO_AI_PROVIDER` | `local` (default) or `bedrock` |
//! | `CHRONO_GUARD_MODEL_ID`, `CHRONO_MAIN_MODEL_ID` | Bedrock model ids (required for `bedrock`) |
//! | `CHRONO_AI_MODEL_TIMEOUT_MS` | time limit of one model call (default 20000) |
//! | `CHRONO_SESSIONS_TABLE`, `CHRONO_INTENT_CACHE_TABLE`, `CHRONO_CONVERSATIONS_TABLE` | DynamoDB tables; all three or none (none = in-process store) |
//! | `CHRONO_AI_DB_ROLE` | role for the AI path's queries (default `chrono_ro`; empty = the login role) |
//! | `CHRONO_WS_CALLBACK_URL` | the WebSocket API's `@connections` endpoint; unset in AWS, where it comes from each request's domain and stage (see [`super::gateway`]) |
//! | `CHRONO_JWKS_FILE`, `CHRONO_JWKS_URL` | filter-ai: verify tokens (chat route, local WebSocket and, with `CHRONO_WS_GATEWAY`, the gateway path) |
//! | `CHRONO_WS_GATEWAY` | `on`: serve the API Gateway WebSocket integration path (filter-ai in AWS); requires a key set |
//! | `AWS_ENDPOINT_URL` | standard: points every SDK client at a local emulator |

use std::sync::Arc;
use std::time::Duration;

use chrono_contract::env as vars;
use sqlx::PgPool;

use super::bedrock::{BedrockFilterModel, BedrockGuard, DEFAULT_TIMEOUT};
use super::catalog::{DEFAULT_ROLE, PgCatalog};
use super::engine::ChatService;
use super::gateway::GatewayPusher;
use super::local::{LocalGuard, LocalTranslator};
use super::provider::{FilterModel, GuardModel};
use super::store::{ChatStore, DynamoStore, MemoryStore, TableNames};

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Which models answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// The deterministic translator.
    Local,
    /// Bedrock, with these model ids.
    Bedrock {
        /// Guard model id.
        guard: String,
        /// Main model id.
        main: String,
    },
}

/// The AI settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiSettings {
    /// Models.
    pub provider: Provider,
    /// Time limit of one model call.
    pub model_timeout: Duration,
    /// DynamoDB tables, if configured.
    pub tables: Option<TableNames>,
    /// Database role of the AI path.
    pub db_role: Option<String>,
    /// `@connections` endpoint of the WebSocket API.
    pub ws_callback_url: Option<String>,
}

impl AiSettings {
    /// From a variable lookup (`std::env::var` in the binaries; a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let provider = match get(vars::AI_PROVIDER).as_deref() {
            None | Some("local") => Provider::Local,
            Some("bedrock") => {
                let need = |k: &str| {
                    get(k).ok_or_else(|| {
                        ConfigError(format!("{}=bedrock needs {k}", vars::AI_PROVIDER))
                    })
                };
                Provider::Bedrock {
                    guard: need(vars::GUARD_MODEL_ID)?,
                    main: need(vars::MAIN_MODEL_ID)?,
                }
            }
            Some(other) => {
                return Err(ConfigError(format!(
                    "{} is `{other}`; use `local` or `bedrock`",
                    vars::AI_PROVIDER
                )));
            }
        };
        let model_timeout = match get(vars::AI_MODEL_TIMEOUT_MS) {
            None => DEFAULT_TIMEOUT,
            Some(v) => Duration::from_millis(v.parse().map_err(|_| {
                ConfigError(format!(
                    "{} must be milliseconds",
                    vars::AI_MODEL_TIMEOUT_MS
                ))
            })?),
        };
        let names = [
            get(vars::SESSIONS_TABLE),
            get(vars::INTENT_CACHE_TABLE),
            get(vars::CONVERSATIONS_TABLE),
        ];
        let tables = match names {
            [Some(sessions), Some(intent_cache), Some(conversations)] => Some(TableNames {
                sessions,
                intent_cache,
                conversations,
            }),
            [None, None, None] => None,
            _ => {
                return Err(ConfigError(format!(
                    "set all of {}, {} and {}, or none",
                    vars::SESSIONS_TABLE,
                    vars::INTENT_CACHE_TABLE,
                    vars::CONVERSATIONS_TABLE
                )));
            }
        };
        let db_role = match get(vars::AI_DB_ROLE) {
            None if std::env::var_os(vars::AI_DB_ROLE).is_some() => None,
            None => Some(DEFAULT_ROLE.to_string()),
            Some(r) => Some(r),
        };
        Ok(AiSettings {
            provider,
            model_timeout,
            tables,
            db_role,
            ws_callback_url: get(vars::WS_CALLBACK_URL),
        })
    }

    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The chat service over `db`, with SDK clients from `sdk`.
    pub fn service(
        &self,
        db: PgPool,
        sdk: &aws_config::SdkConfig,
    ) -> Result<ChatService, ConfigError> {
        let (guard, main): (Arc<dyn GuardModel>, Arc<dyn FilterModel>) = match &self.provider {
            Provider::Local => (Arc::new(LocalGuard), Arc::new(LocalTranslator)),
            Provider::Bedrock { guard, main } => {
                let client = aws_sdk_bedrockruntime::Client::new(sdk);
                (
                    Arc::new(BedrockGuard::new(
                        client.clone(),
                        guard.clone(),
                        self.model_timeout,
                    )),
                    Arc::new(BedrockFilterModel::new(
                        client,
                        main.clone(),
                        self.model_timeout,
                    )),
                )
            }
        };
        let store: Arc<dyn ChatStore> = match &self.tables {
            Some(t) => Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                t.clone(),
            )),
            None => Arc::new(MemoryStore::default()),
        };
        let catalog =
            PgCatalog::new(db, self.db_role.clone()).map_err(|e| ConfigError(e.to_string()))?;
        Ok(ChatService::new(guard, main, store, catalog))
    }

    /// The `@connections` pusher: to the callback URL if one is set, else to the domain
    /// and stage of each request.
    pub fn pusher(&self, sdk: &aws_config::SdkConfig) -> GatewayPusher {
        match &self.ws_callback_url {
            Some(url) => GatewayPusher::fixed(sdk, url),
            None => GatewayPusher::derived(sdk),
        }
    }
}

/// Why a front door could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Database pool, authenticator.
    #[error(transparent)]
    Start(#[from] crate::server::StartError),
    /// Listening or serving.
    #[error("server: {0}")]
    Server(String),
}

/// Runs the filter-ai service on `addr` until Ctrl-C / SIGTERM. With `CHRONO_JWKS_FILE`
/// or `CHRONO_JWKS_URL` the chat route and the local WebSocket verify JWTs
/// (`CHRONO_JWT_*`); without, they answer 401. `CHRONO_WS_GATEWAY=on` (AWS) also serves
/// the API Gateway WebSocket path, verifying the token API Gateway passes there.
pub async fn serve_from_env(addr: std::net::SocketAddr) -> Result<(), RunError> {
    use crate::server::{Mode, authenticator_from_env, pool_from_env};
    let settings = AiSettings::from_env()?;
    let db = pool_from_env(8, crate::db::ConnectPolicy::REQUESTS).await?;
    let sdk = aws_config::load_from_env().await;
    let verifies = [vars::JWKS_FILE, vars::JWKS_URL]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()));
    let auth = if verifies {
        Some(authenticator_from_env(Mode::Local).await?)
    } else {
        tracing::info!("no JWKS configured: the chat route and local WebSocket answer 401");
        None
    };
    let gateway = match (gateway_enabled()?, &auth) {
        (false, _) => None,
        (true, Some(crate::auth::Authenticator::Jwt(v))) => Some((**v).clone()),
        (true, _) => {
            return Err(ConfigError(format!(
                "{} needs {} or {} (the gateway path verifies tokens)",
                vars::WS_GATEWAY,
                vars::JWKS_URL,
                vars::JWKS_FILE
            ))
            .into());
        }
    };
    let state = super::http::AiState {
        service: settings.service(db, &sdk)?,
        auth,
        pusher: Some(settings.pusher(&sdk)),
        gateway,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| RunError::Server(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, provider = ?settings.provider, "chrono-filter-ai listening");
    axum::serve(listener, super::http::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| RunError::Server(e.to_string()))
}

/// `CHRONO_WS_GATEWAY`: `on` or unset/`off`.
fn gateway_enabled() -> Result<bool, ConfigError> {
    match std::env::var(vars::WS_GATEWAY).as_deref().map(str::trim) {
        Err(_) | Ok("") | Ok("off") => Ok(false),
        Ok("on") => Ok(true),
        Ok(other) => Err(ConfigError(format!(
            "{} must be `on` or `off`, not `{other}`",
            vars::WS_GATEWAY
        ))),
    }
}

/// Runs as the AI-chat Lambda until the runtime stops it (claims from the authorizer).
pub async fn run_lambda() -> Result<(), RunError> {
    use crate::server::{Mode, authenticator_from_env, pool_from_env};
    let settings = AiSettings::from_env()?;
    let db = pool_from_env(2, crate::db::ConnectPolicy::LAMBDA).await?;
    let sdk = aws_config::load_from_env().await;
    let state = super::http::AiState {
        service: settings.service(db, &sdk)?,
        auth: Some(authenticator_from_env(Mode::Lambda).await?),
        pusher: None,
        gateway: None,
    };
    lambda_http::run(super::http::chat_router(state))
        .await
        .map_err(|e| RunError::Server(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<AiSettings, ConfigError> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AiSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn local_is_the_default_and_bedrock_needs_both_model_ids() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.provider, Provider::Local);
        assert_eq!(s.tables, None);
        assert_eq!(s.db_role.as_deref(), Some("chrono_ro"));
        let e = settings(&[
            ("CHRONO_AI_PROVIDER", "bedrock"),
            ("CHRONO_GUARD_MODEL_ID", "g"),
        ])
        .unwrap_err();
        assert!(e.0.contains("CHRONO_MAIN_MODEL_ID"), "{e}");
        let s = settings(&[
            ("CHRONO_AI_PROVIDER", "bedrock"),
            ("CHRONO_GUARD_MODEL_ID", "g"),
            ("CHRONO_MAIN_MODEL_ID", "m"),
            ("CHRONO_AI_MODEL_TIMEOUT_MS", "1500"),
        ])
        .unwrap();
        assert_eq!(
            s.provider,
            Provider::Bedrock {
                guard: "g".into(),
                main: "m".into()
            }
        );
        assert_eq!(s.model_timeout, Duration::from_millis(1500));
        assert!(settings(&[("CHRONO_AI_PROVIDER", "openai")]).is_err());
    }

    #[test]
    fn tables_are_all_or_nothing() {
        assert!(settings(&[("CHRONO_SESSIONS_TABLE", "s")]).is_err());
        let s = settings(&[
            ("CHRONO_SESSIONS_TABLE", "s"),
            ("CHRONO_INTENT_CACHE_TABLE", "i"),
            ("CHRONO_CONVERSATIONS_TABLE", "c"),
        ])
        .unwrap();
        assert_eq!(s.tables.unwrap().conversations, "c");
    }
}
