//! `deploy --hotswap` against the local AWS emulator (moto) over HTTP, with the runtime
//! image pushed to a real registry on loopback: a full deploy of the real bootstrap stack
//! and a compute-like stack (a Lambda function whose code is an asset, an ECS task
//! definition running the image by digest, a service and a state machine running it),
//! then a hot swap of code only (Lambda `UpdateFunctionCode`, ECS `RegisterTaskDefinition`
//! and `UpdateService`, Step Functions `UpdateStateMachine`), recorded in the bootstrap
//! lock table and shown by `status`; a refused hot swap (a non-code parameter changed, and
//! the prod stage); and the next full deploy reconciling what was swapped with
//! CloudFormation (here: back to the code CloudFormation has, the case CloudFormation alone
//! would not see) and clearing the record.
//!
//! The emulator ignores `DefinitionSubstitutions`, so the state machine here substitutes the
//! task definition with `Fn::Sub` (the compute stack's form is covered by the unit tests
//! of `deploy::hotswap::consumers`). The emulator has no registry API: the test records
//! each image in its ECR with `PutImage`, as ECR would on a push.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono_provisioner::aws::Clients;
use chrono_provisioner::build::artifacts::ShipImage;
use chrono_provisioner::build::image::{self, ImageInput};
use chrono_provisioner::deploy::cfn::Timing;
use chrono_provisioner::deploy::hotswap::{SwapKind, code_sha256_of_key};
use chrono_provisioner::deploy::image::content_tag;
use chrono_provisioner::deploy::plan::PlanImage;
use chrono_provisioner::deploy::progress::Collect;
use chrono_provisioner::deploy::target::{TargetArgs, load_plan};
use chrono_provisioner::deploy::{
    Asset, DeployError, DeployOptions, DeployPlan, Engine, ParamSource, PlannedStack, StackOutcome,
};
use chrono_tests::moto::Moto;
use chrono_tests::registry::Registry;

const COMPUTE: &str = r#"{
  "Parameters": {
    "AssetsBucketName": {"Type": "String"}, "CodeKey": {"Type": "String"},
    "RepositoryUri": {"Type": "String"}, "ImageDigest": {"Type": "String"},
    "LogLevel": {"Type": "String"}
  },
  "Resources": {
    "FnRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17",
      "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
    "ApiFunction": {"Type": "AWS::Lambda::Function", "Properties": {
      "FunctionName": "chrono-demo-local-api", "Runtime": "provided.al2023", "Handler": "bootstrap",
      "Role": {"Fn::GetAtt": ["FnRole", "Arn"]},
      "Code": {"S3Bucket": {"Ref": "AssetsBucketName"}, "S3Key": {"Ref": "CodeKey"}},
      "Environment": {"Variables": {"LOG_LEVEL": {"Ref": "LogLevel"}}}}},
    "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "chrono-demo-local"}},
    "TaskDef": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
      "Family": "chrono-demo-local-filter-ai", "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc",
      "Cpu": "256", "Memory": "512",
      "ContainerDefinitions": [{"Name": "filter-ai", "Essential": true,
        "Image": {"Fn::Sub": "${RepositoryUri}@${ImageDigest}"}}]}},
    "Service": {"Type": "AWS::ECS::Service", "Properties": {
      "Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "TaskDef"}, "DesiredCount": 0, "ServiceName": "filter-ai"}},
    "SmRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17",
      "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
    "Pipeline": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
      "StateMachineName": "chrono-demo-local-pipeline", "RoleArn": {"Fn::GetAtt": ["SmRole", "Arn"]},
      "DefinitionString": {"Fn::Sub": "{\"StartAt\":\"Parse\",\"States\":{\"Parse\":{\"Type\":\"Task\",\"Resource\":\"arn:aws:states:::ecs:runTask.sync\",\"Parameters\":{\"TaskDefinition\":\"${TaskDef}\"},\"End\":true}}}"}}}
  },
  "Outputs": {"FunctionName": {"Value": {"Ref": "ApiFunction"}}}
}"#;

fn image(tag: &[u8]) -> ShipImage {
    let img = image::assemble(&ImageInput {
        arch: chrono_stacks::config::Architecture::X86_64,
        base: image::users_and_tmp(),
        binaries: vec![("chrono-filter-ai".into(), tag.to_vec())],
        entrypoint: "chrono-filter-ai".into(),
        env: Vec::new(),
        labels: BTreeMap::new(),
    })
    .unwrap();
    ShipImage {
        dir: std::path::PathBuf::from("/nonexistent"),
        image: img,
    }
}

