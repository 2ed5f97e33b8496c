//! What an ELF file says about itself, read without running it: class and machine, whether
//! it is an executable, its program interpreter and the shared libraries it needs, the
//! glibc symbol versions it requires (`.gnu.version_r`), the versions a library defines
//! (`.gnu.version_d`, for the libc we put into the image), and our build marker.
//!
//! Pure: bytes in, facts out. Malformed input is an [`ElfError`], never a panic (the
//! parsing is the `object` crate's, which checks every offset).

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

/// The start of the build marker the runtime binaries carry (`chrono_runtime::build_info`
/// writes it; `tests/tests/build_marker.rs` checks the two agree).
pub const MARKER_PREFIX: &[u8] = b"chrono-build-marker/1;";
/// The end of the build marker.
pub const MARKER_END: &[u8] = b";end";
/// Longest marker we accept (a guard against reading a stray prefix to the end of a file).
const MARKER_MAX: usize = 512;

/// The CPU an ELF file is for (the ones we build for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Machine {
    /// `EM_X86_64`.
    X86_64,
    /// `EM_AARCH64`.
    Aarch64,
    /// Anything else (the raw `e_machine`).
    Other(u16),
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::X86_64 => f.write_str("x86-64"),
            Self::Aarch64 => f.write_str("AArch64"),
            Self::Other(m) => write!(f, "ELF machine {m}"),
        }
    }
}

/// A `GLIBC_x.y[.z]` version, ordered numerically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct GlibcVersion(pub Vec<u32>);

impl GlibcVersion {
    /// Parses `GLIBC_2.34` (or `2.34`); `None` for other version names (`GLIBC_PRIVATE`,
    /// `GCC_3.0`, ...).
    pub fn parse(name: &str) -> Option<Self> {
        let v = name.strip_prefix("GLIBC_").unwrap_or(name);
        let parts: Option<Vec<u32>> = v.split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| p.len() >= 2).map(Self)
    }
}

impl std::fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        write!(f, "{}", parts.join("."))
    }
}

/// The fields of our build marker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildMarker {
    /// Package version.
    pub version: String,
    /// Cargo profile (`release`, `debug`).
    pub profile: String,
    /// Optimisation level.
    pub opt_level: String,
    /// `on` or `off`.
    pub debug_assertions: String,
    /// Rust target triple.
    pub target: String,
}

impl BuildMarker {
    /// Whether this is an optimised build without debug assertions.
    pub fn is_release(&self) -> bool {
        self.profile == "release"
            && self.debug_assertions == "off"
            && matches!(self.opt_level.as_str(), "2" | "3" | "s" | "z")
    }
}

/// Facts about one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// The CPU it is for.
    pub machine: Machine,
    /// `ET_EXEC`, or `ET_DYN` with an entry point and an interpreter (a PIE).
    pub executable: bool,
    /// `ET_DYN` without an interpreter: a shared library.
    pub shared_library: bool,
    /// `PT_INTERP`: the dynamic loader (absent for static binaries).
    pub interpreter: Option<String>,
    /// `DT_NEEDED`: the libraries it loads.
    pub needed: Vec<String>,
    /// `DT_SONAME` of a shared library.
    pub soname: Option<String>,
    /// Every `GLIBC_*` version it requires (from any library), ascending.
    pub glibc_required: Vec<GlibcVersion>,
    /// The `GLIBC_*` versions it defines (a libc or loader), ascending.
    pub glibc_defined: Vec<GlibcVersion>,
    /// Our build marker, when present.
    pub marker: Option<BuildMarker>,
}

impl ElfInfo {
    /// The newest glibc version it requires.
    pub fn max_glibc_required(&self) -> Option<&GlibcVersion> {
        self.glibc_required.last()
    }
}

