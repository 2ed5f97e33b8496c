//! Customer configuration: one YAML file per customer and stage (`customers/*.yaml`).
//!
//! Parsing rejects unknown keys; validation checks ranges and cross-field rules. Every
//! error names the file, line, column and field and says what is allowed, e.g.
//! `customers/acme-prod.yaml:7:14: aurora.max_acu must be between 1 and 256, got 0`.
//! Defaults that depend on the stage (NAT count, capacity, readers) are resolved by the
//! accessor methods, so the YAML stays short.

pub mod locate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use locate::{Location, locate};

/// A configuration error, formatted `file:line:col: field message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    /// The config file as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// `field what-is-wrong` (or serde's message for parse errors).
    pub message: String,
}

/// Errors reading a config file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config {file}: {source}; check the path (configs live in customers/)")]
    Read {
        /// Path.
        file: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is invalid.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// Deployment stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Production: retained/snapshotted data, deletion protection.
    Prod,
    /// Staging.
    Staging,
    /// Short-lived developer stacks: no NAT, minimum capacity, `Delete` policies.
    Preview,
    /// The local emulator (`chronoctl local`).
    Local,
}

impl Stage {
    /// The name used in stack names and tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prod => "prod",
            Self::Staging => "staging",
            Self::Preview => "preview",
            Self::Local => "local",
        }
    }

    /// Whether data is thrown away with the stack (preview, local).
    pub fn is_ephemeral(self) -> bool {
        matches!(self, Self::Preview | Self::Local)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CPU architecture of the runtime (Lambda `Architectures`, ECS `RuntimePlatform`).
///
/// `x86_64` (the default) builds with the stock Rust toolchain on any x86-64 Linux machine,
/// and tests can run what they build. `arm64` (Graviton) is cheaper per GB-second on
/// Lambda and per vCPU-hour on Fargate, and needs the `aarch64-unknown-linux-gnu` Rust
/// target plus a cross linker (`chronoctl build` names the commands when they are missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Architecture {
    /// 64-bit x86.
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit ARM (AWS Graviton).
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    /// The config spelling, also Lambda's `Architectures` value: `x86_64` or `arm64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }

    /// ECS `RuntimePlatform.CpuArchitecture`: `X86_64` or `ARM64`.
    pub fn ecs_cpu_architecture(self) -> &'static str {
        match self {
            Self::X86_64 => "X86_64",
            Self::Arm64 => "ARM64",
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer account configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Customer name: lowercase letters, digits and `-`, 2-20 characters.
    pub customer: String,
    /// 12-digit AWS account id.
    pub account_id: String,
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// Stage.
    pub stage: Stage,
    /// CPU architecture of every Lambda function and ECS task, and of the binaries
    /// `chronoctl build` compiles for them (one setting, so they cannot disagree).
    #[serde(default)]
    pub architecture: Architecture,
    /// Network.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Aurora.
    #[serde(default)]
    pub aurora: AuroraConfig,
    /// CloudWatch log retention in days (a value CloudWatch accepts).
    #[serde(default = "default_log_retention")]
    pub log_retention_days: u32,
    /// Identity provider: an external OIDC issuer, or (when `auth.jwt_issuer` is absent,
    /// the default) a Cognito user pool the `web` stack creates.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The web app (CloudFront in front of its bucket).
    #[serde(default)]
    pub web: WebConfig,
    /// Bedrock models.
    #[serde(default)]
    pub bedrock: BedrockConfig,
    /// Lambda and container sizing.
    #[serde(default)]
    pub sizing: SizingConfig,
    /// Extra tags on every stack and resource.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Data retention policy.
    #[serde(default)]
    pub data_retention: DataRetention,
    /// Preview settings (stage `preview` only).
    #[serde(default)]
    pub preview: Option<PreviewConfig>,
    /// The role chronoctl assumes in the customer account (`arn:aws:iam::<account_id>:role/...`),
    /// from the operator's standard credentials (cross-account deploys from an ops
    /// account). Absent: the standard credentials act in the account themselves.
    #[serde(default)]
    pub deploy_role_arn: Option<String>,
    /// The external id the customer's trust policy of `deploy_role_arn` requires, if any.
    #[serde(default)]
    pub external_id: Option<String>,
    /// CloudFormation's execution role in the customer account (the `deploy-access`
    /// template's `CfnExecutionRoleArn` output, `arn:aws:iam::<account_id>:role/...`):
    /// chronoctl passes it as `RoleARN` on CreateChangeSet and DeleteStack, so the deploy
    /// role itself needs no rights to create resources. Absent: CloudFormation acts with
    /// the caller's credentials.
    #[serde(default)]
    pub cfn_execution_role_arn: Option<String>,
}

fn default_log_retention() -> u32 {
    90
}

/// Network settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// VPC CIDR, an IPv4 /16.
    #[serde(default = "default_cidr")]
    pub vpc_cidr: String,
    /// Availability zones: 2 or 3.
    #[serde(default = "default_azs")]
    pub az_count: u32,
    /// NAT gateways; default one per AZ in prod, 1 in staging, 0 in preview and local.
    #[serde(default)]
    pub nat_gateways: Option<u32>,
    /// Interface endpoints (`secretsmanager`, `logs`, `ecr.api`, ...); default: none (a
    /// preview without NAT reaches AWS over IPv6 instead: [`Config::ipv6_egress`]).
    #[serde(default)]
    pub interface_endpoints: Option<Vec<String>>,
}

