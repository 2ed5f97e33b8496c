//! Where sessions, guard verdicts and conversation turns live: DynamoDB (`sessions`,
//! `intent_cache`, `conversations`; [`DynamoStore`]) in AWS and local mode, and an
//! in-process map ([`MemoryStore`]) for a server started without tables.
//!
//! Table keys (as the data stack creates them): `sessions` — `session_id` (S);
//! `intent_cache` — `cache_key` (S); `conversations` — `session_id` (S) + `message_at` (S,
//! RFC 3339 UTC with microseconds, then `#` and a random suffix). Every item carries
//! `expires_at` (N, epoch seconds), the tables' TTL attribute; reads ignore items past it
//! because DynamoDB deletes them lazily.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::provider::{Intent, PROMPT_VERSION};

/// How long a session lives after its last question.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// How long a guard verdict is reused.
pub const INTENT_TTL_SECS: i64 = 7 * 24 * 3600;
/// How long conversation turns are kept.
pub const TURN_TTL_SECS: i64 = 400 * 24 * 3600;
/// Earlier questions kept in a session (and shown to the main model).
pub const RECENT_QUESTIONS: usize = 5;

/// A storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB refused or could not be reached.
    #[error("the session store failed: {0}; check the CHRONO_*_TABLE settings and AWS access")]
    Dynamo(String),
    /// An item is not in the expected shape.
    #[error("a stored item is malformed ({0}); it will be replaced")]
    Malformed(String),
}

/// A chat session: who, which case, which zone, and the recent questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Opaque id (a UUID).
    pub id: String,
    /// Subject of the user who owns it.
    pub user: String,
    /// The case it is scoped to.
    pub case_id: Uuid,
    /// IANA zone of the client.
    pub tz: String,
    /// Earlier questions, oldest first, at most [`RECENT_QUESTIONS`].
    pub recent: Vec<String>,
    /// Expiry (epoch seconds).
    pub expires_at: i64,
}

/// One question and its answer, as stored in `conversations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Session id.
    pub session_id: String,
    /// When the question arrived.
    pub at: DateTime<Utc>,
    /// User subject.
    pub user: String,
    /// Case id.
    pub case_id: Uuid,
    /// The question.
    pub question: String,
    /// The reply as sent (JSON).
    pub reply: serde_json::Value,
}

/// The intent cache key: SHA-256 over the normalized question, the guard model id and the
/// prompt version.
pub fn intent_key(question: &str, guard_model_id: &str) -> String {
    let normalized = normalize(question);
    let mut h = Sha256::new();
    h.update(normalized.as_bytes());
    h.update([0]);
    h.update(guard_model_id.as_bytes());
    h.update([0]);
    h.update(PROMPT_VERSION.as_bytes());
    hex::encode(h.finalize())
}

/// Lowercase, whitespace collapsed, trailing punctuation dropped: "Failed logons?" and
/// "failed  logons" share a verdict.
pub fn normalize(question: &str) -> String {
    question
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .trim_end_matches(['?', '!', '.', ' '])
        .to_string()
}

/// Session, cache and conversation storage.
pub trait ChatStore: Send + Sync + Debug {
    /// The live session `id`, if any.
    fn session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Session>, StoreError>>;
    /// Creates or replaces a session.
    fn put_session<'a>(&'a self, s: &'a Session) -> BoxFuture<'a, Result<(), StoreError>>;
    /// A live cached verdict.
    fn cached_intent<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Intent>, StoreError>>;
    /// Caches a verdict for [`INTENT_TTL_SECS`].
    fn cache_intent<'a>(
        &'a self,
        key: &'a str,
        intent: Intent,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Appends a turn.
    fn put_turn<'a>(&'a self, t: &'a Turn) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The turns of a session, oldest first.
    fn turns<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Vec<Turn>, StoreError>>;
}

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// In-process storage (a server without DynamoDB tables; nothing survives a restart).
#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Session>>,
    intents: Mutex<HashMap<String, (Intent, i64)>>,
    turns: Mutex<Vec<Turn>>,
}

impl ChatStore for MemoryStore {
    fn session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        let s = self
            .sessions
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .filter(|s| s.expires_at > now_secs());
        futures::future::ready(Ok(s)).boxed()
    }

    fn put_session<'a>(&'a self, s: &'a Session) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Ok(mut m) = self.sessions.lock() {
            m.insert(s.id.clone(), s.clone());
        }
        futures::future::ready(Ok(())).boxed()
    }

    fn cached_intent<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Intent>, StoreError>> {
        let v = self
            .intents
            .lock()
            .ok()
            .and_then(|m| m.get(key).copied())
            .filter(|(_, exp)| *exp > now_secs())
            .map(|(i, _)| i);
        futures::future::ready(Ok(v)).boxed()
    }

    fn cache_intent<'a>(
        &'a self,
        key: &'a str,
        intent: Intent,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Ok(mut m) = self.intents.lock() {
            m.insert(key.to_owned(), (intent, now_secs() + INTENT_TTL_SECS));
        }
        futures::future::ready(Ok(())).boxed()
    }

    fn put_turn<'a>(&'a self, t: &'a Turn) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Ok(mut v) = self.turns.lock() {
            v.push(t.clone());
        }
        futures::future::ready(Ok(())).boxed()
    }

    fn turns<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Vec<Turn>, StoreError>> {
        let v = self
            .turns
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|t| t.session_id == session_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        futures::future::ready(Ok(v)).boxed()
    }
}

