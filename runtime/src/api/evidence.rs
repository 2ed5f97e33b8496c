//! `/api/v1/cases/{case}/evidence`: register an upload (admin; returns a presigned S3 PUT
//! URL signed with the file's SHA-256), list and read evidence with its processing state
//! and checksums, and start processing (admin), recorded as a durable job first.
//!
//! Reading evidence that is `processing` under a Step Functions execution asks Step
//! Functions about it now and then ([`reconcile`]): an execution that is gone, failed,
//! timed out or was aborted fails the evidence with the reason, so it can be processed
//! again.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::cases::audit_in;
use super::{
    ApiJson, ApiPath, AppError, AppState, ErrorBody, accessible_case, require_admin, require_read,
};
use crate::auth::Principal;
use crate::launcher::{ExecutionState, PipelineJob};
use crate::model::Evidence;
use crate::queue::{self, NewJob, Runner};
use crate::storage::{self, StorageError, UploadedPart, sha256_spellings, source_key};

const EVIDENCE_COLUMNS: &str = "id, case_id, file_name, file_name_original, format, \
    source_key, state, size_bytes, part_size, sha256, sha256_composite, sha256_verified_at, \
    records_seen, events_count, bad_records, errors, execution_id, created_by, created_at, \
    updated_at";

/// How long a Step Functions job is left alone after a check before it is asked about again.
const CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Evidence checked per list request (the rest on the next one).
const CHECKS_PER_LIST: usize = 5;

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
    /// The file's SHA-256, 64 hex digits: required for a single `PUT` (S3 refuses a body
    /// with another SHA-256); optional for a multipart upload, whose parts carry their
    /// own (given, it is verified before the evidence's events are stored; otherwise the
    /// first processing establishes it).
    #[serde(default)]
    pub sha256: Option<String>,
}

/// How to upload the file: one presigned `PUT`, or a multipart upload.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "method")]
pub enum Upload {
    /// `PUT` the whole file to `url` with exactly the `headers` given (they are signed:
    /// another content type is refused with 403, another body with 400 `BadDigest`).
    #[serde(rename = "PUT")]
    Put {
        /// Presigned URL.
        url: String,
        /// When the URL expires.
        expires_at: DateTime<Utc>,
        /// Headers to send with the `PUT` (`content-type`, `x-amz-checksum-sha256`).
        headers: BTreeMap<String, String>,
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
    /// The parts (at most 100 per request), each with its SHA-256.
    pub parts: Vec<PartRequest>,
}

/// One part to upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartRequest {
    /// 1-based part number.
    pub part_number: i32,
    /// The part's SHA-256, 64 hex digits (S3 refuses a part with another).
    pub sha256: String,
}

/// A presigned URL for one part.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrl {
    /// 1-based part number.
    pub part_number: i32,
    /// `PUT` the part's bytes here, with `headers`.
    pub url: String,
    /// When the URL expires (ask again after).
    pub expires_at: DateTime<Utc>,
    /// Headers to send with the `PUT` (signed: `x-amz-checksum-sha256`).
    pub headers: BTreeMap<String, String>,
}

/// Presigned URLs for the parts asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrls {
    /// In the order asked.
    pub parts: Vec<PartUrl>,
}

