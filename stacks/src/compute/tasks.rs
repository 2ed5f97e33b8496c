//! The ECS workloads: the cluster and the task execution role they share, the pipeline
//! task (run by the state machine) and the filter-ai service behind its internal NLB.
//! Each task builder adds its task role with the grants of its binary and its task
//! definition.

use chrono_contract::env;
use serde_json::json;

use super::{
    Ctx, Expr, FILTER_AI_BINARY, FILTER_AI_HEALTH_PATH, PIPELINE_BINARY, bedrock_statements,
    bucket_arn, bucket_objects, db_secret_statements, logs_statement, tables_statement,
};
use crate::model::{Attributes, Handle, ModelError, ParamHandle, Pseudo, Template};
use crate::network::FILTER_AI_PORT;
use crate::pipeline;
use crate::resources::compute::{
    Cluster, ContainerDefinition, KeyValue, Listener, LoadBalancer, LogGroup, Service, TargetGroup,
    TaskDefinition,
};
use crate::resources::iam::{Role, Statement};
use crate::stack::tags;

/// What the ECS workloads share: the cluster, the execution role (pulls the image and
/// writes the containers' logs for every task), and the log groups of the tasks (created
/// here because the execution role's grant names them).
pub(super) struct Ecs {
    pub(super) cluster: Handle<Cluster>,
    pub(super) execution_role: Handle<Role>,
    pipeline_logs: Handle<LogGroup>,
    /// With the WebSocket API only ([`crate::config::Config::websocket_api`]).
    pub(super) filter_ai_logs: Option<Handle<LogGroup>>,
}

impl Ecs {
    pub(super) fn build(t: &mut Template, c: &Ctx) -> Result<Self, ModelError> {
        let prefix = &c.prefix;
        let pipeline_logs =
            c.log_group(t, "PipelineLogGroup", format!("/ecs/{prefix}/pipeline"))?;
        let filter_ai_logs = if c.cfg.websocket_api() {
            Some(c.log_group(t, "FilterAiLogGroup", format!("/ecs/{prefix}/filter-ai"))?)
        } else {
            None
        };
        let task_logs: Vec<&Handle<LogGroup>> = std::iter::once(&pipeline_logs)
            .chain(&filter_ai_logs)
            .collect();
        let cluster = t.add(
            "Cluster",
            Cluster {
                cluster_name: prefix.clone(),
                cluster_settings: vec![json!({"Name": "containerInsights", "Value": "enabled"})],
                tags: tags(c.cfg, prefix),
            },
        )?;
        let execution_role = t.add(
            "TaskExecutionRole",
            c.role(
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
                        vec![c.p.repo_arn.r#ref()],
                    ),
                    logs_statement(&task_logs),
                ],
            ),
        )?;
        Ok(Self {
            cluster,
            execution_role,
            pipeline_logs,
            filter_ai_logs,
        })
    }

    /// A Fargate task definition `<prefix>-<family>` of one container, on the config's
    /// architecture.
    fn task(
        &self,
        c: &Ctx,
        family: &str,
        cpu: u32,
        memory: u32,
        role: &Handle<Role>,
        container: ContainerDefinition,
    ) -> TaskDefinition {
        let family = format!("{}-{family}", c.prefix);
        TaskDefinition {
            tags: tags(c.cfg, &family),
            family,
            requires_compatibilities: vec!["FARGATE".into()],
            network_mode: "awsvpc".into(),
            cpu: cpu.to_string(),
            memory: memory.to_string(),
            execution_role_arn: self.execution_role.arn(),
            task_role_arn: role.arn(),
            runtime_platform: json!({
                "CpuArchitecture": c.cfg.architecture.ecs_cpu_architecture(),
                "OperatingSystemFamily": "LINUX"
            }),
            container_definitions: vec![container],
        }
    }
}

