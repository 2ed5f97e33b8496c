//! The WebSocket contract has two halves that cannot see each other: the api stack
//! (`chrono_stacks::api`) writes the route keys, the integration path, the `$connect`
//! token parameter and the header mappings into the template; filter-ai
//! (`chrono_runtime::ai::gateway`) serves that path and reads those headers, and the
//! authorizer sets the context keys the mappings read. This test fails when they drift.
//!
//! It also proves the gateway path's trust rule with the synthesized mapping itself: a
//! request built from the template's integration request parameters (the authorizer's
//! verified token in its header) is served; one carrying forged `x-chrono-sub/roles/cases`
//! headers without that token is refused 401 before any question runs.

use std::sync::Arc;

use chrono_runtime::ai::ChatService;
use chrono_runtime::ai::authorizer::{AuthorizerEvent, authorize};
use chrono_runtime::ai::catalog::PgCatalog;
use chrono_runtime::ai::gateway::{
    CONTEXT_SUB, CONTEXT_TOKEN, GATEWAY_PATH, GatewayPusher, HEADERS, TOKEN_QUERY,
};
use chrono_runtime::ai::http::{AiState, router};
use chrono_runtime::ai::local::{LocalGuard, LocalTranslator};
use chrono_runtime::ai::store::MemoryStore;
use chrono_runtime::auth::{ClaimNames, DEFAULT_CASES_CLAIM, DEFAULT_ROLES_CLAIM, JwtVerifier};
use chrono_stacks::api::{
    self, WS_GATEWAY_PATH, WS_HEADERS, WS_ROUTE_KEYS, WS_TOKEN_QUERY, ws_request_parameters,
};
use chrono_stacks::config::Config;
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test/";
const AUDIENCE: &str = "chrono-api";
const KEY_PEM: &[u8] = include_bytes!("../../runtime/tests/fixtures/test-jwt-key.pem");
const JWKS: &str = include_str!("../../runtime/tests/fixtures/test-jwks.json");

fn verifier() -> JwtVerifier {
    JwtVerifier::from_jwks(JWKS, ISSUER, AUDIENCE, ClaimNames::default()).unwrap()
}