/// Why a file could not be read as an ELF file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// Not an ELF file at all (a script, a zip, text, ...).
    #[error("not an ELF file (it starts with {0:?})")]
    NotElf(String),
    /// An ELF file of a kind we do not build (32-bit, big-endian).
    #[error("a {0} ELF file; the runtime is built as 64-bit little-endian Linux executables")]
    Unsupported(&'static str),
    /// Damaged.
    #[error("a damaged ELF file: {0}")]
    Malformed(String),
}

fn malformed(e: object::read::Error) -> ElfError {
    ElfError::Malformed(e.to_string())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads the facts of an ELF file.
pub fn inspect(data: &[u8]) -> Result<ElfInfo, ElfError> {
    if data.len() < 6 || &data[..4] != b"\x7fELF" {
        let head: String = String::from_utf8_lossy(&data[..data.len().min(16)]).into_owned();
        return Err(ElfError::NotElf(head));
    }
    // e_ident[EI_CLASS] (1: 32-bit, 2: 64-bit) and [EI_DATA] (1: little-, 2: big-endian).
    match (data[4], data[5]) {
        (2, 1) => {}
        (1, _) => return Err(ElfError::Unsupported("32-bit")),
        (_, 2) => return Err(ElfError::Unsupported("big-endian")),
        _ => return Err(ElfError::Unsupported("unknown-class")),
    }
    let header = elf::FileHeader64::<object::Endianness>::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let machine = match header.e_machine(endian) {
        elf::EM_X86_64 => Machine::X86_64,
        elf::EM_AARCH64 => Machine::Aarch64,
        other => Machine::Other(other.0),
    };
    let mut interpreter = None;
    for ph in header.program_headers(endian, data).map_err(malformed)? {
        if let Some(i) = ph.interpreter(endian, data).map_err(malformed)? {
            interpreter = Some(text(i));
        }
    }
    let e_type = header.e_type(endian);
    let executable = e_type == elf::ET_EXEC
        || (e_type == elf::ET_DYN && interpreter.is_some() && header.e_entry(endian) != 0);
    let shared_library = e_type == elf::ET_DYN && interpreter.is_none();

    let sections = header.sections(endian, data).map_err(malformed)?;
    let dynamic = sections.dynamic_table(endian, data).map_err(malformed)?;
    let mut needed = Vec::new();
    let mut soname = None;
    for d in &dynamic {
        if d.tag == elf::DT_NEEDED {
            needed.push(text(dynamic.string(d).map_err(malformed)?));
        } else if d.tag == elf::DT_SONAME {
            soname = Some(text(dynamic.string(d).map_err(malformed)?));
        }
    }

    let mut glibc_required = Vec::new();
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, data).map_err(malformed)? {
        let strings = sections.strings(endian, data, link).map_err(malformed)?;
        while let Some((_, mut aux)) = needs.next().map_err(malformed)? {
            while let Some(a) = aux.next().map_err(malformed)? {
                let name = text(a.name(endian, strings).map_err(malformed)?);
                glibc_required.extend(GlibcVersion::parse(&name));
            }
        }
    }
    glibc_required.sort();
    glibc_required.dedup();

    let mut glibc_defined = Vec::new();
    if let Some((mut defs, link)) = sections.gnu_verdef(endian, data).map_err(malformed)? {
        let strings = sections.strings(endian, data, link).map_err(malformed)?;
        while let Some((_, mut aux)) = defs.next().map_err(malformed)? {
            while let Some(a) = aux.next().map_err(malformed)? {
                let name = text(a.name(endian, strings).map_err(malformed)?);
                glibc_defined.extend(GlibcVersion::parse(&name));
            }
        }
    }
    glibc_defined.sort();
    glibc_defined.dedup();

    Ok(ElfInfo {
        machine,
        executable,
        shared_library,
        interpreter,
        needed,
        soname,
        glibc_required,
        glibc_defined,
        marker: find_marker(data),
    })
}

