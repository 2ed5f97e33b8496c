//! The `compute` stack: one IAM role per function/task (least privilege), the `chrono-api`
//! and AI-chat Lambdas (in the VPC, code from the assets bucket), the ECS cluster, the
//! pipeline task definition, the filter-ai Fargate service behind an internal NLB, the
//! pipeline state machine, and log groups with retention.
//!
//! Every Lambda and task gets the runtime environment of the cross-team contract
//! ([`RUNTIME_ENV`]). Lambda code keys and the image tag are stack parameters the deploy
//! engine fills with content hashes (see [`crate::stack::Asset`]).

use std::collections::BTreeMap;

use serde_json::json;

use crate::bootstrap::BootstrapOutputs;
use crate::config::Config;
use crate::data::{DATABASE_NAME, DataOutputs};
use crate::model::{Attributes, Expr, Handle, ModelError, ParamHandle, Parameter, Policy, Pseudo};
use crate::network::{FILTER_AI_PORT, NetworkOutputs};
use crate::pipeline;
use crate::resources::compute::{
    Cluster, ContainerDefinition, Function, KeyValue, LambdaCode, LambdaEnvironment,
    LambdaVpcConfig, Listener, LoadBalancer, LogGroup, Service, StateMachine, TargetGroup,
    TaskDefinition,
};
use crate::resources::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::stack::{Asset, OutputRef, Stack, StackKind, tags};

/// The environment variables every Lambda and task receives (contracts.md).
pub const RUNTIME_ENV: [&str; 20] = [
    "CHRONO_AI_PROVIDER",
    "CHRONO_ARTIFACTS_BUCKET",
    "CHRONO_CASES_CLAIM",
    "CHRONO_CONVERSATIONS_TABLE",
    "CHRONO_CUSTOMER",
    "CHRONO_DB_HOST",
    "CHRONO_DB_NAME",
    "CHRONO_DB_PORT",
    "CHRONO_DB_SECRET_ARN",
    "CHRONO_GUARD_MODEL_ID",
    "CHRONO_INTENT_CACHE_TABLE",
    "CHRONO_JWT_AUDIENCE",
    "CHRONO_JWT_ISSUER",
    "CHRONO_LOG_FORMAT",
    "CHRONO_MAIN_MODEL_ID",
    "CHRONO_PIPELINE_STATE_MACHINE_ARN",
    "CHRONO_ROLES_CLAIM",
    "CHRONO_SESSIONS_TABLE",
    "CHRONO_SOURCES_BUCKET",
    "CHRONO_STAGE",
];

/// Binary (and Lambda zip) of the HTTP API.
pub const API_BINARY: &str = "chrono-api";
/// Binary (and Lambda zip) of the AI chat.
pub const AI_CHAT_BINARY: &str = "chrono-ai-chat";
/// Binary (and Lambda zip) of the WebSocket API's `$connect` authorizer.
pub const WS_AUTHORIZER_BINARY: &str = "chrono-ws-authorizer";
/// Entry point of the pipeline task (on `PATH` in the runtime image).
pub const PIPELINE_BINARY: &str = "chrono-pipeline";
/// Entry point of the filter-ai service.
pub const FILTER_AI_BINARY: &str = "chrono-filter-ai";
/// Health check path of filter-ai (HTTP 200 when ready).
pub const FILTER_AI_HEALTH_PATH: &str = "/healthz";

/// Outputs the api stack imports.
#[derive(Debug, Clone)]
pub struct ComputeOutputs {
    /// `chrono-api` Lambda ARN.
    pub api_function_arn: OutputRef,
    /// AI-chat Lambda ARN.
    pub ai_chat_function_arn: OutputRef,
    /// WebSocket `$connect` authorizer Lambda ARN.
    pub ws_authorizer_function_arn: OutputRef,
    /// Internal NLB ARN.
    pub load_balancer_arn: OutputRef,
    /// Internal NLB DNS name.
    pub load_balancer_dns: OutputRef,
}

