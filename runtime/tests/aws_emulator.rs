//! The runtime's AWS calls over real HTTP against the local emulator (moto, installed into
//! `.venv` by `make venv`): a presigned PUT URL uploads into the sources bucket with
//! path-style addressing, the Step Functions launcher starts an execution with the job as
//! input, and the database secret is read from Secrets Manager.

mod common;

use chrono_runtime::launcher::{
    ExecutionState, PipelineJob, PipelineLauncher, StepFunctionsLauncher,
};
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
    let line = "Mar  1 08:30:00 web-1 sshd[1234]: Failed password for root\n";
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(line))
    };
    let (_, sha_b64) = chrono_runtime::storage::sha256_spellings(&sha).unwrap();
    let put = bucket.presign_put(key, &sha_b64).await.unwrap();
    assert!(
        put.url
            .starts_with(&format!("{}/chrono-acme-dev-sources/", moto.endpoint()))
    );
    let send = |body: &'static str| {
        let mut req = reqwest::Client::new().put(&put.url).body(body);
        for (k, v) in &put.headers {
            req = req.header(k, v);
        }
        req.send()
    };
    // S3 computes the body's SHA-256 and refuses another one than the signed checksum
    // (BadDigest); moto 5.2.5 neither checks nor keeps it: here the signed headers are
    // only shown to be accepted
    let resp = send(line).await.unwrap();
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

    // Step Functions: StartExecution with the job as input, named after the job
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let machine = sfn
        .create_state_machine()
        .name("chrono-acme-dev-pipeline")
        .definition(r#"{"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/chrono-acme-dev-pipeline")
        .send()
        .await
        .unwrap();
    let launcher = StepFunctionsLauncher::new(sfn.clone(), machine.state_machine_arn());
    let job = PipelineJob {
        case_id: Uuid::now_v7(),
        evidence_id: Uuid::now_v7(),
        source_key: key.into(),
        sha256: Some(sha.clone()),
    };
    let job_id = Uuid::now_v7();
    let arn = launcher.start(job_id, job.clone()).await.unwrap().unwrap();
    assert_eq!(arn, launcher.execution_arn(&job_id.to_string()));
    let exec = sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    let input: PipelineJob = serde_json::from_str(exec.input().unwrap()).unwrap();
    assert_eq!(input, job);
    // starting the same job again is the same execution, not a second one
    assert_eq!(
        launcher
            .start(job_id, job.clone())
            .await
            .unwrap()
            .as_deref(),
        Some(arn.as_str())
    );
    // DescribeExecution: running, then aborted (with the cause), and an unknown one is gone
    assert_eq!(
        launcher.describe(arn.clone()).await.unwrap(),
        ExecutionState::Running
    );
    sfn.stop_execution()
        .execution_arn(&arn)
        .cause("stopped by the operator")
        .send()
        .await
        .unwrap();
    match launcher.describe(arn.clone()).await.unwrap() {
        ExecutionState::Ended(reason) => assert!(reason.contains("aborted"), "{reason}"),
        other => panic!("an aborted execution is {other:?}"),
    }
    assert_eq!(
        launcher
            .describe(launcher.execution_arn(&Uuid::now_v7().to_string()))
            .await
            .unwrap(),
        ExecutionState::Gone
    );
    let missing = StepFunctionsLauncher::new(
        sfn,
        "arn:aws:states:eu-west-1:123456789012:stateMachine:nope",
    );
    assert!(matches!(
        missing.start(Uuid::now_v7(), job).await,
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
