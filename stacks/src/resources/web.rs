//! CloudFront and Cognito resources of the web stack, with only the properties we set.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{TagMap, Tags};
use crate::model::{Expr, Handle, Resource};

/// `AWS::CloudFront::OriginAccessControl`: CloudFront signs its requests to the bucket.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OriginAccessControl {
    /// The configuration.
    pub origin_access_control_config: OriginAccessControlConfig,
}

/// An origin access control's settings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OriginAccessControlConfig {
    /// Name (unique in the account).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// `s3`.
    pub origin_access_control_origin_type: String,
    /// `always`: every request to the origin is signed.
    pub signing_behavior: String,
    /// `sigv4`.
    pub signing_protocol: String,
}

impl Resource for OriginAccessControl {
    const TYPE: &'static str = "AWS::CloudFront::OriginAccessControl";
}

impl Handle<OriginAccessControl> {
    /// `Fn::GetAtt Id`.
    pub fn id_attr(&self) -> Expr {
        self.get_att("Id")
    }
}

/// `AWS::CloudFront::ResponseHeadersPolicy` (`Ref`: its id).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseHeadersPolicy {
    /// The configuration.
    pub response_headers_policy_config: ResponseHeadersPolicyConfig,
}

/// A response headers policy's settings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseHeadersPolicyConfig {
    /// Name (unique in the account).
    pub name: String,
    /// What it is for.
    pub comment: String,
    /// The security headers.
    pub security_headers_config: SecurityHeadersConfig,
}

/// The security headers CloudFront adds (each overriding what the origin sent).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityHeadersConfig {
    /// `Content-Security-Policy`.
    pub content_security_policy: HeaderValue<ContentSecurityPolicy>,
    /// `X-Content-Type-Options: nosniff`.
    pub content_type_options: Override,
    /// `X-Frame-Options`.
    pub frame_options: HeaderValue<FrameOptions>,
    /// `Referrer-Policy`.
    pub referrer_policy: HeaderValue<ReferrerPolicy>,
    /// `Strict-Transport-Security`.
    pub strict_transport_security: StrictTransportSecurity,
}

/// `{Override: true}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Override {
    /// Replace the origin's header.
    #[serde(rename = "Override")]
    pub override_origin: bool,
}

/// A header's value plus `Override`.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderValue<T> {
    /// The value fields.
    #[serde(flatten)]
    pub value: T,
    /// Replace the origin's header.
    #[serde(rename = "Override")]
    pub override_origin: bool,
}

/// The CSP text.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContentSecurityPolicy {
    /// The policy (at most 1783 characters).
    pub content_security_policy: String,
}

/// `DENY` or `SAMEORIGIN`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FrameOptions {
    /// The option.
    pub frame_option: String,
}

/// The referrer policy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReferrerPolicy {
    /// e.g. `no-referrer`.
    pub referrer_policy: String,
}

/// HSTS.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StrictTransportSecurity {
    /// `max-age` in seconds.
    pub access_control_max_age_sec: i64,
    /// `includeSubDomains`.
    pub include_subdomains: bool,
    /// Replace the origin's header.
    #[serde(rename = "Override")]
    pub override_origin: bool,
}

impl Resource for ResponseHeadersPolicy {
    const TYPE: &'static str = "AWS::CloudFront::ResponseHeadersPolicy";
}

/// `AWS::CloudFront::Function` (JavaScript runtime 2.0). Changing `Name` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CloudFrontFunction {
    /// Name (replacement).
    pub name: String,
    /// Publish on every change (the distribution uses the LIVE stage).
    pub auto_publish: bool,
    /// The code.
    pub function_code: String,
    /// Comment and runtime.
    pub function_config: FunctionConfig,
}

/// A CloudFront function's settings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfig {
    /// What it does.
    pub comment: String,
    /// `cloudfront-js-2.0`.
    pub runtime: String,
}

impl Resource for CloudFrontFunction {
    const TYPE: &'static str = "AWS::CloudFront::Function";
}

