//! Windows event rules: Security auditing, Sysmon and the Service Control Manager.
//!
//! | event | action | outcome |
//! |---|---|---|
//! | Security 4624 / 4625 | `logon` | success / failure |
//! | Security 4634, 4647 | `logoff` | success |
//! | Security 4648 | `explicit_credentials` | from the audit keywords |
//! | Security 4672 | `special_privileges` | from the audit keywords |
//! | Security 4688, Sysmon 1 | `process_start` | success |
//! | Sysmon 3 | `network_connection` | success |
//! | Security 4720, 4722, 4723, 4724, 4725, 4726 | `account_created`, `account_enabled`, `password_change`, `password_reset`, `account_disabled`, `account_deleted` | from the audit keywords |
//! | Security 4727–4737 | `group_changed` | from the audit keywords |
//! | Security 4738 | `account_changed` | from the audit keywords |
//! | Service Control Manager 7045 | `service_installed` | success |
//!
//! "From the audit keywords": `Audit Failure` (`0x0010000000000000`) is `failure`, anything
//! else `success`. Event ids are only mapped for their own provider (a Sysmon id 1 is not
//! a kernel id 1).

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

use super::json_str;
use crate::pipeline::event::{Identity, parse_ip};
use crate::vocab::{Action, Outcome};

/// Provider of the Security log's auditing events.
pub const SECURITY_AUDITING: &str = "Microsoft-Windows-Security-Auditing";
/// Provider of Sysmon events.
pub const SYSMON: &str = "Microsoft-Windows-Sysmon";
/// Provider of service-control events (7045) in the System log.
pub const SERVICE_CONTROL_MANAGER: &str = "Service Control Manager";

const AUDIT_FAILURE: u64 = 0x0010_0000_0000_0000;

/// The action and outcome of a Windows event, from its provider, id and keywords.
pub fn action(provider: &str, event_id: u32, keywords: Option<u64>) -> Option<(Action, Outcome)> {
    let audited = || {
        if keywords.is_some_and(|k| k & AUDIT_FAILURE != 0) {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    };
    if provider.eq_ignore_ascii_case(SECURITY_AUDITING) {
        let action = match event_id {
            4624 => return Some((Action::Logon, Outcome::Success)),
            4625 => return Some((Action::Logon, Outcome::Failure)),
            4634 | 4647 => Action::Logoff,
            4648 => Action::ExplicitCredentials,
            4672 => Action::SpecialPrivileges,
            4688 => Action::ProcessStart,
            4720 => Action::AccountCreated,
            4722 => Action::AccountEnabled,
            4723 => Action::PasswordChange,
            4724 => Action::PasswordReset,
            4725 => Action::AccountDisabled,
            4726 => Action::AccountDeleted,
            4727..=4737 => Action::GroupChanged,
            4738 => Action::AccountChanged,
            _ => return None,
        };
        return Some((action, audited()));
    }
    if provider.eq_ignore_ascii_case(SYSMON) {
        return match event_id {
            1 => Some((Action::ProcessStart, Outcome::Success)),
            3 => Some((Action::NetworkConnection, Outcome::Success)),
            _ => None,
        };
    }
    if provider.eq_ignore_ascii_case(SERVICE_CONTROL_MANAGER) && event_id == 7045 {
        return Some((Action::ServiceInstalled, Outcome::Success));
    }
    None
}

/// Parses an EVTX `Keywords` value (`0x8020000000000000`).
pub fn parse_keywords(s: &str) -> Option<u64> {
    let s = s.trim();
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(hex, 16).ok()
}

/// What the normalizer takes from one EVTX record (the evtx crate's JSON of `<Event>`).
#[derive(Debug, Default)]
pub struct WindowsFields {
    /// `System/Provider/@Name`.
    pub provider: String,
    /// `System/Channel`.
    pub channel: String,
    /// `System/EventID`.
    pub event_id: Option<u32>,
    /// `System/Computer`.
    pub computer: Option<String>,
    /// Action and outcome, when mapped.
    pub action: Option<(Action, Outcome)>,
    /// The identity the event is about.
    pub identity: Option<Identity>,
    /// Source address.
    pub src_ip: Option<std::net::IpAddr>,
    /// Destination address.
    pub dst_ip: Option<std::net::IpAddr>,
    /// A one-line description.
    pub message: String,
}

// The parts of the rendered record the rules read. Deserialized straight from the JSON
// text, borrowing from it, skipping the rest: no tree of the whole record is built.
#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(rename = "Event", borrow)]
    event: Ev<'a>,
}

#[derive(Deserialize)]
struct Ev<'a> {
    #[serde(rename = "System", borrow, default)]
    system: Option<Sys<'a>>,
    #[serde(rename = "EventData", borrow, default)]
    event_data: Option<Fields<'a>>,
    #[serde(rename = "UserData", borrow, default)]
    user_data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Sys<'a> {
    #[serde(borrow, default)]
    provider: Option<WithAttributes<'a>>,
    #[serde(rename = "EventID", borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(borrow, default)]
    computer: Option<&'a RawValue>,
    #[serde(borrow, default)]
    keywords: Option<&'a RawValue>,
    #[serde(borrow, default)]
    security: Option<WithAttributes<'a>>,
}

