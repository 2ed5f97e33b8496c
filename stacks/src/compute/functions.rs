//! The Lambda workloads: the HTTP API function (`chrono-api`), the migration function (the
//! same binary, invoked by `chronoctl onboard`), the AI-chat function and the WebSocket
//! `$connect` authorizer. Each builder adds the function's log group, its
//! role with exactly the grants the binary needs, and the function.

use std::collections::BTreeMap;

use chrono_contract::env;
use serde_json::json;

use super::{
    Ctx, Expr, arn, bedrock_statements, bucket_objects, db_secret_statements, logs_statement,
    tables_statement,
};
use crate::model::{Handle, ModelError, ParamHandle, Template};
use crate::resources::compute::{
    Function, LambdaCode, LambdaEnvironment, LambdaVpcConfig, LogGroup,
};
use crate::resources::iam::{Role, Statement};
use crate::stack::tags;

/// AWS managed policy a function in the VPC needs for its network interfaces.
fn vpc_access() -> Expr {
    arn("iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
}

/// What differs between our functions; the rest (custom runtime, the config's
/// architecture, code in the assets bucket, the log group) is the same for all.
struct Spec<'a> {
    /// Name after the prefix, `<prefix>-<name>`.
    name: &'a str,
    description: &'a str,
    code: &'a ParamHandle,
    role: &'a Handle<Role>,
    memory: u32,
    timeout: u32,
    logs: &'a Handle<LogGroup>,
    environment: BTreeMap<String, Expr>,
    /// In the private subnets (`false`: outside the VPC).
    in_vpc: bool,
}

