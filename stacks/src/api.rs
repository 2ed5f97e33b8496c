//! The `api` stack: the HTTP API (JWT authorizer with the configured issuer and audience)
//! in front of `chrono-api`, `POST /api/v1/ai/chat` to the AI-chat Lambda, the WebSocket
//! API to the filter-ai service (VPC link to the internal NLB; not in previews,
//! [`Config::websocket_api`]), stages and access logs.
//!
//! The WebSocket contract with filter-ai (the runtime's `chrono_runtime::ai::gateway`
//! holds the other half; `tests/tests/ws_contract.rs` checks that they agree):
//!
//! * WebSocket APIs have no JWT authorizer and browsers cannot send headers, so `$connect`
//!   carries the token in the query string ([`WS_TOKEN_QUERY`]) and a Lambda REQUEST
//!   authorizer (`chrono-ws-authorizer`) verifies it; a bad or missing token gets no
//!   connection. Its context (subject, the verified token) stays with the connection.
//! * Every route key of [`WS_ROUTE_KEYS`] reaches filter-ai as `POST` [`WS_GATEWAY_PATH`]
//!   through the VPC link, with the integration request parameters of [`WS_HEADERS`]
//!   (connection id, route key, callback domain and stage, the token from the authorizer's
//!   context, which filter-ai verifies again: nothing else in the VPC can pass it, see
//!   `chrono_runtime::ai::gateway`). Context variables, `context.authorizer.*` included,
//!   map into integration headers:
//!   <https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-data-mapping.html>.

use chrono_contract::outputs;
use serde_json::json;

use crate::compute::{ComputeOutputs, WebSocketOutputs};
use crate::config::Config;
use crate::model::{Attributes, Expr, Handle, ModelError, Parameter, Policy, Template};
use crate::network::FILTER_AI_PORT;
use crate::resources::api::{
    Api, ApiCors, Authorizer, Integration, JwtConfiguration, Route, Stage, VpcLink,
};
use crate::resources::compute::{LogGroup, Permission};
use crate::stack::{Stack, StackKind, tag_map, tags};
use crate::web::WebOutputs;

/// Proxy routes of the HTTP API to `chrono-api`, one per method the API has. Not `ANY`:
/// an `ANY` route would also take the browsers' CORS preflights (`OPTIONS`, without a
/// token) to the JWT authorizer and refuse them; with no `OPTIONS` route, API Gateway
/// answers preflights itself from the API's CORS configuration
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html>).
pub const API_ROUTES: [&str; 4] = [
    "GET /api/v1/{proxy+}",
    "POST /api/v1/{proxy+}",
    "PUT /api/v1/{proxy+}",
    "DELETE /api/v1/{proxy+}",
];
/// Methods the app may call cross-origin, and the request headers it sends.
pub const CORS_METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
/// See [`CORS_METHODS`].
pub const CORS_HEADERS: [&str; 2] = ["authorization", "content-type"];
/// Route of the AI chat.
pub const AI_CHAT_ROUTE: &str = "POST /api/v1/ai/chat";
/// The API's health check: the only route without the JWT authorizer (it answers
/// `{"status":"ok"}` after a `SELECT 1`, nothing else; the stage's throttling applies);
/// `chronoctl onboard` smoke-tests the deployment through it.
pub const HEALTH_ROUTE: &str = "GET /healthz";
/// The WebSocket API's route keys (all to filter-ai; only `$connect` is authorized).
pub const WS_ROUTE_KEYS: [&str; 3] = ["$connect", "$default", "$disconnect"];
/// filter-ai's path for every WebSocket route.
pub const WS_GATEWAY_PATH: &str = "/api/v1/ai/ws/gateway";
/// Query string parameter of `$connect` with the token (the authorizer's identity source).
pub const WS_TOKEN_QUERY: &str = "token";
/// Stage of the WebSocket API.
pub const WS_STAGE: &str = "live";
/// Header filter-ai reads → API Gateway mapping expression, on every route.
pub const WS_HEADERS: [(&str, &str); 5] = [
    ("x-chrono-connection-id", "context.connectionId"),
    ("x-chrono-route-key", "context.routeKey"),
    ("x-chrono-domain", "context.domainName"),
    ("x-chrono-stage", "context.stage"),
    ("x-chrono-token", "context.authorizer.token"),
];

