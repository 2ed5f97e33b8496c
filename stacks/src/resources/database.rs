//! Aurora PostgreSQL resources.

use serde::Serialize;

use super::{Exprs, Tags};
use crate::model::{Expr, Handle, Resource};

/// `AWS::RDS::DBSubnetGroup`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbSubnetGroup {
    /// Description.
    #[serde(rename = "DBSubnetGroupDescription")]
    pub description: String,
    /// Private subnets.
    pub subnet_ids: Expr,
    /// Tags.
    pub tags: Tags,
}

impl Resource for DbSubnetGroup {
    const TYPE: &'static str = "AWS::RDS::DBSubnetGroup";
}

/// `AWS::RDS::DBCluster` (Aurora PostgreSQL Serverless v2). Changing `StorageEncrypted`,
/// `KmsKeyId`, `DatabaseName`, `MasterUsername` or the subnet group replaces the cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbCluster {
    /// `aurora-postgresql`.
    pub engine: String,
    /// Engine version.
    pub engine_version: String,
    /// Initial database (replacement).
    pub database_name: String,
    /// Master user name (replacement).
    pub master_username: String,
    /// Let RDS generate the master password in Secrets Manager.
    pub manage_master_user_password: bool,
    /// Key of the generated secret.
    pub master_user_secret: MasterUserSecret,
    /// Encryption at rest (replacement).
    pub storage_encrypted: bool,
    /// KMS key (replacement).
    pub kms_key_id: Expr,
    /// Subnet group (replacement).
    #[serde(rename = "DBSubnetGroupName")]
    pub db_subnet_group_name: Expr,
    /// Security groups.
    pub vpc_security_group_ids: Exprs,
    /// Serverless v2 capacity.
    pub serverless_v2_scaling_configuration: ScalingConfiguration,
    /// Backup retention in days.
    pub backup_retention_period: u32,
    /// Deletion protection.
    pub deletion_protection: bool,
    /// Copy tags to snapshots.
    pub copy_tags_to_snapshot: bool,
    /// Log export.
    pub enable_cloudwatch_logs_exports: Vec<String>,
    /// Tags.
    pub tags: Tags,
}

impl Resource for DbCluster {
    const TYPE: &'static str = "AWS::RDS::DBCluster";
}

impl Handle<DbCluster> {
    /// `Fn::GetAtt Endpoint.Address`.
    pub fn endpoint_address(&self) -> Expr {
        self.get_att("Endpoint.Address")
    }

    /// `Fn::GetAtt Endpoint.Port`.
    pub fn endpoint_port(&self) -> Expr {
        self.get_att("Endpoint.Port")
    }

    /// `Fn::GetAtt MasterUserSecret.SecretArn`.
    pub fn secret_arn(&self) -> Expr {
        self.get_att("MasterUserSecret.SecretArn")
    }
}

/// The generated master secret.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MasterUserSecret {
    /// KMS key encrypting the secret.
    pub kms_key_id: Expr,
}

/// Serverless v2 capacity range.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingConfiguration {
    /// Minimum ACU.
    pub min_capacity: f64,
    /// Maximum ACU.
    pub max_capacity: f64,
}

/// `AWS::RDS::DBInstance` of an Aurora cluster (`db.serverless`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbInstance {
    /// `aurora-postgresql`.
    pub engine: String,
    /// `db.serverless`.
    #[serde(rename = "DBInstanceClass")]
    pub db_instance_class: String,
    /// The cluster.
    #[serde(rename = "DBClusterIdentifier")]
    pub db_cluster_identifier: Expr,
    /// Never publicly accessible.
    pub publicly_accessible: bool,
    /// Failover priority (writer 0).
    pub promotion_tier: u32,
    /// Tags.
    pub tags: Tags,
}

impl Resource for DbInstance {
    const TYPE: &'static str = "AWS::RDS::DBInstance";
}
