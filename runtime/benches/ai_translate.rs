//! Translation latency of the local translator (issue 17): every question of both
//! evaluation sets (`runtime/testdata/ai/eval.json`, `eval-catalog.json`) through
//! [`translate`] — event kinds matched against the event catalog, names, times — many
//! rounds each. Prints p50/p99/max per call against the AI cache-hit budget of 5 ms for the
//! translation itself, and what loading the catalog and building its matching index costs
//! once per process (the first translation). Run by `make bench` (release).

use std::time::{Duration, Instant};

use chrono_runtime::ai::translate::translate;
use chrono_runtime::filter::ResolveCtx;
use serde_json::Value;

const ROUNDS: usize = 200;

fn questions() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ai");
    let mut out = Vec::new();
    for file in ["eval.json", "eval-catalog.json"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("evaluation set");
        let v: Value = serde_json::from_str(&text).expect("json");
        for q in v["questions"].as_array().into_iter().flatten() {
            out.push(q["q"].as_str().unwrap_or_default().to_string());
        }
        for q in v["benign"].as_array().into_iter().flatten() {
            out.push(q.as_str().unwrap_or_default().to_string());
        }
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let ctx = ResolveCtx {
        now: "2026-01-01T12:00:00Z".parse().expect("time"),
        tz: chrono_tz::Europe::Berlin,
    };
    let questions = questions();

    let t = Instant::now();
    let catalog = chrono_runtime::knowledge::load().expect("catalog");
    let load = t.elapsed();
    drop(catalog);
    // The first translation loads the catalog and builds the matching index.
    let t = Instant::now();
    let _ = translate(&questions[0], &ctx);
    let first = t.elapsed();

    let mut times = Vec::with_capacity(ROUNDS * questions.len());
    for _ in 0..ROUNDS {
        for q in &questions {
            let t = Instant::now();
            let out = translate(q, &ctx);
            times.push(t.elapsed());
            std::hint::black_box(out);
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let p99 = pct(0.99);
    println!(
        "translate ({} questions x {ROUNDS} rounds): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms \
         (budget p99 <= 5 ms: {})",
        questions.len(),
        ms(pct(0.50)),
        ms(p99),
        ms(times[times.len() - 1]),
        if p99 <= Duration::from_millis(5) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "once per process: reading the catalog files {:.1} ms; first translation (catalog + \
         matching index) {:.1} ms",
        ms(load),
        ms(first)
    );
}
