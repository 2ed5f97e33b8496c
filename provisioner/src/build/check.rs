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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::cargo::host_architecture;
    use crate::build::elf::tests::release_marker;

    /// A crafted fixture: this test's own executable (a real ELF of the host) with a
    /// release marker appended (the marker is searched in the whole file).
    fn ours() -> Vec<u8> {
        let mut exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        exe.extend_from_slice(&release_marker());
        exe
    }

    fn host() -> Architecture {
        host_architecture().expect("tests run on x86-64 or AArch64")
    }

    fn replace_once(data: &mut [u8], from: &[u8], to: &[u8]) -> bool {
        assert_eq!(from.len(), to.len());
        match memchr::memmem::find(data, from) {
            Some(i) => {
                data[i..i + to.len()].copy_from_slice(to);
                true
            }
            None => false,
        }
    }

    #[test]
    fn a_release_executable_of_ours_for_the_architecture_passes() {
        let info = check_binary("ours", &ours(), &Requirements::lambda(host())).unwrap();
        assert!(info.marker.as_ref().unwrap().is_release());
        assert!(info.max_glibc_required().unwrap() <= &GlibcVersion(vec![2, 34]));
    }

    #[test]
    fn the_wrong_architecture_is_refused() {
        let mut bin = ours();
        // e_machine (offset 18, little-endian): the other architecture.
        let other: u16 = match host() {
            Architecture::X86_64 => 183,
            Architecture::Arm64 => 62,
        };
        bin[18..20].copy_from_slice(&other.to_le_bytes());
        match check_binary("bin", &bin, &Requirements::lambda(host())) {
            Err(CheckError::WrongArchitecture {
                found, expected, ..
            }) => {
                assert_ne!(found, expected);
            }
            other => panic!("{other:?}"),
        }
        let other_arch = match host() {
            Architecture::X86_64 => Architecture::Arm64,
            Architecture::Arm64 => Architecture::X86_64,
        };
        let e = check_binary("api", &ours(), &Requirements::lambda(other_arch))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("the config's architecture is {other_arch}")),
            "{e}"
        );
    }

    #[test]
    fn a_debug_build_is_refused() {
        let mut bin = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let marker = String::from_utf8(release_marker()).unwrap().replace(
            "profile=release;opt-level=3;debug-assertions=off",
            "profile=debug;opt-level=0;debug-assertions=on",
        );
        bin.extend_from_slice(marker.as_bytes());
        let e = check_binary("chrono-api", &bin, &Requirements::lambda(host())).unwrap_err();
        assert!(matches!(e, CheckError::DebugBuild { .. }), "{e}");
        assert!(e.to_string().contains("a debug build"), "{e}");
    }

    #[test]
    fn files_that_are_not_executables_of_ours_are_refused() {
        let req = Requirements::lambda(host());
        let e = check_binary("notes.txt", b"just some text\n", &req).unwrap_err();
        assert!(matches!(e, CheckError::NotElf { .. }), "{e}");
        assert!(
            e.to_string().starts_with("notes.txt: not an executable"),
            "{e}"
        );
        let e = check_binary("run.sh", b"#!/bin/sh\nexit 0\n", &req).unwrap_err();
        assert!(matches!(e, CheckError::NotElf { .. }), "{e}");

        // An ELF object file (e_type ET_REL) is not an executable.
        let mut obj = ours();
        obj[16..18].copy_from_slice(&1u16.to_le_bytes());
        let e = check_binary("x.o", &obj, &req).unwrap_err();
        assert!(matches!(e, CheckError::NotExecutable { .. }), "{e}");

        // Another program: an executable without our marker.
        let plain = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let e = check_binary("other", &plain, &req).unwrap_err();
        assert!(matches!(e, CheckError::NotOurs { .. }), "{e}");
    }

    #[test]
    fn a_binary_needing_a_newer_glibc_than_the_runtime_is_refused() {
        // Crafted: one GLIBC_2.xx symbol version the executable needs becomes 2.99.
        let mut bin = ours();
        let found = [
            "GLIBC_2.34\0",
            "GLIBC_2.33\0",
            "GLIBC_2.32\0",
            "GLIBC_2.29\0",
            "GLIBC_2.18\0",
            "GLIBC_2.14\0",
        ]
        .iter()
        .any(|v| replace_once(&mut bin, v.as_bytes(), b"GLIBC_2.99\0"));
        assert!(
            found,
            "the test executable requires no GLIBC_2.xx version to rewrite"
        );
        match check_binary("chrono-api", &bin, &Requirements::lambda(host())) {
            Err(CheckError::GlibcTooNew { needs, max, .. }) => {
                assert_eq!(needs, GlibcVersion(vec![2, 99]));
                assert_eq!(max, GlibcVersion(vec![2, 34]));
            }
            other => panic!("{other:?}"),
        }
        // Against a newer glibc (the image's own libc, say) the same binary passes.
        let newer = Requirements {
            max_glibc: GlibcVersion(vec![2, 99]),
            ..Requirements::lambda(host())
        };
        assert!(check_binary("chrono-api", &bin, &newer).is_ok());
    }
}
