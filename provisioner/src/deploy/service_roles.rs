//! Service-linked roles an account must have before CloudFormation creates the resources
//! that use them (defect 6 of issue 13).
//!
//! The first ECS cluster or service of a new account often fails with "Unable to assume
//! the service linked role. Please verify that the ECS service linked role exists": ECS
//! creates its service-linked role `AWSServiceRoleForECS` on first use, and that role is
//! not yet usable when CloudFormation creates the cluster a moment later. The ECS
//! documentation says the role can be created beforehand with `CreateServiceLinkedRole`
//! for `ecs.amazonaws.com`
//! (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using-service-linked-roles.html>).
//! The deploy engine does that before any stack with ECS resources, every time: a role
//! that exists already is success, so the step is idempotent and costs one IAM call.
//!
//! The operator's credentials need `iam:CreateServiceLinkedRole` (condition
//! `iam:AWSServiceName` = `ecs.amazonaws.com`) — README, "Deploying".

use aws_sdk_iam::error::ProvideErrorMetadata;

use crate::deploy::error::DeployError;

/// The service principal of ECS.
pub const ECS_SERVICE: &str = "ecs.amazonaws.com";

/// Resource type prefix of the stacks that need [`ECS_SERVICE`]'s role.
pub const ECS_RESOURCE_PREFIX: &str = "AWS::ECS::";

/// What [`ensure_service_linked_role`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The role was created; its name.
    Created(String),
    /// The account had the role already.
    AlreadyThere,
}

/// Whether an IAM error says the service's role exists already. IAM answers
/// `InvalidInput` "Service role name AWSServiceRoleForECS has been taken in this account,
/// please try a different suffix"; emulators (moto) answer `EntityAlreadyExists`.
pub fn means_already_there(code: Option<&str>, message: Option<&str>) -> bool {
    match code {
        Some("EntityAlreadyExists") => true,
        Some("InvalidInput") => message.is_some_and(|m| m.contains("has been taken")),
        _ => false,
    }
}

/// Creates the service-linked role of `service` unless the account has it already.
pub async fn ensure_service_linked_role(
    iam: &aws_sdk_iam::Client,
    service: &str,
) -> Result<Ensured, DeployError> {
    match iam
        .create_service_linked_role()
        .aws_service_name(service)
        .description("created by chronoctl before the first stack that uses the service")
        .send()
        .await
    {
        Ok(out) => Ok(Ensured::Created(
            out.role()
                .map(|r| r.role_name().to_owned())
                .unwrap_or_else(|| service.to_owned()),
        )),
        Err(e) if means_already_there(e.code(), e.message()) => Ok(Ensured::AlreadyThere),
        Err(e) => Err(DeployError::Aws {
            stack: format!("service-linked role of {service}"),
            operation: "iam:CreateServiceLinkedRole",
            message: format!(
                "{}; the deploying identity needs iam:CreateServiceLinkedRole for {service} \
                 (or an administrator runs `aws iam create-service-linked-role --aws-service-name {service}` once)",
                crate::deploy::error::sdk_message(&e)
            ),
        }),
    }
}

/// Whether a template body (JSON or YAML) declares a resource of a type starting with
/// `prefix`. A body that does not parse declares nothing (CloudFormation rejects it).
pub fn declares_resource_type(body: &str, prefix: &str) -> bool {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(body) else {
        return false;
    };
    doc.get("Resources")
        .and_then(serde_yaml::Value::as_mapping)
        .is_some_and(|resources| {
            resources.values().any(|r| {
                r.get("Type")
                    .and_then(serde_yaml::Value::as_str)
                    .is_some_and(|t| t.starts_with(prefix))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iams_answers_for_an_existing_role_are_success_and_nothing_else_is() {
        let taken = "Service role name AWSServiceRoleForECS has been taken in this account, please try a different suffix.";
        assert!(means_already_there(Some("InvalidInput"), Some(taken)));
        assert!(means_already_there(Some("EntityAlreadyExists"), None));
        assert!(!means_already_there(
            Some("InvalidInput"),
            Some("Invalid service name")
        ));
        assert!(!means_already_there(Some("AccessDenied"), Some(taken)));
        assert!(!means_already_there(None, None));
    }

    #[test]
    fn only_bodies_with_ecs_resources_need_the_role() {
        let yaml = "Resources:\n  Cluster:\n    Type: AWS::ECS::Cluster\n";
        let json = r#"{"Resources": {"B": {"Type": "AWS::S3::Bucket"}}}"#;
        assert!(declares_resource_type(yaml, ECS_RESOURCE_PREFIX));
        assert!(!declares_resource_type(json, ECS_RESOURCE_PREFIX));
        // a mention outside a resource type is not a resource
        let described = "Description: runs on AWS::ECS::Cluster\nResources: {}\n";
        assert!(!declares_resource_type(described, ECS_RESOURCE_PREFIX));
        assert!(!declares_resource_type(": not yaml [", ECS_RESOURCE_PREFIX));
    }
}
