//! The evaluation sets of the AI filter, run for the `local` provider over the pipeline's
//! output of the real evidence files in `runtime/testdata/evidence/` (split → parse →
//! upload), each question asked at its own `now`:
//!
//! * `runtime/testdata/ai/eval.json` — the first set (162 questions, written around the
//!   first translator's phrase list): kept as a regression set, same rows ≥ 98 %;
//! * `runtime/testdata/ai/eval-catalog.json` — questions written from the event catalog's
//!   titles and investigators' phrasing before the translator was tuned (issue 17), split
//!   into `dev` (tuned on) and a held-out `test` part (run once at the end): same rows
//!   ≥ 90 % on the held-out part; and a benign set: no plainly forensic question refused.
//!
//! Exact match: the translator's document equals the expected one, up to the order of
//! `all`/`any` children and `in` lists. Same rows: the served filter, after name
//! resolution, returns exactly the expected filter's events in PostgreSQL. A question whose
//! expected filter matches nothing counts as same rows only when it is matched exactly (any
//! over-narrow filter would return nothing too).

mod ai_support;

use ai_support::{analyst, local_service, pool, rows, seed, testdata};
use chrono_runtime::ai::catalog::PgCatalog;
use chrono_runtime::ai::local::LocalGuard;
use chrono_runtime::ai::provider::Intent;
use chrono_runtime::ai::translate::{Translation, translate};
use chrono_runtime::ai::{ChatRequest, ReplyKind};
use chrono_runtime::filter::{FilterDocument, ResolveCtx};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

struct Case {
    question: String,
    expected: FilterDocument,
    ctx: ResolveCtx,
    split: String,
    rows: Option<i64>,
}

fn load(file: &str) -> Value {
    serde_json::from_str(&testdata(file)).unwrap()
}

fn eval_set(file: &str) -> Vec<Case> {
    let eval = load(file);
    let default = ResolveCtx {
        now: eval["now"].as_str().unwrap().parse().unwrap(),
        tz: eval["tz"].as_str().unwrap().parse().unwrap(),
    };
    eval["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| Case {
            question: q["q"].as_str().unwrap().to_string(),
            expected: FilterDocument::from_value(q["filter"].clone())
                .unwrap_or_else(|e| panic!("expected filter of {:?} is invalid: {e}", q["q"])),
            ctx: ResolveCtx {
                now: q["now"]
                    .as_str()
                    .map(|n| n.parse().unwrap())
                    .unwrap_or(default.now),
                tz: default.tz,
            },
            split: q["split"].as_str().unwrap_or("all").to_string(),
            rows: q["rows"].as_i64(),
        })
        .collect()
}

/// The document as JSON with `all`/`any` children and `in`/`nin` lists sorted and
/// single-child groups flattened.
fn canonical(doc: &FilterDocument) -> Value {
    fn walk(v: &mut Value) {
        let Value::Object(map) = v else { return };
        for key in ["all", "any"] {
            if let Some(Value::Array(children)) = map.get_mut(key) {
                children.iter_mut().for_each(walk);
                children.sort_by_key(|c| c.to_string());
                if children.len() == 1 {
                    let only = children.pop().unwrap_or(Value::Null);
                    *v = only;
                    return;
                }
            }
        }
        if let Some(child) = map.get_mut("not") {
            walk(child);
        }
        if let Some(Value::Array(items)) = map.get_mut("value") {
            items.sort_by_key(|c| c.to_string());
        }
    }
    let mut v = serde_json::to_value(doc).unwrap();
    if let Some(w) = v.get_mut("where") {
        walk(w);
    }
    v
}

/// What one run of a set measured.
struct Report {
    questions: usize,
    exact: usize,
    same: usize,
    empty_expected: usize,
}

impl Report {
    fn pct(&self, n: usize) -> f64 {
        100.0 * n as f64 / self.questions.max(1) as f64
    }
}

