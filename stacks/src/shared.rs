//! Building blocks several stacks share: the baseline bucket (encrypted, public access
//! blocked, versioned, ACLs off) with its TLS-only policy, and the baseline table
//! (on-demand, TTL, PITR, SSE).

use serde_json::json;

use crate::config::Config;
use crate::model::{Expr, Handle};
use crate::resources::compute::LogGroup;
use crate::resources::iam::{Effect, InlinePolicy, PolicyDocument, Role, Statement};
use crate::resources::storage::{
    AttributeDefinition, Bucket, BucketEncryption, BucketPolicy, KeySchemaElement,
    PointInTimeRecovery, PublicAccessBlock, Table, TableSse, TimeToLive,
};
use crate::stack::tags;

/// The TTL attribute of every table we create (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// A bucket with our baseline: encryption, public access blocked, versioning, ACLs off.
pub(crate) fn secure_bucket(
    cfg: &Config,
    name: String,
    key: Option<Expr>,
    lifecycle: serde_json::Value,
) -> Bucket {
    Bucket {
        tags: tags(cfg, &name),
        bucket_name: name,
        bucket_encryption: BucketEncryption::new(key),
        public_access_block_configuration: PublicAccessBlock::all(),
        ownership_controls: json!({"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}),
        versioning_configuration: Some(json!({"Status": "Enabled"})),
        lifecycle_configuration: Some(lifecycle),
        cors_configuration: None,
    }
}

/// A role `service` may assume, with AWS managed policies `managed` and one inline policy
/// of `statements` (least privilege: each workload gets its own).
pub(crate) fn service_role(
    cfg: &Config,
    what: &str,
    service: &str,
    managed: Vec<Expr>,
    statements: Vec<Statement>,
) -> Role {
    Role {
        description: format!("{}: {what}", cfg.prefix()),
        assume_role_policy_document: PolicyDocument::new(vec![Statement::assume_role(service)]),
        managed_policy_arns: managed,
        policies: vec![InlinePolicy {
            policy_name: "least-privilege".into(),
            policy_document: PolicyDocument::new(statements),
        }],
        tags: tags(cfg, &format!("{}-{what}", cfg.prefix())),
    }
}

/// A log group named `name` with the config's retention.
pub(crate) fn log_group(cfg: &Config, name: String) -> LogGroup {
    LogGroup {
        tags: tags(cfg, &name),
        log_group_name: name,
        retention_in_days: cfg.log_retention_days,
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
            resource: vec![
                bucket.arn(),
                Expr::sub(format!("${{{}.Arn}}/*", bucket.id())),
            ],
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
