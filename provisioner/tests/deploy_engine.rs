//! Engine logic against the real SDK clients served by a stateful fake of CloudFormation,
//! S3 and DynamoDB (`aws-smithy-mocks` interceptors): ordering, parallelism, parameter
//! wiring, no-op detection, every failure state, the lock, retries and resume.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono_provisioner::deploy::cfn::Timing;
use chrono_provisioner::deploy::progress::{Collect, Event};
use chrono_provisioner::deploy::{
    Asset, DeployError, DeployOptions, DeployPlan, Engine, ParamSource, PlannedStack, StackOutcome,
};
use serde_json::json;
use support::{Failure, FakeAws};

const BOOT: &str = "chrono-acme-prod-bootstrap";

fn timing() -> Timing {
    Timing {
        poll: Duration::from_millis(1),
        stack_timeout: Duration::from_secs(20),
        in_progress_timeout: Duration::from_secs(20),
    }
}

fn opts() -> DeployOptions {
    DeployOptions {
        timing: timing(),
        lock_owner: "test@ci (pid 1)".into(),
        lock_lease: Duration::from_secs(60),
        ..DeployOptions::default()
    }
}

fn out(name: &str) -> ParamSource {
    let (stack, output) = name.split_once('.').unwrap_or((name, name));
    ParamSource::Output {
        stack: stack.into(),
        output: output.into(),
    }
}

fn bootstrap_template() -> serde_json::Value {
    json!({
        "Resources": {
            "Assets": {"Type": "AWS::S3::Bucket"},
            "Repository": {"Type": "AWS::ECR::Repository"},
            "Locks": {"Type": "AWS::DynamoDB::Table"}
        },
        "Outputs": {
            "AssetsBucketName": {"Value": {"Ref": "Assets"}},
            "DeployLockTableName": {"Value": {"Ref": "Locks"}}
        }
    })
}

/// bootstrap → {network, audit} → data(network) → compute(network, data, asset).
fn plan_with(data_bucket_name: &str) -> DeployPlan {
    let network = json!({
        "Resources": {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}}},
        "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}}}
    });
    let audit = json!({"Resources": {"Trail": {"Type": "AWS::Logs::LogGroup"}}});
    let data = json!({
        "Parameters": {"VpcId": {"Type": "String"}},
        "Resources": {
            "Sources": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": data_bucket_name}},
            "Sessions": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "sessions"}}
        },
        "Outputs": {"SourcesBucket": {"Value": {"Ref": "Sources"}}, "SeenVpc": {"Value": {"Ref": "VpcId"}}}
    });
    let compute = json!({
        "Parameters": {"VpcId": {"Type": "String"}, "Bucket": {"Type": "String"}, "ApiCodeKey": {"Type": "String"}, "CodeBucket": {"Type": "String"}},
        "Resources": {"Api": {"Type": "AWS::Lambda::Function"}},
        "Outputs": {"CodeKey": {"Value": {"Ref": "ApiCodeKey"}}, "Bucket": {"Value": {"Ref": "Bucket"}}}
    });
    DeployPlan::new("acme", "prod")
        .with_asset(Asset::zip("api", b"fake api zip".to_vec()))
        .with_stack(PlannedStack::new(
            "bootstrap",
            bootstrap_template().to_string(),
        ))
        .with_stack(PlannedStack::new("network", network.to_string()).depends_on("bootstrap"))
        .with_stack(PlannedStack::new("audit", audit.to_string()).depends_on("bootstrap"))
        .with_stack(
            PlannedStack::new("data", data.to_string())
                .depends_on("network")
                .param("VpcId", out("network.VpcId")),
        )
        .with_stack(
            PlannedStack::new("compute", compute.to_string())
                .depends_on("network")
                .depends_on("data")
                .param("VpcId", out("network.VpcId"))
                .param("Bucket", out("data.SourcesBucket"))
                .param(
                    "ApiCodeKey",
                    ParamSource::AssetKey {
                        asset: "api".into(),
                    },
                )
                .param("CodeBucket", ParamSource::AssetsBucket),
        )
}

fn plan() -> DeployPlan {
    plan_with("acme-sources")
}

fn engine(fake: &FakeAws, opts: DeployOptions) -> (Engine, Arc<Collect>) {
    let c = Arc::new(Collect::default());
    (Engine::new(fake.clients(), opts, c.clone()), c)
}

fn outcome<'a>(r: &'a chrono_provisioner::deploy::DeployReport, s: &str) -> &'a StackOutcome {
    &r.stack(s)
        .unwrap_or_else(|| panic!("no report for {s}"))
        .outcome
}

#[tokio::test]
async fn first_deploy_bootstraps_then_deploys_in_order_with_wired_parameters() {
    let fake = FakeAws::new();
    let (e, events) = engine(&fake, opts());
    let r = e.deploy(&plan()).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    for s in ["bootstrap", "network", "audit", "data", "compute"] {
        assert_eq!(outcome(&r, s), &StackOutcome::Created, "{s}");
    }
    let w = fake.w();
    let pos = |s: &str| {
        w.executions
            .iter()
            .position(|x| x == &format!("chrono-acme-prod-{s}"))
            .unwrap()
    };
    assert_eq!(pos("bootstrap"), 0);
    assert!(pos("network") < pos("data") && pos("data") < pos("compute"));
    // network and audit have no dependency on each other: they ran at the same time.
    assert!(
        w.max_in_progress >= 2,
        "max in progress {}",
        w.max_in_progress
    );
    // parameters came from earlier outputs and from the uploaded asset
    let data = &w.stacks["chrono-acme-prod-data"];
    assert_eq!(data.params["VpcId"], "chrono-acme-prod-network-vpc");
    let compute = &w.stacks["chrono-acme-prod-compute"];
    assert_eq!(compute.params["Bucket"], "chrono-acme-prod-data-sources");
    let key = Asset::zip("api", b"fake api zip".to_vec()).key();
    assert_eq!(compute.params["ApiCodeKey"], key);
    assert_eq!(
        compute.params["CodeBucket"],
        "chrono-acme-prod-bootstrap-assets"
    );
    assert_eq!(
        w.objects
            .get(&format!("chrono-acme-prod-bootstrap-assets/{key}"))
            .map(Vec::as_slice),
        Some(&b"fake api zip"[..])
    );
    // every stack carries the standard tags and its template hash
    assert_eq!(compute.tags["chrono:customer"], "acme");
    assert_eq!(
        compute.tags["chrono:template-hash"],
        plan().stack("compute").unwrap().template_hash
    );
    // the lock was taken and released
    assert!(w.items.is_empty());
    assert_eq!(w.calls["PutItem"], 1);
    drop(w);
    let evs = events.events();
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::Info { message } if message.contains("first use")))
    );
    assert!(evs.iter().any(|e| matches!(e, Event::Stack { stack, done, total, .. } if stack == "data" && *done == 2 && *total == 2)));
    assert!(evs.iter().any(|e| matches!(e, Event::Resource { stack, logical_id, .. } if stack == "data" && logical_id == "Sources")));
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let fake = FakeAws::new();
    let (e, _) = engine(
        &fake,
        DeployOptions {
            concurrency: 1,
            ..opts()
        },
    );
    let r = e.deploy(&plan()).await.unwrap();
    assert!(r.is_success());
    assert_eq!(fake.w().max_in_progress, 1);
}

