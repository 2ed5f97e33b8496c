//! One error type for every failed AWS call, whatever the service: it names the service,
//! the operation, the endpoint, the HTTP status, the AWS error code and what to try, and
//! says which kind of failure it was (the service answered with an error, nothing
//! answered, no answer in time, no credentials, an answer that is not the service's).
//!
//! Also the retry classifier that keeps the SDK from retrying a refused connection for
//! half a minute: a port nobody listens on (a stopped emulator, a wrong `--endpoint-url`)
//! or a host name that does not resolve will not start answering between two retries.

use std::error::Error as StdError;

use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::config::interceptors::InterceptorContext;
use aws_sdk_cloudformation::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_cloudformation::error::{ConnectorError, ProvideErrorMetadata, SdkError};

/// The AWS services chronoctl calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Service {
    /// AWS CloudFormation.
    CloudFormation,
    /// Amazon S3.
    S3,
    /// Amazon DynamoDB.
    DynamoDb,
    /// AWS Lambda.
    Lambda,
    /// Amazon CloudFront.
    CloudFront,
    /// Amazon ECR.
    Ecr,
    /// Amazon ECS.
    Ecs,
    /// AWS Step Functions.
    StepFunctions,
    /// AWS STS.
    Sts,
}

impl Service {
    /// Every service, in a stable order.
    pub const ALL: [Service; 9] = [
        Self::CloudFormation,
        Self::S3,
        Self::DynamoDb,
        Self::Lambda,
        Self::CloudFront,
        Self::Ecr,
        Self::Ecs,
        Self::StepFunctions,
        Self::Sts,
    ];

    /// The name people know it by.
    pub fn name(self) -> &'static str {
        match self {
            Self::CloudFormation => "CloudFormation",
            Self::S3 => "S3",
            Self::DynamoDb => "DynamoDB",
            Self::Lambda => "Lambda",
            Self::CloudFront => "CloudFront",
            Self::Ecr => "ECR",
            Self::Ecs => "ECS",
            Self::StepFunctions => "Step Functions",
            Self::Sts => "STS",
        }
    }

    /// The suffix of its `AWS_ENDPOINT_URL_<SERVICE>` variable (the SDK's service id,
    /// upper case, spaces as `_`):
    /// <https://docs.aws.amazon.com/sdkref/latest/guide/ss-endpoints-table.html>.
    pub fn env_id(self) -> &'static str {
        match self {
            Self::CloudFormation => "CLOUDFORMATION",
            Self::S3 => "S3",
            Self::DynamoDb => "DYNAMODB",
            Self::Lambda => "LAMBDA",
            Self::CloudFront => "CLOUDFRONT",
            Self::Ecr => "ECR",
            Self::Ecs => "ECS",
            Self::StepFunctions => "SFN",
            Self::Sts => "STS",
        }
    }

    /// Its public endpoint in `region` (regional endpoints; CloudFront is global):
    /// <https://docs.aws.amazon.com/general/latest/gr/rande.html>.
    pub fn default_endpoint(self, region: &str) -> String {
        let domain = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        let prefix = match self {
            Self::CloudFront => return format!("https://cloudfront.{domain}"),
            Self::CloudFormation => "cloudformation",
            Self::S3 => "s3",
            Self::DynamoDb => "dynamodb",
            Self::Lambda => "lambda",
            Self::Ecr => "api.ecr",
            Self::Ecs => "ecs",
            Self::StepFunctions => "states",
            Self::Sts => "sts",
        };
        format!("https://{prefix}.{region}.{domain}")
    }
}

/// What kind of failure a call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The service answered with an error (an HTTP status and, usually, an AWS error code).
    Service,
    /// Nothing answered: connection refused, unknown host, TLS failure.
    Unreachable,
    /// No answer in time.
    Timeout,
    /// No credentials could be found or refreshed; the request was never sent.
    Credentials,
    /// Something answered, but not with the service's API.
    BadResponse,
    /// The request could not be built (a bug, or an invalid value).
    Request,
}

/// A failed AWS call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{}", self.render())]
pub struct AwsError {
    /// The service.
    pub service: Service,
    /// The API operation (`DescribeStacks`, ...).
    pub operation: &'static str,
    /// What it was about (stack, bucket, table, ...), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Where the request went (or would have gone).
    pub endpoint: String,
    /// The kind of failure.
    pub kind: FailureKind,
    /// The HTTP status, when the service answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The AWS error code (`AccessDenied`, `ValidationError`, ...), when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The service's message, or the chain of causes.
    pub message: String,
    /// AWS's request id, for a support case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The causes of an error, outermost first, joined by `: ` (each once).
pub fn causes(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn is_credentials_error(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Whether a connector error is one that retrying will not fix: the connection was
/// refused, the host name does not resolve, or the peer is not reachable at all.
pub fn is_unreachable(e: &ConnectorError) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        let text = err.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return true;
        }
        cur = err.source();
    }
    false
}