fn default_cidr() -> String {
    "10.0.0.0/16".into()
}

fn default_azs() -> u32 {
    2
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            vpc_cidr: default_cidr(),
            az_count: default_azs(),
            nat_gateways: None,
            interface_endpoints: None,
        }
    }
}

/// Aurora PostgreSQL Serverless v2 settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuroraConfig {
    /// Engine version.
    #[serde(default = "default_engine")]
    pub engine_version: String,
    /// Minimum ACU (0-256, steps of 0.5); default 0.5 (0 for preview/local).
    #[serde(default)]
    pub min_acu: Option<f64>,
    /// Maximum ACU (1-256, steps of 0.5).
    #[serde(default = "default_max_acu")]
    pub max_acu: f64,
    /// Reader instances (0-15); default 1 in prod, 0 elsewhere.
    #[serde(default)]
    pub readers: Option<u32>,
    /// Automated backup retention (1-35 days).
    #[serde(default = "default_backup")]
    pub backup_retention_days: u32,
}

fn default_engine() -> String {
    "17.7".into()
}

fn default_max_acu() -> f64 {
    8.0
}

fn default_backup() -> u32 {
    7
}

impl Default for AuroraConfig {
    fn default() -> Self {
        Self {
            engine_version: default_engine(),
            min_acu: None,
            max_acu: default_max_acu(),
            readers: None,
            backup_retention_days: default_backup(),
        }
    }
}

/// The identity provider whose tokens the API accepts: an external OIDC provider (Auth0,
/// Entra ID, Okta, ...) given by `jwt_issuer`, `jwt_audience` and `app_client_id`, or —
/// when those are left out — a Cognito user pool the `web` stack creates (see
/// [`CognitoConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Token issuer URL (`https://`; `http://` allowed for stage local); absent: Cognito.
    #[serde(default)]
    pub jwt_issuer: Option<String>,
    /// Expected audience of access tokens (with `jwt_issuer`).
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// The web app's client id at the external provider (a public client: authorization
    /// code + PKCE, redirect URI `https://<app>/callback`); with `jwt_issuer`.
    #[serde(default)]
    pub app_client_id: Option<String>,
    /// Send `audience=<jwt_audience>` in the authorization request (Auth0 needs it to issue
    /// an access token for the API); default false.
    #[serde(default)]
    pub audience_parameter: bool,
    /// Claim holding the roles array.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim holding the accessible case ids.
    #[serde(default = "default_cases_claim")]
    pub cases_claim: String,
    /// The user pool created when there is no external issuer.
    #[serde(default)]
    pub cognito: Option<CognitoConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_issuer: None,
            jwt_audience: None,
            app_client_id: None,
            audience_parameter: false,
            roles_claim: default_roles_claim(),
            cases_claim: default_cases_claim(),
            cognito: None,
        }
    }
}

/// An external identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalIdp<'a> {
    /// Issuer URL.
    pub issuer: &'a str,
    /// Audience of access tokens.
    pub audience: &'a str,
    /// The web app's client id.
    pub app_client_id: &'a str,
}

impl AuthConfig {
    /// The external provider, or `None` when the stacks create a Cognito user pool.
    pub fn external(&self) -> Option<ExternalIdp<'_>> {
        match (&self.jwt_issuer, &self.jwt_audience, &self.app_client_id) {
            (Some(issuer), Some(audience), Some(app_client_id)) => Some(ExternalIdp {
                issuer,
                audience,
                app_client_id,
            }),
            _ => None,
        }
    }
}

