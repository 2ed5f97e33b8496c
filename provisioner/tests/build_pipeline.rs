//! `chronoctl build`'s pipeline on a small workspace of its own (a fixture crate whose
//! binaries carry the build marker like the runtime's, compiled in seconds): the real cargo
//! call in the ship profile, the checks, the zips and the image; an unchanged tree is not
//! rebuilt (cargo is not even run); a changed source is; two packagings of the same
//! binaries are byte-identical. The runtime itself is built in release mode only by
//! `make bench` and `make e2e-aws` (minutes on two cores).

use std::path::Path;

use chrono_provisioner::build::{
    self, BuildOptions, BuildOutcome, BuildRecord, BuildSpec, artifacts::Artifacts, cargo,
};

const MAIN: &str = r#"
const MARKER: &str = concat!(
    "chrono-build-", "marker/1;version=", env!("CARGO_PKG_VERSION"),
    ";profile=", env!("CHRONO_BUILD_PROFILE"),
    ";opt-level=", env!("CHRONO_BUILD_OPT_LEVEL"),
    ";debug-assertions=off;target=", env!("CHRONO_BUILD_TARGET"), ";end"
);
fn main() {
    println!("{} {MARKER}", env!("CARGO_BIN_NAME"));
}
"#;

/// A workspace with a `fixture-runtime` package of three binaries, built like the runtime.
fn workspace(dir: &Path) {
    let w = |p: &str, s: &str| {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    w(
        "Cargo.toml",
        "[workspace]\nresolver = \"3\"\nmembers = [\"runtime\"]\n\n[profile.ship]\ninherits = \"release\"\nstrip = \"symbols\"\n",
    );
    w(
        "Cargo.lock",
        "version = 4\n\n[[package]]\nname = \"fixture-runtime\"\nversion = \"0.1.0\"\n",
    );
    w(
        "runtime/Cargo.toml",
        "[package]\nname = \"fixture-runtime\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n",
    );
    w("runtime/build.rs", include_str!("../../runtime/build.rs"));
    for bin in ["fn-api", "img-service", "img-worker"] {
        w(&format!("runtime/src/bin/{bin}.rs"), MAIN);
    }
}

fn spec() -> BuildSpec {
    BuildSpec {
        arch: cargo::host_architecture().expect("tests run on x86-64 or AArch64"),
        lambdas: vec!["fn-api".into()],
        image_binaries: vec!["img-service".into(), "img-worker".into()],
    }
}

#[test]
fn builds_checks_packages_and_skips_an_unchanged_tree() {
    let ws = tempfile::tempdir().unwrap();
    workspace(ws.path());
    let target = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut opts = BuildOptions::new(ws.path(), spec().arch);
    opts.out = out.path().to_path_buf();
    opts.package = "fixture-runtime".into();
    opts.target_dir = Some(target.path().to_path_buf());

    let first = build::run(&spec(), &opts).unwrap();
    assert_eq!(first.outcome, BuildOutcome::Built);
    let rec = &first.record;
    assert_eq!(rec.arch, spec().arch.as_str());
    assert!(!rec.fingerprint.is_empty());
    assert!(
        rec.sources.iter().any(|s| s == "runtime/src/bin/fn-api.rs"),
        "{:?}",
        rec.sources
    );
    let api = &rec.lambdas["fn-api"];
    let zip = std::fs::read(out.path().join(&api.zip)).unwrap();
    assert_eq!(
        chrono_provisioner::deploy::plan::content_hash(&zip),
        api.sha256
    );
    let image = rec.image.as_ref().unwrap();
    assert_eq!(image.binaries, ["img-service", "img-worker"]);
    assert_eq!(BuildRecord::load(out.path()).unwrap().as_ref(), Some(rec));

    // What a deploy of this directory would ship passes the same checks again.
    let a = Artifacts::load(out.path(), &spec()).unwrap();
    assert_eq!(a.lambdas["fn-api"], zip);
    assert_eq!(a.image_digest(), Some(image.digest.as_str()));

    // Unchanged: nothing compiled, zipped or assembled — cargo is not even run.
    let mut no_cargo = opts.clone();
    no_cargo.cargo = "/nonexistent/cargo".into();
    let second = build::run(&spec(), &no_cargo).unwrap();
    assert_eq!(second.outcome, BuildOutcome::Cached);
    assert_eq!(&second.record, rec);

    // A changed source is rebuilt, and only what changed differs.
    std::fs::write(
        ws.path().join("runtime/src/bin/img-worker.rs"),
        format!("{MAIN}\n// changed\nfn _unused() {{ println!(\"v2\"); }}\n"),
    )
    .unwrap();
    assert!(matches!(
        build::run(&spec(), &no_cargo),
        Err(build::BuildError::Cargo(_))
    ));
    let third = build::run(&spec(), &opts).unwrap();
    assert_eq!(third.outcome, BuildOutcome::Built);
    assert_ne!(third.record.fingerprint, rec.fingerprint);
    assert_eq!(third.record.lambdas["fn-api"].sha256, api.sha256);

    // The same binaries packaged twice: byte-identical zips, one image digest.
    let again = tempfile::tempdir().unwrap();
    let bins = ["fn-api", "img-service", "img-worker"]
        .iter()
        .map(|b| {
            let exe = target.path().join("ship").join(b);
            ((*b).to_owned(), std::fs::read(exe).unwrap())
        })
        .collect();
    let p1 = build::package(&spec(), &bins, Path::new("/"), again.path()).unwrap();
    let p2 = build::package(&spec(), &bins, Path::new("/"), again.path()).unwrap();
    assert_eq!(p1, p2);
    assert_eq!(p1.lambdas, third.record.lambdas);
    assert_eq!(p1.image, third.record.image);
}

#[test]
fn two_clones_built_apart_give_identical_zips_and_image_digest() {
    let mut records = Vec::new();
    for _ in 0..2 {
        let ws = tempfile::tempdir().unwrap();
        workspace(ws.path());
        let target = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let mut opts = BuildOptions::new(ws.path(), spec().arch);
        opts.out = out.path().to_path_buf();
        opts.package = "fixture-runtime".into();
        opts.target_dir = Some(target.path().to_path_buf());
        let r = build::run(&spec(), &opts).unwrap();
        assert_eq!(r.outcome, BuildOutcome::Built);
        records.push(r.record);
    }
    assert_eq!(records[0].lambdas, records[1].lambdas);
    assert_eq!(records[0].image, records[1].image);
    assert_eq!(records[0].fingerprint, records[1].fingerprint);
}

#[test]
fn artifacts_with_a_binary_that_is_not_ours_or_missing_pieces_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec();
    // Nothing there.
    let e = Artifacts::load(dir.path(), &s).unwrap_err().to_string();
    assert!(e.contains("no artifact for fn-api"), "{e}");
    // A text file where the function's binary should be.
    std::fs::write(dir.path().join("fn-api"), "echo hello\n").unwrap();
    let e = Artifacts::load(dir.path(), &s).unwrap_err().to_string();
    assert!(e.contains("fn-api: not an executable"), "{e}");
    // Another program's executable.
    std::fs::copy(std::env::current_exe().unwrap(), dir.path().join("fn-api")).unwrap();
    let e = Artifacts::load(dir.path(), &s).unwrap_err().to_string();
    assert!(e.contains("not a ChronoTracer runtime binary"), "{e}");
    // A zip whose bootstrap is that program.
    std::fs::remove_file(dir.path().join("fn-api")).unwrap();
    let zip = build::lambda::lambda_zip(&std::fs::read(std::env::current_exe().unwrap()).unwrap())
        .unwrap();
    std::fs::write(dir.path().join("fn-api.zip"), zip).unwrap();
    let e = Artifacts::load(dir.path(), &s).unwrap_err().to_string();
    assert!(
        e.contains("fn-api.zip: not a ChronoTracer runtime binary"),
        "{e}"
    );
}

