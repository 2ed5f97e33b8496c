//! Evidence uploads: presigned S3 URLs into the sources bucket, so evidence files go
//! straight from the investigator to S3 and never through the API — one presigned `PUT`
//! for a small file, a multipart upload (presigned `UploadPart` URLs, completed or aborted
//! by the API) for a big one. Path-style addressing is used whenever `AWS_ENDPOINT_URL`
//! points the SDK at an emulator.
//!
//! Multipart limits are S3's (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>):
//! parts of 5 MiB to 5 GiB except the last, at most 10,000 parts.
//!
//! **Chain of custody.** Every upload URL is signed with the SHA-256 the uploader declared
//! (`x-amz-checksum-sha256`, base64) and the content type `application/octet-stream`:
//! the client must send both headers exactly ([`PresignedPut::headers`]); S3 computes the
//! SHA-256 of the body it receives and refuses a mismatch with `BadDigest`, and a
//! different content type with `SignatureDoesNotMatch`, at once. A single `PUT` so stores
//! the whole file's SHA-256. A multipart upload is created with `ChecksumAlgorithm=SHA256`:
//! S3 verifies each part's SHA-256 the same way and, on completion, checks the parts'
//! checksums listed by the client and stores a *composite* checksum (the SHA-256 of the
//! parts' SHA-256s, `-<parts>`) — S3 has no whole-object SHA-256 for multipart uploads,
//! only for CRC algorithms
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>).
//! The whole file's SHA-256 of a multipart upload is therefore the one the uploader may
//! declare, verified by the pipeline before its events are stored, or else established by
//! the pipeline's first read and verified on every later run.

use std::time::Duration;

use std::collections::BTreeMap;

use aws_sdk_s3::presigning::PresigningConfig;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The content type every upload is signed with (and must be sent with).
pub const UPLOAD_CONTENT_TYPE: &str = "application/octet-stream";
/// The header carrying the body's SHA-256 (base64), signed into every upload URL.
pub const CHECKSUM_HEADER: &str = "x-amz-checksum-sha256";

/// A SHA-256 given as 64 hex digits (any case) in its two spellings: lowercase hex (how
/// the API stores and shows it) and base64 (how S3 takes it); `None` when malformed.
pub fn sha256_spellings(hex_digest: &str) -> Option<(String, String)> {
    if hex_digest.len() != 64 {
        return None;
    }
    let bytes = hex::decode(hex_digest).ok()?;
    Some((
        hex_digest.to_ascii_lowercase(),
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

/// How long an upload URL is valid.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// Why no upload URL could be made.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The SDK could not sign (usually: no credentials in the environment).
    #[error("could not presign the upload URL: {0}")]
    Presign(String),
    /// The multipart upload is gone (completed or aborted).
    #[error("S3 holds no such multipart upload")]
    NoSuchUpload,
    /// S3 refused to assemble the parts (its message says why).
    #[error("{0}")]
    PartsRefused(String),
    /// An S3 call failed.
    #[error("S3 {operation}: {message}")]
    S3 {
        /// The operation (`CreateMultipartUpload`, ...).
        operation: &'static str,
        /// The SDK's error with its context.
        message: String,
    },
}

fn s3_error<E>(operation: &'static str) -> impl FnOnce(E) -> StorageError
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + Send + Sync + 'static,
{
    move |e| {
        match e.code() {
            Some("NoSuchUpload") => return StorageError::NoSuchUpload,
            Some(code @ ("InvalidPart" | "InvalidPartOrder" | "EntityTooSmall")) => {
                return StorageError::PartsRefused(format!(
                    "S3 refused the parts ({code}): {}",
                    e.message().unwrap_or("no message")
                ));
            }
            _ => {}
        }
        StorageError::S3 {
            operation,
            message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        }
    }
}

/// Smallest part S3 accepts (except the last one).
pub const MIN_PART_SIZE: i64 = 5 * 1024 * 1024;
/// Largest part S3 accepts.
pub const MAX_PART_SIZE: i64 = 5 * 1024 * 1024 * 1024;
/// Most parts one upload may have.
pub const MAX_PARTS: i64 = 10_000;
/// Part size unless the file needs bigger parts to fit in [`MAX_PARTS`].
pub const DEFAULT_PART_SIZE: i64 = 16 * 1024 * 1024;
/// Largest evidence file accepted (5 TiB, well inside S3's multipart limit).
pub const MAX_UPLOAD_SIZE: i64 = 5 * 1024 * 1024 * 1024 * 1024;

/// The part size for a file of `size` bytes: [`DEFAULT_PART_SIZE`], or the smallest whole
/// number of MiB that keeps the upload within [`MAX_PARTS`]; `None` above
/// [`MAX_UPLOAD_SIZE`].
pub fn part_size_for(size: i64) -> Option<i64> {
    if !(0..=MAX_UPLOAD_SIZE).contains(&size) {
        return None;
    }
    const MIB: i64 = 1024 * 1024;
    let needed = (size + MAX_PARTS - 1) / MAX_PARTS;
    let rounded = (needed + MIB - 1) / MIB * MIB;
    Some(rounded.clamp(DEFAULT_PART_SIZE, MAX_PART_SIZE))
}

/// Number of parts of a `size`-byte file cut in `part_size` pieces (at least one).
pub fn part_count(size: i64, part_size: i64) -> i64 {
    ((size + part_size - 1) / part_size).max(1)
}

/// One uploaded part of a multipart upload, as S3 answered its `PUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// 1-based part number.
    pub number: i32,
    /// The `ETag` header S3 answered the part's `PUT` with.
    pub etag: String,
    /// The part's SHA-256, base64 (S3 checks it against what it verified at the `PUT`).
    pub sha256_b64: String,
}

/// A presigned upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPut {
    /// The URL to `PUT` the file to.
    pub url: String,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
    /// Headers the `PUT` must carry exactly as given (they are signed).
    pub headers: BTreeMap<String, String>,
}

/// What a completed multipart upload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Its size in bytes.
    pub size: i64,
    /// S3's composite SHA-256 (base64 of the SHA-256 of the parts' SHA-256s, `-<parts>`).
    pub composite_sha256: Option<String>,
}

