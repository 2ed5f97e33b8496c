//! The normalized vocabulary of the timeline: the values of `events.action`,
//! `events.outcome` and `events.category` that the pipeline writes and that filters (typed
//! by people, the UI or the AI translator) match on.
//!
//! One list, used by the pipeline's normalizers, the filter translator and the docs. The
//! specific event id or API name always stays in `event_code`; `action` is the coarse
//! "what happened" an investigator filters on first; `category` is the family of event the
//! event catalog ([`crate::knowledge`]) puts it in (its labels and descriptions are data,
//! `runtime/catalog/common.yaml`).

use serde::{Deserialize, Serialize};

macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string stored in the database and used in filters.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            /// Parses the stored string; `None` for anything outside the vocabulary.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// What happened. Mapping from sources (for Windows, the `action:` of the event catalog's
    /// entries, `runtime/catalog/`):
    ///
    /// | action | Windows | Linux (syslog) | CloudTrail |
    /// |---|---|---|---|
    /// | `logon` | 4624 (success), 4625 (failure) | sshd accepted / failed password, invalid user | `ConsoleLogin` |
    /// | `logoff` | 4634, 4647 | sshd session closed | — |
    /// | `explicit_credentials` | 4648 | — | — |
    /// | `special_privileges` | 4672 | — | — |
    /// | `process_start` | 4688, Sysmon 1 | — | — |
    /// | `network_connection` | Sysmon 3 | — | — |
    /// | `account_created` | 4720 | useradd | IAM `CreateUser` |
    /// | `account_enabled` | 4722 | — | — |
    /// | `password_change` | 4723 | passwd | IAM `ChangePassword`, `UpdateLoginProfile` |
    /// | `password_reset` | 4724 | — | — |
    /// | `account_disabled` | 4725 | — | — |
    /// | `account_deleted` | 4726 | userdel | IAM `DeleteUser` |
    /// | `group_changed` | 4727–4735, 4737, 4754–4758, 4764 (security groups) | — | IAM group calls |
    /// | `account_changed` | 4738 | usermod | IAM `UpdateUser` |
    /// | `service_installed` | 4697, System 7045 | — | — |
    /// | `privilege_escalation` | — | sudo, su | — |
    /// | `access_key_created` | — | — | IAM `CreateAccessKey` |
    /// | `policy_changed` | — | — | IAM `Attach*Policy`, `Put*Policy`, `Detach*Policy`, `Delete*Policy` |
    /// | `object_read` | — | — | S3 `GetObject` |
    /// | `object_write` | — | — | S3 `PutObject`, `CopyObject` |
    /// | `object_deleted` | — | — | S3 `DeleteObject(s)` |
    /// | `api_call` | — | — | any other CloudTrail event |
    Action {
        Logon => "logon",
        Logoff => "logoff",
        ExplicitCredentials => "explicit_credentials",
        SpecialPrivileges => "special_privileges",
        ProcessStart => "process_start",
        NetworkConnection => "network_connection",
        AccountCreated => "account_created",
        AccountEnabled => "account_enabled",
        PasswordChange => "password_change",
        PasswordReset => "password_reset",
        AccountDisabled => "account_disabled",
        AccountDeleted => "account_deleted",
        GroupChanged => "group_changed",
        AccountChanged => "account_changed",
        ServiceInstalled => "service_installed",
        PrivilegeEscalation => "privilege_escalation",
        AccessKeyCreated => "access_key_created",
        PolicyChanged => "policy_changed",
        ObjectRead => "object_read",
        ObjectWrite => "object_write",
        ObjectDeleted => "object_deleted",
        ApiCall => "api_call",
    }
}

vocabulary! {
    /// How it ended. CloudTrail calls that carry an `errorCode` have outcome `failure`;
    /// the code itself is kept in the event's attributes (`errorCode`).
    Outcome {
        Success => "success",
        Failure => "failure",
        Unknown => "unknown",
    }
}

vocabulary! {
    /// The kind of event, as the event catalog files it. The Windows ones are Microsoft's
    /// audit categories (a Security event's category is its audit subcategory's); events of
    /// other sources are filed under the same categories by what they record, plus three of
    /// our own (`event_log`, `network`, `cloud_resource`).
    Category {
        Logon => "logon",
        AccountLogon => "account_logon",
        AccountManagement => "account_management",
        DetailedTracking => "detailed_tracking",
        DsAccess => "ds_access",
        ObjectAccess => "object_access",
        PolicyChange => "policy_change",
        PrivilegeUse => "privilege_use",
        System => "system",
        EventLog => "event_log",
        Network => "network",
        CloudResource => "cloud_resource",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_string() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(*o));
        }
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(*c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(Action::parse("drop table"), None);
    }
}
