//! The deploy lock: one item per customer + stage in the bootstrap stack's lock table,
//! taken with a conditional write so two `deploy`/`destroy` runs cannot overlap.
//!
//! The item records who holds the lock, since when, and until when (a lease renewed by a
//! heartbeat while the run lasts). Attributes: `lock_id` (key), `owner`, `run_id`,
//! `acquired_at`, `expires_at_ms` (the lease, epoch ms), `expires_at_iso`, and
//! `expires_at` (epoch s, the table's TTL attribute, a day after the lease). An expired lease is taken over silently; a live one is
//! only broken with `--break-lock`.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

/// Partition key attribute of the lock table (a string).
pub const LOCK_KEY_ATTRIBUTE: &str = "lock_id";

/// TTL attribute of the lock table (epoch seconds): DynamoDB removes long-dead locks.
pub const LOCK_TTL_ATTRIBUTE: &str = "expires_at";

/// Errors of the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds a live lock.
    #[error(
        "another run holds the deploy lock `{key}`: {owner} since {since} (expires {expires}); wait for it, or if that run is dead rerun with --break-lock"
    )]
    Held {
        /// Lock key.
        key: String,
        /// Who holds it.
        owner: String,
        /// When it was taken (RFC 3339).
        since: String,
        /// When the lease runs out (RFC 3339).
        expires: String,
    },
    /// A DynamoDB call failed.
    #[error("deploy lock table `{table}`: {operation} failed: {message}")]
    Aws {
        /// Table name.
        table: String,
        /// Operation.
        operation: &'static str,
        /// SDK error text.
        message: String,
    },
}

/// What a run asks for.
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// Table name (bootstrap output).
    pub table: String,
    /// Item key ([`crate::deploy::DeployPlan::lock_key`]).
    pub key: String,
    /// Who we are (`user@host`, plus the command).
    pub owner: String,
    /// Lease length; renewed every third of it.
    pub lease: Duration,
    /// Take the lock even when someone holds it.
    pub break_lock: bool,
}

/// A held lock. Call [`LockGuard::release`] when done; if the process dies the lease
/// simply expires.
#[derive(Debug)]
pub struct LockGuard {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    key: String,
    run_id: String,
    heartbeat: tokio::task::JoinHandle<()>,
    /// The holder that was displaced by `--break-lock`, if any.
    pub broke: Option<String>,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn aws_err<E: ProvideErrorMetadata + std::fmt::Debug>(
    table: &str,
    operation: &'static str,
    e: &aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> LockError {
    let message = match e.as_service_error() {
        Some(se) => format!(
            "{}: {}",
            se.code().unwrap_or("error"),
            se.message().unwrap_or("no message")
        ),
        None => format!("{e}"),
    };
    LockError::Aws {
        table: table.to_owned(),
        operation,
        message,
    }
}

fn s(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        Some(AttributeValue::N(v)) => v.clone(),
        _ => "unknown".to_owned(),
    }
}

/// Reads the current holder of a lock, if any.
pub async fn holder(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<Option<(String, String, String)>, LockError> {
    let got = ddb
        .get_item()
        .table_name(table)
        .key(LOCK_KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| aws_err(table, "GetItem", &e))?;
    Ok(got
        .item()
        .map(|i| (s(i, "owner"), s(i, "acquired_at"), s(i, "expires_at_iso"))))
}

/// Takes the lock or fails fast with who holds it.
pub async fn acquire(
    ddb: &aws_sdk_dynamodb::Client,
    req: &LockRequest,
) -> Result<LockGuard, LockError> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let t = now();
    let expires = t + chrono::Duration::from_std(req.lease).unwrap_or(chrono::Duration::minutes(2));
    let previous = if req.break_lock {
        holder(ddb, &req.table, &req.key).await?
    } else {
        None
    };
    let mut put = ddb
        .put_item()
        .table_name(&req.table)
        .item(LOCK_KEY_ATTRIBUTE, AttributeValue::S(req.key.clone()))
        .item("owner", AttributeValue::S(req.owner.clone()))
        .item("run_id", AttributeValue::S(run_id.clone()))
        .item("acquired_at", AttributeValue::S(t.to_rfc3339()))
        .item(
            "expires_at_ms",
            AttributeValue::N(expires.timestamp_millis().to_string()),
        )
        .item("expires_at_iso", AttributeValue::S(expires.to_rfc3339()));
    if !req.break_lock {
        put = put
            .condition_expression("attribute_not_exists(#k) OR #e < :now")
            .expression_attribute_names("#k", LOCK_KEY_ATTRIBUTE)
            .expression_attribute_names("#e", "expires_at_ms")
            .expression_attribute_values(
                ":now",
                AttributeValue::N(t.timestamp_millis().to_string()),
            );
    }
    if let Err(e) = put.send().await {
        if e.as_service_error()
            .is_some_and(|se| se.is_conditional_check_failed_exception())
        {
            let (owner, since, expires) = holder(ddb, &req.table, &req.key)
                .await?
                .unwrap_or_else(|| ("unknown".into(), "unknown".into(), "unknown".into()));
            return Err(LockError::Held {
                key: req.key.clone(),
                owner,
                since,
                expires,
            });
        }
        return Err(aws_err(&req.table, "PutItem", &e));
    }
    let heartbeat = {
        let ddb = ddb.clone();
        let table = req.table.clone();
        let key = req.key.clone();
        let run = run_id.clone();
        let lease = req.lease;
        tokio::spawn(async move {
            let every = (lease / 3).max(Duration::from_millis(50));
            loop {
                tokio::time::sleep(every).await;
                let exp = now() + chrono::Duration::from_std(lease).unwrap_or_default();
                let _ = ddb
                    .update_item()
                    .table_name(&table)
                    .key(LOCK_KEY_ATTRIBUTE, AttributeValue::S(key.clone()))
                    .update_expression(
                        "SET expires_at_ms = :e, expires_at_iso = :i, expires_at = :t",
                    )
                    .condition_expression("run_id = :r")
                    .expression_attribute_values(
                        ":e",
                        AttributeValue::N(exp.timestamp_millis().to_string()),
                    )
                    .expression_attribute_values(":i", AttributeValue::S(exp.to_rfc3339()))
                    .expression_attribute_values(
                        ":t",
                        AttributeValue::N((exp.timestamp() + 86_400).to_string()),
                    )
                    .expression_attribute_values(":r", AttributeValue::S(run.clone()))
                    .send()
                    .await;
            }
        })
    };
    Ok(LockGuard {
        ddb: ddb.clone(),
        table: req.table.clone(),
        key: req.key.clone(),
        run_id,
        heartbeat,
        broke: previous.map(|(o, _, _)| o),
    })
}

impl LockGuard {
    /// Releases the lock (only if we still hold it).
    pub async fn release(self) -> Result<(), LockError> {
        self.heartbeat.abort();
        let res = self
            .ddb
            .delete_item()
            .table_name(&self.table)
            .key(LOCK_KEY_ATTRIBUTE, AttributeValue::S(self.key.clone()))
            .condition_expression("run_id = :r")
            .expression_attribute_values(":r", AttributeValue::S(self.run_id.clone()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // Someone broke our lock: nothing of ours to release.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws_err(&self.table, "DeleteItem", &e)),
        }
    }
}

impl Drop for LockGuard {
    /// A guard dropped without `release` (the run was killed) stops renewing the lease,
    /// so the lock expires on its own.
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Default owner string: `user@host (pid N)`.
pub fn default_owner() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{user}@{host} (pid {})", std::process::id())
}
