//! The pipeline's parsers on real and written evidence: exact counts, the bad-chunk
//! sample, attribute round-trips, and each mapped action.

use chrono::{DateTime, TimeZone, Utc};
use chrono_runtime::pipeline::event::IdentityKind;
use chrono_runtime::pipeline::steps::{parse_to_writer, split};
use chrono_runtime::pipeline::{
    CollectSink, Format, NormalizedEvent, ParseOptions, PartsManifest, PipelineError, SplitOptions,
    parse_evidence,
};
use chrono_runtime::vocab::{Action, Outcome};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Write};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/evidence")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn reference() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 2, 12, 0, 0).unwrap()
}

fn run_bytes(
    name: &str,
    bytes: Vec<u8>,
    chunks_per_part: u64,
) -> Result<(PartsManifest, CollectSink), PipelineError> {
    let mut opts = SplitOptions::new(name);
    opts.reference_time = Some(reference());
    opts.evtx_chunks_per_part = chunks_per_part;
    let mut sink = CollectSink::new(1000);
    let manifest = parse_evidence(
        Cursor::new(bytes),
        &opts,
        &ParseOptions::default(),
        &mut sink,
    )?;
    Ok((manifest, sink))
}

fn run(name: &str) -> (PartsManifest, CollectSink) {
    run_bytes(name, read(name), 256).unwrap()
}

/// What the evtx crate itself iterates: (records, errors, event ids of the records).
fn crate_iteration(name: &str) -> (u64, u64, Vec<u64>) {
    let mut parser = evtx::EvtxParser::from_path(fixture(name)).unwrap();
    let (mut ok, mut err, mut ids) = (0, 0, Vec::new());
    for record in parser.records_json_value() {
        match record {
            Ok(r) => {
                ok += 1;
                let id = &r.data["Event"]["System"]["EventID"];
                let id = id.as_u64().or_else(|| id["#text"].as_u64()).unwrap();
                ids.push(id);
            }
            Err(_) => err += 1,
        }
    }
    (ok, err, ids)
}

fn count_actions(events: &[NormalizedEvent]) -> BTreeMap<(Action, Outcome), usize> {
    let mut m = BTreeMap::new();
    for e in events {
        if let Some(a) = e.action {
            *m.entry((a, e.outcome.unwrap())).or_default() += 1;
        }
    }
    m
}

#[test]
fn evtx_event_counts_equal_what_the_evtx_crate_iterates() {
    for name in [
        "security.evtx",
        "sysmon.evtx",
        "new-user-security.evtx",
        "sample_with_a_bad_chunk_magic.evtx",
    ] {
        let (ok, err, _) = crate_iteration(name);
        let (manifest, sink) = run(name);
        assert_eq!(manifest.format, Format::Evtx, "{name}");
        assert_eq!(sink.tally.events, ok, "{name}: events");
        assert_eq!(sink.tally.bad_records, err, "{name}: bad records");
        assert_eq!(sink.tally.records_seen, ok + err, "{name}: records seen");
        assert_eq!(sink.events.len() as u64, ok);
        assert!(ok > 0, "{name} has records");
    }
}

/// The parse step compresses on a thread of its own: its output is one gzip stream of
/// every event, and a writer that fails (disk full) fails the step with that error, once
/// the blocks stop being taken, instead of hanging.
#[test]
fn the_parse_step_writes_every_event_and_reports_a_failing_writer() {
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!(
            "Mar  3 10:{:02}:{:02} web{} sshd[42]: Failed password for user{i} from 10.0.0.{} port 22 ssh2\n",
            i / 60 % 60,
            i % 60,
            i % 7,
            i % 250
        ));
    }
    let mut opts = SplitOptions::new("auth.log");
    opts.reference_time = Some(reference());
    let manifest = split(Cursor::new(text.as_bytes()), &opts).unwrap();
    let part = &manifest.parts[0];
    let mut gz = Vec::new();
    let summary = parse_to_writer(
        Cursor::new(text.as_bytes()),
        part,
        &ParseOptions::default(),
        &mut gz,
    )
    .unwrap();
    assert_eq!(summary.tally.events, 20_000);
    let mut lines = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut lines).unwrap();
    assert_eq!(lines.lines().count(), 20_000);
    assert!(lines.lines().last().unwrap().contains("user19999"));

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("no space left on the test device"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let err = parse_to_writer(
        Cursor::new(text.as_bytes()),
        part,
        &ParseOptions::default(),
        Full,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no space left on the test device"),
        "{err}"
    );
    assert!(err.is_retryable());
}