impl Handle<CloudFrontFunction> {
    /// `Fn::GetAtt FunctionARN`.
    pub fn function_arn(&self) -> Expr {
        self.get_att("FunctionARN")
    }
}

/// `AWS::CloudFront::Distribution` (`Ref`: its id).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Distribution {
    /// The configuration.
    pub distribution_config: DistributionConfig,
    /// Tags.
    pub tags: Tags,
}

/// A distribution's settings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DistributionConfig {
    /// On.
    pub enabled: bool,
    /// What it serves.
    pub comment: String,
    /// Object served for `/`.
    pub default_root_object: String,
    /// `http2and3`.
    pub http_version: String,
    /// IPv6 too.
    #[serde(rename = "IPV6Enabled")]
    pub ipv6_enabled: bool,
    /// `PriceClass_100`, ...
    pub price_class: String,
    /// Custom domain names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Origins.
    pub origins: Vec<Origin>,
    /// The one cache behaviour.
    pub default_cache_behavior: CacheBehavior,
    /// TLS certificate.
    pub viewer_certificate: ViewerCertificate,
}

/// An S3 origin reached through an origin access control.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Origin {
    /// Origin id (referenced by behaviours).
    pub id: String,
    /// The bucket's regional domain name.
    pub domain_name: Expr,
    /// `{OriginAccessIdentity: ""}`: an S3 origin without the legacy identity.
    pub s3_origin_config: serde_json::Value,
    /// The origin access control.
    pub origin_access_control_id: Expr,
}

/// How CloudFront serves requests.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CacheBehavior {
    /// The origin.
    pub target_origin_id: String,
    /// `redirect-to-https`.
    pub viewer_protocol_policy: String,
    /// Cache policy id (a managed policy).
    pub cache_policy_id: String,
    /// Response headers policy id.
    pub response_headers_policy_id: Expr,
    /// Compress (gzip, brotli).
    pub compress: bool,
    /// `GET`, `HEAD`.
    pub allowed_methods: Vec<String>,
    /// `GET`, `HEAD`.
    pub cached_methods: Vec<String>,
    /// Functions run on viewer events.
    pub function_associations: Vec<FunctionAssociation>,
}

/// A function run on an event of the behaviour.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionAssociation {
    /// `viewer-request`.
    #[serde(rename = "EventType")]
    pub event_type: String,
    /// The function's ARN.
    #[serde(rename = "FunctionARN")]
    pub function_arn: Expr,
}

/// The distribution's certificate: CloudFront's own, or an ACM certificate (us-east-1) for
/// a custom domain.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ViewerCertificate {
    /// `*.cloudfront.net`.
    Default {
        /// `true`.
        #[serde(rename = "CloudFrontDefaultCertificate")]
        cloudfront_default_certificate: bool,
    },
    /// A custom domain.
    Acm {
        /// Certificate ARN.
        #[serde(rename = "AcmCertificateArn")]
        acm_certificate_arn: String,
        /// `sni-only`.
        #[serde(rename = "SslSupportMethod")]
        ssl_support_method: String,
        /// `TLSv1.2_2021`.
        #[serde(rename = "MinimumProtocolVersion")]
        minimum_protocol_version: String,
    },
}

impl Resource for Distribution {
    const TYPE: &'static str = "AWS::CloudFront::Distribution";
}

impl Handle<Distribution> {
    /// `Fn::GetAtt DomainName` (`d111111abcdef8.cloudfront.net`).
    pub fn domain_name(&self) -> Expr {
        self.get_att("DomainName")
    }
}

