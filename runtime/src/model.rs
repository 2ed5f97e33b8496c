//! The rows the API reads and writes, and their JSON shapes. SQL lives next to the
//! handlers that use it; this module only maps columns to types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::types::ipnetwork::IpNetwork;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::pipeline::event::Attributes;

/// An investigation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Case {
    /// Case id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `sub` of the creator.
    pub created_by: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The processing state of an evidence file (`aborted`: its upload was given up).
pub const EVIDENCE_STATES: &[&str] = &[
    "registered",
    "uploaded",
    "processing",
    "done",
    "failed",
    "aborted",
];

/// One evidence file and its processing state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Evidence {
    /// Evidence id.
    pub id: Uuid,
    /// Case id.
    pub case_id: Uuid,
    /// File name as uploaded (NUL and control characters replaced by U+FFFD).
    pub file_name: String,
    /// The file name as given, escaped (`\u{0}`), when it had to be changed.
    pub file_name_original: Option<String>,
    /// Format hint (`evtx`, `syslog`, `cloudtrail`, ...), if given.
    pub format: Option<String>,
    /// Object key in the sources bucket.
    pub source_key: String,
    /// `registered` (waiting for the upload), `uploaded`, `processing`, `done`, `failed`
    /// or `aborted` (the upload was given up).
    pub state: String,
    /// Size in bytes the uploader declared, if given.
    pub size_bytes: Option<i64>,
    /// Part size of a multipart upload (`null` for a single `PUT`): part `n` holds bytes
    /// `(n-1)*part_size .. n*part_size` of the file.
    pub part_size: Option<i64>,
    /// The file's SHA-256 (lowercase hex): declared at registration and verified by S3
    /// on upload, or (a multipart upload without one) established by the first processing;
    /// every processing verifies it before storing events.
    pub sha256: Option<String>,
    /// S3's composite checksum of a multipart upload (base64 SHA-256 of the parts'
    /// SHA-256s, `-<parts>`).
    pub sha256_composite: Option<String>,
    /// When the pipeline last found the stored file to match `sha256`.
    pub sha256_verified_at: Option<DateTime<Utc>>,
    /// Records the pipeline read: `events_count + bad_records`.
    pub records_seen: i64,
    /// Events produced.
    pub events_count: i64,
    /// Records that could not be parsed.
    pub bad_records: i64,
    /// The first errors met.
    #[schema(value_type = Vec<Object>)]
    pub errors: Value,
    /// Pipeline execution (Step Functions ARN or local id) of the latest run.
    pub execution_id: Option<String>,
    /// `sub` of the uploader.
    pub created_by: String,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last state change.
    pub updated_at: DateTime<Utc>,
}

/// A host, instance or account events happened on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Device {
    /// Device id.
    pub id: Uuid,
    /// Name (host name, instance id, account).
    pub name: String,
    /// Kind (`host`, ...).
    pub kind: String,
}

/// A user or principal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Identity {
    /// Identity id.
    pub id: Uuid,
    /// Kind (`windows_account`, `unix_user`, `aws_principal`, ...).
    pub kind: String,
    /// Value (account name, ARN, ...), unique per kind in a case.
    pub value: String,
    /// Display name, if known.
    pub display_name: Option<String>,
}

