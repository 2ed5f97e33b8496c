//! `chronoctl preview` against the local AWS emulator (moto) over real HTTP: up → list →
//! extend → down by name only; an expired preview refused until extended; two previews
//! sharing the account bootstrap (deleting one leaves the other working); a versioned
//! bucket with versions and delete markers emptied by `down`; `gc` deleting the expired
//! preview only — not the live one, not a production stack with a past `expires-at` tag.
//!
//! The previews are derived from `customers/acme-staging.yaml` by the real code; their
//! bootstrap is the real account bootstrap; their other stacks are reduced (the emulator
//! cannot run or delete the real network/compute stacks): a network stack and a data stack
//! holding a versioned bucket that depends on it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_provisioner::aws::Clients;
use chrono_provisioner::deploy::cfn::Timing;
use chrono_provisioner::deploy::plan::PlanArtifacts;
use chrono_provisioner::deploy::progress::Collect;
use chrono_provisioner::deploy::target::plan_for_config;
use chrono_provisioner::deploy::{DeployOptions, DeployPlan, Engine, PlannedStack};
use chrono_provisioner::preview::PreviewError;
use chrono_provisioner::preview::down::{down, gc};
use chrono_provisioner::preview::inventory::{GcVerdict, parse_time, previews};
use chrono_provisioner::preview::up::{UpRequest, up};
use chrono_stacks::Config;
use chrono_tests::moto::Moto;

/// A VPC, and a log group tagged with the expiry as every resource of a real preview is
/// (the synthesized templates carry `chrono:expires-at`, so extending a preview changes
/// every stack; the emulator updates a log group cleanly, not a VPC).
fn network_stack(cfg: &Config) -> String {
    let expires = &cfg.preview.as_ref().unwrap().expires_at;
    format!(
        r#"{{
  "Resources": {{
    "Vpc": {{"Type": "AWS::EC2::VPC", "Properties": {{"CidrBlock": "10.1.0.0/16"}}}},
    "Logs": {{"Type": "AWS::Logs::LogGroup", "Properties": {{"RetentionInDays": 7,
      "Tags": [{{"Key": "chrono:expires-at", "Value": "{expires}"}}]}}}}
  }},
  "Outputs": {{"VpcId": {{"Value": {{"Ref": "Vpc"}}}}}}
}}"#
    )
}

/// A versioned bucket deleted with the stack (the preview's data policy), named after the
/// preview so two previews do not collide. No parameters: moto refuses an `UpdateStack`
/// that keeps the template and passes parameters ("No updates are to be performed") even
/// when the tags change, and it never applies the tags of an executed update change set,
/// so in the emulator the expiry reaches the stack tags only through `preview up`'s
/// tag-only update. `HttpApiUrl` stands in for the api stack's output (a `Ref`, which the
/// engine resolves where the emulator reports no outputs).
fn data_stack(cfg: &Config) -> String {
    let (name, expires) = (&cfg.customer, &cfg.preview.as_ref().unwrap().expires_at);
    format!(
        r#"{{
  "Resources": {{
    "SourcesBucket": {{"Type": "AWS::S3::Bucket", "DeletionPolicy": "Delete",
      "Properties": {{"BucketName": "chrono-{name}-preview-sources",
                     "VersioningConfiguration": {{"Status": "Enabled"}},
                     "Tags": [{{"Key": "chrono:expires-at", "Value": "{expires}"}}]}}}}
  }},
  "Outputs": {{"SourcesBucketName": {{"Value": {{"Ref": "SourcesBucket"}}}},
              "HttpApiUrl": {{"Value": {{"Ref": "SourcesBucket"}}}}}}
}}"#
    )
}

fn base() -> Config {
    let p =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../customers/acme-staging.yaml");
    Config::load(&p).unwrap()
}

/// The real account bootstrap of the derived config, plus the reduced stacks.
fn reduced(cfg: &Config) -> Result<DeployPlan, PreviewError> {
    let (mut plan, _) = plan_for_config(cfg, &PlanArtifacts::placeholders()).unwrap();
    plan.stacks.retain(|s| s.name == "bootstrap");
    plan.assets.clear();
    Ok(plan
        .with_stack(PlannedStack::new("network", network_stack(cfg)).depends_on("bootstrap"))
        .with_stack(PlannedStack::new("data", data_stack(cfg)).depends_on("network")))
}

async fn clients(moto: &Moto) -> Clients {
    Clients::from_sdk_config(&moto.sdk_config("eu-west-1").await)
}

