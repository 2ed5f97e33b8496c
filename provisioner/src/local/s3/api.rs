//! The S3 operations the platform uses, over [`Store`]: s3s parses the requests (SigV4
//! headers and presigned query strings, `aws-chunked` bodies with trailing checksums) and
//! renders the answers; this module decides.
//!
//! As strict as S3 where the product depends on it
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html>):
//! a declared checksum (`x-amz-checksum-*`, header or trailer) is verified against the
//! bytes received before anything is stored (`BadDigest` otherwise, and the previous
//! object stays); a multipart upload created with a checksum algorithm verifies every
//! part the same way, checks the parts' checksums and ETags listed on completion
//! (`InvalidPart`), their order (`InvalidPartOrder`) and size (`EntityTooSmall`), and
//! stores S3's composite checksum (`<base64 of the hash of the parts' hashes>-<parts>`).
//!
//! Operations served: CreateBucket, HeadBucket, ListBuckets, Put/GetBucketCors,
//! PutObject, GetObject (with `Range`), HeadObject, ListObjectsV2, DeleteObject(s),
//! Create/Complete/AbortMultipartUpload, UploadPart. Everything else answers
//! `NotImplemented` — versioning included: this store keeps the latest version of an
//! object only (the runtime never reads versions).

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::sync::Arc;

use base64::Engine as _;
use futures::TryStreamExt as _;
use s3s::crypto::Checksum as _;
use s3s::dto::*;
use s3s::{S3, S3Error, S3Request, S3Response, S3Result, s3_error};
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;

use super::store::{
    BucketConfig, Checksums, CorsRule, ObjectMeta, PartMeta, Staged, Store, StoreError, Upload,
};

/// Smallest part S3 accepts, but the last.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Most keys one ListObjectsV2 page holds.
const MAX_KEYS: i32 = 1000;

/// The S3 service of `local serve-s3`.
#[derive(Debug, Clone)]
pub struct LocalS3 {
    store: Arc<Store>,
}

impl LocalS3 {
    /// Serves `store`.
    pub fn new(store: Arc<Store>) -> Self {
        LocalS3 { store }
    }
}

fn store_error(e: StoreError) -> S3Error {
    match e {
        StoreError::NoSuchBucket => s3_error!(NoSuchBucket),
        StoreError::InvalidBucketName => s3_error!(InvalidBucketName),
        StoreError::NoSuchKey => s3_error!(NoSuchKey),
        StoreError::NoSuchUpload => s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed."
        ),
        StoreError::Io(e) => {
            eprintln!("s3: storage error: {e}");
            S3Error::internal_error(e)
        }
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> S3Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(S3Error::internal_error)?
        .map_err(store_error)
}

/// The checksums declared for a body: headers, then (once the body is read) trailers.
#[derive(Debug, Default, Clone)]
struct Declared {
    crc32: Option<String>,
    crc32c: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
    crc64nvme: Option<String>,
    algorithm: Option<String>,
}

impl Declared {
    /// The hasher computing every declared checksum and the one of `algorithm`.
    fn hasher(&self) -> S3Result<s3s::checksum::ChecksumHasher> {
        let mut h = s3s::checksum::ChecksumHasher::default();
        let algorithm = self.algorithm.as_deref().map(str::to_ascii_uppercase);
        if self.crc32.is_some() || algorithm.as_deref() == Some(ChecksumAlgorithm::CRC32) {
            h.crc32 = Some(Default::default());
        }
        if self.crc32c.is_some() || algorithm.as_deref() == Some(ChecksumAlgorithm::CRC32C) {
            h.crc32c = Some(Default::default());
        }
        if self.sha1.is_some() || algorithm.as_deref() == Some(ChecksumAlgorithm::SHA1) {
            h.sha1 = Some(Default::default());
        }
        if self.sha256.is_some() || algorithm.as_deref() == Some(ChecksumAlgorithm::SHA256) {
            h.sha256 = Some(Default::default());
        }
        if self.crc64nvme.is_some() || algorithm.as_deref() == Some(ChecksumAlgorithm::CRC64NVME) {
            h.crc64nvme = Some(Default::default());
        }
        match algorithm.as_deref() {
            None
            | Some(
                ChecksumAlgorithm::CRC32
                | ChecksumAlgorithm::CRC32C
                | ChecksumAlgorithm::SHA1
                | ChecksumAlgorithm::SHA256
                | ChecksumAlgorithm::CRC64NVME,
            ) => Ok(h),
            Some(other) => Err(s3_error!(
                InvalidRequest,
                "Checksum algorithm {other} is not supported"
            )),
        }
    }

