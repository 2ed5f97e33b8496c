//! The pipeline end to end against real services: evidence in S3 (the moto server from
//! `.venv`, `make venv`), events in PostgreSQL (`tests/with-postgres.sh`, a fresh database
//! per test). Exact counts per fixture, re-processing changes nothing, the bad-chunk
//! sample keeps its good records, unknown files fail the evidence with the reason, and the
//! steps run one by one as the state machine runs them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use chrono_runtime::launcher::{LocalLauncher, PipelineJob, PipelineLauncher};
use chrono_runtime::pipeline::failure::{self, Caught, FailEvidence};
use chrono_runtime::pipeline::jobs::{self, Buckets, StepError};
use chrono_runtime::pipeline::upload::Target;
use chrono_runtime::pipeline::worker::LocalWorker;
use chrono_runtime::pipeline::{
    CollectSink, ParseOptions, PipelineError, SplitOptions, parse_evidence,
};
use chrono_runtime::storage::source_key;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// The emulator with the `sources` and `artifacts` buckets.
struct Moto(chrono_tests::moto::Moto);

impl Moto {
    fn start() -> Moto {
        Moto(chrono_tests::moto::Moto::start().expect("moto"))
    }

    async fn s3(&self) -> Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .endpoint_url(self.0.endpoint())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .force_path_style(true)
            .build();
        let s3 = Client::from_conf(conf);
        for bucket in ["sources", "artifacts"] {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        s3
    }
}

fn buckets() -> Buckets {
    Buckets {
        sources: "sources".into(),
        artifacts: "artifacts".into(),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/evidence")
            .join(name),
    )
    .unwrap()
}

async fn new_case(pool: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, 'Upload case', 'tester')")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    id
}

