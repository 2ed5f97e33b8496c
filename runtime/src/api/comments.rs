//! `/api/v1/cases/{case}/events/{id}/comments`: comments on an event, appended by any
//! analyst or admin of the case and never edited or removed (the database roles of the
//! application may only read and insert them).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::cases::audit;
use super::{ApiJson, ApiPath, AppError, AppState, ErrorBody, accessible_case, require_read};
use crate::auth::Principal;
use crate::model::Comment;

/// Longest comment, in characters.
pub const MAX_CHARS: usize = 4000;

/// Body of `POST .../comments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// The text, 1 to 4,000 characters.
    pub body: String,
}

/// Comments of an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentList {
    /// Oldest first.
    pub comments: Vec<Comment>,
}

/// The comments of event `id` (oldest first, at most 1,000).
pub(super) async fn of_event(
    state: &AppState,
    case: Uuid,
    id: i64,
) -> Result<Vec<Comment>, AppError> {
    Ok(sqlx::query_as(
        "SELECT id, author, body, created_at FROM event_comments \
         WHERE case_id = $1 AND event_id = $2 ORDER BY id LIMIT 1000",
    )
    .bind(case)
    .bind(id)
    .fetch_all(state.db())
    .await?)
}

/// 404 unless event `id` is in `case`.
async fn require_event(state: &AppState, case: Uuid, id: i64) -> Result<(), AppError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM events WHERE case_id = $1 AND id = $2")
            .bind(case)
            .bind(id)
            .fetch_optional(state.db())
            .await?;
    found.map(|_| ()).ok_or(AppError::NotFound("event"))
}

/// The comments on an event.
#[utoipa::path(get, path = "/api/v1/cases/{case}/events/{id}/comments", operation_id = "list_comments", tag = "events",
    params(("case" = Uuid, Path, description = "case id"), ("id" = i64, Path, description = "event id")),
    responses((status = 200, body = CommentList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, i64)>,
) -> Result<Json<CommentList>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    require_event(&state, case, id).await?;
    Ok(Json(CommentList {
        comments: of_event(&state, case, id).await?,
    }))
}

/// Adds a comment to an event.
#[utoipa::path(post, path = "/api/v1/cases/{case}/events/{id}/comments", operation_id = "create_comment", tag = "events",
    params(("case" = Uuid, Path, description = "case id"), ("id" = i64, Path, description = "event id")),
    request_body = NewComment,
    responses((status = 201, body = Comment), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, i64)>,
    ApiJson(body): ApiJson<NewComment>,
) -> Result<(StatusCode, Json<Comment>), AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let text = body.body.trim();
    if text.is_empty() || text.chars().count() > MAX_CHARS || text.contains('\0') {
        return Err(AppError::BadRequest {
            code: "invalid_request",
            message: format!("a comment is 1 to {MAX_CHARS} characters, without NUL"),
            path: Some("$.body".into()),
        });
    }
    let comment: Option<Comment> = sqlx::query_as(
        "INSERT INTO event_comments (event_id, case_id, author, body) \
         SELECT e.id, e.case_id, $3, $4 FROM events e WHERE e.case_id = $1 AND e.id = $2 \
         RETURNING id, author, body, created_at",
    )
    .bind(case)
    .bind(id)
    .bind(&p.sub)
    .bind(text)
    .fetch_optional(state.db())
    .await?;
    let comment = comment.ok_or(AppError::NotFound("event"))?;
    audit(
        &state,
        &p,
        Some(case),
        "event_commented",
        serde_json::json!({ "event_id": id, "comment_id": comment.id }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(comment)))
}
