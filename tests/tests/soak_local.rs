//! Soak test (issue 18, "done when"): `chronoctl local up`, then many evidence files
//! uploaded and processed concurrently through the public API while components are killed
//! with `kill -9` at random (the API, which runs the local pipeline worker; PostgreSQL;
//! every emulator component) and restarted with `chronoctl local up`. Each component is
//! killed at least once whatever the seed. At the end:
//!
//! * every evidence the test registered is `done` or `failed` with a reason (none stuck);
//! * a parsable file whose processing a kill cut short (`failed`) has a way forward:
//!   processed again, it ends `done`;
//! * a `done` evidence has exactly the events its file holds (parsed here with the same
//!   library: no duplicates, none lost) and `events_count` equals its rows in `events`;
//!   a `failed` one's `events_count` equals its rows too;
//! * every uploaded byte is still there: the SHA-256 of each source object equals the
//!   uploaded file's.
//!
//! Loopback only, bounded: 200 files (200–1000 syslog lines each, every 25th of no known
//! format), 10 kills 1–4 s apart, about a minute. Settings: `CHRONO_SOAK_FILES`,
//! `CHRONO_SOAK_KILLS`, `CHRONO_SOAK_SEED` (to replay a run's kill order; the seed is
//! printed), `CHRONO_SOAK_SETTLE_SECS` (how long evidence may take to settle after the
//! last kill). The measured numbers (files, kills, wall time, outcomes) are printed.
//!
//! Which components are killed comes from the state file: the API, PostgreSQL, and every
//! component that is not part of the runtime, the database, the issuer or the web front
//! (the emulators: moto and the local S3 today, and any emulator added later).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono_tests::local::{Local, alive};
use serde_json::{Value, json};
use sha2::Digest as _;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Components that are not emulators (everything else in the state file is one).
const NOT_EMULATORS: [&str; 5] = ["api", "filter-ai", "postgres", "issuer", "web"];

/// The components a kill may hit: the API (and its worker), PostgreSQL, the emulators.
fn victims(local: &Local) -> Vec<String> {
    local
        .pids()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| n == "api" || n == "postgres" || !NOT_EMULATORS.contains(&n.as_str()))
        .collect()
}

/// xorshift64*: reproducible from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// File `i`: syslog lines of its own (unique per file), or every 25th a file of no known
/// format (it must end `failed` with a reason).
fn evidence_file(i: usize) -> (String, Vec<u8>) {
    if i % 25 == 24 {
        let bytes: Vec<u8> = (0..4096u32).map(|b| (b * 7 + i as u32) as u8).collect();
        return (format!("soak-{i:04}.bin"), bytes);
    }
    // 200–1000 lines: enough work that the pipeline is still busy while the kills go on
    let lines = 200 + (i * 37) % 800;
    let mut text = String::new();
    for l in 0..lines {
        text.push_str(&format!(
            "Mar {:>2} {:02}:{:02}:{:02} soak-host-{i} sshd[{}]: Accepted password for user{} from 10.{}.{}.{} port {} ssh2\n",
            1 + i % 28,
            l % 24,
            (l * 7) % 60,
            (l * 13 + i) % 60,
            1000 + l,
            l % 9,
            i % 250,
            l % 250,
            (i + l) % 250,
            20_000 + l
        ));
    }
    (format!("soak-{i:04}.log"), text.into_bytes())
}

/// How many events the pipeline makes of `bytes` (the same library, run here), or `None`
/// when the file must fail.
fn expected_events(name: &str, bytes: &[u8]) -> Option<u64> {
    use chrono_runtime::pipeline::{CollectSink, ParseOptions, SplitOptions, parse_evidence};
    let mut sink = CollectSink::new(10);
    // RFC 3164 lines carry no year: the platform takes it from the object's upload time,
    // so "now" here (the count does not depend on the year).
    let split = SplitOptions {
        reference_time: Some(chrono::Utc::now()),
        ..SplitOptions::new(name)
    };
    parse_evidence(
        std::io::Cursor::new(bytes.to_vec()),
        &split,
        &ParseOptions::default(),
        &mut sink,
    )
    .ok()
    .map(|_| sink.events.len() as u64)
}

