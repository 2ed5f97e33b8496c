//! Every way the pipeline can fail ends with the evidence `failed` and a reason a person
//! can read (defect 4): each kind of failure is sent through the real state machine
//! definition (walked with `chrono_tests::asl`, the documented semantics, because the
//! emulator cannot make an ECS task fail), and what reaches `FailEvidence` goes through the
//! API function's real handler, against PostgreSQL and the emulator's S3.
//!
//! Regression: the definition parsed a caught `Cause` with `States.StringToJson` in a
//! `Pass` state; a launch failure's plain-text cause made that an uncatchable runtime
//! error, `FailEvidence` never ran and the evidence stayed `processing` forever.

use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use chrono_runtime::pipeline::failure::{self, FailEvidence};
use chrono_runtime::pipeline::jobs::{self, Buckets, StepError};
use chrono_runtime::pipeline::upload::Target;
use chrono_stacks::pipeline::{self, FAIL_STATE, Shape};
use chrono_tests::asl::{Call, End, Outcome, walk};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const SHAPE: Shape = Shape {
    public_ip: false,
    subnets: 2,
    max_concurrency: 8,
    step_timeout_seconds: 3600,
};

fn task(exit: Option<i64>, stopped: &str) -> String {
    let container = match exit {
        Some(code) => json!({"Name": "pipeline", "ExitCode": code, "LastStatus": "STOPPED"}),
        None => json!({"Name": "pipeline", "LastStatus": "STOPPED", "Reason": stopped}),
    };
    json!({"Containers": [container], "LastStatus": "STOPPED",
           "StopCode": if exit.is_some() { "EssentialContainerExited" } else { "TaskFailedToStart" },
           "StoppedReason": stopped, "TaskArn": "arn:aws:ecs:eu-west-1:1:task/c/0a"})
    .to_string()
}

fn err(error: &str, cause: Option<String>) -> Outcome {
    Outcome::Err(error.into(), cause)
}

const DENIED: &str = "User: arn:aws:sts::111122223333:assumed-role/pipeline-sm/x is not \
                      authorized to perform: ecs:TagResource on resource: arn:aws:ecs:eu-west-1:\
                      111122223333:task/chrono-acme-prod/* because no identity-based policy \
                      allows the ecs:TagResource action";
const IMAGE: &str = "CannotPullContainerError: pull image manifest has been retried 5 time(s): \
                     111122223333.dkr.ecr.eu-west-1.amazonaws.com/chrono-runtime:abc: not found";

/// One kind of failure of the ECS state `state`: its outcomes, attempt after attempt.
struct Kind {
    name: &'static str,
    outcomes: Vec<Outcome>,
    /// The message the step left in `step-error.json`, if its container ran.
    step_error: Option<&'static str>,
    /// What the evidence's reason must contain.
    reason: &'static str,
}

fn kinds() -> Vec<Kind> {
    let exited = |code| {
        err(
            "States.TaskFailed",
            Some(task(Some(code), "Essential container in task exited")),
        )
    };
    vec![
        Kind {
            name: "bad input (exit 65), not retried",
            outcomes: vec![exited(65)],
            step_error: Some("x.bin: unknown evidence format"),
            reason: "failed with exit code 65: x.bin: unknown evidence format",
        },
        Kind {
            name: "temporary failure (exit 75) on every attempt",
            outcomes: vec![exited(75), exited(75), exited(75), exited(75)],
            step_error: Some("database unreachable"),
            reason: "failed with exit code 75: database unreachable",
        },
        Kind {
            name: "image missing: the task stopped before the container ran",
            outcomes: vec![err("States.TaskFailed", Some(task(None, IMAGE)))],
            step_error: None,
            reason: "could not run: CannotPullContainerError",
        },
        Kind {
            name: "launch denied, plain text under States.TaskFailed",
            outcomes: vec![err("States.TaskFailed", Some(DENIED.into()))],
            step_error: None,
            reason: "failed (States.TaskFailed): User: arn:aws:sts::111122223333:assumed-role/pipeline-sm/x is not authorized to perform: ecs:TagResource",
        },
        Kind {
            name: "launch denied as an ECS API error",
            outcomes: vec![err("ECS.AccessDeniedException", Some(DENIED.into()))],
            step_error: None,
            reason: "failed (ECS.AccessDeniedException): User:",
        },
        Kind {
            name: "ECS service error, retried three times",
            outcomes: (0..4)
                .map(|_| err("ECS.AmazonECSException", Some("Service Unavailable".into())))
                .collect(),
            step_error: None,
            reason: "failed (ECS.AmazonECSException): Service Unavailable",
        },
        Kind {
            name: "no capacity (RunTask Failures)",
            outcomes: vec![err(
                "AmazonECS.Unknown",
                Some("{\"Failures\":[{\"Reason\":\"RESOURCE:ENI\"}]}".into()),
            )],
            step_error: None,
            reason: "failed (AmazonECS.Unknown): {\"Failures\":[{\"Reason\":\"RESOURCE:ENI\"}]}",
        },
        Kind {
            name: "timeout",
            outcomes: vec![err("States.Timeout", None)],
            step_error: None,
            reason: "timed out (States.Timeout)",
        },
        Kind {
            name: "a task failure without a cause",
            outcomes: vec![err("States.TaskFailed", None)],
            step_error: None,
            reason: "failed (States.TaskFailed)",
        },
    ]
}