#[derive(Deserialize)]
struct WithAttributes<'a> {
    #[serde(rename = "#attributes", borrow, default)]
    attributes: Option<Fields<'a>>,
}

/// A JSON object's members in document order, values left as raw JSON. Anything that is
/// not an object reads as no members (EVTX `EventData` can be text or a list).
#[derive(Default)]
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Fields<'a>, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key::<Key<'a>>()? {
                    let value: &'a RawValue = map.next_value()?;
                    out.push((key.0, value));
                }
                Ok(Fields(out))
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Fields<'a>, S::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Fields::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Fields<'a>, E> {
                Ok(Fields::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Fields<'a>, E> {
                Ok(Fields::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Fields<'a>, E> {
                Ok(Fields::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Fields<'a>, E> {
                Ok(Fields::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Fields<'a>, E> {
                Ok(Fields::default())
            }
            fn visit_unit<E>(self) -> Result<Fields<'a>, E> {
                Ok(Fields::default())
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'a> Fields<'a> {
    fn parse(raw: Option<&'a RawValue>) -> Fields<'a> {
        raw.and_then(|r| serde_json::from_str(r.get()).ok())
            .unwrap_or_default()
    }

    fn raw(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.raw(name).and_then(scalar)
    }
}

/// A raw JSON scalar as text: strings unescaped, numbers and booleans printed, EVTX
/// `{"#text": v}` objects unwrapped; `None` for null, arrays and other objects.
fn scalar(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    match text.as_bytes().first()? {
        // Most values have no escapes: borrow them without a copy.
        b'"' if text.len() >= 2 && !text.contains('\\') => {
            Some(Cow::Borrowed(&text[1..text.len() - 1]))
        }
        b'"' => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
        b'{' | b'[' => serde_json::from_str::<Value>(text)
            .ok()
            .as_ref()
            .and_then(json_str)
            .map(|s| Cow::Owned(s.into_owned())),
        b'n' => None,
        _ => Some(Cow::Borrowed(text)),
    }
}

/// Reads the fields of an EVTX record rendered as JSON (`{"Event": {"System": …, "EventData": …}}`).
pub fn fields(json: &str) -> WindowsFields {
    let Ok(doc) = serde_json::from_str::<Doc<'_>>(json) else {
        return WindowsFields {
            message: "[? / ?] record without an Event element".into(),
            ..WindowsFields::default()
        };
    };
    let event = doc.event;
    let system = event.system;
    let attr = |w: Option<&WithAttributes<'_>>, name: &str| -> Option<String> {
        w.and_then(|w| w.attributes.as_ref())
            .and_then(|a| a.get(name))
            .map(Cow::into_owned)
    };
    let provider =
        attr(system.as_ref().and_then(|s| s.provider.as_ref()), "Name").unwrap_or_default();
    let security_user = attr(system.as_ref().and_then(|s| s.security.as_ref()), "UserID");
    let sys = |raw: Option<&RawValue>| raw.and_then(scalar).map(Cow::into_owned);
    let channel = sys(system.as_ref().and_then(|s| s.channel)).unwrap_or_default();
    let event_id =
        sys(system.as_ref().and_then(|s| s.event_id)).and_then(|s| s.trim().parse::<u32>().ok());
    let computer = sys(system.as_ref().and_then(|s| s.computer))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s != "-");
    let keywords = sys(system.as_ref().and_then(|s| s.keywords)).and_then(|k| parse_keywords(&k));
    let data = match event.event_data {
        Some(fields) => fields,
        // `UserData` holds one element whose children are the named fields.
        None => Fields::parse(Fields::parse(event.user_data).0.first().map(|(_, v)| *v)),
    };
    let action = event_id.and_then(|id| action(&provider, id, keywords));

    let get = |name: &str| data.get(name);
    let subject = || {
        Identity::windows(
            get("SubjectUserName").as_deref(),
            get("SubjectDomainName").as_deref(),
            get("SubjectUserSid").as_deref(),
        )
    };
    let target = || {
        Identity::windows(
            get("TargetUserName").as_deref(),
            get("TargetDomainName").as_deref(),
            get("TargetUserSid").or_else(|| get("TargetSid")).as_deref(),
        )
    };
    let is_sysmon = provider.eq_ignore_ascii_case(SYSMON);
    let is_security = provider.eq_ignore_ascii_case(SECURITY_AUDITING);
    let identity = match event_id {
        _ if is_sysmon => Identity::windows(get("User").as_deref(), None, None),
        Some(4624 | 4625 | 4634 | 4647 | 4720..=4726 | 4738) if is_security => target(),
        Some(4727..=4737) if is_security => {
            let name = get("MemberName").filter(|n| !n.to_ascii_uppercase().starts_with("CN="));
            Identity::windows(name.as_deref(), None, get("MemberSid").as_deref()).or_else(subject)
        }
        Some(7045) => Identity::windows(None, None, security_user.as_deref()),
        _ => subject().or_else(|| Identity::windows(None, None, security_user.as_deref())),
    };
    let ip = |name: &str| get(name).and_then(|s| parse_ip(&s));
    let (src_ip, dst_ip) = match event_id {
        Some(3) if is_sysmon => (ip("SourceIp"), ip("DestinationIp")),
        Some(4648) if is_security => (None, ip("IpAddress")),
        _ if is_security => (ip("IpAddress"), None),
        _ => (None, None),
    };
    let message = message(&channel, &provider, event_id, &data);
    WindowsFields {
        provider,
        channel,
        event_id,
        computer,
        action,
        identity,
        src_ip,
        dst_ip,
        message,
    }
}

fn message(channel: &str, provider: &str, event_id: Option<u32>, data: &Fields<'_>) -> String {
    use std::fmt::Write;
    let mut m = String::with_capacity(256);
    let id = event_id
        .map(|i| i.to_string())
        .unwrap_or_else(|| "?".into());
    let _ = write!(m, "[{id} / {provider}] {channel}");
    let mut first = true;
    for (k, v) in &data.0 {
        if k == "#attributes" {
            continue;
        }
        let v: Cow<'_, str> = if v.get().starts_with('[') {
            match serde_json::from_str::<Vec<Value>>(v.get()) {
                Ok(items) => Cow::Owned(
                    items
                        .iter()
                        .filter_map(json_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                Err(_) => continue,
            }
        } else {
            match scalar(v) {
                Some(s) => s,
                None => continue,
            }
        };
        m.push_str(if first { ": " } else { "; " });
        first = false;
        m.push_str(k);
        m.push('=');
        m.push_str(&v);
        if m.len() > super::MAX_MESSAGE_LEN {
            break;
        }
    }
    super::clip_message(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_ids_map_only_for_their_provider() {
        assert_eq!(
            action(SECURITY_AUDITING, 4624, None),
            Some((Action::Logon, Outcome::Success))
        );
        assert_eq!(action("Microsoft-Windows-Kernel-General", 1, None), None);
        assert_eq!(
            action(SYSMON, 1, None),
            Some((Action::ProcessStart, Outcome::Success))
        );
        assert_eq!(action(SYSMON, 4624, None), None);
        assert_eq!(
            action(
                SECURITY_AUDITING,
                4723,
                parse_keywords("0x8010000000000000")
            ),
            Some((Action::PasswordChange, Outcome::Failure))
        );
        assert_eq!(
            action(SERVICE_CONTROL_MANAGER, 7045, None),
            Some((Action::ServiceInstalled, Outcome::Success))
        );
    }

    #[test]
    fn logon_fields_take_the_target_account_and_source_address() {
        let record = json!({"Event": {
            "System": {
                "Provider": {"#attributes": {"Name": SECURITY_AUDITING}},
                "EventID": 4625, "Keywords": "0x8010000000000000",
                "Channel": "Security", "Computer": "WS01"
            },
            "EventData": {
                "SubjectUserSid": "S-1-5-18", "SubjectUserName": "WS01$", "SubjectDomainName": "CORP",
                "TargetUserSid": "S-1-0-0", "TargetUserName": "admin", "TargetDomainName": "CORP",
                "IpAddress": "10.1.2.3", "IpPort": "51234"
            }
        }});
        let f = fields(&record.to_string());
        assert_eq!(f.action, Some((Action::Logon, Outcome::Failure)));
        assert_eq!(f.identity.unwrap().value, "CORP\\admin");
        assert_eq!(f.src_ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(f.computer.as_deref(), Some("WS01"));
        assert!(
            f.message
                .starts_with("[4625 / Microsoft-Windows-Security-Auditing] Security: ")
        );
        assert!(f.message.contains("TargetUserName=admin"));
    }

    #[test]
    fn event_id_with_qualifiers_is_read() {
        let record = json!({"Event": {"System": {
            "Provider": {"#attributes": {"Name": SERVICE_CONTROL_MANAGER}},
            "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 7045},
            "Security": {"#attributes": {"UserID": "S-1-5-21-1-2-3-500"}}
        }, "EventData": {"ServiceName": "evil", "ImagePath": "C:\\evil.exe", "AccountName": "LocalSystem"}}});
        let f = fields(&record.to_string());
        assert_eq!(f.event_id, Some(7045));
        assert_eq!(f.action, Some((Action::ServiceInstalled, Outcome::Success)));
        assert_eq!(f.identity.unwrap().value, "S-1-5-21-1-2-3-500");
    }
}
