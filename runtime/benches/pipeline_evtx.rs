//! Pipeline benchmarks (`make bench`), a bench binary that prints its numbers:
//!
//! 1. EVTX throughput on one generated file (the chunks of `security.evtx` repeated to
//!    ~64 MiB): the `evtx` crate's own JSON iteration, the `evtx_dump` tool when installed
//!    (`$EVTX_DUMP`, `$HOME/.cache/chronotracer/tools/bin/evtx_dump`, or on `PATH`), our
//!    parse + normalize, and our full `parse` step (normalize + gzip JSON lines);
//! 2. peak memory (VmHWM) of the `parse` step on generated syslog and Timesketch JSONL
//!    files of two sizes, each run in a child process: flat memory means streaming.
//!
//! Run: `cargo bench -p chrono-runtime --bench pipeline_evtx`. Sizes can be changed with
//! `PIPELINE_BENCH_EVTX_MB` and `PIPELINE_BENCH_TEXT_MB` (the larger text size; the
//! smaller is an eighth of it).

use chrono::{TimeZone, Utc};
use chrono_runtime::pipeline::steps::{
    ParseOptions, SplitOptions, parse_part, parse_to_writer, split,
};
use chrono_runtime::pipeline::{CountSink, PartSpec, PipelineError, RecordResult, RecordSink};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HEADER: usize = 4096;
const CHUNK: usize = 65536;

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
    memory(dir.path(), text_mb);
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
    let src = std::fs::read(fixture("security.evtx")).expect("fixture");
    let chunks: Vec<&[u8]> = src[HEADER..].chunks_exact(CHUNK).collect();
    let path = dir.join("big.evtx");
    let mut out = BufWriter::new(File::create(&path).expect("create"));
    out.write_all(&src[..HEADER]).expect("write");
    let want = mb * 1024 * 1024 / CHUNK;
    for i in 0..want {
        out.write_all(chunks[i % chunks.len()]).expect("write");
    }
    out.flush().expect("flush");
    path
}

/// One way of reading the file: a name and a run that returns the records it saw.
type Contender<'a> = (&'static str, Box<dyn FnMut() -> u64 + 'a>);

fn evtx_throughput(dir: &Path, mb: usize) {
    let path = big_evtx(dir, mb);
    let size = std::fs::metadata(&path).expect("size").len() as f64 / (1024.0 * 1024.0);
    let rounds = env_usize("PIPELINE_BENCH_ROUNDS", 5);
    println!("== EVTX throughput on a {size:.0} MiB file (best of {rounds} interleaved rounds) ==");

    let opts = SplitOptions::new("big.evtx");
    let manifest = split(BufReader::new(File::open(&path).expect("open")), &opts).expect("split");
    let parse_opts = ParseOptions::default();
    let mut contenders: Vec<Contender<'_>> = vec![(
        "evtx crate records_json (all threads)",
        Box::new(|| {
            let mut parser = evtx::EvtxParser::from_path(&path)
                .expect("evtx")
                .with_configuration(evtx::ParserSettings::new().num_threads(0));
            parser.records_json().filter(Result::is_ok).count() as u64
        }),
    )];
    let dump = evtx_dump();
    if let Some(tool) = dump.clone() {
        let path = path.clone();
        contenders.push((
            "evtx_dump -o jsonl -t 0 > /dev/null",
            Box::new(move || {
                let ok = Command::new(&tool)
                    .args(["-o", "jsonl", "-t", "0"])
                    .arg(&path)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "evtx_dump failed on {}", path.display());
                0
            }),
        ));
    } else {
        println!(
            "evtx_dump not found: install it with `cargo install evtx --locked --root $HOME/.cache/chronotracer/tools`"
        );
    }
    contenders.push((
        "pipeline parse + normalize (no output)",
        Box::new(|| {
            let mut events = 0;
            for part in &manifest.parts {
                let mut sink = CountSink::default();
                parse_part(
                    File::open(&path).expect("open"),
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
    contenders.push((
        "pipeline parse + normalize + JSON lines",
        Box::new(|| {
            let mut sink = JsonLinesToNowhere::default();
            for part in &manifest.parts {
                parse_part(
                    File::open(&path).expect("open"),
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
        "pipeline parse step (gzip JSON lines out)",
        Box::new(|| {
            let mut events = 0;
            for part in &manifest.parts {
                let out =
                    BufWriter::new(File::create(dir.join("events.jsonl.gz")).expect("create"));
                let summary =
                    parse_to_writer(File::open(&path).expect("open"), part, &parse_opts, out)
                        .expect("parse");
                events += summary.tally.events;
            }
            events
        }),
    ));

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
    let records = best[0].1;
    let mut secs = Vec::new();
    for ((name, _), (took, seen)) in contenders.iter().zip(&best) {
        let s = took.as_secs_f64();
        println!(
            "{name:<44} {:>8.3} s {:>8.1} MiB/s {:>10.0} records/s",
            s,
            size / s,
            records as f64 / s
        );
        if name.starts_with("pipeline") {
            assert_eq!(*seen, records, "{name} saw the records the crate saw");
        }
        secs.push((*name, s));
    }
    let time_of = |prefix: &str| {
        secs.iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(_, s)| *s)
    };
    let ours = [
        ("normalize", time_of("pipeline parse + normalize (no")),
        ("JSON lines", time_of("pipeline parse + normalize + JSON")),
        ("gzip step", time_of("pipeline parse step")),
    ];
    for (baseline, label) in [
        ("evtx crate", "evtx crate JSON iteration"),
        ("evtx_dump", "evtx_dump (target >= 0.8x)"),
    ] {
        if let Some(base) = time_of(baseline) {
            let ratios: Vec<String> = ours
                .iter()
                .filter_map(|(n, s)| s.map(|s| format!("{n} {:.2}x", base / s)))
                .collect();
            println!("ratio vs {label}: {}", ratios.join(", "));
        }
    }
    println!(
        "parts: {} (chunks per part {})",
        manifest.parts.len(),
        opts.evtx_chunks_per_part
    );
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

fn evtx_dump() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("EVTX_DUMP") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let tool = home.join(".cache/chronotracer/tools/bin/evtx_dump");
    if tool.exists() {
        return Some(tool);
    }
    let on_path = Command::new("evtx_dump")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    on_path
        .is_ok_and(|s| s.success())
        .then(|| PathBuf::from("evtx_dump"))
}

fn memory(dir: &Path, big_mb: usize) {
    println!("== peak memory of the parse step (VmHWM of a child process) ==");
    let small_mb = (big_mb / 8).max(1);
    for (kind, writer) in [
        ("syslog", write_syslog as fn(&Path, usize)),
        ("jsonl", write_jsonl),
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

/// Child: split + parse the file to gzip JSON lines, then print the counts and VmHWM.
fn rss_child(path: &Path) {
    let mut opts = SplitOptions::new("bench");
    opts.reference_time = Some(
        Utc.with_ymd_and_hms(2024, 12, 31, 0, 0, 0)
            .single()
            .expect("time"),
    );
    let manifest = split(BufReader::new(File::open(path).expect("open")), &opts).expect("split");
    let part: &PartSpec = &manifest.parts[0];
    let out = BufWriter::new(File::create(path.with_extension("jsonl.gz")).expect("create"));
    let summary = parse_to_writer(
        BufReader::new(File::open(path).expect("open")),
        part,
        &ParseOptions::default(),
        out,
    )
    .expect("parse");
    let _ = std::fs::remove_file(path.with_extension("jsonl.gz"));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!(
        "{} events, {} bad, peak RSS {hwm}",
        summary.tally.events, summary.tally.bad_records
    );
}