/// Finds and parses our build marker anywhere in the file.
pub fn find_marker(data: &[u8]) -> Option<BuildMarker> {
    for start in memchr::memmem::find_iter(data, MARKER_PREFIX) {
        let rest = &data[start..data.len().min(start + MARKER_MAX)];
        let Some(end) = memchr::memmem::find(rest, MARKER_END) else {
            continue;
        };
        let Ok(body) = std::str::from_utf8(&rest[MARKER_PREFIX.len()..end]) else {
            continue;
        };
        let field = |k: &str| {
            body.split(';')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_owned)
        };
        if let (
            Some(version),
            Some(profile),
            Some(opt_level),
            Some(debug_assertions),
            Some(target),
        ) = (
            field("version"),
            field("profile"),
            field("opt-level"),
            field("debug-assertions"),
            field("target"),
        ) {
            return Some(BuildMarker {
                version,
                profile,
                opt_level,
                debug_assertions,
                target,
            });
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn glibc_versions_parse_and_order_numerically() {
        let v = |s: &str| GlibcVersion::parse(s).unwrap();
        assert!(v("GLIBC_2.9") < v("GLIBC_2.34"));
        assert!(v("GLIBC_2.34") < v("GLIBC_2.34.1"));
        assert_eq!(v("GLIBC_2.34").to_string(), "2.34");
        assert_eq!(GlibcVersion::parse("GLIBC_PRIVATE"), None);
        assert_eq!(GlibcVersion::parse("GCC_3"), None);
    }

    #[test]
    fn non_elf_input_is_an_error_not_a_panic() {
        assert!(matches!(
            inspect(b"#!/bin/sh\necho hi\n"),
            Err(ElfError::NotElf(_))
        ));
        assert!(matches!(inspect(b""), Err(ElfError::NotElf(_))));
        assert!(matches!(
            inspect(b"PK\x03\x04zip"),
            Err(ElfError::NotElf(_))
        ));
        // An ELF magic with nothing behind it.
        assert!(matches!(
            inspect(b"\x7fELF\x02\x01\x01\0"),
            Err(ElfError::Malformed(_))
        ));
        assert!(matches!(
            inspect(b"\x7fELF\x01\x01\x01\0"),
            Err(ElfError::Unsupported("32-bit"))
        ));
    }

    #[test]
    fn every_truncation_of_a_real_executable_is_an_error_or_a_result() {
        // This test's own executable: a real x86-64 (or AArch64) ELF file.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = inspect(&exe).unwrap();
        assert!(info.executable);
        assert!(info.needed.iter().any(|n| n.starts_with("libc.so")));
        assert!(!info.glibc_required.is_empty());
        assert_eq!(info.marker, None, "the test binary is not a runtime binary");
        for len in [7, 64, 100, 1000, 4096, exe.len() / 2] {
            let _ = inspect(&exe[..len]);
        }
    }

    /// A release marker, made at run time: a literal one would make this test binary (which
    /// other tests inspect) look like a runtime binary.
    pub(crate) fn release_marker() -> Vec<u8> {
        "dne;ung-xunil-nwonknu-46_68x=tegrat;ffo=snoitressa-gubed;3=level-tpo;esaeler=eliforp;0.1.0=noisrev;1/rekram-dliub-onorhc"
            .chars()
            .rev()
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn marker_is_found_and_parsed() {
        let mut data = b"\x00\x01junk".to_vec();
        data.extend_from_slice(&release_marker());
        data.extend_from_slice(b"\x00more");
        let m = find_marker(&data).unwrap();
        assert!(m.is_release());
        assert_eq!(m.target, "x86_64-unknown-linux-gnu");
        let debug = String::from_utf8(data.clone())
            .unwrap()
            .replace("profile=release", "profile=debug");
        assert!(!find_marker(debug.as_bytes()).unwrap().is_release());
        // A prefix without the end (or without every field) is not a marker.
        let prefix = String::from_utf8_lossy(MARKER_PREFIX);
        assert_eq!(find_marker(format!("{prefix}version=1").as_bytes()), None);
        assert_eq!(
            find_marker(format!("{prefix}version=1;end").as_bytes()),
            None
        );
    }
}