/// One uploaded part: its number, the `ETag` header S3 answered its `PUT` with, and its
/// SHA-256.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    /// 1-based part number.
    pub part_number: i32,
    /// The part's `ETag` response header, as sent (quotes included).
    pub etag: String,
    /// The part's SHA-256, 64 hex digits, as given for its URL.
    pub sha256: String,
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
    let file_name = crate::names::clean(&body.file_name);
    let name_len = file_name.name.chars().count();
    if name_len == 0 || name_len > 255 {
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
    let sha256 = match &body.sha256 {
        Some(hex) => Some(sha256_spellings(hex).ok_or_else(|| {
            bad(
                "$.sha256",
                "sha256 must be the file's SHA-256 as 64 hex digits",
            )
        })?),
        None if !body.multipart => {
            return Err(bad(
                "$.sha256",
                "sha256 is required: the file's SHA-256 as 64 hex digits (S3 verifies the upload against it)",
            ));
        }
        None => None,
    };
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
    let key = source_key(case, id, &file_name.name);
    let (upload, upload_id) = match (part_size, body.size, &sha256) {
        (Some(part_size), Some(size), _) => {
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
        (_, _, Some((_, b64))) => {
            let presigned = sources
                .presign_put(&key, b64)
                .await
                .map_err(AppError::internal)?;
            let upload = Upload::Put {
                url: presigned.url,
                expires_at: presigned.expires_at,
                headers: presigned.headers,
            };
            (upload, None)
        }
        _ => return Err(AppError::internal("an upload without a size or a checksum")),
    };
    let mut tx = state.db().begin().await?;
    let evidence: Evidence = sqlx::query_as(&format!(
        "INSERT INTO evidence (id, case_id, file_name, file_name_original, format, source_key, \
         created_by, size_bytes, part_size, upload_id, sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {EVIDENCE_COLUMNS}"
    ))
    .bind(id)
    .bind(case)
    .bind(&file_name.name)
    .bind(&file_name.original)
    .bind(&body.format)
    .bind(&key)
    .bind(&p.sub)
    .bind(body.size)
    .bind(part_size)
    .bind(&upload_id)
    .bind(sha256.as_ref().map(|(hex, _)| hex))
    .fetch_one(&mut *tx)
    .await?;
    audit_in(
        &mut tx,
        &p,
        Some(case),
        "evidence_registered",
        serde_json::json!({ "evidence_id": id, "file_name": file_name.name,
                            "file_name_original": file_name.original,
                            "sha256": evidence.sha256,
                            "size": body.size, "multipart": body.multipart }),
    )
    .await?;
    tx.commit().await?;
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
    let query = format!(
        "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE case_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT 1000"
    );
    let mut evidence: Vec<Evidence> = sqlx::query_as(&query)
        .bind(case)
        .fetch_all(state.db())
        .await?;
    let processing: Vec<Uuid> = evidence
        .iter()
        .filter(|e| e.state == "processing")
        .map(|e| e.id)
        .take(CHECKS_PER_LIST)
        .collect();
    let mut changed = false;
    for id in processing {
        changed |= reconcile(&state, id, CHECK_INTERVAL).await;
    }
    if changed {
        evidence = sqlx::query_as(&query)
            .bind(case)
            .fetch_all(state.db())
            .await?;
    }
    Ok(Json(EvidenceList { evidence }))
}

async fn read_one(state: &AppState, case: Uuid, id: Uuid) -> Result<Evidence, AppError> {
    let evidence: Option<Evidence> = sqlx::query_as(&format!(
        "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE case_id = $1 AND id = $2"
    ))
    .bind(case)
    .bind(id)
    .fetch_optional(state.db())
    .await?;
    evidence.ok_or(AppError::NotFound("evidence"))
}

/// One evidence: state, counts, checksums, first errors.
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
    let evidence = read_one(&state, case, id).await?;
    if evidence.state == "processing" && reconcile(&state, id, CHECK_INTERVAL).await {
        return read_one(&state, case, id).await.map(Json);
    }
    Ok(Json(evidence))
}

/// What to do about a Step Functions job that was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Nothing (still running, or just recorded and being started by its request).
    Wait,
    /// Start its execution (the request that recorded it did not get to).
    Start,
    /// Close it: `None` when it ended well, else fail the evidence with the reason.
    Close(Option<String>),
}

/// A job recorded this long ago without an execution is started by the next check.
const START_GRACE: Duration = Duration::from_secs(60);
/// A job that still has no execution this long after it was recorded fails.
const START_GIVE_UP: Duration = Duration::from_secs(15 * 60);

/// The verdict on a job with no execution yet, recorded `age` ago.
fn verdict_unstarted(age: Duration) -> Verdict {
    if age < START_GRACE {
        Verdict::Wait
    } else if age < START_GIVE_UP {
        Verdict::Start
    } else {
        Verdict::Close(Some(format!(
            "the pipeline execution could not be started within {} minutes; process the evidence again",
            START_GIVE_UP.as_secs() / 60
        )))
    }
}

