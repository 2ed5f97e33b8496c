//! The `deploy-access` template: what a customer deploys once in their own account so
//! that the operator's ops account can deploy there (issue 14, cross-account access).
//! `chronoctl synth` writes it as `templates/<customer>-<stage>/deploy-access.yaml` for each
//! config with a `deploy_role_arn`; it is not part of the manifest (chronoctl never deploys
//! it: the customer does, with their own administrator credentials).
//!
//! Why one template per config and not one generic template with parameters: the role's
//! rights name the stage's own resources (`chrono-<customer>-<stage>-*` stacks, the assets
//! bucket, lock table and repository of its bootstrap, the ECS cluster and functions the
//! hot swaps touch), and the execution role's services are those the stage's stacks use;
//! all of that is known from the config at synth time, so no parameter can widen it. Only
//! the ops principal is a parameter ([`OPS_PRINCIPAL_PARAMETER`]): it is the operator's
//! fact, given to the customer with the template, and AllowedPattern limits it to one IAM
//! account root, role or user ARN.
//!
//! Two roles:
//! * `ChronoDeployRole`, named as `deploy_role_arn` says, trusted only by the ops
//!   principal (with `sts:ExternalId` when the config sets `external_id`). It may call what
//!   chronoctl calls (the list lives next to the calls, `chrono_provisioner::aws::permissions`)
//!   on the stage's resources, and pass exactly one role, `ChronoCfnExecutionRole`, to
//!   CloudFormation (plus the compute stack's task roles to ECS, which a hot swap re-registers).
//!   It cannot create or change IAM itself.
//! * `ChronoCfnExecutionRole` (`<prefix>-cfn-execution`), trusted only by
//!   `cloudformation.amazonaws.com`: the broad rights to create the stacks' resources, every
//!   action of the services the stage's templates use, IAM only on `<prefix>-*` names.
//!   chronoctl passes it as `RoleARN` on CreateChangeSet and DeleteStack when the config
//!   sets `cfn_execution_role_arn`
//!   (<https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html>).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::json;

use crate::config::{Config, parse_role_arn};
use crate::model::{Expr, ModelError, Parameter, Resource, Template};
use crate::resources::Tags;
use crate::resources::iam::{Effect, InlinePolicy, PolicyDocument, Statement};
use crate::stack::tags;

/// File name of the template in the config's templates directory.
pub const TEMPLATE_FILE: &str = "deploy-access.yaml";
/// Logical id of the role chronoctl assumes.
pub const DEPLOY_ROLE: &str = "ChronoDeployRole";
/// Logical id of CloudFormation's execution role.
pub const EXECUTION_ROLE: &str = "ChronoCfnExecutionRole";
/// The parameter naming the ops principal the deploy role trusts.
pub const OPS_PRINCIPAL_PARAMETER: &str = "OpsPrincipalArn";
/// Session length of the deploy role: one hour, the most a chained session may last
/// (the operator's own credentials are often an SSO/assumed-role session), and chronoctl
/// renews its credentials before they expire
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html#iam-term-role-chaining>).
pub const MAX_SESSION_SECONDS: u32 = 3600;

/// `AWS::IAM::Role` with an explicit name, path and session length (the stacks' own
/// [`crate::resources::iam::Role`] lets CloudFormation name roles; these two are named
/// because chronoctl's config points at them).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct NamedRole {
    role_name: String,
    path: String,
    description: String,
    max_session_duration: u32,
    assume_role_policy_document: PolicyDocument,
    policies: Vec<InlinePolicy>,
    tags: Tags,
}

impl Resource for NamedRole {
    const TYPE: &'static str = "AWS::IAM::Role";
}

/// The CloudFormation namespaces (`EC2` of `AWS::EC2::VPC`) of the stacks' resources:
/// the services the execution role needs.
pub fn namespaces(stacks: &[crate::Stack]) -> BTreeSet<String> {
    stacks
        .iter()
        .flat_map(|s| s.template.resources().values())
        .filter_map(|r| r.kind.split("::").nth(1).map(str::to_owned))
        .collect()
}

