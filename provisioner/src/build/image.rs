//! The runtime's OCI image, assembled without a container engine: two gzip'd tar layers
//! (what the binaries need at run time — loader, shared libraries, CA certificates,
//! `/etc/passwd` with a non-root user, `/tmp` — then the binaries in `/usr/local/bin`), an
//! image config (entrypoint, user, environment) and an image manifest
//! (<https://github.com/opencontainers/image-spec/blob/v1.1.0/manifest.md>).
//!
//! Reproducible: entries sorted by path, every timestamp fixed, owner root, fixed modes,
//! gzip without a file name or time, JSON with a fixed field order, no creation time. The
//! same inputs give the same digest, so an unchanged image is never pushed twice.
//!
//! [`assemble`] is pure (file contents in, blobs out); [`write_layout`] / [`read_layout`]
//! store an image as an OCI image layout directory (what `skopeo` and `umoci` read).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono_stacks::config::Architecture;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Media type of an image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip'd tar layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Where the binaries go (on `PATH`; task definitions name them as entry points).
pub const BIN_DIR: &str = "/usr/local/bin";
/// The non-root user (and group) the containers run as.
pub const RUNTIME_UID: u32 = 10001;
/// Modification time of every layer entry (1980-01-01, as the Lambda zips).
pub const FIXED_MTIME: u64 = 315_532_800;

/// One entry of the image's file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file.
    File {
        /// Absolute path in the image.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Contents.
        bytes: Vec<u8>,
    },
    /// A directory (parents of files are added with mode 0755 when not listed).
    Dir {
        /// Absolute path in the image.
        path: String,
        /// Permission bits (e.g. 0o1777 for `/tmp`).
        mode: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Absolute path in the image.
        path: String,
        /// Link target, as stored (relative or absolute).
        target: String,
    },
}

impl Entry {
    /// The entry's path in the image.
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. } | Self::Dir { path, .. } | Self::Symlink { path, .. } => path,
        }
    }
}

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageInput {
    /// CPU architecture.
    pub arch: Architecture,
    /// What the binaries need at run time (loader, libraries, certificates, users, ...).
    pub base: Vec<Entry>,
    /// The binaries: name and contents, installed as `/usr/local/bin/<name>`.
    pub binaries: Vec<(String, Vec<u8>)>,
    /// The default entry point (a binary name; task definitions set their own).
    pub entrypoint: String,
    /// Environment of every container.
    pub env: Vec<(String, String)>,
    /// Image labels (`org.opencontainers.image.*`).
    pub labels: BTreeMap<String, String>,
}

/// A content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

impl Blob {
    fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: digest_of(&bytes),
            bytes,
        }
    }

    fn descriptor(&self) -> serde_json::Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }
}

/// An assembled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Layers, bottom first.
    pub layers: Vec<Blob>,
    /// The image config.
    pub config: Blob,
    /// The image manifest; its digest is the image's.
    pub manifest: Blob,
}

impl Image {
    /// `sha256:<hex>` of the manifest: what task definitions reference.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// Compressed size: layers + config + manifest (what a pull transfers).
    pub fn size(&self) -> usize {
        self.layers.iter().map(|l| l.bytes.len()).sum::<usize>()
            + self.config.bytes.len()
            + self.manifest.bytes.len()
    }

    /// Every blob the manifest references (config first, then layers).
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }
}

