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
use crate::storage::{self, StorageError, UploadedPart, source_key};

const EVIDENCE_COLUMNS: &str = "id, case_id, file_name, format, source_key, state, size_bytes, \
    part_size, records_seen, events_count, bad_records, errors, execution_id, created_by, \
    created_at, updated_at";

/// Largest file one presigned `PUT` may carry (S3's single-upload limit); bigger files go
/// in parts.
pub const MAX_SINGLE_PUT: i64 = 5 * 1024 * 1024 * 1024;
/// Most part URLs one request may ask for.
pub const MAX_PART_URLS: usize = 100;

/// Body of `POST .../evidence`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvidence {
    /// The file's name (1 to 255 characters).
    pub file_name: String,
    /// Optional format hint for the pipeline (`evtx`, `syslog`, `cloudtrail`, `plaso_csv`, ...).
    #[serde(default)]
    pub format: Option<String>,
    /// The file's size in bytes; required with `multipart` (at most 5 TiB), at most 5 GiB
    /// for a single `PUT`.
    #[serde(default)]
    pub size: Option<i64>,
    /// Upload in parts (recommended from 100 MB): the answer gives the part size, part URLs
    /// come from `POST .../upload/parts`, and `POST .../upload/complete` assembles the file.
    #[serde(default)]
    pub multipart: bool,
}

/// How to upload the file: one presigned `PUT`, or a multipart upload.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "method")]
pub enum Upload {
    /// `PUT` the whole file to `url`.
    #[serde(rename = "PUT")]
    Put {
        /// Presigned URL.
        url: String,
        /// When the URL expires.
        expires_at: DateTime<Utc>,
    },
    /// Cut the file in `part_count` parts of `part_size` bytes (the last one shorter), `PUT`
    /// each to the URL `POST .../upload/parts` gives for its number, then `POST
    /// .../upload/complete`.
    #[serde(rename = "MULTIPART")]
    Multipart {
        /// Bytes per part.
        part_size: i64,
        /// Number of parts (1 to 10,000).
        part_count: i64,
    },
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

/// Body of `POST .../upload/parts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartsRequest {
    /// Part numbers (1-based, at most 100 per request).
    pub parts: Vec<i32>,
}

/// A presigned URL for one part.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrl {
    /// 1-based part number.
    pub part_number: i32,
    /// `PUT` the part's bytes here.
    pub url: String,
    /// When the URL expires (ask again after).
    pub expires_at: DateTime<Utc>,
}

/// Presigned URLs for the parts asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrls {
    /// In the order asked.
    pub parts: Vec<PartUrl>,
}

/// One uploaded part: its number and the `ETag` header S3 answered its `PUT` with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    /// 1-based part number.
    pub part_number: i32,
    /// The part's `ETag` response header, as sent (quotes included).
    pub etag: String,
}

/// Body of `POST .../upload/complete`: every part of the upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteUpload {
    /// Each part once, in any order.
    pub parts: Vec<CompletedPart>,
}

fn bad(path: &str, message: impl Into<String>) -> AppError {
    AppError::BadRequest {
        code: "invalid_request",
        message: message.into(),
        path: Some(path.into()),
    }
}