/// An event row as selected by [`crate::filter::EVENT_COLUMNS`].
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub case_id: Uuid,
    pub evidence_id: Uuid,
    pub ts: DateTime<Utc>,
    pub timestamp_desc: String,
    pub data_type: String,
    pub source: String,
    pub parser: String,
    pub message: Option<String>,
    pub event_code: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub src_ip: Option<IpNetwork>,
    pub dst_ip: Option<IpNetwork>,
    /// Decoded as JSON text, without building a tree: the page is written out verbatim.
    pub attributes: Json<Attributes>,
    pub tags: Vec<String>,
    pub device_id: Option<Uuid>,
    pub device_name: Option<String>,
    pub identity_id: Option<Uuid>,
    pub identity_kind: Option<String>,
    pub identity_value: Option<String>,
    pub source_file: Option<String>,
    pub record_ref: String,
    pub title: Option<String>,
    pub category: Option<String>,
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Event id.
    pub id: i64,
    /// Time (UTC, microseconds).
    pub ts: DateTime<Utc>,
    /// What the time means (`Event Recorded`, `Last Login`, ...).
    pub timestamp_desc: String,
    /// Data type.
    pub data_type: String,
    /// Source short name.
    pub source: String,
    /// Parser that produced it.
    pub parser: String,
    /// Message.
    pub message: Option<String>,
    /// Event id or API name.
    pub event_code: Option<String>,
    /// What happened, in words: the event catalog's title of this kind of event
    /// ("A security-enabled local group was changed"); absent when the catalog does not
    /// know it.
    pub title: Option<String>,
    /// The event catalog's category of this kind of event (`logon`, `account_management`,
    /// … the values of the filter field `category`).
    pub category: Option<String>,
    /// Normalized action.
    pub action: Option<String>,
    /// Normalized outcome.
    pub outcome: Option<String>,
    /// Source IP.
    pub src_ip: Option<String>,
    /// Destination IP.
    pub dst_ip: Option<String>,
    /// Everything else the record said.
    #[schema(value_type = Object)]
    pub attributes: Attributes,
    /// Tags.
    pub tags: Vec<String>,
    /// The device, if known.
    pub device: Option<DeviceRef>,
    /// The identity, if known.
    pub identity: Option<IdentityRef>,
    /// Where it came from.
    pub provenance: Provenance,
}

/// Device of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceRef {
    /// Device id.
    pub id: Uuid,
    /// Name.
    pub name: Option<String>,
}

/// Identity of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IdentityRef {
    /// Identity id.
    pub id: Uuid,
    /// Kind.
    pub kind: Option<String>,
    /// Value.
    pub value: Option<String>,
}

/// Provenance of an event: evidence file, file inside it, record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Provenance {
    /// Evidence id.
    pub evidence_id: Uuid,
    /// File inside the evidence (archive member, part), if any.
    pub source_file: Option<String>,
    /// Record within it (record number, line, offset).
    pub record_ref: String,
}

fn ip(n: Option<IpNetwork>) -> Option<String> {
    n.map(|n| {
        if n.prefix() == crate::model::host_prefix(&n) {
            n.ip().to_string()
        } else {
            n.to_string()
        }
    })
}

pub(crate) fn host_prefix(n: &IpNetwork) -> u8 {
    match n {
        IpNetwork::V4(_) => 32,
        IpNetwork::V6(_) => 128,
    }
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        // Events stored before the pipeline wrote titles get the catalog's, where the event
        // type is unambiguous from what was stored.
        let (title, category) = match (r.title, r.category) {
            (None, None) => crate::knowledge::catalog()
                .stored(&r.data_type, &r.source, r.event_code.as_deref())
                .map(|t| (Some(t.title.clone()), Some(t.category.as_str().to_owned())))
                .unwrap_or((None, None)),
            stored => stored,
        };
        Event {
            id: r.id,
            ts: r.ts,
            timestamp_desc: r.timestamp_desc,
            data_type: r.data_type,
            source: r.source,
            parser: r.parser,
            message: r.message,
            event_code: r.event_code,
            title,
            category,
            action: r.action,
            outcome: r.outcome,
            src_ip: ip(r.src_ip),
            dst_ip: ip(r.dst_ip),
            attributes: r.attributes.0,
            tags: r.tags,
            device: r.device_id.map(|id| DeviceRef {
                id,
                name: r.device_name,
            }),
            identity: r.identity_id.map(|id| IdentityRef {
                id,
                kind: r.identity_kind,
                value: r.identity_value,
            }),
            provenance: Provenance {
                evidence_id: r.evidence_id,
                source_file: r.source_file,
                record_ref: r.record_ref,
            },
        }
    }
}

/// A label someone put on an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Label {
    /// Label name (`star`, `comment`, ...).
    pub label: String,
    /// `sub` of who set it.
    pub user_sub: String,
    /// Optional note (the comment text).
    pub note: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A comment on an event (comments are appended, never edited).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Comment {
    /// Comment id (increasing in the order comments were written).
    pub id: i64,
    /// `sub` of the author.
    pub author: String,
    /// The text, 1 to 4,000 characters.
    pub body: String,
    /// When.
    pub created_at: DateTime<Utc>,
}
