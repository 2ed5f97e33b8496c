//! The typed CloudFormation template model.
//!
//! A [`Template`] holds parameters, conditions, resources and outputs in ordered maps, so
//! serialization is deterministic. Resources are structs implementing [`Resource`] (with
//! their CloudFormation type as `const TYPE`); adding one returns a typed [`Handle`] used
//! to reference it (`Ref`, `Fn::GetAtt`), so a reference to a resource that does not exist
//! cannot be written. A duplicate logical id is an [`Err`], never a panic.
//!
//! This module knows nothing about ChronoTracer: the stacks are in the stack modules.

pub mod expr;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde_json::{Map, Value};

pub use expr::{Expr, Pseudo};

/// CloudFormation service quotas checked at synth time.
pub mod limits {
    /// Resources per template.
    pub const MAX_RESOURCES: usize = 500;
    /// Parameters per template.
    pub const MAX_PARAMETERS: usize = 200;
    /// Outputs per template.
    pub const MAX_OUTPUTS: usize = 200;
    /// Largest body accepted inline (`TemplateBody`); larger ones go through the assets bucket.
    pub const MAX_INLINE_BYTES: usize = chrono_contract::limits::MAX_INLINE_TEMPLATE_BYTES;
    /// Largest body accepted from S3 (`TemplateURL`): 1 MB.
    pub const MAX_S3_BYTES: usize = 1_000_000;
}

/// Errors of the template model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    /// A logical id was used twice in one template.
    #[error(
        "duplicate logical id `{0}` in template; give each resource, parameter, condition and output a unique id"
    )]
    DuplicateLogicalId(String),
    /// A logical id does not match CloudFormation's rules.
    #[error("invalid logical id `{0}`: use 1-255 ASCII letters and digits")]
    InvalidLogicalId(String),
    /// A resource's properties could not be turned into JSON.
    #[error("resource `{id}` cannot be serialized: {reason}")]
    Serialize {
        /// Logical id.
        id: String,
        /// serde's message.
        reason: String,
    },
    /// A template exceeds a CloudFormation limit.
    #[error("template has {count} {what}, CloudFormation allows at most {max}; split the stack")]
    LimitExceeded {
        /// What was counted (resources, parameters, outputs).
        what: &'static str,
        /// How many the template has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A template body is larger than CloudFormation accepts even from S3.
    #[error(
        "template body is {bytes} bytes, CloudFormation accepts at most {max} bytes even from S3; split the stack"
    )]
    BodyTooLarge {
        /// Body size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A resource outlives its stack (or its replacement) while the KMS key it is
    /// encrypted with does not.
    #[error(
        "`{resource}` is kept ({policy}) when deleted or replaced, but the KMS key `{key}` it is encrypted with is not: the kept data could never be read again once the key is gone; give `{key}` DeletionPolicy and UpdateReplacePolicy Retain"
    )]
    KeyDeletedBeforeData {
        /// The kept resource.
        resource: String,
        /// `Retain` or `Snapshot`.
        policy: &'static str,
        /// The key's logical id.
        key: String,
    },
}

/// A CloudFormation resource type we model.
pub trait Resource: Serialize {
    /// The CloudFormation type, e.g. `AWS::S3::Bucket`.
    const TYPE: &'static str;
}

/// A typed reference to a resource of type `R` in the same template.
pub struct Handle<R> {
    id: String,
    _type: PhantomData<fn() -> R>,
}

impl<R> Handle<R> {
    /// The logical id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `Ref` of the resource (its physical id; what it is depends on the type).
    pub fn r#ref(&self) -> Expr {
        Expr::Ref(self.id.clone())
    }

    /// `Fn::GetAtt`; only called by the typed attribute accessors of each resource.
    pub(crate) fn get_att(&self, attr: &str) -> Expr {
        Expr::GetAtt(self.id.clone(), attr.to_owned())
    }
}

impl<R> Clone for Handle<R> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            _type: PhantomData,
        }
    }
}

