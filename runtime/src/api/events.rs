//! `/api/v1/cases/{case}/events`, `/devices`, `/identities`: the timeline search (a filter
//! document → one keyset-paginated page), one event with its labels, labels, and the
//! case's devices and identities.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::cases::audit;
use super::{ApiPath, AppError, AppState, ErrorBody, accessible_case, require_read};
use crate::auth::Principal;
use crate::filter::{self, EVENT_COLUMNS, EVENT_FROM, FilterDocument, Keyset, ResolveCtx};
use crate::model::{Comment, Device, Event, EventRow, Identity, Label};

/// Query parameters of the search.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// IANA time zone for local times and calendar days (default UTC).
    pub tz: Option<String>,
}

/// The `?tz=` parameter: an IANA time zone, UTC when absent.
pub(super) fn time_zone(name: Option<&str>) -> Result<chrono_tz::Tz, AppError> {
    match name {
        None => Ok(chrono_tz::Tz::UTC),
        Some(name) => name.parse().map_err(|_| AppError::BadRequest {
            code: "invalid_request",
            message: "tz must be an IANA time zone such as Europe/Berlin".into(),
            path: Some("tz".into()),
        }),
    }
}

/// Where a page ends, and the "now" the first page resolved relative times against (so
/// every page of one search sees the same range). Opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last event returned.
    pub after: Keyset,
    /// The pinned "now".
    pub now: DateTime<Utc>,
}

impl Cursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "v1:{}:{}:{}",
            self.after.ts.timestamp_micros(),
            self.after.id,
            self.now.timestamp_micros()
        ))
    }

    /// Parses [`Cursor::encode`]'s output.
    pub fn decode(text: &str) -> Option<Cursor> {
        let raw = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
        let raw = std::str::from_utf8(&raw).ok()?;
        let mut parts = raw.split(':');
        if parts.next()? != "v1" {
            return None;
        }
        // A crafted cursor may name any instant chrono holds; PostgreSQL's timestamptz
        // stops at 4713 BC, and no event is older than year 1 or newer than 9999.
        let instant = |micros: &str| {
            DateTime::from_timestamp_micros(micros.parse().ok()?)
                .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
        };
        let ts = instant(parts.next()?)?;
        let id = parts.next()?.parse().ok()?;
        let now = instant(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Cursor {
            after: Keyset { ts, id },
            now,
        })
    }
}

/// The resolved time range of a search.
#[derive(Debug, Serialize, ToSchema)]
pub struct Range {
    /// Earliest instant, if bounded.
    pub from: Option<DateTime<Utc>>,
    /// Latest instant, if bounded.
    pub to: Option<DateTime<Utc>>,
}

/// One page of the timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPage {
    /// Events in the requested order.
    pub events: Vec<Event>,
    /// Pass as `?cursor=` with the same filter for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// The time range used, in UTC.
    pub range: Range,
}

/// A search request compiled: the one statement [`search`] runs for it.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The statement and its bound parameters (one row more than a page).
    pub query: filter::CompiledQuery,
    /// The "now" relative times were resolved against (pinned by the cursor after the
    /// first page).
    pub now: DateTime<Utc>,
    /// Whether this is a search's first page (no cursor): the one that is audited.
    pub first_page: bool,
}

/// Compiles a search request — the filter document `body`, the `?cursor=` and `?tz=` of
/// `params` — in case `case` (whose access is checked already) into the statement the
/// search runs. Public so that the load benchmark runs exactly the API's SQL.
pub fn compile_search(
    body: &[u8],
    case: Uuid,
    params: &SearchParams,
) -> Result<SearchQuery, AppError> {
    let doc = FilterDocument::parse(body)?;
    let tz = time_zone(params.tz.as_deref())?;
    let cursor = match params.cursor.as_deref() {
        None => None,
        Some(text) => Some(Cursor::decode(text).ok_or(AppError::BadRequest {
            code: "invalid_cursor",
            message: "the cursor is not one this API returned; restart from the first page".into(),
            path: Some("cursor".into()),
        })?),
    };
    let now = cursor
        .map(|c| c.now)
        .unwrap_or_else(|| Utc::now().trunc_subsecs(6));
    let ctx = ResolveCtx { now, tz };
    let query = filter::compile_page(&doc, case, &ctx, cursor.as_ref().map(|c| &c.after))?;
    Ok(SearchQuery {
        query,
        now,
        first_page: cursor.is_none(),
    })
}