#[tokio::test]
async fn rerun_with_nothing_changed_creates_and_executes_no_change_set() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let (created, executed, puts) = (
        fake.calls("CreateChangeSet"),
        fake.calls("ExecuteChangeSet"),
        fake.calls("PutObject"),
    );
    let r = e.deploy(&plan()).await.unwrap();
    assert!(
        r.stacks
            .iter()
            .all(|s| s.outcome == StackOutcome::Unchanged),
        "{r:?}"
    );
    assert_eq!(r.change_sets_executed, 0);
    assert_eq!(fake.calls("CreateChangeSet"), created);
    assert_eq!(fake.calls("ExecuteChangeSet"), executed);
    // the asset is already there under its content hash: not uploaded again
    assert_eq!(fake.calls("PutObject"), puts);
    assert_eq!(r.assets_present, 1);
    assert_eq!(r.assets_uploaded, 0);
    // outputs are still reported for unchanged stacks
    assert_eq!(
        r.stack("network").unwrap().outputs["VpcId"],
        "chrono-acme-prod-network-vpc"
    );
}

#[tokio::test]
async fn empty_change_set_is_deleted_not_executed() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    // a failed update rolled back to exactly what we want now
    fake.w()
        .stacks
        .get_mut("chrono-acme-prod-audit")
        .unwrap()
        .status = "UPDATE_ROLLBACK_COMPLETE".into();
    let (created, executed, deleted) = (
        fake.calls("CreateChangeSet"),
        fake.calls("ExecuteChangeSet"),
        fake.calls("DeleteChangeSet"),
    );
    let r = e.deploy(&plan()).await.unwrap();
    assert_eq!(outcome(&r, "audit"), &StackOutcome::Unchanged);
    assert_eq!(fake.calls("CreateChangeSet"), created + 1);
    assert_eq!(fake.calls("DeleteChangeSet"), deleted + 1);
    assert_eq!(fake.calls("ExecuteChangeSet"), executed);
    assert!(fake.w().change_sets.is_empty());
}

#[tokio::test]
async fn a_changed_template_updates_only_that_stack_and_its_dependents_get_new_values() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let mut p = plan();
    p.assets[0] = Asset::zip("api", b"api v2".to_vec());
    let r = e.deploy(&p).await.unwrap();
    assert_eq!(outcome(&r, "compute"), &StackOutcome::Updated);
    assert_eq!(outcome(&r, "data"), &StackOutcome::Unchanged);
    assert_eq!(r.change_sets_executed, 1);
    assert_eq!(r.assets_uploaded, 1);
    assert_eq!(
        fake.w().stacks["chrono-acme-prod-compute"].params["ApiCodeKey"],
        p.assets[0].key()
    );
}

#[tokio::test]
async fn failed_create_reports_the_root_cause_and_stops_dependents() {
    let fake = FakeAws::new();
    fake.fail_next(
        "chrono-acme-prod-data",
        Failure::Resource {
            logical_id: "Sessions".into(),
            reason: "Table already exists: sessions".into(),
        },
    );
    let (e, events) = engine(&fake, opts());
    let r = e.deploy(&plan()).await.unwrap();
    assert!(!r.is_success());
    let StackOutcome::Failed(msg) = outcome(&r, "data") else {
        panic!("{r:?}")
    };
    assert!(msg.lines().count() <= 3, "{msg}");
    assert!(msg.contains("ROLLBACK_COMPLETE"), "{msg}");
    assert!(
        msg.contains(
            "Sessions (AWS::DynamoDB::Table) CREATE_FAILED: Table already exists: sessions"
        ),
        "{msg}"
    );
    assert!(!msg.contains("cancelled"), "{msg}");
    assert_eq!(
        outcome(&r, "compute"),
        &StackOutcome::Skipped("dependency data failed".into())
    );
    // independent stacks are not stopped
    assert_eq!(outcome(&r, "audit"), &StackOutcome::Created);
    assert!(!fake.w().executions.iter().any(|s| s.ends_with("-compute")));
    assert!(events.events().iter().any(|e| matches!(e, Event::Done { stack, outcome, .. } if stack == "compute" && outcome == "skipped")));
    // the lock is released even though a stack failed
    assert!(fake.w().items.is_empty());
}

#[tokio::test]
async fn a_stack_left_with_rollback_disabled_is_refused_not_updated() {
    // deploy_one decides through decide::next_step: CREATE_FAILED/UPDATE_FAILED (rollback
    // disabled) were taken as settled and updated before
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    fake.w()
        .stacks
        .get_mut("chrono-acme-prod-audit")
        .unwrap()
        .status = "UPDATE_FAILED".into();
    let created = fake.calls("CreateChangeSet");
    let (e, _) = engine(
        &fake,
        DeployOptions {
            yes: true,
            ..opts()
        },
    );
    let r = e.deploy(&plan()).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "audit") else {
        panic!("{r:?}")
    };
    assert!(
        msg.contains("(UPDATE_FAILED)")
            && msg.contains("rollback-stack --stack-name chrono-acme-prod-audit"),
        "{msg}"
    );
    assert_eq!(fake.calls("CreateChangeSet"), created);
    assert_eq!(fake.calls("DeleteStack"), 0);
}

#[tokio::test]
async fn rollback_complete_needs_yes_then_is_deleted_and_recreated() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    fake.seed(
        "chrono-acme-prod-audit",
        "ROLLBACK_COMPLETE",
        json!({}),
        &[],
    );
    let r = e.deploy(&plan()).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "audit") else {
        panic!("{r:?}")
    };
    assert!(
        msg.contains("is in ROLLBACK_COMPLETE after a failed create") && msg.contains("--yes"),
        "{msg}"
    );
    assert_eq!(fake.calls("DeleteStack"), 0);

    let (e, _) = engine(
        &fake,
        DeployOptions {
            yes: true,
            ..opts()
        },
    );
    let r = e.deploy(&plan()).await.unwrap();
    assert_eq!(outcome(&r, "audit"), &StackOutcome::Created);
    assert_eq!(fake.calls("DeleteStack"), 1);
    assert_eq!(
        fake.w().stacks["chrono-acme-prod-audit"].status,
        "CREATE_COMPLETE"
    );
}