impl AwsError {
    /// From a failed SDK call of any service.
    pub fn from_sdk<E>(
        service: Service,
        operation: &'static str,
        endpoint: &str,
        e: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        let mut out = Self {
            service,
            operation,
            resource: None,
            endpoint: endpoint.to_owned(),
            kind: FailureKind::Request,
            http_status: e.raw_response().map(|r| r.status().as_u16()),
            code: None,
            message: String::new(),
            request_id: None,
        };
        match e {
            SdkError::ServiceError(se) => {
                let err = se.err();
                out.kind = FailureKind::Service;
                out.code = err.code().map(str::to_owned);
                out.message = err.message().unwrap_or("no message").to_owned();
                out.request_id = err
                    .meta()
                    .extra("aws_request_id")
                    .map(str::to_owned)
                    .or_else(|| {
                        se.raw()
                            .headers()
                            .get("x-amzn-requestid")
                            .or_else(|| se.raw().headers().get("x-amz-request-id"))
                            .map(str::to_owned)
                    });
                if out.code.is_none() && out.http_status == Some(404) {
                    out.code = Some("NotFound".into());
                }
                // No error code and no message, or an error from a 2xx answer: what answered
                // does not speak the service's API (a web page, a proxy, another service).
                if out.code.is_none()
                    && (err.message().is_none() || out.http_status.is_some_and(|s| s < 300))
                {
                    out.kind = FailureKind::BadResponse;
                    out.message = causes(e);
                }
            }
            SdkError::TimeoutError(_) => {
                out.kind = FailureKind::Timeout;
                out.message = causes(e);
            }
            SdkError::DispatchFailure(d) => {
                out.message = causes(e);
                out.kind = match d.as_connector_error() {
                    _ if is_credentials_error(e) => FailureKind::Credentials,
                    Some(c) if c.is_timeout() => FailureKind::Timeout,
                    Some(c) if c.is_io() || is_unreachable(c) => FailureKind::Unreachable,
                    Some(c) if c.is_user() => FailureKind::Request,
                    _ => FailureKind::Unreachable,
                };
            }
            SdkError::ResponseError(_) => {
                out.kind = FailureKind::BadResponse;
                out.message = causes(e);
            }
            _ => {
                out.kind = if is_credentials_error(e) {
                    FailureKind::Credentials
                } else {
                    FailureKind::Request
                };
                out.message = causes(e);
            }
        }
        out
    }

    /// Names what the call was about.
    #[must_use]
    pub fn on(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Whether the service said the thing does not exist (`NotFound`, `NoSuchKey`, ...).
    pub fn is_not_found(&self) -> bool {
        self.http_status == Some(404)
            || self.code.as_deref().is_some_and(|c| {
                c.contains("NotFound")
                    || c.starts_with("NoSuch")
                    || c == "ResourceNotFoundException"
            })
    }

    /// What to try, from the kind of failure and the error code.
    pub fn hint(&self) -> String {
        let svc = self.service.name();
        match self.kind {
            FailureKind::Unreachable => format!(
                "nothing answers at {}: check the network, --endpoint-url / AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_{} (for the local emulator: is `chronoctl local up` running?)",
                self.endpoint,
                self.service.env_id()
            ),
            FailureKind::Timeout => format!(
                "{} did not answer in time: check the network, a proxy (HTTPS_PROXY) or the endpoint, then rerun",
                self.endpoint
            ),
            FailureKind::Credentials => "no usable AWS credentials (tried: environment, shared config/credentials files and SSO of the profile, web identity, container and instance metadata): pass --profile or set AWS_PROFILE (and run `aws sso login` for an SSO profile), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned(),
            FailureKind::BadResponse => format!(
                "{} answered, but not like {svc}: check that the endpoint is {svc}'s (--endpoint-url / AWS_ENDPOINT_URL_{})",
                self.endpoint,
                self.service.env_id()
            ),
            FailureKind::Request => "the request could not be built; this is a bug in chronoctl or an invalid value in the config".to_owned(),
            FailureKind::Service => self.service_hint(),
        }
    }

    fn service_hint(&self) -> String {
        let svc = self.service.name();
        let action = format!(
            "{}:{}",
            match self.service {
                Service::CloudFormation => "cloudformation",
                Service::S3 => "s3",
                Service::DynamoDb => "dynamodb",
                Service::Lambda => "lambda",
                Service::CloudFront => "cloudfront",
                Service::Ecr => "ecr",
                Service::Ecs => "ecs",
                Service::StepFunctions => "states",
                Service::Sts => "sts",
            },
            self.operation
        );
        match self.code.as_deref().unwrap_or("") {
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
            | "AuthorizationError" | "Forbidden" => format!(
                "the caller may not call {action}: grant it to the identity chronoctl runs as, or use the config's deploy_role_arn / another --profile"
            ),
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" | "TokenRefreshRequired" => {
                "the credentials expired: refresh them (e.g. `aws sso login`) and rerun".to_owned()
            }
            "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch"
            | "InvalidAccessKeyId" | "IncompleteSignature" => format!(
                "{svc} does not accept these credentials: check the profile, the keys and the clock of this machine"
            ),
            "Throttling" | "ThrottlingException" | "TooManyRequestsException"
            | "RequestLimitExceeded" | "SlowDown" | "ProvisionedThroughputExceededException" => {
                "still throttled after the SDK's retries: rerun later, or lower --concurrency / --fleet-concurrency".to_owned()
            }
            "ValidationError" | "ValidationException" | "InvalidParameterValue"
            | "InvalidParameterException" => format!("{svc} refused the request as invalid; the message says why"),
            _ if self.http_status.is_some_and(|s| s >= 500) => {
                format!("{svc} failed internally: rerun; if it persists, check the AWS Health Dashboard")
            }
            _ if self.http_status == Some(404) => {
                format!("{svc} does not know it: check the name, the account and the region")
            }
            _ => format!("see {svc}'s message; the request id helps AWS support"),
        }
    }

