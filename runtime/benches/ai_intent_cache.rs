//! Guard cache-hit latency: the guard step of a repeated question
//! ([`ChatService::verdict`]) answered from the intent cache, against DynamoDB in the
//! moto server (as in local mode) and the in-process store. Prints p50/p99/max over
//! 2000 lookups each; the target is p99 ≤ 5 ms locally. Run by `make bench`.

#[path = "../tests/ai_support/moto.rs"]
mod moto;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono_runtime::ai::ChatService;
use chrono_runtime::ai::catalog::PgCatalog;
use chrono_runtime::ai::local::{LocalGuard, LocalTranslator};
use chrono_runtime::ai::store::{ChatStore, DynamoStore, MemoryStore};

const RUNS: usize = 2000;

fn service(store: Arc<dyn ChatStore>) -> ChatService {
    // The guard step never touches PostgreSQL; a lazy pool never connects.
    let db = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://bench@127.0.0.1:1/none")
        .expect("a lazy pool");
    let catalog = PgCatalog::new(db, None).expect("no role");
    ChatService::new(
        Arc::new(LocalGuard),
        Arc::new(LocalTranslator),
        store,
        catalog,
    )
}

async fn measure(name: &str, svc: &ChatService) -> Duration {
    let questions: Vec<String> = (0..50)
        .map(|i| format!("failed logons for user{i} yesterday"))
        .collect();
    for q in &questions {
        let (_, cached) = svc.verdict(q).await.expect("warm-up verdict");
        assert!(!cached, "fresh store");
    }
    let mut times = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let q = &questions[i % questions.len()];
        let t = Instant::now();
        let (_, cached) = svc.verdict(q).await.expect("verdict");
        times.push(t.elapsed());
        assert!(cached, "every measured lookup is a cache hit");
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let p99 = pct(0.99);
    println!(
        "intent cache hit ({name}, {RUNS} runs): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms \
         (target p99 <= 5 ms: {})",
        pct(0.50).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        if p99 <= Duration::from_millis(5) {
            "met"
        } else {
            "MISSED"
        }
    );
    p99
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; there are no filters to honour.
    let moto = moto::Moto::start().await;
    let client = moto.dynamodb();
    let tables = moto::create_tables(&client).await;
    measure(
        "DynamoDB on moto",
        &service(Arc::new(DynamoStore::new(client, tables))),
    )
    .await;
    measure(
        "in-process store",
        &service(Arc::new(MemoryStore::default())),
    )
    .await;
}
