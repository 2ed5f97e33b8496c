//! IAM sufficiency of the runtime's roles, proven on the emulator with IAM enforcement on
//! (issue 13, "Make the local world strict").
//!
//! For each role of the synthesized compute stack, resolved like CloudFormation with the
//! emulator's own resources (bucket names, the secret's ARN, the table names, the state
//! machine), an IAM user gets exactly that role's policy; with enforcement on
//! ([`Moto::enforce_iam`]) the runtime's own functions and clients, signed with the user's
//! access key, make their real AWS calls and must succeed. A negative control per service
//! removes one statement the calls need and expects `AccessDenied`, so the check bites.
//!
//! What moto 5.2.5 enforces (read in its source, `iam/access_control.py`,
//! `core/responses.py`, `s3/responses.py`; <https://docs.getmoto.org/en/latest/docs/iam.html>):
//! * the caller's identity policies, with `Allow`/`Deny`, `Action` wildcards and, for **S3
//!   only, the resource** (`arn:aws:s3:::bucket` or `bucket/key`);
//! * for every other service the action only: the resource moto authorizes is always `*`,
//!   so a statement scoped to a table or a secret would never match. The statements of
//!   DynamoDB, Step Functions and Secrets Manager are therefore handed to moto with
//!   `Resource: *` (the action is proven on the emulator) and their resources are checked
//!   on the actual ARNs the emulator gave, with the documented-rules evaluator
//!   (`chrono_tests::iam`);
//! * not: conditions of identity policies (moto passes no request context, so a condition
//!   is taken as met: an Allow with a condition counts as unconditional), presigned URLs
//!   (no `Authorization` header to check), KMS on behalf of S3 and DynamoDB (SSE-KMS),
//!   Bedrock (moto's bedrock-runtime serves `InvokeModel` only, the runtime calls
//!   `Converse`; the role's statements are conditioned), the API Gateway management API
//!   (moto authorizes `execute-api:PostToConnection`, AWS `execute-api:ManageConnections`,
//!   <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html>),
//!   CloudWatch Logs written by Lambda/ECS, and the state machine's role (moto's Step
//!   Functions interpreter calls with fixed credentials). Those rest on the evaluator:
//!   `tests/tests/bedrock_iam.rs`, `state_machine_iam.rs`, the `@connections` check below.

use chrono_runtime::ai::provider::Intent;
use chrono_runtime::ai::store::{ChatStore, DynamoStore, Session, TableNames, Turn};
use chrono_runtime::db::credentials::SecretSource;
use chrono_runtime::launcher::{PipelineJob, PipelineLauncher, StepFunctionsLauncher};
use chrono_runtime::pipeline::jobs::{self, Buckets, StepError};
use chrono_runtime::pipeline::steps::ParseOptions;
use chrono_runtime::pipeline::upload::Target;
use chrono_runtime::storage::{SourcesBucket, UploadedPart};
use chrono_stacks::StackKind;
use chrono_stacks::config::Config;
use chrono_stacks::synth::build_stacks;
use chrono_tests::iam::{Request, Values, allows, role_statements};
use chrono_tests::moto::Moto;
use serde_json::{Value, json};
use uuid::Uuid;

const REGION: &str = "eu-west-1";
/// moto's default account, which owns every resource and IAM user created below.
const ACCOUNT: &str = "123456789012";

/// Services whose calls moto authorizes on the action only (resource always `*`).
const ACTION_ONLY: [&str; 3] = ["dynamodb", "states", "secretsmanager"];

fn sdk(moto: &Moto, key: &str, secret: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(key, secret, None, None, "test"),
            ),
        )
        .build()
}

/// The emulator with the resources of one deployment, and the compute template resolved
/// against them.
struct World {
    moto: Moto,
    template: Value,
    values: Values,
    buckets: Buckets,
    tables: TableNames,
    secret_arn: String,
    state_machine_arn: String,
    target: Target,
    source_key: String,
}

const SYSLOG: &str = "2024-03-14T15:00:00Z web1 sshd[811]: Failed password for bob from 10.0.0.7\n\
2024-03-14T15:00:05Z web1 sshd[811]: Accepted password for bob from 10.0.0.7\n";

