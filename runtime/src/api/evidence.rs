//! `/api/v1/cases/{case}/evidence`: register an upload (admin; returns a presigned S3 PUT
//! URL), list and read evidence with its processing state, and start processing (admin).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::cases::audit;
use super::{
    ApiJson, ApiPath, AppError, AppState, ErrorBody, accessible_case, require_admin, require_read,
};
use crate::auth::Principal;
use crate::launcher::PipelineJob;
use crate::model::Evidence;
use crate::storage::source_key;

const EVIDENCE_COLUMNS: &str = "id, case_id, file_name, format, source_key, state, events_count, \
    bad_records, errors, execution_id, created_by, created_at, updated_at";

/// Body of `POST .../evidence`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvidence {
    /// The file's name (1 to 255 characters).
    pub file_name: String,
    /// Optional format hint for the pipeline (`evtx`, `syslog`, `cloudtrail`, `plaso_csv`, ...).
    #[serde(default)]
    pub format: Option<String>,
}

/// Where and how to upload the file.
#[derive(Debug, Serialize, ToSchema)]
pub struct Upload {
    /// Always `PUT`.
    pub method: &'static str,
    /// Presigned URL.
    pub url: String,
    /// When the URL expires.
    pub expires_at: DateTime<Utc>,
}

/// A registered evidence and its upload URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceUpload {
    /// The evidence (state `registered`).
    pub evidence: Evidence,
    /// Upload instructions.
    pub upload: Upload,
}

/// Evidence of a case.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceList {
    /// Evidence, newest first.
    pub evidence: Vec<Evidence>,
}

/// Registers an evidence file and returns a presigned S3 PUT URL for it (admin).
#[utoipa::path(post, path = "/api/v1/cases/{case}/evidence", tag = "evidence",
    params(("case" = Uuid, Path, description = "case id")), request_body = NewEvidence,
    responses((status = 201, body = EvidenceUpload), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewEvidence>,
) -> Result<(StatusCode, Json<EvidenceUpload>), AppError> {
    require_admin(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let name_len = body.file_name.chars().count();
    if name_len == 0 || name_len > 255 || body.file_name.contains('\0') {
        return Err(AppError::BadRequest {
            code: "invalid_request",
            message: "file_name must be 1 to 255 characters".into(),
            path: Some("$.file_name".into()),
        });
    }
    if let Some(f) = &body.format
        && (f.is_empty()
            || f.len() > 32
            || !f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(AppError::BadRequest {
            code: "invalid_request",
            message: "format must be 1 to 32 letters, digits or underscores".into(),
            path: Some("$.format".into()),
        });
    }
    let sources = state.0.sources.as_ref().ok_or(AppError::Unavailable(
        "evidence upload (CHRONO_SOURCES_BUCKET is not set)",
    ))?;
    let id = Uuid::now_v7();
    let key = source_key(case, id, &body.file_name);
    let presigned = sources
        .presign_put(&key)
        .await
        .map_err(AppError::internal)?;
    let evidence: Evidence = sqlx::query_as(&format!(
        "INSERT INTO evidence (id, case_id, file_name, format, source_key, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {EVIDENCE_COLUMNS}"
    ))
    .bind(id)
    .bind(case)
    .bind(&body.file_name)
    .bind(&body.format)
    .bind(&key)
    .bind(&p.sub)
    .fetch_one(state.db())
    .await?;
    audit(
        &state,
        &p,
        Some(case),
        "evidence_registered",
        serde_json::json!({ "evidence_id": id, "file_name": body.file_name }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EvidenceUpload {
            evidence,
            upload: Upload {
                method: "PUT",
                url: presigned.url,
                expires_at: presigned.expires_at,
            },
        }),
    ))
}

/// Lists a case's evidence.
#[utoipa::path(get, path = "/api/v1/cases/{case}/evidence", tag = "evidence",
    params(("case" = Uuid, Path, description = "case id")),
    responses((status = 200, body = EvidenceList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
) -> Result<Json<EvidenceList>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let evidence: Vec<Evidence> = sqlx::query_as(&format!(
        "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE case_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT 1000"
    ))
    .bind(case)
    .fetch_all(state.db())
    .await?;
    Ok(Json(EvidenceList { evidence }))
}

/// One evidence: state, counts, first errors.
#[utoipa::path(get, path = "/api/v1/cases/{case}/evidence/{id}", tag = "evidence",
    params(("case" = Uuid, Path, description = "case id"), ("id" = Uuid, Path, description = "evidence id")),
    responses((status = 200, body = Evidence), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Evidence>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let evidence: Option<Evidence> = sqlx::query_as(&format!(
        "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE case_id = $1 AND id = $2"
    ))
    .bind(case)
    .bind(id)
    .fetch_optional(state.db())
    .await?;
    evidence.map(Json).ok_or(AppError::NotFound("evidence"))
}

/// Starts processing (admin). Calling it says the upload is complete: `registered`
/// evidence becomes `uploaded`; then the pipeline is started (Step Functions, or the local
/// worker) and the evidence becomes `processing`. If the start fails the evidence stays
/// `uploaded` and the error says why (503 `pipeline_unavailable` when nothing can process
/// here). Evidence already processing is a 409; done or failed evidence may be processed
/// again (the pipeline does not duplicate events).
#[utoipa::path(post, path = "/api/v1/cases/{case}/evidence/{id}/process", tag = "evidence",
    params(("case" = Uuid, Path, description = "case id"), ("id" = Uuid, Path, description = "evidence id")),
    responses((status = 202, body = Evidence), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn process(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<Evidence>), AppError> {
    require_admin(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let mut tx = state.db().begin().await?;
    let current: Option<(String, String)> = sqlx::query_as(
        "SELECT state, source_key FROM evidence WHERE case_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(case)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (current_state, key) = current.ok_or(AppError::NotFound("evidence"))?;
    if current_state == "processing" {
        return Err(AppError::Conflict(
            "this evidence is already being processed; wait for it to finish".into(),
        ));
    }
    if current_state == "registered" {
        sqlx::query(
            "UPDATE evidence SET state = 'uploaded', updated_at = now() \
             WHERE case_id = $1 AND id = $2",
        )
        .bind(case)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let started = state
        .0
        .launcher
        .start(PipelineJob {
            case_id: case,
            evidence_id: id,
            source_key: key,
        })
        .await;
    let execution = match started {
        Ok(execution) => execution,
        Err(e) => {
            tx.commit().await?;
            return Err(e.into());
        }
    };
    let evidence: Evidence = sqlx::query_as(&format!(
        "UPDATE evidence SET state = 'processing', execution_id = $3, updated_at = now() \
         WHERE case_id = $1 AND id = $2 RETURNING {EVIDENCE_COLUMNS}"
    ))
    .bind(case)
    .bind(id)
    .bind(&execution)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    audit(
        &state,
        &p,
        Some(case),
        "evidence_processing",
        serde_json::json!({ "evidence_id": id, "execution_id": execution }),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(evidence)))
}
