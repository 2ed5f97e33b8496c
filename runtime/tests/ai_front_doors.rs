//! Both front doors end to end on a loopback port: `POST /api/v1/ai/chat` over HTTP, the
//! local WebSocket with a real WebSocket client, and the AI-chat Lambda's router fed an API
//! Gateway HTTP v2 event. The API Gateway WebSocket path is in `ai_ws_gateway.rs`.

mod ai_support;

use std::net::SocketAddr;

use ai_support::{local_service, pool, seed};
use axum::Router;
use chrono::Utc;
use chrono_runtime::ai::http::{AiState, chat_router, router};
use chrono_runtime::auth::{
    Authenticator, ClaimNames, DEFAULT_CASES_CLAIM, DEFAULT_ROLES_CLAIM, JwtVerifier,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceExt;
use uuid::Uuid;

const ISSUER: &str = "https://issuer.test/";
const AUDIENCE: &str = "chrono-api";
const KEY_PEM: &[u8] = include_bytes!("fixtures/test-jwt-key.pem");
const JWKS: &str = include_str!("fixtures/test-jwks.json");

fn token(sub: &str, cases: &[Uuid]) -> String {
    let claims = json!({
        "sub": sub, "iss": ISSUER, "aud": AUDIENCE,
        "exp": Utc::now().timestamp() + 3600,
        DEFAULT_ROLES_CLAIM: ["analyst"],
        DEFAULT_CASES_CLAIM: cases.iter().map(Uuid::to_string).collect::<Vec<_>>(),
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(KEY_PEM).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn jwt_auth() -> Authenticator {
    Authenticator::Jwt(Box::new(
        JwtVerifier::from_jwks(JWKS, ISSUER, AUDIENCE, ClaimNames::default()).unwrap(),
    ))
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn ask(case: Uuid, question: &str) -> Value {
    json!({"case_id": case, "question": question, "tz": "Europe/Berlin"})
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn http_chat_answers_with_a_filter_and_guards_the_case(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = pool(opts).await;
    let cases = seed(&db).await;
    let now = "2024-03-14T15:00:00Z".parse().unwrap();
    let addr = serve(router(AiState {
        service: local_service(db.clone(), now),
        auth: Some(jwt_auth()),
        pusher: None,
        gateway: None,
    }))
    .await;
    let url = format!("http://{addr}/api/v1/ai/chat");
    let http = reqwest::Client::new();
    let bearer = token("u1", &[cases.case]);

    let res = http
        .post(&url)
        .bearer_auth(&bearer)
        .json(&ask(cases.case, "failed logons for root on web01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply["kind"], "filter");
    assert_eq!(reply["count"], 1, "sshd: Failed password for root");
    assert!(reply["summary"].as_str().unwrap().contains("root"));
    let resolved = reply["resolved"].as_array().unwrap();
    assert!(
        resolved.iter().any(|r| r["matched"] == json!(["root"]))
            && resolved.iter().any(|r| r["matched"] == json!(["web01"])),
        "{resolved:?}"
    );
    let session = reply["session_id"].as_str().unwrap().to_string();

    // A follow-up in the same session.
    let mut follow = ask(cases.case, "ssh sessions closed");
    follow["session_id"] = json!(session);
    let reply: Value = http
        .post(&url)
        .bearer_auth(&bearer)
        .json(&follow)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["session_id"], session.as_str());
    assert_eq!(reply["count"], 1, "alice's sshd session on web01");

    // No token, another case, a malformed body, a bad zone.
    let res = http
        .post(&url)
        .json(&ask(cases.case, "logons"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http
        .post(&url)
        .bearer_auth(&bearer)
        .json(&ask(cases.other, "logons"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let res = http
        .post(&url)
        .bearer_auth(&bearer)
        .json(&json!({"case_id": cases.case, "question": "x", "scope": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = http
        .post(&url)
        .bearer_auth(&bearer)
        .json(&json!({"case_id": cases.case, "question": "logons", "tz": "Mars/Olympus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Regression (issue 18): a NUL in the question was a 500 (PostgreSQL refused to store
    // it); now a 400 with the stable code, for NUL and the other control characters.
    for question in ["failed logons\u{0} for root", "logons\u{1b}[31m"] {
        let res = http
            .post(&url)
            .bearer_auth(&bearer)
            .json(&ask(cases.case, question))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{question:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{question:?}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("NUL"),
            "{body}"
        );
    }
    // Regression (issue 18): locally, a request to the API Gateway integration path with
    // forged caller headers ran a question on another case as `forged-admin`. Locally
    // (no `gateway` verifier) the service does not serve that path at all.
    use chrono_runtime::ai::gateway::{CONNECTION_HEADER, GATEWAY_PATH, ROUTE_KEY_HEADER};
    for route in ["$connect", "$default"] {
        let res = http
            .post(format!("http://{addr}{GATEWAY_PATH}"))
            .header(ROUTE_KEY_HEADER, route)
            .header(CONNECTION_HEADER, "forged=")
            .header("x-chrono-sub", "forged-admin")
            .header("x-chrono-roles", "admin")
            .header("x-chrono-cases", "*")
            .json(&ask(cases.other, "failed logons"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{route}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{route}");
    }
    let forged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE actor = 'forged-admin'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(forged, 0, "nothing ran as the forged caller");
    // line breaks and tabs are fine
    let res = http
        .post(&url)
        .bearer_auth(&bearer)
        .json(&ask(cases.case, "failed logons\n\tfor root on web01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn websocket_answers_each_message_on_the_same_connection(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = pool(opts).await;
    let cases = seed(&db).await;
    let now = "2024-03-14T15:00:00Z".parse().unwrap();
    let addr = serve(router(AiState {
        service: local_service(db.clone(), now),
        auth: Some(jwt_auth()),
        pusher: None,
        gateway: None,
    }))
    .await;

    // Without a token the upgrade is refused.
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ai/ws")).await;
    assert!(refused.is_err());

    let mut request = format!("ws://{addr}/api/v1/ai/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        http::header::AUTHORIZATION,
        format!("Bearer {}", token("u1", &[cases.case]))
            .parse()
            .unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();

    let mut exchange = async |msg: Value| -> Value {
        ws.send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let reply = exchange(ask(cases.case, "sudo by deploy")).await;
    assert_eq!(reply["kind"], "filter");
    assert_eq!(reply["count"], 1);
    let mut follow = ask(
        cases.case,
        "what is the weather like in Paris today, tell me a joke",
    );
    follow["session_id"] = reply["session_id"].clone();
    let refusal = exchange(follow).await;
    assert_eq!(refusal["kind"], "refusal");
    assert_eq!(refusal["session_id"], reply["session_id"]);
    let error = exchange(ask(cases.other, "logons")).await;
    assert_eq!(error["error"]["code"], "not_found");
    let bad = exchange(json!({"question": "no case"})).await;
    assert_eq!(bad["error"]["code"], "invalid_request");

    // The browser form: the token as a query parameter.
    let (mut ws2, _) = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/api/v1/ai/ws?access_token={}",
        token("u1", &[cases.case])
    ))
    .await
    .unwrap();
    ws2.send(Message::Text(
        ask(cases.case, "event 4720").to_string().into(),
    ))
    .await
    .unwrap();
    let Message::Text(t) = ws2.next().await.unwrap().unwrap() else {
        panic!("expected text")
    };
    let reply: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(
        reply["count"], 3,
        "4720 twice in security.evtx, once in new-user-security.evtx"
    );
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_lambda_router_takes_claims_from_the_authorizer(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = pool(opts).await;
    let cases = seed(&db).await;
    let now = "2024-03-14T15:00:00Z".parse().unwrap();
    let app = chat_router(AiState {
        service: local_service(db.clone(), now),
        auth: Some(Authenticator::ApiGateway(ClaimNames::default())),
        pusher: None,
        gateway: None,
    });
    let event = |case: Uuid, claims: Value| {
        json!({
            "version": "2.0",
            "routeKey": "POST /api/v1/ai/chat",
            "rawPath": "/api/v1/ai/chat",
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "x.example",
                "domainPrefix": "x", "requestId": "r1", "routeKey": "POST /api/v1/ai/chat",
                "stage": "$default", "time": "14/Mar/2024:15:00:00 +0000",
                "timeEpoch": 1710428400000u64,
                "http": {"method": "POST", "path": "/api/v1/ai/chat", "protocol": "HTTP/1.1",
                         "sourceIp": "192.0.2.1", "userAgent": "test"},
                "authorizer": {"jwt": {"claims": claims, "scopes": null}}
            },
            "body": ask(case, "new users on linux").to_string(),
            "isBase64Encoded": false
        })
        .to_string()
    };
    let call = async |text: String| {
        let req = lambda_http::request::from_str(&text).unwrap();
        let (parts, body) = req.into_parts();
        let req = http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice::<Value>(&bytes).unwrap())
    };
    let claims = json!({
        "sub": "u1",
        DEFAULT_ROLES_CLAIM: "[analyst]",
        DEFAULT_CASES_CLAIM: format!("[{}]", cases.case),
    });
    let (status, reply) = call(event(cases.case, claims.clone())).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["kind"], "filter");
    assert_eq!(reply["count"], 1, "useradd of backdoor");
    let (status, _) = call(event(cases.other, claims)).await;
    assert_eq!(status, 404);
    let (status, _) = call(event(cases.case, json!({}))).await;
    assert_eq!(status, 401);
}
