//! The deploy lock: one item per customer + stage in the bootstrap stack's lock table,
//! taken with a conditional write so two `deploy`/`destroy` runs cannot overlap.
//!
//! The item records who holds the lock, since when, and until when (a lease renewed by a
//! heartbeat while the run lasts). Attributes: `lock_id` (key), `owner` (caller ARN, host,
//! pid), `host`, `pid`, `lease_ms` (renewed every third of it), `run_id`, `acquired_at`, `heartbeat_at_ms` (last renewal, epoch
//! ms), `expires_at_ms` (the lease, epoch ms), `expires_at_iso`, and `expires_at` (epoch s,
//! the table's TTL attribute, a day after the lease).
//!
//! A lock is taken over at once when its lease expired, or when its holder ran on this
//! host and its process is gone (a killed run). `--break-lock` takes a lock whose holder
//! stopped renewing it (two heartbeats missed) and refuses a live one: two runs must never
//! change the same stacks. Every takeover is conditional on the holder's `run_id`.

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
    /// `--break-lock` on a lock whose holder is still renewing it.
    #[error(
        "refusing --break-lock: the deploy lock `{key}` is live: {owner} renewed it {age_s}s ago (it renews every {every_s}s); stop that run first (it releases the lock on Ctrl-C), or wait for it"
    )]
    Live {
        /// Lock key.
        key: String,
        /// Who holds it.
        owner: String,
        /// Seconds since its last renewal.
        age_s: u64,
        /// Its renewal interval in seconds.
        every_s: u64,
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
    /// Who we are (caller ARN, host, pid).
    pub owner: String,
    /// Lease length; renewed every third of it.
    pub lease: Duration,
    /// Take the lock even when someone holds it.
    pub break_lock: bool,
}

/// A held lock. Call [`LockGuard::release`] when done; if the process dies the lease
/// simply expires (or, on the same host, the next run sees the pid is gone).
#[derive(Debug)]
pub struct LockGuard {
    handle: LockHandle,
    heartbeat: tokio::task::JoinHandle<()>,
    /// The holder that was displaced (`--break-lock`, or a dead run), if any.
    pub broke: Option<String>,
}

