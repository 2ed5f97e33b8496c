//! The command line of `chrono-pipeline` (parsed here, so the binary stays thin and the
//! behaviour is testable).
//!
//! As an ECS task (what the Step Functions definition in `chrono_stacks::pipeline` runs)
//! every step takes `--evidence-id` and `--case-id`, and `parse`/`upload` take `--part
//! <artifact key>`; buckets come from `CHRONO_SOURCES_BUCKET`/`CHRONO_ARTIFACTS_BUCKET`,
//! the database from `DATABASE_URL`, the S3 endpoint from the standard AWS settings
//! (`AWS_ENDPOINT_URL` for the local emulator). `split` and `parse` also run on local
//! files (`--input`, `--output`). A failing step leaves its message in `step-error.json`
//! for the state machine's failure path ([`super::failure`]).

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use uuid::Uuid;

use super::error::{EXIT_BAD_INPUT, PipelineError};
use super::steps::{
    self, DEFAULT_EVTX_CHUNKS_PER_PART, DEFAULT_MAX_ERRORS, ParseOptions, PartSpec, SplitOptions,
};
use super::{jobs, upload};

/// The evidence pipeline's steps.
#[derive(Debug, Parser)]
#[command(
    name = "chrono-pipeline",
    version = crate::build_info::VERSION,
    about = "ChronoTracer evidence pipeline: split, parse, upload"
)]
pub struct Cli {
    /// The step to run.
    #[command(subcommand)]
    pub command: Command,
}

/// One pipeline step.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Split an evidence into parts and write the parts manifest.
    Split(SplitArgs),
    /// Parse one part into normalized events (gzip JSON lines) and a summary.
    Parse(ParseArgs),
    /// Load one parsed part's events into PostgreSQL and update the evidence.
    Upload(UploadArgs),
}

/// Which evidence a step works on.
#[derive(Debug, Args)]
pub struct Target {
    /// The evidence.
    #[arg(long)]
    pub evidence_id: Uuid,
    /// The case the evidence belongs to.
    #[arg(long)]
    pub case_id: Uuid,
}

/// `split` arguments.
#[derive(Debug, Args)]
pub struct SplitArgs {
    #[command(flatten)]
    /// The evidence.
    pub target: Target,
    /// Read the evidence from this local file (instead of the sources bucket).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// The evidence's key in the sources bucket (default: the one object under
    /// `cases/<case>/evidence/<id>/`).
    #[arg(long, conflicts_with = "input")]
    pub source_key: Option<String>,
    /// Write the manifest and part descriptions under this directory.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// When the evidence was collected (RFC 3339); gives RFC 3164 syslog lines their year.
    /// Defaults to the input file's modification time.
    #[arg(long)]
    pub reference_time: Option<DateTime<Utc>>,
    /// EVTX chunks (64 KiB each) per part.
    #[arg(long, default_value_t = DEFAULT_EVTX_CHUNKS_PER_PART)]
    pub evtx_chunks_per_part: u64,
}

/// `parse` arguments.
#[derive(Debug, Args)]
pub struct ParseArgs {
    #[command(flatten)]
    /// The evidence.
    pub target: Target,
    /// The part description `split` wrote (a local path, or its key in the artifacts bucket).
    #[arg(long)]
    pub part: String,
    /// The evidence as a local file.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write `events/<part>.jsonl.gz` and `events/<part>.summary.json` under this directory.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// EVTX worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Bad records kept with their location in the summary.
    #[arg(long, default_value_t = DEFAULT_MAX_ERRORS)]
    pub max_errors: usize,
}

/// `upload` arguments.
#[derive(Debug, Args)]
pub struct UploadArgs {
    #[command(flatten)]
    /// The evidence.
    pub target: Target,
    /// The part whose events to load (its description's key in the artifacts bucket).
    #[arg(long)]
    pub part: String,
}

/// Why the command failed, and the exit code to end with.
#[derive(Debug)]
pub struct Failure {
    /// What to tell the operator.
    pub message: String,
    /// Process exit code (65 bad input, 75 retryable, 78 configuration).
    pub exit_code: u8,
}

impl From<PipelineError> for Failure {
    fn from(e: PipelineError) -> Failure {
        Failure {
            exit_code: e.exit_code(),
            message: e.to_string(),
        }
    }
}

fn bad_input(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        exit_code: EXIT_BAD_INPUT,
    }
}

fn io_failure(doing: &'static str) -> impl FnOnce(io::Error) -> Failure {
    move |e| Failure::from(PipelineError::Io { doing, source: e })
}

/// Runs one step.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Split(args) if args.input.is_some() || args.output.is_some() => split(args),
        Command::Parse(args) if args.input.is_some() || args.output.is_some() => parse(args),
        command => remote(command),
    }
}

fn local_paths(
    input: Option<PathBuf>,
    output: Option<PathBuf>,
) -> Result<(PathBuf, PathBuf), Failure> {
    match (input, output) {
        (Some(i), Some(o)) => Ok((i, o)),
        _ => Err(bad_input(
            "local files need both --input <evidence file> and --output <directory>; without either the step reads and writes S3",
        )),
    }
}

