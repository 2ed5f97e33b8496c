//! `/api/v1/cases`: create (admin), list and read (cases the caller may access).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    ApiJson, ApiPath, AppError, AppState, ErrorBody, accessible_case, require_admin, require_read,
};
use crate::auth::{CaseGrant, Principal};
use crate::model::Case;

/// Body of `POST /api/v1/cases`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// Name, 1 to 200 characters.
    pub name: String,
    /// Free text, up to 10,000 characters.
    #[serde(default)]
    pub description: String,
}

/// The cases the caller may access, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseList {
    /// Cases.
    pub cases: Vec<Case>,
}

/// Creates a case (admin).
#[utoipa::path(post, path = "/api/v1/cases", operation_id = "create_case", tag = "cases", request_body = NewCase,
    responses((status = 201, body = Case), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<NewCase>,
) -> Result<(StatusCode, Json<Case>), AppError> {
    require_admin(&p)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::BadRequest {
            code: "invalid_request",
            message: "name must be 1 to 200 characters".into(),
            path: Some("$.name".into()),
        });
    }
    if body.description.chars().count() > 10_000
        || body.description.contains('\0')
        || name.contains('\0')
    {
        return Err(AppError::BadRequest {
            code: "invalid_request",
            message: "description must be at most 10000 characters, without NUL".into(),
            path: Some("$.description".into()),
        });
    }
    let case: Case = sqlx::query_as(
        "INSERT INTO cases (id, name, description, created_by) VALUES ($1, $2, $3, $4) \
         RETURNING id, name, description, created_by, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(&body.description)
    .bind(&p.sub)
    .fetch_one(state.db())
    .await?;
    audit(
        &state,
        &p,
        Some(case.id),
        "case_created",
        serde_json::json!({ "name": case.name }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(case)))
}

/// Lists the cases the caller may access.
#[utoipa::path(get, path = "/api/v1/cases", operation_id = "list_cases", tag = "cases",
    responses((status = 200, body = CaseList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<CaseList>, AppError> {
    require_read(&p)?;
    let (all, ids) = match &p.cases {
        CaseGrant::All => (true, Vec::new()),
        CaseGrant::Some(ids) => (false, ids.clone()),
    };
    let cases: Vec<Case> = sqlx::query_as(
        "SELECT id, name, description, created_by, created_at FROM cases \
         WHERE $1 OR id = ANY($2) OR created_by = $3 ORDER BY created_at DESC, id DESC LIMIT 1000",
    )
    .bind(all)
    .bind(&ids)
    .bind(&p.sub)
    .fetch_all(state.db())
    .await?;
    Ok(Json(CaseList { cases }))
}

/// One case.
#[utoipa::path(get, path = "/api/v1/cases/{case}", operation_id = "get_case", tag = "cases",
    params(("case" = Uuid, Path, description = "case id")),
    responses((status = 200, body = Case), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
) -> Result<Json<Case>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let case: Case = sqlx::query_as(
        "SELECT id, name, description, created_by, created_at FROM cases WHERE id = $1",
    )
    .bind(case)
    .fetch_optional(state.db())
    .await?
    .ok_or(AppError::NotFound("case"))?;
    Ok(Json(case))
}

/// Appends to the audit log.
pub(super) async fn audit(
    state: &AppState,
    p: &Principal,
    case_id: Option<Uuid>,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    let mut conn = state.db().acquire().await?;
    audit_in(&mut conn, p, case_id, action, detail).await
}

/// Appends to the audit log in the caller's transaction (the entry and what it records
/// commit together).
pub(super) async fn audit_in(
    conn: &mut sqlx::PgConnection,
    p: &Principal,
    case_id: Option<Uuid>,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    sqlx::query("SELECT chrono_audit($1, $2, $3, $4)")
        .bind(&p.sub)
        .bind(case_id)
        .bind(action)
        .bind(detail)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
