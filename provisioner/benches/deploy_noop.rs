//! Benchmark: a no-op `chronoctl deploy` against the local AWS emulator (moto).
//!
//! Deploys the bootstrap and network stacks of `customers/demo-local.yaml` once, then
//! times reruns with nothing changed — in-process (`Engine::deploy`) and as a whole
//! `chronoctl deploy` process — and checks no change set was executed. Target: ≤ 1 s.
//! Run with `make bench` (needs `make venv`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono_provisioner::aws::Clients;
use chrono_provisioner::deploy::cfn::Timing;
use chrono_provisioner::deploy::progress::Silent;
use chrono_provisioner::deploy::target::{TargetArgs, load_plan};
use chrono_provisioner::deploy::{DeployOptions, Engine};
use chrono_tests::moto::Moto;

const RUNS: usize = 10;

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<36} runs {:>3}  min {:>8.1} ms  median {:>8.1} ms  max {:>8.1} ms",
        v.len(),
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let moto = Moto::start()?;
    moto.reset()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config = root.join("customers/demo-local.yaml");
    let target = TargetArgs {
        config: vec![config.clone()],
        templates: None,
        artifacts: None,
        registry_url: None,
        profile: None,
        region: None,
        endpoint_url: None,
        poll_ms: 5,
    };
    let (mut plan, _, _) = load_plan(&target)?;
    plan.stacks
        .retain(|s| s.name == "bootstrap" || s.name == "network");
    plan.assets.clear();

    let sdk = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load(),
    );
    let opts = DeployOptions {
        timing: Timing {
            poll: Duration::from_millis(5),
            ..Timing::default()
        },
        ..DeployOptions::default()
    };
    let engine = Engine::new(Clients::from_sdk_config(&sdk), opts, Arc::new(Silent));
    let first = rt.block_on(engine.deploy(&plan))?;
    if !first.is_success() {
        return Err(format!("initial deploy failed: {first:?}").into());
    }

    let mut inproc = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = rt.block_on(engine.deploy(&plan))?;
        inproc.push(t.elapsed());
        assert_eq!(
            r.change_sets_executed, 0,
            "a no-op deploy executed a change set"
        );
    }
    stats("no-op deploy (in-process)", inproc);

    // The whole process, from a templates directory holding only those two stacks.
    let dir = tempfile::tempdir()?;
    let files = chrono_stacks::synth::synthesize(&chrono_stacks::Config::load(&config)?)?;
    common::write_templates(&files, dir.path(), &["bootstrap", "network"])?;
    let mut procs = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_chronoctl"))
            .args(["deploy", "--config"])
            .arg(&config)
            .arg("--templates")
            .arg(dir.path())
            .args([
                "--endpoint-url",
                &moto.endpoint(),
                "--region",
                "eu-west-1",
                "--output",
                "json",
            ])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("CHRONO_POLL_MS", "5")
            .output()?;
        procs.push(t.elapsed());
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("\"change_sets_executed\":0") {
            return Err(format!(
                "chronoctl deploy failed: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
    }
    stats("no-op `chronoctl deploy` (process)", procs);
    Ok(())
}
