//! The pipeline state machine ([`crate::pipeline::definition`]) and its role: running and
//! watching the pipeline task, passing its roles, the ECS task-state event rule of the
//! `.sync` integration, and the parts manifest and failure marker in `artifacts`.

use std::collections::BTreeMap;

use super::tasks::{Ecs, PipelineTask};
use super::{Ctx, Expr, arn, state_machine_name};
use crate::model::{Handle, ModelError, Template};
use crate::pipeline;
use crate::resources::compute::StateMachine;
use crate::resources::iam::Statement;
use crate::stack::tags;

pub(super) fn state_machine(
    t: &mut Template,
    c: &Ctx,
    ecs: &Ecs,
    task: &PipelineTask,
) -> Result<Handle<StateMachine>, ModelError> {
    let (cfg, p, prefix) = (c.cfg, &c.p, &c.prefix);
    let name = state_machine_name(cfg);
    let pipeline_family = format!("{prefix}-pipeline");
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
                Statement::allow(
                    "WatchPipelineTasks",
                    &["ecs:DescribeTasks", "ecs:StopTask"],
                    vec![arn(&format!(
                        "ecs:${{AWS::Region}}:${{AWS::AccountId}}:task/{prefix}/*"
                    ))],
                ),
                Statement::allow(
                    "PassTaskRoles",
                    &["iam:PassRole"],
                    vec![task.role.arn(), ecs.execution_role.arn()],
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
                Statement::allow(
                    "UseDataKey",
                    &["kms:Decrypt", "kms:GenerateDataKey"],
                    vec![p.key.r#ref()],
                ),
            ],
        ),
    )?;
    let azs = cfg.network.az_count as usize;
    let mut substitutions = BTreeMap::from([
        ("ArtifactsBucket".to_owned(), p.artifacts.r#ref()),
        ("ClusterArn".to_owned(), ecs.cluster.arn()),
        ("TaskDefinitionArn".to_owned(), task.definition.r#ref()),
        ("TaskSecurityGroup".to_owned(), p.task_sg.r#ref()),
    ]);
    for i in 0..azs {
        substitutions.insert(
            format!("Subnet{i}"),
            Expr::select(i as u32, p.subnets.r#ref()),
        );
    }
    t.add(
        "PipelineStateMachine",
        StateMachine {
            state_machine_name: name.clone(),
            state_machine_type: "STANDARD".into(),
            role_arn: role.arn(),
            definition: pipeline::definition(azs, cfg.sizing.pipeline_max_concurrency),
            definition_substitutions: substitutions,
            tags: tags(cfg, &name),
        },
    )
}
