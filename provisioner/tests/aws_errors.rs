//! Every class of AWS failure, from the real SDK client against loopback endpoints: the
//! error names the service, the operation, the endpoint and the cause (HTTP status and AWS
//! error code when the service answered), says what to try — and a refused connection is
//! not retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_cloudformation::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_cloudformation::config::{ConfigBag, Intercept, RuntimeComponents};
use chrono_provisioner::aws::Clients;
use chrono_provisioner::aws::error::{AwsError, FailureKind, NoRetryWhenUnreachable, Service};
use chrono_provisioner::deploy::{DeployError, cfn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP response with a correct length.
fn http(status: &str, headers: &str, body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// Serves every connection with `answer` (None: accept and never answer).
async fn serve(answer: Option<String>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                match &answer {
                    Some(a) => {
                        let _ = s.write_all(a.as_bytes()).await;
                        let _ = s.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    port
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn sdk(endpoint: &str, creds: bool) -> aws_types::SdkConfig {
    let mut b = aws_types::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(4)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(300))
                .build(),
        );
    if creds {
        b = b.credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKID", "secret", None, None, "test"),
            ),
        );
    } else {
        b = b.credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(NoCredentials),
        );
    }
    b.build()
}

#[derive(Debug)]
struct NoCredentials;

impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "no credentials in the environment, profile or instance metadata",
            ),
        ))
    }
}

async fn describe_err(c: &Clients) -> AwsError {
    match cfn::describe(&c.cfn, "chrono-acme-prod-data").await {
        Err(DeployError::Call(e)) => *e,
        other => panic!("expected an AWS error, got {other:?}"),
    }
}

fn assert_names(e: &AwsError, endpoint: &str, kind: FailureKind, words: &[&str]) {
    let text = e.to_string();
    assert_eq!(e.kind, kind, "{text}");
    assert_eq!(e.service, Service::CloudFormation);
    assert_eq!(e.operation, "DescribeStacks");
    for w in [
        "CloudFormation DescribeStacks (chrono-acme-prod-data)",
        endpoint,
        "try: ",
    ]
    .iter()
    .chain(words)
    {
        assert!(text.contains(w), "{w:?} missing in {text}");
    }
}

/// DescribeStacks against `port` (with or without credentials) fails as `kind`, naming
/// everything and `words`.
async fn check(port: u16, creds: bool, kind: FailureKind, words: &[&str]) {
    let endpoint = format!("http://127.0.0.1:{port}");
    let c = Clients::from_sdk_config(&sdk(&endpoint, creds));
    let e = describe_err(&c).await;
    assert_names(&e, &endpoint, kind, words);
}

/// Counts the attempts of each request.
#[derive(Debug, Clone, Default)]
struct Attempts(Arc<AtomicUsize>);

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "attempts"
    }

    fn read_before_attempt(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_cloudformation::error::BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// One test: the clients record their endpoint for messages process-wide.
#[tokio::test]
async fn each_error_class_names_service_operation_endpoint_and_cause() {
    // nothing listens: unreachable, and not retried
    let port = closed_port();
    check(
        port,
        true,
        FailureKind::Unreachable,
        &[
            "unreachable",
            "nothing answers at",
            "AWS_ENDPOINT_URL_CLOUDFORMATION",
        ],
    )
    .await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let attempts = Attempts::default();
    let counted = aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::config::Builder::from(&sdk(&endpoint, true))
            .retry_classifier(NoRetryWhenUnreachable)
            .interceptor(attempts.clone())
            .build(),
    );
    assert!(counted.describe_stacks().send().await.is_err());
    assert_eq!(
        attempts.0.load(Ordering::SeqCst),
        1,
        "a refused connection is not retried"
    );

    // the service answers with an error: HTTP status and AWS error code
    let port = serve(http(
        "403 Forbidden",
        "Content-Type: text/xml\r\nx-amzn-RequestId: req-1\r\n",
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::1:user/x is not authorized to perform: cloudformation:DescribeStacks</Message></Error><RequestId>req-1</RequestId></ErrorResponse>",
    ))
    .await;
    check(
        port,
        true,
        FailureKind::Service,
        &[
            "HTTP 403 AccessDenied",
            "is not authorized",
            "may not call cloudformation:DescribeStacks",
            "request id req-1",
        ],
    )
    .await;

    // something answers, but not CloudFormation
    let port = serve(http(
        "200 OK",
        "Content-Type: text/html\r\n",
        "<html>hello</html>",
    ))
    .await;
    check(
        port,
        true,
        FailureKind::BadResponse,
        &[
            "unexpected response",
            "answered, but not like CloudFormation",
        ],
    )
    .await;

    // nothing answers in time
    let port = serve(None).await;
    check(
        port,
        true,
        FailureKind::Timeout,
        &["timed out", "did not answer in time"],
    )
    .await;

    // no credentials: the request is never sent
    let port = closed_port();
    check(
        port,
        false,
        FailureKind::Credentials,
        &["no credentials", "--profile"],
    )
    .await;
}
