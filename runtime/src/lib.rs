//! `chrono-runtime`: the API, pipeline and AI-filter handlers of ChronoTracer, with thin
//! entry points for Lambda, ECS and local processes.
//!
//! It must never know about CloudFormation; it reads its settings from the environment
//! its deployment gives it.

pub mod filter;
pub mod vocab;
