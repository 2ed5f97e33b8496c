//! Evidence uploads: presigned S3 URLs into the sources bucket, so evidence files go
//! straight from the investigator to S3 and never through the API — one presigned `PUT`
//! for a small file, a multipart upload (presigned `UploadPart` URLs, completed or aborted
//! by the API) for a big one. Path-style addressing is used whenever `AWS_ENDPOINT_URL`
//! points the SDK at an emulator.
//!
//! Multipart limits are S3's (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>):
//! parts of 5 MiB to 5 GiB except the last, at most 10,000 parts. Issue 18 will add SHA-256
//! checksums: S3 takes a per-part `x-amz-checksum-sha256` and a composite checksum of the
//! whole upload (`ChecksumAlgorithm=SHA256` on create, the part checksums on complete,
//! which [`UploadedPart`] would then carry next to the ETag), so nothing here needs to
//! change shape.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, Utc};
use uuid::Uuid;

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
}

/// A presigned upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPut {
    /// The URL to `PUT` the file to.
    pub url: String,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
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

    /// A URL valid for [`UPLOAD_URL_TTL`] to `PUT` the object `key`. Signing is local; no
    /// request is made.
    pub async fn presign_put(&self, key: &str) -> Result<PresignedPut, StorageError> {
        let (config, expires_at) = presigning()?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await;
        presigned(req, expires_at)
    }

    /// Starts a multipart upload of `key`; returns S3's upload id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
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

    /// A URL valid for [`UPLOAD_URL_TTL`] to `PUT` part `number` of the upload. Signing is
    /// local; no request is made.
    pub async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
    ) -> Result<PresignedPut, StorageError> {
        let (config, expires_at) = presigning()?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .presigned(config)
            .await;
        presigned(req, expires_at)
    }

    /// Assembles the object from `parts` (in part-number order); returns its size. S3
    /// refuses unknown ETags (`InvalidPart`), parts out of order (`InvalidPartOrder`) and
    /// parts under 5 MiB but the last (`EntityTooSmall`): [`StorageError::PartsRefused`].
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<i64, StorageError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number)
                            .e_tag(&p.etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
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
            .send()
            .await
            .map_err(s3_error("HeadObject"))?;
        Ok(head.content_length().unwrap_or(0))
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
    Ok(PresignedPut {
        url: req.uri().to_string(),
        expires_at,
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
            .presign_put("cases/c/evidence/e/Security.evtx")
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
        let p = bucket(None).presign_put("k/a b.log").await.unwrap();
        let url = url_parts(&p.url);
        assert_eq!(
            url.0,
            "https://acme-prod-sources.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(url.1, "/k/a%20b.log");
        assert!(url.2.contains("X-Amz-SignedHeaders=host"));
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