/// Walks `states` from `start`, the ECS state `failing` following `outcomes` (then
/// succeeding), every other task and map succeeding. Returns the walk and the
/// `FailEvidence` payloads sent.
fn run(
    states: &serde_json::Map<String, Value>,
    start: &str,
    input: Value,
    failing: &str,
    outcomes: &[Outcome],
) -> (chrono_tests::asl::Walk, Vec<Value>) {
    let mut left = outcomes.iter();
    let w = walk(states, start, input, |call: &Call| {
        if call.state == failing {
            left.next().cloned().unwrap_or(Outcome::Ok)
        } else {
            Outcome::Ok
        }
    });
    let payloads = w
        .calls
        .iter()
        .filter(|c| c.state == FAIL_STATE)
        .map(|c| c.parameters["Payload"].clone())
        .collect();
    (w, payloads)
}

struct World {
    pool: PgPool,
    s3: Client,
    _moto: chrono_tests::moto::Moto,
    case_id: Uuid,
}

impl World {
    async fn new(pool: PgPool) -> World {
        let moto = chrono_tests::moto::Moto::start().expect("moto");
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .endpoint_url(moto.endpoint())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .force_path_style(true)
            .build();
        let s3 = Client::from_conf(conf);
        for bucket in ["sources", "artifacts"] {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        let case_id = Uuid::now_v7();
        sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, 'failures', 'tester')")
            .bind(case_id)
            .execute(&pool)
            .await
            .unwrap();
        World {
            pool,
            s3,
            _moto: moto,
            case_id,
        }
    }

    fn buckets() -> Buckets {
        Buckets {
            sources: "sources".into(),
            artifacts: "artifacts".into(),
        }
    }

