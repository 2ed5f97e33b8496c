//! The runtime's AWS calls over real HTTP against the local emulator (moto, installed into
//! `.venv` by `make venv`): a presigned PUT URL uploads into the sources bucket with
//! path-style addressing, the Step Functions launcher starts an execution with the job as
//! input, and the database secret is read from Secrets Manager.

mod common;

use chrono_runtime::launcher::{PipelineJob, PipelineLauncher, StepFunctionsLauncher};
use chrono_runtime::storage::SourcesBucket;
use uuid::Uuid;

use chrono_tests::moto::Moto;

#[tokio::test]
async fn aws_calls_work_against_the_local_emulator() {
    let moto = Moto::start().expect("moto");
    let sdk = common::sdk("eu-west-1", Some(&moto.endpoint()));

    // presigned PUT → object in the bucket (path-style, since an endpoint is configured)
    let s3 = SourcesBucket::client_from(&sdk);
    s3.create_bucket()
        .bucket("chrono-acme-dev-sources")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let bucket = SourcesBucket::new(s3.clone(), "chrono-acme-dev-sources");
    let key = "cases/c/evidence/e/auth.log";
    let put = bucket.presign_put(key).await.unwrap();
    assert!(
        put.url
            .starts_with(&format!("{}/chrono-acme-dev-sources/", moto.endpoint()))
    );
    let resp = reqwest::Client::new()
        .put(&put.url)
        .body("Mar  1 08:30:00 web-1 sshd[1234]: Failed password for root\n")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let got = s3
        .get_object()
        .bucket("chrono-acme-dev-sources")
        .key(key)
        .send()
        .await
        .unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert!(body.starts_with(b"Mar  1 08:30:00 web-1 sshd"));

    // Step Functions: StartExecution with the job as input
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let machine = sfn
        .create_state_machine()
        .name("chrono-acme-dev-pipeline")
        .definition(r#"{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/chrono-acme-dev-pipeline")
        .send()
        .await
        .unwrap();
    let launcher = StepFunctionsLauncher::new(sfn.clone(), machine.state_machine_arn());
    let job = PipelineJob {
        case_id: Uuid::now_v7(),
        evidence_id: Uuid::now_v7(),
        source_key: key.into(),
    };
    let arn = launcher.start(job.clone()).await.unwrap();
    let exec = sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    let input: PipelineJob = serde_json::from_str(exec.input().unwrap()).unwrap();
    assert_eq!(input, job);
    let missing = StepFunctionsLauncher::new(
        sfn,
        "arn:aws:states:eu-west-1:123456789012:stateMachine:nope",
    );
    assert!(matches!(
        missing.start(job).await,
        Err(chrono_runtime::launcher::LaunchError::Failed(_))
    ));

    // Secrets Manager: the generated database secret
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret = sm
        .create_secret()
        .name("chrono-acme-dev-db")
        .secret_string(r#"{"username": "chrono_admin", "password": "s3cr3t"}"#)
        .send()
        .await
        .unwrap();
    use chrono_runtime::db::SecretSource;
    let source = SecretSource::new(
        sm.clone(),
        secret.arn().unwrap(),
        "db.local",
        5432,
        "chrono",
    );
    let opts = source.read().await.unwrap();
    assert_eq!(opts.get_username(), "chrono_admin");
    assert_eq!(opts.get_host(), "db.local");
    assert_eq!(opts.get_database(), Some("chrono"));
    let missing = SecretSource::new(
        sm.clone(),
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope",
        "db.local",
        5432,
        "chrono",
    );
    assert!(missing.read().await.is_err());
    for bad in [r#"{"username": "x"}"#, "not json"] {
        assert!(source.options(bad).is_err(), "{bad}");
    }
}
