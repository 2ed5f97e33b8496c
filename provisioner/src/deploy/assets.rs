//! Assets: Lambda zips (and templates too large to pass inline) uploaded to the assets
//! bucket under content-hash keys. An object already present under its key is not
//! uploaded again, so a rerun moves no bytes.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

/// Errors of the asset upload.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// An S3 call failed.
    #[error("assets bucket `{bucket}`: {operation} of `{key}` failed: {message}")]
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Operation.
        operation: &'static str,
        /// SDK error text.
        message: String,
    },
}

/// What happened to one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// The object was uploaded now.
    Uploaded,
    /// An object with that content hash was already there.
    AlreadyPresent,
    /// `--dry-run`: it would have been uploaded.
    WouldUpload,
}

fn s3_err<E: ProvideErrorMetadata + std::fmt::Debug>(
    bucket: &str,
    key: &str,
    operation: &'static str,
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> AssetError {
    let message = match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("error"),
            se.message().unwrap_or("no message")
        ),
        None => format!("{e}"),
    };
    AssetError::S3 {
        bucket: bucket.into(),
        key: key.into(),
        operation,
        message,
    }
}

/// Uploads `bytes` under `key` unless an object is already there.
pub async fn upload_if_absent(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    bytes: &[u8],
    dry_run: bool,
) -> Result<Upload, AssetError> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => return Ok(Upload::AlreadyPresent),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => {}
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
        Err(e) => return Err(s3_err(bucket, key, "HeadObject", &e)),
    }
    if dry_run {
        return Ok(Upload::WouldUpload);
    }
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes.to_vec()))
        .send()
        .await
        .map_err(|e| s3_err(bucket, key, "PutObject", &e))?;
    Ok(Upload::Uploaded)
}
