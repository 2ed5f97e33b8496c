//! The authorization matrix: every case route × caller (no token, no role, analyst, admin,
//! owner) × case (granted, created by the caller, someone else's, unknown). The expected
//! status of each cell is derived from the rules (401 without a token, 403 when the role
//! does not allow the route, 404 when the case is not accessible, success otherwise) and
//! every answer about a case the caller may not see is checked to leak nothing of it.

mod common;

use common::{call, token};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    Read,
    Admin,
    /// Read to reach it; then only its creator (nobody here) or an admin may change it.
    OwnerOrAdmin,
}

struct Route {
    method: &'static str,
    path: &'static str,
    need: Need,
    body: Option<fn() -> Value>,
}

const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "POST",
        path: "/api/v1/cases/{case}/evidence",
        need: Need::Admin,
        body: Some(
            || json!({"file_name": "x.log", "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}),
        ),
    },
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}/evidence",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}/evidence/{evidence}",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "POST",
        path: "/api/v1/cases/{case}/evidence/{evidence}/process",
        need: Need::Admin,
        body: None,
    },
    Route {
        method: "POST",
        path: "/api/v1/cases/{case}/events/search",
        need: Need::Read,
        body: Some(|| json!({})),
    },
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}/events/{event}",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "PUT",
        path: "/api/v1/cases/{case}/events/{event}/labels/star",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/cases/{case}/events/{event}/labels/star",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "POST",
        path: "/api/v1/cases/{case}/evidence/{evidence}/upload/parts",
        need: Need::Admin,
        body: Some(
            || json!({"parts": [{"part_number": 1, "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}]}),
        ),
    },
    Route {
        method: "POST",
        path: "/api/v1/cases/{case}/evidence/{evidence}/upload/complete",
        need: Need::Admin,
        body: Some(
            || json!({"parts": [{"part_number": 1, "etag": "\"e\"", "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}]}),
        ),
    },
    Route {
        method: "DELETE",
        path: "/api/v1/cases/{case}/evidence/{evidence}/upload",
        need: Need::Admin,
        body: None,
    },
    Route {
        method: "POST",
        path: "/api/v1/cases/{case}/events/histogram",
        need: Need::Read,
        body: Some(|| json!({})),
    },
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}/events/{event}/comments",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "POST",
        path: "/api/v1/cases/{case}/events/{event}/comments",
        need: Need::Read,
        body: Some(|| json!({"body": "seen"})),
    },
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}/labels",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}/filters",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "POST",
        path: "/api/v1/cases/{case}/filters",
        need: Need::Read,
        body: Some(|| json!({"name": "mine", "document": {}})),
    },
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}/filters/{filter}",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "PUT",
        path: "/api/v1/cases/{case}/filters/{filter}",
        need: Need::OwnerOrAdmin,
        body: Some(|| json!({"name": "renamed", "document": {"limit": 5}})),
    },
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}/devices",
        need: Need::Read,
        body: None,
    },
    Route {
        method: "GET",
        path: "/api/v1/cases/{case}/identities",
        need: Need::Read,
        body: None,
    },
];