fn target(t: &Target) -> upload::Target {
    upload::Target {
        case_id: t.case_id,
        evidence_id: t.evidence_id,
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let json = serde_json::to_vec(value).map_err(|e| {
        Failure::from(PipelineError::Io {
            doing: "serializing json",
            source: io::Error::other(e),
        })
    })?;
    io::stdout()
        .write_all(&json)
        .and_then(|()| io::stdout().write_all(b"\n"))
        .map_err(io_failure("writing to stdout"))
}

/// The S3 (and database) steps, as the state machine runs them.
fn remote(command: Command) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io_failure("starting the async runtime"))?;
    runtime.block_on(async move {
        let buckets = jobs::Buckets::from_env()?;
        let sdk = aws_config::load_from_env().await;
        let s3 = crate::storage::SourcesBucket::client_from(&sdk);
        let (step, part, t) = match &command {
            Command::Split(a) => ("split", None, target(&a.target)),
            Command::Parse(a) => ("parse", Some(a.part.clone()), target(&a.target)),
            Command::Upload(a) => ("upload", Some(a.part.clone()), target(&a.target)),
        };
        let done = remote_step(command, &s3, &buckets).await;
        if let Err(failure) = &done {
            let error = jobs::StepError {
                step: step.to_owned(),
                part,
                message: failure.message.clone(),
                exit_code: failure.exit_code,
            };
            jobs::record_step_error(&s3, &buckets, t, &error).await;
        }
        done
    })
}

async fn remote_step(
    command: Command,
    s3: &aws_sdk_s3::Client,
    buckets: &jobs::Buckets,
) -> Result<(), Failure> {
    match command {
        Command::Split(args) => {
            let index = jobs::split(
                s3,
                buckets,
                target(&args.target),
                args.source_key.as_deref(),
                args.evtx_chunks_per_part,
            )
            .await?;
            print_json(&index)
        }
        Command::Parse(args) => {
            let opts = ParseOptions {
                threads: args.threads,
                max_errors: args.max_errors,
                limits: super::limits::Limits::from_env()?,
            };
            let summary = jobs::parse(s3, buckets, target(&args.target), &args.part, opts).await?;
            print_json(&summary)
        }
        Command::Upload(args) => {
            let pool = jobs::pool_from_env().await?;
            let report = jobs::upload(s3, &pool, buckets, target(&args.target), &args.part).await?;
            print_json(&serde_json::json!({
                "rows": report.rows, "inserted": report.inserted, "state": report.state
            }))
        }
    }
}

fn split(args: SplitArgs) -> Result<(), Failure> {
    let (input, output) = local_paths(args.input, args.output)?;
    let file = fs::File::open(&input)
        .map_err(|e| bad_input(format!("cannot open {}: {e}", input.display())))?;
    let reference_time = match args.reference_time {
        Some(t) => Some(t),
        None => file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .map(DateTime::<Utc>::from),
    };
    let opts = SplitOptions {
        source_name: input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| input.display().to_string()),
        evidence_id: Some(args.target.evidence_id),
        reference_time,
        evtx_chunks_per_part: args.evtx_chunks_per_part,
        limits: super::limits::Limits::from_env()?,
    };
    let manifest = steps::split(io::BufReader::new(file), &opts)?;
    for part in &manifest.parts {
        write_atomic(&output.join(&part.key), &to_json(part)?)?;
    }
    let json = to_json(&manifest)?;
    write_atomic(&output.join("manifest.json"), &json)?;
    io::stdout()
        .write_all(&json)
        .and_then(|()| io::stdout().write_all(b"\n"))
        .map_err(io_failure("writing to stdout"))?;
    Ok(())
}

fn parse(args: ParseArgs) -> Result<(), Failure> {
    let (input, output) = local_paths(args.input, args.output)?;
    let spec = fs::read(&args.part)
        .map_err(|e| bad_input(format!("cannot read part {}: {e}", args.part)))?;
    let part: PartSpec = serde_json::from_slice(&spec).map_err(PipelineError::InvalidPart)?;
    if part
        .evidence_id
        .is_some_and(|id| id != args.target.evidence_id)
    {
        return Err(bad_input(format!(
            "part {} belongs to evidence {}, not {}",
            part.id,
            part.evidence_id.unwrap_or_default(),
            args.target.evidence_id
        )));
    }
    let file = fs::File::open(&input)
        .map_err(|e| bad_input(format!("cannot open {}: {e}", input.display())))?;
    let events_path = output.join("events").join(format!("{}.jsonl.gz", part.id));
    let tmp = temp_path(&events_path)?;
    let out = fs::File::create(&tmp).map_err(io_failure("creating the events file"))?;
    let opts = ParseOptions {
        threads: args.threads,
        max_errors: args.max_errors,
        limits: super::limits::Limits::from_env()?,
    };
    let result = steps::parse_to_writer(
        io::BufReader::new(file),
        &part,
        &opts,
        io::BufWriter::new(out),
    );
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    fs::rename(&tmp, &events_path).map_err(io_failure("moving the events file in place"))?;
    let json = to_json(&summary)?;
    write_atomic(
        &output
            .join("events")
            .join(format!("{}.summary.json", part.id)),
        &json,
    )?;
    io::stdout()
        .write_all(&json)
        .and_then(|()| io::stdout().write_all(b"\n"))
        .map_err(io_failure("writing to stdout"))?;
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec_pretty(value).map_err(|e| {
        Failure::from(PipelineError::Io {
            doing: "serializing json",
            source: io::Error::other(e),
        })
    })
}

fn temp_path(path: &Path) -> Result<PathBuf, Failure> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_failure("creating the output directory"))?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    Ok(dir.join(name))
}

/// Writes a file so that readers never see it half written (a retried task overwrites it).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let tmp = temp_path(path)?;
    fs::write(&tmp, bytes).map_err(io_failure("writing an output file"))?;
    fs::rename(&tmp, path).map_err(io_failure("moving an output file in place"))
}
