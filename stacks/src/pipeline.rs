//! The evidence pipeline as a Step Functions state machine (Amazon States Language).
//!
//! Input of an execution: `{"evidence_id": "<uuid>", "case_id": "<uuid>"}`.
//!
//! `Split` runs `chrono-pipeline split` (ECS RunTask `.sync`), which writes the parts
//! manifest `{"parts": [<s3 key>, ..]}` to `artifacts` (`evidence/<id>/parts.json`);
//! `ReadParts` reads it; `ProcessParts` (a `Map` over the parts) runs `parse` then
//! `upload` for each part. ECS reports a failed container as `States.TaskFailed` with the
//! task description in the cause; the container's exit code decides: `75` (temporary
//! failure) is retried with a wait, up to [`MAX_RETRIES`] times; any other code (`65` =
//! bad input) is not. A `Catch` leads to `MarkFailed`, which writes the caught failure
//! (`$.failure`) to `evidence/<id>/failed.json` in `artifacts`; then `FailEvidence` runs
//! `chrono-pipeline fail` ([`FAIL_STEP`]), which reads that marker and ends the evidence
//! row `failed` with the reason (the marker carries the reason because an ECS command
//! override is too small for an arbitrary task description); then the execution fails.
//! Should the `fail` task itself fail, the execution still ends in `Failed`.
//!
//! The definition holds `${Name}` placeholders filled by `DefinitionSubstitutions` in the
//! compute stack, or by [`render`] for the local emulator.

use std::collections::BTreeMap;

use chrono_contract::pipeline as contract;
use serde_json::{Map, Value, json};

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
/// Longest a single ECS step may run before it fails with `States.Timeout` (not retried).
pub const STEP_TIMEOUT_SECONDS: u32 = 4 * 3600;
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
    /// Whether it runs once per part (inside the `Map`) with `--part`.
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

/// The step the failure path runs: marks the evidence `failed` in PostgreSQL with the
/// reason from the `failed.json` marker. Not part of [`STEPS`]: only a `Catch` leads to it.
pub const FAIL_STEP: Step = Step {
    state: "FailEvidence",
    subcommand: "fail",
    per_part: false,
};

