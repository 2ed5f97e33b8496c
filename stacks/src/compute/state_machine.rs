//! The pipeline state machine ([`crate::pipeline::definition`]) and its role: running,
//! tagging and watching the pipeline task, passing its roles, the ECS task-state event rule
//! of the `.sync` integration, the Distributed Map's child executions, its item reader and
//! result writer in `artifacts`, and invoking the API function for `FailEvidence`.

use std::collections::BTreeMap;

use chrono_contract::pipeline as contract;
use serde_json::json;

use super::tasks::{Ecs, PipelineTask};
use super::{Ctx, Expr, arn, state_machine_name};
use crate::model::{Handle, ModelError, Template};
use crate::pipeline;
use crate::resources::compute::{Function, StateMachine};
use crate::resources::iam::Statement;
use crate::stack::tags;

/// The pipeline state machine; `fail_function` is the API function, which `FailEvidence`
/// invokes.
pub(super) fn state_machine(
    t: &mut Template,
    c: &Ctx,
    ecs: &Ecs,
    task: &PipelineTask,
    fail_function: &Handle<Function>,
) -> Result<Handle<StateMachine>, ModelError> {
    let (cfg, p, prefix) = (c.cfg, &c.p, &c.prefix);
    let name = state_machine_name(cfg);
    let pipeline_family = format!("{prefix}-pipeline");
    let evidence_objects = arn(&format!(
        "s3:::${{{}}}/{}*",
        p.artifacts.id(),
        contract::EVIDENCE_PREFIX
    ));
    let mut tag_on_run = Statement::allow(
        "TagPipelineTasksAtLaunch",
        &["ecs:TagResource"],
        vec![arn(&format!(
            "ecs:${{AWS::Region}}:${{AWS::AccountId}}:task/{prefix}/*"
        ))],
    );
    // RunTask with PropagateTags tags the task it creates, which is authorized as
    // ecs:TagResource with ecs:CreateAction = RunTask:
    // https://docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html
    tag_on_run.condition = Some(json!({"StringEquals": {"ecs:CreateAction": "RunTask"}}));
    let mut pass_roles = Statement::allow(
        "PassTaskRoles",
        &["iam:PassRole"],
        vec![task.role.arn(), ecs.execution_role.arn()],
    );
    pass_roles.condition =
        Some(json!({"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}));
    let role = t.add(
        "PipelineStateMachineRole",
        c.role(
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
                tag_on_run,
                Statement::allow(
                    "WatchPipelineTasks",
                    &["ecs:DescribeTasks", "ecs:StopTask"],
                    vec![arn(&format!(
                        "ecs:${{AWS::Region}}:${{AWS::AccountId}}:task/{prefix}/*"
                    ))],
                ),
                pass_roles,
                Statement::allow(
                    "SyncTaskEvents",
                    &["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                    vec![arn(
                        "events:${AWS::Region}:${AWS::AccountId}:rule/StepFunctionsGetEventsForECSTaskRule",
                    )],
                ),
                // The Distributed Map runs each part as a child execution of this state
                // machine: https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html
                Statement::allow(
                    "RunPartExecutions",
                    &["states:StartExecution"],
                    vec![super::state_machine_arn(cfg)],
                ),
                Statement::allow(
                    "WatchPartExecutions",
                    &["states:DescribeExecution", "states:StopExecution"],
                    vec![
                        arn(&format!(
                            "states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{name}:*"
                        )),
                        arn(&format!(
                            "states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{name}/*"
                        )),
                    ],
                ),
                // ItemReader (parts.json) and ResultWriter (map-results/), multipart included.
                Statement::allow(
                    "PartsManifestAndResults",
                    &[
                        "s3:GetObject",
                        "s3:PutObject",
                        "s3:ListMultipartUploadParts",
                        "s3:AbortMultipartUpload",
                    ],
                    vec![evidence_objects],
                ),
                Statement::allow(
                    "UseDataKey",
                    &["kms:Decrypt", "kms:GenerateDataKey"],
                    vec![p.key.r#ref()],
                ),
                Statement::allow(
                    "FailEvidence",
                    &["lambda:InvokeFunction"],
                    vec![fail_function.arn()],
                ),
            ],
        ),
    )?;
    let azs = cfg.network.az_count as usize;
    let mut substitutions = BTreeMap::from([
        ("ArtifactsBucket".to_owned(), p.artifacts.r#ref()),
        ("ClusterArn".to_owned(), ecs.cluster.arn()),
        ("FailFunctionArn".to_owned(), fail_function.arn()),
        ("TaskDefinitionArn".to_owned(), task.definition.r#ref()),
        ("TaskSecurityGroup".to_owned(), p.task_sg.r#ref()),
    ]);
    // The public subnets when the tasks need a public address ([`Config::pipeline_public_ip`]).
    let subnets = match &p.public_subnets {
        Some(public) if cfg.pipeline_public_ip() => public,
        _ => &p.subnets,
    };
    for i in 0..azs {
        substitutions.insert(
            format!("Subnet{i}"),
            Expr::select(i as u32, subnets.r#ref()),
        );
    }
    t.add(
        "PipelineStateMachine",
        StateMachine {
            state_machine_name: name.clone(),
            state_machine_type: "STANDARD".into(),
            role_arn: role.arn(),
            definition: pipeline::definition(&pipeline::Shape::of(cfg)),
            definition_substitutions: substitutions,
            tags: tags(cfg, &name),
        },
    )
}
