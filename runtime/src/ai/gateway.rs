//! The API Gateway WebSocket API's contract with filter-ai (AWS), the runtime half.
//!
//! Browsers cannot send headers on WebSocket messages, and API Gateway shows client
//! headers only at `$connect`. So:
//!
//! * `$connect` carries the token in the query string (`?token=<jwt>`); the Lambda REQUEST
//!   authorizer ([`super::authorizer`], identity source `route.request.querystring.token`)
//!   verifies it and refuses the connection (403) when it does not verify. Its context
//!   ([`CONTEXT_SUB`], [`CONTEXT_ROLES`], [`CONTEXT_CASES`]) stays attached to the
//!   connection.
//! * Every route (`$connect`, `$default`, `$disconnect`) reaches filter-ai as
//!   `POST` [`GATEWAY_PATH`] through the VPC link, with the integration request
//!   parameters of [`HEADERS`]: connection id, route key, callback domain and stage, and
//!   the authorizer's context. The body of `$default` is the client's message.
//! * Replies go back through the management API (`POST @connections/{id}`,
//!   [`GatewayPusher`]) at `https://{domain}/{stage}`; the HTTP answer is empty.
//!
//! The stacks crate (`chrono_stacks::api`) writes the same names into the template; the
//! cross-crate test `tests/tests/ws_contract.rs` fails when the two halves disagree.
//!
//! Trust: these headers are set by API Gateway and override whatever the client sent; the
//! gateway path is reachable only through the internal NLB of the VPC link. A request
//! without the authorizer's subject (a connection that never authenticated) is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::http::{AiState, MAX_BODY, answer};
use crate::api::AppError;
use crate::auth::{AuthError, ClaimNames, Principal};

/// Path of every WebSocket route's integration.
pub const GATEWAY_PATH: &str = "/api/v1/ai/ws/gateway";
/// Query string parameter of `$connect` holding the bearer token.
pub const TOKEN_QUERY: &str = "token";

/// Header: `context.connectionId`.
pub const CONNECTION_HEADER: &str = "x-chrono-connection-id";
/// Header: `context.routeKey` (`$connect`, `$default`, `$disconnect`).
pub const ROUTE_KEY_HEADER: &str = "x-chrono-route-key";
/// Header: `context.domainName` (the `@connections` host).
pub const DOMAIN_HEADER: &str = "x-chrono-domain";
/// Header: `context.stage`.
pub const STAGE_HEADER: &str = "x-chrono-stage";
/// Header: `context.authorizer.sub`.
pub const SUB_HEADER: &str = "x-chrono-sub";
/// Header: `context.authorizer.roles`.
pub const ROLES_HEADER: &str = "x-chrono-roles";
/// Header: `context.authorizer.cases`.
pub const CASES_HEADER: &str = "x-chrono-cases";

/// Authorizer context key: the token's subject.
pub const CONTEXT_SUB: &str = "sub";
/// Authorizer context key: roles, space-separated.
pub const CONTEXT_ROLES: &str = "roles";
/// Authorizer context key: granted case ids, space-separated, or `*`.
pub const CONTEXT_CASES: &str = "cases";

/// Header → API Gateway mapping expression, for every route's integration.
pub const HEADERS: [(&str, &str); 7] = [
    (CONNECTION_HEADER, "context.connectionId"),
    (ROUTE_KEY_HEADER, "context.routeKey"),
    (DOMAIN_HEADER, "context.domainName"),
    (STAGE_HEADER, "context.stage"),
    (SUB_HEADER, "context.authorizer.sub"),
    (ROLES_HEADER, "context.authorizer.roles"),
    (CASES_HEADER, "context.authorizer.cases"),
];

/// Why a callback endpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The domain is not this region's API Gateway.
    #[error(
        "callback domain `{0}` is not an API Gateway domain of this region; \
         set CHRONO_WS_CALLBACK_URL for custom domains"
    )]
    Domain(String),
    /// The stage name is not plausible.
    #[error("callback stage `{0}` is not a stage name")]
    Stage(String),
}