impl World {
    async fn new() -> World {
        let path = format!("{}/../customers/acme-prod.yaml", env!("CARGO_MANIFEST_DIR"));
        let cfg = Config::load(std::path::Path::new(&path)).unwrap();
        let stacks = build_stacks(&cfg).unwrap();
        let template_of = |kind| {
            stacks
                .iter()
                .find(|s| s.kind == kind)
                .unwrap()
                .template
                .to_json()
        };
        let data = template_of(StackKind::Data);
        let template = template_of(StackKind::Compute);
        let moto = Moto::start().expect("moto");
        let root = sdk(&moto, "test", "test");
        let prefix = cfg.prefix();

        // Buckets and tables as the data stack declares them (tables: its key schemas).
        let buckets = Buckets {
            sources: format!("{prefix}-sources"),
            artifacts: format!("{prefix}-artifacts"),
        };
        let s3 = SourcesBucket::client_from(&root);
        for b in [&buckets.sources, &buckets.artifacts] {
            s3.create_bucket()
                .bucket(b)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        let dynamo = aws_sdk_dynamodb::Client::new(&root);
        let mut table_names = Vec::new();
        for r in data["Resources"].as_object().unwrap().values() {
            if r["Type"] != "AWS::DynamoDB::Table" {
                continue;
            }
            let p = &r["Properties"];
            let name = p["TableName"].as_str().unwrap().to_owned();
            let mut req = dynamo
                .create_table()
                .table_name(&name)
                .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest);
            for a in p["AttributeDefinitions"].as_array().unwrap() {
                req = req.attribute_definitions(
                    aws_sdk_dynamodb::types::AttributeDefinition::builder()
                        .attribute_name(a["AttributeName"].as_str().unwrap())
                        .attribute_type(a["AttributeType"].as_str().unwrap().into())
                        .build()
                        .unwrap(),
                );
            }
            for k in p["KeySchema"].as_array().unwrap() {
                req = req.key_schema(
                    aws_sdk_dynamodb::types::KeySchemaElement::builder()
                        .attribute_name(k["AttributeName"].as_str().unwrap())
                        .key_type(k["KeyType"].as_str().unwrap().into())
                        .build()
                        .unwrap(),
                );
            }
            req.send().await.unwrap();
            table_names.push(name);
        }
        let table = |suffix: &str| {
            table_names
                .iter()
                .find(|n| n.ends_with(suffix))
                .unwrap_or_else(|| panic!("no table *{suffix} in the data stack"))
                .clone()
        };
        let tables = TableNames {
            sessions: table("-sessions"),
            intent_cache: table("-intent-cache"),
            conversations: table("-conversations"),
        };

        let secret_arn = aws_sdk_secretsmanager::Client::new(&root)
            .create_secret()
            .name(format!("{prefix}-db"))
            .secret_string(json!({"username": "chrono_admin", "password": "pw"}).to_string())
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_owned();
        let state_machine_arn = aws_sdk_sfn::Client::new(&root)
            .create_state_machine()
            .name(chrono_stacks::compute::state_machine_name(&cfg))
            .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}"#)
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/pipeline"))
            .send()
            .await
            .unwrap()
            .state_machine_arn()
            .to_owned();

        // The evidence as the browser leaves it, and a step error the failure path reads.
        let target = Target {
            case_id: Uuid::now_v7(),
            evidence_id: Uuid::now_v7(),
        };
        let source_key =
            chrono_runtime::storage::source_key(target.case_id, target.evidence_id, "auth.log");
        s3.put_object()
            .bucket(&buckets.sources)
            .key(&source_key)
            .body(SYSLOG.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();

        // The compute stack's parameters and attributes, as CloudFormation resolves them.
        let mut values = Values::new(REGION, ACCOUNT);
        for name in template["Parameters"].as_object().unwrap().keys() {
            let v = match name.as_str() {
                "SourcesBucketName" => buckets.sources.clone(),
                "ArtifactsBucketName" => buckets.artifacts.clone(),
                "SessionsTableName" => tables.sessions.clone(),
                "IntentCacheTableName" => tables.intent_cache.clone(),
                "ConversationsTableName" => tables.conversations.clone(),
                "DatabaseSecretArn" => secret_arn.clone(),
                "DataKeyArn" => format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/1111-2222"),
                other => format!("value-of-{other}"),
            };
            values.set(name, v);
        }
        for id in template["Resources"].as_object().unwrap().keys() {
            values.set(id, format!("{id}-physical"));
            values.set(
                &format!("{id}.Arn"),
                format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{id}"),
            );
        }
        World {
            moto,
            template,
            values,
            buckets,
            tables,
            secret_arn,
            state_machine_arn,
            target,
            source_key,
        }
    }

    /// The role's statements as the template resolves them.
    fn statements(&self, role: &str) -> Vec<Value> {
        role_statements(&self.template, role, &self.values).unwrap()
    }

