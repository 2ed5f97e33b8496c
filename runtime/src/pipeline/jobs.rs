//! The steps as the state machine runs them: S3 → S3 (`split`, `parse`) and S3 →
//! PostgreSQL (`upload`), for one evidence of one case.
//!
//! Artifacts of an evidence live in the artifacts bucket under `evidence/<evidence id>/`:
//!
//! * `parts.json` — what the state machine's Distributed Map reads item by item: a JSON
//!   array of the part keys, written last;
//! * `manifest.json` — the full [`PartsManifest`], with the SHA-256 of the evidence file read;
//! * `parts/<part>.json` — one [`PartSpec`]; its key is what `--part` takes;
//! * `events/<part>.jsonl.gz` and `events/<part>.summary.json` — `parse`'s output.
//!
//! The evidence itself is read from the sources bucket: the key given (the execution
//! input's `source_key`), or else the one object under `cases/<case>/evidence/<id>/`.
//! Large objects are streamed to and from temporary files, never held in memory.

use std::io::{self, Seek, SeekFrom, Write};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use chrono_contract::pipeline as contract;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::detect::Format;
use super::error::PipelineError;
use super::steps::{
    self, ParseOptions, PartSpec, PartSummary, PartsManifest, SkippedMember, SplitOptions,
};
use super::upload::{self, Target, UploadReport};

/// The two buckets the steps use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    /// Uploaded evidence (`CHRONO_SOURCES_BUCKET`).
    pub sources: String,
    /// Pipeline artifacts (`CHRONO_ARTIFACTS_BUCKET`).
    pub artifacts: String,
}

impl Buckets {
    /// From `CHRONO_SOURCES_BUCKET` and `CHRONO_ARTIFACTS_BUCKET`.
    pub fn from_env() -> Result<Buckets, PipelineError> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| PipelineError::Config(format!("set {name}")))
        };
        Ok(Buckets {
            sources: var(chrono_contract::env::SOURCES_BUCKET)?,
            artifacts: var(chrono_contract::env::ARTIFACTS_BUCKET)?,
        })
    }
}

/// What `split` produced: the part keys (stored as `parts.json`), and the evidence's
/// source, format and skipped members (also in `manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsIndex {
    /// The artifact keys of the part descriptions, in order (`--part` takes one).
    pub parts: Vec<String>,
    /// The evidence's object key in the sources bucket.
    pub source: String,
    /// The evidence's format.
    pub format: Format,
    /// Archive members not processed, with the reason.
    #[serde(default)]
    pub skipped: Vec<SkippedMember>,
    /// SHA-256 (lowercase hex) of the evidence file as `split` read it (kept in
    /// `manifest.json`); the `upload` step checks it against the database before storing
    /// any event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Whether the file `split` read is the one declared (`expected`, lowercase hex):