/// The verdict on a job whose execution `arn` is in `state`, for evidence that is still
/// `processing`.
fn verdict_started(arn: &str, state: ExecutionState) -> Verdict {
    match state {
        ExecutionState::Running => Verdict::Wait,
        ExecutionState::Succeeded => Verdict::Close(Some(format!(
            "the pipeline execution {arn} succeeded without recording the evidence's result; \
             process it again"
        ))),
        ExecutionState::Ended(reason) => {
            Verdict::Close(Some(format!("{reason}; process the evidence again")))
        }
        ExecutionState::Gone => Verdict::Close(Some(format!(
            "the pipeline execution {arn} no longer exists; process the evidence again"
        ))),
    }
}

/// Asks Step Functions about the open job of `processing` evidence `id` (at most once per
/// `interval` across every API instance) and acts on the answer: starts a job whose
/// request never got to it, fails the evidence whose execution ended without finishing
/// it. Returns whether something changed. Errors are logged: a read never fails because
/// Step Functions did not answer.
async fn reconcile(state: &AppState, id: Uuid, interval: Duration) -> bool {
    if state.0.launcher.runner() != Ok(Runner::StepFunctions) {
        return false;
    }
    let job = match queue::due_for_check(state.db(), id, interval).await {
        Ok(Some(job)) => job,
        Ok(None) => return false,
        Err(e) => {
            tracing::warn!(error = %e, evidence_id = %id, "cannot check the pipeline job");
            return false;
        }
    };
    let verdict = match &job.execution_arn {
        None => {
            let age = (chrono::Utc::now() - job.created_at)
                .to_std()
                .unwrap_or_default();
            verdict_unstarted(age)
        }
        Some(arn) => match state.0.launcher.describe(arn.clone()).await {
            Ok(execution) => verdict_started(arn, execution),
            Err(e) => {
                tracing::warn!(error = %e, arn, "cannot describe the pipeline execution");
                Verdict::Wait
            }
        },
    };
    let result = match verdict {
        Verdict::Wait => return false,
        Verdict::Start => start_recorded(state, job.id).await.map(|_| true),
        Verdict::Close(reason) => queue::close_execution(state.db(), &job, reason.as_deref())
            .await
            .map_err(AppError::from),
    };
    match result {
        Ok(changed) => {
            if changed {
                tracing::warn!(evidence_id = %id, job = %job.id, "reconciled a stuck evidence");
            }
            changed
        }
        Err(e) => {
            tracing::warn!(error = %e, evidence_id = %id, "cannot reconcile the pipeline job");
            false
        }
    }
}

/// Starts the execution of recorded job `job_id` (named after it: a repeated start is
/// idempotent) and records its ARN.
async fn start_recorded(state: &AppState, job_id: Uuid) -> Result<String, AppError> {
    let row: Option<(Uuid, Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT j.case_id, j.evidence_id, j.source_key, e.sha256 FROM pipeline_jobs j \
         JOIN evidence e ON e.id = j.evidence_id WHERE j.id = $1",
    )
    .bind(job_id)
    .fetch_optional(state.db())
    .await?;
    let (case_id, evidence_id, source_key, sha256) = row.ok_or(AppError::NotFound("job"))?;
    let job = PipelineJob {
        case_id,
        evidence_id,
        source_key,
        sha256,
    };
    match state.0.launcher.start(job_id, job).await? {
        Some(arn) => {
            queue::set_execution(state.db(), job_id, &arn).await?;
            Ok(arn)
        }
        None => Ok(format!("local:{job_id}")),
    }
}

/// What `process` reads of the evidence (locked).
#[derive(sqlx::FromRow)]
struct ToProcess {
    state: String,
    source_key: String,
    upload_id: Option<String>,
    size_bytes: Option<i64>,
    sha256: Option<String>,
}

