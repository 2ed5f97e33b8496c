//! The build marker every runtime binary carries: package version, cargo profile,
//! optimisation level, debug assertions and target triple, as one text in the binary's
//! read-only data. `--version` prints it; `chronoctl build` (and `deploy --artifacts`)
//! find it in the file to tell a release build of ours for the right target from anything
//! else.
//!
//! Format (version 1): `chrono-build-marker/1;version=V;profile=P;opt-level=O;debug-assertions=on|off;target=T;end`.
//! Fields are added before `;end`, never removed or renamed, so older readers keep working.

/// Start of the marker; the reader (`chrono_provisioner::build::elf`) looks for it in the
/// binary (`tests/tests/build_marker.rs` checks the two agree).
pub const MARKER_PREFIX: &str = "chrono-build-marker/1;";
/// End of the marker.
pub const MARKER_END: &str = ";end";

#[cfg(debug_assertions)]
macro_rules! debug_assertions {
    () => {
        "on"
    };
}
#[cfg(not(debug_assertions))]
macro_rules! debug_assertions {
    () => {
        "off"
    };
}

macro_rules! marker {
    () => {
        concat!(
            "chrono-build-marker/1;version=",
            env!("CARGO_PKG_VERSION"),
            ";profile=",
            env!("CHRONO_BUILD_PROFILE"),
            ";opt-level=",
            env!("CHRONO_BUILD_OPT_LEVEL"),
            ";debug-assertions=",
            debug_assertions!(),
            ";target=",
            env!("CHRONO_BUILD_TARGET"),
            ";end"
        )
    };
}

/// The marker of this build.
pub const MARKER: &str = marker!();

/// What `--version` prints after the binary's name: the package version, then the marker.
/// Printing it keeps the marker in every binary (a text nobody reads could be dropped by
/// the linker).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " [", marker!(), "]");

/// For binaries without a command-line parser (the Lambda handlers): when the only
/// argument is `--version`, print `<binary> <VERSION>` and return true (the caller exits).
pub fn version_requested(binary: &str) -> bool {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next()) {
        (Some(a), None) if a == "--version" => {
            println!("{binary} {VERSION}");
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_has_prefix_end_and_fields() {
        assert!(MARKER.starts_with(MARKER_PREFIX));
        assert!(MARKER.ends_with(MARKER_END));
        assert!(MARKER.contains(concat!(";version=", env!("CARGO_PKG_VERSION"), ";")));
        // `cargo test` builds the debug profile.
        assert!(MARKER.contains(";profile=debug;"), "{MARKER}");
        assert!(MARKER.contains(";debug-assertions=on;"), "{MARKER}");
        assert!(VERSION.contains(MARKER));
    }
}