/// Registers an evidence file (admin) and says how to upload it: a presigned S3 `PUT` URL,
/// or (`"multipart": true`) the part size of a multipart upload.
#[utoipa::path(post, path = "/api/v1/cases/{case}/evidence", operation_id = "create_evidence", tag = "evidence",
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
        return Err(bad("$.file_name", "file_name must be 1 to 255 characters"));
    }
    if let Some(f) = &body.format
        && (f.is_empty()
            || f.len() > 32
            || !f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(bad(
            "$.format",
            "format must be 1 to 32 letters, digits or underscores",
        ));
    }
    let part_size = match (body.multipart, body.size) {
        (true, None) => return Err(bad("$.size", "a multipart upload needs the file's size")),
        (true, Some(size)) => Some(
            storage::part_size_for(size)
                .ok_or_else(|| bad("$.size", "size must be 0 to 5 TiB (5497558138880 bytes)"))?,
        ),
        (false, Some(size)) if !(0..=MAX_SINGLE_PUT).contains(&size) => {
            return Err(bad(
                "$.size",
                "one PUT carries at most 5 GiB; upload bigger files with \"multipart\": true",
            ));
        }
        (false, _) => None,
    };
    let sources = state.0.sources.as_ref().ok_or(AppError::Unavailable(
        "evidence upload (CHRONO_SOURCES_BUCKET is not set)",
    ))?;
    let id = Uuid::now_v7();
    let key = source_key(case, id, &body.file_name);
    let (upload, upload_id) = match (part_size, body.size) {
        (Some(part_size), Some(size)) => {
            let upload_id = sources
                .create_multipart(&key)
                .await
                .map_err(AppError::internal)?;
            let upload = Upload::Multipart {
                part_size,
                part_count: storage::part_count(size, part_size),
            };
            (upload, Some(upload_id))
        }
        _ => {
            let presigned = sources
                .presign_put(&key)
                .await
                .map_err(AppError::internal)?;
            let upload = Upload::Put {
                url: presigned.url,
                expires_at: presigned.expires_at,
            };
            (upload, None)
        }
    };
    let evidence: Evidence = sqlx::query_as(&format!(
        "INSERT INTO evidence (id, case_id, file_name, format, source_key, created_by, \
         size_bytes, part_size, upload_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {EVIDENCE_COLUMNS}"
    ))
    .bind(id)
    .bind(case)
    .bind(&body.file_name)
    .bind(&body.format)
    .bind(&key)
    .bind(&p.sub)
    .bind(body.size)
    .bind(part_size)
    .bind(&upload_id)
    .fetch_one(state.db())
    .await?;
    audit(
        &state,
        &p,
        Some(case),
        "evidence_registered",
        serde_json::json!({ "evidence_id": id, "file_name": body.file_name,
                            "size": body.size, "multipart": body.multipart }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EvidenceUpload { evidence, upload }),
    ))
}

