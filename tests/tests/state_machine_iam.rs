//! The pipeline state machine's role allows every call its definition makes, checked
//! against AWS's documented requirements because the local emulator cannot: moto's Step
//! Functions interpreter calls services with fixed credentials (`ak`/`sk`), so no policy of
//! the role is ever evaluated there (moto 5.2.5, `stepfunctions/parser/asl/utils/
//! boto_client.py`).
//!
//! The compute template is resolved as CloudFormation would (parameters, physical ids),
//! the definition's placeholders filled from its `DefinitionSubstitutions`, and every state
//! turned into the requests Step Functions makes for it:
//!
//! * `ecs:runTask.sync` — `ecs:RunTask` on the task definition, `ecs:TagResource` on the new
//!   task with `ecs:CreateAction = RunTask` when `PropagateTags` is set (tag-on-create,
//!   <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html>),
//!   `ecs:DescribeTasks`/`ecs:StopTask` on it, `iam:PassRole` of the task's roles to ECS, and
//!   the `StepFunctionsGetEventsForECSTaskRule` rule
//!   (<https://docs.aws.amazon.com/step-functions/latest/dg/ecs-iam.html>);
//! * `lambda:invoke` — `lambda:InvokeFunction` on the function;
//! * a Distributed Map — `states:StartExecution` on the state machine itself,
//!   `states:DescribeExecution`/`states:StopExecution` on its child executions, the item
//!   reader's `s3:GetObject` and the result writer's `s3:PutObject` (multipart included),
//!   with the bucket's KMS key (<https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html>).

use std::collections::BTreeMap;

use chrono_stacks::StackKind;
use chrono_stacks::config::Config;
use chrono_stacks::pipeline;
use chrono_stacks::synth::build_stacks;
use chrono_tests::iam::{Request, Values, allows, resolve, role_statements};
use serde_json::Value;

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "111122223333";
const EVIDENCE: &str = "0190f3a2-0000-7000-8000-000000000001";

fn config(name: &str) -> Config {
    let path = format!("{}/../customers/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    Config::load(std::path::Path::new(&path)).unwrap()
}

struct Deployed {
    template: Value,
    values: Values,
    prefix: String,
    state_machine: String,
}

/// The compute stack of `cfg` with a value for every parameter and resource it names.
fn deployed(cfg: &Config) -> Deployed {
    let stack = build_stacks(cfg)
        .unwrap()
        .into_iter()
        .find(|s| s.kind == StackKind::Compute)
        .unwrap();
    let template = stack.template.to_json();
    let prefix = cfg.prefix();
    let mut values = Values::new(REGION, ACCOUNT);
    for (name, p) in template["Parameters"].as_object().unwrap() {
        let value: Value = match (name.as_str(), p["Type"].as_str().unwrap()) {
            (_, "List<AWS::EC2::Subnet::Id>") => {
                serde_json::json!(["subnet-0a", "subnet-0b", "subnet-0c"])
            }
            ("DataKeyArn", _) => format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/1111-2222").into(),
            ("ArtifactsBucketName", _) => format!("{prefix}-artifacts").into(),
            (other, _) => format!("value-of-{other}").into(),
        };
        values.set(name, value);
    }
    let arn = |service: &str, rest: &str| format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}");
    for (id, r) in template["Resources"].as_object().unwrap() {
        let (reference, arn_att) = match r["Type"].as_str().unwrap() {
            "AWS::IAM::Role" => (
                format!("{id}-X1"),
                format!("arn:aws:iam::{ACCOUNT}:role/{id}-X1"),
            ),
            "AWS::ECS::Cluster" => (prefix.clone(), arn("ecs", &format!("cluster/{prefix}"))),
            "AWS::ECS::TaskDefinition" => {
                let family = r["Properties"]["Family"].as_str().unwrap();
                let a = arn("ecs", &format!("task-definition/{family}:7"));
                (a.clone(), a)
            }
            "AWS::Lambda::Function" => {
                let name = r["Properties"]["FunctionName"].as_str().unwrap();
                (name.to_owned(), arn("lambda", &format!("function:{name}")))
            }
            "AWS::StepFunctions::StateMachine" => {
                let name = r["Properties"]["StateMachineName"].as_str().unwrap();
                let a = arn("states", &format!("stateMachine:{name}"));
                (a.clone(), a)
            }
            _ => (
                format!("{id}-physical"),
                arn("x", &format!("{id}-physical")),
            ),
        };
        values.set(id, reference);
        values.set(&format!("{id}.Arn"), arn_att);
    }
    Deployed {
        template,
        values,
        prefix,
        state_machine: chrono_stacks::compute::state_machine_name(cfg),
    }
}

