//! Assets: Lambda zips (and templates too large to pass inline) uploaded to the assets
//! bucket under content-hash keys. An object already present under its key is not
//! uploaded again, so a rerun moves no bytes.

use std::io::Write;

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
    /// Building a zip failed.
    #[error("cannot build the asset zip: {0}")]
    Zip(String),
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

/// A Lambda `provided.al2023` zip: one executable entry `bootstrap` holding `binary`.
///
/// The zip is deterministic (fixed timestamp and permissions), so the same binary always
/// gives the same content hash and is uploaded once.
pub fn lambda_zip(binary: &[u8]) -> Result<Vec<u8>, AssetError> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o755);
        zip.start_file("bootstrap", opts)
            .map_err(|e| AssetError::Zip(e.to_string()))?;
        zip.write_all(binary)
            .map_err(|e| AssetError::Zip(e.to_string()))?;
        zip.finish().map_err(|e| AssetError::Zip(e.to_string()))?;
    }
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_zip_is_deterministic_and_holds_bootstrap() {
        let a = lambda_zip(b"#!/bin/sh\necho hi\n").unwrap();
        let b = lambda_zip(b"#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, lambda_zip(b"other").unwrap());
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(a)).unwrap();
        let f = z.by_name("bootstrap").unwrap();
        assert_eq!(f.unix_mode().map(|m| m & 0o777), Some(0o755));
    }
}