#[tokio::test]
async fn failed_update_rolls_back_and_names_the_resource() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    fake.fail_next(
        "chrono-acme-prod-network",
        Failure::Resource {
            logical_id: "Vpc".into(),
            reason: "The CIDR '10.0.0.0/8' is invalid.".into(),
        },
    );
    let mut p = plan();
    let net = p.stacks.iter_mut().find(|s| s.name == "network").unwrap();
    *net = PlannedStack::new(
        "network",
        json!({"Resources": {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/8"}}},
               "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}}}})
        .to_string(),
    )
    .depends_on("bootstrap");
    let r = e.deploy(&p).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "network") else {
        panic!("{r:?}")
    };
    assert!(
        msg.contains("UPDATE_ROLLBACK_COMPLETE")
            && msg.contains("Vpc (AWS::EC2::VPC) UPDATE_FAILED: The CIDR"),
        "{msg}"
    );
    assert!(matches!(outcome(&r, "data"), StackOutcome::Skipped(_)));
    // after a rolled-back update the stack can be updated again
    let r = e.deploy(&plan()).await.unwrap();
    assert!(r.is_success(), "{r:?}");
}

#[tokio::test]
async fn update_rollback_failed_points_to_recover_with_resources_to_skip() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    fake.fail_next(
        "chrono-acme-prod-network",
        Failure::RollbackFails {
            logical_id: "Vpc".into(),
            reason: "Resource handler returned message: access denied".into(),
        },
    );
    let mut p = plan();
    let net = p.stacks.iter_mut().find(|s| s.name == "network").unwrap();
    *net = PlannedStack::new(
        "network",
        json!({
            "Resources": {"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": true}}},
            "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}}}
        })
        .to_string(),
    )
    .depends_on("bootstrap");
    let r = e.deploy(&p).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "network") else {
        panic!("{r:?}")
    };
    assert!(msg.contains("UPDATE_ROLLBACK_FAILED"), "{msg}");

    // the next run refuses to touch it and says how to recover
    let r = e.deploy(&plan()).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "network") else {
        panic!("{r:?}")
    };
    assert!(
        msg.contains("chronoctl recover --stack network") && msg.contains("--skip Vpc"),
        "{msg}"
    );
    assert_eq!(fake.calls("ContinueUpdateRollback"), 0);

    // recover without skipping: the resource still cannot roll back
    let err = e.recover(&plan(), "network", &[]).await.unwrap_err();
    assert!(err.to_string().contains("UPDATE_ROLLBACK_FAILED"), "{err}");
    // recover skipping it completes the rollback; then deploy works again
    e.recover(&plan(), "network", &["Vpc".into()])
        .await
        .unwrap();
    assert_eq!(
        fake.w().stacks["chrono-acme-prod-network"].status,
        "UPDATE_ROLLBACK_COMPLETE"
    );
    let r = e.deploy(&plan()).await.unwrap();
    assert!(r.is_success(), "{r:?}");
}

/// Fires once the network stack has started executing.
#[derive(Debug, Default)]
struct KillSwitch(tokio::sync::Notify);

impl chrono_provisioner::deploy::progress::Reporter for KillSwitch {
    fn on(&self, e: &Event) {
        if matches!(e, Event::Resource { stack, .. } if stack == "network") {
            self.0.notify_one();
        }
    }
}

fn seed_in_progress(fake: &FakeAws, name: &str) {
    let mut w = fake.w();
    let s = w.stacks.get_mut(name).unwrap();
    s.status = "UPDATE_IN_PROGRESS".into();
    s.polls_left = 3;
    s.pending = Some(support::Pending {
        kind: "UPDATE",
        template: s.template.clone(),
        params: s.params.clone(),
        tags: s.tags.clone(),
        changes: vec![],
    });
}

#[tokio::test]
async fn in_progress_by_another_operator_is_refused_or_waited_for_never_interleaved() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    seed_in_progress(&fake, "chrono-acme-prod-audit");
    let created = fake.calls("CreateChangeSet");
    let (refuse, _) = engine(
        &fake,
        DeployOptions {
            wait: false,
            ..opts()
        },
    );
    let r = refuse.deploy(&plan()).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "audit") else {
        panic!("{r:?}")
    };
    assert!(
        msg.contains("is busy (UPDATE_IN_PROGRESS)") && msg.contains("--wait"),
        "{msg}"
    );
    assert_eq!(fake.calls("CreateChangeSet"), created);

    let r = e.deploy(&plan()).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    assert_eq!(
        fake.w().stacks["chrono-acme-prod-audit"].status,
        "UPDATE_COMPLETE"
    );
}

