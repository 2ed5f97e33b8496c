//! The local S3 server (`chronoctl local serve-s3`) as a real process over HTTP, driven
//! the way the platform drives it: presigned `PUT`s signed with the SHA-256 and the
//! content type (as the runtime presigns uploads), presigned multipart parts, the SDK for
//! everything else. Issue 18: every uploaded byte survives a `kill -9` of the server
//! (also in the middle of a `PUT`), parallel uploads, and a malformed upload.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use base64::Engine as _;
use chrono_provisioner::local::{moto, process, s3};
use sha2::Digest as _;

const BUCKET: &str = "acme-dev-sources-000000000000";
const OCTET: &str = "application/octet-stream";

/// The server process; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    async fn start(root: &Path, port: u16) -> Server {
        let log = root.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_chronoctl"))
            .args(["local", "--dir"])
            .arg(root.parent().unwrap())
            .args(["serve-s3", "--addr", &format!("127.0.0.1:{port}"), "--root"])
            .arg(root)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = reqwest::get(format!("{url}{}", s3::HEALTH_PATH)).await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "serve-s3 did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Server { child, url }
    }

    /// `kill -9`, and wait until it is gone.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn client(&self) -> Client {
        let sdk = moto::sdk_config(&self.url, "us-east-1");
        Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

/// Deterministic, incompressible-looking bytes.
fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A presigned `PUT` of `key` signed with the body's SHA-256 and the octet-stream
/// content type (what `chrono_runtime::storage::SourcesBucket::presign_put` hands out).
async fn presign(s3: &Client, key: &str, sha: &str) -> (String, Vec<(String, String)>) {
    let req = s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .content_type(OCTET)
        .checksum_sha256(sha)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(900)).unwrap())
        .await
        .unwrap();
    let headers = req
        .headers()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    (req.uri().to_owned(), headers)
}

async fn put_presigned(s3: &Client, key: &str, bytes: Vec<u8>) -> reqwest::Response {
    let (url, headers) = presign(s3, key, &sha256_b64(&bytes)).await;
    put_to(&url, &headers, bytes, None).await
}

/// `PUT`s `bytes` to the upload URL `url` with its signed `headers`, the content type
/// replaced by `content_type` when given.
async fn put_to(
    url: &str,
    headers: &[(String, String)],
    bytes: Vec<u8>,
    content_type: Option<&str>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .put(url)
        .body(bytes)
        .timeout(Duration::from_secs(30));
    for (n, v) in headers {
        if content_type.is_none() || !n.eq_ignore_ascii_case("content-type") {
            req = req.header(n, v);
        }
    }
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    req.send().await.unwrap()
}

