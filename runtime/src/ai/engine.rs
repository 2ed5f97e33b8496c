//! The one handler behind both front doors: a question in, a reply out.
//!
//! Order of work for one question (see the module docs of [`super`]): access check on
//! the case (from the authenticated principal, never from the model) → session → guard
//! verdict (intent cache first) → main model → validation (one retry with the error) →
//! name resolution and count (read-only) → turn stored and audited. Everything a model
//! writes is untrusted JSON until [`FilterDocument::from_value`] accepts it.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::catalog::{CatalogError, PgCatalog, Resolution};
use super::provider::{
    CaseEventType, FilterModel, FilterPrompt, Generated, GuardModel, Intent, Rejected,
};
use super::store::{
    ChatStore, RECENT_QUESTIONS, SESSION_TTL_SECS, Session, StoreError, Turn, intent_key,
};
use super::summary::{summarize, with_names};
use crate::auth::Principal;
use crate::filter::{FilterDocument, ResolveCtx};

/// Longest question accepted, in characters.
pub const MAX_QUESTION_CHARS: usize = 2000;

/// A character a question may not hold: NUL and every other control character except
/// line breaks and tabs.
fn unfit_in_question(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t')
}

/// A question, as both front doors receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The case the question is about (checked against the caller's access).
    pub case_id: Uuid,
    /// The session to continue; absent (or unknown, expired, someone else's) = a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The question.
    pub question: String,
    /// The client's IANA time zone (`Europe/Berlin`); default: the session's, else UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

/// What kind of reply this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    /// A validated filter, its summary and its count.
    Filter,
    /// A question back.
    Clarification,
    /// The question was declined (off topic, or trying to make the system do something
    /// else).
    Refusal,
    /// The model could not produce a valid filter, even after one retry.
    NoFilter,
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatReply {
    /// The session (send it back to continue).
    pub session_id: String,
    /// What kind of reply.
    pub kind: ReplyKind,
    /// A short answer for the investigator.
    pub message: String,
    /// The filter (names already resolved to ids where found), runnable through the
    /// search API: a filter document (JSON Schema at /api/v1/filter.schema.json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<FilterDocument>,
    /// One line describing the filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// How many events of the case match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Names looked up, and what they matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<Resolution>,
}

/// Why a question could not be answered at all.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such case, or not the caller's (the same answer on purpose).
    #[error("case not found")]
    CaseNotFound,
    /// The caller's roles do not allow reading cases.
    #[error("your roles do not allow this; it needs the `analyst` role")]
    Forbidden,
    /// A model did not answer (timeout, service failure): worth retrying.
    #[error("{0}")]
    ModelUnavailable(String),
    /// Session storage failed: worth retrying.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] CatalogError),
}

impl ChatError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ChatError::ModelUnavailable(_) | ChatError::Store(_) | ChatError::Database(_)
        )
    }
}

/// The clock (tests pin it).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How long the kinds of events of a case are reused before they are looked up again.
const CASE_TYPES_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Cases whose kinds of events are remembered at once.
const CASE_TYPES_CACHED: usize = 256;

/// Recently looked-up kinds of events per case.
type CaseTypesCache = Arc<std::sync::Mutex<HashMap<Uuid, (Instant, Vec<CaseEventType>)>>>;

/// The chat handler and everything it talks to.
#[derive(Clone)]
pub struct ChatService {
    guard: Arc<dyn GuardModel>,
    main: Arc<dyn FilterModel>,
    store: Arc<dyn ChatStore>,
    catalog: PgCatalog,
    clock: Clock,
    case_types: CaseTypesCache,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService")
            .field("guard", &self.guard.model_id())
            .field("main", &self.main.model_id())
            .field("store", &self.store)
            .finish()
    }
}

const REFUSE_INJECTION: &str = "I can only turn questions about this case's events into \
    filters. I cannot change my instructions, reach other cases, run SQL or change data.";
const REFUSE_OFF_TOPIC: &str = "I can only help with questions about this case's events, \
    e.g. \"failed logons for bob yesterday\".";
const ASK_MORE: &str = "Could you be more specific? Name an action (failed logons, process \
    starts, accounts created…), a user, a host, an IP address or a time.";
const NO_FILTER: &str = "I could not build a filter for that question. Try naming the \
    action, user, host or time you are looking for.";

