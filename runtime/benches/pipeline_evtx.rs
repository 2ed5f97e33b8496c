//! Pipeline benchmarks (`make bench`), a bench binary that prints its numbers:
//!
//! 1. EVTX throughput on one generated file (the chunks of `security.evtx` repeated to
//!    ~64 MiB), with one thread and with all cores: the `evtx_dump` tool when installed
//!    (`$EVTX_DUMP`, `$HOME/.cache/chronotracer/tools/bin/evtx_dump`, or on `PATH`; it
//!    should be a release build of the same evtx version, which the bench checks), the
//!    crate's public per-record JSON API, the crate's CLI-internal chunk renderer (what
//!    `evtx_dump` uses, `#[doc(hidden)]`) plus our field reading, our parse + normalize,
//!    and with all cores our JSON lines and full `parse` step (normalize + gzip JSON lines);
//!    and two bounds no pipeline built on that renderer can beat: the renderer alone, and
//!    the renderer plus serde_json checking each record (no fields read, no events built);
//! 2. peak memory (VmHWM) of the `parse` step on generated syslog, Timesketch JSONL and
//!    EVTX files of two sizes, each run in a child process: flat memory means streaming.
//!
//! Run: `cargo bench -p chrono-runtime --bench pipeline_evtx`. Sizes can be changed with
//! `PIPELINE_BENCH_EVTX_MB` and `PIPELINE_BENCH_TEXT_MB` (the larger text size; the
//! smaller is an eighth of it; `0` skips the memory runs), rounds with
//! `PIPELINE_BENCH_ROUNDS`; `PIPELINE_BENCH_ONLY=text` runs only the contenders whose
//! name contains `text` (for profiling).

use chrono::{TimeZone, Utc};
use chrono_runtime::pipeline::event::Attributes;
use chrono_runtime::pipeline::normalize::windows::fields;
use chrono_runtime::pipeline::steps::{
    ParseOptions, SplitOptions, parse_part, parse_to_writer, split,
};
use chrono_runtime::pipeline::{CountSink, PipelineError, RecordResult, RecordSink};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The allocator the `chrono-pipeline` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HEADER: usize = 4096;
const CHUNK: usize = 65536;
/// The evtx crate version the pipeline links (pinned in the workspace), which `evtx_dump`
/// must be built from too.
const EVTX_VERSION: &str = "0.15.1";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-child") {
        rss_child(Path::new(&args[i + 1]));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // Run as a test (`cargo test --all-targets`): benchmarks only run under `cargo bench`.
        println!("pipeline_evtx: benchmarks run with `cargo bench`; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let evtx_mb = env_usize("PIPELINE_BENCH_EVTX_MB", 64);
    let text_mb = env_usize("PIPELINE_BENCH_TEXT_MB", 512);
    evtx_throughput(dir.path(), evtx_mb);
    if text_mb > 0 {
        memory(dir.path(), text_mb);
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/evidence")
        .join(name)
}

/// An EVTX file of about `mb` MiB: the header and chunks of security.evtx, chunks repeated.
fn big_evtx(dir: &Path, mb: usize) -> PathBuf {
    let path = dir.join("big.evtx");
    write_evtx(&path, mb);
    path
}

fn write_evtx(path: &Path, mb: usize) {
    let src = std::fs::read(fixture("security.evtx")).expect("fixture");
    let chunks: Vec<&[u8]> = src[HEADER..].chunks_exact(CHUNK).collect();
    let mut out = BufWriter::new(File::create(path).expect("create"));
    out.write_all(&src[..HEADER]).expect("write");
    let want = mb * 1024 * 1024 / CHUNK;
    for i in 0..want {
        out.write_all(chunks[i % chunks.len()]).expect("write");
    }
    out.flush().expect("flush");
}

/// One way of reading the file: a name and a run that returns the records it saw.
type Contender<'a> = (String, Box<dyn FnMut() -> u64 + 'a>);

/// The thread counts compared: one, and all cores (`0`).
const THREADS: [usize; 2] = [1, 0];

fn threads_label(threads: usize) -> &'static str {
    if threads == 1 {
        "1 thread"
    } else {
        "all threads"
    }
}