/// The Cognito user pool the `web` stack creates when no external issuer is configured:
/// email sign-in, accounts created by administrators only, TOTP MFA required, groups
/// `admin`, `analyst`, `all-cases` and `case-<id>` turned into the roles and cases claims.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CognitoConfig {
    /// Prefix of the hosted login domain, `<prefix>.auth.<region>.amazoncognito.com`
    /// (lowercase letters, digits, `-`; unique in the region); default
    /// `chrono-<customer>-<stage>`.
    #[serde(default)]
    pub domain_prefix: Option<String>,
}

/// The web app's distribution.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// CloudFront price class: `PriceClass_100` (default: North America, Europe),
    /// `PriceClass_200`, `PriceClass_All`.
    #[serde(default = "default_price_class")]
    pub price_class: String,
    /// Custom domain of the app (needs `certificate_arn`); default: the distribution's
    /// `*.cloudfront.net` name.
    #[serde(default)]
    pub domain: Option<String>,
    /// ACM certificate for `domain`, in us-east-1 (CloudFront's region for certificates).
    #[serde(default)]
    pub certificate_arn: Option<String>,
}

fn default_price_class() -> String {
    "PriceClass_100".into()
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            price_class: default_price_class(),
            domain: None,
            certificate_arn: None,
        }
    }
}

fn default_roles_claim() -> String {
    chrono_contract::claims::ROLES.into()
}

fn default_cases_claim() -> String {
    chrono_contract::claims::CASES.into()
}

/// Bedrock model ids of the AI filter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockConfig {
    /// Small fast model judging intent.
    #[serde(default = "default_guard_model")]
    pub guard_model_id: String,
    /// Model writing filters.
    #[serde(default = "default_main_model")]
    pub main_model_id: String,
}

// Left out, a model id is the Region's default ([`crate::bedrock::Catalog::default_model_id`]:
// an Active model through the inference profile of the Region's geography), filled in by
// [`Config::parse`], which knows the Region.
fn default_guard_model() -> String {
    String::new()
}

fn default_main_model() -> String {
    String::new()
}

impl Default for BedrockConfig {
    fn default() -> Self {
        Self {
            guard_model_id: default_guard_model(),
            main_model_id: default_main_model(),
        }
    }
}

/// Lambda and container sizing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SizingConfig {
    /// `chrono-api` Lambda memory (128-10240 MB).
    pub api_memory_mb: u32,
    /// `chrono-api` Lambda timeout (1-29 s, the HTTP API limit).
    pub api_timeout_s: u32,
    /// AI-chat Lambda memory (128-10240 MB).
    pub ai_chat_memory_mb: u32,
    /// AI-chat Lambda timeout (1-29 s).
    pub ai_chat_timeout_s: u32,
    /// Pipeline task CPU units (a Fargate size: 256, 512, 1024, 2048, 4096).
    pub pipeline_cpu: u32,
    /// Pipeline task memory in MB.
    pub pipeline_memory_mb: u32,
    /// Parts processed at once: child executions of the pipeline's Distributed Map, each
    /// running ECS tasks (1-10000, Step Functions' limit; the account's Fargate vCPU quota
    /// bounds it in practice).
    pub pipeline_max_concurrency: u32,
    /// Longest one pipeline task (split, parse or upload of one part) may run, in seconds,
    /// before it is stopped and the evidence fails (60-86400).
    pub pipeline_step_timeout_s: u32,
    /// filter-ai task CPU units.
    pub filter_ai_cpu: u32,
    /// filter-ai task memory in MB.
    pub filter_ai_memory_mb: u32,
    /// filter-ai tasks (0-10).
    pub filter_ai_tasks: u32,
}

impl Default for SizingConfig {
    fn default() -> Self {
        Self {
            api_memory_mb: 512,
            api_timeout_s: 29,
            ai_chat_memory_mb: 512,
            ai_chat_timeout_s: 29,
            pipeline_cpu: 1024,
            pipeline_memory_mb: 4096,
            pipeline_max_concurrency: 8,
            pipeline_step_timeout_s: 4 * 3600,
            filter_ai_cpu: 512,
            filter_ai_memory_mb: 1024,
            filter_ai_tasks: 2,
        }
    }
}

/// How long data is kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataRetention {
    /// Uploaded evidence in `sources` (days, 1-3650).
    pub sources_days: u32,
    /// Pipeline artifacts (days, 1-3650).
    pub artifacts_days: u32,
    /// Old object versions (days, 1-365).
    pub noncurrent_versions_days: u32,
}

