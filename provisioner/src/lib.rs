//! `chrono-provisioner`: the library behind `chronoctl`.
//!
//! It owns everything that talks to the outside world on behalf of ops: writing
//! templates, policy checks, and CloudFormation deployments. The stack shapes
//! themselves live in `chrono-stacks`.

pub mod aws;
pub mod deploy;