/// Signs uploads into one bucket.
#[derive(Debug, Clone)]
pub struct SourcesBucket {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl SourcesBucket {
    /// Uploads go to `bucket` through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        SourcesBucket {
            client,
            bucket: bucket.into(),
        }
    }

    /// An S3 client from the shared SDK config, path-style when an endpoint override
    /// (local emulator) is configured.
    pub fn client_from(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A URL valid for [`UPLOAD_URL_TTL`] to `PUT` the object `key` whose SHA-256 is
    /// `sha256_b64` (base64): S3 refuses any other body. Signing is local; no request is
    /// made.
    pub async fn presign_put(
        &self,
        key: &str,
        sha256_b64: &str,
    ) -> Result<PresignedPut, StorageError> {
        let (config, expires_at) = presigning()?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(UPLOAD_CONTENT_TYPE)
            .checksum_sha256(sha256_b64)
            .presigned(config)
            .await;
        presigned(req, expires_at)
    }

    /// Starts a multipart upload of `key` with SHA-256 part checksums; returns S3's
    /// upload id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(UPLOAD_CONTENT_TYPE)
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(s3_error("CreateMultipartUpload"))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StorageError::S3 {
                operation: "CreateMultipartUpload",
                message: "the answer has no UploadId".into(),
            })
    }

    /// A URL valid for [`UPLOAD_URL_TTL`] to `PUT` part `number` of the upload, whose
    /// SHA-256 is `sha256_b64`. Signing is local; no request is made.
    pub async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        sha256_b64: &str,
    ) -> Result<PresignedPut, StorageError> {
        let (config, expires_at) = presigning()?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_sha256(sha256_b64)
            .presigned(config)
            .await;
        presigned(req, expires_at)
    }

    /// Assembles the object from `parts` (in part-number order); returns its size and
    /// composite checksum. S3 refuses unknown ETags or checksums (`InvalidPart`), parts out
    /// of order (`InvalidPartOrder`) and parts under 5 MiB but the last
    /// (`EntityTooSmall`): [`StorageError::PartsRefused`].
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<Completed, StorageError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number)
                            .e_tag(&p.etag)
                            .checksum_sha256(&p.sha256_b64)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(s3_error("CompleteMultipartUpload"))?;
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .map_err(s3_error("HeadObject"))?;
        Ok(Completed {
            size: head.content_length().unwrap_or(0),
            composite_sha256: done
                .checksum_sha256()
                .or(head.checksum_sha256())
                .map(str::to_owned),
        })
    }

    /// Gives the upload up: S3 drops every part it holds.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(s3_error("AbortMultipartUpload"))?;
        Ok(())
    }
}

/// The presigning settings of every upload URL, and when such a URL expires.
fn presigning() -> Result<(PresigningConfig, DateTime<Utc>), StorageError> {
    let config = PresigningConfig::expires_in(UPLOAD_URL_TTL)
        .map_err(|e| StorageError::Presign(e.to_string()))?;
    let expires_at = Utc::now()
        + chrono::TimeDelta::from_std(UPLOAD_URL_TTL).unwrap_or(chrono::TimeDelta::zero());
    Ok((config, expires_at))
}

/// The URL of a presigned request.
fn presigned<E>(
    req: Result<aws_sdk_s3::presigning::PresignedRequest, E>,
    expires_at: DateTime<Utc>,
) -> Result<PresignedPut, StorageError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let req = req.map_err(|e| {
        StorageError::Presign(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
    })?;
    let headers = req
        .headers()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect();
    Ok(PresignedPut {
        url: req.uri().to_string(),
        expires_at,
        headers,
    })
}

