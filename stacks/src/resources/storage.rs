//! S3, DynamoDB, ECR, KMS resources.

use serde::Serialize;
use serde_json::Value;

use super::{Tags, iam::PolicyDocument};
use crate::model::{Expr, Handle, Resource};

/// `AWS::S3::Bucket`. Changing `BucketName` replaces the bucket.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Bucket {
    /// Globally unique name (replacement).
    pub bucket_name: String,
    /// Server-side encryption.
    pub bucket_encryption: BucketEncryption,
    /// Block all public access.
    pub public_access_block_configuration: PublicAccessBlock,
    /// Object ownership (ACLs disabled).
    pub ownership_controls: Value,
    /// Versioning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versioning_configuration: Option<Value>,
    /// Lifecycle rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_configuration: Option<Value>,
    /// Cross-origin rules (browsers uploading straight to the bucket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors_configuration: Option<CorsConfiguration>,
    /// Tags.
    pub tags: Tags,
}

/// A bucket's CORS rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CorsConfiguration {
    /// The rules (the first one matching a request applies).
    pub cors_rules: Vec<CorsRule>,
}

/// One CORS rule of a bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CorsRule {
    /// Request headers a preflight may ask for.
    pub allowed_headers: Vec<String>,
    /// Methods (`GET`, `PUT`, `POST`, `DELETE`, `HEAD`).
    pub allowed_methods: Vec<String>,
    /// Origins (exact, e.g. `https://d111.cloudfront.net`).
    pub allowed_origins: Vec<Expr>,
    /// Response headers scripts may read.
    pub exposed_headers: Vec<String>,
    /// Seconds a browser may cache the preflight answer.
    pub max_age: i64,
}

impl Resource for Bucket {
    const TYPE: &'static str = "AWS::S3::Bucket";
}

impl Handle<Bucket> {
    /// `Fn::GetAtt Arn`.
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// Bucket encryption: one default rule.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketEncryption {
    /// The rules.
    pub server_side_encryption_configuration: Vec<SseRule>,
}

impl BucketEncryption {
    /// SSE-KMS with the given key (bucket keys on), or SSE-S3 when `key` is `None`.
    pub fn new(key: Option<Expr>) -> Self {
        let by_default = match key {
            Some(k) => SseByDefault {
                sse_algorithm: "aws:kms".into(),
                kms_master_key_id: Some(k),
            },
            None => SseByDefault {
                sse_algorithm: "AES256".into(),
                kms_master_key_id: None,
            },
        };
        let bucket_key_enabled = by_default.kms_master_key_id.is_some().then_some(true);
        Self {
            server_side_encryption_configuration: vec![SseRule {
                server_side_encryption_by_default: by_default,
                bucket_key_enabled,
            }],
        }
    }
}

/// One encryption rule.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SseRule {
    /// Default encryption.
    pub server_side_encryption_by_default: SseByDefault,
    /// S3 bucket keys (fewer KMS calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_key_enabled: Option<bool>,
}

/// Default encryption settings.
#[derive(Debug, Clone, Serialize)]
pub struct SseByDefault {
    /// `aws:kms` or `AES256`.
    #[serde(rename = "SSEAlgorithm")]
    pub sse_algorithm: String,
    /// KMS key for `aws:kms`.
    #[serde(rename = "KMSMasterKeyID", skip_serializing_if = "Option::is_none")]
    pub kms_master_key_id: Option<Expr>,
}

/// S3 public access block.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicAccessBlock {
    /// Reject public ACLs.
    pub block_public_acls: bool,
    /// Reject public bucket policies.
    pub block_public_policy: bool,
    /// Ignore public ACLs.
    pub ignore_public_acls: bool,
    /// Restrict public buckets.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// Everything blocked.
    pub fn all() -> Self {
        Self {
            block_public_acls: true,
            block_public_policy: true,
            ignore_public_acls: true,
            restrict_public_buckets: true,
        }
    }
}

/// `AWS::S3::BucketPolicy`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketPolicy {
    /// The bucket (`Ref`).
    pub bucket: Expr,
    /// The policy.
    pub policy_document: PolicyDocument,
}