/// Name of the execution role of a config's stage.
pub fn execution_role_name(cfg: &Config) -> String {
    format!("{}-cfn-execution", cfg.prefix())
}

/// The IAM service prefix of a CloudFormation resource namespace (`AWS::<ns>::Type`), for
/// the execution role. `None`: a namespace this table does not know yet (synth fails
/// rather than leave the execution role short of a service).
pub fn iam_prefix(namespace: &str) -> Option<&'static str> {
    Some(match namespace {
        "ApiGateway" | "ApiGatewayV2" => "apigateway",
        "ApplicationAutoScaling" => "application-autoscaling",
        "CloudFront" => "cloudfront",
        "CloudWatch" => "cloudwatch",
        "Cognito" => "cognito-idp",
        "DynamoDB" => "dynamodb",
        "EC2" => "ec2",
        "ECR" => "ecr",
        "ECS" => "ecs",
        "ElasticLoadBalancingV2" => "elasticloadbalancing",
        "Events" => "events",
        "IAM" => "iam",
        "KMS" => "kms",
        "Lambda" => "lambda",
        "Logs" => "logs",
        "RDS" => "rds",
        "S3" => "s3",
        "SecretsManager" => "secretsmanager",
        "SNS" => "sns",
        "SQS" => "sqs",
        "SSM" => "ssm",
        "StepFunctions" => "states",
        "WAFv2" => "wafv2",
        _ => return None,
    })
}

fn sub(s: String) -> Expr {
    Expr::sub(s)
}

