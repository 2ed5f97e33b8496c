//! The filter compiler against a real PostgreSQL: each document (including SQL-injection
//! attempts in values and attribute keys) returns exactly the expected fixture events, in
//! order, never an event of the other case; counts agree; and no user string ever appears
//! in the SQL text.

mod common;

use chrono::{DateTime, Utc};
use chrono_runtime::filter::{
    FilterDocument, Keyset, ResolveCtx, SqlParam, compile, compile_count, compile_page,
};
use chrono_runtime::model::EventRow;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const ALL_ASC: &[&str] = &[
    "r20", "r01", "r02", "r03", "r04", "r05", "r06", "r07", "r08", "r09", "r10", "r11", "r12",
    "r13", "r14", "r15", "r16", "r17", "r18", "r19",
];

fn except(excluded: &[&str]) -> Vec<&'static str> {
    ALL_ASC
        .iter()
        .copied()
        .filter(|r| !excluded.contains(r))
        .collect()
}

fn leaf(field: &str, op: &str, value: Value) -> Value {
    json!({"field": field, "op": op, "value": value})
}

fn w(node: Value) -> Value {
    json!({ "where": node })
}

async fn run(db: &PgPool, fx: &common::Fixture, doc: &Value, ctx: &ResolveCtx) -> Vec<String> {
    let parsed = FilterDocument::parse(doc.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{doc} rejected: {e}"));
    let q = compile(&parsed, fx.case, ctx).unwrap();
    let mut rows: Vec<EventRow> = sqlx::query_as_with(&q.sql, q.arguments().unwrap())
        .fetch_all(db)
        .await
        .unwrap_or_else(|e| panic!("{doc}: {e}\n{}", q.sql));
    assert!(rows.len() <= q.page_size as usize + 1);
    rows.truncate(q.page_size as usize);
    assert!(
        rows.iter().all(|r| r.case_id == fx.case),
        "{doc} leaked another case"
    );
    // the count variant agrees with the rows (the fixture is smaller than any limit used)
    let c = compile_count(&parsed, fx.case, ctx).unwrap();
    let count: i64 = sqlx::query_scalar_with(&c.sql, c.arguments().unwrap())
        .fetch_one(db)
        .await
        .unwrap();
    if parsed.limit as usize >= 20 {
        assert_eq!(count as usize, rows.len(), "count of {doc}");
    }
    // no string value of the document reaches the SQL text
    for p in &q.params {
        if let SqlParam::Text(s) = p
            && s.len() > 3
        {
            assert!(!q.sql.contains(s.as_str()), "{s} inlined into {}", q.sql);
        }
    }
    rows.into_iter().map(|r| r.record_ref).collect()
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn filter_documents_return_exactly_the_expected_events(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let now: DateTime<Utc> = "2024-03-02T01:00:00Z".parse().unwrap();
    let utc = ResolveCtx::utc(now);
    let ny = ResolveCtx {
        now,
        tz: chrono_tz::America::New_York,
    };
    let injection = "'; DROP TABLE events; --";

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), ALL_ASC.to_vec()),
        (
            w(leaf("action", "eq", json!("logon"))),
            vec!["r20", "r01", "r02", "r03", "r04", "r08", "r09", "r11"],
        ),
        (
            w(
                json!({"all": [leaf("action", "eq", json!("logon")), leaf("outcome", "eq", json!("failure"))]}),
            ),
            vec!["r02", "r03", "r08"],
        ),
        (
            w(leaf("outcome", "neq", json!("success"))),
            vec!["r02", "r03", "r08", "r13", "r18", "r19"],
        ),
        (
            w(leaf("action", "in", json!(["logoff", "account_created"]))),
            vec!["r07", "r16", "r17"],
        ),
        (
            w(leaf("action", "nin", json!(["logon", "logoff"]))),
            vec![
                "r05", "r06", "r07", "r10", "r12", "r13", "r14", "r15", "r18", "r19",
            ],
        ),
        (
            w(leaf("message", "contains", json!("FAILED"))),
            vec!["r02", "r03", "r08"],
        ),
        (
            w(leaf("message", "contains", json!("_"))),
            vec!["r14", "r19"],
        ),
        (w(leaf("message", "contains", json!("%"))), vec!["r14"]),
        (w(leaf("message", "contains", json!("\\"))), vec!["r06"]),
        (
            w(leaf("message", "prefix", json!("an account"))),
            vec!["r01", "r02", "r03", "r04", "r16", "r17"],
        ),
        (
            w(json!({"field": "message", "op": "exists", "value": false})),
            vec!["r18"],
        ),
        (
            w(leaf("message", "contains", json!(injection))),
            vec!["r20"],
        ),
        (w(leaf("message", "eq", json!(injection))), vec![]),
        (
            w(leaf("source", "eq", json!("CLOUDTRAIL"))),
            vec!["r11", "r12", "r13", "r14", "r15"],
        ),
        (
            w(
                json!({"all": [leaf("source", "in", json!(["SYSLOG", "CLOUDTRAIL"])), {"not": leaf("action", "eq", json!("logon"))}]}),
            ),
            vec!["r10", "r12", "r13", "r14", "r15"],
        ),
        (
            w(leaf("data_type", "prefix", json!("syslog:"))),
            vec!["r08", "r09", "r10"],
        ),
        (
            w(leaf("event_code", "eq", json!("4625"))),
            vec!["r02", "r03"],
        ),
        (
            w(leaf("event_code", "prefix", json!("46"))),
            vec![
                "r20", "r01", "r02", "r03", "r04", "r05", "r06", "r16", "r17",
            ],
        ),
        (
            w(leaf(
                "event_code",
                "in",
                json!(
                    (0..99)
                        .map(|i| format!("x{i}"))
                        .chain(["4720".to_string()])
                        .collect::<Vec<_>>()
                ),
            )),
            vec!["r07"],
        ),
        (
            w(leaf("src_ip", "eq", json!("203.0.113.7"))),
            vec!["r02", "r03", "r04"],
        ),
        (
            w(leaf("src_ip", "cidr", json!("10.0.0.0/8"))),
            vec!["r01", "r09"],
        ),
        (
            w(leaf("src_ip", "cidr", json!("2001:db8::/32"))),
            vec!["r14"],
        ),
        (
            w(leaf("src_ip", "in", json!(["192.0.2.44", "198.51.100.9"]))),
            vec!["r08", "r11", "r12", "r13"],
        ),
        (
            w(json!({"field": "dst_ip", "op": "exists"})),
            vec!["r01", "r02"],
        ),
        (
            w(json!({"field": "src_ip", "op": "exists", "value": false})),
            vec![
                "r20", "r05", "r06", "r07", "r10", "r15", "r16", "r17", "r18", "r19",
            ],
        ),
        (
            w(leaf("tag", "eq", json!("bruteforce"))),
            vec!["r02", "r03", "r04"],
        ),
        (
            w(leaf("tag", "in", json!(["persistence", "suspicious"]))),
            vec!["r04", "r06", "r07", "r12", "r19"],
        ),
        (
            w(json!({"field": "tag", "op": "exists"})),
            vec!["r02", "r03", "r04", "r06", "r07", "r12", "r19"],
        ),
        (
            w(leaf("tag", "neq", json!("persistence"))),
            except(&["r07", "r12", "r19"]),
        ),
        (w(leaf("label", "eq", json!("star"))), vec!["r02"]),
        (
            w(json!({"field": "label", "op": "exists"})),
            vec!["r02", "r07"],
        ),
        (
            w(leaf("label", "nin", json!(["star", "important"]))),
            except(&["r02", "r07"]),
        ),
        (
            w(leaf("device", "eq", json!("ws01"))),
            vec![
                "r20", "r01", "r02", "r03", "r04", "r05", "r06", "r16", "r17",
            ],
        ),
        (
            w(leaf("device", "in", json!(["SRV-DC1", "web-1"]))),
            vec!["r07", "r08", "r09", "r10", "r19"],
        ),
        (
            w(leaf("device", "contains", json!("dc"))),
            vec!["r07", "r19"],
        ),
        (
            w(json!({"field": "device", "op": "exists", "value": false})),
            vec!["r11", "r12", "r13", "r14", "r15", "r18"],
        ),
        (
            w(leaf("device", "eq", json!(fx.web1.to_string()))),
            vec!["r08", "r09", "r10"],
        ),
        (
            w(leaf(
                "device",
                "in",
                json!([fx.web1.to_string(), "srv-dc1"]),
            )),
            vec!["r07", "r08", "r09", "r10", "r19"],
        ),
        (
            w(leaf("identity", "eq", json!("corp\\ALICE"))),
            vec!["r20", "r01", "r16"],
        ),
        (
            w(leaf("identity", "prefix", json!("arn:aws:iam::"))),
            vec!["r11", "r12", "r13", "r14", "r15"],
        ),
        (
            w(leaf("identity", "eq", json!("mallory' OR '1'='1"))),
            vec![],
        ),
        (
            w(leaf("identity", "neq", json!(fx.bob.to_string()))),
            except(&["r02", "r03", "r04", "r05", "r06", "r07", "r17"]),
        ),
        (
            w(leaf("attr.LogonType", "eq", json!("10"))),
            vec!["r02", "r03", "r04"],
        ),
        (
            w(leaf("attr.LogonType", "in", json!([3, "2"]))),
            vec!["r20", "r01"],
        ),
        (w(leaf("attr.ProcessId", "gt", json!(4000))), vec!["r06"]),
        (w(leaf("attr.bytes", "gte", json!(0))), vec!["r13", "r14"]),
        (w(leaf("attr.bytes", "lt", json!(100.5))), vec!["r13"]),
        (
            w(json!({"field": "attr.errorCode", "op": "exists"})),
            vec!["r13"],
        ),
        (
            w(leaf("attr.x' || pg_sleep(10) --", "eq", json!("1"))),
            vec![],
        ),
        (
            w(leaf("attr.FailureReason", "contains", json!("%%"))),
            vec!["r02"],
        ),
        (
            w(
                json!({"all": [leaf("ts", "gte", json!("2024-03-01T09:00:00Z")), leaf("ts", "lt", json!("2024-03-01T10:00:00Z"))]}),
            ),
            vec!["r11", "r12", "r13", "r14", "r15"],
        ),
        (
            w(leaf("ts", "eq", json!("2024-02-29T23:59:59.999999Z"))),
            vec!["r20"],
        ),
        (
            json!({"time": {"from": "2024-03-01T10:00:00+01:00", "to": "2024-03-01T11:00:00+01:00"}}),
            vec!["r11", "r12", "r13", "r14", "r15", "r16", "r17"],
        ),
        (
            json!({"time": {"around": "2024-03-01T08:05:00Z", "window": "1m"}}),
            vec!["r02", "r03", "r04"],
        ),
        (json!({"time": {"last": "1d"}}), except(&["r20"])),
        (json!({"time": {"last": "90m"}}), vec!["r19"]),
        (json!({"time": {"to": "2024-03-01T00:00:00Z"}}), vec!["r20"]),
        (
            w(
                json!({"not": {"any": [leaf("action", "eq", json!("logon")), leaf("source", "eq", json!("CLOUDTRAIL"))]}}),
            ),
            vec!["r05", "r06", "r07", "r10", "r16", "r17", "r18", "r19"],
        ),
        (
            w(
                json!({"all": [leaf("identity", "eq", json!("CORP\\bob")), {"any": [leaf("tag", "eq", json!("suspicious")), leaf("action", "eq", json!("account_created"))]}]}),
            ),
            vec!["r04", "r06", "r07"],
        ),
        (
            w(
                json!({"all": [{"any": [{"not": {"all": [leaf("outcome", "eq", json!("success"))]}}]}]}),
            ),
            vec!["r02", "r03", "r08", "r13", "r18", "r19"],
        ),
        (
            json!({"sort": "ts_desc", "limit": 3}),
            vec!["r19", "r18", "r17"],
        ),
        (
            json!({"time": {"around": "2024-03-01T10:00:00Z", "window": "1s"}, "sort": "ts_desc"}),
            vec!["r17", "r16"],
        ),
    ];
    assert!(cases.len() >= 40, "only {} documents", cases.len());
    for (doc, expected) in &cases {
        let got = run(&db, &fx, doc, &utc).await;
        assert_eq!(&got, expected, "document {doc}");
    }

    // local times are read in the caller's zone: 09:00 in New York is 14:00 UTC
    let got = run(
        &db,
        &fx,
        &json!({"time": {"from": "2024-03-01T09:00"}}),
        &ny,
    )
    .await;
    assert_eq!(got, vec!["r19"]);

    // the injection strings did nothing
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n, 24);
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn keyset_pages_cover_the_timeline_exactly_once(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let ctx = ResolveCtx::utc(Utc::now());
    for sort in ["ts_asc", "ts_desc"] {
        let doc = FilterDocument::parse(json!({"sort": sort, "limit": 3}).to_string().as_bytes())
            .unwrap();
        let mut seen = Vec::new();
        let mut after: Option<Keyset> = None;
        loop {
            let q = compile_page(&doc, fx.case, &ctx, after.as_ref()).unwrap();
            let mut rows: Vec<EventRow> = sqlx::query_as_with(&q.sql, q.arguments().unwrap())
                .fetch_all(&db)
                .await
                .unwrap();
            let more = rows.len() > 3;
            rows.truncate(3);
            after = rows.last().map(|r| Keyset { ts: r.ts, id: r.id });
            seen.extend(rows.into_iter().map(|r| r.record_ref));
            if !more {
                break;
            }
        }
        let mut expected: Vec<String> = ALL_ASC.iter().map(|s| s.to_string()).collect();
        if sort == "ts_desc" {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{sort}");
    }
}

/// How the pipeline keeps a record: nested in `attributes` (EVTX:
/// `Event.EventData.LogonType`). A dotted `attr.` key follows the path; a top-level key of
/// exactly that name wins over the path.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn dotted_attribute_keys_reach_nested_records(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let ctx = ResolveCtx::utc(Utc::now());
    for (record, attributes) in [
        (
            "r05",
            json!({"Event": {"EventData": {"LogonType": 10, "TargetUserName": "bob"}}}),
        ),
        (
            "r06",
            json!({"Event.EventData.LogonType": "7", "Event": {"EventData": {"LogonType": 2}}}),
        ),
    ] {
        sqlx::query("UPDATE events SET attributes = $1 WHERE case_id = $2 AND record_ref = $3")
            .bind(attributes)
            .bind(fx.case)
            .bind(record)
            .execute(&db)
            .await
            .unwrap();
    }
    let lt = "attr.Event.EventData.LogonType";
    for (doc, want) in [
        (w(leaf(lt, "eq", json!("10"))), vec!["r05"]),
        (w(leaf(lt, "eq", json!(10))), vec!["r05"]),
        (w(leaf(lt, "in", json!(["7", "2"]))), vec!["r06"]),
        (w(leaf(lt, "eq", json!("2"))), vec![]),
        (w(leaf(lt, "gt", json!(5))), vec!["r05"]),
        (
            w(json!({"field": "attr.Event.EventData", "op": "exists"})),
            vec!["r05", "r06"],
        ),
        (
            w(leaf(
                "attr.Event.EventData.TargetUserName",
                "contains",
                json!("BO"),
            )),
            vec!["r05"],
        ),
        (w(leaf("attr.Event.Missing.Key", "eq", json!("x"))), vec![]),
    ] {
        assert_eq!(run(&db, &fx, &doc, &ctx).await, want, "{doc}");
    }
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn category_filters_the_catalog_category_column(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let ctx = ResolveCtx::utc("2024-03-02T12:00:00Z".parse().unwrap());
    for (r, category) in [
        ("r01", "logon"),
        ("r02", "logon"),
        ("r05", "account_management"),
    ] {
        sqlx::query("UPDATE events SET category = $1 WHERE id = $2")
            .bind(category)
            .bind(fx.event(r))
            .execute(&db)
            .await
            .unwrap();
    }
    let cat = |op: &str, v: Value| w(leaf("category", op, v));
    assert_eq!(
        run(&db, &fx, &cat("eq", json!("logon")), &ctx).await,
        ["r01", "r02"]
    );
    assert_eq!(
        run(
            &db,
            &fx,
            &cat("in", json!(["logon", "account_management"])),
            &ctx
        )
        .await,
        ["r01", "r02", "r05"]
    );
    // events without a category match `neq` and `exists: false`, as for every field
    assert_eq!(
        run(&db, &fx, &cat("neq", json!("logon")), &ctx).await,
        except(&["r01", "r02"])
    );
    assert_eq!(
        run(
            &db,
            &fx,
            &w(json!({"field": "category", "op": "exists", "value": false})),
            &ctx
        )
        .await,
        except(&["r01", "r02", "r05"])
    );
}
