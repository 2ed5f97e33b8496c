//! The two front doors of the chat handler, as one axum router:
//!
//! * `POST /api/v1/ai/chat` — JSON [`ChatRequest`] in, [`ChatReply`] out (the AI-chat
//!   Lambda in AWS, the filter-ai service locally);
//! * `GET /api/v1/ai/ws` — a WebSocket (local mode): each text message is a
//!   [`ChatRequest`], each answer a [`ChatReply`] (or `{"error": {...}}`). The token comes
//!   in the `Authorization` header or, for browsers, the `token` query parameter (as on the
//!   API Gateway WebSocket API's `$connect`, so the app connects the same way to both;
//!   `access_token` is accepted too);
//! * `POST /api/v1/ai/ws/gateway` — the API Gateway WebSocket API's integration (AWS), see
//!   [`super::gateway`]: the caller comes from the token the `$connect` authorizer passes
//!   in its context, verified again here; the reply is pushed back through the management
//!   API (`@connections`).
//!
//! The token is verified here (local doors and the gateway path) or trusted from API
//! Gateway's JWT authorizer (the AI-chat Lambda); the case comes from the request and is
//! checked against the caller's grants.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::catalog::CatalogError;
use super::engine::{ChatError, ChatReply, ChatRequest, ChatService};
use super::gateway::{GATEWAY_PATH, GatewayPusher};
use crate::api::AppError;
use crate::auth::{Authenticator, JwtVerifier, Principal};

/// Path of the HTTP chat route.
pub const CHAT_PATH: &str = "/api/v1/ai/chat";
/// Path of the local WebSocket.
pub const WS_PATH: &str = "/api/v1/ai/ws";
/// Shared state of the routes.
#[derive(Debug, Clone)]
pub struct AiState {
    /// The handler.
    pub service: ChatService,
    /// How callers of the chat route and the local WebSocket are authenticated; `None`:
    /// they answer 401.
    pub auth: Option<Authenticator>,
    /// Where API Gateway WebSocket replies go.
    pub pusher: Option<GatewayPusher>,
    /// Verifies the token API Gateway passes on the WebSocket integration path
    /// ([`GATEWAY_PATH`]); `None` (local mode, the AI-chat Lambda): the path is not served.
    pub gateway: Option<JwtVerifier>,
}

/// Every front door (the filter-ai service).
///
/// The API Gateway WebSocket path ([`GATEWAY_PATH`]) is served only with
/// `state.gateway` (filter-ai in AWS, `CHRONO_WS_GATEWAY`), and there only to requests
/// carrying a token that verifies ([`super::gateway`]). Elsewhere (local mode) the path
/// does not exist (404): a request with forged `x-chrono-*` headers reaches nothing.
pub fn router(state: AiState) -> Router {
    let behind_api_gateway = state.gateway.is_some();
    let mut routes = Router::new()
        .route(CHAT_PATH, post(chat))
        .route(WS_PATH, get(ws_upgrade));
    if behind_api_gateway {
        routes = routes.route(GATEWAY_PATH, post(super::gateway::gateway));
    }
    routes
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::new(state))
        .layer(axum::middleware::from_fn(crate::api::json_errors))
}

/// Only `POST /api/v1/ai/chat` (the AI-chat Lambda).
pub fn chat_router(state: AiState) -> Router {
    Router::new()
        .route(CHAT_PATH, post(chat))
        .with_state(Arc::new(state))
        .layer(axum::middleware::from_fn(crate::api::json_errors))
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
    let Some(auth) = &st.auth else {
        return Err(AppError::Unauthenticated(
            "this server does not verify tokens (no CHRONO_JWKS_FILE/CHRONO_JWKS_URL); \
             use the WebSocket API"
                .into(),
        ));
    };
    auth.authenticate(parts)
        .map_err(|e| AppError::Unauthenticated(e.to_string()))
}

fn parse_request(body: &[u8]) -> Result<ChatRequest, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        AppError::invalid(format!(
            "the body must be {{\"case_id\", \"question\", \"session_id\"?, \"tz\"?}}: {e}"
        ))
    })
}

/// Largest accepted message or body.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Asks the AI a question about a case: the answer is a filter (with its summary and
/// count), a question back, or a refusal. Served by the AI chat service (the AI-chat
/// Lambda in AWS, `chrono-filter-ai` locally), on the API's origin; the same messages go
/// over the WebSocket (`/api/v1/ai/ws` locally, the WebSocket API in AWS).
#[utoipa::path(post, path = "/api/v1/ai/chat", operation_id = "ai_chat", tag = "ai",
    request_body = ChatRequest,
    responses((status = 200, body = ChatReply), (status = 400, body = crate::api::ErrorBody),
              (status = 401, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody),
              (status = 404, body = crate::api::ErrorBody), (status = 503, body = crate::api::ErrorBody)))]
pub(crate) async fn chat(State(st): State<Arc<AiState>>, req: Request) -> Response {
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
        && let Some(token) = query.get("token").or_else(|| query.get("access_token"))
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

/// The reply text to one message body.
pub(crate) async fn answer(st: &AiState, principal: &Principal, body: &[u8]) -> String {
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
