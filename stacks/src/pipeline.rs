//! The evidence pipeline as a Step Functions state machine (Amazon States Language).
//!
//! Input of an execution: `{"evidence_id": "<uuid>", "case_id": "<uuid>", ...}`.
//!
//! * `Split` runs `chrono-pipeline split` (ECS `runTask.sync`), which writes the part
//!   descriptions and `evidence/<id>/parts.json`, a JSON array of their artifact keys.
//! * `ProcessParts` is a Distributed Map: its `ItemReader` reads that array from S3 (so the
//!   parts list never travels through the 256 KiB state payload), and every part becomes a
//!   child workflow execution (`STANDARD`) running `parse` then `upload`, at most
//!   [`Shape::max_concurrency`] at once (the config's `pipeline_max_concurrency`). Child
//!   results go to S3 (`ResultWriter`), not into the parent's state.
//! * A failure ends in `FailEvidence`, which invokes the API function with
//!   `{"chrono_command": "fail_evidence", ...}` and the caught `Error`/`Cause`; that
//!   function marks the evidence `failed` with a readable reason (the first failure wins).
//!   It runs on Lambda, not ECS, so the failure path works when ECS is what failed (launch
//!   denied, image missing). Inside the map a failing part reports itself the same way,
//!   then the map fails and the parent's `FailEvidence` finds the evidence already failed.
//!
//! ECS reports a stopped container as `States.TaskFailed` whose `Cause` is the task
//! description as JSON text; launch failures, API errors (`ECS.*`, `AmazonECS.Unknown`) and
//! timeouts (`States.Timeout`) come with other errors or plain-text causes. The definition
//! never parses a `Cause`: a Pass state cannot catch, so `States.StringToJson` on a
//! plain-text cause would end the execution with the evidence left `processing`. The only
//! automatic retry of a failed container is decided by `Choice` rules on the text: exit code
//! [`EXIT_RETRYABLE`] (`StringMatches`), at most [`MAX_RETRIES`] times, after
//! [`RETRY_WAIT_SECONDS`]. Error semantics:
//! <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>;
//! ECS integration: <https://docs.aws.amazon.com/step-functions/latest/dg/connect-ecs.html>.
//!
//! The definition holds `${Name}` placeholders filled by `DefinitionSubstitutions` in the
//! compute stack, or by [`render`] for the local emulator.

use std::collections::BTreeMap;

use chrono_contract::pipeline as contract;
use serde_json::{Map, Value, json};

use crate::config::Config;

/// Name of the container in the pipeline task definition.
pub const CONTAINER: &str = "pipeline";
/// Exit code of a retryable failure (`EX_TEMPFAIL`).
pub const EXIT_RETRYABLE: i64 = contract::EXIT_RETRYABLE as i64;
/// Exit code of bad input (`EX_DATAERR`), never retried.
pub const EXIT_BAD_INPUT: i64 = contract::EXIT_BAD_INPUT as i64;
/// Retries of a step after a retryable failure.
pub const MAX_RETRIES: u32 = 3;
/// Seconds to wait before a retry.
pub const RETRY_WAIT_SECONDS: u32 = 30;
/// The command of the API function that marks an evidence failed.
pub const FAIL_COMMAND: &str = contract::FAIL_COMMAND;
/// The state every failure ends in (also inside the map, for a failing part).
pub const FAIL_STATE: &str = "FailEvidence";

/// Key of an evidence's `file` in `artifacts`, with `{evidence_id}` in place of its id
/// (`evidence/{evidence_id}/parts.json` for [`contract::PARTS_MANIFEST`]).
pub fn artifact_key(file: &str) -> String {
    format!("{}{{evidence_id}}/{file}", contract::EVIDENCE_PREFIX)
}

/// One step of the pipeline: a `chrono-pipeline` subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// State name.
    pub state: &'static str,
    /// Subcommand of `chrono-pipeline`.
    pub subcommand: &'static str,
    /// Whether it runs once per part (inside the map) with `--part`.
    pub per_part: bool,
}

/// The steps, in order. A test of the runtime compares these with the binary's CLI.
pub const STEPS: [Step; 3] = [
    Step {
        state: "Split",
        subcommand: "split",
        per_part: false,
    },
    Step {
        state: "Parse",
        subcommand: "parse",
        per_part: true,
    },
    Step {
        state: "Upload",
        subcommand: "upload",
        per_part: true,
    },
];