impl Resource for BucketPolicy {
    const TYPE: &'static str = "AWS::S3::BucketPolicy";
}

/// `AWS::DynamoDB::Table`. Changing `TableName` or `KeySchema` replaces the table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Table {
    /// Table name (replacement).
    pub table_name: String,
    /// `PAY_PER_REQUEST`.
    pub billing_mode: String,
    /// Attribute definitions of the key attributes.
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// Partition key, then optional sort key (replacement).
    pub key_schema: Vec<KeySchemaElement>,
    /// Time to live.
    pub time_to_live_specification: TimeToLive,
    /// Point-in-time recovery.
    pub point_in_time_recovery_specification: PointInTimeRecovery,
    /// Server-side encryption.
    #[serde(rename = "SSESpecification")]
    pub sse_specification: TableSse,
    /// Deletion protection (prod).
    pub deletion_protection_enabled: bool,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Table {
    const TYPE: &'static str = "AWS::DynamoDB::Table";
}

impl Handle<Table> {
    /// `Fn::GetAtt Arn`.
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

impl Table {
    /// The partition key attribute name.
    pub fn partition_key(&self) -> Option<&str> {
        self.key_schema
            .iter()
            .find(|k| k.key_type == "HASH")
            .map(|k| k.attribute_name.as_str())
    }

    /// The sort key attribute name, if any.
    pub fn sort_key(&self) -> Option<&str> {
        self.key_schema
            .iter()
            .find(|k| k.key_type == "RANGE")
            .map(|k| k.attribute_name.as_str())
    }

    /// The TTL attribute name.
    pub fn ttl_attribute(&self) -> &str {
        &self.time_to_live_specification.attribute_name
    }
}

/// A key attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    /// Name.
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// A key schema element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySchemaElement {
    /// Name.
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// TTL settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLive {
    /// Attribute holding the expiry (epoch seconds).
    pub attribute_name: String,
    /// Enabled.
    pub enabled: bool,
}

/// PITR settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PointInTimeRecovery {
    /// Enabled.
    pub point_in_time_recovery_enabled: bool,
}

/// Table encryption.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableSse {
    /// Enabled.
    #[serde(rename = "SSEEnabled")]
    pub sse_enabled: bool,
    /// `KMS`.
    #[serde(rename = "SSEType", skip_serializing_if = "Option::is_none")]
    pub sse_type: Option<String>,
    /// Customer managed key.
    #[serde(rename = "KMSMasterKeyId", skip_serializing_if = "Option::is_none")]
    pub kms_master_key_id: Option<Expr>,
}

/// `AWS::ECR::Repository`. Changing `RepositoryName` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Repository {
    /// Name (replacement).
    pub repository_name: String,
    /// `IMMUTABLE`: content-hash tags are never overwritten.
    pub image_tag_mutability: String,
    /// Scan on push.
    pub image_scanning_configuration: Value,
    /// Encryption.
    pub encryption_configuration: Value,
    /// Lifecycle policy.
    pub lifecycle_policy: Value,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Repository {
    const TYPE: &'static str = "AWS::ECR::Repository";
}

impl Handle<Repository> {
    /// `Fn::GetAtt Arn`.
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }

    /// `Fn::GetAtt RepositoryUri`.
    pub fn uri(&self) -> Expr {
        self.get_att("RepositoryUri")
    }
}

/// `AWS::KMS::Key`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Key {
    /// Description.
    pub description: String,
    /// Yearly rotation.
    pub enable_key_rotation: bool,
    /// Days before a deleted key is gone.
    pub pending_window_in_days: u32,
    /// Key policy.
    pub key_policy: PolicyDocument,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Key {
    const TYPE: &'static str = "AWS::KMS::Key";
}

impl Handle<Key> {
    /// `Fn::GetAtt Arn`.
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// `AWS::KMS::Alias`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Alias {
    /// `alias/...`.
    pub alias_name: String,
    /// Key id (`Ref`).
    pub target_key_id: Expr,
}

impl Resource for Alias {
    const TYPE: &'static str = "AWS::KMS::Alias";
}
