//! What previews exist in an account, read from the stacks' tags and outputs alone (no
//! config): `preview list`, the collision and expiry checks of `preview up`, the stack list
//! of `preview down` and the verdicts of `preview gc`.
//!
//! The selector is deliberately narrow: a stack belongs to a preview only when it is tagged
//! `chrono:preview=true` **and** `chrono:managed-by=chronoctl` **and** `chrono:stage=preview`,
//! and is not an account-wide stack (`chrono:scope=account`). A production stack with a past
//! `chrono:expires-at` tag but no preview tag is never a preview.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_contract::{outputs, tags};

use crate::deploy::DeployError;
use crate::deploy::error::sdk_message;

/// One live stack as `DescribeStacks` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LiveStack {
    /// CloudFormation name.
    pub stack_name: String,
    /// Status (`CREATE_COMPLETE`, `DELETE_FAILED`, ...).
    pub status: String,
    /// Creation time.
    pub created: Option<DateTime<Utc>>,
    /// Stack tags.
    pub tags: BTreeMap<String, String>,
    /// Outputs.
    pub outputs: BTreeMap<String, String>,
}

/// A preview: the stacks sharing one `chrono:customer` (the preview's name).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Preview {
    /// The preview's name.
    pub name: String,
    /// Who created it (`chrono:owner`, the caller's ARN); empty when untagged.
    pub owner: String,
    /// The config it was derived from (`chrono:preview-base`).
    pub base: String,
    /// Earliest creation time of its stacks.
    pub created: Option<DateTime<Utc>>,
    /// `chrono:expires-at` as tagged (the earliest over its stacks).
    pub expires_at: String,
    /// The worst status of its stacks (a failure before an operation in progress before
    /// a complete one).
    pub status: String,
    /// Endpoints from the stacks' outputs (`api`, `websocket`, `app`).
    pub endpoints: BTreeMap<String, String>,
    /// Its stacks, by short name.
    pub stacks: BTreeMap<String, LiveStack>,
}

impl Preview {
    /// The expiry as a time; `None` when the tag is missing or unreadable.
    pub fn expires(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.expires_at)
    }

    /// Whether it expired at or before `now` (an unreadable expiry is not "expired": gc
    /// reports it instead of deleting).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires().is_some_and(|e| e <= now)
    }
}

/// Parses an RFC 3339 time.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats a time the way the `chrono:expires-at` tag and the config hold it.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether a stack's tags make it part of a preview (see the module docs).
pub fn is_preview_stack(t: &BTreeMap<String, String>) -> bool {
    let is = |k: &str, v: &str| t.get(k).map(String::as_str) == Some(v);
    is(tags::PREVIEW, "true")
        && is(tags::MANAGED_BY, tags::MANAGED_BY_CHRONOCTL)
        && is(tags::STAGE, "preview")
        && !is(tags::SCOPE, "account")
        && t.get(tags::CUSTOMER).is_some_and(|c| !c.is_empty())
}

/// The CloudFormation prefix of a preview's stacks.
pub fn stack_prefix(name: &str) -> String {
    format!("chrono-{name}-preview-")
}

fn status_rank(s: &str) -> u8 {
    if s.ends_with("_FAILED") || s.contains("ROLLBACK") {
        3
    } else if s.ends_with("_IN_PROGRESS") {
        2
    } else {
        1
    }
}

