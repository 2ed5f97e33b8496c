//! What the runtime binaries need at run time inside the image, taken from a sysroot (the
//! build machine's `/`, whose libraries the binaries were linked against): the program
//! interpreter, the shared libraries they load (`DT_NEEDED`, transitively, searched like
//! the loader does in the multiarch directories), and the CA certificates — each with the
//! symbolic links on its path (e.g. merged `/usr`), so paths resolve in the image exactly
//! as on the build machine.
//!
//! The libraries are checked the same way as the binaries: right machine, and no glibc
//! symbol version newer than the libc that goes into the image. No time-zone data: the
//! runtime carries its own (`chrono-tz`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono_stacks::config::Architecture;

use crate::build::check::machine_of;
use crate::build::elf::{self, ElfInfo, GlibcVersion};
use crate::build::image::Entry;

/// The CA bundle path (Debian's `ca-certificates`; what `SSL_CERT_FILE` points at).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Errors collecting the run-time files.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A library a binary needs is not in the sysroot.
    #[error(
        "{needed_by} needs {library}, which is not in {sysroot} ({dirs}); install the target's C library (for arm64 on Debian: `dpkg --add-architecture arm64 && apt-get update && apt-get install libc6:arm64 libgcc-s1:arm64`)"
    )]
    MissingLibrary {
        /// The library name (`libc.so.6`).
        library: String,
        /// Who needs it.
        needed_by: String,
        /// The sysroot.
        sysroot: String,
        /// The directories searched.
        dirs: String,
    },
    /// A file could not be read.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A library is not usable.
    #[error("{path}: {reason}")]
    BadLibrary {
        /// The library.
        path: String,
        /// Why.
        reason: String,
    },
    /// The CA certificates are missing.
    #[error("{0} not found; install Debian's `ca-certificates` (apt-get install ca-certificates)")]
    NoCaBundle(String),
}

/// The run-time files and what the image's libc provides.
#[derive(Debug, Clone)]
pub struct RuntimeFiles {
    /// Files and symbolic links, deduplicated by path.
    pub entries: Vec<Entry>,
    /// The newest `GLIBC_*` version the image's libc defines.
    pub libc_glibc: GlibcVersion,
    /// The libraries found (image path → ELF facts), for reports.
    pub libraries: BTreeMap<String, ElfInfo>,
}

/// Directories the loader searches, in order, for an architecture (Debian multiarch).
pub fn search_dirs(arch: Architecture) -> Vec<String> {
    let triplet = match arch {
        Architecture::X86_64 => "x86_64-linux-gnu",
        Architecture::Arm64 => "aarch64-linux-gnu",
    };
    vec![
        format!("/lib/{triplet}"),
        format!("/usr/lib/{triplet}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
    ]
}

fn host(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

/// Resolves `path` inside `root` like the kernel would, recording each symbolic link met on
/// the way; returns the links and the image path of the final regular file.
fn resolve(root: &Path, path: &str) -> Result<(Vec<Entry>, String), RootfsError> {
    let read_err = |p: &str, e: std::io::Error| RootfsError::Read {
        path: host(root, p).display().to_string(),
        reason: e.to_string(),
    };
    let mut links = Vec::new();
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_owned)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(comp) = todo.pop() {
        match comp.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(comp);
        let image_path = format!("/{}", cur.join("/"));
        let meta = std::fs::symlink_metadata(host(root, &image_path))
            .map_err(|e| read_err(&image_path, e))?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err(RootfsError::Read {
                    path: host(root, path).display().to_string(),
                    reason: "too many levels of symbolic links".into(),
                });
            }
            let target = std::fs::read_link(host(root, &image_path))
                .map_err(|e| read_err(&image_path, e))?;
            let target = target.to_string_lossy().into_owned();
            links.push(Entry::Symlink {
                path: image_path,
                target: target.clone(),
            });
            cur.pop();
            if target.starts_with('/') {
                cur.clear();
            }
            todo.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(str::to_owned),
            );
        } else if !todo.is_empty() && !meta.is_dir() {
            return Err(RootfsError::Read {
                path: host(root, &image_path).display().to_string(),
                reason: "not a directory".into(),
            });
        }
    }
    Ok((links, format!("/{}", cur.join("/"))))
}

