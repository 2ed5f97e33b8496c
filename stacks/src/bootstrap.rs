//! The `bootstrap` stack: assets bucket (Lambda zips, large templates), ECR repository for
//! the runtime image, and the deploy lock table. It depends on nothing.

use serde_json::json;

use crate::config::Config;
use crate::model::{Attributes, Expr, ModelError};
use crate::resources::storage::{
    AttributeDefinition, Bucket, BucketEncryption, BucketPolicy, KeySchemaElement,
    PointInTimeRecovery, PublicAccessBlock, Repository, Table, TableSse, TimeToLive,
};
use crate::resources::iam::{Effect, PolicyDocument, Statement};
use crate::stack::{OutputRef, Stack, StackKind, tags};
use crate::{data_policy, model::Handle};

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

/// The TTL attribute of every table we create (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// A bucket with our baseline: encryption, public access blocked, versioning, ACLs off.
pub(crate) fn secure_bucket(cfg: &Config, name: String, key: Option<Expr>, lifecycle: serde_json::Value) -> Bucket {
    Bucket {
        tags: tags(cfg, &name),
        bucket_name: name,
        bucket_encryption: BucketEncryption::new(key),
        public_access_block_configuration: PublicAccessBlock::all(),
        ownership_controls: json!({"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}),
        versioning_configuration: Some(json!({"Status": "Enabled"})),
        lifecycle_configuration: Some(lifecycle),
    }
}

/// The TLS-only policy of a bucket.
pub(crate) fn tls_only_policy(bucket: &Handle<Bucket>) -> BucketPolicy {
    BucketPolicy {
        bucket: bucket.r#ref(),
        policy_document: PolicyDocument::new(vec![Statement {
            sid: "DenyInsecureTransport".into(),
            effect: Effect::Deny,
            principal: Some(json!("*")),
            action: vec!["s3:*".into()],
            resource: vec![bucket.arn(), Expr::sub(format!("${{{}.Arn}}/*", bucket.id()))],
            condition: Some(json!({"Bool": {"aws:SecureTransport": "false"}})),
        }]),
    }
}

/// An on-demand table with TTL, PITR and SSE.
pub(crate) fn table(
    cfg: &Config,
    name: String,
    partition_key: &str,
    sort_key: Option<&str>,
    kms_key: Option<Expr>,
) -> Table {
    let mut attribute_definitions = vec![AttributeDefinition {
        attribute_name: partition_key.into(),
        attribute_type: "S".into(),
    }];
    let mut key_schema = vec![KeySchemaElement {
        attribute_name: partition_key.into(),
        key_type: "HASH".into(),
    }];
    if let Some(sk) = sort_key {
        attribute_definitions.push(AttributeDefinition {
            attribute_name: sk.into(),
            attribute_type: "S".into(),
        });
        key_schema.push(KeySchemaElement {
            attribute_name: sk.into(),
            key_type: "RANGE".into(),
        });
    }
    let sse_specification = TableSse {
        sse_enabled: true,
        sse_type: kms_key.as_ref().map(|_| "KMS".to_owned()),
        kms_master_key_id: kms_key,
    };
    Table {
        tags: tags(cfg, &name),
        table_name: name,
        billing_mode: "PAY_PER_REQUEST".into(),
        attribute_definitions,
        key_schema,
        time_to_live_specification: TimeToLive {
            attribute_name: TTL_ATTRIBUTE.into(),
            enabled: true,
        },
        point_in_time_recovery_specification: PointInTimeRecovery {
            point_in_time_recovery_enabled: true,
        },
        sse_specification,
        deletion_protection_enabled: cfg.stage == crate::Stage::Prod,
    }
}

/// Build the bootstrap stack.
pub fn build(cfg: &Config) -> Result<BootstrapStack, ModelError> {
    let mut s = Stack::new(cfg, StackKind::Bootstrap, "assets bucket, ECR repository, deploy lock table");
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
    let bucket = s.template.add_with("AssetsBucket", assets_bucket.clone(), retain.clone())?;
    s.template.add("AssetsBucketPolicy", tls_only_policy(&bucket))?;

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

    let lock_table = table(cfg, format!("{prefix}-deploy-lock"), "lock_id", None, None);
    let lock = s.template.add_with("DeployLockTable", lock_table.clone(), retain)?;

    let outputs = BootstrapOutputs {
        assets_bucket: s.export("AssetsBucketName", "bucket of Lambda zips and large templates", bucket.r#ref())?,
        repository_uri: s.export("RuntimeRepositoryUri", "ECR repository of the runtime image", repo.uri())?,
        repository_arn: s.export("RuntimeRepositoryArn", "ARN of the ECR repository", repo.arn())?,
    };
    s.export("DeployLockTableName", "table holding deploy locks", lock.r#ref())?;
    Ok(BootstrapStack {
        stack: s,
        outputs,
        assets_bucket,
        lock_table,
    })
}
