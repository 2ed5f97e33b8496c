//! filter-ai: plain language → a validated event filter, safe by construction.
//!
//! One handler ([`engine::ChatService`]) behind two front doors ([`http`]: the WebSocket
//! service and `POST /api/v1/ai/chat`; [`gateway`]: API Gateway's WebSocket API, whose
//! `$connect` is guarded by the Lambda REQUEST [`authorizer`]). The flow per question: session (DynamoDB
//! `sessions`) → guard model verdict (cached in `intent_cache`) → main model writes a
//! filter document → the filter module's validator (one retry with the error) → names
//! resolved to ids and the matching count taken with read-only queries → turn stored in
//! `conversations` and the audit log.
//!
//! Providers ([`provider`]): `local` ([`local`], the deterministic [`translate`]r, default
//! locally and in tests) and `bedrock` ([`bedrock`], Converse with tool use).
//!
//! What this module must never do: show a model event contents, take the case scope from
//! anything but the authenticated caller, or run anything a model wrote as SQL.

pub mod authorizer;
pub mod bedrock;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod gateway;
pub mod http;
pub mod local;
pub mod provider;
pub mod store;
pub mod summary;
pub mod translate;

mod matching;
mod timeexpr;
mod words;

pub use engine::{ChatError, ChatReply, ChatRequest, ChatService, ReplyKind};
