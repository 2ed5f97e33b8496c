//! API Gateway (HTTP and WebSocket APIs, v2) and the VPC link to the internal NLB.

use serde::Serialize;
use serde_json::Value;

use super::{Exprs, TagMap, Tags};
use crate::model::{Expr, Handle, Resource};

/// `AWS::ApiGatewayV2::Api`. Changing `ProtocolType` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Api {
    /// Name.
    pub name: String,
    /// `HTTP` or `WEBSOCKET` (replacement).
    pub protocol_type: String,
    /// WebSocket only: `$request.body.action`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_selection_expression: Option<String>,
    /// HTTP only: CORS, answered by API Gateway itself (preflights included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_configuration: Option<ApiCors>,
    /// Tags.
    pub tags: TagMap,
}

/// An HTTP API's CORS configuration.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiCors {
    /// Origins.
    pub allow_origins: Vec<Expr>,
    /// Methods.
    pub allow_methods: Vec<String>,
    /// Request headers.
    pub allow_headers: Vec<String>,
    /// Seconds a preflight answer may be cached.
    pub max_age: u32,
}

impl Resource for Api {
    const TYPE: &'static str = "AWS::ApiGatewayV2::Api";
}

impl Handle<Api> {
    /// `Fn::GetAtt ApiEndpoint`.
    pub fn endpoint(&self) -> Expr {
        self.get_att("ApiEndpoint")
    }
}

/// `AWS::ApiGatewayV2::Authorizer`: `JWT` (HTTP API) or `REQUEST` (a Lambda; the
/// WebSocket API's `$connect`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Authorizer {
    /// API.
    pub api_id: Expr,
    /// Name.
    pub name: String,
    /// `JWT` or `REQUEST`.
    pub authorizer_type: String,
    /// Where the token is.
    pub identity_source: Vec<String>,
    /// JWT: issuer and audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_configuration: Option<JwtConfiguration>,
    /// REQUEST: the Lambda's invocation URI
    /// (`arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_uri: Option<Expr>,
}

impl Resource for Authorizer {
    const TYPE: &'static str = "AWS::ApiGatewayV2::Authorizer";
}

/// JWT issuer and audience.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JwtConfiguration {
    /// Accepted audiences (`aud`, or `client_id` of a token without `aud`).
    pub audience: Vec<Expr>,
    /// Issuer URL.
    pub issuer: Expr,
}

/// `AWS::ApiGatewayV2::Integration`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Integration {
    /// API.
    pub api_id: Expr,
    /// `AWS_PROXY` or `HTTP_PROXY`.
    pub integration_type: String,
    /// Lambda ARN or backend URL.
    pub integration_uri: Expr,
    /// HTTP method towards the backend (HTTP_PROXY).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_method: Option<String>,
    /// `2.0` for Lambda proxy on HTTP APIs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_format_version: Option<String>,
    /// `VPC_LINK` for private backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_type: Option<String>,
    /// VPC link id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<Expr>,
    /// Backend timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_in_millis: Option<u32>,
    /// WebSocket: `integration.request.header.<name>` → mapping expression
    /// (`context.connectionId`, `context.authorizer.<key>`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_parameters: Option<std::collections::BTreeMap<String, String>>,
}

impl Resource for Integration {
    const TYPE: &'static str = "AWS::ApiGatewayV2::Integration";
}

/// `AWS::ApiGatewayV2::Route`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Route {
    /// API.
    pub api_id: Expr,
    /// `METHOD /path` or `$connect` ...
    pub route_key: String,
    /// `JWT`, `CUSTOM` (Lambda authorizer) or `NONE`.
    pub authorization_type: String,
    /// The authorizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_id: Option<Expr>,
    /// `integrations/<id>`.
    pub target: Expr,
}

impl Resource for Route {
    const TYPE: &'static str = "AWS::ApiGatewayV2::Route";
}

/// `AWS::ApiGatewayV2::Stage` with access logs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Stage {
    /// API.
    pub api_id: Expr,
    /// Stage name.
    pub stage_name: String,
    /// Deploy on change.
    pub auto_deploy: bool,
    /// Access logs.
    pub access_log_settings: Value,
    /// Throttling.
    pub default_route_settings: Value,
    /// Tags.
    pub tags: TagMap,
}

impl Resource for Stage {
    const TYPE: &'static str = "AWS::ApiGatewayV2::Stage";
}

/// `AWS::ApiGateway::VpcLink` (the v1 link WebSocket APIs use to reach an NLB).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcLink {
    /// Name.
    pub name: String,
    /// NLB ARNs (replacement).
    pub target_arns: Exprs,
    /// Tags.
    pub tags: Tags,
}

impl Resource for VpcLink {
    const TYPE: &'static str = "AWS::ApiGateway::VpcLink";
}

/// `AWS::ApiGateway::Account`: the region's CloudWatch Logs role of API Gateway, needed
/// for access logs of WebSocket APIs. One per account and region.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    /// Role API Gateway assumes to write logs.
    pub cloud_watch_role_arn: Expr,
}

impl Resource for Account {
    const TYPE: &'static str = "AWS::ApiGateway::Account";
}
