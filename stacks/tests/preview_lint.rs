//! The preview shape of every example config passes cfn-lint (from the project's `.venv`,
//! as `make templates`/`make lint` run it on the committed templates, which hold no preview:
//! a preview's templates are synthesized by `chronoctl preview up`, never committed).

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono_stacks::config::Config;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_preview_shape_of_every_example_passes_cfn_lint() {
    let lint = root().join(".venv/bin/cfn-lint");
    assert!(
        lint.exists(),
        "{} not found; run `make venv`",
        lint.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for base in ["acme-prod", "acme-staging", "initech-staging"] {
        let file = format!("customers/{base}.yaml");
        let cfg = Config::load(&root().join(&file)).unwrap();
        let preview = chrono_stacks::preview::derive(
            &cfg,
            &file,
            &format!("lint-{base}"),
            "111122223333",
            "2099-01-01T00:00:00Z",
        )
        .unwrap();
        for f in chrono_stacks::synth::synthesize(&preview).unwrap() {
            if !f.path.ends_with(".yaml") {
                continue;
            }
            let p = dir.path().join(&f.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f.contents).unwrap();
            files.push(p);
        }
    }
    assert_eq!(files.len(), 3 * 6, "six stacks per preview");
    let out = Command::new(&lint)
        .args(["--non-zero-exit-code", "informational", "--"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cfn-lint findings:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
