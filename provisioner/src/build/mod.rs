//! `chronoctl build`: compile the runtime in release mode for the config's architecture,
//! check every binary, and package what the stacks deploy — one reproducible Lambda zip
//! per function and one OCI image for the ECS workloads — into an artifacts directory:
//!
//! ```text
//! <out>/build.json            what was built: fingerprint, zips and their hashes, image digest
//! <out>/lambda/<binary>.zip   `bootstrap` for provided.al2023
//! <out>/image/                OCI image layout (index.json, blobs/sha256/...)
//! ```
//!
//! An unchanged tree (same fingerprint, artifacts intact) returns at once without running
//! cargo, zipping or assembling anything. `deploy --artifacts DIR` reads the same directory
//! (or bare `<binary>` / `<binary>.zip` files) and runs the same checks ([`artifacts`]).
//!
//! The pieces are pure where they can be: [`elf`] and [`check`] (bytes → facts / refusal),
//! [`lambda`] and [`image`] (bytes → zip / blobs); [`cargo`] and [`rootfs`] do the I/O.

pub mod artifacts;
pub mod cargo;
pub mod check;
pub mod elf;
pub mod image;
pub mod lambda;
pub mod rootfs;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono_stacks::config::{Architecture, Config};
use chrono_stacks::stack::{Asset, ParamSource};

use crate::build::check::{CheckError, Requirements};
use crate::build::elf::GlibcVersion;

/// Version of `build.json`.
pub const RECORD_FORMAT: u32 = 1;
/// File name of the build record.
pub const RECORD_FILE: &str = "build.json";
/// Directory of the Lambda zips in an artifacts directory.
pub const LAMBDA_DIR: &str = "lambda";
/// Directory of the OCI image layout in an artifacts directory.
pub const IMAGE_DIR: &str = "image";
/// The name the image carries in its layout (`org.opencontainers.image.ref.name`).
pub const IMAGE_REF: &str = "runtime";

/// The binaries the image carries: the ECS workloads' entry points (defined with the task
/// definitions that name them).
pub use chrono_stacks::compute::IMAGE_BINARIES;