/// The real bootstrap stack of `demo-local` and the compute-like stack.
fn plan(code: &[u8], img: &ShipImage, log_level: &str) -> DeployPlan {
    let t = TargetArgs {
        config: vec![
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../customers/demo-local.yaml"),
        ],
        templates: None,
        artifacts: None,
        registry_url: None,
        profile: None,
        region: None,
        endpoint_url: None,
        poll_ms: 5,
    };
    let (mut plan, _, _) = load_plan(&t).expect("demo-local synthesizes");
    plan.stacks.retain(|s| s.name == "bootstrap");
    plan.assets.clear();
    plan.image = PlanImage::Built(img.clone());
    plan.with_asset(Asset::zip("chrono-api", code.to_vec()))
        .with_stack(
            PlannedStack::new("compute", COMPUTE)
                .depends_on("bootstrap")
                .param("AssetsBucketName", ParamSource::AssetsBucket)
                .param(
                    "CodeKey",
                    ParamSource::AssetKey {
                        asset: "chrono-api".into(),
                    },
                )
                // The bootstrap output `RuntimeRepositoryUri` in AWS; the emulator does not
                // report `Fn::GetAtt` outputs after a change set.
                .param(
                    "RepositoryUri",
                    ParamSource::Literal {
                        value:
                            "123456789012.dkr.ecr.us-east-1.amazonaws.com/chrono-demo-local-runtime"
                                .into(),
                    },
                )
                .param("ImageDigest", ParamSource::ImageDigest)
                .param(
                    "LogLevel",
                    ParamSource::Literal {
                        value: log_level.into(),
                    },
                ),
        )
}

async fn clients(moto: &Moto) -> Clients {
    Clients::from_sdk_config(&moto.sdk_config("us-east-1").await)
}

fn engine(c: &Clients, registry: &Registry) -> Engine {
    Engine::new(
        c.clone(),
        DeployOptions {
            timing: Timing {
                poll: Duration::from_millis(5),
                stack_timeout: Duration::from_secs(60),
                in_progress_timeout: Duration::from_secs(60),
            },
            lock_owner: "ci@test".into(),
            registry_url: Some(registry.url()),
            ..DeployOptions::default()
        },
        Arc::new(Collect::default()),
    )
}

/// What ECR records of a push (the emulator has no registry API).
async fn record_in_ecr(c: &Clients, img: &ShipImage) {
    c.ecr
        .put_image()
        .repository_name("chrono-demo-local-runtime")
        .image_manifest(String::from_utf8(img.image.manifest.bytes.clone()).unwrap())
        .image_manifest_media_type(image::MANIFEST_MEDIA_TYPE)
        .image_digest(img.image.digest())
        .image_tag(content_tag(img.image.digest()))
        .send()
        .await
        .unwrap();
}

async fn code_sha(c: &Clients) -> String {
    c.lambda
        .get_function()
        .function_name("chrono-demo-local-api")
        .send()
        .await
        .unwrap()
        .configuration()
        .and_then(|f| f.code_sha256())
        .unwrap_or_default()
        .to_owned()
}

async fn service_task_definition(c: &Clients) -> String {
    c.ecs
        .describe_services()
        .cluster("chrono-demo-local")
        .services("filter-ai")
        .send()
        .await
        .unwrap()
        .services()[0]
        .task_definition()
        .unwrap_or_default()
        .to_owned()
}

