//! The `data` stack: KMS key, Aurora PostgreSQL Serverless v2 (writer + readers, storage
//! encrypted, master secret generated in Secrets Manager), the `sources` and `artifacts`
//! buckets, and the DynamoDB tables `sessions`, `intent_cache`, `conversations`.
//!
//! [`build`] also returns the bucket and table definitions as typed values:
//! `chronoctl local` creates them in the emulator from these, so names, key schemas and
//! TTL attributes exist in one place only.

use chrono_contract::outputs;
use serde_json::json;

use crate::config::Config;
use crate::model::{Attributes, Expr, ModelError, Parameter};
use crate::network::NetworkOutputs;
use crate::resources::database::{
    DbCluster, DbInstance, DbSubnetGroup, MasterUserSecret, ScalingConfiguration,
};
use crate::resources::iam::{Effect, PolicyDocument, Statement};
use crate::resources::storage::{Alias, Bucket, CorsConfiguration, CorsRule, Key, Table};
use crate::shared::{secure_bucket, table, tls_only_policy};
use crate::stack::{OutputRef, Stack, StackKind, tags};
use crate::web::WebOutputs;
use crate::{Stage, data_policy, database_policy, key_policy};

/// Name of the application database.
pub const DATABASE_NAME: &str = "chronotracer";
/// Master user of the cluster (its password lives in the generated secret).
pub const MASTER_USERNAME: &str = "chrono_admin";

/// The CORS rule of the `sources` bucket: the web app, served from `origin`, uploads
/// evidence straight to it with presigned `PUT`s (whole files and multipart parts) and
/// reads each part's `ETag` to complete a multipart upload. Only that origin, only `PUT`,
/// with the headers the URLs are signed with: the content type and the body's SHA-256
/// (`x-amz-checksum-sha256`, verified by S3: chain of custody).
pub fn uploads_cors(origin: Expr) -> CorsConfiguration {
    CorsConfiguration {
        cors_rules: vec![CorsRule {
            allowed_headers: vec!["content-type".into(), "x-amz-checksum-sha256".into()],
            allowed_methods: vec!["PUT".into()],
            allowed_origins: vec![origin],
            exposed_headers: vec!["ETag".into()],
            max_age: 3000,
        }],
    }
}

/// Outputs later stacks import.
#[derive(Debug, Clone)]
pub struct DataOutputs {
    /// KMS key ARN.
    pub kms_key_arn: OutputRef,
    /// Aurora writer endpoint.
    pub db_host: OutputRef,
    /// Aurora port.
    pub db_port: OutputRef,
    /// ARN of the generated master secret.
    pub db_secret_arn: OutputRef,
    /// `sources` bucket name.
    pub sources_bucket: OutputRef,
    /// `artifacts` bucket name.
    pub artifacts_bucket: OutputRef,
    /// `sessions` table name.
    pub sessions_table: OutputRef,
    /// `intent_cache` table name.
    pub intent_cache_table: OutputRef,
    /// `conversations` table name.
    pub conversations_table: OutputRef,
}

/// The built stack and its data stores.
#[derive(Debug, Clone)]
pub struct DataStack {
    /// Template and wiring.
    pub stack: Stack,
    /// Outputs.
    pub outputs: DataOutputs,
    /// Uploaded evidence.
    pub sources_bucket: Bucket,
    /// Pipeline artifacts.
    pub artifacts_bucket: Bucket,
    /// Chat sessions (`session_id`, TTL `expires_at`).
    pub sessions: Table,
    /// Guard verdict cache (`cache_key`, TTL `expires_at`).
    pub intent_cache: Table,
    /// Conversation messages (`session_id` + `message_at`, TTL `expires_at`).
    pub conversations: Table,
}

impl DataStack {
    /// The three tables.
    pub fn tables(&self) -> [&Table; 3] {
        [&self.sessions, &self.intent_cache, &self.conversations]
    }
}

/// Name of the `sources` bucket (the app's CSP names it before the data stack exists).
pub fn sources_bucket_name(cfg: &Config) -> String {
    format!("{}-sources-{}", cfg.prefix(), cfg.account_id)
}