/// What the definition depends on in a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Subnets the tasks run in (private, or public: `public_ip`).
    pub subnets: usize,
    /// Whether the tasks get a public IPv4 address (in the public subnets; a VPC without
    /// NAT: [`Config::pipeline_public_ip`]).
    pub public_ip: bool,
    /// Parts processed at once (child executions of the Distributed Map).
    pub max_concurrency: u32,
    /// Longest one ECS step may run before it fails with `States.Timeout`.
    pub step_timeout_seconds: u32,
}

impl Shape {
    /// The shape of a config's pipeline.
    pub fn of(cfg: &Config) -> Self {
        Self {
            subnets: cfg.network.az_count as usize,
            public_ip: cfg.pipeline_public_ip(),
            max_concurrency: cfg.sizing.pipeline_max_concurrency,
            step_timeout_seconds: cfg.sizing.pipeline_step_timeout_s,
        }
    }
}

/// Placeholders of the definition, given the number of private subnets.
pub fn placeholders(subnets: usize) -> Vec<String> {
    let mut names: Vec<String> = [
        "ArtifactsBucket",
        "ClusterArn",
        "FailFunctionArn",
        "TaskDefinitionArn",
        "TaskSecurityGroup",
    ]
    .map(String::from)
    .to_vec();
    names.extend((0..subnets).map(|i| format!("Subnet{i}")));
    names
}

/// The command line of a step as an ASL intrinsic (`States.Array(...)`).
pub fn command(step: &Step) -> String {
    let mut args = format!(
        "'{}', '--evidence-id', $.evidence_id, '--case-id', $.case_id",
        step.subcommand
    );
    if step.per_part {
        args.push_str(", '--part', $.part");
    }
    format!("States.Array({args})")
}

fn s3_key(file: &str) -> String {
    format!(
        "States.Format('{}', $.evidence_id)",
        artifact_key(file).replace("{evidence_id}", "{}")
    )
}

/// `StringMatches` patterns that find exit code `code` in an ECS task description (the
/// `Cause` of `States.TaskFailed`), compact or spaced JSON.
pub fn exit_code_patterns(code: i64) -> Vec<String> {
    let mut patterns = Vec::new();
    for sep in [":", ": "] {
        for end in [",", "}"] {
            patterns.push(format!("*\"ExitCode\"{sep}{code}{end}*"));
        }
    }
    patterns
}

/// Retry of an ECS API error (throttling, a transient service error).
fn ecs_api_retry() -> Value {
    json!({
        "ErrorEquals": ["ECS.AmazonECSException", "ECS.ThrottlingException"],
        "IntervalSeconds": 10, "MaxAttempts": 3, "BackoffRate": 2.0
    })
}

/// The `FailEvidence` task: the API function marks the evidence failed with the caught
/// failure and the failing step. Idempotent, so every error is retried a few times (the
/// database may be resuming); if it still fails, `Next` is the execution's end anyway.
fn fail_evidence(next: &str) -> Value {
    json!({
        "Type": "Task",
        "Comment": "the API function marks the evidence failed (first failure wins)",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": "${FailFunctionArn}",
            "Payload": {
                "chrono_command": FAIL_COMMAND,
                "evidence_id.$": "$.evidence_id",
                "case_id.$": "$.case_id",
                "step.$": "$.failed_step",
                "failure.$": "$.failure"
            }
        },
        "ResultPath": null,
        "Retry": [{
            "ErrorEquals": ["States.ALL"],
            "IntervalSeconds": 5, "MaxAttempts": 5, "BackoffRate": 2.0
        }],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.fail_evidence_error", "Next": next}],
        "Next": next
    })
}

/// A `Pass` recording which step failed (a static value: it cannot fail), then
/// [`FAIL_STATE`].
fn failed_step(states: &mut Map<String, Value>, name: &str, step: &str) {
    states.insert(
        format!("{name}Failed"),
        json!({"Type": "Pass", "Result": step, "ResultPath": "$.failed_step", "Next": FAIL_STATE}),
    );
}

