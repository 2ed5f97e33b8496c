//! The shapes of the catalog's data files (`runtime/catalog/*.yaml`) and their reading into
//! a [`super::Catalog`]. Every struct denies unknown fields, so a misspelt key is an error
//! that names the file, line and column, not a silently missing fact.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    ActionInfo, Catalog, CategoryInfo, EventType, Family, LogonType, Origin, SourceFile,
    StatusCode, Subcategory, WellKnownSid,
};
use crate::vocab::{Action, Category, Outcome};

/// One data file, compiled into the binary.
pub(super) struct DataFile {
    pub name: &'static str,
    pub text: &'static str,
}

macro_rules! data_file {
    ($name:literal) => {
        DataFile {
            name: $name,
            text: include_str!(concat!("../../catalog/", $name)),
        }
    };
}

pub(super) const COMMON: DataFile = data_file!("common.yaml");
pub(super) const WINDOWS_SECURITY: DataFile = data_file!("windows-security.yaml");
pub(super) const WINDOWS_SYSTEM: DataFile = data_file!("windows-system.yaml");
pub(super) const SYSMON: DataFile = data_file!("sysmon.yaml");
pub(super) const LINUX_AUTH: DataFile = data_file!("linux-auth.yaml");
pub(super) const CLOUDTRAIL: DataFile = data_file!("cloudtrail.yaml");
pub(super) const WINDOWS_FIELDS: DataFile = data_file!("windows-fields.yaml");

