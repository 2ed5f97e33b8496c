//! Our own guards, computed from the templates themselves (the deployed one, read back with
//! `GetTemplate`, and the one about to be deployed) rather than from what a change set
//! reports — a change set's `Replacement` field can be empty where a bucket is in fact
//! renamed. Pure functions; the engine fetches and passes the documents.
//!
//! * [`data_changes`]: stateful resources (the types of `stacks/data/replacement.yaml`)
//!   that would be removed, change type, or have a property changed that replaces them;
//!   `deploy` refuses them without `--allow-replace`.
//! * [`broadening`]: IAM statements, trust policies, managed policies, resource policies
//!   and security-group rules that a change adds (like the CDK's `--require-approval
//!   broadening`); `deploy --require-approval` asks before executing them.
//! * [`deletion_fates`]: what `destroy` does to each stateful resource of a deployed stack,
//!   failing closed when the deployed template cannot be read.

use std::collections::{BTreeMap, BTreeSet};

use chrono_stacks::replacement::{self, Change};
use serde_json::Value;

/// Errors of the guards: they fail closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// A template could not be parsed.
    #[error(
        "cannot read the {which} template of {stack} ({reason}); refusing to go on without knowing what it holds"
    )]
    Unreadable {
        /// `deployed` or `new`.
        which: &'static str,
        /// Stack name.
        stack: String,
        /// Parser's message.
        reason: String,
    },
    /// The replacement data is broken (a build problem).
    #[error(transparent)]
    Data(#[from] replacement::DataError),
}

/// Parses a template body (JSON or YAML) into JSON values.
pub fn parse(stack: &str, which: &'static str, body: &str) -> Result<Value, GuardError> {
    let unreadable = |reason: String| GuardError::Unreadable {
        which,
        stack: stack.to_owned(),
        reason,
    };
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(body).map_err(|e| unreadable(e.to_string()))?;
    let v: Value = serde_json::to_value(yaml).map_err(|e| unreadable(e.to_string()))?;
    if !v.is_object() {
        return Err(unreadable("not a template (no top-level mapping)".into()));
    }
    Ok(v)
}

/// Replaces every `{"Ref": P}` of a template parameter `P` by its value (so that a property
/// reading a parameter compares by the parameter's value).
pub fn resolve_params(
    v: &Value,
    declared: &BTreeSet<String>,
    params: &BTreeMap<String, String>,
) -> Value {
    match v {
        Value::Object(m) => {
            if m.len() == 1
                && let Some(Value::String(p)) = m.get("Ref")
                && declared.contains(p)
            {
                return match params.get(p) {
                    Some(val) => Value::String(val.clone()),
                    None => v.clone(),
                };
            }
            Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), resolve_params(x, declared, params)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_params(x, declared, params))
                .collect(),
        ),
        _ => v.clone(),
    }
}

fn resources_resolved(t: &Value, params: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    let declared: BTreeSet<String> = t
        .get("Parameters")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    t.get("Resources")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), resolve_params(v, &declared, params)))
                .collect()
        })
        .unwrap_or_default()
}

/// A stateful resource a change would lose.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DataChange {
    /// Logical id.
    pub logical_id: String,
    /// Its (deployed) type.
    pub resource_type: String,
    /// `remove` or `replace`.
    pub what: &'static str,
    /// Why: the changed properties, or the new type.
    pub because: String,
    /// What it holds.
    pub holds: String,
}

/// The stateful resources of the deployed template `old` that the template `new` would
/// remove or replace (parameters resolved on each side with its own values).
pub fn data_changes(
    old: &Value,
    old_params: &BTreeMap<String, String>,
    new: &Value,
    new_params: &BTreeMap<String, String>,
) -> Result<Vec<DataChange>, GuardError> {
    let rules = replacement::rules()?;
    let before = resources_resolved(old, old_params);
    let after = resources_resolved(new, new_params);
    let mut out = Vec::new();
    for (id, res) in &before {
        let ty = res
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let Some(change) = rules.change(res, after.get(id)) else {
            continue;
        };
        let holds = rules
            .types
            .get(&ty)
            .map(|r| r.holds.clone())
            .unwrap_or_default();
        let (what, because) = match change {
            Change::Removed => ("remove", "gone from the new template".to_owned()),
            Change::TypeChanged { to } => ("replace", format!("type changes to {to}")),
            Change::Replaced {
                properties,
                conditional,
            } => (
                "replace",
                format!(
                    "{} changes{}",
                    properties.join(", "),
                    if conditional { " (may replace)" } else { "" }
                ),
            ),
        };
        out.push(DataChange {
            logical_id: id.clone(),
            resource_type: ty,
            what,
            because,
            holds,
        });
    }
    Ok(out)
}

