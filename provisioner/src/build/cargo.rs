//! Compiling the runtime: the Rust target of an architecture, the toolchain check that
//! fails at once (naming the commands that install what is missing), the `cargo build`
//! call, and the source fingerprint that lets an unchanged tree skip cargo entirely.
//!
//! The fingerprint covers what decides the binaries' bytes: the toolchain (`rustc -vV`),
//! the target and profile, `RUSTFLAGS`, `Cargo.lock` and the root `Cargo.toml`, and the
//! contents of every workspace source file the previous build read (cargo's dep-info
//! files list them; sources of registry crates are pinned by `Cargo.lock`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono_stacks::config::Architecture;
use sha2::{Digest, Sha256};

/// The cargo profile `chronoctl build` uses: `release` without symbols (workspace
/// `Cargo.toml`).
pub const SHIP_PROFILE: &str = "ship";
/// The runtime's package.
pub const RUNTIME_PACKAGE: &str = "chrono-runtime";

/// Errors compiling.
#[derive(Debug, thiserror::Error)]
pub enum CargoError {
    /// The Rust target (or cross tools) for the architecture are missing.
    #[error(
        "cannot build for {arch}: {missing}. Install it with:\n{install}\n(or set `architecture: x86_64` in the config)"
    )]
    ToolchainMissing {
        /// The architecture.
        arch: Architecture,
        /// What is missing.
        missing: String,
        /// The commands, one per line.
        install: String,
    },
    /// cargo could not be run or failed.
    #[error("{0}")]
    Failed(String),
}

/// The Rust target triple of an architecture (glibc, Linux).
pub fn rust_target(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "x86_64-unknown-linux-gnu",
        Architecture::Arm64 => "aarch64-unknown-linux-gnu",
    }
}

/// The architecture of this machine, if it is one we deploy to.
pub fn host_architecture() -> Option<Architecture> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Architecture::X86_64),
        "aarch64" => Some(Architecture::Arm64),
        _ => None,
    }
}

/// How to compile for an architecture on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// The architecture.
    pub arch: Architecture,
    /// `None`: the host's own target (no `--target`, shares cargo's cache with other
    /// release builds); `Some(triple)`: cross-compiling through `cargo zigbuild`.
    pub cross_target: Option<String>,
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The install commands for cross-compiling to `arch` (printed when something is missing).
pub fn cross_install_commands(arch: Architecture) -> String {
    let target = rust_target(arch);
    let debian_arch = match arch {
        Architecture::X86_64 => "amd64",
        Architecture::Arm64 => "arm64",
    };
    [
        format!("  rustup target add {target}"),
        "  python3 -m pip install ziglang        # the cross linker (zig)".into(),
        "  cargo install --locked cargo-zigbuild".into(),
        format!(
            "  dpkg --add-architecture {debian_arch} && apt-get update && apt-get install libc6:{debian_arch} libgcc-s1:{debian_arch}   # the image's libraries"
        ),
    ]
    .join("\n")
}

/// Decides how to compile for `arch` here, or fails at once naming what to install.
/// `cargo` is the cargo program (`$CARGO` or `cargo`).
pub fn toolchain(arch: Architecture, cargo: &Path) -> Result<Toolchain, CargoError> {
    if host_architecture() == Some(arch) {
        return Ok(Toolchain {
            arch,
            cross_target: None,
        });
    }
    let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))
        .map(|s| PathBuf::from(s.trim()))
        .unwrap_or_default();
    let zigbuild = output(Command::new(cargo).args(["zigbuild", "--version"])).is_some();
    cross_toolchain(arch, &sysroot, zigbuild)
}

/// Cross-compiling needs the target's standard library in the Rust sysroot and
/// `cargo zigbuild` (zig links against the target's glibc).
pub fn cross_toolchain(
    arch: Architecture,
    rust_sysroot: &Path,
    zigbuild: bool,
) -> Result<Toolchain, CargoError> {
    let target = rust_target(arch);
    let missing = |what: String| CargoError::ToolchainMissing {
        arch,
        missing: what,
        install: cross_install_commands(arch),
    };
    let target_lib = rust_sysroot
        .join("lib")
        .join("rustlib")
        .join(target)
        .join("lib");
    if !target_lib.is_dir() {
        return Err(missing(format!(
            "the Rust standard library for {target} is not installed ({} is missing)",
            target_lib.display()
        )));
    }
    if !zigbuild {
        return Err(missing(
            "`cargo zigbuild` (the cross-linking driver) is not installed".into(),
        ));
    }
    Ok(Toolchain {
        arch,
        cross_target: Some(target.to_owned()),
    })
}