/// Build the data stack of a config (wired to the outputs of its network and web stacks).
pub fn build(cfg: &Config) -> Result<DataStack, ModelError> {
    build_wired(
        cfg,
        &crate::network::build(cfg)?.outputs,
        &crate::web::build(cfg)?.outputs,
    )
}

/// Build the data stack with its parameters wired to `network`'s and `web`'s outputs.
pub fn build_wired(
    cfg: &Config,
    network: &NetworkOutputs,
    web: &WebOutputs,
) -> Result<DataStack, ModelError> {
    let mut s = Stack::new(cfg, StackKind::Data, "Aurora, buckets, tables, KMS key");
    let subnets = s.import(
        "PrivateSubnetIds",
        &network.private_subnets,
        Parameter::of_type(
            "List<AWS::EC2::Subnet::Id>",
            "private subnets of the network stack",
        ),
    )?;
    let db_sg = s.import(
        "DatabaseSecurityGroupId",
        &network.database_sg,
        Parameter::of_type("AWS::EC2::SecurityGroup::Id", "security group of Aurora"),
    )?;
    let app_origin = s.import(
        "AppOrigin",
        &web.app_origin,
        Parameter::string("origin of the web app (CORS of evidence uploads)")
            .pattern("^https://.+"),
    )?;
    let prefix = cfg.prefix();
    let keep = Attributes::retention(data_policy(cfg));
    let t = &mut s.template;

    let key = t.add_with(
        "DataKey",
        Key {
            description: format!("{prefix}: Aurora, buckets, tables, secrets"),
            enable_key_rotation: true,
            pending_window_in_days: if cfg.stage.is_ephemeral() { 7 } else { 30 },
            key_policy: PolicyDocument::new(vec![Statement {
                sid: "AccountAdministersAndDelegatesToIam".into(),
                effect: Effect::Allow,
                principal: Some(json!({"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}})),
                action: [
                    "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                    "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                    "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                    "kms:CancelKeyDeletion", "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                ]
                .map(String::from)
                .to_vec(),
                // In a key policy, "*" means "this key".
                resource: vec![Expr::str("*")],
                condition: None,
            }]),
            tags: tags(cfg, &prefix),
        },
        Attributes::retention(key_policy(cfg)),
    )?;
    t.add(
        "DataKeyAlias",
        Alias {
            alias_name: format!("alias/{prefix}"),
            target_key_id: key.r#ref(),
        },
    )?;

    let subnet_group = t.add(
        "DatabaseSubnetGroup",
        DbSubnetGroup {
            description: format!("{prefix} private subnets"),
            subnet_ids: subnets.r#ref(),
            tags: tags(cfg, &prefix),
        },
    )?;
    let db_keep = Attributes::retention(database_policy(cfg));
    let cluster = t.add_with(
        "Database",
        DbCluster {
            engine: "aurora-postgresql".into(),
            engine_version: cfg.aurora.engine_version.clone(),
            database_name: DATABASE_NAME.into(),
            master_username: MASTER_USERNAME.into(),
            manage_master_user_password: true,
            master_user_secret: MasterUserSecret {
                kms_key_id: key.r#ref(),
            },
            storage_encrypted: true,
            kms_key_id: key.r#ref(),
            db_subnet_group_name: subnet_group.r#ref(),
            vpc_security_group_ids: vec![db_sg.r#ref()],
            serverless_v2_scaling_configuration: ScalingConfiguration {
                min_capacity: cfg.min_acu(),
                max_capacity: cfg.aurora.max_acu,
            },
            backup_retention_period: cfg.aurora.backup_retention_days,
            deletion_protection: cfg.stage == Stage::Prod,
            copy_tags_to_snapshot: true,
            enable_cloudwatch_logs_exports: vec!["postgresql".into()],
            tags: tags(cfg, &prefix),
        },
        db_keep.clone(),
    )?;
    for i in 0..=cfg.readers() {
        let (id, name) = if i == 0 {
            ("DatabaseWriter".to_owned(), format!("{prefix}-writer"))
        } else {
            (format!("DatabaseReader{i}"), format!("{prefix}-reader-{i}"))
        };
        t.add_with(
            &id,
            DbInstance {
                engine: "aurora-postgresql".into(),
                db_instance_class: "db.serverless".into(),
                db_cluster_identifier: cluster.r#ref(),
                publicly_accessible: false,
                promotion_tier: i.min(15),
                tags: tags(cfg, &name),
            },
            Attributes::retention(crate::model::Policy::Delete),
        )?;
    }

    let r = &cfg.data_retention;
    let lifecycle = |days: u32| {
        json!({"Rules": [
            {"Id": "ExpireObjects", "Status": "Enabled", "ExpirationInDays": days},
            {"Id": "ExpireOldVersions", "Status": "Enabled",
             "NoncurrentVersionExpiration": {"NoncurrentDays": r.noncurrent_versions_days}},
            {"Id": "AbortIncompleteUploads", "Status": "Enabled",
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}
        ]})
    };
    let sources_bucket = Bucket {
        cors_configuration: Some(uploads_cors(app_origin.r#ref())),
        ..secure_bucket(
            cfg,
            sources_bucket_name(cfg),
            Some(key.arn()),
            lifecycle(r.sources_days),
        )
    };
    let artifacts_bucket = secure_bucket(
        cfg,
        format!("{prefix}-artifacts-{}", cfg.account_id),
        Some(key.arn()),
        lifecycle(r.artifacts_days),
    );
    let sources = t.add_with("SourcesBucket", sources_bucket.clone(), keep.clone())?;
    t.add("SourcesBucketPolicy", tls_only_policy(&sources))?;
    let artifacts = t.add_with("ArtifactsBucket", artifacts_bucket.clone(), keep.clone())?;
    t.add("ArtifactsBucketPolicy", tls_only_policy(&artifacts))?;

    let sessions = table(
        cfg,
        format!("{prefix}-sessions"),
        "session_id",
        None,
        Some(key.arn()),
    );
    let intent_cache = table(
        cfg,
        format!("{prefix}-intent-cache"),
        "cache_key",
        None,
        Some(key.arn()),
    );
    let conversations = table(
        cfg,
        format!("{prefix}-conversations"),
        "session_id",
        Some("message_at"),
        Some(key.arn()),
    );
    let sessions_h = t.add_with("SessionsTable", sessions.clone(), keep.clone())?;
    let intent_h = t.add_with("IntentCacheTable", intent_cache.clone(), keep.clone())?;
    let conv_h = t.add_with("ConversationsTable", conversations.clone(), keep)?;

    let outputs = DataOutputs {
        kms_key_arn: s.export("DataKeyArn", "KMS key of the data stores", key.arn())?,
        db_host: s.export(
            "DatabaseHost",
            "Aurora writer endpoint",
            cluster.endpoint_address(),
        )?,
        db_port: s.export("DatabasePort", "Aurora port", cluster.endpoint_port())?,
        db_secret_arn: s.export(
            "DatabaseSecretArn",
            "generated master secret",
            cluster.secret_arn(),
        )?,
        sources_bucket: s.export(
            outputs::SOURCES_BUCKET,
            "uploaded evidence",
            sources.r#ref(),
        )?,
        artifacts_bucket: s.export(
            outputs::ARTIFACTS_BUCKET,
            "pipeline artifacts",
            artifacts.r#ref(),
        )?,
        sessions_table: s.export("SessionsTableName", "AI chat sessions", sessions_h.r#ref())?,
        intent_cache_table: s.export(
            "IntentCacheTableName",
            "guard verdict cache",
            intent_h.r#ref(),
        )?,
        conversations_table: s.export(
            "ConversationsTableName",
            "AI conversations",
            conv_h.r#ref(),
        )?,
    };
    Ok(DataStack {
        stack: s,
        outputs,
        sources_bucket,
        artifacts_bucket,
        sessions,
        intent_cache,
        conversations,
    })
}
