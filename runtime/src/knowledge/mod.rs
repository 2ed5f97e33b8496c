//! The event catalog: what events mean, shipped as data (`runtime/catalog/*.yaml`, each
//! file with its sources and the date they were read) and loaded once, on first use.
//!
//! It knows every documented Windows Security auditing event (title, audit category and
//! subcategory), the System-log and operational Windows events investigators use, Sysmon's
//! event ids, the Linux authentication lines the pipeline parses, CloudTrail event names by
//! service and meaning, and what Windows field values mean (logon types, well-known SIDs,
//! failed-logon status codes). The timeline's [`Category`] of each event type and the words
//! investigators use for them (`terms`) are ours.
//!
//! Used by the pipeline (every event gets its catalog title and category), the API (titles
//! of events stored before the catalog existed), the local translator (questions matched
//! against titles and terms) and the Bedrock prompt (the event types present in a case).
//! It holds knowledge only: it reads no evidence and talks to nothing.

mod files;

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono_contract::data_type;
use serde_json::json;

pub use files::CatalogError;

use crate::filter::{Field, Leaf, Node, Op};
use crate::vocab::{Action, Category, Outcome};

/// Where the pipeline keeps an EVTX record's provider name (the record stays nested in
/// `attributes`; the filter compiler follows dotted keys).
pub const PROVIDER_ATTR: &str = "Event.System.Provider.#attributes.Name";

/// Where one catalog entry comes from, and how the pipeline recognises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A Windows event: provider, channel (the event's `source`) and id.
    Windows {
        /// `System/Provider/@Name`.
        provider: String,
        /// `System/Channel`.
        channel: String,
        /// Many providers write to the channel, so an id there needs its provider.
        shared_channel: bool,
        /// `System/EventID`.
        id: u32,
    },
    /// A Linux log line of a known shape.
    Linux {
        /// What the normalizer reports for it (`sshd.accepted`).
        key: String,
        /// The syslog programs that write it (the event's `source`).
        programs: Vec<String>,
        /// The message's shape, for people.
        shape: String,
        /// How it ended.
        outcome: Outcome,
        /// Text its messages contain and the program's other lines of the same action and
        /// outcome do not.
        marker: Option<String>,
        /// Text its messages never contain and the program's other lines of the same action
        /// and outcome do.
        excludes: Option<String>,
    },
    /// A CloudTrail event.
    CloudTrail {
        /// `eventSource` (the event's `source`).
        service: String,
        /// The service's name for people.
        service_name: String,
        /// What the group of calls is about.
        meaning: String,
        /// `eventName` (the event's `event_code`).
        name: String,
    },
}

/// One kind of event the catalog knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventType {
    /// The data file it is written in.
    pub file: &'static str,
    /// Where it comes from.
    pub origin: Origin,
    /// What happened, as the timeline shows it.
    pub title: String,
    /// The timeline category.
    pub category: Category,
    /// Windows audit category and subcategory, for Security auditing events.
    pub audit: Option<(String, String)>,
    /// Other audit subcategories that also generate it.
    pub also: Vec<String>,
    /// The action the normalizer writes for it, if any.
    pub action: Option<Action>,
    /// Words investigators use for it (ours).
    pub terms: Vec<String>,
    /// The families it belongs to.
    pub families: Vec<String>,
    /// Real evidence files in `runtime/testdata/evidence/` that hold it.
    pub fixtures: Vec<String>,
    /// A caveat about the entry's facts.
    pub note: Option<String>,
}

impl EventType {
    /// The `source` value(s) of its events.
    pub fn sources(&self) -> Vec<&str> {
        match &self.origin {
            Origin::Windows { channel, .. } => vec![channel.as_str()],
            Origin::Linux { programs, .. } => programs.iter().map(String::as_str).collect(),
            Origin::CloudTrail { service, .. } => vec![service.as_str()],
        }
    }

    /// The `event_code` of its events (Linux lines have none).
    pub fn code(&self) -> Option<String> {
        match &self.origin {
            Origin::Windows { id, .. } => Some(id.to_string()),
            Origin::Linux { .. } => None,
            Origin::CloudTrail { name, .. } => Some(name.clone()),
        }
    }

    /// A key unique in the catalog (`windows:Microsoft-Windows-Security-Auditing:4624`,
    /// `linux:sshd.accepted`, `aws:iam.amazonaws.com:CreateUser`).
    pub fn key(&self) -> String {
        match &self.origin {
            Origin::Windows { provider, id, .. } => format!("windows:{provider}:{id}"),
            Origin::Linux { key, .. } => format!("linux:{key}"),
            Origin::CloudTrail { service, name, .. } => format!("aws:{service}:{name}"),
        }
    }
}