/// Asks every question of `set` through the local provider's chat service and compares
/// what it serves with the expected filters.
async fn evaluate(db: &PgPool, label: &str, set: &[Case]) -> Report {
    let cases = seed(db).await;
    let catalog = PgCatalog::new(db.clone(), Some("chrono_ro".into())).unwrap();
    let user = analyst("investigator", &[cases.case]);
    let mut services = std::collections::HashMap::new();
    let mut r = Report {
        questions: set.len(),
        exact: 0,
        same: 0,
        empty_expected: 0,
    };
    let mut misses = Vec::new();
    for c in set {
        let ctx = &c.ctx;
        let service = services
            .entry(ctx.now)
            .or_insert_with(|| local_service(db.clone(), ctx.now));
        let produced = match translate(&c.question, ctx) {
            Translation::Filter(d) => Some(d),
            Translation::Clarify(_) => None,
        };
        let is_exact = produced
            .as_ref()
            .is_some_and(|d| canonical(d) == canonical(&c.expected));
        let reply = service
            .handle(
                &user,
                ChatRequest {
                    case_id: cases.case,
                    session_id: None,
                    question: c.question.clone(),
                    tz: Some(ctx.tz.to_string()),
                },
            )
            .await
            .unwrap();
        // the expected document's names resolved the way the server resolves them
        let mut expected = c.expected.clone();
        catalog.resolve(cases.case, &mut expected).await.unwrap();
        let want = rows(db, cases.case, &expected, ctx).await;
        if let Some(pinned) = c.rows {
            assert_eq!(
                want.count, pinned,
                "{}: the expected filter's rows changed (pipeline output or resolution)",
                c.question
            );
        }
        let got = match (&reply.kind, &reply.filter) {
            (ReplyKind::Filter, Some(f)) => Some(rows(db, cases.case, f, ctx).await),
            _ => None,
        };
        if let Some(got) = &got {
            assert_eq!(
                reply.count,
                Some(got.count),
                "{}: the reply's count must be the filter's row count",
                c.question
            );
        }
        if is_exact {
            r.exact += 1;
        }
        let same = if want.count == 0 {
            r.empty_expected += 1;
            is_exact
        } else {
            got.as_ref() == Some(&want)
        };
        if same {
            r.same += 1;
        } else {
            misses.push(format!(
                "  [{}] {:?} ({} rows wanted, {} served)\n    expected {}\n    produced {}",
                c.split,
                c.question,
                want.count,
                got.as_ref().map_or(-1, |g| g.count),
                canonical(&c.expected),
                produced.as_ref().map(canonical).unwrap_or(Value::Null)
            ));
        }
    }
    println!(
        "AI evaluation {label} (local provider, {} questions): exact-match {:.1} %, \
         same-rows {:.1} % ({} expected filters match no event)",
        r.questions,
        r.pct(r.exact),
        r.pct(r.same),
        r.empty_expected
    );
    if !misses.is_empty() {
        println!("misses:\n{}", misses.join("\n"));
    }
    r
}

#[test]
fn the_evaluation_sets_are_large_and_cover_every_source() {
    let old = eval_set("eval.json");
    assert!(old.len() >= 120, "only {} questions", old.len());
    let new = eval_set("eval-catalog.json");
    let dev = new.iter().filter(|c| c.split == "dev").count();
    let test = new.iter().filter(|c| c.split == "test").count();
    assert!(dev >= 50 && test >= 50, "dev {dev}, test {test}");
    let text: String = old
        .iter()
        .chain(new.iter())
        .map(|c| serde_json::to_string(&c.expected).unwrap())
        .collect();
    for needle in [
        "\"windows:evtx:record\"",
        "\"syslog:line\"",
        "\"aws:cloudtrail:event\"",
        "\"sshd\"",
        "\"Microsoft-Windows-Sysmon/Operational\"",
        "attr.Event.EventData.LogonType",
        "attr.errorCode",
        "\"category\"",
        "\"System\"",
        "process_start",
        "network_connection",
        "account_created",
        "privilege_escalation",
        "access_key_created",
        "object_read",
    ] {
        assert!(text.contains(needle), "no expected filter uses {needle}");
    }
    let benign = load("eval-catalog.json")["benign"]
        .as_array()
        .unwrap()
        .len();
    assert!(benign >= 40, "only {benign} benign questions");
}

