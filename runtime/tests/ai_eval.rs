//! The evaluation set of the AI filter (`runtime/testdata/ai/eval.json`: questions over the
//! pipeline's output of the real evidence files in `runtime/testdata/evidence/`, with the
//! filter documents they should become, each asked at its own `now`), run for the `local`
//! provider. Reports exact-match accuracy (the translator's document equals the expected
//! one, up to the order of `all`/`any` children and `in` lists) and same-rows accuracy (the
//! served filter, after name resolution, returns exactly the expected filter's events in
//! PostgreSQL); same-rows must be at least 90 %.

mod ai_support;

use ai_support::{analyst, eval_ctx, local_service, pool, rows, seed, testdata};
use chrono_runtime::ai::catalog::PgCatalog;
use chrono_runtime::ai::translate::{Translation, translate};
use chrono_runtime::ai::{ChatRequest, ReplyKind};
use chrono_runtime::filter::{FilterDocument, ResolveCtx};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

struct Case {
    question: String,
    expected: FilterDocument,
    ctx: ResolveCtx,
}

fn eval_set() -> Vec<Case> {
    let eval: Value = serde_json::from_str(&testdata("eval.json")).unwrap();
    let default = eval_ctx();
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

#[test]
fn the_evaluation_set_is_large_and_covers_every_source() {
    let set = eval_set();
    assert!(set.len() >= 120, "only {} questions", set.len());
    let text: String = set
        .iter()
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
        "process_start",
        "network_connection",
        "account_created",
        "privilege_escalation",
        "access_key_created",
        "object_read",
    ] {
        assert!(text.contains(needle), "no expected filter uses {needle}");
    }
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn local_provider_meets_the_same_rows_target(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = pool(opts).await;
    let cases = seed(&db).await;
    let mut services = std::collections::HashMap::new();
    let catalog = PgCatalog::new(db.clone(), Some("chrono_ro".into())).unwrap();
    let user = analyst("investigator", &[cases.case]);
    let set = eval_set();

    let (mut exact, mut same, mut empty_expected) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for c in &set {
        let ctx = &c.ctx;
        let service = services
            .entry(ctx.now)
            .or_insert_with(|| local_service(db.clone(), ctx.now));
        // exact match: the translator's own document
        let produced = match translate(&c.question, ctx) {
            Translation::Filter(d) => Some(d),
            Translation::Clarify(_) => None,
        };
        let is_exact = produced
            .as_ref()
            .is_some_and(|d| canonical(d) == canonical(&c.expected));
        if is_exact {
            exact += 1;
        }
        // same rows: what the service serves (names resolved to ids) vs the expected filter
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
        let want = rows(&db, cases.case, &expected, ctx).await;
        if want.count == 0 {
            empty_expected += 1;
        }
        let got = match (&reply.kind, &reply.filter) {
            (ReplyKind::Filter, Some(f)) => Some(rows(&db, cases.case, f, ctx).await),
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
        if got.as_ref() == Some(&want) {
            same += 1;
        } else {
            misses.push(format!(
                "  {:?}\n    expected {}\n    produced {}",
                c.question,
                canonical(&c.expected),
                produced.as_ref().map(canonical).unwrap_or(Value::Null)
            ));
        }
        if !is_exact && got.as_ref() == Some(&want) {
            println!(
                "same rows, not exact: {:?}\n    expected {}\n    produced {}",
                c.question,
                canonical(&c.expected),
                produced.as_ref().map(canonical).unwrap_or(Value::Null)
            );
        }
    }
    let n = set.len() as f64;
    println!(
        "AI evaluation (local provider, {} questions): exact-match {:.1} %, same-rows {:.1} % \
         ({} expected filters match no event)",
        set.len(),
        100.0 * exact as f64 / n,
        100.0 * same as f64 / n,
        empty_expected
    );
    if !misses.is_empty() {
        println!("misses:\n{}", misses.join("\n"));
    }
    assert!(
        (empty_expected as f64) < 0.05 * n,
        "{empty_expected} expected filters match nothing; the evaluation would be too easy"
    );
    assert!(
        same as f64 >= 0.9 * n,
        "same-rows accuracy {same}/{} is below 90 %",
        set.len()
    );
}