impl ChatService {
    /// A service over these models, store and database.
    pub fn new(
        guard: Arc<dyn GuardModel>,
        main: Arc<dyn FilterModel>,
        store: Arc<dyn ChatStore>,
        catalog: PgCatalog,
    ) -> Self {
        ChatService {
            guard,
            main,
            store,
            catalog,
            clock: Arc::new(Utc::now),
            case_types: Arc::default(),
        }
    }

    /// The same service with a fixed clock (tests, evaluation).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The session store.
    pub fn store(&self) -> &Arc<dyn ChatStore> {
        &self.store
    }

    /// Answers one question of `principal`.
    pub async fn handle(
        &self,
        principal: &Principal,
        req: ChatRequest,
    ) -> Result<ChatReply, ChatError> {
        let started = Instant::now();
        let now = (self.clock)();
        let question = req.question.trim().to_string();
        if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
            return Err(ChatError::BadRequest(format!(
                "the question must be 1 to {MAX_QUESTION_CHARS} characters"
            )));
        }
        // NUL cannot be stored (PostgreSQL text, the audit log) and no control character
        // belongs in a question typed by a person; refused before anything is recorded.
        if question.chars().any(unfit_in_question) {
            return Err(ChatError::BadRequest(
                "the question contains a NUL or another control character; send plain text".into(),
            ));
        }
        if !principal.can_read() {
            return Err(ChatError::Forbidden);
        }
        // Case scope: the request names the case, the principal's grants decide.
        let owner = self.catalog.case_owner(req.case_id).await?;
        match owner {
            Some(owner) if principal.may_access(req.case_id, &owner) => {}
            _ => return Err(ChatError::CaseNotFound),
        }

        let mut session = self.session(principal, &req).await?;
        let tz = Tz::from_str(&session.tz).map_err(|_| {
            ChatError::BadRequest(format!(
                "unknown time zone `{}`; send an IANA name like Europe/Berlin",
                session.tz.chars().take(64).collect::<String>()
            ))
        })?;

        let (intent, cached) = self.verdict(&question).await?;

        let ctx = ResolveCtx { now, tz };
        let mut reply = ChatReply {
            session_id: session.id.clone(),
            kind: ReplyKind::Refusal,
            message: String::new(),
            filter: None,
            summary: None,
            count: None,
            resolved: Vec::new(),
        };
        let mut attempts = 0;
        match intent {
            Intent::Injection => reply.message = REFUSE_INJECTION.into(),
            Intent::OffTopic => reply.message = REFUSE_OFF_TOPIC.into(),
            Intent::Clarification => {
                reply.kind = ReplyKind::Clarification;
                reply.message = ASK_MORE.into();
            }
            Intent::Filter => {
                let case_types = if self.main.wants_case_types() {
                    self.case_types(req.case_id).await?
                } else {
                    Vec::new()
                };
                let mut prompt = FilterPrompt {
                    question: question.clone(),
                    earlier: session.recent.clone(),
                    now,
                    tz,
                    retry: None,
                    case_types,
                };
                let outcome = loop {
                    attempts += 1;
                    let generated = match self.main.generate(&prompt).await {
                        Ok(g) => g,
                        Err(super::provider::ModelError::Malformed(m)) => {
                            Generated::Filter(json!({ "unreadable": m }))
                        }
                        Err(e) => return Err(ChatError::ModelUnavailable(e.to_string())),
                    };
                    match generated {
                        Generated::Clarify(q) => break Err(Some(q)),
                        Generated::Filter(value) => {
                            match FilterDocument::from_value(value.clone()) {
                                Ok(doc) => break Ok(doc),
                                Err(e) if attempts < 2 => {
                                    tracing::info!(error = %e, "model filter rejected; retrying once");
                                    prompt.retry = Some(Rejected {
                                        output: value,
                                        error: e.to_string(),
                                    });
                                }
                                Err(e) => {
                                    tracing::info!(error = %e, "model filter rejected twice");
                                    break Err(None);
                                }
                            }
                        }
                    }
                };
                match outcome {
                    Ok(mut doc) => {
                        let line = summarize(&doc);
                        reply.resolved = self.catalog.resolve(req.case_id, &mut doc).await?;
                        reply.summary = Some(with_names(line, &reply.resolved));
                        let count = self.catalog.count(req.case_id, &doc, &ctx).await?;
                        reply.kind = ReplyKind::Filter;
                        reply.message = format!(
                            "{count} matching event{}: {}",
                            if count == 1 { "" } else { "s" },
                            reply.summary.as_deref().unwrap_or_default()
                        );
                        reply.count = Some(count);
                        reply.filter = Some(doc);
                    }
                    Err(Some(q)) => {
                        reply.kind = ReplyKind::Clarification;
                        reply.message = q;
                    }
                    Err(None) => {
                        reply.kind = ReplyKind::NoFilter;
                        reply.message = NO_FILTER.into();
                    }
                }
            }
        }

