//! IAM roles and policy documents.

use serde::Serialize;
use serde_json::Value;

use super::Tags;
use crate::model::{Expr, Handle, Resource};

/// An IAM policy document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// Always `2012-10-17`.
    pub version: &'static str,
    /// Statements.
    pub statement: Vec<Statement>,
}

impl PolicyDocument {
    /// A document with these statements.
    pub fn new(statement: Vec<Statement>) -> Self {
        Self {
            version: "2012-10-17",
            statement,
        }
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Effect {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

/// One policy statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// Statement id.
    pub sid: String,
    /// Effect.
    pub effect: Effect,
    /// Principal (resource policies and trust policies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<Value>,
    /// Actions (`service:Action`).
    pub action: Vec<String>,
    /// Resources (identity and resource policies).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource: Vec<Expr>,
    /// Condition block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

impl Statement {
    /// An `Allow` of `actions` on `resources`.
    pub fn allow(sid: &str, actions: &[&str], resources: Vec<Expr>) -> Self {
        Self {
            sid: sid.to_owned(),
            effect: Effect::Allow,
            principal: None,
            action: actions.iter().map(|a| (*a).to_owned()).collect(),
            resource: resources,
            condition: None,
        }
    }

    /// Trust policy statement: the service may assume the role.
    pub fn assume_role(service: &str) -> Self {
        Self {
            sid: "AssumeRole".into(),
            effect: Effect::Allow,
            principal: Some(serde_json::json!({ "Service": service })),
            action: vec!["sts:AssumeRole".into()],
            resource: Vec::new(),
            condition: None,
        }
    }
}

/// `AWS::IAM::Role` with inline policies. Changing `RoleName` replaces the role; we let
/// CloudFormation name roles.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Role {
    /// What the role is for.
    pub description: String,
    /// Trust policy.
    pub assume_role_policy_document: PolicyDocument,
    /// AWS managed policies (only the ENI/ECR ones that need `*` resources).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub managed_policy_arns: Vec<Expr>,
    /// Inline policies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<InlinePolicy>,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Role {
    const TYPE: &'static str = "AWS::IAM::Role";
}

impl Handle<Role> {
    /// `Fn::GetAtt Arn`.
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// An inline policy of a role.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InlinePolicy {
    /// Name.
    pub policy_name: String,
    /// Document.
    pub policy_document: PolicyDocument,
}