/// The integration request parameters of [`WS_HEADERS`].
pub fn ws_request_parameters() -> std::collections::BTreeMap<String, String> {
    WS_HEADERS
        .iter()
        .map(|(header, source)| {
            (
                format!("integration.request.header.{header}"),
                (*source).to_owned(),
            )
        })
        .collect()
}

/// The built stack.
#[derive(Debug, Clone)]
pub struct ApiStack {
    /// Template and wiring.
    pub stack: Stack,
}

fn ws_access_log_format() -> String {
    json!({
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "routeKey": "$context.routeKey",
        "connectionId": "$context.connectionId",
        "status": "$context.status",
        "sub": "$context.authorizer.principalId",
        "authorizerError": "$context.authorizer.error",
        "integrationError": "$context.integrationErrorMessage"
    })
    .to_string()
}

/// A parameter holding the ARN of `what`.
fn arn_param(what: &str) -> Parameter {
    Parameter::string(what).pattern("^arn:.+")
}

fn access_log_format() -> String {
    json!({
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "sub": "$context.authorizer.claims.sub",
        "integrationError": "$context.integrationErrorMessage"
    })
    .to_string()
}

/// Build the api stack of a config (wired to its compute and web stacks' outputs).
pub fn build(cfg: &Config) -> Result<ApiStack, ModelError> {
    build_wired(
        cfg,
        &crate::compute::build(cfg)?.outputs,
        &crate::web::build(cfg)?.outputs,
    )
}