/// A timeline category, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryInfo {
    /// The category.
    pub category: Category,
    /// Its name for people.
    pub label: String,
    /// What it holds.
    pub about: String,
    /// Words investigators use for it.
    pub terms: Vec<String>,
}

/// An action of the vocabulary, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInfo {
    /// The action.
    pub action: Action,
    /// Its name for people.
    pub title: String,
    /// Words for it.
    pub terms: Vec<String>,
    /// Words for it that also say it failed.
    pub failure: Vec<String>,
    /// Words for it that also say it succeeded.
    pub success: Vec<String>,
}

/// Event types that mean one thing to an investigator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Its key in the data files.
    pub key: String,
    /// Its name for people.
    pub title: String,
    /// Words for it.
    pub terms: Vec<String>,
    /// Indexes of its event types in [`Catalog::event_types`].
    pub members: Vec<usize>,
}

/// A Windows audit subcategory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subcategory {
    /// Microsoft's name ("Credential Validation").
    pub name: String,
    /// Its audit category ("Account Logon").
    pub audit: String,
    /// The timeline category of its events.
    pub category: Category,
    /// Words for it.
    pub terms: Vec<String>,
    /// Indexes of the event types it generates (also those it shares).
    pub members: Vec<usize>,
}

/// A Windows logon type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonType {
    /// The `LogonType` value.
    pub value: u32,
    /// Microsoft's name.
    pub name: String,
    /// What it means.
    pub about: String,
    /// Words for it.
    pub terms: Vec<String>,
}

/// A well-known security identifier (or relative id) and the account behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WellKnownSid {
    /// The SID, for fixed ones.
    pub sid: Option<String>,
    /// The relative id, for domain- or machine-relative ones.
    pub rid: Option<u32>,
    /// The account's name.
    pub name: String,
    /// What it is.
    pub about: String,
    /// It is the machine itself or nobody, not a person.
    pub machine: bool,
    /// Words for it.
    pub terms: Vec<String>,
}

/// A status or sub-status code of a failed logon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCode {
    /// Lower-case hex (`0xc000006a`).
    pub code: String,
    /// What it means.
    pub about: String,
    /// Words for it.
    pub terms: Vec<String>,
}

/// One data file: what it holds, its sources, when they were read, how many entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The file name in `runtime/catalog/`.
    pub file: &'static str,
    /// What it holds.
    pub about: &'static str,
    /// Where its facts come from.
    pub sources: Vec<String>,
    /// When the sources were read.
    pub read: String,
    /// Entries in it.
    pub entries: usize,
}

/// The whole catalog.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Every category, in words.
    pub categories: Vec<CategoryInfo>,
    /// Every action, in words.
    pub actions: Vec<ActionInfo>,
    /// Families of event types.
    pub families: Vec<Family>,
    /// Windows audit subcategories.
    pub subcategories: Vec<Subcategory>,
    /// Every event type.
    pub event_types: Vec<EventType>,
    /// Windows logon types.
    pub logon_types: Vec<LogonType>,
    /// Where logon types are kept in an EVTX record.
    pub logon_type_field: String,
    /// Well-known SIDs and accounts.
    pub sids: Vec<WellKnownSid>,
    /// Failed-logon status codes.
    pub status_codes: Vec<StatusCode>,
    /// Where status codes are kept in an EVTX record.
    pub status_fields: Vec<String>,
    /// The data files.
    pub files: Vec<SourceFile>,
    windows_providers: Vec<String>,
    windows: HashMap<(usize, u32), usize>,
    channel_codes: HashMap<(String, String), Vec<usize>>,
    linux: HashMap<String, usize>,
    cloudtrail: HashMap<(String, String), usize>,
}

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| match files::load() {
    Ok(c) => c,
    // The data is compiled in and its loading is tested (`knowledge::tests`): this only
    // happens to a binary built from files no test ran on.
    Err(e) => panic!("the event catalog compiled into this binary is invalid: {e}"),
});

/// The catalog (read on first use).
pub fn catalog() -> &'static Catalog {
    &CATALOG
}

/// Reads the catalog's data files (tests and tools; the runtime uses [`catalog`]).
pub fn load() -> Result<Catalog, CatalogError> {
    files::load()
}