/// Each event carries the record's written time and id as the crate's own per-record API
/// gives them, and the full rendered record; one worker thread or several, the same events
/// in the same order.
#[test]
fn evtx_events_match_the_crate_s_records_with_any_number_of_threads() {
    for name in ["security.evtx", "sample_with_a_bad_chunk_magic.evtx"] {
        let mut parser = evtx::EvtxParser::from_path(fixture(name)).unwrap();
        let want: Vec<(u64, i64, Value)> = parser
            .records_json_value()
            .filter_map(Result::ok)
            .map(|r| (r.event_record_id, r.timestamp.as_microsecond(), r.data))
            .collect();
        let mut runs = Vec::new();
        for threads in [1, 3] {
            let opts = SplitOptions::new(name);
            let mut sink = CollectSink::new(1000);
            parse_evidence(
                Cursor::new(read(name)),
                &opts,
                &ParseOptions {
                    threads,
                    ..ParseOptions::default()
                },
                &mut sink,
            )
            .unwrap();
            let got: Vec<(u64, i64, Value)> = sink
                .events
                .iter()
                .map(|e| {
                    (
                        e.provenance.record,
                        e.ts.timestamp_micros(),
                        e.attributes.to_value(),
                    )
                })
                .collect();
            assert_eq!(got.len(), want.len(), "{name}, {threads} threads");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g, w, "{name}, {threads} threads");
            }
            runs.push((sink.tally, sink.events));
        }
        assert_eq!(runs[0], runs[1], "{name}: 1 thread and 3 threads");
    }
}

#[test]
fn bad_chunk_sample_keeps_its_good_records_and_reports_the_bad_chunks() {
    let (ok, _, _) = crate_iteration("sample_with_a_bad_chunk_magic.evtx");
    let (_, sink) = run("sample_with_a_bad_chunk_magic.evtx");
    assert_eq!(sink.tally.events, ok);
    let chunks: Vec<u64> = sink
        .tally
        .errors
        .iter()
        .filter_map(|e| e.location.chunk)
        .collect();
    assert!(
        chunks.contains(&6) && chunks.contains(&10),
        "bad chunks reported: {:?}",
        sink.tally.errors
    );
    let bad_magic = sink
        .tally
        .errors
        .iter()
        .find(|e| e.location.chunk == Some(6))
        .unwrap();
    assert!(
        bad_magic.reason.contains("chunk 6 cannot be read"),
        "{}",
        bad_magic.reason
    );
    assert_eq!(bad_magic.location.offset, Some(4096 + 6 * 65536));
    assert_eq!(
        bad_magic.location.member,
        "sample_with_a_bad_chunk_magic.evtx"
    );
    assert!(sink.events.iter().all(|e| e.parser == "winevtx"));
}

