//! AWS SDK configuration for chronoctl: the standard settings (profile, region,
//! credentials chain, `AWS_ENDPOINT_URL` and the per-service endpoint variables) with
//! adaptive retries, and the service clients the deploy engine uses.
//!
//! This module only builds clients; it makes no calls.

pub mod error;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;

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
    /// Region the clients talk to.
    pub region: String,
    /// Custom S3 endpoint, if any (used to build template URLs).
    pub s3_endpoint: Option<String>,
}

impl Clients {
    /// Loads the standard AWS configuration with adaptive retries (throttling backs off).
    pub async fn load(opts: &AwsOptions) -> Self {
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
        let sdk = loader.load().await;
        Self::from_sdk_config(&sdk)
    }

    /// Builds the clients from an SDK configuration.
    pub fn from_sdk_config(sdk: &aws_types::SdkConfig) -> Self {
        let s3_endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .ok()
            .or_else(|| sdk.endpoint_url().map(str::to_owned));
        let s3_conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(s3_endpoint.is_some())
            .build();
        Self {
            cfn: aws_sdk_cloudformation::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            ddb: aws_sdk_dynamodb::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            cloudfront: aws_sdk_cloudfront::Client::new(sdk),
            ecr: aws_sdk_ecr::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
            region: sdk
                .region()
                .map(|r| r.as_ref().to_owned())
                .unwrap_or_else(|| "us-east-1".to_owned()),
            s3_endpoint,
        }
    }

    /// The URL CloudFormation reads an uploaded template from.
    pub fn object_url(&self, bucket: &str, key: &str) -> String {
        match &self.s3_endpoint {
            Some(e) => format!("{}/{bucket}/{key}", e.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{}.amazonaws.com/{key}", self.region),
        }
    }
}
