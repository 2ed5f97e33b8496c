//! The REST API (`chrono-api`): one axum [`Router`], served by `lambda_http` in Lambda and
//! by a local HTTP server in local mode.
//!
//! Every `/api/v1/cases/...` route authenticates ([`Principal`]), checks the role
//! (analyst or admin to read, label, comment and save filters; admin to create cases,
//! upload and process), and checks
//! access to the case: an unknown case and someone else's case both answer 404. All
//! failures are [`AppError`]s with stable codes. Queries run with the pool's statement
//! timeout.

mod cases;
mod comments;
mod error;
mod events;
mod evidence;
mod filters;
mod histogram;
pub mod openapi;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use sqlx::PgPool;
use uuid::Uuid;

pub use error::{AppError, ErrorBody, ErrorDetail};
pub use events::{Cursor, SearchPage, SearchParams, SearchQuery, compile_search};

use crate::auth::{AuthError, Authenticator, Principal};
use crate::launcher::PipelineLauncher;
use crate::storage::SourcesBucket;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    db: PgPool,
    auth: Authenticator,
    sources: Option<SourcesBucket>,
    launcher: Arc<dyn PipelineLauncher>,
    case_owners: CaseOwners,
}

/// The creator of every case seen, by id. A case's id and creator never change (no route
/// updates or deletes cases), so an access check need not ask the database again; the
/// map is emptied when it reaches [`CaseOwners::MAX`] entries.
#[derive(Debug, Default)]
struct CaseOwners(Mutex<HashMap<Uuid, String>>);

impl CaseOwners {
    const MAX: usize = 10_000;

    fn get(&self, id: Uuid) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    fn insert(&self, id: Uuid, owner: String) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(id, owner);
    }
}

impl AppState {
    /// State over a pool (configured with a statement timeout, see [`crate::db`]), an
    /// authenticator, the sources bucket (uploads fail with 503 without one) and the
    /// pipeline launcher.
    pub fn new(
        db: PgPool,
        auth: Authenticator,
        sources: Option<SourcesBucket>,
        launcher: Arc<dyn PipelineLauncher>,
    ) -> Self {
        AppState(Arc::new(Inner {
            db,
            auth,
            sources,
            launcher,
            case_owners: CaseOwners::default(),
        }))
    }

