//! `chrono-runtime`: the API, pipeline and AI-filter handlers of ChronoTracer, with thin
//! entry points for Lambda, ECS and local processes.
//!
//! It must never know about CloudFormation; it reads its settings from the environment
//! its deployment gives it.

pub mod ai;
pub mod api;
pub mod auth;
pub mod build_info;
pub mod claims;
pub mod db;
pub mod filter;
pub mod knowledge;
pub mod launcher;
pub mod model;
pub mod names;
pub mod pipeline;
pub mod queue;
pub mod server;
pub mod storage;
pub mod synthetic;
pub mod vocab;