/// Lists a case's evidence.
#[utoipa::path(get, path = "/api/v1/cases/{case}/evidence", operation_id = "list_evidence", tag = "evidence",
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
#[utoipa::path(get, path = "/api/v1/cases/{case}/evidence/{id}", operation_id = "get_evidence", tag = "evidence",
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
/// evidence becomes `uploaded` (a multipart upload must have been completed; aborted
/// evidence cannot be processed); then the pipeline is started (Step Functions, or the local
/// worker) and the evidence becomes `processing`. If the start fails the evidence stays
/// `uploaded` and the error says why (503 `pipeline_unavailable` when nothing can process
/// here). Evidence already processing is a 409; done or failed evidence may be processed
/// again (the pipeline does not duplicate events).
#[utoipa::path(post, path = "/api/v1/cases/{case}/evidence/{id}/process", operation_id = "process_evidence", tag = "evidence",
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
    let current: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT state, source_key, upload_id FROM evidence \
         WHERE case_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(case)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (current_state, key, open_upload) = current.ok_or(AppError::NotFound("evidence"))?;
    match current_state.as_str() {
        "processing" => {
            return Err(AppError::Conflict(
                "this evidence is already being processed; wait for it to finish".into(),
            ));
        }
        "aborted" => {
            return Err(AppError::Conflict(
                "the upload of this evidence was aborted; register the file again".into(),
            ));
        }
        _ if open_upload.is_some() => {
            return Err(AppError::Conflict(
                "the multipart upload is still open; complete it first (POST .../upload/complete)"
                    .into(),
            ));
        }
        _ => {}
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

/// How evidence is being uploaded.
#[derive(Debug, sqlx::FromRow)]
struct UploadRow {
    state: String,
    source_key: String,
    upload_id: Option<String>,
    part_size: Option<i64>,
    size_bytes: Option<i64>,
}

/// An open multipart upload: object key, S3 upload id, part size, declared size.
struct OpenUpload {
    key: String,
    upload_id: String,
    part_size: i64,
    size: i64,
}

impl OpenUpload {
    fn part_count(&self) -> i64 {
        storage::part_count(self.size, self.part_size)
    }
}

/// The open multipart upload of evidence `id`; 409 when there is none (uploaded with one
/// `PUT`, completed, aborted).
async fn open_upload(state: &AppState, case: Uuid, id: Uuid) -> Result<OpenUpload, AppError> {
    let row: Option<UploadRow> = sqlx::query_as(
        "SELECT state, source_key, upload_id, part_size, size_bytes FROM evidence \
         WHERE case_id = $1 AND id = $2",
    )
    .bind(case)
    .bind(id)
    .fetch_optional(state.db())
    .await?;
    let row = row.ok_or(AppError::NotFound("evidence"))?;
    match (row.upload_id, row.part_size, row.size_bytes) {
        (Some(upload_id), Some(part_size), Some(size)) => Ok(OpenUpload {
            key: row.source_key,
            upload_id,
            part_size,
            size,
        }),
        (_, None, _) => Err(AppError::Conflict(
            "this evidence is uploaded with one PUT, not in parts".into(),
        )),
        _ => Err(AppError::Conflict(format!(
            "this evidence has no open multipart upload (state `{}`)",
            row.state
        ))),
    }
}

fn sources(state: &AppState) -> Result<&crate::storage::SourcesBucket, AppError> {
    state.0.sources.as_ref().ok_or(AppError::Unavailable(
        "evidence upload (CHRONO_SOURCES_BUCKET is not set)",
    ))
}

fn storage_error(e: StorageError) -> AppError {
    match e {
        StorageError::NoSuchUpload => AppError::Conflict(
            "S3 no longer holds this upload (completed or aborted meanwhile)".into(),
        ),
        StorageError::PartsRefused(m) => {
            AppError::UploadIncomplete(format!("{m}; upload those parts again, then complete"))
        }
        other => AppError::internal(other),
    }
}

/// Presigned URLs for parts of an open multipart upload (admin).
#[utoipa::path(post, path = "/api/v1/cases/{case}/evidence/{id}/upload/parts", operation_id = "presign_upload_parts", tag = "evidence",
    params(("case" = Uuid, Path, description = "case id"), ("id" = Uuid, Path, description = "evidence id")),
    request_body = PartsRequest,
    responses((status = 200, body = PartUrls), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn part_urls(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<PartsRequest>,
) -> Result<Json<PartUrls>, AppError> {
    require_admin(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let upload = open_upload(&state, case, id).await?;
    if body.parts.is_empty() || body.parts.len() > MAX_PART_URLS {
        return Err(bad(
            "$.parts",
            format!("ask for 1 to {MAX_PART_URLS} parts at a time"),
        ));
    }
    let count = upload.part_count();
    let mut parts = Vec::with_capacity(body.parts.len());
    for (i, &n) in body.parts.iter().enumerate() {
        if !(1..=count).contains(&i64::from(n)) {
            return Err(bad(
                &format!("$.parts[{i}]"),
                format!("part numbers of this upload are 1 to {count}"),
            ));
        }
        let signed = sources(&state)?
            .presign_part(&upload.key, &upload.upload_id, n)
            .await
            .map_err(AppError::internal)?;
        parts.push(PartUrl {
            part_number: n,
            url: signed.url,
            expires_at: signed.expires_at,
        });
    }
    Ok(Json(PartUrls { parts }))
}

/// The parts of a `count`-part upload sorted by number, or the 400/409 that says what is
/// wrong: a number out of range, a part twice, a malformed ETag, parts missing.
fn checked_parts(parts: &[CompletedPart], count: i64) -> Result<Vec<UploadedPart>, AppError> {
    let mut seen: Vec<UploadedPart> = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        if !(1..=count).contains(&i64::from(p.part_number)) {
            return Err(bad(
                &format!("$.parts[{i}].part_number"),
                format!("part numbers of this upload are 1 to {count}"),
            ));
        }
        let etag_ok =
            (1..=128).contains(&p.etag.len()) && p.etag.bytes().all(|b| b.is_ascii_graphic());
        if !etag_ok {
            return Err(bad(
                &format!("$.parts[{i}].etag"),
                "etag must be the part's ETag response header (1 to 128 printable characters)",
            ));
        }
        if seen.iter().any(|s| s.number == p.part_number) {
            return Err(bad(
                &format!("$.parts[{i}].part_number"),
                format!("part {} is listed twice", p.part_number),
            ));
        }
        seen.push(UploadedPart {
            number: p.part_number,
            etag: p.etag.clone(),
        });
    }
    seen.sort_by_key(|p| p.number);
    let missing: Vec<String> = (1..=count)
        .filter(|n| !seen.iter().any(|p| i64::from(p.number) == *n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        let shown = missing
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        return Err(AppError::UploadIncomplete(format!(
            "{} of {count} parts are missing (parts {shown}{}); upload them, then complete \
             with every part",
            missing.len(),
            if missing.len() > 20 { ", ..." } else { "" },
        )));
    }
    Ok(seen)
}

/// Completes a multipart upload (admin): S3 assembles the parts (checking every ETag and
/// that all parts but the last are at least 5 MiB); the evidence becomes `uploaded` with
/// the size S3 reports.
#[utoipa::path(post, path = "/api/v1/cases/{case}/evidence/{id}/upload/complete", operation_id = "complete_upload", tag = "evidence",
    params(("case" = Uuid, Path, description = "case id"), ("id" = Uuid, Path, description = "evidence id")),
    request_body = CompleteUpload,
    responses((status = 200, body = Evidence), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`upload_incomplete`: parts are missing or S3 refused them (upload them again); `conflict`: no open upload")))]
pub(super) async fn complete_upload(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<CompleteUpload>,
) -> Result<Json<Evidence>, AppError> {
    require_admin(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let upload = open_upload(&state, case, id).await?;
    let parts = checked_parts(&body.parts, upload.part_count())?;
    let actual = sources(&state)?
        .complete_multipart(&upload.key, &upload.upload_id, &parts)
        .await
        .map_err(storage_error)?;
    finish_upload(
        &state,
        &p,
        case,
        id,
        &upload.upload_id,
        "uploaded",
        Some(actual),
    )
    .await
}

/// Gives up an upload that has not been completed (admin): S3 drops the parts it holds
/// (multipart), and the evidence becomes `aborted`.
#[utoipa::path(delete, path = "/api/v1/cases/{case}/evidence/{id}/upload", operation_id = "abort_upload", tag = "evidence",
    params(("case" = Uuid, Path, description = "case id"), ("id" = Uuid, Path, description = "evidence id")),
    responses((status = 200, body = Evidence), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub(super) async fn abort_upload(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Evidence>, AppError> {
    require_admin(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let row: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT state, source_key, upload_id FROM evidence WHERE case_id = $1 AND id = $2",
    )
    .bind(case)
    .bind(id)
    .fetch_optional(state.db())
    .await?;
    let (current, key, upload_id) = row.ok_or(AppError::NotFound("evidence"))?;
    if current != "registered" {
        return Err(AppError::Conflict(format!(
            "only an upload still in progress can be aborted; this evidence is `{current}`"
        )));
    }
    if let Some(upload_id) = &upload_id {
        sources(&state)?
            .abort_multipart(&key, upload_id)
            .await
            .map_err(storage_error)?;
    }
    finish_upload(
        &state,
        &p,
        case,
        id,
        upload_id.as_deref().unwrap_or_default(),
        "aborted",
        None,
    )
    .await
}

/// Moves `registered` evidence whose open upload is `upload_id` (`""`: a single `PUT`) to
/// `new_state` (with the object's `size` when known) and forgets the upload id; 409 when
/// another request got there first.
async fn finish_upload(
    state: &AppState,
    p: &Principal,
    case: Uuid,
    id: Uuid,
    upload_id: &str,
    new_state: &'static str,
    size: Option<i64>,
) -> Result<Json<Evidence>, AppError> {
    let evidence: Option<Evidence> = sqlx::query_as(&format!(
        "UPDATE evidence SET state = $4, upload_id = NULL, updated_at = now(), \
         size_bytes = coalesce($5, size_bytes) \
         WHERE case_id = $1 AND id = $2 AND state = 'registered' \
         AND coalesce(upload_id, '') = $3 RETURNING {EVIDENCE_COLUMNS}"
    ))
    .bind(case)
    .bind(id)
    .bind(upload_id)
    .bind(new_state)
    .bind(size)
    .fetch_optional(state.db())
    .await?;
    let evidence = evidence.ok_or_else(|| {
        AppError::Conflict("the upload was completed or aborted by another request".into())
    })?;
    audit(
        state,
        p,
        Some(case),
        if new_state == "aborted" {
            "evidence_upload_aborted"
        } else {
            "evidence_upload_completed"
        },
        serde_json::json!({ "evidence_id": id }),
    )
    .await?;
    Ok(Json(evidence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: i32) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: format!("\"e{n}\""),
        }
    }

    fn code_and_path(e: AppError) -> (&'static str, Option<String>) {
        let code = e.status_and_code().1;
        match e {
            AppError::BadRequest { path, .. } => (code, path),
            _ => (code, None),
        }
    }

    #[test]
    fn every_part_once_in_range_with_an_etag() {
        let ok = checked_parts(&[part(3), part(1), part(2)], 3).unwrap();
        assert_eq!(ok.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(ok[0].etag, "\"e1\"");
        for (parts, want) in [
            (vec![part(1), part(3)], ("upload_incomplete", None)),
            (vec![], ("upload_incomplete", None)),
            (
                vec![part(1), part(4)],
                ("invalid_request", Some("$.parts[1].part_number".into())),
            ),
            (
                vec![part(1), part(1), part(2)],
                ("invalid_request", Some("$.parts[1].part_number".into())),
            ),
            (
                vec![CompletedPart {
                    part_number: 1,
                    etag: "a b".into(),
                }],
                ("invalid_request", Some("$.parts[0].etag".into())),
            ),
        ] {
            let got = checked_parts(&parts, 3).map(|_| ()).unwrap_err();
            assert_eq!(code_and_path(got), want, "{parts:?}");
        }
    }
}