/// Pushes replies to API Gateway WebSocket connections (`POST @connections/{id}`).
///
/// The endpoint is either fixed (`CHRONO_WS_CALLBACK_URL`, tests) or taken per request
/// from the domain and stage API Gateway maps into the headers, after checking that the
/// domain is `{api}.execute-api.{region}.amazonaws.com` of this service's region (the
/// compute stack cannot know the WebSocket API's URL: the api stack comes after it).
#[derive(Debug, Clone)]
pub struct GatewayPusher {
    sdk: aws_config::SdkConfig,
    fixed: Option<String>,
    clients: Arc<Mutex<HashMap<String, aws_sdk_apigatewaymanagement::Client>>>,
}

impl GatewayPusher {
    /// Every reply goes to `url` (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`).
    pub fn fixed(sdk: &aws_config::SdkConfig, url: &str) -> Self {
        GatewayPusher {
            sdk: sdk.clone(),
            fixed: Some(url.trim_end_matches('/').to_owned()),
            clients: Arc::default(),
        }
    }

    /// The endpoint comes from each request's domain and stage headers.
    pub fn derived(sdk: &aws_config::SdkConfig) -> Self {
        GatewayPusher {
            sdk: sdk.clone(),
            fixed: None,
            clients: Arc::default(),
        }
    }

