//! The WebSocket contract has two halves that cannot see each other: the api stack
//! (`chrono_stacks::api`) writes the route keys, the integration path, the `$connect`
//! token parameter and the header mappings into the template; filter-ai
//! (`chrono_runtime::ai::gateway`) serves that path and reads those headers, and the
//! authorizer sets the context keys the mappings read. This test fails when they drift.

use std::sync::Arc;

use chrono_runtime::ai::ChatService;
use chrono_runtime::ai::catalog::PgCatalog;
use chrono_runtime::ai::gateway::{
    CONTEXT_CASES, CONTEXT_ROLES, CONTEXT_SUB, GATEWAY_PATH, HEADERS, TOKEN_QUERY,
};
use chrono_runtime::ai::http::{AiState, router};
use chrono_runtime::ai::local::{LocalGuard, LocalTranslator};
use chrono_runtime::ai::store::MemoryStore;
use chrono_stacks::api::{
    self, WS_GATEWAY_PATH, WS_HEADERS, WS_ROUTE_KEYS, WS_TOKEN_QUERY, ws_request_parameters,
};
use chrono_stacks::config::Config;
use serde_json::Value;

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
                [CONTEXT_SUB, CONTEXT_ROLES, CONTEXT_CASES].contains(&key),
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

#[tokio::test]
async fn the_service_answers_every_route_key_on_the_stacks_path() {
    // No query reaches the database on these requests; the pool never connects.
    let db = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:9/none").unwrap();
    let service = ChatService::new(
        Arc::new(LocalGuard),
        Arc::new(LocalTranslator),
        Arc::new(MemoryStore::default()),
        PgCatalog::new(db, None).unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(AiState {
        service,
        auth: None,
        pusher: None,
    });
    tokio::spawn(async move { axum::serve(listener, app).await });

    let header = |name: &str| {
        HEADERS
            .iter()
            .find(|(_, source)| *source == name)
            .map(|(h, _)| *h)
            .unwrap()
    };
    let http = reqwest::Client::new();
    for (route, with_context, want) in [
        ("$connect", true, 200),
        ("$connect", false, 401),
        ("$default", false, 401),
        ("$disconnect", false, 200),
    ] {
        let mut req = http
            .post(format!("http://{addr}{WS_GATEWAY_PATH}"))
            .header(header("context.routeKey"), route)
            .header(header("context.connectionId"), "c1=");
        if with_context {
            req = req
                .header(header("context.authorizer.sub"), "u1")
                .header(header("context.authorizer.roles"), "analyst")
                .header(header("context.authorizer.cases"), "*");
        }
        let res = req.send().await.unwrap();
        assert_eq!(
            res.status().as_u16(),
            want,
            "{route} (context: {with_context})"
        );
    }
}