fn engine(c: &Clients, dry_run: bool) -> Engine {
    Engine::new(
        c.clone(),
        DeployOptions {
            timing: Timing {
                poll: Duration::from_millis(5),
                stack_timeout: Duration::from_secs(60),
                in_progress_timeout: Duration::from_secs(60),
            },
            lock_owner: "preview-test".into(),
            dry_run,
            ..DeployOptions::default()
        },
        Arc::new(Collect::default()),
    )
}

fn t(s: &str) -> DateTime<Utc> {
    parse_time(s).unwrap()
}

fn req(name: &str, ttl_hours: Option<i64>, now: &str) -> UpRequest {
    UpRequest {
        base: base(),
        base_file: "customers/acme-staging.yaml".into(),
        name: name.into(),
        ttl: ttl_hours.map(chrono::Duration::hours),
        now: t(now),
    }
}

async fn stack_tags(
    c: &Clients,
    stack: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    chrono_provisioner::deploy::cfn::describe(&c.cfn, stack)
        .await
        .unwrap()
        .map(|i| i.tags)
}

async fn bucket_exists(c: &Clients, bucket: &str) -> bool {
    c.s3.head_bucket().bucket(bucket).send().await.is_ok()
}

fn moto() -> Moto {
    let m = Moto::start().expect("moto starts (run `make venv`)");
    m.reset().expect("moto resets");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_list_extend_refuse_expired_and_down_by_name_only() {
    let moto = moto();
    let c = clients(&moto).await;
    let e = engine(&c, false);

    // up: a new preview gets the default TTL, the owner from STS, the shared bootstrap
    let (cfg, r) = up(
        &e,
        &req("feat-login", None, "2026-12-02T08:00:00Z"),
        reduced,
    )
    .await
    .unwrap();
    assert_eq!(cfg.customer, "feat-login");
    assert!(!r.updated);
    assert_eq!(r.expires_at, "2026-12-05T08:00:00Z");
    assert!(r.owner.starts_with("arn:aws:"), "{}", r.owner);
    assert_eq!(r.endpoints["api"], "chrono-feat-login-preview-sources");
    let data = stack_tags(&c, "chrono-feat-login-preview-data")
        .await
        .unwrap();
    assert_eq!(data["chrono:preview"], "true");
    assert_eq!(data["chrono:owner"], r.owner);
    assert_eq!(data["chrono:expires-at"], "2026-12-05T08:00:00Z");
    assert_eq!(data["chrono:depends-on"], "network");
    assert_eq!(data["chrono:preview-base"], "acme-staging");
    let boot = stack_tags(&c, "chrono-bootstrap").await.unwrap();
    assert_eq!(boot["chrono:scope"], "account");
    assert!(!boot.contains_key("chrono:preview"), "{boot:?}");
    assert!(!boot.contains_key("chrono:owner"), "{boot:?}");

    // list: from tags alone
    let ps = previews(&c.cfn).await.unwrap();
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!(ps[0].name, "feat-login");
    assert_eq!(ps[0].owner, r.owner);
    assert_eq!(ps[0].expires_at, "2026-12-05T08:00:00Z");
    assert_eq!(
        ps[0].stacks.keys().map(String::as_str).collect::<Vec<_>>(),
        ["data", "network"]
    );

    // extend: a rerun with --ttl moves the expiry of every stack
    let (_, r) = up(
        &e,
        &req("feat-login", Some(24), "2026-12-02T09:00:00Z"),
        reduced,
    )
    .await
    .unwrap();
    assert!(r.updated);
    assert_eq!(r.expires_at, "2026-12-03T09:00:00Z");
    let ps = previews(&c.cfn).await.unwrap();
    assert_eq!(ps[0].expires_at, "2026-12-03T09:00:00Z");
    for s in ["network", "data"] {
        let tags = stack_tags(&c, &format!("chrono-feat-login-preview-{s}"))
            .await
            .unwrap();
        assert_eq!(tags["chrono:expires-at"], "2026-12-03T09:00:00Z", "{s}");
    }

    // expired: refused until extended, nothing changed
    let err = up(
        &e,
        &req("feat-login", None, "2026-12-04T00:00:00Z"),
        reduced,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PreviewError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("--ttl"), "{err}");
    assert_eq!(
        previews(&c.cfn).await.unwrap()[0].expires_at,
        "2026-12-03T09:00:00Z"
    );

    // down by name only, with versions and delete markers in the versioned bucket
    let bucket = "chrono-feat-login-preview-sources";
    // (the emulator drops VersioningConfiguration when it updates the bucket's tags)
    c.s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for (key, body) in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1")] {
        c.s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    for key in ["a", "b"] {
        c.s3.delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    let v =
        c.s3.list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
    assert_eq!(v.versions().len(), 4);
    assert_eq!(v.delete_markers().len(), 2);

    let err = down(&e, "nope").await.unwrap_err();
    assert!(err.to_string().contains("feat-login"), "{err}");

    let r = down(&e, "feat-login").await.unwrap();
    assert!(r.remaining.is_empty(), "{r:#?}");
    let order: Vec<&str> = r.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["data", "network"]);
    assert!(
        !bucket_exists(&c, bucket).await,
        "the bucket was not emptied and deleted"
    );
    assert!(previews(&c.cfn).await.unwrap().is_empty());
    // the account bootstrap stays
    assert!(stack_tags(&c, "chrono-bootstrap").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_previews_share_one_bootstrap_and_deleting_one_leaves_the_other_working() {
    let moto = moto();
    let c = clients(&moto).await;
    let e = engine(&c, false);
    let now = "2026-12-02T08:00:00Z";
    up(&e, &req("alpha", None, now), reduced).await.unwrap();
    let (_, r) = up(&e, &req("beta", None, now), reduced).await.unwrap();
    // the second preview found the bootstrap and left it as it was
    let boot = r.deploy.stack("bootstrap").unwrap();
    assert_eq!(boot.stack_name, "chrono-bootstrap");
    assert_eq!(boot.outcome.label(), "unchanged", "{boot:#?}");
    let names: Vec<String> = previews(&c.cfn)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);

    let r = down(&e, "alpha").await.unwrap();
    assert!(r.remaining.is_empty(), "{r:#?}");
    let left = previews(&c.cfn).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, "beta");
    assert_eq!(left[0].status, "CREATE_COMPLETE");
    assert!(bucket_exists(&c, "chrono-beta-preview-sources").await);
    // beta still deploys (bootstrap, its lock table and bucket are there) and still deletes
    let (_, r) = up(&e, &req("beta", Some(1), "2026-12-02T09:00:00Z"), reduced)
        .await
        .unwrap();
    assert!(r.deploy.is_success(), "{:#?}", r.deploy);
    let r = down(&e, "beta").await.unwrap();
    assert!(r.remaining.is_empty(), "{r:#?}");
    assert!(stack_tags(&c, "chrono-bootstrap").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_expired_previews_only_never_a_stack_without_the_preview_tag() {
    let moto = moto();
    let c = clients(&moto).await;
    let e = engine(&c, false);
    // expired: deployed in 2020 with the default TTL
    up(&e, &req("old", None, "2020-01-01T00:00:00Z"), reduced)
        .await
        .unwrap();
    // live
    up(&e, &req("fresh", Some(48), "2026-12-02T08:00:00Z"), reduced)
        .await
        .unwrap();
    // a production stack managed by chronoctl with a past expires-at tag but no preview tag
    let tag = |k: &str, v: &str| {
        aws_sdk_cloudformation::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
    };
    c.cfn
        .create_stack()
        .stack_name("chrono-acme-prod-logs")
        .template_body(
            r#"{"Resources": {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}}}}"#,
        )
        .tags(tag("chrono:customer", "acme"))
        .tags(tag("chrono:stage", "prod"))
        .tags(tag("chrono:managed-by", "chronoctl"))
        .tags(tag("chrono:expires-at", "2020-01-01T00:00:00Z"))
        .send()
        .await
        .unwrap();
    let now = t("2026-12-02T10:00:00Z");

    // dry run: verdicts, nothing deleted
    let rows = gc(&engine(&c, true), now).await.unwrap();
    let verdicts: Vec<(&str, &GcVerdict)> =
        rows.iter().map(|r| (r.name.as_str(), &r.verdict)).collect();
    assert_eq!(
        verdicts,
        [("fresh", &GcVerdict::Live), ("old", &GcVerdict::Expired)]
    );
    assert!(stack_tags(&c, "chrono-old-preview-data").await.is_some());

    let rows = gc(&e, now).await.unwrap();
    let old = rows.iter().find(|r| r.name == "old").unwrap();
    assert!(old.down.as_ref().unwrap().remaining.is_empty(), "{rows:#?}");
    assert!(stack_tags(&c, "chrono-old-preview-data").await.is_none());
    assert!(stack_tags(&c, "chrono-old-preview-network").await.is_none());
    assert!(stack_tags(&c, "chrono-fresh-preview-data").await.is_some());
    assert!(stack_tags(&c, "chrono-acme-prod-logs").await.is_some());
    assert!(stack_tags(&c, "chrono-bootstrap").await.is_some());
    let names: Vec<String> = previews(&c.cfn)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["fresh"]);
}
