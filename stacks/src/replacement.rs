//! Which stateful resource types we deploy, and which property changes make
//! CloudFormation replace them (a new resource, the old one and its data deleted).
//!
//! The facts are data, in `stacks/data/replacement.yaml` (with their source and the date
//! they were read), embedded at build time. The deploy engine's data guard compares the
//! deployed template with the new one through [`Rules::change`]; the typed resources of
//! [`crate::resources`] name the types (a test checks every stateful type of the model has
//! an entry).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// The embedded data file.
pub const DATA: &str = include_str!("../data/replacement.yaml");

/// What replaces resources of one type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeRule {
    /// The CloudFormation reference page of the type.
    pub doc: String,
    /// What data it holds (for messages).
    pub holds: String,
    /// Top-level properties whose change always replaces the resource.
    pub replaces: Vec<String>,
    /// Top-level properties whose change replaces it in some cases.
    pub may_replace: Vec<String>,
}

/// The whole data file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Layout version (1).
    pub format: u32,
    /// When the facts were read from the source.
    pub retrieved: String,
    /// Stateful types and their rules.
    pub types: BTreeMap<String, TypeRule>,
}

/// How a change treats one stateful resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Its logical id is gone from the new template.
    Removed,
    /// Same logical id, another type: a new resource.
    TypeChanged {
        /// The new type.
        to: String,
    },
    /// Properties that replace it changed.
    Replaced {
        /// Those properties (always replacing first, then the conditional ones).
        properties: Vec<String>,
        /// Whether only conditionally replacing properties changed.
        conditional: bool,
    },
}

/// Errors reading the embedded data (a broken build, never user input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stacks/data/replacement.yaml is unreadable ({0}); the data guard refuses every change")]
pub struct DataError(pub String);

/// The rules, parsed once.
pub fn rules() -> Result<&'static Rules, DataError> {
    static RULES: OnceLock<Result<Rules, DataError>> = OnceLock::new();
    RULES
        .get_or_init(|| {
            let r: Rules = serde_yaml::from_str(DATA).map_err(|e| DataError(e.to_string()))?;
            if r.format != 1 {
                return Err(DataError(format!("format {} (expected 1)", r.format)));
            }
            Ok(r)
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Rules {
    /// Whether resources of this type hold data.
    pub fn is_stateful(&self, resource_type: &str) -> bool {
        self.types.contains_key(resource_type)
    }

    /// What changing a stateful resource from `old` to `new` (each a template's resource
    /// object: `Type`, `Properties`, ...; `None` when absent) does to it; `None` when it
    /// survives (or is not stateful). Property values are compared as written, after the
    /// caller resolved what it can (parameters), so a property that reads a changed
    /// parameter counts as changed.
    pub fn change(
        &self,
        old: &serde_json::Value,
        new: Option<&serde_json::Value>,
    ) -> Option<Change> {
        let old_type = old.get("Type")?.as_str()?;
        let rule = self.types.get(old_type)?;
        let Some(new) = new else {
            return Some(Change::Removed);
        };
        let new_type = new.get("Type").and_then(|t| t.as_str()).unwrap_or("");
        if new_type != old_type {
            return Some(Change::TypeChanged {
                to: new_type.to_owned(),
            });
        }
        let prop = |v: &'_ serde_json::Value, p: &str| {
            v.get("Properties").and_then(|ps| ps.get(p)).cloned()
        };
        let differs = |p: &&String| prop(old, p) != prop(new, p);
        let mut properties: Vec<String> = rule.replaces.iter().filter(differs).cloned().collect();
        let conditional = properties.is_empty();
        properties.extend(rule.may_replace.iter().filter(differs).cloned());
        if properties.is_empty() {
            return None;
        }
        Some(Change::Replaced {
            properties,
            conditional,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Resource;
    use crate::resources::compute::LogGroup;
    use crate::resources::database::{DbCluster, DbInstance};
    use crate::resources::storage::{Bucket, Key as KmsKey, Table};

    #[test]
    fn the_data_file_covers_every_stateful_type_of_the_model() {
        let r = rules().unwrap();
        for ty in [
            Bucket::TYPE,
            Table::TYPE,
            DbCluster::TYPE,
            DbInstance::TYPE,
            KmsKey::TYPE,
            LogGroup::TYPE,
        ] {
            let rule = &r.types[ty];
            assert!(rule.doc.starts_with("https://docs.aws.amazon.com/"), "{ty}");
        }
        assert_eq!(
            r.types.len(),
            6,
            "a type without a model struct: {:?}",
            r.types.keys()
        );
        assert_eq!(r.retrieved, "2026-12-02");
    }

    #[test]
    fn a_renamed_bucket_is_replaced_whatever_else_is_equal() {
        let r = rules().unwrap();
        let old = json!({"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "a", "Tags": []}});
        let renamed =
            json!({"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "b", "Tags": []}});
        assert_eq!(
            r.change(&old, Some(&renamed)),
            Some(Change::Replaced {
                properties: vec!["BucketName".into()],
                conditional: false
            })
        );
        // a name appearing where there was none (CloudFormation named it) replaces too
        let unnamed = json!({"Type": "AWS::S3::Bucket", "Properties": {"Tags": []}});
        assert!(r.change(&unnamed, Some(&renamed)).is_some());
        let retagged = json!({"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "a", "Tags": [{"Key": "x"}]}});
        assert_eq!(r.change(&old, Some(&retagged)), None);
        assert_eq!(r.change(&old, None), Some(Change::Removed));
        let other = json!({"Type": "AWS::S3Express::DirectoryBucket"});
        assert!(matches!(
            r.change(&old, Some(&other)),
            Some(Change::TypeChanged { .. })
        ));
        // not stateful: never a data change
        let vpc = json!({"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}});
        assert_eq!(r.change(&vpc, None), None);
    }

    #[test]
    fn conditional_replacement_is_reported_as_such() {
        let r = rules().unwrap();
        let old = json!({"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "t", "KeySchema": [{"AttributeName": "pk"}]}});
        let new = json!({"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "t", "KeySchema": [{"AttributeName": "id"}]}});
        assert_eq!(
            r.change(&old, Some(&new)),
            Some(Change::Replaced {
                properties: vec!["KeySchema".into()],
                conditional: true
            })
        );
    }
}
