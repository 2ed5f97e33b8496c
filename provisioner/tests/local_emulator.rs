//! Provisioning over HTTP: a moto server from the project's `.venv` (`make venv`) for the
//! tables and state machine, the local S3 server (in-process, on a temporary directory)
//! for the buckets, all created from the stack model of the demo config, and created again
//! without duplicates; the sources bucket answers browsers of the app's origin only (CORS
//! as S3 does it, from the bucket's own rules).

use std::path::Path;
use std::time::{Duration, Instant};

use chrono_provisioner::local::{moto, process, provision, s3};
use chrono_stacks::config::Config;

struct Moto(std::process::Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_moto(log: &Path) -> (Moto, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let program = moto::program(&root.join(".venv")).expect("run `make venv` first");
    let port = process::free_port().unwrap();
    let child = moto::start(&program, port, log, None).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{url}/moto-api/")).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not answer; see {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (Moto(child), url)
}

#[tokio::test]
async fn provisioning_creates_the_modelled_resources_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_moto, url) = start_moto(&dir.path().join("moto.log")).await;
    let store = s3::store::Store::open(&dir.path().join("s3")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s3_url = format!("http://{}", listener.local_addr().unwrap());
    let app = s3::router(
        std::sync::Arc::new(store),
        moto::ACCESS_KEY_ID,
        moto::SECRET_ACCESS_KEY,
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let cfg =
        Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../customers/demo-local.yaml"))
            .unwrap();
    let plan = provision::plan(&cfg).unwrap();
    let sdk = moto::sdk_config(&url, &cfg.region);
    let s3_sdk = moto::sdk_config(&s3_url, &cfg.region);

    let origin = "http://127.0.0.1:4999";
    let first = provision::apply(&sdk, &s3_sdk, &cfg, &plan, origin)
        .await
        .unwrap();
    let second = provision::apply(&sdk, &s3_sdk, &cfg, &plan, origin)
        .await
        .unwrap();
    assert_eq!(first, second, "a second apply must find the same resources");

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&s3_sdk)
            .force_path_style(true)
            .build(),
    );
    let mut buckets: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    buckets.sort();
    let mut expected = vec![first.sources_bucket.clone(), first.artifacts_bucket.clone()];
    expected.sort();
    assert_eq!(buckets, expected);

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let tables = ddb
        .list_tables()
        .send()
        .await
        .unwrap()
        .table_names()
        .to_vec();
    assert_eq!(tables.len(), 3, "{tables:?}");
    for t in &plan.tables {
        let desc = ddb
            .describe_table()
            .table_name(&t.table_name)
            .send()
            .await
            .unwrap();
        let keys: Vec<(String, String)> = desc
            .table()
            .unwrap()
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = t
            .key_schema
            .iter()
            .map(|k| (k.attribute_name.clone(), k.key_type.clone()))
            .collect();
        assert_eq!(keys, want, "{}", t.table_name);
        let ttl = ddb
            .describe_time_to_live()
            .table_name(&t.table_name)
            .send()
            .await
            .unwrap();
        let ttl = ttl.time_to_live_description().unwrap();
        assert_eq!(
            ttl.attribute_name(),
            Some(t.time_to_live_specification.attribute_name.as_str())
        );
        assert_eq!(
            ttl.time_to_live_status().map(|s| s.as_str()),
            Some("ENABLED")
        );
    }

    // CORS of the sources bucket: the app's origin may PUT (and read the ETag), no other.
    let object = format!("{s3_url}/{}/cases/x/evidence/y/a.log", first.sources_bucket);
    let http = reqwest::Client::new();
    let preflight = |from: &'static str| {
        http.request(reqwest::Method::OPTIONS, &object)
            .header("origin", from)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight(origin).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], origin);
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PUT")
    );
    let other = preflight("http://evil.test").await.unwrap();
    assert!(
        !other.status().is_success()
            || other.headers().get("access-control-allow-origin").is_none(),
        "another origin got {:?}",
        other.headers()
    );
    let put = http
        .put(&object)
        .header("origin", origin)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(put.headers()["access-control-allow-origin"], origin);
    assert_eq!(
        put.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase(),
        "etag"
    );

    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let machines = sfn.list_state_machines().send().await.unwrap();
    let names: Vec<&str> = machines.state_machines().iter().map(|m| m.name()).collect();
    assert_eq!(names, [plan.state_machine.as_str()]);
    let desc = sfn
        .describe_state_machine()
        .state_machine_arn(&first.state_machine_arn)
        .send()
        .await
        .unwrap();
    let def: serde_json::Value = serde_json::from_str(desc.definition()).unwrap();
    assert_eq!(
        // the Distributed Map reads the parts manifest from the artifacts bucket
        def["States"]["ProcessParts"]["ItemReader"]["Parameters"]["Bucket"],
        first.artifacts_bucket.as_str()
    );
}