/// [`PipelineError::Custody`] when not. No declaration, nothing to check here (the upload
/// step establishes it).
pub fn check_declared_sha256(
    _target: Target,
    index: &PartsIndex,
    expected: Option<&str>,
) -> Result<(), PipelineError> {
    match (expected, index.sha256.as_deref()) {
        (Some(expected), Some(actual)) if !expected.eq_ignore_ascii_case(actual) => {
            Err(PipelineError::Custody {
                expected: expected.to_owned(),
                actual: actual.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// The artifacts prefix of an evidence: `evidence/<id>/`.
pub fn prefix(target: Target) -> String {
    format!("{}{}/", contract::EVIDENCE_PREFIX, target.evidence_id)
}

/// Key of `parts.json`, the JSON array of part keys the state machine reads.
pub fn parts_manifest_key(target: Target) -> String {
    format!("{}{}", prefix(target), contract::PARTS_MANIFEST)
}

/// Key of `manifest.json`: the full [`PartsManifest`], plus the SHA-256 of the file `split`
/// read ([`SourceManifest`]).
pub fn manifest_key(target: Target) -> String {
    format!("{}manifest.json", prefix(target))
}

/// What `split` writes as `manifest.json`: the [`PartsManifest`] and, beside its fields,
/// the SHA-256 (lowercase hex) of the evidence file it read.
#[derive(Debug, Serialize)]
struct SourceManifest<'a> {
    #[serde(flatten)]
    manifest: &'a PartsManifest,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
}

/// What the `upload` step reads of `manifest.json`: the SHA-256 it checks against the
/// database before storing any event (absent in a manifest from before checksums).
#[derive(Debug, Deserialize)]
struct SourceChecksum {
    #[serde(default)]
    sha256: Option<String>,
}

/// Key of the last step error: a step that fails on ECS leaves its message here, as the
/// exit code is all the state machine sees of it; `fail` reports it.
pub fn step_error_key(target: Target) -> String {
    format!("{}{}", prefix(target), contract::STEP_ERROR)
}

/// What a failed step leaves at [`step_error_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    /// The subcommand (`split`, `parse`, `upload`).
    pub step: String,
    /// The part it worked on, for per-part steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// The error, as the step printed it.
    pub message: String,
    /// The exit code it ended with.
    pub exit_code: u8,
}

/// Leaves a failed step's error for the failure path to report; best effort (the step
/// fails either way, and the failure path falls back to the exit code).
pub async fn record_step_error(s3: &Client, buckets: &Buckets, target: Target, error: &StepError) {
    let key = step_error_key(target);
    if let Err(e) = put_json(s3, &buckets.artifacts, &key, error).await {
        tracing::warn!(key, error = %e, "could not leave the step error for the failure path");
    }
}

/// The step error a failed step left, if it left one and it can be read.
pub async fn read_step_error(s3: &Client, buckets: &Buckets, target: Target) -> Option<StepError> {
    let key = step_error_key(target);
    match get_json(s3, &buckets.artifacts, &key).await {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::info!(key, error = %e, "no step error to report");
            None
        }
    }
}

/// Key of a part's events.
pub fn events_key(target: Target, part: &str) -> String {
    format!("{}events/{part}.jsonl.gz", prefix(target))
}

/// Key of a part's summary.
pub fn summary_key(target: Target, part: &str) -> String {
    format!("{}events/{part}.summary.json", prefix(target))
}

/// The part id of a part key (`evidence/<id>/parts/<part>.json`), checking that it
/// belongs to the evidence.
pub fn part_id(target: Target, key: &str) -> Result<String, PipelineError> {
    let dir = format!("{}parts/", prefix(target));
    key.strip_prefix(&dir)
        .and_then(|rest| rest.strip_suffix(".json"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .map(str::to_owned)
        .ok_or_else(|| PipelineError::Artifact {
            key: key.to_owned(),
            reason: format!("not a part of this evidence (expected {dir}<part>.json)"),
        })
}

fn s3_error<E: std::error::Error + Send + Sync + 'static>(
    doing: &'static str,
    bucket: &str,
    key: &str,
    e: aws_sdk_s3::error::SdkError<E>,
) -> PipelineError {
    use aws_sdk_s3::error::SdkError;
    let retryable = match &e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            !(status == 403 || status == 404)
        }
        _ => true,
    };
    PipelineError::Storage {
        doing,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        retryable,
    }
}

/// An object downloaded to a temporary file.
#[derive(Debug)]
pub struct Downloaded {
    /// The bytes, rewound.
    pub file: std::fs::File,
    /// The object's last-modified time.
    pub modified: Option<DateTime<Utc>>,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
}

/// Downloads an object into an anonymous temporary file (streaming); returns it rewound,
/// with the object's last-modified time.
pub async fn download(
    s3: &Client,
    bucket: &str,
    key: &str,
) -> Result<(std::fs::File, Option<DateTime<Utc>>), PipelineError> {
    download_hashed(s3, bucket, key)
        .await
        .map(|d| (d.file, d.modified))
}

/// [`download`], hashing the bytes on the way (SHA-256).
pub async fn download_hashed(
    s3: &Client,
    bucket: &str,
    key: &str,
) -> Result<Downloaded, PipelineError> {
    use sha2::Digest as _;
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error("downloading", bucket, key, e))?;
    let modified = out
        .last_modified()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
    let mut body = out.body;
    let mut file = tempfile::tempfile().map_err(PipelineError::io("creating a temporary file"))?;
    let mut hash = sha2::Sha256::new();
    while let Some(chunk) = body.try_next().await.map_err(|e| PipelineError::Storage {
        doing: "downloading",
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
        retryable: true,
    })? {
        hash.update(&chunk);
        file.write_all(&chunk)
            .map_err(PipelineError::io("writing a temporary file"))?;
    }
    file.seek(SeekFrom::Start(0))
        .map_err(PipelineError::io("reading a temporary file"))?;
    Ok(Downloaded {
        file,
        modified,
        sha256: hex::encode(hash.finalize()),
    })
}

