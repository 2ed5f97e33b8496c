//! Records how this crate is being built (cargo profile, optimisation level, target triple)
//! for the build marker every runtime binary carries (`src/build_info.rs`), which
//! `chronoctl build` reads to refuse debug builds and binaries of the wrong architecture.

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=CHRONO_BUILD_PROFILE={}", var("PROFILE"));
    println!(
        "cargo:rustc-env=CHRONO_BUILD_OPT_LEVEL={}",
        var("OPT_LEVEL")
    );
    println!("cargo:rustc-env=CHRONO_BUILD_TARGET={}", var("TARGET"));
    println!("cargo:rerun-if-changed=build.rs");
}
