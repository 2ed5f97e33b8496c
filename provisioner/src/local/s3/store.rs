//! The local S3 server's storage: buckets, objects and multipart uploads as plain files
//! under one directory, written so that a crash (`kill -9`, power loss after the answer)
//! never leaves a torn or half-described object.
//!
//! ```text
//! <root>/buckets/<bucket>/bucket.json           CORS rules
//! <root>/buckets/<bucket>/objects/<h>.json      an object's description (h = SHA-256 of the key)
//! <root>/buckets/<bucket>/data/<uuid>           an object's bytes, named by its description
//! <root>/uploads/<id>/upload.json               a multipart upload in progress
//! <root>/uploads/<id>/part-<n>.json, part-<n>-<uuid>   its parts (description, bytes)
//! <root>/tmp/                                   bodies being received
//! ```
//!
//! **The description is the commit point.** A body is received into `tmp/`, verified,
//! `fsync`ed and renamed into `data/` under a fresh name; only then is the description
//! naming it written (temp file, `fsync`, rename, `fsync` of the directory), replacing the
//! previous one in one `rename(2)`. A reader sees the old object or the new one, never a
//! mix; a crash before the rename leaves the old object and an unreferenced data file,
//! which [`Store::open`] removes with whatever `tmp/` holds. A body that fails its
//! checksum is never renamed at all. Multipart parts follow the same rule.
//!
//! This module knows nothing of HTTP or the S3 protocol (see [`super::api`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// What the store refuses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such bucket.
    #[error("the bucket does not exist")]
    NoSuchBucket,
    /// Not a bucket name S3 accepts.
    #[error("not a valid bucket name")]
    InvalidBucketName,
    /// No such object.
    #[error("the object does not exist")]
    NoSuchKey,
    /// No such multipart upload (never created, completed or aborted).
    #[error("the multipart upload does not exist (it may have been completed or aborted)")]
    NoSuchUpload,
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A bucket's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketConfig {
    /// CORS rules, in the order S3 evaluates them.
    #[serde(default)]
    pub cors: Vec<CorsRule>,
}

/// One CORS rule (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/ManageCorsUsing.html>).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// Origins (one `*` wildcard each at most).
    pub allowed_origins: Vec<String>,
    /// Methods.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for (one `*` wildcard each at most).
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight answer.
    #[serde(default)]
    pub max_age_seconds: Option<i32>,
}

/// The checksums S3 knows, base64 as on the wire; `None` where not computed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// CRC32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    /// CRC32C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    /// SHA-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// SHA-256 (of the whole body, or S3's composite `<base64>-<parts>` of a multipart
    /// upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// CRC64NVME.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
}

/// An object's description (the commit point of its bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The ETag (MD5 hex, or `<md5 of part md5s>-<parts>`), without quotes.
    pub etag: String,
    /// Content type it was stored with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// When it was stored.
    pub last_modified: SystemTime,
    /// Checksums S3 verified or computed.
    #[serde(default)]
    pub checksums: Checksums,
    /// Name of its data file in the bucket's `data/`.
    pub data: String,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Bucket.
    pub bucket: String,
    /// Key of the object it will become.
    pub key: String,
    /// Content type of that object.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The checksum algorithm every part is verified with (`SHA256`, ...).
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
}

/// One received part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMeta {
    /// Size in bytes.
    pub size: u64,
    /// MD5 hex (the part's ETag).
    pub etag: String,
    /// Checksums verified at its `PUT`.
    #[serde(default)]
    pub checksums: Checksums,
    /// Its data file in the upload's directory.
    pub data: String,
}

/// A body received into `tmp/`, not yet part of any object; removed unless committed.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    committed: bool,
}

impl Staged {
    /// Where the bytes are.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the bytes to `dir/name`, durably (the directory `fsync`ed after the rename).
    fn place(mut self, dir: &Path, name: &str) -> io::Result<()> {
        std::fs::rename(&self.path, dir.join(name))?;
        self.committed = true;
        sync_dir(dir)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The storage under one directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// Serializes commits and deletes (read old description, rename, remove old data), so
    /// two writers of one key never remove each other's data.
    commit: Mutex<()>,
}

fn fresh_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `fsync` of a directory: makes a rename in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically and durably (temp file in the same directory,
/// `fsync`, rename, `fsync` of the directory).
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", fresh_name()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Whether `name` is a bucket name S3 accepts (so it is also a safe directory name):
/// 3–63 characters of `a-z0-9.-`, starting and ending with a letter or digit
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>).
pub fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..")
}