/// The runtime image's container running `binary`, with the contract's environment and
/// its logs in `logs`. The image is referenced by digest (`<repository>@sha256:…`), never
/// by a mutable tag.
fn container(
    c: &Ctx,
    name: &str,
    binary: &str,
    logs: &Handle<LogGroup>,
    ports: Vec<serde_json::Value>,
    readonly_root_filesystem: bool,
) -> ContainerDefinition {
    ContainerDefinition {
        name: name.to_owned(),
        image: Expr::sub(format!(
            "${{{}}}@${{{}}}",
            c.p.repo_uri.id(),
            c.p.image_digest.id()
        )),
        entry_point: vec![binary.to_owned()],
        essential: true,
        readonly_root_filesystem,
        environment: c
            .env
            .iter()
            .map(|(k, v)| KeyValue {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
        port_mappings: ports,
        log_configuration: json!({"LogDriver": "awslogs", "Options": {
            "awslogs-group": logs.r#ref(),
            "awslogs-region": Pseudo::Region.r#ref(),
            "awslogs-stream-prefix": name
        }}),
    }
}

/// The pipeline task as the state machine needs it: its definition (run) and its role
/// (passed).
pub(super) struct PipelineTask {
    pub(super) role: Handle<Role>,
    pub(super) definition: Handle<TaskDefinition>,
}

/// `chrono-pipeline`: reads `sources`, reads and writes `artifacts`, lists both, the
/// database secret.
pub(super) fn pipeline_task(
    t: &mut Template,
    c: &Ctx,
    ecs: &Ecs,
) -> Result<PipelineTask, ModelError> {
    let mut statements = vec![
        Statement::allow(
            "ReadSources",
            &["s3:GetObject"],
            vec![bucket_objects(&c.p.sources)],
        ),
        Statement::allow(
            "ReadWriteArtifacts",
            &["s3:GetObject", "s3:PutObject"],
            vec![bucket_objects(&c.p.artifacts)],
        ),
        Statement::allow(
            "ListEvidence",
            &["s3:ListBucket"],
            vec![bucket_arn(&c.p.sources), bucket_arn(&c.p.artifacts)],
        ),
    ];
    statements.extend(db_secret_statements(&c.p));
    let role = t.add(
        "PipelineTaskRole",
        c.role("pipeline", "ecs-tasks.amazonaws.com", vec![], statements),
    )?;
    let definition = t.add(
        "PipelineTaskDefinition",
        ecs.task(
            c,
            "pipeline",
            c.cfg.sizing.pipeline_cpu,
            c.cfg.sizing.pipeline_memory_mb,
            &role,
            // The pipeline needs scratch space for evidence parts.
            container(
                c,
                pipeline::CONTAINER,
                PIPELINE_BINARY,
                &ecs.pipeline_logs,
                vec![],
                false,
            ),
        ),
    )?;
    Ok(PipelineTask { role, definition })
}

/// `chrono-filter-ai`: the AI tables, the configured models, pushing replies to WebSocket
/// clients, the database secret; a Fargate service behind an internal NLB (the WebSocket
/// API's VPC link targets it). Returns the NLB. Only in stages with the WebSocket API
/// ([`crate::config::Config::websocket_api`]).
pub(super) fn filter_ai_service(
    t: &mut Template,
    c: &Ctx,
    ecs: &Ecs,
    logs: &Handle<LogGroup>,
    vpc: &ParamHandle,
    lb_sg: &ParamHandle,
) -> Result<Handle<LoadBalancer>, ModelError> {
    let prefix = &c.prefix;
    let mut statements = vec![
        tables_statement(&c.p),
        Statement::allow(
            "PostToWebSocketClients",
            &["execute-api:ManageConnections"],
            vec![super::arn(
                "execute-api:${AWS::Region}:${AWS::AccountId}:*/*/POST/@connections/*",
            )],
        ),
    ];
    statements.extend(bedrock_statements(c.cfg));
    statements.extend(db_secret_statements(&c.p));
    let role = t.add(
        "FilterAiTaskRole",
        c.role("filter-ai", "ecs-tasks.amazonaws.com", vec![], statements),
    )?;
    let mut filter_ai = container(
        c,
        "filter-ai",
        FILTER_AI_BINARY,
        logs,
        vec![json!({"ContainerPort": FILTER_AI_PORT, "Protocol": "tcp"})],
        true,
    );
    // The gateway path verifies the token API Gateway maps from the `$connect` authorizer
    // (`chrono_runtime::ai::gateway`): the identity provider's key set, reached over HTTPS
    // through the NAT or the task's public address like the management API.
    filter_ai.environment.extend([
        KeyValue {
            name: env::JWKS_URL.to_owned(),
            value: c.identity.jwks_url.clone(),
        },
        KeyValue {
            name: env::WS_GATEWAY.to_owned(),
            value: "on".into(),
        },
    ]);
    let task = t.add(
        "FilterAiTaskDefinition",
        ecs.task(
            c,
            "filter-ai",
            c.cfg.sizing.filter_ai_cpu,
            c.cfg.sizing.filter_ai_memory_mb,
            &role,
            filter_ai,
        ),
    )?;

    let nlb = t.add(
        "FilterAiLoadBalancer",
        LoadBalancer {
            kind: "network".into(),
            scheme: "internal".into(),
            subnets: c.p.subnets.r#ref(),
            security_groups: vec![lb_sg.r#ref()],
            enforce_security_group_inbound_rules_on_private_link_traffic: "off".into(),
            load_balancer_attributes: vec![
                json!({"Key": "load_balancing.cross_zone.enabled", "Value": "true"}),
            ],
            tags: tags(c.cfg, &format!("{prefix}-filter-ai")),
        },
    )?;
    let target_group = t.add(
        "FilterAiTargetGroup",
        TargetGroup {
            target_type: "ip".into(),
            protocol: "TCP".into(),
            port: FILTER_AI_PORT,
            vpc_id: vpc.r#ref(),
            health_check_protocol: "HTTP".into(),
            health_check_path: FILTER_AI_HEALTH_PATH.into(),
            tags: tags(c.cfg, &format!("{prefix}-filter-ai")),
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
            cluster: ecs.cluster.r#ref(),
            task_definition: task.r#ref(),
            launch_type: "FARGATE".into(),
            desired_count: c.cfg.sizing.filter_ai_tasks,
            // Without NAT, a public address in a public subnet is filter-ai's way to the
            // API Gateway management API ([`crate::config::Config::filter_ai_public_ip`]).
            network_configuration: match &c.p.public_subnets {
                Some(public) => json!({"AwsvpcConfiguration": {
                    "Subnets": public.r#ref(),
                    "SecurityGroups": [c.p.task_sg.r#ref()],
                    "AssignPublicIp": "ENABLED"
                }}),
                None => json!({"AwsvpcConfiguration": {
                    "Subnets": c.p.subnets.r#ref(),
                    "SecurityGroups": [c.p.task_sg.r#ref()],
                    "AssignPublicIp": "DISABLED"
                }}),
            },
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
            tags: tags(c.cfg, &format!("{prefix}-filter-ai")),
        },
        Attributes::default().depends_on(&listener),
    )?;
    Ok(nlb)
}
