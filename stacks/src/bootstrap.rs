//! The `bootstrap` stack: assets bucket (Lambda zips, large templates), ECR repository for
//! the runtime image, the deploy lock table, and API Gateway's account-level logging role.
//! It depends on nothing.

use chrono_contract::outputs;
use serde_json::json;

use crate::config::Config;
use crate::data_policy;
use crate::model::{Attributes, Expr, ModelError};
use crate::resources::api::Account;
use crate::resources::iam::{PolicyDocument, Role, Statement};
use crate::resources::storage::{Bucket, Repository, Table};
use crate::shared::{secure_bucket, table, tls_only_policy};
use crate::stack::{OutputRef, Stack, StackKind, tags};

/// Outputs later stacks import.
#[derive(Debug, Clone)]
pub struct BootstrapOutputs {
    /// Assets bucket name.
    pub assets_bucket: OutputRef,
    /// ECR repository URI.
    pub repository_uri: OutputRef,
    /// ECR repository ARN.
    pub repository_arn: OutputRef,
}

/// The built stack.
#[derive(Debug, Clone)]
pub struct BootstrapStack {
    /// Template and wiring.
    pub stack: Stack,
    /// Outputs.
    pub outputs: BootstrapOutputs,
    /// The assets bucket (name readable for `chronoctl local`).
    pub assets_bucket: Bucket,
    /// The deploy lock table.
    pub lock_table: Table,
}

/// Build the bootstrap stack.
pub fn build(cfg: &Config) -> Result<BootstrapStack, ModelError> {
    let mut s = Stack::new(
        cfg,
        StackKind::Bootstrap,
        "assets bucket, ECR repository, deploy lock table",
    );
    let retain = Attributes::retention(data_policy(cfg));
    let prefix = cfg.prefix();

    let assets_bucket = secure_bucket(
        cfg,
        format!("{prefix}-assets-{}", cfg.account_id),
        None,
        json!({"Rules": [
            {"Id": "ExpireOldVersions", "Status": "Enabled",
             "NoncurrentVersionExpiration": {"NoncurrentDays": cfg.data_retention.noncurrent_versions_days}},
            {"Id": "AbortIncompleteUploads", "Status": "Enabled",
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}
        ]}),
    );
    let bucket = s
        .template
        .add_with("AssetsBucket", assets_bucket.clone(), retain.clone())?;
    s.template
        .add("AssetsBucketPolicy", tls_only_policy(&bucket))?;

    let repo_name = format!("{prefix}-runtime");
    let repo = s.template.add_with(
        "RuntimeRepository",
        Repository {
            tags: tags(cfg, &repo_name),
            repository_name: repo_name,
            image_tag_mutability: "IMMUTABLE".into(),
            image_scanning_configuration: json!({"ScanOnPush": true}),
            encryption_configuration: json!({"EncryptionType": "AES256"}),
            lifecycle_policy: json!({"LifecyclePolicyText": json!({"rules": [{
                "rulePriority": 1, "description": "keep the 50 newest images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 50},
                "action": {"type": "expire"}}]}).to_string()}),
        },
        retain.clone(),
    )?;

    // API Gateway writes WebSocket access logs only with an account-level logging role.
    let logs_role = s.template.add(
        "ApiGatewayLoggingRole",
        Role {
            description: format!("{prefix}: API Gateway writes access logs to CloudWatch"),
            assume_role_policy_document: PolicyDocument::new(vec![Statement::assume_role(
                "apigateway.amazonaws.com",
            )]),
            managed_policy_arns: vec![Expr::sub(
                "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
            )],
            policies: Vec::new(),
            tags: tags(cfg, &format!("{prefix}-apigateway-logs")),
        },
    )?;
    s.template.add(
        "ApiGatewayAccount",
        Account {
            cloud_watch_role_arn: logs_role.arn(),
        },
    )?;

    let lock_table = table(cfg, format!("{prefix}-deploy-lock"), "lock_id", None, None);
    let lock = s
        .template
        .add_with("DeployLockTable", lock_table.clone(), retain)?;

    let outputs = BootstrapOutputs {
        assets_bucket: s.export(
            outputs::ASSETS_BUCKET,
            "bucket of Lambda zips and large templates",
            bucket.r#ref(),
        )?,
        repository_uri: s.export(
            outputs::RUNTIME_REPOSITORY_URI,
            "ECR repository of the runtime image",
            repo.uri(),
        )?,
        repository_arn: s.export(
            outputs::RUNTIME_REPOSITORY_ARN,
            "ARN of the ECR repository",
            repo.arn(),
        )?,
    };
    s.export(
        outputs::DEPLOY_LOCK_TABLE,
        "table holding deploy locks",
        lock.r#ref(),
    )?;
    Ok(BootstrapStack {
        stack: s,
        outputs,
        assets_bucket,
        lock_table,
    })
}