/// The binaries a `cargo build` produced: name → path.
pub type Executables = std::collections::BTreeMap<String, PathBuf>;

/// Runs `cargo build --profile ship -p chrono-runtime --bins` (through `cargo zigbuild`
/// when cross-compiling) in `workspace`, in `target_dir` when given; cargo's progress goes
/// to our stderr.
pub fn build(
    cargo: &Path,
    workspace: &Path,
    package: &str,
    tc: &Toolchain,
    target_dir: Option<&Path>,
) -> Result<Executables, CargoError> {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace);
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir)
            .env("CARGO_BUILD_BUILD_DIR", dir);
    }
    match &tc.cross_target {
        None => cmd.arg("build"),
        Some(t) => cmd.args(["zigbuild", "--target", t]),
    };
    cmd.args([
        "--profile",
        SHIP_PROFILE,
        "--locked",
        "-p",
        package,
        "--bins",
    ])
    .args(["--config", &remap_rustflags(workspace, target_dir)])
    .args(["--message-format", "json-render-diagnostics"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let out = cmd
        .output()
        .map_err(|e| CargoError::Failed(format!("cannot run {}: {e}", cargo.display())))?;
    if !out.status.success() {
        return Err(CargoError::Failed(format!(
            "cargo build of {package} failed ({}); see the compiler output above",
            out.status
        )));
    }
    let mut exes = Executables::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if !msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"))
        {
            continue;
        }
        if let (Some(name), Some(exe)) =
            (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            exes.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    if exes.is_empty() {
        return Err(CargoError::Failed(format!(
            "cargo build of {package} reported no executables"
        )));
    }
    Ok(exes)
}

/// `build.rustflags` that map the machine-specific paths rustc embeds (panic locations,
/// debug paths) to fixed ones — the source tree, cargo's home and the target directory —
/// so two clones on two machines build the same bytes. (`RUSTFLAGS`, when set, replaces
/// them; it is part of the fingerprint.)
pub fn remap_rustflags(workspace: &Path, target_dir: Option<&Path>) -> String {
    let mut maps: Vec<(PathBuf, &str)> = vec![(workspace.to_path_buf(), "/chrono")];
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(h) = cargo_home {
        maps.push((h, "/cargo"));
    }
    let target = target_dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from));
    if let Some(t) = target {
        maps.push((t, "/target"));
    }
    if let Some(b) = std::env::var_os("CARGO_BUILD_BUILD_DIR").filter(|_| target_dir.is_none()) {
        maps.push((PathBuf::from(b), "/build"));
    }
    let flags: Vec<String> = maps
        .into_iter()
        .map(|(from, to)| {
            let from = from.canonicalize().unwrap_or(from);
            format!("\"--remap-path-prefix={}={to}\"", from.display())
        })
        .collect();
    format!("build.rustflags=[{}]", flags.join(","))
}

