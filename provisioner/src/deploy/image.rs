//! Shipping the runtime image: ECR credentials (`GetAuthorizationToken`), the bootstrap
//! repository (`DescribeRepositories`), the push through the OCI distribution API
//! (<https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md>), skipping
//! what the registry already has, and the check that the digest is in ECR
//! (`DescribeImages`) before anything references it.
//!
//! ECR's registry takes HTTP basic authentication with the decoded token `AWS:<password>`,
//! valid 12 hours (<https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html>),
//! and stores OCI image manifests as pushed
//! (<https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-manifest-formats.html>).
//!
//! Where the image goes: the registry `GetAuthorizationToken` names (`proxyEndpoint`),
//! unless a registry URL is configured (`--registry-url` / `CHRONO_REGISTRY_URL`): then the
//! same repository path on that registry, with the same credentials. The tests use that to
//! push to a real registry on loopback while the ECR calls go to the local emulator, which
//! has no registry API.

use aws_sdk_ecr::types::ImageIdentifier;
use base64::Engine as _;

use crate::build::artifacts::ShipImage;
use crate::build::image::{Blob, Image, MANIFEST_MEDIA_TYPE, is_sha256_digest};
use crate::deploy::engine::{BootstrapInfo, Engine, OUTPUT_ECR_REPOSITORY};
use crate::deploy::error::DeployError;
use crate::deploy::plan::BOOTSTRAP;
use crate::deploy::progress::Event;

/// Errors shipping the image.
#[derive(Debug, thiserror::Error)]
pub enum ImageShipError {
    /// An ECR API call failed.
    #[error("ECR {operation} failed: {message}")]
    Ecr {
        /// The operation.
        operation: &'static str,
        /// SDK error text.
        message: String,
    },
    /// The repository the bootstrap stack should have made is not there.
    #[error(
        "ECR repository {0} not found; deploy the bootstrap stack first (`chronoctl deploy` does)"
    )]
    NoRepository(String),
    /// The registry refused or failed a request.
    #[error("registry {url}: {method} answered {status}: {body}")]
    Registry {
        /// Method.
        method: &'static str,
        /// URL.
        url: String,
        /// HTTP status (or `error`).
        status: String,
        /// The start of the answer.
        body: String,
    },
    /// The digest a deploy would reference is not in ECR.
    #[error(
        "image {digest} is not in ECR repository {repository}; nothing references it. Push it (`chronoctl deploy` builds and pushes) and rerun"
    )]
    NotInEcr {
        /// Repository name.
        repository: String,
        /// The digest.
        digest: String,
    },
    /// The registry stored the manifest under another digest.
    #[error("registry stored the manifest as {got}, expected {want}")]
    DigestMismatch {
        /// Our digest.
        want: String,
        /// The registry's.
        got: String,
    },
}

fn ecr_err<E, R>(operation: &'static str, e: &aws_sdk_ecr::error::SdkError<E, R>) -> ImageShipError
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    ImageShipError::Ecr {
        operation,
        message: crate::deploy::error::sdk_message(e),
    }
}

/// Credentials and address of a registry.
#[derive(Clone)]
pub struct RegistryAuth {
    /// Base URL, e.g. `https://123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub url: String,
    /// The `Authorization` header value (`Basic <base64(AWS:password)>`).
    authorization: String,
}

impl std::fmt::Debug for RegistryAuth {
    /// Never prints the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RegistryAuth {
    /// Basic credentials for a registry (tests; other registries).
    pub fn basic(url: &str, user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self {
            url: url.trim_end_matches('/').to_owned(),
            authorization: format!("Basic {token}"),
        }
    }
}

/// ECR credentials for the account's registry; `registry_url` replaces the endpoint ECR
/// names (see the module docs).
pub async fn ecr_auth(
    ecr: &aws_sdk_ecr::Client,
    registry_url: Option<&str>,
) -> Result<RegistryAuth, ImageShipError> {
    let out = ecr
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| ecr_err("GetAuthorizationToken", &e))?;
    let data = out
        .authorization_data()
        .first()
        .ok_or_else(|| ImageShipError::Ecr {
            operation: "GetAuthorizationToken",
            message: "no authorization data in the answer".into(),
        })?;
    let token = data.authorization_token().unwrap_or_default();
    let endpoint = data.proxy_endpoint().unwrap_or_default();
    let url = registry_url.unwrap_or(endpoint).trim_end_matches('/');
    if token.is_empty() || url.is_empty() {
        return Err(ImageShipError::Ecr {
            operation: "GetAuthorizationToken",
            message: "the answer has no token or no proxy endpoint".into(),
        });
    }
    // The token is base64("AWS:<password>"): exactly what HTTP basic authentication sends.
    Ok(RegistryAuth {
        url: url.to_owned(),
        authorization: format!("Basic {token}"),
    })
}

