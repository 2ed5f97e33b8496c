//! Creates locally what the runtime needs (buckets in the local S3 server, the rest in
//! the emulator), from the same typed stack model that
//! writes the CloudFormation templates: the `sources`/`artifacts` buckets and the three
//! DynamoDB tables of [`chrono_stacks::data::build`] (names, key schemas, TTL attribute),
//! and the pipeline state machine of [`chrono_stacks::pipeline::definition`] under
//! [`chrono_stacks::compute::state_machine_name`]. Every step is idempotent: what exists
//! is kept (tables and buckets keep their data), the state machine definition is updated.
//!
//! The emulator runs neither ECS nor Lambda: the state machine exists so that its
//! definition is validated and listed, while locally the API hands evidence to the
//! in-process pipeline worker (see the README, "Local mode").

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use chrono_stacks::config::Config;
use chrono_stacks::resources::storage::{Bucket, Table};
use chrono_stacks::{compute, data, pipeline};
use serde::Serialize;

use super::LocalError;

/// What was provisioned: the names the runtime gets in its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provisioned {
    /// `CHRONO_SOURCES_BUCKET`.
    pub sources_bucket: String,
    /// `CHRONO_ARTIFACTS_BUCKET`.
    pub artifacts_bucket: String,
    /// `CHRONO_SESSIONS_TABLE`.
    pub sessions_table: String,
    /// `CHRONO_INTENT_CACHE_TABLE`.
    pub intent_cache_table: String,
    /// `CHRONO_CONVERSATIONS_TABLE`.
    pub conversations_table: String,
    /// The pipeline state machine.
    pub state_machine_arn: String,
}

/// The resources of `cfg`'s data stack and its state machine, without creating anything.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Buckets.
    pub buckets: Vec<Bucket>,
    /// Tables.
    pub tables: Vec<Table>,
    /// State machine name.
    pub state_machine: String,
    /// Its definition with every placeholder filled for the emulator.
    pub definition: String,
    /// Role ARN given to the state machine (the emulator does not check it).
    pub role_arn: String,
}

/// What `cfg` asks the emulator to hold.
pub fn plan(cfg: &Config) -> Result<Plan, LocalError> {
    let stack = data::build(cfg).map_err(|e| LocalError::Model(e.to_string()))?;
    let prefix = cfg.prefix();
    let account = &cfg.account_id;
    let region = &cfg.region;
    let subnets = cfg.network.az_count as usize;
    // Placeholders name ECS resources that do not exist locally; they only need to be
    // well-formed for the emulator to accept the definition.
    let values: BTreeMap<String, String> = pipeline::placeholders(subnets)
        .into_iter()
        .map(|name| {
            let value = match name.as_str() {
                "ArtifactsBucket" => stack.artifacts_bucket.bucket_name.clone(),
                "ClusterArn" => format!("arn:aws:ecs:{region}:{account}:cluster/{prefix}"),
                "TaskDefinitionArn" => {
                    format!("arn:aws:ecs:{region}:{account}:task-definition/{prefix}-pipeline:1")
                }
                "TaskSecurityGroup" => "sg-00000000000000000".to_owned(),
                "FailFunctionArn" => {
                    format!("arn:aws:lambda:{region}:{account}:function:{prefix}-api")
                }
                other => format!("subnet-local-{}", other.to_lowercase()),
            };
            (name, value)
        })
        .collect();
    let definition = pipeline::render(&pipeline::definition(&pipeline::Shape::of(cfg)), &values)
        .map_err(|e| LocalError::Model(e.to_string()))?;
    let state_machine = compute::state_machine_name(cfg);
    Ok(Plan {
        role_arn: format!("arn:aws:iam::{account}:role/{state_machine}"),
        buckets: vec![stack.sources_bucket.clone(), stack.artifacts_bucket.clone()],
        tables: stack.tables().into_iter().cloned().collect(),
        state_machine,
        definition,
    })
}

/// Creates (or confirms) everything in `plan`: buckets in the local S3 server behind
/// `s3_sdk`, tables and the state machine in the emulator behind `sdk`; the sources
/// bucket gets the data stack's CORS rule for the app served at `app_origin`.
///
/// Bucket versioning is not set locally: the local S3 server keeps the latest version of
/// an object only (see [`super::s3::api`]); the runtime never reads object versions.
pub async fn apply(
    sdk: &aws_config::SdkConfig,
    s3_sdk: &aws_config::SdkConfig,
    cfg: &Config,
    plan: &Plan,
    app_origin: &str,
) -> Result<Provisioned, LocalError> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(s3_sdk)
            .force_path_style(true)
            .build(),
    );
    for bucket in &plan.buckets {
        ensure_bucket(&s3, &cfg.region, bucket).await?;
    }
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    for table in &plan.tables {
        ensure_table(&ddb, table).await?;
    }
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let state_machine_arn = ensure_state_machine(&sfn, plan).await?;
    let stack = data::build(cfg).map_err(|e| LocalError::Model(e.to_string()))?;
    let cors = data::uploads_cors(chrono_stacks::model::Expr::str(app_origin));
    put_cors(&s3, &stack.sources_bucket.bucket_name, &cors).await?;
    Ok(Provisioned {
        sources_bucket: stack.sources_bucket.bucket_name,
        artifacts_bucket: stack.artifacts_bucket.bucket_name,
        sessions_table: stack.sessions.table_name,
        intent_cache_table: stack.intent_cache.table_name,
        conversations_table: stack.conversations.table_name,
        state_machine_arn,
    })
}

