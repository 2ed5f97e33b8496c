//! Evidence uploads through the API against the local emulator (moto over HTTP) and a real
//! PostgreSQL: a multipart upload with presigned part URLs, completed only once every part
//! is there, then processed; an aborted upload leaves nothing in S3 and cannot be
//! processed; the single presigned PUT still works; bad requests are refused.

mod common;

use std::sync::Arc;

use axum::Router;
use chrono_runtime::api::{AppState, router};
use chrono_runtime::auth::Authenticator;
use chrono_runtime::launcher::{LocalLauncher, PipelineJob};
use chrono_runtime::storage::SourcesBucket;
use chrono_tests::moto::Moto;
use common::{call, token};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::mpsc;

const BUCKET: &str = "chrono-test-uploads";
const MIB: usize = 1024 * 1024;

async fn app_on(
    moto: &Moto,
    db: sqlx::PgPool,
) -> (Router, aws_sdk_s3::Client, mpsc::Receiver<PipelineJob>) {
    let sdk = common::sdk("us-east-1", Some(&moto.endpoint()));
    let s3 = SourcesBucket::client_from(&sdk);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (launcher, rx) = LocalLauncher::channel(8);
    let state = AppState::new(
        db,
        Authenticator::Jwt(Box::new(common::verifier())),
        Some(SourcesBucket::new(s3.clone(), BUCKET)),
        Arc::new(launcher),
    );
    (router(state), s3, rx)
}

