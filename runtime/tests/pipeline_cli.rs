//! The `chrono-pipeline` binary on local files: split writes a manifest and part
//! descriptions, parse writes gzip JSON lines and a summary; without local paths the
//! steps need their S3 configuration and say which variable is missing.

use chrono_runtime::pipeline::NormalizedEvent;
use flate2::read::GzDecoder;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EVIDENCE: &str = "6f1c2d4e-0000-4000-8000-000000000001";
const CASE: &str = "6f1c2d4e-0000-4000-8000-0000000000ca";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/evidence")
        .join(name)
}

fn pipeline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chrono-pipeline"))
        .args(args)
        .output()
        .unwrap()
}

fn ids() -> Vec<&'static str> {
    vec!["--evidence-id", EVIDENCE, "--case-id", CASE]
}

fn zip_evidence(dir: &Path) -> PathBuf {
    let path = dir.join("collection.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    for name in ["auth.log", "new-user-security.evtx", "cloudtrail.json"] {
        w.start_file(format!("host1/{name}"), opts).unwrap();
        w.write_all(&std::fs::read(fixture(name)).unwrap()).unwrap();
    }
    w.finish().unwrap();
    path
}

#[test]
fn split_then_parse_every_part_accounts_for_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let evidence = zip_evidence(dir.path());
    let out = dir.path().join("artifacts");
    let (input, output) = (evidence.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["split"];
    args.extend(ids());
    args.extend([
        "--input",
        input,
        "--output",
        output,
        "--reference-time",
        "2024-01-02T00:00:00Z",
    ]);
    let split = pipeline(&args);
    assert!(
        split.status.success(),
        "{}",
        String::from_utf8_lossy(&split.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let stdout: Value = serde_json::from_slice(&split.stdout).unwrap();
    assert_eq!(stdout, manifest);
    let parts = manifest["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);

    let (mut events, mut bad) = (0, 0);
    for part in parts {
        let key = part["key"].as_str().unwrap();
        let part_path = out.join(key);
        assert!(part_path.exists(), "split wrote {key}");
        let mut args = vec!["parse"];
        args.extend(ids());
        args.extend([
            "--part",
            part_path.to_str().unwrap(),
            "--input",
            input,
            "--output",
            output,
        ]);
        let parse = pipeline(&args);
        assert!(
            parse.status.success(),
            "{}",
            String::from_utf8_lossy(&parse.stderr)
        );
        let id = part["id"].as_str().unwrap();
        let summary: Value = serde_json::from_slice(
            &std::fs::read(out.join(format!("events/{id}.summary.json"))).unwrap(),
        )
        .unwrap();
        let gz = std::fs::File::open(out.join(format!("events/{id}.jsonl.gz"))).unwrap();
        let lines: Vec<Value> = BufReader::new(GzDecoder::new(gz))
            .lines()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect();
        assert_eq!(
            summary["events"].as_u64().unwrap(),
            lines.len() as u64,
            "{id}"
        );
        // What `upload` will do: stream the events back as typed values.
        let gz = std::fs::File::open(out.join(format!("events/{id}.jsonl.gz"))).unwrap();
        let typed: Vec<NormalizedEvent> = serde_json::Deserializer::from_reader(GzDecoder::new(gz))
            .into_iter::<NormalizedEvent>()
            .map(Result::unwrap)
            .collect();
        assert_eq!(typed.len(), lines.len());
        assert!(
            typed
                .iter()
                .all(|e| !e.dedup_key.is_empty() && !e.attributes.as_str().is_empty())
        );
        assert_eq!(
            summary["records_seen"].as_u64().unwrap(),
            summary["events"].as_u64().unwrap() + summary["bad_records"].as_u64().unwrap()
        );
        for line in &lines {
            assert_eq!(line["provenance"]["evidence_id"], EVIDENCE);
            assert_eq!(line["provenance"]["member"], part["member"]);
        }
        events += lines.len();
        bad += summary["bad_records"].as_u64().unwrap();
    }
    // auth.log: 15 events + 1 bad line; the EVTX: 4 records; CloudTrail: 14 records.
    assert_eq!((events, bad), (15 + 4 + 14, 1));
    let leftovers: Vec<_> = std::fs::read_dir(out.join("events"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no half-written files are left behind"
    );
}

#[test]
fn an_unknown_file_fails_split_with_exit_65_and_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.txt");
    std::fs::write(&input, "meeting notes\nnothing to see\n").unwrap();
    let mut args = vec!["split"];
    args.extend(ids());
    let (i, o) = (
        input.to_str().unwrap().to_owned(),
        dir.path().join("out").to_str().unwrap().to_owned(),
    );
    args.extend(["--input", &i, "--output", &o]);
    let out = pipeline(&args);
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notes.txt: unknown evidence format"),
        "{stderr}"
    );
}

#[test]
fn a_part_of_another_evidence_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("part.json");
    std::fs::write(
        &part,
        r#"{"id":"part-00001","key":"parts/part-00001.json","evidence_id":"00000000-0000-4000-8000-000000000099",
            "source":"x","member":"x","format":"syslog"}"#,
    )
    .unwrap();
    let mut args = vec!["parse"];
    args.extend(ids());
    let (p, i) = (
        part.to_str().unwrap().to_owned(),
        fixture("auth.log").to_str().unwrap().to_owned(),
    );
    let o = dir.path().to_str().unwrap().to_owned();
    args.extend(["--part", &p, "--input", &i, "--output", &o]);
    let out = pipeline(&args);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("belongs to evidence"));
}

#[test]
fn s3_mode_without_its_buckets_exits_with_a_config_error_naming_the_variable() {
    for step in ["split", "upload"] {
        let mut args = vec![step];
        args.extend(ids());
        if step == "upload" {
            args.extend(["--part", "evidence/x/parts/part-00001.json"]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_chrono-pipeline"))
            .args(&args)
            .env_remove("CHRONO_SOURCES_BUCKET")
            .env_remove("CHRONO_ARTIFACTS_BUCKET")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{step}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("set CHRONO_SOURCES_BUCKET"));
    }
}

#[test]
fn a_pretty_printed_record_stays_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let record = serde_json::json!({"Records": [{
        "eventTime": "2024-03-01T10:00:00Z", "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin", "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": {"type": "IAMUser", "userName": "alice",
                         "arn": "arn:aws:iam::111122223333:user/alice"},
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"note": "two\nlines"}
    }]});
    let input = dir.path().join("pretty.json");
    std::fs::write(&input, serde_json::to_string_pretty(&record).unwrap()).unwrap();
    let out = dir.path().join("out");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["split"];
    args.extend(ids());
    args.extend(["--input", i, "--output", o]);
    assert!(pipeline(&args).status.success());
    let part = out.join("parts/part-00001.json");
    let mut args = vec!["parse"];
    args.extend(ids());
    args.extend([
        "--part",
        part.to_str().unwrap(),
        "--input",
        i,
        "--output",
        o,
    ]);
    let parse = pipeline(&args);
    assert!(
        parse.status.success(),
        "{}",
        String::from_utf8_lossy(&parse.stderr)
    );
    let gz = std::fs::File::open(out.join("events/part-00001.jsonl.gz")).unwrap();
    let lines: Vec<String> = BufReader::new(GzDecoder::new(gz))
        .lines()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let event: NormalizedEvent = serde_json::from_str(&lines[0]).unwrap();
    // The record itself is unchanged, escaped newline in a string included.
    assert_eq!(event.attributes.to_value(), record["Records"][0]);
}
