//! AWS SDK configuration for chronoctl: the standard settings (profile, region,
//! credentials chain, `AWS_ENDPOINT_URL` and the per-service endpoint variables) with
//! adaptive retries, and the service clients the deploy engine uses.
//!
//! Every client carries [`error::NoRetryWhenUnreachable`]: a refused connection or an
//! unknown host fails at once instead of after half a minute of silent retries. Besides
//! the clients, [`caller_identity`] asks STS who we are (the account guard).

pub mod error;
pub mod permissions;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;

use error::{AwsError, NoRetryWhenUnreachable, Service};

/// Settings given on the command line; everything unset falls back to the SDK's
/// standard environment variables and files.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Named profile (`--profile`, else `AWS_PROFILE`).
    pub profile: Option<String>,
    /// Region (`--region`, else `AWS_REGION` / the profile's region).
    pub region: Option<String>,
    /// Endpoint override (`--endpoint-url`, else `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
}

/// The role to act as in a customer account (config `deploy_role_arn`, `external_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRole {
    /// `arn:aws:iam::<account>:role/...`.
    pub arn: String,
    /// The external id the role's trust policy requires, if any.
    pub external_id: Option<String>,
}

/// The role session name for `operator` (the ARN of the source credentials): the
/// operator's own name (user, or session of an assumed role / SSO user), so that the
/// customer's CloudTrail names who deployed: `chronoctl-<name>`, cut to AssumeRole's 64
/// characters of `[\w+=,.@-]`
/// (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>).
pub fn session_name(operator_arn: &str) -> String {
    let who = operator_arn.rsplit(['/', ':']).next().unwrap_or_default();
    let clean: String = who
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = if clean.is_empty() {
        "chronoctl-operator".to_owned()
    } else {
        format!("chronoctl-{clean}")
    };
    name.chars().take(64).collect()
}

/// Credentials of an assumed role that renew themselves: the first are the ones of the
/// AssumeRole call that checked the role up front; the SDK's identity cache asks again
/// (AssumeRole with the source credentials) before they expire, so a deploy longer than
/// the session still holds valid credentials.
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role: DeployRole,
    session: String,
    endpoint: String,
    first: std::sync::Mutex<Option<aws_credential_types::Credentials>>,
}

impl AssumedRole {
    async fn assume(
        sts: &aws_sdk_sts::Client,
        role: &DeployRole,
        session: &str,
        endpoint: &str,
    ) -> Result<aws_credential_types::Credentials, AwsError> {
        let out = sts
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name(session)
            .set_external_id(role.external_id.clone())
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(Service::Sts, "AssumeRole", endpoint, &e).on(&role.arn)
            })?;
        let c = out.credentials().ok_or_else(|| AwsError {
            service: Service::Sts,
            operation: "AssumeRole",
            resource: Some(role.arn.clone()),
            endpoint: endpoint.to_owned(),
            kind: error::FailureKind::BadResponse,
            http_status: None,
            code: None,
            message: "the answer holds no credentials".into(),
            request_id: None,
        })?;
        Ok(aws_credential_types::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            std::time::SystemTime::try_from(*c.expiration()).ok(),
            "chronoctl-deploy-role",
        ))
    }
}

impl aws_credential_types::provider::ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            if let Some(c) = self.first.lock().ok().and_then(|mut f| f.take()) {
                return Ok(c);
            }
            Self::assume(&self.sts, &self.role, &self.session, &self.endpoint)
                .await
                .map_err(|e| {
                    aws_credential_types::provider::error::CredentialsError::provider_error(e)
                })
        })
    }
}

/// The service clients of the deploy engine, built from one SDK configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    /// CloudFormation.
    pub cfn: aws_sdk_cloudformation::Client,
    /// S3 (path-style addressing when a custom endpoint is configured).
    pub s3: aws_sdk_s3::Client,
    /// DynamoDB (the deploy lock).
    pub ddb: aws_sdk_dynamodb::Client,
    /// Lambda (database migrations through the API function during `onboard`; hot swaps).
    pub lambda: aws_sdk_lambda::Client,
    /// CloudFront (invalidating the web app's changed paths).
    pub cloudfront: aws_sdk_cloudfront::Client,
    /// ECR (registry credentials, the runtime repository, image digests).
    pub ecr: aws_sdk_ecr::Client,
    /// ECS (hot swaps of task definitions and services).
    pub ecs: aws_sdk_ecs::Client,
    /// Step Functions (hot swaps of the pipeline's task definition).
    pub sfn: aws_sdk_sfn::Client,
    /// STS (who we are: the account guard; assuming the deploy role).
    pub sts: aws_sdk_sts::Client,
    /// The endpoint override every service uses (`--endpoint-url`, `AWS_ENDPOINT_URL`),
    /// if any; per-service variables still win (see [`Clients::endpoint`]).
    pub endpoint_url: Option<String>,
    /// IAM (the ECS service-linked role a new account lacks).
    pub iam: aws_sdk_iam::Client,
    /// Region the clients talk to.
    pub region: String,
    /// Custom S3 endpoint, if any (used to build template URLs).
    pub s3_endpoint: Option<String>,
}