async fn state_machine_definition(c: &Clients) -> String {
    let arn = c
        .sfn
        .list_state_machines()
        .send()
        .await
        .unwrap()
        .state_machines()[0]
        .state_machine_arn()
        .to_owned();
    c.sfn
        .describe_state_machine()
        .state_machine_arn(arn)
        .send()
        .await
        .unwrap()
        .definition()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotswap_swaps_code_refuses_the_rest_and_the_next_deploy_reconciles() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    moto.reset().unwrap();
    let registry = Registry::start().expect("docker-registry starts (run `make registry-bin`)");
    let c = clients(&moto).await;
    let e = engine(&c, &registry);
    let (img1, img2) = (image(b"filter-ai v1"), image(b"filter-ai v2"));
    let v1 = plan(b"api v1", &img1, "info");

    // The bootstrap stack first (it holds the repository), then everything.
    let mut boot_only = v1.clone();
    boot_only.stacks.retain(|s| s.name == "bootstrap");
    boot_only.image = PlanImage::None;
    assert!(e.deploy(&boot_only).await.unwrap().is_success());
    record_in_ecr(&c, &img1).await;
    let r = e.deploy(&v1).await.unwrap();
    assert!(r.is_success(), "{r:#?}");
    assert_eq!(r.stack("compute").unwrap().outcome, StackOutcome::Created);
    assert_eq!(r.image.as_ref().unwrap().blobs_uploaded, 3);
    let key1 = v1.asset("chrono-api").unwrap().key();
    assert_eq!(code_sha(&c).await, code_sha256_of_key(&key1).unwrap());
    let cfn_td = service_task_definition(&c).await;
    assert!(state_machine_definition(&c).await.contains(&cfn_td));

    // Code only: swapped in place, recorded, shown by status.
    let v2 = plan(b"api v2", &img2, "info");
    record_in_ecr(&c, &img2).await;
    let h = e.hotswap(&v2).await.unwrap();
    assert_eq!(h.changes, 2, "{h:#?}");
    let kinds: Vec<SwapKind> = h.swapped.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SwapKind::LambdaCode, SwapKind::TaskDefinition]);
    let key2 = v2.asset("chrono-api").unwrap().key();
    assert_eq!(code_sha(&c).await, code_sha256_of_key(&key2).unwrap());
    let swapped_td = service_task_definition(&c).await;
    assert_ne!(swapped_td, cfn_td);
    let td = c
        .ecs
        .describe_task_definition()
        .task_definition(&swapped_td)
        .send()
        .await
        .unwrap();
    let container = &td.task_definition().unwrap().container_definitions()[0];
    assert!(
        container
            .image()
            .unwrap()
            .ends_with(&format!("@{}", img2.image.digest())),
        "{container:?}"
    );
    let def = state_machine_definition(&c).await;
    assert!(def.contains(&swapped_td) && !def.contains(&cfn_td), "{def}");
    let status = e.status(&v2).await.unwrap();
    let compute = status.iter().find(|s| s.name == "compute").unwrap();
    assert_eq!(compute.hotswapped.len(), 2, "{compute:#?}");
    assert!(compute.hotswapped[0].contains("ApiFunction"));

    // Anything but code is refused, naming the reason, and changes nothing.
    let other = plan(b"api v2", &img2, "debug");
    match e.hotswap(&other).await {
        Err(DeployError::HotswapRefused(reason)) => {
            assert!(reason.contains("parameter LogLevel changed"), "{reason}");
        }
        r => panic!("a non-code change was hot-swapped: {r:?}"),
    }
    assert_eq!(code_sha(&c).await, code_sha256_of_key(&key2).unwrap());
    let mut prod = v2.clone();
    prod.stage = "prod".into();
    match e.hotswap(&prod).await {
        Err(DeployError::HotswapRefused(reason)) => {
            assert!(reason.contains("production"), "{reason}")
        }
        r => panic!("prod was hot-swapped: {r:?}"),
    }

    // The next full deploy, with the code CloudFormation has (so CloudFormation changes
    // nothing): reality is brought back, the swapped revision deregistered, the record gone.
    let r = e.deploy(&v1).await.unwrap();
    assert!(r.is_success(), "{r:#?}");
    assert_eq!(r.stack("compute").unwrap().outcome, StackOutcome::Unchanged);
    assert_eq!(r.reconciled.len(), 2, "{r:#?}");
    assert_eq!(code_sha(&c).await, code_sha256_of_key(&key1).unwrap());
    assert_eq!(service_task_definition(&c).await, cfn_td);
    let def = state_machine_definition(&c).await;
    assert!(def.contains(&cfn_td) && !def.contains(&swapped_td), "{def}");
    let old = c
        .ecs
        .describe_task_definition()
        .task_definition(&swapped_td)
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.task_definition().unwrap().status().map(|s| s.as_str()),
        Some("INACTIVE")
    );
    let status = e.status(&v1).await.unwrap();
    assert!(
        status.iter().all(|s| s.hotswapped.is_empty()),
        "{status:#?}"
    );
    // And a second full deploy has nothing left to reconcile.
    let r = e.deploy(&v1).await.unwrap();
    assert!(r.reconciled.is_empty());
}