impl Catalog {
    /// Builds the indexes and checks that keys are unique.
    fn finish(mut self) -> Result<Catalog, CatalogError> {
        for (i, t) in self.event_types.iter().enumerate() {
            match &t.origin {
                Origin::Windows {
                    provider,
                    channel,
                    id,
                    ..
                } => {
                    let p = match self
                        .windows_providers
                        .iter()
                        .position(|x| x.eq_ignore_ascii_case(provider))
                    {
                        Some(p) => p,
                        None => {
                            self.windows_providers.push(provider.clone());
                            self.windows_providers.len() - 1
                        }
                    };
                    if self.windows.insert((p, *id), i).is_some() {
                        return Err(CatalogError {
                            file: t.file,
                            at: String::new(),
                            message: format!("{provider} event {id} is listed twice"),
                        });
                    }
                    self.channel_codes
                        .entry((channel.clone(), id.to_string()))
                        .or_default()
                        .push(i);
                }
                Origin::Linux { key, .. } => {
                    if self.linux.insert(key.clone(), i).is_some() {
                        return Err(CatalogError {
                            file: t.file,
                            at: String::new(),
                            message: format!("line key `{key}` is listed twice"),
                        });
                    }
                }
                Origin::CloudTrail { service, name, .. } => {
                    if self
                        .cloudtrail
                        .insert((service.clone(), name.clone()), i)
                        .is_some()
                    {
                        return Err(CatalogError {
                            file: t.file,
                            at: String::new(),
                            message: format!("{service} {name} is listed twice"),
                        });
                    }
                }
            }
        }
        for (i, t) in self.event_types.iter().enumerate() {
            if let Some((_, sub)) = &t.audit {
                for s in self.subcategories.iter_mut() {
                    if &s.name == sub || t.also.contains(&s.name) {
                        s.members.push(i);
                    }
                }
            }
        }
        Ok(self)
    }

    /// The Windows event `id` of `provider` (compared ignoring ASCII case).
    pub fn windows(&self, provider: &str, id: u32) -> Option<&EventType> {
        let p = self
            .windows_providers
            .iter()
            .position(|x| x.eq_ignore_ascii_case(provider))?;
        self.windows.get(&(p, id)).map(|&i| &self.event_types[i])
    }

    /// The Linux line the normalizer reported as `key` (`sshd.accepted`).
    pub fn linux(&self, key: &str) -> Option<&EventType> {
        self.linux.get(key).map(|&i| &self.event_types[i])
    }

    /// The CloudTrail event `name` of `service` (`iam.amazonaws.com`, `CreateUser`).
    pub fn cloudtrail(&self, service: &str, name: &str) -> Option<&EventType> {
        self.cloudtrail
            .get(&(service.to_owned(), name.to_owned()))
            .map(|&i| &self.event_types[i])
    }

    /// The event type of a stored event from its `data_type`, `source` and `event_code`
    /// (for events the pipeline stored without a title). A Windows channel id that several
    /// providers share is not guessed.
    pub fn stored(&self, data_type: &str, source: &str, code: Option<&str>) -> Option<&EventType> {
        let code = code?;
        match data_type {
            data_type::WINDOWS_EVTX => match self
                .channel_codes
                .get(&(source.to_owned(), code.to_owned()))
                .map(Vec::as_slice)
            {
                Some([one]) => Some(&self.event_types[*one]),
                _ => None,
            },
            data_type::CLOUDTRAIL => self.cloudtrail(source, code),
            _ => None,
        }
    }

    /// The words for `category`.
    pub fn category(&self, category: Category) -> Option<&CategoryInfo> {
        self.categories.iter().find(|c| c.category == category)
    }

    /// The family `key`.
    pub fn family(&self, key: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.key == key)
    }

    /// The well-known SID whose name is `name` (ignoring ASCII case), fixed SIDs only.
    pub fn sid_named(&self, name: &str) -> Option<&WellKnownSid> {
        self.sids
            .iter()
            .find(|s| s.sid.is_some() && s.name.eq_ignore_ascii_case(name))
    }
}

fn leaf(field: Field, op: Op, value: serde_json::Value) -> Node {
    Node::Leaf(Leaf {
        field,
        op,
        value: Some(value),
    })
}

fn eq_or_in(field: Field, mut values: Vec<String>) -> Node {
    values.dedup();
    if values.len() == 1 {
        leaf(field, Op::Eq, json!(values[0]))
    } else {
        leaf(field, Op::In, json!(values))
    }
}

