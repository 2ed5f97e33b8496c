//! The deploy engine's input: which stacks to deploy, in which order, with which
//! parameters.
//!
//! A [`DeployPlan`] is plain data. It is built from the synthesized templates and their
//! manifest (see [`DeployPlan::from_synth`]) or by hand in tests. It knows nothing of AWS;
//! the engine turns it into CloudFormation calls.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

/// The stack tag holding the content hash of the template a stack was deployed from.
pub const TEMPLATE_HASH_TAG: &str = "chrono:template-hash";

/// Short name of the bootstrap stack (assets bucket, ECR repository, lock table).
pub const BOOTSTRAP: &str = "bootstrap";

/// Errors found while building or checking a plan.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Two stacks share a name.
    #[error("stack `{0}` appears twice in the plan; stack names must be unique")]
    DuplicateStack(String),
    /// `--stack` names a stack the plan does not have.
    #[error("no stack `{stack}` in this plan (stacks: {known})")]
    UnknownStack {
        /// The name given.
        stack: String,
        /// The plan's stacks.
        known: String,
    },
    /// A stack depends on a stack that is not in the plan.
    #[error("stack `{stack}` depends on `{missing}`, which is not in the plan")]
    UnknownDependency {
        /// The stack with the bad dependency.
        stack: String,
        /// The dependency that is missing.
        missing: String,
    },
    /// A parameter reads an output of a stack it does not depend on.
    #[error(
        "parameter `{parameter}` of stack `{stack}` reads an output of `{source_stack}`; add `{source_stack}` to its dependencies"
    )]
    UndeclaredOutputSource {
        /// The stack holding the parameter.
        stack: String,
        /// The parameter.
        parameter: String,
        /// The stack whose output it reads.
        source_stack: String,
    },
    /// A function has no built artifact and placeholders are not allowed.
    #[error(
        "no artifact for {binaries}; stage {stage} never deploys placeholders: let `chronoctl deploy` build the runtime (run it in the source tree) or pass --artifacts DIR from `chronoctl build --out DIR`"
    )]
    MissingArtifacts {
        /// The binaries without an artifact.
        binaries: String,
        /// The stage.
        stage: String,
    },
    /// A parameter names an asset the plan does not carry.
    #[error(
        "parameter `{parameter}` of stack `{stack}` names asset `{asset}`, which is not in the plan"
    )]
    UnknownAsset {
        /// The stack holding the parameter.
        stack: String,
        /// The parameter.
        parameter: String,
        /// The asset name.
        asset: String,
    },
    /// The dependencies form a cycle.
    #[error("stack dependencies form a cycle through: {0}")]
    Cycle(String),
    /// The manifest or a template could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The manifest is not what this version of chronoctl understands.
    #[error("{path}: {reason}; run `chronoctl synth` to regenerate it")]
    Manifest {
        /// The manifest file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where the value of one stack parameter comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ParamSource {
    /// A literal value known at synth time.
    Literal {
        /// The value.
        value: String,
    },
    /// The output `output` of the earlier stack `stack` (short name).
    Output {
        /// Short name of the stack producing the output.
        stack: String,
        /// Output key.
        output: String,
    },
    /// The S3 key of an asset uploaded to the assets bucket (content-hash key).
    AssetKey {
        /// Name of the asset in [`DeployPlan::assets`].
        asset: String,
    },
    /// The name of the assets bucket (an output of the bootstrap stack).
    AssetsBucket,
    /// The digest (`sha256:<hex>`) of the runtime image in the bootstrap ECR repository
    /// ([`DeployPlan::image`]).
    ImageDigest,
}

/// A deployable artifact (a Lambda zip) uploaded under a content-hash key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Name used by [`ParamSource::AssetKey`].
    pub name: String,
    /// The bytes uploaded (a zip file for Lambda code).
    pub bytes: Vec<u8>,
    /// File extension of the object key (`zip`).
    pub extension: String,
}