/// Searches the timeline with a filter document (see `/api/v1/filter.schema.json`).
#[utoipa::path(post, path = "/api/v1/cases/{case}/events/search", operation_id = "search_events", tag = "events",
    params(("case" = Uuid, Path, description = "case id"), SearchParams),
    request_body(content = Object, description = "a filter document (JSON Schema at /api/v1/filter.schema.json)"),
    responses((status = 200, body = SearchPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn search(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
    Query(params): Query<SearchParams>,
    body: Bytes,
) -> Result<Json<SearchPage>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let SearchQuery {
        query: q,
        now,
        first_page,
    } = compile_search(&body, case, &params)?;
    let args = q.arguments().map_err(AppError::internal)?;
    let mut rows: Vec<EventRow> = sqlx::query_as_with(&q.sql, args)
        .fetch_all(state.db())
        .await?;
    if first_page {
        // who searched what (the first page; later pages continue the same search)
        let filter: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        audit(
            &state,
            &p,
            Some(case),
            "events_searched",
            serde_json::json!({ "filter": filter, "tz": params.tz, "rows": rows.len() }),
        )
        .await?;
    }
    let more = rows.len() > q.page_size as usize;
    rows.truncate(q.page_size as usize);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(
            Cursor {
                after: Keyset {
                    ts: last.ts,
                    id: last.id,
                },
                now,
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(Json(SearchPage {
        events: rows.into_iter().map(Event::from).collect(),
        next_cursor,
        range: Range {
            from: q.range.from,
            to: q.range.to,
        },
    }))
}

/// The evidence file an event came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct EvidenceRef {
    /// Evidence id.
    pub id: Uuid,
    /// File name as uploaded.
    pub file_name: String,
    /// Format hint given at upload, if any.
    pub format: Option<String>,
}

/// One event with where it came from, its labels and comments.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    /// The event (its `provenance` says which file inside the evidence and which record).
    #[serde(flatten)]
    pub event: Event,
    /// The evidence file (`provenance.evidence_id`).
    pub evidence: EvidenceRef,
    /// Labels, by every user: `star` marks an event, any other name is a tag.
    pub labels: Vec<Label>,
    /// Comments, oldest first.
    pub comments: Vec<Comment>,
}

/// One event.
#[utoipa::path(get, path = "/api/v1/cases/{case}/events/{id}", operation_id = "get_event", tag = "events",
    params(("case" = Uuid, Path, description = "case id"), ("id" = i64, Path, description = "event id")),
    responses((status = 200, body = EventDetail), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id)): ApiPath<(Uuid, i64)>,
) -> Result<Json<EventDetail>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let row: Option<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM {EVENT_FROM} WHERE e.case_id = $1 AND e.id = $2"
    ))
    .bind(case)
    .bind(id)
    .fetch_optional(state.db())
    .await?;
    let row = row.ok_or(AppError::NotFound("event"))?;
    let evidence: EvidenceRef =
        sqlx::query_as("SELECT id, file_name, format FROM evidence WHERE id = $1")
            .bind(row.evidence_id)
            .fetch_one(state.db())
            .await?;
    let labels: Vec<Label> = sqlx::query_as(
        "SELECT label, user_sub, note, created_at FROM event_labels \
         WHERE case_id = $1 AND event_id = $2 ORDER BY created_at, user_sub, label",
    )
    .bind(case)
    .bind(id)
    .fetch_all(state.db())
    .await?;
    let comments = super::comments::of_event(&state, case, id).await?;
    Ok(Json(EventDetail {
        event: row.into(),
        evidence,
        labels,
        comments,
    }))
}

/// Optional body of `PUT .../labels/{label}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelBody {
    /// A note (the comment text), up to 4,000 characters.
    pub note: Option<String>,
}

fn check_label(label: &str) -> Result<(), AppError> {
    let ok = (1..=64).contains(&label.chars().count())
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(AppError::BadRequest {
            code: "invalid_request",
            message: "a label is 1 to 64 letters, digits or _ - . :".into(),
            path: Some("label".into()),
        })
    }
}

/// Sets the caller's label on an event (idempotent; replaces the note).
#[utoipa::path(put, path = "/api/v1/cases/{case}/events/{id}/labels/{label}", operation_id = "put_label", tag = "events",
    params(("case" = Uuid, Path, description = "case id"), ("id" = i64, Path, description = "event id"),
           ("label" = String, Path, description = "label name")),
    request_body(content = Option<LabelBody>),
    responses((status = 200, body = Label), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(super) async fn put_label(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id, label)): ApiPath<(Uuid, i64, String)>,
    body: Bytes,
) -> Result<Json<Label>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    check_label(&label)?;
    let body: LabelBody = if body.iter().all(u8::is_ascii_whitespace) {
        LabelBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::invalid(format!("invalid body: {e}")))?
    };
    if let Some(note) = &body.note
        && (note.chars().count() > 4000 || note.contains('\0'))
    {
        return Err(AppError::BadRequest {
            code: "invalid_request",
            message: "note must be at most 4000 characters, without NUL".into(),
            path: Some("$.note".into()),
        });
    }
    let saved: Option<Label> = sqlx::query_as(
        "INSERT INTO event_labels (event_id, case_id, user_sub, label, note) \
         SELECT e.id, e.case_id, $3, $4, $5 FROM events e WHERE e.case_id = $1 AND e.id = $2 \
         ON CONFLICT (event_id, user_sub, label) DO UPDATE SET note = EXCLUDED.note \
         RETURNING label, user_sub, note, created_at",
    )
    .bind(case)
    .bind(id)
    .bind(&p.sub)
    .bind(&label)
    .bind(&body.note)
    .fetch_optional(state.db())
    .await?;
    let saved = saved.ok_or(AppError::NotFound("event"))?;
    audit(
        &state,
        &p,
        Some(case),
        "event_labelled",
        serde_json::json!({ "event_id": id, "label": label, "note": body.note }),
    )
    .await?;
    Ok(Json(saved))
}