/// Errors of `chronoctl build` (and of reading artifacts).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Compiling failed or is impossible here.
    #[error(transparent)]
    Cargo(#[from] cargo::CargoError),
    /// A binary may not ship.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The image's run-time files could not be collected.
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    /// The image could not be assembled, written or read.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// A zip could not be built or read.
    #[error(transparent)]
    Zip(#[from] lambda::ZipError),
    /// The stacks could not be synthesized (to list their functions).
    #[error(transparent)]
    Synth(#[from] chrono_stacks::synth::SynthError),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A binary the stacks need was not built / is not in the artifacts.
    #[error("{0}")]
    Missing(String),
    /// The artifacts directory is not what this chronoctl writes.
    #[error("{path}: {reason}")]
    Record {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> BuildError {
    BuildError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// What to build for one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// CPU architecture (the config's).
    pub arch: Architecture,
    /// Binaries zipped as Lambda functions (every Lambda zip the stacks deploy).
    pub lambdas: Vec<String>,
    /// Binaries of the image (the ECS workloads), default entry point first.
    pub image_binaries: Vec<String>,
}

impl BuildSpec {
    /// The functions of a config's stacks and the image's binaries.
    pub fn for_config(cfg: &Config) -> Result<Self, BuildError> {
        let mut lambdas: Vec<String> = chrono_stacks::synth::build_stacks(cfg)?
            .iter()
            .flat_map(|s| s.sources.values())
            .filter_map(|src| match src {
                ParamSource::Asset(Asset::LambdaZip(b)) => Some(b.clone()),
                _ => None,
            })
            .collect();
        lambdas.sort();
        lambdas.dedup();
        Ok(Self {
            arch: cfg.architecture,
            lambdas,
            image_binaries: IMAGE_BINARIES.iter().map(|b| (*b).to_owned()).collect(),
        })
    }

    /// Every binary to compile.
    pub fn binaries(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .lambdas
            .iter()
            .chain(&self.image_binaries)
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// One Lambda zip in `build.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LambdaRecord {
    /// Path of the zip, relative to the artifacts directory.
    pub zip: String,
    /// Hex SHA-256 of the zip (its asset key is `assets/<sha256>.zip`).
    pub sha256: String,
    /// Size of the zip.
    pub bytes: u64,
    /// Size of the binary.
    pub binary_bytes: u64,
    /// Newest glibc version the binary requires.
    pub glibc_required: String,
}

/// The image in `build.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageRecord {
    /// Path of the OCI image layout, relative to the artifacts directory.
    pub layout: String,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// Compressed size (layers, config, manifest).
    pub bytes: u64,
    /// The binaries in `/usr/local/bin`.
    pub binaries: Vec<String>,
    /// glibc version of the libc in the image.
    pub libc: String,
}

/// `build.json`: what a build produced and from what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// Architecture (`x86_64`, `arm64`).
    pub arch: String,
    /// Source fingerprint ([`cargo::fingerprint`]); empty for packages made from given binaries.
    pub fingerprint: String,
    /// Workspace files the build read (their contents are in the fingerprint).
    pub sources: Vec<String>,
    /// Lambda zips by binary name.
    pub lambdas: BTreeMap<String, LambdaRecord>,
    /// The image, when the spec has image binaries.
    pub image: Option<ImageRecord>,
}

impl BuildRecord {
    /// Reads `<dir>/build.json`; `Ok(None)` when absent.
    pub fn load(dir: &Path) -> Result<Option<Self>, BuildError> {
        let p = dir.join(RECORD_FILE);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&p, e)),
        };
        let r: Self = serde_json::from_str(&text).map_err(|e| BuildError::Record {
            path: p.display().to_string(),
            reason: format!("{e}; rebuild with `chronoctl build`"),
        })?;
        if r.format != RECORD_FORMAT {
            return Err(BuildError::Record {
                path: p.display().to_string(),
                reason: format!(
                    "format {} is not supported (expected {RECORD_FORMAT}); rebuild with `chronoctl build`",
                    r.format
                ),
            });
        }
        Ok(Some(r))
    }

    fn save(&self, dir: &Path) -> Result<(), BuildError> {
        let p = dir.join(RECORD_FILE);
        let text = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        write_if_changed(&p, text.as_bytes())
    }

    /// Whether the record covers `spec` and every artifact is still on disk with its size
    /// (cheap; whoever ships them checks their hashes: [`artifacts::Artifacts::from_build`]).
    fn intact(&self, dir: &Path, spec: &BuildSpec) -> bool {
        if self.arch != spec.arch.as_str() {
            return false;
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
        let lambdas_ok = spec.lambdas.iter().all(|b| {
            self.lambdas
                .get(b)
                .is_some_and(|l| size(&dir.join(&l.zip)) == Some(l.bytes))
        });
        let image_ok = match (&self.image, spec.image_binaries.is_empty()) {
            (_, true) => true,
            (Some(i), false) => {
                i.binaries == spec.image_binaries
                    && image::layout_digest(&dir.join(&i.layout)).as_deref()
                        == Some(i.digest.as_str())
            }
            (None, false) => false,
        };
        lambdas_ok && image_ok
    }
}

fn write_if_changed(p: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    if std::fs::read(p).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    std::fs::write(p, bytes).map_err(|e| io_err(p, e))
}

/// Where and how to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The workspace root (holding `Cargo.lock` and the runtime package).
    pub workspace: PathBuf,
    /// The artifacts directory.
    pub out: PathBuf,
    /// The cargo program.
    pub cargo: PathBuf,
    /// Where the image's shared libraries come from (`/`).
    pub sysroot: PathBuf,
    /// The package holding the binaries ([`cargo::RUNTIME_PACKAGE`]).
    pub package: String,
    /// Cargo's target and build directory for this build (`None`: cargo's own settings,
    /// e.g. `CARGO_TARGET_DIR`).
    pub target_dir: Option<PathBuf>,
}