#[test]
fn a_truncated_evtx_reports_its_partial_last_chunk() {
    let mut bytes = read("security.evtx");
    bytes.truncate(bytes.len() - 1000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.evtx");
    std::fs::write(&path, &bytes).unwrap();
    let mut parser = evtx::EvtxParser::from_path(&path).unwrap();
    let (ok, err) =
        parser.records_json_value().fold(
            (0, 0),
            |(o, e), r| if r.is_ok() { (o + 1, e) } else { (o, e + 1) },
        );
    for chunks_per_part in [256, 4] {
        let (_, sink) = run_bytes("cut.evtx", bytes.clone(), chunks_per_part).unwrap();
        assert_eq!(
            sink.tally.events, ok,
            "the records of whole chunks are all kept"
        );
        assert_eq!(
            sink.tally.bad_records,
            err + 1,
            "the cut chunk is reported once"
        );
        let last = sink
            .tally
            .errors
            .iter()
            .find(|e| e.reason.contains("partial chunk"))
            .unwrap();
        assert_eq!(last.location.chunk, Some(32));
    }
}

#[test]
fn evtx_split_into_chunk_ranges_yields_the_same_records_in_the_same_order() {
    for name in [
        "security.evtx",
        "sample_with_a_bad_chunk_magic.evtx",
        "sysmon.evtx",
    ] {
        let (whole_manifest, whole) = run(name);
        assert_eq!(whole_manifest.parts.len(), 1);
        let (manifest, parts) = run_bytes(name, read(name), 2).unwrap();
        assert!(manifest.parts.len() > 1, "{name} is cut into parts");
        assert!(manifest.parts.iter().all(|p| p.chunks.is_some()));
        assert_eq!(parts.tally.events, whole.tally.events, "{name}");
        assert_eq!(parts.tally.bad_records, whole.tally.bad_records, "{name}");
        let keys = |s: &CollectSink| {
            s.events
                .iter()
                .map(|e| e.dedup_key.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(&parts),
            keys(&whole),
            "{name}: same records, same order"
        );
        let mut bad_whole: Vec<_> = whole
            .tally
            .errors
            .iter()
            .map(|e| e.location.chunk)
            .collect();
        let mut bad_parts: Vec<_> = parts
            .tally
            .errors
            .iter()
            .map(|e| e.location.chunk)
            .collect();
        bad_whole.sort();
        bad_parts.sort();
        assert_eq!(
            bad_parts, bad_whole,
            "{name}: bad chunks located in the original file"
        );
    }
}

#[test]
fn security_log_actions_follow_the_event_ids() {
    let (_, _, ids) = crate_iteration("security.evtx");
    let (_, sink) = run("security.evtx");
    let n = |pred: &dyn Fn(u64) -> bool| ids.iter().filter(|i| pred(**i)).count();
    let actions = count_actions(&sink.events);
    let got = |a: Action| {
        actions
            .iter()
            .filter(|((x, _), _)| *x == a)
            .map(|(_, c)| c)
            .sum::<usize>()
    };
    assert_eq!(got(Action::Logon), n(&|i| i == 4624 || i == 4625));
    assert_eq!(got(Action::Logoff), n(&|i| i == 4634 || i == 4647));
    assert_eq!(got(Action::ExplicitCredentials), n(&|i| i == 4648));
    assert_eq!(got(Action::SpecialPrivileges), n(&|i| i == 4672));
    assert_eq!(got(Action::AccountCreated), n(&|i| i == 4720));
    assert_eq!(got(Action::AccountEnabled), n(&|i| i == 4722));
    assert_eq!(got(Action::PasswordChange), n(&|i| i == 4723));
    assert_eq!(got(Action::PasswordReset), n(&|i| i == 4724));
    assert_eq!(
        got(Action::GroupChanged),
        n(&|i| (4727..=4737).contains(&i))
    );
    assert_eq!(got(Action::AccountChanged), n(&|i| i == 4738));
    assert!(got(Action::Logon) > 0 && got(Action::AccountCreated) > 0);

    let logon = sink
        .events
        .iter()
        .find(|e| e.event_code.as_deref() == Some("4624") && e.identity.is_some())
        .unwrap();
    assert_eq!(logon.data_type, "windows:evtx:record");
    assert_eq!(logon.source, "Security");
    assert_eq!(
        logon.device.as_deref(),
        logon.attributes.to_value()["Event"]["System"]["Computer"].as_str()
    );
    assert!(logon.device.is_some());
    assert_eq!(
        logon.attributes.to_value()["Event"]["System"]["EventID"],
        4624,
        "full record kept"
    );
    let system_logon = sink
        .events
        .iter()
        .find(|e| {
            e.event_code.as_deref() == Some("4624")
                && e.attributes.to_value()["Event"]["EventData"]["TargetUserSid"] == "S-1-5-18"
        })
        .unwrap();
    assert_eq!(
        system_logon.identity, None,
        "SYSTEM logons are not identities"
    );
    for e in &sink.events {
        assert_eq!(e.provenance.member, "security.evtx");
        assert_eq!(
            Some(e.provenance.record),
            e.attributes.to_value()["Event"]["System"]["EventRecordID"].as_u64()
        );
    }
}

#[test]
fn sysmon_process_and_network_events_are_mapped() {
    let (_, _, ids) = crate_iteration("sysmon.evtx");
    let (_, sink) = run("sysmon.evtx");
    let actions = count_actions(&sink.events);
    assert_eq!(
        actions[&(Action::ProcessStart, Outcome::Success)],
        ids.iter().filter(|i| **i == 1).count()
    );
    assert_eq!(
        actions[&(Action::NetworkConnection, Outcome::Success)],
        ids.iter().filter(|i| **i == 3).count()
    );
    let net = sink
        .events
        .iter()
        .find(|e| e.action == Some(Action::NetworkConnection))
        .unwrap();
    assert!(
        net.src_ip.is_some() && net.dst_ip.is_some(),
        "{:?}",
        net.attributes.to_value()["Event"]["EventData"]
    );
}

#[test]
fn new_user_log_names_the_created_account() {
    let (_, sink) = run("new-user-security.evtx");
    let created = sink
        .events
        .iter()
        .find(|e| e.action == Some(Action::AccountCreated))
        .unwrap();
    let attrs = created.attributes.to_value();
    let data = &attrs["Event"]["EventData"];
    let identity = created.identity.as_ref().unwrap();
    assert_eq!(identity.kind, IdentityKind::User);
    assert_eq!(
        identity.value,
        format!(
            "{}\\{}",
            data["TargetDomainName"].as_str().unwrap(),
            data["TargetUserName"].as_str().unwrap()
        )
    );
}

fn csv_rows(name: &str) -> Vec<Map<String, Value>> {
    let mut reader = csv::Reader::from_path(fixture(name)).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), Value::String(v.to_owned())))
                .collect()
        })
        .collect()
}

