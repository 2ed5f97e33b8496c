//! Bedrock models as data (defect 5 of issue 13): the lifecycle facts of
//! `stacks/data/bedrock-models.yaml`, the default model ids (an Active model through the
//! system-defined cross-region inference profile of the customer's geography), and the
//! ARNs a role needs to invoke a configured id.
//!
//! A configured id is either a foundation model id (`anthropic.claude-…`) or a
//! system-defined inference profile id (`<geography>.<foundation model id>`). Invoking
//! through a profile needs `bedrock:InvokeModel` on the profile's ARN **and** on the
//! foundation model in every Region the profile routes to
//! (<https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html>);
//! the foundation-model grant is limited to calls made through the configured profile
//! with the condition key `bedrock:InferenceProfileArn`, so the role cannot call the model
//! directly in an arbitrary Region.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::Expr;

const DATA: &str = include_str!("../data/bedrock-models.yaml");

/// A model's lifecycle state on Bedrock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Maintained.
    Active,
    /// Kept for the accounts already using it until its end of life; new accounts
    /// cannot use it.
    Legacy,
    /// Gone: every request fails.
    Eol,
}

/// A request setting a model may refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestSetting {
    /// A tool choice of `any` or of a named tool.
    ForcedToolChoice,
    /// temperature, top_p, top_k.
    SamplingParameters,
}

/// One model of the data file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFacts {
    /// Foundation model id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Lifecycle state.
    pub state: State,
    /// Geographies with a system-defined inference profile for it.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Request settings it answers with a 400.
    #[serde(default)]
    pub rejects: Vec<RequestSetting>,
    /// Where the facts come from.
    pub source: String,
    /// Anything else worth knowing.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Geography {
    region_prefix: String,
    profile: String,
}

/// The data file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Documentation pages, by topic.
    pub sources: std::collections::BTreeMap<String, String>,
    /// When they were read.
    pub read: String,
    geographies: Vec<Geography>,
    default_geography: String,
    /// The foundation model of the defaults.
    pub default_model: String,
    /// The models.
    pub models: Vec<ModelFacts>,
    /// What the account owner must do once for model access.
    pub access: Vec<String>,
}

/// The compiled-in catalog. The file is checked by this crate's tests; a malformed one
/// fails them (and would panic here, at the first synthesis, never on user input).
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| match serde_yaml::from_str(DATA) {
        Ok(c) => c,
        Err(e) => panic!("stacks/data/bedrock-models.yaml: {e}"),
    })
}

/// A configured model id, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef<'a> {
    /// The system-defined inference profile's geography (`eu`, `us`, `global`, …).
    pub geography: Option<&'a str>,
    /// The foundation model id.
    pub model: &'a str,
}

/// Geography prefixes of system-defined inference profile ids.
const GEOGRAPHIES: [&str; 8] = ["us", "eu", "apac", "jp", "au", "ca", "us-gov", "global"];

/// Splits `<geography>.<model>`; a foundation model id has no geography.
pub fn parse(id: &str) -> ModelRef<'_> {
    match id.split_once('.') {
        Some((geo, model)) if GEOGRAPHIES.contains(&geo) => ModelRef {
            geography: Some(geo),
            model,
        },
        _ => ModelRef {
            geography: None,
            model: id,
        },
    }
}

impl Catalog {
    /// The facts of a foundation model id.
    pub fn model(&self, model: &str) -> Option<&ModelFacts> {
        self.models.iter().find(|m| m.id == model)
    }

    /// The default model id for a Region: [`Catalog::default_model`] through the
    /// inference profile of the Region's geography, `global` when the model has none
    /// there.
    pub fn default_model_id(&self, region: &str) -> String {
        let geo = self
            .geographies
            .iter()
            .find(|g| region.starts_with(&g.region_prefix))
            .map_or(self.default_geography.as_str(), |g| g.profile.as_str());
        let has = |g: &str| {
            self.model(&self.default_model)
                .is_some_and(|m| m.profiles.iter().any(|p| p == g))
        };
        let geo = if has(geo) {
            geo
        } else {
            self.default_geography.as_str()
        };
        format!("{geo}.{}", self.default_model)
    }
}

fn profile_arn(id: &str) -> Expr {
    Expr::sub(format!(
        "arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}:${{AWS::AccountId}}:inference-profile/{id}"
    ))
}

/// `arn:…:bedrock:<region>::foundation-model/<model>`; `*` for every Region.
pub fn foundation_model_arn(region: &str, model: &str) -> Expr {
    Expr::sub(format!(
        "arn:${{AWS::Partition}}:bedrock:{region}::foundation-model/{model}"
    ))
}

/// What a role needs to invoke the configured `ids`: resources granted outright (profile
/// ARNs, foundation models called directly in the stack's Region), and foundation models
/// granted only through the profiles, with the condition that says so.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeGrant {
    /// Granted without a condition.
    pub direct: Vec<Expr>,
    /// Granted only through the profiles (`*` Region: the profile picks it).
    pub through_profiles: Vec<Expr>,
    /// The condition of `through_profiles`.
    pub condition: Option<Value>,
}

/// The grant for the configured model ids (duplicates once).
pub fn invoke_grant(ids: &[&str]) -> InvokeGrant {
    let mut ids: Vec<&str> = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let (mut direct, mut through, mut profiles) = (Vec::new(), Vec::new(), Vec::new());
    for id in ids {
        let r = parse(id);
        if r.geography.is_some() {
            direct.push(profile_arn(id));
            profiles.push(profile_arn(id).to_json());
            let fm = foundation_model_arn("*", r.model);
            if !through.contains(&fm) {
                through.push(fm);
            }
        } else {
            direct.push(foundation_model_arn("${AWS::Region}", r.model));
        }
    }
    let condition = (!profiles.is_empty())
        .then(|| json!({"StringEquals": {"bedrock:InferenceProfileArn": profiles}}));
    InvokeGrant {
        direct,
        through_profiles: through,
        condition,
    }
}

