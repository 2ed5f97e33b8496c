//! Artifacts ready to ship: the Lambda zips (by binary name) and the runtime image, from
//! a build of ours ([`Artifacts::from_build`]) or from a directory given with `--artifacts`
//! ([`Artifacts::load`]), which gets the same checks as a build: every Lambda binary and
//! every binary in the image must be an executable of ours, for the config's
//! architecture, a release build, within the glibc of where it runs.
//!
//! A `--artifacts` directory is what `chronoctl build --out DIR` writes (`build.json`,
//! `lambda/<binary>.zip`, `image/`), or — for pipelines that build elsewhere — bare files:
//! `<binary>.zip` or a `<binary>` executable per function, and an OCI image layout in
//! `image/`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::build::check::{self, Requirements};
use crate::build::elf::{self, GlibcVersion};
use crate::build::image::{self, BIN_DIR, Image};
use crate::build::{BuildError, BuildRecord, BuildSpec, IMAGE_DIR, io_err, lambda};

/// The runtime image to push.
#[derive(Debug, Clone)]
pub struct ShipImage {
    /// The OCI image layout it was read from.
    pub dir: PathBuf,
    /// The image.
    pub image: Image,
}

/// Checked artifacts of one build.
#[derive(Debug, Clone, Default)]
pub struct Artifacts {
    /// Lambda zip bytes by binary name.
    pub lambdas: BTreeMap<String, Vec<u8>>,
    /// The image, when the stacks run one.
    pub image: Option<ShipImage>,
}

impl Artifacts {
    /// The artifacts of a build of ours (checked when built; hashes checked on disk).
    pub fn from_build(dir: &Path, record: &BuildRecord) -> Result<Self, BuildError> {
        let mut lambdas = BTreeMap::new();
        for (name, l) in &record.lambdas {
            let p = dir.join(&l.zip);
            let bytes = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
            if crate::deploy::plan::content_hash(&bytes) != l.sha256 {
                return Err(BuildError::Record {
                    path: p.display().to_string(),
                    reason: "changed since it was built; rebuild with `chronoctl build`".into(),
                });
            }
            lambdas.insert(name.clone(), bytes);
        }
        let image = match &record.image {
            None => None,
            Some(i) => {
                let d = dir.join(&i.layout);
                let image = image::read_layout(&d)?;
                if image.digest() != i.digest {
                    return Err(BuildError::Record {
                        path: d.display().to_string(),
                        reason: format!(
                            "holds image {} but the build recorded {}; rebuild with `chronoctl build`",
                            image.digest(),
                            i.digest
                        ),
                    });
                }
                Some(ShipImage { dir: d, image })
            }
        };
        Ok(Self { lambdas, image })
    }

