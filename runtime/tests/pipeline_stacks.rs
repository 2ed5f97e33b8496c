//! The Step Functions definition (`chrono_stacks::pipeline`) and the `chrono-pipeline`
//! binary agree: every ECS task's command line parses as this binary's CLI, with the
//! execution's values in the right flags; the exit codes the definition retries on are the
//! ones the steps end with; the keys it reads and writes are the ones the steps use; what its
//! failure path sends is what the API function's failure handler reads.

use chrono_runtime::pipeline::cli::{Cli, Command};
use chrono_runtime::pipeline::error::{EXIT_BAD_INPUT, EXIT_RETRYABLE};
use chrono_runtime::pipeline::failure::{self, FailEvidence};
use chrono_runtime::pipeline::jobs;
use chrono_runtime::pipeline::upload::Target;
use chrono_stacks::pipeline::{self as sfn, STEPS, Shape};
use clap::{CommandFactory, Parser};
use serde_json::Value;
use uuid::Uuid;

const EVIDENCE: &str = "6f1c2d4e-0000-4000-8000-000000000001";
const CASE: &str = "6f1c2d4e-0000-4000-8000-0000000000ca";

fn target() -> Target {
    Target {
        case_id: CASE.parse().unwrap(),
        evidence_id: EVIDENCE.parse().unwrap(),
    }
}

const SHAPE: Shape = Shape {
    public_ip: false,
    subnets: 2,
    max_concurrency: 4,
    step_timeout_seconds: 3600,
};

fn part_key() -> String {
    format!("evidence/{EVIDENCE}/parts/part-00001.json")
}

/// Every ECS task state of the definition, nested ones included: (state, command).
fn ecs_commands(states: &serde_json::Map<String, Value>, out: &mut Vec<(String, String)>) {
    for (name, state) in states {
        if state["Resource"] == "arn:aws:states:::ecs:runTask.sync" {
            let command = state["Parameters"]["Overrides"]["ContainerOverrides"][0]["Command.$"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no Command.$"));
            out.push((name.clone(), command.to_owned()));
        }
        if let Some(inner) = state["ItemProcessor"]["States"].as_object() {
            ecs_commands(inner, out);
        }
    }
}

/// `States.Array('split', '--evidence-id', $.evidence_id, ..)` as the argv the container
/// gets for one execution of the pipeline on one part.
fn argv(intrinsic: &str) -> Vec<String> {
    let inner = intrinsic
        .strip_prefix("States.Array(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not a States.Array: {intrinsic}"));
    let mut args = vec!["chrono-pipeline".to_owned()];
    for arg in inner.split(", ") {
        let value = match arg {
            "$.evidence_id" => EVIDENCE.to_owned(),
            "$.case_id" => CASE.to_owned(),
            "$.part" => part_key(),
            quoted if quoted.starts_with('\'') && quoted.ends_with('\'') => {
                quoted[1..quoted.len() - 1].to_owned()
            }
            other => panic!("unexpected argument in {intrinsic}: {other}"),
        };
        args.push(value);
    }
    args
}

#[test]
fn every_ecs_task_of_the_definition_parses_as_this_binary_s_cli() {
    let def = sfn::definition(&SHAPE);
    let mut commands = Vec::new();
    ecs_commands(def["States"].as_object().unwrap(), &mut commands);
    let mut names: Vec<&str> = commands.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Parse", "Split", "Upload"]);
    let evidence: Uuid = EVIDENCE.parse().unwrap();
    let case: Uuid = CASE.parse().unwrap();
    for (state, command) in &commands {
        let cli = Cli::try_parse_from(argv(command))
            .unwrap_or_else(|e| panic!("{state}: {command} does not parse: {e}"));
        let (t, part) = match &cli.command {
            Command::Split(a) => {
                assert_eq!(state, "Split");
                assert!(a.input.is_none() && a.output.is_none(), "split runs on S3");
                (&a.target, None)
            }
            Command::Parse(a) => {
                assert_eq!(state, "Parse");
                assert!(a.input.is_none() && a.output.is_none(), "parse runs on S3");
                (&a.target, Some(a.part.clone()))
            }
            Command::Upload(a) => {
                assert_eq!(state, "Upload");
                (&a.target, Some(a.part.clone()))
            }
        };
        assert_eq!((t.evidence_id, t.case_id), (evidence, case), "{state}");
        let step = STEPS.iter().find(|s| s.state == state).unwrap();
        assert_eq!(part.is_some(), step.per_part, "{state}: --part");
        if let Some(part) = part {
            assert_eq!(part, part_key());
        }
        // The command is exactly what `command()` builds for the step.
        assert_eq!(command, &sfn::command(step));
    }
}