/// Registers an evidence and puts its file into the sources bucket, as the API and the
/// investigator's browser do.
async fn new_evidence(
    pool: &PgPool,
    s3: &Client,
    case_id: Uuid,
    name: &str,
    bytes: Vec<u8>,
) -> PipelineJob {
    let evidence_id = Uuid::now_v7();
    let key = source_key(case_id, evidence_id, name);
    sqlx::query(
        "INSERT INTO evidence (id, case_id, file_name, source_key, created_by, state)
         VALUES ($1, $2, $3, $4, 'tester', 'processing')",
    )
    .bind(evidence_id)
    .bind(case_id)
    .bind(name)
    .bind(&key)
    .execute(pool)
    .await
    .unwrap();
    s3.put_object()
        .bucket("sources")
        .key(&key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
    PipelineJob {
        case_id,
        evidence_id,
        source_key: key,
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Counts {
    state: String,
    records_seen: i64,
    events_count: i64,
    bad_records: i64,
    devices_count: i64,
    identities_count: i64,
    rows: i64,
}

async fn counts(pool: &PgPool, evidence_id: Uuid) -> Counts {
    let (state, records_seen, events_count, bad_records, devices_count, identities_count): (
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        "SELECT state, records_seen, events_count, bad_records, devices_count, identities_count
         FROM evidence WHERE id = $1",
    )
    .bind(evidence_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM events WHERE evidence_id = $1")
        .bind(evidence_id)
        .fetch_one(pool)
        .await
        .unwrap();
    Counts {
        state,
        records_seen,
        events_count,
        bad_records,
        devices_count,
        identities_count,
        rows,
    }
}

/// The same evidence parsed in-process, without S3 or the database.
fn expected(name: &str, bytes: Vec<u8>) -> CollectSink {
    let mut sink = CollectSink::new(1000);
    let mut opts = SplitOptions::new(name);
    opts.reference_time = Some(chrono::Utc::now());
    parse_evidence(
        std::io::Cursor::new(bytes),
        &opts,
        &ParseOptions::default(),
        &mut sink,
    )
    .unwrap();
    sink
}

/// What the evtx crate itself iterates: (records, errors).
fn evtx_crate_counts(name: &str) -> (i64, i64) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/evidence")
        .join(name);
    let mut parser = evtx::EvtxParser::from_path(path).unwrap();
    let (mut ok, mut err) = (0, 0);
    for r in parser.records() {
        match r {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    (ok, err)
}

const FIXTURES: [&str; 12] = [
    "auth.log",
    "cloudtrail.json",
    "cloudtrail_with_bad_records.json",
    "new-user-security.evtx",
    "plaso.jsonl",
    "sample_with_a_bad_chunk_magic.evtx",
    "security.evtx",
    "sigma_events.csv",
    "sigma_events.jsonl",
    "syslog5424.log",
    "sysmon.evtx",
    "validate_time_precision.csv",
];

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn every_fixture_uploads_exactly_its_records_and_a_rerun_adds_nothing(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let worker = LocalWorker::new(s3.clone(), pool.clone(), buckets());
    let case_id = new_case(&pool).await;
    for name in FIXTURES {
        let want = expected(name, fixture(name));
        let job = new_evidence(&pool, &s3, case_id, name, fixture(name)).await;
        let done = worker
            .process(&job)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(done.state, "done", "{name}");
        assert_eq!(done.inserted, want.tally.events, "{name}");
        let devices: std::collections::BTreeSet<_> = want
            .events
            .iter()
            .filter_map(|e| e.device.clone())
            .collect();
        let identities: std::collections::BTreeSet<_> = want
            .events
            .iter()
            .filter_map(|e| e.identity.as_ref().map(|i| (i.kind, i.value.clone())))
            .collect();
        let first = counts(&pool, job.evidence_id).await;
        let events = i64::try_from(want.tally.events).unwrap();
        let bad = i64::try_from(want.tally.bad_records).unwrap();
        assert_eq!(
            first,
            Counts {
                state: "done".into(),
                records_seen: events + bad,
                events_count: events,
                bad_records: bad,
                devices_count: devices.len() as i64,
                identities_count: identities.len() as i64,
                rows: events,
            },
            "{name}"
        );
        assert!(events > 0, "{name} has events");
        if name.ends_with(".evtx") {
            assert_eq!(evtx_crate_counts(name).0, events, "{name}: evtx crate");
        }
        // Every event with a device or identity is linked to its row.
        let (linked_devices, linked_identities): (i64, i64) = sqlx::query_as(
            "SELECT count(device_id), count(identity_id) FROM events WHERE evidence_id = $1",
        )
        .bind(job.evidence_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let with_device = want.events.iter().filter(|e| e.device.is_some()).count();
        let with_identity = want.events.iter().filter(|e| e.identity.is_some()).count();
        assert_eq!(linked_devices, with_device as i64, "{name}");
        assert_eq!(linked_identities, with_identity as i64, "{name}");

        // Re-processing the same evidence inserts nothing and leaves the counts.
        sqlx::query("UPDATE evidence SET state = 'processing' WHERE id = $1")
            .bind(job.evidence_id)
            .execute(&pool)
            .await
            .unwrap();
        let again = worker.process(&job).await.unwrap();
        assert_eq!(again.inserted, 0, "{name}");
        assert_eq!(again.rows, want.tally.events, "{name}");
        assert_eq!(counts(&pool, job.evidence_id).await, first, "{name} re-run");
    }
    // Devices and identities are per case: a second evidence naming the same host reuses
    // its row.
    let (devices,): (i64,) = sqlx::query_as("SELECT count(*) FROM devices WHERE case_id = $1")
        .bind(case_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let (distinct,): (i64,) =
        sqlx::query_as("SELECT count(DISTINCT name) FROM devices WHERE case_id = $1")
            .bind(case_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(devices, distinct);
    assert!(devices > 0);
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_bad_chunk_sample_keeps_its_good_records_and_reports_the_bad_chunks(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let worker = LocalWorker::new(s3.clone(), pool.clone(), buckets());
    let case_id = new_case(&pool).await;
    let name = "sample_with_a_bad_chunk_magic.evtx";
    let job = new_evidence(&pool, &s3, case_id, name, fixture(name)).await;
    worker.process(&job).await.unwrap();
    let got = counts(&pool, job.evidence_id).await;
    let (ok, _) = evtx_crate_counts(name);
    assert_eq!(got.events_count, ok);
    assert_eq!(got.rows, ok);
    assert!(got.bad_records > 0);
    assert_eq!(got.events_count + got.bad_records, got.records_seen);
    let (errors,): (Value,) = sqlx::query_as("SELECT errors FROM evidence WHERE id = $1")
        .bind(job.evidence_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let records: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["record"].as_str().unwrap())
        .collect();
    assert!(
        records.iter().any(|r| r.contains("chunk 6"))
            && records.iter().any(|r| r.contains("chunk 10")),
        "{errors}"
    );
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn an_unknown_file_fails_the_evidence_with_a_clear_reason(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let worker = LocalWorker::new(s3.clone(), pool.clone(), buckets());
    let case_id = new_case(&pool).await;
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let job = new_evidence(&pool, &s3, case_id, "mystery.bin", bytes).await;
    let err = worker.process(&job).await.unwrap_err();
    assert!(matches!(err, PipelineError::UnknownFormat { .. }), "{err}");
    assert_eq!(err.exit_code(), 65);
    let got = counts(&pool, job.evidence_id).await;
    assert_eq!((got.state.as_str(), got.rows), ("failed", 0));
    let (errors,): (Value,) = sqlx::query_as("SELECT errors FROM evidence WHERE id = $1")
        .bind(job.evidence_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(errors[0]["record"], job.source_key.as_str());
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown evidence format"),
        "{errors}"
    );
}

/// The state machine's failure path on a file no parser knows: `split` fails with exit
/// code 65 and leaves its error (as the binary does on ECS); `FailEvidence` sends the
/// caught failure (ECS's task description as the cause) and the evidence ends `failed`
/// with the split's own message. A retry changes nothing, a later failure (the map) does
/// not replace the first reason, and a launch refused with a plain-text cause fails
/// another evidence with that text.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_failure_path_ends_the_evidence_failed_with_the_failed_step_s_reason(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let case_id = new_case(&pool).await;
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let job = new_evidence(&pool, &s3, case_id, "mystery.bin", bytes).await;
    let target = Target {
        case_id,
        evidence_id: job.evidence_id,
    };
    let err = jobs::split(&s3, &buckets(), target, None, 256)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 65);
    let step_error = StepError {
        step: "split".into(),
        part: None,
        message: err.to_string(),
        exit_code: err.exit_code(),
    };
    jobs::record_step_error(&s3, &buckets(), target, &step_error).await;
    assert_eq!(counts(&pool, job.evidence_id).await.state, "processing");

    let request = |target: Target, step: &str, error: &str, cause: Option<&str>| FailEvidence {
        evidence_id: target.evidence_id,
        case_id: target.case_id,
        step: step.into(),
        failure: Caught {
            error: error.into(),
            cause: cause.map(str::to_owned),
        },
    };
    let exited = r#"{"Containers":[{"ExitCode":65,"Name":"pipeline"}],"StopCode":"EssentialContainerExited"}"#;
    let split_failed = request(target, "split", "States.TaskFailed", Some(exited));
    let reason = failure::fail_evidence(&s3, &buckets(), &pool, &split_failed)
        .await
        .unwrap();
    assert!(
        reason.starts_with("split failed with exit code 65: ")
            && reason.contains("mystery.bin: unknown evidence format"),
        "{reason}"
    );
    let errors_of = |pool: PgPool, id: Uuid| async move {
        let (state, errors): (String, Value) =
            sqlx::query_as("SELECT state, errors FROM evidence WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        (state, errors)
    };
    let (state, errors) = errors_of(pool.clone(), job.evidence_id).await;
    assert_eq!(state, "failed");
    assert_eq!(errors[0]["record"], "pipeline");
    assert_eq!(errors[0]["message"], reason.as_str());

    // Retried (the state machine retries FailEvidence), or reached again from the map:
    // the same row, the first reason.
    assert_eq!(
        failure::fail_evidence(&s3, &buckets(), &pool, &split_failed)
            .await
            .unwrap(),
        reason
    );
    let map_failed = request(
        target,
        "parts",
        "States.ExceedToleratedFailureThreshold",
        None,
    );
    assert_eq!(
        failure::fail_evidence(&s3, &buckets(), &pool, &map_failed)
            .await
            .unwrap(),
        reason
    );
    assert_eq!(
        errors_of(pool.clone(), job.evidence_id).await,
        (state, errors)
    );

    // A launch refused: a plain-text cause, no step error (the container never ran).
    let other = new_evidence(&pool, &s3, case_id, "other.bin", vec![1, 2, 3]).await;
    let other = Target {
        case_id,
        evidence_id: other.evidence_id,
    };
    let denied = "User: arn:aws:sts::111122223333:assumed-role/sm/x is not authorized to perform: ecs:TagResource";
    let reason = failure::fail_evidence(
        &s3,
        &buckets(),
        &pool,
        &request(other, "split", "States.TaskFailed", Some(denied)),
    )
    .await
    .unwrap();
    assert_eq!(
        reason,
        format!("split failed (States.TaskFailed): {denied}")
    );
    assert_eq!(errors_of(pool.clone(), other.evidence_id).await.0, "failed");

    // An evidence that does not exist is an error (the state machine retries, then ends).
    let unknown = Target {
        case_id,
        evidence_id: Uuid::now_v7(),
    };
    assert!(
        failure::fail_evidence(
            &s3,
            &buckets(),
            &pool,
            &request(unknown, "split", "States.Timeout", None)
        )
        .await
        .is_err()
    );
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn steps_run_one_by_one_like_the_state_machine(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let case_id = new_case(&pool).await;
    let name = "security.evtx";
    let job = new_evidence(&pool, &s3, case_id, name, fixture(name)).await;
    let target = Target {
        case_id,
        evidence_id: job.evidence_id,
    };
    // Split finds the evidence by listing its prefix (the state machine passes no key).
    let index = jobs::split(&s3, &buckets(), target, None, 1).await.unwrap();
    assert!(
        index.parts.len() > 1,
        "one part per chunk: {:?}",
        index.parts
    );
    let stored = s3
        .get_object()
        .bucket("artifacts")
        .key(jobs::parts_manifest_key(target))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    // What the state machine's Distributed Map reads: the array of part keys.
    let stored: Vec<String> = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored, index.parts);

    let want = expected(name, fixture(name));
    for (i, part) in index.parts.iter().enumerate() {
        let summary = jobs::parse(&s3, &buckets(), target, part, ParseOptions::default())
            .await
            .unwrap();
        assert!(summary.tally.is_balanced());
        let pool2 = pool.clone();
        let report = jobs::upload(&s3, &pool2, &buckets(), target, part)
            .await
            .unwrap();
        let last = i + 1 == index.parts.len();
        assert_eq!(report.state, if last { "done" } else { "processing" });
    }
    let first = counts(&pool, job.evidence_id).await;
    assert_eq!(first.events_count, want.tally.events as i64);
    assert_eq!(first.rows, want.tally.events as i64);

    // A retried upload of one part adds nothing and keeps the counts.
    let again = jobs::upload(&s3, &pool, &buckets(), target, &index.parts[0])
        .await
        .unwrap();
    assert_eq!(again.inserted, 0);
    assert_eq!(counts(&pool, job.evidence_id).await, first);

    // A part key of another evidence is refused before anything is read.
    let other = Target {
        case_id,
        evidence_id: Uuid::now_v7(),
    };
    let err = jobs::upload(&s3, &pool, &buckets(), other, &index.parts[0])
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::Artifact { .. }), "{err}");
    assert_eq!(err.exit_code(), 65);

    // Evidence unknown to the database: bad input, not retried.
    let ghost = Target {
        case_id: Uuid::now_v7(),
        evidence_id: job.evidence_id,
    };
    let err = jobs::upload(&s3, &pool, &buckets(), ghost, &index.parts[0])
        .await
        .unwrap_err();
    assert!(
        matches!(err, PipelineError::EvidenceNotFound { .. }),
        "{err}"
    );
    assert_eq!(err.exit_code(), 65);
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_local_launcher_s_worker_processes_what_the_api_starts(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let case_id = new_case(&pool).await;
    let (launcher, rx) = LocalLauncher::channel(4);
    let worker = LocalWorker::new(s3.clone(), pool.clone(), buckets());
    let handle = worker.spawn(rx);
    let job = new_evidence(&pool, &s3, case_id, "auth.log", fixture("auth.log")).await;
    launcher.start(job.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = counts(&pool, job.evidence_id).await;
        if got.state == "done" {
            assert!(got.rows > 0);
            assert_eq!(got.rows, got.events_count);
            break;
        }
        assert!(Instant::now() < deadline, "not processed: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(launcher);
    handle.await.unwrap();
}