        // Remember the question, store the turn, audit it.
        session.recent.push(question.clone());
        let excess = session.recent.len().saturating_sub(RECENT_QUESTIONS);
        session.recent.drain(..excess);
        // TTLs follow the wall clock, not the (pinnable) question clock.
        session.expires_at = Utc::now().timestamp() + SESSION_TTL_SECS;
        self.store.put_session(&session).await?;
        let reply_json = serde_json::to_value(&reply).unwrap_or(Value::Null);
        self.store
            .put_turn(&Turn {
                session_id: session.id.clone(),
                // when it was asked (wall clock; `now` may be pinned for time resolution)
                at: Utc::now(),
                user: principal.sub.clone(),
                case_id: req.case_id,
                question: question.clone(),
                reply: reply_json.clone(),
            })
            .await?;
        let detail = json!({
            "session_id": session.id,
            "question": question,
            "intent": intent.as_str(),
            "kind": reply.kind,
            "filter": reply.filter,
            "count": reply.count,
            "guard_model": self.guard.model_id(),
            "main_model": self.main.model_id(),
        });
        self.catalog
            .audit(&principal.sub, req.case_id, &detail)
            .await?;
        tracing::info!(
            target: "chrono::ai",
            user = %principal.sub,
            case_id = %req.case_id,
            session_id = %session.id,
            intent = intent.as_str(),
            intent_cached = cached,
            attempts,
            kind = ?reply.kind,
            count = reply.count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ai chat turn"
        );
        Ok(reply)
    }

    /// The guard's verdict on `question`, from the intent cache when it holds one (then no
    /// guard call is made); the `bool` says whether it came from the cache.
    pub async fn verdict(&self, question: &str) -> Result<(Intent, bool), ChatError> {
        let key = intent_key(question, self.guard.model_id());
        match self.store.cached_intent(&key).await {
            Ok(Some(i)) => return Ok((i, true)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "intent cache read failed; asking the guard"),
        }
        let i = self
            .guard
            .classify(question)
            .await
            .map_err(|e| ChatError::ModelUnavailable(e.to_string()))?;
        if let Err(e) = self.store.cache_intent(&key, i).await {
            tracing::warn!(error = %e, "intent cache write failed");
        }
        Ok((i, false))
    }

    /// The kinds of events case `case_id` holds (catalog words only), from a short-lived
    /// cache or the database.
    async fn case_types(&self, case_id: Uuid) -> Result<Vec<CaseEventType>, ChatError> {
        if let Ok(cache) = self.case_types.lock()
            && let Some((at, types)) = cache.get(&case_id)
            && at.elapsed() < CASE_TYPES_TTL
        {
            return Ok(types.clone());
        }
        let types = self.catalog.event_types(case_id).await?;
        if let Ok(mut cache) = self.case_types.lock() {
            if cache.len() >= CASE_TYPES_CACHED {
                cache.retain(|_, (at, _)| at.elapsed() < CASE_TYPES_TTL);
                if cache.len() >= CASE_TYPES_CACHED {
                    cache.clear();
                }
            }
            cache.insert(case_id, (Instant::now(), types.clone()));
        }
        Ok(types)
    }

    /// The caller's session for this request: the named one if it is live, theirs and on
    /// this case; otherwise a new one.
    async fn session(
        &self,
        principal: &Principal,
        req: &ChatRequest,
    ) -> Result<Session, ChatError> {
        if let Some(id) = &req.session_id
            && id.len() <= 64
        {
            match self.store.session(id).await {
                Ok(Some(mut s)) if s.user == principal.sub && s.case_id == req.case_id => {
                    if let Some(tz) = &req.tz {
                        s.tz = tz.clone();
                    }
                    return Ok(s);
                }
                Ok(_) => {}
                Err(StoreError::Malformed(m)) => {
                    tracing::warn!(error = %m, "malformed session replaced")
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Session {
            id: Uuid::new_v4().to_string(),
            user: principal.sub.clone(),
            case_id: req.case_id,
            tz: req.tz.clone().unwrap_or_else(|| "UTC".into()),
            recent: Vec::new(),
            expires_at: Utc::now().timestamp() + SESSION_TTL_SECS,
        })
    }
}