#[tokio::test]
async fn a_held_lock_refuses_fast_and_names_the_holder() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let far = (chrono::Utc::now() + chrono::Duration::minutes(10))
        .timestamp_millis()
        .to_string();
    let item = [
        ("lock_id", AttributeValue::S("deploy#acme#prod".into())),
        ("owner", AttributeValue::S("alice@laptop (pid 42)".into())),
        ("run_id", AttributeValue::S("other".into())),
        (
            "AcquiredAt",
            AttributeValue::S("2026-11-22T00:00:00+00:00".into()),
        ),
        ("expires_at_ms", AttributeValue::N(far)),
        (
            "ExpiresAtIso",
            AttributeValue::S("2026-11-22T00:10:00+00:00".into()),
        ),
    ];
    fake.w().items.insert(
        "deploy#acme#prod".into(),
        item.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    );
    let created = fake.calls("CreateChangeSet");
    let mut p = plan();
    p.assets[0] = Asset::zip("api", b"v3".to_vec());
    let err = e.deploy(&p).await.unwrap_err();
    assert!(matches!(err, DeployError::Lock(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("alice@laptop (pid 42)") && msg.contains("--break-lock"),
        "{msg}"
    );
    assert_eq!(fake.calls("CreateChangeSet"), created);
    assert_eq!(
        fake.calls("PutObject"),
        1,
        "nothing uploaded while locked out"
    );

    let (breaker, _) = engine(
        &fake,
        DeployOptions {
            break_lock: true,
            ..opts()
        },
    );
    // the holder recorded no heartbeat (it stopped renewing): --break-lock takes it
    let r = breaker.deploy(&p).await.unwrap();
    let broke = r.broke_lock_of.clone().unwrap_or_default();
    assert!(
        broke.starts_with("alice@laptop (pid 42) (not renewed for"),
        "{broke}"
    );
    assert_eq!(outcome(&r, "compute"), &StackOutcome::Updated);
}

fn held_lock(fake: &FakeAws, host: &str, pid: u32, heartbeat_ms_ago: i64) {
    let now = chrono::Utc::now();
    let far = (now + chrono::Duration::minutes(10)).timestamp_millis();
    let item = [
        ("lock_id", AttributeValue::S("deploy#acme#prod".into())),
        (
            "owner",
            AttributeValue::S(format!("bob on {host} (pid {pid})")),
        ),
        ("host", AttributeValue::S(host.into())),
        ("pid", AttributeValue::N(pid.to_string())),
        ("run_id", AttributeValue::S("other".into())),
        ("acquired_at", AttributeValue::S(now.to_rfc3339())),
        (
            "heartbeat_at_ms",
            AttributeValue::N((now.timestamp_millis() - heartbeat_ms_ago).to_string()),
        ),
        ("expires_at_ms", AttributeValue::N(far.to_string())),
    ];
    fake.w().items.insert(
        "deploy#acme#prod".into(),
        item.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    );
}

#[tokio::test]
async fn break_lock_is_refused_on_a_live_holder() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    // renewed a second ago, on another host
    held_lock(&fake, "another-host", 42, 1_000);
    let (breaker, _) = engine(
        &fake,
        DeployOptions {
            break_lock: true,
            ..opts()
        },
    );
    let created = fake.calls("CreateChangeSet");
    let mut p = plan();
    p.assets[0] = Asset::zip("api", b"v4".to_vec());
    let err = breaker.deploy(&p).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("refusing --break-lock") && msg.contains("bob on another-host (pid 42)"),
        "{msg}"
    );
    assert_eq!(fake.calls("CreateChangeSet"), created);
    assert_eq!(
        fake.w().items["deploy#acme#prod"]["run_id"],
        AttributeValue::S("other".into()),
        "the live holder keeps its lock"
    );
}

#[tokio::test]
async fn a_dead_holder_on_this_host_is_taken_over_at_once() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    // a process of this host that has exited (its pid is free), renewed a second ago
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    held_lock(
        &fake,
        &chrono_provisioner::deploy::lock::host_name(),
        pid,
        1_000,
    );
    let mut p = plan();
    p.assets[0] = Asset::zip("api", b"v5".to_vec());
    let r = e.deploy(&p).await.unwrap();
    let broke = r.broke_lock_of.clone().unwrap_or_default();
    assert!(broke.contains(&format!("pid {pid} is gone")), "{broke}");
    assert_eq!(outcome(&r, "compute"), &StackOutcome::Updated);
}

#[tokio::test]
async fn wrong_account_is_refused_before_any_mutation() {
    let fake = FakeAws::new();
    let (e, events) = engine(&fake, opts());
    let p = plan().in_account("999988887777", "eu-west-1");
    let err = e.deploy(&p).await.unwrap_err();
    assert!(matches!(err, DeployError::WrongAccount { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("account 999988887777") && msg.contains("account 111122223333"),
        "{msg}"
    );
    assert_eq!(fake.calls("GetCallerIdentity"), 1);
    for op in ["CreateChangeSet", "PutItem", "PutObject", "DescribeStacks"] {
        assert_eq!(fake.calls(op), 0, "{op} called before the account check");
    }
    for err in [
        e.destroy(
            &p,
            chrono_provisioner::deploy::destroy::DestroyOptions {
                yes: true,
                release_data: true,
            },
        )
        .await
        .unwrap_err(),
        e.diff(&p).await.unwrap_err(),
        e.recover(&p, "network", &[]).await.unwrap_err(),
    ] {
        assert!(matches!(err, DeployError::WrongAccount { .. }), "{err}");
    }
    assert_eq!(fake.calls("DescribeStacks"), 0);

    // the right account deploys, and the lock names the caller
    let r = e
        .deploy(&plan().in_account("111122223333", "eu-west-1"))
        .await
        .unwrap();
    assert!(r.is_success(), "{r:?}");
    let taken = events.events().into_iter().any(|e| {
        matches!(e, Event::Info { message } if message.contains("taken by arn:aws:sts::111122223333:assumed-role/ops/ci on test@ci (pid 1)"))
    });
    assert!(taken, "the lock holder is the caller's ARN, host and pid");
}

#[tokio::test]
async fn a_bucket_rename_with_an_empty_replacement_field_is_refused() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    // CloudFormation's change set says nothing about replacement
    fake.w().blank_replacement = true;
    let executed = fake.calls("ExecuteChangeSet");
    let r = e.deploy(&plan_with("acme-sources-renamed")).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "data") else {
        panic!("{r:?}")
    };
    assert!(
        msg.contains("replace Sources") && msg.contains("--allow-replace Sources"),
        "{msg}"
    );
    assert_eq!(fake.calls("ExecuteChangeSet"), executed);
    assert!(
        fake.w().change_sets.is_empty(),
        "the refused change set is deleted"
    );
    assert_eq!(
        fake.w().stacks["chrono-acme-prod-data"].template["Resources"]["Sources"]["Properties"]["BucketName"],
        "acme-sources"
    );
}

#[tokio::test]
async fn a_stack_whose_tag_matches_but_whose_body_differs_is_deployed() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    // someone changed the stack behind our back; its tags (our template hash) still match
    {
        let mut w = fake.w();
        let net = w.stacks.get_mut("chrono-acme-prod-network").unwrap();
        net.template["Resources"]["Vpc"]["Properties"]["CidrBlock"] = json!("10.9.0.0/16");
    }
    let r = e.deploy(&plan()).await.unwrap();
    assert_eq!(outcome(&r, "network"), &StackOutcome::Updated);
    assert_eq!(outcome(&r, "audit"), &StackOutcome::Unchanged);
    assert_eq!(
        fake.w().stacks["chrono-acme-prod-network"].template["Resources"]["Vpc"]["Properties"]["CidrBlock"],
        "10.0.0.0/16"
    );
}

/// Lifts termination protection of every stack (as ops would before destroying prod).
fn lift_protection(fake: &FakeAws) {
    for s in fake.w().stacks.values_mut() {
        s.protected = false;
    }
}

