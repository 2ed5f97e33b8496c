//! The two front doors of the chat handler, as one axum router:
//!
//! * `POST /api/v1/ai/chat` — JSON [`ChatRequest`] in, [`ChatReply`] out (the AI-chat
//!   Lambda in AWS, the filter-ai service locally);
//! * `GET /api/v1/ai/ws` — a WebSocket (local mode): each text message is a
//!   [`ChatRequest`], each answer a [`ChatReply`] (or `{"error": {...}}`). The token comes
//!   in the `Authorization` header or, for browsers, the `access_token` query parameter;
//! * `POST /api/v1/ai/ws/gateway` — the API Gateway WebSocket API's integration (AWS): the
//!   message body plus the `x-chrono-connection-id` header and the client's bearer token;
//!   the reply is pushed back through the management API (`@connections`,
//!   [`GatewayPusher`]) and the HTTP answer is empty.
//!
//! The token is always verified here (or trusted from API Gateway's JWT authorizer in the
//! Lambda); the case comes from the request and is checked against the token's grants.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::catalog::CatalogError;
use super::engine::{ChatError, ChatRequest, ChatService};
use crate::api::AppError;
use crate::auth::{Authenticator, Principal};

/// Path of the HTTP chat route.
pub const CHAT_PATH: &str = "/api/v1/ai/chat";
/// Path of the local WebSocket.
pub const WS_PATH: &str = "/api/v1/ai/ws";
/// Path of the API Gateway WebSocket integration.
pub const GATEWAY_PATH: &str = "/api/v1/ai/ws/gateway";
/// Header carrying the API Gateway connection id.
pub const CONNECTION_HEADER: &str = "x-chrono-connection-id";

/// Pushes replies to API Gateway WebSocket connections (`POST @connections/{id}`).
#[derive(Debug, Clone)]
pub struct GatewayPusher {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl GatewayPusher {
    /// A pusher over a management API client whose endpoint is the WebSocket API's
    /// callback URL (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
    pub fn new(client: aws_sdk_apigatewaymanagement::Client) -> Self {
        GatewayPusher { client }
    }

    /// Sends `body` to connection `id`.
    pub async fn push(&self, id: &str, body: &[u8]) -> Result<(), String> {
        self.client
            .post_to_connection()
            .connection_id(id)
            .data(aws_smithy_types::Blob::new(body.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string())
    }
}

/// Shared state of the routes.
#[derive(Debug, Clone)]
pub struct AiState {
    /// The handler.
    pub service: ChatService,
    /// How callers are authenticated.
    pub auth: Authenticator,
    /// Set in AWS: where WebSocket replies go.
    pub pusher: Option<GatewayPusher>,
}

/// Every front door (the filter-ai service).
pub fn router(state: AiState) -> Router {
    Router::new()
        .route(CHAT_PATH, post(chat))
        .route(WS_PATH, get(ws_upgrade))
        .route(GATEWAY_PATH, post(gateway))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(state))
}

/// Only `POST /api/v1/ai/chat` (the AI-chat Lambda).
pub fn chat_router(state: AiState) -> Router {
    Router::new()
        .route(CHAT_PATH, post(chat))
        .with_state(Arc::new(state))
}

/// The API's error for a chat failure.
pub fn app_error(e: ChatError) -> AppError {
    match e {
        ChatError::BadRequest(m) => AppError::invalid(m),
        ChatError::CaseNotFound => AppError::NotFound("case"),
        ChatError::Forbidden => AppError::Forbidden("analyst"),
        ChatError::ModelUnavailable(m) => {
            tracing::warn!(cause = %m, "model unavailable");
            AppError::Unavailable("the AI model")
        }
        ChatError::Store(e) => {
            tracing::error!(cause = %e, "session store failed");
            AppError::Unavailable("the session store")
        }
        ChatError::Database(CatalogError::Timeout) => AppError::Timeout,
        ChatError::Database(e) => AppError::internal(e),
    }
}

fn authenticate(st: &AiState, parts: &http::request::Parts) -> Result<Principal, AppError> {
    st.auth
        .authenticate(parts)
        .map_err(|e| AppError::Unauthenticated(e.to_string()))
}

fn parse_request(body: &[u8]) -> Result<ChatRequest, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        AppError::invalid(format!(
            "the body must be {{\"case_id\", \"question\", \"session_id\"?, \"tz\"?}}: {e}"
        ))
    })
}

const MAX_BODY: usize = 64 * 1024;

async fn chat(State(st): State<Arc<AiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let principal = match authenticate(&st, &parts) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return AppError::invalid("the body is too large").into_response(),
    };
    let request = match parse_request(&bytes) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match st.service.handle(&principal, request).await {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => app_error(e).into_response(),
    }
}

async fn ws_upgrade(
    State(st): State<Arc<AiState>>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
    req: Request,
) -> Response {
    let (mut parts, _) = req.into_parts();
    if !parts.headers.contains_key(http::header::AUTHORIZATION)
        && let Some(token) = query.get("access_token")
        && let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {token}"))
    {
        parts.headers.insert(http::header::AUTHORIZATION, v);
    }
    let principal = match authenticate(&st, &parts) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    ws.max_message_size(MAX_BODY)
        .on_upgrade(move |socket| serve_socket(st, principal, socket))
}

/// The JSON text sent for a failed message (same shape as HTTP error bodies).
fn error_text(e: AppError) -> String {
    let (_, code) = e.status_and_code();
    json!({"error": {"code": code, "message": e.to_string()}}).to_string()
}

async fn answer(st: &AiState, principal: &Principal, body: &[u8]) -> String {
    let request = match parse_request(body) {
        Ok(r) => r,
        Err(e) => return error_text(e),
    };
    match st.service.handle(principal, request).await {
        Ok(reply) => serde_json::to_string(&reply).unwrap_or_default(),
        Err(e) => error_text(app_error(e)),
    }
}

async fn serve_socket(st: Arc<AiState>, principal: Principal, mut socket: WebSocket) {
    while let Some(msg) = socket.recv().await {
        let text = match msg {
            Ok(Message::Text(t)) => answer(&st, &principal, t.as_bytes()).await,
            Ok(Message::Binary(b)) => answer(&st, &principal, &b).await,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        if socket.send(Message::Text(text.into())).await.is_err() {
            break;
        }
    }
}

async fn gateway(State(st): State<Arc<AiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(pusher) = st.pusher.clone() else {
        return AppError::Unavailable("the WebSocket callback (CHRONO_WS_CALLBACK_URL)")
            .into_response();
    };
    let Some(connection) = parts
        .headers
        .get(CONNECTION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
    else {
        return AppError::invalid(format!("missing `{CONNECTION_HEADER}` header")).into_response();
    };
    let principal = match authenticate(&st, &parts) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return AppError::invalid("the body is too large").into_response(),
    };
    let text = answer(&st, &principal, &bytes).await;
    match pusher.push(&connection, text.as_bytes()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(cause) => {
            tracing::warn!(%cause, connection, "cannot push the reply to the connection");
            AppError::Unavailable("the WebSocket connection").into_response()
        }
    }
}
