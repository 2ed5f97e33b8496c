//! The runtime image end to end, with real tools: assembled from this build's runtime
//! binaries (debug builds, which the release check refuses, so the image is assembled
//! through the same functions without that check), pushed through the OCI distribution
//! API to a real registry on loopback (Debian's `docker-registry`) with credentials from
//! the emulator's ECR `GetAuthorizationToken`, pulled back by digest with `skopeo`,
//! unpacked with `umoci`, and its entry point run from the unpacked root file system under
//! `chroot` — as the image's non-root user too. Also: a second push uploads no blob, a
//! changed binary uploads only its layer, and ECR's digest check refuses an image ECR does
//! not hold.
//!
//! Needs `make venv`, `make registry-bin` and a built workspace (`make test` does all),
//! and root (for `chroot`; tests and CI run as root).

use std::collections::BTreeMap;
use std::path::Path;

use chrono_provisioner::build::check::CheckError;
use chrono_provisioner::build::{
    self, BuildError, BuildSpec, IMAGE_BINARIES, IMAGE_REF, artifacts, cargo, image,
};
use chrono_provisioner::deploy::image::{
    ImageShipError, Registry as Pusher, content_tag, describe_repository, ecr_auth, verify_in_ecr,
};
use chrono_tests::moto::Moto;
use chrono_tests::registry::{ECR_USER, MOTO_ECR_PASSWORD, Registry, run};

fn spec() -> BuildSpec {
    BuildSpec {
        arch: cargo::host_architecture().expect("tests run on x86-64 or AArch64"),
        lambdas: Vec::new(),
        image_binaries: IMAGE_BINARIES.iter().map(|b| (*b).to_owned()).collect(),
    }
}

/// The image binaries of this build (debug).
fn binaries() -> BTreeMap<String, Vec<u8>> {
    let dir = chrono_tests::bin_dir();
    IMAGE_BINARIES
        .iter()
        .map(|b| {
            let p = dir.join(b);
            let bytes = std::fs::read(&p)
                .unwrap_or_else(|e| panic!("{}: {e}; build the workspace first", p.display()));
            ((*b).to_owned(), bytes)
        })
        .collect()
}

fn assemble(bins: &BTreeMap<String, Vec<u8>>) -> image::Image {
    let (input, _) = build::image_input(&spec(), bins, Path::new("/")).unwrap();
    image::assemble(&input).unwrap()
}

#[test]
fn two_assemblies_give_one_digest_and_the_release_check_refuses_these_debug_builds() {
    let bins = binaries();
    let a = assemble(&bins);
    let b = assemble(&bins);
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a, b);

    // The checks see what these binaries are: debug builds of ours.
    let out = tempfile::tempdir().unwrap();
    match build::package(&spec(), &bins, Path::new("/"), out.path()) {
        Err(BuildError::Check(CheckError::DebugBuild { profile, .. })) => {
            assert_eq!(profile, "debug");
        }
        other => panic!("a debug build was not refused: {other:?}"),
    }
}