/// The statements of the deploy role for `cfg` (intrinsics: `${AWS::Partition}`,
/// `${AWS::AccountId}`).
pub fn deploy_statements(cfg: &Config) -> Vec<Statement> {
    let p = cfg.prefix();
    let r = &cfg.region;
    let arn = |service: &str, rest: &str| {
        sub(format!(
            "arn:${{AWS::Partition}}:{service}:{r}:${{AWS::AccountId}}:{rest}"
        ))
    };
    let stacks = arn("cloudformation", &format!("stack/{p}-*/*"));
    let change_sets = arn("cloudformation", "changeSet/chronoctl-*/*");
    let assets = format!("{p}-assets-{}", cfg.account_id);
    let bucket = |b: &str| sub(format!("arn:${{AWS::Partition}}:s3:::{b}"));
    let objects = |b: &str| sub(format!("arn:${{AWS::Partition}}:s3:::{b}/*"));
    let lock_table = arn("dynamodb", &format!("table/{p}-deploy-lock"));
    let execution_role = sub(format!(
        "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{}",
        execution_role_name(cfg)
    ));
    let mut pass_execution = Statement::allow(
        "PassOnlyTheExecutionRoleToCloudFormation",
        &["iam:PassRole"],
        vec![execution_role],
    );
    pass_execution.condition =
        Some(json!({"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}));
    let mut pass_task_roles = Statement::allow(
        "PassComputeTaskRolesToEcsForHotSwaps",
        &["iam:PassRole"],
        vec![sub(format!(
            "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{p}-compute-*"
        ))],
    );
    pass_task_roles.condition =
        Some(json!({"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}));
    let mut ecs_service_role = Statement::allow(
        "EcsServiceLinkedRole",
        &["iam:CreateServiceLinkedRole"],
        vec![sub(
            "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS".to_owned(),
        )],
    );
    ecs_service_role.condition =
        Some(json!({"StringEquals": {"iam:AWSServiceName": "ecs.amazonaws.com"}}));
    vec![
        Statement::allow(
            "StageStacksAndChangeSets",
            &[
                "cloudformation:CreateChangeSet",
                "cloudformation:DescribeChangeSet",
                "cloudformation:ExecuteChangeSet",
                "cloudformation:DeleteChangeSet",
                "cloudformation:ListChangeSets",
                "cloudformation:DescribeStacks",
                "cloudformation:DescribeStackEvents",
                "cloudformation:ListStackResources",
                "cloudformation:GetTemplate",
                "cloudformation:DeleteStack",
                "cloudformation:ContinueUpdateRollback",
                "cloudformation:UpdateTerminationProtection",
                "cloudformation:DetectStackDrift",
                "cloudformation:DescribeStackResourceDrifts",
            ],
            vec![stacks, change_sets],
        ),
        // No resource-level permissions for these
        // (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html>,
        // <https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerregistry.html>,
        // <https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html>).
        Statement::allow(
            "ActionsWithoutResourceLevelPermissions",
            &[
                "cloudformation:DescribeStackDriftDetectionStatus",
                "sts:GetCallerIdentity",
                "ecr:GetAuthorizationToken",
                "ecs:DescribeTaskDefinition",
                "ecs:RegisterTaskDefinition",
                "ecs:DeregisterTaskDefinition",
            ],
            vec![Expr::str("*")],
        ),
        Statement::allow(
            "StageBucketsAssetsAppAndCleanup",
            &[
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:DeleteObjectVersion",
                "s3:ListBucket",
                "s3:ListBucketVersions",
                "s3:DeleteBucket",
            ],
            vec![
                bucket(&format!("{p}-*")),
                objects(&format!("{p}-*")),
                bucket(&assets),
                objects(&assets),
            ],
        ),
        Statement::allow(
            "DeployLockTable",
            &[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ],
            vec![lock_table],
        ),
        Statement::allow(
            "DeleteRetainedStageTables",
            &["dynamodb:DeleteTable", "dynamodb:DescribeTable"],
            vec![arn("dynamodb", &format!("table/{p}-*"))],
        ),
        Statement::allow(
            "RuntimeImagePush",
            &[
                "ecr:DescribeRepositories",
                "ecr:DescribeImages",
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
            ],
            vec![arn("ecr", &format!("repository/{p}-*"))],
        ),
        Statement::allow(
            "HotSwapAndMigrateFunctions",
            &[
                "lambda:GetFunction",
                "lambda:UpdateFunctionCode",
                "lambda:InvokeFunction",
            ],
            vec![arn("lambda", &format!("function:{p}-*"))],
        ),
        Statement::allow(
            "HotSwapServices",
            &["ecs:DescribeServices", "ecs:UpdateService"],
            vec![arn("ecs", &format!("service/{p}/*"))],
        ),
        Statement::allow(
            "HotSwapStateMachines",
            &["states:DescribeStateMachine", "states:UpdateStateMachine"],
            vec![arn("states", &format!("stateMachine:{p}-*"))],
        ),
        Statement::allow(
            "InvalidateTheWebApp",
            &["cloudfront:CreateInvalidation"],
            vec![sub(
                "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*".to_owned(),
            )],
        ),
        pass_execution,
        pass_task_roles,
        ecs_service_role,
    ]
}

/// The statements of the execution role: every action of each service `namespaces`
/// (CloudFormation namespaces of the stage's resource types) maps to, IAM only on the
/// stage's own role and policy names.
pub fn execution_statements(
    cfg: &Config,
    namespaces: &BTreeSet<String>,
) -> Result<Vec<Statement>, ModelError> {
    let mut services = BTreeSet::new();
    for ns in namespaces {
        let prefix = iam_prefix(ns).ok_or_else(|| ModelError::Serialize {
            id: EXECUTION_ROLE.to_owned(),
            reason: format!(
                "resource namespace AWS::{ns} has no IAM service in deploy_access::iam_prefix"
            ),
        })?;
        if prefix != "iam" {
            services.insert(format!("{prefix}:*"));
        }
    }
    let services: Vec<&str> = services.iter().map(String::as_str).collect();
    let p = cfg.prefix();
    let slr = Statement::allow(
        "ServiceLinkedRoles",
        &["iam:CreateServiceLinkedRole"],
        vec![sub(
            "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/*".to_owned(),
        )],
    );
    Ok(vec![
        Statement::allow("StageServices", &services, vec![Expr::str("*")]),
        Statement::allow(
            "StageRolesOnly",
            &["iam:*"],
            vec![
                sub(format!(
                    "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{p}-*"
                )),
                sub(format!(
                    "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/{p}-*"
                )),
            ],
        ),
        slr,
    ])
}

/// The trust statement of the deploy role: the ops principal only, with the external id
/// when the config sets one.
fn trust(cfg: &Config) -> Statement {
    Statement {
        sid: "OpsAccountOnly".into(),
        effect: Effect::Allow,
        principal: Some(json!({"AWS": {"Ref": OPS_PRINCIPAL_PARAMETER}})),
        action: vec!["sts:AssumeRole".into()],
        resource: Vec::new(),
        condition: cfg
            .external_id
            .as_ref()
            .map(|id| json!({"StringEquals": {"sts:ExternalId": id}})),
    }
}

/// The template for `cfg`, or `None` when the config names no `deploy_role_arn`.
/// `namespaces`: the CloudFormation namespaces of the stage's resources.
pub fn build(cfg: &Config, namespaces: &BTreeSet<String>) -> Result<Option<Template>, ModelError> {
    let Some((_, name)) = cfg.deploy_role_arn.as_deref().and_then(parse_role_arn) else {
        return Ok(None);
    };
    let (path, role_name) = match name.rsplit_once('/') {
        Some((dirs, n)) => (format!("/{dirs}/"), n.to_owned()),
        None => ("/".to_owned(), name.to_owned()),
    };
    let mut t = Template::new(format!(
        "ChronoTracer deploy access for {}: the role the operator's ops account assumes to deploy this stage, and CloudFormation's execution role. Deploy once in account {} with your own administrator; generated by chronoctl, do not edit",
        cfg.prefix(),
        cfg.account_id
    ));
    let mut ops = Parameter::string(
        "ARN of the operator's ops account principal allowed to assume the deploy role (arn:aws:iam::<ops account>:root or a role in it), given to you with this template",
    );
    ops.allowed_pattern = Some(
        r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:(root|role/[\w+=,.@/-]+|user/[\w+=,.@/-]+)$"
            .to_owned(),
    );
    t.parameter(OPS_PRINCIPAL_PARAMETER, ops)?;
    let exec_name = execution_role_name(cfg);
    let exec = t.add(
        EXECUTION_ROLE,
        NamedRole {
            role_name: exec_name.clone(),
            path: "/".into(),
            description: format!(
                "CloudFormation creates and deletes the resources of {} stacks with this role",
                cfg.prefix()
            ),
            max_session_duration: MAX_SESSION_SECONDS,
            assume_role_policy_document: PolicyDocument::new(vec![Statement::assume_role(
                "cloudformation.amazonaws.com",
            )]),
            policies: vec![InlinePolicy {
                policy_name: "stage-resources".into(),
                policy_document: PolicyDocument::new(execution_statements(cfg, namespaces)?),
            }],
            tags: tags(cfg, &exec_name),
        },
    )?;
    let deploy = t.add(
        DEPLOY_ROLE,
        NamedRole {
            role_name: role_name.clone(),
            path,
            description: format!(
                "chronoctl deploys {} from the ops account with this role",
                cfg.prefix()
            ),
            max_session_duration: MAX_SESSION_SECONDS,
            assume_role_policy_document: PolicyDocument::new(vec![trust(cfg)]),
            policies: vec![InlinePolicy {
                policy_name: "chronoctl".into(),
                policy_document: PolicyDocument::new(deploy_statements(cfg)),
            }],
            tags: tags(cfg, &role_name),
        },
    )?;
    t.output(
        "DeployRoleArn",
        "deploy_role_arn of the config",
        deploy.get_att("Arn"),
    )?;
    t.output(
        "CfnExecutionRoleArn",
        "cfn_execution_role_arn of the config",
        exec.get_att("Arn"),
    )?;
    Ok(Some(t))
}