/// Errors assembling, writing or reading an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Two entries claim one path, or a path is not absolute.
    #[error("image entry {path}: {reason}")]
    Entry {
        /// The path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing a layer failed (in memory).
    #[error("cannot write an image layer: {0}")]
    Layer(String),
    /// An image layout could not be read or written.
    #[error("OCI image layout {path}: {reason}")]
    Layout {
        /// File or directory.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The OCI `architecture` of a config architecture.
pub fn oci_architecture(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "amd64",
        Architecture::Arm64 => "arm64",
    }
}

/// `/etc/passwd`, `/etc/group` and `/tmp`: a non-root user for the containers and scratch
/// space for the pipeline.
pub fn users_and_tmp() -> Vec<Entry> {
    let id = RUNTIME_UID;
    vec![
        Entry::File {
            path: "/etc/passwd".into(),
            mode: 0o644,
            bytes: format!(
                "root:x:0:0:root:/root:/sbin/nologin\nchrono:x:{id}:{id}:ChronoTracer runtime:/nonexistent:/sbin/nologin\n"
            )
            .into_bytes(),
        },
        Entry::File {
            path: "/etc/group".into(),
            mode: 0o644,
            bytes: format!("root:x:0:\nchrono:x:{id}:\n").into_bytes(),
        },
        Entry::Dir {
            path: "/tmp".into(),
            mode: 0o1777,
        },
    ]
}

/// A gzip'd tar of entries: sorted by path, parents added, fixed metadata.
fn layer(entries: &[Entry]) -> Result<(Blob, String), ImageError> {
    let mut by_path: BTreeMap<String, &Entry> = BTreeMap::new();
    for e in entries {
        let p = e.path();
        if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains("//") {
            return Err(ImageError::Entry {
                path: p.to_owned(),
                reason: "must be an absolute path without a trailing slash".into(),
            });
        }
        if p.split('/').any(|c| c == ".." || c == ".") {
            return Err(ImageError::Entry {
                path: p.to_owned(),
                reason: "must not contain `.` or `..`".into(),
            });
        }
        if by_path.insert(p.to_owned(), e).is_some() {
            return Err(ImageError::Entry {
                path: p.to_owned(),
                reason: "appears twice".into(),
            });
        }
    }
    // Parent directories not listed explicitly.
    let mut dirs: BTreeMap<String, u32> = BTreeMap::new();
    for p in by_path.keys() {
        let mut cur = p.as_str();
        while let Some(i) = cur.rfind('/') {
            cur = &cur[..i];
            if cur.is_empty() {
                break;
            }
            if !by_path.contains_key(cur) {
                dirs.entry(cur.to_owned()).or_insert(0o755);
            }
        }
    }
    let synth: Vec<Entry> = dirs
        .into_iter()
        .map(|(path, mode)| Entry::Dir { path, mode })
        .collect();
    for d in &synth {
        by_path.insert(d.path().to_owned(), d);
    }

    let lerr = |e: std::io::Error| ImageError::Layer(e.to_string());
    let mut tar = tar::Builder::new(Vec::new());
    for (path, e) in &by_path {
        let rel = path.trim_start_matches('/');
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(FIXED_MTIME);
        h.set_username("").map_err(lerr)?;
        h.set_groupname("").map_err(lerr)?;
        match e {
            Entry::File { mode, bytes, .. } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(bytes.len() as u64);
                tar.append_data(&mut h, rel, bytes.as_slice())
                    .map_err(lerr)?;
            }
            Entry::Dir { mode, .. } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                tar.append_data(&mut h, format!("{rel}/"), std::io::empty())
                    .map_err(lerr)?;
            }
            Entry::Symlink { target, .. } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, rel, target).map_err(lerr)?;
            }
        }
    }
    let raw = tar.into_inner().map_err(lerr)?;
    let diff_id = digest_of(&raw);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(
            Vec::with_capacity(raw.len() / 2),
            flate2::Compression::new(6),
        );
    gz.write_all(&raw).map_err(lerr)?;
    let bytes = gz.finish().map_err(lerr)?;
    Ok((Blob::new(LAYER_MEDIA_TYPE, bytes), diff_id))
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    // A `Value` always serializes.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Assembles the image: the base layer, the binaries layer, config, manifest.
pub fn assemble(input: &ImageInput) -> Result<Image, ImageError> {
    let (base, base_id) = layer(&input.base)?;
    let bins: Vec<Entry> = input
        .binaries
        .iter()
        .map(|(name, bytes)| Entry::File {
            path: format!("{BIN_DIR}/{name}"),
            mode: 0o755,
            bytes: bytes.clone(),
        })
        .collect();
    let (bin_layer, bin_id) = layer(&bins)?;
    let mut env = vec![format!(
        "PATH={BIN_DIR}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
    )];
    env.extend(input.env.iter().map(|(k, v)| format!("{k}={v}")));
    let config = json!({
        "architecture": oci_architecture(input.arch),
        "os": "linux",
        "config": {
            "User": format!("{RUNTIME_UID}:{RUNTIME_UID}"),
            "Env": env,
            "Entrypoint": [format!("{BIN_DIR}/{}", input.entrypoint)],
            "WorkingDir": "/",
            "Labels": input.labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [base_id, bin_id]},
        "history": [
            {"created_by": "chronoctl build: loader, shared libraries, CA certificates, users, /tmp"},
            {"created_by": "chronoctl build: runtime binaries"}
        ]
    });
    let config = Blob::new(CONFIG_MEDIA_TYPE, json_bytes(&config));
    let layers = vec![base, bin_layer];
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    let manifest = Blob::new(MANIFEST_MEDIA_TYPE, json_bytes(&manifest));
    Ok(Image {
        layers,
        config,
        manifest,
    })
}

