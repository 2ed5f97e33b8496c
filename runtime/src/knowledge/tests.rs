use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::pipeline::normalize::{aws, linux, windows};

#[test]
fn the_data_files_load_and_every_source_has_entries() {
    let c = load().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.files.len(), 7);
    for f in &c.files {
        assert!(f.entries > 0, "{} is empty", f.file);
        assert!(
            !f.read.is_empty(),
            "{} says nothing of when it was read",
            f.file
        );
        if f.file != "common.yaml" {
            assert!(!f.sources.is_empty(), "{} names no source", f.file);
        }
    }
    let security = c
        .files
        .iter()
        .find(|f| f.file == "windows-security.yaml")
        .unwrap();
    assert!(
        security.entries >= 380,
        "{} Security events",
        security.entries
    );
    assert!(c.event_types.len() >= 600);
}

#[test]
fn categories_and_actions_are_exactly_the_vocabulary() {
    let c = catalog();
    let listed: Vec<Category> = c.categories.iter().map(|i| i.category).collect();
    assert_eq!(listed, Category::ALL);
    let listed: Vec<Action> = c.actions.iter().map(|i| i.action).collect();
    assert_eq!(listed, Action::ALL);
    for info in &c.categories {
        assert!(!info.label.is_empty() && !info.about.is_empty());
    }
}

/// The normalizer reads Windows actions from the catalog; these are the mappings the
/// timeline had before (runtime/src/vocab.rs's table), which must keep holding.
#[test]
fn the_windows_actions_of_the_vocabulary_table_still_hold() {
    use crate::vocab::Action::*;
    let sec = windows::SECURITY_AUDITING;
    for (provider, id, action) in [
        (sec, 4624, Logon),
        (sec, 4625, Logon),
        (sec, 4634, Logoff),
        (sec, 4647, Logoff),
        (sec, 4648, ExplicitCredentials),
        (sec, 4672, SpecialPrivileges),
        (sec, 4688, ProcessStart),
        (sec, 4720, AccountCreated),
        (sec, 4722, AccountEnabled),
        (sec, 4723, PasswordChange),
        (sec, 4724, PasswordReset),
        (sec, 4725, AccountDisabled),
        (sec, 4726, AccountDeleted),
        (sec, 4727, GroupChanged),
        (sec, 4732, GroupChanged),
        (sec, 4737, GroupChanged),
        (sec, 4756, GroupChanged),
        (sec, 4738, AccountChanged),
        (windows::SYSMON, 1, ProcessStart),
        (windows::SYSMON, 3, NetworkConnection),
        (windows::SERVICE_CONTROL_MANAGER, 7045, ServiceInstalled),
    ] {
        assert_eq!(
            windows::action(provider, id, None).map(|a| a.0),
            Some(action),
            "{provider} {id}"
        );
    }
    assert_eq!(windows::action(sec, 4616, None), None);
    assert_eq!(
        windows::action("Microsoft-Windows-Kernel-General", 1, None),
        None
    );
}

#[test]
fn cloudtrail_entries_name_the_action_the_normalizer_writes() {
    for t in &catalog().event_types {
        if let Origin::CloudTrail { service, name, .. } = &t.origin {
            assert_eq!(
                Some(aws::action(service, name)),
                Some(t.action.unwrap_or(Action::ApiCall)),
                "{service} {name}"
            );
        }
    }
}