#[tokio::test]
async fn prod_stacks_get_termination_protection_and_destroy_says_how_to_lift_it() {
    use chrono_provisioner::deploy::destroy::DestroyOptions;
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    assert!(fake.w().stacks.values().all(|s| s.protected));
    let err = e
        .destroy(
            &plan(),
            DestroyOptions {
                yes: true,
                release_data: true,
            },
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("termination protection")
            && msg.contains("update-termination-protection --no-enable-termination-protection"),
        "{msg}"
    );
    assert_eq!(fake.calls("DeleteStack"), 0);
    // another stage gets none
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    let mut staging = plan();
    staging.stage = "staging".into();
    e.deploy(&staging).await.unwrap();
    assert!(fake.w().stacks.values().all(|s| !s.protected));
    assert_eq!(fake.calls("UpdateTerminationProtection"), 0);
}

#[tokio::test]
async fn destroy_fails_closed_on_an_unreadable_deployed_template() {
    use chrono_provisioner::deploy::destroy::DestroyOptions;
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    lift_protection(&fake);
    fake.w().template_override = Some("{not: [valid".into());
    let err = e
        .destroy(
            &plan(),
            DestroyOptions {
                yes: true,
                release_data: false,
            },
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot read the deployed template") && msg.contains("refusing"),
        "{msg}"
    );
    assert_eq!(fake.calls("DeleteStack"), 0);
}

#[tokio::test]
async fn an_expired_lock_is_taken_over() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .timestamp_millis()
        .to_string();
    fake.w().items.insert(
        "deploy#acme#prod".into(),
        [
            (
                "lock_id".to_owned(),
                AttributeValue::S("deploy#acme#prod".into()),
            ),
            ("expires_at_ms".to_owned(), AttributeValue::N(past)),
        ]
        .into(),
    );
    let r = e.deploy(&plan()).await.unwrap();
    assert!(r.is_success());
    assert_eq!(r.broke_lock_of, None);
}

#[tokio::test]
async fn throttled_calls_are_retried() {
    let mut fake = FakeAws::new();
    fake.throttle_describe = 3;
    let (e, _) = engine(&fake, opts());
    let r = e.deploy(&plan()).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    assert_eq!(fake.calls("Throttled"), 3);
}

#[tokio::test]
async fn replacing_or_removing_stateful_resources_needs_allow_replace() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let executed = fake.calls("ExecuteChangeSet");
    let renamed = plan_with("acme-sources-v2");
    let r = e.deploy(&renamed).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "data") else {
        panic!("{r:?}")
    };
    assert!(
        msg.contains("replace Sources") && msg.contains("--allow-replace Sources"),
        "{msg}"
    );
    assert_eq!(fake.calls("ExecuteChangeSet"), executed);
    assert!(
        fake.w().change_sets.is_empty(),
        "the refused change set is deleted"
    );

    let (e2, _) = engine(
        &fake,
        DeployOptions {
            allow_replace: BTreeSet::from(["data/Sources".to_owned()]),
            ..opts()
        },
    );
    let r = e2.deploy(&renamed).await.unwrap();
    assert_eq!(outcome(&r, "data"), &StackOutcome::Updated);
}