struct Api {
    base: Arc<Mutex<String>>,
    token: String,
    http: reqwest::Client,
}

/// What happened to one call (a component may be down: the caller retries).
enum Call {
    Answer(u16, Value),
    NoAnswer(String),
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Call {
        let base = self.base.lock().unwrap().clone();
        let mut req = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            req = req.json(b);
        }
        match req.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                Call::Answer(status, res.json().await.unwrap_or(Value::Null))
            }
            Err(e) => Call::NoAnswer(e.to_string()),
        }
    }

    /// `call` until it answers with anything but 5xx, for at most `patience`.
    async fn retried(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        patience: Duration,
    ) -> (u16, Value) {
        let until = Instant::now() + patience;
        let mut last = String::new();
        while Instant::now() < until {
            match self.call(method.clone(), path, body).await {
                Call::Answer(s, v) if s < 500 => return (s, v),
                Call::Answer(s, v) => last = format!("HTTP {s}: {v}"),
                Call::NoAnswer(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("{method} {path}: no answer within {patience:?} ({last})");
    }
}

/// Every evidence of the case, retried through outages for up to `patience`.
async fn evidence(api: &Api, case: &str, patience: Duration) -> Vec<Value> {
    let (s, mut body) = api
        .retried(
            reqwest::Method::GET,
            &format!("/api/v1/cases/{case}/evidence"),
            None,
            patience,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    match body["evidence"].take() {
        Value::Array(all) => all,
        other => panic!("no evidence list: {other}"),
    }
}

/// The evidence named `file_name` in the case, if it exists.
async fn find(api: &Api, case: &str, file_name: &str) -> Option<Value> {
    evidence(api, case, Duration::from_secs(300))
        .await
        .into_iter()
        .find(|e| e["file_name"] == file_name)
}

/// What [`submit`] did for one file.
struct Submitted {
    /// The evidence that holds the file.
    id: String,
    /// Evidence registered but whose answer (with the upload URL) was lost in a crash:
    /// aborted (`DELETE .../upload`) and registered again under another name.
    aborted: Vec<String>,
}

/// Registers, uploads and starts processing one file, retrying through outages.
async fn submit(api: &Api, case: &str, name: &str, bytes: &[u8]) -> Submitted {
    let sha256 = hex_sha256(bytes);
    let patience = Duration::from_secs(300);
    let until = Instant::now() + patience;
    let mut aborted = Vec::new();
    // register (names are unique: an answer lost in a crash is found again, not repeated)
    let (id, upload) = loop {
        assert!(Instant::now() < until, "{name}: cannot register");
        let file_name = if aborted.is_empty() {
            name.to_owned()
        } else {
            format!("{name}~{}", aborted.len())
        };
        if let Some(e) = find(api, case, &file_name).await {
            let id = e["id"].as_str().unwrap().to_owned();
            if e["state"] != "registered" {
                // uploaded and past it: only processing may be missing
                break (id, None);
            }
            // registered, but the upload URL went with the lost answer
            let (s, body) = api
                .retried(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/cases/{case}/evidence/{id}/upload"),
                    None,
                    patience,
                )
                .await;
            assert!(s < 300, "{file_name}: abort: HTTP {s}: {body}");
            aborted.push(id);
            continue;
        }
        match api
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/cases/{case}/evidence"),
                Some(&json!({"file_name": file_name, "sha256": sha256})),
            )
            .await
        {
            Call::Answer(201 | 200, body) => {
                break (
                    body["evidence"]["id"].as_str().unwrap().to_owned(),
                    Some(body["upload"].clone()),
                );
            }
            Call::Answer(s, body) if s < 500 => panic!("{name}: register: HTTP {s}: {body}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    // upload with exactly the signed headers
    if let Some(upload) = upload {
        loop {
            assert!(Instant::now() < until, "{name}: cannot upload");
            let mut put = api
                .http
                .put(upload["url"].as_str().unwrap())
                .timeout(Duration::from_secs(30))
                .body(bytes.to_vec());
            if let Some(headers) = upload["headers"].as_object() {
                for (h, v) in headers {
                    put = put.header(h, v.as_str().unwrap_or_default());
                }
            }
            match put.send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) if r.status().is_client_error() => {
                    panic!("{name}: PUT: HTTP {}", r.status())
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
    // process (409 = already processing: an earlier answer was lost)
    let (s, body) = api
        .retried(
            reqwest::Method::POST,
            &format!("/api/v1/cases/{case}/evidence/{id}/process"),
            None,
            patience,
        )
        .await;
    assert!(
        s == 202 || s == 200 || s == 409,
        "{name}: process: HTTP {s}: {body}"
    );
    Submitted { id, aborted }
}

fn hex_sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Kills components at random until `stop` (or `kills` done), restarting each with
/// `chronoctl local up`. Returns what was killed.
fn killer(local: &Local, kills: u64, seed: u64, stop: &AtomicBool) -> Vec<String> {
    let mut rng = Rng(seed | 1);
    let mut done = Vec::new();
    // Every component once first (in a random order), then at random: each is killed at
    // least once whatever the seed, given as many kills as components.
    let mut first_round = victims(local);
    for k in (1..first_round.len()).rev() {
        first_round.swap(k, rng.below(k as u64 + 1) as usize);
    }
    for k in 0..kills {
        // 1–4 s between kills, while the submissions and the pipeline are busy
        let pause = Duration::from_millis(1000 + rng.below(3000));
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return done;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let victim = match first_round.get(k as usize) {
            Some(v) => v.clone(),
            None => {
                let all = victims(local);
                all[rng.below(all.len() as u64) as usize].clone()
            }
        };
        let Some(pid) = local.pid(&victim) else {
            continue;
        };
        eprintln!("soak: kill -9 {victim} (pid {pid})");
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        done.push(victim.clone());
        // `up` repairs; PostgreSQL's children may take a moment to notice their parent died
        let mut attempts = 0;
        loop {
            let (code, out, err) = local.chronoctl(&["up"]);
            if code == 0 {
                break;
            }
            attempts += 1;
            assert!(
                attempts < 5,
                "chronoctl local up after killing {victim} failed {attempts} times:\n{out}\n{err}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    done
}

/// Polls the case's evidence until none is open (not `done`, not `failed`), ignoring the
/// aborted registrations; panics after `patience`. Returns the evidence by id and how many
/// were open at the first poll.
async fn settle_all(
    api: &Api,
    case: &str,
    aborted: &BTreeSet<String>,
    patience: Duration,
    seed: u64,
) -> (BTreeMap<String, Value>, usize) {
    let until = Instant::now() + patience;
    let mut open_first = None;
    loop {
        let all: BTreeMap<String, Value> = evidence(api, case, Duration::from_secs(120))
            .await
            .into_iter()
            .map(|e| (e["id"].as_str().unwrap().to_owned(), e))
            .filter(|(id, _)| !aborted.contains(id))
            .collect();
        let open: Vec<&Value> = all
            .values()
            .filter(|e| e["state"] != "done" && e["state"] != "failed")
            .collect();
        let open_first = *open_first.get_or_insert(open.len());
        if open.is_empty() {
            return (all, open_first);
        }
        if Instant::now() > until {
            let stuck: Vec<String> = open
                .iter()
                .map(|e| format!("{}: {} {}", e["file_name"], e["state"], e["errors"]))
                .collect();
            panic!(
                "{} of {} evidence still open after {patience:?} (seed {seed}):\n{}",
                stuck.len(),
                all.len(),
                stuck.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[test]
fn soak_with_random_component_kills_loses_nothing() {
    let files = setting("CHRONO_SOAK_FILES", 200) as usize;
    let kills = setting("CHRONO_SOAK_KILLS", 10);
    let seed = setting(
        "CHRONO_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let settle = Duration::from_secs(setting("CHRONO_SOAK_SETTLE_SECS", 600));
    eprintln!("soak: {files} files, {kills} kills, seed {seed}");
    let started = Instant::now();

    let local = Local::new("chrono-soak");
    local.ok(&["up"]);
    let api_url = local.state()["components"]["api"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = local.ok(&["token", "--role", "admin"]).trim().to_owned();
    let api = Arc::new(Api {
        base: Arc::new(Mutex::new(api_url)),
        token,
        http: reqwest::Client::new(),
    });
    let corpus: Vec<(String, Vec<u8>)> = (0..files).map(evidence_file).collect();
    let expected: BTreeMap<String, Option<u64>> = corpus
        .iter()
        .map(|(n, b)| (n.clone(), expected_events(n, b)))
        .collect();
    assert!(
        expected
            .values()
            .filter(|e| e.is_some_and(|n| n > 0))
            .count()
            > files * 9 / 10,
        "the corpus must be mostly processable: {expected:?}"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let case = rt.block_on(async {
        let (s, body) = api
            .retried(
                reqwest::Method::POST,
                "/api/v1/cases",
                Some(&json!({"name": "soak", "description": "soak test"})),
                Duration::from_secs(60),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    });

    // Submissions (16 at a time) while the killer runs.
    let stop = AtomicBool::new(false);
    let (ids, killed) = std::thread::scope(|scope| {
        let killer = scope.spawn(|| killer(&local, kills, seed, &stop));
        let ids: BTreeMap<String, Submitted> = rt.block_on(async {
            use futures::StreamExt as _;
            futures::stream::iter(corpus.iter().cloned())
                .map(|(name, bytes)| {
                    let api = Arc::clone(&api);
                    let case = case.clone();
                    async move {
                        let submitted = submit(&api, &case, &name, &bytes).await;
                        (name, submitted)
                    }
                })
                .buffer_unordered(16)
                .collect()
                .await
        });
        eprintln!(
            "soak: {} files submitted after {:.0?}",
            ids.len(),
            started.elapsed()
        );
        // the kills go on while the pipeline works through the queue
        let killed = killer.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        (ids, killed)
    });
    local.ok(&["up"]);
    eprintln!(
        "soak: {} kills ({killed:?}) done after {:.0?}",
        killed.len(),
        started.elapsed()
    );

    // Every evidence settles: done or failed, none stuck.
    let aborted: BTreeSet<String> = ids.values().flat_map(|s| s.aborted.clone()).collect();
    let (first, open_after_kills) = rt.block_on(settle_all(&api, &case, &aborted, settle, seed));
    // A parsable file that failed (its processing was cut by a kill) has a way forward:
    // processed again, it must end `done` with all its events.
    let reprocessed: Vec<&String> = corpus
        .iter()
        .filter(|(n, _)| expected[n].is_some() && first[&ids[n].id]["state"] == "failed")
        .map(|(n, _)| n)
        .collect();
    let settled = if reprocessed.is_empty() {
        first.clone()
    } else {
        rt.block_on(async {
            for name in &reprocessed {
                let id = &ids[*name].id;
                let (s, body) = api
                    .retried(
                        reqwest::Method::POST,
                        &format!("/api/v1/cases/{case}/evidence/{id}/process"),
                        None,
                        Duration::from_secs(120),
                    )
                    .await;
                assert!(
                    s == 202 || s == 200,
                    "{name}: process again: HTTP {s}: {body}"
                );
            }
            settle_all(&api, &case, &aborted, settle, seed).await.0
        })
    };
    assert_eq!(
        settled.keys().collect::<BTreeSet<_>>(),
        ids.values().map(|s| &s.id).collect::<BTreeSet<_>>(),
        "exactly one evidence per submitted file (besides {} aborted registrations)",
        aborted.len()
    );

    // Rows in the database, per evidence.
    let database_url = {
        let pid = local.pid("api").unwrap();
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        String::from_utf8_lossy(&env)
            .split('\0')
            .find_map(|v| v.strip_prefix("DATABASE_URL="))
            .expect("the API gets DATABASE_URL")
            .to_owned()
    };
    let rows: BTreeMap<String, i64> = rt.block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(&database_url).await.unwrap();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT evidence_id::text, count(*) FROM events WHERE case_id = $1::uuid \
             GROUP BY evidence_id",
        )
        .bind(&case)
        .fetch_all(&mut c)
        .await
        .unwrap();
        rows.into_iter().collect()
    });

    // The stored bytes.
    let s3_endpoint = local
        .env("AWS_ENDPOINT_URL_S3")
        .or_else(|| local.env("AWS_ENDPOINT_URL"))
        .expect("the local S3 endpoint");
    let region = local
        .env("AWS_REGION")
        .unwrap_or_else(|| "us-east-1".into());
    let bucket = local.env("CHRONO_SOURCES_BUCKET").unwrap();
    let stored: BTreeMap<String, Result<String, String>> = rt.block_on(async {
        let sdk = chrono_provisioner::local::moto::sdk_config(&s3_endpoint, &region);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let mut out = BTreeMap::new();
        for (id, e) in &settled {
            let key = e["source_key"].as_str().unwrap();
            let got = match s3.get_object().bucket(&bucket).key(key).send().await {
                Ok(o) => match o.body.collect().await {
                    Ok(b) => Ok(hex_sha256(&b.into_bytes())),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
            };
            out.insert(id.clone(), got);
        }
        out
    });

    let mut problems = Vec::new();
    let mut lost = Vec::new();
    let mut outcome: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, bytes) in &corpus {
        let id = ids[name].id.as_str();
        let e = &settled[id];
        let state = e["state"].as_str().unwrap();
        *outcome
            .entry(if state == "done" { "done" } else { "failed" })
            .or_default() += 1;
        let n_rows = rows.get(id).copied().unwrap_or(0);
        let count = e["events_count"].as_i64().unwrap();
        if count != n_rows {
            problems.push(format!("{name}: events_count {count} but {n_rows} rows"));
        }
        match (state, expected[name]) {
            ("done", Some(want)) if n_rows as u64 != want => problems.push(format!(
                "{name}: {n_rows} rows, the file holds {want} events"
            )),
            ("done", None) => problems.push(format!("{name}: done, but it cannot be parsed")),
            ("failed", _) if e["errors"].to_string().len() < 10 => {
                problems.push(format!("{name}: failed without a reason: {e}"))
            }
            _ => {}
        }
        match &stored[id] {
            Ok(sha) if *sha == hex_sha256(bytes) => {}
            Ok(sha) => lost.push(format!("{name}: stored SHA-256 {sha} is not the upload's")),
            Err(why) => lost.push(format!("{name}: source object unreadable: {why}")),
        }
    }
    for name in &reprocessed {
        eprintln!(
            "soak: failed at first, processed again: {name}: {}",
            first[&ids[*name].id]["errors"]
        );
        if settled[&ids[*name].id]["state"] != "done" {
            problems.push(format!(
                "{name}: failed again when processed again: {}",
                settled[&ids[*name].id]["errors"]
            ));
        }
    }
    eprintln!(
        "soak: {files} files, {} kills ({killed:?}), seed {seed}, wall {:.0?}: {outcome:?}; \
         open when the kills ended: {open_after_kills}; parsable files failed at first and \
         processed again: {}; rows checked: {}; lost or changed uploads: {}; \
         registrations lost in a crash: {}",
        killed.len(),
        started.elapsed(),
        reprocessed.len(),
        rows.values().sum::<i64>(),
        lost.len(),
        aborted.len()
    );
    assert!(problems.is_empty(), "seed {seed}: {}", problems.join("\n"));
    assert!(
        lost.is_empty(),
        "seed {seed}: uploaded bytes lost (kills: {killed:?}):\n{}",
        lost.join("\n")
    );
}