    fn render(&self) -> String {
        let mut s = format!("{} {}", self.service.name(), self.operation);
        if let Some(r) = &self.resource {
            s.push_str(&format!(" ({r})"));
        }
        s.push_str(&format!(" at {} failed: ", self.endpoint));
        match self.kind {
            FailureKind::Service => {
                if let Some(st) = self.http_status {
                    s.push_str(&format!("HTTP {st} "));
                }
                s.push_str(self.code.as_deref().unwrap_or("(no error code)"));
                s.push_str(": ");
                s.push_str(first_line(&self.message));
            }
            kind => {
                if kind == FailureKind::BadResponse
                    && let Some(st) = self.http_status
                {
                    s.push_str(&format!("HTTP {st} "));
                }
                s.push_str(match kind {
                    FailureKind::Unreachable => "unreachable",
                    FailureKind::Timeout => "timed out",
                    FailureKind::Credentials => "no credentials",
                    FailureKind::BadResponse => "unexpected response",
                    _ => "request not sent",
                });
                s.push_str(": ");
                s.push_str(first_line(&self.message));
            }
        }
        if let Some(id) = &self.request_id {
            s.push_str(&format!(" (request id {id})"));
        }
        s.push_str(&format!("\n  try: {}", self.hint()));
        s
    }
}

fn first_line(s: &str) -> &str {
    let l = s.lines().next().unwrap_or("");
    match l.char_indices().nth(400) {
        Some((end, _)) => &l[..end],
        None => l,
    }
}

/// The retry classifier every client of chronoctl carries: a request whose connection was
/// refused (or whose host does not resolve) is not retried; everything else is left to the
/// SDK's standard classifiers (throttling, 5xx and timeouts are still retried).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetryWhenUnreachable;

impl ClassifyRetry for NoRetryWhenUnreachable {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(e)) if e.as_connector_error().is_some_and(is_unreachable) => {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "chronoctl: no retry when unreachable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_and_an_unknown_host_are_unreachable_a_reset_is_not() {
        let refused = ConnectorError::io(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(is_unreachable(&refused));
        let dns = ConnectorError::io("dns error: failed to lookup address information".into());
        assert!(is_unreachable(&dns));
        let reset = ConnectorError::io(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(!is_unreachable(&reset), "a reset may be transient: retried");
    }

    #[test]
    fn default_endpoints_follow_the_partition() {
        assert_eq!(
            Service::CloudFormation.default_endpoint("eu-west-1"),
            "https://cloudformation.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            Service::Ecr.default_endpoint("cn-north-1"),
            "https://api.ecr.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            Service::CloudFront.default_endpoint("us-east-1"),
            "https://cloudfront.amazonaws.com"
        );
    }

    #[test]
    fn a_service_error_names_everything_and_what_to_try() {
        let e = AwsError {
            service: Service::CloudFormation,
            operation: "CreateChangeSet",
            resource: Some("chrono-acme-prod-data".into()),
            endpoint: "https://cloudformation.eu-west-1.amazonaws.com".into(),
            kind: FailureKind::Service,
            http_status: Some(403),
            code: Some("AccessDenied".into()),
            message: "User: arn:aws:iam::1:user/x is not authorized".into(),
            request_id: Some("abc".into()),
        };
        let s = e.to_string();
        for part in [
            "CloudFormation CreateChangeSet (chrono-acme-prod-data)",
            "at https://cloudformation.eu-west-1.amazonaws.com",
            "HTTP 403 AccessDenied: User: arn:aws:iam::1:user/x is not authorized",
            "request id abc",
            "try: the caller may not call cloudformation:CreateChangeSet",
        ] {
            assert!(s.contains(part), "{part:?} missing in {s}");
        }
    }
}