/// Removes the caller's label from an event (idempotent).
#[utoipa::path(delete, path = "/api/v1/cases/{case}/events/{id}/labels/{label}", operation_id = "delete_label", tag = "events",
    params(("case" = Uuid, Path, description = "case id"), ("id" = i64, Path, description = "event id"),
           ("label" = String, Path, description = "label name")),
    responses((status = 204, description = "removed (or was not set)"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(super) async fn delete_label(
    State(state): State<AppState>,
    p: Principal,
    ApiPath((case_id, id, label)): ApiPath<(Uuid, i64, String)>,
) -> Result<StatusCode, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    check_label(&label)?;
    let exists: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM events WHERE case_id = $1 AND id = $2")
            .bind(case)
            .bind(id)
            .fetch_optional(state.db())
            .await?;
    if exists.is_none() {
        return Err(AppError::NotFound("event"));
    }
    sqlx::query(
        "DELETE FROM event_labels WHERE case_id = $1 AND event_id = $2 AND user_sub = $3 AND label = $4",
    )
    .bind(case)
    .bind(id)
    .bind(&p.sub)
    .bind(&label)
    .execute(state.db())
    .await?;
    audit(
        &state,
        &p,
        Some(case),
        "event_unlabelled",
        serde_json::json!({ "event_id": id, "label": label }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many events carry a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct LabelCount {
    /// Label name.
    pub label: String,
    /// Events that carry it (set by anyone).
    pub events: i64,
}

/// Labels used in a case.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelList {
    /// By name (at most 1,000).
    pub labels: Vec<LabelCount>,
}

/// The labels (star and tags) used in a case, with how many events carry each: what a
/// tag field may suggest.
#[utoipa::path(get, path = "/api/v1/cases/{case}/labels", operation_id = "list_labels", tag = "events",
    params(("case" = Uuid, Path, description = "case id")),
    responses((status = 200, body = LabelList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn labels(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
) -> Result<Json<LabelList>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let labels: Vec<LabelCount> = sqlx::query_as(
        "SELECT label, count(DISTINCT event_id) AS events FROM event_labels \
         WHERE case_id = $1 GROUP BY label ORDER BY label LIMIT 1000",
    )
    .bind(case)
    .fetch_all(state.db())
    .await?;
    Ok(Json(LabelList { labels }))
}

/// Devices of a case.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    /// Devices by name (at most 10,000).
    pub devices: Vec<Device>,
}

/// Identities of a case.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityList {
    /// Identities by kind and value (at most 10,000).
    pub identities: Vec<Identity>,
}

/// The devices seen in a case.
#[utoipa::path(get, path = "/api/v1/cases/{case}/devices", operation_id = "list_devices", tag = "events",
    params(("case" = Uuid, Path, description = "case id")),
    responses((status = 200, body = DeviceList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn devices(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
) -> Result<Json<DeviceList>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let devices: Vec<Device> = sqlx::query_as(
        "SELECT id, name, kind FROM devices WHERE case_id = $1 ORDER BY name, id LIMIT 10000",
    )
    .bind(case)
    .fetch_all(state.db())
    .await?;
    Ok(Json(DeviceList { devices }))
}

/// The identities seen in a case.
#[utoipa::path(get, path = "/api/v1/cases/{case}/identities", operation_id = "list_identities", tag = "events",
    params(("case" = Uuid, Path, description = "case id")),
    responses((status = 200, body = IdentityList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn identities(
    State(state): State<AppState>,
    p: Principal,
    ApiPath(case_id): ApiPath<Uuid>,
) -> Result<Json<IdentityList>, AppError> {
    require_read(&p)?;
    let case = accessible_case(&state, &p, case_id).await?;
    let identities: Vec<Identity> = sqlx::query_as(
        "SELECT id, kind, value, display_name FROM identities WHERE case_id = $1 \
         ORDER BY kind, value, id LIMIT 10000",
    )
    .bind(case)
    .fetch_all(state.db())
    .await?;
    Ok(Json(IdentityList { identities }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let c = Cursor {
            after: Keyset {
                ts: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
                id: 42,
            },
            now: DateTime::from_timestamp_micros(1_700_000_100_000_000).unwrap(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "djE6MTox",
            "not base64 !",
            &URL_SAFE_NO_PAD.encode("v2:1:2:3"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
