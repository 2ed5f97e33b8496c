//! `chronoctl preview up`: derive the preview config from a base config, decide its expiry
//! (new, extended, kept, or refused), and deploy it with the engine, tagged with the
//! owner and the expiry. The shared account bootstrap is part of the plan as a shared
//! stack ([`crate::deploy::PlannedStack::shared_name`]): created by the first preview,
//! a no-op for the next ones.

use chrono::{DateTime, Duration, Utc};
use chrono_contract::tags;
use chrono_stacks::Config;

use crate::deploy::{DeployPlan, DeployReport, Engine, StackOutcome};
use crate::preview::PreviewError;
use crate::preview::inventory::{self, Preview, format_time};

/// Lifetime of a new preview when `--ttl` is not given.
pub const DEFAULT_TTL_HOURS: i64 = 72;

/// Longest `--ttl`.
pub const MAX_TTL_HOURS: i64 = 30 * 24;

/// Parses a `--ttl` like `72h`, `3d`, `90m`.
pub fn parse_ttl(s: &str) -> Result<Duration, PreviewError> {
    let bad = || {
        PreviewError::Usage(format!(
            "--ttl {s:?} is not a duration like 72h, 3d or 90m (at most {MAX_TTL_HOURS}h)"
        ))
    };
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(bad()),
    };
    if n == 0 || d > Duration::hours(MAX_TTL_HOURS) {
        return Err(bad());
    }
    Ok(d)
}

/// The expiry of the preview `up` deploys, or why it refuses: a preview owned by someone
/// else is a collision; an expired one needs `--ttl` to come back; `--ttl` sets the expiry
/// from now (extending or shortening); otherwise an existing preview keeps its expiry and
/// a new one gets [`DEFAULT_TTL_HOURS`].
pub fn decide_expiry(
    name: &str,
    existing: Option<&Preview>,
    caller_arn: &str,
    ttl: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, PreviewError> {
    if let Some(p) = existing {
        if !p.owner.is_empty() && p.owner != caller_arn {
            return Err(PreviewError::Collision {
                name: name.to_owned(),
                owner: p.owner.clone(),
            });
        }
        if ttl.is_none() {
            return match p.expires() {
                Some(e) if e <= now => Err(PreviewError::Expired {
                    name: name.to_owned(),
                    expired_at: p.expires_at.clone(),
                }),
                Some(e) => Ok(e),
                None => Ok(now + Duration::hours(DEFAULT_TTL_HOURS)),
            };
        }
    }
    Ok(now + ttl.unwrap_or(Duration::hours(DEFAULT_TTL_HOURS)))
}

/// What `preview up` is asked to do.
#[derive(Debug, Clone)]
pub struct UpRequest {
    /// The base config.
    pub base: Config,
    /// Its file, for messages and the `chrono:preview-base` tag.
    pub base_file: String,
    /// The preview's (normalized) name.
    pub name: String,
    /// `--ttl`.
    pub ttl: Option<Duration>,
    /// The clock.
    pub now: DateTime<Utc>,
}

/// What `preview up` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpReport {
    /// The preview's name.
    pub name: String,
    /// Owner (caller ARN).
    pub owner: String,
    /// New expiry.
    pub expires_at: String,
    /// Whether the preview existed before.
    pub updated: bool,
    /// The deploy report.
    pub deploy: DeployReport,
    /// Endpoints from the outputs (`api`, `websocket`, `app`).
    pub endpoints: std::collections::BTreeMap<String, String>,
}

