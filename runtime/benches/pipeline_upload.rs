//! Upload benchmark (`make bench`, under `tests/with-postgres.sh`), a bench binary that
//! prints its numbers: end-to-end `parse + upload` rows/s into PostgreSQL's `events` table
//! against a raw `COPY` of the same rows into the same table (target ≥ 0.7×).
//!
//! The evidence is a generated syslog file (sshd/sudo lines over several hosts, users and
//! addresses; `PIPELINE_BENCH_UPLOAD_ROWS` lines, default 200,000). Each round, on an
//! emptied `events` table with all its indexes:
//!
//! * **pipeline**: `parse` (normalize + gzip JSON lines, as written to S3) then `upload`
//!   (decode, `COPY` into staging, devices/identities upsert, `INSERT .. ON CONFLICT`);
//! * **raw COPY**: the rows the pipeline inserted, exported beforehand with `COPY .. TO
//!   STDOUT` (text format), loaded with one `COPY events (..) FROM STDIN`.
//!
//! S3 transfer is left out of both (it is the same bytes for any loader). A database
//! named `chrono_bench_upload` is created on the server of `DATABASE_URL` and dropped.
//!
//! Both loads fire the triggers that keep the per-minute/per-hour event counts of the
//! histogram (migration `20261202000200_event_counts.sql`); `PIPELINE_BENCH_WITHOUT_COUNTS=1`
//! disables them in the bench database, to measure what they cost.

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use chrono_runtime::pipeline::steps::{ParseOptions, SplitOptions, parse_to_writer, split};
use chrono_runtime::pipeline::upload::{Target, upload_part};
use futures::StreamExt;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

// The allocator the `chrono-pipeline` binary runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COLUMNS: &str = "case_id, evidence_id, ts, timestamp_desc, data_type, source, parser, \
    message, device_id, identity_id, event_code, action, outcome, src_ip, dst_ip, attributes, \
    tags, source_file, record_ref, dedup_key";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("pipeline_upload: benchmarks run with `cargo bench`; skipping");
        return;
    }
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("pipeline_upload: set DATABASE_URL (run under tests/with-postgres.sh)");
        std::process::exit(2);
    };
    let rows: usize = std::env::var("PIPELINE_BENCH_UPLOAD_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(&url, rows));
}

