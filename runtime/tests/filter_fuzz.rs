//! Property tests: random filter documents (well-formed, half-formed and hostile) are
//! either accepted and run, or rejected with a JSON path — never a 500, never a panic.

mod common;

use chrono_runtime::filter::FilterDocument;
use common::{call, token};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("logon".to_string()),
        Just("failure".to_string()),
        Just("WS01".to_string()),
        Just("10.0.0.0/8".to_string()),
        Just("203.0.113.7".to_string()),
        Just("2024-03-01T08:00:00Z".to_string()),
        Just("2024-03-01T08:00".to_string()),
        Just("2024-03-10T02:30".to_string()),
        Just("15m".to_string()),
        Just("'; DROP TABLE events; --".to_string()),
        Just("%_\\".to_string()),
        Just("a\u{0}b".to_string()),
        Just("x".repeat(300)),
        Just("0193a5e0-0000-7000-8000-000000000001".to_string()),
        "[ -~]{0,12}",
        "\\PC{0,8}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(json!({"nested": 1})),
    ]
}

fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "ts", "data_type", "source", "event_code", "action", "outcome", "message", "src_ip",
            "dst_ip", "tag", "label", "device", "identity", "attr.LogonType", "attr.bytes",
            "attr.x' OR 1=1 --",
        ]).prop_map(|s| Value::String(s.into())),
        1 => text().prop_map(|s| Value::String(format!("attr.{s}"))),
        1 => scalar(),
    ]
}

fn op() -> impl Strategy<Value = Value> {
    prop_oneof![
        5 => prop::sample::select(vec![
            "eq", "neq", "in", "nin", "contains", "prefix", "gt", "gte", "lt", "lte", "exists", "cidr",
        ]).prop_map(|s| Value::String(s.into())),
        1 => scalar(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    (
        field(),
        op(),
        prop_oneof![
            3 => scalar(),
            2 => prop::collection::vec(scalar(), 0..5).prop_map(Value::Array),
            1 => Just(Value::Array((0..101).map(|i| Value::String(i.to_string())).collect())),
        ],
        any::<u8>(),
    )
        .prop_map(|(f, o, v, mask)| {
            let mut m = Map::new();
            if mask & 1 == 0 {
                m.insert("field".into(), f);
            }
            if mask & 2 == 0 {
                m.insert("op".into(), o);
            }
            if mask & 4 == 0 {
                m.insert("value".into(), v);
            }
            if mask == 255 {
                m.insert("extra".into(), json!(1));
            }
            Value::Object(m)
        })
}

fn node() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|c| json!({"all": c})),
            prop::collection::vec(inner.clone(), 0..6).prop_map(|c| json!({"any": c})),
            inner.clone().prop_map(|c| json!({"not": c})),
            (inner.clone(), inner).prop_map(|(a, b)| json!({"all": [a], "not": b})),
        ]
    })
}

fn time() -> impl Strategy<Value = Value> {
    let t = prop_oneof![text().prop_map(Value::String), scalar()];
    prop_oneof![
        (t.clone(), t.clone()).prop_map(|(a, b)| json!({"from": a, "to": b})),
        t.clone().prop_map(|a| json!({"from": a})),
        (
            t.clone(),
            prop_oneof![
                Just(json!("15m")),
                Just(json!("0h")),
                Just(json!("99999999w")),
                scalar()
            ]
        )
            .prop_map(|(a, w)| json!({"around": a, "window": w})),
        prop_oneof![
            Just(json!("24h")),
            Just(json!("7d")),
            Just(json!("36600d")),
            Just(json!("1y")),
            scalar()
        ]
        .prop_map(|l| json!({"last": l})),
        t.prop_map(|a| json!({"last": "1d", "from": a})),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    (
        prop::option::of(time()),
        prop::option::of(node()),
        prop::option::of(prop_oneof![
            Just(json!("ts_asc")),
            Just(json!("ts_desc")),
            scalar()
        ]),
        prop::option::of(prop_oneof![1u32..=1000u32, any::<u32>()].prop_map(Value::from)),
        prop::option::of(scalar()),
    )
        .prop_map(|(time, node, sort, limit, extra)| {
            let mut m = Map::new();
            if let Some(t) = time {
                m.insert("time".into(), t);
            }
            if let Some(n) = node {
                m.insert("where".into(), n);
            }
            if let Some(s) = sort {
                m.insert("sort".into(), s);
            }
            if let Some(l) = limit {
                m.insert("limit".into(), l);
            }
            if let Some(e) = extra {
                m.insert("unexpected".into(), e);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn random_documents_validate_or_fail_with_a_path(doc in document()) {
        match FilterDocument::parse(doc.to_string().as_bytes()) {
            Ok(parsed) => {
                // a valid document round-trips and compiles (or names the time it cannot resolve)
                let again = FilterDocument::parse(serde_json::to_string(&parsed).unwrap().as_bytes()).unwrap();
                prop_assert_eq!(&again, &parsed);
                let ctx = chrono_runtime::filter::ResolveCtx {
                    now: chrono::Utc::now(),
                    tz: chrono_tz::America::New_York,
                };
                if let Err(e) = chrono_runtime::filter::compile(&parsed, uuid::Uuid::nil(), &ctx) {
                    prop_assert!(e.path.starts_with("$."), "{}", e);
                }
            }
            Err(e) => prop_assert!(e.path.starts_with('$'), "no path: {}", e),
        }
    }
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn random_documents_through_the_api_never_fail_with_a_500(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db);
    let analyst = token("u-analyst", &["analyst"], &[fx.case.to_string()]);
    let uri = format!("/api/v1/cases/{}/events/search?tz=Europe/Berlin", fx.case);
    let mut runner = TestRunner::new(Config::default());
    let strategy = document();
    let (mut ok, mut rejected) = (0, 0);
    for _ in 0..400 {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        let (status, body) = call(&app, "POST", &uri, Some(&analyst), Some(doc.clone())).await;
        match status {
            200 => {
                ok += 1;
                assert!(body["events"].as_array().unwrap().len() <= 20, "{doc}");
            }
            400 => {
                rejected += 1;
                let path = body["error"]["path"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no path for {doc}: {body}"));
                assert!(path.starts_with('$'), "{doc}: {body}");
                assert_eq!(body["error"]["code"], "invalid_filter");
            }
            other => panic!("{other} for {doc}: {body}"),
        }
    }
    // the generator exercises both outcomes
    assert!(ok > 20 && rejected > 20, "ok {ok}, rejected {rejected}");
}