    /// An IAM user whose only policy is `statements` (as moto can enforce them), and an
    /// SDK config signing with its access key.
    async fn user(&self, name: &str, statements: &[Value]) -> aws_config::SdkConfig {
        let moto_statements: Vec<Value> = statements
            .iter()
            .map(|s| {
                let services: Vec<String> = chrono_tests::iam::actions(s)
                    .iter()
                    .map(|a| a.split(':').next().unwrap_or_default().to_owned())
                    .collect();
                let mut s = s.clone();
                if services
                    .iter()
                    .all(|svc| ACTION_ONLY.contains(&svc.as_str()))
                {
                    s["Resource"] = json!("*");
                }
                s
            })
            .collect();
        let iam = aws_sdk_iam::Client::new(&sdk(&self.moto, "test", "test"));
        iam.create_user().user_name(name).send().await.unwrap();
        iam.put_user_policy()
            .user_name(name)
            .policy_name("role-policy")
            .policy_document(
                json!({"Version": "2012-10-17", "Statement": moto_statements}).to_string(),
            )
            .send()
            .await
            .unwrap();
        let key = iam
            .create_access_key()
            .user_name(name)
            .send()
            .await
            .unwrap()
            .access_key
            .unwrap();
        sdk(&self.moto, key.access_key_id(), key.secret_access_key())
    }

    fn arn(&self, service: &str, rest: &str) -> String {
        format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}")
    }
}

/// `statements` without the `sid` statement, or with `action` taken out of it.
fn without(statements: &[Value], sid: &str, action: Option<&str>) -> Vec<Value> {
    let mut found = false;
    let out = statements
        .iter()
        .filter_map(|s| {
            if s["Sid"] != sid {
                return Some(s.clone());
            }
            found = true;
            let action = action?;
            let mut s = s.clone();
            let kept: Vec<Value> = chrono_tests::iam::actions(&s)
                .into_iter()
                .filter(|a| a != action)
                .map(Value::from)
                .collect();
            s["Action"] = Value::Array(kept);
            Some(s)
        })
        .collect();
    assert!(found, "no statement {sid}");
    out
}

fn denied(message: &str) -> bool {
    message.contains("AccessDenied")
}

/// The resource-level half for the services moto authorizes on the action only.
fn assert_allows(statements: &[Value], requests: &[Request]) {
    for r in requests {
        assert!(
            allows(statements, r).unwrap(),
            "the role does not allow {r:?}"
        );
    }
}