    async fn evidence(&self) -> Target {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO evidence (id, case_id, file_name, source_key, created_by, state)
             VALUES ($1, $2, 'x.bin', $3, 'tester', 'processing')",
        )
        .bind(id)
        .bind(self.case_id)
        .bind(format!("cases/{}/evidence/{id}/x.bin", self.case_id))
        .execute(&self.pool)
        .await
        .unwrap();
        Target {
            case_id: self.case_id,
            evidence_id: id,
        }
    }

    async fn state(&self, t: Target) -> (String, Value) {
        sqlx::query_as("SELECT state, errors FROM evidence WHERE id = $1")
            .bind(t.evidence_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// What the API function does with a `FailEvidence` payload.
    async fn fail(&self, payload: &Value) -> String {
        assert_eq!(payload["chrono_command"], failure::COMMAND);
        let request: FailEvidence = serde_json::from_value(payload.clone()).unwrap();
        failure::fail_evidence(&self.s3, &Self::buckets(), &self.pool, &request)
            .await
            .unwrap()
    }
}

fn input(t: Target) -> Value {
    json!({"evidence_id": t.evidence_id, "case_id": t.case_id,
           "source_key": format!("cases/{}/evidence/{}/x.bin", t.case_id, t.evidence_id)})
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn every_failure_of_split_ends_with_the_evidence_failed_and_a_readable_reason(pool: PgPool) {
    let world = World::new(pool).await;
    let def = pipeline::definition(&SHAPE);
    let states = def["States"].as_object().unwrap();
    for kind in kinds() {
        let t = world.evidence().await;
        if let Some(message) = kind.step_error {
            let e = StepError {
                step: "split".into(),
                part: None,
                message: message.into(),
                exit_code: 65,
            };
            jobs::record_step_error(&world.s3, &World::buckets(), t, &e).await;
        }
        let (w, payloads) = run(states, "Init", input(t), "Split", &kind.outcomes);
        assert_eq!(
            w.end,
            End::Failed("EvidenceFailed".into()),
            "{}: {w:?}",
            kind.name
        );
        assert_eq!(payloads.len(), 1, "{}: {w:?}", kind.name);
        assert_eq!(payloads[0]["step"], "split", "{}", kind.name);
        assert!(
            !w.path.contains(&"ProcessParts".to_owned()),
            "{}: went on after a failed split",
            kind.name
        );
        let reason = world.fail(&payloads[0]).await;
        assert!(
            reason.starts_with("split ") && reason.contains(kind.reason),
            "{}: {reason}",
            kind.name
        );
        let (state, errors) = world.state(t).await;
        assert_eq!(state, "failed", "{}", kind.name);
        assert_eq!(errors[0]["message"], reason.as_str(), "{}", kind.name);
    }
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn a_failing_part_reports_itself_and_the_map_failure_keeps_its_reason(pool: PgPool) {
    let world = World::new(pool).await;
    let def = pipeline::definition(&SHAPE);
    let map = &def["States"]["ProcessParts"];
    let part_states = map["ItemProcessor"]["States"].as_object().unwrap();
    for kind in kinds() {
        for step in ["Parse", "Upload"] {
            let t = world.evidence().await;
            let part = format!("evidence/{}/parts/part-00002.json", t.evidence_id);
            if let Some(message) = kind.step_error {
                let e = StepError {
                    step: step.to_lowercase(),
                    part: Some(part.clone()),
                    message: message.into(),
                    exit_code: 65,
                };
                jobs::record_step_error(&world.s3, &World::buckets(), t, &e).await;
            }
            // The child execution's input, as the map's ItemSelector builds it.
            let item = json!({"evidence_id": t.evidence_id, "case_id": t.case_id, "part": part,
                              "retry": map["ItemSelector"]["retry"].clone()});
            let (w, payloads) = run(part_states, "Parse", item, step, &kind.outcomes);
            assert_eq!(
                w.end,
                End::Failed("PartFailed".into()),
                "{step} {}: {w:?}",
                kind.name
            );
            assert_eq!(payloads.len(), 1, "{step} {}", kind.name);
            let first = world.fail(&payloads[0]).await;
            assert!(
                first.starts_with(&step.to_lowercase()) && first.contains(kind.reason),
                "{step} {}: {first}",
                kind.name
            );

            // Then the map fails, and the parent's FailEvidence finds the evidence failed.
            let (w, payloads) = run(
                def["States"].as_object().unwrap(),
                "Init",
                input(t),
                "ProcessParts",
                &[err(
                    "States.ExceedToleratedFailureThreshold",
                    Some("The specified tolerated failure threshold was exceeded".into()),
                )],
            );
            assert_eq!(w.end, End::Failed("EvidenceFailed".into()));
            assert_eq!(payloads[0]["step"], "parts");
            assert_eq!(
                world.fail(&payloads[0]).await,
                first,
                "{step} {}",
                kind.name
            );
            let (state, errors) = world.state(t).await;
            assert_eq!(
                (state.as_str(), errors[0]["message"].as_str()),
                ("failed", Some(first.as_str()))
            );
        }
    }
}

#[test]
fn a_step_that_exits_75_once_is_retried_and_the_pipeline_goes_on() {
    let def = pipeline::definition(&SHAPE);
    let exited = err("States.TaskFailed", Some(task(Some(75), "exited")));
    let t = Target {
        case_id: Uuid::now_v7(),
        evidence_id: Uuid::now_v7(),
    };
    let (w, payloads) = run(
        def["States"].as_object().unwrap(),
        "Init",
        input(t),
        "Split",
        &[exited],
    );
    assert_eq!(w.end, End::Succeeded, "{w:?}");
    assert!(payloads.is_empty());
    let splits = w.path.iter().filter(|s| *s == "Split").count();
    assert_eq!(splits, 2, "{:?}", w.path);
    assert!(w.path.contains(&"SplitWait".to_owned()));
}