/// Task state running one step on ECS, with its retry states; `ok` is the successor.
fn ecs_step(states: &mut Map<String, Value>, step: &Step, shape: &Shape, ok: Option<&str>) {
    let name = step.state;
    let counter = format!("$.retry.{}.n", step.subcommand);
    let failed = format!("{name}Failed");
    let subnets: Vec<Value> = (0..shape.subnets)
        .map(|i| json!(format!("${{Subnet{i}}}")))
        .collect();
    let mut task = json!({
        "Type": "Task",
        "Comment": format!("chrono-pipeline {}", step.subcommand),
        "Resource": "arn:aws:states:::ecs:runTask.sync",
        "Parameters": {
            "LaunchType": "FARGATE",
            "Cluster": "${ClusterArn}",
            "TaskDefinition": "${TaskDefinitionArn}",
            "PropagateTags": "TASK_DEFINITION",
            "NetworkConfiguration": {"AwsvpcConfiguration": {
                "Subnets": subnets,
                "SecurityGroups": ["${TaskSecurityGroup}"],
                "AssignPublicIp": if shape.public_ip { "ENABLED" } else { "DISABLED" }
            }},
            "Overrides": {"ContainerOverrides": [{"Name": CONTAINER, "Command.$": command(step)}]}
        },
        "ResultPath": null,
        "TimeoutSeconds": shape.step_timeout_seconds,
        "Retry": [ecs_api_retry()],
        "Catch": [
            {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.failure", "Next": format!("{name}Caught")},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": failed}
        ]
    });
    match ok {
        Some(next) => task["Next"] = json!(next),
        None => task["End"] = json!(true),
    }
    states.insert(name.into(), task);
    // Each rule reads only what the one before it proved present: a Choice rule on a
    // missing or non-string value is a runtime error no Catch sees.
    states.insert(
        format!("{name}Caught"),
        json!({
            "Type": "Choice",
            "Choices": [{"Variable": "$.failure.Cause", "IsPresent": true, "Next": format!("{name}HasCause")}],
            "Default": failed
        }),
    );
    states.insert(
        format!("{name}HasCause"),
        json!({
            "Type": "Choice",
            "Choices": [{"Variable": "$.failure.Cause", "IsString": true, "Next": format!("{name}Retryable")}],
            "Default": failed
        }),
    );
    let exited_retryable: Vec<Value> = exit_code_patterns(EXIT_RETRYABLE)
        .into_iter()
        .map(|p| json!({"Variable": "$.failure.Cause", "StringMatches": p}))
        .collect();
    states.insert(
        format!("{name}Retryable"),
        json!({
            "Type": "Choice",
            "Comment": format!("retry only a container that exited with {EXIT_RETRYABLE}"),
            "Choices": [{"And": [
                {"Variable": counter, "NumericLessThan": MAX_RETRIES},
                {"Or": exited_retryable}
            ], "Next": format!("{name}Wait")}],
            "Default": failed
        }),
    );
    states.insert(
        format!("{name}Wait"),
        json!({"Type": "Wait", "Seconds": RETRY_WAIT_SECONDS, "Next": format!("{name}Count")}),
    );
    states.insert(
        format!("{name}Count"),
        json!({
            "Type": "Pass",
            "Parameters": {"n.$": format!("States.MathAdd({counter}, 1)")},
            "ResultPath": format!("$.retry.{}", step.subcommand),
            "Next": name
        }),
    );
    failed_step(states, name, step.subcommand);
}

/// The state machine definition of a pipeline [`Shape`].
pub fn definition(shape: &Shape) -> Value {
    let [split, parse, upload] = STEPS;
    let mut top = Map::new();
    top.insert(
        "Init".into(),
        json!({"Type": "Pass", "Result": {"split": {"n": 0}}, "ResultPath": "$.retry", "Next": split.state}),
    );
    ecs_step(&mut top, &split, shape, Some("ProcessParts"));

    let mut part = Map::new();
    ecs_step(&mut part, &parse, shape, Some(upload.state));
    ecs_step(&mut part, &upload, shape, None);
    part.insert(FAIL_STATE.into(), fail_evidence("PartFailed"));
    part.insert(
        "PartFailed".into(),
        json!({"Type": "Fail", "Error": "PartFailed",
               "Cause": "a part could not be parsed or uploaded; the evidence's errors say why"}),
    );
    top.insert(
        "ProcessParts".into(),
        json!({
            "Type": "Map",
            "Comment": "one child execution per part, the parts list read from S3",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSON"},
                "Parameters": {"Bucket": "${ArtifactsBucket}", "Key.$": s3_key(contract::PARTS_MANIFEST)}
            },
            "MaxConcurrency": shape.max_concurrency,
            "ToleratedFailurePercentage": 0,
            "Label": "parts",
            "ItemSelector": {
                "evidence_id.$": "$.evidence_id",
                "case_id.$": "$.case_id",
                "part.$": "$$.Map.Item.Value",
                "retry": {"parse": {"n": 0}, "upload": {"n": 0}}
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": parse.state,
                "States": Value::Object(part)
            },
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {"Bucket": "${ArtifactsBucket}", "Prefix.$": s3_key(contract::MAP_RESULTS)}
            },
            "ResultPath": null,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "ProcessPartsFailed"}],
            "Next": "Done"
        }),
    );
    failed_step(&mut top, "ProcessParts", "parts");
    top.insert(FAIL_STATE.into(), fail_evidence("Failed"));
    top.insert(
        "Failed".into(),
        json!({"Type": "Fail", "Error": "EvidenceFailed",
               "Cause": "the evidence is marked failed with the reason; see its errors"}),
    );
    top.insert("Done".into(), json!({"Type": "Succeed"}));
    json!({
        "Comment": "ChronoTracer evidence pipeline: split, then parse and upload each part",
        "StartAt": "Init",
        "States": Value::Object(top)
    })
}