/// The built stack.
#[derive(Debug, Clone)]
pub struct ComputeStack {
    /// Template and wiring.
    pub stack: Stack,
    /// Outputs.
    pub outputs: ComputeOutputs,
    /// Name of the pipeline state machine.
    pub state_machine_name: String,
}

/// Name of the pipeline state machine of a config.
pub fn state_machine_name(cfg: &Config) -> String {
    format!("{}-pipeline", cfg.prefix())
}

struct Params {
    assets: ParamHandle,
    repo_uri: ParamHandle,
    repo_arn: ParamHandle,
    vpc: ParamHandle,
    subnets: ParamHandle,
    lambda_sg: ParamHandle,
    task_sg: ParamHandle,
    lb_sg: ParamHandle,
    key: ParamHandle,
    db_host: ParamHandle,
    db_port: ParamHandle,
    db_secret: ParamHandle,
    sources: ParamHandle,
    artifacts: ParamHandle,
    sessions: ParamHandle,
    intent_cache: ParamHandle,
    conversations: ParamHandle,
    api_code: ParamHandle,
    ai_chat_code: ParamHandle,
    ws_authorizer_code: ParamHandle,
    image_tag: ParamHandle,
}

fn params(
    s: &mut Stack,
    b: &BootstrapOutputs,
    n: &NetworkOutputs,
    d: &DataOutputs,
) -> Result<Params, ModelError> {
    let string = |what: &str| Parameter::string(what);
    let sg = |what: &str| Parameter::of_type("AWS::EC2::SecurityGroup::Id", what);
    let key_pattern = "^[A-Za-z0-9._/-]+\\.zip$";
    Ok(Params {
        assets: s.import(
            "AssetsBucketName",
            &b.assets_bucket,
            string("assets bucket"),
        )?,
        repo_uri: s.import(
            "RuntimeRepositoryUri",
            &b.repository_uri,
            string("ECR repository URI"),
        )?,
        repo_arn: s.import(
            "RuntimeRepositoryArn",
            &b.repository_arn,
            string("ECR repository ARN"),
        )?,
        vpc: s.import(
            "VpcId",
            &n.vpc_id,
            Parameter::of_type("AWS::EC2::VPC::Id", "the VPC"),
        )?,
        subnets: s.import(
            "PrivateSubnetIds",
            &n.private_subnets,
            Parameter::of_type("List<AWS::EC2::Subnet::Id>", "private subnets"),
        )?,
        lambda_sg: s.import(
            "LambdaSecurityGroupId",
            &n.lambda_sg,
            sg("security group of the Lambdas"),
        )?,
        task_sg: s.import(
            "TaskSecurityGroupId",
            &n.task_sg,
            sg("security group of the ECS tasks"),
        )?,
        lb_sg: s.import(
            "LoadBalancerSecurityGroupId",
            &n.load_balancer_sg,
            sg("security group of the internal NLB"),
        )?,
        key: s.import(
            "DataKeyArn",
            &d.kms_key_arn,
            string("KMS key of the data stores"),
        )?,
        db_host: s.import("DatabaseHost", &d.db_host, string("Aurora writer endpoint"))?,
        db_port: s.import("DatabasePort", &d.db_port, string("Aurora port"))?,
        db_secret: s.import(
            "DatabaseSecretArn",
            &d.db_secret_arn,
            string("Aurora master secret"),
        )?,
        sources: s.import(
            "SourcesBucketName",
            &d.sources_bucket,
            string("sources bucket"),
        )?,
        artifacts: s.import(
            "ArtifactsBucketName",
            &d.artifacts_bucket,
            string("artifacts bucket"),
        )?,
        sessions: s.import(
            "SessionsTableName",
            &d.sessions_table,
            string("sessions table"),
        )?,
        intent_cache: s.import(
            "IntentCacheTableName",
            &d.intent_cache_table,
            string("intent cache table"),
        )?,
        conversations: s.import(
            "ConversationsTableName",
            &d.conversations_table,
            string("conversations table"),
        )?,
        api_code: s.asset(
            "ApiCodeKey",
            Asset::LambdaZip(API_BINARY.into()),
            string("S3 key of the chrono-api zip (content hash)").pattern(key_pattern),
        )?,
        ai_chat_code: s.asset(
            "AiChatCodeKey",
            Asset::LambdaZip(AI_CHAT_BINARY.into()),
            string("S3 key of the chrono-ai-chat zip (content hash)").pattern(key_pattern),
        )?,
        ws_authorizer_code: s.asset(
            "WsAuthorizerCodeKey",
            Asset::LambdaZip(WS_AUTHORIZER_BINARY.into()),
            string("S3 key of the chrono-ws-authorizer zip (content hash)").pattern(key_pattern),
        )?,
        image_tag: s.asset(
            "ImageTag",
            Asset::ImageTag,
            string("tag of the runtime image (content hash)").pattern("^[A-Za-z0-9._-]{1,128}$"),
        )?,
    })
}

