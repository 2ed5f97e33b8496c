//! A real `chronoctl deploy` process against the local AWS emulator (moto over HTTP),
//! interrupted with SIGINT in the middle of a deploy — while it holds the deploy lock and a
//! change set of its own waits (for `--require-approval`'s answer) — must leave the lock
//! free and no change set behind, and exit with 130.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono_provisioner::aws::Clients;
use chrono_provisioner::deploy::Engine;
use chrono_provisioner::deploy::progress::Collect;
use chrono_provisioner::deploy::target::{TargetArgs, load_plan};
use chrono_tests::moto::Moto;

fn config() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../customers/demo-local.yaml")
}

/// The next prompt after byte `from` of the output: (its stack name, where it ends).
fn prompt(out: &str, from: usize) -> Option<(String, usize)> {
    let rest = out.get(from..)?;
    let at = rest.find("approve the change set of ")?;
    let tail = &rest[at + "approve the change set of ".len()..];
    let end = tail.find("? [y/N] ")?;
    let stack = tail[..end].to_owned();
    Some((
        stack,
        from + at + "approve the change set of ".len() + end + 8,
    ))
}

#[test]
fn sigint_mid_deploy_releases_the_lock_and_leaves_no_change_set() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    moto.reset().expect("moto resets");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chronoctl"))
        .arg("deploy")
        .arg("--config")
        .arg(config())
        .args(["--endpoint-url", &moto.endpoint(), "--require-approval"])
        .args(["--app-dir", "/nonexistent-app-dir"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("CHRONO_POLL_MS", "20")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chronoctl starts");
    let out = Arc::new(Mutex::new(String::new()));
    let reader = {
        let out = out.clone();
        let mut err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let start = Instant::now();
    let mut seen = 0;
    // approve the bootstrap (created before the lock exists); interrupt at the first
    // prompt of a stack deployed under the lock
    let interrupted_at = loop {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no prompt under the lock: {}",
            out.lock().unwrap()
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "chronoctl ended before the prompt ({status}): {}",
                out.lock().unwrap()
            );
        }
        let next = prompt(&out.lock().unwrap(), seen);
        match next {
            Some((stack, end)) if stack.ends_with("-bootstrap") => {
                stdin.write_all(b"y\n").unwrap();
                seen = end;
            }
            Some((stack, _)) => break stack,
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "chronoctl did not stop on SIGINT: {}",
            out.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    reader.join().unwrap();
    let text = out.lock().unwrap().clone();
    assert_eq!(exit.code(), Some(130), "{text}");
    assert!(text.contains("interrupted by SIGINT"), "{text}");
    assert!(
        text.contains("deleted change set") && text.contains("released the deploy lock"),
        "{text}"
    );

    // what the emulator holds now
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await;
        let c = Clients::from_sdk_config(&sdk);
        let t = TargetArgs {
            config: vec![config()],
            templates: None,
            artifacts: None,
            registry_url: None,
            profile: None,
            region: None,
            endpoint_url: None,
            poll_ms: 5,
        };
        let (plan, _, _) = load_plan(&t).unwrap();
        let e = Engine::new(c.clone(), Default::default(), Arc::new(Collect::default()));
        let boot = e.bootstrap_info(&plan).await.unwrap().expect("bootstrap");
        let lock = c
            .ddb
            .get_item()
            .table_name(&boot.lock_table)
            .key(
                "lock_id",
                aws_sdk_dynamodb::types::AttributeValue::S(plan.lock_key()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert!(lock.item().is_none(), "lock left: {:?}", lock.item());
        for s in &plan.stacks {
            let name = plan.stack_name(&s.name);
            if let Ok(cs) = c.cfn.list_change_sets().stack_name(&name).send().await {
                // the emulator lists executed change sets too; none may wait
                let waiting: Vec<_> = cs
                    .summaries()
                    .iter()
                    .filter(|c| {
                        c.execution_status()
                            != Some(&aws_sdk_cloudformation::types::ExecutionStatus::ExecuteComplete)
                    })
                    .collect();
                assert!(
                    waiting.is_empty(),
                    "{name} keeps a pending change set: {waiting:?} (interrupted at {interrupted_at})"
                );
            }
        }
    });
}