async fn ecr_client(moto: &Moto) -> aws_sdk_ecr::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_ecr::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await;
    aws_sdk_ecr::Client::new(&sdk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_is_pushed_pulled_by_digest_unpacked_and_its_entrypoint_runs() {
    let moto = Moto::start().expect("moto starts (run `make venv`)");
    moto.reset().unwrap();
    let registry = Registry::start().expect("docker-registry starts (run `make registry-bin`)");
    let ecr = ecr_client(&moto).await;
    let repo = "chrono-demo-local-runtime";

    // The repository: absent, then created (the bootstrap stack creates it in AWS).
    assert!(matches!(
        describe_repository(&ecr, repo).await,
        Err(ImageShipError::NoRepository(_))
    ));
    ecr.create_repository()
        .repository_name(repo)
        .send()
        .await
        .unwrap();
    let uri = describe_repository(&ecr, repo).await.unwrap();
    assert!(uri.ends_with(&format!("/{repo}")), "{uri}");

    // Credentials from ECR; the blobs go to the loopback registry.
    let auth = ecr_auth(&ecr, Some(&registry.url())).await.unwrap();
    assert_eq!(auth.url, registry.url());
    let pusher = Pusher::new(auth, repo);

    let bins = binaries();
    let img = assemble(&bins);
    let first = pusher
        .push(&img)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    assert_eq!(first.blobs_uploaded, 3, "config and two layers: {first:?}");
    assert!(first.manifest_pushed);
    let again = pusher.push(&img).await.unwrap();
    assert_eq!(again.blobs_uploaded, 0, "{again:?}");
    assert_eq!(again.bytes_uploaded, 0);
    assert!(!again.manifest_pushed);

    // A changed binary: only its layer (and the config) travel.
    let mut changed = bins.clone();
    changed
        .get_mut(IMAGE_BINARIES[1])
        .unwrap()
        .extend_from_slice(b"\0trailing byte");
    let img2 = assemble(&changed);
    assert_ne!(img2.digest(), img.digest());
    let third = pusher.push(&img2).await.unwrap();
    assert_eq!(
        (third.blobs_uploaded, third.blobs_present),
        (2, 1),
        "{third:?}"
    );

    // Pulled back by digest with a standard client.
    let pulled = tempfile::tempdir().unwrap();
    let layout = pulled.path().join("layout");
    let src = format!("docker://{}/{repo}@{}", registry.host(), img.digest());
    let dst = format!("oci:{}:{IMAGE_REF}", layout.display());
    let creds = format!("{ECR_USER}:{MOTO_ECR_PASSWORD}");
    run(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &src,
            &dst,
        ],
    )
    .unwrap();
    let back = image::read_layout(&layout).unwrap();
    assert_eq!(back.digest(), img.digest());
    // The tag names the same image.
    let by_tag = format!(
        "docker://{}/{repo}:{}",
        registry.host(),
        content_tag(img.digest())
    );
    let inspected = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--raw",
            &by_tag,
        ],
    )
    .unwrap();
    assert_eq!(inspected.as_bytes(), img.manifest.bytes.as_slice());
    // The pulled image passes the checks a deploy runs on `--artifacts` (bar the release
    // check these debug binaries fail).
    match artifacts::check_image(&back, &spec()) {
        Err(BuildError::Check(CheckError::DebugBuild { file, .. })) => {
            assert!(file.contains("/usr/local/bin/"), "{file}");
        }
        other => panic!("expected the debug build to be named: {other:?}"),
    }

    // Unpacked with umoci: a root file system in which the entry point runs.
    let bundle = pulled.path().join("bundle");
    let image_ref = format!("{}:{IMAGE_REF}", layout.display());
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &image_ref,
            &bundle.display().to_string(),
        ],
    )
    .unwrap();
    let rootfs = bundle.join("rootfs");
    let cfg: serde_json::Value = serde_json::from_slice(&back.config.bytes).unwrap();
    let entrypoint = cfg["config"]["Entrypoint"][0].as_str().unwrap().to_owned();
    let user = cfg["config"]["User"].as_str().unwrap().to_owned();
    let rootfs_s = rootfs.display().to_string();
    for userspec in ["0:0", user.as_str()] {
        let out = run(
            "chroot",
            &[
                &format!("--userspec={userspec}"),
                &rootfs_s,
                &entrypoint,
                "--version",
            ],
        )
        .unwrap_or_else(|e| panic!("the entry point does not run as {userspec}: {e}"));
        assert!(
            out.contains("chrono-build-marker/1;") && out.starts_with("chrono-filter-ai "),
            "{out}"
        );
    }
    let pipeline = run(
        "chroot",
        &[&rootfs_s, "/usr/local/bin/chrono-pipeline", "--version"],
    )
    .unwrap();
    assert!(pipeline.starts_with("chrono-pipeline "), "{pipeline}");
    assert!(
        rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file(),
        "CA certificates in the image"
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains(":10001:10001:"), "{passwd}");

    // ECR's digest check: moto has no registry API, so it holds only what the ECR API put.
    match verify_in_ecr(&ecr, repo, img.digest()).await {
        Err(ImageShipError::NotInEcr { digest, .. }) => assert_eq!(digest, img.digest()),
        other => panic!("an image ECR does not hold was not refused: {other:?}"),
    }
    ecr.put_image()
        .repository_name(repo)
        .image_manifest(String::from_utf8(img.manifest.bytes.clone()).unwrap())
        .image_manifest_media_type(image::MANIFEST_MEDIA_TYPE)
        .image_digest(img.digest())
        .image_tag(content_tag(img.digest()))
        .send()
        .await
        .unwrap();
    verify_in_ecr(&ecr, repo, img.digest()).await.unwrap();
    assert!(verify_in_ecr(&ecr, repo, img2.digest()).await.is_err());
    assert!(
        verify_in_ecr(&ecr, repo, "sha256:not-a-digest")
            .await
            .is_err()
    );
}