fn arn(service_path: &str) -> Expr {
    Expr::sub(format!("arn:${{AWS::Partition}}:{service_path}"))
}

fn bucket_objects(p: &ParamHandle) -> Expr {
    arn(&format!("s3:::${{{}}}/*", p.id()))
}

fn bucket_arn(p: &ParamHandle) -> Expr {
    arn(&format!("s3:::${{{}}}", p.id()))
}

fn table_arn(p: &ParamHandle) -> Expr {
    arn(&format!(
        "dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/${{{}}}",
        p.id()
    ))
}

/// ARN of a Bedrock foundation model in the stack's region.
pub fn model_arn(model_id: &str) -> Expr {
    arn(&format!(
        "bedrock:${{AWS::Region}}::foundation-model/{model_id}"
    ))
}

fn runtime_env(cfg: &Config, p: &Params) -> BTreeMap<String, Expr> {
    let sm = arn(&format!(
        "states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{}",
        state_machine_name(cfg)
    ));
    let pairs: [(&str, Expr); 20] = [
        ("CHRONO_AI_PROVIDER", "bedrock".into()),
        ("CHRONO_ARTIFACTS_BUCKET", p.artifacts.r#ref()),
        ("CHRONO_CASES_CLAIM", cfg.auth.cases_claim.clone().into()),
        ("CHRONO_CONVERSATIONS_TABLE", p.conversations.r#ref()),
        ("CHRONO_CUSTOMER", cfg.customer.clone().into()),
        ("CHRONO_DB_HOST", p.db_host.r#ref()),
        ("CHRONO_DB_NAME", DATABASE_NAME.into()),
        ("CHRONO_DB_PORT", p.db_port.r#ref()),
        ("CHRONO_DB_SECRET_ARN", p.db_secret.r#ref()),
        (
            "CHRONO_GUARD_MODEL_ID",
            cfg.bedrock.guard_model_id.clone().into(),
        ),
        ("CHRONO_INTENT_CACHE_TABLE", p.intent_cache.r#ref()),
        ("CHRONO_JWT_AUDIENCE", cfg.auth.jwt_audience.clone().into()),
        ("CHRONO_JWT_ISSUER", cfg.auth.jwt_issuer.clone().into()),
        ("CHRONO_LOG_FORMAT", "json".into()),
        (
            "CHRONO_MAIN_MODEL_ID",
            cfg.bedrock.main_model_id.clone().into(),
        ),
        ("CHRONO_PIPELINE_STATE_MACHINE_ARN", sm),
        ("CHRONO_ROLES_CLAIM", cfg.auth.roles_claim.clone().into()),
        ("CHRONO_SESSIONS_TABLE", p.sessions.r#ref()),
        ("CHRONO_SOURCES_BUCKET", p.sources.r#ref()),
        ("CHRONO_STAGE", cfg.stage.to_string().into()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The identity provider's key set: `{issuer}/.well-known/jwks.json` (Auth0, Cognito).
pub fn jwks_url(cfg: &Config) -> String {
    format!(
        "{}/.well-known/jwks.json",
        cfg.auth.jwt_issuer.trim_end_matches('/')
    )
}

/// The environment of the `$connect` authorizer: what it needs to verify a token, nothing
/// else.
fn authorizer_env(cfg: &Config) -> BTreeMap<String, Expr> {
    [
        ("CHRONO_CASES_CLAIM", cfg.auth.cases_claim.clone()),
        ("CHRONO_JWKS_URL", jwks_url(cfg)),
        ("CHRONO_JWT_AUDIENCE", cfg.auth.jwt_audience.clone()),
        ("CHRONO_JWT_ISSUER", cfg.auth.jwt_issuer.clone()),
        ("CHRONO_LOG_FORMAT", "json".into()),
        ("CHRONO_ROLES_CLAIM", cfg.auth.roles_claim.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into()))
    .collect()
}

fn role(
    cfg: &Config,
    what: &str,
    service: &str,
    managed: Vec<Expr>,
    statements: Vec<Statement>,
) -> Role {
    Role {
        description: format!("{}: {what}", cfg.prefix()),
        assume_role_policy_document: PolicyDocument::new(vec![Statement::assume_role(service)]),
        managed_policy_arns: managed,
        policies: vec![InlinePolicy {
            policy_name: "least-privilege".into(),
            policy_document: PolicyDocument::new(statements),
        }],
        tags: tags(cfg, &format!("{}-{what}", cfg.prefix())),
    }
}

fn logs_statement(groups: &[&Handle<LogGroup>]) -> Statement {
    Statement::allow(
        "WriteLogs",
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        groups.iter().map(|g| g.arn()).collect(),
    )
}

fn db_secret_statements(p: &Params) -> Vec<Statement> {
    vec![
        Statement::allow(
            "ReadDatabaseSecret",
            &["secretsmanager:GetSecretValue"],
            vec![p.db_secret.r#ref()],
        ),
        Statement::allow(
            "UseDataKey",
            &["kms:Decrypt", "kms:GenerateDataKey"],
            vec![p.key.r#ref()],
        ),
    ]
}

fn tables_statement(p: &Params) -> Statement {
    Statement::allow(
        "UseAiTables",
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
        ],
        vec![
            table_arn(&p.sessions),
            table_arn(&p.intent_cache),
            table_arn(&p.conversations),
        ],
    )
}

fn bedrock_statement(cfg: &Config) -> Statement {
    let mut models = vec![
        cfg.bedrock.guard_model_id.clone(),
        cfg.bedrock.main_model_id.clone(),
    ];
    models.dedup();
    Statement::allow(
        "InvokeConfiguredModels",
        &[
            "bedrock:InvokeModel",
            "bedrock:InvokeModelWithResponseStream",
        ],
        models.iter().map(|m| model_arn(m)).collect(),
    )
}

fn log_group(cfg: &Config, name: String) -> LogGroup {
    LogGroup {
        tags: tags(cfg, &name),
        log_group_name: name,
        retention_in_days: cfg.log_retention_days,
    }
}

/// Build the compute stack of a config (wired to its earlier stacks' outputs).
pub fn build(cfg: &Config) -> Result<ComputeStack, ModelError> {
    let network = crate::network::build(cfg)?.outputs;
    let data = crate::data::build_wired(cfg, &network)?.outputs;
    build_wired(cfg, &crate::bootstrap::build(cfg)?.outputs, &network, &data)
}

/// Build the compute stack with its parameters wired to the given outputs.
pub fn build_wired(
    cfg: &Config,
    bootstrap: &BootstrapOutputs,
    network: &NetworkOutputs,
    data: &DataOutputs,
) -> Result<ComputeStack, ModelError> {
    let mut s = Stack::new(
        cfg,
        StackKind::Compute,
        "roles, Lambdas, ECS, state machine, log groups",
    );
    let p = params(&mut s, bootstrap, network, data)?;
    let prefix = cfg.prefix();
    let env = runtime_env(cfg, &p);
    let sm_name = state_machine_name(cfg);
    let logs = Attributes::retention(Policy::Delete);
    let t = &mut s.template;

    let api_logs = t.add_with(
        "ApiLogGroup",
        log_group(cfg, format!("/aws/lambda/{prefix}-api")),
        logs.clone(),
    )?;
    let chat_logs = t.add_with(
        "AiChatLogGroup",
        log_group(cfg, format!("/aws/lambda/{prefix}-ai-chat")),
        logs.clone(),
    )?;
    let pipeline_logs = t.add_with(
        "PipelineLogGroup",
        log_group(cfg, format!("/ecs/{prefix}/pipeline")),
        logs.clone(),
    )?;
    let filter_logs = t.add_with(
        "FilterAiLogGroup",
        log_group(cfg, format!("/ecs/{prefix}/filter-ai")),
        logs.clone(),
    )?;
    let authorizer_logs = t.add_with(
        "WsAuthorizerLogGroup",
        log_group(cfg, format!("/aws/lambda/{prefix}-ws-authorizer")),
        logs,
    )?;

    let vpc_access = arn("iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole");
    let mut api_statements = vec![
        logs_statement(&[&api_logs]),
        // Uploads: presigned PUTs and multipart uploads (create, presigned parts,
        // complete, abort); GetObject also covers the HeadObject after completing.
        Statement::allow(
            "EvidenceObjects",
            &["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            vec![bucket_objects(&p.sources)],
        ),
        Statement::allow(
            "ReadArtifacts",
            &["s3:GetObject"],
            vec![bucket_objects(&p.artifacts)],
        ),
        Statement::allow(
            "StartPipeline",
            &["states:StartExecution"],
            vec![arn(&format!(
                "states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{sm_name}"
            ))],
        ),
        Statement::allow(
            "WatchPipeline",
            &["states:DescribeExecution"],
            vec![arn(&format!(
                "states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{sm_name}:*"
            ))],
        ),
    ];
    api_statements.extend(db_secret_statements(&p));
    let api_role = t.add(
        "ApiRole",
        role(
            cfg,
            "chrono-api",
            "lambda.amazonaws.com",
            vec![vpc_access.clone()],
            api_statements,
        ),
    )?;

    let mut chat_statements = vec![
        logs_statement(&[&chat_logs]),
        tables_statement(&p),
        bedrock_statement(cfg),
    ];
    chat_statements.extend(db_secret_statements(&p));
    let chat_role = t.add(
        "AiChatRole",
        role(
            cfg,
            "ai-chat",
            "lambda.amazonaws.com",
            vec![vpc_access],
            chat_statements,
        ),
    )?;

    let lambda = |name: &str,
                  what: &str,
                  code: &ParamHandle,
                  role: &Handle<Role>,
                  memory,
                  timeout,
                  logs: &Handle<LogGroup>| {
        let function_name = format!("{prefix}-{name}");
        Function {
            tags: tags(cfg, &function_name),
            function_name,
            description: what.to_owned(),
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            architectures: vec!["arm64".into()],
            code: LambdaCode {
                s3_bucket: p.assets.r#ref(),
                s3_key: code.r#ref(),
            },
            role: role.arn(),
            memory_size: memory,
            timeout,
            environment: LambdaEnvironment {
                variables: env.clone(),
            },
            vpc_config: Some(LambdaVpcConfig {
                subnet_ids: p.subnets.r#ref(),
                security_group_ids: vec![p.lambda_sg.r#ref()],
            }),
            logging_config: json!({"LogGroup": logs.r#ref()}),
        }
    };
    let api_fn = t.add(
        "ApiFunction",
        lambda(
            "api",
            "ChronoTracer HTTP API",
            &p.api_code,
            &api_role,
            cfg.sizing.api_memory_mb,
            cfg.sizing.api_timeout_s,
            &api_logs,
        ),
    )?;
    let chat_fn = t.add(
        "AiChatFunction",
        lambda(
            "ai-chat",
            "ChronoTracer AI chat: question to event filter",
            &p.ai_chat_code,
            &chat_role,
            cfg.sizing.ai_chat_memory_mb,
            cfg.sizing.ai_chat_timeout_s,
            &chat_logs,
        ),
    )?;

    // Outside the VPC: it needs nothing there, only the identity provider's public key set
    // (which a VPC without NAT gateways could not reach).
    let authorizer_role = t.add(
        "WsAuthorizerRole",
        role(
            cfg,
            "ws-authorizer",
            "lambda.amazonaws.com",
            vec![],
            vec![logs_statement(&[&authorizer_logs])],
        ),
    )?;
    let authorizer_name = format!("{prefix}-ws-authorizer");
    let authorizer_fn = t.add(
        "WsAuthorizerFunction",
        Function {
            tags: tags(cfg, &authorizer_name),
            function_name: authorizer_name,
            description: "ChronoTracer WebSocket $connect authorizer: verifies the token".into(),
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            architectures: vec!["arm64".into()],
            code: LambdaCode {
                s3_bucket: p.assets.r#ref(),
                s3_key: p.ws_authorizer_code.r#ref(),
            },
            role: authorizer_role.arn(),
            memory_size: 256,
            timeout: 10,
            environment: LambdaEnvironment {
                variables: authorizer_env(cfg),
            },
            vpc_config: None,
            logging_config: json!({"LogGroup": authorizer_logs.r#ref()}),
        },
    )?;

    let cluster = t.add(
        "Cluster",
        Cluster {
            cluster_name: prefix.clone(),
            cluster_settings: vec![json!({"Name": "containerInsights", "Value": "enabled"})],
            tags: tags(cfg, &prefix),
        },
    )?;
    let execution_role = t.add(
        "TaskExecutionRole",
        role(
            cfg,
            "ecs-task-execution",
            "ecs-tasks.amazonaws.com",
            vec![],
            vec![
                // GetAuthorizationToken has no resource-level permissions.
                Statement::allow(
                    "EcrLogin",
                    &["ecr:GetAuthorizationToken"],
                    vec![Expr::str("*")],
                ),
                Statement::allow(
                    "PullRuntimeImage",
                    &[
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                        "ecr:BatchCheckLayerAvailability",
                    ],
                    vec![p.repo_arn.r#ref()],
                ),
                logs_statement(&[&pipeline_logs, &filter_logs]),
            ],
        ),
    )?;
    let mut pipeline_statements = vec![
        Statement::allow(
            "ReadSources",
            &["s3:GetObject"],
            vec![bucket_objects(&p.sources)],
        ),
        Statement::allow(
            "ReadWriteArtifacts",
            &["s3:GetObject", "s3:PutObject"],
            vec![bucket_objects(&p.artifacts)],
        ),
        Statement::allow(
            "ListEvidence",
            &["s3:ListBucket"],
            vec![bucket_arn(&p.sources), bucket_arn(&p.artifacts)],
        ),
    ];
    pipeline_statements.extend(db_secret_statements(&p));
    let pipeline_role = t.add(
        "PipelineTaskRole",
        role(
            cfg,
            "pipeline",
            "ecs-tasks.amazonaws.com",
            vec![],
            pipeline_statements,
        ),
    )?;
    let mut filter_statements = vec![
        tables_statement(&p),
        bedrock_statement(cfg),
        Statement::allow(
            "PostToWebSocketClients",
            &["execute-api:ManageConnections"],
            vec![arn(
                "execute-api:${AWS::Region}:${AWS::AccountId}:*/*/POST/@connections/*",
            )],
        ),
    ];
    filter_statements.extend(db_secret_statements(&p));
    let filter_role = t.add(
        "FilterAiTaskRole",
        role(
            cfg,
            "filter-ai",
            "ecs-tasks.amazonaws.com",
            vec![],
            filter_statements,
        ),
    )?;

    let image = Expr::sub(format!(
        "${{{}}}:${{{}}}",
        p.repo_uri.id(),
        p.image_tag.id()
    ));
    let environment: Vec<KeyValue> = env
        .iter()
        .map(|(k, v)| KeyValue {
            name: k.clone(),
            value: v.clone(),
        })
        .collect();
    let task = |family: &str,
                cpu: u32,
                memory: u32,
                role: &Handle<Role>,
                container: ContainerDefinition| {
        let family = format!("{prefix}-{family}");
        TaskDefinition {
            tags: tags(cfg, &family),
            family,
            requires_compatibilities: vec!["FARGATE".into()],
            network_mode: "awsvpc".into(),
            cpu: cpu.to_string(),
            memory: memory.to_string(),
            execution_role_arn: execution_role.arn(),
            task_role_arn: role.arn(),
            runtime_platform: json!({"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}),
            container_definitions: vec![container],
        }
    };
    let container = |name: &str,
                     binary: &str,
                     logs: &Handle<LogGroup>,
                     ports: Vec<serde_json::Value>,
                     readonly: bool| {
        ContainerDefinition {
            name: name.to_owned(),
            image: image.clone(),
            entry_point: vec![binary.to_owned()],
            essential: true,
            readonly_root_filesystem: readonly,
            environment: environment.clone(),
            port_mappings: ports,
            log_configuration: json!({"LogDriver": "awslogs", "Options": {
                "awslogs-group": logs.r#ref(),
                "awslogs-region": Pseudo::Region.r#ref(),
                "awslogs-stream-prefix": name
            }}),
        }
    };
    let pipeline_task = t.add(
        "PipelineTaskDefinition",
        task(
            "pipeline",
            cfg.sizing.pipeline_cpu,
            cfg.sizing.pipeline_memory_mb,
            &pipeline_role,
            // The pipeline needs scratch space for evidence parts.
            container(
                pipeline::CONTAINER,
                PIPELINE_BINARY,
                &pipeline_logs,
                vec![],
                false,
            ),
        ),
    )?;
    let filter_task = t.add(
        "FilterAiTaskDefinition",
        task(
            "filter-ai",
            cfg.sizing.filter_ai_cpu,
            cfg.sizing.filter_ai_memory_mb,
            &filter_role,
            container(
                "filter-ai",
                FILTER_AI_BINARY,
                &filter_logs,
                vec![json!({"ContainerPort": FILTER_AI_PORT, "Protocol": "tcp"})],
                true,
            ),
        ),
    )?;

    let nlb = t.add(
        "FilterAiLoadBalancer",
        LoadBalancer {
            kind: "network".into(),
            scheme: "internal".into(),
            subnets: p.subnets.r#ref(),
            security_groups: vec![p.lb_sg.r#ref()],
            enforce_security_group_inbound_rules_on_private_link_traffic: "off".into(),
            load_balancer_attributes: vec![
                json!({"Key": "load_balancing.cross_zone.enabled", "Value": "true"}),
            ],
            tags: tags(cfg, &format!("{prefix}-filter-ai")),
        },
    )?;
    let target_group = t.add(
        "FilterAiTargetGroup",
        TargetGroup {
            target_type: "ip".into(),
            protocol: "TCP".into(),
            port: FILTER_AI_PORT,
            vpc_id: p.vpc.r#ref(),
            health_check_protocol: "HTTP".into(),
            health_check_path: FILTER_AI_HEALTH_PATH.into(),
            tags: tags(cfg, &format!("{prefix}-filter-ai")),
        },
    )?;
    let listener = t.add(
        "FilterAiListener",
        Listener {
            load_balancer_arn: nlb.r#ref(),
            protocol: "TCP".into(),
            port: FILTER_AI_PORT,
            default_actions: vec![
                json!({"Type": "forward", "TargetGroupArn": target_group.r#ref()}),
            ],
        },
    )?;
    t.add_with(
        "FilterAiService",
        Service {
            service_name: format!("{prefix}-filter-ai"),
            cluster: cluster.r#ref(),
            task_definition: filter_task.r#ref(),
            launch_type: "FARGATE".into(),
            desired_count: cfg.sizing.filter_ai_tasks,
            network_configuration: json!({"AwsvpcConfiguration": {
                "Subnets": p.subnets.r#ref(),
                "SecurityGroups": [p.task_sg.r#ref()],
                "AssignPublicIp": "DISABLED"
            }}),
            load_balancers: vec![json!({
                "ContainerName": "filter-ai",
                "ContainerPort": FILTER_AI_PORT,
                "TargetGroupArn": target_group.r#ref()
            })],
            health_check_grace_period_seconds: 60,
            deployment_configuration: json!({
                "DeploymentCircuitBreaker": {"Enable": true, "Rollback": true},
                "MinimumHealthyPercent": 100,
                "MaximumPercent": 200
            }),
            propagate_tags: "SERVICE".into(),
            tags: tags(cfg, &format!("{prefix}-filter-ai")),
        },
        Attributes::default().depends_on(&listener),
    )?;

    let pipeline_family = format!("{prefix}-pipeline");
    let sm_role = t.add(
        "PipelineStateMachineRole",
        role(
            cfg,
            "pipeline-state-machine",
            "states.amazonaws.com",
            vec![],
            vec![
                Statement::allow(
                    "RunPipelineTasks",
                    &["ecs:RunTask"],
                    vec![arn(&format!(
                        "ecs:${{AWS::Region}}:${{AWS::AccountId}}:task-definition/{pipeline_family}:*"
                    ))],
                ),
                Statement::allow(
                    "WatchPipelineTasks",
                    &["ecs:DescribeTasks", "ecs:StopTask"],
                    vec![arn(&format!("ecs:${{AWS::Region}}:${{AWS::AccountId}}:task/{prefix}/*"))],
                ),
                Statement::allow(
                    "PassTaskRoles",
                    &["iam:PassRole"],
                    vec![pipeline_role.arn(), execution_role.arn()],
                ),
                Statement::allow(
                    "SyncTaskEvents",
                    &["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                    vec![arn(
                        "events:${AWS::Region}:${AWS::AccountId}:rule/StepFunctionsGetEventsForECSTaskRule",
                    )],
                ),
                Statement::allow(
                    "PartsManifestAndFailures",
                    &["s3:GetObject", "s3:PutObject"],
                    vec![arn(&format!("s3:::${{{}}}/evidence/*", p.artifacts.id()))],
                ),
                Statement::allow("UseDataKey", &["kms:Decrypt", "kms:GenerateDataKey"], vec![p.key.r#ref()]),
            ],
        ),
    )?;
    let azs = cfg.network.az_count as usize;
    let mut substitutions = BTreeMap::from([
        ("ArtifactsBucket".to_owned(), p.artifacts.r#ref()),
        ("ClusterArn".to_owned(), cluster.arn()),
        ("TaskDefinitionArn".to_owned(), pipeline_task.r#ref()),
        ("TaskSecurityGroup".to_owned(), p.task_sg.r#ref()),
    ]);
    for i in 0..azs {
        substitutions.insert(
            format!("Subnet{i}"),
            Expr::select(i as u32, p.subnets.r#ref()),
        );
    }
    let sm = t.add(
        "PipelineStateMachine",
        StateMachine {
            state_machine_name: sm_name.clone(),
            state_machine_type: "STANDARD".into(),
            role_arn: sm_role.arn(),
            definition: pipeline::definition(azs, cfg.sizing.pipeline_max_concurrency),
            definition_substitutions: substitutions,
            tags: tags(cfg, &sm_name),
        },
    )?;

    let outputs = ComputeOutputs {
        api_function_arn: s.export("ApiFunctionArn", "chrono-api Lambda", api_fn.arn())?,
        ai_chat_function_arn: s.export("AiChatFunctionArn", "AI chat Lambda", chat_fn.arn())?,
        ws_authorizer_function_arn: s.export(
            "WsAuthorizerFunctionArn",
            "WebSocket $connect authorizer Lambda",
            authorizer_fn.arn(),
        )?,
        load_balancer_arn: s.export(
            "FilterAiLoadBalancerArn",
            "internal NLB of filter-ai",
            nlb.r#ref(),
        )?,
        load_balancer_dns: s.export(
            "FilterAiLoadBalancerDns",
            "DNS name of the internal NLB",
            nlb.dns_name(),
        )?,
    };
    s.export("PipelineStateMachineArn", "evidence pipeline", sm.r#ref())?;
    s.export("ClusterName", "ECS cluster", cluster.r#ref())?;
    Ok(ComputeStack {
        stack: s,
        outputs,
        state_machine_name: sm_name,
    })
}
