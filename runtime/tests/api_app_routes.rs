//! The routes the web app added (issue 15), in-process against a real PostgreSQL: saved
//! filters, the event histogram, comments, the event detail's provenance, labels in use.

mod common;

use common::{call, token};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn saved_filters_are_validated_shared_and_changed_only_by_their_owner(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db.clone());
    let grant = vec![fx.case.to_string()];
    let alice = token("u-alice", &["analyst"], &grant);
    let bob = token("u-bob", &["analyst"], &grant);
    let admin = token("u-admin", &["admin"], &grant);
    let base = format!("/api/v1/cases/{}/filters", fx.case);
    let doc =
        json!({"time": {"last": "7d"}, "where": {"field": "action", "op": "eq", "value": "logon"}});

    let (s, created) = call(
        &app,
        "POST",
        &base,
        Some(&alice),
        Some(json!({"name": "  failed logons ", "document": doc})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["name"], "failed logons");
    assert_eq!(created["document"], doc, "stored as sent");
    assert_eq!(created["created_by"], "u-alice");
    let id = created["id"].as_str().unwrap().to_string();
    let one = format!("{base}/{id}");

    // the same name twice for one user is a conflict; another user may use it
    let (s, e) = call(
        &app,
        "POST",
        &base,
        Some(&alice),
        Some(json!({"name": "failed logons", "document": {}})),
    )
    .await;
    assert_eq!((s, code(&e)), (409, Some("conflict")));
    let (s, _) = call(
        &app,
        "POST",
        &base,
        Some(&bob),
        Some(json!({"name": "failed logons", "document": {}})),
    )
    .await;
    assert_eq!(s, 201);

    // the one validator, with paths into the body
    for (body, path) in [
        (
            json!({"name": "x", "document": {"where": {"field": "nope", "op": "eq", "value": 1}}}),
            "$.document.where.field",
        ),
        (
            json!({"name": "x", "document": {"limit": 0}}),
            "$.document.limit",
        ),
        (json!({"name": "", "document": {}}), "$.name"),
        (json!({"name": "n".repeat(101), "document": {}}), "$.name"),
    ] {
        let (s, e) = call(&app, "POST", &base, Some(&alice), Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert_eq!(e["error"]["path"], path, "{body}: {e}");
    }
    let (s, e) = call(
        &app,
        "POST",
        &base,
        Some(&alice),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!((s, code(&e)), (400, Some("invalid_request")));

    // shared: bob lists and reads alice's filter
    let (s, list) = call(&app, "GET", &base, Some(&bob), None).await;
    assert_eq!(s, 200);
    let owners: Vec<&str> = list["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(owners.len(), 2);
    assert!(owners.contains(&"u-alice") && owners.contains(&"u-bob"));
    let (s, got) = call(&app, "GET", &one, Some(&bob), None).await;
    assert_eq!((s, &got["document"]), (200, &doc));

    // only the owner (or an admin) changes it
    let renamed = json!({"name": "logons, last week", "document": {"where": {"field": "outcome", "op": "eq", "value": "failure"}}});
    let (s, e) = call(&app, "PUT", &one, Some(&bob), Some(renamed.clone())).await;
    assert_eq!((s, code(&e)), (403, Some("forbidden")));
    let (s, e) = call(&app, "DELETE", &one, Some(&bob), None).await;
    assert_eq!((s, code(&e)), (403, Some("forbidden")));
    let (s, updated) = call(&app, "PUT", &one, Some(&alice), Some(renamed.clone())).await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["name"], "logons, last week");
    assert_eq!(updated["document"], renamed["document"]);
    assert!(updated["updated_at"].as_str() >= created["updated_at"].as_str());
    let (s, e) = call(
        &app,
        "PUT",
        &one,
        Some(&alice),
        Some(json!({"name": "y", "document": {"time": {"last": "0d"}}})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["path"].as_str()),
        (400, Some("$.document.time.last"))
    );
    let (s, _) = call(&app, "DELETE", &one, Some(&admin), None).await;
    assert_eq!(s, 204);
    let (s, e) = call(&app, "GET", &one, Some(&alice), None).await;
    assert_eq!((s, code(&e)), (404, Some("not_found")));

    // a filter of another case is not found through this one
    let other = token("u-other", &["admin"], &[fx.other_case.to_string()]);
    let (s, theirs) = call(
        &app,
        "POST",
        &format!("/api/v1/cases/{}/filters", fx.other_case),
        Some(&other),
        Some(json!({"name": "theirs", "document": {}})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &app,
        "GET",
        &format!("{base}/{}", theirs["id"].as_str().unwrap()),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 404);

    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action LIKE 'saved_filter_%' AND case_id = $1",
    )
    .bind(fx.case)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(audited, 4, "created ×2, updated, deleted");
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_histogram_counts_what_the_search_finds(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db);
    let t = token("u-analyst", &["analyst"], &[fx.case.to_string()]);
    let uri = format!("/api/v1/cases/{}/events/histogram", fx.case);

    // The whole case: r20 (2024-02-29T23:59:59.999999Z) .. r19 (2024-03-02T00:30:00Z),
    // 24.5 hours in at most 100 buckets: 15-minute buckets (100 of them, aligned).
    let (s, h) = call(&app, "POST", &uri, Some(&t), Some(json!({}))).await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["interval"], "15m");
    assert_eq!(h["interval_seconds"], 900);
    assert_eq!(h["from"], "2024-02-29T23:45:00Z");
    assert_eq!(h["to"], "2024-03-02T00:45:00Z");
    assert_eq!(h["total"], 20);
    let buckets = h["buckets"].as_array().unwrap();
    assert_eq!(
        buckets.len(),
        100,
        "dense: every bucket from `from` to `to`"
    );
    let count_at = |start: &str| {
        buckets
            .iter()
            .find(|b| b["start"] == start)
            .map(|b| b["count"].as_i64().unwrap())
    };
    // r01..r05 in 08:00–08:15, r06 and r07 in 08:15–08:30, r08..r10 in 08:30–08:45,
    // r16 and r17 at 10:00
    assert_eq!(count_at("2024-03-01T08:00:00Z"), Some(5));
    assert_eq!(count_at("2024-03-01T08:15:00Z"), Some(2));
    assert_eq!(count_at("2024-03-01T08:30:00Z"), Some(3));
    assert_eq!(count_at("2024-03-01T10:00:00Z"), Some(2));
    assert_eq!(count_at("2024-03-01T12:00:00Z"), Some(0));
    assert_eq!(
        buckets
            .iter()
            .map(|b| b["count"].as_i64().unwrap())
            .sum::<i64>(),
        20
    );

    // a filter: the same count as the search finds, only the other case's events excluded
    let failed = json!({"where": {"all": [{"field": "action", "op": "eq", "value": "logon"},
                                          {"field": "outcome", "op": "eq", "value": "failure"}]}});
    let (_, page) = call(
        &app,
        "POST",
        &format!("/api/v1/cases/{}/events/search", fx.case),
        Some(&t),
        Some(failed.clone()),
    )
    .await;
    let (s, h) = call(&app, "POST", &uri, Some(&t), Some(failed)).await;
    assert_eq!(s, 200);
    assert_eq!(h["total"], page["events"].as_array().unwrap().len() as i64);
    assert_eq!(h["total"], 3, "r02, r03, r08");
    // the span is that of the matching events: 08:05:00 .. 08:30:00, in 30-second
    // buckets (15 s would need 101)
    assert_eq!(h["interval"], "30s");
    assert_eq!(h["from"], "2024-03-01T08:05:00Z");
    assert_eq!(h["buckets"].as_array().unwrap().len(), 51);

    // a time range is the span even where no event is; ?buckets= bounds the count
    let (s, h) = call(
        &app,
        "POST",
        &format!("{uri}?buckets=10&tz=Europe/Berlin"),
        Some(&t),
        Some(json!({"time": {"from": "2024-03-01", "to": "2024-03-10"}})),
    )
    .await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["interval"], "1d");
    // local midnight in Berlin (UTC+1)
    assert_eq!(h["from"], "2024-02-29T23:00:00Z");
    assert_eq!(h["buckets"].as_array().unwrap().len(), 10);
    // r20 (23:59:59 UTC on the 29th) is 00:59:59 on March 1st in Berlin
    assert_eq!(
        h["buckets"][0]["count"], 19,
        "2024-03-01 local: all but r19"
    );
    assert_eq!(h["buckets"][1]["count"], 1, "r19 on 2024-03-02 local");
    assert_eq!(h["total"], 20);

    // nothing matches, no range: no buckets
    let (s, h) = call(
        &app,
        "POST",
        &uri,
        Some(&t),
        Some(json!({"where": {"field": "message", "op": "contains", "value": "no such text"}})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        h,
        json!({"interval": null, "interval_seconds": null, "from": null, "to": null,
               "total": 0, "buckets": []})
    );

    // bad input
    for (q, body, want) in [
        ("?buckets=0", json!({}), "invalid_request"),
        ("?buckets=1001", json!({}), "invalid_request"),
        ("?tz=Mars/Olympus", json!({}), "invalid_request"),
        (
            "",
            json!({"where": {"field": "ts", "op": "cidr", "value": "x"}}),
            "invalid_filter",
        ),
    ] {
        let (s, e) = call(&app, "POST", &format!("{uri}{q}"), Some(&t), Some(body)).await;
        assert_eq!((s, code(&e)), (400, Some(want)), "{q}: {e}");
    }
    // someone else's case
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/cases/{}/events/histogram", fx.other_case),
        Some(&t),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 404);
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn event_detail_has_provenance_labels_and_append_only_comments(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db.clone());
    let grant = vec![fx.case.to_string()];
    let alice = token("u-alice", &["analyst"], &grant);
    let ev = fx.event("r02");
    let event_uri = format!("/api/v1/cases/{}/events/{ev}", fx.case);

    // star and tag it
    for label in ["star", "bruteforce-confirmed"] {
        let (s, _) = call(
            &app,
            "PUT",
            &format!("{event_uri}/labels/{label}"),
            Some(&alice),
            None,
        )
        .await;
        assert_eq!(s, 200);
    }
    // comment twice
    for text in [
        "first look: password spraying",
        "  confirmed with the VPN logs  ",
    ] {
        let (s, c) = call(
            &app,
            "POST",
            &format!("{event_uri}/comments"),
            Some(&alice),
            Some(json!({"body": text})),
        )
        .await;
        assert_eq!(s, 201, "{c}");
        assert_eq!(c["author"], "u-alice");
        assert_eq!(c["body"], text.trim());
    }
    let (s, detail) = call(&app, "GET", &event_uri, Some(&alice), None).await;
    assert_eq!(s, 200, "{detail}");
    assert_eq!(detail["id"], ev);
    assert_eq!(detail["evidence"]["id"], fx.evidence.to_string());
    assert_eq!(detail["evidence"]["file_name"], "Security.evtx");
    assert_eq!(detail["provenance"]["record_ref"], "r02");
    let labels: Vec<(&str, &str)> = detail["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["label"].as_str().unwrap(),
                l["user_sub"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    assert!(
        labels.contains(&("star", "u-analyst")),
        "the fixture's star"
    );
    assert!(labels.contains(&("star", "u-alice")));
    assert!(labels.contains(&("bruteforce-confirmed", "u-alice")));
    let bodies: Vec<&str> = detail["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec![
            "first look: password spraying",
            "confirmed with the VPN logs"
        ]
    );
    let (s, list) = call(
        &app,
        "GET",
        &format!("{event_uri}/comments"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!((s, list["comments"].as_array().unwrap().len()), (200, 2));

    // labels in use in the case, with event counts
    let (s, labels) = call(
        &app,
        "GET",
        &format!("/api/v1/cases/{}/labels", fx.case),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        labels["labels"],
        json!([{"label": "bruteforce-confirmed", "events": 1},
               {"label": "important", "events": 1},
               {"label": "star", "events": 1}])
    );

    // bad comments; unknown and foreign events
    for body in [
        json!({"body": "  "}),
        json!({"body": "x".repeat(4001)}),
        json!({"text": "x"}),
    ] {
        let (s, e) = call(
            &app,
            "POST",
            &format!("{event_uri}/comments"),
            Some(&alice),
            Some(body),
        )
        .await;
        assert_eq!((s, code(&e)), (400, Some("invalid_request")), "{e}");
    }
    let foreign = common::any_event_of(&db, fx.other_case).await;
    for uri in [
        format!("/api/v1/cases/{}/events/999999/comments", fx.case),
        format!("/api/v1/cases/{}/events/{foreign}/comments", fx.case),
    ] {
        let (s, _) = call(&app, "POST", &uri, Some(&alice), Some(json!({"body": "x"}))).await;
        assert_eq!(s, 404, "{uri}");
        let (s, _) = call(&app, "GET", &uri, Some(&alice), None).await;
        assert_eq!(s, 404, "{uri}");
    }

    // append-only for the application's database role
    let mut conn = db.acquire().await.unwrap();
    sqlx::query("SET ROLE chrono_rw")
        .execute(&mut *conn)
        .await
        .unwrap();
    for stmt in [
        "UPDATE event_comments SET body = 'rewritten'",
        "DELETE FROM event_comments",
    ] {
        let err = sqlx::query(stmt).execute(&mut *conn).await.unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{stmt}: {err}"
        );
    }
    sqlx::query("RESET ROLE").execute(&mut *conn).await.unwrap();
}