#[tokio::test]
async fn dry_run_calls_no_mutating_api() {
    let fake = FakeAws::new();
    let (e, _) = engine(
        &fake,
        DeployOptions {
            dry_run: true,
            ..opts()
        },
    );
    let r = e.deploy(&plan()).await.unwrap();
    assert_eq!(outcome(&r, "bootstrap"), &StackOutcome::WouldCreate);
    assert_eq!(outcome(&r, "compute"), &StackOutcome::WouldCreate);
    for op in [
        "CreateChangeSet",
        "ExecuteChangeSet",
        "DeleteStack",
        "PutObject",
        "PutItem",
        "DeleteItem",
    ] {
        assert_eq!(fake.calls(op), 0, "{op}");
    }
    // with everything deployed, a dry run of a change says "would update"
    let (real, _) = engine(&fake, opts());
    real.deploy(&plan()).await.unwrap();
    let before: Vec<usize> = [
        "CreateChangeSet",
        "ExecuteChangeSet",
        "PutObject",
        "PutItem",
    ]
    .iter()
    .map(|o| fake.calls(o))
    .collect();
    let mut p = plan();
    p.assets[0] = Asset::zip("api", b"v9".to_vec());
    let r = e.deploy(&p).await.unwrap();
    assert_eq!(outcome(&r, "compute"), &StackOutcome::WouldUpdate);
    assert_eq!(outcome(&r, "data"), &StackOutcome::Unchanged);
    let after: Vec<usize> = [
        "CreateChangeSet",
        "ExecuteChangeSet",
        "PutObject",
        "PutItem",
    ]
    .iter()
    .map(|o| fake.calls(o))
    .collect();
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_killed_deploy_converges_on_rerun() {
    let fake = FakeAws::new();
    fake.w().exec_polls = 50;
    let short_lease = DeployOptions {
        lock_lease: Duration::from_millis(300),
        timing: Timing {
            poll: Duration::from_millis(2),
            ..timing()
        },
        ..opts()
    };
    let kill = Arc::new(KillSwitch::default());
    let e = Engine::new(fake.clients(), short_lease.clone(), kill.clone());
    let p = plan();
    // kill the run while the network stack is executing
    tokio::select! {
        r = e.deploy(&p) => panic!("the deploy should still be running when killed: {r:?}"),
        () = kill.0.notified() => {}
    }
    assert!(
        fake.w().executions.iter().any(|s| s.ends_with("-network")),
        "{:?}",
        fake.w().executions
    );
    assert!(
        !fake.w().items.is_empty(),
        "the killed run still holds the lock"
    );
    // after the lease runs out, a rerun takes over, waits for the orphaned operation and finishes the rest
    tokio::time::sleep(Duration::from_millis(400)).await;
    fake.w().exec_polls = 1;
    let (e, _) = engine(&fake, short_lease);
    let r = e.deploy(&p).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    let w = fake.w();
    for s in ["bootstrap", "network", "audit", "data", "compute"] {
        assert!(
            w.stacks[&format!("chrono-acme-prod-{s}")]
                .status
                .ends_with("_COMPLETE"),
            "{s}"
        );
    }
    // nothing lost or done twice: each stack was created exactly once
    for s in ["network", "data", "compute"] {
        assert_eq!(
            w.executions
                .iter()
                .filter(|x| x.ends_with(&format!("-{s}")))
                .count(),
            1,
            "{s}"
        );
    }
    assert_eq!(
        w.stacks["chrono-acme-prod-compute"].params["VpcId"],
        "chrono-acme-prod-network-vpc"
    );
}

#[tokio::test]
async fn a_missing_output_fails_the_stack_with_a_hint() {
    let fake = FakeAws::new();
    let mut p = plan();
    p.stacks
        .iter_mut()
        .find(|s| s.name == "data")
        .unwrap()
        .parameters
        .insert("Nope".into(), out("network.NoSuchOutput"));
    let (e, _) = engine(&fake, opts());
    let r = e.deploy(&p).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "data") else {
        panic!("{r:?}")
    };
    assert!(
        msg.contains("needs output NoSuchOutput of network"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_failed_bootstrap_stops_everything() {
    let fake = FakeAws::new();
    fake.fail_next(
        BOOT,
        Failure::Resource {
            logical_id: "Assets".into(),
            reason: "bucket name taken".into(),
        },
    );
    let (e, _) = engine(&fake, opts());
    let r = e.deploy(&plan()).await.unwrap();
    assert!(
        matches!(outcome(&r, "bootstrap"), StackOutcome::Failed(m) if m.contains("bucket name taken"))
    );
    assert!(matches!(outcome(&r, "network"), StackOutcome::Skipped(_)));
    assert_eq!(fake.calls("PutItem"), 0);
}

#[tokio::test]
async fn diff_lists_changes_and_flags_data_loss_without_executing() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let executed = fake.calls("ExecuteChangeSet");
    let d = e.diff(&plan_with("acme-sources-v2")).await.unwrap();
    let data = d.iter().find(|s| s.name == "data").unwrap();
    assert_eq!(data.state, "changes");
    let row = data
        .rows
        .iter()
        .find(|r| r.logical_id == "Sources")
        .unwrap();
    assert_eq!(
        (row.action.as_str(), row.replacement.as_str()),
        ("Modify", "True")
    );
    assert_eq!(row.data_loss.as_deref(), Some("replace"));
    assert_eq!(row.causes, ["BucketName (Always)"]);
    assert_eq!(
        d.iter().find(|s| s.name == "network").unwrap().state,
        "no changes"
    );
    let table = chrono_provisioner::deploy::diff::render_diff(&d, false);
    assert!(
        table.lines().any(|l| l.starts_with("!! Modify")
            && l.contains("Sources")
            && l.contains("--allow-replace Sources")),
        "{table}"
    );
    assert_eq!(fake.calls("ExecuteChangeSet"), executed);
    assert!(
        fake.w().change_sets.is_empty(),
        "diff leaves no change set behind"
    );
}

#[tokio::test]
async fn diff_of_a_new_account_lists_the_template_resources() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    let d = e.diff(&plan()).await.unwrap();
    assert!(d.iter().all(|s| s.state == "new"));
    let data = d.iter().find(|s| s.name == "data").unwrap();
    let ids: Vec<&str> = data.rows.iter().map(|r| r.logical_id.as_str()).collect();
    assert_eq!(ids, ["Sources", "Sessions"]);
    assert_eq!(fake.calls("CreateChangeSet"), 0);
}

#[tokio::test]
async fn status_reports_drift_from_the_template_hash() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    let before = e.status(&plan()).await.unwrap();
    assert!(before.iter().all(|s| s.status == "NOT_DEPLOYED"));
    e.deploy(&plan()).await.unwrap();
    let mut p = plan();
    p.assets[0] = Asset::zip("api", b"v2".to_vec());
    let net = p.stacks.iter_mut().find(|s| s.name == "network").unwrap();
    net.template_hash = "0000".into();
    let rows = e.status(&p).await.unwrap();
    use chrono_provisioner::deploy::status::Drift;
    let drift = |n: &str| rows.iter().find(|s| s.name == n).unwrap().drift;
    assert_eq!(drift("network"), Drift::TemplateChanged);
    assert_eq!(drift("data"), Drift::InSync);
    assert_eq!(
        rows.iter().find(|s| s.name == "network").unwrap().outputs["VpcId"],
        "chrono-acme-prod-network-vpc"
    );
    let names: Vec<&str> = rows.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["bootstrap", "network", "audit", "data", "compute"]);
}

#[tokio::test]
async fn destroy_needs_yes_protects_prod_data_and_goes_in_reverse_order() {
    use chrono_provisioner::deploy::destroy::DestroyOptions;
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let err = e
        .destroy(&plan(), DestroyOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rerun with --yes"), "{err}");
    lift_protection(&fake);
    let err = e
        .destroy(
            &plan(),
            DestroyOptions {
                yes: true,
                release_data: false,
            },
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("stage prod keeps its data")
            && msg.contains("Sessions, Sources")
            && msg.contains("--release-data"),
        "{msg}"
    );
    assert_eq!(fake.calls("DeleteStack"), 0, "nothing deleted when refused");

    // dry run: lists, deletes nothing
    let (dry, _) = engine(
        &fake,
        DeployOptions {
            dry_run: true,
            ..opts()
        },
    );
    let rows = dry
        .destroy(
            &plan(),
            DestroyOptions {
                yes: false,
                release_data: true,
            },
        )
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.outcome == "would delete"));
    assert_eq!(fake.calls("DeleteStack"), 0);

    let rows = e
        .destroy(
            &plan(),
            DestroyOptions {
                yes: true,
                release_data: true,
            },
        )
        .await
        .unwrap();
    let order: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["compute", "data", "audit", "network", "bootstrap"]);
    assert!(fake.w().stacks.is_empty());
    // the bucket being deleted was emptied first (CloudFormation cannot delete a full bucket)
    assert!(fake.w().objects.is_empty());
    let data = rows.iter().find(|r| r.name == "data").unwrap();
    assert!(
        data.data.iter().all(|d| d.fate == "deleted"),
        "{:?}",
        data.data
    );
}