fn evtx_throughput(dir: &Path, mb: usize) {
    let path = &big_evtx(dir, mb);
    let size = std::fs::metadata(path).expect("size").len() as f64 / (1024.0 * 1024.0);
    let rounds = env_usize("PIPELINE_BENCH_ROUNDS", 5);
    println!("== EVTX throughput on a {size:.0} MiB file (best of {rounds} interleaved rounds) ==");

    let opts = SplitOptions::new("big.evtx");
    let manifest = &split(BufReader::new(File::open(path).expect("open")), &opts).expect("split");
    let dump = evtx_dump();
    if dump.is_none() {
        println!(
            "evtx_dump not found: install it with `cargo install evtx --version {} --locked --root $HOME/.cache/chronotracer/tools`",
            EVTX_VERSION
        );
    }
    // The size of the parse step's output, from its last run.
    let gzip_bytes = &std::cell::Cell::new(0u64);
    let mut contenders: Vec<Contender<'_>> = Vec::new();
    for threads in THREADS {
        let label = threads_label(threads);
        let parse_opts = ParseOptions {
            threads,
            ..ParseOptions::default()
        };
        if let Some(tool) = dump.clone() {
            contenders.push((
                format!("evtx_dump -o jsonl -t {threads} ({label})"),
                Box::new(move || {
                    let ok = Command::new(&tool)
                        .args(["-o", "jsonl", "-t", &threads.to_string()])
                        .arg(path)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    assert!(ok, "evtx_dump failed on {}", path.display());
                    0
                }),
            ));
        }
        contenders.push((
            format!("evtx crate records_json_bytes ({label})"),
            Box::new(move || {
                let mut parser = evtx::EvtxParser::from_path(path)
                    .expect("evtx")
                    .with_configuration(evtx::ParserSettings::new().num_threads(threads));
                parser.records_json_bytes().filter(Result::is_ok).count() as u64
            }),
        ));
        // Bounds, not the pipeline: the chunk renderer alone (evtx_dump without writing),
        // and the renderer plus serde_json checking each record (no tree, no copies).
        contenders.push((
            format!("bound: chunk renderer only ({label})"),
            Box::new(move || {
                rendered_records(path, threads, |bytes| {
                    std::hint::black_box(bytes);
                })
            }),
        ));
        contenders.push((
            format!("bound: renderer + serde_json check ({label})"),
            Box::new(move || {
                rendered_records(path, threads, |bytes| {
                    let ok = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
                    std::hint::black_box(ok);
                })
            }),
        ));
        // Not the pipeline: what normalizing would cost on top of the crate's CLI-internal
        // chunk renderer (`#[doc(hidden)]`, what evtx_dump uses), for comparison only.
        contenders.push((
            format!("evtx crate chunks_json_bytes + fields ({label})"),
            Box::new(move || {
                rendered_records(path, threads, |bytes| {
                    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
                    let attributes = Attributes::from_json(text).expect("json");
                    std::hint::black_box(fields(attributes.as_str()));
                })
            }),
        ));
        contenders.push((
            format!("pipeline parse + normalize ({label})"),
            Box::new(move || {
                let mut events = 0;
                for part in &manifest.parts {
                    let mut sink = CountSink::default();
                    parse_part(
                        File::open(path).expect("open"),
                        part,
                        &parse_opts,
                        &mut sink,
                    )
                    .expect("parse");
                    events += sink.tally.events;
                }
                events
            }),
        ));
    }
    contenders.push((
        "pipeline + JSON lines (all threads)".into(),
        Box::new(move || {
            let parse_opts = ParseOptions::default();
            let mut sink = JsonLinesToNowhere::default();
            for part in &manifest.parts {
                parse_part(
                    File::open(path).expect("open"),
                    part,
                    &parse_opts,
                    &mut sink,
                )
                .expect("parse");
            }
            sink.events
        }),
    ));
    contenders.push((
        "pipeline parse step, gzip (all threads)".into(),
        Box::new(move || {
            let parse_opts = ParseOptions::default();
            let (mut events, mut bytes) = (0, 0);
            for part in &manifest.parts {
                let file = dir.join("events.jsonl.gz");
                let out = BufWriter::new(File::create(&file).expect("create"));
                let summary =
                    parse_to_writer(File::open(path).expect("open"), part, &parse_opts, out)
                        .expect("parse");
                events += summary.tally.events;
                bytes += std::fs::metadata(&file).map_or(0, |m| m.len());
            }
            gzip_bytes.set(bytes);
            events
        }),
    ));

    if let Ok(only) = std::env::var("PIPELINE_BENCH_ONLY") {
        contenders.retain(|(name, _)| name.contains(&only));
    }
    let mut best = vec![(Duration::MAX, 0u64); contenders.len()];
    for _ in 0..rounds {
        for (i, (_, run)) in contenders.iter_mut().enumerate() {
            let start = Instant::now();
            let records = run();
            let took = start.elapsed();
            if took < best[i].0 {
                best[i] = (took, records);
            }
        }
    }
    let records = best
        .iter()
        .zip(&contenders)
        .find(|(_, (name, _))| name.starts_with("evtx crate"))
        .map(|(b, _)| b.1)
        .unwrap_or_default();
    for ((name, _), (took, seen)) in contenders.iter().zip(&best) {
        let s = took.as_secs_f64();
        println!(
            "{name:<46} {:>8.3} s {:>8.1} MiB/s {:>10.0} records/s",
            s,
            size / s,
            records as f64 / s
        );
        if name.starts_with("pipeline") && records > 0 {
            assert_eq!(*seen, records, "{name} saw the records the crate saw");
        }
    }
    let time_of = |prefix: &str| {
        contenders
            .iter()
            .zip(&best)
            .find(|((n, _), _)| n.starts_with(prefix))
            .map(|(_, (t, _))| t.as_secs_f64())
    };
    for threads in THREADS {
        let label = threads_label(threads);
        let ours = time_of(&format!("pipeline parse + normalize ({label})"));
        let crate_api = time_of(&format!("evtx crate records_json_bytes ({label})"));
        let dump = time_of(&format!("evtx_dump -o jsonl -t {threads} "));
        if let (Some(ours), Some(dump)) = (ours, dump) {
            print!(
                "ratio vs evtx_dump ({label}, target >= 0.8x): ours {:.2}x",
                dump / ours
            );
            if let Some(c) = crate_api {
                print!(", crate per-record API {:.2}x", dump / c);
            }
            if let Some(c) = time_of(&format!("evtx crate chunks_json_bytes + fields ({label})")) {
                print!(", crate chunk renderer + fields {:.2}x", dump / c);
            }
            println!();
            // What no pipeline on this renderer can beat: rendering alone, and rendering
            // plus one JSON check of each record (no fields read, no events built).
            if let (Some(r), Some(c)) = (
                time_of(&format!("bound: chunk renderer only ({label})")),
                time_of(&format!("bound: renderer + serde_json check ({label})")),
            ) {
                println!(
                    "bounds vs evtx_dump ({label}): renderer only {:.2}x, renderer + JSON check {:.2}x",
                    dump / r,
                    dump / c
                );
            }
        }
    }
    let dump = time_of("evtx_dump -o jsonl -t 0 ");
    for name in ["pipeline + JSON lines", "pipeline parse step"] {
        if let (Some(t), Some(dump)) = (time_of(name), dump) {
            println!("ratio vs evtx_dump (all threads): {name} {:.2}x", dump / t);
        }
    }
    if gzip_bytes.get() > 0 {
        println!(
            "parse step output: {:.1} MiB of gzip JSON lines ({:.2} bytes per input byte)",
            gzip_bytes.get() as f64 / (1024.0 * 1024.0),
            gzip_bytes.get() as f64 / (size * 1024.0 * 1024.0)
        );
    }
    println!(
        "parts: {} (chunks per part {})",
        manifest.parts.len(),
        opts.evtx_chunks_per_part
    );
}

