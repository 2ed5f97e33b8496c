//! Every route in-process (`oneshot`) against a real PostgreSQL: happy paths and their
//! 400/401/403/404 answers, with bodies checked.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use chrono_runtime::api::{AppError, AppState, router};
use chrono_runtime::auth::Authenticator;
use chrono_runtime::launcher::LocalLauncher;
use common::{call, token, token_with};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn refs(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["provenance"]["record_ref"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn public_routes_answer_without_a_token(_: PgPoolOptions, opts: PgConnectOptions) {
    let app = common::app(common::pool(opts).await);
    let (s, body) = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!((s, body), (200, json!({"status": "ok"})));

    let (s, doc) = call(&app, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    for path in [
        "/api/v1/cases",
        "/api/v1/cases/{case}",
        "/api/v1/cases/{case}/evidence",
        "/api/v1/cases/{case}/evidence/{id}",
        "/api/v1/cases/{case}/evidence/{id}/process",
        "/api/v1/cases/{case}/events/search",
        "/api/v1/cases/{case}/events/{id}",
        "/api/v1/cases/{case}/events/{id}/labels/{label}",
        "/api/v1/cases/{case}/devices",
        "/api/v1/cases/{case}/identities",
        "/api/v1/cases/{case}/evidence/{id}/upload",
        "/api/v1/cases/{case}/evidence/{id}/upload/parts",
        "/api/v1/cases/{case}/evidence/{id}/upload/complete",
        "/api/v1/cases/{case}/events/histogram",
        "/api/v1/cases/{case}/events/{id}/comments",
        "/api/v1/cases/{case}/labels",
        "/api/v1/cases/{case}/filters",
        "/api/v1/cases/{case}/filters/{id}",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from openapi.json"
        );
    }
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());

    let (s, schema) = call(&app, "GET", "/api/v1/filter.schema.json", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(schema["title"], "ChronoTracer event filter");

    let (s, body) = call(&app, "GET", "/api/v1/nope", None, None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn tokens_are_verified(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db);
    let uri = format!("/api/v1/cases/{}", fx.case);
    let case = vec![fx.case.to_string()];
    let good = token("u-analyst", &["analyst"], &case);
    assert_eq!(call(&app, "GET", &uri, Some(&good), None).await.0, 200);

    let now = chrono::Utc::now().timestamp();
    let base = json!({"sub": "u", "iss": common::ISSUER, "aud": common::AUDIENCE, "exp": now + 600,
                      "https://chronotracer.io/roles": ["analyst"], "https://chronotracer.io/cases": "*"});
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        token_with(c)
    };
    let mut tampered = good.clone();
    tampered.replace_range(tampered.len() - 6.., "AAAAAA");
    for (what, t) in [
        ("expired", with("exp", json!(now - 3600))),
        // regression (issue 18): `nbf` a day ahead was accepted; `iat` was never looked at
        (
            "not valid before tomorrow",
            with("nbf", json!(now + 86_400)),
        ),
        ("issued tomorrow", with("iat", json!(now + 86_400))),
        ("issued at a string", with("iat", json!("yesterday"))),
        ("wrong issuer", with("iss", json!("https://evil.test/"))),
        ("wrong audience", with("aud", json!("someone-else"))),
        ("bad signature", tampered),
        ("not a jwt", "abc.def".to_string()),
    ] {
        let (s, body) = call(&app, "GET", &uri, Some(&t), None).await;
        assert_eq!(s, 401, "{what}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{what}");
    }
    // within the leeway, and in the past, `nbf` and `iat` are fine
    for (what, t) in [
        ("nbf now", with("nbf", json!(now + 10))),
        ("iat a moment ahead", with("iat", json!(now + 10))),
        ("iat an hour ago", with("iat", json!(now - 3600))),
    ] {
        assert_eq!(
            call(&app, "GET", &uri, Some(&t), None).await.0,
            200,
            "{what}"
        );
    }
    let (s, body) = call(&app, "GET", &uri, None, None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn cases_create_list_and_read(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db.clone());
    let granted = vec![fx.case.to_string()];
    let admin = token("u-admin", &["admin"], &granted);
    let analyst = token("u-analyst", &["analyst"], &granted);

    let (s, created) = call(
        &app,
        "POST",
        "/api/v1/cases",
        Some(&admin),
        Some(json!({"name": "  Ransomware at ACME ", "description": "IR-42"})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["name"], "Ransomware at ACME");
    assert_eq!(created["created_by"], "u-admin");
    let new_id = created["id"].as_str().unwrap().to_string();

    // the admin sees the granted case and the one they created; the analyst only the granted one
    let (s, list) = call(&app, "GET", "/api/v1/cases", Some(&admin), None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![new_id.as_str(), fx.case.to_string().as_str()]);
    let (_, list) = call(&app, "GET", "/api/v1/cases", Some(&analyst), None).await;
    assert_eq!(list["cases"].as_array().unwrap().len(), 1);
    assert_eq!(list["cases"][0]["name"], "Operation Fixture");

    let (s, one) = call(
        &app,
        "GET",
        &format!("/api/v1/cases/{new_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((s, one["description"].as_str()), (200, Some("IR-42")));

    // 400s
    for (body, path) in [
        (json!({"name": " "}), Some("$.name")),
        (json!({"name": "x".repeat(201)}), Some("$.name")),
    ] {
        let (s, e) = call(&app, "POST", "/api/v1/cases", Some(&admin), Some(body)).await;
        assert_eq!(
            (s, e["error"]["code"].as_str(), e["error"]["path"].as_str()),
            (400, Some("invalid_request"), path)
        );
    }
    let (s, e) = call(
        &app,
        "POST",
        "/api/v1/cases",
        Some(&admin),
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    // 403: analysts do not create cases
    let (s, e) = call(
        &app,
        "POST",
        "/api/v1/cases",
        Some(&analyst),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("forbidden")));
    // 404: unknown, foreign and malformed case ids look the same
    for id in [
        uuid::Uuid::now_v7().to_string(),
        fx.other_case.to_string(),
        "not-a-uuid".into(),
    ] {
        let (s, e) = call(
            &app,
            "GET",
            &format!("/api/v1/cases/{id}"),
            Some(&analyst),
            None,
        )
        .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{id}"
        );
    }
    // creation was audited
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'case_created' AND actor = 'u-admin'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn evidence_upload_and_processing(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db.clone());
    let granted = vec![fx.case.to_string()];
    let admin = token("u-admin", &["admin"], &granted);
    let analyst = token("u-analyst", &["analyst"], &granted);
    let base = format!("/api/v1/cases/{}/evidence", fx.case);

    let (s, up) = call(
        &app,
        "POST",
        &base,
        Some(&admin),
        Some(json!({"file_name": "Security.evtx", "format": "evtx", "sha256": "AB".repeat(32)})),
    )
    .await;
    assert_eq!(s, 201, "{up}");
    // the declared SHA-256 is stored (lowercase) and shown; the URL is signed with it
    assert_eq!(up["evidence"]["sha256"], "ab".repeat(32));
    assert_eq!(
        up["upload"]["headers"]["x-amz-checksum-sha256"],
        "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="
    );
    assert_eq!(
        up["upload"]["headers"]["content-type"],
        "application/octet-stream"
    );
    let ev_id = up["evidence"]["id"].as_str().unwrap().to_string();
    assert_eq!(up["evidence"]["state"], "registered");
    assert_eq!(up["upload"]["method"], "PUT");
    let url = up["upload"]["url"].as_str().unwrap();
    let key = format!("cases/{}/evidence/{ev_id}/Security.evtx", fx.case);
    assert!(
        url.starts_with(&format!("http://127.0.0.1:4566/chrono-test-sources/{key}?")),
        "{url}"
    );
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert_eq!(up["evidence"]["source_key"], key);

    let (s, list) = call(&app, "GET", &base, Some(&analyst), None).await;
    assert_eq!(s, 200);
    assert_eq!(list["evidence"][0]["id"], ev_id.as_str());
    assert_eq!(list["evidence"].as_array().unwrap().len(), 2);
    let (s, one) = call(
        &app,
        "GET",
        &format!("{base}/{ev_id}"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!((s, one["file_name"].as_str()), (200, Some("Security.evtx")));

    // processing: the job is recorded durably, the state becomes processing
    let (s, p) = call(
        &app,
        "POST",
        &format!("{base}/{ev_id}/process"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 202, "{p}");
    assert_eq!(p["state"], "processing");
    assert!(p["execution_id"].as_str().unwrap().starts_with("local:"));
    let job: (uuid::Uuid, uuid::Uuid, String, String, String) = sqlx::query_as(
        "SELECT case_id, evidence_id, source_key, state, requested_by FROM pipeline_jobs",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (
            job.0,
            job.1.to_string(),
            job.2.as_str(),
            job.3.as_str(),
            job.4.as_str()
        ),
        (fx.case, ev_id.clone(), key.as_str(), "queued", "u-admin")
    );
    let (s, e) = call(
        &app,
        "POST",
        &format!("{base}/{ev_id}/process"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("conflict")));

    // 400, 403, 404
    for body in [
        json!({"file_name": ""}),
        json!({"file_name": "a", "format": "../x"}),
        json!({}),
    ] {
        let (s, e) = call(&app, "POST", &base, Some(&admin), Some(body.clone())).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
    }
    let (s, _) = call(
        &app,
        "POST",
        &base,
        Some(&analyst),
        Some(json!({"file_name": "a"})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(
        &app,
        "POST",
        &format!("{base}/{ev_id}/process"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(
        &app,
        "GET",
        &format!("{base}/{}", uuid::Uuid::now_v7()),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 404);
    // evidence of another case is not reachable through this case
    let foreign = common::insert_evidence(&db, fx.other_case).await;
    let (s, _) = call(
        &app,
        "GET",
        &format!("{base}/{foreign}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        "POST",
        &format!("{base}/{foreign}/process"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 404);
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn processing_without_a_pipeline_says_so_and_keeps_the_upload(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let state = AppState::new(
        db.clone(),
        Authenticator::Jwt(Box::new(common::verifier())),
        Some(common::sources()),
        Arc::new(LocalLauncher::unavailable()),
    );
    let app = router(state);
    let admin = token("u-admin", &["admin"], &[fx.case.to_string()]);
    let base = format!("/api/v1/cases/{}/evidence", fx.case);
    let (_, up) = call(
        &app,
        "POST",
        &base,
        Some(&admin),
        Some(json!({"file_name": "auth.log", "sha256": "0".repeat(64)})),
    )
    .await;
    let id = up["evidence"]["id"].as_str().unwrap();
    let (s, e) = call(
        &app,
        "POST",
        &format!("{base}/{id}/process"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (503, Some("pipeline_unavailable"))
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not available")
    );
    let (_, one) = call(&app, "GET", &format!("{base}/{id}"), Some(&admin), None).await;
    assert_eq!(one["state"], "uploaded");
    assert!(one["execution_id"].is_null());
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn events_search_read_and_label(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db);
    let analyst = token("u-analyst", &["analyst"], &[fx.case.to_string()]);
    let base = format!("/api/v1/cases/{}", fx.case);
    let search = format!("{base}/events/search");

    // a filter document → one page
    let doc = json!({"where": {"all": [{"field": "action", "op": "eq", "value": "logon"},
                                       {"field": "outcome", "op": "eq", "value": "failure"}]}});
    let (s, page) = call(&app, "POST", &search, Some(&analyst), Some(doc)).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(refs(&page), vec!["r02", "r03", "r08"]);
    assert!(page["next_cursor"].is_null());
    let r02 = &page["events"][0];
    assert_eq!(r02["device"]["name"], "WS01");
    assert_eq!(r02["identity"]["value"], "CORP\\bob");
    assert_eq!(r02["src_ip"], "203.0.113.7");
    assert_eq!(r02["attributes"]["LogonType"], "10");

    // keyset pages, newest first, with the cursor
    let mut seen = Vec::new();
    let mut uri = format!("{search}?tz=Europe/Berlin");
    loop {
        let (s, page) = call(
            &app,
            "POST",
            &uri,
            Some(&analyst),
            Some(json!({"sort": "ts_desc", "limit": 7})),
        )
        .await;
        assert_eq!(s, 200, "{page}");
        seen.extend(refs(&page));
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("{search}?tz=Europe/Berlin&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20);
    assert_eq!((seen[0].as_str(), seen[19].as_str()), ("r19", "r20"));

    // invalid filter → 400 with the JSON path; bad tz / cursor → 400
    let (s, e) = call(
        &app,
        "POST",
        &search,
        Some(&analyst),
        Some(json!({"where": {"any": [{"field": "action", "op": "eq", "value": "hack"}]}})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["code"], "invalid_filter");
    assert_eq!(e["error"]["path"], "$.where.any[0].value");
    let (s, e) = call(
        &app,
        "POST",
        &search,
        Some(&analyst),
        Some(json!({"limit": 5000})),
    )
    .await;
    assert_eq!((s, e["error"]["path"].as_str()), (400, Some("$.limit")));
    let (s, e) = call(
        &app,
        "POST",
        &format!("{search}?tz=Mars/Olympus"),
        Some(&analyst),
        Some(json!({})),
    )
    .await;
    assert_eq!((s, e["error"]["path"].as_str()), (400, Some("tz")));
    let (s, e) = call(
        &app,
        "POST",
        &format!("{search}?cursor=garbage"),
        Some(&analyst),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_cursor"))
    );

    // one event, with its labels
    let id = fx.event("r02");
    let (s, ev) = call(
        &app,
        "GET",
        &format!("{base}/events/{id}"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(ev["event_code"], "4625");
    assert_eq!(ev["labels"][0]["label"], "star");
    // labels: set (idempotent, note replaced), read back, remove
    let label_uri = format!("{base}/events/{id}/labels/needs-review");
    let (s, l) = call(
        &app,
        "PUT",
        &label_uri,
        Some(&analyst),
        Some(json!({"note": "first"})),
    )
    .await;
    assert_eq!((s, l["note"].as_str()), (200, Some("first")));
    let (s, l) = call(
        &app,
        "PUT",
        &label_uri,
        Some(&analyst),
        Some(json!({"note": "second"})),
    )
    .await;
    assert_eq!(
        (s, l["note"].as_str(), l["user_sub"].as_str()),
        (200, Some("second"), Some("u-analyst"))
    );
    let (_, ev) = call(
        &app,
        "GET",
        &format!("{base}/events/{id}"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(ev["labels"].as_array().unwrap().len(), 2);
    let (s, _) = call(&app, "DELETE", &label_uri, Some(&analyst), None).await;
    assert_eq!(s, 204);
    let (_, ev) = call(
        &app,
        "GET",
        &format!("{base}/events/{id}"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(ev["labels"].as_array().unwrap().len(), 1);
    let (s, e) = call(
        &app,
        "PUT",
        &format!("{base}/events/{id}/labels/bad%20label"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );

    // events of another case, unknown and malformed ids are 404
    let (s, _) = call(
        &app,
        "GET",
        &format!("{base}/events/{}", fx.events.len() as i64 + 1_000),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let foreign: i64 = fx.event("r01") + 20; // b01: first event of the other case
    let (s, _) = call(
        &app,
        "GET",
        &format!("{base}/events/{foreign}"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        "PUT",
        &format!("{base}/events/{foreign}/labels/star"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        "GET",
        &format!("{base}/events/abc"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 404);

    // devices and identities
    let (s, d) = call(
        &app,
        "GET",
        &format!("{base}/devices"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let names: Vec<&str> = d["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["SRV-DC1", "WS01", "web-1"]);
    let (s, i) = call(
        &app,
        "GET",
        &format!("{base}/identities"),
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let values: Vec<&str> = i["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        vec![
            "arn:aws:iam::123456789012:user/mallory",
            "root",
            "CORP\\alice",
            "CORP\\bob"
        ]
    );
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn queries_run_under_a_statement_timeout(_: PgPoolOptions, opts: PgConnectOptions) {
    let opts = chrono_runtime::db::with_timeouts(opts, Duration::from_millis(200));
    let db = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(timeout, "200ms");
    let err = sqlx::query("SELECT pg_sleep(5)")
        .execute(&db)
        .await
        .unwrap_err();
    let response = AppError::from(err).into_response();
    assert_eq!(response.status().as_u16(), 503);
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn migrations_create_the_roles_and_the_read_only_role_cannot_write(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname IN ('chrono_rw', 'chrono_ro') ORDER BY 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(roles, vec!["chrono_ro", "chrono_rw"]);
    let trgm: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(trgm, 1);

    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE chrono_ro")
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 24);
    sqlx::query("SELECT chrono_audit('ai', $1, 'ai_filter', '{\"question\": \"who logged on?\"}')")
        .bind(fx.case)
        .execute(&mut *tx)
        .await
        .unwrap();
    let denied = sqlx::query("DELETE FROM events")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        denied.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();

    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE chrono_ro")
        .execute(&mut *tx)
        .await
        .unwrap();
    let denied = sqlx::query("INSERT INTO audit_log (actor, action) VALUES ('ai', 'x')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        denied.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();

    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE chrono_rw")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE evidence SET state = 'failed' WHERE case_id = $1")
        .bind(fx.case)
        .execute(&mut *tx)
        .await
        .unwrap();
    let bad = sqlx::query("UPDATE evidence SET state = 'exploded'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        bad.as_database_error().unwrap().code().as_deref(),
        Some("23514")
    );
    tx.rollback().await.unwrap();

    // the dedup key is unique per evidence: re-inserting a record is a conflict, not a duplicate
    let dup = sqlx::query(
        "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, data_type, source, parser, record_ref, dedup_key) \
         VALUES ($1, $2, now(), 'x', 'x', 'x', 'x', 'r01', 'r01') ON CONFLICT (evidence_id, dedup_key) DO NOTHING",
    )
    .bind(fx.case).bind(fx.evidence).execute(&db).await.unwrap();
    assert_eq!(dup.rows_affected(), 0);
}

/// Chain of custody: who uploaded, processed, searched and labelled what is in the audit
/// log, with what they asked (the filter, the label, the file's SHA-256).
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_audit_log_records_who_searched_labelled_and_processed_what(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db.clone());
    let granted = vec![fx.case.to_string()];
    let admin = token("u-admin", &["admin"], &granted);
    let analyst = token("u-analyst", &["analyst"], &granted);
    let base = format!("/api/v1/cases/{}", fx.case);
    let doc = json!({"where": {"field": "action", "op": "eq", "value": "logon"}});
    let (s, page) = call(
        &app,
        "POST",
        &format!("{base}/events/search"),
        Some(&analyst),
        Some(doc.clone()),
    )
    .await;
    assert_eq!(s, 200, "{page}");
    let event = fx.event("r02");
    let label = format!("{base}/events/{event}/labels/star");
    let (s, _) = call(&app, "PUT", &label, Some(&analyst), None).await;
    assert_eq!(s, 200);
    let (s, _) = call(&app, "DELETE", &label, Some(&analyst), None).await;
    assert_eq!(s, 204);
    let sha = "cd".repeat(32);
    let (s, up) = call(
        &app,
        "POST",
        &format!("{base}/evidence"),
        Some(&admin),
        Some(json!({"file_name": "a.log", "sha256": sha})),
    )
    .await;
    assert_eq!(s, 201, "{up}");
    let evidence = up["evidence"]["id"].as_str().unwrap();
    let (s, _) = call(
        &app,
        "POST",
        &format!("{base}/evidence/{evidence}/process"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 202);

    let rows: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT actor, action, detail FROM audit_log WHERE case_id = $1 ORDER BY id",
    )
    .bind(fx.case)
    .fetch_all(&db)
    .await
    .unwrap();
    let find = |action: &str| {
        rows.iter()
            .find(|r| r.1 == action)
            .unwrap_or_else(|| panic!("no {action} in {rows:?}"))
    };
    let searched = find("events_searched");
    assert_eq!(
        (searched.0.as_str(), &searched.2["filter"]),
        ("u-analyst", &doc)
    );
    let labelled = find("event_labelled");
    assert_eq!(labelled.0, "u-analyst");
    assert_eq!(
        (
            labelled.2["event_id"].as_i64(),
            labelled.2["label"].as_str()
        ),
        (Some(event), Some("star"))
    );
    assert_eq!(find("event_unlabelled").0, "u-analyst");
    let registered = find("evidence_registered");
    assert_eq!(
        (registered.0.as_str(), registered.2["sha256"].as_str()),
        ("u-admin", Some(sha.as_str()))
    );
    let processing = find("evidence_processing");
    assert_eq!(processing.0, "u-admin");
    assert_eq!(processing.2["evidence_id"], evidence);
}

/// One request with a raw body; status, headers and the JSON body (Null when not JSON).
async fn send_raw(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, http::HeaderMap, Value) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(axum::body::Body::from(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status.as_u16(), parts.headers, json)
}

/// Regression (issue 18): 413, 414, 405 and query-string errors came back as plain text or
/// empty bodies; a JSON array passed as a filter document; a crafted cursor naming an
/// instant PostgreSQL cannot hold was a 500. Every one is now JSON with a stable code.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn every_refusal_is_json_with_a_stable_code(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let app = common::app(db);
    let bearer = token("u-analyst", &["analyst"], &[fx.case.to_string()]);
    let search = format!("/api/v1/cases/{}/events/search", fx.case);
    let filter = serde_json::to_vec(&json!({"limit": 10})).unwrap();
    let long_query = format!("/api/v1/cases?q={}", "x".repeat(9000));
    let huge_body = {
        let mut b = b"{\"limit\": 10, \"pad\": \"".to_vec();
        b.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024));
        b.extend(b"\"}");
        b
    };
    let out_of_range = {
        use base64::Engine as _;
        // year -5000: within chrono's range, before PostgreSQL's timestamptz
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode("v1:-219999999999999999:1:1700000000000000")
    };
    // what, method, target, body, then the status and code expected
    type Refusal = (
        &'static str,
        &'static str,
        String,
        Vec<u8>,
        u16,
        &'static str,
    );
    let cases: Vec<Refusal> = vec![
        (
            "method",
            "DELETE",
            "/api/v1/cases".into(),
            vec![],
            405,
            "method_not_allowed",
        ),
        ("uri", "GET", long_query, vec![], 414, "uri_too_long"),
        (
            "body",
            "POST",
            search.clone(),
            huge_body,
            413,
            "payload_too_large",
        ),
        (
            "duplicate query parameter",
            "POST",
            format!("{search}?tz=UTC&tz=Europe/Berlin"),
            filter.clone(),
            400,
            "invalid_request",
        ),
        (
            "array filter",
            "POST",
            search.clone(),
            b"[10]".to_vec(),
            400,
            "invalid_filter",
        ),
        (
            "empty array filter",
            "POST",
            search.clone(),
            b" []".to_vec(),
            400,
            "invalid_filter",
        ),
        (
            "cursor out of range",
            "POST",
            format!("{search}?cursor={out_of_range}"),
            filter.clone(),
            400,
            "invalid_cursor",
        ),
    ];
    for (what, method, uri, body, status, code) in cases {
        let (s, headers, json) = send_raw(&app, method, &uri, Some(&bearer), body).await;
        assert_eq!(s, status, "{what}: {json}");
        assert_eq!(json["error"]["code"], code, "{what}: {json}");
        assert!(
            !json["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{what}: {json}"
        );
        assert_eq!(
            headers[http::header::CONTENT_TYPE],
            "application/json",
            "{what}"
        );
        if s == 405 {
            assert!(
                headers.contains_key(http::header::ALLOW),
                "{what}: Allow kept"
            );
        }
    }
    // the filter document's path says where: the document itself
    let (_, _, json) = send_raw(&app, "POST", &search, Some(&bearer), b"[10]".to_vec()).await;
    assert_eq!(json["error"]["path"], "$");
    // and a well-formed search still works
    let (s, _, json) = send_raw(&app, "POST", &search, Some(&bearer), filter).await;
    assert_eq!(s, 200, "{json}");
}

/// Regression (issue 18): with the database gone every request hung for the pool's
/// 20-second connection wait and then answered 500. A request now waits at most
/// `REQUEST_WAIT` (1 s) for a connection and answers 503 `unavailable` with
/// `Retry-After`, whether the server refuses connections (stopped) or takes them and never
/// answers (frozen, or a paused instance resuming). The bound below is loose on purpose:
/// it tells "answers" from "hangs for the old 20 s", it is not a speed target.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn a_database_outage_answers_503_with_retry_after_at_once(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    use chrono_runtime::db::{ConnectPolicy, Credentials, Session};
    let stopped = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // accepts connections (the kernel's backlog) and never answers
    let frozen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let frozen_port = frozen.local_addr().unwrap().port();
    for (what, port) in [("stopped", stopped), ("frozen", frozen_port)] {
        let pool = chrono_runtime::db::open(
            &Credentials::fixed(opts.clone().port(port)),
            Session::runtime(Duration::from_secs(5)),
            2,
            ConnectPolicy::LAMBDA,
        )
        .await
        .unwrap();
        let app = common::app(pool);
        let bearer = token("u-analyst", &["analyst"], &["*".to_string()]);
        let started = std::time::Instant::now();
        let (s, headers, json) =
            send_raw(&app, "GET", "/api/v1/cases", Some(&bearer), vec![]).await;
        let waited = started.elapsed();
        assert_eq!(s, 503, "{what}: {json}");
        assert_eq!(json["error"]["code"], "unavailable", "{what}");
        assert_eq!(headers[http::header::RETRY_AFTER], "5", "{what}");
        assert!(waited < Duration::from_secs(5), "{what}: waited {waited:?}");
    }
    drop(frozen);
}
