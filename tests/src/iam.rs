//! IAM as the tests need it: the synthesized templates' intrinsics resolved with concrete
//! values (what CloudFormation does at deploy time), and a policy evaluator for identity
//! policies of the shape the stacks write.
//!
//! The evaluator follows the documented rules for what our policies use: `Allow`/`Deny`
//! statements, `Action` with `*`/`?` wildcards (case-insensitive), `Resource` with
//! wildcards (case-sensitive), and the condition operators `StringEquals`,
//! `StringLike`, `ArnLike` and `ArnEquals`; a condition key missing from the request
//! fails the condition; an explicit deny wins
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>).
//! Anything else in a policy (`NotAction`, `NotResource`, other operators) is refused
//! with an error rather than guessed, so the tests cannot pass on a policy they do not
//! understand.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Values of `Ref`, `Fn::GetAtt` (`Logical.Attribute`) and pseudo parameters.
#[derive(Debug, Clone, Default)]
pub struct Values(BTreeMap<String, Value>);

impl Values {
    /// `AWS::Partition` `aws`, the region and account.
    pub fn new(region: &str, account: &str) -> Self {
        let mut v = Self::default();
        v.set("AWS::Partition", "aws");
        v.set("AWS::Region", region);
        v.set("AWS::AccountId", account);
        v.set("AWS::URLSuffix", "amazonaws.com");
        v
    }

    /// A value for `Ref name` (or `name` = `Logical.Attribute` for `Fn::GetAtt`).
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    fn get(&self, name: &str) -> Result<&Value, String> {
        self.0
            .get(name)
            .ok_or_else(|| format!("no value for {name}"))
    }
}

/// `v` with every `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Select` and `Fn::Join` replaced.
pub fn resolve(v: &Value, values: &Values) -> Result<Value, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| resolve(i, values))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next().unwrap_or_else(|| unreachable!());
            match k.as_str() {
                "Ref" => values
                    .get(arg.as_str().ok_or("Ref of a non-string")?)
                    .cloned(),
                "Fn::GetAtt" => {
                    let parts: Vec<&str> = arg
                        .as_array()
                        .ok_or("Fn::GetAtt of a non-list")?
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    values.get(&parts.join(".")).cloned()
                }
                "Fn::Sub" => sub(arg, values),
                "Fn::Select" => {
                    let index = arg[0].as_u64().ok_or("Fn::Select index")? as usize;
                    let list = resolve(&arg[1], values)?;
                    list.get(index)
                        .cloned()
                        .ok_or_else(|| format!("Fn::Select {index} of {list}"))
                }
                "Fn::Join" => {
                    let sep = arg[0].as_str().ok_or("Fn::Join separator")?;
                    let list = resolve(&arg[1], values)?;
                    let parts: Vec<String> = list
                        .as_array()
                        .ok_or("Fn::Join of a non-list")?
                        .iter()
                        .map(|p| p.as_str().map(str::to_owned).unwrap_or(p.to_string()))
                        .collect();
                    Ok(Value::String(parts.join(sep)))
                }
                _ => Ok(Value::Object(resolve_map(m, values)?)),
            }
        }
        Value::Object(m) => Ok(Value::Object(resolve_map(m, values)?)),
        other => Ok(other.clone()),
    }
}

fn resolve_map(m: &Map<String, Value>, values: &Values) -> Result<Map<String, Value>, String> {
    m.iter()
        .map(|(k, v)| Ok((k.clone(), resolve(v, values)?)))
        .collect()
}