/// Whether `--allow-replace` lets this change through (`LogicalId` or `stack/LogicalId`).
pub fn allowed(short: &str, logical_id: &str, allow: &BTreeSet<String>) -> bool {
    allow.contains(logical_id) || allow.contains(&format!("{short}/{logical_id}"))
}

/// A change that widens who may do what, or what may reach what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Broadening {
    /// Logical id of the resource carrying it.
    pub logical_id: String,
    /// Its type.
    pub resource_type: String,
    /// What is added, in one line.
    pub what: String,
}

fn as_list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    }
}

fn statements(doc: Option<&Value>) -> Vec<Value> {
    as_list(doc.and_then(|d| d.get("Statement")))
}

fn one_line(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(240) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s,
    }
}

/// Items of `new` not in `old` (compared as JSON values).
fn added(old: &[Value], new: &[Value]) -> Vec<Value> {
    new.iter().filter(|n| !old.contains(n)).cloned().collect()
}

/// Permission-widening items of one resource: (kind, items) pairs.
fn grants(res: &Value) -> Vec<(&'static str, Vec<Value>)> {
    let p = res.get("Properties");
    let get = |k: &str| p.and_then(|p| p.get(k));
    match res.get("Type").and_then(Value::as_str).unwrap_or("") {
        "AWS::IAM::Role" => {
            let mut inline = Vec::new();
            for pol in as_list(get("Policies")) {
                inline.extend(statements(pol.get("PolicyDocument")));
            }
            vec![
                (
                    "trust statement",
                    statements(get("AssumeRolePolicyDocument")),
                ),
                ("IAM statement", inline),
                ("managed policy", as_list(get("ManagedPolicyArns"))),
            ]
        }
        "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::RolePolicy" => {
            vec![("IAM statement", statements(get("PolicyDocument")))]
        }
        "AWS::S3::BucketPolicy" | "AWS::KMS::Key" => {
            let doc = get("PolicyDocument").or_else(|| get("KeyPolicy"));
            vec![("resource policy statement", statements(doc))]
        }
        "AWS::EC2::SecurityGroup" => vec![
            ("ingress rule", as_list(get("SecurityGroupIngress"))),
            ("egress rule", as_list(get("SecurityGroupEgress"))),
        ],
        "AWS::EC2::SecurityGroupIngress" => {
            vec![("ingress rule", p.cloned().into_iter().collect())]
        }
        "AWS::EC2::SecurityGroupEgress" => vec![("egress rule", p.cloned().into_iter().collect())],
        "AWS::Lambda::Permission" => vec![("invoke permission", p.cloned().into_iter().collect())],
        _ => Vec::new(),
    }
}

/// What `new` grants that `old` did not (`old` is `None` for a stack being created, where
/// everything is new). Parameters are resolved on each side.
pub fn broadening(
    old: Option<(&Value, &BTreeMap<String, String>)>,
    new: &Value,
    new_params: &BTreeMap<String, String>,
) -> Vec<Broadening> {
    let before = old
        .map(|(t, p)| resources_resolved(t, p))
        .unwrap_or_default();
    let after = resources_resolved(new, new_params);
    let mut out = Vec::new();
    for (id, res) in &after {
        let ty = res.get("Type").and_then(Value::as_str).unwrap_or("");
        let old_grants: BTreeMap<&str, Vec<Value>> = before
            .get(id)
            .filter(|o| o.get("Type").and_then(Value::as_str) == Some(ty))
            .map(|o| grants(o).into_iter().collect())
            .unwrap_or_default();
        for (kind, items) in grants(res) {
            let was = old_grants.get(kind).map(Vec::as_slice).unwrap_or_default();
            for item in added(was, &items) {
                out.push(Broadening {
                    logical_id: id.clone(),
                    resource_type: ty.to_owned(),
                    what: format!("{kind} added: {}", one_line(&item)),
                });
            }
        }
    }
    out
}

/// A stateful resource of a deployed stack and what deleting the stack does to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fate {
    /// Logical id.
    pub logical_id: String,
    /// Type.
    pub resource_type: String,
    /// `Delete`, `Retain`, `RetainExceptOnCreate` or `Snapshot` (CloudFormation's default
    /// for a resource without one: `Delete`, except `Snapshot` for an RDS cluster).
    pub policy: String,
}