fn blob_path(dir: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    dir.join("blobs").join("sha256").join(hex)
}

/// Writes the image as an OCI image layout directory, the manifest named `ref_name`
/// (`org.opencontainers.image.ref.name`). Existing blobs are kept; `index.json` is replaced.
pub fn write_layout(image: &Image, dir: &Path, ref_name: &str) -> Result<(), ImageError> {
    let err = |p: &Path, e: std::io::Error| ImageError::Layout {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| err(&blobs, e))?;
    for b in image.blobs().chain(std::iter::once(&image.manifest)) {
        let p = blob_path(dir, &b.digest);
        if std::fs::metadata(&p).map(|m| m.len()).ok() != Some(b.bytes.len() as u64) {
            std::fs::write(&p, &b.bytes).map_err(|e| err(&p, e))?;
        }
    }
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|e| err(&layout, e))?;
    let mut desc = image.manifest.descriptor();
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [desc],
    });
    let ip = dir.join("index.json");
    std::fs::write(&ip, json_bytes(&index)).map_err(|e| err(&ip, e))?;
    Ok(())
}

/// Reads the (single) image of an OCI image layout directory, checking every digest.
pub fn read_layout(dir: &Path) -> Result<Image, ImageError> {
    let bad = |p: &Path, reason: String| ImageError::Layout {
        path: p.display().to_string(),
        reason,
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| bad(p, e.to_string()));
    let read_blob = |digest: &str, media_type: &str| -> Result<Blob, ImageError> {
        if !is_sha256_digest(digest) {
            return Err(bad(dir, format!("bad digest {digest:?}")));
        }
        let p = blob_path(dir, digest);
        let bytes = read(&p)?;
        let b = Blob::new(media_type, bytes);
        if b.digest != digest {
            return Err(bad(
                &p,
                format!("content does not match its digest {digest}"),
            ));
        }
        Ok(b)
    };
    let ip = dir.join("index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&read(&ip)?).map_err(|e| bad(&ip, e.to_string()))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let [m] = manifests.as_slice() else {
        return Err(bad(
            &ip,
            format!("holds {} manifests, expected 1", manifests.len()),
        ));
    };
    let digest = m["digest"].as_str().unwrap_or_default();
    let manifest = read_blob(digest, MANIFEST_MEDIA_TYPE)?;
    let mv: serde_json::Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| bad(&blob_path(dir, digest), e.to_string()))?;
    let desc = |v: &serde_json::Value| {
        (
            v["digest"].as_str().unwrap_or_default().to_owned(),
            v["mediaType"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let (cd, ct) = desc(&mv["config"]);
    let config = read_blob(&cd, &ct)?;
    let mut layers = Vec::new();
    for l in mv["layers"].as_array().into_iter().flatten() {
        let (ld, lt) = desc(l);
        layers.push(read_blob(&ld, &lt)?);
    }
    Ok(Image {
        layers,
        config,
        manifest,
    })
}

/// The digest of the (single) image an OCI image layout names, when its manifest blob is
/// there (cheap: reads `index.json` only).
pub fn layout_digest(dir: &Path) -> Option<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).ok()?).ok()?;
    let d = index["manifests"].as_array()?.first()?["digest"]
        .as_str()?
        .to_owned();
    (is_sha256_digest(&d) && blob_path(dir, &d).is_file()).then_some(d)
}