/// The workspace files listed in cargo's dep-info (`<exe>.d`) next to each executable:
/// the sources the build read. Paths outside `workspace` (registry crates, the toolchain)
/// are left out: `Cargo.lock` and `rustc -vV` pin them.
pub fn sources(workspace: &Path, exes: &Executables) -> Result<Vec<String>, CargoError> {
    let root = workspace
        .canonicalize()
        .map_err(|e| CargoError::Failed(format!("{}: {e}", workspace.display())))?;
    let mut files = BTreeSet::new();
    for exe in exes.values() {
        let d = exe.with_extension("d");
        let text = std::fs::read_to_string(&d).map_err(|e| {
            CargoError::Failed(format!("cannot read cargo's dep-info {}: {e}", d.display()))
        })?;
        for path in dep_info_paths(&text) {
            if let Ok(rel) = Path::new(&path).strip_prefix(&root) {
                files.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    Ok(files.into_iter().collect())
}

/// The prerequisites of a Makefile-style dep-info file (`target: dep dep\ dep ...`).
pub fn dep_info_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut cur = String::new();
        let mut chars = deps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    cur.push(' ');
                    chars.next();
                }
                ' ' => {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                }
                _ => cur.push(c),
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

/// The fingerprint of a build: toolchain, target, profile, flags, lock file and the
/// contents of `sources` (workspace-relative). A missing source is a different fingerprint.
pub fn fingerprint(workspace: &Path, tc: &Toolchain, sources: &[String]) -> String {
    let mut h = Sha256::new();
    let mut field = |k: &str, v: &[u8]| {
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v);
    };
    field(
        "rustc",
        output(Command::new("rustc").arg("-vV"))
            .unwrap_or_default()
            .as_bytes(),
    );
    field("arch", tc.arch.as_str().as_bytes());
    field(
        "target",
        tc.cross_target.as_deref().unwrap_or("host").as_bytes(),
    );
    field("profile", SHIP_PROFILE.as_bytes());
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
        field(var, std::env::var(var).unwrap_or_default().as_bytes());
    }
    for f in ["Cargo.lock", "Cargo.toml"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(sources.iter().cloned())
    {
        let bytes = std::fs::read(workspace.join(&f)).unwrap_or_else(|_| b"<missing>".to_vec());
        field(&f, &Sha256::digest(&bytes));
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_paths_handle_escaped_spaces_and_several_lines() {
        let text =
            "/t/release/chrono-api: /w/runtime/src/lib.rs /w/a\\ b.rs\n\n/w/runtime/src/lib.rs:\n";
        assert_eq!(dep_info_paths(text), ["/w/runtime/src/lib.rs", "/w/a b.rs"]);
    }

    #[test]
    fn the_host_architecture_needs_no_cross_toolchain() {
        let host = host_architecture().expect("tests run on x86-64 or AArch64");
        let tc = toolchain(host, Path::new("cargo")).unwrap();
        assert_eq!(tc.cross_target, None);
    }

    #[test]
    fn arm64_without_its_target_fails_naming_the_install_commands() {
        let empty = tempfile::tempdir().unwrap();
        let e = cross_toolchain(Architecture::Arm64, empty.path(), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rustup target add aarch64-unknown-linux-gnu"),
            "{e}"
        );
        assert!(e.contains("cargo install --locked cargo-zigbuild"), "{e}");
        assert!(e.contains("apt-get install libc6:arm64"), "{e}");
        assert!(
            e.contains("standard library for aarch64-unknown-linux-gnu"),
            "{e}"
        );

        let sysroot = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(
            sysroot
                .path()
                .join("lib/rustlib/aarch64-unknown-linux-gnu/lib"),
        )
        .unwrap();
        let e = cross_toolchain(Architecture::Arm64, sysroot.path(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`cargo zigbuild`"), "{e}");
        let tc = cross_toolchain(Architecture::Arm64, sysroot.path(), true).unwrap();
        assert_eq!(
            tc.cross_target.as_deref(),
            Some("aarch64-unknown-linux-gnu")
        );
    }

    #[test]
    fn fingerprint_changes_with_a_source_and_not_without() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Cargo.lock"), "lock").unwrap();
        std::fs::write(d.path().join("a.rs"), "fn a() {}").unwrap();
        let tc = Toolchain {
            arch: Architecture::X86_64,
            cross_target: None,
        };
        let src = vec!["a.rs".to_owned()];
        let f1 = fingerprint(d.path(), &tc, &src);
        assert_eq!(f1, fingerprint(d.path(), &tc, &src));
        std::fs::write(d.path().join("a.rs"), "fn a() { }").unwrap();
        assert_ne!(f1, fingerprint(d.path(), &tc, &src));
        let arm = Toolchain {
            arch: Architecture::Arm64,
            cross_target: Some("aarch64-unknown-linux-gnu".into()),
        };
        assert_ne!(
            fingerprint(d.path(), &tc, &src),
            fingerprint(d.path(), &arm, &src)
        );
    }
}