/// Groups live stacks into previews (sorted by name); stacks that are not preview stacks
/// are left out.
pub fn group(stacks: &[LiveStack]) -> Vec<Preview> {
    let mut out: BTreeMap<String, Preview> = BTreeMap::new();
    for s in stacks.iter().filter(|s| is_preview_stack(&s.tags)) {
        let name = s.tags[tags::CUSTOMER].clone();
        let short = s
            .stack_name
            .strip_prefix(&stack_prefix(&name))
            .unwrap_or(&s.stack_name)
            .to_owned();
        let p = out.entry(name.clone()).or_insert_with(|| Preview {
            name,
            owner: String::new(),
            base: String::new(),
            created: None,
            expires_at: String::new(),
            status: String::new(),
            endpoints: BTreeMap::new(),
            stacks: BTreeMap::new(),
        });
        let tag = |k: &str| s.tags.get(k).cloned().unwrap_or_default();
        if p.owner.is_empty() {
            p.owner = tag(tags::OWNER);
        }
        if p.base.is_empty() {
            p.base = tag(tags::PREVIEW_BASE);
        }
        let exp = tag(tags::EXPIRES_AT);
        // The earliest expiry wins: a half-extended preview expires with its oldest tag.
        let earlier = match (parse_time(&exp), p.expires()) {
            (Some(a), Some(b)) => a < b,
            _ => p.expires_at.is_empty(),
        };
        if earlier {
            p.expires_at = exp;
        }
        p.created = match (p.created, s.created) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if status_rank(&s.status) > status_rank(&p.status) || p.status.is_empty() {
            p.status.clone_from(&s.status);
        }
        for (key, label) in [
            (outputs::HTTP_API_URL, "api"),
            (outputs::WEBSOCKET_URL, "websocket"),
            (outputs::APP_ORIGIN, "app"),
        ] {
            if let Some(v) = s.outputs.get(key) {
                p.endpoints.insert(label.to_owned(), v.clone());
            }
        }
        p.stacks.insert(short, s.clone());
    }
    out.into_values().collect()
}

/// What `preview gc` does with a preview.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GcVerdict {
    /// Past its expiry: deleted.
    Expired,
    /// Not yet expired: kept.
    Live,
    /// No readable `chrono:expires-at`: kept and reported (never guessed).
    NoExpiry,
}

/// The gc verdict of one preview at `now`.
pub fn gc_verdict(p: &Preview, now: DateTime<Utc>) -> GcVerdict {
    match p.expires() {
        None => GcVerdict::NoExpiry,
        Some(e) if e <= now => GcVerdict::Expired,
        Some(_) => GcVerdict::Live,
    }
}

/// "in 2d 3h", "in 45m", "3h ago": a time relative to `now`.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let a = secs.unsigned_abs();
    let (d, h, m) = (a / 86_400, (a % 86_400) / 3600, (a % 3600) / 60);
    let span = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    };
    if secs >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// Every live stack of the region with its tags and outputs (`DescribeStacks` without a
/// name, all pages; deleted stacks are not listed).
pub async fn live_stacks(
    cfn: &aws_sdk_cloudformation::Client,
) -> Result<Vec<LiveStack>, DeployError> {
    let mut out = Vec::new();
    let mut pages = cfn.describe_stacks().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| DeployError::Aws {
            stack: "(all stacks)".into(),
            operation: "DescribeStacks",
            message: sdk_message(&e),
        })?;
        for s in page.stacks() {
            let info = crate::deploy::cfn::stack_info(s);
            if info.status == "DELETE_COMPLETE" {
                continue;
            }
            out.push(LiveStack {
                stack_name: s.stack_name().unwrap_or_default().to_owned(),
                status: info.status,
                created: s
                    .creation_time()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), 0)),
                tags: info.tags,
                outputs: info.outputs,
            });
        }
    }
    Ok(out)
}

/// The previews of the account and region.
pub async fn previews(cfn: &aws_sdk_cloudformation::Client) -> Result<Vec<Preview>, DeployError> {
    Ok(group(&live_stacks(cfn).await?))
}

