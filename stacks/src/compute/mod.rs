//! The `compute` stack: one IAM role per function/task (least privilege), the `chrono-api`
//! and AI-chat Lambdas (in the VPC, code from the assets bucket), the ECS cluster, the
//! pipeline task definition, the filter-ai Fargate service behind an internal NLB (stages
//! with the WebSocket API: not previews), the pipeline state machine, and log groups with
//! retention.
//!
//! One builder per workload, each adding its log group, its role (with its grants) and its
//! resources: `functions` (API function, chat function, WebSocket authorizer), `tasks`
//! (the ECS cluster and task execution role, the pipeline task, the filter-ai service) and
//! `state_machine`. This module holds the stack's parameters, the grants several
//! workloads share, and [`build_wired`], which only calls the builders in order.
//!
//! Every Lambda and task gets the runtime environment of the cross-team contract
//! ([`RUNTIME_ENV`]). Lambda code keys and the image tag are stack parameters the deploy
//! engine fills with content hashes (see [`crate::stack::Asset`]).

mod functions;
mod state_machine;
mod tasks;

use std::collections::BTreeMap;

use chrono_contract::{binaries, env, outputs};

use crate::bootstrap::BootstrapOutputs;
use crate::config::Config;
use crate::data::{DATABASE_NAME, DataOutputs};
use crate::model::{
    Attributes, Expr, Handle, ModelError, ParamHandle, Parameter, Policy, Template,
};
use crate::network::NetworkOutputs;
use crate::resources::compute::LogGroup;
use crate::resources::iam::{Role, Statement};
use crate::stack::{Asset, OutputRef, Stack, StackKind};
use crate::web::{Identity, WebOutputs};

/// The environment variables every Lambda and task receives.
pub const RUNTIME_ENV: [&str; 20] = env::RUNTIME;

/// Binary (and Lambda zip) of the HTTP API.
pub const API_BINARY: &str = binaries::API;
/// Binary (and Lambda zip) of the AI chat.
pub const AI_CHAT_BINARY: &str = binaries::AI_CHAT;
/// Binary (and Lambda zip) of the WebSocket API's `$connect` authorizer.
pub const WS_AUTHORIZER_BINARY: &str = binaries::WS_AUTHORIZER;
/// Entry point of the pipeline task (on `PATH` in the runtime image).
pub const PIPELINE_BINARY: &str = binaries::PIPELINE;
/// Entry point of the filter-ai service.
pub const FILTER_AI_BINARY: &str = binaries::FILTER_AI;
/// Timeout of the migration function: Lambda's maximum, 900 s
/// (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html). The runtime's
/// migration session ends statements a minute earlier (`chrono_runtime::db::MigrationSettings`),
/// so a migration that runs too long is rolled back by PostgreSQL, not cut off.
pub const MIGRATE_TIMEOUT_S: u32 = 900;
/// The binaries of the runtime image (on `PATH`; the task definitions' entry points); the
/// first is the image's default entry point.
pub const IMAGE_BINARIES: [&str; 2] = [FILTER_AI_BINARY, PIPELINE_BINARY];
/// Health check path of filter-ai (HTTP 200 when ready).
pub const FILTER_AI_HEALTH_PATH: &str = "/healthz";

/// Outputs the api stack imports.
#[derive(Debug, Clone)]
pub struct ComputeOutputs {
    /// `chrono-api` Lambda ARN.
    pub api_function_arn: OutputRef,
    /// AI-chat Lambda ARN.
    pub ai_chat_function_arn: OutputRef,
    /// What the WebSocket API needs, in stages that have it ([`Config::websocket_api`]).
    pub websocket: Option<WebSocketOutputs>,
}

/// The compute stack's outputs the WebSocket API imports.
#[derive(Debug, Clone)]
pub struct WebSocketOutputs {
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
    subnets: ParamHandle,
    /// The public subnets, for tasks that need a public address
    /// ([`Config::filter_ai_public_ip`], [`Config::pipeline_public_ip`]).
    public_subnets: Option<ParamHandle>,
    lambda_sg: ParamHandle,
    task_sg: ParamHandle,
    /// What only the WebSocket API's workloads use ([`Config::websocket_api`]).
    ws: Option<WsParams>,
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
    image_digest: ParamHandle,
}

/// The parameters of the WebSocket API's workloads: filter-ai's target group (the VPC),
/// its NLB's security group, the `$connect` authorizer's code.
struct WsParams {
    vpc: ParamHandle,
    lb_sg: ParamHandle,
    authorizer_code: ParamHandle,
}