impl<R: Resource> fmt::Debug for Handle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle<{}>({})", R::TYPE, self.id)
    }
}

/// A handle to a template parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHandle {
    id: String,
}

impl ParamHandle {
    /// The parameter name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `Ref` of the parameter.
    pub fn r#ref(&self) -> Expr {
        Expr::Ref(self.id.clone())
    }
}

/// A handle to a named condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionHandle {
    id: String,
}

impl ConditionHandle {
    /// The condition name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `Fn::If [condition, then, else]`.
    pub fn if_(&self, then: Expr, otherwise: Expr) -> Expr {
        Expr::If(self.id.clone(), Box::new(then), Box::new(otherwise))
    }
}

/// A template parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    /// CloudFormation parameter type (`String`, `List<AWS::EC2::Subnet::Id>`, ...).
    #[serde(rename = "Type")]
    pub kind: String,
    /// What the parameter is for.
    pub description: String,
    /// Default value, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Allowed pattern, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_pattern: Option<String>,
}

impl Parameter {
    /// A `String` parameter.
    pub fn string(description: impl Into<String>) -> Self {
        Self::of_type("String", description)
    }

    /// A parameter of the given CloudFormation type.
    pub fn of_type(kind: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            description: description.into(),
            default: None,
            allowed_pattern: None,
        }
    }

    /// Set an allowed pattern.
    #[must_use]
    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.allowed_pattern = Some(pattern.into());
        self
    }
}

/// A template output.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    /// What the output is.
    pub description: String,
    /// Its value.
    pub value: Expr,
}

/// `DeletionPolicy` / `UpdateReplacePolicy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Policy {
    /// Delete the resource.
    Delete,
    /// Keep the resource outside the stack.
    Retain,
    /// Snapshot, then delete (databases, volumes).
    Snapshot,
}

impl Policy {
    /// The name CloudFormation uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "Delete",
            Self::Retain => "Retain",
            Self::Snapshot => "Snapshot",
        }
    }
}

/// Resource attributes other than its properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `DeletionPolicy`.
    pub deletion_policy: Option<Policy>,
    /// `UpdateReplacePolicy`.
    pub update_replace_policy: Option<Policy>,
    /// `DependsOn` (logical ids, see [`Handle::id`]).
    pub depends_on: Vec<String>,
    /// `Condition`.
    pub condition: Option<String>,
}

impl Attributes {
    /// The same policy for deletion and replacement.
    pub fn retention(policy: Policy) -> Self {
        Self {
            deletion_policy: Some(policy),
            update_replace_policy: Some(policy),
            ..Self::default()
        }
    }

    /// Add a `DependsOn`.
    #[must_use]
    pub fn depends_on<R>(mut self, on: &Handle<R>) -> Self {
        self.depends_on.push(on.id().to_owned());
        self
    }
}

/// One resource as stored in a template.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceEntry {
    /// CloudFormation type.
    pub kind: &'static str,
    /// Properties as JSON.
    pub properties: Value,
    /// Other attributes.
    pub attributes: Attributes,
}

/// A CloudFormation template.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    description: String,
    parameters: BTreeMap<String, Parameter>,
    conditions: BTreeMap<String, Expr>,
    resources: BTreeMap<String, ResourceEntry>,
    outputs: BTreeMap<String, Output>,
}

fn check_id(id: &str) -> Result<(), ModelError> {
    if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ModelError::InvalidLogicalId(id.to_owned()));
    }
    Ok(())
}