/// Runs `each` on every record of `path` as the crate's chunk renderer (what `evtx_dump`
/// uses) renders it, with `threads` threads; returns the number of records.
fn rendered_records(path: &Path, threads: usize, mut each: impl FnMut(&[u8])) -> u64 {
    let mut parser = evtx::EvtxParser::from_path(path)
        .expect("evtx")
        .with_configuration(evtx::ParserSettings::new().num_threads(threads));
    let mut n = 0;
    for chunk in parser.chunks_json_bytes(false) {
        for (_, bytes) in chunk.records() {
            each(bytes);
            n += 1;
        }
    }
    n
}

/// Serializes every event as a JSON line into a reused buffer and drops it: the same work
/// `evtx_dump` does when writing to `/dev/null`.
#[derive(Default)]
struct JsonLinesToNowhere {
    buf: Vec<u8>,
    events: u64,
}

impl RecordSink for JsonLinesToNowhere {
    fn accept(&mut self, record: RecordResult) -> Result<(), PipelineError> {
        if let Ok(event) = record {
            self.buf.clear();
            serde_json::to_writer(&mut self.buf, &event).expect("serialize");
            self.buf.push(b'\n');
            std::hint::black_box(&self.buf);
            self.events += 1;
        }
        Ok(())
    }
}