/// Placeholders of the definition, given the number of private subnets.
pub fn placeholders(subnets: usize) -> Vec<String> {
    let mut names: Vec<String> = [
        "ArtifactsBucket",
        "ClusterArn",
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

fn s3_key(template: &str) -> String {
    format!(
        "States.Format('{}', $.evidence_id)",
        template.replace("{evidence_id}", "{}")
    )
}

/// Task state running one step on ECS, plus its retry states; `ok` and `failed` are
/// the successor states.
fn ecs_step(
    states: &mut Map<String, Value>,
    step: &Step,
    subnets: usize,
    ok: Option<&str>,
    failed: &str,
) {
    let name = step.state;
    let counter = format!("$.retry.{}", step.subcommand);
    let subnets: Vec<Value> = (0..subnets)
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
                "AssignPublicIp": "DISABLED"
            }},
            "Overrides": {"ContainerOverrides": [{"Name": CONTAINER, "Command.$": command(step)}]}
        },
        "ResultPath": null,
        "TimeoutSeconds": STEP_TIMEOUT_SECONDS,
        "Retry": [{
            "ErrorEquals": ["ECS.AmazonECSException"],
            "IntervalSeconds": 10, "MaxAttempts": 3, "BackoffRate": 2.0
        }],
        "Catch": [
            {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.failure", "Next": format!("{name}Inspect")},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": failed}
        ]
    });
    match ok {
        Some(next) => task["Next"] = json!(next),
        None => task["End"] = json!(true),
    }
    states.insert(name.into(), task);
    states.insert(
        format!("{name}Inspect"),
        json!({
            "Type": "Pass",
            "Comment": "the cause of an ECS task failure is the task description as a JSON string",
            "Parameters": {"Error.$": "$.failure.Error", "task.$": "States.StringToJson($.failure.Cause)"},
            "ResultPath": "$.failure",
            "Next": format!("{name}HasExitCode")
        }),
    );
    states.insert(
        format!("{name}HasExitCode"),
        json!({
            "Type": "Choice",
            "Choices": [{"Variable": "$.failure.task.Containers[0].ExitCode", "IsPresent": true,
                         "Next": format!("{name}Retryable")}],
            "Default": failed
        }),
    );
    states.insert(
        format!("{name}Retryable"),
        json!({
            "Type": "Choice",
            "Choices": [{"And": [
                {"Variable": "$.failure.task.Containers[0].ExitCode", "NumericEquals": EXIT_RETRYABLE},
                {"Variable": format!("{counter}.n"), "NumericLessThan": MAX_RETRIES}
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
            "Parameters": {"n.$": format!("States.MathAdd({counter}.n, 1)")},
            "ResultPath": counter,
            "Next": name
        }),
    );
}

/// The state machine definition for a VPC with `subnets` private subnets, running at
/// most `max_concurrency` parts at once.
pub fn definition(subnets: usize, max_concurrency: u32) -> Value {
    let [split, parse, upload] = STEPS;
    let mut top = Map::new();
    top.insert(
        "Init".into(),
        json!({"Type": "Pass", "Result": {"split": {"n": 0}, "fail": {"n": 0}}, "ResultPath": "$.retry", "Next": split.state}),
    );
    ecs_step(&mut top, &split, subnets, Some("ReadParts"), "MarkFailed");
    top.insert(
        "ReadParts".into(),
        json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
            "Parameters": {"Bucket": "${ArtifactsBucket}", "Key.$": s3_key(&artifact_key(contract::PARTS_MANIFEST))},
            "ResultSelector": {"document.$": "States.StringToJson($.Body)"},
            "ResultPath": "$.manifest",
            "Retry": [{"ErrorEquals": ["S3.SdkClientException", "S3.InternalErrorException"],
                       "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2.0}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "MarkFailed"}],
            "Next": "ProcessParts"
        }),
    );
    let mut inner = Map::new();
    ecs_step(
        &mut inner,
        &parse,
        subnets,
        Some(upload.state),
        "PartFailed",
    );
    ecs_step(&mut inner, &upload, subnets, None, "PartFailed");
    inner.insert(
        "PartFailed".into(),
        json!({"Type": "Fail", "Error": "PartFailed", "Cause": "a part could not be parsed or uploaded"}),
    );
    top.insert(
        "ProcessParts".into(),
        json!({
            "Type": "Map",
            "ItemsPath": "$.manifest.document.parts",
            "MaxConcurrency": max_concurrency,
            "ItemSelector": {
                "evidence_id.$": "$.evidence_id",
                "case_id.$": "$.case_id",
                "part.$": "$$.Map.Item.Value",
                "retry": {"parse": {"n": 0}, "upload": {"n": 0}}
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": parse.state,
                "States": Value::Object(inner)
            },
            "ResultPath": null,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "MarkFailed"}],
            "Next": "Done"
        }),
    );
    top.insert(
        "MarkFailed".into(),
        json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:s3:putObject",
            "Parameters": {
                "Bucket": "${ArtifactsBucket}",
                "Key.$": s3_key(&artifact_key(contract::FAILURE_MARKER)),
                "ContentType": "application/json",
                "Body.$": "States.JsonToString($.failure)"
            },
            "ResultPath": null,
            "Retry": [{"ErrorEquals": ["S3.SdkClientException", "S3.InternalErrorException"],
                       "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2.0}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Failed"}],
            "Next": FAIL_STEP.state
        }),
    );
    // Retried on exit code 75 (the database was unreachable) like the other steps; any
    // other failure of its own ends the execution `Failed` all the same.
    ecs_step(&mut top, &FAIL_STEP, subnets, Some("Failed"), "Failed");
    top.insert(
        "Failed".into(),
        json!({"Type": "Fail", "Error": "EvidenceFailed",
               "Cause": format!("see {} in the artifacts bucket", artifact_key(contract::FAILURE_MARKER))}),
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

    fn states(def: &Value) -> &Map<String, Value> {
        def["States"].as_object().unwrap()
    }

    #[test]
    fn steps_run_the_pipeline_subcommands_in_order() {
        let def = definition(2, 4);
        let split = &states(&def)["Split"];
        assert_eq!(split["Resource"], "arn:aws:states:::ecs:runTask.sync");
        assert_eq!(
            split["Parameters"]["Overrides"]["ContainerOverrides"][0]["Command.$"],
            "States.Array('split', '--evidence-id', $.evidence_id, '--case-id', $.case_id)"
        );
        assert_eq!(split["Next"], "ReadParts");
        assert_eq!(split["TimeoutSeconds"], STEP_TIMEOUT_SECONDS);
        let map = &states(&def)["ProcessParts"];
        assert_eq!(map["Type"], "Map");
        assert_eq!(map["MaxConcurrency"], 4);
        let inner = map["ItemProcessor"]["States"].as_object().unwrap();
        assert_eq!(map["ItemProcessor"]["StartAt"], "Parse");
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
    fn only_exit_code_75_is_retried_and_failures_are_caught() {
        let def = definition(3, 1);
        let st = states(&def);
        assert_eq!(
            st["Split"]["Catch"][0]["ErrorEquals"],
            json!(["States.TaskFailed"])
        );
        assert_eq!(st["Split"]["Catch"][1]["Next"], "MarkFailed");
        let rule = &st["SplitRetryable"]["Choices"][0]["And"];
        assert_eq!(rule[0]["NumericEquals"], EXIT_RETRYABLE);
        assert_eq!(rule[1]["NumericLessThan"], MAX_RETRIES);
        assert_eq!(st["SplitRetryable"]["Default"], "MarkFailed");
        assert_eq!(st["SplitCount"]["Next"], "Split");
        // The only automatic retry is on ECS API errors, never on a failed container.
        for (name, s) in st {
            for r in s["Retry"].as_array().into_iter().flatten() {
                let errors = r["ErrorEquals"].as_array().unwrap();
                assert!(
                    !errors.contains(&json!("States.TaskFailed")),
                    "{name} retries task failures"
                );
                assert!(
                    !errors.contains(&json!("States.ALL")),
                    "{name} retries everything"
                );
            }
        }
        assert_eq!(st["ProcessParts"]["Catch"][0]["Next"], "MarkFailed");
        assert_eq!(st["ReadParts"]["Catch"][0]["Next"], "MarkFailed");
    }

    #[test]
    fn the_failure_path_records_the_reason_then_marks_the_evidence_failed() {
        let def = definition(2, 4);
        let st = states(&def);
        // The marker first (the `fail` task reads the reason from it)...
        assert_eq!(
            st["MarkFailed"]["Resource"],
            "arn:aws:states:::aws-sdk:s3:putObject"
        );
        assert_eq!(
            st["MarkFailed"]["Parameters"]["Body.$"],
            "States.JsonToString($.failure)"
        );
        assert_eq!(st["MarkFailed"]["Next"], FAIL_STEP.state);
        // ...then `chrono-pipeline fail` on ECS, and the execution fails either way.
        let fail = &st[FAIL_STEP.state];
        assert_eq!(fail["Resource"], "arn:aws:states:::ecs:runTask.sync");
        assert_eq!(
            fail["Parameters"]["Overrides"]["ContainerOverrides"][0]["Command.$"],
            "States.Array('fail', '--evidence-id', $.evidence_id, '--case-id', $.case_id)"
        );
        assert_eq!(fail["Next"], "Failed");
        assert_eq!(fail["Catch"][1]["Next"], "Failed");
        assert_eq!(st["MarkFailed"]["Catch"][0]["Next"], "Failed");
        assert_eq!(st["FailEvidenceRetryable"]["Default"], "Failed");
        assert_eq!(st["Failed"]["Type"], "Fail");
        // Its retry counter starts at zero like the split's.
        assert_eq!(st["Init"]["Result"]["fail"]["n"], 0);
    }

    #[test]
    fn every_transition_names_an_existing_state() {
        fn check(states: &Map<String, Value>) {
            for (name, s) in states {
                let mut targets: Vec<&Value> = vec![&s["Next"], &s["Default"]];
                targets.extend(
                    s["Catch"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| &c["Next"]),
                );
                targets.extend(
                    s["Choices"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| &c["Next"]),
                );
                for t in targets.into_iter().filter_map(Value::as_str) {
                    assert!(states.contains_key(t), "{name} -> {t} does not exist");
                }
                if let Some(inner) = s["ItemProcessor"]["States"].as_object() {
                    check(inner);
                }
            }
        }
        check(states(&definition(2, 8)));
    }

    #[test]
    fn render_fills_every_placeholder() {
        let def = definition(2, 8);
        let values: BTreeMap<String, String> = placeholders(2)
            .into_iter()
            .map(|p| (p.clone(), format!("value-of-{p}")))
            .collect();
        let text = render(&def, &values).unwrap();
        assert!(!text.contains("${"), "{text}");
        assert!(text.contains("value-of-ClusterArn"));
        let mut missing = values.clone();
        missing.remove("Subnet1");
        assert_eq!(
            render(&def, &missing),
            Err(RenderError::Missing("Subnet1".into()))
        );
    }
}