impl Template {
    /// An empty template.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            ..Self::default()
        }
    }

    fn ensure_free(&self, id: &str) -> Result<(), ModelError> {
        check_id(id)?;
        if self.parameters.contains_key(id)
            || self.conditions.contains_key(id)
            || self.resources.contains_key(id)
            || self.outputs.contains_key(id)
        {
            return Err(ModelError::DuplicateLogicalId(id.to_owned()));
        }
        Ok(())
    }

    /// Add a resource with default attributes.
    pub fn add<R: Resource>(&mut self, id: &str, resource: R) -> Result<Handle<R>, ModelError> {
        self.add_with(id, resource, Attributes::default())
    }

    /// Add a resource with attributes (`DeletionPolicy`, `DependsOn`, ...).
    pub fn add_with<R: Resource>(
        &mut self,
        id: &str,
        resource: R,
        attributes: Attributes,
    ) -> Result<Handle<R>, ModelError> {
        self.ensure_free(id)?;
        let properties = serde_json::to_value(&resource).map_err(|e| ModelError::Serialize {
            id: id.to_owned(),
            reason: e.to_string(),
        })?;
        self.resources.insert(
            id.to_owned(),
            ResourceEntry {
                kind: R::TYPE,
                properties,
                attributes,
            },
        );
        Ok(Handle {
            id: id.to_owned(),
            _type: PhantomData,
        })
    }

    /// Add a parameter.
    pub fn parameter(&mut self, id: &str, parameter: Parameter) -> Result<ParamHandle, ModelError> {
        self.ensure_free(id)?;
        self.parameters.insert(id.to_owned(), parameter);
        Ok(ParamHandle { id: id.to_owned() })
    }

    /// Add a named condition (an `Fn::Equals`/... expression).
    pub fn condition(&mut self, id: &str, condition: Expr) -> Result<ConditionHandle, ModelError> {
        self.ensure_free(id)?;
        self.conditions.insert(id.to_owned(), condition);
        Ok(ConditionHandle { id: id.to_owned() })
    }

    /// Add an output.
    pub fn output(&mut self, id: &str, description: &str, value: Expr) -> Result<(), ModelError> {
        self.ensure_free(id)?;
        self.outputs.insert(
            id.to_owned(),
            Output {
                description: description.to_owned(),
                value,
            },
        );
        Ok(())
    }

    /// The resources, by logical id.
    pub fn resources(&self) -> &BTreeMap<String, ResourceEntry> {
        &self.resources
    }

    /// The parameters, by name.
    pub fn parameters(&self) -> &BTreeMap<String, Parameter> {
        &self.parameters
    }

    /// The outputs, by name.
    pub fn outputs(&self) -> &BTreeMap<String, Output> {
        &self.outputs
    }

    /// The resources of one type.
    pub fn resources_of<R: Resource>(&self) -> impl Iterator<Item = (&str, &ResourceEntry)> {
        self.resources
            .iter()
            .filter(|(_, r)| r.kind == R::TYPE)
            .map(|(id, r)| (id.as_str(), r))
    }

    /// Check the count limits (resources, parameters, outputs).
    pub fn check_limits(&self) -> Result<(), ModelError> {
        for (what, count, max) in [
            ("resources", self.resources.len(), limits::MAX_RESOURCES),
            ("parameters", self.parameters.len(), limits::MAX_PARAMETERS),
            ("outputs", self.outputs.len(), limits::MAX_OUTPUTS),
        ] {
            if count > max {
                return Err(ModelError::LimitExceeded { what, count, max });
            }
        }
        Ok(())
    }

    /// Every KMS key that encrypts something kept beyond the stack (a `Retain`ed bucket
    /// or table, a database's final `Snapshot`, on deletion or on replacement) is kept
    /// too: data encrypted under a deleted KMS key cannot be decrypted ever again
    /// (<https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html>).
    /// Policies left out count as CloudFormation's defaults, which are `Snapshot` for
    /// `AWS::RDS::DBCluster` and a stand-alone `AWS::RDS::DBInstance`
    /// (<https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html>).
    /// A key counts as used by a resource that names it with `Ref`, `Fn::GetAtt` or
    /// `Fn::Sub` in its properties.
    pub fn check_key_lifetimes(&self) -> Result<(), ModelError> {
        const KMS_KEY: &str = "AWS::KMS::Key";
        let kept = |r: &ResourceEntry| {
            let default = default_policy(r);
            [
                r.attributes.deletion_policy,
                r.attributes.update_replace_policy,
            ]
            .into_iter()
            .map(|p| p.unwrap_or(default))
            .find(|p| *p != Policy::Delete)
        };
        for (id, r) in &self.resources {
            let Some(policy) = kept(r) else { continue };
            let mut names = Vec::new();
            referenced_ids(&r.properties, &mut names);
            for key in names {
                let Some(k) = self.resources.get(&key).filter(|k| k.kind == KMS_KEY) else {
                    continue;
                };
                let retained = k.attributes.deletion_policy == Some(Policy::Retain)
                    && k.attributes.update_replace_policy == Some(Policy::Retain);
                if !retained {
                    return Err(ModelError::KeyDeletedBeforeData {
                        resource: id.clone(),
                        policy: policy.as_str(),
                        key,
                    });
                }
            }
        }
        Ok(())
    }

    /// The template as CloudFormation JSON (ordered keys).
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        root.insert("AWSTemplateFormatVersion".into(), "2010-09-09".into());
        root.insert("Description".into(), self.description.clone().into());
        if !self.parameters.is_empty() {
            let params = self
                .parameters
                .iter()
                .map(|(k, p)| (k.clone(), serde_json::to_value(p).unwrap_or(Value::Null)))
                .collect();
            root.insert("Parameters".into(), Value::Object(params));
        }
        if !self.conditions.is_empty() {
            let conds = self
                .conditions
                .iter()
                .map(|(k, c)| (k.clone(), c.to_json()))
                .collect();
            root.insert("Conditions".into(), Value::Object(conds));
        }
        let resources = self
            .resources
            .iter()
            .map(|(k, r)| (k.clone(), resource_json(r)))
            .collect();
        root.insert("Resources".into(), Value::Object(resources));
        if !self.outputs.is_empty() {
            let outputs = self
                .outputs
                .iter()
                .map(|(k, o)| {
                    let mut m = Map::new();
                    m.insert("Description".into(), o.description.clone().into());
                    m.insert("Value".into(), o.value.to_json());
                    (k.clone(), Value::Object(m))
                })
                .collect();
            root.insert("Outputs".into(), Value::Object(outputs));
        }
        Value::Object(root)
    }

    /// The template as YAML, the form committed under `templates/`; it means the same
    /// under YAML 1.1 (CloudFormation's reading) as [`Template::to_json`] ([`yaml`]).
    pub fn to_yaml(&self) -> String {
        yaml::to_string(&self.to_json())
    }
}