/// Whether `s` is `sha256:` and 64 lowercase hex digits.
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(bin: &[u8]) -> ImageInput {
        let mut base = users_and_tmp();
        base.push(Entry::File {
            path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            mode: 0o755,
            bytes: b"libc".to_vec(),
        });
        base.push(Entry::Symlink {
            path: "/lib64".into(),
            target: "usr/lib64".into(),
        });
        ImageInput {
            arch: Architecture::X86_64,
            base,
            binaries: vec![
                ("chrono-pipeline".into(), bin.to_vec()),
                ("chrono-filter-ai".into(), b"ai".to_vec()),
            ],
            entrypoint: "chrono-filter-ai".into(),
            env: vec![(
                "SSL_CERT_FILE".into(),
                "/etc/ssl/certs/ca-certificates.crt".into(),
            )],
            labels: BTreeMap::from([("org.opencontainers.image.version".into(), "0.1.0".into())]),
        }
    }

    fn tar_entries(gz: &[u8]) -> Vec<(String, u32, u64, u64)> {
        let mut out = Vec::new();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(gz));
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            out.push((
                e.path().unwrap().display().to_string(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.mtime().unwrap(),
            ));
        }
        out
    }

    #[test]
    fn same_inputs_same_digest_and_a_binary_change_touches_one_layer() {
        let a = assemble(&input(b"pipeline v1")).unwrap();
        let b = assemble(&input(b"pipeline v1")).unwrap();
        assert_eq!(a, b);
        assert!(is_sha256_digest(a.digest()));
        let c = assemble(&input(b"pipeline v2")).unwrap();
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.layers[0], c.layers[0], "the base layer does not change");
        assert_ne!(a.layers[1], c.layers[1]);
    }

    #[test]
    fn layers_are_sorted_owned_by_root_with_fixed_times_and_parents() {
        let img = assemble(&input(b"p")).unwrap();
        let base = tar_entries(&img.layers[0].bytes);
        let paths: Vec<&str> = base.iter().map(|e| e.0.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        for want in ["etc/", "etc/passwd", "tmp/", "usr/", "usr/lib/", "lib64"] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        for (p, mode, uid, mtime) in &base {
            assert_eq!((*uid, *mtime), (0, FIXED_MTIME), "{p}");
            if p == "tmp/" {
                assert_eq!(*mode, 0o1777);
            }
        }
        let bins = tar_entries(&img.layers[1].bytes);
        assert!(
            bins.iter()
                .any(|(p, m, _, _)| p == "usr/local/bin/chrono-pipeline" && *m == 0o755)
        );
    }

    #[test]
    fn config_and_manifest_reference_the_layers() {
        let img = assemble(&input(b"p")).unwrap();
        let cfg: serde_json::Value = serde_json::from_slice(&img.config.bytes).unwrap();
        assert_eq!(cfg["architecture"], "amd64");
        assert_eq!(cfg["config"]["User"], "10001:10001");
        assert_eq!(
            cfg["config"]["Entrypoint"][0],
            "/usr/local/bin/chrono-filter-ai"
        );
        assert!(cfg.get("created").is_none(), "no timestamps");
        let ids = cfg["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(ids.len(), 2);
        let m: serde_json::Value = serde_json::from_slice(&img.manifest.bytes).unwrap();
        assert_eq!(m["config"]["digest"], img.config.digest.as_str());
        assert_eq!(m["layers"][1]["digest"], img.layers[1].digest.as_str());
        assert_eq!(m["layers"][1]["size"], img.layers[1].bytes.len());
    }

    #[test]
    fn bad_entries_are_refused() {
        let mut i = input(b"p");
        i.base.push(Entry::Dir {
            path: "/etc/passwd".into(),
            mode: 0o755,
        });
        assert!(matches!(assemble(&i), Err(ImageError::Entry { .. })));
        let mut i = input(b"p");
        i.base.push(Entry::Dir {
            path: "relative".into(),
            mode: 0o755,
        });
        assert!(matches!(assemble(&i), Err(ImageError::Entry { .. })));
        let mut i = input(b"p");
        i.base.push(Entry::Dir {
            path: "/a/../b".into(),
            mode: 0o755,
        });
        assert!(matches!(assemble(&i), Err(ImageError::Entry { .. })));
    }

    #[test]
    fn layout_round_trip_checks_digests() {
        let img = assemble(&input(b"p")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_layout(&img, dir.path(), "latest").unwrap();
        assert_eq!(read_layout(dir.path()).unwrap(), img);
        // A damaged blob is found.
        let p = blob_path(dir.path(), &img.layers[1].digest);
        std::fs::write(&p, b"tampered").unwrap();
        let e = read_layout(dir.path()).unwrap_err().to_string();
        assert!(e.contains("does not match its digest"), "{e}");
    }
}