/// The ground truth of the catalog set, checked against the pipeline's real output: every
/// expected filter (names resolved as the server resolves them) matches the number of
/// events pinned in the file (`rows`), and every `absent` question matches none. Runs no
/// translator.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn catalog_set_ground_truth_is_pinned(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = pool(opts).await;
    let cases = seed(&db).await;
    let catalog = PgCatalog::new(db.clone(), Some("chrono_ro".into())).unwrap();
    let raw = load("eval-catalog.json");
    let classes: Vec<String> = raw["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["class"].as_str().unwrap_or("").to_string())
        .collect();
    let mut wrong = Vec::new();
    for (c, class) in eval_set("eval-catalog.json").iter().zip(classes) {
        let mut expected = c.expected.clone();
        catalog.resolve(cases.case, &mut expected).await.unwrap();
        let got = rows(&db, cases.case, &expected, &c.ctx).await;
        if Some(got.count) != c.rows || (class == "absent" && got.count != 0) {
            wrong.push(format!(
                "[{}] {:?}: {} rows (pinned {:?}, class {class})",
                c.split, c.question, got.count, c.rows
            ));
        }
    }
    assert!(wrong.is_empty(), "ground truth:\n{}", wrong.join("\n"));
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn regression_set_keeps_its_rows(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = pool(opts).await;
    let set = eval_set("eval.json");
    let r = evaluate(&db, "regression set (eval.json)", &set).await;
    assert!(
        (r.empty_expected as f64) < 0.05 * r.questions as f64,
        "{} expected filters match nothing; the evaluation would be too easy",
        r.empty_expected
    );
    assert!(
        r.same as f64 >= 0.98 * r.questions as f64,
        "same-rows accuracy {}/{} is below 98 %",
        r.same,
        r.questions
    );
}

/// One split of the catalog set through the local provider: same rows ≥ 90 %.
async fn catalog_split(opts: PgConnectOptions, split: &str, label: &str) {
    let db = pool(opts).await;
    let set: Vec<Case> = eval_set("eval-catalog.json")
        .into_iter()
        .filter(|c| c.split == split)
        .collect();
    let r = evaluate(&db, label, &set).await;
    assert!(
        r.same as f64 >= 0.9 * r.questions as f64,
        "same-rows accuracy {}/{} is below 90 %",
        r.same,
        r.questions
    );
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn catalog_set_dev_split(_: PgPoolOptions, opts: PgConnectOptions) {
    catalog_split(opts, "dev", "catalog set, dev split").await;
}

/// The held-out split: not tuned on; run once when the translator was done.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn catalog_set_held_out_test_split(_: PgPoolOptions, opts: PgConnectOptions) {
    catalog_split(opts, "test", "catalog set, held-out test split").await;
}

/// No plainly forensic question is refused by the local guard: the benign set, and every
/// question of both evaluation sets.
#[test]
fn no_forensic_question_is_refused() {
    let catalog = load("eval-catalog.json");
    let mut questions: Vec<String> = catalog["benign"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap().to_string())
        .collect();
    let benign = questions.len();
    for file in ["eval.json", "eval-catalog.json"] {
        questions.extend(eval_set(file).into_iter().map(|c| c.question));
    }
    let refused: Vec<&String> = questions
        .iter()
        .filter(|q| matches!(LocalGuard::verdict(q), Intent::OffTopic | Intent::Injection))
        .collect();
    println!(
        "false refusals (local guard): {} of {} questions ({} benign, the rest from the \
         evaluation sets): {:.1} %",
        refused.len(),
        questions.len(),
        benign,
        100.0 * refused.len() as f64 / questions.len() as f64
    );
    assert!(refused.is_empty(), "refused: {refused:#?}");
}