/// Deploys a preview. `plan_for` turns the derived config into the plan to deploy (the
/// CLI synthesizes and builds; tests may reduce stacks the emulator cannot run).
pub async fn up(
    engine: &Engine,
    req: &UpRequest,
    plan_for: impl FnOnce(&Config) -> Result<DeployPlan, PreviewError>,
) -> Result<(Config, UpReport), PreviewError> {
    let me = crate::aws::caller_identity(&engine.clients)
        .await
        .map_err(|e| PreviewError::Deploy(e.into()))?;
    let live = inventory::live_stacks(&engine.clients.cfn).await?;
    // A stack of this name that is not a chronoctl preview (a hand-written config, another
    // tool) is never taken over.
    let prefix = inventory::stack_prefix(&req.name);
    if let Some(s) = live
        .iter()
        .find(|s| s.stack_name.starts_with(&prefix) && !inventory::is_preview_stack(&s.tags))
    {
        return Err(PreviewError::Collision {
            name: req.name.clone(),
            owner: format!("stack {} (not a chronoctl preview)", s.stack_name),
        });
    }
    let previews = inventory::group(&live);
    let existing = previews.iter().find(|p| p.name == req.name);
    let expires = decide_expiry(&req.name, existing, &me.arn, req.ttl, req.now)?;
    let expires_at = format_time(expires);
    let cfg = chrono_stacks::preview::derive(
        &req.base,
        &req.base_file,
        &req.name,
        &me.account,
        &expires_at,
    )?;
    let mut plan = plan_for(&cfg)?;
    tag_plan(
        &mut plan,
        &me.arn,
        &chrono_stacks::synth::dir_name(&req.base),
        &expires_at,
    );
    let deploy = engine.deploy(&plan).await?;
    if !deploy.is_success() {
        let failed: Vec<String> = deploy
            .stacks
            .iter()
            .filter(|s| {
                matches!(
                    s.outcome,
                    StackOutcome::Failed(_) | StackOutcome::Skipped(_)
                )
            })
            .map(|s| format!("{}: {}", s.stack_name, s.outcome.label()))
            .collect();
        return Err(PreviewError::DeployFailed {
            name: req.name.clone(),
            stacks: failed.join("; "),
            report: Box::new(deploy),
        });
    }
    if !engine.opts.dry_run {
        retag_stale(engine, &plan).await?;
    }
    let mut endpoints = std::collections::BTreeMap::new();
    for s in &deploy.stacks {
        for (key, label) in [
            (chrono_contract::outputs::HTTP_API_URL, "api"),
            (chrono_contract::outputs::WEBSOCKET_URL, "websocket"),
            (chrono_contract::outputs::APP_ORIGIN, "app"),
        ] {
            if let Some(v) = s.outputs.get(key) {
                endpoints.insert(label.to_owned(), v.clone());
            }
        }
    }
    Ok((
        cfg,
        UpReport {
            name: req.name.clone(),
            owner: me.arn,
            expires_at,
            updated: existing.is_some(),
            deploy,
            endpoints,
        },
    ))
}

/// Stack tags of a preview plan: on every stack (but the shared bootstrap) the preview
/// marker, the expiry, the owner and the base, and the stacks it depends on, so `preview
/// down` can find and order the deletion from tags alone.
pub fn tag_plan(plan: &mut DeployPlan, owner: &str, base: &str, expires_at: &str) {
    plan.tags
        .insert(tags::PREVIEW.to_owned(), "true".to_owned());
    plan.tags
        .insert(tags::EXPIRES_AT.to_owned(), expires_at.to_owned());
    plan.tags.insert(tags::OWNER.to_owned(), owner.to_owned());
    plan.tags
        .insert(tags::PREVIEW_BASE.to_owned(), base.to_owned());
    for s in plan.stacks.iter_mut().filter(|s| s.shared_name.is_none()) {
        if !s.depends_on.is_empty() {
            s.tags
                .insert(tags::DEPENDS_ON.to_owned(), s.depends_on.join(" "));
        }
    }
}

