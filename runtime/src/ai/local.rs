//! The `local` provider: a rule-based guard and the deterministic translator
//! ([`super::translate`]). No network, no model; the default locally and in tests.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::provider::{FilterModel, FilterPrompt, Generated, GuardModel, Intent, ModelError};
use super::translate::{Translation, translate};
use crate::filter::ResolveCtx;

/// Model id of the local guard (part of intent cache keys).
pub const LOCAL_GUARD_ID: &str = "local-guard-1";
/// Model id of the local translator.
pub const LOCAL_TRANSLATOR_ID: &str = "local-translator-1";

/// Phrases that try to change the system's instructions or role.
const OVERRIDES: &[&str] = &[
    "ignore previous",
    "ignore all previous",
    "ignore the previous",
    "ignore your",
    "ignore the above",
    "ignore all instructions",
    "ignore instructions",
    "disregard",
    "forget your instructions",
    "forget all",
    "new instructions",
    "system prompt",
    "your instructions",
    "your prompt",
    "you are now",
    "act as",
    "pretend to be",
    "pretend you",
    "jailbreak",
    "developer mode",
    "override",
    "as an admin",
    "i am an admin",
    "i am the administrator of this system",
];

/// Asking for SQL or database access.
const SQL: &[&str] = &[
    " sql",
    "sql ",
    "select *",
    "select * from",
    "drop table",
    "delete from",
    "insert into",
    "truncate",
    "union select",
    "pg_",
    "information_schema",
    "database query",
    "raw query",
    "--",
];

/// Reaching beyond the session's case.
const OTHER_CASES: &[&str] = &[
    "other case",
    "another case",
    "all cases",
    "every case",
    "other cases",
    "other customer",
    "other tenant",
    "different case",
    "case id",
    "case_id",
    "cross-case",
    "across cases",
];

/// Asking to change data.
const WRITES: &[&str] = &[
    "delete the events",
    "delete all events",
    "delete these events",
    "delete events",
    "remove the events",
    "remove all events",
    "wipe",
    "erase",
    "modify the events",
    "update the events",
    "change the events",
    "delete the evidence",
    "delete the case",
    "delete this case",
    "drop the",
    "label all",
    "tag all",
];

const OFF_TOPIC: &[&str] = &[
    "weather",
    "joke",
    "poem",
    "recipe",
    "song",
    "story",
    "capital of",
    "translate",
    "stock",
    "football",
    "movie",
    "write code",
    "python",
    "javascript",
];

/// The rule-based guard.
#[derive(Debug, Clone, Default)]
pub struct LocalGuard;

impl LocalGuard {
    /// The verdict, synchronously.
    pub fn verdict(question: &str) -> Intent {
        let q = question.to_lowercase();
        let has = |list: &[&str]| list.iter().any(|p| q.contains(p));
        if has(OVERRIDES) || has(SQL) || has(OTHER_CASES) || has(WRITES) {
            return Intent::Injection;
        }
        // Anything the translator can place is a filter request.
        let ctx = ResolveCtx::utc(chrono::Utc::now());
        match translate(question, &ctx) {
            // "the weather today": a time alone does not make an off-topic question a filter
            Translation::Filter(doc) if doc.condition.is_none() && has(OFF_TOPIC) => {
                Intent::OffTopic
            }
            Translation::Filter(_) => Intent::Filter,
            Translation::Clarify(_) if has(OFF_TOPIC) => Intent::OffTopic,
            Translation::Clarify(_) => {
                let words = q.split_whitespace().count();
                let about_events = [
                    "event",
                    "log",
                    "happen",
                    "activity",
                    "suspicious",
                    "attack",
                    "user",
                    "host",
                    "timeline",
                    "evidence",
                    "malware",
                    "lateral",
                ]
                .iter()
                .any(|w| q.contains(w));
                if about_events || words <= 4 {
                    Intent::Clarification
                } else {
                    Intent::OffTopic
                }
            }
        }
    }
}

impl GuardModel for LocalGuard {
    fn model_id(&self) -> &str {
        LOCAL_GUARD_ID
    }

    fn classify<'a>(&'a self, question: &'a str) -> BoxFuture<'a, Result<Intent, ModelError>> {
        futures::future::ready(Ok(LocalGuard::verdict(question))).boxed()
    }
}

/// The deterministic translator as a main model.
#[derive(Debug, Clone, Default)]
pub struct LocalTranslator;

impl FilterModel for LocalTranslator {
    fn model_id(&self) -> &str {
        LOCAL_TRANSLATOR_ID
    }

    fn generate<'a>(
        &'a self,
        prompt: &'a FilterPrompt,
    ) -> BoxFuture<'a, Result<Generated, ModelError>> {
        let ctx = ResolveCtx {
            now: prompt.now,
            tz: prompt.tz,
        };
        let out = match translate(&prompt.question, &ctx) {
            Translation::Filter(doc) => serde_json::to_value(doc)
                .map(Generated::Filter)
                .map_err(|e| ModelError::Malformed(e.to_string())),
            Translation::Clarify(q) => Ok(Generated::Clarify(q)),
        };
        futures::future::ready(out).boxed()
    }
}