/// The definition as deployed: placeholders filled from the resolved substitutions.
fn definition(d: &Deployed) -> Value {
    let sm = &d.template["Resources"]["PipelineStateMachine"]["Properties"];
    let subs = resolve(&sm["DefinitionSubstitutions"], &d.values).unwrap();
    let subs: BTreeMap<String, String> = subs
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    serde_json::from_str(&pipeline::render(&sm["Definition"], &subs).unwrap()).unwrap()
}

/// `States.Format('evidence/{}/parts.json', $.evidence_id)` for one evidence.
fn key_of(format: &str) -> String {
    let inner = format
        .strip_prefix("States.Format('")
        .and_then(|s| s.strip_suffix("', $.evidence_id)"))
        .unwrap_or_else(|| panic!("unexpected key expression {format}"));
    inner.replace("{}", EVIDENCE)
}

/// Every request the definition's states make, with the state that makes it.
fn requests(
    d: &Deployed,
    states: &serde_json::Map<String, Value>,
    out: &mut Vec<(String, Request)>,
) {
    let task_arn = |cluster_arn: &str| {
        let cluster = cluster_arn.rsplit('/').next().unwrap();
        format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/0123456789abcdef")
    };
    let data_key = d.values_get("DataKeyArn");
    for (name, s) in states {
        let p = &s["Parameters"];
        match s["Resource"].as_str() {
            Some("arn:aws:states:::ecs:runTask.sync") => {
                let td = p["TaskDefinition"].as_str().unwrap();
                let task = task_arn(p["Cluster"].as_str().unwrap());
                out.push((name.clone(), Request::new("ecs:RunTask", td)));
                if p.get("PropagateTags").is_some() {
                    out.push((
                        name.clone(),
                        Request::new("ecs:TagResource", &task).with("ecs:CreateAction", "RunTask"),
                    ));
                }
                for action in ["ecs:DescribeTasks", "ecs:StopTask"] {
                    out.push((name.clone(), Request::new(action, &task)));
                }
                // The task definition's roles are passed to ECS.
                let (_, def) = d.template["Resources"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .find(|(id, _)| d.values_get(id) == td)
                    .expect("the task definition of the state");
                for role in ["TaskRoleArn", "ExecutionRoleArn"] {
                    let arn = resolve(&def["Properties"][role], &d.values).unwrap();
                    out.push((
                        name.clone(),
                        Request::new("iam:PassRole", arn.as_str().unwrap())
                            .with("iam:PassedToService", "ecs-tasks.amazonaws.com"),
                    ));
                }
                for action in ["events:PutTargets", "events:PutRule", "events:DescribeRule"] {
                    out.push((
                        name.clone(),
                        Request::new(
                            action,
                            format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForECSTaskRule"),
                        ),
                    ));
                }
            }
            Some("arn:aws:states:::lambda:invoke") => out.push((
                name.clone(),
                Request::new("lambda:InvokeFunction", p["FunctionName"].as_str().unwrap()),
            )),
            Some(other) if other.starts_with("arn:aws:states:::") => {
                panic!("{name}: no IAM requirements modelled for {other}; add them here")
            }
            _ => {}
        }
        if s["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED" {
            let sm = &d.state_machine;
            out.push((
                name.clone(),
                Request::new(
                    "states:StartExecution",
                    format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{sm}"),
                ),
            ));
            let label = s["Label"].as_str().unwrap_or("map");
            for action in ["states:DescribeExecution", "states:StopExecution"] {
                out.push((
                    name.clone(),
                    Request::new(
                        action,
                        format!(
                            "arn:aws:states:{REGION}:{ACCOUNT}:execution:{sm}/{label}:0b6c-child"
                        ),
                    ),
                ));
            }
            let reader = &s["ItemReader"]["Parameters"];
            let object = format!(
                "arn:aws:s3:::{}/{}",
                reader["Bucket"].as_str().unwrap(),
                key_of(reader["Key.$"].as_str().unwrap())
            );
            out.push((name.clone(), Request::new("s3:GetObject", object)));
            out.push((name.clone(), Request::new("kms:Decrypt", &data_key)));
            let writer = &s["ResultWriter"]["Parameters"];
            let results = format!(
                "arn:aws:s3:::{}/{}/manifest.json",
                writer["Bucket"].as_str().unwrap(),
                key_of(writer["Prefix.$"].as_str().unwrap())
            );
            for action in [
                "s3:PutObject",
                "s3:ListMultipartUploadParts",
                "s3:AbortMultipartUpload",
            ] {
                out.push((name.clone(), Request::new(action, &results)));
            }
            out.push((name.clone(), Request::new("kms:GenerateDataKey", &data_key)));
            requests(d, s["ItemProcessor"]["States"].as_object().unwrap(), out);
        }
    }
}

impl Deployed {
    fn values_get(&self, name: &str) -> String {
        resolve(&serde_json::json!({"Ref": name}), &self.values)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The requests the role does not allow, and the actions of all requests derived.
fn missing(cfg: &Config) -> (Vec<String>, Vec<String>) {
    let d = deployed(cfg);
    let def = definition(&d);
    let mut reqs = Vec::new();
    requests(&d, def["States"].as_object().unwrap(), &mut reqs);
    let policy = role_statements(&d.template, "PipelineStateMachineRole", &d.values).unwrap();
    let missing = reqs
        .iter()
        .filter(|(_, r)| !allows(&policy, r).unwrap())
        .map(|(state, r)| format!("{state}: {} on {} {:?}", r.action, r.resource, r.context))
        .collect();
    let mut actions: Vec<String> = reqs.iter().map(|(_, r)| r.action.clone()).collect();
    actions.sort();
    actions.dedup();
    (missing, actions)
}

/// Regression (defect 3): RunTask with `PropagateTags` needs `ecs:TagResource` with
/// `ecs:CreateAction = RunTask`; without it every pipeline task launch is denied.
#[test]
fn state_machine_role_allows_launching_tagged_pipeline_tasks() {
    let (missing, _) = missing(&config("acme-prod"));
    let tag: Vec<&String> = missing
        .iter()
        .filter(|m| m.contains("TagResource"))
        .collect();
    assert!(tag.is_empty(), "{tag:#?}");
}

#[test]
fn state_machine_role_allows_every_call_of_the_definition_in_every_config() {
    for name in ["acme-prod", "acme-staging", "demo-local", "initech-staging"] {
        let (missing, actions) = missing(&config(name));
        // The derivation saw every kind of state: ECS tasks, Lambda, the Distributed Map.
        for action in [
            "ecs:RunTask",
            "ecs:TagResource",
            "iam:PassRole",
            "lambda:InvokeFunction",
            "states:StartExecution",
            "s3:GetObject",
            "s3:PutObject",
        ] {
            assert!(actions.iter().any(|a| a == action), "{name}: no {action}");
        }
        assert!(
            missing.is_empty(),
            "{name}: the role does not allow {missing:#?}"
        );
    }
}

/// Least privilege: tagging is allowed only as part of RunTask, passing roles only to ECS,
/// and only the pipeline's own tasks and executions.
#[test]
fn state_machine_role_allows_nothing_beyond_the_pipeline() {
    let cfg = config("acme-prod");
    let d = deployed(&cfg);
    let policy = role_statements(&d.template, "PipelineStateMachineRole", &d.values).unwrap();
    let prefix = &d.prefix;
    let task = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{prefix}/abc");
    let refused = [
        Request::new("ecs:TagResource", &task),
        Request::new("ecs:TagResource", &task).with("ecs:CreateAction", "CreateService"),
        Request::new(
            "ecs:RunTask",
            format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{prefix}-filter-ai:3"),
        ),
        Request::new(
            "ecs:StopTask",
            format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/other-cluster/abc"),
        ),
        Request::new("iam:PassRole", d.values_get("PipelineTaskRole.Arn"))
            .with("iam:PassedToService", "lambda.amazonaws.com"),
        Request::new("iam:PassRole", d.values_get("FilterAiTaskRole.Arn"))
            .with("iam:PassedToService", "ecs-tasks.amazonaws.com"),
        Request::new(
            "states:StartExecution",
            format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:another"),
        ),
        Request::new("lambda:InvokeFunction", d.values_get("AiChatFunction.Arn")),
        Request::new(
            "s3:GetObject",
            format!("arn:aws:s3:::{prefix}-artifacts/other/x"),
        ),
    ];
    for r in refused {
        assert!(!allows(&policy, &r).unwrap(), "allowed: {r:?}");
    }
}