#[test]
fn timesketch_csv_round_trips_every_column_as_attributes() {
    for name in ["sigma_events.csv", "validate_time_precision.csv"] {
        let rows = csv_rows(name);
        let (manifest, sink) = run(name);
        assert_eq!(manifest.parts[0].format, Format::TimesketchCsv);
        assert_eq!(sink.tally.events as usize, rows.len(), "{name}");
        assert_eq!(sink.tally.bad_records, 0);
        for (event, row) in sink.events.iter().zip(&rows) {
            assert_eq!(
                event.attributes.to_value(),
                Value::Object(row.clone()),
                "{name}"
            );
            assert_eq!(event.message, row["message"].as_str().unwrap());
            assert_eq!(
                event.timestamp_desc,
                row["timestamp_desc"].as_str().unwrap()
            );
            assert_eq!(event.parser, "timesketch_csv");
        }
    }
}

#[test]
fn timesketch_datetime_wins_over_timestamp() {
    let (_, sink) = run("validate_time_precision.csv");
    let ts: Vec<String> = sink.events.iter().map(|e| e.ts.to_rfc3339()).collect();
    assert_eq!(
        ts,
        [
            "2024-07-24T10:57:02.877297+00:00",
            "2015-07-24T19:01:01+00:00"
        ]
    );
    let (_, sink) = run("sigma_events.csv");
    assert_eq!(sink.events[0].ts.timestamp_micros(), 1437764461000000);
    assert_eq!(sink.events[3].data_type, "apt:history:line");
}