fn sub(arg: &Value, values: &Values) -> Result<Value, String> {
    let (text, locals) = match arg {
        Value::String(s) => (s.as_str(), Map::new()),
        Value::Array(a) => (
            a[0].as_str().ok_or("Fn::Sub text")?,
            resolve(&a[1], values)?
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
        _ => return Err("Fn::Sub of neither text nor list".into()),
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
        let name = &rest[start + 2..start + end];
        let value = match locals.get(name) {
            Some(v) => v.clone(),
            None => values.get(name)?.clone(),
        };
        out.push_str(
            value
                .as_str()
                .ok_or_else(|| format!("${{{name}}} is {value}"))?,
        );
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

/// One request to authorize: an action on a resource, with the request's condition keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `service:Action`.
    pub action: String,
    /// The resource ARN.
    pub resource: String,
    /// Condition keys of the request (`ecs:CreateAction`, `iam:PassedToService`, ...).
    pub context: BTreeMap<String, String>,
}

impl Request {
    /// A request without condition keys.
    pub fn new(action: &str, resource: impl Into<String>) -> Self {
        Self {
            action: action.to_owned(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    /// With a condition key.
    #[must_use]
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// `*` matches any run of characters, `?` any one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn condition_holds(condition: &Value, req: &Request) -> Result<bool, String> {
    let Some(ops) = condition.as_object() else {
        return Ok(true);
    };
    for (op, keys) in ops {
        for (key, wanted) in keys.as_object().ok_or("condition block")? {
            let Some(actual) = req.context.get(key) else {
                return Ok(false);
            };
            let wanted = strings(wanted);
            let ok = match op.as_str() {
                "StringEquals" | "ArnEquals" => wanted.iter().any(|w| w == actual),
                "StringLike" | "ArnLike" => wanted.iter().any(|w| wildcard_match(w, actual)),
                other => return Err(format!("condition operator {other} is not modelled")),
            };
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The actions a statement names (`Action`, a string or a list).
pub fn actions(statement: &Value) -> Vec<String> {
    strings(&statement["Action"])
}

/// Whether the statements (resolved: no intrinsics left) allow `req`.
pub fn allows(statements: &[Value], req: &Request) -> Result<bool, String> {
    let mut allowed = false;
    for s in statements {
        for unsupported in ["NotAction", "NotResource", "NotPrincipal"] {
            if s.get(unsupported).is_some() {
                return Err(format!("{unsupported} is not modelled: {s}"));
            }
        }
        let action = strings(&s["Action"])
            .iter()
            .any(|a| wildcard_match(&a.to_lowercase(), &req.action.to_lowercase()));
        let resource = strings(&s["Resource"])
            .iter()
            .any(|r| wildcard_match(r, &req.resource));
        if !(action && resource && condition_holds(&s["Condition"], req)?) {
            continue;
        }
        match s["Effect"].as_str() {
            Some("Deny") => return Ok(false),
            Some("Allow") => allowed = true,
            other => return Err(format!("effect {other:?}")),
        }
    }
    Ok(allowed)
}

/// The resolved statements of every inline policy of role `logical_id` in a template.
pub fn role_statements(
    template: &Value,
    logical_id: &str,
    values: &Values,
) -> Result<Vec<Value>, String> {
    let role = &template["Resources"][logical_id];
    if role["Type"] != "AWS::IAM::Role" {
        return Err(format!("{logical_id} is not a role"));
    }
    let mut out = Vec::new();
    for policy in role["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let doc = resolve(&policy["PolicyDocument"], values)?;
        out.extend(doc["Statement"].as_array().cloned().unwrap_or_default());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_and_conditions_follow_the_documented_rules() {
        assert!(wildcard_match(
            "arn:aws:s3:::b/evidence/*",
            "arn:aws:s3:::b/evidence/x/y"
        ));
        assert!(!wildcard_match(
            "arn:aws:s3:::b/evidence/*",
            "arn:aws:s3:::b/other"
        ));
        assert!(wildcard_match("ecs:Describe?asks", "ecs:DescribeTasks"));
        let tag = json!({"Effect": "Allow", "Action": "ecs:TagResource", "Resource": "arn:t/*",
                         "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}}});
        let req = Request::new("ecs:TagResource", "arn:t/1");
        assert!(!allows(std::slice::from_ref(&tag), &req).unwrap());
        let with = req.clone().with("ecs:CreateAction", "RunTask");
        assert!(allows(std::slice::from_ref(&tag), &with).unwrap());
        let deny = json!({"Effect": "Deny", "Action": "*", "Resource": "*"});
        assert!(!allows(&[tag, deny], &with).unwrap());
        let odd = json!({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"});
        assert!(allows(&[odd], &req).is_err());
    }

    #[test]
    fn intrinsics_resolve_like_cloudformation() {
        let mut v = Values::new("eu-west-1", "111122223333");
        v.set("Bucket", "b1")
            .set("Role.Arn", "arn:aws:iam::1:role/r");
        let t = json!({"A": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/*"},
                       "B": {"Fn::GetAtt": ["Role", "Arn"]},
                       "C": {"Fn::Sub": ["${X}-${AWS::Region}", {"X": {"Ref": "Bucket"}}]},
                       "D": {"Fn::Select": [1, ["a", "b"]]}});
        assert_eq!(
            resolve(&t, &v).unwrap(),
            json!({"A": "arn:aws:s3:::b1/*", "B": "arn:aws:iam::1:role/r", "C": "b1-eu-west-1", "D": "b"})
        );
        assert!(resolve(&json!({"Ref": "Missing"}), &v).is_err());
    }
}