    /// Adds the checksums a chunked body carried in its trailer.
    fn with_trailers(mut self, trailers: Option<&s3s::TrailingHeaders>) -> Self {
        let Some(map) = trailers.and_then(s3s::TrailingHeaders::take) else {
            return self;
        };
        let get = |name: &str| {
            map.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.crc32 = self.crc32.or(get("x-amz-checksum-crc32"));
        self.crc32c = self.crc32c.or(get("x-amz-checksum-crc32c"));
        self.sha1 = self.sha1.or(get("x-amz-checksum-sha1"));
        self.sha256 = self.sha256.or(get("x-amz-checksum-sha256"));
        self.crc64nvme = self.crc64nvme.or(get("x-amz-checksum-crc64nvme"));
        self
    }

    /// The computed checksums if every declared one matches; S3's `BadDigest` otherwise.
    fn verify(&self, computed: Checksum) -> S3Result<Checksums> {
        for (name, declared, got) in [
            ("CRC32", &self.crc32, &computed.checksum_crc32),
            ("CRC32C", &self.crc32c, &computed.checksum_crc32c),
            ("SHA1", &self.sha1, &computed.checksum_sha1),
            ("SHA256", &self.sha256, &computed.checksum_sha256),
            ("CRC64NVME", &self.crc64nvme, &computed.checksum_crc64nvme),
        ] {
            if let Some(declared) = declared
                && Some(declared) != got.as_ref()
            {
                return Err(s3_error!(
                    BadDigest,
                    "The {name} you specified did not match the calculated checksum."
                ));
            }
        }
        Ok(Checksums {
            crc32: computed.checksum_crc32,
            crc32c: computed.checksum_crc32c,
            sha1: computed.checksum_sha1,
            sha256: computed.checksum_sha256,
            crc64nvme: computed.checksum_crc64nvme,
            checksum_type: Some(ChecksumType::FULL_OBJECT.to_owned()),
        })
    }
}

/// A body received, `fsync`ed and hashed, not yet part of any object.
struct Received {
    staged: Staged,
    size: u64,
    md5_hex: String,
    checksums: Checksums,
}

/// Receives `body` into a staged file, hashing it; verifies `declared` (and the MD5 of
/// `content_md5`) before the caller may commit it.
async fn receive(
    store: &Store,
    body: Option<StreamingBlob>,
    declared: Declared,
    content_md5: Option<&str>,
    trailers: Option<&s3s::TrailingHeaders>,
) -> S3Result<Received> {
    let Some(mut body) = body else {
        return Err(s3_error!(IncompleteBody));
    };
    let mut hasher = declared.hasher()?;
    let mut md5 = s3s::crypto::Md5::new();
    let staged = store.stage().map_err(S3Error::internal_error)?;
    let mut file = tokio::fs::File::create(staged.path())
        .await
        .map_err(S3Error::internal_error)?;
    let mut size = 0u64;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| s3_error!(IncompleteBody, "the body ended early: {e}"))?
    {
        md5.update(&chunk);
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(S3Error::internal_error)?;
    }
    file.flush().await.map_err(S3Error::internal_error)?;
    file.sync_all().await.map_err(S3Error::internal_error)?;
    drop(file);
    let md5 = md5.finalize();
    if let Some(given) = content_md5 {
        let given = base64::engine::general_purpose::STANDARD
            .decode(given)
            .map_err(|_| s3_error!(InvalidDigest))?;
        if given != md5.as_slice() {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received."
            ));
        }
    }
    let checksums = declared.with_trailers(trailers).verify(hasher.finalize())?;
    Ok(Received {
        staged,
        size,
        md5_hex: hex::encode(md5),
        checksums,
    })
}

fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

/// The checksums of `meta` as S3 returns them: only when asked (`x-amz-checksum-mode:
/// ENABLED`) and for the whole object.
fn returned(meta: &ObjectMeta, mode: Option<&ChecksumMode>, whole: bool) -> Checksums {
    if whole && mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED)) {
        meta.checksums.clone()
    } else {
        Checksums::default()
    }
}