/// The stateful resources of a deployed template and their deletion policies. An
/// unreadable template is an error: destroy refuses rather than guess.
pub fn deletion_fates(stack: &str, deployed_body: &str) -> Result<Vec<Fate>, GuardError> {
    let rules = replacement::rules()?;
    let t = parse(stack, "deployed", deployed_body)?;
    let mut out = Vec::new();
    for (id, r) in t
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let ty = r.get("Type").and_then(Value::as_str).unwrap_or("");
        if !rules.is_stateful(ty) {
            continue;
        }
        // https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
        let default = if ty == "AWS::RDS::DBCluster" {
            "Snapshot"
        } else {
            "Delete"
        };
        let policy = r
            .get("DeletionPolicy")
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned();
        out.push(Fate {
            logical_id: id.clone(),
            resource_type: ty.to_owned(),
            policy,
        });
    }
    out.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn a_bucket_renamed_through_a_parameter_is_a_replacement() {
        let t = json!({
            "Parameters": {"Name": {"Type": "String"}},
            "Resources": {"Sources": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": {"Ref": "Name"}}}}
        });
        let same =
            data_changes(&t, &params(&[("Name", "a")]), &t, &params(&[("Name", "a")])).unwrap();
        assert!(same.is_empty());
        let renamed =
            data_changes(&t, &params(&[("Name", "a")]), &t, &params(&[("Name", "b")])).unwrap();
        assert_eq!(renamed.len(), 1);
        assert_eq!(renamed[0].what, "replace");
        assert!(
            renamed[0].because.contains("BucketName"),
            "{:?}",
            renamed[0]
        );
    }

    #[test]
    fn removing_a_table_or_changing_a_log_groups_name_loses_data() {
        let old = json!({"Resources": {
            "Sessions": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "s"}},
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/a", "RetentionInDays": 7}},
            "Vpc": {"Type": "AWS::EC2::VPC"}
        }});
        let new = json!({"Resources": {
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/b", "RetentionInDays": 7}}
        }});
        let c = data_changes(&old, &BTreeMap::new(), &new, &BTreeMap::new()).unwrap();
        let got: Vec<(&str, &str)> = c.iter().map(|c| (c.logical_id.as_str(), c.what)).collect();
        assert_eq!(got, [("Logs", "replace"), ("Sessions", "remove")]);
        let retention_only = json!({"Resources": {
            "Sessions": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "s"}},
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/a", "RetentionInDays": 30}}
        }});
        assert!(
            data_changes(&old, &BTreeMap::new(), &retention_only, &BTreeMap::new())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn added_statements_and_rules_are_broadening_removed_ones_are_not() {
        let role = |stmts: Value| {
            json!({"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": stmts}}]
        }}, "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.0.0.0/16"}]}}}})
        };
        let read =
            json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"});
        let write =
            json!({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"});
        let old = role(json!([read.clone()]));
        let new = role(json!([read.clone(), write]));
        let b = broadening(Some((&old, &BTreeMap::new())), &new, &BTreeMap::new());
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(b[0].what.starts_with("IAM statement added") && b[0].what.contains("s3:PutObject"));
        assert!(broadening(Some((&new, &BTreeMap::new())), &old, &BTreeMap::new()).is_empty());
        // a new stack: everything it grants is new
        let all = broadening(None, &old, &BTreeMap::new());
        let kinds: Vec<&str> = all
            .iter()
            .map(|b| b.what.split(" added").next().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["trust statement", "IAM statement", "ingress rule"]);
    }

    #[test]
    fn destroy_fates_fail_closed_on_an_unreadable_template() {
        let err = deletion_fates("chrono-acme-prod-data", "{not: [valid").unwrap_err();
        assert!(matches!(err, GuardError::Unreadable { .. }), "{err}");
        assert!(err.to_string().contains("refusing"), "{err}");
        let f = deletion_fates(
            "s",
            r#"{"Resources": {"Db": {"Type": "AWS::RDS::DBCluster"}, "B": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain"}, "V": {"Type": "AWS::EC2::VPC"}}}"#,
        )
        .unwrap();
        let got: Vec<(&str, &str)> = f
            .iter()
            .map(|f| (f.logical_id.as_str(), f.policy.as_str()))
            .collect();
        assert_eq!(got, [("B", "Retain"), ("Db", "Snapshot")]);
    }
}