/// Names of the three tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// `CHRONO_SESSIONS_TABLE`
    pub sessions: String,
    /// `CHRONO_INTENT_CACHE_TABLE`
    pub intent_cache: String,
    /// `CHRONO_CONVERSATIONS_TABLE`
    pub conversations: String,
}

/// DynamoDB storage.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    tables: TableNames,
}

fn dynamo_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Dynamo(e.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &HashMap<String, AttributeValue>, k: &str) -> Result<String, StoreError> {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError::Malformed(format!("missing string `{k}`")))
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Result<i64, StoreError> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Malformed(format!("missing number `{k}`")))
}

impl DynamoStore {
    /// Storage over `client` and the three tables.
    pub fn new(client: aws_sdk_dynamodb::Client, tables: TableNames) -> Self {
        DynamoStore { client, tables }
    }

    /// The table names.
    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.sessions)
            .key("session_id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let expires_at = get_n(&item, "expires_at")?;
        if expires_at <= now_secs() {
            return Ok(None);
        }
        let recent = item
            .get("recent")
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_s().ok().cloned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let case_id = Uuid::parse_str(&get_s(&item, "case_id")?)
            .map_err(|e| StoreError::Malformed(format!("case_id: {e}")))?;
        Ok(Some(Session {
            id: get_s(&item, "session_id")?,
            user: get_s(&item, "user")?,
            case_id,
            tz: get_s(&item, "tz")?,
            recent,
            expires_at,
        }))
    }

    async fn write_session(&self, sess: &Session) -> Result<(), StoreError> {
        let recent = sess.recent.iter().map(|q| s(q.clone())).collect();
        self.client
            .put_item()
            .table_name(&self.tables.sessions)
            .item("session_id", s(&sess.id))
            .item("user", s(&sess.user))
            .item("case_id", s(sess.case_id.to_string()))
            .item("tz", s(&sess.tz))
            .item("recent", AttributeValue::L(recent))
            .item("expires_at", n(sess.expires_at))
            .send()
            .await
            .map_err(|e| dynamo_err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn get_intent(&self, key: &str) -> Result<Option<Intent>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.intent_cache)
            .key("cache_key", s(key))
            .send()
            .await
            .map_err(|e| dynamo_err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        if get_n(&item, "expires_at")? <= now_secs() {
            return Ok(None);
        }
        Ok(Intent::parse(&get_s(&item, "intent")?))
    }

    async fn write_intent(&self, key: &str, intent: Intent) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.intent_cache)
            .item("cache_key", s(key))
            .item("intent", s(intent.as_str()))
            .item("prompt_version", s(PROMPT_VERSION))
            .item("expires_at", n(now_secs() + INTENT_TTL_SECS))
            .send()
            .await
            .map_err(|e| dynamo_err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn write_turn(&self, t: &Turn) -> Result<(), StoreError> {
        let suffix = &Uuid::new_v4().simple().to_string()[..8];
        let message_at = format!(
            "{}#{suffix}",
            t.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        self.client
            .put_item()
            .table_name(&self.tables.conversations)
            .item("session_id", s(&t.session_id))
            .item("message_at", s(message_at))
            .item("user", s(&t.user))
            .item("case_id", s(t.case_id.to_string()))
            .item("question", s(&t.question))
            .item("reply", s(t.reply.to_string()))
            .item("expires_at", n(now_secs() + TURN_TTL_SECS))
            .send()
            .await
            .map_err(|e| dynamo_err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn read_turns(&self, session_id: &str) -> Result<Vec<Turn>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.conversations)
            .key_condition_expression("session_id = :s")
            .expression_attribute_values(":s", s(session_id))
            .scan_index_forward(true)
            .send()
            .await
            .map_err(|e| dynamo_err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        out.items()
            .iter()
            .map(|item| {
                let at_text = get_s(item, "message_at")?;
                let at = at_text.split('#').next().unwrap_or_default();
                Ok(Turn {
                    session_id: get_s(item, "session_id")?,
                    at: DateTime::parse_from_rfc3339(at)
                        .map_err(|e| StoreError::Malformed(format!("message_at: {e}")))?
                        .with_timezone(&Utc),
                    user: get_s(item, "user")?,
                    case_id: Uuid::parse_str(&get_s(item, "case_id")?)
                        .map_err(|e| StoreError::Malformed(format!("case_id: {e}")))?,
                    question: get_s(item, "question")?,
                    reply: serde_json::from_str(&get_s(item, "reply")?)
                        .map_err(|e| StoreError::Malformed(format!("reply: {e}")))?,
                })
            })
            .collect()
    }
}

impl ChatStore for DynamoStore {
    fn session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Session>, StoreError>> {
        self.get_session(id).boxed()
    }

    fn put_session<'a>(&'a self, sess: &'a Session) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write_session(sess).boxed()
    }

    fn cached_intent<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Intent>, StoreError>> {
        self.get_intent(key).boxed()
    }

    fn cache_intent<'a>(
        &'a self,
        key: &'a str,
        intent: Intent,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write_intent(key, intent).boxed()
    }

    fn put_turn<'a>(&'a self, t: &'a Turn) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write_turn(t).boxed()
    }

    fn turns<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<Vec<Turn>, StoreError>> {
        self.read_turns(session_id).boxed()
    }
}