async fn get_json<T: serde::de::DeserializeOwned>(
    s3: &Client,
    bucket: &str,
    key: &str,
) -> Result<T, PipelineError> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error("reading", bucket, key, e))?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| PipelineError::Storage {
            doing: "reading",
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message: e.to_string(),
            retryable: true,
        })?
        .into_bytes();
    serde_json::from_slice(&bytes).map_err(|e| PipelineError::Artifact {
        key: key.to_owned(),
        reason: format!("not the expected JSON ({e}); re-run the step that writes it"),
    })
}

async fn put(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: ByteStream,
    content_type: &str,
) -> Result<(), PipelineError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| s3_error("writing", bucket, key, e))?;
    Ok(())
}

async fn put_json<T: Serialize>(
    s3: &Client,
    bucket: &str,
    key: &str,
    value: &T,
) -> Result<(), PipelineError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| PipelineError::Io {
        doing: "serializing json",
        source: io::Error::other(e),
    })?;
    put(s3, bucket, key, ByteStream::from(bytes), "application/json").await
}

/// Finds the evidence's object: `source_key` when given, else the single object under
/// `cases/<case>/evidence/<id>/` in the sources bucket.
pub async fn find_source(
    s3: &Client,
    buckets: &Buckets,
    target: Target,
    source_key: Option<&str>,
) -> Result<String, PipelineError> {
    if let Some(key) = source_key {
        return Ok(key.to_owned());
    }
    let dir = format!("cases/{}/evidence/{}/", target.case_id, target.evidence_id);
    let listed = s3
        .list_objects_v2()
        .bucket(&buckets.sources)
        .prefix(&dir)
        .max_keys(2)
        .send()
        .await
        .map_err(|e| s3_error("listing", &buckets.sources, &dir, e))?;
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    match keys.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(PipelineError::Artifact {
            key: dir,
            reason: "no evidence file was uploaded here; upload it before processing".into(),
        }),
        _ => Err(PipelineError::Artifact {
            key: dir,
            reason: "more than one file is here; pass the evidence's key with --source-key".into(),
        }),
    }
}

/// `split`: reads the evidence from the sources bucket, writes the part descriptions,
/// `manifest.json` and (last) `parts.json`, the array of part keys, to the artifacts bucket.
pub async fn split(
    s3: &Client,
    buckets: &Buckets,
    target: Target,
    source_key: Option<&str>,
    evtx_chunks_per_part: u64,
) -> Result<PartsIndex, PipelineError> {
    let key = find_source(s3, buckets, target, source_key).await?;
    let Downloaded {
        file,
        modified,
        sha256,
    } = download_hashed(s3, &buckets.sources, &key).await?;
    let opts = SplitOptions {
        source_name: key.clone(),
        evidence_id: Some(target.evidence_id),
        reference_time: modified,
        evtx_chunks_per_part,
        limits: super::limits::Limits::from_env()?,
    };
    let manifest: PartsManifest =
        tokio::task::spawn_blocking(move || steps::split(io::BufReader::new(file), &opts))
            .await
            .map_err(|e| PipelineError::Io {
                doing: "splitting",
                source: io::Error::other(e),
            })??;
    let prefix = prefix(target);
    let mut parts = Vec::with_capacity(manifest.parts.len());
    for part in &manifest.parts {
        let part_key = format!("{prefix}{}", part.key);
        put_json(s3, &buckets.artifacts, &part_key, part).await?;
        parts.push(part_key);
    }
    put_json(
        s3,
        &buckets.artifacts,
        &manifest_key(target),
        &SourceManifest {
            manifest: &manifest,
            sha256: Some(&sha256),
        },
    )
    .await?;
    put_json(s3, &buckets.artifacts, &parts_manifest_key(target), &parts).await?;
    Ok(PartsIndex {
        parts,
        source: key,
        format: manifest.format,
        skipped: manifest.skipped,
        sha256: Some(sha256),
    })
}