impl Store {
    /// The store under `root` (created if missing). Removes what a crash may have left:
    /// bodies in `tmp/` and data files no description names.
    pub fn open(root: &Path) -> io::Result<Store> {
        for dir in ["buckets", "uploads", "tmp"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        let store = Store {
            root: root.to_path_buf(),
            commit: Mutex::new(()),
        };
        store.collect_garbage()?;
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn collect_garbage(&self) -> io::Result<()> {
        for entry in std::fs::read_dir(self.root.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        for bucket in std::fs::read_dir(self.root.join("buckets"))? {
            let dir = bucket?.path();
            let mut named = BTreeSet::new();
            for meta in self.descriptions(&dir.join("objects"))? {
                named.insert(meta.data);
            }
            let data = dir.join("data");
            if let Ok(entries) = std::fs::read_dir(&data) {
                for entry in entries {
                    let entry = entry?;
                    if !named.contains(entry.file_name().to_string_lossy().as_ref()) {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
        for upload in std::fs::read_dir(self.root.join("uploads"))? {
            let dir = upload?.path();
            let mut named = BTreeSet::new();
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if name.starts_with("part-") && name.ends_with(".json") {
                    named.insert(read_json::<PartMeta>(&path)?.data);
                }
            }
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let described = name.ends_with(".json") && !name.starts_with('.');
                if !described && !named.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf, StoreError> {
        if !valid_bucket_name(bucket) {
            return Err(StoreError::NoSuchBucket);
        }
        let dir = self.root.join("buckets").join(bucket);
        if dir.join("bucket.json").is_file() {
            Ok(dir)
        } else {
            Err(StoreError::NoSuchBucket)
        }
    }

    fn meta_path(dir: &Path, key: &str) -> PathBuf {
        dir.join("objects")
            .join(format!("{}.json", hex::encode(sha2::Sha256::digest(key))))
    }

    /// Creates `bucket`; `false` when it already exists.
    pub fn create_bucket(&self, bucket: &str) -> Result<bool, StoreError> {
        if !valid_bucket_name(bucket) {
            return Err(StoreError::InvalidBucketName);
        }
        if self.bucket_dir(bucket).is_ok() {
            return Ok(false);
        }
        let dir = self.root.join("buckets").join(bucket);
        for sub in ["objects", "data"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        write_json(&dir.join("bucket.json"), &BucketConfig::default())?;
        Ok(true)
    }

    /// The bucket names.
    pub fn buckets(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.root.join("buckets"))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if self.bucket_dir(&name).is_ok() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// A bucket's settings.
    pub fn bucket(&self, bucket: &str) -> Result<BucketConfig, StoreError> {
        let dir = self.bucket_dir(bucket)?;
        Ok(read_json(&dir.join("bucket.json"))?)
    }

    /// Replaces a bucket's settings.
    pub fn set_bucket(&self, bucket: &str, config: &BucketConfig) -> Result<(), StoreError> {
        let dir = self.bucket_dir(bucket)?;
        Ok(write_json(&dir.join("bucket.json"), config)?)
    }

    /// A new file in `tmp/` to receive a body into (removed unless committed).
    pub fn stage(&self) -> io::Result<Staged> {
        Ok(Staged {
            path: self.root.join("tmp").join(fresh_name()),
            committed: false,
        })
    }

    /// Makes the verified, `fsync`ed body in `staged` the object `meta.key` of `bucket`
    /// (replacing any previous one in one rename); `meta.data` is set here.
    pub fn commit(
        &self,
        bucket: &str,
        staged: Staged,
        mut meta: ObjectMeta,
    ) -> Result<ObjectMeta, StoreError> {
        let dir = self.bucket_dir(bucket)?;
        meta.data = fresh_name();
        let data_dir = dir.join("data");
        staged.place(&data_dir, &meta.data)?;
        let path = Self::meta_path(&dir, &meta.key);
        self.describe(&path, &meta, |old| data_dir.join(old.data))?;
        Ok(meta)
    }

    /// The object `key` of `bucket` and the path of its bytes.
    pub fn object(&self, bucket: &str, key: &str) -> Result<(ObjectMeta, PathBuf), StoreError> {
        let dir = self.bucket_dir(bucket)?;
        match read_json::<ObjectMeta>(&Self::meta_path(&dir, key)) {
            Ok(meta) => {
                let data = dir.join("data").join(&meta.data);
                Ok((meta, data))
            }
            Err(e) if not_found(&e) => Err(StoreError::NoSuchKey),
            Err(e) => Err(e.into()),
        }
    }

    /// The object `key` of `bucket`, opened (retrying once if a concurrent `PUT` replaced
    /// it between reading its description and opening its bytes).
    pub fn open_object(&self, bucket: &str, key: &str) -> Result<(ObjectMeta, File), StoreError> {
        for _ in 0..2 {
            let (meta, path) = self.object(bucket, key)?;
            match File::open(&path) {
                Ok(f) => return Ok((meta, f)),
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::NoSuchKey)
    }

    /// Writes the description `new` at `path` in place of the previous one (the commit
    /// point), then removes the bytes the previous one named (`data_of` it); serialized
    /// with other commits and deletes.
    fn describe<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        new: &T,
        data_of: impl FnOnce(T) -> PathBuf,
    ) -> io::Result<()> {
        let _guard = self.commit.lock().unwrap_or_else(|e| e.into_inner());
        let old = read_json::<T>(path).ok();
        write_json(path, new)?;
        if let Some(old) = old {
            let _ = std::fs::remove_file(data_of(old));
        }
        Ok(())
    }

    fn descriptions(&self, objects: &Path) -> io::Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(objects) {
            Ok(e) => e,
            Err(e) if not_found(&e) => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            match read_json::<ObjectMeta>(&path) {
                Ok(meta) => out.push(meta),
                // deleted while listing
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every object of `bucket` whose key starts with `prefix`, in key order.
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let dir = self.bucket_dir(bucket)?;
        let mut all: Vec<ObjectMeta> = self
            .descriptions(&dir.join("objects"))?
            .into_iter()
            .filter(|m| m.key.starts_with(prefix))
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all)
    }

    /// Deletes the object `key` (nothing to do when it does not exist).
    pub fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let dir = self.bucket_dir(bucket)?;
        let path = Self::meta_path(&dir, key);
        let _guard = self.commit.lock().unwrap_or_else(|e| e.into_inner());
        let old = match read_json::<ObjectMeta>(&path) {
            Ok(m) => m,
            Err(e) if not_found(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        std::fs::remove_file(&path)?;
        sync_dir(&dir.join("objects"))?;
        let _ = std::fs::remove_file(dir.join("data").join(old.data));
        Ok(())
    }

    fn upload_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        let dir = self.root.join("uploads").join(id);
        if valid && dir.join("upload.json").is_file() {
            Ok(dir)
        } else {
            Err(StoreError::NoSuchUpload)
        }
    }

    /// Starts a multipart upload; returns its id.
    pub fn create_upload(&self, upload: &Upload) -> Result<String, StoreError> {
        self.bucket_dir(&upload.bucket)?;
        let id = fresh_name();
        let dir = self.root.join("uploads").join(&id);
        std::fs::create_dir_all(&dir)?;
        write_json(&dir.join("upload.json"), upload)?;
        sync_dir(&self.root.join("uploads"))?;
        Ok(id)
    }

    /// The multipart upload `id` of `bucket`/`key`.
    pub fn upload(&self, id: &str, bucket: &str, key: &str) -> Result<Upload, StoreError> {
        let dir = self.upload_dir(id)?;
        let upload: Upload = read_json(&dir.join("upload.json"))?;
        if upload.bucket == bucket && upload.key == key {
            Ok(upload)
        } else {
            Err(StoreError::NoSuchUpload)
        }
    }

    /// Makes the verified body in `staged` part `number` of upload `id` (replacing a
    /// previous part of that number).
    pub fn commit_part(
        &self,
        id: &str,
        number: i32,
        staged: Staged,
        mut part: PartMeta,
    ) -> Result<PartMeta, StoreError> {
        let dir = self.upload_dir(id)?;
        part.data = format!("part-{number}-{}", fresh_name());
        staged.place(&dir, &part.data)?;
        let path = dir.join(format!("part-{number}.json"));
        self.describe(&path, &part, |old| dir.join(old.data))?;
        Ok(part)
    }

    /// Part `number` of upload `id` and the path of its bytes, if it was received.
    pub fn part(&self, id: &str, number: i32) -> Result<Option<(PartMeta, PathBuf)>, StoreError> {
        let dir = self.upload_dir(id)?;
        match read_json::<PartMeta>(&dir.join(format!("part-{number}.json"))) {
            Ok(p) => {
                let data = dir.join(&p.data);
                Ok(Some((p, data)))
            }
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops upload `id` and every part it holds.
    pub fn drop_upload(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.upload_dir(id)?;
        // The description goes first: from then on the upload does not exist, whatever
        // a crash leaves of its parts (removed by the next `open`... or here).
        std::fs::remove_file(dir.join("upload.json"))?;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            size: 0,
            etag: String::new(),
            content_type: None,
            last_modified: SystemTime::now(),
            checksums: Checksums::default(),
            data: String::new(),
        }
    }

    fn put(store: &Store, bucket: &str, key: &str, body: &[u8]) -> ObjectMeta {
        let staged = store.stage().unwrap();
        std::fs::write(staged.path(), body).unwrap();
        store.commit(bucket, staged, meta(key)).unwrap()
    }

    #[test]
    fn an_object_is_its_description_and_a_replaced_object_leaves_no_data_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.create_bucket("b-1").unwrap());
        assert!(!store.create_bucket("b-1").unwrap());
        put(&store, "b-1", "k/a", b"one");
        put(&store, "b-1", "k/a", b"two");
        let (m, path) = store.object("b-1", "k/a").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"two");
        assert_eq!(m.key, "k/a");
        let data: Vec<_> = std::fs::read_dir(dir.path().join("buckets/b-1/data"))
            .unwrap()
            .collect();
        assert_eq!(data.len(), 1, "the replaced object's bytes are removed");
        store.delete("b-1", "k/a").unwrap();
        assert!(matches!(
            store.object("b-1", "k/a"),
            Err(StoreError::NoSuchKey)
        ));
        assert!(matches!(
            store.object("nope", "k"),
            Err(StoreError::NoSuchBucket)
        ));
    }

    #[test]
    fn a_crash_before_the_description_leaves_the_old_object_and_open_removes_the_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_bucket("b-1").unwrap();
        put(&store, "b-1", "k", b"old");
        // What a kill -9 leaves mid-PUT: a body in tmp/, and (after the data rename but
        // before the description) an unreferenced data file.
        std::fs::write(dir.path().join("tmp/abc"), b"half a bo").unwrap();
        std::fs::write(dir.path().join("buckets/b-1/data/orphan"), b"new").unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let (_, path) = store.object("b-1", "k").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"old");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert!(!dir.path().join("buckets/b-1/data/orphan").exists());
    }

    #[test]
    fn a_staged_body_never_committed_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let staged = store.stage().unwrap();
        std::fs::write(staged.path(), b"refused").unwrap();
        let path = staged.path().to_path_buf();
        drop(staged);
        assert!(!path.exists());
    }

    #[test]
    fn listing_is_in_key_order_and_filtered_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_bucket("b-1").unwrap();
        for k in ["b/2", "a/1", "b/1", "c"] {
            put(&store, "b-1", k, k.as_bytes());
        }
        let keys: Vec<_> = store
            .list("b-1", "b/")
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(keys, ["b/1", "b/2"]);
    }

    #[test]
    fn parts_survive_a_reopen_and_a_dropped_upload_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_bucket("b-1").unwrap();
        let upload = Upload {
            bucket: "b-1".into(),
            key: "k".into(),
            content_type: None,
            checksum_algorithm: Some("SHA256".into()),
        };
        let id = store.create_upload(&upload).unwrap();
        let staged = store.stage().unwrap();
        std::fs::write(staged.path(), b"part one").unwrap();
        let part = PartMeta {
            size: 8,
            etag: "e".into(),
            checksums: Checksums::default(),
            data: String::new(),
        };
        store.commit_part(&id, 1, staged, part).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.upload(&id, "b-1", "k").unwrap(), upload);
        assert!(matches!(
            store.upload(&id, "b-1", "other"),
            Err(StoreError::NoSuchUpload)
        ));
        let (p, path) = store.part(&id, 1).unwrap().unwrap();
        assert_eq!(p.size, 8);
        assert_eq!(std::fs::read(path).unwrap(), b"part one");
        store.drop_upload(&id).unwrap();
        assert!(matches!(store.part(&id, 1), Err(StoreError::NoSuchUpload)));
    }

    #[test]
    fn bucket_names_are_s3_names_and_never_paths() {
        for ok in ["abc", "acme-prod-sources-123456789012", "a.b.c"] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in ["ab", "..", "a/b", "../etc", "Abc", "-abc", "a..b", ""] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