impl Asset {
    /// A zip asset from its bytes.
    pub fn zip(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            bytes,
            extension: "zip".to_owned(),
        }
    }

    /// Hex SHA-256 of the content.
    pub fn content_hash(&self) -> String {
        content_hash(&self.bytes)
    }

    /// The object key in the assets bucket: `assets/<sha256>.<ext>`.
    pub fn key(&self) -> String {
        format!("assets/{}.{}", self.content_hash(), self.extension)
    }
}

/// Hex SHA-256 of some bytes.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One stack of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStack {
    /// Short name (`network`); the CloudFormation name is [`DeployPlan::stack_name`].
    pub name: String,
    /// Template body (JSON or YAML).
    pub template_body: String,
    /// Content hash of the template (recorded as the [`TEMPLATE_HASH_TAG`] stack tag).
    pub template_hash: String,
    /// Short names of the stacks this one needs first.
    pub depends_on: Vec<String>,
    /// Parameters and where their values come from.
    pub parameters: BTreeMap<String, ParamSource>,
    /// Stack tags of this stack (added to [`DeployPlan::tags`]).
    pub tags: BTreeMap<String, String>,
    /// An account-wide stack this plan shares with others (the bootstrap previews share),
    /// by its CloudFormation name: it carries only its own [`PlannedStack::tags`] (never
    /// the plan's, so no preview selector matches it) and `destroy` never deletes it.
    pub shared_name: Option<String>,
}

impl PlannedStack {
    /// A stack whose hash is computed from its body.
    pub fn new(name: impl Into<String>, template_body: impl Into<String>) -> Self {
        let template_body = template_body.into();
        Self {
            name: name.into(),
            template_hash: content_hash(template_body.as_bytes()),
            template_body,
            depends_on: Vec::new(),
            parameters: BTreeMap::new(),
            tags: BTreeMap::new(),
            shared_name: None,
        }
    }

    /// Adds a dependency.
    pub fn depends_on(mut self, stack: impl Into<String>) -> Self {
        self.depends_on.push(stack.into());
        self
    }

    /// Adds a parameter.
    pub fn param(mut self, name: impl Into<String>, source: ParamSource) -> Self {
        self.parameters.insert(name.into(), source);
        self
    }
}

/// Everything the engine needs to deploy one customer account (one customer + stage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployPlan {
    /// Customer name.
    pub customer: String,
    /// Stage (`prod`, `staging`, `preview`, `local`).
    pub stage: String,
    /// Stacks; order does not matter, dependencies do.
    pub stacks: Vec<PlannedStack>,
    /// Assets to upload before the stacks that use them.
    pub assets: Vec<Asset>,
    /// Stack tags added to every stack (besides the template hash).
    pub tags: BTreeMap<String, String>,
    /// The runtime image the compute stack runs ([`ParamSource::ImageDigest`]).
    pub image: PlanImage,
    /// The AWS account the stacks belong in (the config's `account_id`); when set, the
    /// engine refuses to change anything unless the credentials act in it.
    pub account_id: Option<String>,
    /// The region the stacks belong in (the config's `region`).
    pub region: Option<String>,
}

impl DeployPlan {
    /// An empty plan for a customer and stage with the standard tags.
    pub fn new(customer: impl Into<String>, stage: impl Into<String>) -> Self {
        let customer = customer.into();
        let stage = stage.into();
        let mut tags = BTreeMap::new();
        tags.insert("chrono:customer".to_owned(), customer.clone());
        tags.insert("chrono:stage".to_owned(), stage.clone());
        tags.insert("chrono:managed-by".to_owned(), "chronoctl".to_owned());
        Self {
            customer,
            stage,
            stacks: Vec::new(),
            assets: Vec::new(),
            tags,
            image: PlanImage::None,
            account_id: None,
            region: None,
        }
    }

    /// Sets the account (and region) the stacks belong in.
    pub fn in_account(mut self, account_id: impl Into<String>, region: impl Into<String>) -> Self {
        self.account_id = Some(account_id.into());
        self.region = Some(region.into());
        self
    }

