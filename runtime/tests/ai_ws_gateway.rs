//! The API Gateway WebSocket path end to end on loopback ports: the `$connect` REQUEST
//! authorizer's answers (allow with the caller's subject and verified token, deny for every
//! bad token), that context mapped into headers the way the api stack's integration does,
//! filter-ai's gateway route for `$connect`/`$default`/`$disconnect` (which verifies the
//! token again and refuses forged caller headers), and replies pushed to a loopback
//! `@connections` endpoint through the management API SDK.

mod ai_support;
mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ai_support::{local_service, pool, seed};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use chrono::Utc;
use chrono_runtime::ai::authorizer::{AuthorizerEvent, authorize};
use chrono_runtime::ai::gateway::{
    CONNECTION_HEADER, DOMAIN_HEADER, GATEWAY_PATH, GatewayPusher, ROUTE_KEY_HEADER, STAGE_HEADER,
    TOKEN_HEADER, TOKEN_QUERY,
};
use chrono_runtime::ai::http::{AiState, router};
use chrono_runtime::auth::{DEFAULT_CASES_CLAIM, DEFAULT_ROLES_CLAIM};
use common::{AUDIENCE, ISSUER, token_with, verifier};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const METHOD_ARN: &str = "arn:aws:execute-api:eu-west-1:111122223333:abc123/live/$connect";

fn claims(sub: &str, cases: &[Uuid]) -> Value {
    json!({
        "sub": sub, "iss": ISSUER, "aud": AUDIENCE,
        "exp": Utc::now().timestamp() + 3600,
        DEFAULT_ROLES_CLAIM: ["analyst"],
        DEFAULT_CASES_CLAIM: cases.iter().map(Uuid::to_string).collect::<Vec<_>>(),
    })
}

fn connect_event(token: Option<&str>) -> AuthorizerEvent {
    serde_json::from_value(json!({
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "queryStringParameters": token.map(|t| json!({TOKEN_QUERY: t})),
        "requestContext": {"routeKey": "$connect", "connectionId": "c1", "eventType": "CONNECT"}
    }))
    .unwrap()
}

fn effect(answer: &Value) -> &str {
    answer["policyDocument"]["Statement"][0]["Effect"]
        .as_str()
        .unwrap()
}

#[test]
fn the_authorizer_allows_a_valid_token_with_the_callers_context() {
    let case = Uuid::now_v7();
    let token = token_with(claims("u1", &[case]));
    let answer = authorize(&verifier(), &connect_event(Some(&token)));
    assert_eq!(effect(&answer), "Allow", "{answer}");
    assert_eq!(
        answer["policyDocument"]["Statement"][0]["Resource"],
        METHOD_ARN
    );
    assert_eq!(answer["principalId"], "u1");
    // context values must be strings, numbers or booleans
    // (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-lambda-authorizer-output.html)
    assert_eq!(answer["context"], json!({"sub": "u1", "token": token}));
}

#[test]
fn the_authorizer_denies_every_bad_token() {
    let case = [Uuid::now_v7()];
    let mut expired = claims("u1", &case);
    expired["exp"] = json!(Utc::now().timestamp() - 3600);
    let mut other_audience = claims("u1", &case);
    other_audience["aud"] = json!("someone-else");
    let mut other_issuer = claims("u1", &case);
    other_issuer["iss"] = json!("https://evil.test/");
    let valid = token_with(claims("u1", &case));
    let mut tampered = valid.clone();
    tampered.replace_range(valid.len() - 6.., "AAAAAA");
    let unsigned = {
        let mut parts = valid.split('.');
        let (h, p) = (parts.next().unwrap(), parts.next().unwrap());
        format!("{h}.{p}.")
    };
    for (what, token) in [
        ("missing", None),
        ("empty", Some(String::new())),
        ("garbage", Some("not-a-jwt".to_string())),
        ("expired", Some(token_with(expired))),
        ("other audience", Some(token_with(other_audience))),
        ("other issuer", Some(token_with(other_issuer))),
        ("bad signature", Some(tampered)),
        ("unsigned", Some(unsigned)),
    ] {
        let answer = authorize(&verifier(), &connect_event(token.as_deref()));
        assert_eq!(effect(&answer), "Deny", "{what}: {answer}");
        assert!(answer.get("context").is_none(), "{what}");
    }
}

/// Bodies pushed per connection id.
type Pushed = Arc<Mutex<Vec<(String, Value)>>>;