impl BuildOptions {
    /// Defaults for a workspace: `<workspace>/.chrono/build/<arch>`, `$CARGO` or `cargo`,
    /// sysroot `/`.
    pub fn new(workspace: &Path, arch: Architecture) -> Self {
        Self {
            workspace: workspace.to_path_buf(),
            out: default_out(workspace, arch),
            cargo: std::env::var_os("CARGO")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("cargo")),
            sysroot: PathBuf::from("/"),
            package: cargo::RUNTIME_PACKAGE.to_owned(),
            target_dir: None,
        }
    }
}

/// The default artifacts directory of a workspace and architecture.
pub fn default_out(workspace: &Path, arch: Architecture) -> PathBuf {
    workspace.join(".chrono").join("build").join(arch.as_str())
}

/// The workspace root above `start` (the directory whose `Cargo.toml` has `[workspace]`
/// and which holds `runtime/Cargo.toml`).
pub fn find_workspace(start: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().ok()?;
    start.ancestors().find_map(|d| {
        let toml = std::fs::read_to_string(d.join("Cargo.toml")).ok()?;
        (toml.contains("[workspace]") && d.join("runtime").join("Cargo.toml").is_file())
            .then(|| d.to_path_buf())
    })
}

/// Whether a build ran cargo or reused the artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildOutcome {
    /// Unchanged sources: nothing was compiled, zipped or assembled.
    Cached,
    /// Compiled and packaged now.
    Built,
}

/// The result of a build.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildReport {
    /// Cached or built.
    pub outcome: BuildOutcome,
    /// The artifacts directory.
    pub out: PathBuf,
    /// What is in it.
    pub record: BuildRecord,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// Builds (or reuses) the artifacts of `spec`.