    /// Adds a stack.
    pub fn with_stack(mut self, stack: PlannedStack) -> Self {
        self.stacks.push(stack);
        self
    }

    /// Adds an asset.
    pub fn with_asset(mut self, asset: Asset) -> Self {
        self.assets.push(asset);
        self
    }

    /// Keeps only the stacks named (and, transitively, the stacks they depend on, and the
    /// bootstrap stack the engine needs); an unknown name is an error naming the plan's
    /// stacks. Empty `names`: the whole plan.
    pub fn only(&mut self, names: &[String]) -> Result<(), PlanError> {
        if names.is_empty() {
            return Ok(());
        }
        let mut keep: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(n) = todo.pop() {
            let Some(s) = self.stacks.iter().find(|s| s.name == n) else {
                return Err(PlanError::UnknownStack {
                    stack: n,
                    known: self
                        .stacks
                        .iter()
                        .map(|s| s.name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            if keep.insert(n.clone()) {
                todo.extend(s.depends_on.iter().cloned());
            }
        }
        self.stacks
            .retain(|s| keep.contains(&s.name) || s.name == BOOTSTRAP);
        Ok(())
    }

    /// The CloudFormation name of a stack: `chrono-<customer>-<stage>-<stack>`, or the
    /// name of a shared stack ([`PlannedStack::shared_name`]).
    pub fn stack_name(&self, short: &str) -> String {
        if let Some(n) = self.stack(short).and_then(|s| s.shared_name.as_ref()) {
            return n.clone();
        }
        format!("chrono-{}-{}-{}", self.customer, self.stage, short)
    }

    /// The lock key of this customer + stage in the bootstrap lock table.
    pub fn lock_key(&self) -> String {
        format!("deploy#{}#{}", self.customer, self.stage)
    }

    /// Whether data resources may be deleted without `--release-data`.
    pub fn is_disposable_stage(&self) -> bool {
        matches!(self.stage.as_str(), "preview" | "local")
    }

    /// Whether a stack of the plan runs the runtime image (has an image digest parameter).
    pub fn uses_image(&self) -> bool {
        self.stacks.iter().any(|s| {
            s.parameters
                .values()
                .any(|p| *p == ParamSource::ImageDigest)
        })
    }

    /// Whether `deploy --hotswap` may run (every stage but prod).
    pub fn is_hotswap_stage(&self) -> bool {
        self.stage != "prod"
    }

    /// A stack by short name.
    pub fn stack(&self, short: &str) -> Option<&PlannedStack> {
        self.stacks.iter().find(|s| s.name == short)
    }

    /// An asset by name.
    pub fn asset(&self, name: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.name == name)
    }

    /// Checks names, dependencies and parameter sources, and returns the stacks in a
    /// dependency order (each stack after everything it depends on; ties by plan order).
    pub fn order(&self) -> Result<Vec<&PlannedStack>, PlanError> {
        let mut seen = BTreeSet::new();
        for s in &self.stacks {
            if !seen.insert(s.name.as_str()) {
                return Err(PlanError::DuplicateStack(s.name.clone()));
            }
        }
        for s in &self.stacks {
            for d in &s.depends_on {
                if !seen.contains(d.as_str()) {
                    return Err(PlanError::UnknownDependency {
                        stack: s.name.clone(),
                        missing: d.clone(),
                    });
                }
            }
            for (p, src) in &s.parameters {
                match src {
                    ParamSource::Output { stack, .. } if !s.depends_on.contains(stack) => {
                        return Err(PlanError::UndeclaredOutputSource {
                            stack: s.name.clone(),
                            parameter: p.clone(),
                            source_stack: stack.clone(),
                        });
                    }
                    ParamSource::AssetKey { asset } if self.asset(asset).is_none() => {
                        return Err(PlanError::UnknownAsset {
                            stack: s.name.clone(),
                            parameter: p.clone(),
                            asset: asset.clone(),
                        });
                    }
                    _ => {}
                }
            }
        }
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::with_capacity(self.stacks.len());
        while out.len() < self.stacks.len() {
            let before = out.len();
            for s in &self.stacks {
                if !done.contains(s.name.as_str())
                    && s.depends_on.iter().all(|d| done.contains(d.as_str()))
                {
                    done.insert(&s.name);
                    out.push(s);
                }
            }
            if out.len() == before {
                let rest: Vec<&str> = self
                    .stacks
                    .iter()
                    .filter(|s| !done.contains(s.name.as_str()))
                    .map(|s| s.name.as_str())
                    .collect();
                return Err(PlanError::Cycle(rest.join(", ")));
            }
        }
        Ok(out)
    }

    /// Short names of the stacks that (transitively) depend on `short`.
    pub fn dependents_of(&self, short: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut frontier = vec![short.to_owned()];
        while let Some(cur) = frontier.pop() {
            for s in &self.stacks {
                if s.depends_on.contains(&cur) && out.insert(s.name.clone()) {
                    frontier.push(s.name.clone());
                }
            }
        }
        out
    }
}

/// The manifest `chronoctl synth` writes next to the templates (format 1).
#[derive(Debug, serde::Deserialize)]
struct Manifest {
    format: u32,
    customer: String,
    stage: String,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    stacks: Vec<ManifestStack>,
}

#[derive(Debug, serde::Deserialize)]
struct ManifestStack {
    stack: String,
    #[serde(default)]
    name: Option<String>,
    template: String,
    sha256: String,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// The runtime image of a plan.
#[derive(Debug, Clone, Default)]
pub enum PlanImage {
    /// No image: a stack that needs one fails to resolve its parameter.
    #[default]
    None,
    /// Stage `local` without a build: [`PLACEHOLDER_DIGEST`], never pushed or checked.
    Placeholder,
    /// A built image, pushed to ECR and checked there before any stack references it.
    Built(crate::build::artifacts::ShipImage),
}

impl PartialEq for PlanImage {
    fn eq(&self, other: &Self) -> bool {
        self.digest() == other.digest()
    }
}

impl Eq for PlanImage {}

/// The digest a `local` stage without a build deploys (no image has it).
pub const PLACEHOLDER_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

impl PlanImage {
    /// The digest task definitions reference.
    pub fn digest(&self) -> Option<&str> {
        match self {
            Self::None => None,
            Self::Placeholder => Some(PLACEHOLDER_DIGEST),
            Self::Built(i) => Some(i.image.digest()),
        }
    }
}

/// The built artifacts a plan deploys, and whether placeholders may stand in for missing
/// ones (stage `local` only).
#[derive(Debug, Clone, Default)]
pub struct PlanArtifacts {
    /// Lambda zips by binary name.
    pub lambdas: BTreeMap<String, Vec<u8>>,
    /// The runtime image.
    pub image: PlanImage,
    /// Use a placeholder zip (a script that fails when invoked) for a missing function.
    pub allow_placeholders: bool,
}

impl PlanArtifacts {
    /// From checked artifacts.
    pub fn from_artifacts(a: crate::build::artifacts::Artifacts) -> Self {
        Self {
            lambdas: a.lambdas,
            image: a.image.map_or(PlanImage::None, PlanImage::Built),
            allow_placeholders: false,
        }
    }

    /// Nothing built: placeholders everywhere (stage `local`, tests).
    pub fn placeholders() -> Self {
        Self {
            lambdas: BTreeMap::new(),
            image: PlanImage::Placeholder,
            allow_placeholders: true,
        }
    }
}

/// The placeholder zip of a binary: a `bootstrap` script that fails when invoked.
pub fn placeholder_zip(binary: &str) -> Result<Vec<u8>, PlanError> {
    let script = format!(
        "#!/bin/sh\n# placeholder for {binary}: build the runtime (`chronoctl build`)\necho '{binary} is not built' >&2\nexit 1\n"
    );
    crate::build::lambda::lambda_zip(script.as_bytes()).map_err(|e| PlanError::Read {
        path: binary.to_owned(),
        reason: e.to_string(),
    })
}

impl DeployPlan {
    /// Reads `templates/<customer>-<stage>/manifest.json` and its templates (checking each
    /// file against the manifest's hash) into a plan. Returns the plan and the names of
    /// the Lambda binaries for which a placeholder zip was used.
    pub fn from_synth(
        dir: &std::path::Path,
        artifacts: &PlanArtifacts,
    ) -> Result<(Self, Vec<String>), PlanError> {
        Self::from_synth_files(&dir.display().to_string(), artifacts, |name| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(|e| PlanError::Read {
                path: p.display().to_string(),
                reason: e.to_string(),
            })
        })
    }

    /// Like [`DeployPlan::from_synth`], reading files (`manifest.json`, templates) by name
    /// through `read` (e.g. straight from `chrono_stacks::synth::synthesize`).
    pub fn from_synth_files(
        dir: &str,
        artifacts: &PlanArtifacts,
        read: impl Fn(&str) -> Result<String, PlanError>,
    ) -> Result<(Self, Vec<String>), PlanError> {
        let mp = format!("{dir}/manifest.json");
        let text = read("manifest.json")?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| PlanError::Manifest {
            path: mp.clone(),
            reason: e.to_string(),
        })?;
        if m.format != 1 {
            return Err(PlanError::Manifest {
                path: mp,
                reason: format!("manifest format {} is not supported (expected 1)", m.format),
            });
        }
        let mut plan = DeployPlan::new(m.customer, m.stage);
        plan.account_id = m.account_id;
        plan.region = m.region;
        plan.image = artifacts.image.clone();
        let mut placeholders = Vec::new();
        for ms in m.stacks {
            let body = read(&ms.template)?;
            let hash = content_hash(body.as_bytes());
            if hash != ms.sha256 {
                return Err(PlanError::Manifest {
                    path: format!("{dir}/{}", ms.template),
                    reason: "template does not match the hash in manifest.json (edited by hand?)"
                        .into(),
                });
            }
            let mut stack = PlannedStack::new(ms.stack.clone(), body);
            stack.depends_on = ms.depends_on;
            stack.tags = ms.tags;
            // An account-wide stack (tagged `chrono:scope=account`) keeps its own name.
            if stack
                .tags
                .get(chrono_contract::tags::SCOPE)
                .map(String::as_str)
                == Some("account")
            {
                stack.shared_name = ms.name.clone();
            }
            for (k, v) in ms.parameters {
                let bad = || PlanError::Manifest {
                    path: mp.clone(),
                    reason: format!(
                        "stack {}: parameter {k} has an unknown source {v}",
                        ms.stack
                    ),
                };
                let src = if let Some(o) = v.get("output").and_then(|o| o.as_str()) {
                    let (stack, output) = o.split_once('.').ok_or_else(bad)?;
                    ParamSource::Output {
                        stack: stack.to_owned(),
                        output: output.to_owned(),
                    }
                } else if let Some(a) = v.get("asset") {
                    if a.as_str() == Some("image_digest") {
                        ParamSource::ImageDigest
                    } else if let Some(bin) = a.get("lambda_zip").and_then(|b| b.as_str()) {
                        if plan.asset(bin).is_none() {
                            let zip = match artifacts.lambdas.get(bin) {
                                Some(zip) => zip.clone(),
                                None => {
                                    placeholders.push(bin.to_owned());
                                    placeholder_zip(bin)?
                                }
                            };
                            plan.assets.push(Asset::zip(bin, zip));
                        }
                        ParamSource::AssetKey {
                            asset: bin.to_owned(),
                        }
                    } else {
                        return Err(bad());
                    }
                } else if let Some(l) = v.get("value").and_then(|l| l.as_str()) {
                    ParamSource::Literal {
                        value: l.to_owned(),
                    }
                } else {
                    return Err(bad());
                };
                stack.parameters.insert(k, src);
            }
            plan.stacks.push(stack);
        }
        plan.order()?;
        if !placeholders.is_empty() && !artifacts.allow_placeholders {
            return Err(PlanError::MissingArtifacts {
                binaries: placeholders.join(", "),
                stage: plan.stage.clone(),
            });
        }
        Ok((plan, placeholders))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: &str) -> ParamSource {
        ParamSource::Literal { value: v.into() }
    }

    #[test]
    fn order_puts_dependencies_first_and_rejects_cycles() {
        let plan = DeployPlan::new("acme", "prod")
            .with_stack(PlannedStack::new("api", "{}").depends_on("compute"))
            .with_stack(PlannedStack::new("compute", "{}").depends_on("network"))
            .with_stack(PlannedStack::new("network", "{}"));
        let names: Vec<&str> = plan
            .order()
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["network", "compute", "api"]);
        assert_eq!(
            plan.dependents_of("network")
                .into_iter()
                .collect::<Vec<_>>(),
            ["api", "compute"]
        );

        let cyclic = DeployPlan::new("acme", "prod")
            .with_stack(PlannedStack::new("a", "{}").depends_on("b"))
            .with_stack(PlannedStack::new("b", "{}").depends_on("a"));
        assert_eq!(cyclic.order().unwrap_err(), PlanError::Cycle("a, b".into()));
    }

    #[test]
    fn only_keeps_the_named_stacks_their_dependencies_and_the_bootstrap() {
        let plan = DeployPlan::new("acme", "prod")
            .with_stack(PlannedStack::new(BOOTSTRAP, "{}"))
            .with_stack(PlannedStack::new("api", "{}").depends_on("compute"))
            .with_stack(PlannedStack::new("compute", "{}").depends_on("network"))
            .with_stack(PlannedStack::new("network", "{}"))
            .with_stack(PlannedStack::new("web", "{}"));
        let names = |p: &DeployPlan| p.stacks.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        let mut p = plan.clone();
        p.only(&["compute".into()]).unwrap();
        assert_eq!(names(&p), [BOOTSTRAP, "compute", "network"]);
        let mut p = plan.clone();
        p.only(&[]).unwrap();
        assert_eq!(names(&p), names(&plan));
        let mut p = plan.clone();
        let e = p.only(&["nope".into()]).unwrap_err().to_string();
        assert!(
            e.contains("no stack `nope`") && e.contains("compute"),
            "{e}"
        );
    }

    #[test]
    fn order_rejects_undeclared_sources() {
        let plan = DeployPlan::new("acme", "prod")
            .with_stack(PlannedStack::new("network", "{}"))
            .with_stack(PlannedStack::new("data", "{}").param(
                "VpcId",
                ParamSource::Output {
                    stack: "network".into(),
                    output: "VpcId".into(),
                },
            ));
        assert!(matches!(
            plan.order(),
            Err(PlanError::UndeclaredOutputSource { .. })
        ));
        let plan = DeployPlan::new("acme", "prod").with_stack(
            PlannedStack::new("compute", "{}")
                .param(
                    "Code",
                    ParamSource::AssetKey {
                        asset: "api".into(),
                    },
                )
                .param("X", lit("1")),
        );
        assert!(matches!(plan.order(), Err(PlanError::UnknownAsset { .. })));
        let plan = DeployPlan::new("acme", "prod")
            .with_stack(PlannedStack::new("a", "{}"))
            .with_stack(PlannedStack::new("a", "{}"));
        assert_eq!(
            plan.order().unwrap_err(),
            PlanError::DuplicateStack("a".into())
        );
    }

    #[test]
    fn asset_key_is_the_content_hash() {
        let a = Asset::zip("api", b"hello".to_vec());
        assert_eq!(
            a.key(),
            "assets/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.zip"
        );
        assert_eq!(
            DeployPlan::new("acme", "prod").stack_name("data"),
            "chrono-acme-prod-data"
        );
    }
}