/// (name, token, roles allow reading, roles allow admin routes, cases they may access)
type Caller = (&'static str, Option<String>, bool, bool, Vec<Uuid>);

struct Target {
    name: &'static str,
    case: Uuid,
    evidence: Uuid,
    event: i64,
    filter: Uuid,
    /// Strings that must not appear in an answer to a caller without access.
    secrets: Vec<String>,
}

async fn add_case(db: &sqlx::PgPool, name: &str, created_by: &str) -> (Uuid, Uuid, i64, Uuid) {
    let case = Uuid::now_v7();
    sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, $2, $3)")
        .bind(case)
        .bind(name)
        .bind(created_by)
        .execute(db)
        .await
        .unwrap();
    let evidence = common::insert_evidence(db, case).await;
    let event: i64 = sqlx::query_scalar(
        "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, data_type, source, parser, message, record_ref, dedup_key) \
         VALUES ($1, $2, now(), 'x', 'x', 'EVT', 'x', $3, 'rec', 'rec') RETURNING id",
    )
    .bind(case).bind(evidence).bind(format!("secret message of {name}"))
    .fetch_one(db).await.unwrap();
    let filter = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO saved_filters (id, case_id, name, document, created_by) \
         VALUES ($1, $2, $3, '{}', 'someone')",
    )
    .bind(filter)
    .bind(case)
    .bind(format!("secret filter of {name}"))
    .execute(db)
    .await
    .unwrap();
    (case, evidence, event, filter)
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn authz_matrix_has_no_leaks(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let app = common::app(db.clone());

    let (granted, granted_ev, granted_event, granted_filter) =
        add_case(&db, "Granted Case", "someone").await;
    let (owned, owned_ev, owned_event, owned_filter) = add_case(&db, "Owned Case", "u-owner").await;
    let (foreign, foreign_ev, foreign_event, foreign_filter) =
        add_case(&db, "Foreign Case", "other-owner").await;
    let targets = [
        Target {
            name: "granted",
            case: granted,
            evidence: granted_ev,
            event: granted_event,
            filter: granted_filter,
            secrets: vec![],
        },
        Target {
            name: "owned",
            case: owned,
            evidence: owned_ev,
            event: owned_event,
            filter: owned_filter,
            secrets: vec![],
        },
        Target {
            name: "foreign",
            case: foreign,
            evidence: foreign_ev,
            event: foreign_event,
            filter: foreign_filter,
            secrets: vec![
                "Foreign Case".into(),
                "secret message of Foreign Case".into(),
                "secret filter of Foreign Case".into(),
                foreign_ev.to_string(),
                "other-owner".into(),
            ],
        },
        Target {
            name: "unknown",
            case: Uuid::now_v7(),
            evidence: Uuid::now_v7(),
            event: 999_999,
            filter: Uuid::now_v7(),
            secrets: vec![],
        },
    ];
    let grant = vec![granted.to_string()];
    // (caller, token, roles allow read, roles allow admin, cases they may access)
    let callers: Vec<Caller> = vec![
        ("anonymous", None, false, false, vec![]),
        (
            "no role",
            Some(token("u-none", &[], &grant)),
            false,
            false,
            vec![granted],
        ),
        (
            "analyst",
            Some(token("u-analyst", &["analyst"], &grant)),
            true,
            false,
            vec![granted],
        ),
        (
            "admin",
            Some(token("u-admin", &["admin"], &grant)),
            true,
            true,
            vec![granted],
        ),
        (
            "owner admin",
            Some(token("u-owner", &["admin", "analyst"], &[])),
            true,
            true,
            vec![owned],
        ),
        (
            "owner analyst",
            Some(token("u-owner", &["analyst"], &[])),
            true,
            false,
            vec![owned],
        ),
    ];

    let mut cells = 0;
    let mut failures = Vec::new();
    for route in ROUTES {
        for (who, tok, can_read, can_admin, access) in &callers {
            for t in &targets {
                let uri = route
                    .path
                    .replace("{case}", &t.case.to_string())
                    .replace("{evidence}", &t.evidence.to_string())
                    .replace("{event}", &t.event.to_string())
                    .replace("{filter}", &t.filter.to_string());
                let expected: &[u16] = if tok.is_none() {
                    &[401]
                } else if !(match route.need {
                    Need::Read | Need::OwnerOrAdmin => *can_read,
                    Need::Admin => *can_admin,
                }) {
                    &[403]
                } else if !access.contains(&t.case) {
                    &[404]
                } else if route.need == Need::OwnerOrAdmin && !*can_admin {
                    &[403]
                } else {
                    // processing twice is a conflict, still an authorized answer
                    &[200, 201, 202, 204, 409]
                };
                let (status, body) = call(
                    &app,
                    route.method,
                    &uri,
                    tok.as_deref(),
                    route.body.map(|b| b()),
                )
                .await;
                cells += 1;
                if !expected.contains(&status) {
                    failures.push(format!(
                        "{} {} as {who} on {}: {status}, expected {expected:?}: {body}",
                        route.method, route.path, t.name
                    ));
                }
                if !access.contains(&t.case) {
                    let text = body.to_string();
                    for s in &t.secrets {
                        if text.contains(s) {
                            failures.push(format!(
                                "LEAK: {} {} as {who} on {} revealed {s:?}",
                                route.method, route.path, t.name
                            ));
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cells, ROUTES.len() * callers.len() * targets.len());
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // listing: nobody but the foreign case's owner (absent here) or a "*" grant sees it
    for (who, tok, can_read, _, _) in &callers {
        let (status, body) = call(&app, "GET", "/api/v1/cases", tok.as_deref(), None).await;
        if tok.is_none() {
            assert_eq!(status, 401);
        } else if !can_read {
            assert_eq!(status, 403, "{who}");
        } else {
            assert_eq!(status, 200, "{who}");
            assert!(
                !body.to_string().contains("Foreign Case"),
                "{who} sees the foreign case"
            );
        }
    }
    let star = token("u-star", &["analyst"], &["*".to_string()]);
    let (_, body) = call(&app, "GET", "/api/v1/cases", Some(&star), None).await;
    assert_eq!(body["cases"].as_array().unwrap().len(), 3);
}