/// Starts processing (admin). Calling it says the upload is complete: `registered`
/// evidence becomes `uploaded` (a multipart upload must have been completed; aborted
/// evidence cannot be processed). The request is recorded as a durable job before it is
/// answered, and the evidence becomes `processing`: locally the job waits for the worker
/// (never refused because the worker is busy), in AWS its Step Functions execution starts
/// at once. 503 `pipeline_unavailable` when nothing can process here (nothing recorded).
/// Evidence already processing is a 409 — unless its execution ended without finishing
/// it, which fails it first; done or failed evidence may be processed again (the
/// pipeline does not duplicate events).
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
    let runner = state.0.launcher.runner();
    // an execution that ended without finishing the evidence is settled first
    reconcile(&state, id, Duration::ZERO).await;
    let mut tx = state.db().begin().await?;
    let current: Option<ToProcess> = sqlx::query_as(
        "SELECT state, source_key, upload_id, size_bytes, sha256 FROM evidence \
         WHERE case_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(case)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let ToProcess {
        state: current_state,
        source_key: key,
        upload_id: open_upload,
        size_bytes: size,
        sha256,
    } = current.ok_or(AppError::NotFound("evidence"))?;
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
        // the request says the upload is complete, whether or not processing can start
        sqlx::query(
            "UPDATE evidence SET state = 'uploaded', updated_at = now() \
             WHERE case_id = $1 AND id = $2",
        )
        .bind(case)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let runner = match runner {
        Ok(runner) => runner,
        Err(e) => {
            tx.commit().await?;
            return Err(e.into());
        }
    };
    // jobs left open by an earlier run whose evidence moved on (Step Functions closes
    // none of its own) give way to the new one
    sqlx::query(
        "UPDATE pipeline_jobs SET state = 'done', finished_at = now(), lease_owner = NULL, \
         lease_expires_at = NULL WHERE evidence_id = $1 AND state IN ('queued', 'running')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let job_id = queue::enqueue(
        &mut tx,
        &NewJob {
            evidence_id: id,
            case_id: case,
            source_key: &key,
            runner,
            size_bytes: size.unwrap_or(0),
            requested_by: &p.sub,
        },
    )
    .await?;
    let local_id = (runner == Runner::Local).then(|| format!("local:{job_id}"));
    let evidence: Evidence = sqlx::query_as(&format!(
        "UPDATE evidence SET state = 'processing', job_id = $3, execution_id = $4, \
         updated_at = now() WHERE case_id = $1 AND id = $2 RETURNING {EVIDENCE_COLUMNS}"
    ))
    .bind(case)
    .bind(id)
    .bind(job_id)
    .bind(&local_id)
    .fetch_one(&mut *tx)
    .await?;
    audit_in(
        &mut tx,
        &p,
        Some(case),
        "evidence_processing",
        serde_json::json!({ "evidence_id": id, "job_id": job_id, "runner": runner.as_str() }),
    )
    .await?;
    tx.commit().await?;
    if runner == Runner::Local {
        return Ok((StatusCode::ACCEPTED, Json(evidence)));
    }
    let job = PipelineJob {
        case_id: case,
        evidence_id: id,
        source_key: key,
        sha256,
    };
    match state.0.launcher.start(job_id, job).await {
        Ok(arn) => {
            if let Some(arn) = &arn {
                queue::set_execution(state.db(), job_id, arn).await?;
            }
            let evidence = Evidence {
                execution_id: arn,
                ..evidence
            };
            Ok((StatusCode::ACCEPTED, Json(evidence)))
        }
        Err(e) => {
            // Nothing runs: say so now and leave the evidence processable again.
            let reason = e.to_string();
            let mut tx = state.db().begin().await?;
            queue::fail_evidence(&mut tx, id, case, job_id, &reason).await?;
            sqlx::query(
                "UPDATE pipeline_jobs SET state = 'failed', error = $2, finished_at = now() \
                 WHERE id = $1",
            )
            .bind(job_id)
            .bind(&reason)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Err(e.into())
        }
    }
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
    for (i, part) in body.parts.iter().enumerate() {
        let n = part.part_number;
        if !(1..=count).contains(&i64::from(n)) {
            return Err(bad(
                &format!("$.parts[{i}].part_number"),
                format!("part numbers of this upload are 1 to {count}"),
            ));
        }
        let (_, b64) = sha256_spellings(&part.sha256).ok_or_else(|| {
            bad(
                &format!("$.parts[{i}].sha256"),
                "sha256 must be the part's SHA-256 as 64 hex digits",
            )
        })?;
        let signed = sources(&state)?
            .presign_part(&upload.key, &upload.upload_id, n, &b64)
            .await
            .map_err(AppError::internal)?;
        parts.push(PartUrl {
            part_number: n,
            url: signed.url,
            expires_at: signed.expires_at,
            headers: signed.headers,
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
        let Some((_, sha256_b64)) = sha256_spellings(&p.sha256) else {
            return Err(bad(
                &format!("$.parts[{i}].sha256"),
                "sha256 must be the part's SHA-256 as 64 hex digits, as given for its URL",
            ));
        };
        if seen.iter().any(|s| s.number == p.part_number) {
            return Err(bad(
                &format!("$.parts[{i}].part_number"),
                format!("part {} is listed twice", p.part_number),
            ));
        }
        seen.push(UploadedPart {
            number: p.part_number,
            etag: p.etag.clone(),
            sha256_b64,
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
    let completed = sources(&state)?
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
        Some(completed),
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
/// `new_state` (with the object's size and composite checksum when completed) and forgets
/// the upload id; 409 when another request got there first.
async fn finish_upload(
    state: &AppState,
    p: &Principal,
    case: Uuid,
    id: Uuid,
    upload_id: &str,
    new_state: &'static str,
    completed: Option<storage::Completed>,
) -> Result<Json<Evidence>, AppError> {
    let mut tx = state.db().begin().await?;
    let evidence: Option<Evidence> = sqlx::query_as(&format!(
        "UPDATE evidence SET state = $4, upload_id = NULL, updated_at = now(), \
         size_bytes = coalesce($5, size_bytes), sha256_composite = coalesce($6, sha256_composite) \
         WHERE case_id = $1 AND id = $2 AND state = 'registered' \
         AND coalesce(upload_id, '') = $3 RETURNING {EVIDENCE_COLUMNS}"
    ))
    .bind(case)
    .bind(id)
    .bind(upload_id)
    .bind(new_state)
    .bind(completed.as_ref().map(|c| c.size))
    .bind(completed.as_ref().and_then(|c| c.composite_sha256.clone()))
    .fetch_optional(&mut *tx)
    .await?;
    let evidence = evidence.ok_or_else(|| {
        AppError::Conflict("the upload was completed or aborted by another request".into())
    })?;
    audit_in(
        &mut tx,
        p,
        Some(case),
        if new_state == "aborted" {
            "evidence_upload_aborted"
        } else {
            "evidence_upload_completed"
        },
        serde_json::json!({ "evidence_id": id, "size": evidence.size_bytes,
                            "sha256_composite": evidence.sha256_composite }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(evidence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: i32) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: format!("\"e{n}\""),
            sha256: format!("{n:064x}"),
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
                    sha256: "0".repeat(64),
                }],
                ("invalid_request", Some("$.parts[0].etag".into())),
            ),
            (
                vec![CompletedPart {
                    part_number: 1,
                    etag: "\"e1\"".into(),
                    sha256: "not hex".into(),
                }],
                ("invalid_request", Some("$.parts[0].sha256".into())),
            ),
        ] {
            let got = checked_parts(&parts, 3).map(|_| ()).unwrap_err();
            assert_eq!(code_and_path(got), want, "{parts:?}");
        }
    }
}

#[cfg(test)]
mod reconcile_tests {
    use super::*;

    #[test]
    fn a_job_without_an_execution_is_started_late_and_failed_at_last() {
        assert_eq!(verdict_unstarted(Duration::from_secs(5)), Verdict::Wait);
        assert_eq!(verdict_unstarted(Duration::from_secs(61)), Verdict::Start);
        assert_eq!(
            verdict_unstarted(Duration::from_secs(14 * 60)),
            Verdict::Start
        );
        assert!(matches!(
            verdict_unstarted(Duration::from_secs(16 * 60)),
            Verdict::Close(Some(reason)) if reason.contains("could not be started")
        ));
    }

    #[test]
    fn an_execution_that_ended_without_finishing_fails_the_evidence_with_the_reason() {
        let arn = "arn:aws:states:eu-west-1:1:execution:m:j";
        assert_eq!(verdict_started(arn, ExecutionState::Running), Verdict::Wait);
        for (state, words) in [
            (ExecutionState::Gone, "no longer exists"),
            (ExecutionState::Succeeded, "without recording"),
            (
                ExecutionState::Ended("the pipeline execution was aborted: stop".into()),
                "was aborted: stop",
            ),
        ] {
            match verdict_started(arn, state) {
                Verdict::Close(Some(reason)) => {
                    assert!(reason.contains(words), "{reason}");
                    assert!(reason.contains("process"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