/// The repository name of a repository URI (`<registry>/<name>`).
pub fn repository_name(uri: &str) -> &str {
    uri.split_once('/').map_or(uri, |(_, name)| name)
}

/// Checks the repository exists; returns its URI.
pub async fn describe_repository(
    ecr: &aws_sdk_ecr::Client,
    name: &str,
) -> Result<String, ImageShipError> {
    match ecr
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
    {
        Ok(out) => out
            .repositories()
            .first()
            .and_then(|r| r.repository_uri())
            .map(str::to_owned)
            .ok_or_else(|| ImageShipError::NoRepository(name.to_owned())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_repository_not_found_exception()) =>
        {
            Err(ImageShipError::NoRepository(name.to_owned()))
        }
        Err(e) => Err(ecr_err("DescribeRepositories", &e)),
    }
}

/// Refuses a digest that is not in the repository.
pub async fn verify_in_ecr(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    digest: &str,
) -> Result<(), ImageShipError> {
    let not_there = || ImageShipError::NotInEcr {
        repository: repository.to_owned(),
        digest: digest.to_owned(),
    };
    if !is_sha256_digest(digest) {
        return Err(not_there());
    }
    let res = ecr
        .describe_images()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_digest(digest).build())
        .send()
        .await;
    match res {
        Ok(out)
            if out
                .image_details()
                .iter()
                .any(|d| d.image_digest() == Some(digest)) =>
        {
            Ok(())
        }
        Ok(_) => Err(not_there()),
        Err(e)
            if e.as_service_error().is_some_and(|se| {
                se.is_image_not_found_exception() || se.is_repository_not_found_exception()
            }) =>
        {
            Err(not_there())
        }
        Err(e) => Err(ecr_err("DescribeImages", &e)),
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushReport {
    /// The image digest.
    pub digest: String,
    /// Blobs uploaded now.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_present: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Whether the manifest was put now (false: the image was already there).
    pub manifest_pushed: bool,
}

/// The tag an image is pushed with: `sha256-<hex>` of its digest. Task definitions use the
/// digest; the tag only names the image for people (and is immutable-safe: one tag, one
/// digest).
pub fn content_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// A client of the OCI distribution API for one repository.
#[derive(Debug, Clone)]
pub struct Registry {
    http: reqwest::Client,
    auth: RegistryAuth,
    repository: String,
}

impl Registry {
    /// A client for `repository` on the registry of `auth`.
    pub fn new(auth: RegistryAuth, repository: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .unwrap_or_default();
        Self {
            http,
            auth,
            repository: repository.to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.auth.url, self.repository)
    }

    /// Absolute form of an upload `Location` (which may be relative to the registry).
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.auth.url)
        }
    }

    async fn send(
        &self,
        method: &'static str,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ImageShipError> {
        req.header(reqwest::header::AUTHORIZATION, &self.auth.authorization)
            .send()
            .await
            .map_err(|e| ImageShipError::Registry {
                method,
                url: url.to_owned(),
                status: "error".into(),
                body: e.to_string(),
            })
    }

    async fn refused(method: &'static str, url: &str, r: reqwest::Response) -> ImageShipError {
        let status = r.status().to_string();
        let body = r.text().await.unwrap_or_default();
        ImageShipError::Registry {
            method,
            url: url.to_owned(),
            status,
            body: body.chars().take(300).collect(),
        }
    }

    /// Whether the registry has the manifest `digest` (HEAD).
    pub async fn has_manifest(&self, digest: &str) -> Result<bool, ImageShipError> {
        let url = self.url(&format!("manifests/{digest}"));
        let r = self
            .send(
                "HEAD",
                &url,
                self.http
                    .head(&url)
                    .header(reqwest::header::ACCEPT, MANIFEST_MEDIA_TYPE),
            )
            .await?;
        match r.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(Self::refused("HEAD", &url, r).await),
        }
    }

    /// Whether the registry has a blob (HEAD).
    pub async fn has_blob(&self, digest: &str) -> Result<bool, ImageShipError> {
        let url = self.url(&format!("blobs/{digest}"));
        let r = self.send("HEAD", &url, self.http.head(&url)).await?;
        match r.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(Self::refused("HEAD", &url, r).await),
        }
    }

    fn location(&self, r: &reqwest::Response) -> Option<String> {
        r.headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.absolute(l))
    }

    /// Uploads one blob: open a session (POST), send the bytes as one chunk (PATCH), close
    /// it with the digest (PUT) — the sequence every registry, ECR included, accepts.
    pub async fn upload_blob(&self, blob: &Blob) -> Result<(), ImageShipError> {
        let start = self.url("blobs/uploads/");
        let r = self
            .send(
                "POST",
                &start,
                self.http
                    .post(&start)
                    .header(reqwest::header::CONTENT_LENGTH, 0),
            )
            .await?;
        if r.status().as_u16() != 202 {
            return Err(Self::refused("POST", &start, r).await);
        }
        let loc = self.location(&r).ok_or_else(|| ImageShipError::Registry {
            method: "POST",
            url: start.clone(),
            status: "202".into(),
            body: "no Location header".into(),
        })?;
        let end = blob.bytes.len().saturating_sub(1);
        let r = self
            .send(
                "PATCH",
                &loc,
                self.http
                    .patch(&loc)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONTENT_RANGE, format!("0-{end}"))
                    .body(blob.bytes.clone()),
            )
            .await?;
        if r.status().as_u16() != 202 {
            return Err(Self::refused("PATCH", &loc, r).await);
        }
        let loc = self.location(&r).unwrap_or(loc);
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={}", blob.digest);
        let r = self
            .send(
                "PUT",
                &put,
                self.http
                    .put(&put)
                    .header(reqwest::header::CONTENT_LENGTH, 0),
            )
            .await?;
        if r.status().as_u16() != 201 {
            return Err(Self::refused("PUT", &put, r).await);
        }
        Ok(())
    }

    /// Pushes an image: blobs the registry lacks, then the manifest under
    /// [`content_tag`]. An image already there (manifest by digest) uploads nothing.
    pub async fn push(&self, image: &Image) -> Result<PushReport, ImageShipError> {
        let mut report = PushReport {
            digest: image.digest().to_owned(),
            ..PushReport::default()
        };
        if self.has_manifest(image.digest()).await? {
            report.blobs_present = image.blobs().count();
            return Ok(report);
        }
        for blob in image.blobs() {
            if self.has_blob(&blob.digest).await? {
                report.blobs_present += 1;
                continue;
            }
            self.upload_blob(blob).await?;
            report.blobs_uploaded += 1;
            report.bytes_uploaded += blob.bytes.len() as u64;
        }
        let url = self.url(&format!("manifests/{}", content_tag(image.digest())));
        let r = self
            .send(
                "PUT",
                &url,
                self.http
                    .put(&url)
                    .header(reqwest::header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE)
                    .body(image.manifest.bytes.clone()),
            )
            .await?;
        if r.status().as_u16() != 201 {
            return Err(Self::refused("PUT", &url, r).await);
        }
        if let Some(got) = r
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && got != image.digest()
        {
            return Err(ImageShipError::DigestMismatch {
                want: image.digest().to_owned(),
                got: got.to_owned(),
            });
        }
        report.manifest_pushed = true;
        Ok(report)
    }
}

