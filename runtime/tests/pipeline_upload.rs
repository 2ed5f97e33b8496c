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
use chrono_runtime::launcher::PipelineJob;
use chrono_runtime::pipeline::failure::{self, Caught, FailEvidence};
use chrono_runtime::pipeline::jobs::{self, Buckets, StepError};
use chrono_runtime::pipeline::upload::Target;
use chrono_runtime::pipeline::worker::{LocalWorker, Worker, WorkerOptions};
use chrono_runtime::pipeline::{
    CollectSink, ParseOptions, PipelineError, SplitOptions, parse_evidence,
};
use chrono_runtime::queue::{self, NewJob, Runner};
use chrono_runtime::storage::source_key;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
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
        sha256: None,
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

/// The evidence's `errors` (the pipeline's reasons first).
async fn evidence_errors(pool: &PgPool, evidence_id: Uuid) -> Value {
    sqlx::query_scalar("SELECT errors FROM evidence WHERE id = $1")
        .bind(evidence_id)
        .fetch_one(pool)
        .await
        .unwrap()
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
    let errors = evidence_errors(&pool, job.evidence_id).await;
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
    let errors = evidence_errors(&pool, job.evidence_id).await;
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
    // What the upload step checks custody against: the SHA-256 of the file split read.
    let manifest = s3
        .get_object()
        .bucket("artifacts")
        .key(jobs::manifest_key(target))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let sha256 = index.sha256.clone().expect("split hashes what it reads");
    assert_eq!(sha256.len(), 64);
    assert_eq!(manifest["sha256"], sha256.as_str());

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

/// Records a local job for evidence `job` of `size` bytes and marks the evidence
/// processing under it, in one transaction, as `POST .../process` does.
async fn enqueue(pool: &PgPool, job: &PipelineJob, size: i64) -> Uuid {
    let mut tx = pool.begin().await.unwrap();
    let id = queue::enqueue(
        &mut tx,
        &NewJob {
            evidence_id: job.evidence_id,
            case_id: job.case_id,
            source_key: &job.source_key,
            runner: Runner::Local,
            size_bytes: size,
            requested_by: "tester",
        },
    )
    .await
    .unwrap();
    sqlx::query("UPDATE evidence SET state = 'processing', job_id = $2 WHERE id = $1")
        .bind(job.evidence_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A queue worker (one EVTX chunk per part, so a file has many parts) with a short lease,
/// running until the returned sender is dropped or fired.
fn start_worker(
    s3: &Client,
    pool: &PgPool,
    owner: &str,
    lease: Duration,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut steps = LocalWorker::new(s3.clone(), pool.clone(), buckets());
    steps.evtx_chunks_per_part = 1;
    let worker = Worker::new(
        steps,
        owner,
        WorkerOptions {
            concurrency: 2,
            express: true,
            lease,
            poll: Duration::from_millis(100),
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    (stop, handle)
}

async fn wait_until_settled(pool: &PgPool, evidence_id: Uuid) -> Counts {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = counts(pool, evidence_id).await;
        if got.state != "processing" {
            return got;
        }
        assert!(Instant::now() < deadline, "not processed: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct JobRow {
    state: String,
    attempts: i32,
    lease_owner: Option<String>,
    error: Option<String>,
}

/// The job's row once its worker closed it (the evidence's state commits first).
async fn job_row(pool: &PgPool, id: Uuid) -> JobRow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row: JobRow = sqlx::query_as(
            "SELECT state, attempts, lease_owner, error FROM pipeline_jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
        if !matches!(row.state.as_str(), "queued" | "running") || Instant::now() > deadline {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 18, failure 1: a worker killed in the middle of a file left the evidence
/// `processing` forever. Now the job is durable: the dead worker's lease lapses, another
/// worker takes the job again, and the file ends `done` with exactly its events — the
/// part the dead worker stored is not stored twice.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn a_worker_killed_mid_file_is_resumed_by_another_without_duplicates(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = runtime_pool(20, connect).await;
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let case_id = new_case(&pool).await;
    let name = "security.evtx";
    let want = expected(name, fixture(name));
    let job = new_evidence(&pool, &s3, case_id, name, fixture(name)).await;
    let job_id = enqueue(&pool, &job, fixture(name).len() as i64).await;

    // The first worker claims the job, stores the first part, and dies (no renewal, no
    // release, no close: what kill -9 leaves).
    let claimed = queue::claim(&pool, "doomed", Duration::from_secs(2), false)
        .await
        .unwrap()
        .expect("the queued job");
    assert_eq!((claimed.id, claimed.attempts), (job_id, 1));
    let target = Target {
        case_id,
        evidence_id: job.evidence_id,
    };
    let index = jobs::split(&s3, &buckets(), target, Some(&job.source_key), 1)
        .await
        .unwrap();
    assert!(index.parts.len() > 2, "{:?}", index.parts);
    jobs::parse(
        &s3,
        &buckets(),
        target,
        &index.parts[0],
        ParseOptions::default(),
    )
    .await
    .unwrap();
    let first = jobs::upload(&s3, &pool, &buckets(), target, &index.parts[0])
        .await
        .unwrap();
    assert!(first.inserted > 0);
    assert_eq!(first.state, "processing");
    let half = counts(&pool, job.evidence_id).await;
    assert_eq!(
        half.rows, half.events_count,
        "counts and rows commit together"
    );
    // while the lease holds nobody else takes the job
    assert_eq!(
        queue::claim(&pool, "other", Duration::from_secs(2), false)
            .await
            .unwrap(),
        None
    );

    let (stop, handle) = start_worker(&s3, &pool, "survivor", Duration::from_secs(3));
    let got = wait_until_settled(&pool, job.evidence_id).await;
    let events = want.tally.events as i64;
    assert_eq!(
        (got.state.as_str(), got.rows, got.events_count),
        ("done", events, events),
        "{got:?}"
    );
    let (distinct,): (i64,) =
        sqlx::query_as("SELECT count(DISTINCT dedup_key) FROM events WHERE evidence_id = $1")
            .bind(job.evidence_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(distinct, events, "no event twice");
    let closed = job_row(&pool, job_id).await;
    assert_eq!(
        (closed.state.as_str(), closed.attempts, closed.lease_owner),
        ("done", 2, None)
    );
    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// A job whose worker keeps dying runs out of attempts: the evidence fails with the
/// reason (instead of staying `processing`) and can be processed again.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn a_job_out_of_attempts_fails_its_evidence_with_the_reason(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let case_id = new_case(&pool).await;
    let job = new_evidence(&pool, &s3, case_id, "auth.log", fixture("auth.log")).await;
    let job_id = enqueue(&pool, &job, 1364).await;
    for attempt in 1..=queue::MAX_ATTEMPTS {
        // a claim whose lease lapses at once: a worker that died right away
        let claimed = queue::claim(&pool, "dies", Duration::ZERO, false)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("attempt {attempt}"));
        assert_eq!(claimed.attempts, attempt);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        queue::claim(&pool, "dies", Duration::ZERO, false)
            .await
            .unwrap(),
        None,
        "no fourth attempt"
    );
    let reaped = queue::reap(&pool).await.unwrap();
    assert_eq!(reaped.abandoned, 1);
    let got = counts(&pool, job.evidence_id).await;
    assert_eq!(got.state, "failed");
    let errors = evidence_errors(&pool, job.evidence_id).await;
    let reason = errors[0]["message"].as_str().unwrap();
    assert!(reason.contains("stopped 3 times"), "{reason}");
    assert_eq!(job_row(&pool, job_id).await.state, "failed");
    // processable again: a new job runs and finishes it
    let again = enqueue(&pool, &job, 1364).await;
    let (stop, handle) = start_worker(&s3, &pool, "healthy", Duration::from_secs(5));
    assert_eq!(
        wait_until_settled(&pool, job.evidence_id).await.state,
        "done"
    );
    assert_eq!(job_row(&pool, again).await.state, "done");
    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// Issue 18, failure 5: a 1 KB file waited 147 s behind a big one. Jobs are taken in fair
/// order (a big file's rank is handicapped by its size) and the express slot takes only
/// small files.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn small_jobs_are_not_starved_by_a_big_one(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let case_id = new_case(&pool).await;
    let big = new_evidence(&pool, &s3, case_id, "big.evtx", fixture("auth.log")).await;
    let big_job = enqueue(&pool, &big, 4 << 30).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let small = new_evidence(&pool, &s3, case_id, "small.log", fixture("auth.log")).await;
    let small_job = enqueue(&pool, &small, 1024).await;
    let lease = Duration::from_secs(60);
    // the express slot never takes the big one
    let express = queue::claim(&pool, "w", lease, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(express.id, small_job);
    assert_eq!(queue::claim(&pool, "w", lease, true).await.unwrap(), None);
    // the regular order: the small one first although it was requested later
    sqlx::query("UPDATE pipeline_jobs SET state = 'queued', attempts = 0, lease_owner = NULL, lease_expires_at = NULL")
        .execute(&pool)
        .await
        .unwrap();
    let order: Vec<Uuid> = [
        queue::claim(&pool, "w", lease, false)
            .await
            .unwrap()
            .unwrap()
            .id,
        queue::claim(&pool, "w", lease, false)
            .await
            .unwrap()
            .unwrap()
            .id,
    ]
    .into();
    assert_eq!(order, [small_job, big_job]);
}

/// A worker that stops gracefully gives its jobs back (not counted as an attempt) and the
/// next worker takes them at once: a restart resumes the queue.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn jobs_recorded_while_no_worker_runs_are_processed_when_one_starts(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let case_id = new_case(&pool).await;
    let mut waiting = Vec::new();
    for name in [
        "auth.log",
        "cloudtrail.json",
        "plaso.jsonl",
        "sigma_events.csv",
    ] {
        let job = new_evidence(&pool, &s3, case_id, name, fixture(name)).await;
        let id = enqueue(&pool, &job, fixture(name).len() as i64).await;
        waiting.push((job, id));
    }
    let (stop, handle) = start_worker(&s3, &pool, "late", Duration::from_secs(5));
    for (job, id) in &waiting {
        let got = wait_until_settled(&pool, job.evidence_id).await;
        assert_eq!(got.state, "done", "{}", job.source_key);
        assert_eq!(got.rows, got.events_count);
        assert_eq!(job_row(&pool, *id).await.state, "done");
    }
    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// Regression (issue 18): a 1 MB `.evtx.gz` unpacking to a gigabyte of zeros was spooled
/// whole to disk and parsed for minutes, ending with 0 events and no error. Unpacking is
/// now bounded ([`chrono_runtime::pipeline::limits`]): the bomb fails its evidence with the
/// limit and its setting named, nothing stored, and it is not retried. The ratio is judged
/// here from 4 MiB on (the default waits for 64 MiB) to keep the test small.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn a_decompression_bomb_fails_its_evidence_with_the_limit_named(pool: PgPool) {
    use std::io::Write as _;
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let mut worker = LocalWorker::new(s3.clone(), pool.clone(), buckets());
    worker.parse.limits.ratio_floor = 4 * 1024 * 1024;
    let case_id = new_case(&pool).await;
    // an EVTX file header, then zeros: detected as EVTX, about 1000:1
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b"ElfFile\0").unwrap();
    gz.write_all(&vec![0u8; 64 * 1024 * 1024]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
    let job = new_evidence(&pool, &s3, case_id, "Security.evtx.gz", bomb).await;
    fails_on_a_limit(
        &pool,
        &worker,
        &job,
        &["expansion", "CHRONO_MAX_EXPANSION_RATIO"],
    )
    .await;
}

/// `job` fails on a limit at once: not retryable, nothing stored, the evidence `failed`
/// with a reason that says each of `named`.
async fn fails_on_a_limit(pool: &PgPool, worker: &LocalWorker, job: &PipelineJob, named: &[&str]) {
    let err = worker.process(job).await.unwrap_err();
    assert!(matches!(err, PipelineError::Limit { .. }), "{err}");
    assert!(!err.is_retryable());
    let got = counts(pool, job.evidence_id).await;
    assert_eq!(
        (got.state.as_str(), got.rows, got.events_count),
        ("failed", 0, 0)
    );
    let errors = evidence_errors(pool, job.evidence_id).await;
    let reason = errors[0]["message"].as_str().unwrap();
    assert!(named.iter().all(|n| reason.contains(n)), "{reason}");
}

/// Regression (issue 18): a 1 MB gzip of one gigabyte-long line cost 107 CPU-seconds.
/// Each step run over a file now has a time budget scaled by the stored size
/// ([`chrono_runtime::pipeline::limits::Limits::budget`]): a file that unpacks to endless
/// bytes past every other limit (here 8 GiB of one line, the ratio and size limits raised
/// out of the way) fails with the processing time and its setting named, is not retried,
/// and stores nothing; an ordinary file passes under the same budget. The budget is 1 s
/// here (default: 120 s + 1800 s per GiB) to keep the test short.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn a_file_that_takes_too_long_fails_with_the_time_limit_named(pool: PgPool) {
    use std::io::Write as _;
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let mut worker = LocalWorker::new(s3.clone(), pool.clone(), buckets());
    let limits = &mut worker.parse.limits;
    limits.max_ratio = u64::MAX;
    limits.max_member_bytes = u64::MAX;
    limits.time_min = Duration::from_secs(1);
    limits.time_per_gib = Duration::ZERO;
    let case_id = new_case(&pool).await;
    // a syslog line, another's start, then 8 GiB without a newline: 128 gzip members
    let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    member.write_all(&vec![b'a'; 64 * 1024 * 1024]).unwrap();
    let member = member.finish().unwrap();
    let mut slow = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    slow.write_all(b"Mar 14 15:00:00 host sshd[1]: Connection closed by 10.0.0.1\n")
        .unwrap();
    slow.write_all(b"Mar 14 15:00:01 host sshd[1]: ").unwrap();
    let mut slow = slow.finish().unwrap();
    for _ in 0..128 {
        slow.extend_from_slice(&member);
    }
    assert!(slow.len() < 16 * 1024 * 1024, "{}", slow.len());
    let job = new_evidence(&pool, &s3, case_id, "auth.log.gz", slow).await;
    let named = ["processing time", "CHRONO_PROCESSING_MIN_SECS"];
    fails_on_a_limit(&pool, &worker, &job, &named).await;

    // An ordinary file under the same budget.
    let job = new_evidence(&pool, &s3, case_id, "auth.log", fixture("auth.log")).await;
    let done = worker.process(&job).await.unwrap();
    assert_eq!(done.state, "done");
    let got = counts(&pool, job.evidence_id).await;
    assert!(got.rows > 0 && got.rows == got.events_count, "{got:?}");
}

/// Regression (issue 18): a zip member whose name held a NUL failed its evidence
/// ("unsupported Unicode escape sequence") after some of its events were stored, with
/// `events_count` 0 against 15 searchable rows. Names with NUL are stored with U+FFFD and
/// the counts equal the rows.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn a_nul_in_a_zip_member_name_keeps_counts_equal_to_rows(pool: PgPool) {
    use std::io::Write as _;
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let worker = LocalWorker::new(s3.clone(), pool.clone(), buckets());
    let case_id = new_case(&pool).await;
    let log = fixture("auth.log");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for name in ["auth\0evil.log", "auth.log", "nested/a\0b\0c.log"] {
        zip.start_file(name, options).unwrap();
        zip.write_all(&log).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    let job = new_evidence(&pool, &s3, case_id, "logs.zip", bytes).await;
    let done = worker.process(&job).await.unwrap();
    assert_eq!(done.state, "done");
    let per_member = expected("auth.log", log.clone()).tally.events as i64;
    let got = counts(&pool, job.evidence_id).await;
    assert_eq!(got.state, "done");
    assert_eq!(got.rows, 3 * per_member);
    assert_eq!(got.events_count, got.rows);
    let members: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT source_file FROM events WHERE evidence_id = $1 ORDER BY 1",
    )
    .bind(job.evidence_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        members.iter().any(|m| m.contains("auth\u{fffd}evil.log"))
            && members.iter().all(|m| !m.contains('\0')),
        "{members:?}"
    );
}

/// Chain of custody: a stored file whose SHA-256 is not the one recorded at upload is not
/// processed (nothing of it is stored), and the evidence says why; the right file is
/// verified and the time of the check kept.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn a_file_changed_after_upload_is_refused_before_any_event_is_stored(pool: PgPool) {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let worker = LocalWorker::new(s3.clone(), pool.clone(), buckets());
    let case_id = new_case(&pool).await;
    let bytes = fixture("auth.log");
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let wrong = "0".repeat(64);
    for (declared, ok) in [(wrong.as_str(), false), (sha.as_str(), true)] {
        let mut job = new_evidence(&pool, &s3, case_id, "auth.log", bytes.clone()).await;
        sqlx::query("UPDATE evidence SET sha256 = $2 WHERE id = $1")
            .bind(job.evidence_id)
            .bind(declared)
            .execute(&pool)
            .await
            .unwrap();
        job.sha256 = Some(declared.to_owned());
        let result = worker.process(&job).await;
        let got = counts(&pool, job.evidence_id).await;
        let (errors, verified): (Value, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as("SELECT errors, sha256_verified_at FROM evidence WHERE id = $1")
                .bind(job.evidence_id)
                .fetch_one(&pool)
                .await
                .unwrap();
        if ok {
            result.unwrap();
            assert_eq!(got.state, "done");
            assert!(got.rows > 0);
            assert!(verified.is_some());
        } else {
            let err = result.unwrap_err();
            assert!(matches!(err, PipelineError::Custody { .. }), "{err}");
            assert_eq!((got.state.as_str(), got.rows), ("failed", 0));
            let reason = errors[0]["message"].as_str().unwrap();
            assert!(
                reason.contains("chain of custody") && reason.contains(&sha),
                "{reason}"
            );
            assert!(verified.is_none());
        }
    }
    // without a declared SHA-256 the first processing establishes it
    let job = new_evidence(&pool, &s3, case_id, "auth.log", bytes.clone()).await;
    worker.process(&job).await.unwrap();
    let (stored,): (Option<String>,) = sqlx::query_as("SELECT sha256 FROM evidence WHERE id = $1")
        .bind(job.evidence_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, Some(sha));
}

/// A pool of `connections` on the test database, built as the runtime builds its pools
/// (connections interrupted mid-call are closed when given back,
/// [`chrono_runtime::db::guard_releases`]): what the workers of the kill tests share.
/// Three workers of three slots need more than the test harness's five connections
/// ([`WorkerOptions::connections`]), so it is a pool of its own.
async fn runtime_pool(connections: u32, connect: PgConnectOptions) -> PgPool {
    chrono_runtime::db::guard_releases(PgPoolOptions::new())
        .max_connections(connections)
        .connect_with(connect)
        .await
        .unwrap()
}

/// Regression (the soak's false custody refusal): a worker killed while its part's `COPY`
/// was finishing (`CopyDone` sent, the answer not read yet) left its session one
/// `ReadyForQuery` ahead — sqlx 0.8 does not count `COPY`'s — and the pool handed it on.
/// The next statement on it, the custody check's `UPDATE .. RETURNING`, updated the row
/// but read the previous statement's answer, saw no row, re-read the SHA-256 (getting the
/// `UPDATE`'s answer) and refused the evidence with "the stored file's SHA-256 is X, not
/// X". Here the pool has one connection, so the next borrower gets that same session
/// unless the pool closes it (without the fix the re-read lands on it too and reports the
/// evidence missing; in the soak it landed on a healthy session and read the SHA-256 the
/// unseen `UPDATE` had stored).
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn custody_check_after_a_worker_killed_mid_copy_is_not_refused(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = runtime_pool(1, connect).await;
    let case_id = new_case(&pool).await;
    let sha = "ab".repeat(32);
    let other = "cd".repeat(32);
    let [evidence_id, changed_id] = [Uuid::now_v7(), Uuid::now_v7()];
    for (id, recorded) in [(evidence_id, None), (changed_id, Some(&other))] {
        sqlx::query(
            "INSERT INTO evidence (id, case_id, file_name, source_key, created_by, state, sha256)
             VALUES ($1, $2, 'a.log', $1::text, 'tester', 'processing', $3)",
        )
        .bind(id)
        .bind(case_id)
        .bind(recorded)
        .execute(&pool)
        .await
        .unwrap();
    }
    let check = |id: Uuid| {
        let target = Target {
            case_id,
            evidence_id: id,
        };
        let (pool, sha) = (pool.clone(), sha.clone());
        async move { chrono_runtime::pipeline::upload::check_custody(&pool, target, Some(&sha)).await }
    };
    // a real refusal first: the session has run (and prepared) both of the check's
    // statements, as a worker's session had in the soak
    let refused = check(changed_id).await.unwrap_err();
    assert!(
        matches!(refused, PipelineError::Custody { .. }),
        "{refused}"
    );
    let mut attempts = 0;
    loop {
        // the killed worker: its task dropped while `finish()` waits for the answer
        let interrupted = {
            let mut conn = pool.acquire().await.unwrap();
            let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
            sqlx::query("CREATE TEMP TABLE IF NOT EXISTS stage (n int)")
                .execute(&mut *tx)
                .await
                .unwrap();
            let mut copy = tx.copy_in_raw("COPY stage FROM STDIN").await.unwrap();
            copy.send(b"1\n2\n".as_slice()).await.unwrap();
            let mut finish = std::pin::pin!(copy.finish());
            match futures::poll!(finish.as_mut()) {
                std::task::Poll::Pending => true,
                std::task::Poll::Ready(r) => {
                    r.expect("COPY");
                    false
                }
            }
        };
        if interrupted {
            break;
        }
        attempts += 1;
        assert!(attempts < 200, "COPY always finished within one poll");
    }
    check(evidence_id)
        .await
        .expect("the custody check of the file's own SHA-256 passes");
    let stored: Option<String> = sqlx::query_scalar("SELECT sha256 FROM evidence WHERE id = $1")
        .bind(evidence_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, Some(sha));
}

/// A small xorshift generator: the soak's choices are random but repeatable (seed given).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A bounded, in-process soak of the durable queue (issue 18): 200 evidence files
/// processed by three workers while workers are killed at random (their task aborted: no
/// renewal, no release, no close — what `kill -9` leaves) and replaced. Ends with every
/// evidence `done` or `failed` with a reason, no job open, no event twice, counts equal to
/// rows, and every uploaded file still in the bucket. (Kills of PostgreSQL and the emulator
/// are not part of this test.)
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn soak_200_files_with_workers_killed_at_random(_: PgPoolOptions, connect: PgConnectOptions) {
    let pool = runtime_pool(20, connect).await;
    const FILES: u64 = 200;
    const KILLS: u32 = 12;
    let moto = Moto::start();
    let s3 = moto.s3().await;
    let case_id = new_case(&pool).await;
    let mut rng = Rng(0x5eed_1818);
    let mut files = Vec::new();
    for i in 0..FILES {
        let lines = 1 + rng.below(40);
        let text: String = (0..lines)
            .map(|j| {
                format!(
                    "Mar  1 08:{:02}:{:02} host-{i} sshd[{}]: Failed password for user{j} from 10.0.{}.{} port 22 ssh2\n",
                    j / 60,
                    j % 60,
                    1000 + j,
                    i % 256,
                    j % 256
                )
            })
            .collect();
        let name = format!("soak-{i}.log");
        let want = expected(&name, text.clone().into_bytes()).tally.events as i64;
        let job = new_evidence(&pool, &s3, case_id, &name, text.clone().into_bytes()).await;
        enqueue(&pool, &job, text.len() as i64).await;
        files.push((job, want, text.len() as i64));
    }
    let lease = Duration::from_secs(2);
    let mut workers: Vec<_> = (0..3)
        .map(|w| start_worker(&s3, &pool, &format!("soak-{w}-0"), lease))
        .collect();
    let started = Instant::now();
    let mut kills = 0;
    while kills < KILLS {
        tokio::time::sleep(Duration::from_millis(200 + rng.below(600))).await;
        let w = rng.below(workers.len() as u64) as usize;
        let (_, handle) = &workers[w];
        handle.abort();
        kills += 1;
        workers[w] = start_worker(&s3, &pool, &format!("soak-{w}-{kills}"), lease);
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        // (the workers may hold every connection of the test's pool for a while)
        let left: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM evidence WHERE case_id = $1 AND state = 'processing'",
        )
        .bind(case_id)
        .fetch_one(&pool)
        .await;
        let left = left.unwrap_or(-1);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} evidence still processing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "soak: {FILES} files, {kills} worker kills, settled in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (stop, handle) in workers {
        let _ = stop.send(());
        handle.await.unwrap();
    }
    let mut done = 0;
    for (job, want, size) in &files {
        let got = counts(&pool, job.evidence_id).await;
        assert_eq!(
            got.rows, got.events_count,
            "{}: counts equal rows",
            job.source_key
        );
        match got.state.as_str() {
            "done" => {
                assert_eq!(got.rows, *want, "{}", job.source_key);
                done += 1;
            }
            "failed" => {
                let errors = evidence_errors(&pool, job.evidence_id).await;
                // only kills fail anything here: a job killed on every attempt
                let reason = errors[0]["message"].as_str().unwrap_or_default();
                assert!(reason.contains("stopped"), "{}: {reason}", job.source_key);
            }
            other => panic!("{}: {other}", job.source_key),
        }
        let head = s3
            .head_object()
            .bucket("sources")
            .key(&job.source_key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(*size), "{}", job.source_key);
    }
    let (duplicates, open): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) - count(DISTINCT (evidence_id, dedup_key)) FROM events),
                (SELECT count(*) FROM pipeline_jobs WHERE state IN ('queued', 'running'))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((duplicates, open), (0, 0));
    eprintln!("soak: {done} done, {} failed with the reason", FILES - done);
    assert!(done > FILES / 2, "most files processed: {done}");
}
