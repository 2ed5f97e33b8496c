//! `chronoctl synth`: write the templates of each config, or (`--check`) compare them
//! with what is on disk and name the stale files.
//!
//! With the default config set (all of `customers/`), directories under the templates
//! root that no config produces are stale too; `synth` removes their files.

use crate::output::Verdict;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use chrono_stacks::Config;
use chrono_stacks::synth::{File, dir_name, synthesize};
use clap::Args;
use serde::Serialize;

use crate::Error;
use crate::output::OutputFormat;

/// Why a file is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Staleness {
    /// Not on disk.
    Missing,
    /// On disk with other contents.
    Differs,
    /// On disk but no longer generated.
    Extra,
}

/// A file `--check` found stale.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StaleFile {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub why: Staleness,
}

/// What `synth` did or found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Files written (synth) .
    pub written: Vec<PathBuf>,
    /// Files unchanged.
    pub unchanged: usize,
    /// Files removed (synth).
    pub removed: Vec<PathBuf>,
    /// Stale files (`--check`).
    pub stale: Vec<StaleFile>,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// The config files selected by the arguments, sorted.
pub fn config_paths(args: &ConfigArgs) -> Result<Vec<PathBuf>, Error> {
    if !args.configs.is_empty() {
        return Ok(args.configs.clone());
    }
    let dir = &args.customers;
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io("cannot list", dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::NoConfigs(dir.clone()));
    }
    Ok(paths)
}

/// Load the selected configs; two configs for one customer and stage are an error.
pub fn load_configs(args: &ConfigArgs) -> Result<Vec<(PathBuf, Config)>, Error> {
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut out = Vec::new();
    for path in config_paths(args)? {
        let cfg = Config::load(&path)?;
        let dir = dir_name(&cfg);
        if let Some(first) = seen.insert(dir.clone(), path.clone()) {
            return Err(Error::DuplicateTarget {
                dir,
                first,
                second: path,
            });
        }
        out.push((path, cfg));
    }
    Ok(out)
}

fn generated_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    if dir.is_dir() {
        for entry in fs::read_dir(dir).map_err(io("cannot list", dir))? {
            let path = entry.map_err(io("cannot list", dir))?.path();
            if path.is_file() && path.extension().is_some_and(|x| x == "yaml" || x == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Synthesize (or check) the templates of `args`. With `--check` or `--dry-run` nothing is
/// written: what differs is reported in `stale`.
pub fn synth(args: &SynthArgs) -> Result<Report, Error> {
    let configs = load_configs(&args.configs)?;
    let mut expected: Vec<File> = Vec::new();
    for (_, cfg) in &configs {
        expected.extend(synthesize(cfg)?);
    }
    let mut report = Report::default();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let wanted: BTreeSet<PathBuf> = expected.iter().map(|f| args.out.join(&f.path)).collect();
    for file in &expected {
        let path = args.out.join(&file.path);
        if let Some(parent) = path.parent() {
            dirs.insert(parent.to_owned());
        }
        let current = fs::read(&path).ok();
        if current.as_deref() == Some(file.contents.as_bytes()) {
            report.unchanged += 1;
            continue;
        }
        if args.check || args.dry_run {
            let why = if current.is_some() {
                Staleness::Differs
            } else {
                Staleness::Missing
            };
            report.stale.push(StaleFile { path, why });
        } else {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
            }
            fs::write(&path, &file.contents).map_err(io("cannot write", &path))?;
            report.written.push(path);
        }
    }
    // Every config: whole template root is ours to keep tidy.
    if args.configs.configs.is_empty() && args.out.is_dir() {
        for entry in fs::read_dir(&args.out).map_err(io("cannot list", &args.out))? {
            let path = entry.map_err(io("cannot list", &args.out))?.path();
            if path.is_dir() {
                dirs.insert(path);
            }
        }
    }
    for dir in dirs {
        for path in generated_files(&dir)? {
            if wanted.contains(&path) {
                continue;
            }
            if args.check || args.dry_run {
                report.stale.push(StaleFile {
                    path,
                    why: Staleness::Extra,
                });
            } else {
                fs::remove_file(&path).map_err(io("cannot remove", &path))?;
                report.removed.push(path);
            }
        }
        if !(args.check || args.dry_run) && fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none())
        {
            fs::remove_dir(&dir).map_err(io("cannot remove", &dir))?;
        }
    }
    report.stale.sort();
    Ok(report)
}

/// `chronoctl synth` with output.
pub fn run(args: &SynthArgs, output: OutputFormat) -> Result<Verdict, Error> {
    let report = synth(args)?;
    match output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        OutputFormat::Text if args.dry_run => {
            for StaleFile { path, why } in &report.stale {
                let action = match why {
                    Staleness::Missing => "would create",
                    Staleness::Differs => "would update",
                    Staleness::Extra => "would remove",
                };
                println!("{action} {}", path.display());
            }
            println!(
                "dry run: {} file(s) would change, {} unchanged",
                report.stale.len(),
                report.unchanged
            );
        }
        OutputFormat::Text => {
            for StaleFile { path, why } in &report.stale {
                let why = match why {
                    Staleness::Missing => "missing",
                    Staleness::Differs => "differs from what the code generates",
                    Staleness::Extra => "is no longer generated",
                };
                println!("stale: {} {why}", path.display());
            }
            if !report.stale.is_empty() {
                println!(
                    "{} stale template file(s); run `make templates` and commit the result",
                    report.stale.len()
                );
            } else if args.check {
                println!("templates are up to date ({} files)", report.unchanged);
            } else {
                for p in &report.written {
                    println!("wrote {}", p.display());
                }
                for p in &report.removed {
                    println!("removed {}", p.display());
                }
                println!(
                    "{} written, {} unchanged, {} removed",
                    report.written.len(),
                    report.unchanged,
                    report.removed.len()
                );
            }
        }
    }
    Ok(if report.stale.is_empty() || args.dry_run {
        Verdict::Pass
    } else {
        Verdict::Fail
    })
}

/// Which configs to use.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// A customer config; repeatable. Default: every *.yaml in --customers.
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// Directory of customer configs.
    #[arg(long, default_value = "customers")]
    pub customers: PathBuf,
}

/// `synth` arguments.
#[derive(Debug, Clone, Args)]
pub struct SynthArgs {
    /// Configs.
    #[command(flatten)]
    pub configs: ConfigArgs,
    /// Root of the generated templates.
    #[arg(long, default_value = "templates")]
    pub out: PathBuf,
    /// Write nothing; exit 1 and name the stale files if the templates on disk differ.
    #[arg(long)]
    pub check: bool,
    /// Write nothing; list what synth would write or remove, and exit 0.
    #[arg(long, conflicts_with = "check")]
    pub dry_run: bool,
}
