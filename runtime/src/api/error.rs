//! The API's one error type: every failure a handler can return, each with a stable
//! machine code and a message the client may see. Causes (SQL errors, AWS errors) go to
//! the log, never to the client.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::filter::FilterError;
use crate::launcher::LaunchError;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the role does not allow this route.
    #[error("your roles do not allow this; it needs the `{0}` role")]
    Forbidden(&'static str),
    /// Unknown, or not yours (the same answer on purpose).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is malformed.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// What to fix.
        message: String,
        /// JSON path of the offending part, when known.
        path: Option<String>,
    },
    /// The resource is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// A multipart upload cannot be completed: parts are missing or of the wrong size.
    #[error("{0}")]
    UploadIncomplete(String),
    /// Only the creator of this resource (or an admin) may change it.
    #[error("only its creator or an admin may change this {0}")]
    NotOwner(&'static str),
    /// The pipeline cannot be started here.
    #[error("{0}")]
    PipelineUnavailable(String),
    /// A dependency (the database) cannot be reached.
    #[error("{0} is unavailable; try again shortly")]
    Unavailable(&'static str),
    /// A query ran into its statement timeout.
    #[error("the query took too long; narrow the time range or the filter")]
    Timeout,
    /// Refused before a handler ran: the body too large (413), the URI too long (414), the
    /// method not served on this path (405), the body's content type (415), a query string
    /// that does not parse (400).
    #[error("{message}")]
    Rejected {
        /// The HTTP status.
        status: StatusCode,
        /// Stable code ([`rejection_code`]).
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// Anything else; the cause is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

/// The stable code of a request refused with `status` before a handler ran.
pub fn rejection_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    }
}

/// How long a client should wait before retrying a 503 (`Retry-After`, seconds): about the
/// time a paused Aurora Serverless instance takes to resume (see [`crate::db::connect`]).
pub const RETRY_AFTER_SECS: u32 = 5;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code, message and (for invalid filters) the JSON path.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code: `unauthenticated`, `forbidden`, `not_found`, `invalid_request`,
    /// `invalid_filter`, `invalid_cursor`, `conflict`, `upload_incomplete`,
    /// `pipeline_unavailable`, `unavailable`, `query_timeout`, `payload_too_large`,
    /// `uri_too_long`, `method_not_allowed`, `unsupported_media_type`,
    /// `headers_too_large`, `internal`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// JSON path of the offending part of the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl AppError {
    /// HTTP status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::UploadIncomplete(_) => (StatusCode::CONFLICT, "upload_incomplete"),
            AppError::NotOwner(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::PipelineUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "pipeline_unavailable")
            }
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "query_timeout"),
            AppError::Rejected { status, code, .. } => (*status, code),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// A 400 with code `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code: "invalid_request",
            message: message.into(),
            path: None,
        }
    }

    /// A 500 whose cause is logged.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        AppError::Internal(cause.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let AppError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let path = match &self {
            AppError::BadRequest { path, .. } => path.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                path,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.code().as_deref() == Some("57014")
        {
            return AppError::Timeout;
        }
        // a refused login re-reads the secret; not reachable (resuming) is worth a retry
        crate::db::note_error(&e);
        if crate::db::classify(&e) != crate::db::Failure::Other {
            tracing::warn!(error = %e, "database not available");
            return AppError::Unavailable("the database");
        }
        AppError::internal(format!("database: {e}"))
    }
}

impl From<FilterError> for AppError {
    fn from(e: FilterError) -> Self {
        AppError::BadRequest {
            code: "invalid_filter",
            message: e.kind.to_string(),
            path: Some(e.path),
        }
    }
}

impl From<LaunchError> for AppError {
    fn from(e: LaunchError) -> Self {
        match e {
            LaunchError::Unavailable(m) => AppError::PipelineUnavailable(m),
            LaunchError::Failed(m) => AppError::internal(format!("pipeline start: {m}")),
        }
    }
}

impl AppError {
    /// A rejection of axum's with its status and text, as JSON with a stable code; a 422
    /// (well-formed JSON of the wrong shape) is a 400 like every other invalid request.
    pub fn rejected(status: StatusCode, message: String) -> Self {
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        AppError::Rejected {
            status,
            code: rejection_code(status),
            message,
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(e: JsonRejection) -> Self {
        AppError::rejected(e.status(), e.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        AppError::rejected(e.status(), e.body_text())
    }
}

impl From<axum::extract::rejection::BytesRejection> for AppError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        AppError::rejected(e.status(), e.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(_: PathRejection) -> Self {
        // A malformed id names nothing that exists.
        AppError::NotFound("resource")
    }
}