/// An s3s answer `$output` with the given fields and the checksums `$c` ([`Checksums`]);
/// the rest defaulted. (Each operation has its own answer type with the same checksum
/// fields.)
macro_rules! with_checksums {
    ($output:ident, $c:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let c: Checksums = $c;
        $output {
            $($field: $value,)*
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_crc64nvme: c.crc64nvme,
            ..Default::default()
        }
    }};
}

/// The checksums an s3s request `$input` declares in its headers, verified with
/// `$algorithm` too.
macro_rules! declared {
    ($input:expr, $algorithm:expr) => {
        Declared {
            crc32: $input.checksum_crc32,
            crc32c: $input.checksum_crc32c,
            sha1: $input.checksum_sha1,
            sha256: $input.checksum_sha256,
            crc64nvme: $input.checksum_crc64nvme,
            algorithm: $algorithm,
        }
    };
}

#[async_trait::async_trait]
impl S3 for LocalS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let store = self.store.clone();
        let bucket = req.input.bucket.clone();
        if blocking(move || store.create_bucket(&bucket)).await? {
            Ok(S3Response::new(CreateBucketOutput {
                location: Some(format!("/{}", req.input.bucket)),
            }))
        } else {
            Err(s3_error!(BucketAlreadyOwnedByYou))
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let store = self.store.clone();
        blocking(move || store.bucket(&req.input.bucket)).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let store = self.store.clone();
        let names = blocking(move || store.buckets()).await?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(
                names
                    .into_iter()
                    .map(|name| Bucket {
                        name: Some(name),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        let rules = input
            .cors_configuration
            .cors_rules
            .into_iter()
            .map(|r| CorsRule {
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers: r.allowed_headers.unwrap_or_default(),
                expose_headers: r.expose_headers.unwrap_or_default(),
                max_age_seconds: r.max_age_seconds,
            })
            .collect();
        let store = self.store.clone();
        blocking(move || {
            let mut config = store.bucket(&input.bucket)?;
            config.cors = rules;
            store.set_bucket(&input.bucket, &config)
        })
        .await?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let store = self.store.clone();
        let config: BucketConfig = blocking(move || store.bucket(&req.input.bucket)).await?;
        if config.cors.is_empty() {
            return Err(s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            ));
        }
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(
                config
                    .cors
                    .into_iter()
                    .map(|r| CORSRule {
                        allowed_origins: r.allowed_origins,
                        allowed_methods: r.allowed_methods,
                        allowed_headers: Some(r.allowed_headers),
                        expose_headers: Some(r.expose_headers),
                        max_age_seconds: r.max_age_seconds,
                        id: None,
                    })
                    .collect(),
            ),
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let store = self.store.clone();
        let bucket = input.bucket.clone();
        blocking(move || store.bucket(&bucket)).await?;
        let algorithm = input.checksum_algorithm.map(|a| a.as_str().to_owned());
        let received = receive(
            &self.store,
            input.body,
            declared!(input, algorithm),
            input.content_md5.as_deref(),
            req.trailing_headers.as_ref(),
        )
        .await?;
        let meta = ObjectMeta {
            key: input.key,
            size: received.size,
            etag: received.md5_hex,
            content_type: input.content_type.map(|c| c.to_string()),
            last_modified: std::time::SystemTime::now(),
            checksums: received.checksums,
            data: String::new(),
        };
        let store = self.store.clone();
        let (bucket, staged) = (input.bucket, received.staged);
        let meta = blocking(move || store.commit(&bucket, staged, meta)).await?;
        Ok(S3Response::new(
            with_checksums!(PutObjectOutput, meta.checksums.clone(), {
                e_tag: Some(etag(&meta.etag)),
                checksum_type: meta.checksums.checksum_type.map(ChecksumType::from),
            }),
        ))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let store = self.store.clone();
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        let (meta, mut file) = blocking(move || store.open_object(&bucket, &key)).await?;
        let (start, length, content_range) = match &input.range {
            None => (0, meta.size, None),
            Some(range) => {
                let r = range.check(meta.size)?;
                let range = format!("bytes {}-{}/{}", r.start, r.end - 1, meta.size);
                (r.start, r.end - r.start, Some(range))
            }
        };
        file.seek(SeekFrom::Start(start))
            .map_err(S3Error::internal_error)?;
        let file = tokio::fs::File::from_std(file);
        use tokio::io::AsyncReadExt as _;
        let body = tokio_util::io::ReaderStream::with_capacity(file.take(length), 64 * 1024);
        let c = returned(&meta, input.checksum_mode.as_ref(), content_range.is_none());
        Ok(S3Response::new(
            with_checksums!(GetObjectOutput, c.clone(), {
                body: Some(StreamingBlob::wrap(body)),
                content_length: Some(i64::try_from(length).map_err(S3Error::internal_error)?),
                content_range: content_range,
                content_type: meta.content_type,
                e_tag: Some(etag(&meta.etag)),
                last_modified: Some(Timestamp::from(meta.last_modified)),
                checksum_type: c.checksum_type.map(ChecksumType::from),
            }),
        ))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let store = self.store.clone();
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        let (meta, _) = blocking(move || store.object(&bucket, &key)).await?;
        let c = returned(&meta, input.checksum_mode.as_ref(), true);
        Ok(S3Response::new(
            with_checksums!(HeadObjectOutput, c.clone(), {
                content_length: Some(i64::try_from(meta.size).map_err(S3Error::internal_error)?),
                content_type: meta.content_type,
                e_tag: Some(etag(&meta.etag)),
                last_modified: Some(Timestamp::from(meta.last_modified)),
                checksum_type: c.checksum_type.map(ChecksumType::from),
            }),
        ))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let store = self.store.clone();
        let prefix = input.prefix.clone().unwrap_or_default();
        let bucket = input.bucket.clone();
        let all = blocking(move || store.list(&bucket, &prefix)).await?;
        let after = match &input.continuation_token {
            Some(token) => Some(
                hex::decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?,
            ),
            None => input.start_after.clone(),
        };
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS) as usize;
        let page = list_page(
            &all,
            input.prefix.as_deref().unwrap_or_default(),
            input.delimiter.as_deref(),
            after.as_deref(),
            max_keys,
        );
        let contents: Vec<Object> = page
            .objects
            .iter()
            .map(|m| Object {
                key: Some(m.key.clone()),
                size: i64::try_from(m.size).ok(),
                e_tag: Some(etag(&m.etag)),
                last_modified: Some(Timestamp::from(m.last_modified)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect();
        let common: Vec<CommonPrefix> = page
            .prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(p.clone()),
            })
            .collect();
        let key_count = i32::try_from(contents.len() + common.len()).unwrap_or(i32::MAX);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            max_keys: Some(max_keys as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.next.is_some()),
            next_continuation_token: page.next.map(hex::encode),
            continuation_token: input.continuation_token,
            start_after: input.start_after,
            contents: Some(contents),
            common_prefixes: (!common.is_empty()).then_some(common),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let store = self.store.clone();
        let input = req.input;
        blocking(move || store.delete(&input.bucket, &input.key)).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let store = self.store.clone();
        let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
        let quiet = input.delete.quiet.unwrap_or(false);
        let bucket = input.bucket;
        let deleted = blocking(move || {
            store.bucket(&bucket)?;
            for key in &keys {
                store.delete(&bucket, key)?;
            }
            Ok(keys)
        })
        .await?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!quiet).then(|| {
                deleted
                    .into_iter()
                    .map(|key| DeletedObject {
                        key: Some(key),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let upload = Upload {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            content_type: input.content_type.map(|c| c.to_string()),
            checksum_algorithm: input
                .checksum_algorithm
                .as_ref()
                .map(|a| a.as_str().to_ascii_uppercase()),
        };
        // Refuse an algorithm we cannot verify now rather than at the first part.
        Declared {
            algorithm: upload.checksum_algorithm.clone(),
            ..Default::default()
        }
        .hasher()?;
        let store = self.store.clone();
        let id = blocking(move || store.create_upload(&upload)).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            checksum_algorithm: input.checksum_algorithm,
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let store = self.store.clone();
        let (id, bucket, key) = (
            input.upload_id.clone(),
            input.bucket.clone(),
            input.key.clone(),
        );
        let upload = blocking(move || store.upload(&id, &bucket, &key)).await?;
        let received = receive(
            &self.store,
            input.body,
            declared!(input, upload.checksum_algorithm.clone()),
            input.content_md5.as_deref(),
            req.trailing_headers.as_ref(),
        )
        .await?;
        let part = PartMeta {
            size: received.size,
            etag: received.md5_hex,
            checksums: received.checksums,
            data: String::new(),
        };
        let store = self.store.clone();
        let (id, number, staged) = (input.upload_id, input.part_number, received.staged);
        let part = blocking(move || store.commit_part(&id, number, staged, part)).await?;
        Ok(S3Response::new(
            with_checksums!(UploadPartOutput, part.checksums, {
                e_tag: Some(etag(&part.etag)),
            }),
        ))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let listed: Vec<CompletedPart> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        let store = self.store.clone();
        let (id, bucket, key) = (input.upload_id, input.bucket, input.key);
        let (bucket2, key2) = (bucket.clone(), key.clone());
        let meta =
            tokio::task::spawn_blocking(move || assemble(&store, &id, &bucket2, &key2, &listed))
                .await
                .map_err(S3Error::internal_error)??;
        let c = meta.checksums;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(bucket),
            key: Some(key),
            e_tag: Some(etag(&meta.etag)),
            checksum_sha256: c.sha256,
            checksum_type: c.checksum_type.map(ChecksumType::from),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let store = self.store.clone();
        blocking(move || {
            store.upload(&input.upload_id, &input.bucket, &input.key)?;
            store.drop_upload(&input.upload_id)
        })
        .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

/// One page of a listing.
#[derive(Debug, PartialEq, Eq)]
struct Page<'a> {
    objects: Vec<&'a ObjectMeta>,
    prefixes: Vec<String>,
    /// The last key (or common prefix) of a truncated page, where the next page starts.
    next: Option<String>,
}

/// The page of `all` (sorted by key, every key under `prefix`) after `after`, rolling keys
/// that contain `delimiter` past the prefix into common prefixes, at most `max` entries.
fn list_page<'a>(
    all: &'a [ObjectMeta],
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> Page<'a> {
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        next: None,
    };
    let mut last: Option<String> = None;
    for m in all {
        if after.is_some_and(|a| m.key.as_str() <= a) {
            continue;
        }
        let rolled = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            m.key[prefix.len()..]
                .find(d)
                .map(|i| m.key[..prefix.len() + i + d.len()].to_owned())
        });
        if let Some(p) = &rolled {
            if page.prefixes.last() == Some(p) {
                continue;
            }
            // A prefix already returned on an earlier page.
            if after.is_some_and(|a| a.starts_with(p.as_str())) {
                continue;
            }
        }
        if page.objects.len() + page.prefixes.len() == max {
            page.next = last;
            break;
        }
        match rolled {
            Some(p) => {
                last = Some(p.clone());
                page.prefixes.push(p);
            }
            None => {
                last = Some(m.key.clone());
                page.objects.push(m);
            }
        }
    }
    page
}

/// Checks the listed parts of upload `id` against what was received and, if S3 would
/// accept them, assembles the object (bytes `fsync`ed, then committed like a `PUT`).
fn assemble(
    store: &Store,
    id: &str,
    bucket: &str,
    key: &str,
    listed: &[CompletedPart],
) -> S3Result<ObjectMeta> {
    let upload = store.upload(id, bucket, key).map_err(store_error)?;
    if listed.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "You must specify at least one part"
        ));
    }
    let sha256 = upload.checksum_algorithm.as_deref() == Some(ChecksumAlgorithm::SHA256);
    let mut parts = Vec::with_capacity(listed.len());
    let mut previous = 0;
    for (i, p) in listed.iter().enumerate() {
        let number = p
            .part_number
            .ok_or_else(|| s3_error!(InvalidPart, "a part has no PartNumber"))?;
        if number <= previous {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number."
            ));
        }
        previous = number;
        let invalid = || {
            s3_error!(
                InvalidPart,
                "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
            )
        };
        let (meta, path) = store
            .part(id, number)
            .map_err(store_error)?
            .ok_or_else(invalid)?;
        if p.e_tag.as_ref().map(ETag::value) != Some(meta.etag.as_str()) {
            return Err(invalid());
        }
        if sha256 && p.checksum_sha256.as_ref() != meta.checksums.sha256.as_ref() {
            return Err(s3_error!(
                InvalidPart,
                "The SHA256 listed for part {number} does not match the checksum of the part received."
            ));
        }
        if i + 1 < listed.len() && meta.size < MIN_PART_SIZE {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size."
            ));
        }
        parts.push((meta, path));
    }
    let staged = store.stage().map_err(S3Error::internal_error)?;
    let mut out = std::fs::File::create(staged.path()).map_err(S3Error::internal_error)?;
    let mut md5s = s3s::crypto::Md5::new();
    let mut sha256s = sha2::Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1024 * 1024];
    for (meta, path) in &parts {
        let mut f = std::fs::File::open(path).map_err(S3Error::internal_error)?;
        loop {
            let n = f.read(&mut buf).map_err(S3Error::internal_error)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(S3Error::internal_error)?;
            size += n as u64;
        }
        md5s.update(&hex::decode(&meta.etag).map_err(S3Error::internal_error)?);
        if let Some(b64) = &meta.checksums.sha256 {
            sha256s.update(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(S3Error::internal_error)?,
            );
        }
    }
    out.sync_all().map_err(S3Error::internal_error)?;
    drop(out);
    let n = parts.len();
    let etag = format!("{}-{n}", hex::encode(md5s.finalize()));
    let checksums = if sha256 {
        Checksums {
            sha256: Some(format!(
                "{}-{n}",
                base64::engine::general_purpose::STANDARD.encode(sha256s.finalize())
            )),
            checksum_type: Some(ChecksumType::COMPOSITE.to_owned()),
            ..Default::default()
        }
    } else {
        Checksums::default()
    };
    let meta = ObjectMeta {
        key: key.to_owned(),
        size,
        etag,
        content_type: upload.content_type,
        last_modified: std::time::SystemTime::now(),
        checksums,
        data: String::new(),
    };
    let meta = store.commit(bucket, staged, meta).map_err(store_error)?;
    store.drop_upload(id).map_err(store_error)?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    fn metas(keys: &[&str]) -> Vec<ObjectMeta> {
        keys.iter()
            .map(|k| ObjectMeta {
                key: (*k).into(),
                size: 0,
                etag: String::new(),
                content_type: None,
                last_modified: std::time::SystemTime::UNIX_EPOCH,
                checksums: Checksums::default(),
                data: String::new(),
            })
            .collect()
    }

    fn keys(p: &Page<'_>) -> Vec<String> {
        p.objects.iter().map(|m| m.key.clone()).collect()
    }

    #[test]
    fn pages_resume_after_the_last_key_and_roll_up_common_prefixes() {
        let all = metas(&["a/1", "a/2", "b", "c/x/1", "c/y", "d"]);
        let p = list_page(&all, "", None, None, 2);
        assert_eq!(keys(&p), ["a/1", "a/2"]);
        assert_eq!(p.next.as_deref(), Some("a/2"));
        let p = list_page(&all, "", None, Some("a/2"), 10);
        assert_eq!(keys(&p), ["b", "c/x/1", "c/y", "d"]);
        assert_eq!(p.next, None);

        let p = list_page(&all, "", Some("/"), None, 2);
        assert_eq!(keys(&p), ["b"]);
        assert_eq!(p.prefixes, ["a/"]);
        assert_eq!(p.next.as_deref(), Some("b"));
        let p = list_page(&all, "", Some("/"), Some("b"), 10);
        assert_eq!(keys(&p), ["d"]);
        assert_eq!(p.prefixes, ["c/"]);

        let under_c = metas(&["c/x/1", "c/y"]);
        let p = list_page(&under_c, "c/", Some("/"), None, 10);
        assert_eq!(keys(&p), ["c/y"]);
        assert_eq!(p.prefixes, ["c/x/"]);
    }

    #[test]
    fn a_declared_checksum_that_does_not_match_is_bad_digest() {
        let declared = Declared {
            sha256: Some("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into()),
            ..Default::default()
        };
        let mut h = declared.hasher().unwrap();
        h.update(b"test");
        let ok = declared.verify(h.finalize()).unwrap();
        assert_eq!(ok.sha256, declared.sha256);
        let mut h = declared.hasher().unwrap();
        h.update(b"tesT");
        let err = declared.verify(h.finalize()).unwrap_err();
        assert_eq!(*err.code(), S3ErrorCode::BadDigest);
    }
}