#[tokio::test]
async fn destroy_lists_retained_data_and_releases_it_only_when_asked() {
    use chrono_provisioner::deploy::destroy::DestroyOptions;
    let fake = FakeAws::new();
    let mut p = plan();
    let data = p.stacks.iter_mut().find(|s| s.name == "data").unwrap();
    let body = json!({
        "Parameters": {"VpcId": {"Type": "String"}},
        "Resources": {
            "Sources": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "Properties": {"BucketName": "acme-sources"}},
            "Db": {"Type": "AWS::RDS::DBCluster", "DeletionPolicy": "Snapshot"}
        },
        "Outputs": {"SourcesBucket": {"Value": {"Ref": "Sources"}}}
    });
    *data = PlannedStack::new("data", body.to_string())
        .depends_on("network")
        .param("VpcId", out("network.VpcId"));
    let mut boot = bootstrap_template();
    for r in ["Assets", "Locks"] {
        boot["Resources"][r]["DeletionPolicy"] = json!("Retain");
    }
    *p.stacks.iter_mut().find(|s| s.name == "bootstrap").unwrap() =
        PlannedStack::new("bootstrap", boot.to_string());
    // the audit trail's log group is kept too
    let audit = json!({"Resources": {"Trail": {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Retain"}}});
    *p.stacks.iter_mut().find(|s| s.name == "audit").unwrap() =
        PlannedStack::new("audit", audit.to_string()).depends_on("bootstrap");
    let (e, _) = engine(&fake, opts());
    e.deploy(&p).await.unwrap();
    lift_protection(&fake);
    let rows = e
        .destroy(
            &p,
            DestroyOptions {
                yes: true,
                release_data: false,
            },
        )
        .await
        .unwrap();
    let d = &rows.iter().find(|r| r.name == "data").unwrap().data;
    let fate = |id: &str| d.iter().find(|x| x.logical_id == id).unwrap().fate.clone();
    assert_eq!(fate("Sources"), "retained");
    assert_eq!(fate("Db"), "snapshot");
    assert_eq!(fake.calls("DeleteBucket"), 0);
    let boot = &rows.iter().find(|r| r.name == "bootstrap").unwrap().data;
    assert!(boot.iter().all(|d| d.fate == "retained"), "{boot:?}");
}

#[tokio::test]
async fn a_create_whose_change_set_was_never_executed_is_started_over() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    // a run killed between CreateChangeSet and ExecuteChangeSet leaves REVIEW_IN_PROGRESS
    fake.w().stacks.remove("chrono-acme-prod-audit");
    fake.seed(
        "chrono-acme-prod-audit",
        "REVIEW_IN_PROGRESS",
        json!({}),
        &[],
    );
    let r = e.deploy(&plan()).await.unwrap();
    assert_eq!(outcome(&r, "audit"), &StackOutcome::Created);
    assert_eq!(fake.calls("DeleteStack"), 1);
    assert_eq!(
        fake.w().stacks["chrono-acme-prod-audit"].status,
        "CREATE_COMPLETE"
    );
}

/// Onboarding hooks that record calls; migrate fails until `migrate_ok` is set.
#[derive(Default)]
struct Hooks {
    migrate_ok: std::sync::atomic::AtomicBool,
    migrations: std::sync::atomic::AtomicUsize,
    smokes: std::sync::atomic::AtomicUsize,
}

impl chrono_provisioner::deploy::onboard::OnboardHooks for Hooks {
    fn migrate<'a>(
        &'a self,
        outputs: &'a chrono_provisioner::deploy::onboard::AllOutputs,
    ) -> futures::future::BoxFuture<'a, Result<String, String>> {
        use std::sync::atomic::Ordering;
        Box::pin(async move {
            self.migrations.fetch_add(1, Ordering::SeqCst);
            assert_eq!(
                outputs["data"]["SourcesBucket"],
                "chrono-acme-prod-data-sources"
            );
            if self.migrate_ok.load(Ordering::SeqCst) {
                Ok("3 migrations applied".into())
            } else {
                Err("database not reachable".into())
            }
        })
    }

    fn smoke<'a>(
        &'a self,
        _outputs: &'a chrono_provisioner::deploy::onboard::AllOutputs,
    ) -> futures::future::BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            self.smokes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok("GET /healthz answered 200".into())
        })
    }
}

#[tokio::test]
async fn onboard_resumes_where_it_stopped() {
    use std::sync::atomic::Ordering;
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    let hooks = Hooks::default();
    let err = e.onboard(&plan(), &hooks).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "onboard step `migrate` failed: database not reachable"
    );
    assert_eq!(
        hooks.smokes.load(Ordering::SeqCst),
        0,
        "no smoke test after a failed migration"
    );

    hooks.migrate_ok.store(true, Ordering::SeqCst);
    let executed = fake.calls("ExecuteChangeSet");
    let r = e.onboard(&plan(), &hooks).await.unwrap();
    assert_eq!(
        fake.calls("ExecuteChangeSet"),
        executed,
        "the deployed stacks are not redone"
    );
    let steps: Vec<(&str, &str)> = r
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        steps,
        [("deploy", "done"), ("migrate", "done"), ("smoke", "done")]
    );
    assert_eq!(
        r.endpoints["assets_bucket"],
        "chrono-acme-prod-bootstrap-assets"
    );

    // a third run skips the migration it already did
    let r = e.onboard(&plan(), &hooks).await.unwrap();
    assert_eq!(r.steps[1].status, "skipped");
    assert_eq!(hooks.migrations.load(Ordering::SeqCst), 2);
    assert_eq!(hooks.smokes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_template_over_51200_bytes_goes_through_the_assets_bucket() {
    let fake = FakeAws::new();
    let mut p = plan();
    let big = json!({
        "Description": "x".repeat(60_000),
        "Resources": {"Trail": {"Type": "AWS::Logs::LogGroup"}}
    });
    *p.stacks.iter_mut().find(|s| s.name == "audit").unwrap() =
        PlannedStack::new("audit", big.to_string()).depends_on("bootstrap");
    let (e, _) = engine(&fake, opts());
    let r = e.deploy(&p).await.unwrap();
    assert_eq!(outcome(&r, "audit"), &StackOutcome::Created, "{r:?}");
    let key = format!(
        "chrono-acme-prod-bootstrap-assets/templates/{}.template",
        p.stack("audit").unwrap().template_hash
    );
    assert_eq!(
        fake.w().objects.get(&key).map(Vec::len),
        Some(big.to_string().len())
    );
}

#[tokio::test]
async fn migrations_run_through_the_migration_function() {
    use chrono_provisioner::deploy::migrate::{MIGRATE_PAYLOAD, migrate_via_lambda};
    let fake = FakeAws::new();
    let c = fake.clients();
    let arn = "arn:aws:lambda:eu-west-1:111111111111:function:chrono-acme-prod-migrate";
    assert_eq!(
        migrate_via_lambda(&c.lambda, arn).await.unwrap(),
        format!("{arn}: {{\"applied\":3}}")
    );
    assert_eq!(
        fake.w().invocations,
        [(arn.to_owned(), MIGRATE_PAYLOAD.to_owned())]
    );
    fake.w().migrate_fails = true;
    let err = migrate_via_lambda(&c.lambda, arn).await.unwrap_err();
    assert!(
        err.contains("failed (Unhandled)") && err.contains("connection refused"),
        "{err}"
    );
}

/// Approves nothing and never answers: a run waiting for a human.
#[derive(Debug, Default)]
struct NeverAnswers(tokio::sync::Notify, std::sync::Mutex<Vec<String>>);

impl chrono_provisioner::deploy::engine::Approver for NeverAnswers {
    fn approve<'a>(
        &'a self,
        stack: &'a str,
        broadening: &'a [chrono_provisioner::deploy::guard::Broadening],
    ) -> futures::future::BoxFuture<'a, bool> {
        self.1
            .lock()
            .unwrap()
            .extend(broadening.iter().map(|b| format!("{stack} {}", b.what)));
        self.0.notify_one();
        Box::pin(std::future::pending())
    }
}