/// What identifies a held lock: enough to release it from anywhere (a signal handler).
#[derive(Debug, Clone)]
pub struct LockHandle {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    /// Lock key.
    pub key: String,
    run_id: String,
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

/// Reads the current holder of a lock, if any: (owner, since, lease end).
pub async fn holder(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<Option<(String, String, String)>, LockError> {
    Ok(item(ddb, table, key).await?.map(|i| {
        (
            s(&i, "owner"),
            s(&i, "acquired_at"),
            s(&i, "expires_at_iso"),
        )
    }))
}

async fn item(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Result<Option<HashMap<String, AttributeValue>>, LockError> {
    let got = ddb
        .get_item()
        .table_name(table)
        .key(LOCK_KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| aws_err(table, "GetItem", &e))?;
    Ok(got.item().cloned())
}

fn n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// This machine's name (`/etc/hostname`, else `$HOSTNAME`).
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether process `pid` runs on this machine (Linux: `/proc/<pid>`; elsewhere we cannot
/// tell, and say it does).
pub fn pid_alive(pid: i64) -> bool {
    if cfg!(target_os = "linux") {
        pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// How a held lock may be taken over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Takeover {
    /// Its holder ran on this host and its process is gone.
    DeadHere(i64),
    /// Its holder stopped renewing it (ms since the last renewal): `--break-lock` may.
    Stale(u64),
    /// Its holder renews it (ms since the last renewal).
    Live(u64),
}

/// Judges a held lock item (pure: host, liveness of pids and the clock are passed in).
pub fn judge(
    item: &HashMap<String, AttributeValue>,
    here: &str,
    alive: impl Fn(i64) -> bool,
    now_ms: i64,
    lease: Duration,
) -> Takeover {
    if s(item, "host") == here
        && let Some(pid) = n(item, "pid")
        && !alive(pid)
    {
        return Takeover::DeadHere(pid);
    }
    let age = n(item, "heartbeat_at_ms")
        .map(|h| u64::try_from(now_ms.saturating_sub(h)).unwrap_or(0))
        // written by an older chronoctl (no heartbeat recorded): cannot tell it is live
        .unwrap_or(u64::MAX);
    let every = u64::try_from((lease / 3).as_millis()).unwrap_or(u64::MAX);
    if age > every.saturating_mul(2) {
        Takeover::Stale(age)
    } else {
        Takeover::Live(age)
    }
}

/// Takes the lock or fails fast with who holds it.
pub async fn acquire(
    ddb: &aws_sdk_dynamodb::Client,
    req: &LockRequest,
) -> Result<LockGuard, LockError> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let here = host_name();
    let put = |old_run: Option<&str>| {
        let t = now();
        let expires =
            t + chrono::Duration::from_std(req.lease).unwrap_or(chrono::Duration::minutes(2));
        let p = ddb
            .put_item()
            .table_name(&req.table)
            .item(LOCK_KEY_ATTRIBUTE, AttributeValue::S(req.key.clone()))
            .item("owner", AttributeValue::S(req.owner.clone()))
            .item("host", AttributeValue::S(here.clone()))
            .item("pid", AttributeValue::N(std::process::id().to_string()))
            .item(
                "lease_ms",
                AttributeValue::N(req.lease.as_millis().to_string()),
            )
            .item("run_id", AttributeValue::S(run_id.clone()))
            .item("acquired_at", AttributeValue::S(t.to_rfc3339()))
            .item(
                "heartbeat_at_ms",
                AttributeValue::N(t.timestamp_millis().to_string()),
            )
            .item(
                "expires_at_ms",
                AttributeValue::N(expires.timestamp_millis().to_string()),
            )
            .item("expires_at_iso", AttributeValue::S(expires.to_rfc3339()))
            .item(
                LOCK_TTL_ATTRIBUTE,
                AttributeValue::N((expires.timestamp() + 86_400).to_string()),
            );
        match old_run {
            None => p
                .condition_expression("attribute_not_exists(#k) OR #e < :now")
                .expression_attribute_names("#k", LOCK_KEY_ATTRIBUTE)
                .expression_attribute_names("#e", "expires_at_ms")
                .expression_attribute_values(
                    ":now",
                    AttributeValue::N(t.timestamp_millis().to_string()),
                ),
            Some(old) => p
                .condition_expression("run_id = :old")
                .expression_attribute_values(":old", AttributeValue::S(old.to_owned())),
        }
    };
    let is_conflict = |e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::put_item::PutItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >| {
        e.as_service_error()
            .is_some_and(|se| se.is_conditional_check_failed_exception())
    };
    let mut broke = None;
    if let Err(e) = put(None).send().await {
        if !is_conflict(&e) {
            return Err(aws_err(&req.table, "PutItem", &e));
        }
        let Some(held) = item(ddb, &req.table, &req.key).await? else {
            return Box::pin(acquire(ddb, req)).await;
        };
        let owner = s(&held, "owner");
        // the holder renews at its own lease's pace
        let lease = n(&held, "lease_ms")
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(req.lease, Duration::from_millis);
        let verdict = judge(&held, &here, pid_alive, now().timestamp_millis(), lease);
        let why = match verdict {
            Takeover::DeadHere(pid) => format!("{owner} (pid {pid} is gone)"),
            Takeover::Stale(age) if req.break_lock => {
                format!("{owner} (not renewed for {}s)", age / 1000)
            }
            Takeover::Live(age) if req.break_lock => {
                return Err(LockError::Live {
                    key: req.key.clone(),
                    owner,
                    age_s: age / 1000,
                    every_s: (lease / 3).as_secs().max(1),
                });
            }
            Takeover::Stale(_) | Takeover::Live(_) => {
                return Err(LockError::Held {
                    key: req.key.clone(),
                    owner,
                    since: s(&held, "acquired_at"),
                    expires: s(&held, "expires_at_iso"),
                });
            }
        };
        let old_run = s(&held, "run_id");
        if let Err(e) = put(Some(&old_run)).send().await {
            if is_conflict(&e) {
                // someone else took it over first
                return Err(LockError::Held {
                    key: req.key.clone(),
                    owner: "another run (it took over the lock just now)".into(),
                    since: now().to_rfc3339(),
                    expires: "unknown".into(),
                });
            }
            return Err(aws_err(&req.table, "PutItem", &e));
        }
        broke = Some(why);
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
                let t = now();
                let exp = t + chrono::Duration::from_std(lease).unwrap_or_default();
                let _ = ddb
                    .update_item()
                    .table_name(&table)
                    .key(LOCK_KEY_ATTRIBUTE, AttributeValue::S(key.clone()))
                    .update_expression(
                        "SET expires_at_ms = :e, expires_at_iso = :i, expires_at = :t, heartbeat_at_ms = :h",
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
                    .expression_attribute_values(
                        ":h",
                        AttributeValue::N(t.timestamp_millis().to_string()),
                    )
                    .expression_attribute_values(":r", AttributeValue::S(run.clone()))
                    .send()
                    .await;
            }
        })
    };
    Ok(LockGuard {
        handle: LockHandle {
            ddb: ddb.clone(),
            table: req.table.clone(),
            key: req.key.clone(),
            run_id,
        },
        heartbeat,
        broke,
    })
}

impl LockGuard {
    /// Releases the lock (only if we still hold it).
    pub async fn release(self) -> Result<(), LockError> {
        self.heartbeat.abort();
        self.handle.release().await
    }

    /// What identifies the lock (to release it from a signal handler).
    pub fn handle(&self) -> LockHandle {
        self.handle.clone()
    }
}

impl LockHandle {
    /// Deletes the lock item if this run still holds it.
    pub async fn release(&self) -> Result<(), LockError> {
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

/// Default owner string: `host (pid N)`; the engine puts the caller's ARN in front once
/// STS named it (no `$USER`: it is unset in CI and containers, and says nothing about the
/// AWS identity).
pub fn default_owner() -> String {
    format!("{} (pid {})", host_name(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(host: &str, pid: i64, heartbeat_ms: Option<i64>) -> HashMap<String, AttributeValue> {
        let mut m = HashMap::new();
        m.insert("host".into(), AttributeValue::S(host.into()));
        m.insert("pid".into(), AttributeValue::N(pid.to_string()));
        if let Some(h) = heartbeat_ms {
            m.insert("heartbeat_at_ms".into(), AttributeValue::N(h.to_string()));
        }
        m
    }

    #[test]
    fn a_lock_is_dead_here_stale_or_live() {
        let lease = Duration::from_secs(120); // renewed every 40 s
        let alive = |p: i64| p == 7;
        let now = 1_000_000_000;
        // same host, pid gone: dead at once, whatever the heartbeat
        assert_eq!(
            judge(&held("vm", 8, Some(now)), "vm", alive, now, lease),
            Takeover::DeadHere(8)
        );
        // same host, pid alive, fresh heartbeat: live
        assert_eq!(
            judge(&held("vm", 7, Some(now - 1_000)), "vm", alive, now, lease),
            Takeover::Live(1_000)
        );
        // another host: the pid says nothing; the heartbeat decides
        assert_eq!(
            judge(&held("ci", 8, Some(now - 79_000)), "vm", alive, now, lease),
            Takeover::Live(79_000)
        );
        assert_eq!(
            judge(&held("ci", 8, Some(now - 81_000)), "vm", alive, now, lease),
            Takeover::Stale(81_000)
        );
        assert_eq!(
            judge(&held("ci", 8, None), "vm", alive, now, lease),
            Takeover::Stale(u64::MAX)
        );
    }

    #[test]
    fn the_default_owner_does_not_need_user() {
        let o = default_owner();
        assert!(o.contains(&format!("(pid {})", std::process::id())), "{o}");
        assert!(!o.contains("unknown@"), "{o}");
    }
}
