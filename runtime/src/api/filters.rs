//! `/api/v1/cases/{case}/filters`: saved filters — a name and a filter document, shared
//! with everyone who may read the case, changed or removed only by their creator or an
//! admin. Documents are checked by the one validator ([`FilterDocument::parse`]) and
//! stored as sent.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::cases::audit;
use super::{ApiJson, ApiPath, AppError, AppState, ErrorBody, accessible_case, require_read};
use crate::auth::Principal;
use crate::filter::{FilterDocument, FilterError};

/// Most saved filters one case may hold.
pub const MAX_PER_CASE: i64 = 1000;

/// A saved filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct SavedFilter {
    /// Saved filter id.
    pub id: Uuid,
    /// Case id.
    pub case_id: Uuid,
    /// Name, unique per creator in the case.
    pub name: String,
    /// The filter document (JSON Schema at `/api/v1/filter.schema.json`).
    #[schema(value_type = Object)]
    pub document: sqlx::types::Json<Value>,
    /// `sub` of the creator (who, with admins, may change it).
    pub created_by: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST` and `PUT`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedFilterBody {
    /// Name, 1 to 100 characters.
    pub name: String,
    /// A filter document, as `POST .../events/search` takes it.
    #[schema(value_type = Object)]
    pub document: Value,
}

/// The saved filters of a case.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedFilterList {
    /// By name.
    pub filters: Vec<SavedFilter>,
}

const COLUMNS: &str = "id, case_id, name, document, created_by, created_at, updated_at";

/// The trimmed name and the validated document of a body; errors name the body's JSON path.
fn check(body: SavedFilterBody) -> Result<(String, Value), AppError> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.contains('\0') {
        return Err(AppError::BadRequest {
            code: "invalid_request",
            message: "name must be 1 to 100 characters".into(),
            path: Some("$.name".into()),
        });
    }
    FilterDocument::from_value(body.document.clone()).map_err(|e| {
        AppError::from(FilterError {
            path: e.path.replacen('$', "$.document", 1),
            ..e
        })
    })?;
    Ok((name, body.document))
}

fn duplicate(e: sqlx::Error) -> AppError {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("23505")
    {
        return AppError::Conflict(
            "you already saved a filter of this name in this case; pick another name".into(),
        );
    }
    e.into()
}

/// The case's saved filters.
#[utoipa::path(get, path = "/api/v1/cases/{case}/filters", operation_id = "list_filters", tag = "filters",
    params(("case" = Uuid, Path, description = "case id")),
    responses((status = 200, body = SavedFilterList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
) -> Result<Json<SavedFilterList>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let filters: Vec<SavedFilter> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM saved_filters WHERE case_id = $1 ORDER BY name, id LIMIT $2"
    ))
    .bind(case)
    .bind(MAX_PER_CASE)
    .fetch_all(state.db())
    .await?;
    Ok(Json(SavedFilterList { filters }))
}

/// Saves a filter (analyst or admin).
#[utoipa::path(post, path = "/api/v1/cases/{case}/filters", operation_id = "create_filter", tag = "filters",
    params(("case" = Uuid, Path, description = "case id")), request_body = SavedFilterBody,
    responses((status = 201, body = SavedFilter), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SavedFilterBody>,
) -> Result<(StatusCode, Json<SavedFilter>), AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let (name, document) = check(body)?;
    let saved: Option<SavedFilter> = sqlx::query_as(&format!(
        "INSERT INTO saved_filters (id, case_id, name, document, created_by) \
         SELECT $1, $2, $3, $4, $5 \
         WHERE (SELECT count(*) FROM saved_filters WHERE case_id = $2) < $6 \
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(case)
    .bind(&name)
    .bind(sqlx::types::Json(&document))
    .bind(&p.sub)
    .bind(MAX_PER_CASE)
    .fetch_optional(state.db())
    .await
    .map_err(duplicate)?;
    let saved = saved.ok_or_else(|| {
        AppError::Conflict(format!(
            "this case already holds {MAX_PER_CASE} saved filters; delete some first"
        ))
    })?;
    audit(
        &state,
        &p,
        Some(case),
        "saved_filter_created",
        serde_json::json!({ "filter_id": saved.id, "name": saved.name }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

async fn fetch(state: &AppState, case: Uuid, id: Uuid) -> Result<SavedFilter, AppError> {
    let found: Option<SavedFilter> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM saved_filters WHERE case_id = $1 AND id = $2"
    ))
    .bind(case)
    .bind(id)
    .fetch_optional(state.db())
    .await?;
    found.ok_or(AppError::NotFound("saved filter"))
}

/// 403 unless `p` created the filter or is an admin.
fn require_owner(p: &Principal, filter: &SavedFilter) -> Result<(), AppError> {
    if filter.created_by == p.sub || p.is_admin() {
        Ok(())
    } else {
        Err(AppError::NotOwner("saved filter"))
    }
}

/// One saved filter.
#[utoipa::path(get, path = "/api/v1/cases/{case}/filters/{id}", operation_id = "get_filter", tag = "filters",
    params(("case" = Uuid, Path, description = "case id"), ("id" = Uuid, Path, description = "saved filter id")),
    responses((status = 200, body = SavedFilter), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<SavedFilter>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    fetch(&state, case, id).await.map(Json)
}

/// Renames a saved filter and/or replaces its document (its creator or an admin).
#[utoipa::path(put, path = "/api/v1/cases/{case}/filters/{id}", operation_id = "update_filter", tag = "filters",
    params(("case" = Uuid, Path, description = "case id"), ("id" = Uuid, Path, description = "saved filter id")),
    request_body = SavedFilterBody,
    responses((status = 200, body = SavedFilter), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn update(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<SavedFilterBody>,
) -> Result<Json<SavedFilter>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    require_owner(&p, &fetch(&state, case, id).await?)?;
    let (name, document) = check(body)?;
    let saved: Option<SavedFilter> = sqlx::query_as(&format!(
        "UPDATE saved_filters SET name = $3, document = $4, updated_at = now() \
         WHERE case_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(case)
    .bind(id)
    .bind(&name)
    .bind(sqlx::types::Json(&document))
    .fetch_optional(state.db())
    .await
    .map_err(duplicate)?;
    let saved = saved.ok_or(AppError::NotFound("saved filter"))?;
    audit(
        &state,
        &p,
        Some(case),
        "saved_filter_updated",
        serde_json::json!({ "filter_id": id, "name": saved.name }),
    )
    .await?;
    Ok(Json(saved))
}

/// Deletes a saved filter (its creator or an admin).
#[utoipa::path(delete, path = "/api/v1/cases/{case}/filters/{id}", operation_id = "delete_filter", tag = "filters",
    params(("case" = Uuid, Path, description = "case id"), ("id" = Uuid, Path, description = "saved filter id")),
    responses((status = 204, description = "deleted"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let filter = fetch(&state, case, id).await?;
    require_owner(&p, &filter)?;
    sqlx::query("DELETE FROM saved_filters WHERE case_id = $1 AND id = $2")
        .bind(case)
        .bind(id)
        .execute(state.db())
        .await?;
    audit(
        &state,
        &p,
        Some(case),
        "saved_filter_deleted",
        serde_json::json!({ "filter_id": id, "name": filter.name }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
