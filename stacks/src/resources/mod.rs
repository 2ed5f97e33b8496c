//! The CloudFormation resource types ChronoTracer uses, with only the properties we set.
//!
//! Each struct implements [`crate::model::Resource`]; attribute accessors (`Fn::GetAtt`)
//! live on `Handle<T>` so only attributes that exist can be referenced. Notes on which
//! property changes replace a resource are on the fields where it matters.

pub mod api;
pub mod compute;
pub mod database;
pub mod iam;
pub mod network;
pub mod storage;
pub mod web;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::Expr;

/// A `{Key, Value}` tag, the form most resource types take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// Tags as a list of `{Key, Value}`.
pub type Tags = Vec<Tag>;

/// Tags as a map (API Gateway v2 takes this form).
pub type TagMap = BTreeMap<String, String>;

/// A list of values referencing something (subnets, security groups, ...).
pub type Exprs = Vec<Expr>;