/// Why the catalog's data cannot be read: the file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runtime/catalog/{file}{at}: {message}")]
pub struct CatalogError {
    /// The data file.
    pub file: &'static str,
    /// `:line:column` when the YAML reader knows it.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl CatalogError {
    fn new(file: &'static str, message: impl Into<String>) -> Self {
        CatalogError {
            file,
            at: String::new(),
            message: message.into(),
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(f: &DataFile) -> Result<T, CatalogError> {
    serde_yaml::from_str(f.text).map_err(|e| CatalogError {
        file: f.name,
        at: e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default(),
        message: e.to_string(),
    })
}

fn vocab<T>(
    file: &'static str,
    what: &str,
    s: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, CatalogError> {
    parse(s).ok_or_else(|| CatalogError::new(file, format!("`{s}` is not a known {what}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonFile {
    read: String,
    categories: Vec<RawCategory>,
    actions: Vec<RawAction>,
    families: Vec<RawFamily>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    key: String,
    label: String,
    about: String,
    #[serde(default)]
    terms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    key: String,
    title: String,
    #[serde(default)]
    terms: Vec<String>,
    #[serde(default)]
    failure: Vec<String>,
    #[serde(default)]
    success: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    key: String,
    title: String,
    #[serde(default)]
    terms: Vec<String>,
}

/// The fields every event type of every file may carry.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    #[serde(default)]
    id: Option<u32>,
    #[serde(default)]
    name: Option<String>,
    title: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    also: Vec<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    terms: Vec<String>,
    #[serde(default)]
    family: Vec<String>,
    #[serde(default)]
    fixture: Vec<String>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityFile {
    sources: Vec<String>,
    read: String,
    provider: String,
    channel: String,
    subcategories: BTreeMap<String, RawSubcategory>,
    events: Vec<RawEvent>,
    eventlog_provider: String,
    eventlog_events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubcategory {
    audit: String,
    category: String,
    #[serde(default)]
    terms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemFile {
    read: String,
    channels: Vec<RawChannel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    channel: String,
    #[serde(default)]
    shared: bool,
    providers: Vec<RawProvider>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    provider: String,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    note: Option<String>,
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SysmonFile {
    sources: Vec<String>,
    read: String,
    provider: String,
    channel: String,
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinuxFile {
    sources: Vec<String>,
    read: String,
    messages: Vec<RawMessage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    key: String,
    programs: Vec<String>,
    shape: String,
    title: String,
    category: String,
    action: String,
    outcome: String,
    #[serde(default)]
    marker: Option<String>,
    #[serde(default)]
    excludes: Option<String>,
    #[serde(default)]
    terms: Vec<String>,
    #[serde(default)]
    family: Vec<String>,
    #[serde(default)]
    fixture: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloudTrailFile {
    sources: Vec<String>,
    read: String,
    services: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    source: String,
    name: String,
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    meaning: String,
    category: String,
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsFile {
    read: String,
    logon_types: RawLogonTypes,
    well_known_sids: RawSids,
    logon_status_codes: RawStatusCodes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogonTypes {
    sources: Vec<String>,
    field: String,
    values: Vec<RawLogonType>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogonType {
    value: u32,
    name: String,
    about: String,
    #[serde(default)]
    terms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSids {
    sources: Vec<String>,
    values: Vec<RawSid>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSid {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    rid: Option<u32>,
    name: String,
    about: String,
    machine: bool,
    #[serde(default)]
    terms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatusCodes {
    sources: Vec<String>,
    fields: Vec<String>,
    values: Vec<RawStatusCode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatusCode {
    code: String,
    about: String,
    #[serde(default)]
    terms: Vec<String>,
}

/// Collects event types and their families while the files are read.
struct Builder {
    catalog: Catalog,
    family_members: BTreeMap<String, Vec<usize>>,
}

impl Builder {
    fn push(
        &mut self,
        file: &'static str,
        origin: Origin,
        raw: RawEvent,
        category: Category,
        audit: Option<(String, String)>,
    ) -> Result<(), CatalogError> {
        let action = raw
            .action
            .as_deref()
            .map(|a| vocab(file, "action", a, Action::parse))
            .transpose()?;
        let index = self.catalog.event_types.len();
        for f in &raw.family {
            self.family_members
                .entry(f.clone())
                .or_default()
                .push(index);
        }
        if raw.title.trim().is_empty() {
            return Err(CatalogError::new(file, "an event type has an empty title"));
        }
        self.catalog.event_types.push(EventType {
            file,
            origin,
            title: raw.title,
            category,
            audit,
            also: raw.also,
            action,
            terms: raw.terms,
            families: raw.family,
            fixtures: raw.fixture,
            note: raw.note,
        });
        Ok(())
    }
}

/// Where a Windows event of a data file is logged.
struct WindowsLog<'a> {
    provider: &'a str,
    channel: &'a str,
    shared: bool,
}

impl Builder {
    /// A Windows event of `log`: its id, and its category — the one `sub` gives (an audit
    /// subcategory's, with its audit category and name) or its own.
    fn push_windows(
        &mut self,
        file: &'static str,
        raw: RawEvent,
        log: &WindowsLog<'_>,
        sub: Option<(Category, (String, String))>,
    ) -> Result<(), CatalogError> {
        let id = raw
            .id
            .ok_or_else(|| CatalogError::new(file, format!("`{}` has no id", raw.title)))?;
        let (category, audit) = match sub {
            Some((category, audit)) => (category, Some(audit)),
            None => {
                let category = raw
                    .category
                    .as_deref()
                    .ok_or_else(|| CatalogError::new(file, format!("event {id} has no category")))
                    .and_then(|c| vocab(file, "category", c, Category::parse))?;
                (category, None)
            }
        };
        let origin = Origin::Windows {
            provider: log.provider.to_string(),
            channel: log.channel.to_string(),
            shared_channel: log.shared,
            id,
        };
        self.push(file, origin, raw, category, audit)
    }

    /// Records what a data file held: the event types added since `before`.
    fn file_read(
        &mut self,
        file: &'static str,
        about: &'static str,
        sources: Vec<String>,
        read: String,
        before: usize,
    ) {
        self.catalog.files.push(SourceFile {
            file,
            about,
            sources,
            read,
            entries: self.catalog.event_types.len() - before,
        });
    }
}

/// Reads every data file into one catalog.
pub(super) fn load() -> Result<Catalog, CatalogError> {
    let mut b = Builder {
        catalog: Catalog::default(),
        family_members: BTreeMap::new(),
    };

    // common.yaml
    let common: CommonFile = parse(&COMMON)?;
    for c in common.categories {
        b.catalog.categories.push(CategoryInfo {
            category: vocab(COMMON.name, "category", &c.key, Category::parse)?,
            label: c.label,
            about: c.about,
            terms: c.terms,
        });
    }
    for a in common.actions {
        b.catalog.actions.push(ActionInfo {
            action: vocab(COMMON.name, "action", &a.key, Action::parse)?,
            title: a.title,
            terms: a.terms,
            failure: a.failure,
            success: a.success,
        });
    }
    let families = common.families;
    b.catalog.files.push(SourceFile {
        file: COMMON.name,
        about: "categories, actions and families: the timeline's vocabulary in words",
        sources: Vec::new(),
        read: common.read,
        entries: b.catalog.categories.len() + b.catalog.actions.len() + families.len(),
    });

    // windows-security.yaml
    let f = WINDOWS_SECURITY.name;
    let sec: SecurityFile = parse(&WINDOWS_SECURITY)?;
    let before = b.catalog.event_types.len();
    for (name, s) in &sec.subcategories {
        b.catalog.subcategories.push(Subcategory {
            name: name.clone(),
            audit: s.audit.clone(),
            category: vocab(f, "category", &s.category, Category::parse)?,
            terms: s.terms.clone(),
            members: Vec::new(),
        });
    }
    let security = WindowsLog {
        provider: &sec.provider,
        channel: &sec.channel,
        shared: false,
    };
    for raw in sec.events {
        let sub_name = raw
            .sub
            .clone()
            .ok_or_else(|| CatalogError::new(f, format!("`{}` has no subcategory", raw.title)))?;
        let sub = sec.subcategories.get(&sub_name).ok_or_else(|| {
            CatalogError::new(
                f,
                format!("`{}`: unknown subcategory `{sub_name}`", raw.title),
            )
        })?;
        if let Some(also) = raw
            .also
            .iter()
            .find(|a| !sec.subcategories.contains_key(*a))
        {
            return Err(CatalogError::new(
                f,
                format!("`{}`: unknown subcategory `{also}`", raw.title),
            ));
        }
        let category = vocab(f, "category", &sub.category, Category::parse)?;
        let audit = (sub.audit.clone(), sub_name);
        b.push_windows(f, raw, &security, Some((category, audit)))?;
    }
    let eventlog = WindowsLog {
        provider: &sec.eventlog_provider,
        channel: &sec.channel,
        shared: false,
    };
    for raw in sec.eventlog_events {
        b.push_windows(f, raw, &eventlog, None)?;
    }
    b.file_read(
        f,
        "Windows Security auditing events (and the Event Log service's events of the Security log)",
        sec.sources,
        sec.read,
        before,
    );

    // windows-system.yaml
    let f = WINDOWS_SYSTEM.name;
    let sys: SystemFile = parse(&WINDOWS_SYSTEM)?;
    let before = b.catalog.event_types.len();
    let mut sys_sources = Vec::new();
    for ch in sys.channels {
        for p in ch.providers {
            sys_sources.extend(p.sources);
            let log = WindowsLog {
                provider: &p.provider,
                channel: &ch.channel,
                shared: ch.shared,
            };
            for mut raw in p.events {
                if raw.note.is_none() {
                    raw.note = p.note.clone();
                }
                b.push_windows(f, raw, &log, None)?;
            }
        }
    }
    b.file_read(
        f,
        "Windows System-log events (services, Event Log service, time, startup and shutdown) and PowerShell / Defender operational events",
        sys_sources,
        sys.read,
        before,
    );

    // sysmon.yaml
    let f = SYSMON.name;
    let sm: SysmonFile = parse(&SYSMON)?;
    let before = b.catalog.event_types.len();
    let sysmon = WindowsLog {
        provider: &sm.provider,
        channel: &sm.channel,
        shared: false,
    };
    for raw in sm.events {
        b.push_windows(f, raw, &sysmon, None)?;
    }
    b.file_read(f, "Sysmon event ids", sm.sources, sm.read, before);

    // linux-auth.yaml
    let f = LINUX_AUTH.name;
    let lx: LinuxFile = parse(&LINUX_AUTH)?;
    let before = b.catalog.event_types.len();
    for m in lx.messages {
        let category = vocab(f, "category", &m.category, Category::parse)?;
        let outcome = vocab(f, "outcome", &m.outcome, Outcome::parse)?;
        if m.programs.is_empty() {
            return Err(CatalogError::new(
                f,
                format!("`{}` names no program", m.key),
            ));
        }
        let raw = RawEvent {
            title: m.title,
            action: Some(m.action),
            terms: m.terms,
            family: m.family,
            fixture: m.fixture,
            ..RawEvent::default()
        };
        let origin = Origin::Linux {
            key: m.key,
            programs: m.programs,
            shape: m.shape,
            outcome,
            marker: m.marker,
            excludes: m.excludes,
        };
        b.push(f, origin, raw, category, None)?;
    }
    b.file_read(
        f,
        "Linux authentication programs and the log lines the pipeline parses",
        lx.sources,
        lx.read,
        before,
    );

    // cloudtrail.yaml
    let f = CLOUDTRAIL.name;
    let ct: CloudTrailFile = parse(&CLOUDTRAIL)?;
    let before = b.catalog.event_types.len();
    for service in ct.services {
        for group in service.groups {
            let category = vocab(f, "category", &group.category, Category::parse)?;
            for raw in group.events {
                let name = raw
                    .name
                    .clone()
                    .ok_or_else(|| CatalogError::new(f, format!("`{}` has no name", raw.title)))?;
                let origin = Origin::CloudTrail {
                    service: service.source.clone(),
                    service_name: service.name.clone(),
                    meaning: group.meaning.clone(),
                    name,
                };
                b.push(f, origin, raw, category, None)?;
            }
        }
    }
    b.file_read(
        f,
        "AWS CloudTrail event names by service and meaning",
        ct.sources,
        ct.read,
        before,
    );

    // windows-fields.yaml
    let f = WINDOWS_FIELDS.name;
    let fields: FieldsFile = parse(&WINDOWS_FIELDS)?;
    b.catalog.logon_type_field = fields.logon_types.field;
    b.catalog.status_fields = fields.logon_status_codes.fields;
    for l in fields.logon_types.values {
        b.catalog.logon_types.push(LogonType {
            value: l.value,
            name: l.name,
            about: l.about,
            terms: l.terms,
        });
    }
    for s in fields.well_known_sids.values {
        if s.sid.is_some() == s.rid.is_some() {
            return Err(CatalogError::new(
                f,
                format!("`{}` needs exactly one of sid and rid", s.name),
            ));
        }
        b.catalog.sids.push(WellKnownSid {
            sid: s.sid,
            rid: s.rid,
            name: s.name,
            about: s.about,
            machine: s.machine,
            terms: s.terms,
        });
    }
    for s in fields.logon_status_codes.values {
        if s.code != s.code.to_ascii_lowercase() || !s.code.starts_with("0x") {
            return Err(CatalogError::new(
                f,
                format!(
                    "status code `{}` must be lower-case hex like 0xc000006a",
                    s.code
                ),
            ));
        }
        b.catalog.status_codes.push(StatusCode {
            code: s.code,
            about: s.about,
            terms: s.terms,
        });
    }
    let mut field_sources = fields.logon_types.sources;
    field_sources.extend(fields.well_known_sids.sources);
    field_sources.extend(fields.logon_status_codes.sources);
    b.catalog.files.push(SourceFile {
        file: f,
        about: "logon types, well-known SIDs and accounts, failed-logon status codes",
        sources: field_sources,
        read: fields.read,
        entries: b.catalog.logon_types.len() + b.catalog.sids.len() + b.catalog.status_codes.len(),
    });

    // Families: declared in common.yaml, joined in the event files.
    for fam in families {
        let members = b.family_members.remove(&fam.key).unwrap_or_default();
        if members.is_empty() {
            return Err(CatalogError::new(
                COMMON.name,
                format!("family `{}` has no event type", fam.key),
            ));
        }
        b.catalog.families.push(Family {
            key: fam.key,
            title: fam.title,
            terms: fam.terms,
            members,
        });
    }
    if let Some((key, members)) = b.family_members.into_iter().next() {
        let t = &b.catalog.event_types[members[0]];
        return Err(CatalogError::new(
            t.file,
            format!(
                "`{}` joins family `{key}`, which common.yaml does not declare",
                t.title
            ),
        ));
    }
    b.catalog.finish()
}