    /// Reads and checks an artifacts directory for `spec`: every Lambda binary of the spec
    /// and, when the spec has image binaries, the image. Anything missing is an error.
    pub fn load(dir: &Path, spec: &BuildSpec) -> Result<Self, BuildError> {
        let record = BuildRecord::load(dir)?;
        if let Some(r) = &record
            && r.arch != spec.arch.as_str()
        {
            return Err(BuildError::Record {
                path: dir.join(crate::build::RECORD_FILE).display().to_string(),
                reason: format!(
                    "built for {}, but the config's architecture is {}; build for it with `chronoctl build --config <the config>`",
                    r.arch, spec.arch
                ),
            });
        }
        let req = Requirements::lambda(spec.arch);
        let mut lambdas = BTreeMap::new();
        let mut missing = Vec::new();
        for name in &spec.lambdas {
            let from_record = record
                .as_ref()
                .and_then(|r| r.lambdas.get(name))
                .map(|l| dir.join(&l.zip));
            let zip_path = from_record.unwrap_or_else(|| dir.join(format!("{name}.zip")));
            let bin_path = dir.join(name);
            let zip = if zip_path.is_file() {
                let zip = std::fs::read(&zip_path).map_err(|e| io_err(&zip_path, e))?;
                let bootstrap = lambda::bootstrap_of(&zip).map_err(|e| BuildError::Io {
                    path: zip_path.display().to_string(),
                    reason: e.to_string(),
                })?;
                check::check_binary(&zip_path.display().to_string(), &bootstrap, &req)?;
                zip
            } else if bin_path.is_file() {
                let bytes = std::fs::read(&bin_path).map_err(|e| io_err(&bin_path, e))?;
                check::check_binary(&bin_path.display().to_string(), &bytes, &req)?;
                lambda::lambda_zip(&bytes)?
            } else {
                missing.push(name.clone());
                continue;
            };
            lambdas.insert(name.clone(), zip);
        }
        if !missing.is_empty() {
            return Err(BuildError::Missing(format!(
                "{} has no artifact for {} (expected <binary>.zip or <binary>); build them with `chronoctl build --out {}`",
                dir.display(),
                missing.join(", "),
                dir.display()
            )));
        }
        let image = if spec.image_binaries.is_empty() {
            None
        } else {
            let d = record
                .as_ref()
                .and_then(|r| r.image.as_ref())
                .map_or_else(|| dir.join(IMAGE_DIR), |i| dir.join(&i.layout));
            if !d.join("index.json").is_file() {
                return Err(BuildError::Missing(format!(
                    "{} has no runtime image (an OCI image layout in {}); build it with `chronoctl build --out {}`",
                    dir.display(),
                    d.display(),
                    dir.display()
                )));
            }
            let image = image::read_layout(&d)?;
            check_image(&image, spec)?;
            Some(ShipImage { dir: d, image })
        };
        Ok(Self { lambdas, image })
    }

    /// The image digest, if there is an image.
    pub fn image_digest(&self) -> Option<&str> {
        self.image.as_ref().map(|i| i.image.digest())
    }
}

/// Files of an image by path (later layers win), regular files only.
fn image_files(image: &Image) -> Result<BTreeMap<String, Vec<u8>>, BuildError> {
    let mut files = BTreeMap::new();
    for layer in &image.layers {
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(layer.bytes.as_slice()));
        let err = |e: std::io::Error| BuildError::Record {
            path: layer.digest.clone(),
            reason: format!("not a gzip'd tar layer: {e}"),
        };
        for entry in a.entries().map_err(err)? {
            let mut entry = entry.map_err(err)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = format!("/{}", entry.path().map_err(err)?.display());
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(err)?;
            files.insert(path, bytes);
        }
    }
    Ok(files)
}

/// The checks of a build, on an image: its config's architecture, each of the spec's
/// binaries in `/usr/local/bin`, against the libc the image carries.
pub fn check_image(image: &Image, spec: &BuildSpec) -> Result<(), BuildError> {
    let cfg: serde_json::Value =
        serde_json::from_slice(&image.config.bytes).map_err(|e| BuildError::Record {
            path: image.config.digest.clone(),
            reason: format!("the image config is not JSON: {e}"),
        })?;
    let want = image::oci_architecture(spec.arch);
    if cfg["architecture"] != want {
        return Err(BuildError::Record {
            path: image.digest().to_owned(),
            reason: format!(
                "the image is for {}, but the config's architecture is {} ({want})",
                cfg["architecture"], spec.arch
            ),
        });
    }
    let files = image_files(image)?;
    let libc: Option<GlibcVersion> = files
        .iter()
        .filter(|(p, _)| p.ends_with("/libc.so.6"))
        .filter_map(|(_, b)| elf::inspect(b).ok())
        .filter_map(|i| i.glibc_defined.last().cloned())
        .max();
    let Some(libc) = libc else {
        return Err(BuildError::Record {
            path: image.digest().to_owned(),
            reason: "the image carries no libc.so.6; build it with `chronoctl build`".into(),
        });
    };
    let req = Requirements {
        arch: spec.arch,
        max_glibc: libc.clone(),
        runs_on: format!("the runtime image (glibc {libc})"),
    };
    for name in &spec.image_binaries {
        let path = format!("{BIN_DIR}/{name}");
        let bytes = files.get(&path).ok_or_else(|| {
            BuildError::Missing(format!(
                "the image {} has no {path}; build it with `chronoctl build`",
                image.digest()
            ))
        })?;
        check::check_binary(&format!("image {path}"), bytes, &req)?;
    }
    Ok(())
}