/// The `evtx_dump` to compare with, when one is installed; says which, and warns when it
/// is not built from the evtx version the pipeline links.
fn evtx_dump() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = [
        std::env::var_os("EVTX_DUMP").map(PathBuf::from),
        home.map(|h| h.join(".cache/chronotracer/tools/bin/evtx_dump")),
        Some(PathBuf::from("evtx_dump")),
    ];
    for tool in candidates.into_iter().flatten() {
        let Ok(out) = Command::new(&tool).arg("--version").output() else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        println!("evtx_dump: {} ({version})", tool.display());
        if !version.ends_with(EVTX_VERSION) {
            println!(
                "warning: evtx_dump is not evtx {EVTX_VERSION}, the version the pipeline links; the ratios compare different parsers"
            );
        }
        return Some(tool);
    }
    None
}

fn memory(dir: &Path, big_mb: usize) {
    println!("== peak memory of the parse step (VmHWM of a child process) ==");
    let small_mb = (big_mb / 8).max(1);
    for (kind, writer) in [
        ("syslog", write_syslog as fn(&Path, usize)),
        ("jsonl", write_jsonl),
        ("evtx", write_evtx),
    ] {
        for mb in [small_mb, big_mb] {
            let path = dir.join(format!("big-{kind}-{mb}"));
            writer(&path, mb);
            let me = std::env::current_exe().expect("own path");
            let start = Instant::now();
            let out = Command::new(me)
                .arg("--rss-child")
                .arg(&path)
                .output()
                .expect("child");
            let took = start.elapsed().as_secs_f64();
            let line = String::from_utf8_lossy(&out.stdout);
            println!(
                "{kind:<6} {mb:>5} MiB input: {} ({:.1} MiB/s)",
                line.trim(),
                mb as f64 / took
            );
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn write_syslog(path: &Path, mb: usize) {
    let mut out = BufWriter::new(File::create(path).expect("create"));
    let mut written = 0;
    let mut i = 0u64;
    while written < mb * 1024 * 1024 {
        let line = format!(
            "Mar {:>2} {:02}:{:02}:{:02} host{} sshd[{}]: Failed password for user{} from 10.{}.{}.{} port {} ssh2\n",
            1 + i % 28,
            i % 24,
            i % 60,
            (i / 60) % 60,
            i % 50,
            1000 + i % 30000,
            i % 997,
            i % 256,
            (i / 256) % 256,
            i % 200,
            1024 + i % 60000
        );
        out.write_all(line.as_bytes()).expect("write");
        written += line.len();
        i += 1;
    }
    out.flush().expect("flush");
}

fn write_jsonl(path: &Path, mb: usize) {
    let mut out = BufWriter::new(File::create(path).expect("create"));
    let mut written = 0;
    let mut i = 0u64;
    while written < mb * 1024 * 1024 {
        let line = format!(
            "{{\"message\":\"event {i} from the importer\",\"datetime\":\"2024-02-{:02}T10:{:02}:{:02}Z\",\"timestamp_desc\":\"Write time\",\"hostname\":\"ws{}\",\"username\":\"user{}\",\"extra\":\"{}\"}}\n",
            1 + i % 28,
            i % 60,
            (i / 60) % 60,
            i % 40,
            i % 300,
            "x".repeat((i % 64) as usize)
        );
        out.write_all(line.as_bytes()).expect("write");
        written += line.len();
        i += 1;
    }
    out.flush().expect("flush");
}

/// Child: split + parse every part of the file to gzip JSON lines, one after the other
/// (as one ECS task after another would), then print the counts and VmHWM.
fn rss_child(path: &Path) {
    let mut opts = SplitOptions::new("bench");
    opts.reference_time = Some(
        Utc.with_ymd_and_hms(2024, 12, 31, 0, 0, 0)
            .single()
            .expect("time"),
    );
    let manifest = split(BufReader::new(File::open(path).expect("open")), &opts).expect("split");
    let (mut events, mut bad) = (0, 0);
    for part in &manifest.parts {
        let out = BufWriter::new(File::create(path.with_extension("jsonl.gz")).expect("create"));
        let summary = parse_to_writer(
            BufReader::new(File::open(path).expect("open")),
            part,
            &ParseOptions::default(),
            out,
        )
        .expect("parse");
        events += summary.tally.events;
        bad += summary.tally.bad_records;
    }
    let _ = std::fs::remove_file(path.with_extension("jsonl.gz"));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!(
        "{events} events, {bad} bad, {} part(s), peak RSS {hwm}",
        manifest.parts.len()
    );
}