fn function(c: &Ctx, spec: Spec) -> Function {
    let function_name = format!("{}-{}", c.prefix, spec.name);
    Function {
        tags: tags(c.cfg, &function_name),
        function_name,
        description: spec.description.to_owned(),
        runtime: "provided.al2023".into(),
        handler: "bootstrap".into(),
        architectures: vec![c.cfg.architecture.as_str().into()],
        code: LambdaCode {
            s3_bucket: c.p.assets.r#ref(),
            s3_key: spec.code.r#ref(),
        },
        role: spec.role.arn(),
        memory_size: spec.memory,
        timeout: spec.timeout,
        environment: LambdaEnvironment {
            variables: spec.environment,
        },
        vpc_config: spec.in_vpc.then(|| LambdaVpcConfig {
            subnet_ids: c.p.subnets.r#ref(),
            security_group_ids: vec![c.p.lambda_sg.r#ref()],
            ipv6_allowed_for_dual_stack: c.cfg.ipv6_egress(),
        }),
        logging_config: json!({"LogGroup": spec.logs.r#ref()}),
    }
}

/// `chrono-api`: evidence objects in `sources`, reading `artifacts`, starting and watching
/// pipeline executions, the database secret.
pub(super) fn api_function(t: &mut Template, c: &Ctx) -> Result<Handle<Function>, ModelError> {
    let prefix = &c.prefix;
    let sm_name = super::state_machine_name(c.cfg);
    let logs = c.log_group(t, "ApiLogGroup", format!("/aws/lambda/{prefix}-api"))?;
    let mut statements = vec![
        logs_statement(&[&logs]),
        // Uploads: presigned PUTs and multipart uploads (create, presigned parts,
        // complete, abort); GetObject also covers the HeadObject after completing.
        Statement::allow(
            "EvidenceObjects",
            &["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            vec![bucket_objects(&c.p.sources)],
        ),
        Statement::allow(
            "ReadArtifacts",
            &["s3:GetObject"],
            vec![bucket_objects(&c.p.artifacts)],
        ),
        Statement::allow(
            "StartPipeline",
            &["states:StartExecution"],
            vec![super::state_machine_arn(c.cfg)],
        ),
        Statement::allow(
            "WatchPipeline",
            &["states:DescribeExecution"],
            vec![arn(&format!(
                "states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{sm_name}:*"
            ))],
        ),
    ];
    statements.extend(db_secret_statements(&c.p));
    let role = t.add(
        "ApiRole",
        c.role(
            "chrono-api",
            "lambda.amazonaws.com",
            vec![vpc_access()],
            statements,
        ),
    )?;
    t.add(
        "ApiFunction",
        function(
            c,
            Spec {
                name: "api",
                description: "ChronoTracer HTTP API",
                code: &c.p.api_code,
                role: &role,
                memory: c.cfg.sizing.api_memory_mb,
                timeout: c.cfg.sizing.api_timeout_s,
                logs: &logs,
                environment: c.env.clone(),
                in_vpc: true,
            },
        ),
    )
}

/// The migration function: the `chrono-api` code, invoked only by `chronoctl onboard` with
/// `{"chrono_command":"migrate"}`, with Lambda's longest timeout instead of the API's (API
/// Gateway's 30 s do not apply to it); only its logs and the database secret.
pub(super) fn migrate_function(t: &mut Template, c: &Ctx) -> Result<Handle<Function>, ModelError> {
    let prefix = &c.prefix;
    let logs = c.log_group(
        t,
        "MigrateLogGroup",
        format!("/aws/lambda/{prefix}-migrate"),
    )?;
    let mut statements = vec![logs_statement(&[&logs])];
    statements.extend(db_secret_statements(&c.p));
    let role = t.add(
        "MigrateRole",
        c.role(
            "migrate",
            "lambda.amazonaws.com",
            vec![vpc_access()],
            statements,
        ),
    )?;
    t.add(
        "MigrateFunction",
        function(
            c,
            Spec {
                name: "migrate",
                description: "ChronoTracer database migrations (invoked by chronoctl onboard)",
                code: &c.p.api_code,
                role: &role,
                memory: c.cfg.sizing.api_memory_mb,
                timeout: super::MIGRATE_TIMEOUT_S,
                logs: &logs,
                environment: c.env.clone(),
                in_vpc: true,
            },
        ),
    )
}

/// `chrono-ai-chat`: the AI tables, the configured models, the database secret.
pub(super) fn chat_function(t: &mut Template, c: &Ctx) -> Result<Handle<Function>, ModelError> {
    let prefix = &c.prefix;
    let logs = c.log_group(t, "AiChatLogGroup", format!("/aws/lambda/{prefix}-ai-chat"))?;
    let mut statements = vec![logs_statement(&[&logs]), tables_statement(&c.p)];
    statements.extend(bedrock_statements(c.cfg));
    statements.extend(db_secret_statements(&c.p));
    let role = t.add(
        "AiChatRole",
        c.role(
            "ai-chat",
            "lambda.amazonaws.com",
            vec![vpc_access()],
            statements,
        ),
    )?;
    t.add(
        "AiChatFunction",
        function(
            c,
            Spec {
                name: "ai-chat",
                description: "ChronoTracer AI chat: question to event filter",
                code: &c.p.ai_chat_code,
                role: &role,
                memory: c.cfg.sizing.ai_chat_memory_mb,
                timeout: c.cfg.sizing.ai_chat_timeout_s,
                logs: &logs,
                environment: c.env.clone(),
                in_vpc: true,
            },
        ),
    )
}

/// The environment of the `$connect` authorizer: what it needs to verify a token, nothing
/// else.
fn authorizer_env(c: &Ctx) -> BTreeMap<String, Expr> {
    let cfg = c.cfg;
    [
        (env::CASES_CLAIM, cfg.auth.cases_claim.clone().into()),
        (env::JWKS_URL, c.identity.jwks_url.clone()),
        (env::JWT_AUDIENCE, c.identity.audience.clone()),
        (env::JWT_ISSUER, c.identity.issuer.clone()),
        (env::LOG_FORMAT, "json".into()),
        (env::ROLES_CLAIM, cfg.auth.roles_claim.clone().into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `chrono-ws-authorizer`: only its logs. Outside the VPC: it needs nothing there, only the
/// identity provider's public key set (which a VPC without NAT gateways could not reach).
pub(super) fn ws_authorizer(
    t: &mut Template,
    c: &Ctx,
    code: &ParamHandle,
) -> Result<Handle<Function>, ModelError> {
    let prefix = &c.prefix;
    let logs = c.log_group(
        t,
        "WsAuthorizerLogGroup",
        format!("/aws/lambda/{prefix}-ws-authorizer"),
    )?;
    let role = t.add(
        "WsAuthorizerRole",
        c.role(
            "ws-authorizer",
            "lambda.amazonaws.com",
            vec![],
            vec![logs_statement(&[&logs])],
        ),
    )?;
    t.add(
        "WsAuthorizerFunction",
        function(
            c,
            Spec {
                name: "ws-authorizer",
                description: "ChronoTracer WebSocket $connect authorizer: verifies the token",
                code,
                role: &role,
                memory: 256,
                timeout: 10,
                logs: &logs,
                environment: authorizer_env(c),
                in_vpc: false,
            },
        ),
    )
}
