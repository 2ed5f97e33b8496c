//! The deploy engine over real HTTP against the local AWS emulator (moto): the real
//! bootstrap and network stacks synthesized from `customers/demo-local.yaml` by the typed
//! model, plus a small stack that reads a network output and an uploaded asset.
//! Deploy, update, no-op, destroy (with a reduced network stack: the emulator cannot
//! delete the real one), the asset upload, the lock, a killed run.

use std::sync::Arc;
use std::time::Duration;

use chrono_provisioner::aws::Clients;
use chrono_provisioner::deploy::cfn::Timing;
use chrono_provisioner::deploy::destroy::DestroyOptions;
use chrono_provisioner::deploy::progress::{Collect, Event, Reporter};
use chrono_provisioner::deploy::status::Drift;
use chrono_provisioner::deploy::target::{TargetArgs, load_plan};
use chrono_provisioner::deploy::{
    Asset, DeployError, DeployOptions, DeployPlan, Engine, ParamSource, PlannedStack, StackOutcome,
};
use chrono_tests::moto::Moto;

const PROBE: &str = r#"{
  "Parameters": {"VpcId": {"Type": "String"}, "CodeKey": {"Type": "String"}, "CodeBucket": {"Type": "String"}},
  "Resources": {
    "ProbeGroup": {"Type": "AWS::EC2::SecurityGroup",
                   "Properties": {"GroupDescription": "probe", "VpcId": {"Ref": "VpcId"}}}
  },
  "Outputs": {"GroupId": {"Value": {"Ref": "ProbeGroup"}}, "Code": {"Value": {"Ref": "CodeKey"}}}
}"#;

fn config_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../customers/demo-local.yaml")
}

/// A reduced network stack: the emulator cannot delete the real one (it deletes the VPC
/// before its dependents and fails with DependencyViolation).
const REDUCED_NETWORK: &str = r#"{
  "Resources": {
    "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.1.0.0/16"}},
    "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.1.0.0/24"}}
  },
  "Outputs": {"VpcId": {"Value": {"Ref": "Vpc"}}}
}"#;

/// The bootstrap stack of `demo-local` with a reduced network stack and `probe`.
fn reduced_plan(probe_body: &str, asset: &[u8]) -> DeployPlan {
    let mut p = plan(probe_body, asset);
    let net = p
        .stacks
        .iter_mut()
        .find(|s| s.name == "network")
        .expect("network");
    *net = PlannedStack::new("network", REDUCED_NETWORK);
    p
}

/// bootstrap + network from the typed model, and `probe` (network output + asset).
fn plan(probe_body: &str, asset: &[u8]) -> DeployPlan {
    let t = TargetArgs {
        config: vec![config_path()],
        templates: None,
        artifacts: None,
        registry_url: None,
        profile: None,
        region: None,
        endpoint_url: None,
        poll_ms: 5,
    };
    let (mut plan, _, _) = load_plan(&t).expect("demo-local synthesizes");
    plan.stacks
        .retain(|s| s.name == "bootstrap" || s.name == "network");
    plan.assets.clear();
    plan.with_asset(Asset::zip("probe-code", asset.to_vec()))
        .with_stack(
            PlannedStack::new("probe", probe_body)
                .depends_on("network")
                .param(
                    "VpcId",
                    ParamSource::Output {
                        stack: "network".into(),
                        output: "VpcId".into(),
                    },
                )
                .param(
                    "CodeKey",
                    ParamSource::AssetKey {
                        asset: "probe-code".into(),
                    },
                )
                .param("CodeBucket", ParamSource::AssetsBucket),
        )
}

async fn clients(moto: &Moto) -> Clients {
    Clients::from_sdk_config(&moto.sdk_config("eu-west-1").await)
}

fn opts(owner: &str) -> DeployOptions {
    DeployOptions {
        timing: Timing {
            poll: Duration::from_millis(5),
            stack_timeout: Duration::from_secs(60),
            in_progress_timeout: Duration::from_secs(60),
        },
        lock_owner: owner.into(),
        ..DeployOptions::default()
    }
}

