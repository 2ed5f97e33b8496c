//! The model seam: a guard model that classifies a question and a main model that writes
//! a filter document. Two providers implement both: [`super::local`] (deterministic, the
//! default locally and in tests) and [`super::bedrock`] (Bedrock Converse with tool use).
//!
//! What crosses this seam is the question, the session's earlier questions, the caller's
//! now and zone, the kinds of events the case holds (event catalog entries and their
//! counts: our words, never the events' own) and (on a retry) the rejected output with the
//! validator's error. Never event contents, never the case id.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The guard's verdict on a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Asks for events: go on to the main model.
    Filter,
    /// About the timeline but too vague to filter: ask back.
    Clarification,
    /// Not about the case's events.
    OffTopic,
    /// Tries to make the system do something else (change its instructions, reach other
    /// cases, write SQL, change data).
    Injection,
}

impl Intent {
    /// Every verdict.
    pub const ALL: &'static [Intent] = &[
        Intent::Filter,
        Intent::Clarification,
        Intent::OffTopic,
        Intent::Injection,
    ];

    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Filter => "filter",
            Intent::Clarification => "clarification",
            Intent::OffTopic => "off_topic",
            Intent::Injection => "injection",
        }
    }

    /// Parses the stored string.
    pub fn parse(s: &str) -> Option<Intent> {
        Intent::ALL.iter().copied().find(|i| i.as_str() == s)
    }
}

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// No answer in time.
    #[error("the model did not answer in time; try again")]
    Timeout,
    /// The model service refused or failed.
    #[error("the model service failed: {0}")]
    Service(String),
    /// The answer is not what was asked for (no tool call, not JSON).
    #[error("the model's answer could not be read: {0}")]
    Malformed(String),
}

/// Classifies questions.
pub trait GuardModel: Send + Sync + Debug {
    /// The model id (part of the intent cache key).
    fn model_id(&self) -> &str;
    /// The verdict on `question`.
    fn classify<'a>(&'a self, question: &'a str) -> BoxFuture<'a, Result<Intent, ModelError>>;
}

/// What the main model is given.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPrompt {
    /// The question.
    pub question: String,
    /// Earlier questions of the session, oldest first (for follow-ups).
    pub earlier: Vec<String>,
    /// The caller's now.
    pub now: DateTime<Utc>,
    /// The caller's zone.
    pub tz: Tz,
    /// Set on the one retry: what the model wrote and why it was rejected.
    pub retry: Option<Rejected>,
    /// The kinds of events the case holds, most frequent first (only for models that ask
    /// for them, see [`FilterModel::wants_case_types`]).
    pub case_types: Vec<CaseEventType>,
}

/// A kind of event a case holds, in the event catalog's words: every text here comes from
/// the catalog (`runtime/catalog/`), none from the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseEventType {
    /// The `source` of its events (channel, program, service), as the catalog writes it.
    pub source: String,
    /// The `event_code` of its events, when the kind has one.
    pub code: Option<String>,
    /// The provider, for an id of a channel many providers share.
    pub provider: Option<String>,
    /// The catalog's title.
    pub title: String,
    /// The catalog's category.
    pub category: crate::vocab::Category,
    /// How many events of this kind the case holds.
    pub count: i64,
}

/// A rejected output and the validator's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// What the model wrote (its tool input), as JSON.
    pub output: Value,
    /// The validator's error, with the JSON path.
    pub error: String,
}

/// What the main model wrote. The filter is untrusted JSON until validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Generated {
    /// A candidate filter document.
    Filter(Value),
    /// A question back to the investigator.
    Clarify(String),
}

/// Writes filter documents.
pub trait FilterModel: Send + Sync + Debug {
    /// The model id.
    fn model_id(&self) -> &str;
    /// A filter document (or a clarifying question) for `prompt`.
    fn generate<'a>(
        &'a self,
        prompt: &'a FilterPrompt,
    ) -> BoxFuture<'a, Result<Generated, ModelError>>;
    /// Whether the model is told the kinds of events the case holds
    /// ([`FilterPrompt::case_types`]); the engine only looks them up for such models.
    fn wants_case_types(&self) -> bool {
        false
    }
}

/// Version of the prompts (guard and main); part of the intent cache key, so changing a
/// prompt never reuses verdicts of the old one.
pub const PROMPT_VERSION: &str = "2026-12-02.1";