/// A regular file of the sysroot with the links on its path.
fn copy(root: &Path, path: &str) -> Result<(Vec<Entry>, String, Vec<u8>), RootfsError> {
    use std::os::unix::fs::PermissionsExt;
    let (mut entries, real) = resolve(root, path)?;
    let hp = host(root, &real);
    let err = |e: std::io::Error| RootfsError::Read {
        path: hp.display().to_string(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(&hp).map_err(err)?;
    if !meta.is_file() {
        return Err(RootfsError::Read {
            path: hp.display().to_string(),
            reason: "not a regular file".into(),
        });
    }
    let bytes = std::fs::read(&hp).map_err(err)?;
    entries.push(Entry::File {
        path: real.clone(),
        mode: meta.permissions().mode() & 0o755,
        bytes: bytes.clone(),
    });
    Ok((entries, real, bytes))
}

/// Collects the interpreter, the libraries the `binaries` need (transitively) and the CA
/// bundle from `root`, and checks the libraries against the libc found.
pub fn collect(
    root: &Path,
    arch: Architecture,
    binaries: &[(String, ElfInfo)],
) -> Result<RuntimeFiles, RootfsError> {
    let machine = machine_of(arch);
    let dirs = search_dirs(arch);
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut libraries: BTreeMap<String, ElfInfo> = BTreeMap::new();
    let add = |es: Vec<Entry>, entries: &mut BTreeMap<String, Entry>| {
        for e in es {
            entries.insert(e.path().to_owned(), e);
        }
    };

    // (library name or absolute path, who needs it)
    let mut todo: Vec<(String, String)> = Vec::new();
    for (name, info) in binaries {
        if let Some(i) = &info.interpreter {
            todo.push((i.clone(), name.clone()));
        }
        for n in &info.needed {
            todo.push((n.clone(), name.clone()));
        }
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    while let Some((lib, needed_by)) = todo.pop() {
        if !seen.insert(lib.clone()) {
            continue;
        }
        let candidates: Vec<String> = if lib.starts_with('/') {
            vec![lib.clone()]
        } else {
            dirs.iter().map(|d| format!("{d}/{lib}")).collect()
        };
        let mut found = None;
        for c in candidates {
            if !host(root, &c).is_file() {
                continue;
            }
            let (es, real, bytes) = copy(root, &c)?;
            let info = elf::inspect(&bytes).map_err(|e| RootfsError::BadLibrary {
                path: host(root, &real).display().to_string(),
                reason: e.to_string(),
            })?;
            // The loader skips libraries of another machine; so do we.
            if info.machine != machine {
                continue;
            }
            found = Some((es, real, info));
            break;
        }
        let Some((es, real, info)) = found else {
            return Err(RootfsError::MissingLibrary {
                library: lib,
                needed_by,
                sysroot: root.display().to_string(),
                dirs: dirs.join(", "),
            });
        };
        add(es, &mut entries);
        for n in &info.needed {
            todo.push((n.clone(), real.clone()));
        }
        libraries.insert(real, info);
    }

    let libc = libraries
        .iter()
        .filter(|(_, i)| i.soname.as_deref() == Some("libc.so.6"))
        .filter_map(|(_, i)| i.glibc_defined.last().cloned())
        .max()
        .ok_or_else(|| RootfsError::BadLibrary {
            path: root.display().to_string(),
            reason: "no libc.so.6 among the libraries the binaries need".into(),
        })?;
    for (path, info) in &libraries {
        if let Some(needs) = info.max_glibc_required()
            && *needs > libc
        {
            return Err(RootfsError::BadLibrary {
                path: path.clone(),
                reason: format!("needs glibc {needs}, but the image's libc is {libc}"),
            });
        }
    }

    // Certificates are the same for every architecture: the build machine's.
    let ca = Path::new("/");
    if !host(ca, CA_BUNDLE).is_file() {
        return Err(RootfsError::NoCaBundle(CA_BUNDLE.into()));
    }
    let (es, _, _) = copy(ca, CA_BUNDLE)?;
    add(es, &mut entries);

    Ok(RuntimeFiles {
        entries: entries.into_values().collect(),
        libc_glibc: libc,
        libraries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_records_links_relative_absolute_and_dotdot() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib64")).unwrap();
        std::fs::write(r.join("usr/lib/x86_64-linux-gnu/ld.so"), b"x").unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib64", r.join("lib64")).unwrap();
        std::os::unix::fs::symlink(
            "../lib/x86_64-linux-gnu/ld.so",
            r.join("usr/lib64/ld-linux.so"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/ld.so", r.join("usr/lib64/abs")).unwrap();

        let (links, real) = resolve(r, "/lib64/ld-linux.so").unwrap();
        assert_eq!(real, "/usr/lib/x86_64-linux-gnu/ld.so");
        let paths: Vec<&str> = links.iter().map(Entry::path).collect();
        assert_eq!(paths, ["/lib64", "/usr/lib64/ld-linux.so"]);

        let (links, real) = resolve(r, "/usr/lib64/abs").unwrap();
        assert_eq!(real, "/usr/lib/x86_64-linux-gnu/ld.so");
        let paths: Vec<&str> = links.iter().map(Entry::path).collect();
        assert_eq!(paths, ["/usr/lib64/abs", "/lib"]);

        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert!(resolve(r, "/loop").is_err());
        assert!(resolve(r, "/missing/file").is_err());
    }

    #[test]
    fn a_missing_library_names_itself_and_who_needs_it() {
        let d = tempfile::tempdir().unwrap();
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = elf::inspect(&exe).unwrap();
        let e = collect(d.path(), Architecture::X86_64, &[("probe".into(), info)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("needed by") || e.contains("probe needs"), "{e}");
        assert!(e.contains("apt-get install libc6:arm64"), "{e}");
    }
}