async fn read_part(
    s3: &Client,
    buckets: &Buckets,
    target: Target,
    part_key: &str,
) -> Result<PartSpec, PipelineError> {
    let id = part_id(target, part_key)?;
    let spec: PartSpec = get_json(s3, &buckets.artifacts, part_key).await?;
    if spec.id != id || spec.evidence_id.is_some_and(|e| e != target.evidence_id) {
        return Err(PipelineError::Artifact {
            key: part_key.to_owned(),
            reason: format!(
                "describes part {} of evidence {}; re-run `split` for this evidence",
                spec.id,
                spec.evidence_id.unwrap_or_default()
            ),
        });
    }
    Ok(spec)
}

/// `parse`: one part → `events/<part>.jsonl.gz` and `events/<part>.summary.json`.
pub async fn parse(
    s3: &Client,
    buckets: &Buckets,
    target: Target,
    part_key: &str,
    opts: ParseOptions,
) -> Result<PartSummary, PipelineError> {
    let spec = read_part(s3, buckets, target, part_key).await?;
    let (source, _) = download(s3, &buckets.sources, &spec.source).await?;
    let events =
        tempfile::NamedTempFile::new().map_err(PipelineError::io("creating a temporary file"))?;
    let out = events
        .reopen()
        .map_err(PipelineError::io("creating a temporary file"))?;
    let part = spec.clone();
    let summary = tokio::task::spawn_blocking(move || {
        steps::parse_to_writer(
            io::BufReader::new(source),
            &part,
            &opts,
            io::BufWriter::with_capacity(256 * 1024, out),
        )
    })
    .await
    .map_err(|e| PipelineError::Io {
        doing: "parsing",
        source: io::Error::other(e),
    })??;
    let body = ByteStream::from_path(events.path())
        .await
        .map_err(|e| PipelineError::Io {
            doing: "reading the events file",
            source: io::Error::other(e),
        })?;
    put(
        s3,
        &buckets.artifacts,
        &events_key(target, &spec.id),
        body,
        "application/gzip",
    )
    .await?;
    put_json(
        s3,
        &buckets.artifacts,
        &summary_key(target, &spec.id),
        &summary,
    )
    .await?;
    Ok(summary)
}

/// `upload`: one parsed part → PostgreSQL (see [`upload::upload_part`]).
pub async fn upload(
    s3: &Client,
    pool: &PgPool,
    buckets: &Buckets,
    target: Target,
    part_key: &str,
) -> Result<UploadReport, PipelineError> {
    let id = part_id(target, part_key)?;
    let parts: Vec<String> = get_json(s3, &buckets.artifacts, &parts_manifest_key(target)).await?;
    if !parts.iter().any(|k| k == part_key) {
        return Err(PipelineError::Artifact {
            key: part_key.to_owned(),
            reason: "is not in the evidence's parts.json; re-run `split` for this evidence".into(),
        });
    }
    let all_parts = parts
        .iter()
        .map(|k| part_id(target, k))
        .collect::<Result<Vec<_>, _>>()?;
    // nothing of a file that is not the one uploaded enters the timeline
    let custody: SourceChecksum = get_json(s3, &buckets.artifacts, &manifest_key(target)).await?;
    upload::check_custody(pool, target, custody.sha256.as_deref()).await?;
    let summary: PartSummary = get_json(s3, &buckets.artifacts, &summary_key(target, &id)).await?;
    if summary.part != id {
        return Err(PipelineError::Artifact {
            key: summary_key(target, &id),
            reason: format!(
                "summarizes part {}; re-run `parse` for this part",
                summary.part
            ),
        });
    }
    let (events, _) = download(s3, &buckets.artifacts, &events_key(target, &id)).await?;
    upload::upload_part(pool, target, &summary, &all_parts, events).await
}

/// The pipeline's PostgreSQL pool, configured like the API's
/// ([`crate::server::pool_from_env`]); the upload's own transactions raise their statement
/// timeout.
pub async fn pool_from_env() -> Result<PgPool, PipelineError> {
    pool_from_env_sized(4).await
}

/// [`pool_from_env`] with `connections` connections (a queue worker sizes its pool by
/// its slots, [`super::worker::WorkerOptions::connections`]).
pub async fn pool_from_env_sized(connections: u32) -> Result<PgPool, PipelineError> {
    crate::server::pool_from_env(connections, crate::db::ConnectPolicy::SERVICE)
        .await
        .map_err(|e| match e {
            crate::server::StartError::Config(m) => PipelineError::Config(m),
            other => PipelineError::Database {
                doing: "connecting",
                source: sqlx::Error::Configuration(other.to_string().into()),
            },
        })
}