/// `AWS::Cognito::UserPool` (`Ref`: its id). Changing `UsernameAttributes` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserPool {
    /// Name.
    pub user_pool_name: String,
    /// `ESSENTIALS`: access-token customization (the V2 pre-token-generation trigger).
    pub user_pool_tier: String,
    /// Users sign in with their email address (replacement).
    pub username_attributes: Vec<String>,
    /// Verified automatically.
    pub auto_verified_attributes: Vec<String>,
    /// Only administrators create users.
    pub admin_create_user_config: serde_json::Value,
    /// Password policy.
    pub policies: serde_json::Value,
    /// `ON`: MFA required.
    pub mfa_configuration: String,
    /// `SOFTWARE_TOKEN_MFA` (TOTP).
    pub enabled_mfas: Vec<String>,
    /// Recovery by verified email.
    pub account_recovery_setting: serde_json::Value,
    /// `ACTIVE` in prod.
    pub deletion_protection: String,
    /// The pre-token-generation trigger.
    pub lambda_config: LambdaConfig,
    /// Tags (a map).
    pub user_pool_tags: TagMap,
}

/// The user pool's triggers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LambdaConfig {
    /// Pre token generation.
    pub pre_token_generation_config: PreTokenGenerationConfig,
}

/// The pre-token-generation trigger and its event version.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreTokenGenerationConfig {
    /// The function.
    pub lambda_arn: Expr,
    /// `V2_0`: access and ID tokens.
    pub lambda_version: String,
}

impl Resource for UserPool {
    const TYPE: &'static str = "AWS::Cognito::UserPool";
}

impl Handle<UserPool> {
    /// `Fn::GetAtt Arn`.
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// `AWS::Cognito::UserPoolDomain`: the hosted login pages at
/// `<domain>.auth.<region>.amazoncognito.com` (`Ref`: the prefix).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserPoolDomain {
    /// The prefix (replacement).
    pub domain: String,
    /// The pool.
    pub user_pool_id: Expr,
}

impl Resource for UserPoolDomain {
    const TYPE: &'static str = "AWS::Cognito::UserPoolDomain";
}

/// `AWS::Cognito::UserPoolClient` (`Ref`: the client id): the web app, a public client.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserPoolClient {
    /// The pool.
    pub user_pool_id: Expr,
    /// Name.
    pub client_name: String,
    /// No secret: a browser cannot keep one (PKCE instead).
    pub generate_secret: bool,
    /// OAuth flows enabled.
    #[serde(rename = "AllowedOAuthFlowsUserPoolClient")]
    pub allowed_oauth_flows_user_pool_client: bool,
    /// `code`.
    #[serde(rename = "AllowedOAuthFlows")]
    pub allowed_oauth_flows: Vec<String>,
    /// Scopes.
    #[serde(rename = "AllowedOAuthScopes")]
    pub allowed_oauth_scopes: Vec<String>,
    /// Redirect URIs (exact).
    #[serde(rename = "CallbackURLs")]
    pub callback_urls: Vec<Expr>,
    /// Sign-out redirects.
    #[serde(rename = "LogoutURLs")]
    pub logout_urls: Vec<Expr>,
    /// `COGNITO`.
    pub supported_identity_providers: Vec<String>,
    /// `ALLOW_REFRESH_TOKEN_AUTH` only (sign-in goes through the hosted pages).
    pub explicit_auth_flows: Vec<String>,
    /// `ENABLED`.
    pub prevent_user_existence_errors: String,
    /// Refresh tokens can be revoked.
    pub enable_token_revocation: bool,
    /// Access token lifetime (minutes).
    pub access_token_validity: u32,
    /// ID token lifetime (minutes).
    pub id_token_validity: u32,
    /// Refresh token lifetime (hours).
    pub refresh_token_validity: u32,
    /// Units of the three lifetimes.
    pub token_validity_units: BTreeMap<String, String>,
}

impl Resource for UserPoolClient {
    const TYPE: &'static str = "AWS::Cognito::UserPoolClient";
}

/// `AWS::Cognito::UserPoolGroup`. Changing `GroupName` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserPoolGroup {
    /// The pool.
    pub user_pool_id: Expr,
    /// Name (replacement).
    pub group_name: String,
    /// What membership grants.
    pub description: String,
}

impl Resource for UserPoolGroup {
    const TYPE: &'static str = "AWS::Cognito::UserPoolGroup";
}