/// PUTs `body` to a presigned URL; the answer's ETag.
async fn put(url: &str, body: Vec<u8>) -> String {
    let resp = reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "PUT {url}");
    resp.headers()["etag"].to_str().unwrap().to_string()
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// The bytes of a test file: a counter, so a part out of place changes the object.
fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn multipart_uploads_complete_only_when_every_part_is_there(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let moto = Moto::start().expect("moto");
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let (app, s3, mut jobs) = app_on(&moto, db.clone()).await;
    let grant = vec![fx.case.to_string()];
    let admin = token("u-admin", &["admin"], &grant);
    let analyst = token("u-analyst", &["analyst"], &grant);
    let base = format!("/api/v1/cases/{}/evidence", fx.case);

    // 16 MiB parts (the default): a 16 MiB + 1000 byte file is two parts
    let data = file(16 * MIB + 1000);
    let (s, created) = call(
        &app,
        "POST",
        &base,
        Some(&admin),
        Some(json!({"file_name": "big.evtx", "size": data.len(), "multipart": true})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(
        created["upload"],
        json!({"method": "MULTIPART", "part_size": 16 * MIB, "part_count": 2})
    );
    assert_eq!(created["evidence"]["state"], "registered");
    assert_eq!(created["evidence"]["part_size"], 16 * MIB);
    assert_eq!(created["evidence"]["size_bytes"], data.len());
    let id = created["evidence"]["id"].as_str().unwrap().to_string();
    let key = created["evidence"]["source_key"]
        .as_str()
        .unwrap()
        .to_string();
    let upload = format!("{base}/{id}/upload");

    // analysts may not; part numbers are checked
    let (s, e) = call(
        &app,
        "POST",
        &format!("{upload}/parts"),
        Some(&analyst),
        Some(json!({"parts": [1]})),
    )
    .await;
    assert_eq!((s, code(&e)), (403, Some("forbidden")));
    for (parts, path) in [
        (json!([1, 3]), "$.parts[1]"),
        (json!([0]), "$.parts[0]"),
        (json!([]), "$.parts"),
        (json!((1..=101).collect::<Vec<i32>>()), "$.parts"),
    ] {
        let (s, e) = call(
            &app,
            "POST",
            &format!("{upload}/parts"),
            Some(&admin),
            Some(json!({"parts": parts})),
        )
        .await;
        assert_eq!((s, e["error"]["path"].as_str()), (400, Some(path)), "{e}");
    }

    let (s, urls) = call(
        &app,
        "POST",
        &format!("{upload}/parts"),
        Some(&admin),
        Some(json!({"parts": [2, 1]})),
    )
    .await;
    assert_eq!(s, 200, "{urls}");
    let url_of = |n: i64| {
        urls["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["part_number"] == n)
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(url_of(1).contains("partNumber=1") && url_of(1).contains("uploadId="));

    // only the last part uploaded: completing names the missing one
    let etag2 = put(&url_of(2), data[16 * MIB..].to_vec()).await;
    let complete = |parts: Value| {
        let app = app.clone();
        let admin = admin.clone();
        let uri = format!("{upload}/complete");
        async move {
            call(
                &app,
                "POST",
                &uri,
                Some(&admin),
                Some(json!({"parts": parts})),
            )
            .await
        }
    };
    let (s, e) = complete(json!([{"part_number": 2, "etag": etag2}])).await;
    assert_eq!((s, code(&e)), (409, Some("upload_incomplete")), "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("parts 1"),
        "{e}"
    );
    // a short first part: S3 refuses to assemble it (EntityTooSmall)
    let short = put(&url_of(1), data[..MIB].to_vec()).await;
    let (s, e) =
        complete(json!([{"part_number": 1, "etag": short}, {"part_number": 2, "etag": etag2}]))
            .await;
    assert_eq!((s, code(&e)), (409, Some("upload_incomplete")), "{e}");
    // processing waits for the upload
    let (s, e) = call(
        &app,
        "POST",
        &format!("{base}/{id}/process"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((s, code(&e)), (409, Some("conflict")), "{e}");

    let etag1 = put(&url_of(1), data[..16 * MIB].to_vec()).await;
    // an ETag S3 did not give: refused (InvalidPart)
    let (s, e) = complete(
        json!([{"part_number": 1, "etag": "\"0123456789abcdef0123456789abcdef\""},
                                 {"part_number": 2, "etag": etag2}]),
    )
    .await;
    assert_eq!((s, code(&e)), (409, Some("upload_incomplete")), "{e}");
    let (s, done) =
        complete(json!([{"part_number": 2, "etag": etag2}, {"part_number": 1, "etag": etag1}]))
            .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["state"], "uploaded");
    assert_eq!(done["size_bytes"], data.len());
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.len(), data.len());
    assert!(
        body.as_ref() == data.as_slice(),
        "the object is the file, parts in order"
    );

    // completed: no more part URLs, no second completion, no abort; processing starts
    let (s, _) = call(
        &app,
        "POST",
        &format!("{upload}/parts"),
        Some(&admin),
        Some(json!({"parts": [1]})),
    )
    .await;
    assert_eq!(s, 409);
    let (s, _) =
        complete(json!([{"part_number": 1, "etag": etag1}, {"part_number": 2, "etag": etag2}]))
            .await;
    assert_eq!(s, 409);
    let (s, _) = call(&app, "DELETE", &upload, Some(&admin), None).await;
    assert_eq!(s, 409);
    let (s, p) = call(
        &app,
        "POST",
        &format!("{base}/{id}/process"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 202, "{p}");
    assert_eq!(jobs.recv().await.unwrap().source_key, key);
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn aborted_uploads_leave_nothing_and_cannot_be_processed(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let moto = Moto::start().expect("moto");
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let (app, s3, _jobs) = app_on(&moto, db.clone()).await;
    let admin = token("u-admin", &["admin"], &[fx.case.to_string()]);
    let base = format!("/api/v1/cases/{}/evidence", fx.case);

    let (s, created) = call(
        &app,
        "POST",
        &base,
        Some(&admin),
        Some(json!({"file_name": "huge.E01", "size": 40 * MIB, "multipart": true})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(created["upload"]["part_count"], 3);
    let id = created["evidence"]["id"].as_str().unwrap().to_string();
    let (_, urls) = call(
        &app,
        "POST",
        &format!("{base}/{id}/upload/parts"),
        Some(&admin),
        Some(json!({"parts": [1]})),
    )
    .await;
    put(urls["parts"][0]["url"].as_str().unwrap(), file(16 * MIB)).await;
    let open = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(open.uploads().len(), 1);

    let (s, aborted) = call(
        &app,
        "DELETE",
        &format!("{base}/{id}/upload"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200, "{aborted}");
    assert_eq!(aborted["state"], "aborted");
    let open = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(open.uploads().is_empty(), "S3 dropped the parts");
    for (method, uri, body) in [
        ("POST", format!("{base}/{id}/process"), None),
        (
            "POST",
            format!("{base}/{id}/upload/complete"),
            Some(json!({"parts": [{"part_number": 1, "etag": "\"x\""}]})),
        ),
        ("DELETE", format!("{base}/{id}/upload"), None),
    ] {
        let (s, e) = call(&app, method, &uri, Some(&admin), body).await;
        assert_eq!(
            (s, code(&e)),
            (409, Some("conflict")),
            "{method} {uri}: {e}"
        );
    }

    // a single-PUT upload may be given up too (nothing to drop in S3)
    let (_, single) = call(
        &app,
        "POST",
        &base,
        Some(&admin),
        Some(json!({"file_name": "a.log"})),
    )
    .await;
    assert_eq!(single["upload"]["method"], "PUT");
    let sid = single["evidence"]["id"].as_str().unwrap();
    let (s, e) = call(
        &app,
        "POST",
        &format!("{base}/{sid}/upload/parts"),
        Some(&admin),
        Some(json!({"parts": [1]})),
    )
    .await;
    assert_eq!((s, code(&e)), (409, Some("conflict")), "{e}");
    let (s, a) = call(
        &app,
        "DELETE",
        &format!("{base}/{sid}/upload"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((s, a["state"].as_str()), (200, Some("aborted")));
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn single_puts_still_work_and_sizes_are_checked(_: PgPoolOptions, opts: PgConnectOptions) {
    let moto = Moto::start().expect("moto");
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let (app, s3, _jobs) = app_on(&moto, db.clone()).await;
    let admin = token("u-admin", &["admin"], &[fx.case.to_string()]);
    let base = format!("/api/v1/cases/{}/evidence", fx.case);

    let (s, created) = call(
        &app,
        "POST",
        &base,
        Some(&admin),
        Some(json!({"file_name": "auth.log", "size": 12})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["upload"]["method"], "PUT");
    assert!(created["evidence"]["part_size"].is_null());
    put(
        created["upload"]["url"].as_str().unwrap(),
        b"hello, world".to_vec(),
    )
    .await;
    let key = created["evidence"]["source_key"].as_str().unwrap();
    let got = s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_length(), Some(12));

    for (body, path) in [
        (json!({"file_name": "x", "multipart": true}), "$.size"),
        (json!({"file_name": "x", "size": 6_i64 << 30}), "$.size"),
        (
            json!({"file_name": "x", "size": -1, "multipart": true}),
            "$.size",
        ),
        (
            json!({"file_name": "x", "size": 6_i64 << 40, "multipart": true}),
            "$.size",
        ),
    ] {
        let (s, e) = call(&app, "POST", &base, Some(&admin), Some(body.clone())).await;
        assert_eq!(
            (s, e["error"]["path"].as_str()),
            (400, Some(path)),
            "{body}: {e}"
        );
    }
}