fn params(
    cfg: &Config,
    s: &mut Stack,
    b: &BootstrapOutputs,
    n: &NetworkOutputs,
    d: &DataOutputs,
) -> Result<Params, ModelError> {
    let string = |what: &str| Parameter::string(what);
    let sg = |what: &str| Parameter::of_type("AWS::EC2::SecurityGroup::Id", what);
    let key_pattern = "^[A-Za-z0-9._/-]+\\.zip$";
    let ws = match &n.load_balancer_sg {
        Some(lb) if cfg.websocket_api() => Some(WsParams {
            vpc: s.import(
                "VpcId",
                &n.vpc_id,
                Parameter::of_type("AWS::EC2::VPC::Id", "the VPC"),
            )?,
            lb_sg: s.import(
                "LoadBalancerSecurityGroupId",
                lb,
                sg("security group of the internal NLB"),
            )?,
            authorizer_code: s.asset(
                "WsAuthorizerCodeKey",
                Asset::LambdaZip(WS_AUTHORIZER_BINARY.into()),
                string("S3 key of the chrono-ws-authorizer zip (content hash)")
                    .pattern(key_pattern),
            )?,
        }),
        _ => None,
    };
    Ok(Params {
        ws,
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
        subnets: s.import(
            "PrivateSubnetIds",
            &n.private_subnets,
            Parameter::of_type("List<AWS::EC2::Subnet::Id>", "private subnets"),
        )?,
        public_subnets: if (cfg.filter_ai_public_ip() && cfg.websocket_api())
            || cfg.pipeline_public_ip()
        {
            Some(s.import(
                "PublicSubnetIds",
                &n.public_subnets,
                Parameter::of_type(
                    "List<AWS::EC2::Subnet::Id>",
                    "public subnets (tasks with a public address, no NAT)",
                ),
            )?)
        } else {
            None
        },
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
        image_digest: s.asset(
            "ImageDigest",
            Asset::ImageDigest,
            string("digest of the runtime image in the repository (sha256:<64 hex>)")
                .pattern("^sha256:[a-f0-9]{64}$"),
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

/// `arn:…:states:…:stateMachine:<name>` of the pipeline (known before the state machine
/// exists, so the API's role and the environment can name it).
fn state_machine_arn(cfg: &Config) -> Expr {
    arn(&format!(
        "states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{}",
        state_machine_name(cfg)
    ))
}

/// The Step Functions endpoint of the preview shape: the Regional dual-stack endpoint
/// (<https://docs.aws.amazon.com/general/latest/gr/step-functions.html> lists
/// `states.<region>.api.aws` next to the IPv4-only `states.<region>.amazonaws.com`), set
/// through the SDKs' service-specific endpoint variable `AWS_ENDPOINT_URL_SFN`
/// (<https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html>), so the
/// runtime needs no setting of its own. Secrets Manager needs none: its standard endpoint
/// is dual-stack (<https://docs.aws.amazon.com/secretsmanager/latest/userguide/ip-access.html>).
pub const SFN_ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_SFN";

fn runtime_env(cfg: &Config, p: &Params, identity: &Identity) -> BTreeMap<String, Expr> {
    let sm = state_machine_arn(cfg);
    let pairs: [(&str, Expr); 20] = [
        (env::AI_PROVIDER, cfg.ai_provider().into()),
        (env::ARTIFACTS_BUCKET, p.artifacts.r#ref()),
        (env::CASES_CLAIM, cfg.auth.cases_claim.clone().into()),
        (env::CONVERSATIONS_TABLE, p.conversations.r#ref()),
        (env::CUSTOMER, cfg.customer.clone().into()),
        (env::DB_HOST, p.db_host.r#ref()),
        (env::DB_NAME, DATABASE_NAME.into()),
        (env::DB_PORT, p.db_port.r#ref()),
        (env::DB_SECRET_ARN, p.db_secret.r#ref()),
        (
            env::GUARD_MODEL_ID,
            cfg.bedrock.guard_model_id.clone().into(),
        ),
        (env::INTENT_CACHE_TABLE, p.intent_cache.r#ref()),
        (env::JWT_AUDIENCE, identity.audience.clone()),
        (env::JWT_ISSUER, identity.issuer.clone()),
        (env::LOG_FORMAT, "json".into()),
        (env::MAIN_MODEL_ID, cfg.bedrock.main_model_id.clone().into()),
        (env::PIPELINE_STATE_MACHINE_ARN, sm),
        (env::ROLES_CLAIM, cfg.auth.roles_claim.clone().into()),
        (env::SESSIONS_TABLE, p.sessions.r#ref()),
        (env::SOURCES_BUCKET, p.sources.r#ref()),
        (env::STAGE, cfg.stage.to_string().into()),
    ];
    let mut vars: BTreeMap<String, Expr> =
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    if cfg.ipv6_egress() {
        vars.insert(
            SFN_ENDPOINT_ENV.to_owned(),
            Expr::sub("https://states.${AWS::Region}.api.aws"),
        );
    }
    vars
}

/// What every workload builder reads: the config, the stack's parameters, the name
/// prefix (`chrono-<customer>-<stage>`) and the runtime environment of the contract.
struct Ctx<'a> {
    cfg: &'a Config,
    p: Params,
    prefix: String,
    env: BTreeMap<String, Expr>,
    /// The identity provider (for the `$connect` authorizer).
    identity: Identity,
}

impl Ctx<'_> {
    /// A role `service` may assume, with AWS managed policies `managed` and one inline
    /// policy of `statements`.
    fn role(
        &self,
        what: &str,
        service: &str,
        managed: Vec<Expr>,
        statements: Vec<Statement>,
    ) -> Role {
        crate::shared::service_role(self.cfg, what, service, managed, statements)
    }

    /// A log group with the config's retention, deleted with the stack.
    fn log_group(
        &self,
        t: &mut Template,
        id: &str,
        name: String,
    ) -> Result<Handle<LogGroup>, ModelError> {
        t.add_with(
            id,
            crate::shared::log_group(self.cfg, name),
            Attributes::retention(Policy::Delete),
        )
    }
}

/// Writing to the given log groups.
fn logs_statement(groups: &[&Handle<LogGroup>]) -> Statement {
    Statement::allow(
        "WriteLogs",
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        groups.iter().map(|g| g.arn()).collect(),
    )
}

/// Reading the database secret (encrypted with the data key).
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

/// The AI tables (sessions, intent cache, conversations): item reads and writes.
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

/// Invoking the configured models, nothing else: the inference profiles (and the
/// foundation models they route to, only through them) or the foundation models of the
/// config ([`crate::bedrock::invoke_grant`]).
fn bedrock_statements(cfg: &Config) -> Vec<Statement> {
    if cfg.ai_provider() != "bedrock" {
        // The deterministic translator calls no model: no grant.
        return Vec::new();
    }
    const ACTIONS: [&str; 2] = [
        "bedrock:InvokeModel",
        "bedrock:InvokeModelWithResponseStream",
    ];
    let grant = crate::bedrock::invoke_grant(&[
        cfg.bedrock.guard_model_id.as_str(),
        cfg.bedrock.main_model_id.as_str(),
    ]);
    let mut out = vec![Statement::allow(
        "InvokeConfiguredModels",
        &ACTIONS,
        grant.direct,
    )];
    if !grant.through_profiles.is_empty() {
        out.push(Statement {
            condition: grant.condition,
            ..Statement::allow(
                "InvokeModelsThroughConfiguredProfiles",
                &ACTIONS,
                grant.through_profiles,
            )
        });
    }
    out
}

/// Build the compute stack of a config (wired to its earlier stacks' outputs).
pub fn build(cfg: &Config) -> Result<ComputeStack, ModelError> {
    let bootstrap = crate::bootstrap::build(cfg)?.outputs;
    let network = crate::network::build(cfg)?.outputs;
    let web = crate::web::build_wired(cfg, &bootstrap)?.outputs;
    let data = crate::data::build_wired(cfg, &network, &web)?.outputs;
    build_wired(cfg, &bootstrap, &network, &data, &web)
}

/// Build the compute stack with its parameters wired to the given outputs.
pub fn build_wired(
    cfg: &Config,
    bootstrap: &BootstrapOutputs,
    network: &NetworkOutputs,
    data: &DataOutputs,
    web: &WebOutputs,
) -> Result<ComputeStack, ModelError> {
    let mut s = Stack::new(
        cfg,
        StackKind::Compute,
        "roles, Lambdas, ECS, state machine, log groups",
    );
    let p = params(cfg, &mut s, bootstrap, network, data)?;
    let identity = crate::web::identity(&mut s, cfg, web)?;
    let c = Ctx {
        cfg,
        env: runtime_env(cfg, &p, &identity),
        p,
        prefix: cfg.prefix(),
        identity,
    };
    let t = &mut s.template;

    let api_fn = functions::api_function(t, &c)?;
    let migrate_fn = functions::migrate_function(t, &c)?;
    let chat_fn = functions::chat_function(t, &c)?;
    let ecs = tasks::Ecs::build(t, &c)?;
    let pipeline = tasks::pipeline_task(t, &c, &ecs)?;
    // Both exist exactly when the stage has the WebSocket API ([`Config::websocket_api`]).
    let websocket = match (&ecs.filter_ai_logs, &c.p.ws) {
        (Some(logs), Some(ws)) => {
            let authorizer_fn = functions::ws_authorizer(t, &c, &ws.authorizer_code)?;
            let nlb = tasks::filter_ai_service(t, &c, &ecs, logs, &ws.vpc, &ws.lb_sg)?;
            Some((authorizer_fn, nlb))
        }
        _ => None,
    };
    let sm = state_machine::state_machine(t, &c, &ecs, &pipeline, &api_fn)?;

    let websocket = match websocket {
        Some((authorizer_fn, nlb)) => Some(WebSocketOutputs {
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
        }),
        None => None,
    };
    let outputs = ComputeOutputs {
        api_function_arn: s.export("ApiFunctionArn", "chrono-api Lambda", api_fn.arn())?,
        ai_chat_function_arn: s.export("AiChatFunctionArn", "AI chat Lambda", chat_fn.arn())?,
        websocket,
    };
    s.export(
        outputs::PIPELINE_STATE_MACHINE_ARN,
        "evidence pipeline",
        sm.r#ref(),
    )?;
    s.export(
        outputs::MIGRATE_FUNCTION_ARN,
        "database migration Lambda (chronoctl onboard)",
        migrate_fn.arn(),
    )?;
    s.export(outputs::CLUSTER_NAME, "ECS cluster", ecs.cluster.r#ref())?;
    Ok(ComputeStack {
        stack: s,
        outputs,
        state_machine_name: state_machine_name(cfg),
    })
}