/// Build the api stack with its parameters wired to `compute`'s and `web`'s outputs.
pub fn build_wired(
    cfg: &Config,
    compute: &ComputeOutputs,
    web: &WebOutputs,
) -> Result<ApiStack, ModelError> {
    let mut s = Stack::new(
        cfg,
        StackKind::Api,
        if compute.websocket.is_some() {
            "HTTP API, AI chat route, WebSocket API"
        } else {
            "HTTP API, AI chat route"
        },
    );
    let identity = crate::web::identity(&mut s, cfg, web)?;
    let app_origin = s.import(
        "AppOrigin",
        &web.app_origin,
        Parameter::string("origin of the web app (CORS)").pattern("^https://.+"),
    )?;
    let api_fn = s.import(
        "ApiFunctionArn",
        &compute.api_function_arn,
        arn_param("chrono-api Lambda"),
    )?;
    let chat_fn = s.import(
        "AiChatFunctionArn",
        &compute.ai_chat_function_arn,
        arn_param("AI chat Lambda"),
    )?;
    let prefix = cfg.prefix();
    let t = &mut s.template;
    let http = t.add(
        "HttpApi",
        Api {
            name: format!("{prefix}-http"),
            protocol_type: "HTTP".into(),
            route_selection_expression: None,
            cors_configuration: Some(ApiCors {
                allow_origins: vec![app_origin.r#ref()],
                allow_methods: CORS_METHODS.map(String::from).to_vec(),
                allow_headers: CORS_HEADERS.map(String::from).to_vec(),
                max_age: 600,
            }),
            tags: tag_map(cfg),
        },
    )?;
    let authorizer = t.add(
        "JwtAuthorizer",
        Authorizer {
            api_id: http.r#ref(),
            name: "jwt".into(),
            authorizer_type: "JWT".into(),
            identity_source: vec!["$request.header.Authorization".into()],
            jwt_configuration: Some(JwtConfiguration {
                audience: vec![identity.audience.clone()],
                issuer: identity.issuer.clone(),
            }),
            authorizer_uri: None,
        },
    )?;
    let lambda_integration = |api: &Handle<Api>, function: Expr| Integration {
        api_id: api.r#ref(),
        integration_type: "AWS_PROXY".into(),
        integration_uri: function,
        integration_method: None,
        payload_format_version: Some("2.0".into()),
        connection_type: None,
        connection_id: None,
        timeout_in_millis: Some(29_000),
        request_parameters: None,
    };
    let api_integration = t.add("ApiIntegration", lambda_integration(&http, api_fn.r#ref()))?;
    let chat_integration = t.add(
        "AiChatIntegration",
        lambda_integration(&http, chat_fn.r#ref()),
    )?;
    let route_ids = [
        "ApiGetRoute",
        "ApiPostRoute",
        "ApiPutRoute",
        "ApiDeleteRoute",
    ];
    let api_routes = route_ids
        .into_iter()
        .zip(API_ROUTES)
        .map(|(id, key)| (id, key, &api_integration, true));
    for (id, key, integration, jwt) in api_routes.chain([
        ("AiChatRoute", AI_CHAT_ROUTE, &chat_integration, true),
        // Only the health check is open (onboard's smoke test calls it).
        ("HealthRoute", HEALTH_ROUTE, &api_integration, false),
    ]) {
        let jwt = jwt.then(|| ("JWT", authorizer.r#ref()));
        t.add(id, route(&http, key, integration.id(), jwt))?;
    }
    let http_logs = access_logs(
        t,
        cfg,
        "HttpApiAccessLogs",
        format!("/aws/apigateway/{prefix}-http"),
    )?;
    t.add(
        "HttpApiStage",
        Stage {
            api_id: http.r#ref(),
            stage_name: "$default".into(),
            auto_deploy: true,
            access_log_settings: json!({"DestinationArn": http_logs.arn(), "Format": access_log_format()}),
            default_route_settings: json!({"ThrottlingBurstLimit": 200, "ThrottlingRateLimit": 100}),
            tags: tag_map(cfg),
        },
    )?;
    for (id, function) in [
        ("ApiInvokePermission", &api_fn),
        ("AiChatInvokePermission", &chat_fn),
    ] {
        t.add(id, invoke_permission(function.r#ref(), &http, "*"))?;
    }

    s.export(
        outputs::HTTP_API_URL,
        "base URL of the HTTP API",
        http.endpoint(),
    )?;
    if let Some(ws) = &compute.websocket {
        websocket_api(&mut s, cfg, ws)?;
    }
    Ok(ApiStack { stack: s })
}

/// An access log group with the config's retention, deleted with the stack.
fn access_logs(
    t: &mut Template,
    cfg: &Config,
    id: &str,
    name: String,
) -> Result<Handle<LogGroup>, ModelError> {
    t.add_with(
        id,
        LogGroup {
            tags: tags(cfg, &name),
            log_group_name: name,
            retention_in_days: cfg.log_retention_days,
        },
        Attributes::retention(Policy::Delete),
    )
}

/// A route to `integration`, behind an authorizer (its type and reference) or open.
fn route(
    api: &Handle<Api>,
    key: &str,
    integration: &str,
    authorizer: Option<(&str, Expr)>,
) -> Route {
    Route {
        api_id: api.r#ref(),
        route_key: key.into(),
        authorization_type: authorizer.as_ref().map_or("NONE", |a| a.0).into(),
        authorizer_id: authorizer.map(|a| a.1),
        target: Expr::sub(format!("integrations/${{{integration}}}")),
    }
}

/// API Gateway may invoke `function` for requests matching `source` (an execute-api ARN
/// below `api`).
fn invoke_permission(function: Expr, api: &Handle<Api>, source: &str) -> Permission {
    Permission {
        action: "lambda:InvokeFunction".into(),
        function_name: function,
        principal: "apigateway.amazonaws.com".into(),
        source_arn: Expr::sub(format!(
            "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{}}}/{source}",
            api.id()
        )),
    }
}

/// The WebSocket API to filter-ai (VPC link to the internal NLB, `$connect` authorizer,
/// stage, access logs) and its URL output; only in stages that have it
/// ([`Config::websocket_api`]).
fn websocket_api(
    s: &mut Stack,
    cfg: &Config,
    compute: &WebSocketOutputs,
) -> Result<(), ModelError> {
    let nlb = s.import(
        "FilterAiLoadBalancerArn",
        &compute.load_balancer_arn,
        arn_param("internal NLB of filter-ai"),
    )?;
    let authorizer_fn = s.import(
        "WsAuthorizerFunctionArn",
        &compute.ws_authorizer_function_arn,
        arn_param("WebSocket $connect authorizer Lambda"),
    )?;
    let nlb_dns = s.import(
        "FilterAiLoadBalancerDns",
        &compute.load_balancer_dns,
        Parameter::string("DNS name of the internal NLB"),
    )?;
    let prefix = cfg.prefix();
    let t = &mut s.template;
    let ws = t.add(
        "WebSocketApi",
        Api {
            name: format!("{prefix}-ws"),
            protocol_type: "WEBSOCKET".into(),
            route_selection_expression: Some("$request.body.action".into()),
            cors_configuration: None,
            tags: tag_map(cfg),
        },
    )?;
    let link = t.add(
        "FilterAiVpcLink",
        VpcLink {
            name: format!("{prefix}-filter-ai"),
            target_arns: vec![nlb.r#ref()],
            tags: tags(cfg, &format!("{prefix}-filter-ai")),
        },
    )?;
    let ws_authorizer = t.add(
        "WebSocketAuthorizer",
        Authorizer {
            api_id: ws.r#ref(),
            name: "connect-token".into(),
            authorizer_type: "REQUEST".into(),
            identity_source: vec![format!("route.request.querystring.{WS_TOKEN_QUERY}")],
            jwt_configuration: None,
            authorizer_uri: Some(Expr::sub(format!(
                "arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/${{{}}}/invocations",
                authorizer_fn.id()
            ))),
        },
    )?;
    let source = format!("authorizers/${{{}}}", ws_authorizer.id());
    t.add(
        "WebSocketAuthorizerPermission",
        invoke_permission(authorizer_fn.r#ref(), &ws, &source),
    )?;
    let ws_integration = t.add(
        "WebSocketIntegration",
        Integration {
            api_id: ws.r#ref(),
            integration_type: "HTTP_PROXY".into(),
            integration_uri: Expr::sub(format!(
                "http://${{{}}}:{FILTER_AI_PORT}{WS_GATEWAY_PATH}",
                nlb_dns.id()
            )),
            integration_method: Some("POST".into()),
            payload_format_version: None,
            connection_type: Some("VPC_LINK".into()),
            connection_id: Some(link.r#ref()),
            timeout_in_millis: Some(29_000),
            request_parameters: Some(ws_request_parameters()),
        },
    )?;
    for key in WS_ROUTE_KEYS {
        let name = match key {
            "$connect" => "Connect",
            "$default" => "Default",
            _ => "Disconnect",
        };
        let custom = (key == "$connect").then(|| ("CUSTOM", ws_authorizer.r#ref()));
        t.add(
            &format!("WebSocket{name}Route"),
            route(&ws, key, ws_integration.id(), custom),
        )?;
    }
    let ws_logs = access_logs(
        t,
        cfg,
        "WebSocketAccessLogs",
        format!("/aws/apigateway/{prefix}-ws"),
    )?;
    t.add(
        "WebSocketStage",
        Stage {
            api_id: ws.r#ref(),
            stage_name: WS_STAGE.into(),
            auto_deploy: true,
            access_log_settings: json!({"DestinationArn": ws_logs.arn(), "Format": ws_access_log_format()}),
            default_route_settings: json!({"ThrottlingBurstLimit": 200, "ThrottlingRateLimit": 100}),
            tags: tag_map(cfg),
        },
    )?;

    s.export(
        outputs::WEBSOCKET_URL,
        "URL of the WebSocket API",
        Expr::sub(format!("${{{}.ApiEndpoint}}/{WS_STAGE}", ws.id())),
    )?;
    Ok(())
}
