//! `chrono-tests`: helpers shared by the end-to-end tests in `tests/tests/` (starting the
//! local AWS emulator, a private PostgreSQL cluster and an OCI registry, running a private
//! `chronoctl local` platform, finding the built binaries). Nothing in here ships.

pub mod asl;
pub mod iam;
pub mod local;
pub mod moto;
pub mod registry;

use std::path::{Path, PathBuf};

/// `target/<profile>`, where cargo put chronoctl and the runtime binaries of this build:
/// next to the running test's own directory, unless cargo keeps its intermediate files in
/// a separate build directory (`CARGO_BUILD_BUILD_DIR`), in which case the binaries are
/// under the target directory (`CARGO_TARGET_DIR`, default `target/`) for the same profile.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if profile_dir.join("chronoctl").exists() {
        return profile_dir;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    target.join(profile_dir.file_name().unwrap_or_default())
}