/// The sources-bucket key of an evidence file: `cases/<case>/evidence/<id>/<safe name>`.
/// The file name is reduced to `[A-Za-z0-9._-]` so keys are predictable and safe in URLs.
pub fn source_key(case_id: Uuid, evidence_id: Uuid, file_name: &str) -> String {
    let mut safe: String = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if safe.trim_matches('.').is_empty() {
        safe = "evidence".into();
    }
    format!("cases/{case_id}/evidence/{evidence_id}/{safe}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    fn bucket(endpoint: Option<&str>) -> SourcesBucket {
        let mut b =
            aws_config::SdkConfig::builder()
                .region(aws_config::Region::new("eu-west-1"))
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(
                        Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"),
                    ),
                )
                .behavior_version(aws_config::BehaviorVersion::latest());
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        SourcesBucket::new(SourcesBucket::client_from(&b.build()), "acme-prod-sources")
    }

    #[tokio::test]
    async fn presigned_put_is_path_style_against_an_emulator() {
        let p = bucket(Some("http://127.0.0.1:4566"))
            .presign_put("cases/c/evidence/e/Security.evtx", SHA_B64)
            .await
            .unwrap();
        let url = url_parts(&p.url);
        assert_eq!(url.0, "http://127.0.0.1:4566");
        assert_eq!(url.1, "/acme-prod-sources/cases/c/evidence/e/Security.evtx");
        for param in [
            "X-Amz-Signature=",
            "X-Amz-Credential=AKIDEXAMPLE%2F",
            "X-Amz-Expires=900",
        ] {
            assert!(url.2.contains(param), "{param} missing in {}", p.url);
        }
        assert!(p.expires_at > Utc::now());
    }

    #[tokio::test]
    async fn presigned_put_is_virtual_hosted_on_aws() {
        let p = bucket(None)
            .presign_put("k/a b.log", SHA_B64)
            .await
            .unwrap();
        let url = url_parts(&p.url);
        assert_eq!(
            url.0,
            "https://acme-prod-sources.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(url.1, "/k/a%20b.log");
        // the checksum and the content type are signed: the client must send exactly these
        assert!(
            url.2
                .contains("X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-checksum-sha256"),
            "{}",
            p.url
        );
        assert_eq!(
            p.headers.get("x-amz-checksum-sha256").map(String::as_str),
            Some(SHA_B64)
        );
        assert_eq!(
            p.headers.get("content-type").map(String::as_str),
            Some(UPLOAD_CONTENT_TYPE)
        );
    }

    /// SHA-256 of the empty string, base64.
    const SHA_B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    #[test]
    fn a_sha256_is_taken_as_hex_and_given_to_s3_as_base64() {
        let hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        let (lower, b64) = sha256_spellings(hex).unwrap();
        assert_eq!(lower, hex.to_ascii_lowercase());
        assert_eq!(b64, SHA_B64);
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
            assert_eq!(sha256_spellings(bad), None, "{bad}");
        }
    }

    #[test]
    fn parts_stay_within_s3_limits() {
        const MIB: i64 = 1024 * 1024;
        for (size, part) in [
            (0, DEFAULT_PART_SIZE),
            (1, DEFAULT_PART_SIZE),
            (100 * MIB, DEFAULT_PART_SIZE),
            (DEFAULT_PART_SIZE * MAX_PARTS, DEFAULT_PART_SIZE),
            (DEFAULT_PART_SIZE * MAX_PARTS + 1, 17 * MIB),
            (MAX_UPLOAD_SIZE, 525 * MIB),
        ] {
            assert_eq!(part_size_for(size), Some(part), "{size}");
            assert!(part_count(size, part) <= MAX_PARTS, "{size}");
            assert!((MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part));
        }
        assert_eq!(part_size_for(MAX_UPLOAD_SIZE + 1), None);
        assert_eq!(part_size_for(-1), None);
        assert_eq!(part_count(0, DEFAULT_PART_SIZE), 1);
        assert_eq!(part_count(DEFAULT_PART_SIZE, DEFAULT_PART_SIZE), 1);
        assert_eq!(part_count(DEFAULT_PART_SIZE + 1, DEFAULT_PART_SIZE), 2);
    }

    #[test]
    fn source_keys_keep_only_safe_characters() {
        let (c, e) = (Uuid::nil(), Uuid::max());
        assert_eq!(
            source_key(c, e, "../../etc/passwd"),
            format!("cases/{c}/evidence/{e}/passwd")
        );
        assert!(source_key(c, e, "C:\\logs\\Sécurité 1.evtx").ends_with("/S_curit__1.evtx"));
        assert!(source_key(c, e, "..").ends_with("/evidence"));
    }

    /// (scheme://host[:port], path, query)
    fn url_parts(url: &str) -> (String, String, String) {
        let (before_query, query) = url.split_once('?').unwrap_or((url, ""));
        let scheme_end = before_query.find("://").unwrap() + 3;
        let path_start = before_query[scheme_end..].find('/').unwrap() + scheme_end;
        (
            before_query[..path_start].to_string(),
            before_query[path_start..].to_string(),
            query.to_string(),
        )
    }
}
