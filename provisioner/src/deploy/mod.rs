//! The deploy engine behind `chronoctl deploy`, `diff`, `onboard`, `destroy`, `status`,
//! `outputs` and `recover`: CloudFormation change sets, assets, the deploy lock.
//!
//! It works on a [`DeployPlan`] (stacks, dependencies, parameter sources, assets) and the
//! SDK clients of [`crate::aws::Clients`]; it never synthesizes templates itself.

pub mod app;
pub mod assets;
pub mod cfn;
pub mod decide;
pub mod destroy;
pub mod diff;
pub mod drift;
pub mod engine;
pub mod error;
pub mod guard;
pub mod hotswap;
pub mod image;
pub mod lock;
pub mod migrate;
pub mod onboard;
pub mod plan;
pub mod progress;
pub mod recover;
pub mod saved_plan;
pub mod service_roles;
pub mod status;
pub mod target;

pub use engine::{DeployOptions, DeployReport, Engine, StackOutcome, StackReport};
pub use error::{DeployError, RootCause};
pub use plan::{Asset, DeployPlan, ParamSource, PlannedStack};
