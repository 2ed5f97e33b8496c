//! `chrono-stacks`: the typed CloudFormation model and the five stacks of a ChronoTracer
//! customer account, as pure functions of a customer config.
//!
//! This crate owns data → templates. It must not do I/O beyond reading a config file
//! it is handed, and it must never depend on the AWS SDK.
//!
//! * [`config`]: the customer config (YAML) and its validation;
//! * [`model`]: templates, typed intrinsics, handles; [`resources`]: the resource types;
//! * [`bootstrap`], [`network`], [`data`], [`compute`], [`api`]: the stack builders;
//! * [`pipeline`]: the Step Functions definition of the evidence pipeline;
//! * [`bedrock`]: Bedrock model lifecycle facts (a data file), default ids and their IAM;
//! * [`synth`]: all stacks of one config, serialized, with the deploy manifest;
//! * [`preview`]: a developer preview's name and shape, derived from a customer config.
//!
//! `chronoctl local` provisions the emulator from the same values: [`data::build`] gives
//! the bucket and table definitions, [`pipeline::definition`] the state machine.

pub mod api;
pub mod bedrock;
pub mod bootstrap;
pub mod compute;
pub mod config;
pub mod data;
pub mod deploy_access;
pub mod model;
pub mod network;
pub mod pipeline;
pub mod preview;
pub mod reach;
pub mod replacement;
pub mod resources;
mod shared;
pub mod stack;
pub mod synth;
pub mod web;

pub use shared::TTL_ATTRIBUTE;

pub use config::{Config, Stage};
pub use stack::{Stack, StackKind};

use model::Policy;

/// Retention of stateful resources (buckets, tables, keys, repositories) for a stage.
pub(crate) fn data_policy(cfg: &Config) -> Policy {
    if cfg.stage == Stage::Prod {
        Policy::Retain
    } else {
        Policy::Delete
    }
}

/// Retention of the KMS key of the data stores: kept whenever anything it encrypts
/// outlives the stack — the retained buckets and tables, and the database's final
/// snapshot, which staging keeps while deleting its buckets (defect 9 of issue 13: a
/// snapshot whose key is deleted can never be restored).
/// [`model::Template::check_key_lifetimes`] checks every synthesized template for this.
pub(crate) fn key_policy(cfg: &Config) -> Policy {
    if [data_policy(cfg), database_policy(cfg)] == [Policy::Delete; 2] {
        Policy::Delete
    } else {
        Policy::Retain
    }
}

/// Retention of the database for a stage.
pub(crate) fn database_policy(cfg: &Config) -> Policy {
    match cfg.stage {
        Stage::Prod | Stage::Staging => Policy::Snapshot,
        Stage::Preview | Stage::Local => Policy::Delete,
    }
}