#[test]
fn timesketch_jsonl_round_trips_every_field_as_attributes() {
    let text = String::from_utf8(read("sigma_events.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (manifest, sink) = run("sigma_events.jsonl");
    assert_eq!(manifest.parts[0].format, Format::TimesketchJsonl);
    assert_eq!(sink.tally.events as usize, lines.len());
    let raw_lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for ((event, line), raw) in sink.events.iter().zip(&lines).zip(&raw_lines) {
        assert_eq!(&event.attributes.to_value(), line);
        assert_eq!(event.attributes.as_str(), raw.trim(), "kept verbatim");
    }
    let evtx_record = sink.events.last().unwrap();
    assert_eq!(evtx_record.device.as_deref(), Some("DESKTOP-B0TAAAA"));
    assert_eq!(evtx_record.event_code.as_deref(), Some("11"));
    assert_eq!(
        evtx_record.provenance.origin.as_deref(),
        Some("OS:/data/input/Microsoft-Windows-Sysmon%4Operational.evtx")
    );
    assert_eq!(
        evtx_record.ts.to_rfc3339(),
        "2022-01-22T23:07:43.502205+00:00"
    );
}

fn by_line(sink: &CollectSink) -> BTreeMap<u64, &NormalizedEvent> {
    sink.events
        .iter()
        .map(|e| (e.provenance.record, e))
        .collect()
}

#[test]
fn syslog_rfc3164_lines_map_each_linux_action() {
    let (manifest, sink) = run("auth.log");
    assert_eq!(manifest.parts[0].format, Format::Syslog);
    // 16 non-blank lines: 15 syslog lines and one that is not syslog.
    assert_eq!(
        (
            sink.tally.records_seen,
            sink.tally.events,
            sink.tally.bad_records
        ),
        (16, 15, 1)
    );
    assert_eq!(sink.tally.errors[0].location.line, Some(16));
    let e = by_line(&sink);
    let check = |line: u64, action: Action, outcome: Outcome, identity: Option<&str>| {
        let ev = e[&line];
        assert_eq!(
            (ev.action, ev.outcome),
            (Some(action), Some(outcome)),
            "line {line}: {}",
            ev.message
        );
        assert_eq!(
            ev.identity.as_ref().map(|i| i.value.as_str()),
            identity,
            "line {line}"
        );
        assert_eq!(ev.device.as_deref(), Some("web01"));
    };
    check(1, Action::Logon, Outcome::Success, Some("alice"));
    check(2, Action::Logon, Outcome::Failure, Some("root"));
    check(3, Action::Logon, Outcome::Failure, None);
    check(4, Action::Logon, Outcome::Failure, None);
    check(5, Action::Logoff, Outcome::Success, Some("alice"));
    check(
        6,
        Action::PrivilegeEscalation,
        Outcome::Success,
        Some("alice"),
    );
    check(
        7,
        Action::PrivilegeEscalation,
        Outcome::Failure,
        Some("mallory"),
    );
    check(
        8,
        Action::PrivilegeEscalation,
        Outcome::Success,
        Some("alice"),
    );
    check(
        9,
        Action::PrivilegeEscalation,
        Outcome::Failure,
        Some("bob"),
    );
    check(
        10,
        Action::AccountCreated,
        Outcome::Success,
        Some("backdoor"),
    );
    check(
        11,
        Action::PasswordChange,
        Outcome::Success,
        Some("backdoor"),
    );
    check(
        12,
        Action::AccountChanged,
        Outcome::Success,
        Some("backdoor"),
    );
    check(
        13,
        Action::AccountDeleted,
        Outcome::Success,
        Some("olduser"),
    );
    assert_eq!(e[&14].action, None);
    assert_eq!(e[&1].src_ip, Some("10.0.0.5".parse().unwrap()));
    assert_eq!(e[&3].attributes.to_value()["user"], "oracle");
    assert_eq!(
        e[&1].ts.to_rfc3339(),
        "2023-12-31T23:58:01+00:00",
        "december goes to the year before the reference"
    );
    assert_eq!(e[&3].ts.to_rfc3339(), "2024-01-01T00:00:03+00:00");
    let raw = read("auth.log");
    assert_eq!(
        e[&1].attributes.to_value()["line"],
        std::str::from_utf8(&raw).unwrap().lines().next().unwrap()
    );
    assert_eq!(e[&1].parser, "syslog_rfc3164");
    assert_eq!(e[&1].source, "sshd");
}

#[test]
fn syslog_rfc3164_without_a_reference_time_is_never_dated_now() {
    let mut sink = CollectSink::new(100);
    let opts = SplitOptions::new("auth.log");
    parse_evidence(
        Cursor::new(read("auth.log")),
        &opts,
        &ParseOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(sink.tally.events, 0);
    assert_eq!(sink.tally.bad_records, 16);
    assert!(
        sink.tally.errors[0].reason.contains("reference time"),
        "{}",
        sink.tally.errors[0].reason
    );
}

#[test]
fn syslog_rfc5424_and_rfc3339_lines_parse_with_their_zones() {
    let (_, sink) = run("syslog5424.log");
    assert_eq!((sink.tally.events, sink.tally.bad_records), (4, 1));
    assert!(sink.tally.errors[0].reason.contains("no timestamp"));
    let e = by_line(&sink);
    assert_eq!(e[&1].ts.to_rfc3339(), "2024-03-01T10:00:00.123456+00:00");
    assert_eq!(
        (e[&1].action, e[&1].outcome),
        (Some(Action::Logon), Some(Outcome::Success))
    );
    assert_eq!(e[&1].parser, "syslog_rfc5424");
    assert_eq!(e[&2].ts.to_rfc3339(), "2024-03-01T09:00:05+00:00");
    assert_eq!(
        e[&2].attributes.to_value()["structured_data"],
        "[origin ip=\"198.51.100.8\"]"
    );
    assert_eq!(e[&3].action, Some(Action::PrivilegeEscalation));
    assert_eq!(e[&5].parser, "syslog_rfc3339");
    assert_eq!(e[&5].src_ip, Some("2001:db8::5".parse().unwrap()));
    assert_eq!(e[&5].identity.as_ref().unwrap().value, "ops");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn cloudtrail_maps_console_logins_iam_and_s3_calls() {
    let raw = read("cloudtrail.json");
    let records: Value = serde_json::from_slice(&raw).unwrap();
    let records = records["Records"].as_array().unwrap();
    for (name, bytes) in [
        ("cloudtrail.json", raw.clone()),
        ("cloudtrail.json.gz", gzip(&raw)),
    ] {
        let (manifest, sink) = run_bytes(name, bytes, 256).unwrap();
        assert_eq!(manifest.parts[0].format, Format::CloudTrail, "{name}");
        assert_eq!(manifest.parts[0].gzip, name.ends_with(".gz"));
        assert_eq!(sink.tally.events as usize, records.len(), "{name}");
        for (event, record) in sink.events.iter().zip(records) {
            assert_eq!(&event.attributes.to_value(), record);
        }
        let by_name: BTreeMap<&str, &NormalizedEvent> = sink
            .events
            .iter()
            .map(|e| (e.event_code.as_deref().unwrap(), e))
            .collect();
        let expect = [
            ("CreateUser", Action::AccountCreated, Outcome::Success),
            ("UpdateUser", Action::AccountChanged, Outcome::Success),
            ("DeleteUser", Action::AccountDeleted, Outcome::Success),
            (
                "UpdateLoginProfile",
                Action::PasswordChange,
                Outcome::Success,
            ),
            ("ChangePassword", Action::PasswordChange, Outcome::Success),
            (
                "CreateAccessKey",
                Action::AccessKeyCreated,
                Outcome::Success,
            ),
            ("AttachUserPolicy", Action::PolicyChanged, Outcome::Success),
            ("AddUserToGroup", Action::GroupChanged, Outcome::Success),
            ("GetObject", Action::ObjectRead, Outcome::Success),
            ("PutObject", Action::ObjectWrite, Outcome::Success),
            ("DeleteObject", Action::ObjectDeleted, Outcome::Failure),
            ("DescribeInstances", Action::ApiCall, Outcome::Success),
        ];
        for (code, action, outcome) in expect {
            let e = by_name[code];
            assert_eq!(
                (e.action, e.outcome),
                (Some(action), Some(outcome)),
                "{code}"
            );
        }
        let logins: Vec<_> = sink
            .events
            .iter()
            .filter(|e| e.action == Some(Action::Logon))
            .collect();
        assert_eq!(logins.len(), 2);
        assert_eq!(logins[0].outcome, Some(Outcome::Success));
        assert_eq!(
            logins[0].identity.as_ref().unwrap().value,
            "arn:aws:iam::111122223333:user/admin"
        );
        assert_eq!(logins[0].identity.as_ref().unwrap().kind, IdentityKind::Arn);
        assert_eq!(logins[1].outcome, Some(Outcome::Failure));
        assert_eq!(
            logins[1].identity, None,
            "HIDDEN_DUE_TO_SECURITY_REASONS is no identity"
        );
        assert_eq!(logins[1].src_ip, Some("203.0.113.50".parse().unwrap()));
        assert_eq!(
            by_name["DescribeInstances"].src_ip, None,
            "service host names are not addresses"
        );
        assert_eq!(
            by_name["DeleteObject"].attributes.to_value()["errorCode"],
            "AccessDenied"
        );
    }
}

#[test]
fn cloudtrail_bad_records_are_counted_and_the_good_ones_kept() {
    let (_, sink) = run("cloudtrail_with_bad_records.json");
    assert_eq!((sink.tally.events, sink.tally.bad_records), (2, 2));
    assert_eq!(sink.tally.errors[0].location.record, Some(1));
    assert!(sink.tally.errors[0].reason.contains("eventTime"));
    assert_eq!(sink.tally.errors[1].location.record, Some(2));
    // A truncated document keeps what came before and reports the break.
    let raw = read("cloudtrail.json");
    let cut = raw.len() * 2 / 3;
    let (_, sink) = run_bytes("cut.json", raw[..cut].to_vec(), 256).unwrap();
    assert!(sink.tally.events >= 8, "{:?}", sink.tally);
    assert_eq!(sink.tally.bad_records, 1);
    assert!(sink.tally.errors[0].reason.contains("rest of the file"));
}

#[test]
fn plaso_json_line_reads_nested_date_time_and_pathspec() {
    let (manifest, sink) = run("plaso.jsonl");
    assert_eq!(manifest.parts[0].format, Format::PlasoJsonLine);
    assert_eq!((sink.tally.events, sink.tally.bad_records), (4, 1));
    assert_eq!(sink.tally.errors[0].location.line, Some(4));
    assert!(sink.tally.errors[0].reason.contains("NotSet"));
    let e = by_line(&sink);
    assert_eq!(
        (e[&1].action, e[&1].outcome),
        (Some(Action::Logon), Some(Outcome::Success))
    );
    assert_eq!(e[&1].identity.as_ref().unwrap().value, "CORP\\alice");
    assert_eq!(e[&1].ts.to_rfc3339(), "2022-01-16T15:49:15+00:00");
    assert_eq!(
        e[&1].provenance.origin.as_deref(),
        Some("OS:/cases/ws01.raw > RAW > TSK:/Windows/System32/winevt/Logs/Security.evtx")
    );
    assert_eq!(e[&1].tags, ["logon"]);
    assert_eq!(
        (e[&2].action, e[&2].outcome),
        (Some(Action::Logon), Some(Outcome::Failure))
    );
    assert_eq!(e[&2].identity.as_ref().unwrap().value, "root");
    assert_eq!(e[&2].ts.to_rfc3339(), "2022-01-22T23:07:43+00:00");
    assert_eq!(e[&3].identity, None, "'-' is no identity");
    assert_eq!(e[&5].action, Some(Action::ServiceInstalled));
    assert_eq!(e[&5].ts.timestamp_micros(), 1642892863502205);
}

fn zip_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.add_directory("logs/", opts).unwrap();
    for (name, bytes) in members {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn zip_members_are_detected_by_content_and_processed_one_by_one() {
    let archive = zip_of(&[
        ("logs/auth.log", read("auth.log")),
        ("logs/trail.bin", gzip(&read("cloudtrail.json"))),
        (
            "logs/Security.evtx.gz",
            gzip(&read("new-user-security.evtx")),
        ),
        ("logs/sysmon.dat", read("sysmon.evtx")),
        ("README.txt", b"collected by the IR team\n".to_vec()),
        ("empty.log", Vec::new()),
    ]);
    let (manifest, sink) = run_bytes("collection.zip", archive, 256).unwrap();
    assert_eq!(manifest.format, Format::Zip);
    let formats: Vec<(String, Format, bool)> = manifest
        .parts
        .iter()
        .map(|p| (p.member.clone(), p.format, p.gzip))
        .collect();
    assert_eq!(
        formats,
        [
            ("logs/auth.log".into(), Format::Syslog, false),
            ("logs/trail.bin".into(), Format::CloudTrail, true),
            ("logs/Security.evtx.gz".into(), Format::Evtx, true),
            ("logs/sysmon.dat".into(), Format::Evtx, false),
        ]
    );
    let skipped: Vec<&str> = manifest.skipped.iter().map(|s| s.member.as_str()).collect();
    assert_eq!(skipped, ["README.txt", "empty.log"]);
    assert!(manifest.skipped[0].reason.contains("unknown format"));
    let (ok_new, _, _) = crate_iteration("new-user-security.evtx");
    let (ok_sysmon, err_sysmon, _) = crate_iteration("sysmon.evtx");
    assert_eq!(sink.tally.events, 15 + 14 + ok_new + ok_sysmon);
    assert_eq!(sink.tally.bad_records, 1 + err_sysmon);
    assert!(sink.tally.is_balanced());
    let members: HashSet<&str> = sink
        .events
        .iter()
        .map(|e| e.provenance.member.as_str())
        .collect();
    assert_eq!(members.len(), 4);
}

#[test]
fn an_archive_with_nothing_readable_fails_with_its_reasons() {
    let archive = zip_of(&[("notes.txt", b"hello\n".to_vec())]);
    let err = run_bytes("junk.zip", archive, 256).unwrap_err();
    assert!(
        matches!(err, PipelineError::EmptyArchive { skipped: 1, .. }),
        "{err}"
    );
}

#[test]
fn unknown_and_empty_files_fail_with_a_clear_reason() {
    let mut tar = vec![0u8; 1024];
    tar[..9].copy_from_slice(b"notes.txt");
    tar[257..262].copy_from_slice(b"ustar");
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "notes.txt",
            b"just some notes\nnothing else\n".to_vec(),
            "no syslog",
        ),
        ("empty.log", Vec::new(), "empty"),
        ("blob.bin", b"\x00\x01\x02\x03binary".to_vec(), "binary"),
        ("archive.tar", tar, "tar archive"),
        ("export.csv", b"\xff\xfem\x00e\x00".to_vec(), "utf-16"),
    ];
    for (name, bytes, why) in cases {
        let err = run_bytes(name, bytes, 256).unwrap_err();
        assert!(
            matches!(err, PipelineError::UnknownFormat { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(why), "{name}: {err}");
        assert!(!err.is_retryable());
        assert_eq!(err.exit_code(), 65);
    }
}

#[test]
fn a_truncated_gzip_keeps_the_lines_before_the_break() {
    let full = gzip(&read("auth.log"));
    let cut = full[..full.len() - 30].to_vec();
    let (_, sink) = run_bytes("auth.log.gz", cut, 256).unwrap();
    assert!(sink.tally.events > 0);
    let last = sink.tally.errors.last().unwrap();
    assert!(last.reason.contains("corrupt data"), "{last}");
    assert!(sink.tally.is_balanced());
}

#[test]
fn reprocessing_gives_the_same_unique_dedup_keys() {
    for name in [
        "security.evtx",
        "auth.log",
        "cloudtrail.json",
        "plaso.jsonl",
        "sigma_events.csv",
    ] {
        let (_, a) = run(name);
        let (_, b) = run(name);
        let keys_a: Vec<&str> = a.events.iter().map(|e| e.dedup_key.as_str()).collect();
        let keys_b: Vec<&str> = b.events.iter().map(|e| e.dedup_key.as_str()).collect();
        assert_eq!(keys_a, keys_b, "{name}");
        let unique: HashSet<&str> = keys_a.iter().copied().collect();
        assert_eq!(
            unique.len(),
            keys_a.len(),
            "{name}: keys unique within the evidence"
        );
    }
}

#[test]
fn normalized_events_serialize_and_read_back() {
    let (_, sink) = run("auth.log");
    for e in &sink.events {
        let json = serde_json::to_string(e).unwrap();
        let back: NormalizedEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, e);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
    }
    let v = serde_json::to_value(&sink.events[0]).unwrap();
    assert_eq!(v["action"], "logon");
    assert_eq!(v["outcome"], "success");
    assert_eq!(v["identity"]["kind"], "user");
}