/// Writes the tables, reads them back: every call of the chat store (both AI roles).
async fn chat_store_round_trip(store: &DynamoStore, id: &str) -> Result<(), String> {
    let err = |e: chrono_runtime::ai::store::StoreError| e.to_string();
    let now = chrono::Utc::now();
    let session = Session {
        id: id.into(),
        user: "analyst".into(),
        case_id: Uuid::now_v7(),
        tz: "UTC".into(),
        recent: vec!["failed logons".into()],
        expires_at: now.timestamp() + 600,
    };
    store.put_session(&session).await.map_err(err)?;
    assert_eq!(store.session(id).await.map_err(err)?, Some(session.clone()));
    store
        .cache_intent(id, Intent::Injection)
        .await
        .map_err(err)?;
    assert_eq!(
        store.cached_intent(id).await.map_err(err)?,
        Some(Intent::Injection)
    );
    let turn = Turn {
        session_id: id.into(),
        at: now,
        user: "analyst".into(),
        case_id: session.case_id,
        question: "failed logons?".into(),
        reply: json!({"kind": "answer"}),
    };
    store.put_turn(&turn).await.map_err(err)?;
    assert_eq!(store.turns(id).await.map_err(err)?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn every_runtime_role_suffices_for_its_calls_on_the_emulator_with_iam_enforced() {
    let w = World::new().await;
    let api = w.statements("ApiRole");
    let pipeline = w.statements("PipelineTaskRole");
    let chat = w.statements("AiChatRole");
    let filter_ai = w.statements("FilterAiTaskRole");
    let migrate = w.statements("MigrateRole");
    let api_sdk = w.user("api", &api).await;
    let api_no_put = w
        .user(
            "api-no-put",
            &without(&api, "EvidenceObjects", Some("s3:PutObject")),
        )
        .await;
    let api_no_start = w
        .user("api-no-start", &without(&api, "StartPipeline", None))
        .await;
    let api_no_watch = w
        .user("api-no-watch", &without(&api, "WatchPipeline", None))
        .await;
    let pipeline_sdk = w.user("pipeline", &pipeline).await;
    let pipeline_no_put = w
        .user(
            "pipeline-no-put",
            &without(&pipeline, "ReadWriteArtifacts", Some("s3:PutObject")),
        )
        .await;
    let pipeline_no_list = w
        .user(
            "pipeline-no-list",
            &without(&pipeline, "ListEvidence", None),
        )
        .await;
    let pipeline_no_secret = w
        .user(
            "pipeline-no-secret",
            &without(&pipeline, "ReadDatabaseSecret", None),
        )
        .await;
    let chat_sdk = w.user("ai-chat", &chat).await;
    let chat_no_put = w
        .user(
            "ai-chat-no-put",
            &without(&chat, "UseAiTables", Some("dynamodb:PutItem")),
        )
        .await;
    let filter_ai_sdk = w.user("filter-ai", &filter_ai).await;
    let migrate_sdk = w.user("migrate", &migrate).await;
    w.moto.enforce_iam().unwrap();

    // The check bites at all: an unknown key is refused, and so is a user for a call
    // outside its policy.
    let pipeline_s3 = SourcesBucket::client_from(&pipeline_sdk);
    let stranger = SourcesBucket::client_from(&sdk(&w.moto, "test", "test"));
    let e = stranger.list_buckets().send().await.unwrap_err();
    assert!(
        aws_sdk_s3::error::DisplayErrorContext(&e)
            .to_string()
            .contains("InvalidAccessKeyId"),
        "{e:?}"
    );

    // chrono-pipeline (PipelineTaskRole): split lists and reads the sources, writes the
    // parts, manifest and parts list; parse reads a part and writes its events; a failed
    // step leaves its error; the database secret.
    let index = jobs::split(&pipeline_s3, &w.buckets, w.target, None, 4)
        .await
        .expect("split with the pipeline role");
    let part = index.parts.first().expect("one part").clone();
    jobs::parse(
        &pipeline_s3,
        &w.buckets,
        w.target,
        &part,
        ParseOptions::default(),
    )
    .await
    .expect("parse with the pipeline role");
    let step_error = StepError {
        step: "upload".into(),
        part: Some(part.clone()),
        message: "the database refused".into(),
        exit_code: 1,
    };
    jobs::record_step_error(&pipeline_s3, &w.buckets, w.target, &step_error).await;
    let secret = |sdk: &aws_config::SdkConfig| {
        SecretSource::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            &w.secret_arn,
            "db.internal",
            5432,
            "chrono",
        )
    };
    secret(&pipeline_sdk)
        .read()
        .await
        .expect("the pipeline reads the secret");
    assert_allows(
        &pipeline,
        &[Request::new("secretsmanager:GetSecretValue", &w.secret_arn)],
    );
    // negative controls
    let e = jobs::split(
        &SourcesBucket::client_from(&pipeline_no_put),
        &w.buckets,
        w.target,
        Some(&w.source_key),
        4,
    )
    .await
    .unwrap_err();
    assert!(
        denied(&e.to_string()),
        "without s3:PutObject on artifacts: {e}"
    );
    let e = jobs::split(
        &SourcesBucket::client_from(&pipeline_no_list),
        &w.buckets,
        w.target,
        None,
        4,
    )
    .await
    .unwrap_err();
    assert!(denied(&e.to_string()), "without s3:ListBucket: {e}");
    let e = secret(&pipeline_no_secret).read().await.unwrap_err();
    assert!(denied(&e.to_string()), "without GetSecretValue: {e}");

    // chrono-api (ApiRole): multipart uploads into the sources bucket (create, complete,
    // abort; the parts themselves go through presigned URLs authorized as the API's
    // s3:PutObject, sent here signed by the API's key because moto does not authorize
    // presigned requests), the failure path reads the step error from the artifacts
    // bucket, the pipeline starts, the secret.
    let sources = SourcesBucket::new(SourcesBucket::client_from(&api_sdk), &w.buckets.sources);
    let key = chrono_runtime::storage::source_key(w.target.case_id, Uuid::now_v7(), "big.evtx");
    let upload_id = sources.create_multipart(&key).await.expect("create upload");
    let part = b"ElfFile\0".to_vec();
    let part_sha256_b64 = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&part))
    };
    let etag = SourcesBucket::client_from(&api_sdk)
        .upload_part()
        .bucket(&w.buckets.sources)
        .key(&key)
        .upload_id(&upload_id)
        .part_number(1)
        .checksum_sha256(&part_sha256_b64)
        .body(part.into())
        .send()
        .await
        .expect("upload a part as the API's presigned URL would")
        .e_tag()
        .unwrap()
        .to_owned();
    sources
        .complete_multipart(
            &key,
            &upload_id,
            &[UploadedPart {
                number: 1,
                etag,
                sha256_b64: part_sha256_b64,
            }],
        )
        .await
        .expect("complete upload");
    let other = sources.create_multipart(&format!("{key}.2")).await.unwrap();
    sources
        .abort_multipart(&format!("{key}.2"), &other)
        .await
        .expect("abort upload");
    let api_s3 = SourcesBucket::client_from(&api_sdk);
    assert_eq!(
        jobs::read_step_error(&api_s3, &w.buckets, w.target).await,
        Some(step_error.clone()),
        "the API reads the failed step's error"
    );
    let job = PipelineJob {
        case_id: w.target.case_id,
        evidence_id: w.target.evidence_id,
        source_key: w.source_key.clone(),
        sha256: None,
    };
    let job_id = Uuid::now_v7();
    let launch = |sdk: &aws_config::SdkConfig| {
        StepFunctionsLauncher::new(aws_sdk_sfn::Client::new(sdk), &w.state_machine_arn)
    };
    let execution_arn = launch(&api_sdk)
        .start(job_id, job.clone())
        .await
        .expect("the API starts the pipeline")
        .expect("Step Functions names the execution");
    launch(&api_sdk)
        .describe(execution_arn.clone())
        .await
        .expect("the API reconciles a job through its execution");
    secret(&api_sdk)
        .read()
        .await
        .expect("the API reads the secret");
    assert_allows(
        &api,
        &[
            Request::new("states:StartExecution", &w.state_machine_arn),
            Request::new("states:DescribeExecution", &execution_arn),
            Request::new("secretsmanager:GetSecretValue", &w.secret_arn),
        ],
    );
    // negative controls
    let e = SourcesBucket::new(SourcesBucket::client_from(&api_no_put), &w.buckets.sources)
        .create_multipart(&format!("{key}.3"))
        .await
        .unwrap_err();
    assert!(
        denied(&e.to_string()),
        "without s3:PutObject on sources: {e}"
    );
    let e = launch(&api_no_start)
        .start(Uuid::now_v7(), job)
        .await
        .unwrap_err();
    assert!(denied(&e.to_string()), "without states:StartExecution: {e}");
    let e = launch(&api_no_watch)
        .describe(execution_arn)
        .await
        .unwrap_err();
    assert!(
        denied(&e.to_string()),
        "without states:DescribeExecution: {e}"
    );
    // the API may not write artifacts nor read what it does not own
    let e = api_s3
        .put_object()
        .bucket(&w.buckets.artifacts)
        .key("evidence/x")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert!(denied(
        &aws_sdk_s3::error::DisplayErrorContext(&e).to_string()
    ));

    // chrono-api migrate (MigrateRole): the secret.
    secret(&migrate_sdk)
        .read()
        .await
        .expect("migrate reads the secret");
    assert_allows(
        &migrate,
        &[Request::new("secretsmanager:GetSecretValue", &w.secret_arn)],
    );

    // chrono-ai-chat (AiChatRole) and chrono-filter-ai (FilterAiTaskRole): sessions, the
    // intent cache and the conversation log in DynamoDB, the secret.
    for (who, statements, sdk) in [
        ("ai-chat", &chat, &chat_sdk),
        ("filter-ai", &filter_ai, &filter_ai_sdk),
    ] {
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), w.tables.clone());
        chat_store_round_trip(&store, who)
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        secret(sdk)
            .read()
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        let table = |name: &str| w.arn("dynamodb", &format!("table/{name}"));
        let mut requests = vec![Request::new("secretsmanager:GetSecretValue", &w.secret_arn)];
        for name in [
            &w.tables.sessions,
            &w.tables.intent_cache,
            &w.tables.conversations,
        ] {
            for action in ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"] {
                requests.push(Request::new(action, table(name)));
            }
        }
        assert_allows(statements, &requests);
    }
    // filter-ai pushes replies through the WebSocket API's @connections (evaluator only).
    let post = Request::new(
        "execute-api:ManageConnections",
        w.arn("execute-api", "a1b2c3/prod/POST/@connections/Yx1=="),
    );
    assert_allows(&filter_ai, std::slice::from_ref(&post));
    assert!(!allows(&chat, &post).unwrap(), "ai-chat never pushes");
    // chrono-ws-authorizer makes no AWS API call (it verifies the token against the user
    // pool's public JWKS over HTTPS): its role may only write its logs.
    for s in w.statements("WsAuthorizerRole") {
        for a in chrono_tests::iam::actions(&s) {
            assert!(a.starts_with("logs:"), "WsAuthorizerRole grants {a}");
        }
    }

    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&chat_no_put),
        w.tables.clone(),
    );
    let e = chat_store_round_trip(&store, "no-put").await.unwrap_err();
    assert!(denied(&e), "without dynamodb:PutItem: {e}");
}