fn syslog(lines: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines * 110);
    for i in 0..lines {
        let host = format!("web{:02}", i % 17);
        let user = format!("user{}", i % 211);
        let ip = format!("10.{}.{}.{}", i % 7, (i / 7) % 250, (i / 1750) % 250);
        let (sec, min, hour) = (i % 60, (i / 60) % 60, (i / 3600) % 24);
        let day = 1 + (i / 86_400) % 28;
        let line = match i % 4 {
            0 => format!(
                "Mar {day:2} {hour:02}:{min:02}:{sec:02} {host} sshd[{}]: Accepted password for {user} from {ip} port {} ssh2",
                1000 + i % 30_000,
                1024 + i % 60_000
            ),
            1 => format!(
                "Mar {day:2} {hour:02}:{min:02}:{sec:02} {host} sshd[{}]: Failed password for {user} from {ip} port {} ssh2",
                1000 + i % 30_000,
                1024 + i % 60_000
            ),
            2 => format!(
                "Mar {day:2} {hour:02}:{min:02}:{sec:02} {host} sudo:   {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx"
            ),
            _ => format!(
                "Mar {day:2} {hour:02}:{min:02}:{sec:02} {host} CRON[{}]: pam_unix(cron:session): session opened for user root by (uid=0)",
                1000 + i % 30_000
            ),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

async fn database(url: &str) -> (PgPool, String) {
    let name = "chrono_bench_upload";
    let mut admin = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .expect("drop database");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let bench_url = match url.rsplit_once('/') {
        Some((base, rest)) => match rest.split_once('?') {
            Some((_, query)) => format!("{base}/{name}?{query}"),
            None => format!("{base}/{name}"),
        },
        None => panic!("DATABASE_URL has no database name"),
    };
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&bench_url)
        .await
        .expect("connect bench database");
    chrono_runtime::db::MIGRATOR
        .run(&pool)
        .await
        .expect("migrations");
    (pool, name.to_owned())
}

async fn bench(url: &str, lines: usize) {
    let (pool, name) = database(url).await;
    let without_counts = std::env::var("PIPELINE_BENCH_WITHOUT_COUNTS").is_ok_and(|v| v == "1");
    if without_counts {
        for trigger in [
            "events_counts_insert",
            "events_counts_delete",
            "events_counts_update",
            "events_counts_truncate",
        ] {
            sqlx::query(&format!("ALTER TABLE events DISABLE TRIGGER {trigger}"))
                .execute(&pool)
                .await
                .expect("disable the event counts triggers");
        }
    }
    let case_id = Uuid::now_v7();
    sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, 'bench', 'bench')")
        .bind(case_id)
        .execute(&pool)
        .await
        .expect("case");
    let evidence = [Uuid::now_v7(), Uuid::now_v7()];
    for (i, id) in evidence.iter().enumerate() {
        sqlx::query(
            "INSERT INTO evidence (id, case_id, file_name, source_key, created_by, state)
             VALUES ($1, $2, 'auth.log', $3, 'bench', 'processing')",
        )
        .bind(id)
        .bind(case_id)
        .bind(format!("bench/{i}/auth.log"))
        .execute(&pool)
        .await
        .expect("evidence");
    }
    let target = Target {
        case_id,
        evidence_id: evidence[0],
    };
    let data = syslog(lines);
    let mut opts = SplitOptions::new("auth.log");
    opts.evidence_id = Some(target.evidence_id);
    opts.reference_time = Some(Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap());
    let manifest = split(Cursor::new(&data), &opts).expect("split");
    let parts: Vec<String> = manifest.parts.iter().map(|p| p.id.clone()).collect();
    println!(
        "pipeline_upload: {lines} syslog lines ({:.1} MiB), {} part(s); events table with all indexes, {}",
        data.len() as f64 / (1024.0 * 1024.0),
        parts.len(),
        if without_counts {
            "event counts triggers DISABLED"
        } else {
            "event counts triggers on"
        }
    );
    let mut pipeline_times = Vec::new();
    let mut copy_times = Vec::new();
    let mut events = 0u64;
    for round in 0..3 {
        truncate(&pool).await;
        // pipeline: parse + upload
        let started = Instant::now();
        let mut rows = 0;
        for part in &manifest.parts {
            let mut gz = Vec::new();
            let summary =
                parse_to_writer(Cursor::new(&data), part, &ParseOptions::default(), &mut gz)
                    .expect("parse");
            let report = upload_part(&pool, target, &summary, &parts, Cursor::new(gz))
                .await
                .expect("upload");
            rows += report.inserted;
        }
        let pipeline = started.elapsed();
        events = rows;
        // the same rows, exported, then loaded with one raw COPY
        let exported = export(&pool, target.evidence_id, evidence[1]).await;
        truncate(&pool).await;
        let started = Instant::now();
        let mut conn = pool.acquire().await.expect("connection");
        let mut copy = conn
            .copy_in_raw(&format!("COPY events ({COLUMNS}) FROM STDIN"))
            .await
            .expect("copy");
        copy.send(exported).await.expect("copy send");
        let copied = copy.finish().await.expect("copy finish");
        let raw = started.elapsed();
        drop(conn);
        assert_eq!(copied, rows, "raw COPY loads the same rows");
        println!(
            "  round {round}: pipeline {:>8.0} rows/s ({:.2} s), raw COPY {:>8.0} rows/s ({:.2} s)",
            rate(rows, pipeline),
            pipeline.as_secs_f64(),
            rate(rows, raw),
            raw.as_secs_f64()
        );
        pipeline_times.push(pipeline);
        copy_times.push(raw);
    }
    let (p, c) = (median(&mut pipeline_times), median(&mut copy_times));
    println!(
        "pipeline_upload: median pipeline {:.0} rows/s, raw COPY {:.0} rows/s, ratio {:.2}x (target >= 0.70x), {events} rows",
        rate(events, p),
        rate(events, c),
        c.as_secs_f64() / p.as_secs_f64()
    );
    let _ = std::io::stdout().flush();
    pool.close().await;
    let mut admin = sqlx::PgConnection::connect(url).await.expect("connect");
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await;
}

async fn truncate(pool: &PgPool) {
    sqlx::query("TRUNCATE events, event_labels, event_comments, evidence_parts")
        .execute(pool)
        .await
        .expect("truncate");
    sqlx::query("VACUUM ANALYZE events, event_counts_minute, event_counts_hour")
        .execute(pool)
        .await
        .expect("vacuum");
}

async fn export(pool: &PgPool, from: Uuid, to: Uuid) -> Vec<u8> {
    let select = COLUMNS.replace("evidence_id", &format!("'{to}'::uuid"));
    let mut conn = pool.acquire().await.expect("connection");
    let mut stream = conn
        .copy_out_raw(&format!(
            "COPY (SELECT {select} FROM events WHERE evidence_id = '{from}') TO STDOUT"
        ))
        .await
        .expect("copy out");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("copy out chunk"));
    }
    out
}

fn rate(rows: u64, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}