fn token(exp_in: i64) -> String {
    let claims = json!({
        "sub": "u1", "iss": ISSUER, "aud": AUDIENCE,
        "exp": chrono::Utc::now().timestamp() + exp_in,
        DEFAULT_ROLES_CLAIM: ["analyst"],
        DEFAULT_CASES_CLAIM: ["*"],
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(KEY_PEM).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn config() -> Config {
    let path = format!("{}/../customers/acme-prod.yaml", env!("CARGO_MANIFEST_DIR"));
    Config::load(std::path::Path::new(&path)).unwrap()
}

#[test]
fn the_stack_and_the_service_name_the_same_path_token_and_headers() {
    assert_eq!(WS_GATEWAY_PATH, GATEWAY_PATH);
    assert_eq!(WS_TOKEN_QUERY, TOKEN_QUERY);
    assert_eq!(WS_HEADERS, HEADERS);
    // every authorizer value a mapping reads is one the authorizer sets
    for (header, source) in WS_HEADERS {
        if let Some(key) = source.strip_prefix("context.authorizer.") {
            assert!(
                [CONTEXT_SUB, CONTEXT_TOKEN].contains(&key),
                "{header} maps {source}, which the authorizer never sets"
            );
        }
    }

    // ... and the synthesized template carries exactly these.
    let t = api::build(&config()).unwrap().stack.template.to_json();
    let integration = &t["Resources"]["WebSocketIntegration"]["Properties"];
    let uri = integration["IntegrationUri"]["Fn::Sub"].as_str().unwrap();
    assert!(uri.ends_with(GATEWAY_PATH), "{uri}");
    let params: std::collections::BTreeMap<String, String> =
        serde_json::from_value(integration["RequestParameters"].clone()).unwrap();
    assert_eq!(params, ws_request_parameters());
    for (header, source) in HEADERS {
        assert_eq!(
            params.get(&format!("integration.request.header.{header}")),
            Some(&source.to_string())
        );
    }
    assert_eq!(
        t["Resources"]["WebSocketAuthorizer"]["Properties"]["IdentitySource"],
        serde_json::json!([format!("route.request.querystring.{TOKEN_QUERY}")])
    );
    let routes: Vec<&Value> = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| {
            r["Type"] == "AWS::ApiGatewayV2::Route"
                && r["Properties"]["ApiId"] == serde_json::json!({"Ref": "WebSocketApi"})
        })
        .collect();
    let keys: Vec<&str> = routes
        .iter()
        .map(|r| r["Properties"]["RouteKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), WS_ROUTE_KEYS.len());
    for key in WS_ROUTE_KEYS {
        assert!(keys.contains(&key), "{key}");
    }
}

/// The headers API Gateway sends filter-ai for `route`, built from the synthesized
/// template's integration request parameters and the authorizer's answer for `token`.
fn integration_headers(route: &str, token: &str) -> Vec<(String, String)> {
    let answer = authorize(
        &verifier(),
        &serde_json::from_value::<AuthorizerEvent>(json!({
            "methodArn": "arn:aws:execute-api:eu-west-1:111122223333:abc123/live/$connect",
            "queryStringParameters": {TOKEN_QUERY: token},
        }))
        .unwrap(),
    );
    let t = api::build(&config()).unwrap().stack.template.to_json();
    let params = t["Resources"]["WebSocketIntegration"]["Properties"]["RequestParameters"]
        .as_object()
        .unwrap()
        .clone();
    params
        .iter()
        .map(|(target, source)| {
            let header = target
                .strip_prefix("integration.request.header.")
                .unwrap_or_else(|| panic!("{target} is not a header"));
            let source = source.as_str().unwrap();
            let value = match source {
                "context.connectionId" => "c1=".to_owned(),
                "context.routeKey" => route.to_owned(),
                "context.domainName" => "abc123.execute-api.eu-west-1.amazonaws.com".to_owned(),
                "context.stage" => "live".to_owned(),
                other => {
                    let key = other
                        .strip_prefix("context.authorizer.")
                        .unwrap_or_else(|| panic!("unknown mapping source {other}"));
                    answer["context"][key]
                        .as_str()
                        .unwrap_or_else(|| panic!("the authorizer sets no `{key}`: {answer}"))
                        .to_owned()
                }
            };
            (header.to_owned(), value)
        })
        .collect()
}

#[tokio::test]
async fn the_service_serves_the_integrations_requests_and_refuses_forged_ones() {
    // A question that got past authentication would need the database (and push a
    // reply); this pool never connects and nothing listens on the callback port.
    let db = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:9/none").unwrap();
    let service = ChatService::new(
        Arc::new(LocalGuard),
        Arc::new(LocalTranslator),
        Arc::new(MemoryStore::default()),
        PgCatalog::new(db, None).unwrap(),
    );
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(AiState {
        service,
        auth: None,
        pusher: Some(GatewayPusher::fixed(&sdk, "http://127.0.0.1:9")),
        gateway: Some(verifier()),
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let send = |headers: Vec<(String, String)>| {
        let mut req = http.post(format!("http://{addr}{WS_GATEWAY_PATH}"));
        for (h, v) in headers {
            req = req.header(h, v);
        }
        async move {
            let res = req
                .json(&json!({"case_id": uuid::Uuid::now_v7(), "question": "failed logons"}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Exactly what the integration sends: accepted on every route key.
    for (route, want) in [("$connect", 200), ("$disconnect", 200)] {
        let (status, body) = send(integration_headers(route, &token(3600))).await;
        assert_eq!(status, want, "{route}: {body}");
    }
    // ... `$default` passes authentication and reaches the question (which fails on the
    // unreachable database / callback, not with 401).
    let (status, body) = send(integration_headers("$default", &token(3600))).await;
    assert_ne!(status, 401, "{body}");

    // Forged caller headers, the integration's other headers, no valid token: refused.
    let forged = [
        ("x-chrono-sub", "forged-admin"),
        ("x-chrono-roles", "admin analyst"),
        ("x-chrono-cases", "*"),
    ];
    for route in ["$connect", "$default"] {
        for token_value in [None, Some("not-a-jwt".to_owned()), Some(token(-3600))] {
            let mut headers: Vec<(String, String)> = integration_headers(route, &token(3600))
                .into_iter()
                .filter(|(h, _)| !h.contains("token"))
                .collect();
            if let Some(t) = &token_value {
                headers.push(("x-chrono-token".into(), t.clone()));
            }
            headers.extend(forged.iter().map(|(h, v)| (h.to_string(), v.to_string())));
            let (status, body) = send(headers).await;
            assert_eq!(status, 401, "{route} {token_value:?}: {body}");
            assert_eq!(body["error"]["code"], "unauthenticated", "{route}");
        }
    }
}