    /// The database pool.
    pub fn db(&self) -> &PgPool {
        &self.0.db
    }
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let cases = Router::new()
        .route("/", post(cases::create).get(cases::list))
        .route("/{case}", get(cases::get_one))
        .route(
            "/{case}/evidence",
            post(evidence::create).get(evidence::list),
        )
        .route("/{case}/evidence/{id}", get(evidence::get_one))
        .route("/{case}/evidence/{id}/process", post(evidence::process))
        .route(
            "/{case}/evidence/{id}/upload",
            delete(evidence::abort_upload),
        )
        .route(
            "/{case}/evidence/{id}/upload/parts",
            post(evidence::part_urls),
        )
        .route(
            "/{case}/evidence/{id}/upload/complete",
            post(evidence::complete_upload),
        )
        .route("/{case}/events/search", post(events::search))
        .route("/{case}/events/histogram", post(histogram::histogram))
        .route("/{case}/events/{id}", get(events::get_one))
        .route(
            "/{case}/events/{id}/labels/{label}",
            put(events::put_label).delete(events::delete_label),
        )
        .route(
            "/{case}/events/{id}/comments",
            get(comments::list).post(comments::create),
        )
        .route("/{case}/labels", get(events::labels))
        .route("/{case}/filters", get(filters::list).post(filters::create))
        .route(
            "/{case}/filters/{id}",
            get(filters::get_one)
                .put(filters::update)
                .delete(filters::delete),
        )
        .route("/{case}/devices", get(events::devices))
        .route("/{case}/identities", get(events::identities))
        .layer(axum::middleware::from_fn_with_state(
            Admission::for_pool(state.db()),
            admit,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/filter.schema.json", get(filter_schema))
        .nest("/api/v1/cases", cases)
        .fallback(|| async { AppError::NotFound("route") })
        .with_state(state)
        .layer(axum::middleware::from_fn(json_errors))
}

/// Admission of requests to the database routes: at most as many at once as the pool has
/// connections, the others wait their turn here (first come, first served) for up to
/// [`Admission::MAX_WAIT`]. Without it, a burst larger than the pool waits inside the
/// pool, whose acquire timeout is deliberately short ([`crate::db::connect::REQUEST_WAIT`]: a
/// database that is down answers 503 within a second) — so a healthy but busy database
/// answered 503 too (issue 18's load test: 64 clients on 16 connections). Here a busy
/// database makes requests wait; a database that is down still fails each admitted
/// request within the pool's second. Every handler holds at most one connection at a
/// time, so admitted requests never wait on each other inside the pool.
#[derive(Debug, Clone)]
pub struct Admission(Arc<tokio::sync::Semaphore>);

impl Admission {
    /// The longest a request waits for admission before a 503 `unavailable`.
    pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

    /// As many places as `pool` has connections.
    pub fn for_pool(pool: &PgPool) -> Admission {
        let places = pool.options().get_max_connections().max(1) as usize;
        Admission(Arc::new(tokio::sync::Semaphore::new(places)))
    }

    /// A place, once one is free; `None` after [`Admission::MAX_WAIT`].
    pub async fn enter(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        tokio::time::timeout(Admission::MAX_WAIT, self.0.acquire())
            .await
            .ok()?
            .ok()
    }
}

/// The [`Admission`] middleware.
pub async fn admit(
    State(admission): State<Admission>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match admission.enter().await {
        Some(_place) => next.run(request).await,
        None => AppError::Unavailable("the database (too many requests waiting)").into_response(),
    }
}

/// The longest request target (path and query) served, in bytes; longer ones get a 414.
/// API Gateway's own limit for an HTTP API's request line and headers together is 10,240
/// bytes (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html),
/// so no request of ours needs more.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Every error response is JSON with a stable code ([`ErrorBody`]): a request target over
/// [`MAX_URI_BYTES`] is refused with 414 here, and what axum answers before (or instead
/// of) a handler — 405 for a method a path does not serve, 413 for a body over the limit,
/// 400 for a query string that does not parse, 415 — is rewritten from its plain text
/// (or empty body) into [`AppError::Rejected`], keeping its headers (`Allow`). Responses
/// that are JSON already pass through untouched.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return AppError::rejected(
            http::StatusCode::URI_TOO_LONG,
            format!(
                "the request target is {target} bytes; at most {MAX_URI_BYTES} are served \
                 (send filters in the body)"
            ),
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_owned()
    } else {
        text
    };
    let mut json = AppError::rejected(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, description = "up"), (status = 503, body = ErrorBody)))]
async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, AppError> {
    sqlx::query("SELECT 1")
        .execute(state.db())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "health check: database unreachable");
            AppError::Unavailable("the database")
        })?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

/// The filter document's JSON Schema.
#[utoipa::path(get, path = "/api/v1/filter.schema.json", operation_id = "get_filter_schema", tag = "events",
    responses((status = 200, description = "JSON Schema of the filter document")))]
async fn filter_schema() -> impl axum::response::IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/schema+json")],
        crate::filter::json_schema(),
    )
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        state.0.auth.authenticate(parts).map_err(|e| match e {
            AuthError::Keys(m) => AppError::internal(m),
            other => AppError::Unauthenticated(other.to_string()),
        })
    }
}

/// Analyst or admin.
fn require_read(p: &Principal) -> Result<(), AppError> {
    if p.can_read() {
        Ok(())
    } else {
        Err(AppError::Forbidden("analyst"))
    }
}

/// Admin.
fn require_admin(p: &Principal) -> Result<(), AppError> {
    if p.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden("admin"))
    }
}

/// The id of case `case_id` if it exists and `p` may access it; 404 otherwise (both
/// cases alike).
async fn accessible_case(state: &AppState, p: &Principal, case_id: Uuid) -> Result<Uuid, AppError> {
    let owner = match state.0.case_owners.get(case_id) {
        Some(owner) => owner,
        None => {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT created_by FROM cases WHERE id = $1")
                    .bind(case_id)
                    .fetch_optional(state.db())
                    .await?;
            let owner = owner.ok_or(AppError::NotFound("case"))?;
            state.0.case_owners.insert(case_id, owner.clone());
            owner
        }
    };
    if p.may_access(case_id, &owner) {
        Ok(case_id)
    } else {
        Err(AppError::NotFound("case"))
    }
}

/// Path parameters whose parse failures are 404s (a malformed id names nothing).
#[derive(Debug)]
struct ApiPath<T>(T);

impl<T> FromRequestParts<AppState> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Path(v) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(v))
    }
}

/// JSON bodies whose rejections are [`AppError`]s.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
struct ApiJson<T>(T);