#[test]
fn every_step_is_a_subcommand_and_per_part_steps_require_part() {
    let cli = Cli::command();
    for step in STEPS {
        let sub = cli
            .find_subcommand(step.subcommand)
            .unwrap_or_else(|| panic!("no subcommand {}", step.subcommand));
        let part = sub.get_arguments().find(|a| a.get_id() == "part");
        assert_eq!(
            part.is_some_and(|a| a.is_required_set()),
            step.per_part,
            "{}",
            step.subcommand
        );
        for flag in ["evidence_id", "case_id"] {
            assert!(
                sub.get_arguments()
                    .any(|a| a.get_id() == flag && a.is_required_set()),
                "{} --{flag}",
                step.subcommand
            );
        }
    }
    // Without --part a per-part step is refused, not run on the whole evidence.
    let refused = Cli::try_parse_from([
        "chrono-pipeline",
        "upload",
        "--evidence-id",
        EVIDENCE,
        "--case-id",
        CASE,
    ]);
    assert!(refused.is_err());
}

#[test]
fn retried_and_failed_exit_codes_are_the_ones_the_steps_end_with() {
    assert_eq!(sfn::EXIT_RETRYABLE, i64::from(EXIT_RETRYABLE));
    assert_eq!(sfn::EXIT_BAD_INPUT, i64::from(EXIT_BAD_INPUT));
    let def = sfn::definition(&SHAPE).to_string();
    for pattern in sfn::exit_code_patterns(i64::from(EXIT_RETRYABLE)) {
        let json = serde_json::to_string(&pattern).unwrap();
        assert!(def.contains(&json), "{json}");
    }
}

#[test]
fn the_parts_manifest_key_and_shape_are_what_the_map_reads() {
    assert_eq!(
        sfn::artifact_key(chrono_contract::pipeline::PARTS_MANIFEST)
            .replace("{evidence_id}", EVIDENCE),
        jobs::parts_manifest_key(target())
    );
    let def = sfn::definition(&SHAPE);
    let map = &def["States"]["ProcessParts"];
    // The ItemReader reads a JSON file whose top level is the array of items, and each
    // item is the `--part` the steps take.
    assert_eq!(map["ItemReader"]["ReaderConfig"]["InputType"], "JSON");
    assert_eq!(map["ItemSelector"]["part.$"], "$$.Map.Item.Value");
    let written = serde_json::to_value(vec![part_key()]).unwrap();
    assert!(written.is_array());
    assert_eq!(written[0], part_key().as_str());
    // Each item is a part key the steps accept for this evidence.
    assert_eq!(jobs::part_id(target(), &part_key()).unwrap(), "part-00001");
    assert!(jobs::part_id(target(), "evidence/other/parts/part-00001.json").is_err());
}

/// The state machine's `FailEvidence` payload, with its paths filled from an execution's
/// state, is what the API function's failure handler reads, for the top level and a part.
#[test]
fn the_failure_path_sends_what_the_failure_handler_reads() {
    assert_eq!(sfn::FAIL_COMMAND, failure::COMMAND);
    let def = sfn::definition(&SHAPE);
    let state = serde_json::json!({
        "evidence_id": EVIDENCE, "case_id": CASE, "part": part_key(),
        "failed_step": "parse",
        "failure": {"Error": "States.Timeout"}
    });
    for states in [
        &def["States"],
        &def["States"]["ProcessParts"]["ItemProcessor"]["States"],
    ] {
        let template = &states[sfn::FAIL_STATE]["Parameters"]["Payload"];
        let mut payload = serde_json::Map::new();
        for (key, value) in template.as_object().unwrap() {
            match key.strip_suffix(".$") {
                Some(field) => {
                    let path = value.as_str().unwrap().strip_prefix("$.").unwrap();
                    payload.insert(field.to_owned(), state[path].clone());
                }
                None => {
                    payload.insert(key.clone(), value.clone());
                }
            }
        }
        assert_eq!(payload["chrono_command"], failure::COMMAND);
        let request: FailEvidence = serde_json::from_value(Value::Object(payload)).unwrap();
        assert_eq!(request.evidence_id.to_string(), EVIDENCE);
        assert_eq!(request.step, "parse");
        assert_eq!(request.failure.error, "States.Timeout");
    }
}