async fn get(s3: &Client, key: &str) -> Option<Vec<u8>> {
    match s3.get_object().bucket(BUCKET).key(key).send().await {
        Ok(out) => Some(out.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => {
            let e = e.into_service_error();
            assert!(e.is_no_such_key(), "{e:?}");
            None
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn uploads_survive_kill_9_and_a_restart_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    let port = process::free_port().unwrap();
    let mut server = Server::start(&root, port).await;
    let s3 = server.client();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();

    // 4 one after the other, 8 in parallel, and one of 12 MiB.
    let mut want: Vec<(String, Vec<u8>)> = (0..13u64)
        .map(|i| {
            let len = if i == 12 {
                12 << 20
            } else {
                1000 + 7919 * i as usize
            };
            (format!("cases/c/evidence/e{i}/file-{i}.evtx"), body(i, len))
        })
        .collect();
    for (key, bytes) in &want[..4] {
        let r = put_presigned(&s3, key, bytes.clone()).await;
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    let parallel: Vec<_> = want[4..12]
        .iter()
        .map(|(key, bytes)| {
            let (s3, key, bytes) = (s3.clone(), key.clone(), bytes.clone());
            tokio::spawn(async move { put_presigned(&s3, &key, bytes).await.status() })
        })
        .collect();
    for p in parallel {
        assert_eq!(p.await.unwrap(), 200);
    }
    let (key, bytes) = &want[12];
    assert_eq!(put_presigned(&s3, key, bytes.clone()).await.status(), 200);

    // A multipart upload with SHA-256 part checksums, parts PUT through presigned URLs.
    let key = "cases/c/evidence/big/big.evtx".to_owned();
    let big = body(99, (5 << 20) + 12345);
    let parts = [&big[..5 << 20], &big[5 << 20..]];
    let id = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(&key)
        .content_type(OCTET)
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let sha = sha256_b64(part);
        let req = s3
            .upload_part()
            .bucket(BUCKET)
            .key(&key)
            .upload_id(&id)
            .part_number(n)
            .checksum_sha256(&sha)
            .presigned(PresigningConfig::expires_in(Duration::from_secs(900)).unwrap())
            .await
            .unwrap();
        let mut put = reqwest::Client::new().put(req.uri()).body(part.to_vec());
        for (h, v) in req
            .headers()
            .filter(|(h, _)| !h.eq_ignore_ascii_case("host"))
        {
            put = put.header(h, v);
        }
        let r = put.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        completed.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(etag)
                .checksum_sha256(sha)
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(&key)
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let composite = {
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update(sha2::Sha256::digest(p));
        }
        format!(
            "{}-2",
            base64::engine::general_purpose::STANDARD.encode(h.finalize())
        )
    };
    assert_eq!(done.checksum_sha256(), Some(composite.as_str()));
    want.push((key, big));

    // kill -9, then the same directory served again: every byte is there.
    server.kill9();
    let server = Server::start(&root, port).await;
    let s3 = server.client();
    for (key, bytes) in &want {
        let got = get(&s3, key).await.unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(
            sha2::Sha256::digest(&got),
            sha2::Sha256::digest(bytes),
            "{key} changed"
        );
    }
    // ... with the checksum S3 verified at the upload, and listed like S3 lists.
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(&want[0].0)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.checksum_sha256(),
        Some(sha256_b64(&want[0].1).as_str())
    );
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("cases/c/evidence/")
        .max_keys(5)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    let mut keys: Vec<String> = listed
        .iter()
        .flat_map(|p| {
            p.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
        })
        .collect();
    let mut expected: Vec<String> = want.iter().map(|(k, _)| k.clone()).collect();
    expected.sort();
    keys.sort();
    assert_eq!(keys, expected);
    assert!(files_under(&root.join("tmp")).is_empty());
}

#[tokio::test]
async fn a_form_content_type_or_a_wrong_checksum_is_refused_at_once_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"), process::free_port().unwrap()).await;
    let s3 = server.client();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let key = "cases/c/evidence/e/Security.evtx";
    let bytes = body(1, 300_000);
    let (url, headers) = presign(&s3, key, &sha256_b64(&bytes)).await;

    // What `curl -d @file` and urllib send by default.
    let form = Some("application/x-www-form-urlencoded");
    let r = put_to(&url, &headers, bytes.clone(), form).await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("<Code>InvalidRequest</Code>"), "{text}");
    assert!(text.contains("application/octet-stream"), "{text}");
    assert_eq!(get(&s3, key).await, None, "nothing may be stored");

    // The right upload, then one whose bytes do not match the signed SHA-256: refused
    // with BadDigest, and the stored object is still the first one.
    assert_eq!(put_presigned(&s3, key, bytes.clone()).await.status(), 200);
    let r = put_to(&url, &headers, body(2, 300_000), None).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("BadDigest"));
    assert_eq!(get(&s3, key).await.as_deref(), Some(bytes.as_slice()));

    // Another content type than the signed one: the signature does not match (as S3).
    let r = put_to(&url, &headers, bytes.clone(), Some("text/plain")).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SignatureDoesNotMatch"));
}

#[tokio::test]
async fn a_kill_9_during_a_put_leaves_the_previous_object_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    let port = process::free_port().unwrap();
    let mut server = Server::start(&root, port).await;
    let s3 = server.client();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let key = "cases/c/evidence/e/Security.evtx";
    let old = body(1, 1 << 20);
    assert_eq!(put_presigned(&s3, key, old.clone()).await.status(), 200);

    // A new version whose body arrives in two halves; the server dies after the first.
    // (A raw HTTP/1.1 request, so the body can stop half way.)
    let new = body(2, 4 << 20);
    let (url, headers) = presign(&s3, key, &sha256_b64(&new)).await;
    let target = url.strip_prefix(&server.url).unwrap().to_owned();
    let mut head = format!(
        "PUT {target} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {}\r\n",
        new.len()
    );
    for (n, v) in &headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt as _;
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&new[..2 << 20]).await.unwrap();
    conn.flush().await.unwrap();
    // The first half is being written when a body file exists in tmp/.
    let deadline = Instant::now() + Duration::from_secs(30);
    while files_under(&root.join("tmp")).is_empty() {
        assert!(Instant::now() < deadline, "the PUT never started writing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    drop(conn);

    let server = Server::start(&root, port).await;
    let s3 = server.client();
    let got = get(&s3, key)
        .await
        .expect("the previous object must remain");
    assert_eq!(sha2::Sha256::digest(&got), sha2::Sha256::digest(&old));
    assert!(
        files_under(&root.join("tmp")).is_empty(),
        "the torn body is removed"
    );
    let data = files_under(&root.join("buckets").join(BUCKET).join("data"));
    assert_eq!(data.len(), 1, "no unreferenced bytes are kept: {data:?}");
}