/// CloudFormation's policy for a resource without `DeletionPolicy`/`UpdateReplacePolicy`.
fn default_policy(r: &ResourceEntry) -> Policy {
    let stand_alone_instance =
        r.kind == "AWS::RDS::DBInstance" && r.properties.get("DBClusterIdentifier").is_none();
    if r.kind == "AWS::RDS::DBCluster" || stand_alone_instance {
        Policy::Snapshot
    } else {
        Policy::Delete
    }
}

/// The logical ids `value` names through `Ref`, `Fn::GetAtt` and `${...}` in `Fn::Sub`.
fn referenced_ids(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(m) => {
            if let Some(Value::String(id)) = m.get("Ref") {
                out.push(id.clone());
            }
            match m.get("Fn::GetAtt") {
                Some(Value::Array(a)) => {
                    out.extend(a.first().and_then(Value::as_str).map(String::from))
                }
                Some(Value::String(s)) => out.extend(s.split('.').next().map(String::from)),
                _ => {}
            }
            let sub = match m.get("Fn::Sub") {
                Some(Value::String(s)) => Some(s.as_str()),
                Some(Value::Array(a)) => a.first().and_then(Value::as_str),
                _ => None,
            };
            for part in sub.into_iter().flat_map(|s| s.split("${").skip(1)) {
                let name = part.split('}').next().unwrap_or_default();
                out.extend(name.split('.').next().map(String::from));
            }
            m.values().for_each(|v| referenced_ids(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| referenced_ids(v, out)),
        _ => {}
    }
}

fn resource_json(r: &ResourceEntry) -> Value {
    let mut m = Map::new();
    m.insert("Type".into(), r.kind.into());
    if let Some(c) = &r.attributes.condition {
        m.insert("Condition".into(), c.clone().into());
    }
    if !r.attributes.depends_on.is_empty() {
        m.insert("DependsOn".into(), r.attributes.depends_on.clone().into());
    }
    if let Some(p) = r.attributes.deletion_policy {
        m.insert(
            "DeletionPolicy".into(),
            serde_json::to_value(p).unwrap_or(Value::Null),
        );
    }
    if let Some(p) = r.attributes.update_replace_policy {
        m.insert(
            "UpdateReplacePolicy".into(),
            serde_json::to_value(p).unwrap_or(Value::Null),
        );
    }
    if r.properties.as_object().is_some_and(|o| !o.is_empty()) {
        m.insert("Properties".into(), r.properties.clone());
    }
    Value::Object(m)
}

/// Check a serialized body against CloudFormation's size limits; `Ok(true)` means it is
/// too large to pass inline and must be uploaded to the assets bucket.
pub fn needs_upload(body: &str) -> Result<bool, ModelError> {
    let bytes = body.len();
    if bytes > limits::MAX_S3_BYTES {
        return Err(ModelError::BodyTooLarge {
            bytes,
            max: limits::MAX_S3_BYTES,
        });
    }
    Ok(bytes > limits::MAX_INLINE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Thing {
        name: Expr,
    }

    impl Resource for Thing {
        const TYPE: &'static str = "Test::Thing";
    }

    impl Handle<Thing> {
        fn arn(&self) -> Expr {
            self.get_att("Arn")
        }
    }

    #[test]
    fn duplicate_logical_id_is_an_error() {
        let mut t = Template::new("x");
        t.add("A", Thing { name: "a".into() }).unwrap();
        let err = t.add("A", Thing { name: "b".into() }).unwrap_err();
        assert_eq!(err, ModelError::DuplicateLogicalId("A".into()));
        assert!(t.output("A", "d", Expr::str("x")).is_err());
        assert!(t.parameter("A", Parameter::string("p")).is_err());
    }

    #[test]
    fn invalid_logical_id_is_an_error() {
        let mut t = Template::new("x");
        assert_eq!(
            t.add("a-b", Thing { name: "a".into() }).unwrap_err(),
            ModelError::InvalidLogicalId("a-b".into())
        );
    }

    #[test]
    fn serialization_is_ordered_and_carries_attributes() {
        let mut t = Template::new("demo");
        let p = t.parameter("Name", Parameter::string("the name")).unwrap();
        let cond = t
            .condition(
                "IsX",
                Expr::Equals(Box::new(p.r#ref()), Box::new("x".into())),
            )
            .unwrap();
        let b = t.add("B", Thing { name: p.r#ref() }).unwrap();
        let a = t
            .add_with(
                "A",
                Thing {
                    name: cond.if_(b.arn(), Pseudo::NoValue.into()),
                },
                Attributes::retention(Policy::Retain).depends_on(&b),
            )
            .unwrap();
        t.output("AName", "a", a.r#ref()).unwrap();
        let v = t.to_json();
        let keys: Vec<_> = v["Resources"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["A", "B"]);
        assert_eq!(
            v["Resources"]["A"],
            json!({"Type": "Test::Thing", "DependsOn": ["B"], "DeletionPolicy": "Retain",
                   "UpdateReplacePolicy": "Retain",
                   "Properties": {"Name": {"Fn::If": ["IsX", {"Fn::GetAtt": ["B", "Arn"]}, {"Ref": "AWS::NoValue"}]}}})
        );
        assert_eq!(
            v["Conditions"]["IsX"],
            json!({"Fn::Equals": [{"Ref": "Name"}, "x"]})
        );
        assert_eq!(v["Outputs"]["AName"]["Value"], json!({"Ref": "A"}));
        assert_eq!(t.to_yaml(), t.clone().to_yaml());
    }

    #[test]
    fn yaml_11_booleans_are_quoted() {
        let mut t = Template::new("yaml");
        t.add("A", Thing { name: "ON".into() }).unwrap();
        t.add(
            "B",
            Thing {
                name: Expr::list(["off".into(), "onward".into()]),
            },
        )
        .unwrap();
        t.add(
            "C",
            Thing {
                name: "key: no".into(),
            },
        )
        .unwrap();
        let yaml = t.to_yaml();
        assert!(yaml.contains("Name: 'ON'\n"), "{yaml}");
        assert!(yaml.contains("- 'off'\n"), "{yaml}");
        assert!(yaml.contains("- onward\n"), "{yaml}");
        // a value that merely ends in ": no" is left alone (serde_yaml quoted it already)
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["Resources"]["C"]["Properties"]["Name"], "key: no");
        assert_eq!(parsed["Resources"]["A"]["Properties"]["Name"], "ON");
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Encrypted {
        kms_key_id: Expr,
    }
    impl Resource for Encrypted {
        const TYPE: &'static str = "AWS::RDS::DBCluster";
    }
    #[derive(Serialize)]
    struct Key {}
    impl Resource for Key {
        const TYPE: &'static str = "AWS::KMS::Key";
    }

    #[test]
    fn a_key_must_outlive_what_is_kept_encrypted_with_it() {
        let with = |key: Attributes, data: Attributes, sub: bool| {
            let mut t = Template::new("keys");
            let k = t.add_with("DataKey", Key {}, key).unwrap();
            let kms_key_id = if sub {
                Expr::sub("${DataKey.Arn}")
            } else {
                k.r#ref()
            };
            t.add_with("Db", Encrypted { kms_key_id }, data).unwrap();
            t.check_key_lifetimes()
        };
        let delete = || Attributes::retention(Policy::Delete);
        let gone = |policy| {
            Err(ModelError::KeyDeletedBeforeData {
                resource: "Db".into(),
                policy,
                key: "DataKey".into(),
            })
        };
        // the staging shape of defect 9: a final snapshot, the key deleted with the stack
        let snapshot = Attributes::retention(Policy::Snapshot);
        assert_eq!(with(delete(), snapshot.clone(), false), gone("Snapshot"));
        // a database without a policy is snapshotted by CloudFormation's default
        assert_eq!(
            with(delete(), Attributes::default(), true),
            gone("Snapshot")
        );
        // replacement counts too
        let replaced = Attributes {
            update_replace_policy: Some(Policy::Retain),
            ..delete()
        };
        assert_eq!(with(delete(), replaced, false), gone("Retain"));
        // a key kept only on deletion may still go on replacement
        let half = Attributes {
            deletion_policy: Some(Policy::Retain),
            update_replace_policy: Some(Policy::Delete),
            ..Attributes::default()
        };
        assert_eq!(with(half, snapshot.clone(), false), gone("Snapshot"));
        let retain = || Attributes::retention(Policy::Retain);
        assert_eq!(with(retain(), snapshot, true), Ok(()));
        assert_eq!(with(delete(), delete(), false), Ok(()));
    }

    #[test]
    fn limits_are_enforced() {
        let mut t = Template::new("big");
        for i in 0..=limits::MAX_RESOURCES {
            t.add(&format!("R{i}"), Thing { name: "x".into() }).unwrap();
        }
        assert_eq!(
            t.check_limits().unwrap_err(),
            ModelError::LimitExceeded {
                what: "resources",
                count: 501,
                max: 500
            }
        );
        assert!(!needs_upload(&"x".repeat(51_200)).unwrap());
        assert!(needs_upload(&"x".repeat(51_201)).unwrap());
        assert!(matches!(
            needs_upload(&"x".repeat(1_000_001)),
            Err(ModelError::BodyTooLarge { .. })
        ));
    }
}