fn moto() -> Moto {
    let m = Moto::start().expect("moto starts (run `make venv`)");
    m.reset().expect("moto resets");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_update_noop_destroy_round_trip_with_asset_upload() {
    let moto = moto();
    let c = clients(&moto).await;
    let events = Arc::new(Collect::default());
    let e = Engine::new(c.clone(), opts("ci@test"), events.clone());
    let p = reduced_plan(PROBE, b"code v1");

    let r = e.deploy(&p).await.unwrap();
    assert!(r.is_success(), "{r:#?}");
    for s in ["bootstrap", "network", "probe"] {
        assert_eq!(r.stack(s).unwrap().outcome, StackOutcome::Created, "{s}");
    }
    assert_eq!(r.assets_uploaded, 1);
    assert!(
        events
            .events()
            .iter()
            .any(|e| matches!(e, Event::Info { message } if message.contains("first use")))
    );
    // the asset is in the bootstrap bucket under its content hash, and the probe got its key
    let boot = e.bootstrap_info(&p).await.unwrap().unwrap();
    let key = p.asset("probe-code").unwrap().key();
    let obj =
        c.s3.get_object()
            .bucket(&boot.assets_bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
    assert_eq!(
        obj.body.collect().await.unwrap().into_bytes().as_ref(),
        b"code v1"
    );
    let probe = &r.stack("probe").unwrap().outputs;
    assert_eq!(probe["Code"], key);
    // the lock was released
    let lock = c
        .ddb
        .get_item()
        .table_name(&boot.lock_table)
        .key(
            "lock_id",
            aws_sdk_dynamodb::types::AttributeValue::S(p.lock_key()),
        )
        .send()
        .await
        .unwrap();
    assert!(lock.item().is_none(), "lock still held: {:?}", lock.item());
    let status = e.status(&p).await.unwrap();
    assert!(
        status
            .iter()
            .all(|s| s.drift == Drift::InSync && s.status == "CREATE_COMPLETE"),
        "{status:#?}"
    );

    // update one stack
    // (a resource outside the VPC: the emulator leaks replaced security groups)
    let changed = PROBE.replace(
        r#""Resources": {"#,
        r#""Resources": {"ProbeLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}},"#,
    );
    let p2 = reduced_plan(&changed, b"code v2");
    let r = e.deploy(&p2).await.unwrap();
    assert!(r.is_success(), "{r:#?}");
    assert_eq!(r.stack("probe").unwrap().outcome, StackOutcome::Updated);
    assert_eq!(r.stack("network").unwrap().outcome, StackOutcome::Unchanged);
    assert_eq!(r.change_sets_executed, 1);
    assert_eq!(r.assets_uploaded, 1);

    // no-op: no change set executed, nothing uploaded
    let r = e.deploy(&p2).await.unwrap();
    assert!(
        r.stacks
            .iter()
            .all(|s| s.outcome == StackOutcome::Unchanged),
        "{r:#?}"
    );
    assert_eq!(r.change_sets_executed, 0);
    assert_eq!(r.assets_uploaded, 0);
    assert_eq!(r.assets_present, 1);

    // destroy: refused without --yes, then everything goes (stage local holds no protected data)
    let err = e.destroy(&p2, DestroyOptions::default()).await.unwrap_err();
    assert!(matches!(err, DeployError::ConfirmDestroy(_)), "{err}");
    let gone = e
        .destroy(
            &p2,
            DestroyOptions {
                yes: true,
                release_data: false,
            },
        )
        .await
        .unwrap();
    let order: Vec<&str> = gone.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(order, ["probe", "network", "bootstrap"]);
    let status = e.status(&p2).await.unwrap();
    assert!(
        status.iter().all(|s| s.drift == Drift::NotDeployed),
        "{status:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_creates_nothing() {
    let moto = moto();
    let c = clients(&moto).await;
    let e = Engine::new(
        c.clone(),
        DeployOptions {
            dry_run: true,
            ..opts("ci@test")
        },
        Arc::new(Collect::default()),
    );
    let p = plan(PROBE, b"code");
    let r = e.deploy(&p).await.unwrap();
    assert!(
        r.stacks
            .iter()
            .all(|s| s.outcome == StackOutcome::WouldCreate),
        "{r:#?}"
    );
    let listed = c.cfn.list_stacks().send().await.unwrap();
    assert!(
        listed.stack_summaries().is_empty(),
        "{:?}",
        listed.stack_summaries()
    );
}

/// `PROBE` with an ECS cluster: a stack that needs ECS's service-linked role.
const ECS_PROBE: &str = r#"{
  "Parameters": {"VpcId": {"Type": "String"}, "CodeKey": {"Type": "String"}, "CodeBucket": {"Type": "String"}},
  "Resources": {
    "ProbeGroup": {"Type": "AWS::EC2::SecurityGroup",
                   "Properties": {"GroupDescription": "probe", "VpcId": {"Ref": "VpcId"}}},
    "ProbeCluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "probe-cluster"}}
  },
  "Outputs": {"GroupId": {"Value": {"Ref": "ProbeGroup"}}, "Code": {"Value": {"Ref": "CodeKey"}}}
}"#;

async fn ecs_service_linked_roles(c: &Clients) -> Vec<String> {
    c.iam
        .list_roles()
        .path_prefix("/aws-service-role/ecs.amazonaws.com/")
        .send()
        .await
        .unwrap()
        .roles()
        .iter()
        .map(|r| r.role_name().to_owned())
        .collect()
}

/// Index of the first event matching `f`.
fn first(events: &[Event], f: impl Fn(&Event) -> bool) -> Option<usize> {
    events.iter().position(f)
}

/// Defect 6 of issue 13: the first ECS cluster of a new account fails with "Unable to
/// assume the service linked role" unless the role exists before the stack is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecs_service_linked_role_exists_before_the_first_stack_with_ecs_resources() {
    let moto = moto();
    let c = clients(&moto).await;
    // no ECS resource in the plan: no role, no IAM call needed
    let e = Engine::new(c.clone(), opts("ci@test"), Arc::new(Collect::default()));
    assert!(
        e.deploy(&reduced_plan(PROBE, b"code"))
            .await
            .unwrap()
            .is_success()
    );
    assert_eq!(ecs_service_linked_roles(&c).await, Vec::<String>::new());

    // the probe stack gains an ECS cluster: the role is created before that stack runs
    let events = Arc::new(Collect::default());
    let e = Engine::new(c.clone(), opts("ci@test"), events.clone());
    let r = e.deploy(&reduced_plan(ECS_PROBE, b"code")).await.unwrap();
    assert!(r.is_success(), "{r:#?}");
    assert_eq!(ecs_service_linked_roles(&c).await.len(), 1);
    let events = events.events();
    let created = first(&events, |e| {
        matches!(e, Event::Info { message } if message.starts_with("service-linked role of ecs.amazonaws.com: created"))
    })
    .unwrap_or_else(|| panic!("no role created: {events:#?}"));
    let probe = first(
        &events,
        |e| matches!(e, Event::Stack { stack, .. } if stack == "probe"),
    )
    .expect("the probe stack ran");
    assert!(created < probe, "role at {created}, probe stack at {probe}");

    // idempotent: an account that has the role (every later deploy) succeeds, one role
    let events = Arc::new(Collect::default());
    let e = Engine::new(c.clone(), opts("ci@test"), events.clone());
    let r = e.deploy(&reduced_plan(ECS_PROBE, b"code")).await.unwrap();
    assert!(r.is_success(), "{r:#?}");
    assert!(
        first(&events.events(), |e| matches!(e, Event::Info { message } if message == "service-linked role of ecs.amazonaws.com: present"))
            .is_some()
    );
    assert_eq!(ecs_service_linked_roles(&c).await.len(), 1);
}

/// Blocks the first run right after it took the lock until the second run has tried.
#[derive(Debug)]
struct HoldAfterLock {
    taken: std::sync::mpsc::SyncSender<()>,
    resume: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Reporter for HoldAfterLock {
    fn on(&self, e: &Event) {
        if matches!(e, Event::Info { message } if message.starts_with("deploy lock")) {
            let _ = self.taken.send(());
            if let Ok(rx) = self.resume.lock() {
                let _ = rx.recv_timeout(Duration::from_secs(60));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_deploy_is_refused_by_the_lock_while_the_first_completes() {
    let moto = moto();
    let c = clients(&moto).await;
    let p = plan(PROBE, b"code");
    // the bootstrap stack (and its lock table) exists
    let setup = Engine::new(c.clone(), opts("setup"), Arc::new(Collect::default()));
    setup.deploy(&p).await.unwrap();

    let (taken_tx, taken_rx) = std::sync::mpsc::sync_channel(1);
    let (resume_tx, resume_rx) = std::sync::mpsc::channel();
    let first = Engine::new(
        c.clone(),
        opts("first@ci (pid 1)"),
        Arc::new(HoldAfterLock {
            taken: taken_tx,
            resume: std::sync::Mutex::new(resume_rx),
        }),
    );
    let p2 = plan(
        &PROBE.replace(
            r#""Resources": {"#,
            r#""Resources": {"ProbeLogs": {"Type": "AWS::Logs::LogGroup"},"#,
        ),
        b"code",
    );
    let p_first = p2.clone();
    let first_run = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(first.deploy(&p_first))
            .map_err(|e| e.to_string())
    });
    taken_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the first run takes the lock");

    let second = Engine::new(
        c.clone(),
        opts("second@ci (pid 2)"),
        Arc::new(Collect::default()),
    );
    let started = std::time::Instant::now();
    let err = second.deploy(&p2).await.unwrap_err();
    let refused_after = started.elapsed();
    resume_tx.send(()).unwrap();
    let msg = err.to_string();
    assert!(matches!(err, DeployError::Lock(_)), "{msg}");
    assert!(msg.contains("first@ci (pid 1)"), "{msg}");
    assert!(
        refused_after < Duration::from_secs(10),
        "refused fast, took {refused_after:?}"
    );

    let r = first_run.join().unwrap().unwrap();
    assert!(r.is_success(), "{r:#?}");
    assert_eq!(r.stack("probe").unwrap().outcome, StackOutcome::Updated);
}

/// Fires when the probe stack's change set is about to execute.
#[derive(Debug, Default)]
struct KillSwitch(tokio::sync::Notify);

impl Reporter for KillSwitch {
    fn on(&self, e: &Event) {
        if matches!(e, Event::Stack { stack, state, .. } if stack == "probe" && state == "executing change set")
        {
            self.0.notify_one();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_deploy_converges_on_rerun_with_nothing_lost() {
    let moto = moto();
    let c = clients(&moto).await;
    let p = plan(PROBE, b"code");
    let kill = Arc::new(KillSwitch::default());
    // a 6 s lease: renewed every 2 s, so 4 s without a renewal mark the run dead
    let first = Engine::new(
        c.clone(),
        DeployOptions {
            lock_lease: Duration::from_secs(6),
            ..opts("killed@ci")
        },
        kill.clone(),
    );
    tokio::select! {
        r = first.deploy(&p) => panic!("the run should have been killed: {r:?}"),
        () = kill.0.notified() => {}
    }
    drop(first);
    let boot = Engine::new(c.clone(), opts("x"), Arc::new(Collect::default()))
        .bootstrap_info(&p)
        .await
        .unwrap()
        .unwrap();
    let key = p.asset("probe-code").unwrap().key();
    assert!(
        c.s3.head_object()
            .bucket(&boot.assets_bucket)
            .key(&key)
            .send()
            .await
            .is_ok(),
        "asset uploaded before the kill"
    );

    // the dead run's lock is still there: a plain rerun is refused, --break-lock converges
    // once the lock went unrenewed for two heartbeats (the killed run lives on in this
    // process, so its pid says nothing)
    let rerun = Engine::new(c.clone(), opts("rerun@ci"), Arc::new(Collect::default()));
    let err = rerun.deploy(&p).await.unwrap_err();
    assert!(err.to_string().contains("killed@ci"), "{err}");
    // wait until the lock is stale (4 s after its last renewal) but not yet expired (6 s)
    let item = c
        .ddb
        .get_item()
        .table_name(&boot.lock_table)
        .key(
            "lock_id",
            aws_sdk_dynamodb::types::AttributeValue::S(p.lock_key()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let heartbeat: i64 = item.item().unwrap()["heartbeat_at_ms"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let wait = heartbeat + 4_800 - now_ms;
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
    let rerun = Engine::new(
        c.clone(),
        DeployOptions {
            break_lock: true,
            ..opts("rerun@ci")
        },
        Arc::new(Collect::default()),
    );
    let r = rerun.deploy(&p).await.unwrap();
    assert!(r.is_success(), "{r:#?}");
    let broke = r.broke_lock_of.clone().unwrap_or_default();
    assert!(
        broke.contains("on killed@ci") && broke.contains("not renewed for"),
        "{broke}"
    );
    assert_eq!(r.assets_uploaded, 0, "the asset survived the kill");
    assert_eq!(
        r.stack("bootstrap").unwrap().outcome,
        StackOutcome::Unchanged
    );
    assert_eq!(r.stack("network").unwrap().outcome, StackOutcome::Unchanged);
    assert!(matches!(
        r.stack("probe").unwrap().outcome,
        StackOutcome::Created | StackOutcome::Unchanged
    ));
    let status = rerun.status(&p).await.unwrap();
    assert!(
        status.iter().all(|s| s.status.ends_with("_COMPLETE")),
        "{status:#?}"
    );
    // and a third run has nothing to do
    let r = rerun.deploy(&p).await.unwrap();
    assert_eq!(r.change_sets_executed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_guard_asks_moto_sts_and_refuses_another_account() {
    let moto = moto();
    let c = clients(&moto).await;
    let e = Engine::new(c.clone(), opts("guard@ci"), Arc::new(Collect::default()));
    // demo-local names moto's account (123456789012): STS agrees
    let p = plan(PROBE, b"zip");
    assert_eq!(p.account_id.as_deref(), Some("123456789012"));
    let id = e
        .verify_account(&p)
        .await
        .unwrap()
        .expect("a plan with an account");
    assert_eq!(id.account, "123456789012");
    assert!(id.arn.starts_with("arn:aws:"), "{}", id.arn);
    // a config naming another account: refused before anything is created
    let mut other = plan(PROBE, b"zip");
    other.account_id = Some("111122223333".into());
    let err = e.deploy(&other).await.unwrap_err();
    assert!(matches!(err, DeployError::WrongAccount { .. }), "{err}");
    assert!(
        err.to_string().contains("account 111122223333")
            && err.to_string().contains("account 123456789012"),
        "{err}"
    );
    let stacks = c.cfn.describe_stacks().send().await.unwrap();
    assert!(stacks.stacks().is_empty(), "nothing created: {stacks:?}");
}

/// moto's ListChangeSets ignores StackName and lists every change set in the region: the
/// orphan sweep of one stack must never take another stack's change set (a parallel run's
/// fresh one). This raced in CI: network's empty change set was swept by another stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orphan_sweep_of_one_stack_leaves_other_stacks_change_sets() {
    use aws_sdk_cloudformation::types::ChangeSetType;
    use chrono_provisioner::deploy::cfn::{CHANGE_SET_PREFIX, delete_orphan_change_sets};
    let moto = moto();
    let c = clients(&moto).await;
    let body = r#"{"Resources": {"H": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}"#;
    let mut ids = Vec::new();
    for stack in ["sweep-a", "sweep-b"] {
        let out = c
            .cfn
            .create_change_set()
            .stack_name(stack)
            .change_set_name(format!("{CHANGE_SET_PREFIX}{stack}-1"))
            .change_set_type(ChangeSetType::Create)
            .template_body(body)
            .send()
            .await
            .unwrap();
        ids.push(out.id().unwrap().to_owned());
    }
    let swept = delete_orphan_change_sets(&c.cfn, "sweep-b").await.unwrap();
    assert_eq!(swept, vec![format!("{CHANGE_SET_PREFIX}sweep-b-1")]);
    // a's change set is still there
    let a = c
        .cfn
        .describe_change_set()
        .stack_name("sweep-a")
        .change_set_name(&ids[0])
        .send()
        .await;
    assert!(a.is_ok(), "sweep-b took sweep-a's change set: {a:?}");
    let swept = delete_orphan_change_sets(&c.cfn, "sweep-a").await.unwrap();
    assert_eq!(swept, vec![format!("{CHANGE_SET_PREFIX}sweep-a-1")]);
}