/// Why a configured model id deserves a warning (`chronoctl check`), if it does.
pub fn warning(id: &str, runtime_sends: &[RequestSetting]) -> Option<String> {
    let cat = catalog();
    let r = parse(id);
    let Some(m) = cat.model(r.model) else {
        return Some(format!(
            "{id}: not in ChronoTracer's Bedrock model list (stacks/data/bedrock-models.yaml, read {}); check its lifecycle state at {} before relying on it",
            cat.read, cat.sources["lifecycle"]
        ));
    };
    let state = match m.state {
        State::Active => None,
        State::Legacy => Some("Legacy: new accounts cannot use it and it reaches its end of life"),
        State::Eol => Some("at its end of life: every request fails"),
    };
    if let Some(state) = state {
        return Some(format!(
            "{id}: {} is {state}; use {} ({})",
            m.name, cat.default_model, m.source
        ));
    }
    if let Some(geo) = r.geography
        && !m.profiles.iter().any(|p| p == geo)
    {
        return Some(format!(
            "{id}: {} has no `{geo}` inference profile in ChronoTracer's list (known: {})",
            m.name,
            m.profiles.join(", ")
        ));
    }
    if r.geography.is_none() {
        return Some(format!(
            "{id}: a foundation model id; new models are often offered only through inference profiles (use e.g. {})",
            cat.default_model_id("eu-west-1")
        ));
    }
    let refused: Vec<&RequestSetting> = m
        .rejects
        .iter()
        .filter(|s| runtime_sends.contains(s))
        .collect();
    if !refused.is_empty() {
        return Some(format!(
            "{id}: {} refuses {refused:?}, which the runtime sends; every AI request would fail ({})",
            m.name, m.source
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_file_loads_and_its_default_is_active_and_usable_by_the_runtime() {
        let cat = catalog();
        assert_eq!(cat.read, "2026-12-02");
        let m = cat.model(&cat.default_model).expect("default model listed");
        assert_eq!(m.state, State::Active);
        assert!(m.rejects.is_empty(), "{:?}", m.rejects);
        for m in &cat.models {
            assert!(m.source.starts_with("https://"), "{}", m.id);
            for p in &m.profiles {
                assert!(GEOGRAPHIES.contains(&p.as_str()), "{} {p}", m.id);
            }
        }
    }

    #[test]
    fn defaults_go_through_the_profile_of_the_customers_geography() {
        let cat = catalog();
        let m = &cat.default_model;
        assert_eq!(cat.default_model_id("eu-west-1"), format!("eu.{m}"));
        assert_eq!(cat.default_model_id("us-east-2"), format!("us.{m}"));
        assert_eq!(cat.default_model_id("ap-northeast-1"), format!("jp.{m}"));
        // a geography the model has no profile in, and one we do not map: global
        assert_eq!(cat.default_model_id("ap-south-1"), format!("global.{m}"));
        assert_eq!(cat.default_model_id("sa-east-1"), format!("global.{m}"));
    }

    #[test]
    fn a_profile_needs_its_arn_and_the_model_in_every_region_only_through_it() {
        let g = invoke_grant(&["eu.anthropic.x-v1:0", "eu.anthropic.x-v1:0", "anthropic.y"]);
        let arns: Vec<Value> = g.direct.iter().map(Expr::to_json).collect();
        assert_eq!(
            arns,
            [
                json!({"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/anthropic.y"}),
                json!({"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/eu.anthropic.x-v1:0"}),
            ]
        );
        assert_eq!(
            g.through_profiles[0].to_json(),
            json!({"Fn::Sub": "arn:${AWS::Partition}:bedrock:*::foundation-model/anthropic.x-v1:0"})
        );
        assert_eq!(
            g.condition.unwrap()["StringEquals"]["bedrock:InferenceProfileArn"][0],
            arns[1]
        );
        // foundation model ids only: no condition, no cross-Region grant
        let g = invoke_grant(&["anthropic.y"]);
        assert!(g.through_profiles.is_empty() && g.condition.is_none());
    }

    #[test]
    fn legacy_unknown_and_refusing_models_are_warned_about() {
        let sends = [
            RequestSetting::ForcedToolChoice,
            RequestSetting::SamplingParameters,
        ];
        let cat = catalog();
        assert_eq!(warning(&cat.default_model_id("eu-west-1"), &sends), None);
        // the defaults before issue 13
        for old in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ] {
            let w = warning(old, &sends).unwrap();
            assert!(w.contains("Legacy"), "{w}");
        }
        let w = warning("eu.anthropic.claude-unheard-of-v1:0", &sends).unwrap();
        assert!(
            w.contains("not in ChronoTracer's Bedrock model list"),
            "{w}"
        );
        let w = warning("eu.anthropic.claude-sonnet-5-5", &sends).unwrap();
        assert!(w.contains("refuses"), "{w}");
        assert_eq!(warning("eu.anthropic.claude-sonnet-5-5", &[]), None);
        let w = warning("ca.anthropic.claude-haiku-4-5-20251001-v1:0", &sends).unwrap();
        assert!(w.contains("no `ca` inference profile"), "{w}");
        let w = warning("anthropic.claude-haiku-4-5-20251001-v1:0", &sends).unwrap();
        assert!(w.contains("inference profiles"), "{w}");
    }
}
