//! `chronoctl build`: arguments and rendering around [`crate::build`].
//!
//! Builds the runtime for each architecture the configs use (default: every config in
//! `customers/`), into `.chrono/build/<arch>/` of the source tree or `--out DIR` (one
//! architecture only). Exit codes: 0 built or cached, 1 a check refused a binary or the
//! toolchain is missing, 2 bad input.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use super::{ConfigArgs, Failure, OutputFormat};
use crate::build::{self, BuildOptions, BuildOutcome, BuildReport, BuildSpec};
use crate::synth::load_configs;

/// `build` arguments.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Configs (their architecture and functions decide what is built).
    #[command(flatten)]
    pub configs: ConfigArgs,
    /// Artifacts directory (default: `.chrono/build/<arch>` in the source tree).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Renders one build as text lines.
pub fn render(r: &BuildReport) -> String {
    let mut s = String::new();
    let what = match r.outcome {
        BuildOutcome::Cached => "unchanged sources, nothing rebuilt",
        BuildOutcome::Built => "built",
    };
    s.push_str(&format!(
        "{} ({}): {what} in {:.1}s -> {}\n",
        r.record.arch,
        crate::build::cargo::rust_target(match r.record.arch.as_str() {
            "arm64" => chrono_stacks::config::Architecture::Arm64,
            _ => chrono_stacks::config::Architecture::X86_64,
        }),
        r.elapsed_ms as f64 / 1000.0,
        r.out.display()
    ));
    for (name, l) in &r.record.lambdas {
        s.push_str(&format!(
            "  lambda {name:<22} {:>6.1} MB zip  sha256 {}  needs glibc {}\n",
            l.bytes as f64 / 1e6,
            &l.sha256[..12],
            l.glibc_required
        ));
    }
    if let Some(i) = &r.record.image {
        s.push_str(&format!(
            "  image  {:<22} {:>6.1} MB      {}  libc {}\n",
            i.binaries.join(","),
            i.bytes as f64 / 1e6,
            i.digest,
            i.libc
        ));
    }
    s
}

/// Runs `chronoctl build`.
pub fn run(args: &BuildArgs, output: OutputFormat) -> Result<(), Failure> {
    let configs = load_configs(&args.configs)?;
    let mut specs: BTreeMap<String, BuildSpec> = BTreeMap::new();
    for (path, cfg) in &configs {
        let spec = BuildSpec::for_config(cfg).map_err(|e| crate::Error::Build {
            config: path.clone(),
            source: Box::new(e),
        })?;
        let entry = specs
            .entry(spec.arch.as_str().to_owned())
            .or_insert_with(|| spec.clone());
        for l in spec.lambdas {
            if !entry.lambdas.contains(&l) {
                entry.lambdas.push(l);
            }
        }
        entry.lambdas.sort();
    }
    if args.out.is_some() && specs.len() > 1 {
        return Err(Failure::Usage(format!(
            "the configs use {} architectures ({}); --out takes one: pass one --config",
            specs.len(),
            specs.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let ws = build::workspace().map_err(|e| crate::Error::Build {
        config: PathBuf::from("."),
        source: Box::new(e),
    })?;
    let mut failed = false;
    for spec in specs.values() {
        let mut opts = BuildOptions::new(&ws, spec.arch);
        if let Some(o) = &args.out {
            opts.out.clone_from(o);
        }
        match build::run(spec, &opts) {
            Ok(r) => match output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({"event": "build", "report": r}))
                        .unwrap_or_default()
                ),
                OutputFormat::Text => print!("{}", render(&r)),
            },
            Err(e) => {
                failed = true;
                match output {
                    OutputFormat::Json => println!(
                        "{}",
                        serde_json::json!({"event": "error", "arch": spec.arch.as_str(), "message": e.to_string()})
                    ),
                    OutputFormat::Text => eprintln!("chronoctl build ({}): {e}", spec.arch),
                }
            }
        }
    }
    if failed {
        Err(Failure::Failed(None))
    } else {
        Ok(())
    }
}
