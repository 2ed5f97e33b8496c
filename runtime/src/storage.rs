//! Evidence uploads: presigned S3 `PUT` URLs into the sources bucket, so evidence files
//! go straight from the investigator to S3 and never through the API. Path-style
//! addressing is used whenever `AWS_ENDPOINT_URL` points the SDK at an emulator.

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
        let config = PresigningConfig::expires_in(UPLOAD_URL_TTL)
            .map_err(|e| StorageError::Presign(e.to_string()))?;
        let expires_at = Utc::now()
            + chrono::TimeDelta::from_std(UPLOAD_URL_TTL).unwrap_or(chrono::TimeDelta::zero());
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| {
                StorageError::Presign(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(PresignedPut {
            url: req.uri().to_string(),
            expires_at,
        })
    }
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