fn chronoctl(cwd: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chronoctl"))
        .current_dir(cwd)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env_remove("CHRONO_ARTIFACTS_DIR")
        .output()
        .expect("chronoctl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn config_with(dir: &Path, name: &str, extra: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("customers/acme-staging.yaml")).unwrap() + extra;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn arm64_without_its_toolchain_fails_at_once_naming_the_install_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), "acme-staging.yaml", "architecture: arm64\n");
    let sysroot = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap();
    let installed = Path::new(&sysroot)
        .join("lib/rustlib/aarch64-unknown-linux-gnu/lib")
        .is_dir();
    if installed {
        // A machine that can cross-compile: the same decision, from its own toolchain.
        assert!(
            cargo::cross_toolchain(
                chrono_stacks::config::Architecture::Arm64,
                Path::new(&sysroot),
                true
            )
            .is_ok()
        );
        return;
    }
    let (ok, out) = chronoctl(&root, &["build", "--config", &cfg]);
    assert!(!ok, "{out}");
    assert!(out.contains("cannot build for arm64"), "{out}");
    assert!(
        out.contains("rustup target add aarch64-unknown-linux-gnu"),
        "{out}"
    );
    assert!(
        out.contains("cargo install --locked cargo-zigbuild"),
        "{out}"
    );
    assert!(!out.contains("Compiling"), "nothing was compiled: {out}");
}

#[test]
fn deploy_outside_the_source_tree_without_artifacts_refuses_instead_of_placeholders() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with(dir.path(), "acme-staging.yaml", "");
    let (ok, out) = chronoctl(dir.path(), &["deploy", "--config", &cfg, "--dry-run"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("not inside the ChronoTracer source tree") && out.contains("--artifacts"),
        "{out}"
    );
    assert!(!out.contains("placeholder"), "{out}");

    // --artifacts with something that is not ours: the same checks as a build.
    let arts = dir.path().join("artifacts");
    std::fs::create_dir(&arts).unwrap();
    for b in ["chrono-api", "chrono-ai-chat", "chrono-ws-authorizer"] {
        std::fs::write(arts.join(b), "#!/bin/sh\necho placeholder\n").unwrap();
    }
    let (ok, out) = chronoctl(
        dir.path(),
        &[
            "deploy",
            "--config",
            &cfg,
            "--dry-run",
            "--artifacts",
            &arts.display().to_string(),
        ],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("not an executable"), "{out}");
}