/// Brings the stack tags of every preview stack to the plan's (a new expiry or owner)
/// where the deploy left them stale: a stack whose template and parameters did not change
/// is skipped by the engine, and its tags with it. `UpdateStack` with the previous template
/// and parameter values changes only the tags, which CloudFormation propagates to the
/// resources (<https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_UpdateStack.html>,
/// `Tags`).
async fn retag_stale(engine: &Engine, plan: &DeployPlan) -> Result<(), PreviewError> {
    use aws_sdk_cloudformation::types::{Capability, Parameter, Tag};
    let cfn = &engine.clients.cfn;
    for s in plan.stacks.iter().filter(|s| s.shared_name.is_none()) {
        let name = plan.stack_name(&s.name);
        let Some(info) = crate::deploy::cfn::describe(cfn, &name).await? else {
            continue;
        };
        let mut want = info.tags.clone();
        want.extend(plan.tags.clone());
        want.extend(s.tags.clone());
        if want == info.tags {
            continue;
        }
        let mut call = cfn
            .update_stack()
            .stack_name(&name)
            .use_previous_template(true)
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam);
        for k in info.parameters.keys() {
            call = call.parameters(
                Parameter::builder()
                    .parameter_key(k)
                    .use_previous_value(true)
                    .build(),
            );
        }
        for (k, v) in &want {
            call = call.tags(Tag::builder().key(k).value(v).build());
        }
        match call.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    aws_sdk_cloudformation::error::ProvideErrorMetadata::message(se)
                        .is_some_and(|m| m.contains("No updates are to be performed"))
                }) =>
            {
                continue;
            }
            Err(e) => {
                return Err(PreviewError::Deploy(crate::deploy::DeployError::Aws {
                    stack: name,
                    operation: "UpdateStack",
                    message: crate::deploy::error::sdk_message(&e),
                }));
            }
        }
        engine.reporter.on(&crate::deploy::progress::Event::Info {
            message: format!("{name}: stack tags updated (expiry, owner)"),
        });
        let timing = engine.opts.timing;
        crate::deploy::cfn::wait_stable(cfn, &name, &timing, timing.stack_timeout, None, |_, _| {})
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preview::inventory::parse_time;

    fn p(owner: &str, exp: &str) -> Preview {
        Preview {
            name: "feat".into(),
            owner: owner.into(),
            base: "acme-staging".into(),
            created: None,
            expires_at: exp.into(),
            status: "CREATE_COMPLETE".into(),
            endpoints: Default::default(),
            stacks: Default::default(),
        }
    }

    #[test]
    fn expiry_decisions() {
        let now = parse_time("2026-12-02T00:00:00Z").unwrap();
        let me = "arn:aws:iam::1:user/alice";
        let h = Duration::hours;
        // new: default TTL, or --ttl
        assert_eq!(
            decide_expiry("feat", None, me, None, now).unwrap(),
            now + h(72)
        );
        assert_eq!(
            decide_expiry("feat", None, me, Some(h(5)), now).unwrap(),
            now + h(5)
        );
        // existing and live: kept, or moved by --ttl
        let live = p(me, "2026-12-03T00:00:00Z");
        assert_eq!(
            decide_expiry("feat", Some(&live), me, None, now).unwrap(),
            now + h(24)
        );
        assert_eq!(
            decide_expiry("feat", Some(&live), me, Some(h(48)), now).unwrap(),
            now + h(48)
        );
        // expired: refused until extended
        let old = p(me, "2026-12-01T00:00:00Z");
        let e = decide_expiry("feat", Some(&old), me, None, now).unwrap_err();
        assert!(matches!(e, PreviewError::Expired { .. }), "{e}");
        assert!(e.to_string().contains("--ttl"), "{e}");
        assert_eq!(
            decide_expiry("feat", Some(&old), me, Some(h(1)), now).unwrap(),
            now + h(1)
        );
        // someone else's: a collision, whatever the TTL
        let bob = p("arn:aws:iam::1:user/bob", "2026-12-03T00:00:00Z");
        let e = decide_expiry("feat", Some(&bob), me, Some(h(1)), now).unwrap_err();
        assert!(matches!(e, PreviewError::Collision { .. }), "{e}");
    }

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("72h").unwrap(), Duration::hours(72));
        assert_eq!(parse_ttl("3d").unwrap(), Duration::days(3));
        assert_eq!(parse_ttl("90m").unwrap(), Duration::minutes(90));
        for bad in ["", "h", "0h", "12", "3w", "-1h", "31d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