impl Default for DataRetention {
    fn default() -> Self {
        Self {
            sources_days: 365,
            artifacts_days: 30,
            noncurrent_versions_days: 30,
        }
    }
}

/// Preview stack settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewConfig {
    /// When `preview gc` may remove the stacks (RFC 3339 UTC, `2026-12-01T00:00:00Z`).
    pub expires_at: String,
}

/// Reports a validation error at a field: `(path, message)`.
type Fail<'a> = dyn Fn(&[&str], String) -> Result<(), ConfigError> + 'a;

/// CloudWatch Logs retention values.
pub const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

const FARGATE_CPU: &[u32] = &[256, 512, 1024, 2048, 4096];

/// Interface endpoint services we know how to wire.
pub const INTERFACE_ENDPOINTS: &[&str] = &[
    "bedrock-runtime",
    "ecr.api",
    "ecr.dkr",
    "execute-api",
    "kms",
    "logs",
    "secretsmanager",
    "states",
    "sts",
];

/// `arn:<partition>:iam::<account>:role/<path/name>` as (account, role name with path);
/// `None` when it is not a role ARN.
pub fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return None;
    }
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("role/")?;
    let name_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-/".contains(&b));
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && name_ok)
        .then_some((account, name))
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            file: file.clone(),
            source,
        })?;
        Ok(Self::parse(&file, &source)?)
    }

    /// Parse and validate YAML text; `file` is used in messages.
    pub fn parse(file: &str, source: &str) -> Result<Self, ConfigError> {
        let mut config: Self = serde_yaml::from_str(source).map_err(|e| parse_error(file, &e))?;
        let default_model = crate::bedrock::catalog().default_model_id(&config.region);
        for id in [
            &mut config.bedrock.guard_model_id,
            &mut config.bedrock.main_model_id,
        ] {
            if id.is_empty() {
                id.clone_from(&default_model);
            }
        }
        config.validate(file, source)?;
        Ok(config)
    }

    /// NAT gateways, with the stage default applied.
    pub fn nat_gateways(&self) -> u32 {
        self.network.nat_gateways.unwrap_or(match self.stage {
            Stage::Prod => self.network.az_count,
            Stage::Staging => 1,
            Stage::Preview | Stage::Local => 0,
        })
    }

    /// Whether filter-ai's tasks run in the public subnets with a public IPv4 address
    /// (defect 10 of issue 13): a VPC without NAT reaches most AWS APIs through its
    /// endpoints, but not the API Gateway management API filter-ai pushes WebSocket
    /// replies to. WebSocket APIs are public (Regional) only and must be reached over
    /// the internet; an `execute-api` interface endpoint does not serve their
    /// `@connections` API, and with private DNS it would send every `execute-api` call
    /// of the VPC to itself
    /// (<https://docs.aws.amazon.com/whitepapers/latest/best-practices-api-gateway-private-apis-integration/websocket-api.html>,
    /// <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-private-apis.html>).
    /// A task's public address costs the public IPv4 hourly rate, far below a NAT gateway;
    /// the task security group still admits only the load balancer. Only where filter-ai
    /// runs at all ([`Config::websocket_api`]: not in previews).
    pub fn filter_ai_public_ip(&self) -> bool {
        self.nat_gateways() == 0 && self.stage != Stage::Local
    }

    /// Interface endpoints: the configured ones, none by default (each costs per AZ and
    /// hour; a preview without NAT reaches AWS over IPv6 instead, [`Config::ipv6_egress`]).
    pub fn interface_endpoints(&self) -> Vec<String> {
        self.network.interface_endpoints.clone().unwrap_or_default()
    }

    /// The preview shape's network (issue 16: at most $5/month idle): a dual-stack VPC
    /// whose private subnets route IPv6 to an egress-only internet gateway (no hourly
    /// charge, unlike a NAT gateway or an interface endpoint per AZ), Lambdas with
    /// `Ipv6AllowedForDualStack`, and the pipeline's on-demand tasks in the public subnets
    /// with a public IPv4 address while they run. S3 and DynamoDB keep their (free) gateway
    /// endpoints. Which AWS API each workload then reaches, and how, is
    /// [`crate::reach`]'s to check.
    /// (<https://docs.aws.amazon.com/vpc/latest/userguide/egress-only-internet-gateway.html>,
    /// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-ipv6>)
    pub fn ipv6_egress(&self) -> bool {
        self.stage == Stage::Preview && self.nat_gateways() == 0
    }

    /// Whether the stage has the WebSocket API and what serves it: the filter-ai Fargate
    /// service, its internal NLB, the VPC link and the `$connect` authorizer. Not in
    /// previews: an always-on task and a load balancer cost about $40 a month idle, and
    /// the app falls back to `POST /api/v1/ai/chat` (the AI-chat Lambda) when the config
    /// it is served has no WebSocket URL.
    pub fn websocket_api(&self) -> bool {
        self.stage != Stage::Preview
    }

    /// Whether the pipeline's ECS tasks run in the public subnets with a public IPv4
    /// address: without NAT and interface endpoints they reach ECR, CloudWatch Logs,
    /// S3 and Secrets Manager that way. The address bills only while a task runs.
    pub fn pipeline_public_ip(&self) -> bool {
        self.ipv6_egress()
    }

    /// The AI provider the Lambdas and tasks get (`CHRONO_AI_PROVIDER`): Bedrock, except
    /// in a preview on [`Config::ipv6_egress`], where the AI chat uses the deterministic
    /// translator. Amazon Bedrock's published endpoints are IPv4 only
    /// (<https://docs.aws.amazon.com/general/latest/gr/bedrock.html> lists no dual-stack
    /// `bedrock-runtime` endpoint), so an IPv6-only way out cannot reach it. Bedrock in a
    /// preview is opt-in: a base config with `network.interface_endpoints:
    /// [bedrock-runtime]` keeps that one endpoint in its previews (two AZs, about $16 a
    /// month idle, shown by `chronoctl cost --preview`).
    pub fn ai_provider(&self) -> &'static str {
        let bedrock_endpoint = self
            .network
            .interface_endpoints
            .iter()
            .flatten()
            .any(|e| e == "bedrock-runtime");
        if self.ipv6_egress() && !bedrock_endpoint {
            "local"
        } else {
            "bedrock"
        }
    }

    /// Minimum ACU, with the stage default applied.
    pub fn min_acu(&self) -> f64 {
        self.aurora
            .min_acu
            .unwrap_or(if self.stage.is_ephemeral() { 0.0 } else { 0.5 })
    }

    /// Reader instances, with the stage default applied.
    pub fn readers(&self) -> u32 {
        self.aurora
            .readers
            .unwrap_or(if self.stage == Stage::Prod { 1 } else { 0 })
    }

    /// `chrono-<customer>-<stage>`: the prefix of stack and resource names.
    pub fn prefix(&self) -> String {
        format!("chrono-{}-{}", self.customer, self.stage)
    }

    /// `deploy_role_arn` must be an IAM role of the config's own account (the account
    /// guard then checks the assumed identity); `external_id` needs a role and follows
    /// AssumeRole's rules: 2-1224 characters, letters, digits and `_+=,.@:/-`
    /// (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>).
    fn validate_deploy_role(&self, fail: &Fail<'_>) -> Result<(), ConfigError> {
        if let Some(arn) = &self.deploy_role_arn {
            let Some((account, name)) = parse_role_arn(arn) else {
                return fail(
                    &["deploy_role_arn"],
                    format!(
                        "must be an IAM role ARN like arn:aws:iam::{}:role/chrono-deploy, got {arn:?}",
                        self.account_id
                    ),
                );
            };
            if account != self.account_id {
                return fail(
                    &["deploy_role_arn"],
                    format!(
                        "names a role of account {account}, but account_id is {}: the deploy role must be the customer account's own",
                        self.account_id
                    ),
                );
            }
            if name.is_empty() {
                return fail(&["deploy_role_arn"], format!("has no role name: {arn:?}"));
            }
        }
        if let Some(arn) = &self.cfn_execution_role_arn {
            match parse_role_arn(arn) {
                Some((account, name)) if account == self.account_id && !name.is_empty() => {}
                _ => {
                    return fail(
                        &["cfn_execution_role_arn"],
                        format!(
                            "must be an IAM role ARN of account {} like arn:aws:iam::{}:role/{}-cfn-execution, got {arn:?}",
                            self.account_id,
                            self.account_id,
                            self.prefix()
                        ),
                    );
                }
            }
        }
        if let Some(id) = &self.external_id {
            if self.deploy_role_arn.is_none() {
                return fail(
                    &["external_id"],
                    "is only used with deploy_role_arn (the role whose trust policy requires it)"
                        .to_owned(),
                );
            }
            let ok = (2..=1224).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
            if !ok {
                return fail(
                    &["external_id"],
                    "must be 2-1224 characters: letters, digits and _+=,.@:/- (AssumeRole's rule)"
                        .to_owned(),
                );
            }
        }
        Ok(())
    }

    /// Validates a config built in code (a preview derived from a file): the rules of
    /// [`Config::parse`]; errors point at line 1 of `file`.
    pub fn validate_derived(&self, file: &str) -> Result<(), ConfigError> {
        self.validate(file, "")
    }

    fn validate(&self, file: &str, source: &str) -> Result<(), ConfigError> {
        let fail = |path: &[&str], message: String| {
            let Location { line, column } = locate(source, path);
            Err(ConfigError {
                file: file.to_owned(),
                line,
                column,
                message: format!("{} {message}", path.join(".")),
            })
        };
        let c = &self.customer;
        let name_ok = (2..=20).contains(&c.len())
            && c.starts_with(|ch: char| ch.is_ascii_lowercase())
            && !c.ends_with('-')
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return fail(
                &["customer"],
                format!(
                    "must be 2-20 lowercase letters, digits or '-', starting with a letter, got {c:?}"
                ),
            );
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return fail(
                &["account_id"],
                format!(
                    "must be a 12-digit AWS account id (quote it), got {:?}",
                    self.account_id
                ),
            );
        }
        if !valid_region(&self.region) {
            return fail(
                &["region"],
                format!(
                    "must be an AWS region like eu-west-1, got {:?}",
                    self.region
                ),
            );
        }
        self.validate_deploy_role(&fail)?;
        self.validate_network(&fail)?;
        self.validate_aurora(&fail)?;
        if !LOG_RETENTION_DAYS.contains(&self.log_retention_days) {
            return fail(
                &["log_retention_days"],
                format!(
                    "must be one of {LOG_RETENTION_DAYS:?} (CloudWatch Logs values), got {}",
                    self.log_retention_days
                ),
            );
        }
        self.validate_auth(&fail)?;
        self.validate_web(&fail)?;
        for (field, id) in [
            ("guard_model_id", &self.bedrock.guard_model_id),
            ("main_model_id", &self.bedrock.main_model_id),
        ] {
            let ok = !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:-_".contains(&b));
            if !ok {
                return fail(
                    &["bedrock", field],
                    format!(
                        "must be a Bedrock model or inference profile id like eu.anthropic.claude-haiku-4-5-20251001-v1:0, got {id:?}"
                    ),
                );
            }
        }
        self.validate_sizing(&fail)?;
        for key in self.tags.keys() {
            if key.starts_with("chrono:")
                || key.starts_with("aws:")
                || key.is_empty()
                || key.len() > 128
            {
                return fail(
                    &["tags", key],
                    "is not allowed: tag keys must be 1-128 characters and not start with chrono: or aws: (reserved)".into(),
                );
            }
        }
        let r = &self.data_retention;
        for (field, value, max) in [
            ("sources_days", r.sources_days, 3650),
            ("artifacts_days", r.artifacts_days, 3650),
            ("noncurrent_versions_days", r.noncurrent_versions_days, 365),
        ] {
            if !(1..=max).contains(&value) {
                return fail(
                    &["data_retention", field],
                    format!("must be between 1 and {max}, got {value}"),
                );
            }
        }
        match (&self.preview, self.stage) {
            (None, Stage::Preview) => fail(
                &["preview"],
                "is required for stage preview: set preview.expires_at (e.g. 2026-12-01T00:00:00Z)"
                    .into(),
            ),
            (Some(_), stage) if stage != Stage::Preview => fail(
                &["preview"],
                format!("is only allowed for stage preview, got stage {stage}"),
            ),
            (Some(p), _) if !valid_timestamp(&p.expires_at) => fail(
                &["preview", "expires_at"],
                format!(
                    "must be an RFC 3339 UTC time like 2026-12-01T00:00:00Z, got {:?}",
                    p.expires_at
                ),
            ),
            _ => Ok(()),
        }
    }

    fn validate_auth(&self, fail: &Fail<'_>) -> Result<(), ConfigError> {
        let a = &self.auth;
        let Some(issuer) = &a.jwt_issuer else {
            for (field, set) in [
                ("jwt_audience", a.jwt_audience.is_some()),
                ("app_client_id", a.app_client_id.is_some()),
                ("audience_parameter", a.audience_parameter),
            ] {
                if set {
                    return fail(
                        &["auth", field],
                        "needs auth.jwt_issuer (without an external issuer the stacks create a Cognito user pool)".into(),
                    );
                }
            }
            if self.stage == Stage::Local {
                return fail(
                    &["auth", "jwt_issuer"],
                    "is required for stage local (the local issuer stands in for it)".into(),
                );
            }
            if let Some(prefix) = a.cognito.as_ref().and_then(|c| c.domain_prefix.as_ref()) {
                let ok = (1..=63).contains(&prefix.len())
                    && prefix
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !prefix.starts_with('-')
                    && !prefix.ends_with('-')
                    && !["aws", "amazon", "cognito"]
                        .iter()
                        .any(|w| prefix.contains(w));
                if !ok {
                    return fail(
                        &["auth", "cognito", "domain_prefix"],
                        format!(
                            "must be 1-63 lowercase letters, digits and inner hyphens, without aws, amazon or cognito, got {prefix:?}"
                        ),
                    );
                }
            }
            return Ok(());
        };
        let http_ok = self.stage == Stage::Local && issuer.starts_with("http://");
        if !(issuer.starts_with("https://") || http_ok) || issuer.contains(char::is_whitespace) {
            return fail(
                &["auth", "jwt_issuer"],
                format!("must be an https:// URL (http:// only for stage local), got {issuer:?}"),
            );
        }
        for (field, value) in [
            ("jwt_audience", &a.jwt_audience),
            ("app_client_id", &a.app_client_id),
        ] {
            if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                return fail(
                    &["auth", field],
                    "is required with auth.jwt_issuer (an external identity provider)".into(),
                );
            }
        }
        if a.cognito.is_some() {
            return fail(
                &["auth", "cognito"],
                "is only for the user pool the stacks create; remove it or auth.jwt_issuer".into(),
            );
        }
        Ok(())
    }

    fn validate_web(&self, fail: &Fail<'_>) -> Result<(), ConfigError> {
        let w = &self.web;
        if !["PriceClass_100", "PriceClass_200", "PriceClass_All"].contains(&w.price_class.as_str())
        {
            return fail(
                &["web", "price_class"],
                format!(
                    "must be PriceClass_100, PriceClass_200 or PriceClass_All, got {:?}",
                    w.price_class
                ),
            );
        }
        match (&w.domain, &w.certificate_arn) {
            (Some(_), None) => fail(
                &["web", "certificate_arn"],
                "is required with web.domain: an ACM certificate in us-east-1".into(),
            ),
            (None, Some(_)) => fail(
                &["web", "domain"],
                "is required with web.certificate_arn".into(),
            ),
            (Some(d), _) if d.is_empty() || d.contains(['/', ':', ' ']) => fail(
                &["web", "domain"],
                format!("must be a host name like app.example.com, got {d:?}"),
            ),
            (_, Some(arn)) if !arn.starts_with("arn:aws:acm:us-east-1:") => fail(
                &["web", "certificate_arn"],
                format!("must be an ACM certificate ARN in us-east-1, got {arn:?}"),
            ),
            _ => Ok(()),
        }
    }

    /// The Cognito hosted-domain prefix (when the stacks create the user pool).
    pub fn cognito_domain_prefix(&self) -> String {
        self.auth
            .cognito
            .as_ref()
            .and_then(|c| c.domain_prefix.clone())
            .unwrap_or_else(|| self.prefix())
    }

    fn validate_network(&self, fail: &Fail<'_>) -> Result<(), ConfigError> {
        let n = &self.network;
        if parse_slash16(&n.vpc_cidr).is_none() {
            return fail(
                &["network", "vpc_cidr"],
                format!(
                    "must be a private IPv4 /16 like 10.0.0.0/16, got {:?}",
                    n.vpc_cidr
                ),
            );
        }
        if !(2..=3).contains(&n.az_count) {
            return fail(
                &["network", "az_count"],
                format!("must be 2 or 3, got {}", n.az_count),
            );
        }
        if let Some(nat) = n.nat_gateways {
            if self.stage == Stage::Preview && nat > 0 {
                return fail(
                    &["network", "nat_gateways"],
                    format!("must be 0 for stage preview (previews use no NAT), got {nat}"),
                );
            }
            if nat > n.az_count {
                return fail(
                    &["network", "nat_gateways"],
                    format!(
                        "must be between 0 and network.az_count ({}), got {nat}",
                        n.az_count
                    ),
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in n.interface_endpoints.iter().flatten() {
            if !INTERFACE_ENDPOINTS.contains(&e.as_str()) {
                return fail(
                    &["network", "interface_endpoints"],
                    format!(
                        "has unknown service {e:?}; allowed: {}",
                        INTERFACE_ENDPOINTS.join(", ")
                    ),
                );
            }
            if !seen.insert(e) {
                return fail(
                    &["network", "interface_endpoints"],
                    format!("lists {e:?} twice"),
                );
            }
        }
        Ok(())
    }

    fn validate_aurora(&self, fail: &Fail<'_>) -> Result<(), ConfigError> {
        let a = &self.aurora;
        let v = &a.engine_version;
        let version_ok = v.split('.').count() == 2
            && v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !version_ok {
            return fail(
                &["aurora", "engine_version"],
                format!("must be an Aurora PostgreSQL version like 17.7, got {v:?}"),
            );
        }
        let half_step = |x: f64| (x * 2.0).fract() == 0.0;
        if !(1.0..=256.0).contains(&a.max_acu) || !half_step(a.max_acu) {
            return fail(
                &["aurora", "max_acu"],
                format!(
                    "must be between 1 and 256 in steps of 0.5, got {}",
                    a.max_acu
                ),
            );
        }
        if let Some(min) = a.min_acu {
            if !(0.0..=256.0).contains(&min) || !half_step(min) {
                return fail(
                    &["aurora", "min_acu"],
                    format!("must be between 0 and 256 in steps of 0.5, got {min}"),
                );
            }
            if min > a.max_acu {
                return fail(
                    &["aurora", "min_acu"],
                    format!("must not exceed aurora.max_acu ({}), got {min}", a.max_acu),
                );
            }
        }
        if let Some(r) = a.readers
            && r > 15
        {
            return fail(
                &["aurora", "readers"],
                format!("must be between 0 and 15, got {r}"),
            );
        }
        if !(1..=35).contains(&a.backup_retention_days) {
            return fail(
                &["aurora", "backup_retention_days"],
                format!("must be between 1 and 35, got {}", a.backup_retention_days),
            );
        }
        Ok(())
    }

    fn validate_sizing(&self, fail: &Fail<'_>) -> Result<(), ConfigError> {
        let s = &self.sizing;
        for (field, value, lo, hi) in [
            ("api_memory_mb", s.api_memory_mb, 128, 10_240),
            ("ai_chat_memory_mb", s.ai_chat_memory_mb, 128, 10_240),
            ("api_timeout_s", s.api_timeout_s, 1, 29),
            ("ai_chat_timeout_s", s.ai_chat_timeout_s, 1, 29),
            (
                "pipeline_max_concurrency",
                s.pipeline_max_concurrency,
                1,
                10_000,
            ),
            (
                "pipeline_step_timeout_s",
                s.pipeline_step_timeout_s,
                60,
                86_400,
            ),
            ("filter_ai_tasks", s.filter_ai_tasks, 0, 10),
        ] {
            if !(lo..=hi).contains(&value) {
                return fail(
                    &["sizing", field],
                    format!("must be between {lo} and {hi}, got {value}"),
                );
            }
        }
        for (cpu_field, cpu, mem_field, mem) in [
            (
                "pipeline_cpu",
                s.pipeline_cpu,
                "pipeline_memory_mb",
                s.pipeline_memory_mb,
            ),
            (
                "filter_ai_cpu",
                s.filter_ai_cpu,
                "filter_ai_memory_mb",
                s.filter_ai_memory_mb,
            ),
        ] {
            if !FARGATE_CPU.contains(&cpu) {
                return fail(
                    &["sizing", cpu_field],
                    format!("must be a Fargate CPU size ({FARGATE_CPU:?}), got {cpu}"),
                );
            }
            let (lo, hi) = match cpu {
                256 => (512, 2048),
                512 => (1024, 4096),
                1024 => (2048, 8192),
                2048 => (4096, 16_384),
                _ => (8192, 30_720),
            };
            if !(lo..=hi).contains(&mem) || mem % 1024 != 0 && mem != 512 {
                return fail(
                    &["sizing", mem_field],
                    format!(
                        "must be between {lo} and {hi} in steps of 1024 for {cpu} CPU units, got {mem}"
                    ),
                );
            }
        }
        Ok(())
    }
}

fn parse_error(file: &str, e: &serde_yaml::Error) -> ConfigError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let text = e.to_string();
    // serde_yaml appends " at line L column C"; the location is reported in front instead.
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    ConfigError {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| p.len() == 1 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z'
}

/// The first two octets of a private `/16` CIDR.
pub fn parse_slash16(cidr: &str) -> Option<(u8, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    if len != "16" {
        return None;
    }
    let octets: Vec<u8> = addr
        .split('.')
        .map(|o| o.parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, 0, 0] = octets[..] else {
        return None;
    };
    let private = a == 10 || (a == 172 && (16..=31).contains(&b)) || (a == 192 && b == 168);
    private.then_some((a, b))
}