/// Puts a typed CORS configuration (literal origins only) on a bucket.
async fn put_cors(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    cors: &chrono_stacks::resources::storage::CorsConfiguration,
) -> Result<(), LocalError> {
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let what = format!("CORS of bucket {bucket}");
    let mut rules = Vec::new();
    for r in &cors.cors_rules {
        let origins = r
            .allowed_origins
            .iter()
            .map(|o| match o {
                chrono_stacks::model::Expr::Str(s) => Ok(s.clone()),
                other => Err(LocalError::Provision {
                    resource: what.clone(),
                    reason: format!("origin {other:?} is not a literal"),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(
            CorsRule::builder()
                .set_allowed_headers(Some(r.allowed_headers.clone()))
                .set_allowed_methods(Some(r.allowed_methods.clone()))
                .set_allowed_origins(Some(origins))
                .set_expose_headers(Some(r.exposed_headers.clone()))
                .max_age_seconds(i32::try_from(r.max_age).unwrap_or(i32::MAX))
                .build()
                .map_err(|e| failed(&what, e))?,
        );
    }
    s3.put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(
            CorsConfiguration::builder()
                .set_cors_rules(Some(rules))
                .build()
                .map_err(|e| failed(&what, e))?,
        )
        .send()
        .await
        .map_err(|e| failed(&what, e))?;
    Ok(())
}

fn failed(resource: &str, e: impl std::error::Error) -> LocalError {
    LocalError::Provision {
        resource: resource.to_owned(),
        reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

async fn ensure_bucket(
    s3: &aws_sdk_s3::Client,
    region: &str,
    bucket: &Bucket,
) -> Result<(), LocalError> {
    let name = &bucket.bucket_name;
    if s3.head_bucket().bucket(name).send().await.is_err() {
        let mut req = s3.create_bucket().bucket(name);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(region.into())
                    .build(),
            );
        }
        req.send()
            .await
            .map_err(|e| failed(&format!("bucket {name}"), e))?;
    }
    Ok(())
}

async fn ensure_table(ddb: &aws_sdk_dynamodb::Client, table: &Table) -> Result<(), LocalError> {
    let name = &table.table_name;
    let what = format!("table {name}");
    if ddb.describe_table().table_name(name).send().await.is_err() {
        let mut req = ddb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for a in &table.attribute_definitions {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&a.attribute_name)
                    .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                    .build()
                    .map_err(|e| failed(&what, e))?,
            );
        }
        for k in &table.key_schema {
            req = req.key_schema(
                KeySchemaElement::builder()
                    .attribute_name(&k.attribute_name)
                    .key_type(KeyType::from(k.key_type.as_str()))
                    .build()
                    .map_err(|e| failed(&what, e))?,
            );
        }
        req.send().await.map_err(|e| failed(&what, e))?;
    }
    let ttl = &table.time_to_live_specification;
    ddb.update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(&ttl.attribute_name)
                .enabled(ttl.enabled)
                .build()
                .map_err(|e| failed(&what, e))?,
        )
        .send()
        .await
        .map(drop)
        .or_else(|e| {
            // Enabling TTL twice is refused ("TimeToLive is already enabled"); that is
            // the state we want.
            let text = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
            if text.contains("already enabled") {
                Ok(())
            } else {
                Err(failed(&format!("TTL of {what}"), e))
            }
        })
}

async fn ensure_state_machine(
    sfn: &aws_sdk_sfn::Client,
    plan: &Plan,
) -> Result<String, LocalError> {
    let what = format!("state machine {}", plan.state_machine);
    let existing = sfn
        .list_state_machines()
        .send()
        .await
        .map_err(|e| failed(&what, e))?
        .state_machines
        .into_iter()
        .find(|m| m.name == plan.state_machine);
    if let Some(m) = existing {
        sfn.update_state_machine()
            .state_machine_arn(&m.state_machine_arn)
            .definition(&plan.definition)
            .send()
            .await
            .map_err(|e| failed(&what, e))?;
        return Ok(m.state_machine_arn);
    }
    let out = sfn
        .create_state_machine()
        .name(&plan.state_machine)
        .definition(&plan.definition)
        .role_arn(&plan.role_arn)
        .send()
        .await
        .map_err(|e| failed(&what, e))?;
    Ok(out.state_machine_arn)
}
