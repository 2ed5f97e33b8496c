//! Typed CloudFormation values and intrinsic functions.
//!
//! Every property value of the model is an [`Expr`]: a literal or an intrinsic
//! (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::Select`, `Fn::GetAZs`, `Fn::If`,
//! `Fn::Equals`). References to resources and parameters are built from handles
//! (see [`super::Handle`]), never typed in by hand.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

/// A CloudFormation value: a literal or an intrinsic function.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A string literal.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A decimal literal (e.g. Aurora capacity units).
    Float(f64),
    /// A boolean literal.
    Bool(bool),
    /// A list of values.
    List(Vec<Expr>),
    /// A map of values (ordered by key).
    Map(BTreeMap<String, Expr>),
    /// A literal JSON document (policy documents, state machine definitions).
    Json(Value),
    /// `Ref` of a resource, parameter or pseudo parameter.
    Ref(String),
    /// `Fn::GetAtt` of a resource attribute.
    GetAtt(String, String),
    /// `Fn::Sub` with optional explicit variables.
    Sub(String, BTreeMap<String, Expr>),
    /// `Fn::Join`.
    Join(String, Vec<Expr>),
    /// `Fn::Select`.
    Select(u32, Box<Expr>),
    /// `Fn::GetAZs` of a region (`""` = the stack's region).
    GetAzs(Box<Expr>),
    /// `Fn::Cidr [block, count, bits]`: `count` consecutive blocks of `bits` host bits.
    Cidr(Box<Expr>, u32, u32),
    /// `Fn::If` on a named condition.
    If(String, Box<Expr>, Box<Expr>),
    /// `Fn::Equals`, used in conditions.
    Equals(Box<Expr>, Box<Expr>),
}

/// CloudFormation pseudo parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pseudo {
    /// `AWS::AccountId`.
    AccountId,
    /// `AWS::Region`.
    Region,
    /// `AWS::Partition`.
    Partition,
    /// `AWS::StackName`.
    StackName,
    /// `AWS::URLSuffix`.
    UrlSuffix,
    /// `AWS::NoValue`: removes the property where it is used.
    NoValue,
}

impl Pseudo {
    /// The name used in `Ref` and inside `Fn::Sub` (`${AWS::Region}`).
    pub fn name(self) -> &'static str {
        match self {
            Self::AccountId => "AWS::AccountId",
            Self::Region => "AWS::Region",
            Self::Partition => "AWS::Partition",
            Self::StackName => "AWS::StackName",
            Self::UrlSuffix => "AWS::URLSuffix",
            Self::NoValue => "AWS::NoValue",
        }
    }

    /// `Ref` of this pseudo parameter.
    pub fn r#ref(self) -> Expr {
        Expr::Ref(self.name().to_owned())
    }
}

impl Expr {
    /// A string literal.
    pub fn str(s: impl Into<String>) -> Self {
        Self::Str(s.into())
    }

    /// `Fn::Sub` without explicit variables (only `${Param}`, `${Resource}`,
    /// `${Resource.Attr}` and `${AWS::...}` inside the string).
    pub fn sub(s: impl Into<String>) -> Self {
        Self::Sub(s.into(), BTreeMap::new())
    }

    /// `Fn::Sub` with explicit variables.
    pub fn sub_with<'a>(
        s: impl Into<String>,
        vars: impl IntoIterator<Item = (&'a str, Expr)>,
    ) -> Self {
        Self::Sub(
            s.into(),
            vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        )
    }

    /// `Fn::Join`.
    pub fn join(sep: impl Into<String>, parts: Vec<Expr>) -> Self {
        Self::Join(sep.into(), parts)
    }

    /// `Fn::Select [index, list]`.
    pub fn select(index: u32, list: Expr) -> Self {
        Self::Select(index, Box::new(list))
    }

    /// `Fn::GetAZs ""`: the availability zones of the stack's region.
    pub fn azs() -> Self {
        Self::GetAzs(Box::new(Self::str("")))
    }

    /// `Fn::Cidr [block, count, bits]`: `count` blocks of `bits` host bits cut from `block`
    /// (`bits` 64 = IPv6 /64 subnets).
    pub fn cidr(block: Expr, count: u32, bits: u32) -> Self {
        Self::Cidr(Box::new(block), count, bits)
    }

    /// A list of values.
    pub fn list(items: impl IntoIterator<Item = Expr>) -> Self {
        Self::List(items.into_iter().collect())
    }

    /// The JSON form CloudFormation expects.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Str(s) => Value::String(s.clone()),
            Self::Int(i) => json!(i),
            Self::Float(f) => json!(f),
            Self::Bool(b) => Value::Bool(*b),
            Self::List(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            Self::Map(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
            Self::Json(v) => v.clone(),
            Self::Ref(id) => single("Ref", Value::String(id.clone())),
            Self::GetAtt(id, attr) => single("Fn::GetAtt", json!([id, attr])),
            Self::Sub(s, vars) if vars.is_empty() => single("Fn::Sub", Value::String(s.clone())),
            Self::Sub(s, vars) => {
                let vars: Map<String, Value> =
                    vars.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
                single("Fn::Sub", json!([s, vars]))
            }
            Self::Join(sep, parts) => single(
                "Fn::Join",
                json!([sep, parts.iter().map(Self::to_json).collect::<Vec<_>>()]),
            ),
            Self::Select(i, list) => single("Fn::Select", json!([i, list.to_json()])),
            Self::GetAzs(region) => single("Fn::GetAZs", region.to_json()),
            Self::Cidr(block, count, bits) => {
                single("Fn::Cidr", json!([block.to_json(), count, bits]))
            }
            Self::If(cond, a, b) => single("Fn::If", json!([cond, a.to_json(), b.to_json()])),
            Self::Equals(a, b) => single("Fn::Equals", json!([a.to_json(), b.to_json()])),
        }
    }
}

fn single(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_owned(), value);
    Value::Object(m)
}

impl Serialize for Expr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl From<&str> for Expr {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<String> for Expr {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<bool> for Expr {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for Expr {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<u32> for Expr {
    fn from(i: u32) -> Self {
        Self::Int(i64::from(i))
    }
}

impl From<Pseudo> for Expr {
    fn from(p: Pseudo) -> Self {
        p.r#ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intrinsics_serialize_to_their_long_form() {
        let e = Expr::select(1, Expr::azs());
        assert_eq!(e.to_json(), json!({"Fn::Select": [1, {"Fn::GetAZs": ""}]}));
        let e = Expr::sub_with("${A}-x", [("A", Pseudo::Region.r#ref())]);
        assert_eq!(
            e.to_json(),
            json!({"Fn::Sub": ["${A}-x", {"A": {"Ref": "AWS::Region"}}]})
        );
        let e = Expr::If(
            "IsProd".into(),
            Box::new(Expr::Int(1)),
            Box::new(Pseudo::NoValue.into()),
        );
        assert_eq!(
            e.to_json(),
            json!({"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]})
        );
        let e = Expr::join(
            ",",
            vec![Expr::str("a"), Expr::GetAtt("X".into(), "Arn".into())],
        );
        assert_eq!(
            e.to_json(),
            json!({"Fn::Join": [",", ["a", {"Fn::GetAtt": ["X", "Arn"]}]]})
        );
    }
}