/// A loopback API Gateway management API: records `POST /@connections/{id}` bodies.
async fn fake_connections() -> (Pushed, SocketAddr) {
    let pushed = Arc::new(Mutex::new(Vec::new()));
    async fn post_to(
        State(p): State<Pushed>,
        Path(id): Path<String>,
        body: axum::body::Bytes,
    ) -> http::StatusCode {
        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
        p.lock().unwrap().push((id, v));
        http::StatusCode::OK
    }
    let app = Router::new()
        .route("/@connections/{id}", post(post_to))
        .with_state(pushed.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (pushed, addr)
}

/// Sends what API Gateway sends filter-ai for one route of a connection (the mapped
/// headers, with the token from the authorizer's context when the connection has one) plus
/// `extra` headers, and returns the status and the JSON body.
async fn gateway(
    addr: SocketAddr,
    route: &str,
    connection: &str,
    context: Option<&Value>,
    extra: &[(&str, &str)],
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}{GATEWAY_PATH}"))
        .header(ROUTE_KEY_HEADER, route)
        .header(CONNECTION_HEADER, connection)
        .header(DOMAIN_HEADER, "abc123.execute-api.eu-west-1.amazonaws.com")
        .header(STAGE_HEADER, "live");
    if let Some(ctx) = context {
        req = req.header(TOKEN_HEADER, ctx["token"].as_str().unwrap());
    }
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn audit_rows(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(db)
        .await
        .unwrap()
}

/// What an attacker inside the VPC sends: the caller headers the integration used to map.
const FORGED: [(&str, &str); 3] = [
    ("x-chrono-sub", "forged-admin"),
    ("x-chrono-roles", "admin analyst"),
    ("x-chrono-cases", "*"),
];

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn gateway_routes_answer_authorized_connections_only(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = pool(opts).await;
    let cases = seed(&db).await;
    let (pushed, callback) = fake_connections().await;
    let now = "2024-03-14T15:00:00Z".parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(AiState {
        service: local_service(db.clone(), now),
        // like filter-ai in AWS: no JWKS for the chat route, the gateway path verifies
        auth: None,
        pusher: Some(GatewayPusher::fixed(
            &common::sdk("eu-west-1", None),
            &format!("http://{callback}"),
        )),
        gateway: Some(verifier()),
    });
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The context the authorizer gives a connection of an analyst of `cases.case`.
    let allowed = authorize(
        &verifier(),
        &connect_event(Some(&token_with(claims("u1", &[cases.case])))),
    );
    let ctx = allowed["context"].clone();
    let ask = |case: Uuid, q: &str| json!({"case_id": case, "question": q, "tz": "Europe/Berlin"});

    let (status, _) = gateway(addr, "$connect", "conn-1=", Some(&ctx), &[], None).await;
    assert_eq!(status, 200);
    let question = Some(ask(cases.case, "access keys created"));
    let (status, _) = gateway(addr, "$default", "conn-1=", Some(&ctx), &[], question).await;
    assert_eq!(status, 204);
    {
        let p = pushed.lock().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "conn-1=");
        assert_eq!(p[0].1["kind"], "filter", "{}", p[0].1);
        assert_eq!(p[0].1["count"], 1);
    }
    let audited = audit_rows(&db).await;
    assert!(audited >= 1, "the answered question is audited");

    // Another case through the same authorized connection, even with forged caller
    // headers granting every case: the caller comes from the token only.
    let question = Some(ask(cases.other, "access keys created"));
    let (status, _) = gateway(addr, "$default", "conn-1=", Some(&ctx), &FORGED, question).await;
    assert_eq!(status, 204);
    {
        let p = pushed.lock().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].1["error"]["code"], "not_found", "{}", p[1].1);
        assert!(p[1].1.get("filter").is_none() && p[1].1.get("count").is_none());
    }
    let audited = audit_rows(&db).await;

    // Forged caller headers without a token that verifies: refused 401 with the stable
    // code on every route that acts, no question runs, nothing is pushed or audited.
    let mut expired = claims("u1", &[cases.case]);
    expired["exp"] = json!(Utc::now().timestamp() - 3600);
    let mut other_audience = claims("u1", &[cases.case]);
    other_audience["aud"] = json!("someone-else");
    let valid = ctx["token"].as_str().unwrap().to_owned();
    let mut tampered = valid.clone();
    tampered.replace_range(valid.len() - 6.., "AAAAAA");
    let context = |token: String| json!({"sub": "u1", "token": token});
    for (what, context) in [
        ("no token", None),
        ("empty token", Some(context(String::new()))),
        ("garbage token", Some(context("not-a-jwt".into()))),
        ("expired token", Some(context(token_with(expired)))),
        ("other audience", Some(context(token_with(other_audience)))),
        ("bad signature", Some(context(tampered))),
    ] {
        for route in ["$connect", "$default"] {
            let question = Some(ask(cases.case, "access keys created"));
            let (status, body) =
                gateway(addr, route, "conn-2=", context.as_ref(), &FORGED, question).await;
            assert_eq!(status, 401, "{what} {route}: {body}");
            assert_eq!(body["error"]["code"], "unauthenticated", "{what} {route}");
        }
    }
    assert_eq!(pushed.lock().unwrap().len(), 2, "nothing pushed to conn-2");
    assert_eq!(
        audit_rows(&db).await,
        audited,
        "no audit row for refused requests"
    );

    // Disconnect does nothing and needs no token; unknown route keys and missing ids are
    // bad requests.
    let (status, _) = gateway(addr, "$disconnect", "conn-2=", None, &[], None).await;
    assert_eq!(status, 200);
    let (status, _) = gateway(addr, "sendmessage", "conn-1=", Some(&ctx), &[], None).await;
    assert_eq!(status, 400);
    let res = reqwest::Client::new()
        .post(format!("http://{addr}{GATEWAY_PATH}"))
        .header(ROUTE_KEY_HEADER, "$default")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Without a JWKS for the chat route it answers 401 even with a well-formed token.
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/ai/chat"))
        .bearer_auth(token_with(claims("u1", &[cases.case])))
        .json(&ask(cases.case, "access keys created"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