pub fn run(spec: &BuildSpec, opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let start = Instant::now();
    let tc = cargo::toolchain(spec.arch, &opts.cargo)?;
    if let Some(rec) = BuildRecord::load(&opts.out)?
        && !rec.fingerprint.is_empty()
        && rec.intact(&opts.out, spec)
        && rec.fingerprint == cargo::fingerprint(&opts.workspace, &tc, &rec.sources)
    {
        return Ok(BuildReport {
            outcome: BuildOutcome::Cached,
            out: opts.out.clone(),
            record: rec,
            elapsed_ms: ms(start),
        });
    }
    let exes = cargo::build(
        &opts.cargo,
        &opts.workspace,
        &opts.package,
        &tc,
        opts.target_dir.as_deref(),
    )?;
    let mut binaries = BTreeMap::new();
    for name in spec.binaries() {
        let path = exes.get(&name).ok_or_else(|| {
            BuildError::Missing(format!(
                "cargo built no binary `{name}` in {}; the stacks deploy it",
                opts.package
            ))
        })?;
        binaries.insert(
            name.clone(),
            std::fs::read(path).map_err(|e| io_err(path, e))?,
        );
    }
    let sources = cargo::sources(&opts.workspace, &exes)?;
    let fingerprint = cargo::fingerprint(&opts.workspace, &tc, &sources);
    let mut record = package(spec, &binaries, &opts.sysroot, &opts.out)?;
    record.fingerprint = fingerprint;
    record.sources = sources;
    record.save(&opts.out)?;
    Ok(BuildReport {
        outcome: BuildOutcome::Built,
        out: opts.out.clone(),
        record,
        elapsed_ms: ms(start),
    })
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The image input of checked binaries: run-time files from `sysroot`, users, `/tmp`,
/// `SSL_CERT_FILE`. Returns it with the image libc's glibc version.
pub fn image_input(
    spec: &BuildSpec,
    binaries: &BTreeMap<String, Vec<u8>>,
    sysroot: &Path,
) -> Result<(image::ImageInput, GlibcVersion), BuildError> {
    let mut infos = Vec::new();
    let mut bins = Vec::new();
    for name in &spec.image_binaries {
        let bytes = binaries
            .get(name)
            .ok_or_else(|| BuildError::Missing(format!("image binary `{name}` is missing")))?;
        let info = elf::inspect(bytes).map_err(|reason| CheckError::NotElf {
            file: name.clone(),
            reason,
        })?;
        infos.push((name.clone(), info));
        bins.push((name.clone(), bytes.clone()));
    }
    let files = rootfs::collect(sysroot, spec.arch, &infos)?;
    let mut base = files.entries;
    base.extend(image::users_and_tmp());
    let version = infos
        .iter()
        .find_map(|(_, i)| i.marker.as_ref().map(|m| m.version.clone()))
        .unwrap_or_default();
    let input = image::ImageInput {
        arch: spec.arch,
        base,
        binaries: bins,
        entrypoint: spec.image_binaries.first().cloned().unwrap_or_default(),
        env: vec![("SSL_CERT_FILE".into(), rootfs::CA_BUNDLE.into())],
        labels: BTreeMap::from([
            (
                "org.opencontainers.image.title".to_owned(),
                "ChronoTracer runtime".to_owned(),
            ),
            ("org.opencontainers.image.version".to_owned(), version),
        ]),
    };
    Ok((input, files.libc_glibc))
}

/// Checks `binaries` and writes the zips and the image of `spec` into `out`; returns the
/// record (without fingerprint). Pure apart from reading `sysroot` and writing `out`.
pub fn package(
    spec: &BuildSpec,
    binaries: &BTreeMap<String, Vec<u8>>,
    sysroot: &Path,
    out: &Path,
) -> Result<BuildRecord, BuildError> {
    let lambda_req = Requirements::lambda(spec.arch);
    let mut lambdas = BTreeMap::new();
    for name in &spec.lambdas {
        let bytes = binaries
            .get(name)
            .ok_or_else(|| BuildError::Missing(format!("Lambda binary `{name}` is missing")))?;
        let info = check::check_binary(name, bytes, &lambda_req)?;
        let zip = lambda::lambda_zip(bytes)?;
        let rel = format!("{LAMBDA_DIR}/{name}.zip");
        write_if_changed(&out.join(&rel), &zip)?;
        lambdas.insert(
            name.clone(),
            LambdaRecord {
                zip: rel,
                sha256: crate::deploy::plan::content_hash(&zip),
                bytes: zip.len() as u64,
                binary_bytes: bytes.len() as u64,
                glibc_required: info
                    .max_glibc_required()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            },
        );
    }
    let image = if spec.image_binaries.is_empty() {
        None
    } else {
        // Architecture, release build, ours: before the libraries are looked up for them;
        // glibc once the image's libc is known.
        let any_glibc = Requirements {
            max_glibc: GlibcVersion(vec![u32::MAX]),
            ..lambda_req.clone()
        };
        for name in &spec.image_binaries {
            if let Some(bytes) = binaries.get(name) {
                check::check_binary(name, bytes, &any_glibc)?;
            }
        }
        let (input, libc) = image_input(spec, binaries, sysroot)?;
        let req = Requirements {
            arch: spec.arch,
            max_glibc: libc.clone(),
            runs_on: format!("the runtime image (glibc {libc})"),
        };
        for (name, bytes) in &input.binaries {
            check::check_binary(name, bytes, &req)?;
        }
        let img = image::assemble(&input)?;
        image::write_layout(&img, &out.join(IMAGE_DIR), IMAGE_REF)?;
        Some(ImageRecord {
            layout: IMAGE_DIR.to_owned(),
            digest: img.digest().to_owned(),
            bytes: img.size() as u64,
            binaries: spec.image_binaries.clone(),
            libc: libc.to_string(),
        })
    };
    Ok(BuildRecord {
        format: RECORD_FORMAT,
        arch: spec.arch.as_str().to_owned(),
        fingerprint: String::new(),
        sources: Vec::new(),
        lambdas,
        image,
    })
}

/// The source tree `chronoctl` builds from: the workspace above the current directory.
pub fn workspace() -> Result<PathBuf, BuildError> {
    let cwd = std::env::current_dir().map_err(|e| io_err(Path::new("."), e))?;
    find_workspace(&cwd).ok_or_else(|| {
        BuildError::Missing(format!(
            "{} is not inside the ChronoTracer source tree, which building the runtime needs; run chronoctl in a clone of the repository, or pass --artifacts DIR with artifacts built elsewhere (`chronoctl build --out DIR`)",
            cwd.display()
        ))
    })
}
