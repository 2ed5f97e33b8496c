//! AWS CloudTrail rules.
//!
//! | event | action |
//! |---|---|
//! | `signin` `ConsoleLogin` | `logon` (outcome from `responseElements.ConsoleLogin`) |
//! | IAM `CreateUser` / `DeleteUser` / `UpdateUser` | `account_created` / `account_deleted` / `account_changed` |
//! | IAM `ChangePassword`, `UpdateLoginProfile` | `password_change` |
//! | IAM `CreateAccessKey` | `access_key_created` |
//! | IAM `Attach*Policy`, `Put*Policy`, `Detach*Policy`, `Delete*Policy` | `policy_changed` |
//! | IAM group calls (`CreateGroup`, `DeleteGroup`, `UpdateGroup`, `AddUserToGroup`, `RemoveUserFromGroup`) | `group_changed` |
//! | S3 `GetObject` / `PutObject`, `CopyObject` / `DeleteObject`, `DeleteObjects` | `object_read` / `object_write` / `object_deleted` |
//! | anything else | `api_call` |
//!
//! Outcome: `failure` when the record has an `errorCode` (kept in the attributes), else
//! `success`; `ConsoleLogin` uses its own `Success`/`Failure` response.

use serde_json::Value;

use crate::vocab::{Action, Outcome};

/// The action of a CloudTrail event.
pub fn action(event_source: &str, event_name: &str) -> Action {
    match event_source {
        "signin.amazonaws.com" if event_name == "ConsoleLogin" => Action::Logon,
        "iam.amazonaws.com" => iam_action(event_name),
        "s3.amazonaws.com" => match event_name {
            "GetObject" => Action::ObjectRead,
            "PutObject" | "CopyObject" => Action::ObjectWrite,
            "DeleteObject" | "DeleteObjects" => Action::ObjectDeleted,
            _ => Action::ApiCall,
        },
        _ => Action::ApiCall,
    }
}

fn iam_action(name: &str) -> Action {
    match name {
        "CreateUser" => return Action::AccountCreated,
        "DeleteUser" => return Action::AccountDeleted,
        "UpdateUser" => return Action::AccountChanged,
        "ChangePassword" | "UpdateLoginProfile" => return Action::PasswordChange,
        "CreateAccessKey" => return Action::AccessKeyCreated,
        "CreateGroup"
        | "DeleteGroup"
        | "UpdateGroup"
        | "AddUserToGroup"
        | "RemoveUserFromGroup" => {
            return Action::GroupChanged;
        }
        _ => {}
    }
    let policy_verb = ["Attach", "Put", "Detach", "Delete"]
        .iter()
        .any(|verb| name.starts_with(verb));
    if policy_verb && name.ends_with("Policy") {
        Action::PolicyChanged
    } else {
        Action::ApiCall
    }
}

/// The outcome of a CloudTrail record.
pub fn outcome(record: &serde_json::Map<String, Value>) -> Outcome {
    if record.get("eventName").and_then(Value::as_str) == Some("ConsoleLogin")
        && let Some(result) = record
            .get("responseElements")
            .and_then(|r| r.get("ConsoleLogin"))
            .and_then(Value::as_str)
    {
        return match result {
            "Success" => Outcome::Success,
            "Failure" => Outcome::Failure,
            _ => Outcome::Unknown,
        };
    }
    match record.get("errorCode") {
        Some(Value::Null) | None => Outcome::Success,
        Some(_) => Outcome::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iam_and_s3_calls_map_to_their_actions() {
        assert_eq!(
            action("iam.amazonaws.com", "AttachRolePolicy"),
            Action::PolicyChanged
        );
        assert_eq!(
            action("iam.amazonaws.com", "DeleteGroupPolicy"),
            Action::PolicyChanged
        );
        assert_eq!(action("iam.amazonaws.com", "CreatePolicy"), Action::ApiCall);
        assert_eq!(
            action("iam.amazonaws.com", "AddUserToGroup"),
            Action::GroupChanged
        );
        assert_eq!(
            action("s3.amazonaws.com", "DeleteObjects"),
            Action::ObjectDeleted
        );
        assert_eq!(action("ec2.amazonaws.com", "DeleteObject"), Action::ApiCall);
        assert_eq!(
            action("signin.amazonaws.com", "ConsoleLogin"),
            Action::Logon
        );
    }

    #[test]
    fn error_code_means_failure() {
        let obj = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            outcome(&obj(
                json!({"eventName": "GetObject", "errorCode": "AccessDenied"})
            )),
            Outcome::Failure
        );
        assert_eq!(
            outcome(&obj(json!({"eventName": "GetObject"}))),
            Outcome::Success
        );
        let login =
            json!({"eventName": "ConsoleLogin", "responseElements": {"ConsoleLogin": "Failure"}});
        assert_eq!(outcome(&obj(login)), Outcome::Failure);
    }
}
