//! Developer previews: `chronoctl preview up|list|down|gc`.
//!
//! A preview is a customer config's stacks with the preview shape
//! ([`chrono_stacks::preview::derive`]), named after a git branch, deployed into the
//! developer's account with the deploy engine and tagged `chrono:preview=true`,
//! `chrono:owner` and `chrono:expires-at`. Everything after `up` works from the account
//! alone (stack tags and outputs): [`inventory`] reads it, [`down`] deletes a preview by
//! name and runs `gc`. The account-wide bootstrap (assets bucket, ECR repository, lock
//! table, API Gateway's logging role) is shared by every preview and never deleted by one.
//!
//! This module decides and orchestrates; it calls the engine through its public functions
//! and never synthesizes templates itself.

pub mod down;
pub mod inventory;
pub mod up;

use chrono_stacks::config::ConfigError;
use chrono_stacks::preview::NameError;

use crate::deploy::{DeployError, DeployReport};

/// Errors of the preview commands.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// The branch or NAME cannot name a preview.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The derived config breaks a rule.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The preview exists and belongs to someone else (or is not a chronoctl preview).
    #[error(
        "preview {name} already exists and belongs to {owner}; pick another NAME (`chronoctl preview up NAME`), or ask the owner to run `chronoctl preview down {name}`"
    )]
    Collision {
        /// The name.
        name: String,
        /// The owner (or what holds the name).
        owner: String,
    },
    /// The preview expired; `up` refuses until extended.
    #[error(
        "preview {name} expired at {expired_at}; extend it with `chronoctl preview up {name} --ttl 24h` (or delete it with `chronoctl preview down {name}`)"
    )]
    Expired {
        /// The name.
        name: String,
        /// Its `chrono:expires-at`.
        expired_at: String,
    },
    /// No preview of that name.
    #[error("no preview named {name} in this account and region (previews: {})", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    NotFound {
        /// The name asked for.
        name: String,
        /// The previews that exist.
        known: Vec<String>,
    },
    /// The plan could not be built (synthesis, build of the runtime).
    #[error("cannot build the plan of preview {name}: {reason}")]
    Plan {
        /// The preview.
        name: String,
        /// Cause.
        reason: String,
    },
    /// A deploy-engine error.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// Some stacks failed to deploy.
    #[error(
        "preview {name}: stacks failed ({stacks}); fix the cause and rerun `chronoctl preview up {name}`"
    )]
    DeployFailed {
        /// The preview.
        name: String,
        /// Failed stacks.
        stacks: String,
        /// The full report.
        report: Box<DeployReport>,
    },
}