/// Errors rendering a definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A placeholder has no value.
    #[error(
        "no value for placeholder ${{{0}}} in the pipeline definition; pass every name of pipeline::placeholders()"
    )]
    Missing(String),
}

/// The definition with every `${Name}` placeholder replaced (for the local emulator).
pub fn render(
    definition: &Value,
    values: &BTreeMap<String, String>,
) -> Result<String, RenderError> {
    let mut text = definition.to_string();
    let mut out = String::with_capacity(text.len());
    while let Some(start) = text.find("${") {
        let Some(len) = text[start..].find('}') else {
            break;
        };
        let name = &text[start + 2..start + len];
        let value = values
            .get(name)
            .ok_or_else(|| RenderError::Missing(name.to_owned()))?;
        out.push_str(&text[..start]);
        out.push_str(&value.replace('\\', "\\\\").replace('"', "\\\""));
        text = text[start + len + 1..].to_owned();
    }
    out.push_str(&text);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        public_ip: false,
        subnets: 2,
        max_concurrency: 4,
        step_timeout_seconds: 600,
    };

    fn states(def: &Value) -> &Map<String, Value> {
        def["States"].as_object().unwrap()
    }

    fn part_states(def: &Value) -> &Map<String, Value> {
        def["States"]["ProcessParts"]["ItemProcessor"]["States"]
            .as_object()
            .unwrap()
    }

    #[test]
    fn steps_run_the_pipeline_subcommands_in_order() {
        let def = definition(&SHAPE);
        let split = &states(&def)["Split"];
        assert_eq!(split["Resource"], "arn:aws:states:::ecs:runTask.sync");
        assert_eq!(
            split["Parameters"]["Overrides"]["ContainerOverrides"][0]["Command.$"],
            "States.Array('split', '--evidence-id', $.evidence_id, '--case-id', $.case_id)"
        );
        assert_eq!(split["Next"], "ProcessParts");
        assert_eq!(split["TimeoutSeconds"], 600);
        let inner = part_states(&def);
        assert_eq!(
            def["States"]["ProcessParts"]["ItemProcessor"]["StartAt"],
            "Parse"
        );
        assert_eq!(inner["Parse"]["Next"], "Upload");
        assert_eq!(inner["Upload"]["End"], true);
        assert!(
            inner["Upload"]["Parameters"]["Overrides"]["ContainerOverrides"][0]["Command.$"]
                .as_str()
                .unwrap()
                .starts_with("States.Array('upload',")
        );
        assert_eq!(
            split["Parameters"]["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"],
            json!(["${Subnet0}", "${Subnet1}"])
        );
    }

    #[test]
    fn parts_come_from_s3_through_a_distributed_map_bounded_by_the_config() {
        let def = definition(&Shape {
            max_concurrency: 500,
            ..SHAPE
        });
        let map = &states(&def)["ProcessParts"];
        assert_eq!(map["Type"], "Map");
        assert_eq!(map["MaxConcurrency"], 500);
        assert_eq!(
            map["ItemProcessor"]["ProcessorConfig"]["Mode"],
            "DISTRIBUTED"
        );
        // ECS .sync tasks need STANDARD children (EXPRESS ones end after 5 minutes).
        assert_eq!(
            map["ItemProcessor"]["ProcessorConfig"]["ExecutionType"],
            "STANDARD"
        );
        let reader = &map["ItemReader"];
        assert_eq!(reader["Resource"], "arn:aws:states:::s3:getObject");
        assert_eq!(reader["ReaderConfig"]["InputType"], "JSON");
        assert_eq!(
            reader["Parameters"]["Key.$"],
            "States.Format('evidence/{}/parts.json', $.evidence_id)"
        );
        // Nothing lists the parts in the state payload, and no result comes back into it.
        assert!(map.get("ItemsPath").is_none());
        assert_eq!(map["ItemSelector"]["part.$"], "$$.Map.Item.Value");
        assert_eq!(map["ResultPath"], Value::Null);
        assert_eq!(
            map["ResultWriter"]["Parameters"]["Prefix.$"],
            "States.Format('evidence/{}/map-results', $.evidence_id)"
        );
    }

    /// Regression: a `Pass` state parsed the caught `Cause` with `States.StringToJson`; a
    /// plain-text cause (launch failures) failed the execution there, uncatchably, and the
    /// evidence stayed `processing`.
    #[test]
    fn no_state_parses_a_caught_cause() {
        let text = definition(&SHAPE).to_string();
        for intrinsic in ["StringToJson", "JsonToString", "JsonMerge"] {
            assert!(!text.contains(intrinsic), "the definition uses {intrinsic}");
        }
    }

    #[test]
    fn only_exit_code_75_is_retried_and_every_failure_reaches_fail_evidence() {
        let def = definition(&SHAPE);
        let st = states(&def);
        assert_eq!(
            st["Split"]["Catch"][0]["ErrorEquals"],
            json!(["States.TaskFailed"])
        );
        assert_eq!(st["Split"]["Catch"][1]["Next"], "SplitFailed");
        let rule = &st["SplitRetryable"]["Choices"][0]["And"];
        assert_eq!(rule[0]["NumericLessThan"], MAX_RETRIES);
        assert_eq!(
            rule[1]["Or"][0]["StringMatches"],
            format!("*\"ExitCode\":{EXIT_RETRYABLE},*")
        );
        assert_eq!(st["SplitRetryable"]["Default"], "SplitFailed");
        assert_eq!(st["SplitCount"]["Next"], "Split");
        assert_eq!(st["SplitFailed"]["Next"], FAIL_STATE);
        assert_eq!(st["ProcessPartsFailed"]["Next"], FAIL_STATE);
        assert_eq!(part_states(&def)["ParseFailed"]["Next"], FAIL_STATE);
        // The only automatic retry of an ECS step is on ECS API errors, never on a failed
        // container or everything.
        for (name, s) in st.iter().chain(part_states(&def)) {
            if s["Resource"] != "arn:aws:states:::ecs:runTask.sync" {
                continue;
            }
            for r in s["Retry"].as_array().into_iter().flatten() {
                let errors = r["ErrorEquals"].as_array().unwrap();
                assert!(
                    !errors.contains(&json!("States.TaskFailed"))
                        && !errors.contains(&json!("States.ALL")),
                    "{name} retries failed containers"
                );
            }
        }
    }

    #[test]
    fn fail_evidence_invokes_the_api_function_with_the_failure_and_the_step() {
        let def = definition(&SHAPE);
        for st in [states(&def), part_states(&def)] {
            let fail = &st[FAIL_STATE];
            assert_eq!(fail["Resource"], "arn:aws:states:::lambda:invoke");
            assert_eq!(fail["Parameters"]["FunctionName"], "${FailFunctionArn}");
            let payload = &fail["Parameters"]["Payload"];
            assert_eq!(payload["chrono_command"], FAIL_COMMAND);
            assert_eq!(payload["failure.$"], "$.failure");
            assert_eq!(payload["step.$"], "$.failed_step");
            assert_eq!(fail["Catch"][0]["Next"], fail["Next"]);
        }
        assert_eq!(states(&def)[FAIL_STATE]["Next"], "Failed");
        assert_eq!(part_states(&def)[FAIL_STATE]["Next"], "PartFailed");
    }

    #[test]
    fn every_transition_names_an_existing_state() {
        fn check(states: &Map<String, Value>) {
            for (name, s) in states {
                let mut targets: Vec<&Value> = vec![&s["Next"], &s["Default"]];
                for list in ["Catch", "Choices"] {
                    targets.extend(s[list].as_array().into_iter().flatten().map(|c| &c["Next"]));
                }
                for t in targets.into_iter().filter_map(Value::as_str) {
                    assert!(states.contains_key(t), "{name} -> {t} does not exist");
                }
                if let Some(inner) = s["ItemProcessor"]["States"].as_object() {
                    check(inner);
                }
            }
        }
        check(states(&definition(&SHAPE)));
    }

    #[test]
    fn render_fills_every_placeholder() {
        let def = definition(&SHAPE);
        let values: BTreeMap<String, String> = placeholders(2)
            .into_iter()
            .map(|p| (p.clone(), format!("value-of-{p}")))
            .collect();
        let text = render(&def, &values).unwrap();
        assert!(!text.contains("${"), "{text}");
        assert!(text.contains("value-of-FailFunctionArn"));
        let mut missing = values.clone();
        missing.remove("Subnet1");
        assert_eq!(
            render(&def, &missing),
            Err(RenderError::Missing("Subnet1".into()))
        );
    }
}
