//! The checks every runtime binary passes before it ships (from `chronoctl build` or from
//! `--artifacts`): an ELF executable of ours (it carries the build marker), for the
//! config's architecture, a release build, and no glibc symbol version newer than the
//! glibc of where it runs (2.34 on Lambda's `provided.al2023`; the image's own libc in
//! the runtime image).
//!
//! Pure: bytes and requirements in, facts or a refusal out.

use chrono_stacks::config::Architecture;

use crate::build::elf::{self, ElfError, ElfInfo, GlibcVersion, Machine};

/// glibc of Lambda's `provided.al2023` runtime (Amazon Linux 2023 ships glibc 2.34:
/// <https://docs.aws.amazon.com/linux/al2023/ug/core-glibc.html>; the runtime is AL2023:
/// <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-provided.html>).
pub const LAMBDA_AL2023_GLIBC: &[u32] = &[2, 34];

/// The ELF machine of an architecture.
pub fn machine_of(arch: Architecture) -> Machine {
    match arch {
        Architecture::X86_64 => Machine::X86_64,
        Architecture::Arm64 => Machine::Aarch64,
    }
}

/// What a binary must be to ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    /// The config's architecture.
    pub arch: Architecture,
    /// Newest glibc version the binary may require.
    pub max_glibc: GlibcVersion,
    /// Where it will run, for messages (`Lambda provided.al2023`, `the runtime image`).
    pub runs_on: String,
}

impl Requirements {
    /// A Lambda function on `provided.al2023`.
    pub fn lambda(arch: Architecture) -> Self {
        Self {
            arch,
            max_glibc: GlibcVersion(LAMBDA_AL2023_GLIBC.to_vec()),
            runs_on: "Lambda's provided.al2023 runtime".into(),
        }
    }
}

/// Why a binary may not ship.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// Not an ELF executable at all.
    #[error("{file}: not an executable: {reason}")]
    NotElf {
        /// The binary (name or path).
        file: String,
        /// What it is instead.
        reason: ElfError,
    },
    /// An ELF file that is not an executable (a shared library, an object file).
    #[error("{file}: an ELF file, but not an executable (a shared library or object file)")]
    NotExecutable {
        /// The binary.
        file: String,
    },
    /// An executable without our build marker.
    #[error(
        "{file}: not a ChronoTracer runtime binary (it carries no chrono build marker); build the runtime with `chronoctl build`"
    )]
    NotOurs {
        /// The binary.
        file: String,
    },
    /// Built for another CPU.
    #[error(
        "{file}: built for {found}, but the config's architecture is {arch} ({expected}); build for it with `chronoctl build --config <the config>`"
    )]
    WrongArchitecture {
        /// The binary.
        file: String,
        /// Its machine.
        found: Machine,
        /// The machine required.
        expected: Machine,
        /// The config's architecture.
        arch: Architecture,
    },
    /// A debug build.
    #[error(
        "{file}: a {profile} build (opt-level {opt_level}, debug assertions {debug_assertions}); ship release builds (`chronoctl build` compiles them)"
    )]
    DebugBuild {
        /// The binary.
        file: String,
        /// Cargo profile in the marker.
        profile: String,
        /// Optimisation level in the marker.
        opt_level: String,
        /// Debug assertions in the marker.
        debug_assertions: String,
    },
    /// Needs a newer glibc than where it runs.
    #[error(
        "{file}: needs glibc {needs} (symbol version GLIBC_{needs}), but {runs_on} has glibc {max}; build against an older glibc (`chronoctl build` does) or on an older distribution"
    )]
    GlibcTooNew {
        /// The binary.
        file: String,
        /// Newest version it requires.
        needs: GlibcVersion,
        /// Newest version available.
        max: GlibcVersion,
        /// Where it runs.
        runs_on: String,
    },
}

/// Checks one binary; returns what it is when it may ship.
pub fn check_binary(file: &str, data: &[u8], req: &Requirements) -> Result<ElfInfo, CheckError> {
    let info = elf::inspect(data).map_err(|reason| CheckError::NotElf {
        file: file.to_owned(),
        reason,
    })?;
    if !info.executable {
        return Err(CheckError::NotExecutable {
            file: file.to_owned(),
        });
    }
    let expected = machine_of(req.arch);
    if info.machine != expected {
        return Err(CheckError::WrongArchitecture {
            file: file.to_owned(),
            found: info.machine,
            expected,
            arch: req.arch,
        });
    }
    let Some(marker) = &info.marker else {
        return Err(CheckError::NotOurs {
            file: file.to_owned(),
        });
    };
    if !marker.is_release() {
        return Err(CheckError::DebugBuild {
            file: file.to_owned(),
            profile: marker.profile.clone(),
            opt_level: marker.opt_level.clone(),
            debug_assertions: marker.debug_assertions.clone(),
        });
    }
    if let Some(needs) = info.max_glibc_required()
        && *needs > req.max_glibc
    {
        return Err(CheckError::GlibcTooNew {
            file: file.to_owned(),
            needs: needs.clone(),
            max: req.max_glibc.clone(),
            runs_on: req.runs_on.clone(),
        });
    }
    Ok(info)
}
