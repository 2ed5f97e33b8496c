//! The build marker's writer (the runtime) and reader (`chronoctl build`) agree: the
//! runtime's marker of this build is found and parsed by the provisioner's reader.

#[test]
fn the_provisioners_reader_parses_the_runtimes_marker() {
    use chrono_provisioner::build::elf;
    assert_eq!(
        elf::MARKER_PREFIX,
        chrono_runtime::build_info::MARKER_PREFIX.as_bytes()
    );
    assert_eq!(
        elf::MARKER_END,
        chrono_runtime::build_info::MARKER_END.as_bytes()
    );
    let m = elf::find_marker(chrono_runtime::build_info::VERSION.as_bytes())
        .expect("the runtime's version text carries a marker the reader parses");
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.profile, "debug", "tests run a debug build");
    assert!(!m.is_release());
    assert!(m.target.contains("linux"), "{}", m.target);
}