/// Answers yes.
#[derive(Debug, Default)]
struct Yes;

impl chrono_provisioner::deploy::engine::Approver for Yes {
    fn approve<'a>(
        &'a self,
        _: &'a str,
        _: &'a [chrono_provisioner::deploy::guard::Broadening],
    ) -> futures::future::BoxFuture<'a, bool> {
        Box::pin(async { true })
    }
}

/// The plan with a security-group rule opened to the world in the network stack.
fn plan_with_open_ingress() -> DeployPlan {
    let mut p = plan();
    let net = json!({
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
            "Web": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "web",
                "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}]}}
        },
        "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}}}
    });
    *p.stacks.iter_mut().find(|s| s.name == "network").unwrap() =
        PlannedStack::new("network", net.to_string()).depends_on("bootstrap");
    p
}

#[tokio::test]
async fn require_approval_refuses_unapproved_broadening_and_executes_approved() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let (strict, _) = engine(
        &fake,
        DeployOptions {
            require_approval: true,
            ..opts()
        },
    );
    let r = strict.deploy(&plan_with_open_ingress()).await.unwrap();
    let StackOutcome::Failed(msg) = outcome(&r, "network") else {
        panic!("{r:?}")
    };
    assert!(
        msg.contains("not approved")
            && msg.contains("ingress rule added")
            && msg.contains("0.0.0.0/0"),
        "{msg}"
    );
    assert!(
        fake.w().change_sets.is_empty(),
        "the unapproved change set is deleted"
    );
    // a change that grants nothing new needs no approval
    assert!(strict.deploy(&plan()).await.unwrap().is_success());
    let (approved, _) = engine(
        &fake,
        DeployOptions {
            require_approval: true,
            approver: Some(Arc::new(Yes)),
            ..opts()
        },
    );
    let r = approved.deploy(&plan_with_open_ingress()).await.unwrap();
    assert_eq!(outcome(&r, "network"), &StackOutcome::Updated);
}

#[tokio::test]
async fn an_interrupted_run_deletes_its_pending_change_set_and_releases_the_lock() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let asks = Arc::new(NeverAnswers::default());
    let (waiting, _) = engine(
        &fake,
        DeployOptions {
            require_approval: true,
            approver: Some(asks.clone()),
            ..opts()
        },
    );
    let p = plan_with_open_ingress();
    tokio::select! {
        r = waiting.deploy(&p) => panic!("the run waits for approval: {r:?}"),
        () = asks.0.notified() => {}
    }
    // mid-run: the lock is held and the change set waits
    assert!(fake.w().items.contains_key("deploy#acme#prod"));
    assert_eq!(fake.w().change_sets.len(), 1);
    // what the signal handler does
    waiting.abort().await;
    assert!(
        !fake.w().items.contains_key("deploy#acme#prod"),
        "lock released"
    );
    assert!(fake.w().change_sets.is_empty(), "change set deleted");
    assert_eq!(
        fake.calls("ExecuteChangeSet"),
        5,
        "only the first run executed"
    );
    // the next run goes ahead at once
    let (next, _) = engine(&fake, opts());
    assert!(next.deploy(&plan()).await.unwrap().is_success());
}

#[tokio::test]
async fn a_change_set_left_by_a_killed_run_is_deleted_by_the_next_run() {
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let asks = Arc::new(NeverAnswers::default());
    let (waiting, _) = engine(
        &fake,
        DeployOptions {
            require_approval: true,
            approver: Some(asks.clone()),
            // a short lease: the killed run's lock runs out
            lock_lease: Duration::from_millis(300),
            ..opts()
        },
    );
    let p = plan_with_open_ingress();
    tokio::select! {
        r = waiting.deploy(&p) => panic!("the run waits for approval: {r:?}"),
        () = asks.0.notified() => {}
    }
    // killed (kill -9): nothing undone
    drop(waiting);
    assert_eq!(fake.w().change_sets.len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (next, events) = engine(&fake, opts());
    let r = next.deploy(&plan()).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    assert!(fake.w().change_sets.is_empty(), "the orphan is gone");
    let said = events.events().into_iter().any(
        |e| matches!(e, Event::Info { message } if message.contains("left by an interrupted run")),
    );
    assert!(said);
}

#[tokio::test]
async fn the_cfn_execution_role_is_sent_as_role_arn_on_every_change_set_and_delete() {
    // a cross-account deploy role holds no rights to create resources: CloudFormation
    // must act as the execution role of the deploy-access template
    const ROLE: &str = "arn:aws:iam::111122223333:role/chrono-acme-prod-cfn-execution";
    let fake = FakeAws::new();
    fake.seed(
        "chrono-acme-prod-audit",
        "ROLLBACK_COMPLETE",
        json!({}),
        &[],
    );
    let (e, _) = engine(
        &fake,
        DeployOptions {
            yes: true,
            cfn_role_arn: Some(ROLE.into()),
            ..opts()
        },
    );
    let r = e.deploy(&plan()).await.unwrap();
    assert!(r.is_success(), "{r:?}");
    let calls = fake.w().role_arns.clone();
    assert!(
        calls
            .iter()
            .any(|(op, s, _)| *op == "DeleteStack" && s == "chrono-acme-prod-audit"),
        "{calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|(op, ..)| *op == "CreateChangeSet")
            .count(),
        5,
        "{calls:?}"
    );
    for (op, stack, role) in &calls {
        assert_eq!(role.as_deref(), Some(ROLE), "{op} {stack}");
    }

    // without one, no RoleARN: CloudFormation uses the caller's credentials
    let fake = FakeAws::new();
    let (e, _) = engine(&fake, opts());
    e.deploy(&plan()).await.unwrap();
    let calls = fake.w().role_arns.clone();
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|(.., role)| role.is_none()), "{calls:?}");
}