/// The filter condition matching events of `types`: per source one group of `source` and
/// `event_code` (plus the provider on a shared Windows channel, action / outcome and the
/// marker for Linux lines); an `any` of the groups when there are several. `None` for no
/// types.
pub fn condition(types: &[&EventType]) -> Option<Node> {
    // (group key, leaves builder input)
    enum Group<'a> {
        Windows {
            channel: &'a str,
            provider: Option<&'a str>,
            ids: Vec<u32>,
        },
        Linux {
            programs: &'a [String],
            action: Option<Action>,
            outcome: Outcome,
            /// (marker, excludes) of each member.
            texts: Vec<(Option<&'a str>, Option<&'a str>)>,
        },
        Aws {
            service: &'a str,
            names: Vec<&'a str>,
        },
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    for t in types {
        match &t.origin {
            Origin::Windows {
                provider,
                channel,
                shared_channel,
                id,
            } => {
                let provider = shared_channel.then_some(provider.as_str());
                match groups.iter_mut().find_map(|g| match g {
                    Group::Windows {
                        channel: c,
                        provider: p,
                        ids,
                    } if *c == channel.as_str() && *p == provider => Some(ids),
                    _ => None,
                }) {
                    Some(ids) => ids.push(*id),
                    None => groups.push(Group::Windows {
                        channel,
                        provider,
                        ids: vec![*id],
                    }),
                }
            }
            Origin::Linux {
                programs,
                outcome,
                marker,
                excludes,
                ..
            } => {
                let text = (marker.as_deref(), excludes.as_deref());
                match groups.iter_mut().find_map(|g| match g {
                    Group::Linux {
                        programs: p,
                        action: a,
                        outcome: o,
                        texts,
                    } if *p == programs.as_slice() && *a == t.action && o == outcome => Some(texts),
                    _ => None,
                }) {
                    Some(texts) => texts.push(text),
                    None => groups.push(Group::Linux {
                        programs,
                        action: t.action,
                        outcome: *outcome,
                        texts: vec![text],
                    }),
                }
            }
            Origin::CloudTrail { service, name, .. } => {
                match groups.iter_mut().find_map(|g| match g {
                    Group::Aws { service: s, names } if *s == service.as_str() => Some(names),
                    _ => None,
                }) {
                    Some(names) => names.push(name),
                    None => groups.push(Group::Aws {
                        service,
                        names: vec![name],
                    }),
                }
            }
        }
    }
    let mut nodes: Vec<Node> = groups
        .into_iter()
        .map(|g| {
            let leaves = match g {
                Group::Windows {
                    channel,
                    provider,
                    mut ids,
                } => {
                    ids.sort_unstable();
                    let mut leaves = vec![
                        leaf(Field::Source, Op::Eq, json!(channel)),
                        eq_or_in(Field::EventCode, ids.iter().map(u32::to_string).collect()),
                    ];
                    if let Some(p) = provider {
                        leaves.push(leaf(Field::Attr(PROVIDER_ATTR.into()), Op::Eq, json!(p)));
                    }
                    leaves
                }
                Group::Linux {
                    programs,
                    action,
                    outcome,
                    texts,
                } => {
                    let mut leaves = vec![eq_or_in(Field::Source, programs.to_vec())];
                    if let Some(a) = action {
                        leaves.push(leaf(Field::Action, Op::Eq, json!(a.as_str())));
                    }
                    leaves.push(leaf(Field::Outcome, Op::Eq, json!(outcome.as_str())));
                    if let Some(text) = line_text(&texts) {
                        leaves.push(text);
                    }
                    leaves
                }
                Group::Aws { service, names } => vec![
                    leaf(Field::Source, Op::Eq, json!(service)),
                    eq_or_in(
                        Field::EventCode,
                        names.into_iter().map(str::to_owned).collect(),
                    ),
                ],
            };
            Node::All(leaves)
        })
        .collect();
    match nodes.len() {
        0 => None,
        1 => nodes.pop(),
        _ => Some(Node::Any(nodes)),
    }
}

/// The message condition telling a group of Linux line shapes from the program's other
/// lines of the same action and outcome: `None` when the group covers them all.
fn line_text(texts: &[(Option<&str>, Option<&str>)]) -> Option<Node> {
    let contains = |m: &str| leaf(Field::Message, Op::Contains, json!(m));
    // a shape with neither, or one shape excluding what another requires: every line
    if texts.iter().any(|(m, x)| m.is_none() && x.is_none())
        || texts
            .iter()
            .any(|(_, x)| x.is_some_and(|x| texts.iter().any(|(m, _)| *m == Some(x))))
    {
        return None;
    }
    let mut markers: Vec<&str> = texts.iter().filter_map(|(m, _)| *m).collect();
    markers.sort_unstable();
    markers.dedup();
    let mut excludes: Vec<&str> = texts.iter().filter_map(|(_, x)| *x).collect();
    excludes.sort_unstable();
    excludes.dedup();
    let mut parts: Vec<Node> = markers.into_iter().map(contains).collect();
    parts.extend(
        excludes
            .into_iter()
            .map(|x| Node::Not(Box::new(contains(x)))),
    );
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Node::Any(parts)),
    }
}

#[cfg(test)]
mod tests;