#[test]
fn linux_entries_are_the_line_shapes_the_normalizer_reports() {
    let catalog: BTreeSet<&str> = catalog()
        .event_types
        .iter()
        .filter_map(|t| match &t.origin {
            Origin::Linux { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let normalizer: BTreeSet<&str> = linux::KEYS.iter().copied().collect();
    assert_eq!(catalog, normalizer);
}

#[test]
fn fixtures_named_by_entries_exist() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/evidence");
    for t in &catalog().event_types {
        for f in &t.fixtures {
            assert!(
                dir.join(f).is_file(),
                "{}: {} names missing fixture {f}",
                t.file,
                t.title
            );
        }
    }
}

#[test]
fn lookups_find_entries_by_provider_service_and_stored_fields() {
    let c = catalog();
    let t = c
        .windows("microsoft-windows-security-auditing", 4616)
        .unwrap();
    assert_eq!(t.title, "The system time was changed");
    assert_eq!(t.category, Category::System);
    assert_eq!(
        t.audit,
        Some(("System".to_string(), "Security State Change".to_string()))
    );
    assert_eq!(
        c.windows("Microsoft-Windows-Kernel-General", 1)
            .unwrap()
            .category,
        Category::System
    );
    assert!(c.windows("Microsoft-Windows-Sysmon", 4616).is_none());
    assert_eq!(
        c.cloudtrail("iam.amazonaws.com", "CreateUser")
            .unwrap()
            .title,
        "IAM user created"
    );
    assert_eq!(
        c.linux("sshd.accepted").unwrap().title,
        "SSH login accepted"
    );
    let stored = c
        .stored("windows:evtx:record", "Security", Some("4624"))
        .unwrap();
    assert_eq!(stored.title, "An account was successfully logged on");
    assert_eq!(
        c.stored(
            "windows:evtx:record",
            "Microsoft-Windows-Sysmon/Operational",
            Some("1")
        )
        .unwrap()
        .title,
        "Process creation"
    );
    assert!(c.stored("windows:evtx:record", "Security", None).is_none());
    assert!(c.stored("syslog:line", "sshd", Some("1")).is_none());
}

#[test]
fn subcategories_and_families_know_their_members() {
    let c = catalog();
    let cv = c
        .subcategories
        .iter()
        .find(|s| s.name == "Credential Validation")
        .unwrap();
    let ids: Vec<String> = cv
        .members
        .iter()
        .filter_map(|&i| c.event_types[i].code())
        .collect();
    assert_eq!(ids, ["4774", "4775", "4776", "4777"]);
    let lockout = c
        .subcategories
        .iter()
        .find(|s| s.name == "Account Lockout")
        .unwrap();
    assert_eq!(lockout.members.len(), 1, "4625 is shared with Logon");
    let time = c.family("time_changed").unwrap();
    let keys: Vec<String> = time
        .members
        .iter()
        .map(|&i| c.event_types[i].key())
        .collect();
    assert_eq!(
        keys,
        [
            "windows:Microsoft-Windows-Security-Auditing:4616",
            "windows:Microsoft-Windows-Kernel-General:1"
        ]
    );
}

#[test]
fn conditions_group_event_types_by_source() {
    let c = catalog();
    let pick = |keys: &[&str]| -> Vec<&EventType> {
        keys.iter()
            .map(|k| {
                c.event_types
                    .iter()
                    .find(|t| t.key() == *k)
                    .unwrap_or_else(|| panic!("{k}"))
            })
            .collect()
    };
    let node = condition(&pick(&[
        "windows:Microsoft-Windows-Security-Auditing:4616",
        "windows:Microsoft-Windows-Security-Auditing:4608",
        "windows:Microsoft-Windows-Kernel-General:1",
        "aws:iam.amazonaws.com:AddUserToGroup",
    ]))
    .unwrap();
    assert_eq!(
        serde_json::to_value(node).unwrap(),
        json!({"any": [
            {"all": [{"field": "source", "op": "eq", "value": "Security"},
                     {"field": "event_code", "op": "in", "value": ["4608", "4616"]}]},
            {"all": [{"field": "source", "op": "eq", "value": "System"},
                     {"field": "event_code", "op": "eq", "value": "1"},
                     {"field": "attr.Event.System.Provider.#attributes.Name", "op": "eq",
                      "value": "Microsoft-Windows-Kernel-General"}]},
            {"all": [{"field": "source", "op": "eq", "value": "iam.amazonaws.com"},
                     {"field": "event_code", "op": "eq", "value": "AddUserToGroup"}]}
        ]})
    );
    // Linux lines: a marker narrows only while every line of the group has one.
    let node = condition(&pick(&[
        "linux:sshd.failed_invalid_user",
        "linux:sshd.invalid_user",
    ]))
    .unwrap();
    assert_eq!(
        serde_json::to_value(node).unwrap(),
        json!({"all": [
            {"field": "source", "op": "in", "value": ["sshd", "sshd-session"]},
            {"field": "action", "op": "eq", "value": "logon"},
            {"field": "outcome", "op": "eq", "value": "failure"},
            {"field": "message", "op": "contains", "value": "invalid user"}]})
    );
    let node = condition(&pick(&["linux:sshd.failed", "linux:sshd.invalid_user"])).unwrap();
    assert!(!serde_json::to_string(&node).unwrap().contains("contains"));
    let node = condition(&pick(&["linux:sshd.failed"])).unwrap();
    assert_eq!(
        serde_json::to_value(node).unwrap()["all"][3],
        json!({"not": {"field": "message", "op": "contains", "value": "invalid user"}})
    );
    assert_eq!(condition(&[]), None);
}
