//! Publishing the web app against the local emulator over HTTP (moto's S3 and CloudFront,
//! through the real SDK clients): a first publish uploads everything and invalidates
//! nothing; a rerun moves no bytes; a changed `index.html` and a new hashed asset upload
//! two files and invalidate only `/index.html`; a dry run changes nothing.

use chrono_provisioner::aws::Clients;
use chrono_provisioner::deploy::app::{AppFile, MANIFEST_KEY, publish};
use chrono_tests::moto::Moto;

const BUCKET: &str = "chrono-test-app";

fn file(path: &str, text: &str) -> AppFile {
    AppFile {
        path: path.into(),
        bytes: text.as_bytes().to_vec(),
    }
}

async fn distribution(cf: &aws_sdk_cloudfront::Client) -> String {
    use aws_sdk_cloudfront::types::{
        DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig,
        ViewerProtocolPolicy,
    };
    let config = DistributionConfig::builder()
        .caller_reference("app-publish-test")
        .comment("test")
        .enabled(true)
        .origins(
            Origins::builder()
                .quantity(1)
                .items(
                    Origin::builder()
                        .id("app")
                        .domain_name(format!("{BUCKET}.s3.us-east-1.amazonaws.com"))
                        .s3_origin_config(
                            S3OriginConfig::builder().origin_access_identity("").build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("app")
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .cache_policy_id("658327ea-f89d-4fab-a63d-7e88639e58f6")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = cf
        .create_distribution()
        .distribution_config(config)
        .send()
        .await
        .unwrap();
    out.distribution().unwrap().id().to_owned()
}

async fn invalidated_paths(cf: &aws_sdk_cloudfront::Client, id: &str) -> Vec<Vec<String>> {
    let list = cf
        .list_invalidations()
        .distribution_id(id)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for summary in list
        .invalidation_list()
        .map(|l| l.items())
        .unwrap_or_default()
    {
        let inv = cf
            .get_invalidation()
            .distribution_id(id)
            .id(summary.id())
            .send()
            .await
            .unwrap();
        let paths = inv
            .invalidation()
            .and_then(|i| i.invalidation_batch())
            .and_then(|b| b.paths())
            .map(|p| p.items().to_vec())
            .unwrap_or_default();
        out.push(paths);
    }
    out
}

async fn object(clients: &Clients, key: &str) -> (String, String, String) {
    let out = clients
        .s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    let ct = out.content_type().unwrap_or_default().to_owned();
    let cc = out.cache_control().unwrap_or_default().to_owned();
    let body = out.body.collect().await.unwrap().into_bytes();
    (ct, cc, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn only_changed_files_are_uploaded_and_only_cached_ones_invalidated() {
    let moto = Moto::start().expect("moto");
    let sdk = chrono_provisioner::local::moto::sdk_config(&moto.endpoint(), "us-east-1");
    let clients = Clients::from_sdk_config(&sdk);
    clients
        .s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let dist = distribution(&clients.cloudfront).await;

    let v1 = [
        file("index.html", "<script src=/assets/a-1.js></script>"),
        file("assets/a-1.js", "one"),
        file("config.json", "{\"api_url\":\"x\"}"),
    ];
    let first = publish(&clients.s3, &clients.cloudfront, BUCKET, &dist, &v1, false)
        .await
        .unwrap();
    assert_eq!(
        first.uploaded,
        ["index.html", "assets/a-1.js", "config.json"]
    );
    assert!(first.invalidated.is_empty() && first.invalidation_id.is_none());
    let (ct, cc, body) = object(&clients, "assets/a-1.js").await;
    assert_eq!(ct, "text/javascript; charset=utf-8");
    assert_eq!(cc, "public, max-age=31536000, immutable");
    assert_eq!(body, "one");
    let (ct, cc, _) = object(&clients, "index.html").await;
    assert_eq!(
        (ct.as_str(), cc.as_str()),
        ("text/html; charset=utf-8", "no-cache")
    );
    let (_, _, manifest) = object(&clients, MANIFEST_KEY).await;
    assert!(manifest.contains("assets/a-1.js"), "{manifest}");

    // a rerun moves nothing
    let again = publish(&clients.s3, &clients.cloudfront, BUCKET, &dist, &v1, false)
        .await
        .unwrap();
    assert!(again.uploaded.is_empty());
    assert_eq!(again.unchanged, 3);
    assert!(
        invalidated_paths(&clients.cloudfront, &dist)
            .await
            .is_empty()
    );

    // a new build: index.html changed, a new hashed asset; the old asset stays
    let v2 = [
        file("index.html", "<script src=/assets/a-2.js></script>"),
        file("assets/a-1.js", "one"),
        file("assets/a-2.js", "two"),
        file("config.json", "{\"api_url\":\"x\"}"),
    ];
    // a dry run says so and changes nothing
    let dry = publish(&clients.s3, &clients.cloudfront, BUCKET, &dist, &v2, true)
        .await
        .unwrap();
    assert_eq!(dry.uploaded, ["index.html", "assets/a-2.js"]);
    assert_eq!(
        object(&clients, "index.html").await.2,
        "<script src=/assets/a-1.js></script>"
    );
    assert!(
        invalidated_paths(&clients.cloudfront, &dist)
            .await
            .is_empty()
    );

    let second = publish(&clients.s3, &clients.cloudfront, BUCKET, &dist, &v2, false)
        .await
        .unwrap();
    assert_eq!(second.uploaded, ["index.html", "assets/a-2.js"]);
    assert_eq!(second.invalidated, ["/index.html"]);
    assert!(second.invalidation_id.is_some());
    assert_eq!(
        invalidated_paths(&clients.cloudfront, &dist).await,
        vec![vec!["/index.html".to_owned()]]
    );
    assert_eq!(
        object(&clients, "index.html").await.2,
        "<script src=/assets/a-2.js></script>"
    );
    assert_eq!(
        object(&clients, "assets/a-1.js").await.2,
        "one",
        "old assets stay"
    );
}