/// Renders `preview list`.
pub fn render_list(previews: &[Preview], now: DateTime<Utc>) -> String {
    if previews.is_empty() {
        return "no previews in this account and region\n".to_owned();
    }
    let mut s = format!(
        "{:<20} {:<28} {:<12} {:<16} {:<20} endpoints\n",
        "NAME", "OWNER", "CREATED", "EXPIRES", "STATUS"
    );
    for p in previews {
        let owner = p.owner.rsplit('/').next().unwrap_or(&p.owner);
        let created = p.created.map_or("?".to_owned(), |c| relative(c, now));
        let expires = match p.expires() {
            Some(e) if e <= now => format!("EXPIRED {}", relative(e, now)),
            Some(e) => relative(e, now),
            None => "no expiry".to_owned(),
        };
        let endpoints: Vec<String> = p
            .endpoints
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(
            "{:<20} {:<28} {:<12} {:<16} {:<20} {}\n",
            p.name,
            owner,
            created,
            expires,
            p.status,
            endpoints.join(" ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    fn stack(name: &str, status: &str, t: &[(&str, &str)]) -> LiveStack {
        LiveStack {
            stack_name: name.into(),
            status: status.into(),
            created: Some(parse_time("2026-12-01T00:00:00Z").unwrap()),
            tags: t
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            outputs: BTreeMap::new(),
        }
    }

    fn preview_tags<'a>(name: &'a str, exp: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            (tags::PREVIEW, "true"),
            (tags::MANAGED_BY, "chronoctl"),
            (tags::STAGE, "preview"),
            (tags::CUSTOMER, name),
            (tags::EXPIRES_AT, exp),
        ]
    }

    #[test]
    fn only_chronoctl_preview_stacks_are_previews() {
        let now = t("2026-12-02T00:00:00Z");
        let mut prod = preview_tags("acme", "2020-01-01T00:00:00Z");
        prod.retain(|(k, _)| *k != tags::PREVIEW);
        prod.push((tags::STAGE, "prod"));
        let mut hand = preview_tags("hand", "2020-01-01T00:00:00Z");
        hand.retain(|(k, _)| *k != tags::MANAGED_BY);
        let account = [
            (tags::PREVIEW, "true"),
            (tags::MANAGED_BY, "chronoctl"),
            (tags::STAGE, "preview"),
            (tags::CUSTOMER, "x"),
            (tags::SCOPE, "account"),
        ];
        let stacks = vec![
            stack(
                "chrono-old-preview-network",
                "CREATE_COMPLETE",
                &preview_tags("old", "2026-12-01T00:00:00Z"),
            ),
            stack(
                "chrono-old-preview-data",
                "DELETE_FAILED",
                &preview_tags("old", "2026-12-01T00:00:00Z"),
            ),
            stack(
                "chrono-new-preview-network",
                "UPDATE_COMPLETE",
                &preview_tags("new", "2026-12-09T00:00:00Z"),
            ),
            stack("chrono-acme-prod-data", "CREATE_COMPLETE", &prod),
            stack("chrono-hand-preview-data", "CREATE_COMPLETE", &hand),
            stack("chrono-bootstrap", "CREATE_COMPLETE", &account),
        ];
        let ps = group(&stacks);
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["new", "old"]);
        assert_eq!(ps[1].status, "DELETE_FAILED");
        assert_eq!(ps[1].stacks.keys().collect::<Vec<_>>(), ["data", "network"]);
        assert_eq!(gc_verdict(&ps[0], now), GcVerdict::Live);
        assert_eq!(gc_verdict(&ps[1], now), GcVerdict::Expired);
    }

    #[test]
    fn the_earliest_expiry_of_a_half_extended_preview_wins_and_garbage_is_no_expiry() {
        let stacks = vec![
            stack(
                "chrono-p-preview-network",
                "UPDATE_COMPLETE",
                &preview_tags("p", "2026-12-09T00:00:00Z"),
            ),
            stack(
                "chrono-p-preview-data",
                "UPDATE_COMPLETE",
                &preview_tags("p", "2026-12-03T00:00:00Z"),
            ),
            stack(
                "chrono-q-preview-data",
                "CREATE_COMPLETE",
                &preview_tags("q", "tomorrow"),
            ),
        ];
        let ps = group(&stacks);
        assert_eq!(ps[0].expires_at, "2026-12-03T00:00:00Z");
        let now = t("2026-12-04T00:00:00Z");
        assert_eq!(gc_verdict(&ps[0], now), GcVerdict::Expired);
        assert_eq!(gc_verdict(&ps[1], now), GcVerdict::NoExpiry);
        assert!(!ps[1].is_expired(now));
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = t("2026-12-02T00:00:00Z");
        assert_eq!(relative(t("2026-12-04T03:00:00Z"), now), "in 2d 3h");
        assert_eq!(relative(t("2026-12-02T00:45:00Z"), now), "in 45m");
        assert_eq!(relative(t("2026-12-01T21:00:00Z"), now), "3h 0m ago");
    }
}
