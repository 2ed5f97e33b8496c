//! The API Gateway WebSocket API's contract with filter-ai (AWS), the runtime half.
//!
//! Browsers cannot send headers on WebSocket messages, and API Gateway shows client
//! headers only at `$connect`. So:
//!
//! * `$connect` carries the token in the query string (`?token=<jwt>`); the Lambda REQUEST
//!   authorizer ([`super::authorizer`], identity source `route.request.querystring.token`)
//!   verifies it and refuses the connection (403) when it does not verify. Its context
//!   ([`CONTEXT_SUB`], [`CONTEXT_TOKEN`]: the verified token itself) stays attached to the
//!   connection.
//! * Every route (`$connect`, `$default`, `$disconnect`) reaches filter-ai as
//!   `POST` [`GATEWAY_PATH`] through the VPC link, with the integration request
//!   parameters of [`HEADERS`]: connection id, route key, callback domain and stage, and
//!   the token from the authorizer's context ([`TOKEN_HEADER`]). The body of `$default`
//!   is the client's message.
//! * Replies go back through the management API (`POST @connections/{id}`,
//!   [`GatewayPusher`]) at `https://{domain}/{stage}`; the HTTP answer is empty.
//!
//! The stacks crate (`chrono_stacks::api`) writes the same names into the template; the
//! cross-crate test `tests/tests/ws_contract.rs` fails when the two halves disagree.
//!
//! # Trust: only API Gateway speaks to this path
//!
//! Anything in the VPC that reaches the internal NLB can send any header, so filter-ai
//! trusts no caller header here. The proof a request came through the WebSocket API's
//! integration is the bearer token the authorizer verified at `$connect`: API Gateway maps
//! it from the authorizer's context into [`TOKEN_HEADER`], and filter-ai verifies it again
//! with the same [`JwtVerifier`] (issuer, audience, key set, `exp`/`nbf`) and takes the
//! caller ONLY from the verified token ([`principal_of`]). A request without a token that
//! verifies is refused 401 (`unauthenticated`) before any question runs or any audit row
//! is written; `x-chrono-sub`/`-roles`/`-cases` headers mean nothing. Whoever can forge a
//! request here therefore needs a currently valid token of the user, which would let them
//! ask through the public API anyway.
//!
//! Why not an HMAC over the context (KMS `GenerateMac`): a KMS key costs $1/month and a
//! `VerifyMac` call per message (or a cache); the token is already signed by the identity
//! provider, and filter-ai already holds its key set.
//!
//! `exp` is checked against the time of each message, not of the connection: a
//! connection lives up to 2 hours and may idle 10 minutes
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html>),
//! longer than access tokens often do, so a message sent after the token expired is
//! refused (401, nothing pushed) and the client reconnects with a fresh token. Checking
//! against the connection time would let a forger with an expired token pick any
//! connection time.
//!
//! AWS facts this relies on:
//! * the authorizer's `context` values are strings, numbers or booleans
//!   (<https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-lambda-authorizer-output.html>),
//!   and the authorizer's result may be at most 8 KB; the token arrives in the `$connect`
//!   URL, which is at most 4096 characters (same quota page), so it always fits;
//! * integration request parameters map `context.*` variables, `context.authorizer.*`
//!   included, into `integration.request.header.*` on every route
//!   (<https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-data-mapping.html>),
//!   and API Gateway sets those headers itself, whatever the client sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::http::{AiState, MAX_BODY, answer};
use crate::api::AppError;
use crate::auth::{AuthError, JwtVerifier, Principal};

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
/// Header: `context.authorizer.token`, the bearer token the authorizer verified.
pub const TOKEN_HEADER: &str = "x-chrono-token";

/// Authorizer context key: the token's subject (for API Gateway's access log).
pub const CONTEXT_SUB: &str = "sub";
/// Authorizer context key: the verified bearer token itself.
pub const CONTEXT_TOKEN: &str = "token";

/// Header → API Gateway mapping expression, for every route's integration.
pub const HEADERS: [(&str, &str); 5] = [
    (CONNECTION_HEADER, "context.connectionId"),
    (ROUTE_KEY_HEADER, "context.routeKey"),
    (DOMAIN_HEADER, "context.domainName"),
    (STAGE_HEADER, "context.stage"),
    (TOKEN_HEADER, "context.authorizer.token"),
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

/// The caller of a gateway request: the principal of the token in [`TOKEN_HEADER`], verified
/// now by `verifier`. No other header contributes.
pub fn principal_of(
    verifier: &JwtVerifier,
    headers: &http::HeaderMap,
) -> Result<Principal, AuthError> {
    let token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    verifier.verify(token)
}

/// The authorizer context of a connection whose token verified as `p`.
pub fn context_of(p: &Principal, token: &str) -> [(&'static str, String); 2] {
    [
        (CONTEXT_SUB, p.sub.clone()),
        (CONTEXT_TOKEN, token.to_owned()),
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
    let Some(verifier) = st.gateway.as_ref() else {
        return AppError::NotFound("route").into_response();
    };
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
    let principal = match principal_of(verifier, &parts.headers) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(
                connection,
                route,
                reason = %e,
                "websocket route without a token that verifies: refused"
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
}