impl Engine {
    /// Pushes the runtime image to the bootstrap repository (blobs the registry lacks, then
    /// the manifest) and checks ECR has the digest; in a dry run, only says whether it would.
    pub async fn ship_image(
        &self,
        boot: &BootstrapInfo,
        image: &ShipImage,
    ) -> Result<PushReport, DeployError> {
        let name = boot
            .repository
            .as_deref()
            .ok_or_else(|| DeployError::MissingOutput {
                stack: "(runtime image)".into(),
                parameter: "(repository)".into(),
                source_stack: BOOTSTRAP.into(),
                output: OUTPUT_ECR_REPOSITORY.into(),
            })?;
        let ecr = &self.clients.ecr;
        describe_repository(ecr, name).await?;
        let digest = image.image.digest();
        if self.opts.dry_run {
            let present = verify_in_ecr(ecr, name, digest).await.is_ok();
            self.reporter.on(&Event::Info {
                message: if present {
                    format!("image {digest}: already in {name}")
                } else {
                    format!("image {digest}: would push to {name}")
                },
            });
            return Ok(PushReport {
                digest: digest.to_owned(),
                ..PushReport::default()
            });
        }
        let auth = ecr_auth(ecr, self.opts.registry_url.as_deref()).await?;
        let registry = auth.url.clone();
        let report = Registry::new(auth, name).push(&image.image).await?;
        self.reporter.on(&Event::Info {
            message: if report.manifest_pushed {
                format!(
                    "image {digest}: pushed to {registry}/{name} ({} blobs, {:.1} MB uploaded; {} already there)",
                    report.blobs_uploaded,
                    report.bytes_uploaded as f64 / 1e6,
                    report.blobs_present
                )
            } else {
                format!("image {digest}: already in {registry}/{name}")
            },
        });
        verify_in_ecr(ecr, name, digest).await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags() {
        assert_eq!(
            repository_name(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/chrono-acme-prod-runtime"
            ),
            "chrono-acme-prod-runtime"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(content_tag(&d), format!("sha256-{}", "a".repeat(64)));
        let auth = RegistryAuth::basic("http://127.0.0.1:5000/", "AWS", "secret");
        assert_eq!(auth.url, "http://127.0.0.1:5000");
        assert!(!format!("{auth:?}").contains("secret"));
        assert!(!format!("{auth:?}").contains(&auth.authorization));
    }
}