    /// The `@connections` endpoint for a request's domain and stage.
    pub fn endpoint(&self, domain: &str, stage: &str) -> Result<String, CallbackError> {
        if let Some(url) = &self.fixed {
            return Ok(url.clone());
        }
        let region = self.sdk.region().map(|r| r.as_ref()).unwrap_or_default();
        let ok_domain = domain
            .strip_suffix(".amazonaws.com")
            .or_else(|| domain.strip_suffix(".amazonaws.com.cn"))
            .and_then(|d| d.split_once(".execute-api."))
            .is_some_and(|(api, r)| {
                !region.is_empty()
                    && r == region
                    && !api.is_empty()
                    && api.len() <= 32
                    && api.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if !ok_domain {
            return Err(CallbackError::Domain(domain.to_owned()));
        }
        let ok_stage = !stage.is_empty()
            && stage.len() <= 128
            && stage
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok_stage {
            return Err(CallbackError::Stage(stage.to_owned()));
        }
        Ok(format!("https://{domain}/{stage}"))
    }

    fn client(&self, endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(endpoint.to_owned())
            .or_insert_with(|| {
                let conf = aws_sdk_apigatewaymanagement::config::Builder::from(&self.sdk)
                    .endpoint_url(endpoint)
                    .build();
                aws_sdk_apigatewaymanagement::Client::from_conf(conf)
            })
            .clone()
    }

    /// Sends `body` to connection `id` at `endpoint`.
    pub async fn push(&self, endpoint: &str, id: &str, body: &[u8]) -> Result<(), String> {
        self.client(endpoint)
            .post_to_connection()
            .connection_id(id)
            .data(aws_smithy_types::Blob::new(body.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string())
    }
}

/// The caller described by the authorizer context headers (see [`HEADERS`]).
pub fn principal_from_headers(headers: &http::HeaderMap) -> Result<Principal, AuthError> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    let sub = get(SUB_HEADER);
    if sub.is_empty() {
        return Err(AuthError::Missing);
    }
    let names = ClaimNames::default();
    let claims = HashMap::from([
        ("sub".to_owned(), sub),
        (names.roles.clone(), get(ROLES_HEADER)),
        (names.cases.clone(), get(CASES_HEADER)),
    ]);
    names.principal_from_gateway(&claims)
}

/// The authorizer context of a principal (the inverse of [`principal_from_headers`]).
pub fn context_of(p: &Principal) -> [(&'static str, String); 3] {
    use crate::auth::{CaseGrant, Role};
    let roles = p
        .roles
        .iter()
        .map(|r| match r {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
        })
        .collect::<Vec<_>>()
        .join(" ");
    let cases = match &p.cases {
        CaseGrant::All => "*".to_owned(),
        CaseGrant::Some(ids) => ids
            .iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    };
    [
        (CONTEXT_SUB, p.sub.clone()),
        (CONTEXT_ROLES, roles),
        (CONTEXT_CASES, cases),
    ]
}

fn header<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

/// `POST` [`GATEWAY_PATH`]: one handler for the three route keys.
pub(crate) async fn gateway(State(st): State<Arc<AiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(route) = header(&parts, ROUTE_KEY_HEADER) else {
        return AppError::invalid(format!("missing `{ROUTE_KEY_HEADER}` header")).into_response();
    };
    let Some(connection) = header(&parts, CONNECTION_HEADER).map(str::to_owned) else {
        return AppError::invalid(format!("missing `{CONNECTION_HEADER}` header")).into_response();
    };
    if route == "$disconnect" {
        tracing::info!(connection, "websocket disconnected");
        return StatusCode::OK.into_response();
    }
    let principal = match principal_from_headers(&parts.headers) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(
                connection,
                route,
                "websocket route without an authorizer context"
            );
            return AppError::Unauthenticated(e.to_string()).into_response();
        }
    };
    match route {
        "$connect" => {
            tracing::info!(connection, sub = principal.sub, "websocket connected");
            StatusCode::OK.into_response()
        }
        "$default" => message(&st, &parts, &connection, &principal, body).await,
        other => AppError::invalid(format!("unknown route key `{other}`")).into_response(),
    }
}

async fn message(
    st: &AiState,
    parts: &http::request::Parts,
    connection: &str,
    principal: &Principal,
    body: axum::body::Body,
) -> Response {
    let Some(pusher) = st.pusher.clone() else {
        return AppError::Unavailable("the WebSocket callback (no management API client)")
            .into_response();
    };
    let endpoint = match pusher.endpoint(
        header(parts, DOMAIN_HEADER).unwrap_or_default(),
        header(parts, STAGE_HEADER).unwrap_or_default(),
    ) {
        Ok(e) => e,
        Err(e) => return AppError::invalid(e.to_string()).into_response(),
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return AppError::invalid("the body is too large").into_response(),
    };
    let text = answer(st, principal, &bytes).await;
    match pusher.push(&endpoint, connection, text.as_bytes()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(cause) => {
            tracing::warn!(%cause, connection, "cannot push the reply to the connection");
            AppError::Unavailable("the WebSocket connection").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{CaseGrant, Role};
    use uuid::Uuid;

    fn sdk(region: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .build()
    }

    #[test]
    fn the_callback_endpoint_must_be_this_regions_api_gateway() {
        let p = GatewayPusher::derived(&sdk("eu-west-1"));
        assert_eq!(
            p.endpoint("abc123xyz.execute-api.eu-west-1.amazonaws.com", "live")
                .unwrap(),
            "https://abc123xyz.execute-api.eu-west-1.amazonaws.com/live"
        );
        for (domain, stage) in [
            ("abc.execute-api.us-east-1.amazonaws.com", "live"),
            ("evil.example.com", "live"),
            (
                "abc.execute-api.eu-west-1.amazonaws.com.evil.example",
                "live",
            ),
            ("a/b.execute-api.eu-west-1.amazonaws.com", "live"),
            ("abc.execute-api.eu-west-1.amazonaws.com", "../x"),
            ("abc.execute-api.eu-west-1.amazonaws.com", ""),
        ] {
            assert!(p.endpoint(domain, stage).is_err(), "{domain} {stage}");
        }
        let fixed = GatewayPusher::fixed(&sdk("eu-west-1"), "http://127.0.0.1:9/");
        assert_eq!(fixed.endpoint("", "").unwrap(), "http://127.0.0.1:9");
    }

    #[test]
    fn the_authorizer_context_round_trips_to_a_principal() {
        let id = Uuid::now_v7();
        let p = Principal {
            sub: "auth0|u1".into(),
            roles: vec![Role::Analyst],
            cases: CaseGrant::Some(vec![id, Uuid::now_v7()]),
        };
        let mut headers = http::HeaderMap::new();
        for ((key, value), header) in
            context_of(&p)
                .into_iter()
                .zip([SUB_HEADER, ROLES_HEADER, CASES_HEADER])
        {
            let source = format!("context.authorizer.{key}");
            assert!(HEADERS.iter().any(|(h, s)| *h == header && *s == source));
            headers.insert(header, value.parse().unwrap());
        }
        assert_eq!(principal_from_headers(&headers).unwrap(), p);
        headers.remove(SUB_HEADER);
        assert_eq!(principal_from_headers(&headers), Err(AuthError::Missing));
    }
}