impl Clients {
    /// Loads the standard AWS configuration with adaptive retries (throttling backs off).
    pub async fn load(opts: &AwsOptions) -> Self {
        Self::from_sdk_config(&Self::sdk(opts).await)
    }

    /// [`Clients::load`], then, with a `role`, every client acts as that role: the source
    /// (standard) credentials ask STS who they are (the operator, named in the session),
    /// then AssumeRole once up front (a refused role fails here, naming the role), and the
    /// clients renew the role's credentials before they expire. Returns the clients and
    /// the operator's ARN (when a role was assumed).
    pub async fn load_as(
        opts: &AwsOptions,
        role: Option<&DeployRole>,
    ) -> Result<(Self, Option<String>), AwsError> {
        let sdk = Self::sdk(opts).await;
        let Some(role) = role else {
            return Ok((Self::from_sdk_config(&sdk), None));
        };
        let source = Self::from_sdk_config(&sdk);
        let operator = caller_identity(&source).await?;
        let session = session_name(&operator.arn);
        let endpoint = source.endpoint(Service::Sts);
        let first = AssumedRole::assume(&source.sts, role, &session, &endpoint).await?;
        let provider = AssumedRole {
            sts: source.sts.clone(),
            role: role.clone(),
            session,
            endpoint,
            first: std::sync::Mutex::new(Some(first)),
        };
        let assumed = sdk
            .into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(provider),
            )
            .build();
        Ok((Self::from_sdk_config(&assumed), Some(operator.arn)))
    }

    async fn sdk(opts: &AwsOptions) -> aws_types::SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::adaptive().with_max_attempts(8));
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &opts.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(e) = &opts.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        loader.load().await
    }

    /// Builds the clients from an SDK configuration.
    pub fn from_sdk_config(sdk: &aws_types::SdkConfig) -> Self {
        let s3_endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .ok()
            .or_else(|| sdk.endpoint_url().map(str::to_owned));
        let s3_conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(s3_endpoint.is_some())
            .retry_classifier(NoRetryWhenUnreachable)
            .build();
        if let Ok(mut last) = LAST_ENDPOINT.write() {
            *last = sdk.endpoint_url().map(str::to_owned);
        }
        macro_rules! client {
            ($krate:ident) => {
                $krate::Client::from_conf(
                    $krate::config::Builder::from(sdk)
                        .retry_classifier(NoRetryWhenUnreachable)
                        .build(),
                )
            };
        }
        Self {
            cfn: client!(aws_sdk_cloudformation),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            ddb: client!(aws_sdk_dynamodb),
            lambda: client!(aws_sdk_lambda),
            cloudfront: client!(aws_sdk_cloudfront),
            ecr: client!(aws_sdk_ecr),
            ecs: client!(aws_sdk_ecs),
            sfn: client!(aws_sdk_sfn),
            sts: client!(aws_sdk_sts),
            iam: client!(aws_sdk_iam),
            region: sdk
                .region()
                .map(|r| r.as_ref().to_owned())
                .unwrap_or_else(|| "us-east-1".to_owned()),
            s3_endpoint,
            endpoint_url: sdk.endpoint_url().map(str::to_owned),
        }
    }

    /// Where requests to `service` go: its `AWS_ENDPOINT_URL_<SERVICE>` variable, the
    /// common override, or its public regional endpoint (for error messages).
    pub fn endpoint(&self, service: Service) -> String {
        std::env::var(format!("AWS_ENDPOINT_URL_{}", service.env_id()))
            .ok()
            .or_else(|| self.endpoint_url.clone())
            .unwrap_or_else(|| service.default_endpoint(&self.region))
    }
}

/// The endpoint override of the clients built last (the SDK's service configs do not
/// expose it), for error messages of code that only holds one client.
static LAST_ENDPOINT: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

/// Where requests to `service` in `region` go, as far as error messages go: its
/// `AWS_ENDPOINT_URL_<SERVICE>` variable, the override of the clients built last, or its
/// public regional endpoint.
pub fn endpoint_for(service: Service, region: &str) -> String {
    std::env::var(format!("AWS_ENDPOINT_URL_{}", service.env_id()))
        .ok()
        .or_else(|| LAST_ENDPOINT.read().ok().and_then(|e| e.clone()))
        .unwrap_or_else(|| service.default_endpoint(region))
}

impl Clients {
    /// The URL CloudFormation reads an uploaded template from.
    pub fn object_url(&self, bucket: &str, key: &str) -> String {
        match &self.s3_endpoint {
            Some(e) => format!("{}/{bucket}/{key}", e.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{}.amazonaws.com/{key}", self.region),
        }
    }
}

/// Who the clients act as (STS `GetCallerIdentity`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// The 12-digit account.
    pub account: String,
    /// The caller's ARN (user, role session, ...).
    pub arn: String,
}

/// Asks STS who the clients act as. GetCallerIdentity needs no permission:
/// <https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html>.
pub async fn caller_identity(clients: &Clients) -> Result<Identity, AwsError> {
    let out = clients
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            AwsError::from_sdk(
                Service::Sts,
                "GetCallerIdentity",
                &clients.endpoint(Service::Sts),
                &e,
            )
        })?;
    Ok(Identity {
        account: out.account().unwrap_or_default().to_owned(),
        arn: out.arn().unwrap_or_default().to_owned(),
    })
}
